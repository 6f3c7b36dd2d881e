"""The compact core: one lane, one cell evaluation at a time, for the smallest FPGAs.

The same array as hdl/array_core.py (the same register map, the same host plans, the same
results as python_model/reference.py bit for bit), built for an iCE40UP5K rather than for
speed: a sequential state machine instead of the speculative group pipeline, every per-cell
bank in one single-port cell store (hdl/cell_store.py) and Q in a second single-port RAM
(both SPRAM on an UltraPlus), the counters in block RAM added to one at a time
(hdl/counter_ram.py), a crossing unit with one table port, one shift register and one adder
(hdl/serial_crossing_unit.py), and schedule units for constant and table schedules only
(Geometry.schedule_kinds). Geometry.core == "compact"; lanes must be 1.

A step, slot after slot (slot = group, one lane):

    read weight and valid; skip (but draw) an invalid slot
    read Q_nn and g (field mode) or the host's tilt (external mode)
    dL2 = delta^2 Q_nn +- 2 delta g; half tilts h = eta dL2 << shift (one multiplier, twice)
    draw; the crossing unit decides up, down or stay on E0 + h
    count what happened: a move, a blocked move, an inadmissible step, the heat of a move
    on a move: write the weight (and the per-cell counter), loss register += dL2, and in
    field mode g += dw Q[:, slot] (sparse: 2 cycles per entry of the column; dense: 3 per row)
    at the end of the step both schedules advance; steps, evaluations (the run's cells),
    barrier and annealing work are counted, and ``run_steps`` counts down

A valid slot that does not move takes OWN_CYCLES_PER_EVALUATION cycles plus the crossing
unit's decision (SerialCrossingUnit.latency); a counter addition takes as many cycles as the
counter has words. The run reports done once the last addition is in.

Ports: `CoreSignature` (hdl/core_control.py), decoded as they come (not registered). The core
takes a read or a write only in a cycle where ``ready`` is high: it is low while an access to
a cell-store entry of two 16-bit planes is under way, while a seed goes into the generator (its
words wait in a small RAM until the last one is written, so a seed is loaded whole or not at
all) and while the counters are zeroed after a clear. A read answers two cycles after its
strobe (three for a two-plane word). The same refusals as ArrayCore: writes other than
``control`` and memory reads during a run set ``error_busy_write``, writes to read-only or
unknown addresses ``error_address``, a start with sizes outside the build ``error_config``; a
refused access changes nothing. Unlike ArrayCore's, ``run_steps`` reads the steps still to run.
"""

from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from limemu.model.counters import counter_layout
from limemu.model.crossing import ZERO_FROM_U
from limemu.model.errors import require

from . import core_bus
from .cell_store import WORD_BITS as PLANE_BITS
from .cell_store import CellLayout, CellStore
from .core_control import CoreBase
from .counter_bank import increment_bits
from .counter_ram import CounterRam
from .lane_rng import SEED_WORDS, LaneRng
from .regmap import WORD_BITS, has_mh, words
from .schedule_unit import ScheduleUnit
from .serial_crossing_unit import SerialCrossingUnit
from .single_port_ram import SinglePortRam

PLANES_PER_WORD = WORD_BITS // PLANE_BITS
assert PLANES_PER_WORD * PLANE_BITS == WORD_BITS


class SeedLoader(wiring.Component):
    """A seed, a word at a time, into a LaneRng without a 216-bit register for it.

    Each word written (``write`` with ``word`` and ``wdata``) goes into a small RAM; the last
    one (word SEED_WORDS - 1) starts the copy into the generator, a word a cycle through its
    shift-in port (``shift``, ``shift_data``: connect them to LaneRng's), during which ``busy``
    is high. So a seed is loaded whole or not at all."""

    word: In(range(SEED_WORDS))
    wdata: In(WORD_BITS)
    write: In(1)
    busy: Out(1)
    shift: Out(1)
    shift_data: Out(WORD_BITS)

    def elaborate(self, platform):
        m = Module()
        m.submodules.seed_words = stage = Memory(shape=WORD_BITS, depth=SEED_WORDS, init=[])
        stage_write, stage_read = stage.write_port(), stage.read_port()
        copying = Signal()                                # reading words (shift: shifting them)
        index = Signal(range(SEED_WORDS))
        m.d.comb += [stage_write.addr.eq(self.word), stage_write.data.eq(self.wdata),
                     stage_write.en.eq(self.write), stage_read.addr.eq(index),
                     self.shift_data.eq(stage_read.data), self.busy.eq(copying | self.shift)]
        m.d.sync += self.shift.eq(copying)
        with m.If(copying):
            m.d.sync += index.eq(index + 1)
            with m.If(index == SEED_WORDS - 1):
                m.d.sync += copying.eq(0)
        with m.If(self.write & (self.word == SEED_WORDS - 1)):
            m.d.sync += [copying.eq(1), index.eq(0)]
        return m


