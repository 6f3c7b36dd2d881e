"""The crossing unit: fixed-point thresholds (docs/physics.md §4) and the three-outcome rule."""

import numpy as np
import pytest
from limemu.model.crossing import (
    ONE,
    decide,
    decide_one,
    mantissa_rom,
    outcome_counts,
    precision_report,
    threshold,
    threshold_table,
)
from limemu.model.errors import ConfigError
from limemu.model.rng import LaneStreams
from limemu.model.spec import Spec

F, M = Spec().barrier_frac_bits, Spec().mantissa_bits


@pytest.mark.parametrize("frac_bits,mantissa_bits", [(F, M), (6, 14), (12, 16), (4, 12)])
def test_thresholds_meet_the_precision_of_physics_section_4(frac_bits, mantissa_bits):
    table = threshold_table(frac_bits, mantissa_bits)[1:]
    b = np.arange(len(table))
    exact = [2 ** (32 - x / 2**frac_bits) for x in b.tolist()]
    for x, t, e in zip(b.tolist(), table.tolist(), exact):
        if x <= 20 << frac_bits:
            assert abs(t - e) / e < 2**-10, (x, t, e)
        elif x <= 32 << frac_bits:
            assert abs(t - e) <= 1, (x, t, e)         # absolute error <= 2**-32
        else:
            assert t <= 1
    rel, ab = precision_report(frac_bits, mantissa_bits)
    assert rel < 2**-10 and ab <= 1


def test_thresholds_at_integer_barriers_are_exact_powers_of_two():
    for i in range(33):
        assert threshold(i << F, F, M) == 2 ** (32 - i)
    assert threshold(34 << F, F, M) == 0


def test_thresholds_fall_monotonically():
    table = threshold_table(F, M)[1:]
    assert np.all(np.diff(table) <= 0)


def test_too_few_mantissa_bits_are_rejected_naming_the_parameter():
    with pytest.raises(ConfigError, match="mantissa_bits"):
        threshold_table(8, 8)
    with pytest.raises(ConfigError, match="mantissa_bits"):
        Spec(mantissa_bits=8)


def test_rom_is_the_table_source():
    rom = mantissa_rom(F, M)
    assert len(rom) == 2**F and rom[0] == 2**M
    assert all(threshold(f, F, M) == rom[f] << (32 - M) for f in range(2**F))


def test_vectorised_decisions_equal_the_scalar_definition():
    rng = np.random.default_rng(5)
    n = 20_000
    table = threshold_table(F, M)
    u = rng.integers(0, 2**32, n, dtype=np.int64)
    # barriers over the whole range: negative (inadmissible), small, large, beyond 34 u
    b_up = rng.integers(-(4 << F), 40 << F, n)
    b_down = np.where(rng.random(n) < 0.5, rng.integers(-(4 << F), 40 << F, n),
                      (2 << F) - b_up)
    up, down, inadmissible = decide(u, b_up, b_down, table)
    for k in range(n):
        outcome, inad = decide_one(int(u[k]), int(b_up[k]), int(b_down[k]), F, M)
        got = "up" if up[k] else "down" if down[k] else "stay"
        assert (got, bool(inadmissible[k])) == (outcome, inad), k
    assert not np.any(up & down)
    assert inadmissible.any() and (~inadmissible).any()


def frequencies(b_up, b_down, n, seed):
    u = LaneStreams(seed, 1).take(n)[0].astype(np.int64)
    table = threshold_table(F, M)
    up, down, inadmissible = decide(u, np.full(n, b_up), np.full(n, b_down), table)
    return up.mean(), down.mean(), inadmissible.mean()


def clt_bound(p, n):
    return 5 * np.sqrt(max(p * (1 - p), 1 / n) / n) + 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("e0_u", [0.5, 1, 2, 3, 4.5, 6, 8, 10, 12])
def test_crossing_frequencies_match_probabilities(e0_u):
    n = 1_000_000
    e0 = round(e0_u * 2**F)
    for d in (0, 1 << F, -(3 << (F - 1))):          # tilts of 0, 1 u and -1.5 u
        b_up, b_down = e0 - d // 2, e0 + d // 2
        if min(b_up, b_down) < 0 or 2**-(b_up / 2**F) + 2**-(b_down / 2**F) > 1:
            continue
        p_up = 2 ** -(b_up / 2**F)
        p_down = 2 ** -(b_down / 2**F)
        f_up, f_down, f_inad = frequencies(b_up, b_down, n, seed=int(e0_u * 100) + d)
        assert f_inad == 0
        assert abs(f_up - p_up) < clt_bound(p_up, n), (f_up, p_up)
        assert abs(f_down - p_down) < clt_bound(p_down, n), (f_down, p_down)


