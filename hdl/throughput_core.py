"""The throughput core: many lanes, Q banked by lane, groups streamed under an exact hazard rule.

The same array as hdl/array_core.py (the results of python_model/reference.py bit for bit, the
register map of hdl/regmap.py with Geometry.core == "throughput"), built for evaluations per
second on an FPGA of a few hundred block RAMs:

* a lane per cell of a group (hdl/throughput_lane.py), a new group every cycle, no stall
  inside the lanes;
* the field and Q banked by lane (hdl/banked_field.py): a move's column is applied in all banks
  at once, one row a cycle, while later groups keep streaming;
* an exact hazard rule with speculation: the host marks the boundaries (``group_wait``), the
  groups with a cell coupled to a cell of an earlier group since the last boundary (in colour
  order: the first group of each colour class). A boundary issues once every decided move has
  landed in the field, betting that the groups still in flight move nothing; when one of them
  moves a cell, the oldest boundary issued after it and every later group are cancelled
  (decisions dropped, draws given back to be taken again: ``_cancel``, ReplayRng) and issued
  again once the move has landed. Every other group reads fields that no pending move can
  change. The results are those of waiting, bit for bit. The first group of a step issues on
  a quiet core (the schedules advance between steps);
* the heat counted per step: every move's heat is -2 eta dL2 << shift with eta constant over a
  step, so the core sums dL2 and |dL2| of the step's moves (adder trees, hdl/adder_tree.py) and
  multiplies once at the end of the step; the loss register moves by the same sum.

A step: groups issue (R: the banks of the group; the lanes' pipelines), decisions come out
LANE_LATENCY cycles later (weights written, counts added, movers queued for the field
engine), and when the last group has decided and every move has landed, the schedules advance
and the step's counts (steps, evaluations = the run's cells, heat, barrier and annealing work)
are added. ``run_cycles`` counts the cycles of runs (cleared by ``clear``).

The host loads it as the other cores, plus ``column``/``qrow`` (Q as banked rows) and
``group_wait``; it has neither external tilts (a start with ``external_tilt`` set is refused,
``error_config``) nor per-cell counters. Bus: as ArrayCore (registered inputs; a read answers
three cycles after its strobe; ``ready`` always high).
"""

from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from limemu.model.counters import counter_layout
from limemu.model.errors import require

from . import core_bus
from .adder_tree import pipelined_sum, tree_latency
from .banked_field import TARGET_COLUMN, TARGET_FIELD, TARGET_ROW, BankedField
from .core_control import CoreBase
from .counter_bank import CounterBank, increment_bits
from .lane_rng import REPLAY_DEPTH, ReplayRng
from .regmap import RUN_CYCLES_BITS, WORD_BITS, words
from .schedule_unit import ScheduleUnit
from .throughput_lane import BARRIER_STAGES, LANE_LATENCY, ThroughputLane, mantissa_roms

FIELD_TARGETS = {"field": TARGET_FIELD, "column": TARGET_COLUMN, "qrow": TARGET_ROW}
LANE_BANKS = ("weight", "valid", "diag", "bias")
MOVER_QUEUE_DEPTH = 32
#: cycles a group spends between issue and its registered decision
ISSUE_TO_DECISION = 1 + LANE_LATENCY
#: the age (index in ``flight``) at which a group's lanes take their draws
DRAW_AGE = BARRIER_STAGES
# the draws given back and not yet taken again never exceed the groups in flight past the draw
assert ISSUE_TO_DECISION - DRAW_AGE < REPLAY_DEPTH


