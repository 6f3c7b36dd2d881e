"""Chip-in-the-loop Metropolis-Hastings (python_model/mh.py): the fixed-point acceptance against
the exact rule min(1, 2**(-eta dL)), proposals from the lane generators, counters and the first
law, the non-ideal forward model, and training on the breast-cancer data.

Statistical tests use fixed seeds and significance 0.001 (Wilson-Hilferty quantile of the
chi-square), and each one also checks its power: the same counts must reject a wrong rule.
"""

import math

import numpy as np
import pytest
from limemu.model import Schedule, Spec
from limemu.model.crossing import ONE, decide_one, threshold, threshold_table
from limemu.model.errors import ConfigError, IdentityError
from limemu.model.mh import (
    LEVELS,
    ChipModel,
    MHTrainer,
    NetworkLayout,
    Nonideality,
    accept,
    acceptance_probability,
    energy_shift,
    loss_register,
    parse_nonideality,
    proposal_barrier_u,
    state_energy,
)
from limemu.model.rng import LaneGenerator, LaneStreams
from limemu.train import make_splits, run_training

SIGNIFICANCE = 1e-3
Z_999 = 3.090232306167813                  # normal quantile of 1 - SIGNIFICANCE


def chi_square_limit(dof):
    """Critical value of the chi-square at 1 - SIGNIFICANCE (Wilson-Hilferty)."""
    return dof * (1 - 2 / (9 * dof) + Z_999 * math.sqrt(2 / (9 * dof))) ** 3


def binned_chi_square(p, accepted, edges=(0.0, 0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 0.999)):
    """Chi-square of acceptance counts against per-trial probabilities p, pooled in bins of p
    (a sum of Bernoulli(p_i) has variance sum p_i (1 - p_i)). Returns (statistic, dof)."""
    p, accepted = np.asarray(p, float), np.asarray(accepted, bool)
    chi2, dof = 0.0, 0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (p >= lo) & (p < hi)
        var = float(np.sum(p[m] * (1 - p[m])))
        if var < 5:
            continue
        chi2 += (int(accepted[m].sum()) - float(p[m].sum())) ** 2 / var
        dof += 1
    return chi2, dof


def toy_spec(cells, bits=3, e0_u=2.0, eta=1.0, seed=11, lanes=1, **kw):
    return Spec(cells=cells, weight_bits=bits, lanes=lanes, seed=seed, tilt="external",
                barrier=Schedule.constant(round(e0_u * 256)),
                gain=Schedule.constant(round(eta * 64)), **kw)


# -- the fixed point ----------------------------------------------------------------------------
def test_state_energy_is_eta_times_loss_rounded_half_up_once():
    # defaults: gain 6, loss 8, barrier 8 fraction bits -> s = 6
    assert energy_shift(toy_spec(1), 8) == 6
    assert state_energy(64, 256, 6) == 256                 # 1 u/nat x 1 nat = 1 u = 256 LSBs
    assert state_energy(1, 32, 6) == 1                     # exactly half an LSB: rounds up
    assert state_energy(1, 31, 6) == 0
    assert state_energy(1, -32, 6) == 0                    # half up, towards +infinity
    assert state_energy(1, -33, 6) == -1
    assert state_energy(3, 5, -2) == 60                    # s <= 0: exact, no rounding
    assert loss_register(1.5, 8) == 384
    assert loss_register(1 / 512, 8) == 1                  # half a register LSB rounds up
    assert loss_register(-1 / 512, 8) == 0


@pytest.mark.parametrize("loss,fragment", [(float("nan"), "finite"), (float("inf"), "finite"),
                                           (2.0**40, "loss register")])
def test_bad_losses_are_refused(loss, fragment):
    with pytest.raises(ConfigError, match=fragment):
        loss_register(loss, 8)


def test_acceptance_probability_is_the_metropolis_rule_to_table_precision():
    table = threshold_table(8, 14)
    delta_e = np.arange(-5 * 256, 32 * 256)                # eta dL from -5 u to 32 u, every LSB
    p = acceptance_probability(delta_e, table)
    exact = np.minimum(1.0, np.exp2(-delta_e / 256))
    low = delta_e <= 20 * 256
    assert np.all(p[delta_e <= 0] == 1.0)
    assert np.max(np.abs(p[low] - exact[low]) / exact[low]) < 2**-10
    assert np.max(np.abs(p[~low] - exact[~low])) <= 2**-32


