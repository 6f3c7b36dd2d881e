"""The throughput core's cycles, predicted from the golden model's moves.

How many cycles hdl/throughput_core.py takes for a step depends only on which cells move (the
moves of each group and the rows of the lane banks their columns fill) and on a few constants
of the design. `run_cycles` replays a run's moves through a cycle-by-cycle copy of the core's
issue, cancellation and decision rules and of its field engine's pipeline
(hdl/banked_field.py), and gives the core's own count (its ``run_cycles`` register) exactly:
tests/test_hdl_throughput_core.py checks it against the core.

A `Design` holds those constants. Changing them asks what another core would take on the same
moves, without building it: a field engine that applies a whole column in one cycle, a
shorter decision latency, boundaries that wait only for the decisions of the groups before
them (the lanes adding the pending moves' contributions themselves), not for their landing
in the field. ``scripts/bench_board.py`` prints such a table.
"""

from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from limemu.hdl.adder_tree import tree_latency
from limemu.hdl.schedule_unit import ScheduleUnit
from limemu.hdl.throughput_core import ISSUE_TO_DECISION, MOVER_QUEUE_DEPTH
from limemu.model.errors import require
from limemu.model.order import bank_rows

from .host import group_waits

#: a group's movers reach the field engine's selector in their decision's cycle: straight
#: when the queue is empty, else behind the queued ones (a queued entry can be read the next
#: cycle, which the selector could not have taken earlier either)
QUEUE_LATENCY = 0
#: the field engine's cycles after a row's issue before an evaluation sees it: row read,
#: field read (the add and write happen in a cycle whose evaluation reads see them)
ROW_PIPELINE = 1
#: the cycles of a step after its last RUN cycle before the next: STEP_SUM, STEP_END, SCHEDULE
STEP_END_CYCLES = 3
#: the schedule units' restart time that a start right after the clear does not wait: the
#: run plan's writes (run_steps, start) and the bus's input register
CLEAR_TO_START = 4
BOUNDARY_RULES = ("speculative", "landed", "decided")


@dataclass(frozen=True)
class Design:
    """The timing constants of a throughput core.

    * ``decision_latency``: cycles from a group's issue to its decision;
    * ``one_cycle_columns``: the field engine applies a column in one cycle, whatever its rows
      (the core as built: one row of the banks a cycle);
    * ``boundaries``: when a boundary may issue: ``"speculative"`` (as built: once every decided
      move has landed; cancelled when a group in flight moves), ``"landed"`` (once every group
      has decided and every move has landed: the core before speculation), ``"decided"`` (at
      once, cancelled as built when a group in flight moves, and issued again the next cycle:
      the lanes would add the contributions of the moves still landing themselves);
    * ``tree_latency``: the adder trees' latency (the core's lanes);
    * ``schedule_latency``: the schedule units' busy time after an advance (the slower kind).
    """
    decision_latency: int
    tree_latency: int
    schedule_latency: int
    one_cycle_columns: bool = False
    boundaries: str = "speculative"
    queue_depth: int = MOVER_QUEUE_DEPTH

    def __post_init__(self):
        require(self.boundaries in BOUNDARY_RULES, "boundaries", self.boundaries,
                f"must be one of {BOUNDARY_RULES}")
        for name in ("decision_latency", "tree_latency", "schedule_latency"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "must be at least 1")
        require(self.queue_depth > self.decision_latency, "queue_depth", self.queue_depth,
                f"must exceed decision_latency ({self.decision_latency}): the core issues "
                "only while the movers queue has room for every group in flight")

    @classmethod
    def as_built(cls, spec):
        """The core that hdl/throughput_core.py builds for `spec` (its lanes, its schedules)."""
        return cls(decision_latency=ISSUE_TO_DECISION, tree_latency=tree_latency(spec.lanes),
                   schedule_latency=max(ScheduleUnit.LATENCY[schedule.kind]
                                        for schedule in (spec.barrier, spec.gain)))

    def but(self, **changes):
        return replace(self, **changes)


@dataclass
class StepMoves:
    """What a run's timing depends on: the order's groups and boundaries, and per step, the
    rows of the columns of each group's moved cells (lowest lane first)."""
    groups: int
    boundaries: np.ndarray
    steps: list