class ThroughputCore(CoreBase):
    """Ports: those of every core (hdl/core_control.py's CoreSignature)."""

    def __init__(self, spec, geometry):
        require(geometry.core == "throughput", "geometry.core", geometry.core,
                "must be 'throughput' for ThroughputCore")
        super().__init__(spec, geometry)
        self.step_sum_bits = spec.dl2_bits + geometry.lanes.bit_length() + \
            (geometry.groups_p2 - 1).bit_length() + 1
        self.increment_bits = self._increment_bits()

    def _increment_bits(self):
        """increment_bits with the heat added once per step: the gain times the step's sums."""
        spec, g = self.spec, self.geometry
        bits = increment_bits(spec, g)
        heat = spec.gain_bits + spec.tilt_shift + self.step_sum_bits + 3
        bits.update(heat_net=heat, heat_abs=heat,
                    field_adds=max(g.adds_bits, spec.cells.bit_length()) + 2)
        for name, width, _ in counter_layout(spec):
            require(bits[name] <= width, "tilt_bits", spec.tilt_bits,
                    f"the throughput core adds up to {bits[name]} bits to counter {name} "
                    f"at once, wider than its {width} bits")
        return bits

    def elaborate(self, platform):
        spec, g = self.spec, self.geometry
        m = Module()
        self.m = m
        m.submodules.counters = self.counters = CounterBank(spec, self.increment_bits)
        m.submodules.field = self.field = BankedField(spec, g)
        self.barrier = ScheduleUnit(bits=spec.barrier_bits, table_depth=g.table_depth,
                                    kinds=g.schedule_kinds)
        self.gain = ScheduleUnit(bits=spec.gain_bits, table_depth=g.table_depth,
                                 kinds=g.schedule_kinds)
        m.submodules.barrier, m.submodules.gain = self.barrier, self.gain
        m.submodules.movers = self.movers = SyncFIFO(
            width=g.group_bits + 2 * g.lanes, depth=MOVER_QUEUE_DEPTH)
        self.lanes, self.rngs = [], []
        for lane in range(g.lanes):
            self.lanes.append(ThroughputLane(spec))
            self.rngs.append(ReplayRng())
            m.submodules[f"lane_{lane}"] = self.lanes[-1]
            m.submodules[f"rng_{lane}"] = self.rngs[-1]
        mantissa_roms(m, spec, self.lanes)
        self.banks = self._lane_banks(m)

        p = SimpleNamespace(barrier=self.barrier, gain=self.gain, counters=self.counters)
        self.control(m, p)
        self.regs, self.ctl, self.running = p.regs, p.ctl, p.running
        regs, ctl = p.regs, p.ctl
        m.d.comb += [self.ready.eq(1), self.field.cells.eq(regs["cells"]),
                     ctl.start_allowed.eq(~regs["external_tilt"])]   # no external tilts here
        self.run_cycles = Signal(RUN_CYCLES_BITS)
        with m.If(ctl.clear):
            m.d.sync += self.run_cycles.eq(0)
        self.group_wait = Signal(g.groups_p2)
        self._declare_run_state()
        self._bus(m)
        self._issue(m)
        self._decide(m)
        self._control(m)
        return m

    # -- per-lane banks: one wide memory per kind, a lane's bits written alone ------------------
    def _lane_banks(self, m):
        banks = {}
        for name in LANE_BANKS:
            region = self.regmap[name]
            mem = Memory(shape=unsigned(region.width * self.geometry.lanes),
                         depth=self.geometry.groups_p2, init=[])
            m.submodules[f"{name}_bank"] = mem
            banks[name] = {"read": mem.read_port(), "write": mem.write_port(
                granularity=region.width), "width": region.width, "signed": region.signed}
        return banks

    def bank_lane(self, name, lane):
        """Lane `lane`'s entry in the data of bank `name`'s read port, with its sign."""
        bank = self.banks[name]
        width = bank["width"]
        raw = bank["read"].data[lane * width:(lane + 1) * width]
        return raw.as_signed() if bank["signed"] else raw

    def _declare_run_state(self):
        g, spec = self.geometry, self.spec
        self.in_run = Signal()                          # a run (not init_field) is under way
        self.issuing = Signal()                         # the RUN state
        self.next_group = Signal(g.group_bits + 1)
        self.issue = Signal()
        self.flight = Signal(ISSUE_TO_DECISION)         # issued groups, by age
        self.flight_boundary = Signal(ISSUE_TO_DECISION)    # ... those marked in group_wait
        self.advanced = Signal()                        # the schedules advanced this step
        self.moved = Signal()                           # the deciding group moves a cell
        self.flight_group = [Signal(g.group_bits, name=f"flight_group_{k}")
                             for k in range(ISSUE_TO_DECISION)]
        self.e0 = Signal(spec.barrier_bits)
        self.eta = Signal(spec.gain_bits)
        self.step_dl2 = Signal(signed(self.step_sum_bits))       # sums over the step's moves
        self.step_abs_dl2 = Signal(self.step_sum_bits)
        self.tree_flight = Signal(tree_latency(g.lanes) + 1)
        self.init_group = Signal(g.group_bits + 1)
        self.init_lane = Signal(range(g.lanes + 1))
        self.init_total = Signal(signed(spec.loss_bits))
        self.init_mover = {"valid": Signal(), "group": Signal(g.group_bits),
                           "mask": Signal(g.lanes),
                           "dw": [Signal(signed(self.field.dw_bits), name=f"init_dw_{k}")
                                  for k in range(g.lanes)]}

    # -- issue: one group a cycle, boundaries speculative ------------------------------------
    def _issue(self, m):
        g, regs = self.geometry, self.regs
        field = self.field
        landed = ~field.eval_stale & (self.movers.level == 0)
        self.quiet = landed & ~self.flight.any()
        must_wait = self.group_wait.bit_select(self.next_group[:g.group_bits], 1)
        room = self.movers.level <= MOVER_QUEUE_DEPTH - ISSUE_TO_DECISION - 1
        m.d.comb += self.issue.eq(self.issuing & (self.next_group < regs["groups"]) & room
                                  & (~must_wait | landed))
        address = self.next_group[:g.group_bits]
        with m.If(self.issue):
            m.d.comb += field.eval_addr.eq(address)
            for bank in self.banks.values():
                m.d.comb += bank["read"].addr.eq(address)
            m.d.sync += self.next_group.eq(self.next_group + 1)
        draw_cancelled, draws_given_back = self._cancel(m, must_wait, address)
        m.d.sync += self.flight_group[0].eq(address)
        m.d.sync += [self.flight_group[k].eq(self.flight_group[k - 1])
                     for k in range(1, ISSUE_TO_DECISION)]
        s1_valid = self.flight[0]
        eta_shifted = self.eta << self.spec.tilt_shift
        for lane, (unit, rng) in enumerate(zip(self.lanes, self.rngs)):
            m.d.comb += [unit.group_valid.eq(s1_valid), unit.field.eq(field.eval_field[lane]),
                         unit.weight.eq(self.bank_lane("weight", lane)),
                         unit.valid.eq(self.bank_lane("valid", lane)),
                         unit.diag.eq(self.bank_lane("diag", lane)),
                         unit.e0.eq(self.e0), unit.eta_shifted.eq(eta_shifted),
                         unit.draw.eq(rng.draw),
                         rng.take.eq(unit.next_draw & self.flight[DRAW_AGE] & ~draw_cancelled),
                         rng.undo.eq(draws_given_back)]

    def _cancel(self, m, must_wait, address):
        """The groups in flight, shifted by one cycle; when the deciding group moves a cell,
        the oldest boundary issued after it and every later group are cancelled: they read
        fields the move changes. The next issue is that boundary again (it waits until the move
        has landed), and the cancelled groups' draws go back to the generators, to be taken
        again in the same order. Returns whether the group drawing now is cancelled (its draw
        is not taken) and the number of draws given back."""
        g, depth = self.geometry, ISSUE_TO_DECISION
        shifted = Cat(self.issue, self.flight[:-1])
        boundary = Cat(self.issue & must_wait, self.flight_boundary[:-1])
        groups = [address] + self.flight_group[:-1]
        kill = Signal(depth)
        restart = Signal(g.group_bits)
        for age in range(depth):          # the oldest boundary wins (the last assignment)
            with m.If(shifted[age] & boundary[age]):
                m.d.comb += [kill.eq((1 << (age + 1)) - 1), restart.eq(groups[age])]
        self.squash = squash = Signal()
        m.d.comb += squash.eq(self.moved & (kill != 0))
        # the cancelled groups that took their draws (ages past the draw, shifted)
        drawn = sum((kill[age] & shifted[age] for age in range(DRAW_AGE + 2, depth)),
                    Const(0, range(depth + 1)))
        m.d.sync += [self.flight.eq(shifted), self.flight_boundary.eq(boundary)]
        with m.If(squash):
            m.d.sync += [self.flight.eq(shifted & ~kill), self.flight_boundary.eq(boundary & ~kill),
                         self.next_group.eq(restart)]
        return squash & kill[DRAW_AGE + 1], Mux(squash, drawn, 0)

    # -- decisions: weights, counts, movers ----------------------------------------------------
    def _decide(self, m):
        g, spec, lanes = self.geometry, self.spec, self.lanes
        decided = self.flight[-1]                   # the lanes' decision, unless cancelled
        group = self.flight_group[-1]
        ups = Cat(*[u.move_up for u in lanes])
        moves = Cat(*[(u.move_up | u.move_down) & decided for u in lanes])
        write = self.banks["weight"]["write"]
        with m.If(decided):
            m.d.comb += [write.addr.eq(group), write.en.eq(moves),
                         write.data.eq(Cat(*[u.new_weight for u in lanes]))]
        m.d.comb += self.moved.eq(decided & (moves != 0))
        decided_movers = Cat(group, moves, ups)
        m.d.comb += self.movers.w_data.eq(decided_movers)
        counters = self.counters
        for name, bit in (("up_moves", "move_up"), ("down_moves", "move_down"),
                          ("blocked_moves", "blocked"), ("inadmissible", "inadmissible")):
            total = pipelined_sum(m, [getattr(u, bit) & decided for u in lanes], f"sum_{name}")
            m.d.comb += getattr(counters, f"inc_{name}").eq(total)
        dl2s = [Mux(decided, u.dl2, 0) for u in lanes]
        dl2 = pipelined_sum(m, dl2s, "sum_dl2")
        abs_dl2 = pipelined_sum(m, [Mux(d < 0, -d, d)[:spec.dl2_bits] for d in dl2s],
                                "sum_abs_dl2")
        m.d.sync += self.tree_flight.eq(Cat(decided, self.tree_flight[:-1]))
        self.step_increment = (dl2, abs_dl2)
        with m.If(self.in_run & self.field.adds_valid):
            m.d.comb += counters.inc_field_adds.eq(self.field.adds)
        # the field engine takes the movers while a run is on, init_field's otherwise: a
        # group's movers go straight to it when the queue is empty (and into the queue unless
        # it takes them at once), else they queue behind the others
        bypass = self.movers.level == 0
        entry = Mux(bypass, decided_movers, self.movers.r_data)
        group_bits = g.group_bits
        queued_ups = entry[group_bits + g.lanes:]
        init = self.init_mover
        m.d.comb += self.movers.w_en.eq(self.moved & ~(bypass & self.in_run
                                                       & self.field.mover_ready))
        with m.If(self.in_run):
            m.d.comb += [self.field.mover_valid.eq(Mux(bypass, self.moved, self.movers.r_rdy)),
                         self.field.mover_group.eq(entry[:group_bits]),
                         self.field.mover_mask.eq(entry[group_bits:group_bits + g.lanes]),
                         self.movers.r_en.eq(self.field.mover_ready & ~bypass)]
            for lane in range(g.lanes):
                m.d.comb += self.field.mover_dw[lane].eq(
                    Mux(queued_ups[lane], spec.delta, -spec.delta))
        with m.Else():
            m.d.comb += [self.field.mover_valid.eq(init["valid"]),
                         self.field.mover_group.eq(init["group"]),
                         self.field.mover_mask.eq(init["mask"])]
            for lane in range(g.lanes):
                m.d.comb += self.field.mover_dw[lane].eq(init["dw"][lane])

    # -- control: the run, the end of a step, init_field ---------------------------------------
    def _control(self, m):
        regs = self.regs
        self.remaining = Signal(48)
        with m.If(self.in_run):
            m.d.sync += self.run_cycles.eq(self.run_cycles + 1)
        dl2, abs_dl2 = self.step_increment
        with m.FSM():
            with m.State("IDLE"):
                self._idle(m)
            with m.State("PREPARE"):
                m.d.comb += self.in_run.eq(1)
                with m.If(~self.barrier.busy & ~self.gain.busy):
                    m.d.sync += [self.e0.eq(self.barrier.value), self.eta.eq(self.gain.value),
                                 self.next_group.eq(0), self.advanced.eq(0)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.in_run.eq(1), self.issuing.eq(1)]
                m.d.sync += [self.step_dl2.eq(self.step_dl2 + dl2),
                             self.step_abs_dl2.eq(self.step_abs_dl2 + abs_dl2)]
                # the schedules compute the next step's values while the last groups drain
                # (once: a cancellation may issue the last groups again)
                with m.If(~self.advanced & (self.next_group >= regs["groups"])):
                    m.d.comb += [self.barrier.advance.eq(1), self.gain.advance.eq(1)]
                    m.d.sync += self.advanced.eq(1)
                with m.If((self.next_group >= regs["groups"]) & self.quiet
                          & ~self.tree_flight.any()):
                    m.next = "STEP_SUM"
            self._step_end(m)
            self._init_states(m)

    def _idle(self, m):
        """A start (CoreControl checked the sizes and that no external tilt is set), or
        init_field; CoreControl handles clear."""
        with m.If(self.ctl.start_run):
            m.d.sync += self.remaining.eq(self.regs["run_steps"])
            m.next = "PREPARE"
        with m.Elif(self.ctl.start_init):
            m.d.sync += self.init_group.eq(0)
            m.next = "INIT_FILL_READ"

    def _step_end(self, m):
        """The step's heat (gain x the step's dL2 sums) and the loss register, then the
        per-step counts with the schedules' next values (they advanced when the step's last
        group issued) and the next step or the end of the run."""
        spec, regs, counters = self.spec, self.regs, self.counters
        eta_shifted = self.eta << spec.tilt_shift
        net = Signal(signed(len(eta_shifted) + self.step_sum_bits + 1))
        gross = Signal(len(eta_shifted) + self.step_sum_bits)
        with m.State("STEP_SUM"):
            m.d.comb += self.in_run.eq(1)
            m.d.sync += [net.eq(eta_shifted * self.step_dl2),
                         gross.eq(eta_shifted * self.step_abs_dl2)]
            m.next = "STEP_END"
        with m.State("STEP_END"):
            m.d.comb += [self.in_run.eq(1), counters.inc_heat_net.eq(-2 * net),
                         counters.inc_heat_abs.eq(2 * gross)]
            m.d.sync += [regs["loss2"].eq(regs["loss2"] + self.step_dl2),
                         self.step_dl2.eq(0), self.step_abs_dl2.eq(0)]
            m.next = "SCHEDULE"
        with m.State("SCHEDULE"):
            m.d.comb += self.in_run.eq(1)
            with m.If(~self.barrier.busy & ~self.gain.busy):
                core_bus.step_end_counts(m, spec, counters, regs, self.e0, self.eta,
                                         self.barrier, self.gain)
                m.d.comb += counters.inc_evaluations.eq(regs["cells"])
                m.d.sync += [self.e0.eq(self.barrier.value), self.eta.eq(self.gain.value),
                             self.remaining.eq(self.remaining - 1), self.next_group.eq(0),
                             self.advanced.eq(0)]
                with m.If((self.remaining == 1) | self.ctl.stop_requested):
                    m.d.comb += self.ctl.finish.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "RUN"

    def _init_states(self, m):
        """init_field: g = -b in every bank, then g += W_m Q[:, m] for every cell (the field
        engine, one group's cells at a time), then L2 = sum W (g - b), one cell a cycle."""
        g = self.geometry
        field, group, init = self.field, self.init_group, self.init_mover

        def read_banks(*names):
            for name in names:
                m.d.comb += self.banks[name]["read"].addr.eq(group[:g.group_bits])

        last_bank_group = group + 1 >= g.groups_p2
        with m.State("INIT_FILL_READ"):
            read_banks("bias")
            m.next = "INIT_FILL_WRITE"
        with m.State("INIT_FILL_WRITE"):
            m.d.comb += [field.fill_we.eq(1), field.fill_addr.eq(group[:g.group_bits])]
            m.d.comb += [field.fill_data[k].eq(-self.bank_lane("bias", k))
                         for k in range(g.lanes)]
            m.d.sync += group.eq(Mux(last_bank_group, 0, group + 1))
            m.next = "INIT_FILL_READ"
            with m.If(last_bank_group):
                m.next = "INIT_COLUMN_READ"
        with m.State("INIT_COLUMN_READ"):
            read_banks("weight", "valid")
            m.next = "INIT_COLUMN_OFFER"
        with m.State("INIT_COLUMN_OFFER"):
            read_banks("weight", "valid")
            m.d.comb += [init["valid"].eq(1), init["group"].eq(group[:g.group_bits]),
                         init["mask"].eq(Cat(*[self.bank_lane("valid", k)
                                               & (self.bank_lane("weight", k) != 0)
                                               for k in range(g.lanes)]))]
            m.d.comb += [init["dw"][k].eq(self.bank_lane("weight", k)) for k in range(g.lanes)]
            with m.If(field.mover_ready):
                m.d.sync += group.eq(Mux(last_bank_group, 0, group + 1))
                m.next = "INIT_COLUMN_READ"
                with m.If(last_bank_group):
                    m.next = "INIT_COLUMN_WAIT"
        with m.State("INIT_COLUMN_WAIT"):
            with m.If(~field.busy):
                m.d.sync += [group.eq(0), self.init_total.eq(0), self.init_lane.eq(0)]
                m.next = "INIT_LOSS_READ"
        self._init_loss(m, read_banks)

    def _init_loss(self, m, read_banks):
        from .banked_field import lane_of  # noqa: PLC0415 (one helper of the field's)
        g, regs = self.geometry, self.regs
        group, lane, total = self.init_group, self.init_lane, self.init_total
        with m.State("INIT_LOSS_READ"):
            read_banks("weight", "valid", "bias")
            m.d.comb += self.field.eval_addr.eq(group[:g.group_bits])
            m.next = "INIT_LOSS_ADD"
        with m.State("INIT_LOSS_ADD"):
            read_banks("weight", "valid", "bias")
            m.d.comb += self.field.eval_addr.eq(group[:g.group_bits])

            def pick(values):
                return lane_of(values, lane)

            lanes = range(g.lanes)
            w = pick([self.bank_lane("weight", k) for k in lanes]).as_signed()
            v = pick([self.bank_lane("valid", k) for k in lanes])
            fld = pick([self.field.eval_field[k] for k in lanes]).as_signed()
            b = pick([self.bank_lane("bias", k) for k in lanes]).as_signed()
            term = Signal(signed(self.spec.loss_bits), name="init_term")
            m.d.comb += term.eq(Mux(v, w * (fld - b), 0))
            new_total = total + term
            m.d.sync += [total.eq(new_total), lane.eq(lane + 1)]
            with m.If(lane + 1 >= g.lanes):
                m.d.sync += [lane.eq(0), group.eq(group + 1)]
                m.next = "INIT_LOSS_READ"
                with m.If(group + 1 >= regs["groups"]):
                    m.d.sync += regs["loss2"].eq(new_total)
                    m.d.comb += self.ctl.finish.eq(1)
                    m.next = "IDLE"

    # -- the bus --------------------------------------------------------------------------------
    def _bus(self, m):
        rmap, regs = self.regmap, self.regs
        bus = {name: Signal.like(getattr(self, name), name=f"bus_{name}")
               for name in ("addr", "wdata", "we", "re")}
        m.d.sync += [bus[name].eq(getattr(self, name)) for name in bus]
        self.bus = bus
        max_words = max(words(r.width) for r in rmap)
        self.staging = Signal(max(1, (max_words - 1) * WORD_BITS))
        self.entry_value = Signal(max_words * WORD_BITS)
        self.host_index = Signal(len(bus["addr"]))
        lane_bits = self.geometry.lane_bits
        self.host_lane = self.host_index[:lane_bits] if lane_bits else Const(0, 1)
        self.host_bank_addr = self.host_index[lane_bits:]
        m.d.comb += [self.field.host_index.eq(self.host_index),
                     self.field.host_wdata.eq(self.entry_value)]
        decoded = core_bus.decode(rmap, bus["addr"])
        self._bus_read(m, decoded, max_words)
        core_bus.register_writes(m, rmap, bus, decoded, regs, self.ctl,
                                 lambda region, word, index: self._memory_write(
                                     m, region, word, index))

    def _readable(self):
        readable = core_bus.readable_registers(self.regs, self.ctl.status, self.barrier,
                                               self.gain, self.counters.overflow)
        for name, _, _ in self.counters.layout:
            readable[f"counter_{name}"] = getattr(self.counters, f"value_{name}")
        readable["run_cycles"] = self.run_cycles
        return readable

    def _bus_read(self, m, decoded, max_words):
        """Cycle 0: decode, address the memory; cycle 1: select the answer; cycle 2: rdata."""
        rmap, bus = self.regmap, self.bus
        hit, word_of, index_of, any_hit = decoded
        names = list(rmap.regions)
        read_sel = Signal(range(len(names) + 1))
        read_word = Signal(max(1, (max_words - 1).bit_length()))
        read_lane = Signal(range(self.geometry.lanes_p2))
        read_index = Signal.like(self.host_index)
        read_ok, read_pending = Signal(), Signal()
        m.d.sync += [read_pending.eq(bus["re"]), self.rack.eq(read_pending)]
        with m.If(bus["re"]):
            m.d.sync += [read_sel.eq(len(names)), read_ok.eq(0)]
            for i, region in enumerate(rmap):
                with m.If(hit[region.name]):
                    m.d.sync += [read_sel.eq(i), read_word.eq(word_of[region.name])]
                    if region.is_memory:
                        self._memory_read_start(m, region, index_of[region.name], read_lane,
                                                read_index, read_ok)
                    else:
                        m.d.sync += read_ok.eq(region.access != "wo")
                        if region.access == "wo":
                            m.d.comb += self.ctl.refuse_address.eq(1)
            with m.If(~any_hit):
                m.d.comb += self.ctl.refuse_address.eq(1)
        readable = self._readable()
        with m.If(read_pending):
            answer = Signal(max_words * WORD_BITS)
            with m.Switch(read_sel):
                for i, region in enumerate(rmap):
                    with m.Case(i):
                        m.d.comb += answer.eq(self._answer(region, readable, read_lane,
                                                           read_index))
            m.d.sync += self.rdata.eq(Mux(read_ok, answer.word_select(read_word, WORD_BITS), 0))

    def _memory_read_start(self, m, region, index, read_lane, read_index, read_ok):
        g = self.geometry
        m.d.comb += self.host_index.eq(index)
        m.d.sync += [read_lane.eq(self.host_lane), read_index.eq(index)]
        refuse_lane = (self.host_lane >= g.lanes) if self.regmap.lane_limited(region) \
            else Const(0, 1)
        ok = ~self.running & (region.access != "wo") & ~refuse_lane
        m.d.sync += read_ok.eq(ok)
        with m.If(ok):
            if region.name in FIELD_TARGETS:
                m.d.comb += [self.field.host_re.eq(1),
                             self.field.host_target.eq(FIELD_TARGETS[region.name])]
            elif region.name in LANE_BANKS:
                m.d.comb += self.banks[region.name]["read"].addr.eq(self.host_bank_addr)
        with m.Elif(self.running):
            m.d.comb += self.ctl.refuse_busy.eq(1)
        with m.Else():
            m.d.comb += self.ctl.refuse_address.eq(1)

    def _answer(self, region, readable, read_lane, read_index):
        from .banked_field import lane_of  # noqa: PLC0415
        if not region.is_memory:
            return readable.get(region.name, Const(0, 1))
        if region.name in FIELD_TARGETS:
            return self.field.host_rdata
        if region.name in LANE_BANKS:
            return lane_of([self.bank_lane(region.name, k) for k in range(self.geometry.lanes)],
                           read_lane)
        if region.name == "group_wait":
            return self.group_wait.bit_select(read_index[:self.geometry.group_bits], 1)
        return Const(0, 1)

    def _memory_write(self, m, region, word, index):
        """A word written into a memory region: staged, or committing the whole entry."""
        def commit(entry):
            m.d.comb += [self.host_index.eq(index), self.entry_value.eq(entry)]
            self._commit(m, region, index)

        core_bus.memory_write(m, self.ctl, self.staging, self.bus["wdata"], region, word, commit)

    def _commit(self, m, region, index):
        name, g, value = region.name, self.geometry, self.entry_value
        if name in FIELD_TARGETS:
            m.d.comb += [self.field.host_we.eq(1), self.field.host_target.eq(FIELD_TARGETS[name])]
        elif name in LANE_BANKS:
            with m.If(self.host_lane >= g.lanes):
                m.d.comb += self.ctl.refuse_address.eq(1)
            with m.Else():
                port, width = self.banks[name]["write"], self.banks[name]["width"]
                m.d.comb += [port.addr.eq(self.host_bank_addr),
                             port.data.eq(Cat(*[value[:width]] * g.lanes)),
                             port.en.eq(1 << self.host_lane)]
        elif name == "group_wait":
            m.d.sync += self.group_wait.bit_select(index[:g.group_bits], 1).eq(value[0])
        elif name == "seed":
            with m.If(index >= g.lanes):
                m.d.comb += self.ctl.refuse_address.eq(1)
            for lane in range(g.lanes):
                with m.If(index == lane):
                    m.d.comb += [self.rngs[lane].seed.eq(value), self.rngs[lane].load.eq(1)]
        elif name in ("barrier_table", "gain_table"):
            unit = self.barrier if name == "barrier_table" else self.gain
            m.d.comb += [unit.table_we.eq(1), unit.table_addr.eq(index),
                         unit.table_data.eq(value)]
