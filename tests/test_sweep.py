"""Sweeps on Dask: the plan, single-run reproduction on a 2-worker cluster, resuming."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from limemu.cli import main
from limemu.model import ConfigError
from limemu.sweep import load_sweep, plan_sweep, run_sweep
from limemu.workloads import random_graph, write_gset
from matplotlib.image import imread

SWEEP = """
[base]
workload = "maxcut"
cells = 14
steps = 400
lanes = 2
order = "colour"
barrier = "constant:{e0}"
gain = "exp:0.1,4"
trace_every = 20

[grid]
e0 = [3, 5]
seed = [1, 2]

[target]
cut_fraction = 1.0
"""


def write(path, text):
    path.write_text(text)
    return path


def test_the_plan_crosses_entries_and_grid_and_fills_placeholders(tmp_path):
    doc = {"base": {"workload": "maxcut", "cells": 12, "gain": "exp:0.1,{eta}"},
           "grid": {"eta": [2, 4.5], "seed": [1, 2, 3], "formats.gain_frac_bits": [4, 6]},
           "runs": [{"lanes": 1}, {"lanes": 3, "order": "colour"}]}
    plan = plan_sweep(doc, "s.toml", tmp_path)
    assert len(plan["runs"]) == 2 * 2 * 3 * 2
    assert len({r["hash"] for r in plan["runs"]}) == 24
    gains = {r["options"]["gain"] for r in plan["runs"]}
    assert gains == {"exp:0.1,2", "exp:0.1,4.5"}
    assert {tuple(r["options"]["set"]) for r in plan["runs"]} == {
        ("gain_frac_bits=4",), ("gain_frac_bits=6",)}
    assert plan["varying"] == ["eta", "formats.gain_frac_bits", "lanes", "order"]
    assert all(r["options"]["trace_every"] == 40 for r in plan["runs"])   # maxcut 4000 // 100
    # the same file plans the same hashes
    assert [r["hash"] for r in plan_sweep(doc, "s.toml", tmp_path)["runs"]] == \
        [r["hash"] for r in plan["runs"]]


@pytest.mark.parametrize("doc,fragment", [
    ({"base": {"gain": "exp:0.1,{eta}"}}, "placeholder {eta}"),
    ({"base": {}, "grid": {"eta": [1]}}, "neither run options"),
    ({"base": {}, "grid": {"seed": 3}}, "non-empty list"),
    ({"base": {}, "grids": {}}, "unknown table 'grids'"),
    ({"base": {}, "target": {"cut": 1}}, "unknown target.cut"),
    ({"base": {"steps": "x"}}, "steps = 'x'"),
    ({"base": {}, "grid": {"seed": [1]}, "runs": [{"seed": 2}]}, "both set"),
])
def test_bad_sweep_files_give_a_clear_error(doc, fragment, tmp_path):
    with pytest.raises(ConfigError, match=fragment.replace("{", r"\{").replace("}", r"\}")):
        plan_sweep(doc, "s.toml", tmp_path)


def same_arrays(path_a, path_b):
    with np.load(path_a) as a, np.load(path_b) as b:
        return sorted(a.files) == sorted(b.files) and all(
            np.array_equal(a[k], b[k]) for k in a.files if k != "seconds")


def test_sweep_on_two_worker_processes_reproduces_single_runs(tmp_path):
    path = write(tmp_path / "s.toml", SWEEP)
    outcome = run_sweep(path, out=tmp_path / "out", workers=2, processes=True, progress=False)
    assert outcome["done"] == 4 and outcome["skipped"] == 0 and not outcome["failed"]
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(table) == 4 and set(table["status"]) == {"done"}
    assert sorted(zip(table["param_e0"], table["seed"])) == [(3, 1), (3, 2), (5, 1), (5, 2)]
    for _, row in table.iterrows():
        e0, seed = int(row["param_e0"]), int(row["seed"])
        single = tmp_path / f"single_{e0}_{seed}.json"
        assert main(["run", "--workload", "maxcut", "--cells", "14", "--steps", "400",
                     "--lanes", "2", "--order", "colour", "--barrier", f"constant:{e0}",
                     "--gain", "exp:0.1,4", "--seed", str(seed), "--trace-every", "20",
                     "--json", str(single), "--quiet"]) == 0
        a = json.loads(single.read_text())
        b = json.loads((tmp_path / "out" / row["json"]).read_text())
        for key in ("config", "run_config", "weights", "counters", "energy", "cut"):
            assert a[key] == b[key], key
        assert same_arrays(tmp_path / f"single_{e0}_{seed}.trace.npz",
                           tmp_path / "out" / "runs" / b["trace"]["file"])
        assert row["counter_heat_net"] == b["counters"]["heat_net"]
        assert row["heat_net_u"] == b["energy"]["heat_net_u"]
        # 14 nodes: the exact optimum is the reference of the target
        assert row["reference"] == b["reference"]["optimum"]
    assert table["reached"].any()
    hit = table[table["reached"]]
    assert (hit["energy_to_solution_u"] <= hit["heat_net_u"] + hit["heat_abs_u"]).all()
    report = (tmp_path / "out" / "report.html").read_text()
    assert "data:image/png;base64," in report and "fraction" in report
    image = imread(tmp_path / "out" / "report" / "tradeoff.png")
    assert image.shape[1] > 300 and image[..., :3].std() > 0.05


SLOW_SWEEP = """
[base]
workload = "maxcut"
cells = 24
steps = 1500
lanes = 4
order = "colour"
gain = "exp:0.1,{eta}"
trace_every = 5

