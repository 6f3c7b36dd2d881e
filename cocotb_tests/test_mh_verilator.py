"""Metropolis-Hastings with the array core in the loop: the chain on the RTL (Verilator) and on
the virtual board is the golden model's, step for step: every decision, every weight, every
counter; and the first law holds on the core's own heat counter."""

import functools
import json

import numpy as np
import pytest
from limemu.cli import main
from limemu.hdl.regmap import STATUS
from limemu.host import control_write
from limemu.mh_hardware import HardwareArray
from limemu.model.mh import MHTrainer
from limemu.model.schedules import Schedule
from limemu.model.spec import Spec


def toy_spec(lanes, core):
    """12 cells x 3 bits, a rising proposal barrier (barrier work), an annealed gain, blocked
    moves at the ladder's ends (the compact core's schedules are tables)."""
    barrier = Schedule.linear(2 * 256, 3 << 16, lo=2 * 256, hi=5 * 256)
    gain = Schedule.exponential(16, 1 << 9, lo=16, hi=1 << 10)
    if core == "compact":
        barrier = barrier.tabulated("barrier", 14, 256, 1)
        gain = gain.tabulated("gain", 16, 256, 1)
    return Spec(cells=12, weight_bits=3, lanes=lanes, seed=5, tilt="external",
                barrier=barrier, gain=gain)


def toy_loss(W):
    target = np.arange(len(W)) % 7 - 3
    return float(np.sum((W - target) ** 2) * 0.37 + np.sin(W.sum())), 5


@pytest.mark.parametrize("core,lanes", [("pipelined", 1), ("pipelined", 3), ("compact", 1)])
def test_mh_chain_on_the_rtl_is_the_models(core, lanes):
    spec = toy_spec(lanes, core)
    model = MHTrainer(spec, toy_loss, np.full(12, 3), burn_in=50, trace=True)
    expected = model.run(150)
    rtl = MHTrainer(spec, toy_loss, np.full(12, 3), burn_in=50, trace=True,
                    array=functools.partial(HardwareArray, backend="verilator", core=core))
    try:
        got = rtl.run(150)                      # checks the first law on the core's counters
        assert rtl.trace == model.trace          # every decision, with both energies
        assert np.array_equal(got.final, expected.final)
        assert np.array_equal(rtl.array.state()["weights"], expected.final)
        assert got.counters.exact == expected.counters.exact
        c = got.counters.exact
        assert c["blocked_moves"] > 0 and c["barrier_work"] > 0
        assert 0 < c["acceptances"] < c["proposals"] and c["reverted_moves"] > 0
        # a second accept has no proposal to decide: refused, nothing changes
        array = rtl.array
        array.device.run(control_write(array.rmap, "accept"))
        status = array.device.read([array.rmap["status"].base])[0]
        assert status >> STATUS["error_config"] & 1
        assert array.counters.exact == c
    finally:
        rtl.array.close()


def train(tmp_path, backend, extra=()):
    out = tmp_path / f"{backend}.json"
    code = main(["train", "--steps", "120", "--nonideality", "strong", "--quiet",
                 "--backend", backend, *extra, "--json", str(out)])
    assert code == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("backend", ["verilator", "vboard"])
def test_train_on_the_array_gives_the_models_result(tmp_path, backend):
    """`limemu train --backend`: the network's chain on the core equals the model's."""
    model = train(tmp_path, "model", ["--remeasure"])
    rtl = train(tmp_path, backend, ["--remeasure"])
    assert rtl["backend"] == backend
    for key in ("weights", "counters", "metrics", "mh", "history", "posterior_mean"):
        assert rtl[key] == model[key], key
    assert rtl["mh"]["remeasure_work"] != 0
    assert rtl["throughput"]["link_bytes_per_step"] > 0
    assert rtl["throughput"]["core_cycles_per_step"] > 1        # a proposal and a decision
    assert rtl["identities"]["first_law"] == f"exact (heat_net from the {backend}'s counter)"
    assert main(["report", str(tmp_path / f"{backend}.json")]) == 0    # the energy report


def test_crosscheck_mh_on_the_compact_core(capsys):
    """`limemu crosscheck --workload mh`: the network's chain on the compact core (one lane,
    the schedules as tables) equals the model's at every step."""
    assert main(["crosscheck", "--workload", "mh", "--backend", "verilator", "--core",
                 "compact", "--steps", "40", "--quiet"]) == 0
    assert "crosscheck: PASS: MH chain of 40 steps identical" in capsys.readouterr().out
