"""The compiled loops of the golden model (Numba, ``@njit(cache=True)``).

``run_field_steps`` is the hardware's loop of ``reference.py`` written for a compiler: step by
step, group by group, every lane draws one number (idle lanes too), its cell is decided against
the field g of the group's start, the moves update W at once and g after the group. Nothing is
reordered, so the results are the reference's by construction; ``tests/test_engine.py`` checks
it on random configurations. What makes it fast only skips work whose outcome is known:

* the draws come from the lane generators 64 bits at a time (``rng.fill_draws``);
* a cheap filter decides most stays: a move needs ``u < T+ + T- <= 2 T(lowest barrier)``, so
  ``u >> 1 >= T(lowest barrier)`` is a stay, and an admissible one (an inadmissible step has
  ``T+ + T- > 2**32 > u``); only the rest goes through the full crossing rule (``decide``).

Integers are int64 throughout. Counts of a call go to ``counts`` (slots below); the heat sums
are exact in two words (``_add_wide``) because one move's half tilt can take 61 bits. The per-step
losses and cross terms go to ``step_dl2`` / ``step_cross``; ``close_steps`` turns them into the
annealing work and coupling error where int64 cannot overflow (engine.py decides, from bounds
computed before the run, when it may be used).
"""

import numpy as np
from numba import njit

from .crossing import DRAW_BITS, INADMISSIBLE_PRECISION_BITS, ONE
from .rng import fill_draws

SCALED_SHIFT = DRAW_BITS + 1 - INADMISSIBLE_PRECISION_BITS       # as in crossing._scaled
SCALED_DRAW_SHIFT = DRAW_BITS - INADMISSIBLE_PRECISION_BITS
SCALED_ONE = ONE >> SCALED_SHIFT
WIDE_LIMIT = 1 << 61            # |low word| of a wide sum stays below this (then it carries)
WIDE_UNIT_BITS = 32             # the high word counts units of 2**32

# slots of the counts array of a call
EVALUATIONS, UP, DOWN, BLOCKED, INADMISSIBLE, FIELD_ADDS = range(6)
HEAT_HI, HEAT_LO, HEAT_ABS_HI, HEAT_ABS_LO = range(6, 10)
COUNT_SLOTS = 10


# -- the crossing unit ------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _threshold(table, b):
    """T(b) from crossing.threshold_table (entry 0: b < 0, a sentinel above 2**32)."""
    last = table.shape[0] - 1
    i = b + 1
    return table[0 if i < 0 else (last if i > last else i)]


@njit(cache=True, inline="always")
def decide(u, b_up, b_down, table):
    """crossing.decide_one for one draw: (1 up | -1 down | 0 stay, inadmissible)."""
    t_up = _threshold(table, b_up)
    t_down = _threshold(table, b_down)
    total = t_up + t_down
    if total <= ONE:
        if u < t_up:
            return 1, False
        return (-1 if u < total else 0), False
    # inadmissible: both scaled to sum 1; after subtracting the lower barrier one threshold is
    # T(0) = 2**32, the other T(|B+ - B-|)
    if b_up <= b_down:
        a, other = SCALED_ONE, _threshold(table, b_down - b_up) >> SCALED_SHIFT
    else:
        other = _threshold(table, b_up - b_down) >> SCALED_SHIFT
        a = other
    up = (u >> SCALED_DRAW_SHIFT) * (other + SCALED_ONE) < a << INADMISSIBLE_PRECISION_BITS
    return (1 if up else -1), True


@njit(cache=True, inline="always")
def _add_wide(counts, hi, value):
    """counts[hi] * 2**32 + counts[hi + 1] += value (|value| < 2**61), exactly."""
    low = counts[hi + 1] + value
    if low >= WIDE_LIMIT or low <= -WIDE_LIMIT:
        carry = low >> WIDE_UNIT_BITS
        counts[hi] += carry
        low -= carry << WIDE_UNIT_BITS
    counts[hi + 1] = low


@njit(cache=True, inline="always")
def _count_move(counts, cell_up, cell_down, cell, direction, h):
    """Counters of a move of `cell` whose half tilt is h (it releases -2h)."""
    if direction > 0:
        counts[UP] += 1
        cell_up[cell] += 1
    else:
        counts[DOWN] += 1
        cell_down[cell] += 1
    _add_wide(counts, HEAT_HI, h)
    _add_wide(counts, HEAT_ABS_HI, h if h >= 0 else -h)


