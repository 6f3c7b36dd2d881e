"""The pipelined array core: every lane each cycle, a speculative group pipeline.

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

Groups enter R one per cycle (a pipeline, one `group_layout` word per stage); a group that
moves a cell (field mode) makes the later groups in flight stale: they are squashed and
re-issued after the field update, with the same draws (each lane keeps its last DRAW_SLOTS
draws), so the result is the sequential one. `init_field` builds g = QW - b and the loss
register.

Ports: `CoreSignature` (hdl/core_control.py). A write takes one cycle; a read is answered by
``rdata`` with ``rack`` three cycles after its strobe (the bus inputs are registered);
``ready`` is always high. Writes other than ``control`` while a run is in progress, and memory
reads then, are refused (status ``error_busy_write``); unknown addresses and writes to
read-only registers set ``error_address``; a refused access changes nothing.
"""

from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory
from limemu.model.crossing import ZERO_FROM_U

from . import core_bus
from .core_control import CoreBase
from .counter_bank import CounterBank, increment_bits
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
from .regmap import WORD_BITS, has_mh, words
from .schedule_unit import ScheduleUnit

ENGINE_TARGETS = {"field": TARGET_FIELD, "q": TARGET_Q, "column": TARGET_COLUMN,
                  "entry": TARGET_ENTRY}
LANE_BANKS = ("weight", "valid", "diag", "tilt", "bias")
CELL_COUNTER_BANKS = ("cell_up", "cell_down")
SEQ_BITS = 8                 # draw sequence numbers (wrap; in flight is far less than 2**8)
DRAW_SLOT_BITS = 4
DRAW_SLOTS = 1 << DRAW_SLOT_BITS   # kept draws per lane: more than the groups in flight


def group_layout(spec, geometry):
    """A group in flight, as one pipeline stage holds it: whether it is valid, its group and
    draw sequence number, and per lane the weight, valid bit, both dL2, both half tilts (and
    the per-cell counters)."""
    lane = {"weight": signed(max(spec.weight_bits, 2)), "valid": 1,
            "dl_up": signed(spec.dl2_bits), "dl_down": signed(spec.dl2_bits),
            "h_up": signed(spec.tilt_bits + 1), "h_down": signed(spec.tilt_bits + 1)}
    if spec.cell_counter_bits:
        lane.update(count_up=unsigned(spec.cell_counter_bits),
                    count_down=unsigned(spec.cell_counter_bits))
    return data.StructLayout({
        "valid": 1, "group": geometry.group_bits, "seq": SEQ_BITS,
        "lanes": data.ArrayLayout(data.StructLayout(lane), geometry.lanes)})