def test_accept_is_one_admissible_decision_of_the_crossing_unit():
    table = threshold_table(8, 14)
    rng = np.random.default_rng(5)
    u = rng.integers(0, ONE, 3000)
    delta_e = rng.integers(-2000, 6000, 3000)
    accepted, inadmissible = accept(u, delta_e, table, 8)
    assert not inadmissible.any()
    for x, d, a in zip(u[:300], delta_e[:300], accepted[:300]):
        outcome, inadm = decide_one(int(x), max(0, int(d)), 34 * 256, 8, 14)
        assert (outcome == "up") == a and not inadm and outcome != "down"
    assert np.array_equal(accepted, u < np.array([threshold(max(0, int(d)), 8, 14)
                                                  for d in delta_e]))


def test_acceptance_frequencies_match_the_rule_and_reject_wrong_rules():
    """Draws of a lane generator against fixed eta dL (exact in fixed point)."""
    table = threshold_table(8, 14)
    d_loss = np.array([-2, 0, 0.25, 0.5, 1, 1.5, 2, 3, 4, 6])   # eta = 1 u/loss unit
    n = 20_000
    u = LaneStreams(2024, 1).take(n * len(d_loss))[0].reshape(len(d_loss), n)
    delta_e = np.repeat((d_loss * 256).astype(np.int64)[:, None], n, axis=1)
    accepted, _ = accept(u.ravel(), delta_e.ravel(), table, 8)
    counts = accepted.reshape(len(d_loss), n).sum(axis=1)
    assert np.all(counts[d_loss <= 0] == n)                # downhill: always accepted

    def chi2(rule):
        p = rule(d_loss[d_loss > 0])
        k = counts[d_loss > 0]
        return float(np.sum((k - n * p) ** 2 / (n * p * (1 - p))))

    limit = chi_square_limit(int(np.sum(d_loss > 0)))
    assert chi2(lambda d: np.exp2(-d)) < limit
    # power: natural base instead of 2, Barker's rule, and half the gain are all rejected
    assert chi2(lambda d: np.exp(-d)) > limit
    assert chi2(lambda d: 1 / (1 + np.exp2(d))) > limit
    assert chi2(lambda d: np.exp2(-d / 2)) > limit


def test_trainer_acceptances_match_the_rule_on_a_toy_problem_with_known_losses():
    """3 cells x 3 bits, every state a known loss (multiples of 1/4: eta L is exact)."""
    rng = np.random.default_rng(3)
    table_l = rng.integers(0, 24, 512) / 4

    def loss_fn(W):
        return float(table_l[int(((W + 4) * [64, 8, 1]).sum())]), 0

    spec = toy_spec(3, e0_u=2.0, eta=1.0)
    trainer = MHTrainer(spec, loss_fn, np.zeros(3), loss_frac_bits=2, trace=True)
    trainer.run(12_000)
    steps, e_old, e_new, acc = (np.array(x) for x in zip(*trainer.trace))
    d_loss = (e_new - e_old) / 256                       # exact: E = 256 L
    p_rule = np.minimum(1.0, np.exp2(-d_loss))
    assert np.all(acc[d_loss <= 0])
    chi2, dof = binned_chi_square(p_rule, acc)
    assert dof >= 4
    assert chi2 < chi_square_limit(dof), f"chi2 {chi2:.1f}, dof {dof}"
    wrong, _ = binned_chi_square(np.minimum(1.0, np.exp(-d_loss)), acc)
    assert wrong > chi_square_limit(dof)                 # power against the natural base
    assert trainer.stats["accepted"] == int(acc.sum())


def test_exact_kernel_of_proposal_and_acceptance_has_the_boltzmann_state():
    """One step's transition matrix on 2 cells x 2 bits from the fixed-point tables: its
    stationary state is 2**(-E 2**-F) / Z to the table's precision (detailed balance)."""
    spec = toy_spec(2, bits=2, e0_u=1.5)
    table = threshold_table(8, 14)
    rng = np.random.default_rng(9)
    levels = np.arange(spec.w_lo, spec.w_hi + 1)
    states = [(a, b) for a in levels for b in levels]
    energy = {s: state_energy(64, loss_register(float(rng.integers(0, 40)) / 8, 8), 6)
              for s in states}
    p_move = threshold(round(1.5 * 256), 8, 14) / ONE
    index = {s: i for i, s in enumerate(states)}
    P = np.zeros((len(states), len(states)))
    for s in states:
        for moves in np.ndindex(3, 3):                      # per cell: stay, up, down
            dw = np.array([0, 1, -1])[list(moves)]
            prob = np.prod([1 - 2 * p_move if m == 0 else p_move for m in moves])
            target = tuple(np.clip(np.array(s) + dw, spec.w_lo, spec.w_hi))
            a = acceptance_probability(energy[target] - energy[s], table) if target != s else 1
            P[index[s], index[target]] += prob * a
            P[index[s], index[s]] += prob * (1 - a)
    assert np.allclose(P.sum(axis=1), 1)
    w, v = np.linalg.eig(P.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1))])
    pi /= pi.sum()
    e = np.array([energy[s] for s in states]) / 256
    boltzmann = np.exp2(-(e - e.min()))
    boltzmann /= boltzmann.sum()
    assert np.max(np.abs(pi / boltzmann - 1)) < 2e-3
    # the comparison can fail: the stationary state of a twice larger gain is far from it
    assert np.max(np.abs(pi / (boltzmann**2 / np.sum(boltzmann**2)) - 1)) > 0.1


