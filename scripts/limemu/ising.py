"""Ising problems with real biases on the array's integers: the scaling and rounding rule.

An Ising energy ``E(s) = offset + sum_i h_i s_i + sum_(i<j) J_ij s_i s_j`` (spins +-1) runs on
the array as ``L(s) = 1/2 s^T Q s - b^T s`` with integers

    Q_ij = Q_ji = round(scale * J_ij),   Q_ii = 0,   b_i = -round(scale * h_i)

so that ``L(s) ~ scale * (E(s) - offset)``. The scale is chosen in this order:

1. 1, when every bias is an integer that fits Q's format (exact);
2. else the smallest integer m <= levels / max|bias| that makes every bias an integer (exact:
   biases on a grid of 1/m, such as decimals);
3. else levels / max|bias|: the largest bias becomes +-levels and every bias is rounded to the
   nearest integer (half to even).

"An integer" allows a relative error of 64 float epsilons of the biases' type. The rounding is
reported (``IsingScaling``): the largest error of one bias and the bound on every state's
energy error (the sum of the errors of all biases), both in the units of E; and whether the
rounding can change the order of the states' energies. For up to ENUMERATE_MAX spins every
state is compared; above, only the bound is known: two states can swap only when their energies
differ by at most twice the bound.

The reads of a sample are independent runs of the problem from seeds derived from one
(``read_seeds``), in this process or on a Dask cluster (``run_reads``).
"""

from dataclasses import asdict, dataclass

import numpy as np

from limemu.model.errors import require
from limemu.model.problem import QuadraticProblem

from .api import run
from .problems import quadratic
from .progress import bar

DEFAULT_LEVELS = 64        # rule 3: the largest bias becomes +-64 (see docs/api.md for why)
ENUMERATE_MAX = 16         # the order of the energies is checked on every state up to this
MAX_SEARCH = 4096          # rule 2 tries the integers m up to this


@dataclass(frozen=True)
class IsingScaling:
    """How an Ising problem was put on the array's integers (see the module docstring)."""

    scale: float
    exact: bool
    max_rounding_error: float
    energy_error_bound: float
    order_may_change: bool
    order_check: str

    def info(self) -> dict:
        return asdict(self)


def ising_problem(n, linear, rows, cols, quadratic, *, levels=DEFAULT_LEVELS, q_bits=16,
                  name="ising"):
    """(QuadraticProblem on spins, IsingScaling) of the Ising problem with `n` spins, linear
    biases `linear` and couplings `quadratic[k]` between `rows[k]` and `cols[k]`."""
    limit = 2 ** (q_bits - 1) - 1
    require(isinstance(levels, int) and 1 <= levels <= limit, "levels", levels,
            f"must be an integer in [1, {limit}] (Q's format holds +-{limit})")
    h = np.asarray(linear)
    J = np.asarray(quadratic)
    require(h.shape == (n,), "linear biases", f"shape {h.shape}", f"must have {n} entries")
    biases = np.concatenate((h, J)).astype(np.float64)
    require(bool(np.all(np.isfinite(biases))), "biases", "not finite", "must be finite numbers")
    tolerance = 64 * float(np.finfo(np.result_type(h.dtype, J.dtype, np.float32)).eps)
    scale, exact = choose_scale(biases, levels, limit, tolerance)
    h_int = np.rint(scale * h.astype(np.float64)).astype(np.int64)
    J_int = np.rint(scale * J.astype(np.float64)).astype(np.int64)
    problem = QuadraticProblem.sparse(n, rows, cols, J_int, b=-h_int, name=name)
    errors = biases - np.concatenate((h_int, J_int)) / scale
    if exact:
        errors = np.zeros_like(errors)
    bound = float(np.sum(np.abs(errors)))
    may_change, check = order_change(n, h, rows, cols, J, problem, exact, bound)
    return problem, IsingScaling(scale=float(scale), exact=exact,
                                 max_rounding_error=float(np.max(np.abs(errors), initial=0.0)),
                                 energy_error_bound=bound, order_may_change=may_change,
                                 order_check=check)


