"""The compiled loops of the golden model (Numba, ``@njit(cache=True)``).

``run_field_steps`` is the hardware's loop of ``reference.py`` written for a compiler: step by
step, group by group, every lane draws one number (idle lanes too), its cell is decided against
the field g of the group's start, the moves update W at once and g after the group. Nothing is
reordered, so the results are the reference's by construction; ``tests/test_engine.py`` checks
it on random configurations. What makes it fast only skips work whose outcome is known:

* the draws come from the lane generators 64 bits at a time (``rng.fill_draws``);
* a crossing decision is two thresholds on the draw (``decision``): up iff u < A, down iff
  A <= u < B, else stay. Within a step A and B only depend on the cell's field g and its
  diagonal Q_nn, so when the field is bounded by a small |g| <= G they are tabulated per
  (diagonal class, g) each time the barrier or gain changes (``build_decisions``) and a
  decision is a look-up and a compare;
* otherwise a filter finds most stays: a move needs ``u < T+ + T- <= 2 T(lowest barrier)``,
  so ``u >> 1 >= T(lowest barrier)`` is a stay, and an admissible one (an inadmissible step
  has ``T+ + T- > 2**32 > u``); only the rest is decided in full;
* a step runs in one of four loops with the same result. With decision tables a cell moves
  only on draws in one interval [lo, hi) (at w_hi only down: [A, B); at w_lo only up: [0, A);
  else [0, B)); every other draw leaves it as it is (a stay if u >= B, else a blocked move).
  ``_segmented_step`` classifies every cell so, without a branch per outcome, and applies the
  moves once per segment (a run of groups whose cells are not coupled to each other, so none
  sees another's move before the segment ends: a colour class in colour order). After a step
  whose moves changed few cells' fields, ``_interval_step`` keeps each slot's interval up to
  date instead, and passes over blocks of slots where nothing moves in a vectorised loop.
  Without tables, after a step where few cells moved or were blocked, ``_scanning_step``
  passes over the certain stays comparing each draw with a per-slot threshold; otherwise
  ``_straight_step`` takes every slot in turn with its counts in registers.

Integers are int64 throughout. Counts of a call go to ``counts`` (slots below); the heat sums
are exact in two words (``_add_wide``, or hi/lo parts per move) because one move's half tilt
can take 61 bits. The per-step losses and cross terms go to ``step_dl2`` / ``step_cross``;
``close_steps`` turns them into the annealing work and coupling error where int64 cannot
overflow (engine.py checks the bounds first).
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
LOW_WORD = (1 << WIDE_UNIT_BITS) - 1

# slots of the counts array of a call
EVALUATIONS, UP, DOWN, BLOCKED, INADMISSIBLE, FIELD_ADDS = range(6)
HEAT_HI, HEAT_LO, HEAT_ABS_HI, HEAT_ABS_LO = range(6, 10)
COUNT_SLOTS = 10
# rows of a decision table
UP_BELOW, MOVE_BELOW, IS_INADMISSIBLE = range(3)


# -- the crossing unit ------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _threshold(table, b):
    """T(b) from crossing.threshold_table (entry 0: b < 0, a sentinel above 2**32)."""
    last = table.shape[0] - 1
    i = b + 1
    return table[0 if i < 0 else (last if i > last else i)]


@njit(cache=True, inline="always")
def decision(b_up, b_down, table):
    """crossing.decide_one as thresholds: (A, B, inadmissible) with up iff u < A, down iff
    A <= u < B, else stay.

    Admissible: A = T+, B = T+ + T-. Inadmissible: both probabilities scaled to sum 1; after
    subtracting the lower barrier one threshold is T(0) = 2**32, the other T(|B+ - B-|), and
    up iff (u >> 16) s < a << 16, i.e. u < A = ceil((a << 16) / s) << 16; B = 2**32."""
    t_up = _threshold(table, b_up)
    t_down = _threshold(table, b_down)
    total = t_up + t_down
    if total <= ONE:
        return t_up, total, 0
    if b_up <= b_down:
        a, other = SCALED_ONE, _threshold(table, b_down - b_up) >> SCALED_SHIFT
    else:
        other = _threshold(table, b_up - b_down) >> SCALED_SHIFT
        a = other
    s = other + SCALED_ONE
    bound = -(-(a << INADMISSIBLE_PRECISION_BITS) // s)
    return bound << SCALED_DRAW_SHIFT, ONE, 1


@njit(cache=True, inline="always")
def decide(u, b_up, b_down, table):
    """One crossing decision: (1 up | -1 down | 0 stay, inadmissible 0 | 1)."""
    up_below, move_below, inadmissible = decision(b_up, b_down, table)
    return (1 if u < up_below else (-1 if u < move_below else 0)), inadmissible


@njit(cache=True)
def build_decisions(decisions, class_qd, bound, e0, eta, delta, table):
    """decisions[q (2 bound + 1) + bound + g] = decision of a cell with delta**2 Q_nn =
    class_qd[q] and field g (|g| <= bound) at barrier e0 and gain eta (<< tilt_shift)."""
    width = 2 * bound + 1
    for q in range(class_qd.shape[0]):
        c = e0 + eta * class_qd[q]
        for g in range(-bound, bound + 1):
            s = 2 * delta * eta * g
            row = q * width + bound + g
            a, b, inadmissible = decision(c + s, c - s, table)
            decisions[UP_BELOW, row] = a
            decisions[MOVE_BELOW, row] = b
            decisions[IS_INADMISSIBLE, row] = inadmissible


# -- counting ---------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _wide(hi, lo, value):
    """(hi, lo) with hi * 2**32 + lo increased by value (|value| < 2**61), exactly: lo carries
    into hi before it could overflow."""
    lo += value
    if lo >= WIDE_LIMIT or lo <= -WIDE_LIMIT:
        carry = lo >> WIDE_UNIT_BITS
        hi += carry
        lo -= carry << WIDE_UNIT_BITS
    return hi, lo


@njit(cache=True, inline="always")
def _add_wide(counts, hi, value):
    """counts[hi] * 2**32 + counts[hi + 1] += value (|value| < 2**61), exactly."""
    counts[hi], counts[hi + 1] = _wide(counts[hi], counts[hi + 1], value)


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
def run_field_steps(steps, e0, eta, streams, order, state, problem, tables, out, scan_below):
    """Runs `steps` steps of the array in field mode.

    e0[k], eta[k] (k <= steps): barrier and gain << tilt_shift at the call's step k.
    streams: rng.LaneStreams.arrays(). order = (cell_at_slot (-1: idle lane), lanes, ladder
    (w_lo, w_hi, delta), needs_cross, draws: a buffer of groups * lanes, group_end of each
    slot, the cell and the slot of each position, segment_starts). state = (W, g,
    cell_up, cell_down). problem = (qd (delta**2 Q_nn per cell), dense Q (or an empty array:
    sparse), indptr, indices, data). tables = (thresholds (crossing.threshold_table),
    decisions ((3, rows) by column UP_BELOW, MOVE_BELOW, IS_INADMISSIBLE; no rows: none),
    class_qd, row of each cell's g = 0 in decisions, bound on |g|, [e0, eta tabulated, 1 if
    may_move is up to date], slot of each cell, may_move (per slot: see _scanning_step)).
    out = (counts, step_dl2, step_cross, snapshots, snapshot_every, snapshot_phase, mark):
    the call's counts, the sum of dL2 of the moves of each step and the loss cross terms of
    moves of coupled cells in one group, W after every snapshot_every-th step (0: none)
    counted from snapshot_phase steps before this call, and a zeroed work array of cells.
    scan_below: which loop takes a step (speed only; see below)."""
    cell_at_slot, lanes, ladder, needs_cross, draws, group_end = order[:6]
    W = state[0]
    table, decisions, class_qd, zero_row, bound, tabulated = tables[:6]
    counts, step_dl2, step_cross, snapshots, snapshot_every, snapshot_phase, mark = out
    size = max(lanes, W.shape[0])             # a group's or a segment's moves
    moves = (np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64),
             np.zeros(SUM_SLOTS, dtype=np.int64))      # _interval_step's sums
    scanning = scan_below > 0
    # cells whose interval a move changes (_interval_step): itself and its column of Q
    fanout = W.shape[0] if problem[1].shape[0] else 1 + problem[2][-1] // W.shape[0]
    for k in range(steps):
        moved = counts[UP] + counts[DOWN]
        events = moved + counts[BLOCKED]
        fill_draws(streams, draws, cell_at_slot.shape[0] // lanes)
        if tabulated[0] != e0[k] or tabulated[1] != eta[k]:
            if decisions.shape[1]:
                build_decisions(decisions, class_qd, bound, e0[k], eta[k], ladder[2], table)
            tabulated[0], tabulated[1], tabulated[2], tabulated[3] = e0[k], eta[k], 0, 0
        step_dl2[k], step_cross[k] = _field_step(e0[k], eta[k], order, state, problem, tables,
                                                 counts, moves, mark, scanning)
        # the next step scans (only the speed differs; scan_below 0: never): with decision
        # tables if this one's moves changed fewer than 2 cells / scan_below intervals, else
        # if fewer than cells / scan_below cells moved or were blocked
        if decisions.shape[1]:
            moved = counts[UP] + counts[DOWN] - moved
            scanning = scan_below > 0 and scan_below * moved * fanout < 2 * W.shape[0]
        else:
            events = counts[UP] + counts[DOWN] + counts[BLOCKED] - events
            scanning = scan_below > 0 and scan_below * events < W.shape[0]
        counts[EVALUATIONS] += W.shape[0]
        if snapshot_every and (snapshot_phase + k + 1) % snapshot_every == 0:
            snapshots[(snapshot_phase + k + 1) // snapshot_every - 1, :] = W


@njit(cache=True, inline="always")
def _field_step(e0, eta, order, state, problem, tables, counts, moves, mark, scanning):
    """One step: every slot in order, the moves of a group applied to g before the next
    group (a group is `lanes` consecutive slots). Returns (sum of the moves' dL2, cross
    terms). Four loops give the same result at different speeds: with decision tables
    _interval_step for steps where few cells move and _segmented_step for the others; without,
    _scanning_step and _straight_step."""
    if tables[1].shape[1]:
        if scanning:
            return _interval_step(eta, order, state, problem, tables, counts, moves, mark)
        return _segmented_step(eta, order, state, problem, tables, counts, moves, mark)
    if scanning:
        return _scanning_step(e0, eta, order, state, problem, tables, counts, moves, mark)
    return _straight_step(e0, eta, order, state, problem, tables, counts, moves, mark)


# rows of the per-slot intervals of _interval_step
LO, WIDTH, STAY_FROM, INADMISSIBLE_AT = range(4)


@njit(cache=True, inline="always")
def _set_interval(intervals, slot, cell, W, g, ladder, decisions, zero_row):
    """The interval of draws that move `cell` (at `slot`; see _segmented_step), the draw from
    which it stays and whether it is inadmissible. (No branch inside: a test for idle slots
    here made the callers several times slower; _set_intervals sets those.)"""
    at = np.uint64(cell)
    row = np.uint64(zero_row[at] + g[at])
    a, stay_from, w = decisions[UP_BELOW, row], decisions[MOVE_BELOW, row], W[at]
    lo = a if w == ladder[1] else 0
    intervals[LO, slot] = lo
    intervals[WIDTH, slot] = (a if w == ladder[0] else stay_from) - lo
    intervals[STAY_FROM, slot] = stay_from
    intervals[INADMISSIBLE_AT, slot] = decisions[IS_INADMISSIBLE, row]


@njit(cache=True)
def _set_intervals(intervals, cell_at_slot, W, g, ladder, decisions, zero_row):
    """Every slot's interval; an idle slot never moves nor stays."""
    for slot in range(cell_at_slot.shape[0]):
        cell = cell_at_slot[slot]
        if cell >= 0:
            _set_interval(intervals, slot, cell, W, g, ladder, decisions, zero_row)
        else:
            intervals[LO, slot] = intervals[WIDTH, slot] = intervals[INADMISSIBLE_AT, slot] = 0
            intervals[STAY_FROM, slot] = ONE