# -- proposals, counters, identities -------------------------------------------------------------
def test_proposals_are_zero_tilt_decisions_on_the_lane_generators():
    spec = toy_spec(10, bits=4, e0_u=2.5, lanes=3, seed=77)
    trainer = MHTrainer(spec, lambda W: (0.0, 0), np.zeros(10))
    moves, inadmissible = trainer.array.proposals(6)
    lanes = [LaneGenerator(77, lane) for lane in range(3)]
    e0 = round(2.5 * 256)
    expected = np.zeros((6, 10), dtype=np.int8)
    for step in range(6):
        for group in range(4):                              # ceil(10 / 3) groups per step
            for lane in range(3):
                u = lanes[lane].next_draw()                 # every lane draws, idle or not
                cell = group * 3 + lane
                if cell < 10:
                    outcome, _ = decide_one(u, e0, e0, 8, 14)
                    expected[step, cell] = {"up": 1, "down": -1, "stay": 0}[outcome]
    assert np.array_equal(moves, expected)
    assert not inadmissible.any()
    # the acceptance unit is lane number `lanes` of the same seed
    assert trainer.array.accept_lane.next_draw() == LaneGenerator(77, 3).next_draw()


def test_first_law_and_counters_hold_with_annealed_gain_and_rising_barrier():
    spec = Spec(cells=12, weight_bits=3, lanes=4, seed=5, tilt="external",
                barrier=Schedule.linear(2 * 256, 3 << 16, lo=2 * 256, hi=5 * 256),
                gain=Schedule.exponential(16, 1 << 9, lo=16, hi=1 << 10))
    target = np.arange(12) % 7 - 3

    def loss_fn(W):
        return float(np.sum((W - target) ** 2) * 0.37 + np.sin(W.sum())), 5

    trainer = MHTrainer(spec, loss_fn, np.zeros(12), burn_in=100)
    result = trainer.run(400)
    c = result.counters.exact
    assert c["steps"] == 400 and c["evaluations"] == 400 * 12
    assert c["barrier_work"] == 12 * 3 * 256                 # E0 rose from 2 u to 5 u
    stats = result.stats
    assert stats["forward_macs"] == 5 * stats["forward_evaluations"]
    assert c["field_adds"] == 0 and c["anneal_work"] == 0       # the host's, in stats
    assert c["inadmissible"] == 0 and c["up_moves"] + c["down_moves"] > 0
    assert c["proposals"] == stats["proposals"] == stats["forward_evaluations"] - 1
    assert c["acceptances"] == stats["accepted"] > 0
    assert c["proposals"] + stats["empty"] == 400
    eta_k = int(spec.gain.values_at([400])[0])
    assert c["heat_net"] == (state_energy(16, trainer.loss_raw0, 6)
                             - state_energy(eta_k, trainer.loss_raw, 6) + stats["anneal_work"])
    assert stats["anneal_work"] != 0 and c["heat_abs"] >= abs(c["heat_net"])
    assert np.all((result.final >= spec.w_lo) & (result.final <= spec.w_hi))
    result.counters.exact["heat_net"] += 1
    with pytest.raises(IdentityError, match="first law"):
        trainer.check_identities()


def test_remeasuring_keeps_the_first_law_with_its_work():
    """With read noise, --remeasure evaluates the current state again before every decision:
    the change of its energy is work the host accounts for, and the first law still holds."""
    spec = toy_spec(6, bits=3, e0_u=2.0, eta=1.0)
    noise = np.random.default_rng(4)

    def loss_fn(W):
        return float(np.sum(W**2) * 0.5 + noise.normal(0, 2.0)), 1

    trainer = MHTrainer(spec, loss_fn, np.zeros(6), remeasure=True)
    result = trainer.run(300)
    assert result.stats["remeasure_work"] != 0
    assert result.stats["forward_evaluations"] == 1 + 2 * result.stats["proposals"]
    result.counters.exact["heat_net"] += 1
    with pytest.raises(IdentityError, match="first law"):
        trainer.check_identities()


