"""Detailed balance: at fixed E0 and eta the array samples P(W) ∝ 2**(-eta L(W)).

Two tiers: the exact transition matrix built from the fixed-point thresholds has the Boltzmann
distribution as its stationary state (deterministic), and the sampled states of a run pass a
chi-square test against it (statistical, significance 0.001).
"""

import itertools
import math

import numpy as np
import pytest
from limemu.model import QuadraticProblem, Schedule, Spec
from limemu.model.crossing import ONE, threshold_table
from limemu.model.engine import LimArray
from limemu.model.physics import boltzmann_distribution

SIGNIFICANCE = 1e-3
CASES = {
    "2 cells x 3 bits": (np.array([[3, 1], [1, 2]]), np.array([2, -3]), 3, 16),
    "3 spins": (np.array([[0, 2, -1], [2, 0, 1], [-1, 1, 0]]), np.array([1, 0, -1]), 1, 24),
}


def states_of(spec):
    levels = range(spec.w_lo, spec.w_hi + 1, spec.delta)
    return [np.array(s) for s in itertools.product(levels, repeat=spec.cells)]


def half_tilts(spec, problem, W, n):
    g = problem.field(W)[n]
    d = spec.delta
    qd = d * d * int(problem.diag[n])
    eta = int(spec.gain.values_at([0])[0]) << spec.tilt_shift
    return eta * (qd + 2 * d * int(g)), eta * (qd - 2 * d * int(g))


def smallest_admissible_barrier(spec, problem):
    table = threshold_table(spec.barrier_frac_bits, spec.mantissa_bits)
    need = 0
    for W in states_of(spec):
        for n in range(spec.cells):
            h_up, h_down = half_tilts(spec, problem, W, n)
            e0 = max(0, -min(h_up, h_down))
            while table[e0 + h_up + 1] + table[e0 + h_down + 1] > ONE:
                e0 += 1
            need = max(need, e0)
    return need


def step_matrix(spec, problem):
    """Exact transition matrix of one step (one lane: cells in order, each one draw)."""
    table = threshold_table(spec.barrier_frac_bits, spec.mantissa_bits)
    states = states_of(spec)
    index = {tuple(s): k for k, s in enumerate(states)}
    e0 = int(spec.barrier.values_at([0])[0])
    step = np.eye(len(states))
    for n in range(spec.cells):
        kernel = np.zeros((len(states), len(states)))
        for k, W in enumerate(states):
            h_up, h_down = half_tilts(spec, problem, W, n)
            p_up = table[e0 + h_up + 1] / ONE
            p_down = table[e0 + h_down + 1] / ONE
            assert p_up + p_down <= 1
            for dw, p in ((spec.delta, p_up), (-spec.delta, p_down)):
                target = W.copy()
                target[n] += dw
                if spec.w_lo <= target[n] <= spec.w_hi:
                    kernel[k, index[tuple(target)]] += p
                else:
                    kernel[k, k] += p                          # blocked
            kernel[k, k] += 1 - p_up - p_down
        step = step @ kernel
    return states, step


def make(case, extra_barrier_u=0.0):
    Q, b, bits, eta_raw = CASES[case]
    problem = QuadraticProblem.dense(Q, b)
    probe = Spec(cells=len(b), weight_bits=bits, lanes=1, gain=Schedule.constant(eta_raw))
    e0 = smallest_admissible_barrier(probe, problem) + round(extra_barrier_u * 256)
    spec = probe.replace(barrier=Schedule.constant(e0))
    eta = eta_raw / 2**spec.gain_frac_bits
    states, probs = boltzmann_distribution(Q, b, eta, spec.w_lo, spec.w_hi, spec.delta)
    return spec, problem, states, probs


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("extra_barrier_u", [0.0, 2.5])
def test_exact_stationary_distribution_is_boltzmann(case, extra_barrier_u):
    spec, problem, states, probs = make(case, extra_barrier_u)
    chain_states, P = step_matrix(spec, problem)
    assert [tuple(s) for s in chain_states] == [tuple(s) for s in states]
    values, vectors = np.linalg.eig(P.T)
    stationary = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    stationary /= stationary.sum()
    # the thresholds approximate 2**-B to < 2**-13 relative: so does the stationary state
    assert np.max(np.abs(stationary / probs - 1)) < 2e-3


def relaxation_steps(P):
    moduli = np.sort(np.abs(np.linalg.eigvals(P)))[::-1]
    return -1 / math.log(moduli[1])


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_sampled_states_pass_chi_square_against_boltzmann(case):
    spec, problem, states, probs = make(case)
    _, P = step_matrix(spec, problem)
    thin = max(1, math.ceil(3 * relaxation_steps(P)))       # correlation between samples e**-3
    samples = 20_000
    array = LimArray(spec, problem)
    array.run(20 * thin)                                    # burn-in
    trajectory = array.run(samples * thin, snapshot_every=thin)
    assert array.counters.exact["inadmissible"] == 0
    levels = (spec.w_hi - spec.w_lo) // spec.delta + 1
    digits = (trajectory - spec.w_lo) // spec.delta
    codes = digits @ (levels ** np.arange(spec.cells - 1, -1, -1))
    observed = np.bincount(codes, minlength=len(probs))
    chi2, limit, dof = chi_square(observed, probs)
    assert chi2 < limit, (f"chi2 = {chi2:.1f} > {limit:.1f} (dof {dof}, thin {thin}, "
                          f"significance {SIGNIFICANCE}) [{spec!r}]")
    # the test has power: the same samples reject the distribution of a 30 % larger gain
    Q, b, _, _ = CASES[case]
    eta = int(spec.gain.values_at([0])[0]) / 2**spec.gain_frac_bits
    _, wrong = boltzmann_distribution(Q, b, 1.3 * eta, spec.w_lo, spec.w_hi, spec.delta)
    assert chi_square(observed, wrong)[0] > limit


def chi_square(observed, probs):
    """(statistic, critical value at SIGNIFICANCE, degrees of freedom)."""
    expected = probs * observed.sum()
    # merge the rare states (expected < 5) into one bin, as the chi-square test requires
    rare = expected < 5
    obs, exp = observed[~rare], expected[~rare]
    if rare.any():
        obs, exp = np.append(obs, observed[rare].sum()), np.append(exp, expected[rare].sum())
    chi2 = float(np.sum((obs - exp) ** 2 / exp))
    dof = len(obs) - 1
    # Wilson-Hilferty approximation of the chi-square quantile at 1 - SIGNIFICANCE
    z = 3.090232306167813                                   # normal quantile of 0.999
    limit = dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3
    return chi2, limit, dof
