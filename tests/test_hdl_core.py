# amaranth: UnusedElaboratable=no
"""Counter bank, field engine and the whole array core in Amaranth's simulator.

The core test is the same host plan the Verilator backend uses, run on a second simulator
for a few steps: weights, field and every counter must equal the golden model's.
"""

from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator
from limemu.hdl.compact_core import CompactCore
from limemu.hdl.cores import cycles_per_evaluation_at_best, make_core
from limemu.hdl.counter_bank import CounterBank
from limemu.hdl.field_engine import (
    TARGET_COLUMN,
    TARGET_ENTRY,
    TARGET_FIELD,
    TARGET_Q,
    FieldEngine,
)
from limemu.hdl.regmap import (
    MAGIC,
    STATUS,
    Geometry,
    RegisterMap,
    from_words,
    to_words,
    words,
)
from limemu.hdl.serial_crossing_unit import SerialCrossingUnit
from limemu.host import (
    bank_indices,
    decode_state,
    entry_writes,
    geometry_for,
    load_sequence,
    register_writes,
    run_plan,
    state_addresses,
)
from limemu.model.counters import CellCounters, Counters, counter_layout
from limemu.model.engine import LimArray
from limemu.model.problem import QuadraticProblem
from limemu.model.schedules import Schedule
from limemu.model.spec import Spec


