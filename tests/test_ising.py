"""The rounding rule of Ising problems with real biases (ising.py): scale, errors, order."""

import itertools

import numpy as np
import pytest
from limemu.ising import ENUMERATE_MAX, ising_problem, read_seeds
from limemu.model import ConfigError


def random_ising(rng, n, density=0.6):
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < density]
    rows = np.array([i for i, _ in pairs], dtype=np.int64)
    cols = np.array([j for _, j in pairs], dtype=np.int64)
    return rng.normal(size=n), rows, cols, rng.normal(size=len(pairs))


def all_states(n):
    return 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)


def energies(h, rows, cols, J, states):
    return states @ h + np.sum(J * states[:, rows] * states[:, cols], axis=1)


@pytest.mark.parametrize("levels", [4, 64, 1000])
@pytest.mark.parametrize("n", [1, 6, 10])
def test_every_state_is_within_the_bound_of_its_energy(rng, n, levels):
    h, rows, cols, J = random_ising(rng, n)
    problem, scaling = ising_problem(n, h, rows, cols, J, levels=levels)
    states = all_states(n)
    on_array = np.array([problem.loss(s) for s in states]) / scaling.scale
    error = np.abs(energies(h, rows, cols, J, states) - on_array)
    assert np.max(error) <= scaling.energy_error_bound + 1e-9
    assert scaling.scale == pytest.approx(levels / np.max(np.abs(np.concatenate((h, J)))))
    assert scaling.max_rounding_error <= 0.5 / scaling.scale
    assert scaling.max_rounding_error > 0 or n == 1      # one bias: it becomes +-levels exactly


@pytest.mark.parametrize("levels", [2, 3, 8, 64])
def test_the_order_check_agrees_with_every_pair_of_states(rng, levels):
    n = 6
    h, rows, cols, J = random_ising(rng, n)
    problem, scaling = ising_problem(n, h, rows, cols, J, levels=levels)
    states = all_states(n)
    E = energies(h, rows, cols, J, states)
    L = np.array([problem.loss2(s) for s in states])
    reordered = any(E[a] < E[b] - 1e-9 and L[a] >= L[b]
                    for a, b in itertools.permutations(range(len(states)), 2))
    assert scaling.order_may_change == reordered
    assert scaling.order_check == f"all {2 ** n} states compared"


def test_coarse_rounding_of_close_states_is_reported():
    # E(+1, -1) = -0.001 and E(-1, +1) = +0.001 round to the same integers at 4 levels
    problem, scaling = ising_problem(2, np.array([1.0, 1.001]), np.array([], np.int64),
                                     np.array([], np.int64), np.array([]), levels=4)
    assert scaling.order_may_change and not scaling.exact


@pytest.mark.parametrize("h,J,scale", [
    ([3.0, -2.0], [105.0], 1.0),               # integers
    ([0.1, -0.3], [0.7], 10.0),                # one decimal
    ([0.25, 0.5], [-1.75], 4.0),               # quarters
    ([1 / 3, 2 / 3], [1.0], 3.0),              # thirds
    ([0.0, 0.0], [0.0], 1.0),                  # nothing to scale
])
def test_biases_on_a_grid_run_exactly(h, J, scale):
    problem, scaling = ising_problem(2, np.array(h), np.array([0]), np.array([1]),
                                     np.array(J))
    assert scaling.exact and scaling.scale == scale and scaling.energy_error_bound == 0
    assert not scaling.order_may_change and scaling.order_check.startswith("exact")
    assert problem.b.tolist() == [-round(scale * x) for x in h]


def test_integers_beyond_the_format_are_scaled_down():
    problem, scaling = ising_problem(2, np.array([1e6, 0.0]), np.array([0]), np.array([1]),
                                     np.array([3.0]), levels=64)
    assert not scaling.exact and scaling.scale == pytest.approx(64e-6)
    assert problem.b.tolist() == [-64, 0]


def test_large_problems_report_the_bound_only(rng):
    n = ENUMERATE_MAX + 1
    h, rows, cols, J = random_ising(rng, n, density=0.2)
    _, scaling = ising_problem(n, h, rows, cols, J)
    assert scaling.order_may_change and scaling.order_check.startswith("bound")


@pytest.mark.parametrize("levels,h,fragment", [
    (0, [1.0], "levels = 0"),
    (1 << 15, [1.0], "levels = 32768"),
    (64, [float("nan")], "biases"),
])
def test_bad_input_is_refused(levels, h, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ising_problem(1, np.array(h), np.array([], np.int64), np.array([], np.int64),
                      np.array([]), levels=levels)


def test_read_seeds_are_distinct_and_reproducible():
    assert read_seeds(5, 4) == read_seeds(5, 4)
    assert len(set(read_seeds(5, 100))) == 100
    assert read_seeds(5, 4) != read_seeds(6, 4)
    assert all(0 <= s < 2 ** 64 for s in read_seeds(None, 3))