def choose_scale(biases, levels, limit, tolerance):
    """(scale, exact) by the three rules of the module docstring."""
    largest = float(np.max(np.abs(biases), initial=0.0))
    if largest == 0.0 or (is_integral(biases, tolerance) and largest <= limit):
        return 1.0, True
    values = np.unique(np.abs(biases))
    for m in range(2, min(int(levels / largest), MAX_SEARCH) + 1):
        if is_integral(m * values, tolerance):
            return float(m), True
    return levels / largest, False


def is_integral(values, tolerance):
    values = np.asarray(values, dtype=np.float64)
    return bool(np.all(np.abs(values - np.rint(values)) <= tolerance * np.maximum(1.0,
                                                                                  np.abs(values))))


def order_change(n, h, rows, cols, J, problem, exact, bound):
    """(whether the rounding can change the order of the states' energies, how that was
    decided)."""
    if exact:
        return False, "exact: the integers are the biases times the scale"
    if n > ENUMERATE_MAX:
        return True, (f"bound: two states can swap only if their energies differ by at most "
                      f"{2 * bound:.6g} (twice energy_error_bound)")
    states = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    energy = states @ np.asarray(h, np.float64) + np.sum(
        np.asarray(J, np.float64) * states[:, rows] * states[:, cols], axis=1)
    Q = problem.to_dense()
    loss2 = np.einsum("ki,ij,kj->k", states, Q, states) - 2 * states @ problem.b
    order = np.argsort(energy, kind="stable")
    energy, loss2 = energy[order], loss2[order]
    tie = 1e-9 * max(1.0, float(np.max(np.abs(energy))))
    starts = np.flatnonzero(np.concatenate(([True], np.diff(energy) > tie)))
    lowest = np.minimum.reduceat(loss2, starts)                # of each level of E
    highest = np.maximum.reduceat(loss2, starts)
    below = np.maximum.accumulate(highest)[:-1]                # of all lower levels
    changed = bool(np.any(below >= lowest[1:]))
    return changed, f"all {2 ** n} states compared"


# -- the reads: independent runs of one problem -------------------------------------------------
def read_seeds(seed, count):
    """`count` independent 64-bit run seeds from `seed` (None: fresh entropy)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count, np.uint64)]


def one_read(problem, spec, steps, backend, options):
    """One read (a run of `steps` steps from the spec's seed): the final spins and what the
    sample set's info keeps of it. A plain function of plain objects, for Dask workers."""
    workload = quadratic(problem, bits=1)
    result = run(workload, spec, steps, backend=backend, progress=False, **options)
    record = result.to_dict()
    return {"spins": result.weights, "seed": spec.seed, "counters": record["counters"],
            "overflow": record["overflow"], "energy": record["energy"],
            "first_law": record["identities"]["first_law"]}


def run_reads(problem, specs, steps, backend, options, *, scheduler=None, progress=True):
    """one_read for every spec, in this process or on the Dask scheduler `scheduler` (an
    address, or a distributed.Client); in the order of `specs`."""
    with bar(total=len(specs), desc="  reads", unit="read",
             enabled=progress and len(specs) > 1) as meter:
        if scheduler is None:
            out = []
            for spec in specs:
                out.append(one_read(problem, spec, steps, backend, options))
                meter.update(1)
            return out
        return _reads_on_dask(scheduler, problem, specs, steps, backend, options, meter)


def _reads_on_dask(scheduler, problem, specs, steps, backend, options, meter):
    from dask.distributed import Client, as_completed  # noqa: PLC0415

    client = scheduler if hasattr(scheduler, "submit") else Client(scheduler)
    try:
        futures = [client.submit(one_read, problem, spec, steps, backend, options, pure=False)
                   for spec in specs]
        where = {future.key: k for k, future in enumerate(futures)}
        out = [None] * len(futures)
        for future in as_completed(futures):
            out[where[future.key]] = future.result()
            meter.update(1)
        return out
    finally:
        if client is not scheduler:
            client.close()
