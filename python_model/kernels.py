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
  The table has a row per key (4 x its (Q_nn, g) row + the state of W) and every slot keeps
  its cell's key, which holds the field during a call (``set_keys``, ``fields_from_keys``):
  a classification is the slot's key, its draw and one table line.
  ``_segmented_step`` classifies every slot so, without a branch per outcome, and applies the
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
# A decision table has one row per key: 4 x (row of the cell's diagonal class and field g)
# + the state of its weight (at w_lo, inside the ladder, at w_hi); each row holds the draws
# that move the cell ([LO, LO + WIDTH)), the draw from which it stays, whether the step is
# inadmissible, and the draw below which a move is up. The last row is an idle slot's.
LO, WIDTH, STAY_FROM, IS_INADMISSIBLE, UP_BELOW = range(5)
KEY_FIELDS = 8                  # a row fills one 64-byte line
AT_LO, INSIDE, AT_HI = range(3)     # _state relies on these values


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
    """decisions[4 (q (2 bound + 1) + bound + g) + state] = decision of a cell with
    delta**2 Q_nn = class_qd[q], field g (|g| <= bound) and its weight's state (AT_LO,
    INSIDE, AT_HI) at barrier e0 and gain eta (<< tilt_shift): it moves only on draws in
    [lo, hi) (at w_hi only down: [A, B); at w_lo only up: [0, A); else [0, B))."""
    width = 2 * bound + 1
    for q in range(class_qd.shape[0]):
        c = e0 + eta * class_qd[q]
        for g in range(-bound, bound + 1):
            s = 2 * delta * eta * g
            a, b, inadmissible = decision(c + s, c - s, table)
            for state in range(4):             # 3: unused, filled as INSIDE
                key = 4 * (q * width + bound + g) + state
                lo = a if state == AT_HI else 0
                decisions[key, LO] = lo
                decisions[key, WIDTH] = (a if state == AT_LO else b) - lo
                decisions[key, STAY_FROM] = b
                decisions[key, IS_INADMISSIBLE] = inadmissible
                decisions[key, UP_BELOW] = a


@njit(cache=True, inline="always")
def _state(w, w_lo, w_hi):
    """The state of a weight in a key: AT_LO, INSIDE or AT_HI (without a branch: after a move
    it is as unpredictable as the move)."""
    return np.int64(w != w_lo) + np.int64(w == w_hi)


@njit(cache=True)
def set_keys(keys, idle_key, cell_at_slot, W, g, zero_row, ladder):
    """Each slot's key from its cell's W and g (idle_key for an idle slot)."""
    for slot in range(cell_at_slot.shape[0]):
        cell = cell_at_slot[slot]
        keys[slot] = idle_key if cell < 0 else (
            4 * (zero_row[cell] + g[cell]) + _state(W[cell], ladder[0], ladder[1]))


