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


def refused(argv, capsys, *fragments, code=2):
    """Run the command line in-process; check the exit code and the one-line error."""
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("limemu: error: "), err
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