@njit(cache=True, inline="always")
def _interval_step(eta, order, state, problem, tables, counts, moves, mark):
    """The step for few moves with decision tables: _segmented_step's classification with each
    slot's interval kept up to date (_refresh_intervals), so that blocks of 64 slots where
    nothing moves -- stays and blocked moves alike -- are passed over by a loop without a
    branch or a store that the compiler vectorises (_pass_block). A block with a move is taken
    slot by slot (_take_block), the rest of that move's segment again by blocks, and then the
    segment's moves are applied."""
    cell_at_slot, ladder, draws = order[0], order[2], order[4]
    W, g = state[0], state[1]
    decisions, zero_row, tabulated, intervals = tables[1], tables[3], tables[5], tables[8]
    if not tabulated[3]:
        _set_intervals(intervals, cell_at_slot, W, g, ladder, decisions, zero_row)
        tabulated[3] = 1
    sums = moves[2]
    sums[:] = 0
    slots = cell_at_slot.shape[0]
    pos = 0
    while pos < slots:
        end = min(pos + 64, slots)
        if _pass_block(pos, end, draws, intervals, sums):
            pos = end
            continue
        count, stop = _take_block(pos, end, slots, 0, order, g, decisions, zero_row, intervals,
                                  moves, sums)
        pos = min(end, stop)
        while pos < stop:                      # the rest of the move's segment
            end = min(pos + 64, stop)
            if not _pass_block(pos, end, draws, intervals, sums):
                count, _ = _take_block(pos, end, stop, count, order, g, decisions, zero_row,
                                       intervals, moves, sums)
            pos = end
        _apply_moves(eta, state, problem, moves, count, mark, order[3], sums)
        _refresh_intervals(intervals, tables[6], moves[0], count, cell_at_slot, W, g, ladder,
                           decisions, zero_row, problem[1], problem[2], problem[3])
    total = sums[SUM_UP] + sums[SUM_DOWN]
    return _close_counts(counts, tables, sums[SUM_UP], sums[SUM_DOWN],
                         W.shape[0] - total - sums[SUM_STAYS], sums[SUM_INADMISSIBLE],
                         sums[SUM_ADDS], sums[SUM_HEAT_HI], sums[SUM_HEAT_LO], sums[SUM_ABS_HI],
                         sums[SUM_ABS_LO], sums[SUM_DL2], sums[SUM_CROSS], 1)