@njit(cache=True)
def fields_from_keys(g, keys, cell_at_slot, zero_row):
    """g of every cell from its slot's key (g is not kept while the keys are)."""
    for slot in range(cell_at_slot.shape[0]):
        cell = cell_at_slot[slot]
        if cell >= 0:
            g[cell] = (keys[slot] >> 2) - zero_row[cell]


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
    slot, the cell and the slot of each position, segment_starts, the segments' first
    slots and the slot after each slot's segment, the segments' first slots and the end).
    state = (W, g,
    cell_up, cell_down). problem = (qd (delta**2 Q_nn per cell), dense Q (or an empty array:
    sparse), indptr, indices, data). tables = (thresholds (crossing.threshold_table),
    decisions ((keys + 1, KEY_FIELDS): build_decisions; no rows: none),
    class_qd, row of each cell's g = 0 in decisions, bound on |g|, [e0, eta tabulated, 1 if
    may_move is up to date, 1 if intervals are], slot of each cell, may_move (per slot: see
    _scanning_step), intervals (per slot: see _interval_step), keys (per slot: its row of
    decisions), the slot of each column index of Q).
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
    # what a move costs _interval_step: its block of 64 slots taken one by one, and the
    # intervals of itself and its column of Q refreshed
    move_cost = 64 + (W.shape[0] if problem[1].shape[0] else 1 + problem[2][-1] // W.shape[0])
    keyed = decisions.shape[0] > 0             # g is kept in the keys during the call
    if keyed:
        set_keys(tables[9], decisions.shape[0] - 1, cell_at_slot, W, state[1], zero_row, ladder)
        tabulated[3] = 0
    for k in range(steps):
        moved = counts[UP] + counts[DOWN]
        events = moved + counts[BLOCKED]
        fill_draws(streams, draws, cell_at_slot.shape[0] // lanes)
        if tabulated[0] != e0[k] or tabulated[1] != eta[k]:
            if keyed:
                build_decisions(decisions, class_qd, bound, e0[k], eta[k], ladder[2], table)
            tabulated[0], tabulated[1], tabulated[2], tabulated[3] = e0[k], eta[k], 0, 0
        step_dl2[k], step_cross[k] = _field_step(e0[k], eta[k], order, state, problem, tables,
                                                 counts, moves, mark, scanning)
        # the next step scans (only the speed differs; scan_below 0: never): with decision
        # tables if this one's moves cost _interval_step less than 8 cells / scan_below slots
        # (so that most blocks of slots have no move), else if fewer than cells / scan_below
        # cells moved or were blocked
        if keyed:
            moved = counts[UP] + counts[DOWN] - moved
            scanning = scan_below > 0 and scan_below * moved * move_cost < 8 * W.shape[0]
        else:
            events = counts[UP] + counts[DOWN] + counts[BLOCKED] - events
            scanning = scan_below > 0 and scan_below * events < W.shape[0]
        counts[EVALUATIONS] += W.shape[0]
        if snapshot_every and (snapshot_phase + k + 1) % snapshot_every == 0:
            snapshots[(snapshot_phase + k + 1) // snapshot_every - 1, :] = W
    if keyed:
        fields_from_keys(state[1], tables[9], cell_at_slot, zero_row)


@njit(cache=True, inline="always")
def _field_step(e0, eta, order, state, problem, tables, counts, moves, mark, scanning):
    """One step: every slot in order, the moves of a group applied to g before the next
    group (a group is `lanes` consecutive slots). Returns (sum of the moves' dL2, cross
    terms). Four loops give the same result at different speeds: with decision tables
    _interval_step for steps where few cells move and _segmented_step for the others; without,
    _scanning_step and _straight_step."""
    if tables[1].shape[0]:
        if scanning:
            return _interval_step(eta, order, state, problem, tables, counts, moves, mark)
        return _segmented_step(eta, order, state, problem, tables, counts, moves, mark)
    if scanning:
        return _scanning_step(e0, eta, order, state, problem, tables, counts, moves, mark)
    return _straight_step(e0, eta, order, state, problem, tables, counts, moves, mark)


@njit(cache=True, inline="always")
def _set_interval(intervals, slot, key, decisions):
    """A slot's interval: the draws that move its cell ([LO, LO + WIDTH)), the draw from which
    it stays and whether it is inadmissible: its key's row of the decision table."""
    for field in range(IS_INADMISSIBLE + 1):
        intervals[field, slot] = decisions[key, field]


@njit(cache=True)
def _set_intervals(intervals, keys, decisions):
    """Every slot's interval (an idle slot's key: never moves nor stays)."""
    for slot in range(keys.shape[0]):
        _set_interval(intervals, slot, keys[slot], decisions)


@njit(cache=True, inline="always")
def _interval_step(eta, order, state, problem, tables, counts, moves, mark):
    """The step for few moves with decision tables: _segmented_step's classification with each
    slot's interval kept up to date (_refresh_intervals), so that blocks of 64 slots where
    nothing moves -- stays and blocked moves alike -- are passed over by a loop without a
    branch or a store that the compiler vectorises (_pass_block). A block with a move is taken
    slot by slot (_take_block), the rest of that move's segment again by blocks, and then the
    segment's moves are applied."""
    cell_at_slot, draws = order[0], order[4]
    decisions, tabulated, intervals, keys = tables[1], tables[5], tables[8], tables[9]
    if not tabulated[3]:
        _set_intervals(intervals, keys, decisions)
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
        count, stop = _take_block(pos, end, slots, 0, order, keys, decisions, intervals, moves,
                                  sums)
        pos = min(end, stop)
        while pos < stop:                      # the rest of the move's segment
            end = min(pos + 64, stop)
            if not _pass_block(pos, end, draws, intervals, sums):
                count, _ = _take_block(pos, end, stop, count, order, keys, decisions,
                                       intervals, moves, sums)
            pos = end
        _apply_moves(eta, order, state, problem, tables, moves, count, mark, sums)
        _refresh_intervals(intervals, keys, decisions, tables[6], moves[0], count, problem[1],
                           problem[2], tables[10])
    total = sums[SUM_UP] + sums[SUM_DOWN]
    return _close_counts(counts, tables, sums[SUM_UP], sums[SUM_DOWN],
                         state[0].shape[0] - total - sums[SUM_STAYS], sums[SUM_INADMISSIBLE],
                         sums[SUM_ADDS], sums[SUM_HEAT_HI], sums[SUM_HEAT_LO], sums[SUM_ABS_HI],
                         sums[SUM_ABS_LO], sums[SUM_DL2], sums[SUM_CROSS], 1)


@njit(cache=True, inline="always")
def _pass_block(pos, end, draws, intervals, sums):
    """If no slot in [pos, end) moves: counts its stays and inadmissible steps into `sums` and
    returns True; else returns False and counts nothing. (Unsigned indices: the loop loads
    its rows, it does not gather them, and the compiler vectorises it.)"""
    lo_at, width_at, stay_at, inadmissible_at = (intervals[LO], intervals[WIDTH],
                                                 intervals[STAY_FROM], intervals[IS_INADMISSIBLE])
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
def _take_block(pos, end, stop, count, order, keys, decisions, intervals, moves, sums):
    """Slots pos .. up to end or stop, one by one: stays and inadmissible steps into `sums`,
    moves listed after the `count` already listed; stop becomes the end of the first move's
    segment. Returns (moves listed, stop)."""
    cell_at_slot, delta, draws, segment_end = order[0], order[2][2], order[4], order[9]
    moved, moved_dw = moves[0], moves[1]
    lo_at, width_at, stay_at, inadmissible_at = (intervals[LO], intervals[WIDTH],
                                                 intervals[STAY_FROM], intervals[IS_INADMISSIBLE])
    stays = inadmissible = 0
    slot = pos
    while slot < min(end, stop):               # stop shrinks at the first move
        at = np.uint64(slot)
        slot += 1
        u = np.int64(draws[at])
        stays += np.int64(u >= stay_at[at])
        inadmissible += inadmissible_at[at]
        if np.uint64(u - lo_at[at]) < np.uint64(width_at[at]):
            moved[count] = cell_at_slot[at]
            moved_dw[count] = delta if u < decisions[np.uint64(keys[at]), UP_BELOW] else -delta
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
def _apply_moves(eta, order, state, problem, tables, moves, count, mark, sums):
    """Applies and counts the `count` moves of one segment (cells and steps of moves), then
    updates the keys; the counts go to `sums` (SUM_ slots)."""
    w_lo, w_hi = order[2][0], order[2][1]
    W, cell_up, cell_down = state[0], state[2], state[3]
    qd, dense, indptr, indices, data = problem
    zero_row, slot_of, keys = tables[3], tables[6], tables[9]
    moved, moved_dw = moves[0], moves[1]
    for i in range(count):
        m, dw = np.uint64(moved[i]), moved_dw[i]
        slot = np.uint64(slot_of[m])
        key = keys[slot]
        dl2 = qd[m] + 2 * dw * ((key >> 2) - zero_row[m])
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
        keys[slot] = key - (key & 3) + _state(W[m], w_lo, w_hi)
    if order[3] and count > 1:
        sums[SUM_CROSS] += _cross_terms(indptr, indices, data, moved, moved_dw, count, mark)
    sums[SUM_ADDS] += _update_keys(keys, dense, indptr, tables[10], data, slot_of, moved,
                                   moved_dw, count)


@njit(cache=True)
def _refresh_intervals(intervals, keys, decisions, slot_of, moved, count, dense, indptr,
                       index_slot):
    """The intervals of the moved cells and of the cells whose field they changed."""
    if dense.shape[0]:
        _set_intervals(intervals, keys, decisions)
        return
    for i in range(count):
        m = moved[i]
        slot = slot_of[m]
        _set_interval(intervals, slot, keys[slot], decisions)
        for e in range(indptr[m], indptr[m + 1]):
            slot = index_slot[e]
            _set_interval(intervals, slot, keys[slot], decisions)


@njit(cache=True, inline="always")
def _segmented_step(eta, order, state, problem, tables, counts, moves, mark):
    """The step for many moves with decision tables, in segments: runs of groups whose cells
    are not coupled to each other (segment_starts; a colour class in colour order), so no
    cell of a segment sees another's move and the moves can wait for the segment's end.
    Every slot is classified by its key without a branch per outcome (stays and inadmissible
    steps summed, moves listed; blocked = cells - moves - stays), then the segment's moves are
    counted and applied, and the keys updated. (Branches on blocked moves, whose direction
    the processor cannot predict, cost more than the work they skip.)"""
    cell_at_slot, ladder, needs_cross, draws, segment_slots = (order[0], order[2], order[3],
                                                               order[4], order[10])
    W, g, cell_up, cell_down = state
    qd, dense, indptr, indices, data = problem
    decisions, zero_row, slot_of, keys, index_slot = (tables[1], tables[3], tables[6],
                                                      tables[9], tables[10])
    w_lo, w_hi, delta = ladder
    moved, moved_dw = moves[0], moves[1]
    dl2_sum = cross = adds = inadmissible = stays = ups = total = 0
    # with no coupled cells in a group (so none in a segment), each move's field update can
    # follow it at once: the other moves' dL2 read fields it does not change
    fused = not needs_cross and dense.shape[0] == 0
    heat_hi = heat_lo = abs_hi = abs_lo = 0
    for s in range(segment_slots.shape[0] - 1):
        count = 0
        for slot in range(np.uint64(segment_slots[s]), np.uint64(segment_slots[s + 1])):
            key = np.uint64(keys[slot])
            u = np.int64(draws[slot])
            stays += np.int64(u >= decisions[key, STAY_FROM])
            inadmissible += decisions[key, IS_INADMISSIBLE]
            moved[count] = slot                # kept only if it moves: no branch
            count += np.int64(np.uint64(u - decisions[key, LO]) < np.uint64(decisions[key, WIDTH]))
        total += count
        for i in range(count):
            slot = np.uint64(moved[i])
            m = np.uint64(cell_at_slot[slot])
            key = keys[slot]
            dw = delta if np.int64(draws[slot]) < decisions[np.uint64(key), UP_BELOW] else -delta
            dl2 = qd[m] + 2 * dw * ((key >> 2) - zero_row[m])
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
            keys[slot] = key - (key & 3) + _state(W[m], w_lo, w_hi)
            if fused:                          # no other move of the segment reads this g
                for e in range(np.uint64(indptr[m]), np.uint64(indptr[m + 1])):
                    keys[np.uint64(index_slot[e])] += 4 * dw * data[e]
                adds += indptr[m + 1] - indptr[m]
            else:
                moved[i], moved_dw[i] = m, dw  # for the cross terms and the field update
        if count and not fused:
            if needs_cross and count > 1:
                cross += _cross_terms(indptr, indices, data, moved, moved_dw, count, mark)
            adds += _update_keys(keys, dense, indptr, index_slot, data, slot_of, moved,
                                 moved_dw, count)
    downs = total - ups
    blocked = W.shape[0] - total - stays       # every cell is evaluated once
    return _close_counts(counts, tables, ups, downs, blocked, inadmissible, adds,
                         heat_hi, heat_lo, abs_hi, abs_lo, dl2_sum, cross)


@njit(cache=True, inline="always")
def _decide_slot(u, g, qd, e0, eta, delta, table):
    """(direction, inadmissible) of a cell with field g and delta**2 Q_nn = qd, by the full
    rule. (Callers pass arrays unpacked: taking one out of a tuple in a loop costs reference
    counting.)"""
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
    table, tabulated, slot_of, may_move = tables[0], tables[5], tables[6], tables[7]
    w_lo, w_hi, delta = ladder
    moved, moved_dw = moves[0], moves[1]
    slots = cell_at_slot.shape[0]
    if not tabulated[2]:
        for slot in range(slots):
            may_move[slot] = _may_move_below(cell_at_slot[slot], g, qd, e0, eta, delta, table)
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
            _refresh(may_move, slot_of, moved, count, g, qd, e0, eta, delta, table, dense,
                     indptr, indices)
            count = 0
            continue                           # slot itself is still to be evaluated
        if slot == slots:
            break
        at = np.uint64(cell_at_slot[slot])
        direction, inadmissible = _decide_slot(np.int64(draws[slot]), g[at], qd[at], e0, eta,
                                               delta, table)
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
def _may_move_below(cell, g, qd, e0, eta, delta, table):
    """The threshold below which a draw may move `cell` (at or above: a certain stay, module
    doc); 0 for an idle lane (cell -1), which never moves."""
    if cell < 0:
        return 0
    at = np.uint64(cell)
    c = e0 + eta * qd[at]
    return 2 * _threshold(table, c - abs(2 * delta * eta * g[at]))   # u >> 1 < T: u < 2T


@njit(cache=True)
def _refresh(may_move, slot_of, moved, count, g, qd, e0, eta, delta, table, dense, indptr,
             indices):
    """may_move of the cells whose field the moves of a group changed."""
    if dense.shape[0]:
        for cell in range(g.shape[0]):
            may_move[slot_of[cell]] = _may_move_below(cell, g, qd, e0, eta, delta, table)
        return
    for i in range(count):
        m = moved[i]
        for e in range(indptr[m], indptr[m + 1]):
            cell = indices[e]
            may_move[slot_of[cell]] = _may_move_below(cell, g, qd, e0, eta, delta, table)


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
def _update_keys(keys, dense, indptr, index_slot, data, slot_of, moved, moved_dw, count):
    """_update_field on the keys (4 g + state); returns the additions made."""
    adds = 0
    for i in range(count):
        m, dw = moved[i], moved_dw[i]
        if dense.shape[0]:
            for r in range(slot_of.shape[0]):
                keys[slot_of[r]] += 4 * dw * dense[m, r]           # Q is symmetric: row m
            adds += slot_of.shape[0]
        else:
            for e in range(np.uint64(indptr[m]), np.uint64(indptr[m + 1])):
                keys[np.uint64(index_slot[e])] += 4 * dw * data[e]
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
