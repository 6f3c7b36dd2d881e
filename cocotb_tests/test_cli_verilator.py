"""`limemu run --backend verilator` and `limemu crosscheck --backend verilator` end to end."""

import json

from limemu.cli import main

OPTIONS = ["--workload", "maxcut", "--cells", "24", "--lanes", "4", "--steps", "400",
           "--seed", "5", "--quiet"]


def test_run_json_of_verilator_equals_the_models(tmp_path):
    for backend in ("model", "verilator"):
        assert main(["run", *OPTIONS, "--backend", backend,
                     "--json", str(tmp_path / f"{backend}.json")]) == 0
    model = json.loads((tmp_path / "model.json").read_text())
    rtl = json.loads((tmp_path / "verilator.json").read_text())
    assert sorted(model) == sorted(rtl)
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
