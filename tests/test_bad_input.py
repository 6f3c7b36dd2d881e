"""Bad input on every command: missing, empty, truncated, binary, huge and malformed.

Each case must end with a non-zero exit and one line on stderr naming the input, its value and
the limit: no traceback, and no partial or lost output file. One table per command.
"""

import json
import tracemalloc

import pytest
from limemu.cli import main
from limemu.model.schedules import MAX_STEPS
from limemu.model.spec import MAX_CELLS

BINARY = bytes(range(256)) * 4


def refused(argv, capsys, *fragments, code=2, prefix="limemu: error: "):
    """Run the command line in-process; check the exit code and the one-line error."""
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def files(folder):
    return sorted(p.name for p in folder.rglob("*"))


# -- run: sizes, checked before anything is allocated --------------------------------------------
GRAPHS = {
    "huge_header": (f"{10**11} 1\n1 2 1\n", [f"n = {10**11}", str(MAX_CELLS)]),
    "big_header": (f"{3 * 10**9} 1\n1 2 1\n", [f"n = {3 * 10**9}", str(MAX_CELLS)]),
    "lying_m": (f"{MAX_CELLS} {10**11}\n1 2 1\n", [f"m = {10**11}"]),
    "empty": ("", ["line 1", "empty file"]),
    "truncated": ("4 3\n1 2 1\n2 3", ["line 3", "expected 3 fields"]),
    "binary": (BINARY, ["line 2", "not ASCII", "0x80"]),
    "malformed": ("4 x\n", ["line 1", "must be integers"]),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_run_bad_graph_files(name, tmp_path, capsys):
    text, fragments = GRAPHS[name]
    path = tmp_path / f"{name}.txt"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    tracemalloc.start()
    try:
        refused(["run", "--graph", str(path), "--quiet"], capsys, path.name, *fragments)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20           # nothing big was allocated


RUN_SIZES = [
    (["--cells", "100000000"], ["cells = 100000000", str(MAX_CELLS)]),
    (["--steps", str(MAX_STEPS + 1)], [f"steps = {MAX_STEPS + 1}", str(MAX_STEPS), "48-bit"]),
    (["--steps", str(10**15)], [f"steps = {10**15}", "step counter"]),
    (["--steps", "0"], ["steps = 0", str(MAX_STEPS)]),
    (["--lanes", "2000"], ["lanes = 2000", "1024"]),
    (["--cells", "8", "--lanes", "9"], ["lanes = 9", "cells=8"]),
]


@pytest.mark.parametrize("argv,fragments", RUN_SIZES)
def test_run_sizes_are_checked_before_allocation(argv, fragments, capsys):
    tracemalloc.start()
    try:
        refused(["run", "--quiet"] + argv, capsys, *fragments)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_default_lanes_adapt_to_a_small_graph(tmp_path, capsys):
    path = tmp_path / "triangle.txt"
    path.write_text("3 3\n1 2 1\n2 3 1\n1 3 1\n")
    out = tmp_path / "r.json"
    assert main(["run", "--graph", str(path), "--steps", "50", "--json", str(out),
                 "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["spec"]["lanes"] == 3 and result["cut"] == 2
    refused(["run", "--graph", str(path), "--lanes", "4", "--quiet"], capsys, "lanes = 4",
            "cells=3")


# -- run: the --json path, checked before the run, written atomically --------------------------
def json_paths(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    return [
        (tmp_path / "folder", ["--json", "is a folder"]),
        (tmp_path / "a_file" / "r.json", ["--json", "a_file", "is a file"]),
    ]


@pytest.mark.parametrize("command,runner", [
    (["run", "--cells", "8", "--steps", "10"], "limemu.api.run"),
    (["thermo", "--cells", "4", "--steps", "10", "--seeds", "3"],
     "limemu.thermo.check_second_law"),
    (["train", "--steps", "2"], "limemu.train.run_training"),
])
def test_unwritable_json_is_refused_before_the_run(command, runner, tmp_path, capsys,
                                                   monkeypatch):
    def no_run(*args, **kwargs):
        raise AssertionError("ran before checking --json")

    monkeypatch.setattr(runner, no_run)
    for path, fragments in json_paths(tmp_path):
        before = files(tmp_path)
        refused(command + ["--json", str(path), "--quiet"], capsys, str(path.name), *fragments)
        assert files(tmp_path) == before


def test_a_missing_folder_of_json_is_created(tmp_path):
    out = tmp_path / "new" / "deeper" / "r.json"
    assert main(["run", "--cells", "8", "--steps", "10", "--json", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["steps"] == 10


def test_json_is_replaced_atomically(tmp_path, capsys, monkeypatch):
    import limemu.files  # noqa: PLC0415

    out = tmp_path / "r.json"
    assert main(["run", "--cells", "8", "--steps", "10", "--json", str(out), "--quiet"]) == 0
    previous = out.read_text()

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(limemu.files.os, "replace", killed)
    assert main(["run", "--cells", "8", "--steps", "20", "--json", str(out), "--quiet"]) == 130
    assert out.read_text() == previous                  # the old result, whole
    assert files(tmp_path) == ["r.json"]                # no temporary file left
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["limemu run: interrupted (Ctrl-C)"]


def test_ctrl_c_during_a_run_exits_130_with_one_line(tmp_path, capsys, monkeypatch):
    import limemu.api  # noqa: PLC0415

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(limemu.api, "run", interrupted)
    out = tmp_path / "r.json"
    assert main(["run", "--cells", "8", "--steps", "10", "--json", str(out)]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["limemu run: interrupted (Ctrl-C)"]
    assert not out.exists()


# -- run: run files, result JSONs as run files, schedule tables, values -------------------------
RESULT = None


def a_result(tmp_path_factory):
    """A small traced run: its JSON and trace (made once per test session)."""
    global RESULT
    if RESULT is None:
        folder = tmp_path_factory.mktemp("result")
        out = folder / "r.json"
        assert main(["run", "--cells", "8", "--steps", "40", "--trace-every", "10", "--json",
                     str(out), "--quiet"]) == 0
        RESULT = out
    return json.loads(RESULT.read_text()), RESULT.with_name("r.trace.npz").read_bytes()


RUN_FILES = {
    "missing": (None, ["cannot read"]),
    "binary": (BINARY, ["not UTF-8", "0x80"]),
    "truncated": ("steps = [1,\n", ["not valid TOML"]),
    "malformed": ("stepz = 3\n", ["unknown option 'stepz'"]),
    "huge": ("cells = 100000000\n", ["cells = 100000000", str(MAX_CELLS)]),
    "huge_steps": (f"steps = {MAX_STEPS + 1}\n", [f"steps = {MAX_STEPS + 1}", "48-bit"]),
    "backend": ('backend = "foo"\n', ["backend = 'foo'", "model, reference, verilator, vboard, "
                                      "board"]),
    "core": ('core = "tiny"\nbackend = "verilator"\n', ["core = 'tiny'", "pipelined, compact"]),
    "workload": ('workload = "sat"\n', ["workload = 'sat'", "maxcut"]),
    "order": ('order = "diagonal"\n', ["order = 'diagonal'", "natural, colour"]),
}


@pytest.mark.parametrize("name", sorted(RUN_FILES))
def test_run_bad_run_files(name, tmp_path, capsys):
    text, fragments = RUN_FILES[name]
    path = tmp_path / f"{name}.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    out = tmp_path / "r.json"
    refused(["run", "--config", str(path), "--json", str(out), "--quiet"], capsys, path.name,
            *fragments)
    assert not out.exists()


RESULT_CONFIGS = {
    "config_string": (lambda r: {**r, "config": "x"}, ["config = 'x'", "must be a table"]),
    "run_config_list": (lambda r: {**r, "run_config": [1]}, ["run_config"]),
    "list": (lambda r: [r], ["run_config"]),
    "graph_number": (lambda r: {**r, "run_config": {**r["run_config"], "graph": 3,
                                                   "graph_sha256": "0" * 64}},
                     ["graph = 3", "must be a string"]),
}


@pytest.mark.parametrize("name", sorted(RESULT_CONFIGS))
def test_run_bad_result_json_as_run_file(name, tmp_path, tmp_path_factory, capsys):
    result, _ = a_result(tmp_path_factory)
    change, fragments = RESULT_CONFIGS[name]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(change(result)))
    refused(["run", "--config", str(path), "--quiet"], capsys, path.name, *fragments)


TABLES = {
    "missing": (None, ["cannot read"]),
    "empty": ("", ["0 entries", "256 to 4096"]),
    "binary": (BINARY, ["not text", "0x80"]),
    "huge": ("1\n" * 200_000, ["400000 bytes", "4096 entries"]),
    "too_long": ("1\n" * 5000, ["5000 entries", "256 to 4096"]),
    "malformed": ("1\n" * 300 + "x\n", ["entry 301 = 'x'"]),
    "truncated": ("1\n" * 100, ["100 entries", "256 to 4096"]),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_run_bad_schedule_tables(name, tmp_path, capsys):
    text, fragments = TABLES[name]
    path = tmp_path / f"{name}.txt"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    refused(["run", "--barrier", f"table:{path}", "--steps", "10", "--quiet"], capsys,
            "--barrier", *fragments)


RUN_VALUES = [
    (["--barrier", "constant:0.0001"], ["--barrier", "0.0001 rounds to 0", "0.00390625"]),
    (["--barrier", "linear:0.001,4"], ["0.001 rounds to 0", "2**-8"]),
    (["--gain", "exp:0.001,4"], ["--gain", "0.001 rounds to 0", "0.015625"]),
    (["--barrier", "constant:nan"], ["finite"]),
    (["--barrier", "constant:-1"], [">= 0"]),
    (["--barrier", ""], ["kind must be one of"]),
    (["--set", "barrier_frac_bits=99"], ["barrier_frac_bits = 99", "[2, 12]"]),
    (["--seed", "-1"], ["seed = -1", ">= 0"]),
    (["--trace-every", "-3"], ["--trace-every = -3", ">= 1"]),
    (["--tabulate", "100000"], ["100000", "4096"]),
]


@pytest.mark.parametrize("argv,fragments", RUN_VALUES)
def test_run_bad_values(argv, fragments, tmp_path, capsys):
    refused(["run", "--steps", "10", "--json", str(tmp_path / "r.json"), "--quiet"] + argv,
            capsys, *fragments)
    assert files(tmp_path) == []


def test_barrier_zero_is_still_accepted(tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", "--cells", "8", "--steps", "10", "--barrier", "constant:0", "--json",
                 str(out), "--quiet"]) == 0


# -- crosscheck ----------------------------------------------------------------------------------
CROSSCHECK = [
    (["--checkpoints", "0"], ["checkpoints = 0", ">= 1"]),
    (["--checkpoints", "-2"], ["checkpoints = -2", ">= 1"]),
    (["--steps", str(10**15)], [f"steps = {10**15}", "step counter"]),
    (["--cells", "100000000"], ["cells = 100000000", str(MAX_CELLS)]),
    (["--graph", "/nonexistent/g.txt"], ["g.txt", "cannot read"]),
    (["--waves", "w.vcd"], ["waves", "needs --backend verilator"]),
]


@pytest.mark.parametrize("argv,fragments", CROSSCHECK)
def test_crosscheck_bad_input(argv, fragments, capsys):
    refused(["crosscheck", "--cells", "8", "--steps", "10", "--quiet"] + argv, capsys,
            *fragments)


# -- thermo --------------------------------------------------------------------------------------
THERMO = [
    (["--seeds", "1"], ["seeds = 1", "[2, 1000000]"]),
    (["--seeds", "10000000"], ["seeds = 10000000", "[2, 1000000]"]),
    (["--steps", str(10**15)], [f"steps = {10**15}", "step counter"]),
    (["--cells", "100000000"], ["cells = 100000000", str(MAX_CELLS)]),
]


@pytest.mark.parametrize("argv,fragments", THERMO)
def test_thermo_bad_input(argv, fragments, tmp_path, capsys):
    out = tmp_path / "t.json"
    refused(["thermo", "--cells", "4", "--steps", "10", "--json", str(out), "--quiet"] + argv,
            capsys, *fragments)
    assert not out.exists()


def test_thermo_writes_its_json_atomically(tmp_path):
    out = tmp_path / "deeper" / "t.json"
    assert main(["thermo", "--cells", "3", "--steps", "20", "--seeds", "20", "--json", str(out),
                 "--quiet"]) in (0, 1)
    assert "passed" in json.loads(out.read_text())
    assert files(tmp_path) == ["deeper", "t.json"]


# -- bound and report: result JSONs and traces read back -----------------------------------------
def damaged_results():
    """name -> (a change of the result dict, or bytes for the whole file, fragments)."""
    def counters(r, value):
        return {**r, "counters": {**r["counters"], "evaluations": value}}

    return {
        "missing": (None, ["cannot read"]),
        "empty": (b"", ["not valid JSON"]),
        "binary": (BINARY, ["not UTF-8"]),
        "truncated": (lambda r: json.dumps(r)[:200].encode(), ["not valid JSON"]),
        "list": (lambda r: [r], ["the JSON is a list", "must be an object"]),
        "config_string": (lambda r: {**r, "config": "x"}, ["config = 'x'", "must be a table"]),
        "spec_broken": (lambda r: {**r, "config": {**r["config"], "spec": {"cells": "many"}}},
                        ["config.spec", "not a valid spec"]),
        "run_config_list": (lambda r: {**r, "run_config": [1, 2]}, ["run_config = [1, 2]"]),
        "string_counter": (lambda r: counters(r, "12"), ["counters.evaluations = '12'",
                                                         "must be an integer"]),
        "no_counter": (lambda r: {**r, "counters": {}}, ["counters.evaluations"]),
        "energy_text": (lambda r: {**r, "energy": {**r["energy"], "heat_abs_u": "hot"}},
                        ["energy.heat_abs_u = 'hot'", "must be a number"]),
        "steps_negative": (lambda r: {**r, "steps": -5}, ["steps = -5", ">= 1"]),
    }


def write_damaged(tmp_path, name, result, trace_bytes):
    change, fragments = damaged_results()[name]
    path = tmp_path / f"{name}.json"
    (tmp_path / "r.trace.npz").write_bytes(trace_bytes)
    if isinstance(change, bytes):
        path.write_bytes(change)
    elif change is not None:
        data = change(result)
        path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path, fragments


@pytest.mark.parametrize("name", sorted(damaged_results()))
def test_bound_measured_bad_results(name, tmp_path, tmp_path_factory, capsys):
    path, fragments = write_damaged(tmp_path, name, *a_result(tmp_path_factory))
    refused(["bound", "--params", "1e15", "--ops", "1e28", "--bits", "16", "--measured",
             str(path)], capsys, "--measured", path.name, *fragments)


@pytest.mark.parametrize("name", sorted(damaged_results()))
def test_report_bad_results(name, tmp_path, tmp_path_factory, capsys):
    path, fragments = write_damaged(tmp_path, name, *a_result(tmp_path_factory))
    before = files(tmp_path)
    refused(["report", str(path)], capsys, path.name, *fragments)
    assert files(tmp_path) == before                     # no partial report


def damaged_traces(trace_bytes):
    import io  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    with np.load(io.BytesIO(trace_bytes)) as data:
        arrays = {key: data[key] for key in data.files}

    def saved(**changes):
        buffer = io.BytesIO()
        np.savez(buffer, **{k: v for k, v in {**arrays, **changes}.items() if v is not None})
        return buffer.getvalue()

    return {
        "empty": (b"", ["damaged"]),
        "truncated": (trace_bytes[:len(trace_bytes) // 2], ["damaged"]),
        "binary": (BINARY, ["damaged"]),
        "no_counters": (saved(counters=None), ["no array 'counters'"]),
        "short_loss": (saved(loss=arrays["loss"][:1]), ["loss has shape", "rows"]),
        "levels": (saved(tilt_levels=arrays["tilt_levels"][:3]), ["tilt_levels"]),
        "pickled": (saved(step=np.array([object()] * len(arrays["step"]))), ["damaged"]),
        "npy": (npy(arrays["step"]), ["damaged", "not an .npz"]),
    }


def npy(array):
    import io  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["empty", "truncated", "binary", "no_counters", "short_loss",
                                  "levels", "pickled", "npy"])
def test_report_bad_traces(name, tmp_path, tmp_path_factory, capsys):
    result, trace_bytes = a_result(tmp_path_factory)
    data, fragments = damaged_traces(trace_bytes)[name]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    (tmp_path / "r.trace.npz").write_bytes(data)
    refused(["report", str(path)], capsys, "r.trace.npz", *fragments)
    assert files(tmp_path) == ["r.json", "r.trace.npz"]


def test_report_out_that_is_a_folder_or_under_a_file(tmp_path, tmp_path_factory, capsys):
    result, trace_bytes = a_result(tmp_path_factory)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    (tmp_path / "r.trace.npz").write_bytes(trace_bytes)
    (tmp_path / "folder").mkdir()
    before = files(tmp_path)
    refused(["report", str(path), "--out", str(tmp_path / "folder")], capsys, "--out",
            "is a folder")
    refused(["report", str(path), "--out", str(tmp_path / "r.json" / "x.html")], capsys,
            "--out", "is a file")
    assert files(tmp_path) == before
    # the report's PNG folder name taken by a file
    (tmp_path / "x").write_text("")
    refused(["report", str(path), "--out", str(tmp_path / "x.html")], capsys,
            "PNG folder", "is a file")
    assert not (tmp_path / "x.html").exists()


# -- sweep ---------------------------------------------------------------------------------------
SWEEP_BASE = """[base]
cells = 6
steps = 40
trace_every = 10
"""

SWEEPS = {
    "missing": (None, ["not found"]),
    "binary": (BINARY, ["not UTF-8"]),
    "truncated": (SWEEP_BASE + "[grid]\nseed = [1,\n", ["not valid TOML"]),
    "target_text": (SWEEP_BASE + '[target]\ncut_fraction = "all"\n',
                    ["target.cut_fraction = 'all'", "(0, 1]"]),
    "target_range": (SWEEP_BASE + "[target]\ncut_fraction = 2.0\n",
                     ["target.cut_fraction = 2.0", "(0, 1]"]),
    "target_error": (SWEEP_BASE + "[target]\nerror = {lsq = -1}\n",
                     ["target.error.lsq = -1", ">= 0"]),
    "lanes": (SWEEP_BASE + "[grid]\nlanes = [2, 0]\n", ["lanes=0", "lanes = 0"]),
    "barrier": (SWEEP_BASE + '[grid]\nbarrier = ["constant:2", "constant:x"]\n',
                ["constant:x", "numbers"]),
    "seed": (SWEEP_BASE + "[grid]\nseed = [1, -4]\n", ["seed=-4", "seed = -4"]),
    "huge": (SWEEP_BASE.replace("cells = 6", "cells = 100000000"),
             ["cells = 100000000", str(MAX_CELLS)]),
}


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_sweep_bad_files_are_refused_before_any_worker(name, tmp_path, capsys, monkeypatch):
    import limemu.sweep  # noqa: PLC0415

    def no_workers(*args, **kwargs):
        raise AssertionError("workers started")

    monkeypatch.setattr(limemu.sweep, "_execute", no_workers)
    text, fragments = SWEEPS[name]
    path = tmp_path / f"{name}.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    out = tmp_path / "out"
    refused(["sweep", str(path), "--out", str(out), "--threads", "--quiet"], capsys,
            *fragments)
    assert not out.exists()


def test_sweep_out_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(SWEEP_BASE)
    (tmp_path / "out").write_text("")
    refused(["sweep", str(path), "--out", str(tmp_path / "out"), "--threads", "--quiet"],
            capsys, "--out", "is a file")


def test_sweep_reruns_a_tampered_run_file(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(SWEEP_BASE + "[grid]\nseed = [1, 2]\n")
    out = tmp_path / "out"
    args = ["sweep", str(path), "--out", str(out), "--threads", "--format", "csv", "--quiet"]
    assert main(args) == 0
    runs = sorted((out / "runs").glob("*.json"))
    assert len(runs) == 2
    good = runs[1].read_text()
    runs[0].write_text("{}")
    runs[1].write_text(good.replace('"hash"', '"hush"'))     # a foreign file
    capsys.readouterr()
    assert main(args) == 0
    assert "(0 from before, 2 now, 0 failed)" in capsys.readouterr().out
    assert all("run_config" in json.loads(p.read_text()) for p in runs)


def test_api_names_an_unknown_core_before_building_anything():
    import limemu  # noqa: PLC0415
    from limemu.model import ConfigError  # noqa: PLC0415

    problem = limemu.maxcut(cells=8)
    spec = limemu.make_spec(problem, 10, lanes=2)
    with pytest.raises(ConfigError, match="core = 'tiny': must be one of pipelined, compact"):
        limemu.run(problem, spec, 10, backend="verilator", core="tiny")
    with pytest.raises(ConfigError, match=f"steps = {MAX_STEPS + 1}: must be in"):
        limemu.make_spec(problem, MAX_STEPS + 1)


def test_a_real_ctrl_c_on_run_exits_130_with_one_line(tmp_path):
    import signal  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    out = tmp_path / "r.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "limemu.cli", "run", "--cells", "2000", "--steps", "100000000",
         "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in process.stdout:                  # the run has started: its header is out
            if line.startswith("  gain:"):
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "limemu run: interrupted (Ctrl-C)"
    assert not out.exists() and files(tmp_path) == []


@pytest.mark.parametrize("address,fragment", [("tcp://127.0.0.1:9", "cannot connect within 1s"),
                                              ("nonsense://", "unknown address scheme")])
def test_sweep_unreachable_scheduler(address, fragment, tmp_path, capsys, monkeypatch):
    import limemu.sweep  # noqa: PLC0415

    monkeypatch.setattr(limemu.sweep, "SCHEDULER_TIMEOUT", "1s")
    path = tmp_path / "s.toml"
    path.write_text(SWEEP_BASE)
    refused(["sweep", str(path), "--out", str(tmp_path / "out"), "--scheduler", address,
             "--quiet"], capsys, f"--scheduler = {address!r}", fragment)


# -- run --backend board: a port that is silent, garbled or another board -------------------------
class FakeBoard:
    """A pseudo-terminal standing in for a board: each request is answered with
    `answer(request) -> bytes` (b"": silence) by a thread."""

    def __init__(self, answer):
        import os  # noqa: PLC0415
        import threading  # noqa: PLC0415
        import tty  # noqa: PLC0415
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self.slave, self.answer, self.running = slave, answer, True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import os  # noqa: PLC0415
        import select  # noqa: PLC0415
        while self.running:
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    request = os.read(self.master, 4096)
                except OSError:
                    return
                reply = self.answer(request)
                if reply:
                    os.write(self.master, reply)

    def close(self):
        import os  # noqa: PLC0415
        self.running = False
        self.thread.join()
        os.close(self.master)
        os.close(self.slave)


def info_answer(**changes):
    """An INFO answer of a small build, with some fields changed."""
    from limemu.hdl import protocol  # noqa: PLC0415
    from limemu.hdl.regmap import Geometry  # noqa: PLC0415
    from limemu.model.spec import Spec  # noqa: PLC0415
    words = protocol.info_words(Spec(cells=8), Geometry(lanes=1, groups=8, q_storage="dense",
                                                        q_capacity=64),
                                clock_hz=12_000_000, baud=1_000_000)
    for name, value in changes.items():
        words[protocol.INFO_FIELDS.index(name)] = value

    def answer(request):
        payload = b"".join(w.to_bytes(4, "little") for w in words)
        return protocol.encode_response("OK", request[2], payload=payload)
    return answer


BOARDS = {
    "silent": (lambda request: b"", ["no answer (timeout)", "limemu program"]),
    "garbage": (lambda request: bytes(range(0x60, 0xA0)), ["no answer", "baud"]),
    "old_protocol": (info_answer(protocol_version=1), ["protocol version 1", "rebuild"]),
    "foreign": (info_answer(protocol_magic=0x12345678), ["not a limemu board", "0x12345678"]),
    "unknown_core": (info_answer(core=99), ["core 99", "does not know"]),
    "unknown_storage": (info_answer(q_storage=99), ["Q storage 99", "does not know"]),
}


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_that_does_not_answer_as_a_limemu_board(name, capsys):
    answer, fragments = BOARDS[name]
    board = FakeBoard(answer)
    try:
        refused(["run", "--backend", "board", "--port", board.port, "--cells", "8", "--steps",
                 "10", "--link-timeout", "0.2", "--retries", "1", "--quiet"], capsys,
                board.port, *fragments, code=4, prefix="limemu: link error: ")
    finally:
        board.close()