class CompactCore(CoreBase):
    """The compact core (Geometry.core == "compact"): see the module docstring."""

    #: cycles of a valid slot that does not move, besides the crossing unit's decision
    OWN_CYCLES_PER_EVALUATION = 11

    def __init__(self, spec, geometry):
        require(geometry.core == "compact", "geometry.core", geometry.core,
                "must be 'compact' for CompactCore")
        super().__init__(spec, geometry)                     # the map checks lanes == 1
        self.layout = CellLayout(self.regmap)
        self.increment_bits = increment_bits(spec, geometry)
        self.counter_index = {name: i for i, (name, _, _) in enumerate(counter_layout(spec))}
        self.mh = has_mh(spec, geometry)

    def elaborate(self, platform):
        m = Module()
        p = SimpleNamespace()                   # the parts the helpers below share
        self._submodules(m, p)
        self.control(m, p)
        self._bus(m, p)
        self._datapath(m, p)
        if self.mh:
            m.d.comb += p.last_move_read.addr.eq(p.slot)   # (REVERT_NEXT reads ahead)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(p.ctl.start_run):
                    m.next = "PREPARE"
                with m.Elif(p.ctl.start_init):
                    m.d.sync += p.slot.eq(0)
                    m.next = "INIT_BIAS"
                if self.mh:
                    with m.Elif(p.ctl.start_accept):
                        m.next = "ACCEPT_DRAW"
            with m.State("PREPARE"):
                with m.If(~p.barrier.busy & ~p.gain.busy):
                    m.d.sync += [p.e0.eq(p.barrier.value), p.eta.eq(p.gain.value),
                                 p.slot.eq(0)]
                    m.next = "EVAL_WEIGHT"
            self._evaluation_states(m, p)
            self._move_states(m, p)
            self._step_end_states(m, p)
            self._field_states(m, p)
            self._init_states(m, p)
            if self.mh:
                self._accept_states(m, p)
        if self.mh:
            # a proposal waits for its decision until anything else starts
            m.d.comb += p.ctl.accept_allowed.eq(p.proposal)
            with m.If(p.ctl.start_run | p.ctl.start_init | p.ctl.clear | p.ctl.start_accept):
                m.d.sync += p.proposal.eq(0)
        return m

    def _submodules(self, m, p):
        spec, g = self.spec, self.geometry
        m.submodules.cells = p.cs = CellStore(self.layout)
        if g.q_storage == "sparse":
            q_width, q_depth = g.entry_bits(spec.q_bits), g.q_capacity
        else:
            q_width, q_depth = spec.q_bits, g.dense_q_depth
        m.submodules.q = p.qs = SinglePortRam(width=q_width, depth=q_depth)
        m.submodules.counters = p.counters = CounterRam(spec, self.increment_bits)
        m.submodules.barrier = p.barrier = ScheduleUnit(
            bits=spec.barrier_bits, table_depth=g.table_depth, serial=True,
            kinds=g.schedule_kinds)
        m.submodules.gain = p.gain = ScheduleUnit(
            bits=spec.gain_bits, table_depth=g.table_depth, serial=True, kinds=g.schedule_kinds)
        m.submodules.rng = p.rng = LaneRng()
        m.submodules.seed = p.seed = SeedLoader()
        p.proposal = Signal()                   # a proposal waits for its decision (MH)
        p.rngs = [p.rng]
        if self.mh:
            m.submodules.accept_rng = p.accept_rng = LaneRng()
            p.rngs.append(p.accept_rng)
            mem = Memory(shape=2, depth=g.slots, init=[])    # the last step's move per slot
            m.submodules.last_move = mem
            p.last_move_read, p.last_move_write = mem.read_port(), mem.write_port()
        p.seed_target = Signal(range(len(p.rngs)))      # the generator the seed loads into
        for k, rng in enumerate(p.rngs):
            m.d.comb += [rng.shift.eq(p.seed.shift & (p.seed_target == k)),
                         rng.shift_data.eq(p.seed.shift_data)]
        m.submodules.crossing = p.crossing = SerialCrossingUnit(
            frac_bits=spec.barrier_frac_bits, mantissa_bits=spec.mantissa_bits,
            e0_bits=spec.barrier_bits, h_bits=spec.tilt_bits + 1)

    # -- the cell store and the counters ----------------------------------------------------------
    def _access(self, m, p, name, slot, *, value=None):
        """Start a read (value None) or a write of region `name`'s whole entry at `slot`."""
        first, count = self.layout.regions[name]
        cs = p.cs
        m.d.comb += [cs.start.eq(1), cs.plane.eq(first), cs.count.eq(count), cs.slot.eq(slot),
                     cs.write.eq(value is not None)]
        if value is not None:
            m.d.comb += cs.wdata.eq(value)          # signed values extend over the planes

    def _value(self, p, name):
        """The entry of region `name` the cell store has read, with its sign."""
        region = self.regmap[name]
        raw = p.cs.rdata[:region.width]
        return raw.as_signed() if region.signed else raw

    def _read_chain(self, m, p, slot, chain, then, *, start=None):
        """States that read regions of `slot` one after the other. `chain` lists (state, region,
        register): `state` waits for the region's read, puts it into `register` and starts the
        next read; the last state calls ``then(value)`` with its region's value instead.
        `start` names a state that starts the first read (else the caller starts it:
        `_begin_chain`)."""
        if start is not None:
            with m.State(start):
                self._begin_chain(m, p, slot, chain)
        for k, (state, region, register) in enumerate(chain):
            with m.State(state):
                with m.If(p.cs.done):
                    if k + 1 < len(chain):
                        m.d.sync += register.eq(self._value(p, region))
                        self._begin_chain(m, p, slot, chain[k + 1:])
                    else:
                        then(self._value(p, region))

    def _begin_chain(self, m, p, slot, chain):
        state, region, _ = chain[0]
        self._access(m, p, region, slot)
        m.next = state

    def _add(self, m, p, counter, amount, subtract=0):
        """Add `amount` to `counter` (a name, or an index Value; only while counters.ready)."""
        index = self.counter_index[counter] if isinstance(counter, str) else counter
        m.d.comb += [p.counters.add.eq(1), p.counters.index.eq(index),
                     p.counters.amount.eq(amount), p.counters.subtract.eq(subtract)]

    def _count_chain(self, m, p, chain, then):
        """States that add to the counters one after the other, each once the counters are
        ready: `chain` lists (state, condition, counter, amount, subtract, also): the state
        adds `amount` to `counter` if `condition` holds, and calls ``also()`` (if not None) in
        the cycle of its addition; the last state then calls ``then()``."""
        for k, (state, condition, counter, amount, subtract, also) in enumerate(chain):
            with m.State(state):
                with m.If(p.counters.ready):
                    with m.If(condition):
                        self._add(m, p, counter, amount, subtract)
                    if also is not None:
                        also()
                    if k + 1 < len(chain):
                        m.next = chain[k + 1][0]
                    else:
                        then()

    def _next_slot(self, m, p, last, then, after, *actions):
        """The next slot (state `then`), or after the `last` one: `actions`, state `after`."""
        with m.If(last):
            m.d.sync += list(actions)
            m.next = after
        with m.Else():
            m.d.sync += p.slot.eq(p.slot + 1)
            m.next = then

    # -- the datapath of an evaluation ------------------------------------------------------------
    def _datapath(self, m, p):
        """The run's registers, dL2 and the half tilts (one multiplier for both directions),
        the crossing unit's inputs and the evaluation's outcome."""
        spec, g, delta = self.spec, self.geometry, self.spec.delta
        p.e0, p.eta = Signal(spec.barrier_bits), Signal(spec.gain_bits)
        p.external = p.regs["external_tilt"]
        p.slot = Signal(self.layout.slot_bits + 1)
        p.w = Signal(signed(max(spec.weight_bits, 2)))
        p.valid = Signal()
        p.q_nn = Signal(signed(spec.q_bits))
        p.field = Signal(signed(spec.field_bits))
        p.dl_up, p.dl_down = Signal(signed(spec.dl2_bits)), Signal(signed(spec.dl2_bits))
        p.h_up = Signal(signed(spec.tilt_bits + 1))
        p.h_down = Signal(signed(spec.tilt_bits + 1))
        p.moved_up = Signal()
        # the field update: its column (slot) and weight change; whether init_field asked
        p.f_slot = Signal(self.layout.slot_bits)
        p.f_dw = Signal(signed(max(spec.weight_bits, 2) + 1))
        p.f_init = Signal()                                # (its additions are not counted)
        p.last_slot = p.slot + 1 >= p.regs["groups"]
        p.last_capacity_slot = p.slot + 1 >= g.slots
        crossing = p.crossing
        # the crossing barriers E0 + h, stable from DRAW until the crossing unit is done
        m.d.comb += [crossing.e0.eq(p.e0), crossing.h_up.eq(p.h_up),
                     crossing.h_down.eq(p.h_down)]
        m.d.comb += [p.dl_up.eq(delta * delta * p.q_nn + 2 * delta * p.field),
                     p.dl_down.eq(delta * delta * p.q_nn - 2 * delta * p.field)]
        p.multiplier_b = Signal(signed(spec.dl2_bits))
        product = Signal(signed(spec.gain_bits + spec.dl2_bits + 1))
        m.d.comb += product.eq(p.eta * p.multiplier_b)
        p.half_tilt = product << spec.tilt_shift
        # the outcome of the evaluation (the crossing unit holds it until the next draw)
        at_top, at_bottom = p.w == spec.w_hi, p.w == spec.w_lo
        p.move_up = crossing.up & ~at_top
        p.move_down = crossing.down & ~at_bottom
        p.moves = p.move_up | p.move_down
        p.blocked = (crossing.up & at_top) | (crossing.down & at_bottom)
        p.h = Mux(p.moved_up, p.h_up, p.h_down)       # the half tilt of the move (after DECIDE)

    def _evaluation_states(self, m, p):
        """Read the cell, form its half tilts, draw, let the crossing unit decide."""
        rng = p.rng

        def operands(valid):
            with m.If(~valid):
                m.d.comb += rng.next.eq(1)            # an idle slot draws too
                if self.mh:
                    self._last_move(m, p, 0)
                m.next = "NEXT"
            with m.Elif(p.external):
                self._begin_chain(m, p, p.slot, tilt)
            with m.Else():
                self._begin_chain(m, p, p.slot, diag_field)

        def external_tilt(value):
            m.d.sync += [p.h_up.eq(-value), p.h_down.eq(value), p.q_nn.eq(0), p.field.eq(0)]
            m.next = "DRAW"

        def field(value):
            m.d.sync += p.field.eq(value)
            m.next = "TILT_UP"

        tilt = [("EVAL_TILT", "tilt", None)]
        diag_field = [("EVAL_DIAG", "diag", p.q_nn), ("EVAL_FIELD", "field", None)]
        self._read_chain(m, p, p.slot, [("EVAL_VALID", "weight", p.w),
                                        ("EVAL_OPERANDS", "valid", None)],
                         operands, start="EVAL_WEIGHT")
        self._read_chain(m, p, p.slot, tilt, external_tilt)
        self._read_chain(m, p, p.slot, diag_field, field)
        for state, dl, h, after in (("TILT_UP", p.dl_up, p.h_up, "TILT_DOWN"),
                                    ("TILT_DOWN", p.dl_down, p.h_down, "DRAW")):
            with m.State(state):
                m.d.comb += p.multiplier_b.eq(dl)
                m.d.sync += h.eq(p.half_tilt)
                m.next = after
        with m.State("DRAW"):
            m.d.comb += [p.crossing.start.eq(1), p.crossing.u.eq(rng.draw), rng.next.eq(1)]
            m.next = "CROSS"
        with m.State("CROSS"):
            with m.If(p.crossing.done):
                m.next = "DECIDE"

    def _move_states(self, m, p):
        """Count the outcome; on a move write the weight and the per-cell counter, then update
        the field (field mode); then the next slot."""
        spec, delta, index = self.spec, self.spec.delta, self.counter_index
        kind = Mux(p.move_up, index["up_moves"],
                   Mux(p.move_down, index["down_moves"], index["blocked_moves"]))

        def decided():
            if self.mh:
                self._last_move(m, p, Cat(p.move_up, p.move_down))
            with m.If(p.moves & ~p.external):
                m.d.sync += p.regs["loss2"].eq(p.regs["loss2"]
                                               + Mux(p.move_up, p.dl_up, p.dl_down))
            m.d.sync += p.moved_up.eq(p.move_up)

        def counted():
            with m.If(p.moves):
                m.next = "COUNT_HEAT_NET"
            with m.Else():
                m.next = "NEXT"

        def write_weight():
            self._access(m, p, "weight", p.slot,
                         value=Mux(p.moved_up, p.w + delta, p.w - delta).as_signed())
            m.next = "WEIGHT_WRITTEN"

        self._count_chain(m, p, [
            ("DECIDE", p.moves | p.blocked, kind, 1, 0, decided),
            ("COUNT_INADMISSIBLE", p.crossing.inadmissible, "inadmissible", 1, 0, None),
        ], counted)
        self._count_chain(m, p, [
            ("COUNT_HEAT_NET", 1, "heat_net", 2 * p.h, 1, None),             # released: -2h
            ("COUNT_HEAT_ABS", 1, "heat_abs", 2 * p.h, p.h < 0, None),       # |2h|
        ], write_weight)
        with m.State("WEIGHT_WRITTEN"):
            with m.If(p.cs.done):
                if spec.cell_counter_bits:
                    with m.If(p.moved_up):
                        self._access(m, p, "cell_up", p.slot)
                    with m.Else():
                        self._access(m, p, "cell_down", p.slot)
                    m.next = "CELL_COUNT"
                else:
                    self._after_move(m, p)
        if spec.cell_counter_bits:
            self._cell_count_states(m, p)
        with m.State("NEXT"):
            with m.If(p.last_slot):
                m.d.comb += [p.barrier.advance.eq(1), p.gain.advance.eq(1)]
                m.next = "SCHEDULE"
            with m.Else():
                m.d.sync += p.slot.eq(p.slot + 1)
                m.next = "EVAL_WEIGHT"

    def _cell_count_states(self, m, p):
        """The moved cell's per-cell counter + 1 (a sticky flag when it wraps)."""
        with m.State("CELL_COUNT"):
            with m.If(p.cs.done):
                count = self._value(p, "cell_up")         # both have the same width
                with m.If(count == (1 << self.spec.cell_counter_bits) - 1):
                    m.d.sync += p.cell_overflow.eq(1)
                counted = (count + 1)[:len(count)]
                with m.If(p.moved_up):
                    self._access(m, p, "cell_up", p.slot, value=counted)
                with m.Else():
                    self._access(m, p, "cell_down", p.slot, value=counted)
                m.next = "CELL_COUNTED"
        with m.State("CELL_COUNTED"):
            with m.If(p.cs.done):
                self._after_move(m, p)

    def _after_move(self, m, p):
        """The field update of a move (field mode), else the next slot."""
        with m.If(p.external):
            m.next = "NEXT"
        with m.Else():
            m.d.sync += [p.f_slot.eq(p.slot),
                         p.f_dw.eq(Mux(p.moved_up, self.spec.delta, -self.spec.delta)),
                         p.f_init.eq(0)]
            m.next = "FIELD_START"

    def _step_end_states(self, m, p):
        """The schedules advance; steps, evaluations, barrier and annealing work are counted;
        ``run_steps`` counts down (it reads the steps still to run)."""
        spec, regs = self.spec, p.regs
        remaining = regs["run_steps"]
        rise = Signal(signed(spec.barrier_bits + 1))
        d_eta = Signal(signed(spec.gain_bits + 1))
        m.d.comb += [rise.eq(p.barrier.value - p.e0), d_eta.eq(p.gain.value - p.eta)]

        def step_done():
            m.d.sync += [p.e0.eq(p.barrier.value), p.eta.eq(p.gain.value),
                         remaining.eq(remaining - 1), p.slot.eq(0)]
            with m.If((remaining == 1) | p.ctl.stop_requested):
                m.next = "FINISH"
            with m.Else():
                m.next = "EVAL_WEIGHT"

        with m.State("SCHEDULE"):
            with m.If(~p.barrier.busy & ~p.gain.busy):
                m.next = "COUNT_STEPS"
        self._count_chain(m, p, [
            ("COUNT_STEPS", 1, "steps", 1, 0, None),
            ("COUNT_EVALUATIONS", 1, "evaluations", regs["cells"], 0, None),  # every cell
            ("COUNT_BARRIER_WORK", rise > 0, "barrier_work", rise * regs["cells"], 0, None),
            ("COUNT_ANNEAL_WORK", ~p.external & (d_eta != 0), "anneal_work",
             (d_eta * regs["loss2"]) << (spec.tilt_shift + 1), 0, None),
        ], step_done)
        with m.State("FINISH"):                          # the last addition is in
            with m.If(p.counters.ready):
                m.d.comb += p.ctl.finish.eq(1)
                if self.mh:                       # a step with external tilts: a proposal
                    m.d.sync += p.proposal.eq(p.external)
                m.next = "IDLE"

    # -- Metropolis-Hastings: the decision on a proposal, the revert --------------------------
    def _last_move(self, m, p, move):
        m.d.comb += [p.last_move_write.addr.eq(p.slot), p.last_move_write.data.eq(move),
                     p.last_move_write.en.eq(1)]

    def _accept_states(self, m, p):
        """The acceptance generator's draw through the crossing unit against B+ = max(0,
        mh_delta) (saturated where the threshold is already 0; E0 = 0 for it) and a
        switched-off reverse outcome; proposals, then acceptances and the heat -mh_delta are
        counted. A rejected proposal: every slot's last move is undone and counted."""
        spec, delta = self.spec, p.regs["mh_delta"]
        never = ZERO_FROM_U << spec.barrier_frac_bits
        with m.State("ACCEPT_DRAW"):
            m.d.sync += [p.e0.eq(0), p.h_up.eq(Mux(delta < 0, 0, Mux(delta > never, never,
                                                                      delta))),
                         p.h_down.eq(never), p.slot.eq(0)]
            m.next = "ACCEPT_START"
        with m.State("ACCEPT_START"):
            m.d.comb += [p.crossing.start.eq(1), p.crossing.u.eq(p.accept_rng.draw),
                         p.accept_rng.next.eq(1)]
            m.next = "ACCEPT_CROSS"
        with m.State("ACCEPT_CROSS"):
            with m.If(p.crossing.done):
                m.d.comb += [p.ctl.decided.eq(1), p.ctl.accepted.eq(p.crossing.up)]
                m.next = "COUNT_PROPOSAL"

        def accepted_or_revert():
            with m.If(p.crossing.up):
                m.next = "COUNT_ACCEPTANCE"
            with m.Else():
                self._begin_chain(m, p, p.slot, [("REVERT_WEIGHT", "weight", None)])

        self._count_chain(m, p, [("COUNT_PROPOSAL", 1, "proposals", 1, 0, None)],
                          accepted_or_revert)
        self._count_chain(m, p, [
            ("COUNT_ACCEPTANCE", 1, "acceptances", 1, 0, None),
            ("COUNT_MH_HEAT_NET", 1, "heat_net", delta, 1, None),         # released: -delta
            ("COUNT_MH_HEAT_ABS", 1, "heat_abs", delta, delta < 0, None),  # |delta|
        ], lambda: self._goto(m, "FINISH_DECISION"))
        moved = p.last_move_read.data
        with m.State("REVERT_WEIGHT"):
            with m.If(p.cs.done):
                w = self._value(p, "weight")
                with m.If(moved.any()):
                    self._access(m, p, "weight", p.slot, value=Mux(
                        moved[0], w - spec.delta, w + spec.delta).as_signed())
                    self._last_move(m, p, 0)
                    m.next = "REVERT_WRITTEN"
                with m.Else():
                    m.next = "REVERT_NEXT"
        with m.State("REVERT_WRITTEN"):
            with m.If(p.cs.done):
                m.next = "COUNT_REVERTED"
        self._count_chain(m, p, [("COUNT_REVERTED", 1, "reverted_moves", 1, 0, None)],
                          lambda: self._goto(m, "REVERT_NEXT"))
        with m.State("REVERT_NEXT"):
            with m.If(p.last_slot):
                m.next = "FINISH_DECISION"
            with m.Else():
                m.d.sync += p.slot.eq(p.slot + 1)
                m.d.comb += p.last_move_read.addr.eq(p.slot + 1)
                self._begin_chain(m, p, p.slot + 1, [("REVERT_WEIGHT", "weight", None)])
        with m.State("FINISH_DECISION"):                  # the last addition is in
            with m.If(p.counters.ready):
                m.d.comb += p.ctl.finish.eq(1)
                m.next = "IDLE"

    @staticmethod
    def _goto(m, state):
        m.next = state

    # -- the field update g += dw Q[:, f_slot] ----------------------------------------------------
    def _field_states(self, m, p):
        """Walk column f_slot of Q (sparse: its entries; dense: every row of the run) and add
        f_dw times each value to the row's field; count the additions (not for init_field)."""
        spec, g, slot_bits = self.spec, self.geometry, self.layout.slot_bits
        qs, regs = p.qs, p.regs
        row = Signal(slot_bits + 1)
        value = Signal(signed(spec.q_bits))
        adds = Signal(max(g.ptr_bits, spec.cells.bit_length()) + 1)
        if g.q_storage == "sparse":
            next_column_state = self._sparse_column_states(m, p, row, value, adds)
        else:
            with m.State("FIELD_START"):
                m.d.comb += [qs.re.eq(1), qs.addr.eq(Cat(Const(0, g.group_bits), p.f_slot))]
                m.d.sync += [row.eq(0), adds.eq(regs["cells"])]
                m.next = "FIELD_DENSE_Q"
            with m.State("FIELD_DENSE_Q"):           # Q[row, f_slot] is on qs.rdata
                m.d.sync += value.eq(qs.rdata.as_signed())
                self._begin_chain(m, p, row, [("FIELD_READ", "field", None)])

            def next_column_state():
                with m.If(row + 1 >= regs["groups"]):
                    m.next = "FIELD_END"
                with m.Else():
                    m.d.sync += row.eq(row + 1)
                    m.d.comb += [qs.re.eq(1),
                                 qs.addr.eq(Cat((row + 1)[:g.group_bits], p.f_slot))]
                    m.next = "FIELD_DENSE_Q"
        with m.State("FIELD_READ"):
            with m.If(p.cs.done):
                updated = self._value(p, "field") + p.f_dw * value
                self._access(m, p, "field", row, value=updated[:spec.field_bits].as_signed())
                m.next = "FIELD_WRITTEN"
        with m.State("FIELD_WRITTEN"):
            with m.If(p.cs.done):
                next_column_state()
        with m.State("FIELD_END"):
            with m.If(p.f_init):
                m.next = "INIT_COLUMN_NEXT"
            with m.Elif(p.counters.ready):
                self._add(m, p, "field_adds", adds)
                m.next = "NEXT"

    def _sparse_column_states(self, m, p, row, value, adds):
        """Sparse Q: the column's (start, length), then its entries, each prefetched while the
        one before is added. Returns what FIELD_WRITTEN does next."""
        spec, g, qs = self.spec, self.geometry, p.qs
        pointer = Signal(g.ptr_bits)
        left = Signal(g.ptr_bits + 1)

        def entry_field(name):
            at, width = g.entry_layout(spec.q_bits)[name]
            return qs.rdata[at:at + width]

        def next_entry():
            """The entry on qs.rdata becomes the update's row; prefetch the one after it."""
            m.d.sync += [row.eq(entry_field("group")),
                         value.eq(entry_field("value").as_signed()), pointer.eq(pointer + 1)]
            m.d.comb += [qs.re.eq(1), qs.addr.eq(pointer)]
            self._begin_chain(m, p, entry_field("group"), [("FIELD_READ", "field", None)])

        def column(value):
            start, length = value[:g.ptr_bits], value[g.ptr_bits:2 * g.ptr_bits]
            m.d.sync += [pointer.eq(start + 1), left.eq(length), adds.eq(length)]
            m.d.comb += [qs.re.eq(1), qs.addr.eq(start)]
            m.next = "FIELD_ENTRY"
            with m.If(length == 0):
                m.next = "FIELD_END"

        self._read_chain(m, p, p.f_slot, [("FIELD_COLUMN", "column", None)], column,
                         start="FIELD_START")
        with m.State("FIELD_ENTRY"):              # the first entry is on qs.rdata
            next_entry()

        def next_column_state():
            m.d.sync += left.eq(left - 1)
            with m.If(left == 1):
                m.next = "FIELD_END"
            with m.Else():
                next_entry()
        return next_column_state

    # -- init_field: g = -b, g += W_m Q[:, m] for every cell, L2 = sum W (g - b) ------------------
    def _init_states(self, m, p):
        spec, regs, slot = self.spec, p.regs, p.slot

        def write_field(bias):
            self._access(m, p, "field", slot, value=(-bias)[:spec.field_bits].as_signed())
            m.next = "INIT_BIAS_NEXT"

        def column(valid):
            with m.If(valid & (p.w != 0)):
                m.d.sync += [p.f_slot.eq(slot), p.f_dw.eq(p.w), p.f_init.eq(1)]
                m.next = "FIELD_START"
            with m.Else():
                m.next = "INIT_COLUMN_NEXT"

        def add_loss(bias):
            m.d.sync += regs["loss2"].eq(regs["loss2"]
                                         + Mux(p.valid, p.w * (p.field - bias), 0))
            with m.If(p.last_slot):
                m.d.comb += p.ctl.finish.eq(1)
                m.next = "IDLE"
            with m.Else():
                m.d.sync += slot.eq(slot + 1)
                m.next = "INIT_LOSS"

        self._read_chain(m, p, slot, [("INIT_BIAS_WRITE", "bias", None)], write_field,
                         start="INIT_BIAS")
        with m.State("INIT_BIAS_NEXT"):
            with m.If(p.cs.done):
                self._next_slot(m, p, p.last_capacity_slot, "INIT_BIAS", "INIT_WEIGHT",
                                slot.eq(0))
        self._read_chain(m, p, slot, [("INIT_VALID", "weight", p.w),
                                      ("INIT_COLUMN", "valid", None)], column,
                         start="INIT_WEIGHT")
        with m.State("INIT_COLUMN_NEXT"):                # the loss sum starts after the last
            self._next_slot(m, p, p.last_capacity_slot, "INIT_WEIGHT", "INIT_LOSS",
                            slot.eq(0), regs["loss2"].eq(0))
        self._read_chain(m, p, slot, [("INIT_LOSS_VALID", "weight", p.w),
                                      ("INIT_LOSS_FIELD", "valid", p.valid),
                                      ("INIT_LOSS_BIAS", "field", p.field),
                                      ("INIT_LOSS_ADD", "bias", None)], add_loss,
                         start="INIT_LOSS")

    # -- the bus ----------------------------------------------------------------------------------
    def _bus(self, m, p):
        """Decode of the bus as it comes (no input registers: 12 MHz leaves time for it):
        registers, counters, memories; refusals; ``ready``."""
        rmap, cs = self.regmap, p.cs
        p.bus = {name: getattr(self, name) for name in ("addr", "wdata", "we", "re")}
        # the lower words of a wide entry wait here until its last word commits it (the seed
        # waits in SeedLoader's RAM)
        max_words = max(words(r.width) for r in rmap
                        if r.is_memory and r.access != "ro" and r.name != "seed")
        p.staging = Signal(max(1, (max_words - 1) * WORD_BITS))
        p.decoded = core_bus.decode(rmap, p.bus["addr"])
        m.d.comb += [p.seed.word.eq(p.decoded[1]["seed"]), p.seed.wdata.eq(p.bus["wdata"])]
        # ready: low while a multi-plane cell-store access of the bus is still under way, while
        # the counters are zeroed after a clear (reads would see old words), while a seed loads
        p.bus_cs = Signal()                 # the cell store works for the bus
        m.d.comb += self.ready.eq(~(p.bus_cs & cs.busy)
                                  & (p.counters.ready | p.running) & ~p.seed.busy)
        with m.If(cs.done):
            m.d.sync += p.bus_cs.eq(0)
        self._bus_reads(m, p)
        self._read_answer(m, p)
        core_bus.register_writes(m, rmap, p.bus, p.decoded, p.regs, p.ctl,
                                 lambda region, word, index: self._memory_write(
                                     m, p, region, word, index))

    def _bus_reads(self, m, p):
        """A read strobe: where its answer comes from (registers, counters, qs: the cycle after
        decode; the cell store: its done cycle), the memory access it starts, refusals."""
        rmap, bus, cs, qs = self.regmap, p.bus, p.cs, p.qs
        hit, word_of, index_of, any_hit = p.decoded
        p.sources = ("none", "register", "counter", "q", "cells")
        p.read_from = Signal(range(len(p.sources)))
        p.register_bits = max(r.base + r.size for r in rmap if not r.is_memory).bit_length()
        p.read_address = Signal(p.register_bits)          # of a register read
        p.read_word = Signal(max(1, (max(words(r.width) for r in rmap) - 1).bit_length()))
        p.read_ok = Signal()
        p.read_two_planes = Signal()          # the cell-store word spans two planes
        p.read_signed = Signal()
        counter_names = {f"counter_{name}" for name in self.counter_index}

        def source(name):
            return p.read_from.eq(p.sources.index(name))

        with m.If(bus["re"]):
            m.d.sync += [source("none"), p.read_ok.eq(0),
                         p.read_address.eq(bus["addr"][:p.register_bits])]
            for region in rmap:
                with m.If(hit[region.name]):
                    m.d.sync += p.read_word.eq(word_of[region.name])
                    if not region.is_memory:
                        m.d.sync += p.read_ok.eq(region.access != "wo")
                        if region.access == "wo":
                            m.d.comb += p.ctl.refuse_address.eq(1)
                        elif region.name in counter_names:
                            m.d.comb += [p.counters.read_en.eq(1), p.counters.read_addr.eq(
                                bus["addr"] - rmap["counter_steps"].base)]
                            m.d.sync += source("counter")
                        else:
                            m.d.sync += source("register")
                        continue
                    allowed = region.access != "wo"
                    m.d.sync += p.read_ok.eq(allowed & ~p.running)
                    with m.If(core_bus.accept_memory_access(m, p.ctl, allowed)):
                        index, word = index_of[region.name], word_of[region.name]
                        m.d.sync += p.read_signed.eq(int(region.signed))
                        if region.name in self.layout.regions:
                            first, count = self.layout.regions[region.name]
                            two = count - PLANES_PER_WORD * word >= 2
                            m.d.comb += [cs.start.eq(1), cs.plane.eq(first + PLANES_PER_WORD
                                                                     * word),
                                         cs.count.eq(Mux(two, 2, 1)), cs.slot.eq(index),
                                         cs.write.eq(0)]
                            m.d.sync += [source("cells"), p.bus_cs.eq(1),
                                         p.read_two_planes.eq(two)]
                        else:                                  # entry or q
                            m.d.comb += [qs.re.eq(1), qs.addr.eq(index)]
                            m.d.sync += source("q")
            with m.If(~any_hit):
                m.d.comb += p.ctl.refuse_address.eq(1)

    def _register_word(self, m, p):
        """The word of the register read, selected by its address: one 32-bit multiplexer."""
        readable = core_bus.readable_registers(
            p.regs, p.ctl.status, p.barrier, p.gain, p.counters.overflow,
            p.cell_overflow if self.spec.cell_counter_bits else None)
        word = Signal(WORD_BITS)
        with m.Switch(p.read_address):
            for region in self.regmap:
                if region.is_memory or region.name not in readable:
                    continue
                extended = Signal(region.size * WORD_BITS, name=f"read_{region.name}")
                m.d.comb += extended.eq(readable[region.name])     # sign or zero extension
                for j in range(region.size):
                    with m.Case(region.base + j):
                        m.d.comb += word.eq(extended.word_select(j, WORD_BITS))
        return word

    def _read_answer(self, m, p):
        """``rdata`` and ``rack`` once the read's source has its word."""
        cs, qs, sources = p.cs, p.qs, p.sources
        low_plane = cs.rdata[:PLANE_BITS]
        cells_word = Mux(p.read_two_planes, cs.rdata[:WORD_BITS],
                         Mux(p.read_signed, low_plane.as_signed(), low_plane))
        q_shifted = Signal(max(WORD_BITS, len(qs.rdata)))
        m.d.comb += q_shifted.eq(Mux(p.read_signed, qs.rdata.as_signed(), qs.rdata))
        words_of = {
            sources.index("register"): self._register_word(m, p),
            sources.index("counter"): p.counters.read_data,
            sources.index("q"): q_shifted.word_select(p.read_word, WORD_BITS)
            if len(q_shifted) > WORD_BITS else q_shifted,
        }
        pending = Signal()                   # a read waits for its answer
        m.d.sync += self.rack.eq(0)
        with m.If(p.bus["re"]):
            m.d.sync += pending.eq(1)

        def answer(word):
            m.d.sync += [self.rdata.eq(Mux(p.read_ok, word, 0)), self.rack.eq(1),
                         pending.eq(p.bus["re"])]

        with m.If(pending):
            with m.Switch(p.read_from):
                with m.Case(sources.index("cells")):
                    with m.If(cs.done):
                        answer(cells_word)
                with m.Default():
                    word = Signal(WORD_BITS)
                    with m.Switch(p.read_from):
                        for code, value in words_of.items():
                            with m.Case(code):
                                m.d.comb += word.eq(value)
                    answer(word)

    def _memory_write(self, m, p, region, word, index):
        """A word written into a memory region: staged, or committing the whole entry."""
        name, wdata = region.name, p.bus["wdata"]
        if name == "seed":                         # every word into the seed RAM
            with m.If(p.running):
                m.d.comb += p.ctl.refuse_busy.eq(1)
            with m.Elif((word < SEED_WORDS) & (index < len(p.rngs))):
                m.d.comb += p.seed.write.eq(1)
                with m.If(word == SEED_WORDS - 1):
                    m.d.sync += p.seed_target.eq(index)
            with m.Else():
                m.d.comb += p.ctl.refuse_address.eq(1)
            return
        core_bus.memory_write(m, p.ctl, p.staging, wdata, region, word,
                              lambda entry: self._commit(m, p, region, index, entry))

    def _commit(self, m, p, region, index, entry):
        """The whole entry `entry` of memory `region` at `index`, written."""
        name = region.name
        value = entry[:region.width].as_signed() if region.signed else entry[:region.width]
        if name in self.layout.regions:
            self._access(m, p, name, index, value=value)
            m.d.sync += p.bus_cs.eq(1)
        elif name in ("entry", "q"):
            m.d.comb += [p.qs.addr.eq(index), p.qs.wdata.eq(value), p.qs.we.eq(1)]
        elif name in ("barrier_table", "gain_table"):
            unit = p.barrier if name == "barrier_table" else p.gain
            m.d.comb += [unit.table_we.eq(1), unit.table_addr.eq(index),
                         unit.table_data.eq(value)]