@njit(cache=True, inline="always")
def _pass_block(pos, end, draws, intervals, sums):
    """If no slot in [pos, end) moves: counts its stays and inadmissible steps into `sums` and
    returns True; else returns False and counts nothing. (Unsigned indices: the loop loads
    its rows, it does not gather them, and the compiler vectorises it.)"""
    lo_at, width_at, stay_at, inadmissible_at = (intervals[LO], intervals[WIDTH],
                                                 intervals[STAY_FROM], intervals[INADMISSIBLE_AT])
    stays = inadmissible = hits = 0
    for slot in range(np.uint64(pos), np.uint64(end)):
        u = np.int64(draws[slot])
        stays += np.int64(u >= stay_at[slot])
        inadmissible += inadmissible_at[slot]
        hits += np.int64(np.uint64(u - lo_at[slot]) < np.uint64(width_at[slot]))
    if hits:
        return False
    sums[SUM_STAYS] += stays
    sums[SUM_INADMISSIBLE] += inadmissible
    return True


@njit(cache=True, inline="always")
def _take_block(pos, end, stop, count, order, g, decisions, zero_row, intervals, moves, sums):
    """Slots pos .. up to end or stop, one by one: stays and inadmissible steps into `sums`,
    moves listed after the `count` already listed; stop becomes the end of the first move's
    segment. Returns (moves listed, stop)."""
    cell_at_slot, delta, draws, segment_end = order[0], order[2][2], order[4], order[9]
    moved, moved_dw = moves[0], moves[1]
    lo_at, width_at, stay_at, inadmissible_at = (intervals[LO], intervals[WIDTH],
                                                 intervals[STAY_FROM], intervals[INADMISSIBLE_AT])
    stays = inadmissible = 0
    slot = pos
    while slot < min(end, stop):               # stop shrinks at the first move
        at = np.uint64(slot)
        slot += 1
        u = np.int64(draws[at])
        stays += np.int64(u >= stay_at[at])
        inadmissible += inadmissible_at[at]
        if np.uint64(u - lo_at[at]) < np.uint64(width_at[at]):
            cell = np.uint64(cell_at_slot[at])
            row = np.uint64(zero_row[cell] + g[cell])
            moved[count] = cell
            moved_dw[count] = delta if u < decisions[UP_BELOW, row] else -delta
            stop = segment_end[at]             # the end of the first move's segment
            count += 1
    sums[SUM_STAYS] += stays
    sums[SUM_INADMISSIBLE] += inadmissible
    return count, stop


