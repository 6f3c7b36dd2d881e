"""The LIM synapse array core: lanes, field engine, schedules, counters and the host bus.

Built from a Spec (widths, formats) and a Geometry (capacities); the run-time configuration
(problem, b, weights, schedules, seeds) is loaded by the host through the register map of
hdl/regmap.py. A step does what python_model/reference.py does, group after group:

    for each group r (slots r * lanes .. r * lanes + lanes - 1, in update order):
        R   read the lanes' weight, valid bit, Q_nn, tilt and field at bank address r
        C   dL2 = delta^2 Q_nn +- 2 delta g; half tilts h = eta dL2 << shift (or the host's
            tilt); barriers E0 + h
        I   every lane draws (idle lanes too) and feeds its crossing unit
        D   (after the crossing latency) move, block or stay; write weights; count
        and for each lane that moved, the field engine applies g += dw Q[:, m]
    at the end of the step: both schedules advance; barrier and annealing work are counted.

Groups enter R one per cycle (a pipeline); see the run section below for how a move squashes
and replays the groups behind it. `init_field` builds g = QW - b and the loss register.

Bus: ``addr``/``wdata``/``we`` write a word in one cycle; ``addr``/``re`` read one, answered
by ``rdata`` with ``rack`` three cycles later (the bus inputs are registered). Writes other
than ``control`` while a run is in progress, and memory reads then, are refused (status
``error_busy_write``); unknown addresses and writes to read-only registers set
``error_address``; a refused access changes nothing.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from limemu.model.errors import require

from . import core_bus
from .counter_bank import INCREMENT_BITS, CounterBank
from .crossing_unit import CrossingUnit, crossing_barrier_width
from .field_engine import (
    TARGET_COLUMN,
    TARGET_ENTRY,
    TARGET_FIELD,
    TARGET_Q,
    FieldEngine,
    lane_select,
)
from .lane_rng import LaneRng
from .regmap import WORD_BITS, RegisterMap, words
from .schedule_unit import ScheduleUnit

ENGINE_TARGETS = {"field": TARGET_FIELD, "q": TARGET_Q, "column": TARGET_COLUMN,
                  "entry": TARGET_ENTRY}
LANE_BANKS = ("weight", "valid", "diag", "tilt", "bias")
CELL_COUNTER_BANKS = ("cell_up", "cell_down")
SEQ_BITS = 8                 # draw sequence numbers (wrap; in flight is far less than 2**8)
DRAW_SLOT_BITS = 4
DRAW_SLOTS = 1 << DRAW_SLOT_BITS   # kept draws per lane: more than the groups in flight


class ArrayCore(wiring.Component):
    """Ports: the bus (``addr``, ``wdata``, ``we``, ``re``, ``rdata``, ``rack``, and ``ready``,
    always high: this core takes an access every cycle) and ``busy``/``done``/``error`` for
    LEDs and testbenches."""

    def __init__(self, spec, geometry):
        self.spec, self.geometry = spec, geometry
        self.regmap = RegisterMap(spec, geometry)
        self.barrier_width = crossing_barrier_width(spec)
        needed = max(spec.tilt_bits + 2 + geometry.lanes.bit_length(),
                     spec.gain_bits + 2 + spec.loss_bits + spec.tilt_shift + 1,
                     spec.barrier_bits + 1 + spec.cells.bit_length()) + 1
        require(needed <= INCREMENT_BITS, "tilt_bits", spec.tilt_bits,
                f"per-cycle counter increments need {needed} bits, the counters take "
                f"{INCREMENT_BITS}")
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
        return f"ArrayCore(spec={self.spec!r}, geometry={self.geometry!r})"

    def elaborate(self, platform):
        spec, g, rmap = self.spec, self.geometry, self.regmap
        m = Module()
        lanes, lane_bits, group_bits = g.lanes, g.lane_bits, g.group_bits
        delta = spec.delta

        # -- submodules -------------------------------------------------------------------------
        m.submodules.counters = counters = CounterBank(spec)
        m.submodules.engine = engine = FieldEngine(spec, g)
        m.submodules.barrier = barrier = ScheduleUnit(bits=spec.barrier_bits,
                                                      table_depth=g.table_depth,
                                                      kinds=g.schedule_kinds)
        m.submodules.gain = gain = ScheduleUnit(bits=spec.gain_bits, table_depth=g.table_depth,
                                                kinds=g.schedule_kinds)
        rngs, units = [], []
        for lane in range(lanes):
            rng = LaneRng()
            unit = CrossingUnit(frac_bits=spec.barrier_frac_bits,
                                mantissa_bits=spec.mantissa_bits,
                                barrier_width=self.barrier_width)
            m.submodules[f"rng_{lane}"], m.submodules[f"crossing_{lane}"] = rng, unit
            rngs.append(rng)
            units.append(unit)

        self.lane_banks = LANE_BANKS + (CELL_COUNTER_BANKS if spec.cell_counter_bits else ())
        banks = {}
        for name in self.lane_banks:
            region = rmap[name]
            shape = signed(region.width) if region.signed else unsigned(region.width)
            ports = []
            for lane in range(lanes):
                mem = Memory(shape=shape, depth=g.groups_p2, init=[])
                m.submodules[f"{name}_{lane}"] = mem
                ports.append((mem.read_port(), mem.write_port()))
            banks[name] = ports

        # -- registers --------------------------------------------------------------------------
        regs = core_bus.registers(rmap)
        status, control = core_bus.status_flags()
        m.d.comb += self.ready.eq(1)
        core_bus.drive_outputs(m, self, status)
        core_bus.configure_schedules(m, regs, {"barrier": barrier, "gain": gain})
        self._cell_overflow = Signal()
        if spec.cell_counter_bits:
            with m.If(counters.clear):
                m.d.sync += self._cell_overflow.eq(0)
        readable = core_bus.readable_registers(
            regs, status, barrier, gain, counters.overflow,
            self._cell_overflow if spec.cell_counter_bits else None)
        for name, _, _ in counters.layout:
            readable[f"counter_{name}"] = getattr(counters, f"value_{name}")
        m.d.comb += [engine.cells.eq(regs["cells"]), engine.groups.eq(regs["groups"])]

        # -- bus: decode ------------------------------------------------------------------------
        # The bus inputs are registered first: the decoder then hangs off flip-flops (timing on
        # an FPGA; in Verilator it is evaluated once per cycle, not at every input change).
        bus = {name: Signal.like(getattr(self, name), name=f"bus_{name}")
               for name in ("addr", "wdata", "we", "re")}
        m.d.sync += [bus[name].eq(getattr(self, name)) for name in bus]
        self._bus = bus
        max_words = max(words(r.width) for r in rmap)
        staging = Signal(max(1, (max_words - 1) * WORD_BITS))
        decoded = core_bus.decode(rmap, bus["addr"])
        hit, word_of, index_of, any_hit = decoded
        running = status["busy"]

        # read pipeline: cycle 0 strobe, cycle 1 select, cycle 2 answer
        read_sel = Signal(range(len(rmap.regions) + 1))
        read_word = Signal(max(1, (max_words - 1).bit_length()))
        read_lane = Signal(range(g.lanes_p2))
        read_ok = Signal()
        read_pending = Signal()
        m.d.sync += [read_pending.eq(bus["re"]), self.rack.eq(read_pending)]
        names = list(rmap.regions)

        # engine / bank / schedule-table host ports default to idle
        host_index = Signal(bus["addr"].shape().width)
        host_lane = host_index[:lane_bits] if lane_bits else Const(0, 1)
        host_bank_addr = host_index[lane_bits:]
        entry_value = Signal(max(WORD_BITS, max_words * WORD_BITS))
        m.d.comb += [engine.host_index.eq(host_index), engine.host_wdata.eq(entry_value)]

        with m.If(bus["re"]):
            m.d.sync += [read_sel.eq(len(names)), read_ok.eq(0)]
            for i, region in enumerate(rmap):
                with m.If(hit[region.name]):
                    m.d.sync += [read_sel.eq(i), read_word.eq(word_of[region.name])]
                    if region.is_memory:
                        m.d.comb += host_index.eq(index_of[region.name])
                        m.d.sync += read_lane.eq(host_lane)
                        refuse_lane = (host_lane >= lanes) if region.name in self.lane_banks else \
                            Const(0, 1)
                        ok = ~running & (region.access != "wo") & ~refuse_lane
                        m.d.sync += read_ok.eq(ok)
                        with m.If(ok):
                            if region.name in ENGINE_TARGETS:
                                m.d.comb += [engine.host_re.eq(1), engine.host_target.eq(
                                    ENGINE_TARGETS[region.name])]
                            elif region.name in self.lane_banks:
                                for lane in range(lanes):
                                    m.d.comb += banks[region.name][lane][0].addr.eq(
                                        host_bank_addr)
                        with m.Elif(running):
                            m.d.sync += status["error_busy_write"].eq(1)
                        with m.Else():
                            m.d.sync += status["error_address"].eq(1)
                    else:
                        m.d.sync += read_ok.eq(region.access != "wo")
                        if region.access == "wo":
                            m.d.sync += status["error_address"].eq(1)
            with m.If(~any_hit):
                m.d.sync += status["error_address"].eq(1)

        with m.If(read_pending):
            answer = Signal(max_words * WORD_BITS)
            with m.Switch(read_sel):
                for i, region in enumerate(rmap):
                    with m.Case(i):
                        if not region.is_memory:
                            if region.name in readable:
                                m.d.comb += answer.eq(readable[region.name])
                        elif region.name in ENGINE_TARGETS:
                            m.d.comb += answer.eq(engine.host_rdata)
                        elif region.name in self.lane_banks:
                            m.d.comb += answer.eq(lane_select(
                                [banks[region.name][k][0].data for k in range(lanes)],
                                read_lane))
            m.d.sync += self.rdata.eq(Mux(read_ok, answer.word_select(read_word, WORD_BITS), 0))

        # writes
        core_bus.register_writes(
            m, rmap, bus, decoded, regs, status, control, running,
            lambda region, word, index: self._memory_write(
                m, region, word, index, running, status, staging, host_index, host_lane,
                host_bank_addr, entry_value, banks, engine, rngs, barrier, gain))

        # -- the run: a speculative pipeline, one group per cycle -------------------------------
        # R (read the banks) -> C (tilts, barriers) -> I (draw, crossing unit) -> L stages -> D
        # (decide). Groups enter back to back; a group that moves a cell (field mode) makes the
        # later groups in flight stale: they are squashed and re-issued after the field update,
        # with the same draws (each lane keeps its last DRAW_SLOTS draws), so the result is
        # the sequential one of python_model/reference.py.
        remaining = Signal(48)
        stop_requested = Signal()
        e0 = Signal(spec.barrier_bits)
        eta = Signal(spec.gain_bits)
        external = regs["external_tilt"]
        issue_group = Signal(group_bits + 1)      # next group to enter R
        issue_seq = Signal(SEQ_BITS)              # its draw sequence number
        fresh_seq = Signal(SEQ_BITS)              # sequence number of the next new draw
        issuing = Signal()                        # R is allowed to take a group
        retired = Signal(group_bits + 1)          # group whose field update is under way
        retired_seq = Signal(SEQ_BITS)
        pending = Signal(lanes)
        moved_up = Signal(lanes)
        squash = Signal()
        init_slot = Signal(g.group_bits + lane_bits + 1)   # field initialisation: slot, group
        init_sum = Signal(signed(spec.loss_bits))

        item = self._item_layout(spec, lanes)
        c_valid, c_group, c_seq = Signal(), Signal(group_bits), Signal(SEQ_BITS)
        i_stage = Signal(item["width"], name="i_stage")
        delay = [Signal(item["width"], name=f"delay_{k}") for k in range(CrossingUnit.latency)]
        draw_slots = [[Signal(32, name=f"draw_{lane}_{k}") for k in range(DRAW_SLOTS)]
                      for lane in range(lanes)]

        with m.If(control["clear_errors"]):
            for name in ("error_busy_write", "error_address", "error_config"):
                m.d.sync += status[name].eq(0)
        with m.If(control["stop"] & running):
            m.d.sync += stop_requested.eq(1)

        # R: read the banks of the next group
        take = Signal()
        m.d.comb += take.eq(issuing & (issue_group < regs["groups"]) & ~squash)
        with m.If(take):
            m.d.comb += engine.eval_addr.eq(issue_group[:group_bits])
            for name in self.lane_banks:
                for lane in range(lanes):
                    m.d.comb += banks[name][lane][0].addr.eq(issue_group[:group_bits])
            m.d.sync += [issue_group.eq(issue_group + 1), issue_seq.eq(issue_seq + 1)]
        m.d.sync += [c_valid.eq(take), c_group.eq(issue_group[:group_bits]),
                     c_seq.eq(issue_seq)]

        # C: tilts and barriers from the banks' data
        eta_shifted = eta << spec.tilt_shift
        c_fields = {"valid": c_valid & ~squash, "group": c_group, "seq": c_seq}
        for lane in range(lanes):
            q_nn = banks["diag"][lane][0].data
            field = engine.eval_field[lane]
            up_dl = delta * delta * q_nn + 2 * delta * field
            down_dl = delta * delta * q_nn - 2 * delta * field
            tilt = banks["tilt"][lane][0].data
            c_fields.update({
                f"w{lane}": banks["weight"][lane][0].data,
                f"v{lane}": banks["valid"][lane][0].data,
                f"dlu{lane}": Mux(external, 0, up_dl),
                f"dld{lane}": Mux(external, 0, down_dl),
                f"hu{lane}": Mux(external, -tilt, eta_shifted * up_dl),
                f"hd{lane}": Mux(external, tilt, eta_shifted * down_dl),
            })
            if spec.cell_counter_bits:
                c_fields.update({f"cu{lane}": banks["cell_up"][lane][0].data,
                                 f"cd{lane}": banks["cell_down"][lane][0].data})
        m.d.sync += i_stage.eq(self._pack(m, item, c_fields))

        # I: each lane's draw (new, or kept from a squashed issue) into its crossing unit
        i = self._unpack(item, i_stage, lanes)
        i_valid = i["valid"] & ~squash
        new_draw = i_valid & (i["seq"] == fresh_seq)
        with m.If(new_draw):
            m.d.sync += fresh_seq.eq(fresh_seq + 1)
        for lane in range(lanes):
            kept = Signal(32, name=f"kept_draw_{lane}")
            with m.Switch(i["seq"][:DRAW_SLOT_BITS]):
                for k in range(DRAW_SLOTS):
                    with m.Case(k):
                        m.d.comb += kept.eq(draw_slots[lane][k])
                        with m.If(new_draw):
                            m.d.sync += draw_slots[lane][k].eq(rngs[lane].draw)
            m.d.comb += [units[lane].valid_in.eq(i_valid),
                         units[lane].u.eq(Mux(new_draw, rngs[lane].draw, kept)),
                         units[lane].b_up.eq(e0 + i[f"hu{lane}"]),
                         units[lane].b_down.eq(e0 + i[f"hd{lane}"]),
                         rngs[lane].next.eq(new_draw)]
        m.d.sync += delay[0].eq(Mux(i_valid, i_stage, 0))
        for k in range(1, len(delay)):
            m.d.sync += delay[k].eq(Mux(squash, 0, delay[k - 1]))

        # D: the decisions of the oldest group
        d = self._unpack(item, delay[-1], lanes)
        arriving = Signal()
        last_group = Signal()
        movers = Signal(lanes)
        m.d.comb += [last_group.eq(d["group"] + 1 >= regs["groups"])]

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
                                     remaining.eq(regs["run_steps"]), stop_requested.eq(0)]
                        m.next = "PREPARE"
                with m.Elif(control["init_field"]):
                    m.d.sync += [status["busy"].eq(1), status["done"].eq(0), init_slot.eq(0)]
                    m.next = "INIT_BIAS_READ"
                with m.Elif(control["clear"]):
                    m.d.comb += [counters.clear.eq(1), barrier.restart.eq(1),
                                 gain.restart.eq(1)]
                    m.d.sync += [status["done"].eq(0), fresh_seq.eq(0), issue_seq.eq(0)]
            self._init_field(m, spec, lanes, lane_bits, group_bits, banks, engine, regs, status,
                             init_slot, init_sum, host_index, entry_value)
            with m.State("PREPARE"):
                with m.If(~barrier.busy & ~gain.busy):
                    m.d.sync += [e0.eq(barrier.value), eta.eq(gain.value), issue_group.eq(0),
                                 issuing.eq(1)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += arriving.eq(d["valid"])
                with m.If(arriving):
                    ups = self._decide(m, spec, lanes, units, banks, d, counters, regs,
                                       external, movers)
                    with m.If(movers.any() & ~external):
                        # the later groups in flight saw the old field: squash, update, replay
                        m.d.comb += squash.eq(1)
                        m.d.sync += [pending.eq(movers), moved_up.eq(ups), issuing.eq(0),
                                     retired.eq(d["group"]), retired_seq.eq(d["seq"])]
                        m.next = "FIELD"
                    with m.Elif(last_group):
                        m.d.sync += issuing.eq(0)
                        m.d.comb += [barrier.advance.eq(1), gain.advance.eq(1)]
                        m.next = "SCHEDULE"
            with m.State("FIELD"):
                lowest = Signal(range(max(lanes, 2)))
                for lane in reversed(range(lanes)):
                    with m.If(pending[lane]):
                        m.d.comb += lowest.eq(lane)
                with m.If(pending == 0):
                    with m.If(retired + 1 >= regs["groups"]):
                        m.d.comb += [barrier.advance.eq(1), gain.advance.eq(1)]
                        m.next = "SCHEDULE"
                    with m.Else():
                        m.d.sync += [issue_group.eq(retired + 1), issue_seq.eq(retired_seq + 1),
                                     issuing.eq(1)]
                        m.next = "RUN"
                with m.Else():
                    column = Cat(lowest[:lane_bits], retired[:group_bits]) if lane_bits else \
                        retired[:group_bits]
                    m.d.comb += [engine.start.eq(1), engine.column.eq(column),
                                 engine.dw.eq(Mux(moved_up.bit_select(lowest, 1), delta,
                                                  -delta))]
                    m.d.sync += pending.eq(pending & ~(1 << lowest))
                    m.next = "FIELD_WAIT"
            with m.State("FIELD_WAIT"):
                with m.If(engine.adds_valid):
                    m.d.comb += counters.inc_field_adds.eq(engine.adds)
                    m.next = "FIELD"
            with m.State("SCHEDULE"):
                with m.If(~barrier.busy & ~gain.busy):
                    rise = Signal(signed(spec.barrier_bits + 1))
                    m.d.comb += rise.eq(barrier.value - e0)
                    m.d.comb += [
                        counters.inc_steps.eq(1),
                        counters.inc_barrier_work.eq(Mux(rise > 0, rise * regs["cells"], 0)),
                    ]
                    with m.If(~external):
                        d_eta = Signal(signed(spec.gain_bits + 1))
                        m.d.comb += [d_eta.eq(gain.value - eta),
                                     counters.inc_anneal_work.eq(
                                         (d_eta * regs["loss2"]) << (spec.tilt_shift + 1))]
                    m.d.sync += [e0.eq(barrier.value), eta.eq(gain.value),
                                 remaining.eq(remaining - 1), issue_group.eq(0)]
                    with m.If((remaining == 1) | stop_requested):
                        m.d.sync += [status["busy"].eq(0), status["done"].eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += issuing.eq(1)
                        m.next = "RUN"
        with m.If(squash):
            m.d.sync += [c_valid.eq(0), i_stage.eq(0)]
        return m

    def _init_field(self, m, spec, lanes, lane_bits, group_bits, banks, engine, regs, status,
                    slot, total, host_index, entry_value):
        """FSM states of `init_field`: g = -b, then g += W_m Q[:, m] for every cell m with
        W_m != 0 (the field engine, dw = W_m), then the loss register L2 = sum W (g - b)."""
        g = self.geometry
        lane = slot[:lane_bits] if lane_bits else Const(0, 1)
        group = slot[lane_bits:lane_bits + group_bits]
        last_slot = slot + 1 >= g.slots

        def select(name):
            datas = [banks[name][k][0].data for k in range(lanes)]
            out = Signal.like(datas[0], name=f"init_{name}")
            m.d.comb += out.eq(datas[0])
            for k in range(1, lanes):
                with m.If(lane == k):
                    m.d.comb += out.eq(datas[k])
            return out

        def read(*names):
            for name in names:
                for k in range(lanes):
                    m.d.comb += banks[name][k][0].addr.eq(group)

        with m.State("INIT_BIAS_READ"):
            read("bias")
            m.next = "INIT_BIAS_WRITE"
        with m.State("INIT_BIAS_WRITE"):
            with m.If(lane < lanes):
                m.d.comb += [host_index.eq(slot), entry_value.eq(-select("bias")),
                             engine.host_we.eq(1), engine.host_target.eq(TARGET_FIELD)]
            m.d.sync += slot.eq(Mux(last_slot, 0, slot + 1))
            with m.If(last_slot):
                m.next = "INIT_WEIGHT_READ"
            with m.Else():
                m.next = "INIT_BIAS_READ"
        with m.State("INIT_WEIGHT_READ"):
            read("weight", "valid")
            m.next = "INIT_COLUMN"
        def next_column():
            with m.If(last_slot):
                m.d.sync += [slot.eq(0), total.eq(0)]
                m.next = "INIT_LOSS_READ"
            with m.Else():
                m.d.sync += slot.eq(slot + 1)
                m.next = "INIT_WEIGHT_READ"

        with m.State("INIT_COLUMN"):
            w = select("weight")
            use = (lane < lanes) & select("valid") & (w != 0)
            with m.If(use):
                m.d.comb += [engine.start.eq(1), engine.column.eq(slot[:lane_bits + group_bits]),
                             engine.dw.eq(w)]
                m.next = "INIT_COLUMN_WAIT"
            with m.Else():
                next_column()
        with m.State("INIT_COLUMN_WAIT"):
            with m.If(engine.adds_valid):
                next_column()
        with m.State("INIT_LOSS_READ"):                 # slot counts groups here
            m.d.comb += engine.eval_addr.eq(slot[:group_bits])
            for name in ("weight", "valid", "bias"):
                for k in range(lanes):
                    m.d.comb += banks[name][k][0].addr.eq(slot[:group_bits])
            m.next = "INIT_LOSS_ADD"
        with m.State("INIT_LOSS_ADD"):
            terms = [Mux(banks["valid"][k][0].data, banks["weight"][k][0].data
                         * (engine.eval_field[k] - banks["bias"][k][0].data), 0)
                     for k in range(lanes)]
            new_total = total + sum(terms[1:], terms[0])
            with m.If(slot + 1 >= regs["groups"]):
                m.d.sync += [regs["loss2"].eq(new_total), status["busy"].eq(0),
                             status["done"].eq(1)]
                m.next = "IDLE"
            with m.Else():
                m.d.sync += [total.eq(new_total), slot.eq(slot + 1)]
                m.next = "INIT_LOSS_READ"

    @staticmethod
    def _item_layout(spec, lanes):
        """Bit fields of a group in flight (packed in one signal per pipeline stage)."""
        fields = [("valid", 1, False), ("group", 16, False), ("seq", SEQ_BITS, False)]
        weight_bits = max(spec.weight_bits, 2)
        for lane in range(lanes):
            fields += [(f"w{lane}", weight_bits, True), (f"v{lane}", 1, False),
                       (f"dlu{lane}", spec.dl2_bits, True), (f"dld{lane}", spec.dl2_bits, True),
                       (f"hu{lane}", spec.tilt_bits + 1, True),
                       (f"hd{lane}", spec.tilt_bits + 1, True)]
            if spec.cell_counter_bits:
                fields += [(f"cu{lane}", spec.cell_counter_bits, False),
                           (f"cd{lane}", spec.cell_counter_bits, False)]
        offsets, at = {}, 0
        for name, width, is_signed in fields:
            offsets[name] = (at, width, is_signed)
            at += width
        return {"fields": offsets, "width": at}

    @staticmethod
    def _pack(m, item, values):
        """One signal of exactly the field's width per field (extended as its sign says)."""
        parts = []
        for name, (_, width, is_signed) in item["fields"].items():
            part = Signal(signed(width) if is_signed else unsigned(width), name=f"pack_{name}")
            m.d.comb += part.eq(values[name])
            parts.append(part)
        return Cat(*parts)

    @staticmethod
    def _unpack(item, packed, lanes):
        out = {}
        for name, (at, width, is_signed) in item["fields"].items():
            part = packed[at:at + width]
            out[name] = part.as_signed() if is_signed else part
        return out

    def _decide(self, m, spec, lanes, units, banks, d, counters, regs, external, movers):
        """Outcomes of the arriving group `d`: weights, counters, loss register, movers."""
        g = self.geometry
        evaluations, ups, downs, blocked_n, inadmissible = [], [], [], [], []
        heat_net, heat_abs, loss_change = [], [], []
        moving = []
        for lane in range(lanes):
            unit, w, valid = units[lane], d[f"w{lane}"], d[f"v{lane}"]
            h_up, h_down = d[f"hu{lane}"], d[f"hd{lane}"]
            at_top = w == spec.w_hi
            at_bottom = w == spec.w_lo
            blocked = valid & ((unit.up & at_top) | (unit.down & at_bottom))
            move_up = valid & unit.up & ~at_top
            move_down = valid & unit.down & ~at_bottom
            h = Mux(move_up, h_up, Mux(move_down, h_down, 0))
            released = Signal(signed(spec.tilt_bits + 3), name=f"released_{lane}")
            magnitude = Signal(spec.tilt_bits + 3, name=f"magnitude_{lane}")
            m.d.comb += [released.eq(-2 * h), magnitude.eq(Mux(h < 0, -2 * h, 2 * h))]
            evaluations.append(valid)
            ups.append(move_up)
            downs.append(move_down)
            blocked_n.append(blocked)
            inadmissible.append(valid & unit.inadmissible)
            heat_net.append(released)
            heat_abs.append(magnitude)
            loss_change.append(Mux(move_up, d[f"dlu{lane}"], Mux(move_down, d[f"dld{lane}"], 0)))
            moving.append(move_up | move_down)
            write = banks["weight"][lane][1]
            with m.If(move_up | move_down):
                m.d.comb += [write.addr.eq(d["group"][:g.group_bits]),
                             write.data.eq(Mux(move_up, w + spec.delta, w - spec.delta)),
                             write.en.eq(1)]
            if spec.cell_counter_bits:
                for name, field, moved in (("cell_up", "cu", move_up),
                                           ("cell_down", "cd", move_down)):
                    count = banks[name][lane][1]
                    with m.If(moved):
                        m.d.comb += [count.addr.eq(d["group"][:g.group_bits]),
                                     count.data.eq(d[f"{field}{lane}"] + 1), count.en.eq(1)]
                        with m.If(d[f"{field}{lane}"] == (1 << spec.cell_counter_bits) - 1):
                            m.d.sync += self._cell_overflow.eq(1)

        def total(terms):
            return sum(terms[1:], terms[0])

        m.d.comb += [
            counters.inc_evaluations.eq(total(evaluations)),
            counters.inc_up_moves.eq(total(ups)),
            counters.inc_down_moves.eq(total(downs)),
            counters.inc_blocked_moves.eq(total(blocked_n)),
            counters.inc_inadmissible.eq(total(inadmissible)),
            counters.inc_heat_net.eq(total(heat_net)),
            counters.inc_heat_abs.eq(total(heat_abs)),
            movers.eq(Cat(*moving)),
        ]
        with m.If(~external):
            m.d.sync += regs["loss2"].eq(regs["loss2"] + total(loss_change))
        return Cat(*ups)

    def _memory_write(self, m, region, word, index, running, status, staging, host_index,
                      host_lane, host_bank_addr, entry_value, banks, engine, rngs, barrier,
                      gain):
        """A word written into a memory region: staged, or committing the whole entry."""
        last = words(region.width) - 1
        with m.If(running):
            m.d.sync += status["error_busy_write"].eq(1)
        with m.Elif(word < last):
            for w in range(last):
                with m.If(word == w):
                    m.d.sync += staging[WORD_BITS * w:WORD_BITS * (w + 1)].eq(self._bus["wdata"])
        with m.Elif(word == last):
            m.d.comb += [host_index.eq(index),
                         entry_value.eq(Cat(staging[:WORD_BITS * last], self._bus["wdata"])
                                        if last else self._bus["wdata"])]
            name = region.name
            if name in ENGINE_TARGETS:
                m.d.comb += [engine.host_we.eq(1), engine.host_target.eq(ENGINE_TARGETS[name])]
            elif name in self.lane_banks:
                with m.If(host_lane >= self.geometry.lanes):
                    m.d.sync += status["error_address"].eq(1)
                for lane in range(self.geometry.lanes):
                    with m.If(host_lane == lane):
                        port = banks[name][lane][1]
                        m.d.comb += [port.addr.eq(host_bank_addr), port.data.eq(entry_value),
                                     port.en.eq(1)]
            elif name == "seed":
                with m.If(index >= self.geometry.lanes):
                    m.d.sync += status["error_address"].eq(1)
                for lane in range(self.geometry.lanes):
                    with m.If(index == lane):
                        m.d.comb += [rngs[lane].seed.eq(entry_value), rngs[lane].load.eq(1)]
            elif name in ("barrier_table", "gain_table"):
                unit = barrier if name == "barrier_table" else gain
                m.d.comb += [unit.table_we.eq(1), unit.table_addr.eq(index),
                             unit.table_data.eq(entry_value)]
        with m.Else():
            m.d.sync += status["error_address"].eq(1)     # a word past the entry's words

