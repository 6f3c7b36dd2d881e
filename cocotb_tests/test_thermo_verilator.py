"""`limemu thermo` on the RTL: the runs on the Verilator backend (one simulator for all seeds)
and on the virtual board give the model's figures: same seeds, same counters, same states."""

import json

import pytest
from limemu.cli import main

OPTIONS = ["--workload", "maxcut", "--gain", "exp:0.1,4", "--quiet"]
# the model alone knows the coupling error (0 here: colour order)
EQUAL_KEYS_EXCLUDED = ("backend", "exact_seconds", "mean_coupling_error_u")


def figures(tmp_path, backend, argv):
    out = tmp_path / f"{backend}.json"
    code = main(["thermo", *OPTIONS, *argv, "--backend", backend, "--json", str(out)])
    return code, json.loads(out.read_text())


@pytest.mark.parametrize("backend,argv", [
    ("verilator", ["--cells", "8", "--steps", "200", "--lanes", "4", "--seeds", "24"]),
    ("vboard", ["--cells", "6", "--steps", "60", "--lanes", "2", "--seeds", "3"]),
])
def test_thermo_on_the_rtl_gives_the_figures_of_the_model(tmp_path, backend, argv):
    model_code, model = figures(tmp_path, "model", argv)
    code, rtl = figures(tmp_path, backend, argv)
    assert (code, model_code) == (0, 0)
    assert rtl["backend"] == backend
    differ = {key: (model[key], rtl[key]) for key in model
              if key not in EQUAL_KEYS_EXCLUDED and model[key] != rtl[key]}
    assert not differ
    assert model["runs"] == int(argv[-1]) and model["mean_coupling_error_u"] == 0