# slots of the sums of _apply_moves
SUM_UP, SUM_DOWN, SUM_ADDS, SUM_HEAT_HI, SUM_HEAT_LO, SUM_ABS_HI, SUM_ABS_LO, SUM_DL2, \
    SUM_CROSS, SUM_STAYS, SUM_INADMISSIBLE = range(11)
SUM_SLOTS = 11


@njit(cache=True)
def _apply_moves(eta, state, problem, moves, count, mark, needs_cross, sums):
    """Applies and counts the `count` moves of one segment (cells and steps of moves), then
    updates the field; the counts go to `sums` (SUM_ slots)."""
    W, g, cell_up, cell_down = state
    qd, dense, indptr, indices, data = problem
    moved, moved_dw = moves[0], moves[1]
    for i in range(count):
        m, dw = np.uint64(moved[i]), moved_dw[i]
        dl2 = qd[m] + 2 * dw * g[m]
        h = eta * dl2                          # half tilt: the move releases -2h
        sums[SUM_HEAT_HI] += h >> WIDE_UNIT_BITS
        sums[SUM_HEAT_LO] += h & LOW_WORD
        sums[SUM_ABS_HI] += abs(h) >> WIDE_UNIT_BITS
        sums[SUM_ABS_LO] += abs(h) & LOW_WORD
        if dw > 0:
            sums[SUM_UP] += 1
            cell_up[m] += 1
        else:
            sums[SUM_DOWN] += 1
            cell_down[m] += 1
        sums[SUM_DL2] += dl2
        W[m] += dw
    if needs_cross and count > 1:
        sums[SUM_CROSS] += _cross_terms(indptr, indices, data, moved, moved_dw, count, mark)
    sums[SUM_ADDS] += _update_field(g, dense, indptr, indices, data, moved, moved_dw, count)