[grid]
eta = [2, 4, 6]
seed = [1, 2]
"""


def finished_files(run_dir):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(run_dir.iterdir())
            if not p.name.startswith(".")}


def test_killed_sweep_resumes_without_redoing_or_losing_runs(tmp_path):
    path = write(tmp_path / "s.toml", SLOW_SWEEP)
    out = tmp_path / "out"
    log = open(tmp_path / "log.txt", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "limemu.cli", "sweep", str(path), "--out", str(out),
         "--threads", "--workers", "2"],
        stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("runs/*.json")):
            assert process.poll() is None, (tmp_path / "log.txt").read_text()
            assert time.monotonic() < deadline, "no run finished in time"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)       # the sweep and everything it started
        process.wait()
        log.close()
    before = finished_files(out / "runs")
    done_before = sorted(n for n in before if n.endswith(".json"))
    assert 1 <= len(done_before) < 6, "the sweep was not interrupted half way; slow its runs"
    for name in done_before:                  # a JSON only exists complete, with its trace
        result = json.loads(before[name][1])
        assert result["trace"]["file"] in before
    outcome = run_sweep(path, out=out, workers=2, processes=False, progress=False)
    assert outcome["skipped"] == len(done_before) and outcome["done"] == 6 - len(done_before)
    after = finished_files(out / "runs")
    # finished runs (a JSON and its trace) were neither redone nor touched; a trace written
    # just before the kill, whose JSON was not, belongs to an unfinished run and is redone
    finished = done_before + [json.loads(before[n][1])["trace"]["file"] for n in done_before]
    for name in finished:
        assert after[name] == before[name], name
    assert len([n for n in after if n.endswith(".json")]) == 6
    assert not list((out / "runs").glob(".*.tmp"))
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 6 and set(table["status"]) == {"done"}
    plan = load_sweep(path)
    assert sorted(table["run"]) == sorted(r["hash"] for r in plan["runs"])


def test_a_failing_run_is_reported_and_rerun_on_resume(tmp_path, capsys, monkeypatch):
    import limemu.sweep  # noqa: PLC0415

    graph = tmp_path / "g9.txt"
    path = write(tmp_path / "s.toml", f"""
[base]
steps = 200
trace_every = 50
[[runs]]
cells = 10
[[runs]]
graph = "{graph.name}"
[grid]
seed = [1, 2]
""")
    out = tmp_path / "out"
    args = ["sweep", str(path), "--out", str(out), "--threads", "--format", "csv", "--quiet"]
    assert main(args) == 2                  # the graph file is missing: refused before running
    assert "g9.txt" in capsys.readouterr().err and not out.exists()
    write_gset(random_graph(9, m=14, seed=4), graph)
    real = limemu.sweep.run_experiment

    def flaky(options, progress=False):     # the graph's runs fail on the workers
        if options.get("graph"):
            raise RuntimeError("worker lost its disk")
        return real(options, progress)

    monkeypatch.setattr(limemu.sweep, "run_experiment", flaky)
    assert main(args) == 1
    text = capsys.readouterr().out
    assert "2 failed" in text and "worker lost its disk" in text
    table = pd.read_csv(out / "results.csv")
    assert sorted(table["status"]) == ["done", "done", "failed", "failed"]
    monkeypatch.setattr(limemu.sweep, "run_experiment", real)
    assert main(args) == 0
    assert "(2 from before, 2 now, 0 failed)" in capsys.readouterr().out
    table = pd.read_csv(out / "results.csv")
    assert set(table["status"]) == {"done"} and len(table) == 4
