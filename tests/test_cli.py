"""The command line: JSON results, clear errors, the projection calculator, the cross-check."""

import json

import numpy as np
import pytest
from limemu.cli import main
from limemu.workloads import parse_gset


def test_run_writes_the_documented_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["run", "--workload", "maxcut", "--cells", "30", "--steps", "300",
                 "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    for key in ("workload", "backend", "config", "steps", "counters", "weights", "loss", "cut",
                "energy"):
        assert key in result, key
    for key in ("heat_u", "heat_J", "landauer_bound_u", "temperature_K"):
        assert key in result["energy"], key
    assert result["backend"] == "model" and result["steps"] == 300
    assert result["counters"]["evaluations"] == 300 * 30
    assert all(isinstance(v, int) for v in result["counters"].values())
    assert set(result["weights"]) <= {-1, 1}
    # the cut is recomputed from the final spins and the graph
    spec = result["config"]["spec"]
    assert spec["cells"] == 30 and spec["weight_bits"] == 1
    assert result["energy"]["heat_u"] == result["counters"]["heat_net"] * 2.0 ** -spec[
        "barrier_frac_bits"]
    text = capsys.readouterr().out
    assert "first law: exact" in text and "Landauer bound" in text


def test_run_is_reproducible_for_a_seed(tmp_path):
    paths = [tmp_path / f"{k}.json" for k in range(3)]
    for path, seed in zip(paths, (7, 7, 8)):
        main(["run", "--workload", "lsq", "--steps", "500", "--seed", str(seed),
              "--json", str(path), "--quiet"])
    a, b, c = (json.loads(p.read_text()) for p in paths)
    assert a["weights"] == b["weights"] and a["counters"] == b["counters"]
    assert a["counters"] != c["counters"]


@pytest.mark.parametrize("argv,fragment", [
    (["--lanes", "0"], "lanes = 0"),
    (["--steps", "0"], "steps = 0"),
    (["--barrier", "cosine:3"], "--barrier"),
    (["--barrier", "linear:3"], "takes 2"),
    (["--gain", "constant:x"], "numbers"),
    (["--gain", "exp:0,1"], "exponential"),
    (["--barrier", "constant:1000"], "barrier.start"),
    (["--set", "mantissa_bits=8"], "mantissa_bits"),
    (["--set", "colour=1"], "--set"),
    (["--bits", "4"], "bits = 4"),
    (["--graph", "/nonexistent/g.txt"], "g.txt"),
    (["--workload", "lsq", "--cells", "11"], "cells"),
    (["--barrier", "table:/nonexistent"], "cannot read"),
    (["--backend", "vboard", "--resyncs", "-1"], "resyncs = -1"),
])
def test_bad_run_options_give_a_clear_error(argv, fragment, capsys):
    steps = [] if "--steps" in argv else ["--steps", "10"]
    assert main(["run", "--quiet"] + steps + argv) == 2
    assert fragment in capsys.readouterr().err


def test_malformed_graph_file_names_the_line(tmp_path, capsys):
    path = tmp_path / "bad.txt"
    path.write_text("3 2\r\n1 2 1  \r\n2 x 1\r\n")
    assert main(["run", "--graph", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.txt" in err and "line 3" in err


def test_gset_with_trailing_spaces_and_crlf_runs(tmp_path):
    path = tmp_path / "ok.txt"
    path.write_text("4 4 \r\n1 2 1 \r\n2 3 1\r\n3 4 1\r\n4 1 1\r\n\r\n")
    assert parse_gset(path).m == 4
    out = tmp_path / "r.json"
    assert main(["run", "--graph", str(path), "--steps", "500", "--json", str(out),
                 "--quiet"]) == 0
    assert json.loads(out.read_text())["cut"] == 4


def test_bound_reproduces_the_paper_band(capsys):
    assert main(["bound", "--params", "1e15", "--ops", "1e28", "--bits", "16"]) == 0
    out16 = capsys.readouterr().out
    assert main(["bound", "--params", "1e15", "--ops", "1e28", "--bits", "32"]) == 0
    out32 = capsys.readouterr().out
    assert "4.59e+08" in out16 and "9.19e+08" in out32
    assert "1e+17" in out16 or "1.00e+17" in out16


def test_bound_with_a_measured_run(tmp_path, capsys):
    out = tmp_path / "r.json"
    main(["run", "--cells", "20", "--steps", "200", "--json", str(out), "--quiet"])
    capsys.readouterr()
    assert main(["bound", "--params", "1e15", "--ops", "1e28", "--bits", "16", "--measured",
                 str(out)]) == 0
    assert "measured" in capsys.readouterr().out.lower()
    assert main(["bound", "--params", "1e15", "--ops", "1e28", "--bits", "16", "--measured",
                 str(tmp_path / "missing.json")]) == 2


def test_crosscheck_passes_for_model_against_reference(capsys):
    assert main(["crosscheck", "--cells", "16", "--steps", "60", "--lanes", "3",
                 "--quiet"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_weights_in_json_are_the_final_state(tmp_path):
    out = tmp_path / "r.json"
    main(["run", "--workload", "twoparam", "--steps", "3000", "--json", str(out), "--quiet"])
    result = json.loads(out.read_text())
    assert len(result["weights"]) == 2
    assert np.isclose(result["loss"], result["metrics"]["loss"])


def test_energy_report_shows_the_clausius_bound_of_small_arrays(tmp_path, capsys):
    from limemu.model.thermo import BELOW_LANDAUER, exact_run  # noqa: PLC0415
    from limemu.runner import build_run  # noqa: PLC0415

    out = tmp_path / "small.json"
    argv = ["--workload", "maxcut", "--cells", "10", "--steps", "400"]
    assert main(["run", *argv, "--json", str(out), "--quiet"]) == 0
    energy = json.loads(out.read_text())["energy"]
    workload, spec, steps = build_run({"workload": "maxcut", "cells": 10, "steps": 400})
    exact = exact_run(spec, workload.problem, steps, tilted=False)
    assert energy["clausius_bound_u"] == pytest.approx(exact.clausius_bound_u)
    assert energy["entropy_initial_bits"] == 10 and energy["states"] == 1024
    assert energy["ratio_to_clausius"] == pytest.approx(energy["heat_u"] /
                                                        energy["clausius_bound_u"])
    text = capsys.readouterr().out
    assert "Clausius bound H0-HK" in text and BELOW_LANDAUER in text
    # too many states to enumerate: no bound, the line on N*b all the same
    assert main(["run", *argv[:2], "--cells", "30", "--steps", "50", "--json",
                 str(out), "--quiet"]) == 0
    assert "clausius_bound_u" not in json.loads(out.read_text())["energy"]
    text = capsys.readouterr().out
    assert "Clausius bound" not in text and BELOW_LANDAUER in text


def test_a_board_with_the_throughput_core_runs_colour_workloads_in_banked_order():
    from types import SimpleNamespace

    from limemu.cli import run_options

    def order(**given):
        args = {"board": "ulx3s", "backend": "verilator", "workload": "maxcut", "order": None,
                "lanes": None, "core": None, "set": None, **given}
        return run_options(SimpleNamespace(**args)).get("order")

    assert order() == "banked"
    assert order(order="colour") == "colour"                  # asked for: kept
    assert order(workload="lsq") is None                      # natural order: its own default
    assert order(board="icebreaker") is None                  # the compact core
    assert order(board=None, backend="model") is None         # no board
