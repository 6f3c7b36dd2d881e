"""Tests of limemu.model.physics against hand-derived answers and the figures of arXiv
2402.14878."""

import itertools
import math
import re

import numpy as np
import pytest
from limemu.model import physics
from limemu.model.errors import ConfigError


def _loss(Q, b, W):
    """L(W) = 1/2 W^T Q W - b^T W in exact rational arithmetic (plain Python)."""
    n = len(W)
    quad = sum(Q[i][j] * W[i] * W[j] for i in range(n) for j in range(n))
    return quad / 2 - sum(b[i] * W[i] for i in range(n))


def _problem(n, seed):
    rng = np.random.default_rng(seed)
    A = rng.integers(-3, 4, size=(n, n))
    Q = A + A.T
    b = rng.integers(-4, 5, size=n)
    return Q, b


# -- units ----------------------------------------------------------------------------------------
def test_landauer_unit_at_300K_is_2_871e_21_J():
    assert physics.landauer_unit_J(300.0) == pytest.approx(2.871e-21, rel=1e-3)
    assert physics.landauer_unit_J() == physics.K_B * 300.0 * math.log(2)


def test_u_to_joules_scales_with_temperature():
    assert physics.u_to_joules(2.0, T=600.0) == pytest.approx(4 * physics.landauer_unit_J(300.0))
    np.testing.assert_allclose(physics.u_to_joules(np.array([0.0, 1.0])),
                               [0.0, physics.landauer_unit_J()])


# -- the projection (Fig. 5 of arXiv 2402.14878, docs/physics.md §10) ---------------------------
@pytest.mark.parametrize("bits, expected_J", [(16, 4.59e8), (32, 9.19e8)])
def test_projection_reproduces_brain_scale_lim_band(bits, expected_J):
    result = physics.projection(1e15, 1e28, bits, temperature_K=300.0)
    assert result["lim_J"] == pytest.approx(expected_J, rel=0.01)


def test_projection_conventional_is_1e17_J_for_1e28_ops():
    assert physics.projection(1e15, 1e28, 16)["conventional_J"] == pytest.approx(1e17, rel=1e-12)


def test_projection_landauer_params_is_erasing_final_parameters_once():
    result = physics.projection(1e15, 1e28, 16)
    assert result["landauer_params_J"] == pytest.approx(1e15 * 16 * physics.landauer_unit_J())


def test_projection_measured_energy_only_when_given():
    assert physics.projection(1e15, 1e28, 16)["measured_J"] is None
    result = physics.projection(1e15, 1e28, 16, measured_u_per_op=3.0)
    assert result["measured_J"] == pytest.approx(3e28 * physics.landauer_unit_J())
    assert result["ratio_measured_to_lim"] == pytest.approx(3 / 16)


def test_projection_states_its_assumptions():
    result = physics.projection(1e15, 1e28, 16, measured_u_per_op=2.0)
    assert all(isinstance(a, str) and a for a in result["assumptions"])
    text = " ".join(result["assumptions"])
    for phrase in ("k_B T ln2", "16 u", "10 pJ", "Measured"):
        assert phrase in text


def test_format_projection_prints_figures_and_assumptions():
    result = physics.projection(1e15, 1e28, 16)
    text = physics.format_projection(result)
    assert "4.59e+08 J" in text
    assert "1e+17 J" in text
    assert "2.87e-21 J" in text
    for assumption in result["assumptions"]:
        assert assumption in text


# -- speed-energy trade-off -----------------------------------------------------------------------
def test_d_min_at_one_third_is_exactly_one_landauer_unit():
    assert abs(physics.d_min(1 / 3) - 1.0) < 1e-12


@pytest.mark.parametrize("x", [0.0, 0.01, 0.5, 1.0, 3.0, 10.0])
def test_d_min_inverts_j_max(x):
    assert physics.d_min(math.tanh(x * math.log(2) / 2)) == pytest.approx(x, rel=1e-9, abs=1e-12)


def test_d_min_is_vectorised_and_zero_at_zero_rate():
    J = np.array([0.0, 1 / 3, 0.6])
    np.testing.assert_allclose(physics.d_min(J), [physics.d_min(j) for j in J], rtol=1e-15)
    assert physics.d_min(0.0) == 0.0


@pytest.mark.parametrize("D", [-6.0, -1.0, 0.5, 1.0, 2.0, 7.5, 40.0])
def test_probabilities_sum_to_one_and_rate_is_j_max_at_e0_at_max_rate(D):
    E0 = physics.e0_at_max_rate(D)
    p_plus, p_minus = physics.crossing_probabilities(E0, D)
    assert p_plus + p_minus == pytest.approx(1.0, rel=1e-12)
    assert physics.net_rate(E0, D) == pytest.approx(physics.j_max(D), rel=1e-12, abs=1e-15)
    assert physics.is_admissible(E0, D)