def test_blocked_moves_are_counted_and_the_ladder_is_kept():
    spec = toy_spec(6, bits=2, e0_u=1.0)                     # every cell moves every step
    trainer = MHTrainer(spec, lambda W: (float(-W.sum()), 0), np.full(6, 1))
    result = trainer.run(50)
    c = result.counters.exact
    assert c["blocked_moves"] > 0
    assert np.all((result.final >= -2) & (result.final <= 1))
    assert c["up_moves"] + c["down_moves"] == trainer.stats["proposed_moves"]
    assert c["reverted_moves"] == trainer.stats["reverted_moves"] > 0
    assert c["acceptances"] < c["proposals"]


def test_posterior_mean_is_the_average_after_burn_in_rounded_half_up():
    spec = toy_spec(4, bits=4, e0_u=2.0, eta=0.25)
    trainer = MHTrainer(spec, lambda W: (float(np.sum(W**2)), 0), np.array([3, -3, 0, 5]),
                        burn_in=30)
    states = []
    for _ in range(90):                                     # run in segments of one step
        result = trainer.run(1)
        states.append(trainer.W.copy())
    chain = np.array(states[30:])
    assert len({s.tobytes() for s in chain}) > 1
    assert np.allclose(result.mean, chain.mean(axis=0))
    assert np.array_equal(result.deployed, np.floor(chain.mean(axis=0) + 0.5))
    assert result.stats["averaged_samples"] == 60


def test_accepted_average_counts_each_accepted_state_once():
    spec = toy_spec(4, bits=4, e0_u=2.0, eta=0.25)
    trainer = MHTrainer(spec, lambda W: (float(np.sum(W**2)), 0), np.array([3, -3, 0, 5]),
                        burn_in=20, average="accepted")
    accepted_states = []
    for _ in range(80):
        before = trainer.stats["accepted"]
        result = trainer.run(1)
        if trainer.step > 20 and trainer.stats["accepted"] > before:
            accepted_states.append(trainer.W.copy())
    assert 1 < len(accepted_states) < 60
    assert result.stats["averaged_samples"] == len(accepted_states)
    assert np.allclose(result.mean, np.mean(accepted_states, axis=0))


def test_bad_trainer_options_name_the_parameter():
    spec = toy_spec(4)
    with pytest.raises(ConfigError, match="average"):
        MHTrainer(spec, lambda W: (0.0, 0), np.zeros(4), average="median")
    with pytest.raises(ConfigError, match=r"weights\[2\] = 9"):
        MHTrainer(spec, lambda W: (0.0, 0), np.array([0, 0, 9, 0]))
    with pytest.raises(ConfigError, match="barrier"):
        MHTrainer(toy_spec(4, e0_u=0.5), lambda W: (0.0, 0), np.zeros(4)).run(10)
    with pytest.raises(ConfigError, match="loss"):
        MHTrainer(spec, lambda W: (float("nan"), 0), np.zeros(4))
    with pytest.raises(ConfigError, match="moves"):
        proposal_barrier_u(100, 250)
    with pytest.raises(ConfigError, match="weight_bits"):
        NetworkLayout(inputs=3, weight_bits=1)


# -- the non-ideal forward model -----------------------------------------------------------------
def test_nonidealities_are_reproducible_per_seed():
    layout = NetworkLayout(inputs=5, hidden=3)
    X = np.random.default_rng(1).normal(size=(20, 5))
    W = np.random.default_rng(2).integers(-8, 8, layout.cells)
    a, b, c = (ChipModel(layout, LEVELS["strong"], seed) for seed in (7, 7, 8))
    assert np.array_equal(a.gain, b.gain) and np.array_equal(a.offset, b.offset)
    assert np.array_equal([a.logits(X, W) for _ in range(3)], [b.logits(X, W) for _ in range(3)])
    assert not np.array_equal(a.gain, c.gain)
    assert not np.array_equal(a.logits(X, W), a.logits(X, W))      # fresh read noise
    assert np.array_equal(a.logits(X, W, noisy=False), b.logits(X, W, noisy=False))


