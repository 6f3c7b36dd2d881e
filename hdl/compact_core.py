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

A valid slot that does not move takes OWN_CYCLES_PER_EVALUATION = 11 cycles plus the crossing
unit's decision (8 to 30 cycles for non-negative barriers), the end of a step about 18 more; a
counter addition takes as many cycles as the counter has words. The run reports done once the
last addition is in.

Bus: ArrayCore's ports (``addr``, ``wdata``, ``we``, ``re``; ``rdata`` with ``rack``), decoded
as they come (not registered), plus ``ready``: the core takes a read or a write only in a cycle
where ``ready`` is high. It is low while an access to a cell-store entry of two 16-bit planes
is under way, while a seed goes into the generator (its words wait in a small RAM until the
last one is written, so a seed is loaded whole or not at all) and while the counters are zeroed
after a clear. A read answers two cycles after its strobe (three for a two-plane word). The
same refusals as ArrayCore: writes other than ``control`` and memory reads during a run set
``error_busy_write``, writes to read-only or unknown addresses ``error_address``, a start with
sizes outside the build ``error_config``; a refused access changes nothing. Unlike ArrayCore's,
``run_steps`` reads the steps still to run.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from limemu.model.counters import counter_layout
from limemu.model.errors import require

from . import core_bus
from .cell_store import WORD_BITS as PLANE_BITS
from .cell_store import CellLayout, CellStore
from .counter_ram import CounterRam
from .lane_rng import SEED_WORDS, LaneRng
from .regmap import WORD_BITS, RegisterMap, words
from .schedule_unit import ScheduleUnit
from .serial_crossing_unit import SerialCrossingUnit
from .single_port_ram import SinglePortRam

PLANES_PER_WORD = WORD_BITS // PLANE_BITS
assert PLANES_PER_WORD * PLANE_BITS == WORD_BITS


def increment_bits(spec, geometry):
    """Signed width of the amounts the compact core adds to each counter at a time."""
    cell_bits = max(1, spec.cells.bit_length())
    event = 2                                              # 1
    return {
        "steps": event, "evaluations": cell_bits + 1, "up_moves": event, "down_moves": event,
        "blocked_moves": event, "inadmissible": event,
        "heat_net": spec.tilt_bits + 2, "heat_abs": spec.tilt_bits + 2,     # 2 h
        "barrier_work": spec.barrier_bits + 1 + cell_bits + 1,
        "anneal_work": spec.gain_bits + 1 + spec.loss_bits + spec.tilt_shift + 2,
        "field_adds": max(geometry.ptr_bits, cell_bits) + 2,
    }


