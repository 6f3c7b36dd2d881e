"""Problems for the array, built from Python objects: the API's builders.

Each returns a :class:`~limemu.workloads.Workload`: the integer quadratic problem
``L(W) = 1/2 W^T Q W - b^T W``, the weight format it needs, and how to judge a result
(``evaluate(weights)``, ``reference``).
"""

import os
from collections.abc import Sequence

import numpy as np

from limemu.model.errors import ConfigError, require
from limemu.model.problem import QuadraticProblem

from .workloads import (
    Graph,
    Workload,
    build_workload,
    check_weights,
    int_option,
    lsq_workload,
    maxcut_workload,
    twoparam_workload,
)

DENSE_SMALL = 64           # quadratic(): Q of up to this many variables is stored dense,
DENSE_MAX_CELLS = 1024     # of up to this many if a quarter full (the RTL's dense Q is N^2)


def maxcut(graph: Graph | str | os.PathLike | None = None, *, cells: int | None = None,
           seed: int = 1, degree: float = 6.0, weights: str = "unit",
           best_known: int | None = None) -> Workload:
    """Max-Cut as an Ising problem on spins (Q = the weighted adjacency, b = 0).

    graph: a :class:`~limemu.workloads.Graph`, or the path of a G-set file; None: a seeded
    random graph of `cells` nodes (default 64) and mean degree `degree`, edge weights
    ``"unit"`` or ``"pm1"``. The cut is recomputed from the spins (``metrics["cut"]``);
    G-set graphs get their best known cut, graphs up to 16 nodes their exact optimum."""
    if isinstance(graph, (str, os.PathLike)):
        return maxcut_workload(path=graph, cells=cells, seed=seed, best_known=best_known)
    return maxcut_workload(graph=graph, cells=cells, seed=seed, degree=degree, weights=weights,
                           best_known=best_known)


def least_squares(X: np.ndarray | None = None, y: np.ndarray | None = None, *, bits: int = 8,
                  q_max: int = 2 ** 12) -> Workload:
    """Least squares ``y ~ X w`` on `bits`-bit weights: the fit's likelihood as the loss,
    scaled and rounded to integer Q and b with max |Q| = `q_max` (limemu.workloads.lsq).
    Without X and y: scikit-learn's diabetes data, standardised. ``metrics`` compares the
    result with NumPy's solution."""
    require((X is None) == (y is None), "X, y", "one of them", "give both X and y, or neither")
    return lsq_workload(bits=bits, q_max=q_max, data=None if X is None else (X, y))


def two_parameter(bits: int = 8) -> Workload:
    """The two-parameter tilted valley of the paper's Fig. 4 (arXiv 2402.14878)."""
    return twoparam_workload(bits=bits)


def quadratic(Q: np.ndarray | QuadraticProblem, b: Sequence[int] | np.ndarray | None = None, *,
              bits: int = 4, name: str = "quadratic",
              q_storage: str | None = None) -> Workload:
    """A general quadratic form ``L(W) = 1/2 W^T Q W - b^T W`` on `bits`-bit weights (1 =
    spins +-1). Q: a symmetric integer matrix (or a QuadraticProblem, then b is its own); b:
    integers (default zero). q_storage: ``dense`` or ``sparse`` (default: dense for up to 64
    variables, or up to 1024 when Q is at least a quarter full)."""
    if isinstance(Q, QuadraticProblem):
        require(b is None, "b", "given", "a QuadraticProblem carries its own b")
        problem = Q
    else:
        Q = np.asarray(Q)
        b = np.zeros(Q.shape[0] if Q.ndim else 0, np.int64) if b is None else np.asarray(b)
        problem = QuadraticProblem.dense(Q, b, name=name)
    int_option("bits", bits, 1, 16)
    n = problem.n
    if q_storage is None:
        small = n <= DENSE_SMALL or (n <= DENSE_MAX_CELLS and 4 * problem.nnz >= n * n)
        q_storage = "dense" if small else "sparse"

    def evaluate(weights):
        return {"loss": problem.loss(check_weights(weights, n, bits))}

    description = (f"quadratic form {problem.name!r}: {n} variables, {problem.nnz} nonzero "
                   f"entries of Q, {bits}-bit weights")
    options = {"name": problem.name, "cells": n, "bits": bits}
    return Workload(name="quadratic", problem=problem, weight_bits=bits, q_storage=q_storage,
                    description=description, evaluate=evaluate, options=options)


def workload_from_options(name, options, seed, cells=None):
    """The workload of the command line's options (--workload, --graph, --cells, --bits)."""
    workload_options = {"seed": seed}
    if name == "maxcut":
        if options.get("graph"):
            workload_options["path"] = options["graph"]
        else:
            workload_options["cells"] = int(cells)
    elif name == "lsq":
        workload_options["cells"] = int(cells)
    if options.get("bits") is not None and name != "maxcut":
        workload_options["bits"] = int(options["bits"])
    if name == "twoparam":
        workload_options.pop("seed")
    workload = build_workload(name, **workload_options)
    bits = workload.weight_bits
    if options.get("bits") is not None and int(options["bits"]) != bits:
        raise ConfigError(f"bits = {options['bits']}: the {name} workload needs {bits}")
    return workload
