"""The golden model of a LIM synapse array: bit-exact, vectorised over cells and steps.

Hardware semantics (what the RTL does, cycle by cycle): each step visits the groups of the
update order; in each group every lane draws one number, evaluates its cell against the
current field g with the step's barrier E0(k) and gain eta(k), and moves it up, down or not;
then g <- g + dW_m Q[:, m] for every cell m that moved, before the next group.

The model gets the same result without a Python loop per cell: it decides a whole window of
(step, position) pairs at once against the g at the window's start. Decisions only depend on
the draws (fixed in advance), on the schedules and on g and W at the cell, so a decision is
the hardware's unless a move earlier in the window changed g or W at its cell (a move of a
neighbour in an earlier group, or of the cell itself in an earlier step). Two kinds of window
deal with those:

* a cut window keeps the decisions up to the first one that a move inside it invalidated,
  applies those moves and carries on from there (one pass per such move);
* a repaired window (arrays of REPAIR_MIN_CELLS cells or more, with sparse couplings) decides
  again, round after round, only the positions whose g or W a changed decision alters, with
  the g and W that the window's moves give them, until no decision changes. Each decision
  only depends on those of earlier groups, so this fixed point is unique, and it is the
  hardware's: every decision in it is the one the cell makes with the g and W that the
  decisions before it leave. The decisions of cells that no move reaches stand as first made.

Which kind and size of window runs next changes nothing but the speed; a sizer (_Sizer) picks
the one that has been fastest.

Energies are integers in energy LSBs (2**-F u). With dL2 = twice the loss change of a move,
the half tilt is h = eta_raw * dL2 << tilt_shift, the crossing barrier E0 + h and the heat
released -2h: nothing is rounded, so detailed balance and the first law hold exactly.
"""

import time

import numpy as np

from .counters import Counters
from .crossing import (
    DRAW_BITS,
    INADMISSIBLE_PRECISION_BITS,
    ONE,
    decide,
    threshold_table,
)
from .errors import ConfigError, IdentityError, require
from .order import update_order
from .rng import LaneStreams
from .schedules import MAX_STEPS

CHUNK_POSITIONS = 1 << 16        # cell evaluations prepared at once
MAX_DENSE_CELLS = 4096           # a dense Q of N**2 int64
SCHEDULE_STEPS = 1024            # schedule values computed at once
REPAIR_MIN_CELLS = 128           # smaller arrays only use cut windows,
SPARSE_ENTRIES = 32              # and so do problems with more entries of Q per cell
REPAIR_MAX_ENTRIES = 1 << 23     # or in all (memory)
SMALLEST_WINDOW = 256            # positions of the smallest repaired window
REPAIR_ROUNDS = 6                # repair rounds of a window before it is cut
FILTER_FROM = 256                # positions repaired at once from which they are filtered
SCALED_SHIFT = DRAW_BITS + 1 - INADMISSIBLE_PRECISION_BITS     # as in crossing._scaled
SCALED_DRAW_SHIFT = DRAW_BITS - INADMISSIBLE_PRECISION_BITS


class _Chunk:
    """Per-position inputs of the decisions of a chunk of steps."""


class _Repair:
    """Tables and work arrays of the repaired windows."""


