"""`limemu run --backend verilator` and `limemu crosscheck --backend verilator` end to end."""

import json

from limemu.cli import main
from limemu.synth.boards import ULX3S

OPTIONS = ["--workload", "maxcut", "--cells", "24", "--lanes", "4", "--steps", "400",
           "--seed", "5", "--quiet"]


def test_run_json_of_verilator_equals_the_models(tmp_path):
    for backend in ("model", "verilator"):
        assert main(["run", *OPTIONS, "--backend", backend,
                     "--json", str(tmp_path / f"{backend}.json")]) == 0
    model = json.loads((tmp_path / "model.json").read_text())
    rtl = json.loads((tmp_path / "verilator.json").read_text())
    assert sorted(rtl) == sorted(list(model) + ["cycles"])      # the RTL's own: its cycles
    assert isinstance(rtl["cycles"], int) and rtl["cycles"] > 400
    assert rtl["weights"] == model["weights"]
    assert rtl["counters"] == model["counters"]
    assert rtl["identities"]["first_law"].startswith("exact")


def test_crosscheck_passes_and_writes_waves(tmp_path, capsys):
    waves = tmp_path / "run.vcd"
    assert main(["crosscheck", *OPTIONS, "--backend", "verilator", "--steps", "40",
                 "--checkpoints", "2", "--waves", str(waves)]) == 0
    assert "PASS" in capsys.readouterr().out
    head = waves.read_text()[:2000]
    assert "$timescale" in head and "core" in head


def test_waves_need_the_verilator_backend(capsys):
    assert main(["crosscheck", *OPTIONS, "--backend", "reference", "--waves", "x.vcd"]) == 2
    assert "waves" in capsys.readouterr().err


def test_run_on_the_ulx3s_builds_core_reports_cycles_and_board_time(tmp_path, capsys):
    """--board ulx3s: the core and array of `limemu build --board ulx3s` (its formats, lanes
    and capacities), the same results as the model with those formats, the core's own cycle
    count and the time at the board's clock."""
    options = ["--workload", "maxcut", "--cells", "96", "--steps", "60", "--seed", "3",
               "--order", "colour", "--barrier", "constant:1", "--gain", "exp:0.1,4",
               "--quiet"]
    formats = [f"--set={key}={ULX3S.array[key]}" for key in
               ("barrier_bits", "barrier_frac_bits", "gain_bits", "gain_frac_bits",
                "field_bits", "q_bits", "mantissa_bits")]
    assert main(["run", *options, *formats, "--lanes", str(ULX3S.array["lanes"]),
                 "--backend", "model",
                 "--json", str(tmp_path / "model.json")]) == 0
    assert main(["run", *options, "--backend", "verilator", "--board", "ulx3s",
                 "--json", str(tmp_path / "board.json")]) == 0
    out = capsys.readouterr().out
    model = json.loads((tmp_path / "model.json").read_text())
    board = json.loads((tmp_path / "board.json").read_text())
    assert board["weights"] == model["weights"] and board["counters"] == model["counters"]
    assert board["config"]["spec"] == model["config"]["spec"]
    assert isinstance(board["cycles"], int) and board["clock_hz"] == ULX3S.clock_hz
    assert board["board_seconds"] == board["cycles"] / ULX3S.clock_hz
    evaluations = board["counters"]["evaluations"]
    assert 60 * 96 == evaluations and board["cycles"] >= 60 * 3      # >= 3 groups a step
    assert "cell-evaluations per cycle" in out
    assert f"on the ulx3s board at {ULX3S.clock_hz / 1e6:g} MHz" in out


def test_board_fixes_the_formats(capsys):
    assert main(["run", "--workload", "maxcut", "--cells", "24", "--backend", "verilator",
                 "--board", "ulx3s", "--set", "field_bits=12"]) == 2
    assert "the ulx3s build fixes the formats (field_bits=8)" in capsys.readouterr().err
    assert main(["run", "--workload", "maxcut", "--cells", "24", "--lanes", "4",
                 "--backend", "verilator", "--board", "ulx3s"]) == 2
    assert f"lanes = 4: the ulx3s build has {ULX3S.array['lanes']}" in capsys.readouterr().err
    assert main(["run", "--workload", "maxcut", "--cells", "24", "--board", "ulx3s"]) == 2
    assert "needs --backend verilator" in capsys.readouterr().err