@njit(cache=True)
def _refresh_intervals(intervals, slot_of, moved, count, cell_at_slot, W, g, ladder, decisions,
                       zero_row, dense, indptr, indices):
    """The intervals of the moved cells and of the cells whose field they changed."""
    if dense.shape[0]:
        _set_intervals(intervals, cell_at_slot, W, g, ladder, decisions, zero_row)
        return
    for i in range(count):
        m = moved[i]
        _set_interval(intervals, slot_of[m], m, W, g, ladder, decisions, zero_row)
        for e in range(indptr[m], indptr[m + 1]):
            cell = indices[e]
            _set_interval(intervals, slot_of[cell], cell, W, g, ladder, decisions, zero_row)


DE_BRUIJN = np.array([0, 1, 48, 2, 57, 49, 28, 3, 61, 58, 50, 42, 38, 29, 17, 4, 62, 55, 59,
                      36, 53, 51, 43, 22, 45, 39, 33, 30, 24, 18, 12, 5, 63, 47, 56, 27, 60, 41,
                      37, 16, 54, 35, 52, 21, 44, 32, 23, 11, 46, 26, 40, 15, 34, 20, 31, 10,
                      25, 14, 19, 9, 13, 8, 7, 6], dtype=np.int64)


@njit(cache=True, inline="always")
def _lowest_bit(mask):
    """Index of the lowest set bit of a nonzero uint64 (a de Bruijn sequence)."""
    lowest = mask & (~mask + np.uint64(1))
    return DE_BRUIJN[(lowest * np.uint64(0x03F79D71B4CB0A89)) >> np.uint64(58)]


@njit(cache=True, inline="always")
def _segmented_step(eta, order, state, problem, tables, counts, moves, mark):
    """The step for many moves with decision tables, in segments: runs of groups whose cells
    are not coupled to each other (segment_starts; a colour class in colour order), so no
    cell of a segment sees another's move and the moves can wait for the segment's end.
    Every cell is classified without a branch per outcome (stays and inadmissible steps
    summed, moves listed; blocked = cells - moves - stays), then the segment's moves are
    counted and applied, and the field updated. (Branches on blocked moves, whose direction
    the processor cannot predict, cost more than the work they skip.)"""
    ladder, needs_cross, draws = order[2], order[3], order[4]
    active_cell, active_slot, starts = order[6], order[7], order[8]
    W, g, cell_up, cell_down = state
    qd, dense, indptr, indices, data = problem
    decisions, zero_row = tables[1], tables[3]
    up_below, move_below, inadmissible_at = decisions[UP_BELOW], decisions[MOVE_BELOW], \
        decisions[IS_INADMISSIBLE]
    w_lo, w_hi, delta = ladder
    moved, moved_dw = moves[0], moves[1]
    dl2_sum = cross = adds = inadmissible = stays = ups = total = 0
    # with no coupled cells in a group (so none in a segment), each move's field update can
    # follow it at once: the other moves' dL2 read fields it does not change
    fused = not needs_cross and dense.shape[0] == 0
    heat_hi = heat_lo = abs_hi = abs_lo = 0
    for s in range(starts.shape[0] - 1):
        count = 0
        for p in range(np.uint64(starts[s]), np.uint64(starts[s + 1])):  # no wrap-around
            # a cell moves only on draws in [lo, hi): at w_hi down on [A, B), at w_lo up on
            # [0, A), else on [0, B); other draws stay (u >= B) or are blocked moves
            cell = np.uint64(active_cell[p])
            u = np.int64(draws[np.uint64(active_slot[p])])
            row = np.uint64(zero_row[cell] + g[cell])
            a, b, w = up_below[row], move_below[row], W[cell]
            lo = a if w == w_hi else 0
            hi = a if w == w_lo else b
            stays += np.int64(u >= b)
            inadmissible += inadmissible_at[row]
            moved[count] = cell                # kept only if it moves: no branch
            moved_dw[count] = delta if u < a else -delta
            count += np.int64(np.uint64(u - lo) < np.uint64(hi - lo))
        total += count
        for i in range(count):
            m, dw = np.uint64(moved[i]), moved_dw[i]
            dl2 = qd[m] + 2 * dw * g[m]
            h = eta * dl2                      # half tilt: the move releases -2h
            heat_hi += h >> WIDE_UNIT_BITS
            heat_lo += h & LOW_WORD
            abs_hi += abs(h) >> WIDE_UNIT_BITS
            abs_lo += abs(h) & LOW_WORD
            up = np.int64(dw > 0)
            ups += up
            cell_up[m] += up
            cell_down[m] += 1 - up
            dl2_sum += dl2
            W[m] += dw
            if fused:                          # no other move of the segment reads this g
                for e in range(np.uint64(indptr[m]), np.uint64(indptr[m + 1])):
                    g[np.uint64(indices[e])] += dw * data[e]
                adds += indptr[m + 1] - indptr[m]
        if count and not fused:
            if needs_cross and count > 1:
                cross += _cross_terms(indptr, indices, data, moved, moved_dw, count, mark)
            adds += _update_field(g, dense, indptr, indices, data, moved, moved_dw, count)
    downs = total - ups
    blocked = W.shape[0] - total - stays       # every cell is evaluated once
    return _close_counts(counts, tables, ups, downs, blocked, inadmissible, adds,
                         heat_hi, heat_lo, abs_hi, abs_lo, dl2_sum, cross)