@pytest.mark.slow
def test_inadmissible_steps_are_scaled_to_sum_one():
    n = 1_000_000
    for e0_u, d_u in ((0.0, 1.0), (0.5, 0.0), (-1.0, 3.0), (1.0, 6.0)):
        b_up = round((e0_u - d_u / 2) * 2**F)
        b_down = round((e0_u + d_u / 2) * 2**F)
        p_up, p_down = 2 ** -(b_up / 2**F), 2 ** -(b_down / 2**F)
        f_up, f_down, f_inad = frequencies(b_up, b_down, n, seed=99)
        assert f_inad == 1
        assert f_up + f_down == 1
        expected = p_up / (p_up + p_down)
        assert abs(f_up - expected) < clt_bound(expected, n) + 2**-14, (e0_u, d_u)


def test_one_is_probability_one():
    assert threshold(0, F, M) == ONE
    up, down, inad = decide(np.array([ONE - 1]), np.array([0]), np.array([40 << F]),
                            threshold_table(F, M))
    assert up[0] and not down[0] and not inad[0]


def barrier_pairs(frac_bits, rng):
    """(b_up, b_down) in LSBs: admissible, inadmissible (a negative barrier, or two small
    ones), zero thresholds (beyond 34 u) and random pairs."""
    u = 1 << frac_bits
    pairs = [(0, 0), (u, u), (2 * u, 3 * u + 5), (u // 3, u // 2), (-u, 4 * u), (5 * u, -3),
             (-7 * u, -2 * u), (-u, 30 * u), (-u, 40 * u), (40 * u, 40 * u), (33 * u, 35 * u),
             (20 * u + 7, -20 * u - 7), (0, 12 * u + 1)]
    pairs += [tuple(p) for p in rng.integers(-12 * u, 36 * u, (40, 2)).tolist()]
    return np.array(pairs, dtype=np.int64).T


@pytest.mark.parametrize("frac_bits,mantissa_bits", [(F, M), (12, 16), (4, 12)])
def test_outcome_counts_are_the_draws_that_decide_each_outcome(frac_bits, mantissa_bits, rng):
    table = threshold_table(frac_bits, mantissa_bits)
    b_up, b_down = barrier_pairs(frac_bits, rng)
    up, down, inadmissible = outcome_counts(b_up, b_down, table)
    assert np.array_equal(inadmissible, decide(np.zeros(len(b_up), np.uint32), b_up, b_down,
                                               table)[2])
    assert inadmissible.any() and not inadmissible.all()
    v = np.arange(1 << 16, dtype=np.int64)
    for i in range(len(b_up)):
        assert up[i] >= 0 and down[i] >= 0 and up[i] + down[i] <= ONE
        if inadmissible[i]:
            # the scaled compare reads u >> 16: count the draws over every value of it
            for low in (0, 0xFFFF, int(rng.integers(0, 1 << 16))):
                u = v << 16 | low
                got_up, got_down, _ = decide(u, np.full(len(u), b_up[i]),
                                             np.full(len(u), b_down[i]), table)
                assert np.count_nonzero(got_up) << 16 == up[i], (b_up[i], b_down[i])
                assert np.all(got_up ^ got_down)
            assert up[i] + down[i] == ONE
        else:
            # up for u < T+, down for T+ <= u < T+ + T-, stay above: check at every edge
            edges = np.array([0, up[i] - 1, up[i], up[i] + down[i] - 1, up[i] + down[i],
                              ONE - 1], dtype=np.int64)
            edges = edges[(edges >= 0) & (edges < ONE)]
            got_up, got_down, _ = decide(edges, np.full(len(edges), b_up[i]),
                                         np.full(len(edges), b_down[i]), table)
            assert np.array_equal(got_up, edges < up[i])
            assert np.array_equal(got_down, (edges >= up[i]) & (edges < up[i] + down[i]))