def test_ideal_chip_is_the_network_itself():
    layout = NetworkLayout(inputs=4, hidden=2, weight_bits=4, full_scale_in=1.0,
                           full_scale_out=2.0)
    chip = ChipModel(layout, Nonideality(), seed=3)
    W = np.arange(layout.cells) % 16 - 8
    w = W * layout.scales()
    w1, b1, v, c = layout.split(w)
    X = np.random.default_rng(4).normal(size=(7, 4))
    assert np.allclose(chip.logits(X, W), np.maximum(X @ w1 + b1, 0) @ v + c)
    assert np.array_equal(chip.logits(X, W), chip.logits(X, W))
    assert layout.cells == 4 * 2 + 2 + 2 + 1


def test_weight_dac_reads_bin_centres_and_activation_saturates():
    layout = NetworkLayout(inputs=1, hidden=1, weight_bits=4)
    chip = ChipModel(layout, Nonideality(quant=2, saturation=0.5), seed=0)
    assert list(chip.read(np.arange(-8, 8))) == [-6.5] * 4 + [-2.5] * 4 + [1.5] * 4 + [5.5] * 4
    # cells: input weight, hidden bias, output weight, output bias
    z = chip.logits(np.array([[100.0]]), np.array([7, 0, 7, 0]))
    # h = 0.5 tanh(huge) = 0.5 (saturated); cells 7 and 0 read as 5.5 and 1.5; scale 2/8 out
    assert np.isclose(z[0], 0.5 * 5.5 * 0.25 + 1.5 * 0.25)
    assert ChipModel(layout, Nonideality(quant=4), 0).read(np.array([3]))[0] == 3


@pytest.mark.parametrize("text,fragment", [
    ("extreme", "level must be one of"), ("gain=x", "not a number"),
    ("strong,colour=1", "key=value"), ("gain=-1", "nonideality.gain"),
    ("quant=40", "nonideality.quant"), ("", "nonideality"),
])
def test_bad_nonideality_names_the_parameter(text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_nonideality(text)


def test_nonideality_levels_and_overrides():
    assert parse_nonideality("none").ideal
    assert parse_nonideality("strong,noise=0") == Nonideality(
        **{**LEVELS["strong"].to_dict(), "noise": 0.0})
    assert parse_nonideality("gain=0.2,quant=3") == Nonideality(gain=0.2, quant=3)


# -- data and training ---------------------------------------------------------------------------
def test_splits_are_stratified_and_the_reduced_set_shares_the_test_split():
    full, small = make_splits(4, 1.0), make_splits(4, 0.1)
    assert full["n_train"] == 398 and full["n_test"] == 171 and small["n_train"] == 39
    for s in (full, small):
        assert abs(s["y_train"].mean() - 357 / 569) < 0.02
        assert abs(s["y_test"].mean() - 357 / 569) < 0.01
    assert np.array_equal(full["y_test"], small["y_test"])
    assert not np.array_equal(make_splits(5)["y_test"], full["y_test"])
    with pytest.raises(ConfigError, match="train_fraction"):
        make_splits(4, 0.01)


def test_mh_on_the_ideal_model_reaches_93_percent_on_the_test_split():
    """Seed 1, 4000 steps (a fifth of the default): test accuracy >= 0.93 (measured 0.953;
    the majority class is 0.63; backprop on the same split reaches 0.953)."""
    r = run_training(dict(method="mh", seed=1, steps=4000))
    assert r["metrics"]["test_accuracy"] >= 0.93, r["metrics"]
    assert r["identities"]["first_law"] == "exact"
    assert r["counters"]["evaluations"] == 4000 * r["config"]["spec"]["cells"]


def test_backprop_baseline_trains_the_ideal_model():
    r = run_training(dict(method="backprop", seed=1))
    assert r["ideal_float"]["test_accuracy"] >= 0.95
    assert r["metrics"]["test_accuracy"] >= 0.93              # the same, rounded to cells
    assert r["counters"] is None and r["energy"]["macs"] > 0


def test_training_is_reproducible_per_seed_and_the_chip_seed_is_separate():
    def run(**kw):
        return run_training(dict(method="mh", steps=300, nonideality="strong", **kw))
    a, b = run(seed=3), run(seed=3)
    assert a["weights"] == b["weights"] and a["counters"] == b["counters"]
    assert a["metrics"] == b["metrics"]
    c = run(seed=3, chip_seed=4)
    assert c["config"]["chip_seed"] == 4 and c["counters"] != a["counters"]
    assert run(seed=5)["counters"] != a["counters"]