@njit(cache=True, inline="always")
def _decide_slot(u, g, qd, at, e0, eta, delta, table, decisions, zero_row):
    """(direction, inadmissible) of the cell at `at`: a look-up in the decision table, or
    the full rule. (Callers pass arrays unpacked: taking one out of a tuple in a loop costs
    reference counting.)"""
    if decisions.shape[1]:
        row = np.uint64(zero_row[at] + g)
        direction = 1 if u < decisions[UP_BELOW, row] else (
            -1 if u < decisions[MOVE_BELOW, row] else 0)
        return direction, decisions[IS_INADMISSIBLE, row]       # 0 on rows that can stay
    c = e0 + eta * qd
    s = 2 * delta * eta * g
    return decide(u, c + s, c - s, table)


@njit(cache=True, inline="always")
def _scanning_step(e0, eta, order, state, problem, tables, counts, moves, mark):
    """The step for few moves: draws at or above may_move[slot] are certain stays (the
    threshold of the slot's cell, kept up to date as g changes), passed over in a tight loop;
    the rest is counted in `counts` directly."""
    cell_at_slot, lanes, ladder, needs_cross, draws, group_end = order[:6]
    W, g, cell_up, cell_down = state
    qd, dense, indptr, indices, data = problem
    table, decisions, zero_row, tabulated, slot_of, may_move = (
        tables[0], tables[1], tables[3], tables[5], tables[6], tables[7])
    w_lo, w_hi, delta = ladder
    moved, moved_dw = moves[0], moves[1]
    slots = cell_at_slot.shape[0]
    if not tabulated[2]:
        for slot in range(slots):
            may_move[slot] = _may_move_below(cell_at_slot[slot], g, qd, e0, eta, delta, table,
                                             decisions, zero_row)
        tabulated[2] = 1
    dl2_sum = cross = count = 0
    slot, flush_at = 0, slots                  # flush_at: the end of the moves' group
    while True:
        stop = flush_at if count else slots
        while slot < stop and draws[slot] >= may_move[slot]:
            slot += 1
        if count and slot == flush_at:         # the group's moves, before the next group
            counts[FIELD_ADDS] += _update_field(g, dense, indptr, indices, data, moved,
                                                moved_dw, count)
            if needs_cross and count > 1:
                cross += _cross_terms(indptr, indices, data, moved, moved_dw, count, mark)
            _refresh(may_move, slot_of, moved, count, g, qd, e0, eta, delta, table, decisions,
                     zero_row, dense, indptr, indices)
            tabulated[3] = 0                   # _interval_step's intervals are stale
            count = 0
            continue                           # slot itself is still to be evaluated
        if slot == slots:
            break
        at = np.uint64(cell_at_slot[slot])
        direction, inadmissible = _decide_slot(np.int64(draws[slot]), g[at], qd[at], at, e0,
                                               eta, delta, table, decisions, zero_row)
        slot += 1
        counts[INADMISSIBLE] += inadmissible
        w = W[at]
        if direction == 0 or w == (w_hi if direction > 0 else w_lo):
            counts[BLOCKED] += direction != 0
            continue
        dw = direction * delta
        dl2 = qd[at] + 2 * dw * g[at]
        _count_move(counts, cell_up, cell_down, at, direction, eta * dl2)
        dl2_sum += dl2
        W[at] = w + dw
        if count == 0:
            flush_at = group_end[slot - 1]
        moved[count] = at
        moved_dw[count] = dw
        count += 1
    return dl2_sum, cross


