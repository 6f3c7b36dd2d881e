"""A slow, cycle-by-cycle reference of the array: the hardware's loop written out in Python.

It uses the register-level generator (LaneGenerator), the scalar crossing rule (decide_one) and
a field update after every group. Tests compare the vectorised engine with it exactly; it is
also the readable specification of what the RTL does in each cycle.
"""

import numpy as np

from .crossing import decide_one
from .rng import LaneGenerator


def reference_run(spec, problem, order, weights, steps, progress=None):
    """Returns (weights, counters dict of exact ints, field) after `steps` steps from step 0;
    calls progress(step, steps) after every step if given."""
    n, lanes = spec.cells, spec.lanes
    W = np.array(weights, dtype=np.int64)
    Q = problem.to_dense()
    g = Q @ W - problem.b
    generators = [LaneGenerator(spec.seed, lane) for lane in range(lanes)]
    cell_at_slot = {int(s): int(c) for s, c in zip(order.slot, order.sequence)}
    counts = dict(steps=0, evaluations=0, up_moves=0, down_moves=0, blocked_moves=0,
                  inadmissible=0, heat_net=0, heat_abs=0, barrier_work=0, anneal_work=0,
                  field_adds=0)
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
                dl = dl_up if outcome == "up" else dl_down
                h = eta * dl
                counts["heat_net"] += -2 * h
                counts["heat_abs"] += 2 * abs(h)
                loss2 += dl
                moves.append((cell, d if outcome == "up" else -d))
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
        if progress is not None:
            progress(k + 1, steps)
    return W, counts, g
