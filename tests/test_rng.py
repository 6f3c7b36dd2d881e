"""The per-lane generator: vectorised model == register-level reference; stream statistics."""

import numpy as np
import pytest
from limemu.model.rng import COMPONENTS, LaneGenerator, LaneStreams, register_seeds


def gf2_mulmod(a, b, modulus, degree):
    result = 0
    while b:
        if b & 1:
            result ^= a
        b >>= 1
        a <<= 1
        if (a >> degree) & 1:
            a ^= modulus
    return result


@pytest.mark.parametrize("r,s", COMPONENTS)
def test_trinomials_are_primitive(r, s):
    # 2**r - 1 is a Mersenne prime, so irreducible (x**(2**r) == x mod f) implies primitive
    modulus = (1 << r) | (1 << s) | 1
    x = 2
    for _ in range(r):
        x = gf2_mulmod(x, x, modulus, r)
    assert x == 2


@pytest.mark.parametrize("seed,lanes", [(1, 1), (12345, 3), (2**63 + 7, 8), (0, 5)])
def test_vectorised_streams_equal_register_reference(seed, lanes):
    streams = LaneStreams(seed, lanes)
    # odd sizes cross 64-bit word and block boundaries
    got = np.concatenate([streams.take(n) for n in (1, 2, 5, 999, 40001, 3)], axis=1)
    reference = [LaneGenerator(seed, lane) for lane in range(lanes)]
    expected = np.array([[g.next_draw() for _ in range(got.shape[1])] for g in reference],
                        dtype=np.uint32)
    mismatch = np.argwhere(got != expected)
    assert mismatch.size == 0, f"first mismatch (lane, draw) = {mismatch[0]}"


def test_streams_reproducible_per_seed_and_different_across_seeds():
    a = LaneStreams(42, 4).take(10_000)
    b = LaneStreams(42, 4).take(10_000)
    c = LaneStreams(43, 4).take(10_000)
    assert np.array_equal(a, b)
    assert np.mean(a == c) < 0.001


def test_register_seeds_are_nonzero_and_fit():
    for lane in range(64):
        for (r, _), bits in zip(COMPONENTS, register_seeds(7, lane)):
            assert 0 < bits < 1 << r


@pytest.mark.slow
def test_draws_are_uniform_in_every_byte():
    draws = LaneStreams(3, 2).take(500_000).ravel()
    n = draws.size
    for shift in (0, 8, 16, 24):
        counts = np.bincount((draws >> shift) & 255, minlength=256)
        chi2 = np.sum((counts - n / 256) ** 2 / (n / 256))
        # chi-square with 255 dof: P(chi2 > 350) ~ 1e-4
        assert chi2 < 350, (shift, chi2)


@pytest.mark.slow
def test_lanes_are_independent_and_draws_uncorrelated_in_time():
    lanes = 8
    u = LaneStreams(11, lanes).take(200_000).astype(np.float64) / 2**32 - 0.5
    n = u.shape[1]
    bound = 5 / np.sqrt(n)               # 5 sigma of a correlation coefficient estimate
    corr = np.corrcoef(u)
    off = corr[~np.eye(lanes, dtype=bool)]
    assert np.max(np.abs(off)) < bound
    for lag in (1, 2, 3, 4, 89, 127):
        for lane in range(lanes):
            c = np.corrcoef(u[lane, :-lag], u[lane, lag:])[0, 1]
            assert abs(c) < bound, (lane, lag, c)
    # pairs of consecutive draws fill a 16 x 16 grid evenly (serial test)
    cells = (np.floor((u[:, :-1] + 0.5) * 16) * 16 + np.floor((u[:, 1:] + 0.5) * 16)).astype(int)
    counts = np.bincount(cells.ravel(), minlength=256)
    expected = cells.size / 256
    assert np.sum((counts - expected) ** 2 / expected) < 350