class ArrayCore(CoreBase):
    """The pipelined core (Geometry.core == "pipelined"): see the module docstring."""

    def __init__(self, spec, geometry):
        super().__init__(spec, geometry)
        self.barrier_width = crossing_barrier_width(spec)
        self.increment_bits = increment_bits(spec, geometry)
        self.lane_banks = LANE_BANKS + (CELL_COUNTER_BANKS if spec.cell_counter_bits else ())
        self.mh = has_mh(spec, geometry)

    def elaborate(self, platform):
        m = Module()
        p = SimpleNamespace()                   # the parts the helpers below share
        self._submodules(m, p)
        self.control(m, p)
        m.d.comb += [self.ready.eq(1), p.engine.cells.eq(p.regs["cells"]),
                     p.engine.groups.eq(p.regs["groups"])]
        self._bus(m, p)
        self._pipeline(m, p)
        if self.mh:
            # a proposal waits for its decision until anything else starts
            m.d.comb += p.ctl.accept_allowed.eq(p.proposal)
            with m.If(p.ctl.start_run | p.ctl.start_init | p.ctl.clear | p.ctl.start_accept):
                m.d.sync += p.proposal.eq(0)
        p.init_slot = Signal(self.geometry.group_bits + self.geometry.lane_bits + 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(p.ctl.start_run):
                    m.d.sync += p.remaining.eq(p.regs["run_steps"])
                    m.next = "PREPARE"
                with m.Elif(p.ctl.start_init):
                    m.d.sync += p.init_slot.eq(0)
                    m.next = "INIT_BIAS_READ"
                if self.mh:
                    with m.Elif(p.ctl.start_accept):
                        m.next = "ACCEPT_DRAW"
            self._init_field(m, p)
            self._run_states(m, p)
            if self.mh:
                self._accept_states(m, p)
        with m.If(p.ctl.clear):
            m.d.sync += [p.fresh_seq.eq(0), p.issue_seq.eq(0)]
        with m.If(p.squash):
            m.d.sync += [p.c_valid.eq(0), p.i_stage.eq(0)]
        return m

    def _submodules(self, m, p):
        """Counters, field engine, schedule units, per lane a generator, a crossing unit and
        its banks (banks[name][lane] = (read port, write port))."""
        spec, g = self.spec, self.geometry
        m.submodules.counters = p.counters = CounterBank(spec, self.increment_bits)
        p.proposal = Signal()                   # a proposal waits for its decision (MH)
        m.submodules.engine = p.engine = FieldEngine(spec, g)
        m.submodules.barrier = p.barrier = ScheduleUnit(
            bits=spec.barrier_bits, table_depth=g.table_depth, kinds=g.schedule_kinds)
        m.submodules.gain = p.gain = ScheduleUnit(
            bits=spec.gain_bits, table_depth=g.table_depth, kinds=g.schedule_kinds)
        p.rngs, p.units = [], []
        for lane in range(g.lanes):
            rng = LaneRng()
            unit = CrossingUnit(frac_bits=spec.barrier_frac_bits,
                                mantissa_bits=spec.mantissa_bits,
                                barrier_width=self.barrier_width)
            m.submodules[f"rng_{lane}"], m.submodules[f"crossing_{lane}"] = rng, unit
            p.rngs.append(rng)
            p.units.append(unit)
        p.banks = {}
        for name in self.lane_banks:
            region = self.regmap[name]
            shape = signed(region.width) if region.signed else unsigned(region.width)
            ports = []
            for lane in range(g.lanes):
                mem = Memory(shape=shape, depth=g.groups_p2, init=[])
                m.submodules[f"{name}_{lane}"] = mem
                ports.append((mem.read_port(), mem.write_port()))
            p.banks[name] = ports
        if self.mh:
            m.submodules.accept_rng = p.accept_rng = LaneRng()
            p.last_move = []                 # per lane: the last step's move (up, down) per group
            for lane in range(g.lanes):
                mem = Memory(shape=2, depth=g.groups_p2, init=[])
                m.submodules[f"last_move_{lane}"] = mem
                p.last_move.append((mem.read_port(), mem.write_port()))

    def _read_banks(self, m, p, names, address):
        """Address the read ports of every lane's banks `names`."""
        for name in names:
            for lane in range(self.geometry.lanes):
                m.d.comb += p.banks[name][lane][0].addr.eq(address)

    # -- the bus ----------------------------------------------------------------------------------
    def _bus(self, m, p):
        """The bus inputs are registered first: the decoder then hangs off flip-flops (timing on
        an FPGA; in Verilator it is evaluated once per cycle, not at every input change)."""
        rmap, g = self.regmap, self.geometry
        p.bus = {name: Signal.like(getattr(self, name), name=f"bus_{name}")
                 for name in ("addr", "wdata", "we", "re")}
        m.d.sync += [p.bus[name].eq(getattr(self, name)) for name in p.bus]
        max_words = max(words(r.width) for r in rmap)
        p.staging = Signal(max(1, (max_words - 1) * WORD_BITS))
        p.decoded = core_bus.decode(rmap, p.bus["addr"])
        # engine / bank / schedule-table host ports default to idle
        p.host_index = Signal(p.bus["addr"].shape().width)
        p.host_lane = p.host_index[:g.lane_bits] if g.lane_bits else Const(0, 1)
        p.host_bank_addr = p.host_index[g.lane_bits:]
        p.entry_value = Signal(max(WORD_BITS, max_words * WORD_BITS))
        m.d.comb += [p.engine.host_index.eq(p.host_index),
                     p.engine.host_wdata.eq(p.entry_value)]
        self._bus_reads(m, p, max_words)
        core_bus.register_writes(m, rmap, p.bus, p.decoded, p.regs, p.ctl,
                                 lambda region, word, index: self._memory_write(
                                     m, p, region, word, index))

    def _bus_reads(self, m, p, max_words):
        """Read pipeline: cycle 0 strobe (decode, memory address), cycle 1 select, cycle 2
        answer."""
        rmap, lanes = self.regmap, self.geometry.lanes
        hit, word_of, index_of, any_hit = p.decoded
        read_sel = Signal(range(len(rmap.regions) + 1))
        read_word = Signal(max(1, (max_words - 1).bit_length()))
        read_lane = Signal(range(self.geometry.lanes_p2))
        read_ok = Signal()
        read_pending = Signal()
        m.d.sync += [read_pending.eq(p.bus["re"]), self.rack.eq(read_pending)]
        with m.If(p.bus["re"]):
            m.d.sync += [read_sel.eq(len(rmap.regions)), read_ok.eq(0)]
            for i, region in enumerate(rmap):
                with m.If(hit[region.name]):
                    m.d.sync += [read_sel.eq(i), read_word.eq(word_of[region.name])]
                    if not region.is_memory:
                        m.d.sync += read_ok.eq(region.access != "wo")
                        if region.access == "wo":
                            m.d.comb += p.ctl.refuse_address.eq(1)
                        continue
                    m.d.comb += p.host_index.eq(index_of[region.name])
                    m.d.sync += read_lane.eq(p.host_lane)
                    refuse_lane = (p.host_lane >= lanes) if region.name in self.lane_banks \
                        else Const(0, 1)
                    ok = (region.access != "wo") & ~refuse_lane
                    m.d.sync += read_ok.eq(ok & ~p.running)
                    with m.If(core_bus.accept_memory_access(m, p.ctl, ok)):
                        if region.name in ENGINE_TARGETS:
                            m.d.comb += [p.engine.host_re.eq(1), p.engine.host_target.eq(
                                ENGINE_TARGETS[region.name])]
                        elif region.name in self.lane_banks:
                            self._read_banks(m, p, [region.name], p.host_bank_addr)
            with m.If(~any_hit):
                m.d.comb += p.ctl.refuse_address.eq(1)

        readable = core_bus.readable_registers(
            p.regs, p.ctl.status, p.barrier, p.gain, p.counters.overflow,
            p.cell_overflow if self.spec.cell_counter_bits else None)
        for name, _, _ in p.counters.layout:
            readable[f"counter_{name}"] = getattr(p.counters, f"value_{name}")
        with m.If(read_pending):
            answer = Signal(max_words * WORD_BITS)
            with m.Switch(read_sel):
                for i, region in enumerate(rmap):
                    with m.Case(i):
                        if not region.is_memory:
                            if region.name in readable:
                                m.d.comb += answer.eq(readable[region.name])
                        elif region.name in ENGINE_TARGETS:
                            m.d.comb += answer.eq(p.engine.host_rdata)
                        elif region.name in self.lane_banks:
                            m.d.comb += answer.eq(lane_select(
                                [p.banks[region.name][k][0].data for k in range(lanes)],
                                read_lane))
            m.d.sync += self.rdata.eq(Mux(read_ok, answer.word_select(read_word, WORD_BITS), 0))

    def _memory_write(self, m, p, region, word, index):
        """A word written into a memory region: staged, or committing the whole entry."""
        core_bus.memory_write(m, p.ctl, p.staging, p.bus["wdata"], region, word,
                              lambda entry: self._commit(m, p, region.name, index, entry))

    def _commit(self, m, p, name, index, entry):
        """The whole entry `entry` of memory `name` at `index`, written."""
        g = self.geometry
        m.d.comb += [p.host_index.eq(index), p.entry_value.eq(entry)]
        if name in ENGINE_TARGETS:
            m.d.comb += [p.engine.host_we.eq(1), p.engine.host_target.eq(ENGINE_TARGETS[name])]
        elif name in self.lane_banks:
            with m.If(p.host_lane >= g.lanes):
                m.d.comb += p.ctl.refuse_address.eq(1)
            for lane in range(g.lanes):
                with m.If(p.host_lane == lane):
                    port = p.banks[name][lane][1]
                    m.d.comb += [port.addr.eq(p.host_bank_addr), port.data.eq(p.entry_value),
                                 port.en.eq(1)]
        elif name == "seed":
            rngs = p.rngs + ([p.accept_rng] if self.mh else [])
            with m.If(index >= len(rngs)):
                m.d.comb += p.ctl.refuse_address.eq(1)
            for lane, rng in enumerate(rngs):
                with m.If(index == lane):
                    m.d.comb += [rng.seed.eq(p.entry_value), rng.load.eq(1)]
        elif name in ("barrier_table", "gain_table"):
            unit = p.barrier if name == "barrier_table" else p.gain
            m.d.comb += [unit.table_we.eq(1), unit.table_addr.eq(index),
                         unit.table_data.eq(p.entry_value)]

    # -- the group pipeline -----------------------------------------------------------------------
    def _pipeline(self, m, p):
        """R (read the banks) -> C (tilts, barriers) -> I (draw, crossing unit) -> the crossing
        unit's stages -> D (decide, in the RUN state)."""
        spec, g = self.spec, self.geometry
        layout = group_layout(spec, g)
        p.remaining = Signal.like(p.regs["run_steps"])
        p.e0, p.eta = Signal(spec.barrier_bits), Signal(spec.gain_bits)
        p.external = p.regs["external_tilt"]
        p.issue_group = Signal(g.group_bits + 1)      # next group to enter R
        p.issue_seq = Signal(SEQ_BITS)                # its draw sequence number
        p.fresh_seq = Signal(SEQ_BITS)                # sequence number of the next new draw
        p.issuing = Signal()                          # R is allowed to take a group
        p.squash = Signal()
        p.c_valid, p.c_group, p.c_seq = Signal(), Signal(g.group_bits), Signal(SEQ_BITS)
        p.i_stage = Signal(layout, name="i_stage")
        delay = [Signal(layout, name=f"delay_{k}") for k in range(CrossingUnit.latency)]
        p.d = delay[-1]

        # R: read the banks of the next group
        take = Signal()
        m.d.comb += take.eq(p.issuing & (p.issue_group < p.regs["groups"]) & ~p.squash)
        with m.If(take):
            m.d.comb += p.engine.eval_addr.eq(p.issue_group[:g.group_bits])
            self._read_banks(m, p, self.lane_banks, p.issue_group[:g.group_bits])
            m.d.sync += [p.issue_group.eq(p.issue_group + 1), p.issue_seq.eq(p.issue_seq + 1)]
        m.d.sync += [p.c_valid.eq(take), p.c_group.eq(p.issue_group[:g.group_bits]),
                     p.c_seq.eq(p.issue_seq)]
        self._tilts(m, p)
        self._draws(m, p)
        m.d.sync += delay[0].eq(Mux(p.i_stage.valid & ~p.squash, p.i_stage.as_value(), 0))
        for k in range(1, len(delay)):
            m.d.sync += delay[k].eq(Mux(p.squash, 0, delay[k - 1].as_value()))

    def _tilts(self, m, p):
        """C: the group's dL2, half tilts and counts from the banks' data, into the I stage."""
        spec, delta, i_stage = self.spec, self.spec.delta, p.i_stage
        eta_shifted = p.eta << spec.tilt_shift
        m.d.sync += [i_stage.valid.eq(p.c_valid & ~p.squash), i_stage.group.eq(p.c_group),
                     i_stage.seq.eq(p.c_seq)]
        for lane in range(self.geometry.lanes):
            bank = {name: ports[lane][0].data for name, ports in p.banks.items()}
            field = p.engine.eval_field[lane]
            up_dl = delta * delta * bank["diag"] + 2 * delta * field
            down_dl = delta * delta * bank["diag"] - 2 * delta * field
            item = i_stage.lanes[lane]
            m.d.sync += [
                item.weight.eq(bank["weight"]), item.valid.eq(bank["valid"]),
                item.dl_up.eq(Mux(p.external, 0, up_dl)),
                item.dl_down.eq(Mux(p.external, 0, down_dl)),
                item.h_up.eq(Mux(p.external, -bank["tilt"], eta_shifted * up_dl)),
                item.h_down.eq(Mux(p.external, bank["tilt"], eta_shifted * down_dl)),
            ]
            if spec.cell_counter_bits:
                m.d.sync += [item.count_up.eq(bank["cell_up"]),
                             item.count_down.eq(bank["cell_down"])]

    def _draws(self, m, p):
        """I: each lane's draw (new, or kept from a squashed issue) into its crossing unit."""
        i = p.i_stage
        i_valid = i.valid & ~p.squash
        new_draw = i_valid & (i.seq == p.fresh_seq)
        with m.If(new_draw):
            m.d.sync += p.fresh_seq.eq(p.fresh_seq + 1)
        for lane, (rng, unit) in enumerate(zip(p.rngs, p.units)):
            slots = [Signal(32, name=f"draw_{lane}_{k}") for k in range(DRAW_SLOTS)]
            kept = Signal(32, name=f"kept_draw_{lane}")
            with m.Switch(i.seq[:DRAW_SLOT_BITS]):
                for k in range(DRAW_SLOTS):
                    with m.Case(k):
                        m.d.comb += kept.eq(slots[k])
                        with m.If(new_draw):
                            m.d.sync += slots[k].eq(rng.draw)
            m.d.comb += [unit.valid_in.eq(i_valid),
                         unit.u.eq(Mux(new_draw, rng.draw, kept)),
                         unit.b_up.eq(p.e0 + i.lanes[lane].h_up),
                         unit.b_down.eq(p.e0 + i.lanes[lane].h_down),
                         rng.next.eq(new_draw)]

    # -- the run ----------------------------------------------------------------------------------
    def _run_states(self, m, p):
        """PREPARE, RUN (decide the arriving groups), FIELD and FIELD_WAIT (the field updates of
        a group's moves), SCHEDULE (the end of a step)."""
        movers, moved_up = Signal(self.geometry.lanes), Signal(self.geometry.lanes)
        p.retired = Signal(self.geometry.group_bits + 1)   # group whose field update is under way
        p.retired_seq = Signal(SEQ_BITS)
        pending = Signal(self.geometry.lanes)
        with m.State("PREPARE"):
            with m.If(~p.barrier.busy & ~p.gain.busy):
                m.d.sync += [p.e0.eq(p.barrier.value), p.eta.eq(p.gain.value),
                             p.issue_group.eq(0), p.issuing.eq(1)]
                m.next = "RUN"
        with m.State("RUN"):
            with m.If(p.d.valid):
                ups = self._decide(m, p, movers)
                with m.If(movers.any() & ~p.external):
                    # the later groups in flight saw the old field: squash, update, replay
                    m.d.comb += p.squash.eq(1)
                    m.d.sync += [pending.eq(movers), moved_up.eq(ups), p.issuing.eq(0),
                                 p.retired.eq(p.d.group), p.retired_seq.eq(p.d.seq)]
                    m.next = "FIELD"
                with m.Elif(p.d.group + 1 >= p.regs["groups"]):
                    m.d.sync += p.issuing.eq(0)
                    self._end_step(m, p)
        self._field_states(m, p, pending, moved_up)
        self._schedule_state(m, p)

    def _end_step(self, m, p):
        m.d.comb += [p.barrier.advance.eq(1), p.gain.advance.eq(1)]
        m.next = "SCHEDULE"

    def _field_states(self, m, p, pending, moved_up):
        """The moves of the retired group, lowest lane first, through the field engine; then the
        groups behind it are issued again (or the step ends)."""
        g = self.geometry
        with m.State("FIELD"):
            lowest = Signal(range(max(g.lanes, 2)))
            for lane in reversed(range(g.lanes)):
                with m.If(pending[lane]):
                    m.d.comb += lowest.eq(lane)
            with m.If(pending == 0):
                with m.If(p.retired + 1 >= p.regs["groups"]):
                    self._end_step(m, p)
                with m.Else():
                    m.d.sync += [p.issue_group.eq(p.retired + 1),
                                 p.issue_seq.eq(p.retired_seq + 1), p.issuing.eq(1)]
                    m.next = "RUN"
            with m.Else():
                column = Cat(lowest[:g.lane_bits], p.retired[:g.group_bits]) if g.lane_bits \
                    else p.retired[:g.group_bits]
                m.d.comb += [p.engine.start.eq(1), p.engine.column.eq(column),
                             p.engine.dw.eq(Mux(moved_up.bit_select(lowest, 1),
                                                self.spec.delta, -self.spec.delta))]
                m.d.sync += pending.eq(pending & ~(1 << lowest))
                m.next = "FIELD_WAIT"
        with m.State("FIELD_WAIT"):
            with m.If(p.engine.adds_valid):
                m.d.comb += p.counters.inc_field_adds.eq(p.engine.adds)
                m.next = "FIELD"

    def _schedule_state(self, m, p):
        """SCHEDULE: the schedules have advanced; count the step and the work of the change."""
        spec, regs, counters = self.spec, p.regs, p.counters
        with m.State("SCHEDULE"):
            with m.If(~p.barrier.busy & ~p.gain.busy):
                core_bus.step_end_counts(m, spec, counters, regs, p.e0, p.eta, p.barrier, p.gain,
                                         external=p.external)
                m.d.sync += [p.e0.eq(p.barrier.value), p.eta.eq(p.gain.value),
                             p.remaining.eq(p.remaining - 1), p.issue_group.eq(0)]
                with m.If((p.remaining == 1) | p.ctl.stop_requested):
                    m.d.comb += p.ctl.finish.eq(1)
                    if self.mh:                   # a step with external tilts: a proposal
                        m.d.sync += p.proposal.eq(p.external)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += p.issuing.eq(1)
                    m.next = "RUN"

    # -- Metropolis-Hastings: the decision on a proposal, the revert --------------------------
    def _accept_states(self, m, p):
        """ACCEPT_DRAW, ACCEPT_WAIT: the acceptance generator's draw through lane 0's crossing
        unit against B+ = max(0, mh_delta) (saturated where the threshold is already 0) and a
        switched-off reverse outcome; accepted: proposals, acceptances and the heat -mh_delta
        are counted. Rejected: REVERT_READ, REVERT_WRITE undo the last step's moves, a group
        a cycle pair, counting them."""
        spec, g, counters = self.spec, self.geometry, p.counters
        delta = p.regs["mh_delta"]
        never = ZERO_FROM_U << spec.barrier_frac_bits
        unit = p.units[0]
        group = Signal(g.group_bits + 1, name="revert_group")
        with m.State("ACCEPT_DRAW"):
            m.d.comb += [unit.valid_in.eq(1), unit.u.eq(p.accept_rng.draw),
                         unit.b_up.eq(Mux(delta < 0, 0, Mux(delta > never, never, delta))),
                         unit.b_down.eq(never), p.accept_rng.next.eq(1)]
            m.next = "ACCEPT_WAIT"
        with m.State("ACCEPT_WAIT"):
            with m.If(unit.valid_out):
                m.d.comb += [p.ctl.decided.eq(1), p.ctl.accepted.eq(unit.up),
                             counters.inc_proposals.eq(1)]
                with m.If(unit.up):
                    m.d.comb += [counters.inc_acceptances.eq(1),
                                 counters.inc_heat_net.eq(-delta),
                                 counters.inc_heat_abs.eq(Mux(delta < 0, -delta, delta)),
                                 p.ctl.finish.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += group.eq(0)
                    m.next = "REVERT_READ"
        with m.State("REVERT_READ"):
            self._read_banks(m, p, ["weight"], group[:g.group_bits])
            for read, _ in p.last_move:
                m.d.comb += read.addr.eq(group[:g.group_bits])
            m.next = "REVERT_WRITE"
        with m.State("REVERT_WRITE"):
            reverted = []
            for lane in range(g.lanes):
                w, moved = p.banks["weight"][lane][0].data, p.last_move[lane][0].data
                write, clear = p.banks["weight"][lane][1], p.last_move[lane][1]
                m.d.comb += [write.addr.eq(group[:g.group_bits]), clear.addr.eq(write.addr),
                             clear.data.eq(0), clear.en.eq(1),
                             write.data.eq(Mux(moved[0], w - spec.delta, w + spec.delta)),
                             write.en.eq(moved.any())]
                reverted.append(moved.any())
            m.d.comb += counters.inc_reverted_moves.eq(sum(reverted[1:], reverted[0]))
            with m.If(group + 1 >= p.regs["groups"]):
                m.d.comb += p.ctl.finish.eq(1)
                m.next = "IDLE"
            with m.Else():
                m.d.sync += group.eq(group + 1)
                m.next = "REVERT_READ"

    def _decide(self, m, p, movers):
        """Outcomes of the arriving group ``p.d``: weights, counters, loss register, `movers`;
        returns the lanes that moved up."""
        counters = p.counters
        outcomes = [self._decide_lane(m, p, lane) for lane in range(self.geometry.lanes)]

        def total(key):
            terms = [outcome[key] for outcome in outcomes]
            return sum(terms[1:], terms[0])

        m.d.comb += [
            counters.inc_evaluations.eq(total("valid")),
            counters.inc_up_moves.eq(total("up")),
            counters.inc_down_moves.eq(total("down")),
            counters.inc_blocked_moves.eq(total("blocked")),
            counters.inc_inadmissible.eq(total("inadmissible")),
            counters.inc_heat_net.eq(total("released")),
            counters.inc_heat_abs.eq(total("magnitude")),
            movers.eq(Cat(*[o["up"] | o["down"] for o in outcomes])),
        ]
        with m.If(~p.external):
            m.d.sync += p.regs["loss2"].eq(p.regs["loss2"] + total("loss_change"))
        return Cat(*[o["up"] for o in outcomes])

    def _decide_lane(self, m, p, lane):
        """One lane of the arriving group: its weight and per-cell counter written, and what it
        adds to the counters."""
        spec, unit, item = self.spec, p.units[lane], p.d.lanes[lane]
        w, valid = item.weight, item.valid
        at_top, at_bottom = w == spec.w_hi, w == spec.w_lo
        move_up = valid & unit.up & ~at_top
        move_down = valid & unit.down & ~at_bottom
        h = Mux(move_up, item.h_up, Mux(move_down, item.h_down, 0))
        released = Signal(signed(spec.tilt_bits + 3), name=f"released_{lane}")
        magnitude = Signal(spec.tilt_bits + 3, name=f"magnitude_{lane}")
        m.d.comb += [released.eq(-2 * h), magnitude.eq(Mux(h < 0, -2 * h, 2 * h))]
        write = p.banks["weight"][lane][1]
        if self.mh:
            last = p.last_move[lane][1]
            m.d.comb += [last.addr.eq(p.d.group), last.data.eq(Cat(move_up, move_down)),
                         last.en.eq(1)]
        with m.If(move_up | move_down):
            m.d.comb += [write.addr.eq(p.d.group),
                         write.data.eq(Mux(move_up, w + spec.delta, w - spec.delta)),
                         write.en.eq(1)]
        if spec.cell_counter_bits:
            for name, count, moved in (("cell_up", item.count_up, move_up),
                                       ("cell_down", item.count_down, move_down)):
                port = p.banks[name][lane][1]
                with m.If(moved):
                    m.d.comb += [port.addr.eq(p.d.group), port.data.eq(count + 1),
                                 port.en.eq(1)]
                    with m.If(count == (1 << spec.cell_counter_bits) - 1):
                        m.d.sync += p.cell_overflow.eq(1)
        return {"valid": valid, "up": move_up, "down": move_down,
                "blocked": valid & ((unit.up & at_top) | (unit.down & at_bottom)),
                "inadmissible": valid & unit.inadmissible,
                "released": released, "magnitude": magnitude,
                "loss_change": Mux(move_up, item.dl_up, Mux(move_down, item.dl_down, 0))}

    # -- init_field -------------------------------------------------------------------------------
    def _init_field(self, m, p):
        """FSM states of `init_field`: g = -b, then g += W_m Q[:, m] for every cell m with
        W_m != 0 (the field engine, dw = W_m), then the loss register L2 = sum W (g - b)."""
        g = self.geometry
        slot = p.init_slot                              # the slot, then the group
        total = Signal(signed(self.spec.loss_bits))
        lane = slot[:g.lane_bits] if g.lane_bits else Const(0, 1)
        group = slot[g.lane_bits:g.lane_bits + g.group_bits]
        last_slot = slot + 1 >= g.slots

        def select(name):
            """The bank `name`'s entry of the slot's lane."""
            datas = [p.banks[name][k][0].data for k in range(g.lanes)]
            out = Signal.like(datas[0], name=f"init_{name}")
            m.d.comb += out.eq(datas[0])
            for k in range(1, g.lanes):
                with m.If(lane == k):
                    m.d.comb += out.eq(datas[k])
            return out

        def next_slot(last, then, after, *resets):
            with m.If(last):
                m.d.sync += [slot.eq(0), *[reset.eq(0) for reset in resets]]
                m.next = after
            with m.Else():
                m.d.sync += slot.eq(slot + 1)
                m.next = then

        with m.State("INIT_BIAS_READ"):
            self._read_banks(m, p, ["bias"], group)
            m.next = "INIT_BIAS_WRITE"
        with m.State("INIT_BIAS_WRITE"):
            with m.If(lane < g.lanes):
                m.d.comb += [p.host_index.eq(slot), p.entry_value.eq(-select("bias")),
                             p.engine.host_we.eq(1), p.engine.host_target.eq(TARGET_FIELD)]
            next_slot(last_slot, "INIT_BIAS_READ", "INIT_WEIGHT_READ")
        with m.State("INIT_WEIGHT_READ"):
            self._read_banks(m, p, ["weight", "valid"], group)
            m.next = "INIT_COLUMN"
        with m.State("INIT_COLUMN"):
            w = select("weight")
            with m.If((lane < g.lanes) & select("valid") & (w != 0)):
                m.d.comb += [p.engine.start.eq(1),
                             p.engine.column.eq(slot[:g.lane_bits + g.group_bits]),
                             p.engine.dw.eq(w)]
                m.next = "INIT_COLUMN_WAIT"
            with m.Else():
                next_slot(last_slot, "INIT_WEIGHT_READ", "INIT_LOSS_READ", total)
        with m.State("INIT_COLUMN_WAIT"):
            with m.If(p.engine.adds_valid):
                next_slot(last_slot, "INIT_WEIGHT_READ", "INIT_LOSS_READ", total)
        with m.State("INIT_LOSS_READ"):                 # slot counts groups here
            m.d.comb += p.engine.eval_addr.eq(slot[:g.group_bits])
            self._read_banks(m, p, ["weight", "valid", "bias"], slot[:g.group_bits])
            m.next = "INIT_LOSS_ADD"
        with m.State("INIT_LOSS_ADD"):
            terms = [Mux(p.banks["valid"][k][0].data, p.banks["weight"][k][0].data
                         * (p.engine.eval_field[k] - p.banks["bias"][k][0].data), 0)
                     for k in range(g.lanes)]
            new_total = total + sum(terms[1:], terms[0])
            with m.If(slot + 1 >= p.regs["groups"]):
                m.d.sync += p.regs["loss2"].eq(new_total)
                m.d.comb += p.ctl.finish.eq(1)
                m.next = "IDLE"
            with m.Else():
                m.d.sync += [total.eq(new_total), slot.eq(slot + 1)]
                m.next = "INIT_LOSS_READ"
