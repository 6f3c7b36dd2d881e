"""Shared helpers for the golden-model tests."""

import zlib

import numpy as np
import pytest

from python_model import QuadraticProblem


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