def simulate(dut, testbench, *watchers):
    """Run `testbench` to its end, with `watchers` (testbenches that never end) beside it."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    for watcher in watchers:
        sim.add_testbench(watcher, background=True)
    sim.run()


def random_problem(n, seed, density=1.0):
    rng = np.random.default_rng(seed)
    A = rng.integers(-3, 4, (n, n)) * (rng.random((n, n)) < density)
    Q = np.triu(A, 1)
    Q = Q + Q.T
    Q[np.diag_indices(n)] = rng.integers(1, 5, n)
    return QuadraticProblem.dense(Q, rng.integers(-8, 9, n))


# -- counter bank --------------------------------------------------------------------------------

def test_counter_bank_matches_model_counters_and_flags(rng):
    """Random increments, including ones that carry a counter out of its range: the values
    wrap and the sticky flags rise exactly as limemu.model.counters.Counters says."""
    spec = Spec(cells=8)
    layout = counter_layout(spec)
    dut = CounterBank(spec, {name: width + 1 for name, width, _ in layout})
    model = Counters(spec)

    async def testbench(ctx):
        for cycle in range(300):
            for name, width, signed in layout:
                big = rng.random() < 0.05
                if big:   # a jump of half the range: overflows after a few
                    amount = (1 << (width - 1 if not signed else width - 2))
                else:
                    amount = int(rng.integers(0, 1000))
                if signed and rng.random() < 0.5:
                    amount = -amount
                ctx.set(getattr(dut, f"inc_{name}"), amount)
                model.add(name, amount)
            await ctx.tick()
            model.check_overflow()
            expected = model.hardware()
            flags = ctx.get(dut.overflow)
            for i, (name, _, _) in enumerate(layout):
                actual = ctx.get(getattr(dut, f"value_{name}"))
                assert actual == expected[name], \
                    f"cycle {cycle}: {name} {actual} != {expected[name]}"
                assert bool(flags >> i & 1) == model.overflow[name], f"cycle {cycle}: flag {name}"
        assert any(model.overflow.values())
        for name, _, _ in layout:
            ctx.set(getattr(dut, f"inc_{name}"), 0)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        assert ctx.get(dut.overflow) == 0
        assert all(ctx.get(getattr(dut, f"value_{name}")) == 0 for name, _, _ in layout)

    simulate(dut, testbench)


# -- field engine --------------------------------------------------------------------------------

@pytest.mark.parametrize("storage,lanes", [("dense", 1), ("dense", 3), ("sparse", 2),
                                            ("sparse", 4)])
def test_field_engine_applies_columns(storage, lanes, rng):
    """Load g and Q through the host port, apply random updates, read g back: g must equal
    g0 + sum dw Q[:, m]; the engine reports the additions it made."""
    n = 10
    problem = random_problem(n, 3, density=0.4)
    spec = Spec(cells=n, weight_bits=4, lanes=lanes, q_storage=storage)
    array = LimArray(spec, problem)
    order = array.order
    geometry = geometry_for(spec, order, problem.nnz)
    rmap = RegisterMap(spec, geometry)
    index = bank_indices(rmap, order)
    dut = FieldEngine(spec, geometry)
    g = problem.field(array.W)
    # host writes as the core would issue them (one entry per write)
    writes = []
    for cell in range(n):
        writes.append((TARGET_FIELD, int(index[cell]), int(g[cell])))
    plan_q = _q_entries(rmap, problem, index)
    # moves (dw = +-1) and field initialisation steps (dw = a whole weight)
    moves = [(int(rng.integers(n)), int(rng.choice([-1, 1, -8, -3, 5, 7]))) for _ in range(12)]

    async def testbench(ctx):
        for target, i, value in writes + plan_q:
            ctx.set(dut.host_target, target)
            ctx.set(dut.host_index, i)
            ctx.set(dut.host_wdata, value & ((1 << 64) - 1))
            ctx.set(dut.host_we, 1)
            await ctx.tick()
        ctx.set(dut.host_we, 0)
        ctx.set(dut.cells, n)
        ctx.set(dut.groups, order.groups)
        expected = g.copy()
        for cell, dw in moves:
            ctx.set(dut.column, int(index[cell]))
            ctx.set(dut.dw, dw)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            adds = None
            for _ in range(200):
                if ctx.get(dut.adds_valid):
                    adds = ctx.get(dut.adds)
                await ctx.tick()
                if adds is not None:
                    break
            column = problem.to_dense()[:, cell]
            expected += dw * column
            assert adds == (n if storage == "dense" else np.count_nonzero(column))
        for cell in range(n):
            ctx.set(dut.host_target, TARGET_FIELD)
            ctx.set(dut.host_index, int(index[cell]))
            ctx.set(dut.host_re, 1)
            await ctx.tick()
            ctx.set(dut.host_re, 0)
            raw = ctx.get(dut.host_rdata) & ((1 << spec.field_bits) - 1)
            value = raw - (1 << spec.field_bits) if raw >> (spec.field_bits - 1) else raw
            assert value == expected[cell], f"g[{cell}] = {value}, expected {expected[cell]}"

    simulate(dut, testbench)


def _q_entries(rmap, problem, index):
    """(target, index, value) of Q for the engine's host port, from the host plan."""
    from limemu.host import q_plan
    out = []
    targets = {"q": TARGET_Q, "column": TARGET_COLUMN, "entry": TARGET_ENTRY}
    regions = {name: rmap[name] for name in targets if name in rmap.regions}
    staged = {}
    for address, word in q_plan(rmap, problem, index):
        for name, region in regions.items():
            if region.base <= address < region.base + region.size:
                i, j = divmod(address - region.base, region.stride)
                staged[(name, i)] = staged.get((name, i), 0) | (word << (32 * j))
                if j == -(-region.width // 32) - 1:
                    out.append((targets[name], i, staged.pop((name, i))))
    return out


# -- the whole core ------------------------------------------------------------------------------

READ_LATENCY = 3            # cycles from a read strobe to rack (the pipelined core, always)


class Bus:
    """The core's bus from an Amaranth testbench: an access only when ``ready`` is high, a
    read answered when ``rack`` rises (three cycles for the pipelined core)."""

    def __init__(self, ctx, dut):
        self.ctx, self.dut = ctx, dut
        self.latencies = set()

    async def _wait_ready(self):
        for _ in range(100):
            if self.ctx.get(self.dut.ready):
                return
            await self.ctx.tick()
        raise AssertionError("the core's bus never became ready")

    async def write(self, pairs):
        ctx, dut = self.ctx, self.dut
        for address, word in pairs:
            ctx.set(dut.we, 0)
            await self._wait_ready()
            ctx.set(dut.addr, address)
            ctx.set(dut.wdata, word)
            ctx.set(dut.we, 1)
            await ctx.tick()
        ctx.set(dut.we, 0)
        await ctx.tick()                   # the last write is applied one cycle later
        await self._wait_ready()

    async def read(self, addresses):
        ctx, dut = self.ctx, self.dut
        words = []
        for address in addresses:
            await self._wait_ready()
            ctx.set(dut.addr, address)
            ctx.set(dut.re, 1)
            await ctx.tick()
            ctx.set(dut.re, 0)
            cycles = 1
            while not ctx.get(dut.rack):
                await ctx.tick()
                cycles += 1
                assert cycles < 20, f"no answer to the read of {address:#x}"
            self.latencies.add(cycles)
            words.append(ctx.get(dut.rdata))
        return words

    async def load(self, sequence):
        for kind, writes in sequence:
            await self.write(writes)
            if kind == "run":
                await self.ctx.tick()
                await self.wait_done()

    async def wait_done(self, limit=100_000):
        for _ in range(limit):
            if not self.ctx.get(self.dut.busy):
                return
            await self.ctx.tick()
        raise AssertionError("the core never finished its run")


CORE_CASES = [("pipelined", "dense", 2, 4, {}), ("pipelined", "sparse", 3, 1, {}),
              ("compact", "dense", 1, 4, {}), ("compact", "sparse", 1, 1, {}),
              # 16-bit planes: a field and a tilt of two planes, a 4-bit weight
              ("compact", "sparse", 1, 4, {"field_bits": 20, "gain_bits": 12})]


@pytest.mark.parametrize("core,storage,lanes,bits,formats", CORE_CASES,
                         ids=[f"{c}-{s}-lanes={n}-bits={b}" + ("-wide" if f else "")
                              for c, s, n, b, f in CORE_CASES])
def test_core_matches_model_in_amaranth_simulator(core, storage, lanes, bits, formats):
    n = 9
    problem = random_problem(n, 5, density=0.5)
    barrier, gain = Schedule.linear(256, 2**14), Schedule.exponential(32, 2**12)
    if core == "compact":                  # it computes tables (and constants) only
        barrier = barrier.tabulated("barrier", 14, 256, 3)
        gain = gain.tabulated("gain", formats.get("gain_bits", 16), 256, 2)
    spec = Spec(cells=n, weight_bits=bits, lanes=lanes, q_storage=storage, seed=3,
                barrier=barrier, gain=gain, cell_counter_bits=4 if storage == "dense" else 0,
                **formats)
    model = LimArray(spec, problem)
    cells = CellCounters(spec)
    geometry = replace(geometry_for(spec, model.order, problem.nnz, table_depth=256), core=core)
    rmap = RegisterMap(spec, geometry)
    dut = make_core(spec, geometry)

    async def testbench(ctx):
        bus = Bus(ctx, dut)
        await bus.load(load_sequence(rmap, problem, model.order, model.W0))
        for steps in (1, 4, 12, 40):
            await bus.write(run_plan(rmap, steps))
            await ctx.tick()
            await bus.wait_done()
            before = model.W.copy()
            cells.add_steps(before, model.run(steps, snapshot_every=1))
            state = decode_state(rmap, model.order,
                                 await bus.read(state_addresses(rmap, model.order)))
            assert state["weights"].tolist() == model.W.tolist()
            assert state["field"].tolist() == model.g.tolist()
            if spec.cell_counter_bits:
                up, down, wrapped = cells.hardware()
                assert state["cell_counters"][0].tolist() == up.tolist()
                assert state["cell_counters"][1].tolist() == down.tolist()
                assert state["cell_overflow"] == wrapped
            assert state["counters"] == model.counters.hardware()
            assert state["step"] == model.step
            assert state["loss2"] == model.loss2_track
        if core == "pipelined":
            assert bus.latencies == {READ_LATENCY}
        moves = model.counters.exact["up_moves"] + model.counters.exact["down_moves"]
        assert moves > 0, "nothing moved: the comparison would prove little"
        if spec.cell_counter_bits:
            assert cells.hardware()[2], "no per-cell counter wrapped: the flag is untested"

    simulate(dut, testbench)


@pytest.mark.parametrize("core,lanes", [("pipelined", 2), ("compact", 1)])
def test_core_refuses_bad_accesses_and_changes_nothing(core, lanes):
    """Writes to read-only registers, unknown addresses, and writes while a run is in
    progress set error flags and leave the state as it was; clear_errors clears them."""
    n = 6
    problem = random_problem(n, 7)
    spec = Spec(cells=n, weight_bits=4, lanes=lanes, barrier=Schedule.constant(3 * 256))
    model = LimArray(spec, problem)
    geometry = Geometry(lanes=lanes, groups=model.order.groups, q_storage="dense", q_capacity=1,
                        table_depth=256, core=core)
    rmap = RegisterMap(spec, geometry)
    dut = make_core(spec, geometry)
    status = rmap["status"].base
    weight0 = rmap["weight"].address(0)

    async def flags(bus):
        word = (await bus.read([status]))[0]
        return {name: bool(word >> bit & 1) for name, bit in STATUS.items()}

    async def testbench(ctx):
        bus = Bus(ctx, dut)
        await bus.load(load_sequence(rmap, problem, model.order, model.W0))
        before = await bus.read([weight0, rmap["counter_steps"].base])
        await bus.write(register_writes(rmap, "magic", 7))           # read-only
        assert (await flags(bus))["error_address"]
        assert (await bus.read([rmap["magic"].base]))[0] == 0x4C494D45
        await bus.write([(rmap.regions["gain_table"].base + rmap["gain_table"].size, 1)])
        await bus.write(register_writes(rmap, "control", 1 << 3))    # clear_errors
        assert not any((await flags(bus)).values())
        await bus.write(run_plan(rmap, 50))
        await ctx.tick()
        assert (await flags(bus))["busy"]
        await bus.write(entry_writes(rmap, "weight", 0, 5))         # refused while busy
        await bus.write(register_writes(rmap, "control", 1))         # start again: refused
        state = await flags(bus)
        assert state["error_busy_write"]
        await bus.write(register_writes(rmap, "control", 1 << 1))    # stop
        await bus.wait_done()
        steps = (await bus.read([rmap["counter_steps"].base]))[0]
        assert 0 < steps < 50
        if core == "compact":                  # its run_steps counts down: the steps left
            assert (await bus.read([rmap["run_steps"].base]))[0] == 50 - steps
        model.run(steps)
        w = decode_state(rmap, model.order, await bus.read(state_addresses(rmap, model.order)))
        assert w["weights"].tolist() == model.W.tolist()             # the refused write did nothing
        assert before[1] == 0

    simulate(dut, testbench)


def test_compact_core_cycles_per_evaluation():
    """A step in which nothing moves (E0 = 20 u, no gain: both barriers 20 u) takes, per cell,
    OWN_CYCLES_PER_EVALUATION plus the crossing unit's latency for the two barriers, and a few
    cycles for the end of the step (schedules, counters): the figure the docs and the board
    report (cycles_per_evaluation_at_best) are built from."""
    n, steps = 9, 3
    problem = random_problem(n, 11)
    spec = Spec(cells=n, weight_bits=4, lanes=1, barrier=Schedule.constant(20 * 256),
                gain=Schedule.constant(0))
    model = LimArray(spec, problem)
    geometry = replace(geometry_for(spec, model.order, problem.nnz, table_depth=256),
                       core="compact")
    rmap = RegisterMap(spec, geometry)
    dut = make_core(spec, geometry)
    per_cell = CompactCore.OWN_CYCLES_PER_EVALUATION + SerialCrossingUnit(
        frac_bits=8, mantissa_bits=14, e0_bits=14, h_bits=20).latency(20 * 256, 20 * 256)
    cycles = []

    async def testbench(ctx):
        bus = Bus(ctx, dut)
        await bus.load(load_sequence(rmap, problem, model.order, model.W0))
        await bus.write(run_plan(rmap, steps))
        count = 1
        while ctx.get(dut.busy) or count == 1:
            await ctx.tick()
            count += 1
        cycles.append(count)

    simulate(dut, testbench)
    overhead = cycles[0] - steps * n * per_cell
    assert 0 <= overhead <= steps * 20, (cycles, per_cell)     # about 18 a step
    assert cycles_per_evaluation_at_best(geometry) == CompactCore.OWN_CYCLES_PER_EVALUATION + \
        SerialCrossingUnit.MIN_LATENCY


@pytest.mark.parametrize("core,lanes", [("pipelined", 3), ("compact", 1)])
def test_core_reads_back_what_the_host_wrote(core, lanes, rng):
    """Every word of every readable register, and entries of every readable memory, written
    with random words and read back: a register answers its value (its width's bits of what
    was written) sign- or zero-extended over its words; a memory entry its value in its
    width's bits (what the host decodes: from_words)."""
    spec = Spec(cells=7, weight_bits=4, lanes=lanes, q_storage="sparse", cell_counter_bits=5,
                field_bits=20)
    geometry = Geometry(lanes=lanes, groups=-(-7 // lanes), q_storage="sparse", q_capacity=9,
                        table_depth=256, core=core)
    rmap = RegisterMap(spec, geometry)
    dut = make_core(spec, geometry)
    registers = [r for r in rmap if not r.is_memory and r.access == "rw"]
    memories = [r for r in rmap if r.is_memory and r.access == "rw"]
    writes, expected, entries = [], {}, []
    for region in registers:
        ws = [int(rng.integers(0, 2**32)) for _ in range(region.size)]
        writes += [(region.base + j, w) for j, w in enumerate(ws)]
        value = from_words(ws, region.width, region.signed)
        expected.update(zip(range(region.base, region.base + region.size),
                            to_words(value, region.size * 32)))
    for region in memories:
        for index in {0, int(rng.integers(rmap.index_limit(region)))}:
            if rmap.lane_limited(region) and index % geometry.lanes_p2 >= lanes:
                continue
            ws = [int(rng.integers(0, 2**32)) for _ in range(words(region.width))]
            writes += [(region.address(index, j), w) for j, w in enumerate(ws)]
            entries.append((region, index, from_words(ws, region.width, region.signed)))
    expected[rmap["magic"].base] = MAGIC

    async def testbench(ctx):
        bus = Bus(ctx, dut)
        await bus.write(writes)
        addresses = list(expected)
        got = await bus.read(addresses)
        for address, word in zip(addresses, got):
            region = rmap.region_of(address)
            assert word == expected[address], (
                f"{core}: {region.name} word {address - region.base}: wrote for "
                f"{expected[address]:#x}, read {word:#x}")
        for region, index, value in entries:
            ws = await bus.read([region.address(index, j) for j in range(words(region.width))])
            got = from_words(ws, region.width, region.signed)
            assert got == value, f"{core}: {region.name}[{index}]: wrote {value}, read {got}"
        assert not (await bus.read([rmap["status"].base]))[0] >> STATUS["error_address"] & 1

    simulate(dut, testbench)


def test_register_map_is_aligned_and_disjoint():
    spec = Spec(cells=40, weight_bits=8, lanes=5)
    rmap = RegisterMap(spec, Geometry(lanes=5, groups=8, q_storage="sparse", q_capacity=100))
    spans = sorted((r.base, r.base + r.size, r.name) for r in rmap)
    for (_, a1, n0), (b0, _, n1) in zip(spans, spans[1:]):
        assert a1 <= b0, f"{n0} overlaps {n1}"
    for region in rmap:
        if region.is_memory:
            size = 1 << (region.size - 1).bit_length()
            assert region.base % size == 0, f"{region.name} is not aligned"
    assert to_words(-1, 40) == [0xFFFFFFFF, 0xFF]
