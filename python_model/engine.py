"""The golden model of a LIM synapse array: bit-exact, vectorised over cells and steps.

Hardware semantics (what the RTL does, cycle by cycle): each step visits the groups of the
update order; in each group every lane draws one number, evaluates its cell against the
current field g with the step's barrier E0(k) and gain eta(k), and moves it up, down or not;
then g <- g + dW_m Q[:, m] for every cell m that moved, before the next group.

The model gets the same result without a Python loop per cell: it decides a whole window of
(step, position) pairs at once against the current g, then keeps the decisions up to the first
one that a move inside the window has invalidated (a later evaluation of a neighbour of a
mover, or of the mover itself), applies those moves, and carries on from there. Decisions only
depend on the draws (fixed in advance), on the schedules and on g and W at the cell, so the
kept decisions are exactly the hardware's.

Energies are integers in energy LSBs (2**-F u). With dL2 = twice the loss change of a move,
the half tilt is h = eta_raw * dL2 << tilt_shift, the crossing barrier E0 + h and the heat
released -2h: nothing is rounded, so detailed balance and the first law hold exactly.
"""

import numpy as np

from .counters import Counters
from .crossing import decide, threshold_table
from .errors import ConfigError, IdentityError, require
from .order import update_order
from .rng import LaneStreams

CHUNK_POSITIONS = 1 << 16        # cell evaluations prepared at once
MAX_DENSE_CELLS = 4096           # a dense Q of N**2 int64


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
        spec, order, n = self.spec, self.order, self.spec.cells
        lanes, groups = spec.lanes, order.groups
        s0 = self.step
        ks = np.arange(s0, s0 + count + 1, dtype=np.int64)
        e0 = spec.barrier.values_at(ks)
        eta = spec.gain.values_at(ks)
        draws = self.streams.take(count * groups)
        draws = draws.reshape(lanes, count, groups).transpose(1, 2, 0).reshape(count, -1)
        draws = draws[:, order.slot].ravel()
        cells = np.tile(order.sequence, count)
        qd = np.tile(self.qd_seq, count)
        e0_pos = np.repeat(e0[:count], n)
        eta_pos = np.repeat(eta[:count] << spec.tilt_shift, n)
        step_dl2 = np.zeros(count, dtype=np.int64)
        step_cross = np.zeros(count, dtype=np.int64)
        moves = [] if snapshots is not None else None
        W, g, table, c = self.W, self.g, self.table, self.counters
        last = len(table) - 1
        draws = draws.astype(np.int64)
        half_draws = draws >> 1
        e0_pos_1 = e0_pos + 1                     # table index of barrier b is b + 1
        two_delta = 2 * spec.delta
        end = count * n
        p = 0
        while p < end:
            # windows end at group boundaries: a group sees one g, so it is never split
            b = min(end, p + self._window) - 1
            b = b - b % n + int(self.group_end[b % n])
            # Filter: a move needs u < T+ + T- <= 2 T(lowest barrier). Only the few cells that
            # pass are decided in full (inadmissible steps always pass: T+ + T- > 2**32 > u).
            cell = cells[p:b]
            g_cell = g[cell]
            lowest = e0_pos_1[p:b] + eta_pos[p:b] * (qd[p:b] - two_delta * np.abs(g_cell))
            t_max = table[np.minimum(np.maximum(lowest, 0), last)]
            cand = np.flatnonzero(half_draws[p:b] < t_max)
            q = b
            if cand.size:
                x = p + cand
                up, down, inadmissible, blocked, movers, is_up, dl2, h = self._decide(
                    cells[x], g_cell[cand], eta_pos[x], qd[x], e0_pos[x], draws[x])
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
                        movers, is_up, dl2, h = (a[:kept_movers] for a in
                                                 (movers, is_up, dl2, h))
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
                self._window = max(lanes, 2 * kept)
            else:
                self._window = min(2 * self._window, max(end, n))
            p = q
        self._close_steps(count, e0, eta, step_dl2, step_cross)
        if snapshots is not None:
            snapshots.append(self._replay(count, moves))
        self.step += count
        c.add("steps", count)
        c.check_overflow()

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

    def _apply_moves(self, cells, is_up, dl2, h, step, step_dl2, step_cross, moves):
        spec, c = self.spec, self.counters
        dw = np.where(is_up, spec.delta, -spec.delta)
        if self.h_bound * len(h) < 1 << 62:
            c.add("heat_net", -2 * int(h.sum()))
            c.add("heat_abs", 2 * int(np.abs(h).sum()))
        else:
            c.add("heat_net", -2 * _exact_sum(h))
            c.add("heat_abs", 2 * _exact_sum(np.abs(h)))
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
        limit = 1 << (spec.tilt_bits - 1)
        c = self.counters
        for _ in range(int(steps)):
            h = np.asarray(half_tilt(self.step, self.W.copy()))
            require(h.shape == (n,), "half_tilt", f"shape {h.shape}", f"must return {n} values")
            require(h.dtype.kind in "iu", "half_tilt", f"dtype {h.dtype}", "must be integers")
            h = h.astype(np.int64)
            require(np.all(np.abs(h) < limit), "half_tilt", int(np.max(np.abs(h))),
                    f"must be < {limit} in magnitude (tilt_bits = {spec.tilt_bits})")
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
        """PHYSICS.md section 5, exactly; raises IdentityError on any violation."""
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
