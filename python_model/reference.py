"""A slow, cycle-by-cycle reference of the array: the hardware's loop written out in Python.

It uses the register-level generator (LaneGenerator), the scalar crossing rule (decide_one) and
a field update after every group. It is the readable specification of what the RTL does in
each cycle; the compiled engine (engine.py, kernels.py) is the same loop, and the tests compare
the two exactly.
"""

from dataclasses import dataclass

import numpy as np

from .counters import counter_names
from .crossing import decide_one
from .rng import LaneGenerator


@dataclass
class ReferenceRun:
    """What a reference run ends with: weights, exact counters, field, and what the engine
    reports besides (per-cell moves, weights after every step, coupling error)."""

    weights: np.ndarray
    counts: dict
    field: np.ndarray
    cell_up: np.ndarray
    cell_down: np.ndarray
    snapshots: np.ndarray          # (steps, cells): weights after each step
    coupling_error: int            # energy LSBs: heat of the loss cross terms of group moves


def reference_run(spec, problem, order, weights, steps, progress=None):
    """Returns (weights, counters dict of exact ints, field) after `steps` steps from step 0;
    calls progress(step, steps) after every step if given."""
    run = reference_details(spec, problem, order, weights, steps, progress)
    return run.weights, run.counts, run.field


def new_counts(spec):
    """Every counter of an array of this spec, at 0."""
    return {name: 0 for name in counter_names(spec)}


def reference_details(spec, problem, order, weights, steps, progress=None):
    """The run of reference_run with everything it records (a ReferenceRun)."""
    n, lanes = spec.cells, spec.lanes
    W = np.array(weights, dtype=np.int64)
    Q = problem.to_dense()
    g = Q @ W - problem.b
    generators = [LaneGenerator(spec.seed, lane) for lane in range(lanes)]
    cell_at_slot = {int(s): int(c) for s, c in zip(order.slot, order.sequence)}
    counts = new_counts(spec)
    up, down = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    snapshots, coupling = [], 0
    loss2 = int(W @ Q @ W) - 2 * int(problem.b @ W)
    for k in range(steps):
        e0 = int(spec.barrier.values_at([k])[0])
        eta = int(spec.gain.values_at([k])[0]) << spec.tilt_shift
        for group in range(order.groups):
            moves = []
            for lane in range(lanes):
                u = generators[lane].next_draw()
                cell = cell_at_slot.get(group * lanes + lane)
                if cell is None:
                    continue                                   # idle lane: draw, no cell
                d = spec.delta
                dl_up = 2 * d * int(g[cell]) + d * d * int(Q[cell, cell])
                dl_down = -2 * d * int(g[cell]) + d * d * int(Q[cell, cell])
                outcome, inadmissible = decide_one(u, e0 + eta * dl_up, e0 + eta * dl_down,
                                                   spec.barrier_frac_bits, spec.mantissa_bits)
                counts["evaluations"] += 1
                counts["inadmissible"] += inadmissible
                if outcome == "stay":
                    continue
                at_end = W[cell] == (spec.w_hi if outcome == "up" else spec.w_lo)
                if at_end:
                    counts["blocked_moves"] += 1
                    continue
                counts["up_moves" if outcome == "up" else "down_moves"] += 1
                (up if outcome == "up" else down)[cell] += 1
                dl = dl_up if outcome == "up" else dl_down
                h = eta * dl
                counts["heat_net"] += -2 * h
                counts["heat_abs"] += 2 * abs(h)
                loss2 += dl
                moves.append((cell, d if outcome == "up" else -d))
            # the loss changes by more than the moves' own dL2 when coupled cells move together
            cross = sum(dw_i * int(Q[i, j]) * dw_j for i, dw_i in moves for j, dw_j in moves
                        if i != j)
            coupling += 2 * eta * cross
            for cell, dw in moves:                              # field update after the group
                W[cell] += dw
                column = Q[:, cell]
                g += dw * column
                counts["field_adds"] += n if spec.q_storage == "dense" else int(
                    np.count_nonzero(column))
        e0_next = int(spec.barrier.values_at([k + 1])[0])
        eta_next = int(spec.gain.values_at([k + 1])[0])
        counts["barrier_work"] += n * max(0, e0_next - e0)
        counts["anneal_work"] += (eta_next - int(spec.gain.values_at([k])[0])) * loss2 << (
            spec.tilt_shift + 1)
        counts["steps"] += 1
        snapshots.append(W.copy())
        if progress is not None:
            progress(k + 1, steps)
    return ReferenceRun(W, counts, g, up, down, np.array(snapshots).reshape(steps, n), coupling)


def reference_external_run(spec, order, weights, steps, half_tilt):
    """External tilts: half_tilt(step, weights) gives h per cell for the whole step; the up move
    crosses E0 - h and releases 2h, the down move crosses E0 + h and releases -2h. Returns
    (weights, counters, cell_up, cell_down)."""
    n, lanes = spec.cells, spec.lanes
    W = np.array(weights, dtype=np.int64)
    generators = [LaneGenerator(spec.seed, lane) for lane in range(lanes)]
    cell_at_slot = {int(s): int(c) for s, c in zip(order.slot, order.sequence)}
    counts = new_counts(spec)
    up, down = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for k in range(steps):
        e0 = int(spec.barrier.values_at([k])[0])
        h = [int(x) for x in half_tilt(k, W.copy())]
        for slot in range(order.groups * lanes):
            u = generators[slot % lanes].next_draw()
            cell = cell_at_slot.get(slot)
            if cell is None:
                continue
            outcome, inadmissible = decide_one(u, e0 - h[cell], e0 + h[cell],
                                               spec.barrier_frac_bits, spec.mantissa_bits)
            counts["evaluations"] += 1
            counts["inadmissible"] += inadmissible
            if outcome == "stay":
                continue
            if W[cell] == (spec.w_hi if outcome == "up" else spec.w_lo):
                counts["blocked_moves"] += 1
                continue
            sign = 1 if outcome == "up" else -1
            W[cell] += sign * spec.delta
            (up if outcome == "up" else down)[cell] += 1
            counts["up_moves" if outcome == "up" else "down_moves"] += 1
            counts["heat_net"] += 2 * sign * h[cell]
            counts["heat_abs"] += 2 * abs(h[cell])
        e0_next = int(spec.barrier.values_at([k + 1])[0])
        counts["barrier_work"] += n * max(0, e0_next - e0)
        counts["steps"] += 1
    return W, counts, up, down