@njit(cache=True, inline="always")
def _may_move_below(cell, g, qd, e0, eta, delta, table, decisions, zero_row):
    """The threshold below which a draw may move `cell` (at or above: a certain stay, module
    doc); 0 for an idle lane (cell -1), which never moves."""
    if cell < 0:
        return 0
    at = np.uint64(cell)
    if decisions.shape[1]:
        return decisions[MOVE_BELOW, np.uint64(zero_row[at] + g[at])]
    c = e0 + eta * qd[at]
    return 2 * _threshold(table, c - abs(2 * delta * eta * g[at]))   # u >> 1 < T: u < 2T


@njit(cache=True)
def _refresh(may_move, slot_of, moved, count, g, qd, e0, eta, delta, table, decisions,
             zero_row, dense, indptr, indices):
    """may_move of the cells whose field the moves of a group changed."""
    if dense.shape[0]:
        for cell in range(g.shape[0]):
            may_move[slot_of[cell]] = _may_move_below(cell, g, qd, e0, eta, delta, table,
                                                      decisions, zero_row)
        return
    for i in range(count):
        m = moved[i]
        for e in range(indptr[m], indptr[m + 1]):
            cell = indices[e]
            may_move[slot_of[cell]] = _may_move_below(cell, g, qd, e0, eta, delta, table,
                                                      decisions, zero_row)


@njit(cache=True, inline="always")
def _straight_step(e0, eta, order, state, problem, tables, counts, moves, mark):
    """The step for many moves without decision tables: every slot in turn, counts summed in
    local variables (the heat exactly in two words without a carry chain: hi 2**32 + lo,
    lo < 2**32 per move)."""
    cell_at_slot, lanes, ladder, needs_cross, draws, group_end = order[:6]
    W, g, cell_up, cell_down = state
    qd, dense, indptr, indices, data = problem
    table = tables[0]
    w_lo, w_hi, delta = ladder
    moved, moved_dw = moves[0], moves[1]
    dl2_sum = cross = count = adds = inadmissible_count = blocked = ups = downs = 0
    heat_hi = heat_lo = abs_hi = abs_lo = 0
    flush_at = lanes
    for slot in range(cell_at_slot.shape[0]):
        if slot == flush_at:
            flush_at += lanes
            if count:                          # the group's moves, before the next group
                adds += _update_field(g, dense, indptr, indices, data, moved, moved_dw, count)
                if needs_cross and count > 1:
                    cross += _cross_terms(indptr, indices, data, moved, moved_dw, count, mark)
                count = 0
        cell = cell_at_slot[slot]
        if cell < 0:
            continue                           # an idle lane (it drew, without a cell)
        at = np.uint64(cell)
        u = np.int64(draws[slot])
        c = e0 + eta * qd[at]
        s = 2 * delta * eta * g[at]
        if (u >> 1) >= _threshold(table, c - abs(s)):
            continue                           # a certain stay (module doc)
        direction, inadmissible = decide(u, c + s, c - s, table)
        if direction == 0:
            continue
        inadmissible_count += inadmissible
        w = W[at]
        if w == (w_hi if direction > 0 else w_lo):
            blocked += 1
            continue
        dw = direction * delta
        dl2 = qd[at] + 2 * dw * g[at]
        h = eta * dl2                          # half tilt: the move releases -2h
        heat_hi += h >> WIDE_UNIT_BITS
        heat_lo += h & LOW_WORD
        abs_hi += abs(h) >> WIDE_UNIT_BITS
        abs_lo += abs(h) & LOW_WORD
        if direction > 0:
            ups += 1
            cell_up[at] += 1
        else:
            downs += 1
            cell_down[at] += 1
        dl2_sum += dl2
        W[at] = w + dw
        moved[count] = at
        moved_dw[count] = dw
        count += 1
    if count:
        adds += _update_field(g, dense, indptr, indices, data, moved, moved_dw, count)
        if needs_cross and count > 1:
            cross += _cross_terms(indptr, indices, data, moved, moved_dw, count, mark)
    return _close_counts(counts, tables, ups, downs, blocked, inadmissible_count, adds,
                         heat_hi, heat_lo, abs_hi, abs_lo, dl2_sum, cross)


