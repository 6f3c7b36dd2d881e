"""LimSampler: dimod's own sampler tests, energies, labels, the rounding report, seeds, Dask."""

import math
import unittest

import dimod
import dimod.testing
import numpy as np
import pytest
from limemu import ConfigError, LimSampler
from limemu.sampler import DEFAULTS


@dimod.testing.load_sampler_bqm_tests(LimSampler)
class TestDimodSamplerSuite(unittest.TestCase):
    """dimod's sampler tests (empty, one variable, paths; spin and binary; every BQM class)."""

    def test_api(self):
        dimod.testing.assert_sampler_api(LimSampler())


def random_bqm(rng, n, vartype, labels=None, density=0.5, decimals=None):
    labels = labels or list(range(n))

    def draw():
        x = float(rng.normal())
        return x if decimals is None else round(x, decimals)

    h = {v: draw() for v in labels}
    J = {(labels[i], labels[j]): draw() for i in range(n) for j in range(i + 1, n)
         if rng.random() < density}
    return dimod.BQM(h, J, draw(), vartype)


@pytest.mark.parametrize("vartype", ["SPIN", "BINARY"])
@pytest.mark.parametrize("n", [1, 5, 12])
def test_energies_are_dimods_energies_of_the_samples(rng, n, vartype):
    bqm = random_bqm(rng, n, vartype)
    sampleset = LimSampler().sample(bqm, num_reads=3, num_sweeps=200, seed=4)
    assert len(sampleset) == 3 and sampleset.vartype is bqm.vartype
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    values = {-1, 1} if vartype == "SPIN" else {0, 1}
    assert set(np.unique(sampleset.record.sample)) <= values


def test_any_hashable_labels():
    labels = ["a", (1, 2), frozenset({3}), 7, ("x", ("y",))]
    J = {(labels[k], labels[k + 1]): 1.0 for k in range(4)}
    sampleset = LimSampler().sample_ising({labels[0]: 0.5}, J, num_reads=2, seed=1)
    assert set(sampleset.variables) == set(labels)
    for sample, energy in sampleset.data(["sample", "energy"]):
        assert energy == pytest.approx(dimod.ising_energy(sample, {labels[0]: 0.5}, J))


def test_a_qubo_with_real_biases_round_trips_with_the_scale_reported():
    Q = {("a", "a"): 0.31, ("b", "b"): -0.77, ("c", "c"): 0.12, ("a", "b"): 1.13,
         ("b", "c"): -0.47, ("a", "c"): math.pi / 10}
    sampleset = LimSampler().sample_qubo(Q, num_reads=6, num_sweeps=500, seed=2)
    info = sampleset.info
    spin = dimod.BQM.from_qubo(Q).spin
    biases = list(spin.linear.values()) + list(spin.quadratic.values())
    assert not info["exact"]
    assert info["scale"] == pytest.approx(DEFAULTS["levels"] / max(map(abs, biases)))
    errors = [abs(x - round(info["scale"] * x) / info["scale"]) for x in biases]
    assert info["max_rounding_error"] == pytest.approx(max(errors))
    assert info["energy_error_bound"] == pytest.approx(sum(errors))
    assert 0 < info["max_rounding_error"] <= 0.5 / info["scale"]
    assert info["order_may_change"] is False and info["order_check"].startswith("all 8 states")
    for sample, energy in sampleset.data(["sample", "energy"]):
        assert energy == pytest.approx(dimod.qubo_energy(sample, Q))
    exact = dimod.ExactSolver().sample_qubo(Q).first
    assert sampleset.first.sample == exact.sample


def test_integer_and_decimal_biases_run_exactly():
    ising = LimSampler().sample_ising({0: 3, 1: -2}, {(0, 1): 105}, seed=1)
    assert ising.info["scale"] == 1.0 and ising.info["exact"]
    decimal = LimSampler().sample_ising({0: 0.1, 1: -0.3}, {(0, 1): 0.7}, seed=1)
    assert decimal.info["scale"] == 10.0 and decimal.info["exact"]
    assert decimal.info["max_rounding_error"] == 0.0


def test_the_default_beta_range_follows_the_acceptance_rule():
    bqm = dimod.BQM.from_ising({0: 1.0, 1: 0.0}, {(0, 1): -2.0})
    sampleset = LimSampler().sample(bqm, seed=1, num_sweeps=300)
    hot, cold = sampleset.info["beta_range"]
    # the largest flip changes E by 2 (|h| + |J|) = 6, the smallest nonzero by 2 |h| = 2
    assert hot == pytest.approx(math.log(2) / 6) and cold == pytest.approx(math.log(100) / 2)
    realised = sampleset.info["beta_range_realised"]
    assert realised == pytest.approx([hot, cold], rel=2e-2)