def record_moves(array, steps, progress=None):
    """Runs `array` (the golden model's LimArray, in a throughput core's order) `steps` steps
    and returns their StepMoves; `progress` as LimArray.run's."""
    order, problem = array.order, array.problem
    lane = order.cell_lanes(array.spec.lanes)
    rows = bank_rows(problem, lane)
    group_of = np.empty(problem.n, dtype=np.int64)
    group_of[order.sequence] = order.group
    before = array.W.copy()
    after = array.run(steps, snapshot_every=1, progress=progress)
    recorded = []
    for weights in after:
        moved = np.flatnonzero(weights != before)
        before = weights
        per_group = {}
        for cell in moved[np.lexsort((lane[moved], group_of[moved]))]:
            per_group.setdefault(int(group_of[cell]), []).append(int(rows[cell]))
        recorded.append(per_group)
    return StepMoves(order.groups, group_waits(problem, order), recorded)


def run_cycles(moves, design, segments=None, after_clear=False):
    """The core's cycles for the recorded steps, run as `segments` (a list of step counts, one
    start each; default: one run of every step). A start finds the schedule units idle, but
    with `after_clear` the first one follows at once the clear that ends a load
    (host.load_sequence), which restarted them: it waits for them."""
    segments = segments or [len(moves.steps)]
    require(sum(segments) == len(moves.steps) and min(segments) >= 1, "segments", segments,
            f"must be positive step counts adding up to the {len(moves.steps)} recorded steps")
    total = max(0, design.schedule_latency - CLEAR_TO_START) if after_clear else 0
    at = 0
    for count in segments:
        total += 1                                  # PREPARE
        for step in moves.steps[at:at + count]:
            total += step_cycles(moves.groups, moves.boundaries, step, design)
        at += count
    return total


def step_cycles(groups, boundaries, moved, design):
    """One step: the RUN state, cycle by cycle, then the step's end."""
    engine = _FieldEngine(design)
    flight = [None] * design.decision_latency        # (group, boundary) by age
    tree = deque([False] * (design.tree_latency + 1), maxlen=design.tree_latency + 1)
    next_group, advanced_at, cycle = 0, None, 0
    while True:
        landed = engine.landed()
        in_flight = any(f is not None for f in flight)
        if advanced_at is None and next_group >= groups:
            advanced_at = cycle                   # the schedule units start the next step's
        if next_group >= groups and landed and not in_flight and not any(tree):
            break
        issued = None
        if next_group < groups and len(engine.queue) <= design.queue_depth - \
                design.decision_latency - 1:
            boundary = bool(boundaries[next_group])
            if not boundary or _boundary_may_issue(design, landed, in_flight):
                issued = (next_group, boundary)
                next_group += 1
        deciding = flight[-1]
        flight = [issued] + flight[:-1]
        tree.append(deciding is not None)
        columns = moved.get(deciding[0]) if deciding is not None else None
        if columns:
            engine.queue.append((cycle + QUEUE_LATENCY, columns))
            oldest = max((age for age, f in enumerate(flight) if f is not None and f[1]),
                         default=None)
            if oldest is not None:                # cancelled, issued again
                next_group = flight[oldest][0]
                flight[:oldest + 1] = [None] * (oldest + 1)
        engine.clock(cycle)
        cycle += 1
    # STEP_SUM, STEP_END, then SCHEDULE, which waits until the schedule units are done
    last = max(cycle + STEP_END_CYCLES, advanced_at + design.schedule_latency + 1)
    return last + 1


def _boundary_may_issue(design, landed, in_flight):
    if design.boundaries == "speculative":
        return landed
    if design.boundaries == "landed":
        return landed and not in_flight
    return True                          # "decided": cancelled when a group in flight moves


class _FieldEngine:
    """hdl/banked_field.py's movers queue, selector and engine, cycle by cycle."""

    def __init__(self, design):
        self.design = design
        self.queue = deque()             # (cycle it can be read, [rows of each column])
        self.selector = []               # the rows of the columns still to hand out
        self.loaded = None               # the rows of the column whose table entry is here
        self.rows_left = 0
        self.pipeline = deque([False] * ROW_PIPELINE, maxlen=ROW_PIPELINE)

    def busy(self):
        return bool(self.selector) or self.loaded is not None or self.rows_left > 0 \
            or any(self.pipeline)

    def landed(self):
        return not self.busy() and not self.queue

    def clock(self, cycle):
        rows_now = self.loaded if self.loaded is not None else self.rows_left
        offered = bool(self.selector)
        taken = self.selector.pop(0) if offered and rows_now <= 1 else None
        if self.queue and self.queue[0][0] <= cycle and (not offered or (
                taken is not None and not self.selector)):
            self.selector = list(self.queue.popleft()[1])
        issue = False
        if self.loaded is not None:
            issue, self.rows_left = self.loaded > 0, max(self.loaded - 1, 0)
        elif self.rows_left:
            issue, self.rows_left = True, self.rows_left - 1
        self.pipeline.append(issue)
        if taken is None:
            self.loaded = None
        else:
            self.loaded = min(taken, 1) if self.design.one_cycle_columns else taken
