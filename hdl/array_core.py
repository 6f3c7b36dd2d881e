"""The LIM synapse array core: lanes, field engine, schedules, counters and the host bus.

Built from a Spec (widths, formats) and a Geometry (capacities); the run-time configuration
(problem, weights, schedules, seeds) is loaded by the host through the register map of
hdl/regmap.py. What happens in a step is python_model/reference.py, cycle by cycle:

    for each group r (slots r * lanes .. r * lanes + lanes - 1, in update order):
        READ    the lanes' weight, valid bit, Q_nn, tilt and field at bank address r
        CALC    dL2 = delta^2 Q_nn +- 2 delta g; half tilts h = eta dL2 << shift (or the
                host's tilt); barriers E0 + h
        ISSUE   every lane draws (idle lanes too) and feeds its crossing unit
        DECIDE  (after the crossing latency) move, block or stay; write weights; count
        FIELD   for each lane that moved: the field engine applies g += dw Q[:, m]
    at the end of the step: both schedules advance; barrier and annealing work are counted.

Bus: ``addr``/``wdata``/``we`` write a word in one cycle; ``addr``/``re`` read one, answered
by ``rdata`` with ``rack`` two cycles later. Writes other than ``control`` while a run is in
progress, and memory reads then, are refused (status ``error_busy``); unknown addresses and
writes to read-only registers set ``error_address``; a refused access changes nothing.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from python_model.errors import require

from .counter_bank import INCREMENT_BITS, CounterBank
from .crossing_unit import CrossingUnit, crossing_barrier_width
from .field_engine import TARGET_COLUMN, TARGET_ENTRY, TARGET_FIELD, TARGET_Q, FieldEngine
from .lane_rng import LaneRng
from .regmap import CONTROL, MAGIC, STATUS, VERSION, WORD_BITS, RegisterMap, words
from .schedule_unit import ScheduleUnit

ENGINE_TARGETS = {"field": TARGET_FIELD, "q": TARGET_Q, "column": TARGET_COLUMN,
                  "entry": TARGET_ENTRY}
LANE_BANKS = ("weight", "valid", "diag", "tilt")


class ArrayCore(wiring.Component):
    """Ports: the bus (``addr``, ``wdata``, ``we``, ``re``, ``rdata``, ``rack``) and
    ``busy``/``done``/``error`` for LEDs and testbenches."""

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
                                                      table_depth=g.table_depth)
        m.submodules.gain = gain = ScheduleUnit(bits=spec.gain_bits, table_depth=g.table_depth)
        rngs, units = [], []
        for lane in range(lanes):
            rng = LaneRng()
            unit = CrossingUnit(frac_bits=spec.barrier_frac_bits,
                                mantissa_bits=spec.mantissa_bits,
                                barrier_width=self.barrier_width)
            m.submodules[f"rng_{lane}"], m.submodules[f"crossing_{lane}"] = rng, unit
            rngs.append(rng)
            units.append(unit)

        banks = {}
        for name in LANE_BANKS:
            region = rmap[name]
            shape = signed(region.width) if region.signed else unsigned(region.width)
            ports = []
            for lane in range(lanes):
                mem = Memory(shape=shape, depth=g.groups_p2, init=[])
                m.submodules[f"{name}_{lane}"] = mem
                ports.append((mem.read_port(), mem.write_port()))
            banks[name] = ports

        # -- registers --------------------------------------------------------------------------
        regs = {}
        for region in rmap:
            if not region.is_memory and region.access == "rw":
                shape = signed(region.width) if region.signed else unsigned(region.width)
                regs[region.name] = Signal(shape, name=f"reg_{region.name}")
        status = {name: Signal(name=f"status_{name}") for name in STATUS}
        m.d.comb += [self.busy.eq(status["busy"]), self.done.eq(status["done"]),
                     self.error.eq(status["error_busy_write"] | status["error_address"]
                                   | status["error_config"])]
        for unit_name, unit in (("barrier", barrier), ("gain", gain)):
            for port_name, port in unit.signature.members.items():
                if port_name.startswith("cfg_"):
                    m.d.comb += getattr(unit, port_name).eq(
                        regs[f"{unit_name}_{port_name[4:]}"])
        readable = dict(regs)
        readable.update(magic=Const(MAGIC, 32), version=Const(VERSION, 32),
                        status=Cat(*[status[n] for n in STATUS]), step=barrier.step,
                        barrier_now=barrier.value, gain_now=gain.value,
                        overflow=counters.overflow)
        for name, _, _ in counters.layout:
            readable[f"counter_{name}"] = getattr(counters, f"value_{name}")
        m.d.comb += [engine.cells.eq(regs["cells"]), engine.groups.eq(regs["groups"])]

        # -- bus: decode ------------------------------------------------------------------------
        max_words = max(words(r.width) for r in rmap)
        staging = Signal(max(1, (max_words - 1) * WORD_BITS))
        hit = {}
        word_of = {}
        index_of = {}
        for region in rmap:
            offset = self.addr - region.base
            hit[region.name] = (self.addr >= region.base) & (self.addr < region.base + region.size)
            if region.is_memory:
                stride_bits = (region.stride - 1).bit_length()
                word_of[region.name] = offset[:stride_bits] if stride_bits else Const(0, 1)
                index_of[region.name] = offset[stride_bits:]
            else:
                word_of[region.name] = offset[:max(1, (region.size - 1).bit_length())]
        any_hit = Signal()
        m.d.comb += any_hit.eq(Cat(*hit.values()).any())
        running = status["busy"]

        # read pipeline: cycle 0 strobe, cycle 1 select, cycle 2 answer
        read_sel = Signal(range(len(rmap.regions) + 1))
        read_word = Signal(max(1, (max_words - 1).bit_length()))
        read_lane = Signal(range(g.lanes_p2))
        read_ok = Signal()
        read_pending = Signal()
        m.d.sync += [read_pending.eq(self.re), self.rack.eq(read_pending)]
        names = list(rmap.regions)

        # engine / bank / schedule-table host ports default to idle
        host_index = Signal(self.addr.shape().width)
        host_lane = host_index[:lane_bits] if lane_bits else Const(0, 1)
        host_bank_addr = host_index[lane_bits:]
        entry_value = Signal(max(WORD_BITS, max_words * WORD_BITS))
        m.d.comb += [engine.host_index.eq(host_index), engine.host_wdata.eq(entry_value)]

        with m.If(self.re):
            m.d.sync += [read_sel.eq(len(names)), read_ok.eq(0)]
            for i, region in enumerate(rmap):
                with m.If(hit[region.name]):
                    m.d.sync += [read_sel.eq(i), read_word.eq(word_of[region.name])]
                    if region.is_memory:
                        m.d.comb += host_index.eq(index_of[region.name])
                        m.d.sync += read_lane.eq(host_lane)
                        refuse_lane = (host_lane >= lanes) if region.name in LANE_BANKS else \
                            Const(0, 1)
                        ok = ~running & (region.access != "wo") & ~refuse_lane
                        m.d.sync += read_ok.eq(ok)
                        with m.If(ok):
                            if region.name in ENGINE_TARGETS:
                                m.d.comb += [engine.host_re.eq(1), engine.host_target.eq(
                                    ENGINE_TARGETS[region.name])]
                            elif region.name in LANE_BANKS:
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
                        elif region.name in LANE_BANKS:
                            datas = [banks[region.name][lane][0].data for lane in range(lanes)]
                            selected = Cat(*[d.as_unsigned() for d in datas]).word_select(
                                read_lane, region.width) if lanes > 1 else datas[0]
                            m.d.comb += answer.eq(selected)
            m.d.sync += self.rdata.eq(Mux(read_ok, answer.word_select(read_word, WORD_BITS), 0))

        # writes
        control = {name: Signal(name=f"control_{name}") for name in CONTROL}
        with m.If(self.we):
            for region in rmap:
                with m.If(hit[region.name]):
                    if region.name == "control":
                        for name, bit in CONTROL.items():
                            m.d.comb += control[name].eq(self.wdata[bit])
                    elif region.access == "ro":
                        m.d.sync += status["error_address"].eq(1)
                    elif not region.is_memory:
                        with m.If(running):
                            m.d.sync += status["error_busy_write"].eq(1)
                        with m.Else():
                            reg = regs[region.name]
                            for w in range(words(region.width)):
                                with m.If(word_of[region.name] == w):
                                    top = min(region.width, WORD_BITS * (w + 1))
                                    m.d.sync += reg[WORD_BITS * w:top].eq(self.wdata)
                    else:
                        self._memory_write(m, region, word_of[region.name],
                                           index_of[region.name], running, status, staging,
                                           host_index, host_lane, host_bank_addr, entry_value,
                                           banks, engine, rngs, barrier, gain)
            with m.If(~any_hit):
                m.d.sync += status["error_address"].eq(1)

        # -- the run ----------------------------------------------------------------------------
        group = Signal(group_bits + 1)
        remaining = Signal(48)
        stop_requested = Signal()
        e0 = Signal(spec.barrier_bits)
        eta = Signal(spec.gain_bits)
        external = regs["external_tilt"]
        w_reg = [Signal(signed(rmap["weight"].width), name=f"w_{lane}") for lane in range(lanes)]
        valid_reg = [Signal(name=f"valid_{lane}") for lane in range(lanes)]
        dl_up = [Signal(signed(spec.dl2_bits), name=f"dl_up_{lane}") for lane in range(lanes)]
        dl_down = [Signal(signed(spec.dl2_bits), name=f"dl_down_{lane}") for lane in range(lanes)]
        h_up = [Signal(signed(spec.tilt_bits + 1), name=f"h_up_{lane}") for lane in range(lanes)]
        h_down = [Signal(signed(spec.tilt_bits + 1), name=f"h_down_{lane}")
                  for lane in range(lanes)]
        pending = Signal(lanes)
        moved_up = Signal(lanes)

        with m.If(control["clear_errors"]):
            for name in ("error_busy_write", "error_address", "error_config"):
                m.d.sync += status[name].eq(0)
        with m.If(control["stop"] & running):
            m.d.sync += stop_requested.eq(1)

        for lane in range(lanes):
            m.d.comb += [units[lane].b_up.eq(e0 + h_up[lane]),
                         units[lane].b_down.eq(e0 + h_down[lane]),
                         units[lane].u.eq(rngs[lane].draw)]

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
                                     remaining.eq(regs["run_steps"]), stop_requested.eq(0),
                                     group.eq(0)]
                        m.next = "PREPARE"
                with m.Elif(control["clear"]):
                    m.d.comb += [counters.clear.eq(1), barrier.restart.eq(1),
                                 gain.restart.eq(1)]
                    m.d.sync += status["done"].eq(0)
            with m.State("PREPARE"):
                with m.If(~barrier.busy & ~gain.busy):
                    m.d.sync += [e0.eq(barrier.value), eta.eq(gain.value)]
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += engine.eval_addr.eq(group[:group_bits])
                for name in LANE_BANKS:
                    for lane in range(lanes):
                        m.d.comb += banks[name][lane][0].addr.eq(group[:group_bits])
                m.next = "CALC"
            with m.State("CALC"):
                eta_shifted = eta << spec.tilt_shift
                for lane in range(lanes):
                    q_nn = banks["diag"][lane][0].data
                    field = engine.eval_field[lane]
                    up_dl = delta * delta * q_nn + 2 * delta * field
                    down_dl = delta * delta * q_nn - 2 * delta * field
                    tilt = banks["tilt"][lane][0].data
                    m.d.sync += [w_reg[lane].eq(banks["weight"][lane][0].data),
                                 valid_reg[lane].eq(banks["valid"][lane][0].data)]
                    with m.If(external):
                        m.d.sync += [dl_up[lane].eq(0), dl_down[lane].eq(0),
                                     h_up[lane].eq(-tilt), h_down[lane].eq(tilt)]
                    with m.Else():
                        m.d.sync += [dl_up[lane].eq(up_dl), dl_down[lane].eq(down_dl),
                                     h_up[lane].eq(eta_shifted * up_dl),
                                     h_down[lane].eq(eta_shifted * down_dl)]
                m.next = "ISSUE"
            with m.State("ISSUE"):
                for lane in range(lanes):
                    m.d.comb += [units[lane].valid_in.eq(1), rngs[lane].next.eq(1)]
                m.next = "DECIDE"
            with m.State("DECIDE"):                    # waits for the crossing units
                with m.If(units[0].valid_out):
                    self._decide(m, spec, lanes, units, banks, group, w_reg, valid_reg, dl_up,
                                 dl_down, h_up, h_down, counters, regs, external, pending,
                                 moved_up)
                    m.next = "FIELD"
            with m.State("FIELD"):
                lowest = Signal(range(max(lanes, 2)))
                for lane in reversed(range(lanes)):
                    with m.If(pending[lane]):
                        m.d.comb += lowest.eq(lane)
                with m.If(pending == 0):
                    m.next = "NEXT"
                with m.Else():
                    column = Cat(lowest[:lane_bits], group[:group_bits]) if lane_bits else \
                        group[:group_bits]
                    m.d.comb += [engine.start.eq(1), engine.column.eq(column),
                                 engine.up.eq(moved_up.bit_select(lowest, 1))]
                    m.d.sync += pending.eq(pending & ~(1 << lowest))
                    m.next = "FIELD_WAIT"
            with m.State("FIELD_WAIT"):
                with m.If(engine.adds_valid):
                    m.d.comb += counters.inc_field_adds.eq(engine.adds)
                    m.next = "FIELD"
            with m.State("NEXT"):
                with m.If(group + 1 >= regs["groups"]):
                    m.d.comb += [barrier.advance.eq(1), gain.advance.eq(1)]
                    m.next = "SCHEDULE"
                with m.Else():
                    m.d.sync += group.eq(group + 1)
                    m.next = "READ"
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
                                 remaining.eq(remaining - 1), group.eq(0)]
                    with m.If((remaining == 1) | stop_requested):
                        m.d.sync += [status["busy"].eq(0), status["done"].eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "READ"
        return m

    def _decide(self, m, spec, lanes, units, banks, group, w_reg, valid_reg, dl_up, dl_down,
                h_up, h_down, counters, regs, external, pending, moved_up):
        """Outcomes of a group: weights, counters, loss register and the movers' mask."""
        g = self.geometry
        evaluations, ups, downs, blocked_n, inadmissible = [], [], [], [], []
        heat_net, heat_abs, loss_change = [], [], []
        movers, directions = [], []
        for lane in range(lanes):
            unit, w, valid = units[lane], w_reg[lane], valid_reg[lane]
            at_top = w == spec.w_hi
            at_bottom = w == spec.w_lo
            blocked = valid & ((unit.up & at_top) | (unit.down & at_bottom))
            move_up = valid & unit.up & ~at_top
            move_down = valid & unit.down & ~at_bottom
            h = Mux(move_up, h_up[lane], Mux(move_down, h_down[lane], 0))
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
            loss_change.append(Mux(move_up, dl_up[lane], Mux(move_down, dl_down[lane], 0)))
            movers.append(move_up | move_down)
            directions.append(move_up)
            write = banks["weight"][lane][1]
            with m.If(move_up | move_down):
                m.d.comb += [write.addr.eq(group[:g.group_bits]),
                             write.data.eq(Mux(move_up, w + spec.delta, w - spec.delta)),
                             write.en.eq(1)]

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
        ]
        with m.If(~external):
            m.d.sync += [regs["loss2"].eq(regs["loss2"] + total(loss_change)),
                         pending.eq(Cat(*movers)), moved_up.eq(Cat(*directions))]

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
                    m.d.sync += staging[WORD_BITS * w:WORD_BITS * (w + 1)].eq(self.wdata)
        with m.Elif(word == last):
            m.d.comb += [host_index.eq(index),
                         entry_value.eq(Cat(staging[:WORD_BITS * last], self.wdata)
                                        if last else self.wdata)]
            name = region.name
            if name in ENGINE_TARGETS:
                m.d.comb += [engine.host_we.eq(1), engine.host_target.eq(ENGINE_TARGETS[name])]
            elif name in LANE_BANKS:
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