def test_a_given_beta_range_and_linear_schedule():
    bqm = dimod.BQM.from_ising({0: 1.0}, {(0, 1): -1.0})
    sampleset = LimSampler().sample(bqm, beta_range=(0.5, 4.0), beta_schedule_type="linear",
                                    seed=1, num_sweeps=400)
    assert sampleset.info["beta_range"] == [0.5, 4.0]
    assert sampleset.info["gain"].startswith("linear")
    assert sampleset.info["beta_range_realised"] == pytest.approx([0.5, 4.0], rel=1e-2)


def test_reads_are_independent_and_reproducible(rng):
    bqm = random_bqm(rng, 10, "SPIN")
    a = LimSampler().sample(bqm, num_reads=6, num_sweeps=50, seed=9)
    b = LimSampler().sample(bqm, num_reads=6, num_sweeps=50, seed=9)
    c = LimSampler().sample(bqm, num_reads=6, num_sweeps=50, seed=10)
    assert np.array_equal(a.record.sample, b.record.sample)
    seeds = [read["seed"] for read in a.info["reads"]]
    assert len(set(seeds)) == 6 and seeds != [read["seed"] for read in c.info["reads"]]
    counters = [read["counters"] for read in a.info["reads"]]
    assert all(c["steps"] == 50 and c["evaluations"] == 500 for c in counters)
    assert len({c["heat_abs"] for c in counters}) > 1          # different trajectories
    assert all(read["first_law"] == "exact" for read in a.info["reads"])
    assert all("heat_net_u" in read["energy"] for read in a.info["reads"])


def test_spin_and_binary_forms_of_one_model_give_the_same_states(rng):
    spin = random_bqm(rng, 8, "SPIN")
    binary = spin.binary
    a = LimSampler().sample(spin, num_reads=3, num_sweeps=100, seed=5)
    b = LimSampler().sample(binary, num_reads=3, num_sweeps=100, seed=5)
    assert np.array_equal(a.record.sample, 2 * b.record.sample - 1)
    assert np.allclose(a.record.energy, b.record.energy)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_it_finds_the_ground_state_of_a_small_frustrated_model(rng, seed):
    """Biases of one decimal run exactly (scale 10), so the ground state is the model's."""
    bqm = random_bqm(rng, 12, "SPIN", density=0.4, decimals=1)
    sampleset = LimSampler().sample(bqm, num_reads=8, num_sweeps=1000, seed=seed)
    assert sampleset.info["exact"]
    ground = dimod.ExactSolver().sample(bqm).first.energy
    assert sampleset.first.energy == pytest.approx(ground)


def test_reads_on_a_dask_scheduler_equal_reads_in_process(rng):
    from dask.distributed import Client, LocalCluster
    bqm = random_bqm(rng, 6, "BINARY")
    here = LimSampler().sample(bqm, num_reads=4, num_sweeps=80, seed=3)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster, Client(cluster):
        there = LimSampler().sample(bqm, num_reads=4, num_sweeps=80, seed=3,
                                    scheduler=cluster.scheduler_address)
    assert np.array_equal(here.record.sample, there.record.sample)
    assert [r["counters"] for r in here.info["reads"]] == [r["counters"] for r in
                                                           there.info["reads"]]


def test_unknown_parameters_warn_as_dimod_asks():
    with pytest.warns(dimod.exceptions.SamplerUnknownArgWarning):
        LimSampler().sample_ising({0: 1.0}, {}, num_sweep=10)


@pytest.mark.parametrize("parameters,fragment", [
    ({"num_reads": 0}, "num_reads = 0"),
    ({"num_sweeps": 2.5}, "num_sweeps = 2.5"),
    ({"backend": "gpu"}, "backend = 'gpu'"),
    ({"beta_range": (1.0,)}, "beta_range"),
    ({"beta_range": (-1.0, 2.0)}, "beta_range"),
    ({"beta_schedule_type": "cosine"}, "beta_schedule_type"),
    ({"levels": 0}, "levels = 0"),
    ({"barrier": "constant:x"}, "barrier"),
    ({"formats": {"gain_frac_bits": 40}}, "gain_frac_bits"),
    ({"lanes": 5}, "lanes = 5"),
])
def test_bad_parameters_give_a_clear_error(parameters, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        LimSampler().sample_ising({0: 1.0, 1: 0.5}, {(0, 1): 1.0}, **parameters)


def test_constructor_defaults_and_unknown_ones():
    sampler = LimSampler(num_sweeps=20, seed=1)
    assert sampler.sample_ising({0: 1.0}, {}).info["num_sweeps"] == 20
    assert sampler.properties["defaults"]["num_sweeps"] == 20
    with pytest.raises(ConfigError, match="num_sweep"):
        LimSampler(num_sweep=20)


def test_an_unbiased_model_samples_both_states():
    bqm = dimod.BQM({0: 0.0, 1: 0.0}, {}, 0.0, "SPIN")
    sampleset = LimSampler().sample(bqm, num_reads=16, num_sweeps=20, seed=2)
    assert set(np.unique(sampleset.record.sample)) == {-1, 1}
