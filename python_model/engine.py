"""The golden model of a LIM synapse array: the hardware's loop, compiled, bit-exact.

Hardware semantics (what the RTL does, cycle by cycle, and what reference.py spells out): each
step visits the groups of the update order; in each group every lane draws one number,
evaluates its cell against the current field g with the step's barrier E0(k) and gain eta(k),
and moves it up, down or not; then g <- g + dW_m Q[:, m] for every cell m that moved, before
the next group.

The engine runs that loop itself, compiled by Numba (kernels.py), so its results are the
reference's by construction. This module sets it up (validation, update order, generators,
tables), runs it in chunks of steps (progress, snapshots, exact Python-integer counters between
chunks) and checks the physical identities after every run.

Energies are integers in energy LSBs (2**-F u). With dL2 = twice the loss change of a move,
the half tilt is h = eta_raw * dL2 << tilt_shift, the crossing barrier E0 + h and the heat
released -2h: nothing is rounded, so detailed balance and the first law hold exactly.
"""

import numpy as np

from . import kernels
from .counters import Counters
from .crossing import ONE, threshold_table
from .errors import ConfigError, IdentityError, require
from .order import update_order
from .rng import LaneStreams

CHUNK_POSITIONS = 1 << 22        # cell evaluations per call of the compiled loop
MAX_DENSE_CELLS = 4096           # a dense Q of N**2 int64
DECISION_ROWS = 1 << 12          # decision tables of up to max(this, cells / 8) rows
SCAN_BELOW = 16                  # see kernels.run_field_steps: which steps _interval_step takes
INT64_SAFE = 1 << 62             # sums below this cannot overflow int64