def test_e0_at_max_rate_is_one_u_without_tilt_and_finite_for_huge_tilt():
    assert physics.e0_at_max_rate(0.0) == 1.0
    assert physics.e0_at_max_rate(4000.0) == pytest.approx(2000.0)


def test_normalized_rate_at_most_one_on_admissible_grid():
    E0, D = np.meshgrid(np.linspace(0.0, 24.0, 97), np.linspace(-20.0, 20.0, 81))
    admissible = physics.is_admissible(E0, D)
    assert admissible.any() and not admissible.all()
    r = physics.normalized_rate(E0, D)
    assert np.all(r[admissible] <= 1.0 + 1e-12)
    assert np.all(r[~admissible] > 1.0)


def test_normalized_rate_is_net_rate_over_j_max():
    E0, D = np.meshgrid(np.linspace(0.0, 12.0, 25), np.array([-5.0, -0.25, 0.125, 3.0]))
    expected = physics.net_rate(E0, D) / physics.j_max(D)
    np.testing.assert_allclose(physics.normalized_rate(E0, D), expected, rtol=1e-10)


def test_normalized_rate_without_tilt_is_the_limit_not_a_division_by_zero():
    assert physics.net_rate(3.0, 0.0) == 0.0 and physics.j_max(0.0) == 0.0
    limit = physics.net_rate(3.0, 1e-6) / physics.j_max(1e-6)
    assert physics.normalized_rate(3.0, 0.0) == pytest.approx(limit, rel=1e-9)
    assert physics.normalized_rate(3.0, 0.0) == 0.25


@pytest.mark.parametrize("E0, D", [(0.0, 0.0), (3.0, 1.0), (5.5, -2.25), (20.0, 8.0)])
def test_crossing_probabilities_obey_detailed_balance(E0, D):
    p_plus, p_minus = physics.crossing_probabilities(E0, D)
    assert p_plus / p_minus == pytest.approx(2.0**D, rel=1e-12)
    assert p_plus == pytest.approx(2.0 ** -(E0 - D / 2), rel=1e-12)


def test_inadmissible_when_barrier_below_e0_at_max_rate():
    assert not physics.is_admissible(0.5, 0.0)
    assert physics.is_admissible(1.0, 0.0)
    assert not physics.is_admissible(physics.e0_at_max_rate(3.0) - 1e-6, 3.0)


# -- the stationary distribution ------------------------------------------------------------------
def test_boltzmann_probabilities_sum_to_one():
    Q, b = _problem(3, seed=1)
    _, probs = physics.boltzmann_distribution(Q, b, 0.7, -2, 1, 1)
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(probs > 0)


def test_boltzmann_probability_ratio_is_two_to_minus_eta_delta_loss():
    Q, b = _problem(3, seed=2)
    eta = 0.7
    states, probs = physics.boltzmann_distribution(Q, b, eta, -2, 1, 1)
    for i, j in [(0, 63), (5, 17), (40, 41)]:
        L1, L2 = _loss(Q, b, states[i].tolist()), _loss(Q, b, states[j].tolist())
        assert probs[i] / probs[j] == pytest.approx(2.0 ** (-eta * (L1 - L2)), rel=1e-9)


@pytest.mark.parametrize("w_lo, w_hi, delta", [(-2, 1, 1), (-1, 1, 2), (0, 3, 1)])
def test_boltzmann_most_probable_state_is_exhaustive_minimiser(w_lo, w_hi, delta):
    Q, b = _problem(3, seed=3)
    states, probs = physics.boltzmann_distribution(Q, b, 2.0, w_lo, w_hi, delta)
    ladder = range(w_lo, w_hi + 1, delta)
    losses = {W: _loss(Q, b, W) for W in itertools.product(ladder, repeat=3)}
    best = min(losses.values())
    assert losses[tuple(states[np.argmax(probs)].tolist())] == best


@pytest.mark.parametrize("n, w_lo, w_hi, delta", [(1, -8, 7, 1), (3, -2, 1, 1), (5, -1, 1, 2),
                                                  (2, 0, 6, 3)])