@njit(cache=True, inline="always")
def _close_counts(counts, tables, ups, downs, blocked, inadmissible, adds, heat_hi, heat_lo,
                  abs_hi, abs_lo, dl2_sum, cross, intervals_kept=0):
    """A step's counts from local variables into `counts`; returns (dl2_sum, cross)."""
    for slot_, value in ((UP, ups), (DOWN, downs), (BLOCKED, blocked),
                         (INADMISSIBLE, inadmissible), (FIELD_ADDS, adds),
                         (HEAT_HI, heat_hi), (HEAT_ABS_HI, abs_hi)):
        counts[slot_] += value
    if ups + downs:
        tables[5][2] = 0                       # the per-slot thresholds are stale
        tables[5][3] = intervals_kept
    _add_wide(counts, HEAT_HI, heat_lo)        # < 2**52: at most 2**20 moves per step
    _add_wide(counts, HEAT_ABS_HI, abs_lo)
    return dl2_sum, cross


@njit(cache=True, inline="always")
def _update_field(g, dense, indptr, indices, data, moved, moved_dw, count):
    """g += dw Q[:, m] for the moves of a group; returns the additions made."""
    adds = 0
    for i in range(count):
        m, dw = moved[i], moved_dw[i]
        if dense.shape[0]:
            for r in range(g.shape[0]):
                g[r] += dw * dense[m, r]                   # Q is symmetric: row m
            adds += g.shape[0]
        else:                                  # unsigned indices: no wrap-around tests
            for e in range(np.uint64(indptr[m]), np.uint64(indptr[m + 1])):
                g[np.uint64(indices[e])] += dw * data[e]
            adds += indptr[m + 1] - indptr[m]
    return adds


@njit(cache=True, inline="always")
def _cross_terms(indptr, indices, data, moved, moved_dw, count, mark):
    """sum over ordered pairs i != j of moves in one group of dw_i Q_ij dw_j: what the loss
    changes by beyond the sum of the moves' own dL2 (0 for independent sets)."""
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


@njit(cache=True)
def segment_starts(group, sequence, indptr, indices, data):
    """Positions where the segments of a step start (and the end): runs of whole groups,
    each as long as no cell of a group is coupled (Q_ij != 0, i != j) to a cell of an
    earlier group of its run. group, sequence: per position (order.UpdateOrder)."""
    n = sequence.shape[0]
    stamp = np.zeros(indptr.shape[0] - 1, dtype=np.int64)    # = segment: coupled to it
    starts = np.empty(n + 1, dtype=np.int64)
    count, segment, p = 0, 1, 0
    while p < n:
        q = p
        while q < n and group[q] == group[p]:
            q += 1
        coupled = False
        for i in range(p, q):
            coupled = coupled or stamp[sequence[i]] == segment
        if coupled or p == 0:
            segment += 1
            starts[count] = p
            count += 1
        for i in range(p, q):
            c = sequence[i]
            for e in range(indptr[c], indptr[c + 1]):
                if indices[e] != c and data[e] != 0:
                    stamp[indices[e]] = segment
        p = q
    starts[count] = n
    return starts[:count + 1].copy()


# -- external mode ----------------------------------------------------------------------------------
@njit(cache=True)
def run_external_step(e0, half_tilt, streams, order, state, table, counts):
    """One step with the caller's half tilts h (per cell): the up move crosses E0 - h, the
    down move E0 + h. Same draws, order and counters as run_field_steps (no field)."""
    cell_at_slot, lanes, ladder, needs_cross, draws, group_end = order[:6]
    W, g, cell_up, cell_down = state
    w_lo, w_hi, delta = ladder
    fill_draws(streams, draws, cell_at_slot.shape[0] // lanes)
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
    """Annealing work and coupling error of the step boundaries of a call, in int64 (the
    caller checks the bounds). losses = [L2 register, true L2]: updated. Returns (sum over steps
    of (eta[k+1] - eta[k]) L2 register after step k, the same with the true L2, sum of eta[k]
    times the cross terms of step k), in units of 2 << tilt_shift energy LSBs; eta raw."""
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
