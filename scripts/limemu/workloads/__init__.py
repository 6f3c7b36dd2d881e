"""Workloads: integer quadratic problems for the emulator, each with its own metrics.

A :class:`Workload` bundles a :class:`~limemu.model.problem.QuadraticProblem`
(``L(W) = 1/2 W^T Q W - b^T W``), the weight format it needs, a one-line description, an
``evaluate(weights) -> dict`` of metrics computed from the final integer weights, and a
``reference`` dict (the exact or best-known optimum, for reports).

``build_workload(name, **options)`` builds one by name:

* ``"maxcut"``: Max-Cut as an Ising problem on spins, from a G-set file or a random graph
  (:mod:`.maxcut`, :mod:`.gset`);
* ``"lsq"``: least squares on scikit-learn's diabetes data, 10 signed multi-bit weights
  (:mod:`.lsq`);
* ``"twoparam"``: a two-parameter elongated, tilted quadratic valley, the paper's Fig. 4 demo
  (:mod:`.twoparam`).

Workloads may use scikit-learn (imported lazily, inside the function that needs it); the
golden model itself stays NumPy-only.
"""

import inspect

from limemu.model.errors import require

from .base import Workload, check_weights, int_option, posterior_std
from .gset import Graph, parse_gset, random_graph, write_gset
from .lsq import lsq_workload
from .maxcut import exhaustive_maxcut, maxcut_workload
from .twoparam import twoparam_workload

BUILDERS = {"lsq": lsq_workload, "maxcut": maxcut_workload, "twoparam": twoparam_workload}
WORKLOAD_NAMES = tuple(BUILDERS)


def workload_options(name):
    """The option names ``build_workload(name, ...)`` accepts."""
    require(name in BUILDERS, "workload", name, f"unknown workload; known: {WORKLOAD_NAMES}")
    return tuple(inspect.signature(BUILDERS[name]).parameters)


def build_workload(name, **options):
    """Build the workload ``name`` (one of ``WORKLOAD_NAMES``) with keyword ``options``.

    Raises ConfigError naming an unknown workload or option (and listing the accepted ones)."""
    allowed = workload_options(name)
    for key in options:
        require(key in allowed, key, options[key],
                f"unknown option of workload {name!r}; accepted: {', '.join(allowed)}")
    return BUILDERS[name](**options)


__all__ = ["Graph", "Workload", "WORKLOAD_NAMES", "build_workload", "check_weights",
           "exhaustive_maxcut", "int_option", "lsq_workload", "maxcut_workload", "parse_gset",
           "posterior_std", "random_graph", "twoparam_workload",
           "workload_options", "write_gset"]