class CompactCore(wiring.Component):
    """Ports: the bus (``addr``, ``wdata``, ``we``, ``re``, ``rdata``, ``rack``, ``ready``) and
    ``busy``/``done``/``error`` for LEDs and testbenches."""

    #: cycles of a valid slot that does not move, besides the crossing unit's decision
    OWN_CYCLES_PER_EVALUATION = 11

    def __init__(self, spec, geometry):
        require(geometry.core == "compact", "geometry.core", geometry.core,
                "must be 'compact' for CompactCore")
        self.spec, self.geometry = spec, geometry
        self.regmap = RegisterMap(spec, geometry)            # checks lanes == 1
        self.layout = CellLayout(self.regmap)
        self.increment_bits = increment_bits(spec, geometry)
        super().__init__({
            "addr": In(self.regmap.address_bits),
            "wdata": In(WORD_BITS),
            "we": In(1),
            "re": In(1),
            "rdata": Out(WORD_BITS),
            "rack": Out(1),
            "ready": Out(1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
        })

    def __repr__(self):
        return f"CompactCore(spec={self.spec!r}, geometry={self.geometry!r})"

    # -- the cell store -------------------------------------------------------------------------
    def _access(self, m, name, slot, *, value=None):
        """Start a read (value None) or a write of region `name`'s whole entry at `slot`."""
        first, count = self.layout.regions[name]
        cs = self._cs
        m.d.comb += [cs.start.eq(1), cs.plane.eq(first), cs.count.eq(count), cs.slot.eq(slot),
                     cs.write.eq(value is not None)]
        if value is not None:
            m.d.comb += cs.wdata.eq(value)          # signed values extend over the planes

    def _value(self, name):
        """The entry of region `name` the cell store has read, with its sign."""
        region = self.regmap[name]
        raw = self._cs.rdata[:region.width]
        return raw.as_signed() if region.signed else raw

    def elaborate(self, platform):
        spec, g, rmap, layout = self.spec, self.geometry, self.regmap, self.layout
        m = Module()
        delta = spec.delta
        slot_bits = layout.slot_bits
        weight_shape = signed(max(spec.weight_bits, 2))

        # -- submodules -------------------------------------------------------------------------
        m.submodules.cells = cs = self._cs = CellStore(layout)
        if g.q_storage == "sparse":
            q_width, q_depth = g.entry_bits(spec.q_bits), g.q_capacity
        else:
            q_width, q_depth = spec.q_bits, g.dense_q_depth
        m.submodules.q = qs = SinglePortRam(width=q_width, depth=q_depth)
        m.submodules.counters = counters = CounterRam(spec, self.increment_bits)
        m.submodules.barrier = barrier = ScheduleUnit(
            bits=spec.barrier_bits, table_depth=g.table_depth, serial=True,
            kinds=g.schedule_kinds)
        m.submodules.gain = gain = ScheduleUnit(
            bits=spec.gain_bits, table_depth=g.table_depth, serial=True, kinds=g.schedule_kinds)
        m.submodules.rng = rng = LaneRng()
        m.submodules.crossing = crossing = SerialCrossingUnit(
            frac_bits=spec.barrier_frac_bits, mantissa_bits=spec.mantissa_bits,
            e0_bits=spec.barrier_bits, h_bits=spec.tilt_bits + 1)

        # -- registers --------------------------------------------------------------------------
        regs = core_bus.registers(rmap)
        status, control = core_bus.status_flags()
        core_bus.drive_outputs(m, self, status)
        core_bus.configure_schedules(m, regs, {"barrier": barrier, "gain": gain})
        cell_overflow = Signal()
        readable = core_bus.readable_registers(
            regs, status, barrier, gain, counters.overflow,
            cell_overflow if spec.cell_counter_bits else None)
        running = status["busy"]

        self._bus(m, regs, readable, status, control, running, counters, qs, rng, barrier,
                  gain)

        # -- the run ----------------------------------------------------------------------------
        remaining = regs["run_steps"]      # counts down during a run: the steps still to run
        stop_requested = Signal()
        e0 = Signal(spec.barrier_bits)
        eta = Signal(spec.gain_bits)
        external = regs["external_tilt"]
        slot = Signal(slot_bits + 1)
        w = Signal(weight_shape)
        valid = Signal()
        q_nn = Signal(signed(spec.q_bits))
        field = Signal(signed(spec.field_bits))
        dl_up = Signal(signed(spec.dl2_bits))
        dl_down = Signal(signed(spec.dl2_bits))
        h_up = Signal(signed(spec.tilt_bits + 1))
        h_down = Signal(signed(spec.tilt_bits + 1))
        moved_up = Signal()
        bias = Signal(signed(spec.field_bits))
        # the field update: column (slot), weight change, where to go afterwards
        f_slot = Signal(slot_bits)
        f_dw = Signal(signed(max(spec.weight_bits, 2) + 1))
        f_init = Signal()                                  # part of init_field (not counted)
        f_row = Signal(slot_bits + 1)
        f_value = Signal(signed(spec.q_bits))
        f_pointer = Signal(g.ptr_bits)
        f_left = Signal(g.ptr_bits + 1)
        f_adds = Signal(max(g.ptr_bits, spec.cells.bit_length()) + 1)
        last_slot = slot + 1 >= regs["groups"]
        last_capacity_slot = slot + 1 >= g.slots

        with m.If(control["clear_errors"]):
            for name in ("error_busy_write", "error_address", "error_config"):
                m.d.sync += status[name].eq(0)
        with m.If(control["stop"] & running):
            m.d.sync += stop_requested.eq(1)
        with m.If(counters.clear):
            m.d.sync += cell_overflow.eq(0)

        # the crossing barriers E0 + h, stable from DRAW until the crossing unit is done
        m.d.comb += [crossing.e0.eq(e0), crossing.h_up.eq(h_up), crossing.h_down.eq(h_down)]

        # dL2 and the tilts of the cell just read: one multiplier for both directions
        m.d.comb += [dl_up.eq(delta * delta * q_nn + 2 * delta * field),
                     dl_down.eq(delta * delta * q_nn - 2 * delta * field)]
        multiplier_b = Signal(signed(spec.dl2_bits))
        product = Signal(signed(spec.gain_bits + spec.dl2_bits + 1))
        m.d.comb += product.eq(eta * multiplier_b)
        half_tilt = (product << spec.tilt_shift)

        # the outcome of the evaluation (the crossing unit holds it until the next draw)
        at_top, at_bottom = w == spec.w_hi, w == spec.w_lo
        move_up = crossing.up & ~at_top
        move_down = crossing.down & ~at_bottom
        moves = move_up | move_down
        blocked = (crossing.up & at_top) | (crossing.down & at_bottom)
        h = Mux(moved_up, h_up, h_down)            # the half tilt of the move (after DECIDE)
        # the end of a step: the schedules' new values against those of the step
        rise = Signal(signed(spec.barrier_bits + 1))
        d_eta = Signal(signed(spec.gain_bits + 1))
        m.d.comb += [rise.eq(barrier.value - e0), d_eta.eq(gain.value - eta)]
        counter_index = {name: i for i, (name, _, _) in enumerate(counter_layout(spec))}

        def add_to_counter(index, amount, subtract=0):
            """Add `amount` to counter `index` (only while counters.ready)."""
            m.d.comb += [counters.add.eq(1), counters.index.eq(index),
                         counters.amount.eq(amount), counters.subtract.eq(subtract)]

        def entry_field(name):
            at, width = g.entry_layout(spec.q_bits)[name]
            return qs.rdata[at:at + width]

        def after_move():
            """The field update of a move (field mode), else the next slot."""
            with m.If(external):
                m.next = "NEXT"
            with m.Else():
                m.d.sync += [f_slot.eq(slot), f_dw.eq(Mux(moved_up, delta, -delta)),
                             f_init.eq(0)]
                m.next = "FIELD_START"

        def field_read(row):
            """Read g of `row` for the update: the next entry of the column (sparse) or of the
            dense column (`row` is then f_row)."""
            self._access(m, "field", row)
            m.next = "FIELD_READ"

        def next_entry():
            """The entry on qs.rdata becomes the update's row; prefetch the one after it."""
            row = entry_field("group")
            m.d.sync += [f_row.eq(row), f_value.eq(entry_field("value").as_signed()),
                         f_pointer.eq(f_pointer + 1)]
            m.d.comb += [qs.re.eq(1), qs.addr.eq(f_pointer)]
            field_read(row)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(control["start"]):
                    bad = (regs["groups"] == 0) | (regs["groups"] > g.groups) | \
                        (regs["cells"] == 0) | (regs["cells"] > spec.cells)
                    with m.If(bad):
                        m.d.sync += status["error_config"].eq(1)
                    with m.Elif(regs["run_steps"] == 0):
                        m.d.sync += status["done"].eq(1)
                    with m.Else():
                        m.d.sync += [status["busy"].eq(1), status["done"].eq(0),
                                     stop_requested.eq(0)]
                        m.next = "PREPARE"
                with m.Elif(control["init_field"]):
                    m.d.sync += [status["busy"].eq(1), status["done"].eq(0), slot.eq(0)]
                    m.next = "INIT_BIAS"
                with m.Elif(control["clear"]):
                    m.d.comb += [counters.clear.eq(1), barrier.restart.eq(1),
                                 gain.restart.eq(1)]
                    m.d.sync += status["done"].eq(0)

            with m.State("PREPARE"):
                with m.If(~barrier.busy & ~gain.busy):
                    m.d.sync += [e0.eq(barrier.value), eta.eq(gain.value), slot.eq(0)]
                    m.next = "EVAL_WEIGHT"

            # -- one evaluation -------------------------------------------------------------
            with m.State("EVAL_WEIGHT"):
                self._access(m, "weight", slot)
                m.next = "EVAL_VALID"
            with m.State("EVAL_VALID"):
                with m.If(cs.done):
                    m.d.sync += w.eq(self._value("weight"))
                    self._access(m, "valid", slot)
                    m.next = "EVAL_OPERANDS"
            with m.State("EVAL_OPERANDS"):
                with m.If(cs.done):
                    with m.If(~self._value("valid")):
                        m.d.comb += rng.next.eq(1)            # an idle slot draws too
                        m.next = "NEXT"
                    with m.Elif(external):
                        self._access(m, "tilt", slot)
                        m.next = "EVAL_TILT"
                    with m.Else():
                        self._access(m, "diag", slot)
                        m.next = "EVAL_DIAG"
            with m.State("EVAL_TILT"):
                with m.If(cs.done):
                    tilt = self._value("tilt")
                    m.d.sync += [h_up.eq(-tilt), h_down.eq(tilt), q_nn.eq(0), field.eq(0)]
                    m.next = "DRAW"
            with m.State("EVAL_DIAG"):
                with m.If(cs.done):
                    m.d.sync += q_nn.eq(self._value("diag"))
                    self._access(m, "field", slot)
                    m.next = "EVAL_FIELD"
            with m.State("EVAL_FIELD"):
                with m.If(cs.done):
                    m.d.sync += field.eq(self._value("field"))
                    m.next = "TILT_UP"
            with m.State("TILT_UP"):
                m.d.comb += multiplier_b.eq(dl_up)
                m.d.sync += h_up.eq(half_tilt)
                m.next = "TILT_DOWN"
            with m.State("TILT_DOWN"):
                m.d.comb += multiplier_b.eq(dl_down)
                m.d.sync += h_down.eq(half_tilt)
                m.next = "DRAW"
            with m.State("DRAW"):
                m.d.comb += [crossing.start.eq(1), crossing.u.eq(rng.draw), rng.next.eq(1)]
                m.next = "CROSS"
            with m.State("CROSS"):
                with m.If(crossing.done):
                    m.next = "DECIDE"
            with m.State("DECIDE"):
                with m.If(counters.ready):
                    with m.If(moves | blocked):
                        add_to_counter(Mux(move_up, counter_index["up_moves"],
                                  Mux(move_down, counter_index["down_moves"],
                                      counter_index["blocked_moves"])), 1)
                    with m.If(moves & ~external):
                        m.d.sync += regs["loss2"].eq(regs["loss2"]
                                                     + Mux(move_up, dl_up, dl_down))
                    m.d.sync += moved_up.eq(move_up)
                    m.next = "COUNT_INADMISSIBLE"
            with m.State("COUNT_INADMISSIBLE"):
                with m.If(counters.ready):
                    with m.If(crossing.inadmissible):
                        add_to_counter(counter_index["inadmissible"], 1)
                    with m.If(moves):
                        m.next = "COUNT_HEAT_NET"
                    with m.Else():
                        m.next = "NEXT"
            with m.State("COUNT_HEAT_NET"):                  # released: -2h
                with m.If(counters.ready):
                    add_to_counter(counter_index["heat_net"], 2 * h, subtract=1)
                    m.next = "COUNT_HEAT_ABS"
            with m.State("COUNT_HEAT_ABS"):                  # |2h|; then the move itself
                with m.If(counters.ready):
                    add_to_counter(counter_index["heat_abs"], 2 * h, subtract=h < 0)
                    self._access(m, "weight", slot,
                                 value=Mux(moved_up, w + delta, w - delta).as_signed())
                    m.next = "WEIGHT_WRITTEN"
            with m.State("WEIGHT_WRITTEN"):
                with m.If(cs.done):
                    if spec.cell_counter_bits:
                        with m.If(moved_up):
                            self._access(m, "cell_up", slot)
                        with m.Else():
                            self._access(m, "cell_down", slot)
                        m.next = "CELL_COUNT"
                    else:
                        after_move()
            if spec.cell_counter_bits:
                with m.State("CELL_COUNT"):
                    with m.If(cs.done):
                        count = self._value("cell_up")         # both have the same width
                        with m.If(count == (1 << spec.cell_counter_bits) - 1):
                            m.d.sync += cell_overflow.eq(1)
                        with m.If(moved_up):
                            self._access(m, "cell_up", slot, value=(count + 1)[:len(count)])
                        with m.Else():
                            self._access(m, "cell_down", slot, value=(count + 1)[:len(count)])
                        m.next = "CELL_COUNTED"
                with m.State("CELL_COUNTED"):
                    with m.If(cs.done):
                        after_move()
            with m.State("NEXT"):
                with m.If(last_slot):
                    m.d.comb += [barrier.advance.eq(1), gain.advance.eq(1)]
                    m.next = "SCHEDULE"
                with m.Else():
                    m.d.sync += slot.eq(slot + 1)
                    m.next = "EVAL_WEIGHT"

            # -- the end of a step ----------------------------------------------------------
            with m.State("SCHEDULE"):
                with m.If(~barrier.busy & ~gain.busy):
                    m.next = "COUNT_STEPS"
            with m.State("COUNT_STEPS"):
                with m.If(counters.ready):
                    add_to_counter(counter_index["steps"], 1)
                    m.next = "COUNT_EVALUATIONS"
            with m.State("COUNT_EVALUATIONS"):               # every cell of the run, once
                with m.If(counters.ready):
                    add_to_counter(counter_index["evaluations"], regs["cells"])
                    m.next = "COUNT_BARRIER_WORK"
            with m.State("COUNT_BARRIER_WORK"):
                with m.If(counters.ready):
                    with m.If(rise > 0):
                        add_to_counter(counter_index["barrier_work"], rise * regs["cells"])
                    m.next = "COUNT_ANNEAL_WORK"
            with m.State("COUNT_ANNEAL_WORK"):
                with m.If(counters.ready):
                    with m.If(~external & (d_eta != 0)):
                        add_to_counter(counter_index["anneal_work"],
                              (d_eta * regs["loss2"]) << (spec.tilt_shift + 1))
                    m.d.sync += [e0.eq(barrier.value), eta.eq(gain.value),
                                 remaining.eq(remaining - 1), slot.eq(0)]
                    with m.If((remaining == 1) | stop_requested):
                        m.next = "FINISH"
                    with m.Else():
                        m.next = "EVAL_WEIGHT"
            with m.State("FINISH"):                          # the last addition is in
                with m.If(counters.ready):
                    m.d.sync += [status["busy"].eq(0), status["done"].eq(1)]
                    m.next = "IDLE"

            # -- the field update g += dw Q[:, f_slot] --------------------------------------
            with m.State("FIELD_START"):
                if g.q_storage == "sparse":
                    self._access(m, "column", f_slot)
                    m.next = "FIELD_COLUMN"
                else:
                    m.d.comb += [qs.re.eq(1), qs.addr.eq(Cat(Const(0, g.group_bits), f_slot))]
                    m.d.sync += [f_row.eq(0), f_adds.eq(regs["cells"])]
                    m.next = "FIELD_DENSE_Q"
            if g.q_storage == "sparse":
                with m.State("FIELD_COLUMN"):
                    with m.If(cs.done):
                        column = self._value("column")
                        start, length = column[:g.ptr_bits], column[g.ptr_bits:2 * g.ptr_bits]
                        m.d.sync += [f_pointer.eq(start + 1), f_left.eq(length),
                                     f_adds.eq(length)]
                        m.d.comb += [qs.re.eq(1), qs.addr.eq(start)]
                        with m.If(length == 0):
                            m.next = "FIELD_END"
                        with m.Else():
                            m.next = "FIELD_ENTRY"
                with m.State("FIELD_ENTRY"):              # the first entry is on qs.rdata
                    next_entry()
            else:
                with m.State("FIELD_DENSE_Q"):           # Q[f_row, f_slot] is on qs.rdata
                    m.d.sync += f_value.eq(qs.rdata.as_signed())
                    field_read(f_row)
            with m.State("FIELD_READ"):
                with m.If(cs.done):
                    updated = self._value("field") + f_dw * f_value
                    self._access(m, "field", f_row, value=updated[:spec.field_bits].as_signed())
                    m.next = "FIELD_WRITTEN"
            with m.State("FIELD_WRITTEN"):
                with m.If(cs.done):
                    if g.q_storage == "sparse":
                        m.d.sync += f_left.eq(f_left - 1)
                        with m.If(f_left == 1):
                            m.next = "FIELD_END"
                        with m.Else():
                            next_entry()
                    else:
                        with m.If(f_row + 1 >= regs["groups"]):
                            m.next = "FIELD_END"
                        with m.Else():
                            m.d.sync += f_row.eq(f_row + 1)
                            m.d.comb += [qs.re.eq(1),
                                         qs.addr.eq(Cat((f_row + 1)[:g.group_bits], f_slot))]
                            m.next = "FIELD_DENSE_Q"
            with m.State("FIELD_END"):
                with m.If(f_init):
                    m.next = "INIT_COLUMN_NEXT"
                with m.Elif(counters.ready):
                    add_to_counter(counter_index["field_adds"], f_adds)
                    m.next = "NEXT"

            # -- init_field: g = -b, g += W_m Q[:, m] for every cell, L2 = sum W (g - b) ----
            with m.State("INIT_BIAS"):
                self._access(m, "bias", slot)
                m.next = "INIT_BIAS_WRITE"
            with m.State("INIT_BIAS_WRITE"):
                with m.If(cs.done):
                    self._access(m, "field", slot,
                                 value=(-self._value("bias"))[:spec.field_bits].as_signed())
                    m.next = "INIT_BIAS_NEXT"
            with m.State("INIT_BIAS_NEXT"):
                with m.If(cs.done):
                    with m.If(last_capacity_slot):
                        m.d.sync += slot.eq(0)
                        m.next = "INIT_WEIGHT"
                    with m.Else():
                        m.d.sync += slot.eq(slot + 1)
                        m.next = "INIT_BIAS"
            with m.State("INIT_WEIGHT"):
                self._access(m, "weight", slot)
                m.next = "INIT_VALID"
            with m.State("INIT_VALID"):
                with m.If(cs.done):
                    m.d.sync += w.eq(self._value("weight"))
                    self._access(m, "valid", slot)
                    m.next = "INIT_COLUMN"
            with m.State("INIT_COLUMN"):
                with m.If(cs.done):
                    with m.If(self._value("valid") & (w != 0)):
                        m.d.sync += [f_slot.eq(slot), f_dw.eq(w), f_init.eq(1)]
                        m.next = "FIELD_START"
                    with m.Else():
                        m.next = "INIT_COLUMN_NEXT"
            with m.State("INIT_COLUMN_NEXT"):
                with m.If(last_capacity_slot):
                    m.d.sync += [slot.eq(0), regs["loss2"].eq(0)]     # the sum starts
                    m.next = "INIT_LOSS"
                with m.Else():
                    m.d.sync += slot.eq(slot + 1)
                    m.next = "INIT_WEIGHT"
            with m.State("INIT_LOSS"):
                self._access(m, "weight", slot)
                m.next = "INIT_LOSS_VALID"
            with m.State("INIT_LOSS_VALID"):
                with m.If(cs.done):
                    m.d.sync += w.eq(self._value("weight"))
                    self._access(m, "valid", slot)
                    m.next = "INIT_LOSS_FIELD"
            with m.State("INIT_LOSS_FIELD"):
                with m.If(cs.done):
                    m.d.sync += valid.eq(self._value("valid"))
                    self._access(m, "field", slot)
                    m.next = "INIT_LOSS_BIAS"
            with m.State("INIT_LOSS_BIAS"):
                with m.If(cs.done):
                    m.d.sync += field.eq(self._value("field"))
                    self._access(m, "bias", slot)
                    m.next = "INIT_LOSS_ADD"
            with m.State("INIT_LOSS_ADD"):
                with m.If(cs.done):
                    m.d.comb += bias.eq(self._value("bias"))
                    m.d.sync += regs["loss2"].eq(regs["loss2"]
                                                 + Mux(valid, w * (field - bias), 0))
                    with m.If(last_slot):
                        m.d.sync += [status["busy"].eq(0), status["done"].eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += slot.eq(slot + 1)
                        m.next = "INIT_LOSS"
        return m

    # -- the bus --------------------------------------------------------------------------------
    def _bus(self, m, regs, readable, status, control, running, counters, qs, rng, barrier,
             gain):
        """Decode of the bus: registers, counters, memories; refusals; ``ready``."""
        rmap, layout, cs = self.regmap, self.layout, self._cs
        # the bus is decoded as it comes (no input registers: 12 MHz leaves time for it)
        bus = {name: getattr(self, name) for name in ("addr", "wdata", "we", "re")}
        # the lower words of a wide entry wait here until its last word commits it (the seed
        # waits in its own RAM: see _seed_loader)
        max_words = max(words(r.width) for r in rmap
                        if r.is_memory and r.access != "ro" and r.name != "seed")
        staging = Signal(max(1, (max_words - 1) * WORD_BITS))
        counter_base = rmap["counter_steps"].base
        counter_names = {f"counter_{name}" for name, _, _ in counter_layout(self.spec)}

        decoded = core_bus.decode(rmap, bus["addr"])
        hit, word_of, index_of, any_hit = decoded
        seed_loading = self._seed_loader(m, rng, bus, word_of["seed"])

        # ready: low while a multi-plane cell-store access of the bus is still under way
        bus_cs = Signal()                   # the cell store works for the bus
        # and while the counters are zeroed after a clear (reads would see old words)
        m.d.comb += self.ready.eq(~(bus_cs & cs.busy)
                                  & (counters.ready | running) & ~seed_loading)
        with m.If(cs.done):
            m.d.sync += bus_cs.eq(0)

        # reads: answered when the source has the word (registers, counters, qs: the cycle
        # after decode; the cell store: its done cycle)
        sources = ("none", "register", "counter", "q", "cells")
        read_from = Signal(range(len(sources)))
        register_bits = max(r.base + r.size for r in rmap if not r.is_memory).bit_length()
        read_address = Signal(register_bits)   # of a register read
        read_word = Signal(max(1, (max(words(r.width) for r in rmap) - 1).bit_length()))
        read_ok = Signal()
        read_two_planes = Signal()          # the cell-store word spans two planes
        read_signed = Signal()
        m.d.sync += self.rack.eq(0)

        with m.If(bus["re"]):
            m.d.sync += [read_from.eq(sources.index("none")), read_ok.eq(0),
                         read_address.eq(bus["addr"][:register_bits])]
            for region in rmap:
                with m.If(hit[region.name]):
                    m.d.sync += read_word.eq(word_of[region.name])
                    if not region.is_memory:
                        m.d.sync += read_ok.eq(region.access != "wo")
                        if region.access == "wo":
                            m.d.sync += status["error_address"].eq(1)
                        elif region.name in counter_names:
                            m.d.comb += [counters.read_en.eq(1), counters.read_addr.eq(
                                bus["addr"] - counter_base)]
                            m.d.sync += read_from.eq(sources.index("counter"))
                        else:
                            m.d.sync += read_from.eq(sources.index("register"))
                        continue
                    ok = ~running & (region.access != "wo")
                    m.d.sync += read_ok.eq(ok)
                    with m.If(ok):
                        index = index_of[region.name]
                        if region.name in layout.regions:
                            first, count = layout.regions[region.name]
                            plane = first + PLANES_PER_WORD * word_of[region.name]
                            left = count - PLANES_PER_WORD * word_of[region.name]
                            two = left >= 2
                            m.d.comb += [cs.start.eq(1), cs.plane.eq(plane),
                                         cs.count.eq(Mux(two, 2, 1)), cs.slot.eq(index),
                                         cs.write.eq(0)]
                            m.d.sync += [read_from.eq(sources.index("cells")), bus_cs.eq(1),
                                         read_two_planes.eq(two),
                                         read_signed.eq(int(region.signed))]
                        else:                                  # entry or q
                            m.d.comb += [qs.re.eq(1), qs.addr.eq(index)]
                            m.d.sync += [read_from.eq(sources.index("q")),
                                         read_signed.eq(int(region.signed))]
                    with m.Elif(running):
                        m.d.sync += status["error_busy_write"].eq(1)
                    with m.Else():
                        m.d.sync += status["error_address"].eq(1)
            with m.If(~any_hit):
                m.d.sync += status["error_address"].eq(1)

        # a register's word, selected by its address: one 32-bit multiplexer over the words
        register_word = Signal(WORD_BITS)
        with m.Switch(read_address):
            for region in rmap:
                if region.is_memory or region.name not in readable:
                    continue
                extended = Signal(region.size * WORD_BITS, name=f"read_{region.name}")
                m.d.comb += extended.eq(readable[region.name])     # sign or zero extension
                for j in range(region.size):
                    with m.Case(region.base + j):
                        m.d.comb += register_word.eq(extended.word_select(j, WORD_BITS))
        low_plane = cs.rdata[:PLANE_BITS]
        cells_word = Mux(read_two_planes, cs.rdata[:WORD_BITS],
                         Mux(read_signed, low_plane.as_signed(), low_plane))
        q_word = Mux(read_signed, qs.rdata.as_signed(), qs.rdata)
        q_shifted = Signal(max(WORD_BITS, len(qs.rdata)))
        m.d.comb += q_shifted.eq(q_word)
        pending = Signal()                   # a read waits for its answer
        with m.If(bus["re"]):
            m.d.sync += pending.eq(1)
        with m.If(pending):
            with m.Switch(read_from):
                with m.Case(sources.index("cells")):
                    with m.If(cs.done):
                        m.d.sync += [self.rdata.eq(Mux(read_ok, cells_word, 0)),
                                     self.rack.eq(1), pending.eq(bus["re"])]
                with m.Default():
                    word = {
                        sources.index("register"): register_word,
                        sources.index("counter"): counters.read_data,
                        sources.index("q"): q_shifted.word_select(read_word, WORD_BITS)
                        if len(q_shifted) > WORD_BITS else q_shifted,
                    }
                    data = Signal(WORD_BITS)
                    with m.Switch(read_from):
                        for code, value in word.items():
                            with m.Case(code):
                                m.d.comb += data.eq(value)
                    m.d.sync += [self.rdata.eq(Mux(read_ok, data, 0)), self.rack.eq(1),
                                 pending.eq(bus["re"])]

        # writes
        core_bus.register_writes(
            m, rmap, bus, decoded, regs, status, control, running,
            lambda region, word, index: self._memory_write(
                m, region, bus, word, index, running, status, staging, qs, rng, barrier, gain,
                bus_cs))

    def _seed_loader(self, m, rng, bus, word):
        """The seed's words go into a small RAM as they are written (refused ones never get
        there: see _memory_write); its last word starts the copy into the generator, a word a
        cycle through its shift-in port, during which the bus is not ready. So a seed is loaded
        whole or not at all, without a 216-bit register. Returns the copy's busy signal."""
        m.submodules.seed_words = stage = Memory(shape=WORD_BITS, depth=SEED_WORDS, init=[])
        stage_write, stage_read = stage.write_port(), stage.read_port()
        self._seed_write = stage_write
        copying, shifting = Signal(), Signal()            # reading words; shifting them in
        index = Signal(range(SEED_WORDS))
        m.d.comb += [stage_write.addr.eq(word), stage_write.data.eq(bus["wdata"]),
                     stage_read.addr.eq(index),
                     rng.shift.eq(shifting), rng.shift_data.eq(stage_read.data)]
        m.d.sync += shifting.eq(copying)
        with m.If(copying):
            m.d.sync += index.eq(index + 1)
            with m.If(index == SEED_WORDS - 1):
                m.d.sync += copying.eq(0)
        with m.If(stage_write.en & (word == SEED_WORDS - 1)):
            m.d.sync += [copying.eq(1), index.eq(0)]
        return copying | shifting

    def _memory_write(self, m, region, bus, word, index, running, status, staging, qs, rng,
                      barrier, gain, bus_cs):
        """A word written into a memory region: staged, or committing the whole entry."""
        if region.name == "seed":                  # every word into the seed RAM
            with m.If(running):
                m.d.sync += status["error_busy_write"].eq(1)
            with m.Elif(word < SEED_WORDS):
                m.d.comb += self._seed_write.en.eq(1)
            with m.Else():
                m.d.sync += status["error_address"].eq(1)
            return
        last = words(region.width) - 1
        entry = Cat(staging[:WORD_BITS * last], bus["wdata"]) if last else bus["wdata"]
        value = entry[:region.width].as_signed() if region.signed else entry[:region.width]
        name = region.name
        with m.If(running):
            m.d.sync += status["error_busy_write"].eq(1)
        with m.Elif(word < last):
            for w in range(last):
                with m.If(word == w):
                    m.d.sync += staging[WORD_BITS * w:WORD_BITS * (w + 1)].eq(bus["wdata"])
        with m.Elif(word == last):
            if name in self.layout.regions:
                self._access(m, name, index, value=value)
                m.d.sync += bus_cs.eq(1)
            elif name in ("entry", "q"):
                m.d.comb += [qs.addr.eq(index), qs.wdata.eq(value), qs.we.eq(1)]
            elif name in ("barrier_table", "gain_table"):
                unit = barrier if name == "barrier_table" else gain
                m.d.comb += [unit.table_we.eq(1), unit.table_addr.eq(index),
                             unit.table_data.eq(value)]
        with m.Else():
            m.d.sync += status["error_address"].eq(1)     # a word past the entry's words
