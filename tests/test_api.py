"""The Python API (api.py, specs.py): sessions in segments, results, traces, the cross-check."""

import json
import subprocess
import sys

import numpy as np
import pytest
import limemu
from limemu import ConfigError, Schedule
from limemu.cli import main
from limemu.runner import WORKLOAD_DEFAULTS


@pytest.fixture
def maxcut_run():
    problem = limemu.maxcut(cells=20, seed=7)
    defaults = WORKLOAD_DEFAULTS["maxcut"]            # the schedules of `limemu run`
    spec = limemu.make_spec(problem, 300, lanes=3, order="colour", barrier=defaults["barrier"],
                            gain=defaults["gain"], seed=7)
    return problem, spec


def test_import_limemu_loads_neither_the_rtl_nor_dimod():
    code = ("import sys, limemu; print(sorted(m for m in ('amaranth', 'cocotb', 'dimod', "
            "'sklearn', 'dask', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]"


def test_the_sampler_without_dimod_names_the_extra():
    code = ("import sys; sys.modules['dimod'] = None; import limemu\n"
            "try:\n    limemu.LimSampler\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert "pip install 'limemu[dimod]'" in out


@pytest.mark.parametrize("segments", [[300], [100, 100, 100], [1, 298, 1]])
def test_a_run_in_segments_ends_like_one_run(maxcut_run, segments):
    problem, spec = maxcut_run
    whole = limemu.run(problem, spec, 300, progress=False)
    with limemu.open_session("model", problem, spec, progress=False) as session:
        for count in segments:
            session.run(count)
        assert session.step == 300
        assert np.array_equal(session.weights(), whole.weights)
        assert session.counters() == whole.counters
        assert session.energy() == whole.energy
        assert np.array_equal(session.field(), problem.problem.field(session.weights()))


def test_the_result_is_the_json_of_limemu_run(maxcut_run, tmp_path):
    problem, spec = maxcut_run
    result = limemu.run(problem, spec, 300, progress=False)
    path = tmp_path / "r.json"
    assert main(["run", "--cells", "20", "--lanes", "3", "--steps", "300", "--seed", "7",
                 "--json", str(path), "--quiet"]) == 0
    cli = json.loads(path.read_text())
    record = result.to_dict()
    assert sorted(record) == sorted(k for k in cli if k != "run_config")
    assert record["weights"] == cli["weights"] and record["counters"] == cli["counters"]
    assert result.metrics["cut"] == cli["cut"] and result.identities["first_law"] == "exact"
    assert result.counters["evaluations"] == 20 * 300
    with limemu.open_session("model", problem, spec, progress=False) as session:
        session.run(300)
        assert session.hardware_counters() == record["counters"]
        assert session.identities() == record["identities"]


def test_a_traced_session_records_every_k_steps(maxcut_run):
    problem, spec = maxcut_run
    with limemu.open_session("model", problem, spec, trace_every=40, progress=False) as s:
        s.run(100)
        s.run(100)
        trace = s.trace()
        result = s.result()
    assert trace["step"].tolist() == [0, 40, 80, 100, 140, 180, 200]
    assert np.array_equal(result.trace["step"], trace["step"])
    names = trace["counter_names"].tolist()
    assert dict(zip(names, trace["counters"][-1].tolist())) == result.counters


def test_crosscheck_against_the_reference(maxcut_run):
    problem, spec = maxcut_run
    outcome = limemu.crosscheck(problem, spec, 60, backend="reference", checkpoints=4,
                                progress=False)
    assert outcome.passed and outcome.mismatch is None
    assert outcome.checkpoints == 1 and outcome.steps == 60      # the reference runs once


def test_crosscheck_reports_the_first_mismatch(maxcut_run):
    """A reference run of a different seed than the model's differs, and the message says
    where."""
    problem, spec = maxcut_run
    from limemu.compare import crosscheck as compare_sessions
    from limemu.runner import open_session
    model = open_session("model", problem, spec, progress=False)
    other = open_session("reference", problem, spec.replace(seed=8), progress=False)
    mismatch, _ = compare_sessions(spec, model, other, 60, segments=1)
    assert mismatch.startswith("after step 60 (seed 7): first mismatch")


@pytest.mark.parametrize("call,fragment", [
    (lambda p, s: limemu.open_session("gpu", p, s), "backend = 'gpu'"),
    (lambda p, s: limemu.open_session("model", p, "spec"), "spec = 'str'"),
    (lambda p, s: limemu.open_session("reference", p, s, trace_every=5), "trace_every = 5"),
    (lambda p, s: limemu.open_session("model", p, s, trace_every=-1), "trace_every = -1"),
    (lambda p, s: limemu.run(p, s, 0), "steps = 0"),
    (lambda p, s: limemu.crosscheck(p, s, 10, backend="model"), "backend = 'model'"),
    (lambda p, s: limemu.crosscheck(p, s, 10, checkpoints=0), "checkpoints = 0"),
    (lambda p, s: limemu.make_spec(p, 10, lanes=0), "lanes = 0"),
    (lambda p, s: limemu.make_spec(p, 10, barrier="cosine:1"), "barrier = 'cosine:1'"),
    (lambda p, s: limemu.make_spec(p, 10, gain=3), "gain = 3"),
    (lambda p, s: limemu.make_spec(p, 10, formats={"colour": 1}), "formats\\['colour'\\]"),
    (lambda p, s: limemu.make_spec("maxcut", 10), "problem = 'maxcut'"),
])
def test_bad_input_gives_a_clear_error(maxcut_run, call, fragment):
    with pytest.raises(ConfigError, match=fragment):
        call(*maxcut_run)


def test_make_spec_takes_text_and_raw_schedules():
    problem = limemu.least_squares()
    spec = limemu.make_spec(problem, 1000, barrier=Schedule.constant(3 << 12),
                            gain="exp:0.001,0.1", formats={"barrier_frac_bits": 12,
                                                           "gain_frac_bits": 10})
    assert spec.barrier.start == 3 << 12 and spec.gain.kind == "exponential"
    assert (spec.cells, spec.weight_bits, spec.init) == (10, 8, "zero")
    assert spec.gain.values_at([0])[0] == round(0.001 * 2 ** 10)
    tabulated = limemu.make_spec(problem, 1000, gain="exp:0.001,0.1", tabulate=256,
                                 formats={"barrier_frac_bits": 12, "gain_frac_bits": 10},
                                 barrier="constant:2")
    assert tabulated.gain.kind == "table" and len(tabulated.gain.values) == 256