def test_boltzmann_enumerates_every_state_once(n, w_lo, w_hi, delta):
    states, probs = physics.boltzmann_distribution(np.eye(n, dtype=int), np.zeros(n, dtype=int),
                                                   1.0, w_lo, w_hi, delta)
    count = ((w_hi - w_lo) // delta + 1) ** n
    assert states.shape == (count, n) and probs.shape == (count,)
    assert states.dtype == np.int64
    assert len({tuple(s) for s in states.tolist()}) == count
    assert set(np.unique(states).tolist()) <= set(range(w_lo, w_hi + 1, delta))


def test_boltzmann_does_not_overflow_at_high_gain():
    Q, b = _problem(4, seed=4)
    states, probs = physics.boltzmann_distribution(Q * 1000, b * 1000, 1e4, -2, 1, 1)
    assert np.all(np.isfinite(probs)) and probs.sum() == pytest.approx(1.0)
    losses = np.array([_loss(Q, b, W) for W in states.tolist()])
    minimisers = losses == losses.min()
    np.testing.assert_allclose(probs[minimisers], 1.0 / minimisers.sum())


def test_boltzmann_is_uniform_at_zero_gain():
    Q, b = _problem(2, seed=5)
    _, probs = physics.boltzmann_distribution(Q, b, 0.0, -1, 1, 2)
    np.testing.assert_allclose(probs, 0.25)


def test_boltzmann_is_stationary_under_crossing_kinetics():
    """Sequential single-cell moves with p+ and p- from crossing_probabilities keep P fixed."""
    Q, b = _problem(2, seed=6)
    eta, w_lo, w_hi, delta = 0.5, -2, 1, 1
    states, probs = physics.boltzmann_distribution(Q, b, eta, w_lo, w_hi, delta)
    index = {tuple(s): k for k, s in enumerate(states.tolist())}

    def tilt(W, cell, step):
        V = list(W)
        V[cell] += step
        if not w_lo <= V[cell] <= w_hi:
            return None, None
        return eta * (_loss(Q, b, W) - _loss(Q, b, V)), tuple(V)

    moves = [[(tilt(W, c, delta), tilt(W, c, -delta)) for c in range(2)] for W in index]
    E0 = 0.1 + max(math.log2(sum(2.0 ** (D / 2) for D, _ in pair if D is not None))
                   for per_cell in moves for pair in per_cell)
    T = np.eye(len(states))
    for cell in range(2):
        Tc = np.zeros_like(T)
        for W, k in index.items():
            for D, V in moves[k][cell]:
                if D is not None:
                    p = physics.crossing_probabilities(E0, D)[0]
                    Tc[k, index[V]] += p
                    Tc[k, k] -= p
            Tc[k, k] += 1.0
        assert np.all(Tc >= 0)
        T = T @ Tc
    np.testing.assert_allclose(probs @ T, probs, rtol=1e-10, atol=1e-15)


# -- bounds and the energy-to-solution report -----------------------------------------------------
def test_landauer_bound_is_params_times_bits():
    assert physics.landauer_bound_u(1000, 8) == 8000.0


def test_speed_bound_is_net_updates_times_d_min():
    assert physics.speed_bound_u(30, 1 / 3) == pytest.approx(30.0, rel=1e-12)
    assert physics.speed_bound_u(30, 0.0) == 0.0


def test_energy_to_solution_ratios_against_both_bounds():
    report = physics.energy_to_solution(100.0, n_params=4, bits=2, net_updates=10,
                                        evaluations=30, barrier_work_u=7.0)
    u = physics.landauer_unit_J(300.0)
    assert report["landauer_bound_u"] == 8.0
    assert report["net_rate"] == pytest.approx(1 / 3)
    assert report["speed_bound_u"] == pytest.approx(10.0, rel=1e-12)
    assert report["ratio_to_landauer"] == pytest.approx(12.5)
    assert report["ratio_to_speed_bound"] == pytest.approx(10.0, rel=1e-12)
    assert report["heat_J"] == pytest.approx(100 * u)
    assert report["landauer_bound_J"] == pytest.approx(8 * u)
    assert report["speed_bound_J"] == pytest.approx(10 * u)
    assert report["barrier_work_u"] == 7.0 and report["temperature_K"] == 300.0


def test_energy_to_solution_ratio_is_none_where_bound_is_zero():
    report = physics.energy_to_solution(5.0, n_params=0, bits=1, net_updates=0, evaluations=0)
    assert report["net_rate"] == 0.0
    assert report["landauer_bound_u"] == 0.0 and report["ratio_to_landauer"] is None
    assert report["speed_bound_u"] == 0.0 and report["ratio_to_speed_bound"] is None


def test_energy_to_solution_speed_bound_infinite_at_net_rate_one():
    report = physics.energy_to_solution(5.0, n_params=1, bits=1, net_updates=3, evaluations=3)
    assert report["speed_bound_u"] == math.inf and report["ratio_to_speed_bound"] == 0.0


def test_energy_to_solution_converts_at_the_given_temperature():
    report = physics.energy_to_solution(10.0, 1, 1, 1, 10, temperature_K=77.0)
    assert report["heat_J"] == pytest.approx(10 * physics.K_B * 77.0 * math.log(2))


# -- bad arguments ---------------------------------------------------------------------------------
BAD_CALLS = {
    "T_negative": ("T", lambda: physics.landauer_unit_J(-1.0)),
    "u_to_joules_T_zero": ("T", lambda: physics.u_to_joules(1.0, T=0.0)),
    "E0_negative": ("E0", lambda: physics.crossing_probabilities(-0.5, 1.0)),
    "D_nan": ("D", lambda: physics.net_rate(2.0, float("nan"))),
    "D_infinite": ("D", lambda: physics.j_max(math.inf)),
    "E0_negative_in_array": ("E0", lambda: physics.normalized_rate(np.array([1.0, -2.0]), 0.0)),
    "J_one": ("J", lambda: physics.d_min(1.0)),
    "J_negative": ("J", lambda: physics.d_min(-0.1)),
    "J_in_array": ("J", lambda: physics.d_min(np.array([0.1, 1.5]))),
    "J_text": ("J", lambda: physics.d_min("fast")),
    "eta_negative": ("eta", lambda: physics.boltzmann_distribution(np.eye(2), [0, 0], -1.0,
                                                                    -1, 1, 2)),
    "delta_zero": ("delta", lambda: physics.boltzmann_distribution(np.eye(2), [0, 0], 1.0,
                                                                    -1, 1, 0)),
    "w_hi_below_w_lo": ("w_hi", lambda: physics.boltzmann_distribution(np.eye(2), [0, 0], 1.0,
                                                                        1, -1, 1)),
    "w_hi_off_ladder": ("w_hi", lambda: physics.boltzmann_distribution(np.eye(2), [0, 0], 1.0,
                                                                        -1, 2, 2)),
    "w_lo_not_integer": ("w_lo", lambda: physics.boltzmann_distribution(np.eye(2), [0, 0], 1.0,
                                                                         -0.5, 1, 1)),
    "Q_not_square": ("Q", lambda: physics.boltzmann_distribution(np.ones((2, 3)), [0, 0], 1.0,
                                                                  -1, 1, 2)),
    "Q_not_symmetric": ("Q", lambda: physics.boltzmann_distribution([[0, 1], [2, 0]], [0, 0],
                                                                     1.0, -1, 1, 2)),
    "b_wrong_length": ("b", lambda: physics.boltzmann_distribution(np.eye(2), [0, 0, 0], 1.0,
                                                                    -1, 1, 2)),
    "too_many_states": ("states", lambda: physics.boltzmann_distribution(
        np.eye(21), np.zeros(21), 1.0, -1, 1, 2)),
    "n_params_negative": ("n_params", lambda: physics.landauer_bound_u(-1, 8)),
    "bits_zero": ("bits", lambda: physics.landauer_bound_u(10, 0)),
    "net_updates_negative": ("net_updates", lambda: physics.speed_bound_u(-1, 0.1)),
    "speed_J_one": ("J", lambda: physics.speed_bound_u(10, 1.0)),
    "net_updates_above_evaluations": ("net_updates", lambda: physics.energy_to_solution(
        1.0, 1, 1, net_updates=5, evaluations=4)),
    "evaluations_negative": ("evaluations", lambda: physics.energy_to_solution(
        1.0, 1, 1, net_updates=0, evaluations=-1)),
    "barrier_work_negative": ("barrier_work_u", lambda: physics.energy_to_solution(
        1.0, 1, 1, 0, 1, barrier_work_u=-2.0)),
    "heat_nan": ("heat_u", lambda: physics.energy_to_solution(float("nan"), 1, 1, 0, 1)),
    "report_temperature_zero": ("temperature_K", lambda: physics.energy_to_solution(
        1.0, 1, 1, 0, 1, temperature_K=0.0)),
    "params_zero": ("params", lambda: physics.projection(0, 1e28, 16)),
    "ops_negative": ("ops", lambda: physics.projection(1e15, -1, 16)),
    "projection_bits_below_one": ("bits", lambda: physics.projection(1e15, 1e28, 0.5)),
    "projection_temperature_negative": ("temperature_K", lambda: physics.projection(
        1e15, 1e28, 16, temperature_K=-300.0)),
    "conventional_per_op_zero": ("conventional_J_per_op", lambda: physics.projection(
        1e15, 1e28, 16, conventional_J_per_op=0.0)),
    "measured_negative": ("measured_u_per_op", lambda: physics.projection(
        1e15, 1e28, 16, measured_u_per_op=-1.0)),
}


@pytest.mark.parametrize("parameter, call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_argument_raises_config_error_naming_parameter(parameter, call):
    with pytest.raises(ConfigError, match=rf"^{re.escape(parameter)} = "):
        call()