# -- field mode -------------------------------------------------------------------------------------
@njit(cache=True)
def run_field_steps(steps, e0, eta, rng, order, state, problem, table, out):
    """Runs `steps` steps of the array in field mode.

    e0[k], eta[k] (k <= steps): barrier and gain << tilt_shift at the call's step k.
    rng = (ring1, ring2, pending, position, draws): generator state and a buffer of
    groups * lanes draws. order = (cell_at_slot (-1: idle lane), lanes, ladder (w_lo, w_hi,
    delta), needs_cross). state = (W, g, cell_up, cell_down). problem = (qd (delta**2 Q_nn),
    dense Q (or an empty array: sparse), indptr, indices, data); table: the thresholds
    (crossing.threshold_table). out = (counts, step_dl2,
    step_cross, snapshots, snapshot_every, snapshot_phase, mark): the call's counts, the sum
    of dL2 of the moves of each step and the loss cross terms of moves of coupled cells in one
    group, W after every snapshot_every-th step (0: none) counted from snapshot_phase steps
    before this call, and a zeroed work array of cells."""
    ring1, ring2, pending, position, draws = rng
    cell_at_slot, lanes, ladder, needs_cross = order
    W, g, cell_up, cell_down = state
    counts, step_dl2, step_cross, snapshots, snapshot_every, snapshot_phase, mark = out
    w_lo, w_hi, delta = ladder
    groups = cell_at_slot.shape[0] // lanes
    moved = np.empty(lanes, dtype=np.int64)
    moved_dw = np.empty(lanes, dtype=np.int64)
    for k in range(steps):
        fill_draws(ring1, ring2, pending, position, draws, groups)
        e0_k, eta_k = e0[k], eta[k]
        slope = eta_k * 2 * delta
        dl2_sum = 0
        cross = 0
        for group in range(groups):
            count = 0
            for slot in range(group * lanes, group * lanes + lanes):
                cell = cell_at_slot[slot]
                if cell < 0:
                    continue                               # idle lane: drew, no cell
                u = np.int64(draws[slot])
                c = e0_k + eta_k * problem[0][cell]
                s = slope * g[cell]
                if (u >> 1) >= _threshold(table, c - abs(s)):
                    continue                               # a certain stay (module doc)
                direction, inadmissible = decide(u, c + s, c - s, table)
                counts[INADMISSIBLE] += inadmissible
                if direction == 0:
                    continue
                w = W[cell]
                if w == (w_hi if direction > 0 else w_lo):
                    counts[BLOCKED] += 1
                    continue
                dw = direction * delta
                dl2 = problem[0][cell] + 2 * dw * g[cell]
                _count_move(counts, cell_up, cell_down, cell, direction, eta_k * dl2)
                dl2_sum += dl2
                W[cell] = w + dw
                moved[count] = cell
                moved_dw[count] = dw
                count += 1
            if count:
                counts[FIELD_ADDS] += _update_field(g, problem, moved, moved_dw, count)
                if needs_cross and count > 1:
                    cross += _cross_terms(problem, moved, moved_dw, count, mark)
        counts[EVALUATIONS] += W.shape[0]
        step_dl2[k] = dl2_sum
        step_cross[k] = cross
        if snapshot_every and (snapshot_phase + k + 1) % snapshot_every == 0:
            snapshots[(snapshot_phase + k + 1) // snapshot_every - 1, :] = W


@njit(cache=True)
def _update_field(g, problem, moved, moved_dw, count):
    """g += dw Q[:, m] for the moves of a group; returns the additions made."""
    dense, indptr, indices, data = problem[1], problem[2], problem[3], problem[4]
    adds = 0
    for i in range(count):
        m, dw = moved[i], moved_dw[i]
        if dense.shape[0]:
            for r in range(g.shape[0]):
                g[r] += dw * dense[m, r]                   # Q is symmetric: row m
            adds += g.shape[0]
        else:
            for e in range(indptr[m], indptr[m + 1]):
                g[indices[e]] += dw * data[e]
            adds += indptr[m + 1] - indptr[m]
    return adds


@njit(cache=True)
def _cross_terms(problem, moved, moved_dw, count, mark):
    """sum over ordered pairs i != j of moves in one group of dw_i Q_ij dw_j: what the loss
    changes by beyond the sum of the moves' own dL2 (0 for independent sets)."""
    indptr, indices, data = problem[2], problem[3], problem[4]
    for i in range(count):
        mark[moved[i]] = moved_dw[i]
    cross = 0
    for i in range(count):
        m = moved[i]
        for e in range(indptr[m], indptr[m + 1]):
            r = indices[e]
            if r != m:
                cross += mark[r] * data[e] * moved_dw[i]
    for i in range(count):
        mark[moved[i]] = 0
    return cross


# -- external mode ----------------------------------------------------------------------------------
@njit(cache=True)
def run_external_step(e0, half_tilt, rng, order, state, table, counts):
    """One step with the caller's half tilts h (per cell): the up move crosses E0 - h, the
    down move E0 + h. Same draws, order and counters as run_field_steps (no field)."""
    ring1, ring2, pending, position, draws = rng
    cell_at_slot, lanes, ladder, needs_cross = order
    W, g, cell_up, cell_down = state
    w_lo, w_hi, delta = ladder
    groups = cell_at_slot.shape[0] // lanes
    fill_draws(ring1, ring2, pending, position, draws, groups)
    for slot in range(cell_at_slot.shape[0]):
        cell = cell_at_slot[slot]
        if cell < 0:
            continue
        h = half_tilt[cell]
        direction, inadmissible = decide(np.int64(draws[slot]), e0 - h, e0 + h, table)
        counts[EVALUATIONS] += 1
        counts[INADMISSIBLE] += inadmissible
        if direction == 0:
            continue
        if W[cell] == (w_hi if direction > 0 else w_lo):
            counts[BLOCKED] += 1
            continue
        W[cell] += direction * delta
        _count_move(counts, cell_up, cell_down, cell, direction, -h if direction > 0 else h)


# -- step boundaries --------------------------------------------------------------------------------
@njit(cache=True)
def close_steps(eta, step_dl2, step_cross, losses):
    """Annealing work and coupling error of `steps` step boundaries, in int64 (the caller
    checks the bounds). losses = [L2 register, true L2]: updated. Returns (sum over steps of
    (eta[k+1] - eta[k]) L2 register after step k, the same with the true L2, sum of eta[k] times
    the cross terms of step k), in units of 2 << tilt_shift energy LSBs; eta raw."""
    track, true = losses[0], losses[1]
    anneal = anneal_true = coupling = 0
    for k in range(step_dl2.shape[0]):
        track += step_dl2[k]
        true += step_dl2[k] + step_cross[k]
        d_eta = eta[k + 1] - eta[k]
        anneal += d_eta * track
        anneal_true += d_eta * true
        coupling += eta[k] * step_cross[k]
    losses[0], losses[1] = track, true
    return anneal, anneal_true, coupling
