"""Shared helpers for the golden-model tests."""

import gc
import zlib

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable
from limemu.model import QuadraticProblem


def random_problem(rng, n, density=0.5, magnitude=3, diagonal=True):
    """A random symmetric integer problem (dense matrix form)."""
    upper = np.triu(rng.integers(-magnitude, magnitude + 1, (n, n)) * (rng.random((n, n))
                                                                      < density))
    if not diagonal:
        np.fill_diagonal(upper, 0)
    Q = upper + np.triu(upper, 1).T
    b = rng.integers(-5, 6, n)
    return QuadraticProblem.dense(Q, b, name=f"random{n}")


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id: the same numbers on every run of that test."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


@pytest.fixture(autouse=True)
def collect_garbage_after_each_test():
    """Collect after every test, so that a warning raised while an object is destroyed (such
    as amaranth's "created but never used") fails the test that caused it, every time, rather
    than whichever test the collector happens to run in. Amaranth only emits that warning once
    something has been elaborated in the process; enabling it from the start makes it
    independent of the order of the tests too."""
    UnusedElaboratable._MustUse__silence = False
    yield
    gc.collect()
