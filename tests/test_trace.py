"""Traces: recorded in segments without changing the run; tilts as the physics defines them."""

import json

import numpy as np
import pytest
from limemu.cli import main
from limemu.model import ConfigError, physics
from limemu.runner import build_run, run_backend
from limemu.solution import time_and_energy_to_solution
from limemu.trace import fig3a_coordinates, load_trace, run_traced


@pytest.mark.parametrize("options,every", [
    ({"workload": "maxcut", "cells": 20, "steps": 230, "lanes": 3}, 25),      # ragged end
    ({"workload": "lsq", "steps": 300}, 100),
    ({"workload": "twoparam", "steps": 200, "barrier": "linear:1,6"}, 1),
])
def test_traced_run_ends_exactly_like_an_untraced_one(options, every):
    workload, spec, steps = build_run(options)
    plain = run_backend("model", workload, spec, steps, progress=False)
    weights, exact, overflow, extra, trace = run_traced("model", workload, spec, steps, every,
                                                         progress=False)
    assert np.array_equal(weights, plain[0]) and exact == plain[1] and overflow == plain[2]
    expected_steps = list(range(0, steps, every)) + [steps]
    assert trace["step"].tolist() == expected_steps
    names = trace["counter_names"].tolist()
    assert dict(zip(names, trace["counters"][-1].tolist())) == exact
    assert trace["counters"][0].tolist() == [0] * len(names)
    assert trace["loss"][-1] == workload.evaluate(weights)["loss"]
    assert trace["net_updates"][-1] == np.sum(np.abs(weights - extra["weights0"])) // spec.delta
    e0 = spec.barrier.values_at(trace["step"])
    assert np.array_equal(trace["e0_raw"], e0)
    assert np.allclose(trace["e0_u"], e0 * 2.0 ** -spec.barrier_frac_bits)
    assert np.array_equal(trace["eta_raw"], spec.gain.values_at(trace["step"]))
    q = trace["tilt_quantiles"]
    assert np.all(np.diff(q, axis=1) >= 0)                  # quantiles in order


def test_tilts_are_the_loss_differences_of_one_move():
    """D and E0_eff of every cell from brute-force losses: D+ = eta (L(W) - L(W + delta e_n)),
    D- likewise; D = (D+ - D-)/2 and E0_eff = E0 - (D+ + D-)/4 (docs/physics.md §3-4)."""
    workload, spec, steps = build_run({"workload": "lsq", "steps": 50,
                                       "barrier": "constant:3", "gain": "constant:0.05"})
    problem = workload.problem
    rng = np.random.default_rng(3)
    W = rng.integers(spec.w_lo + 1, spec.w_hi, spec.cells)
    D, e0_eff, e0_raw, eta_raw = fig3a_coordinates(spec, problem, problem.field(W), 7)
    eta = eta_raw * 2.0 ** -spec.gain_frac_bits
    e0 = e0_raw * 2.0 ** -spec.barrier_frac_bits
    for n in range(spec.cells):
        step = np.zeros(spec.cells, np.int64)
        step[n] = spec.delta
        d_plus = eta * (problem.loss(W) - problem.loss(W + step))
        d_minus = eta * (problem.loss(W) - problem.loss(W - step))
        assert D[n] == pytest.approx((d_plus - d_minus) / 2, abs=1e-9)
        assert e0_eff[n] == pytest.approx(e0 - (d_plus + d_minus) / 4, abs=1e-9)
        # then p+ + p- of the two crossings is the normalised rate r of the map (in log2)
        log2_r = np.logaddexp2(d_plus / 2 - e0, d_minus / 2 - e0)
        assert physics.e0_at_max_rate(D[n]) - e0_eff[n] == pytest.approx(log2_r, abs=1e-9)


def test_inadmissible_fraction_follows_the_barrier():
    # spins with zero diagonal: E0_eff = E0; a high barrier leaves every cell admissible, a low
    # one with a strong gain pushes the strongly tilted cells out
    high = build_run({"workload": "maxcut", "cells": 24, "steps": 40, "barrier": "constant:30",
                      "gain": "constant:2"})
    low = build_run({"workload": "maxcut", "cells": 24, "steps": 40, "barrier": "constant:1",
                     "gain": "constant:2"})
    t_high = run_traced("model", *high, 10, progress=False)[4]
    t_low = run_traced("model", *low, 10, progress=False)[4]
    assert np.all(t_high["inadmissible_fraction"] == 0)
    assert np.all(t_low["inadmissible_fraction"] > 0.5)
    assert np.allclose(t_high["tracked_e0"], 30.0)


def test_trace_is_stored_next_to_the_json(tmp_path):
    out = tmp_path / "sub" / "r.json"
    assert main(["run", "--cells", "16", "--steps", "120", "--trace-every", "30",
                 "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    entry = result["trace"]
    assert entry["file"] == "r.trace.npz" and (tmp_path / "sub" / "r.trace.npz").is_file()
    assert entry["every"] == 30 and entry["points"] == 5 and entry["precision_metric"] == "cut"
    trace = load_trace(result, out)
    assert trace["precision"][-1] == result["cut"]
    assert dict(zip(trace["counter_names"].tolist(), trace["counters"][-1].tolist())) == \
        result["counters"]
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("argv,fragment", [
    (["--backend", "reference", "--json", "x.json"], "cannot stop every K steps"),
    ([], "give --json OUT"),
    (["--json", "x.json", "--trace-every", "-5"], "must be >= 1"),
])
def test_trace_requests_that_cannot_be_met_are_refused(argv, fragment, capsys, tmp_path,
                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    every = [] if "--trace-every" in argv else ["--trace-every", "10"]
    assert main(["run", "--cells", "8", "--steps", "20", "--quiet"] + every + argv) == 2
    assert fragment in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="reference"):
        run_traced("reference", *build_run({"cells": 8, "steps": 20}), 5, progress=False)


def test_time_and_energy_to_solution_follow_their_definition():
    workload, spec, steps = build_run({"workload": "maxcut", "cells": 14, "steps": 1500,
                                       "seed": 2})
    weights, exact, overflow, extra, trace = run_traced("model", workload, spec, steps, 10,
                                                        progress=False)
    from limemu.runner import result_dict
    result = result_dict(workload, spec, steps, "model", weights, exact, overflow, extra)
    optimum = workload.reference["optimum"]
    s = time_and_energy_to_solution(result, trace)
    assert s["reference"] == optimum and s["reference_source"] == "exhaustive search (exact)"
    first = int(np.flatnonzero(trace["precision"] >= optimum)[0])
    assert s["reached"] and s["time_to_solution_steps"] == trace["step"][first]
    heat = trace["counters"][first, trace["counter_names"].tolist().index("heat_net")]
    assert s["energy_to_solution_u"] == heat * spec.energy_lsb_u
    assert s["energy_to_solution_J"] == pytest.approx(heat * spec.energy_lsb_u *
                                                      physics.landauer_unit_J(300.0))
    # a looser target is met no later, and a target above the optimum never
    loose = time_and_energy_to_solution(result, trace, {"cut_fraction": 0.8})
    assert loose["time_to_solution_steps"] <= s["time_to_solution_steps"]
    never = time_and_energy_to_solution(result, trace, {"reference_cut": optimum + 1})
    assert not never["reached"] and never["energy_to_solution_u"] is None