class _Sizer:
    """Chooses the next window: a cut window (size 0) or a repaired window of a size among
    powers of two, whichever kept the most evaluations per second so far.

    It measures in epochs (a few windows of one choice). Every few epochs it tries another
    choice for an epoch, in turn the other kind of window and the next smaller and larger
    repaired window (the best choice shifts with the move rate), and keeps it if it is about
    as fast or faster (then tries the next size that way at once), or clearly faster for the
    other kind; it tries less and less often while nothing pays. Only the speed depends on
    these choices: every kind and size of window gives the same, exact, results."""

    EPOCH_POSITIONS = 1 << 16       # an epoch ends at this many kept evaluations,
    EPOCH_WINDOWS = 64              # windows
    EPOCH_SECONDS = 0.01            # or seconds; trials of another size last a quarter
    PROBE_EVERY = 3                 # epochs between trials (times 2**failures, up to 16)
    SMOOTHING = 0.3                 # of the speed of the best choice
    TOLERANCE = 0.95                # another size: kept at this speed relative to the best
    SWITCH = 1.1                    # the other kind of window: kept from this speed
    ABANDON = 0.5                   # trials slower than this end early

    def __init__(self, smallest, largest, start):
        self.sizes = [largest]
        while self.sizes[0] > smallest:
            self.sizes.insert(0, max(self.sizes[0] // 2, smallest))
        self.sizes.insert(0, 0)
        self.value = [None] * len(self.sizes)       # kept evaluations per second
        self.best = self.current = self.repaired = min(
            range(1, len(self.sizes)), key=lambda i: abs(self.sizes[i] - start))
        self.size = self.previous = self.sizes[self.current]
        self.kept = self.windows = 0
        self.seconds = 0.0
        self.scale = 4                              # a short first epoch,
        self.momentum = 1                           # then a larger window
        self.wait = self.turn = self.failures = 0

    def record(self, kept, seconds):
        self.kept += kept
        self.seconds += seconds
        self.windows += 1
        scale = self.scale
        if (scale == 1 and self.current != self.best and self.windows >= 4
                and self.kept < self.ABANDON * self.value[self.best] * self.seconds):
            scale = 4
        if (scale * self.kept < self.EPOCH_POSITIONS and scale * self.windows < self.EPOCH_WINDOWS
                and scale * self.seconds < self.EPOCH_SECONDS):
            return
        i, v = self.current, self.kept / max(self.seconds, 1e-9)
        self.kept = self.windows = 0
        self.seconds = 0.0
        if i == self.best:
            old = self.value[i]
            self.value[i] = v if old is None else old + self.SMOOTHING * (v - old)
        else:                                       # a trial
            self.value[i] = v
            resize = i and self.best
            if v > (self.TOLERANCE if resize else self.SWITCH) * self.value[self.best]:
                self.momentum = i - self.best if resize else 0
                self.best = i
                self.failures = 0
                self.wait = 0 if self.momentum else self.PROBE_EVERY
            else:
                self.momentum = 0
                self.failures = min(self.failures + 1, 4)
                self.wait = self.PROBE_EVERY << self.failures
        if self.best:
            self.repaired = self.best
        self.previous = self.size
        self.wait -= 1
        self.current = self._trial() if self.wait < 0 else self.best
        self.size = self.sizes[self.current]
        self.scale = 4 if self.current and self.best and self.current != self.best else 1

    def _trial(self):
        top = len(self.sizes) - 1
        if self.momentum and 1 <= self.best + self.momentum <= top:
            return self.best + self.momentum
        for _ in range(3):
            self.turn = (self.turn + 1) % 3
            choice = (self.repaired if not self.best else 0, self.repaired - 1,
                      self.repaired + 1)[self.turn]
            if 0 <= choice <= top and choice != self.best:
                return choice
        return self.best


class LimArray:
    """A LIM synapse array defined by a Spec, minimising a QuadraticProblem (tilt='field') or
    driven by tilts the caller supplies every step (tilt='external', see run_external)."""

    def __init__(self, spec, problem=None, weights=None):
        self.spec = spec
        n = spec.cells
        if spec.tilt == "field":
            require(problem is not None, "problem", None, "tilt = 'field' needs a QuadraticProblem")
            require(problem.n == n, "cells", n, f"must equal the problem's {problem.n} variables")
            bound = bound_field(problem, spec)
            require(bound < 1 << (spec.field_bits - 1), "field_bits", spec.field_bits,
                    f"the field |QW - b| can reach {bound}, which needs "
                    f"{bound.bit_length() + 1} bits")
            q_max = int(np.max(np.abs(problem.data), initial=0))
            require(q_max < 1 << (spec.q_bits - 1), "q_bits", spec.q_bits,
                    f"max |Q_ij| = {q_max} needs {q_max.bit_length() + 1} bits")
            if spec.q_storage == "dense":
                require(n <= MAX_DENSE_CELLS, "q_storage", "dense",
                        f"is limited to {MAX_DENSE_CELLS} cells (got {n}); use 'sparse'")
        self.problem = problem if spec.tilt == "field" else None
        self.order = update_order(n, spec.lanes, spec.order, self.problem)
        self.table = threshold_table(spec.barrier_frac_bits, spec.mantissa_bits)
        self.streams = LaneStreams(spec.seed, spec.lanes)
        self.counters = Counters(spec)
        self.step = 0
        self.W = self._initial_weights(weights)
        self.W0 = self.W.copy()
        self._window = n
        self._repair = self._sizer = None           # repaired windows (see _repair_window)
        self._work = None
        if self.problem is not None:
            self._setup_field()

    # -- set-up ---------------------------------------------------------------------------------
    def _initial_weights(self, weights):
        spec, n = self.spec, self.spec.cells
        if weights is not None:
            w = np.asarray(weights)
            require(w.shape == (n,), "weights", f"shape {w.shape}", f"must have {n} entries")
            w = w.astype(np.int64)
            legal = (w >= spec.w_lo) & (w <= spec.w_hi) & ((w - spec.w_lo) % spec.delta == 0)
            if not legal.all():
                i = int(np.flatnonzero(~legal)[0])
                raise ConfigError(f"weights[{i}] = {w[i]}: must be a well of the ladder "
                                  f"[{spec.w_lo}, {spec.w_hi}] step {spec.delta}")
            return w.copy()
        if spec.init == "random":
            rng = np.random.default_rng(spec.seed)
            levels = (spec.w_hi - spec.w_lo) // spec.delta + 1
            return spec.w_lo + spec.delta * rng.integers(0, levels, n).astype(np.int64)
        if spec.init == "high":
            return np.full(n, spec.w_hi, dtype=np.int64)
        if spec.init == "zero" and not spec.spins:
            return np.zeros(n, dtype=np.int64)
        return np.full(n, spec.w_lo, dtype=np.int64)

    def _setup_field(self):
        spec, problem, order = self.spec, self.problem, self.order
        n = spec.cells
        self.g = problem.field(self.W)
        self.dense_Q = problem.to_dense() if spec.q_storage == "dense" else None
        self.col_nnz = np.diff(problem.indptr)
        seq = order.sequence
        self.qd_seq = spec.delta**2 * problem.diag[seq]
        self.group_start = order.group_start
        self.group_end = order.group_end
        # next_pos[i]: first position (relative to the step of position i, may be in the next
        # step) whose decision a move at position i invalidates.
        position_of = np.empty(n, dtype=np.int64)
        position_of[seq] = np.arange(n)
        rows = np.repeat(np.arange(n), np.diff(problem.indptr))
        off = rows != problem.indices
        at_row = position_of[rows[off]]                  # neighbour's position
        at_col = position_of[problem.indices[off]]       # mover's position
        later = order.group[at_row] > order.group[at_col]
        candidate = np.where(later, at_row, n + at_row)
        self.next_pos = n + np.arange(n)                 # the mover itself, next step
        np.minimum.at(self.next_pos, at_col, candidate)
        self.needs_cross = order.coupled_pairs > 0
        self.loss2_initial = problem.loss2(self.W)
        self.loss2_track = self.loss2_initial            # the hardware's loss register
        self.loss2_true = self.loss2_initial             # includes coupling cross terms
        self.eta_initial = int(spec.gain.values_at([0])[0])
        self.anneal_true = 0
        self.coupling_error = 0
        self._mark = np.zeros(n, dtype=np.int64)
        # bound on |h| of a move, to sum heats in int64 when that cannot overflow
        eta_max = (1 << spec.gain_bits) << spec.tilt_shift
        dl_max = 2 * spec.delta * bound_field(problem, spec) + spec.delta**2 * int(
            np.max(np.abs(problem.diag), initial=0))
        self.h_bound = eta_max * dl_max
        if n >= REPAIR_MIN_CELLS and problem.nnz <= min(REPAIR_MAX_ENTRIES, SPARSE_ENTRIES * n):
            self._repair = self._setup_repair()
            size = max(1, CHUNK_POSITIONS // n) * n
            self._sizer = _Sizer(min(max(spec.lanes, SMALLEST_WINDOW), size), size, n)

    def _setup_repair(self):
        """Tables of the repaired windows: for a move at each position of a step, the first
        position of every cell whose g or W it alters (a neighbour later in the same step, or
        in the next step; the cell itself in the next step), and the same-group neighbours."""
        spec, problem, order = self.spec, self.problem, self.order
        n = spec.cells
        seq, group = order.sequence, order.group
        position_of = np.empty(n, dtype=np.int64)
        position_of[seq] = np.arange(n)
        lengths = self.col_nnz[seq]
        ends = np.cumsum(lengths)
        entry = np.repeat(problem.indptr[seq] - ends + lengths, lengths) + np.arange(ends[-1])
        src = np.repeat(np.arange(n), lengths)
        rows, vals = problem.indices[entry], problem.data[entry]
        off = rows != seq[src]
        src, dst, vals = src[off], position_of[rows[off]], vals[off]
        later = group[dst] > group[src]
        rp = _Repair()
        src_all = np.concatenate((src, np.arange(n)))
        by = np.argsort(src_all, kind="stable")
        rp.length = np.bincount(src_all, minlength=n)
        rp.ptr = np.cumsum(rp.length) - rp.length
        # (narrow types: the tables take (couplings + cells) entries)
        rp.first = np.concatenate((dst + np.where(later, 0, n), np.arange(n) + n))[by].astype(
            np.int32 if n < 1 << 30 else np.int64)
        rp.val = np.concatenate((vals, problem.diag[seq]))[by]
        if int(np.max(np.abs(rp.val), initial=0)) < 1 << 31:
            rp.val = rp.val.astype(np.int32)
        rp.own = np.concatenate((np.zeros(len(src), np.int8), np.ones(n, np.int8)))[by]
        same = group[dst] == group[src]                   # src is sorted
        rp.same_length = np.bincount(src[same], minlength=n)
        rp.same_ptr = np.cumsum(rp.same_length) - rp.same_length
        rp.same_pos = dst[same]
        rp.same_val = vals[same]
        size = max(1, CHUNK_POSITIONS // n) * n
        rp.dg = np.zeros(size, dtype=np.int64)
        rp.dW = np.zeros(size, dtype=np.int64)
        rp.dec = np.zeros(size, dtype=np.int64)
        rp.dir = np.zeros(size, dtype=np.int8)       # outcome: up 1, down -1, stay 0
        rp.inad = np.zeros(size, dtype=bool)
        rp.gm = np.zeros(size, dtype=np.int64)
        rp.rounds = REPAIR_ROUNDS
        # Decisions under repair may see weights a few steps off the ladder, and so fields
        # beyond the bound; clip such fields where their tilts could overflow int64 (the
        # decisions that are kept never see one, so clipping changes nothing they decide).
        reach = max(-spec.w_lo, spec.w_hi) + spec.delta * (size // n + 1)
        eta_max = (1 << spec.gain_bits) << spec.tilt_shift
        dl_max = 2 * spec.delta * problem.max_abs_field(reach) + spec.delta**2 * int(
            np.max(np.abs(problem.diag), initial=0))
        rp.g_clip = None if eta_max * dl_max < 1 << 60 else bound_field(problem, spec)
        return rp

    # -- running --------------------------------------------------------------------------------
    def run(self, steps, snapshot_every=0, progress=None):
        """Run `steps` steps. Returns the weights after every `snapshot_every`-th step
        (an array (count, cells)) when snapshot_every > 0, else None. Checks the identities."""
        require(self.problem is not None, "tilt", self.spec.tilt,
                "run() needs tilt = 'field'; use run_external() with external tilts")
        require(int(steps) >= 0, "steps", steps, "must be >= 0")
        n = self.spec.cells
        target = self.step + int(steps)
        snapshots = [] if snapshot_every else None
        chunk_steps = max(1, CHUNK_POSITIONS // n)
        while self.step < target:
            count = min(target - self.step, chunk_steps)
            self._run_chunk(count, snapshots)
            if progress is not None:
                progress(self.step, target)
        self.check_identities()
        if snapshots is None:
            return None
        every = int(snapshot_every)
        all_steps = np.concatenate(snapshots) if snapshots else np.zeros((0, n), np.int64)
        return all_steps[every - 1::every]

    def _run_chunk(self, count, snapshots):
        ch = self._prepare(count)
        step_dl2 = np.zeros(count, dtype=np.int64)
        step_cross = np.zeros(count, dtype=np.int64)
        moves = [] if snapshots is not None else None
        self._windows(ch, step_dl2, step_cross, moves)
        self._close_steps(count, ch.e0_all, ch.eta_all, step_dl2, step_cross)
        if snapshots is not None:
            snapshots.append(self._replay(count, moves))
        self.step += count
        self.counters.add("steps", count)
        self.counters.check_overflow()

    def _prepare(self, count):
        """Per-position inputs of the decisions of a chunk of `count` steps, in work arrays that
        every chunk reuses (fresh arrays of this size cost more in page faults than the
        arithmetic on them)."""
        spec, order, n = self.spec, self.order, self.spec.cells
        lanes, groups = spec.lanes, order.groups
        ch = self._work
        if ch is None:
            size = max(1, CHUNK_POSITIONS // n) * n
            ch = self._work = _Chunk()
            ch.count = 0
            ch.draws_all = np.empty(size, dtype=np.uint32)
            ch.half_all = np.empty(size, dtype=np.uint32)
            ch.base1_all = np.empty(size, dtype=np.int64)
            ch.slope_all = np.empty(size, dtype=np.int64)
            ch.a = np.empty(size, dtype=np.int64)
            ch.t = np.empty(size, dtype=np.uint32)
            ch.mask = np.empty(size, dtype=bool)
            # thresholds for the filter, saturated to 32 bits (u/2 < 2**31 passes them alike)
            ch.table32 = np.minimum(self.table, (1 << 32) - 1).astype(np.uint32)
            ch.sched = np.zeros((2, 0), dtype=np.int64)
            ch.sched_start = 0
        end = count * n
        if ch.count != count:
            ch.count = count
            ch.end = end
            ch.cells = np.tile(order.sequence, count)
            lane, group = order.slot % lanes, order.slot // lanes
            # draw of position i of step k: lane(i)'s draw number k * groups + group(i)
            ch.draw_index = ((lane * (count * groups) + group)[None, :]
                             + groups * np.arange(count, dtype=np.int64)[:, None]).ravel()
            ch.draws = ch.draws_all[:end]
            ch.half_draws = ch.half_all[:end]
            ch.base1 = ch.base1_all[:end]
            ch.slope = ch.slope_all[:end]
            ch.key = None
            ch.qd_pos = ch.e0_pos = None
        # schedules, evaluated for many steps at once
        k0 = self.step - ch.sched_start
        if k0 < 0 or k0 + count + 1 > ch.sched.shape[1]:
            ch.sched_start = self.step
            k0 = 0
            ks = np.arange(self.step, self.step + max(count + 1, SCHEDULE_STEPS), dtype=np.int64)
            if ks[-1] > MAX_STEPS:                    # near the end: as far as needed (or raise)
                ks = ks[:count + 1]
            ch.sched = np.stack((spec.barrier.values_at(ks), spec.gain.values_at(ks)))
        ch.e0_all = ch.sched[0, k0:k0 + count + 1]
        ch.eta_all = ch.sched[1, k0:k0 + count + 1]
        ch.e0_k = ch.e0_all[:count]
        ch.eta_k = ch.eta_all[:count] << spec.tilt_shift
        np.take(self.streams.take(count * groups).reshape(-1), ch.draw_index, mode="wrap",
                out=ch.draws)
        np.right_shift(ch.draws, 1, out=ch.half_draws)
        # table index of the lowest barrier: base1 - slope * |g|, base1 = E0 + eta qd + 1
        key = (ch.e0_k.tobytes(), ch.eta_k.tobytes())
        if key != ch.key:
            ch.key = key
            base1 = ch.base1.reshape(count, n)
            np.multiply(ch.eta_k[:, None], self.qd_seq[None, :], out=base1)
            base1 += (ch.e0_k + 1)[:, None]
            ch.slope.reshape(count, n)[...] = (ch.eta_k * (2 * spec.delta))[:, None]
        ch.cut_ready = False
        return ch

    def _candidates(self, ch, p, b):
        """Positions in [p, b) (relative to p) that pass the filter against the current g.

        A move needs u < T+ + T- <= 2 T(lowest barrier); only the few positions that pass are
        decided in full (inadmissible steps always pass: T+ + T- > 2**32 > u)."""
        m = b - p
        a = np.take(self.g, ch.cells[p:b], mode="wrap", out=ch.a[:m])
        np.abs(a, out=a)
        np.multiply(a, ch.slope[p:b], out=a)
        np.subtract(ch.base1[p:b], a, out=a)
        t = np.take(ch.table32, a, mode="clip", out=ch.t[:m])
        return np.flatnonzero(np.less(ch.half_draws[p:b], t, out=ch.mask[:m]))

    def _windows(self, ch, step_dl2, step_cross, moves):
        """Runs the windows of a chunk: cut windows only, or the kind and size of window that
        the sizer finds fastest."""
        end, sizer = ch.end, self._sizer
        p = 0
        if sizer is None:
            while p < end:
                p = self._cut_window(ch, p, step_dl2, step_cross, moves)
            return
        decided, moved = [], []                       # final decisions of repaired windows
        clock = time.perf_counter
        while p < end:
            if not sizer.size:
                if not ch.cut_ready:
                    self._cut_inputs(ch)              # once per chunk: not the window's cost
                if sizer.previous:                    # from the repaired windows' size on
                    self._window, sizer.previous = sizer.previous, 0
            start = clock()
            if sizer.size:
                q = self._repair_window(ch, p, sizer.size, decided, moved)
            else:
                q = self._cut_window(ch, p, step_dl2, step_cross, moves)
            sizer.record(q - p, clock() - start)
            p = q
        if decided:
            self._account(ch, decided, moved, step_dl2, step_cross, moves)

    def _cut_window(self, ch, p, step_dl2, step_cross, moves):
        """A window cut at the first decision that a move in it invalidates (a later
        evaluation of a neighbour of a mover, or of the mover itself). Returns its end."""
        spec, n, c = self.spec, self.spec.cells, self.counters
        end, cells = ch.end, ch.cells
        if not ch.cut_ready:
            self._cut_inputs(ch)
        # windows end at group boundaries: a group sees one g, so it is never split
        b = min(end, p + self._window) - 1
        b = b - b % n + int(self.group_end[b % n])
        cand = self._candidates(ch, p, b)
        q = b
        if cand.size:
            x = p + cand
            cell = cells[x]
            up, down, inadmissible, blocked, movers, is_up, dl2, h = self._decide(
                cell, self.g[cell], ch.eta_pos[x], ch.qd_pos[x], ch.e0_pos[x], ch.draws64[x])
            if movers.size:
                xm = x[movers]
                i = xm % n
                cut = int(np.min(xm - i + self.next_pos[i]))
                if cut < b:
                    q = cut - cut % n + int(self.group_start[cut % n])
                    keep = np.searchsorted(x, q)
                    up, down, inadmissible, blocked = (a[:keep] for a in
                                                       (up, down, inadmissible, blocked))
                    kept_movers = np.searchsorted(movers, keep)
                    movers, is_up, dl2, h = (a[:kept_movers] for a in (movers, is_up, dl2, h))
            c.add("up_moves", np.count_nonzero(up & ~blocked))
            c.add("down_moves", np.count_nonzero(down & ~blocked))
            c.add("blocked_moves", np.count_nonzero(blocked))
            c.add("inadmissible", np.count_nonzero(inadmissible))
            if movers.size:
                xm = x[movers]
                self._apply_moves(cells[xm], is_up, dl2, h, xm // n, step_dl2, step_cross,
                                  moves)
        kept = q - p
        c.add("evaluations", kept)
        if q < b:
            self._window = max(spec.lanes, 2 * kept)
        else:
            self._window = min(2 * self._window, max(end, n))
        return q

    def _cut_inputs(self, ch):
        """Per-position inputs of the full decisions of cut windows."""
        n, count = self.spec.cells, ch.count
        if ch.qd_pos is None:
            ch.qd_pos = np.tile(self.qd_seq, count)
        if ch.e0_pos is None:
            ch.e0_pos = np.empty(ch.end, dtype=np.int64)
            ch.eta_pos = np.empty(ch.end, dtype=np.int64)
            ch.draws64 = np.empty(ch.end, dtype=np.int64)
        ch.e0_pos.reshape(count, n)[...] = ch.e0_k[:, None]
        ch.eta_pos.reshape(count, n)[...] = ch.eta_k[:, None]
        ch.draws64[...] = ch.draws
        ch.cut_ready = True

    # -- windows repaired in place --------------------------------------------------------------
    def _repair_window(self, ch, p, size, decided, moved):
        """A window whose decisions are repaired where moves invalidate them.

        The window is decided against the g at its start; then, round after round, only the
        positions whose g or W a changed decision alters are decided again (with the g and W
        that the window's current moves give them), until no decision changes: the decisions
        are then a fixed point, which is unique (a decision only depends on earlier groups)
        and so the hardware's. After `rounds` rounds without a fixed point the window is cut
        at the first group that still changes, and only what precedes it is kept (dropping
        the end of a window changes nothing before it). Moves are applied to W and g; the
        counters are left to _account. Returns the window's end."""
        n, rp = self.spec.cells, self._repair
        cells, W, g = ch.cells, self.W, self.g
        dg, dW, dec = rp.dg, rp.dW, rp.dec
        b = min(ch.end, p + size) - 1
        b = b - b % n + int(self.group_end[b % n])
        x = self._candidates(ch, p, b)
        q = b
        if x.size:
            x += p
            cell = cells[x]
            changed, ddw = self._redecide(ch, x, g[cell], W[cell], None)
            touched = [x]
            rounds = 0
            budget = 2 * (b - p) + 1024
            while changed.size:
                at, vg, vw, q = self._affected(changed, ddw, q, budget)
                if not at.size:
                    break
                if rounds == rp.rounds:
                    first = int(at.min())
                    q = first - first % n + int(self.group_start[first % n])
                    break
                rounds += 1
                np.add.at(dg, at, vg)
                np.add.at(dW, at, vw)
                at.sort()
                at = at[np.concatenate(([True], at[1:] != at[:-1]))]
                touched.append(at)
                cell = cells[at]
                changed, ddw = self._redecide(ch, at, g[cell] + dg[at], W[cell] + dW[at],
                                              dec[at])
            if len(touched) > 1:
                every = np.concatenate(touched)
                dg[every] = 0
                dW[every] = 0
                every.sort()
                touched = every[np.concatenate(([True], every[1:] != every[:-1]))]
            else:
                touched = x
            if q < b:                                 # positions from q on are dropped
                cut = np.searchsorted(touched, q)
                dec[touched[cut:]] = 0
                rp.dir[touched[cut:]] = 0
                rp.inad[touched[cut:]] = False
                touched = touched[:cut]
            movers = touched[dec[touched] != 0]
            decided.append(touched)
            if movers.size:
                moved.append(movers)
                self._move(cells[movers], dec[movers])
        self.counters.add("evaluations", q - p)
        return q

    def _redecide(self, ch, at, g_at, w_at, old):
        """(Re)decides positions `at` (sorted) with fields g_at and weights w_at; old: their
        moves so far (None: none, and `at` passed the filter). Returns the positions whose
        move changed and the change of their dw. The decisions are those of decide() (and
        _decide); a weight off the ladder, which only positions still to be repaired see,
        blocks the move that would leave it further."""
        spec, rp, table = self.spec, self._repair, self.table
        if rp.g_clip is not None:
            g_at = np.clip(g_at, -rp.g_clip, rp.g_clip)
        full = at
        base1, slope = ch.base1[at], ch.slope[at]
        if old is not None:
            if len(at) > FILTER_FROM:                 # the filter of _candidates
                rp.dec[at] = 0
                rp.dir[at] = 0
                rp.inad[at] = False
                lowest = base1 - slope * np.abs(g_at)
                keep = np.flatnonzero(ch.half_draws[at] < np.take(ch.table32, lowest,
                                                                  mode="clip"))
                at, g_at, w_at, base1, slope = (a[keep] for a in (at, g_at, w_at, base1,
                                                                  slope))
            else:
                keep = slice(None)
        sg = slope * g_at
        up1 = base1 + sg                              # table indices of B+ and B-
        down1 = base1 - sg
        t_up = np.take(table, up1, mode="clip")
        t_down = np.take(table, down1, mode="clip")
        u = ch.draws[at].astype(np.int64)
        total = t_up + t_down
        up = u < t_up
        down = (u < total) ^ up
        inadmissible = total > ONE
        if inadmissible.any():
            # crossing._scaled: after subtracting the lower barrier one threshold is ONE,
            # the other T(|B+ - B-|); ONE is a multiple of 2**17
            k = np.flatnonzero(inadmissible)
            diff = up1[k] - down1[k]
            other = np.take(table, np.abs(diff) + 1, mode="clip") >> SCALED_SHIFT
            a = np.where(diff >= 0, other, ONE >> SCALED_SHIFT)
            up_k = (u[k] >> SCALED_DRAW_SHIFT) * (other + (ONE >> SCALED_SHIFT)) < (
                a << INADMISSIBLE_PRECISION_BITS)
            up[k] = up_k
            down[k] = ~up_k
        direction = up.view(np.int8) - down.view(np.int8)
        dw = direction * np.int64(spec.delta)
        w_next = w_at + dw
        dw[(w_next > spec.w_hi) | (w_next < spec.w_lo)] = 0
        rp.dec[at] = dw
        rp.dir[at] = direction
        rp.inad[at] = inadmissible
        moved = np.flatnonzero(dw)
        if moved.size:
            rp.gm[at[moved]] = g_at[moved]
        if old is None:
            return at[moved], dw[moved]
        new = np.zeros(len(full), dtype=np.int64)
        new[keep] = dw
        diff = new - old
        changed = np.flatnonzero(diff)
        return full[changed], diff[changed]

    def _affected(self, changed, ddw, b, budget):
        """Positions (< b, repeated) whose g or W a change ddw of the moves at `changed`
        alters, with the change of g and of W at each, and b; b is moved back to a group
        boundary when there would be more than about `budget` of them (a move alters its
        neighbours in every later step: long windows would make them too many)."""
        rp, n = self._repair, self.spec.cells
        i = changed % n
        lengths = rp.length[i]
        ends = np.cumsum(lengths)
        entry = np.repeat(rp.ptr[i] - ends + lengths, lengths) + np.arange(ends[-1])
        first = np.repeat(changed - i, lengths) + rp.first[entry]
        steps = (b - 1 - first) // n + 1
        np.maximum(steps, 0, out=steps)
        ends = np.cumsum(steps)
        total = int(ends[-1])
        if total > budget:
            last = int(first.min()) + max(1, budget // len(first)) * n - 1
            if last < b - 1:
                b = last - last % n + int(self.group_end[last % n])
                steps = (b - 1 - first) // n + 1
                np.maximum(steps, 0, out=steps)
                ends = np.cumsum(steps)
                total = int(ends[-1])
        if total == 0:
            return np.zeros(0, dtype=np.int64), None, None, b
        at = np.repeat(first - n * (ends - steps), steps) + n * np.arange(total)
        d = np.repeat(ddw, lengths)
        vg = np.repeat(rp.val[entry] * d, steps)
        vw = np.repeat(rp.own[entry] * d, steps)
        return at, vg, vw, b

    def _move(self, cells, dw):
        """Moves of a window, applied to W and g (a cell may move in several steps)."""
        problem = self.problem
        np.add.at(self.W, cells, dw)
        if self.dense_Q is not None:
            self.g += self.dense_Q[:, cells] @ dw
            return
        lengths = self.col_nnz[cells]
        ends = np.cumsum(lengths)
        entry = np.repeat(problem.indptr[cells] - ends + lengths, lengths) + np.arange(ends[-1])
        np.add.at(self.g, problem.indices[entry], problem.data[entry] * np.repeat(dw, lengths))

    def _account(self, ch, decided, moved, step_dl2, step_cross, moves):
        """Counters, loss and heat of the final decisions of a chunk (at the positions
        `decided`, moves at `moved`); clears the work arrays."""
        spec, c, rp, n = self.spec, self.counters, self._repair, self.spec.cells
        decided = np.concatenate(decided)
        dw = rp.dec[decided]
        up, down = np.count_nonzero(dw > 0), np.count_nonzero(dw < 0)
        c.add("up_moves", up)
        c.add("down_moves", down)
        c.add("blocked_moves", np.count_nonzero(rp.dir[decided]) - up - down)
        c.add("inadmissible", np.count_nonzero(rp.inad[decided]))
        rp.dir[decided] = 0
        rp.inad[decided] = False
        if not moved:
            return
        movers = np.concatenate(moved)
        cells = ch.cells[movers]
        dw = rp.dec[movers]
        step = movers // n
        s = rp.dec[movers] // spec.delta
        dl2 = self.qd_seq[movers - step * n] + 2 * spec.delta * rp.gm[movers] * s
        h = ch.eta_k[step] * dl2
        self._add_heat(h)
        np.add.at(step_dl2, step, dl2)
        c.add("field_adds", n * len(movers) if self.dense_Q is not None else
              int(self.col_nnz[cells].sum()))
        if self.needs_cross:
            # loss terms of coupled cells that moved in the same group
            i = movers - step * n
            lengths = rp.same_length[i]
            if lengths.any():
                ends = np.cumsum(lengths)
                entry = np.repeat(rp.same_ptr[i] - ends + lengths, lengths) + np.arange(ends[-1])
                other = np.repeat(movers - i, lengths) + rp.same_pos[entry]
                np.add.at(step_cross, np.repeat(step, lengths),
                          np.repeat(dw, lengths) * rp.same_val[entry] * rp.dec[other])
        rp.dec[movers] = 0
        if moves is not None:
            moves.append((step, cells, dw))

    def _decide(self, cell, g_cell, eta, qd, e0, u):
        """Full decisions for the cells that passed the filter."""
        spec = self.spec
        tdg = g_cell * (2 * spec.delta)
        dl_up = qd + tdg
        dl_down = qd - tdg
        h_up = eta * dl_up
        h_down = eta * dl_down
        up, down, inadmissible = decide(u, e0 + h_up, e0 + h_down, self.table)
        w = self.W[cell]
        blocked = (up & (w == spec.w_hi)) | (down & (w == spec.w_lo))
        movers = np.flatnonzero((up | down) & ~blocked)
        is_up = up[movers]
        dl2 = np.where(is_up, dl_up[movers], dl_down[movers])
        h = np.where(is_up, h_up[movers], h_down[movers])
        return up, down, inadmissible, blocked, movers, is_up, dl2, h

    def _add_heat(self, h):
        """Heat of moves with half tilts h: -2h released each, 2|h| gross; exact."""
        c = self.counters
        if self.h_bound * len(h) < 1 << 62:        # int64 sums cannot overflow
            c.add("heat_net", -2 * int(h.sum()))
            c.add("heat_abs", 2 * int(np.abs(h).sum()))
        else:
            c.add("heat_net", -2 * _exact_sum(h))
            c.add("heat_abs", 2 * _exact_sum(np.abs(h)))

    def _apply_moves(self, cells, is_up, dl2, h, step, step_dl2, step_cross, moves):
        spec, c = self.spec, self.counters
        dw = np.where(is_up, spec.delta, -spec.delta)
        self._add_heat(h)
        self.W[cells] += dw
        np.add.at(step_dl2, step, dl2)
        if self.dense_Q is not None:
            y = self.dense_Q[:, cells] @ dw
            self.g += y
            c.add("field_adds", spec.cells * len(cells))
            if self.needs_cross:
                cross = dw * (y[cells] - dw * self.problem.diag[cells])
                np.add.at(step_cross, step, cross)
        else:
            problem = self.problem
            lengths = self.col_nnz[cells]
            starts = problem.indptr[cells]
            entry = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(
                lengths.sum())
            rows = problem.indices[entry]
            vals = problem.data[entry] * np.repeat(dw, lengths)
            np.add.at(self.g, rows, vals)
            c.add("field_adds", len(entry))
            if self.needs_cross:
                self._mark[cells] = dw
                own = rows != np.repeat(cells, lengths)
                np.add.at(step_cross, np.repeat(step, lengths)[own],
                          self._mark[rows[own]] * vals[own])
                self._mark[cells] = 0
        if moves is not None:
            moves.append((step, cells, dw))

    def _close_steps(self, count, e0, eta, step_dl2, step_cross):
        """Account the step boundaries k -> k+1 of a chunk: annealing and barrier work."""
        c, spec = self.counters, self.spec
        two_sc = 2 << spec.tilt_shift
        d_eta = np.diff(eta)
        track = self.loss2_track
        true = self.loss2_true
        anneal = anneal_true = coupling = 0
        # only steps where eta changes or the loss moved contribute; between them the losses
        # are constant, so the skipped steps add exactly nothing
        active = np.flatnonzero((d_eta != 0) | (step_dl2 != 0) | (step_cross != 0))
        for s in active.tolist():
            track_inc = int(step_dl2[s])
            cross = int(step_cross[s])
            track += track_inc                          # losses after step s
            true += track_inc + cross
            coupling += int(eta[s]) * cross
            anneal += int(d_eta[s]) * track
            anneal_true += int(d_eta[s]) * true
        self.loss2_track, self.loss2_true = track, true
        c.add("anneal_work", two_sc * anneal)
        self.anneal_true += two_sc * anneal_true
        self.coupling_error += two_sc * coupling
        rises = np.maximum(np.diff(e0), 0)
        c.add("barrier_work", spec.cells * int(rises.sum()))

    def _replay(self, count, moves):
        """Weights after each step of a chunk, rebuilt from the recorded moves."""
        delta = np.zeros((count, self.spec.cells), dtype=np.int64)
        for step, cells, dw in moves:
            np.add.at(delta, (step, cells), dw)
        start = self.W - delta.sum(axis=0)
        return start + np.cumsum(delta, axis=0)

    # -- external tilt mode ---------------------------------------------------------------------
    def run_external(self, steps, half_tilt, progress=None):
        """Run `steps` steps with tilts from the caller (tilt = 'external').

        half_tilt(step, weights) returns, for every cell, h = D+/2 in energy LSBs (ints): the
        up move crosses E0 - h and releases 2h, the down move crosses E0 + h and releases -2h.
        Tilts are fixed for the whole step. The gain schedule is not used in this mode.
        """
        spec, order, n = self.spec, self.order, self.spec.cells
        require(spec.tilt == "external", "tilt", spec.tilt, "run_external() needs 'external'")
        c = self.counters
        for _ in range(int(steps)):
            h = checked_half_tilts(spec, half_tilt(self.step, self.W.copy()))
            e0 = spec.barrier.values_at([self.step, self.step + 1])
            draws = self.streams.take(order.groups).T.reshape(-1)[order.slot]
            cell = order.sequence
            hs = h[cell]
            up, down, inadmissible = decide(draws, e0[0] - hs, e0[0] + hs, self.table)
            wc = self.W[cell]
            blocked_up = up & (wc == spec.w_hi)
            blocked_down = down & (wc == spec.w_lo)
            move_up = up ^ blocked_up
            move_down = down ^ blocked_down
            self.W[cell[move_up]] += spec.delta
            self.W[cell[move_down]] -= spec.delta
            c.add("evaluations", n)
            c.add("up_moves", np.count_nonzero(move_up))
            c.add("down_moves", np.count_nonzero(move_down))
            c.add("blocked_moves", np.count_nonzero(blocked_up) + np.count_nonzero(blocked_down))
            c.add("inadmissible", np.count_nonzero(inadmissible))
            released = 2 * (_exact_sum(hs[move_up]) - _exact_sum(hs[move_down]))
            c.add("heat_net", released)
            c.add("heat_abs", 2 * (_exact_sum(np.abs(hs[move_up | move_down]))))
            c.add("barrier_work", n * max(0, int(e0[1] - e0[0])))
            c.add("steps", 1)
            c.check_overflow()
            self.step += 1
            if progress is not None:
                progress(self.step, None)
        self._check_counts()

    # -- identities and results -----------------------------------------------------------------
    def energy(self, loss2, eta):
        """eta * L in energy LSBs (exact)."""
        return (eta * loss2) << (self.spec.tilt_shift + 1)

    def check_identities(self):
        """docs/physics.md §5, exactly; raises IdentityError on any violation."""
        self._check_counts()
        if self.problem is None:
            return
        spec, c = self.spec, self.counters.exact
        loss2 = self.problem.loss2(self.W)
        eta_now = int(spec.gain.values_at([self.step])[0])
        failures = []
        if loss2 != self.loss2_true:
            failures.append(f"loss tracked by moves {self.loss2_true} != L2(W) = {loss2}")
        if not np.array_equal(self.g, self.problem.field(self.W)):
            i = int(np.flatnonzero(self.g != self.problem.field(self.W))[0])
            failures.append(f"field g[{i}] = {self.g[i]} != (QW - b)[{i}]")
        e_start = self.energy(self.loss2_initial, self.eta_initial)
        hardware = e_start - self.energy(self.loss2_track, eta_now) + c["anneal_work"]
        if c["heat_net"] != hardware:
            failures.append(f"heat_net {c['heat_net']} != eta0 L0 - etaK LK(register) + "
                            f"anneal_work = {hardware}")
        physical = (e_start - self.energy(loss2, eta_now) + self.anneal_true
                    + self.coupling_error)
        if c["heat_net"] != physical:
            failures.append(f"first law: heat_net {c['heat_net']} != eta0 L(W0) - etaK L(WK) + "
                            f"annealing work + coupling error = {physical}")
        if failures:
            raise IdentityError(f"after step {self.step}: " + "; ".join(failures)
                                + f" [{spec!r}]")

    def _check_counts(self):
        c = self.counters.exact
        if c["evaluations"] != c["steps"] * self.spec.cells or \
                c["up_moves"] + c["down_moves"] + c["blocked_moves"] > c["evaluations"]:
            raise IdentityError(f"counter totals inconsistent: {c} [{self.spec!r}]")

    @property
    def loss(self):
        return self.problem.loss2(self.W) / 2 if self.problem is not None else None


def checked_half_tilts(spec, h):
    """A caller's half tilts (one per cell, energy LSBs) as int64; ConfigError unless they
    are integers that fit the hardware's tilt_bits."""
    h = np.asarray(h)
    require(h.shape == (spec.cells,), "half_tilt", f"shape {h.shape}",
            f"must return {spec.cells} values")
    require(h.dtype.kind in "iu", "half_tilt", f"dtype {h.dtype}", "must be integers")
    h = h.astype(np.int64)
    limit = 1 << (spec.tilt_bits - 1)
    require(bool(np.all(np.abs(h) < limit)), "half_tilt", int(np.max(np.abs(h))),
            f"must be < {limit} in magnitude (tilt_bits = {spec.tilt_bits})")
    return h


def bound_field(problem, spec):
    """Largest |g_n| = |(QW - b)_n| over all weights of the ladder."""
    return problem.max_abs_field(max(-spec.w_lo, spec.w_hi))


def _exact_sum(a):
    """Sum of an int64 array as a Python int, without int64 overflow."""
    if a.size == 0:
        return 0
    if int(np.max(np.abs(a))) * a.size < 1 << 62:
        return int(a.sum())
    return sum(int(x) for x in a)
