"""Exact distributions of small arrays and the second law (python_model/thermo.py).

The propagation is checked against transition matrices built state by state from the
definitions (group kernels as products over the group's cells, blocked moves, schedules),
then its fluctuation-theorem figures against what detailed balance implies.
"""

import itertools
import math

import numpy as np
import pytest
from limemu.model import QuadraticProblem, Schedule, Spec
from limemu.model.crossing import ONE, outcome_counts, threshold_table
from limemu.model.errors import ConfigError
from limemu.model.order import update_order
from limemu.model.thermo import (
    MAX_STATES,
    StateSpace,
    chi_square,
    clausius_bound,
    distributions,
    entropy_bits,
    exact_run,
    initial_distribution,
    second_law_figures,
)

U = 256                                      # 1 u in energy LSBs (barrier_frac_bits = 8)


def ising(n, seed, density=0.6):
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(n, 1)
    keep = rng.random(len(i)) < density
    w = rng.choice([-1, 1], keep.sum())
    return QuadraticProblem.sparse(n, i[keep], j[keep], w, name=f"ising{n}")


def small_lsq(cells, seed):
    """A least-squares problem: Q = s X'X, b = s X'y rounded, with a diagonal."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(12, cells))
    y = X @ rng.uniform(-2, 2, cells) + 0.3 * rng.normal(size=12)
    return QuadraticProblem.dense(np.rint(2 * X.T @ X), np.rint(2 * X.T @ y), name="lsq")


CONFIGS = {
    "spins, colour order, annealed": (lambda: ising(5, 1), dict(
        weight_bits=1, lanes=2, order="colour", barrier=Schedule.constant(3 * U),
        gain=Schedule.exponential(6, 1 << 14))),
    "spins, coupled groups": (lambda: ising(5, 2), dict(
        weight_bits=1, lanes=3, order="natural", barrier=Schedule.linear(2 * U, 40 << 16),
        gain=Schedule.constant(64))),
    "2-bit cells, coupled, scaled steps": (lambda: small_lsq(3, 3), dict(
        weight_bits=2, lanes=2, order="natural", init="zero",
        barrier=Schedule.constant(U // 2), gain=Schedule.linear(8, 1 << 17))),
    "3-bit cells, one lane, from the top": (lambda: small_lsq(2, 4), dict(
        weight_bits=3, lanes=1, init="high", barrier=Schedule.constant(2 * U),
        gain=Schedule.constant(16))),
}


def make(name):
    build, fields = CONFIGS[name]
    problem = build()
    return Spec(cells=problem.n, **fields), problem


def simultaneous_kernel(spec, cells, crossing):
    """(P, T, h) of one update in which `cells` decide together at the state s: P[s, s'] the
    transition probabilities, T the same weighted by 2^-heat, h[s] the mean heat (LSBs).
    crossing(s, cell) gives the barriers and heats (b_up, b_down, q_up, q_down) in LSBs.
    Built state by state over every combination of the cells' outcomes."""
    space = StateSpace(spec)
    table = threshold_table(spec.barrier_frac_bits, spec.mantissa_bits)
    P, T = np.zeros((space.size, space.size)), np.zeros((space.size, space.size))
    h = np.zeros(space.size)
    for s in range(space.size):
        W = space.weights[s]
        options = []
        for c in cells:
            b_up, b_down, q_up, q_down = crossing(s, c)
            up, down, _ = outcome_counts(np.array([b_up]), np.array([b_down]), table)
            p = {+1: int(up[0]) / ONE, -1: int(down[0]) / ONE}
            moves = [(0, 1 - p[1] - p[-1], 0)]
            for sign, q in ((+1, q_up), (-1, q_down)):
                if spec.w_lo <= W[c] + sign * spec.delta <= spec.w_hi:
                    moves.append((sign, p[sign], q))
                else:                                         # blocked: the cell stays
                    moves[0] = (0, moves[0][1] + p[sign], 0)
            options.append(moves)
        for combination in itertools.product(*options):
            target = W.copy()
            prob, heat = 1.0, 0
            for c, (sign, p, q) in zip(cells, combination):
                target[c] += sign * spec.delta
                prob *= p
                heat += q
            t = int(space.index(target))
            P[s, t] += prob
            T[s, t] += prob * 2.0 ** (-heat * spec.energy_lsb_u)
            h[s] += prob * heat
    return P, T, h


def step_kernels(spec, problem, k, half_tilt=None):
    """The updates of step k in order: one per group (field tilts), or one of all cells
    (external tilts, fixed for the step from the state at its start)."""
    space = StateSpace(spec)
    e0 = int(spec.barrier.values_at([k])[0])
    if half_tilt is not None:
        tilts = [half_tilt(k, w.copy()) for w in space.weights]

        def external(s, c):
            return e0 - tilts[s][c], e0 + tilts[s][c], 2 * tilts[s][c], -2 * tilts[s][c]

        return [simultaneous_kernel(spec, range(spec.cells), external)]
    eta = int(spec.gain.values_at([k])[0]) << spec.tilt_shift
    Q, d = problem.to_dense(), spec.delta
    fields = space.weights @ Q - problem.b

    def field(s, c):
        dl_up = 2 * d * fields[s, c] + d * d * Q[c, c]
        dl_down = -2 * d * fields[s, c] + d * d * Q[c, c]
        return e0 + eta * dl_up, e0 + eta * dl_down, -2 * eta * dl_up, -2 * eta * dl_down

    order = update_order(spec.cells, spec.lanes, spec.order, problem)
    return [simultaneous_kernel(spec, [int(c) for c in order.sequence[order.group == group]],
                                field) for group in range(order.groups)]


def neighbour_pull(step, weights):
    """External half tilts that depend on the other cells' weights (and on the step)."""
    w = np.asarray(weights)
    return (U // 3) * (np.roll(w, 1) - w // 2) + (step % 3) * (U // 4)


EXTERNAL = {
    "external tilts, per cell": (dict(barrier=Schedule.constant(U)),
                                 lambda k, w: np.array([U // 2, -U, k * U // 3])),
    "external tilts, coupled": (dict(barrier=Schedule.linear(U // 2, 30 << 16)),
                                neighbour_pull),
}


def case(name):
    """(spec, problem, half_tilt) of a field or external configuration."""
    if name in CONFIGS:
        return (*make(name), None)
    fields, half_tilt = EXTERNAL[name]
    return Spec(cells=3, weight_bits=2, tilt="external", **fields), None, half_tilt


@pytest.mark.parametrize("name", sorted(CONFIGS) + sorted(EXTERNAL))
def test_exact_run_equals_transition_matrices_built_state_by_state(name):
    spec, problem, half_tilt = case(name)
    steps = 4
    exact = exact_run(spec, problem, steps, half_tilt)
    space = StateSpace(spec)
    p0 = initial_distribution(spec, space, problem)
    p, f, heat = p0.copy(), (p0 > 0).astype(float), 0.0
    updates = []                                         # every update's P, in order
    for k, p_k in distributions(spec, problem, steps, half_tilt):
        assert np.allclose(p_k, p, atol=1e-12), (name, k)
        if k == steps:
            break
        for P, T, h in step_kernels(spec, problem, k, half_tilt):
            heat += p @ h
            p, f = p @ P, f @ T
            updates.append(P)
    assert np.allclose(exact.p_final, p, atol=1e-12)
    assert exact.mean_heat_u == pytest.approx(heat * spec.energy_lsb_u, rel=1e-9, abs=1e-12)
    assert exact.ift == pytest.approx(f @ p, rel=1e-9)
    v = p.copy()
    for P in reversed(updates):                          # the time-reversed process
        v = v @ P
    theorem = 1.0 if np.all(p0 > 0) else v[p0 > 0].sum()
    assert exact.ift_theorem == pytest.approx(theorem, rel=1e-9)


def test_state_space_indexes_every_weight_vector_once():
    spec = Spec(cells=3, weight_bits=2)
    space = StateSpace(spec)
    assert space.size == 64
    assert np.array_equal(space.index(space.weights), np.arange(64))
    assert {tuple(w) for w in space.weights.tolist()} == set(
        itertools.product(range(-2, 2), repeat=3))


@pytest.mark.parametrize("cells,bits", [(17, 1), (9, 2), (5, 4)])
def test_more_states_than_the_limit_are_refused_naming_cells(cells, bits):
    with pytest.raises(ConfigError, match=rf"cells = {cells}: .*{MAX_STATES}"):
        StateSpace(Spec(cells=cells, weight_bits=bits))


def test_a_coupled_group_too_large_to_update_jointly_is_refused_naming_lanes():
    problem = ising(14, 5, density=1.0)
    spec = Spec(cells=14, weight_bits=1, lanes=14)
    with pytest.raises(ConfigError, match="lanes = 14: 14 coupled cells"):
        exact_run(spec, problem, 1)


def test_initial_distribution_is_uniform_for_random_starts_else_the_arrays_start():
    problem = small_lsq(3, 1)
    spec = Spec(cells=3, weight_bits=2, init="random")
    space = StateSpace(spec)
    assert np.allclose(initial_distribution(spec, space, problem), 1 / 64)
    for init, w in (("zero", 0), ("low", -2), ("high", 1)):
        p0 = initial_distribution(spec.replace(init=init), space, problem)
        assert p0[space.index([w] * 3)] == 1 and p0.sum() == 1


def anneal(order="colour", lanes=3, steps=300, init="random", barrier=None, gain=None):
    problem = ising(8, 7)
    spec = Spec(cells=8, weight_bits=1, lanes=lanes, order=order, init=init,
                barrier=barrier or Schedule.constant(4 * U),
                gain=gain or Schedule.exponential(6, (6 << 16) // steps))
    return spec, problem, steps


@pytest.mark.parametrize("case", [
    dict(),
    dict(order="natural", lanes=1),
    dict(barrier=Schedule.linear(U, (7 * U << 16) // 300), gain=Schedule.constant(64)),
    dict(init="zero"),
])
def test_with_detailed_balance_the_exact_fluctuation_theorem_holds_to_the_thresholds(case):
    spec, problem, steps = anneal(**case)
    exact = exact_run(spec, problem, steps)
    assert exact.coupled_groups == 0
    assert exact.ift == pytest.approx(exact.ift_theorem, rel=2e-3)
    assert exact.mean_heat_u >= exact.clausius_bound_u - 0.01
    if spec.init == "random":
        assert exact.ift_theorem == 1
        assert exact.entropy_bits[0] == spec.cells
    else:
        assert 0 < exact.ift_theorem < 1 and exact.entropy_bits[0] == 0


def test_coupled_groups_break_the_exact_fluctuation_theorem():
    spec, problem, steps = anneal(order="natural", lanes=4)
    exact = exact_run(spec, problem, steps)
    assert exact.coupled_groups > 0
    assert abs(exact.ift / exact.ift_theorem - 1) > 0.5


def test_scaled_steps_keep_detailed_balance_only_without_a_diagonal():
    """A scaled step divides p+ and p- by their sum at W; the reverse move is scaled by
    the sum at W + delta, the same only when Q_nn = 0 (spins of an Ising problem)."""
    low = Schedule.constant(U // 4)
    spec, problem, steps = anneal(barrier=low, gain=Schedule.constant(128), steps=60)
    spins = exact_run(spec, problem, steps)
    lsq = small_lsq(3, 8)
    spec = Spec(cells=3, weight_bits=2, init="random", barrier=low, gain=Schedule.constant(16))
    diagonal = exact_run(spec, lsq, steps)
    assert spins.ift == pytest.approx(1, rel=2e-3)
    assert abs(diagonal.ift - 1) > 0.05


def test_entropy_and_chi_square_helpers():
    assert entropy_bits(np.full(8, 1 / 8)) == pytest.approx(3)
    assert entropy_bits(np.array([1.0, 0, 0])) == 0
    probs = np.array([0.5, 0.25, 0.25, 0.0])
    assert chi_square(np.array([50, 25, 25, 0]), probs)[0] == 0
    assert math.isinf(chi_square(np.array([50, 25, 24, 1]), probs)[0])
    chi2, dof, limit = chi_square(np.array([90, 5, 5, 0]), probs)
    assert dof == 2 and chi2 > limit


def test_figures_test_the_final_states_against_the_exact_distribution():
    spec, problem, steps = anneal()
    exact = exact_run(spec, problem, steps)
    rng = np.random.default_rng(3)
    runs, space = 400, exact.space
    finals = space.weights[rng.choice(space.size, runs, p=exact.p_final)]
    starts = space.weights[rng.integers(0, space.size, runs)]
    heat = rng.normal(exact.mean_heat_u, 1.0, runs)
    figures = second_law_figures(exact, heat, starts, finals)
    assert figures["histogram_ok"] and figures["runs"] == runs
    assert figures["clausius_bound_u"] == exact.clausius_bound_u
    delta_s = np.log2(exact.p0[space.index(starts)]) - np.log2(
        exact.p_final[space.index(finals)])
    assert figures["mean_entropy_production"] == pytest.approx(np.mean(heat + delta_s))
    assert figures["ift_mean"] == pytest.approx(np.mean(np.exp2(-heat - delta_s)))
    assert figures["ift_tested"]
    wrong = second_law_figures(exact, heat, starts, space.weights[np.zeros(runs, int)])
    assert not wrong["histogram_ok"] and not wrong["passed"]
    few = second_law_figures(exact, heat[:10] + 50, starts[:10], finals[:10])
    assert not few["ift_tested"] and few["ift_ok"] and few["chi_square_dof"] == 0


def test_clausius_bound_of_a_report_is_skipped_beyond_its_budget():
    spec, problem, steps = anneal()
    bound = clausius_bound(spec, problem, steps)
    assert bound["clausius_bound_u"] == pytest.approx(exact_run(spec, problem, steps,
                                                                 tilted=False).clausius_bound_u)
    assert bound["states"] == 256
    assert clausius_bound(spec, problem, steps, budget=256 * 8 * steps - 1) is None
    big = ising(20, 1)
    assert clausius_bound(Spec(cells=20, weight_bits=1), big, 10) is None
