"""LimSampler on the RTL under Verilator: the same samples, counters and energies as the model."""

import math

import dimod
import numpy as np
from limemu import LimSampler

# real biases on a frustrated ring with a chord, times sqrt(2): rounded, not exact
R = math.sqrt(2)
H = {"a": 0.4 * R, "b": -0.9 * R, "c": 0.25 * R, "d": 0.0, "e": -0.35 * R}
J = {("a", "b"): 1.3 * R, ("b", "c"): -0.8 * R, ("c", "d"): 0.55 * R, ("d", "e"): 1.1 * R,
     ("e", "a"): -0.6 * R, ("a", "c"): 0.45 * R}


def test_verilator_reads_equal_the_models_for_the_same_seed():
    bqm = dimod.BQM(H, J, 0.5, "SPIN")
    options = dict(num_reads=3, num_sweeps=150, seed=11, progress=False)
    model = LimSampler().sample(bqm, backend="model", **options)
    rtl = LimSampler().sample(bqm, backend="verilator", **options)
    assert not rtl.info["exact"] and rtl.info["scale"] == model.info["scale"]
    assert np.array_equal(rtl.record.sample, model.record.sample)
    assert np.array_equal(rtl.record.energy, model.record.energy)
    for a, b in zip(model.info["reads"], rtl.info["reads"]):
        assert a["seed"] == b["seed"] and a["counters"] == b["counters"]
        assert b["first_law"].startswith("exact")
    dimod.testing.assert_sampleset_energies(rtl, bqm)
