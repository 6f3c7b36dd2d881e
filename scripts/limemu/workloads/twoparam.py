"""A two-parameter demo in the spirit of the paper's Fig. 4.

Two cells of ``bits`` bits (default 8) learn ``W = (W_x, W_y)`` on a quadratic loss whose
contours form an elongated, tilted valley:

    Q = [[10, 6], [6, 5]]      eigenvalues 14 and 1 (condition number 14); the soft (valley)
                               direction is (2, -3)/sqrt(13), about -56 degrees from the W_x axis

and ``b = round(Q W_target)`` with ``W_target = (0.5 h + 1/3, -0.25 h - 1/7)``,
``h = 2^(bits-1)``: the continuous optimum ``Q^-1 b`` is off the integer grid, well inside the
range and far from the start point ``W = 0`` (the "trivial solution" the memory starts in,
L = 0). ``reference`` holds the integer optimum W*, found by exhaustive search over all
``2^(2 bits)`` states (65536 for 8 bits).
"""

import math

import numpy as np

from limemu.model.errors import require
from limemu.model.problem import QuadraticProblem
from limemu.model.spec import ladder

from .base import Workload, check_weights, int_option

Q_VALLEY = np.array([[10, 6], [6, 5]], dtype=np.int64)
TARGET_FRACTION = (0.5, -0.25)
TARGET_OFFSET = (1 / 3, -1 / 7)
DEFAULT_BITS = 8
BITS_RANGE = (4, 12)


def exhaustive_minimum(problem, bits):
    """Integer minimum of a 2-cell problem over all (2^bits)^2 states, exact integer arithmetic.

    Returns ``(W_star, loss2_star, ties)``: the first minimiser in (W_x, W_y) lexicographic
    order, 2 L(W*), and how many states share that loss.
    """
    require(problem.n == 2, "cells", problem.n, "exhaustive_minimum is for two cells")
    lo, hi, _ = ladder(bits)
    values = np.arange(lo, hi + 1, dtype=np.int64)
    Q = problem.to_dense()
    b = problem.b
    best = None
    ties = 0
    for start in range(0, len(values), 256):             # blocks of W_x rows
        x = values[start:start + 256][:, None]
        y = values[None, :]
        loss2 = Q[0, 0] * x * x + 2 * Q[0, 1] * x * y + Q[1, 1] * y * y - 2 * (b[0] * x + b[1] * y)
        m = int(loss2.min())
        count = int(np.count_nonzero(loss2 == m))
        if best is None or m < best[1]:
            r, c = np.unravel_index(int(np.argmin(loss2)), loss2.shape)
            best = ((int(x[r, 0]), int(y[0, c])), m)
            ties = count
        elif m == best[1]:
            ties += count
    return np.array(best[0], dtype=np.int64), best[1], ties


def twoparam_workload(cells=2, bits=DEFAULT_BITS, seed=None):
    """The two-parameter valley. ``cells`` must be 2; ``bits`` in [4, 12] (the reference
    enumerates all 2^(2 bits) states); ``seed`` is accepted for a uniform interface and unused
    (the workload is deterministic)."""
    cells = int_option("cells", cells)
    require(cells == 2, "cells", cells, "the two-parameter demo has exactly 2 cells")
    bits = int_option("bits", bits, *BITS_RANGE)
    if seed is not None:
        int_option("seed", seed, 0)
    lo, hi, _ = ladder(bits)
    h = 2 ** (bits - 1)
    target = np.array([f * h + o for f, o in zip(TARGET_FRACTION, TARGET_OFFSET)])
    b = np.rint(Q_VALLEY @ target).astype(np.int64)
    problem = QuadraticProblem.dense(Q_VALLEY, b, name=f"twoparam:{bits}b")

    Qf = Q_VALLEY.astype(np.float64)
    W_cont = np.linalg.solve(Qf, b.astype(np.float64))
    eig, vec = np.linalg.eigh(Qf)
    soft = vec[:, 0] * np.sign(vec[0, 0])
    W_star, loss2_star, ties = exhaustive_minimum(problem, bits)
    start = np.zeros(2, dtype=np.int64)
    loss_star = loss2_star / 2
    loss_start = problem.loss(start)

    def evaluate(weights):
        W = check_weights(weights, 2, bits)
        loss = problem.loss(W)
        d = (W - W_star).astype(np.float64)
        return {
            "loss": loss,
            "loss_gap": loss - loss_star,
            "distance": float(np.hypot(d[0], d[1])),
            "distance_inf": int(np.max(np.abs(W - W_star))),
            "distance_q": float(math.sqrt(max(0.0, float(d @ Qf @ d)))),
            "at_optimum": bool(problem.loss2(W) == loss2_star),
            "W_star": W_star.tolist(),
        }

    reference = {
        "W_star": W_star.tolist(),
        "loss_star": loss_star,
        "loss2_star": loss2_star,
        "optimal_states": ties,
        "W_cont": W_cont.tolist(),
        "loss_cont": -0.5 * float(b @ W_cont),
        "W_target": target.tolist(),
        "W_start": start.tolist(),
        "loss_start": loss_start,
        "condition_number": float(eig[-1] / eig[0]),
        "eigenvalues": eig.tolist(),
        "valley_direction": soft.tolist(),
        "valley_angle_deg": math.degrees(math.atan2(soft[1], soft[0])),
        "range": [lo, hi],
        "max_abs_field": problem.max_abs_field(max(-lo, hi)),
    }
    description = (f"two-parameter tilted valley (Fig. 4 demo), {bits}-bit weights, condition "
                   f"number {eig[-1] / eig[0]:.3g}, W* = {tuple(W_star.tolist())}, start W = 0")
    options = {"cells": cells, "bits": bits, "seed": seed}
    return Workload(name="twoparam", problem=problem, weight_bits=bits, q_storage="dense",
                    description=description, evaluate=evaluate, reference=reference,
                    options=options)