class LimArray:
    """A LIM synapse array defined by a Spec, minimising a QuadraticProblem (tilt='field') or
    driven by tilts the caller supplies every step (tilt='external', see run_external).

    State between runs: W (weights), g (field QW - b), step, counters (exact, with the
    hardware's wrapped view), cell_up / cell_down (moves per cell since construction), and in
    field mode the loss register loss2_track, the annealing work and coupling error of the
    true loss (anneal_true, coupling_error) for the first law."""

    def __init__(self, spec, problem=None, weights=None):
        self.spec = spec
        n = spec.cells
        if spec.tilt == "field":
            _check_problem(spec, problem)
        self.problem = problem if spec.tilt == "field" else None
        self.order = update_order(n, spec.lanes, spec.order, self.problem)
        self.table = threshold_table(spec.barrier_frac_bits, spec.mantissa_bits)
        self.streams = LaneStreams(spec.seed, spec.lanes)
        self.counters = Counters(spec)
        self.step = 0
        self.W = self._initial_weights(weights)
        self.W0 = self.W.copy()
        self.g = np.zeros(n, dtype=np.int64)
        self.cell_up = np.zeros(n, dtype=np.int64)
        self.cell_down = np.zeros(n, dtype=np.int64)
        cell_at_slot = np.full(self.order.groups * spec.lanes, -1, dtype=np.int64)
        cell_at_slot[self.order.slot] = self.order.sequence
        group_end = (np.arange(len(cell_at_slot)) // spec.lanes + 1) * spec.lanes
        self._order = (cell_at_slot, spec.lanes, (spec.w_lo, spec.w_hi, spec.delta),
                       self.order.coupled_pairs > 0, np.empty(len(cell_at_slot), np.uint32),
                       group_end, self.order.sequence.astype(np.int64),
                       self.order.slot.astype(np.int64), *self._segments())
        if self.problem is not None:
            self._setup_field()

    def _segments(self):
        """The segments of a step (kernels.segment_starts: in field mode runs of groups
        without couplings between them, else every group): the position where each starts
        (and the end), for each slot the slot after the end of its segment, and the slot where
        each starts (and the end)."""
        order, lanes = self.order, self.spec.lanes
        if self.problem is None:
            starts = np.searchsorted(order.group, np.arange(order.groups + 1))
        else:
            p = self.problem
            starts = kernels.segment_starts(
                order.group.astype(np.int64), order.sequence.astype(np.int64),
                *(a.astype(np.int64, copy=False) for a in (p.indptr, p.indices, p.data)))
        group_starts = np.append(order.group[starts[:-1]], order.groups) * lanes
        segment_end = np.repeat(group_starts[1:], np.diff(group_starts))
        return starts.astype(np.int64), segment_end.astype(np.int64), group_starts.astype(np.int64)

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
        spec, problem = self.spec, self.problem
        self.g = problem.field(self.W)
        dense = problem.to_dense() if spec.q_storage == "dense" else np.zeros((0, 0), np.int64)
        self._problem = (spec.delta**2 * problem.diag, dense,
                         *(a.astype(np.int64, copy=False) for a in (problem.indptr,
                                                                    problem.indices,
                                                                    problem.data)))
        self._mark = np.zeros(spec.cells, dtype=np.int64)
        self._tables = self._decision_tables()
        self.loss2_initial = problem.loss2(self.W)
        self.loss2_track = self.loss2_initial            # the hardware's loss register
        self.loss2_true = self.loss2_initial             # includes coupling cross terms
        self.eta_initial = int(spec.gain.values_at([0])[0])
        self.anneal_true = 0
        self.coupling_error = 0

    def _decision_tables(self):
        """The compiled loop's tables: thresholds, and decisions per key (class of Q_nn, field
        g, state of W) when there are at most max(DECISION_ROWS, cells / 8) (class, g) rows
        (kernels.build_decisions), with the keys' last row an idle slot's."""
        qd = self._problem[0]
        bound = bound_field(self.problem, self.spec)
        class_qd, class_of = np.unique(qd, return_inverse=True)
        rows = len(class_qd) * (2 * bound + 1)
        if rows > max(DECISION_ROWS, self.spec.cells // 8):        # 4 rows of 64 bytes each
            class_qd, rows = class_qd[:0], 0
        decisions = np.zeros((4 * rows + 1 if rows else 0, kernels.KEY_FIELDS), np.int64)
        if rows:
            decisions[-1, kernels.STAY_FROM] = ONE          # an idle slot never moves nor stays
        zero_row = class_of.astype(np.int64) * (2 * bound + 1) + bound
        tabulated = np.array([-1, -1, 0, 0], dtype=np.int64)    # (e0, eta): none yet
        cell_at_slot = self._order[0]
        slot_of = np.zeros(self.spec.cells, dtype=np.int64)
        slot_of[cell_at_slot[cell_at_slot >= 0]] = np.flatnonzero(cell_at_slot >= 0)
        slots = len(cell_at_slot)
        return (self.table, decisions, class_qd.astype(np.int64), zero_row, bound, tabulated,
                slot_of, np.zeros(slots, np.int64), np.zeros((4, slots), np.int64),
                np.zeros(slots if rows else 0, np.int64), slot_of[self._problem[3]])

    # -- running --------------------------------------------------------------------------------
    def run(self, steps, snapshot_every=0, progress=None):
        """Run `steps` steps. Returns the weights after every `snapshot_every`-th step
        (an array (count, cells)) when snapshot_every > 0, else None. Checks the identities.
        progress(step, last step), if given, is called after every chunk of steps."""
        require(self.problem is not None, "tilt", self.spec.tilt,
                "run() needs tilt = 'field'; use run_external() with external tilts")
        require(int(steps) >= 0, "steps", steps, "must be >= 0")
        every = int(snapshot_every)
        require(every >= 0, "snapshot_every", snapshot_every, "must be >= 0")
        n, steps = self.spec.cells, int(steps)
        snapshots = np.zeros((steps // every if every else 0, n), dtype=np.int64)
        chunk = max(1, CHUNK_POSITIONS // n)
        done = 0
        while done < steps:
            count = min(steps - done, chunk)
            self._run_chunk(count, snapshots, every, done)
            done += count
            if progress is not None:
                progress(self.step, self.step + steps - done)
        self.check_identities()
        return snapshots if every else None

    def _run_chunk(self, count, snapshots, every, done):
        """`count` steps in one call of the compiled loop, then their counters and work."""
        spec = self.spec
        ks = np.arange(self.step, self.step + count + 1, dtype=np.int64)
        e0, eta = spec.barrier.values_at(ks), spec.gain.values_at(ks)
        counts = np.zeros(kernels.COUNT_SLOTS, dtype=np.int64)
        step_dl2 = np.zeros(count, dtype=np.int64)
        step_cross = np.zeros(count, dtype=np.int64)
        kernels.run_field_steps(
            count, e0, eta << spec.tilt_shift, self.streams.arrays(), self._order,
            (self.W, self.g, self.cell_up, self.cell_down), self._problem, self._tables,
            (counts, step_dl2, step_cross, snapshots, every, done, self._mark), SCAN_BELOW)
        self._add_counts(counts)
        self._close_steps(eta, step_dl2, step_cross)
        self.counters.add("barrier_work", spec.cells * int(np.maximum(np.diff(e0), 0).sum()))
        self.counters.add("steps", count)
        self.counters.check_overflow()
        self.step += count

    def _add_counts(self, counts):
        """The counts of one call of a compiled loop, into the exact counters."""
        c, k = self.counters, kernels
        for name, slot in (("evaluations", k.EVALUATIONS), ("up_moves", k.UP),
                           ("down_moves", k.DOWN), ("blocked_moves", k.BLOCKED),
                           ("inadmissible", k.INADMISSIBLE), ("field_adds", k.FIELD_ADDS)):
            c.add(name, int(counts[slot]))
        heat = (int(counts[k.HEAT_HI]) << k.WIDE_UNIT_BITS) + int(counts[k.HEAT_LO])
        heat_abs = (int(counts[k.HEAT_ABS_HI]) << k.WIDE_UNIT_BITS) + int(counts[k.HEAT_ABS_LO])
        c.add("heat_net", -2 * heat)                   # a move of half tilt h releases -2h
        c.add("heat_abs", 2 * heat_abs)

    def _close_steps(self, eta, step_dl2, step_cross):
        """Annealing work (of the loss register and of the true loss) and coupling error of
        the step boundaries of a chunk: compiled when int64 provably holds every partial sum
        (bounds from this chunk's own numbers), else in Python integers."""
        count = len(step_dl2)
        change = int(np.abs(step_dl2).max()) + int(np.abs(step_cross).max())
        loss = max(abs(self.loss2_track), abs(self.loss2_true)) + count * change
        d_eta = int(np.abs(np.diff(eta)).max())
        cross = int(np.abs(step_cross).max()) * int(eta.max())
        if count * max(d_eta * loss, cross) < INT64_SAFE and loss < INT64_SAFE:
            losses = np.array([self.loss2_track, self.loss2_true], dtype=np.int64)
            anneal, anneal_true, coupling = kernels.close_steps(eta, step_dl2, step_cross, losses)
            self.loss2_track, self.loss2_true = int(losses[0]), int(losses[1])
        else:
            anneal, anneal_true, coupling = self._close_steps_exact(eta, step_dl2, step_cross)
        two_sc = 2 << self.spec.tilt_shift
        self.counters.add("anneal_work", two_sc * int(anneal))
        self.anneal_true += two_sc * int(anneal_true)
        self.coupling_error += two_sc * int(coupling)

    def _close_steps_exact(self, eta, step_dl2, step_cross):
        """kernels.close_steps in Python integers (steps where nothing changes add nothing)."""
        track, true = self.loss2_track, self.loss2_true
        d_eta = np.diff(eta)
        anneal = anneal_true = coupling = 0
        for k in np.flatnonzero((d_eta != 0) | (step_dl2 != 0) | (step_cross != 0)).tolist():
            track += int(step_dl2[k])
            true += int(step_dl2[k]) + int(step_cross[k])
            anneal += int(d_eta[k]) * track
            anneal_true += int(d_eta[k]) * true
            coupling += int(eta[k]) * int(step_cross[k])
        self.loss2_track, self.loss2_true = track, true
        return anneal, anneal_true, coupling

    # -- external tilt mode ---------------------------------------------------------------------
    def run_external(self, steps, half_tilt, progress=None):
        """Run `steps` steps with tilts from the caller (tilt = 'external').

        half_tilt(step, weights) returns, for every cell, h = D+/2 in energy LSBs (ints): the
        up move crosses E0 - h and releases 2h, the down move crosses E0 + h and releases -2h.
        Tilts are fixed for the whole step. The gain schedule is not used in this mode.
        """
        spec = self.spec
        require(spec.tilt == "external", "tilt", spec.tilt, "run_external() needs 'external'")
        state = (self.W, self.g, self.cell_up, self.cell_down)
        for _ in range(int(steps)):
            h = checked_half_tilts(spec, half_tilt(self.step, self.W.copy()))
            e0 = spec.barrier.values_at([self.step, self.step + 1])
            counts = np.zeros(kernels.COUNT_SLOTS, dtype=np.int64)
            kernels.run_external_step(int(e0[0]), h, self.streams.arrays(), self._order,
                                      state, self.table, counts)
            self._add_counts(counts)
            self.counters.add("barrier_work", spec.cells * max(0, int(e0[1] - e0[0])))
            self.counters.add("steps", 1)
            self.counters.check_overflow()
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
        moves = c["up_moves"] + c["down_moves"]
        if c["evaluations"] != c["steps"] * self.spec.cells or \
                moves + c["blocked_moves"] > c["evaluations"] or \
                moves != int(self.cell_up.sum()) + int(self.cell_down.sum()):
            raise IdentityError(f"counter totals inconsistent: {c} [{self.spec!r}]")

    @property
    def loss(self):
        return self.problem.loss2(self.W) / 2 if self.problem is not None else None


def _check_problem(spec, problem):
    """ConfigError unless `problem` fits the spec's formats and storage."""
    n = spec.cells
    require(problem is not None, "problem", None, "tilt = 'field' needs a QuadraticProblem")
    require(problem.n == n, "cells", n, f"must equal the problem's {problem.n} variables")
    bound = bound_field(problem, spec)
    require(bound < 1 << (spec.field_bits - 1), "field_bits", spec.field_bits,
            f"the field |QW - b| can reach {bound}, which needs {bound.bit_length() + 1} bits")
    q_max = int(np.max(np.abs(problem.data), initial=0))
    require(q_max < 1 << (spec.q_bits - 1), "q_bits", spec.q_bits,
            f"max |Q_ij| = {q_max} needs {q_max.bit_length() + 1} bits")
    if spec.q_storage == "dense":
        require(n <= MAX_DENSE_CELLS, "q_storage", "dense",
                f"is limited to {MAX_DENSE_CELLS} cells (got {n}); use 'sparse'")


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
