# amaranth: UnusedElaboratable=no
"""One lane's RTL against the golden model in Amaranth's simulator: LaneRng == LaneGenerator,
CrossingUnit == decide_one, bit for bit."""

import pytest
from amaranth import Elaboratable, Module, unsigned
from amaranth.back import verilog
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator
from limemu.hdl.crossing_unit import CrossingUnit, crossing_barrier_width
from limemu.hdl.lane_rng import REPLAY_DEPTH, SEED_WORDS, LaneRng, ReplayRng, seed_word
from limemu.hdl.regmap import to_words
from limemu.hdl.serial_crossing_unit import SerialCrossingUnit
from limemu.model.crossing import ONE, ZERO_FROM_U, decide_one, mantissa_rom, threshold
from limemu.model.errors import ConfigError
from limemu.model.rng import LaneGenerator
from limemu.model.spec import Spec


def simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


# -- LaneRng ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,lane", [(1, 0), (12345, 3), (2**64 - 1, 1023), (0, 7)])
def test_lane_rng_matches_lane_generator(seed, lane, rng):
    """2000 draws with random holds, then a reload of another (seed, lane) and 500 more."""
    dut = LaneRng()
    phases = ((seed, lane, 2000), (seed ^ 0x9E3779B97F4A7C15, lane + 1, 500))

    async def testbench(ctx):
        for phase_seed, phase_lane, n_draws in phases:
            ctx.set(dut.seed, seed_word(phase_seed, phase_lane))
            ctx.set(dut.load, 1)
            ctx.set(dut.next, 1)                      # load wins over next
            await ctx.tick()
            ctx.set(dut.load, 0)
            ctx.set(dut.seed, seed_word(phase_seed + 1, phase_lane))   # ignored without load
            reference = LaneGenerator(phase_seed, phase_lane)
            expected, draws = reference.next_draw(), 0
            while draws < n_draws:
                advance = bool(rng.random() < 0.8)
                ctx.set(dut.next, advance)
                actual = ctx.get(dut.draw)
                assert actual == expected, (
                    f"seed {phase_seed}, lane {phase_lane}, draw {draws}: "
                    f"expected {expected:#010x}, got {actual:#010x}")
                await ctx.tick()
                if advance:
                    expected, draws = reference.next_draw(), draws + 1

    simulate(dut, testbench)


def test_lane_rng_loads_a_seed_a_word_at_a_time():
    """SEED_WORDS shifts of a seed word's 32-bit words (least significant first) load it as
    `load` does: the same draws follow; `next` during the shifts is ignored."""
    dut = LaneRng()
    seed, lane = 987654321, 2
    words = to_words(seed_word(seed, lane), SEED_WORDS * 32)

    async def testbench(ctx):
        ctx.set(dut.next, 1)
        for word in words:
            ctx.set(dut.shift, 1)
            ctx.set(dut.shift_data, word)
            await ctx.tick()
        ctx.set(dut.shift, 0)
        reference = LaneGenerator(seed, lane)
        for _ in range(100):
            assert ctx.get(dut.draw) == reference.next_draw()
            await ctx.tick()

    simulate(dut, testbench)


def test_replay_rng_gives_back_draws_and_gives_them_again(rng):
    """Random takes, holds and give-backs (never past the first draw, never more than
    REPLAY_DEPTH - 1 waiting to be taken again): the draw is always LaneGenerator's draw number (taken - given back), whether it
    comes from the generator or from the ring."""
    dut = ReplayRng()
    seed, lane = 424242, 5
    reference = LaneGenerator(seed, lane)
    draws = [reference.next_draw() for _ in range(2000)]

    async def testbench(ctx):
        ctx.set(dut.seed, seed_word(seed, lane))
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        position, newest, undone = 0, 0, 0
        for step in range(3000):
            assert ctx.get(dut.draw) == draws[position], f"step {step}, position {position}"
            action = rng.choice(["take", "undo", "hold"], p=[0.75, 0.1, 0.15])
            most = min(position, REPLAY_DEPTH - 1 - (newest - position))
            back = int(rng.integers(1, most + 1)) if action == "undo" and most > 0 else 0
            ctx.set(dut.take, action == "take")
            ctx.set(dut.undo, back)
            await ctx.tick()
            if action == "take":
                position += 1
                newest = max(newest, position)
            position -= back
            undone += back
        assert undone > 500 and newest > 500

    simulate(dut, testbench)


# -- CrossingUnit -------------------------------------------------------------------------------

FORMATS = [(8, 14, crossing_barrier_width(Spec())), (12, 14, 24), (2, 8, 12), (6, 10, 20)]


def crossing_cases(frac_bits, mantissa_bits, width, rng, n_pairs=700):
    """(u, b_up, b_down): random barrier pairs (mostly below the clip at 34 u, some negative or
    anywhere in the width, some at the edges), each with draws at every compare's boundary."""
    clip = ZERO_FROM_U << frac_bits
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    edges = [low, low + 1, -clip - 1, -1, 0, 1, (1 << frac_bits) - 1, 1 << frac_bits,
             clip - 1, clip, clip + 1, 40 << frac_bits, high - 1, high]
    edges = [b for b in edges if low <= b <= high]

    def barrier():
        kind = rng.random()
        if kind < 0.15:
            return int(rng.choice(edges))
        if kind < 0.25:
            return int(rng.integers(low, high, endpoint=True))
        return min(max(int(rng.integers(-(2 << frac_bits), 40 << frac_bits)), low), high)

    def t(b):
        return threshold(min(b, clip), frac_bits, mantissa_bits)

    cases = []
    for _ in range(n_pairs):
        b_up, b_down = barrier(), barrier()
        if rng.random() < 0.1:
            b_down = b_up + int(rng.integers(-2, 3))      # equal and nearly equal barriers
        b_down = min(max(b_down, low), high)
        draws = [int(rng.integers(0, ONE)), int(rng.integers(0, ONE)), 0, ONE - 1]
        if min(b_up, b_down) >= 0:
            t_up, t_down = t(b_up), t(b_down)
            draws += [t_up - 1, t_up, t_up + t_down - 1, t_up + t_down]
        lowest = min(b_up, b_down)
        a, s = t(b_up - lowest) >> 17, (t(b_up - lowest) + t(b_down - lowest)) >> 17
        last_up = -(-(a << 16) // s) - 1          # largest u >> 16 with (u >> 16) * s < a << 16
        draws += [(last_up << 16) | 0xFFFF, (last_up + 1) << 16]
        cases += [(u, b_up, b_down) for u in draws if 0 <= u < ONE]
    return cases


def outcome(up, down, inadmissible):
    return ("up" if up else "down" if down else "stay"), bool(inadmissible)


class WithRom(Elaboratable):
    """A crossing unit built with external_rom=True and the ROM its parent gives it."""

    def __init__(self, unit):
        self.unit = unit

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self.unit
        m.submodules.rom = rom = Memory(shape=unsigned(unit.mantissa_bits + 1),
                                        depth=1 << unit.frac_bits,
                                        init=mantissa_rom(unit.frac_bits, unit.mantissa_bits))
        for addr, data in zip(unit.rom_addr, unit.rom_data):
            port = rom.read_port()
            m.d.comb += [port.addr.eq(addr), data.eq(port.data)]
        return m


@pytest.mark.parametrize("frac_bits,mantissa_bits,width", FORMATS)
@pytest.mark.parametrize("gaps", [False, True], ids=["back_to_back", "with_gaps"])
@pytest.mark.parametrize("external_rom", [False, True], ids=["own_rom", "external_rom"])
def test_crossing_unit_matches_decide_one(frac_bits, mantissa_bits, width, gaps, external_rom,
                                          rng):
    dut = CrossingUnit(frac_bits=frac_bits, mantissa_bits=mantissa_bits, barrier_width=width,
                       external_rom=external_rom)
    cases = crossing_cases(frac_bits, mantissa_bits, width, rng)
    expected = [decide_one(u, b_up, b_down, frac_bits, mantissa_bits) for u, b_up, b_down in cases]
    # the cases reach every branch of the rule
    seen = {(result, b_up <= b_down) for result, (_, b_up, b_down) in zip(expected, cases)}
    assert seen >= {(("up", False), True), (("down", False), True), (("stay", False), True),
                    (("up", True), True), (("down", True), True),
                    (("up", True), False), (("down", True), False)}, seen

    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    schedule = []                                        # None: a cycle without valid_in
    for case in cases:
        while gaps and rng.random() < 0.3:
            schedule.append(None)
        schedule.append(case)
    schedule += [None] * dut.latency                     # drain the pipeline
    outputs = []                                         # (cycle, outcome) for each valid_out

    async def testbench(ctx):
        for cycle, case in enumerate(schedule):
            ctx.set(dut.valid_in, case is not None)
            if case is None:                             # garbage that must not leak out
                case = (int(rng.integers(0, ONE)), int(rng.integers(low, high, endpoint=True)),
                        int(rng.integers(low, high, endpoint=True)))
            for port, value in zip((dut.u, dut.b_up, dut.b_down), case):
                ctx.set(port, value)
            await ctx.tick()
            up, down, inadmissible = ctx.get(dut.up), ctx.get(dut.down), ctx.get(dut.inadmissible)
            if ctx.get(dut.valid_out):
                assert not (up and down), f"{dut!r}: up and down at cycle {cycle}"
                outputs.append((cycle, outcome(up, down, inadmissible)))
            else:
                assert not (up or down or inadmissible), f"{dut!r}: output without valid_out"

    simulate(WithRom(dut) if external_rom else dut, testbench)
    issued = [cycle for cycle, item in enumerate(schedule) if item is not None]
    assert len(outputs) == len(cases), f"{dut!r}: {len(outputs)} outputs for {len(cases)} inputs"
    for issue_cycle, (u, b_up, b_down), want, (out_cycle, got) in zip(issued, cases, expected,
                                                                      outputs):
        # outputs are read after the tick of their loop iteration: latency - 1 iterations later
        assert out_cycle == issue_cycle + dut.latency - 1, (
            f"{dut!r}: u={u}, b_up={b_up}, b_down={b_down} left after "
            f"{out_cycle - issue_cycle + 1} cycles")
        assert got == want, (f"F={frac_bits} M={mantissa_bits} width={width}: u={u}, "
                             f"b_up={b_up}, b_down={b_down}: expected {want}, got {got}")


def test_crossing_unit_rejects_bad_parameters_naming_them():
    with pytest.raises(ConfigError, match="frac_bits = 0"):
        CrossingUnit(frac_bits=0, mantissa_bits=14, barrier_width=20)
    with pytest.raises(ConfigError, match="mantissa_bits = 33"):
        CrossingUnit(frac_bits=8, mantissa_bits=33, barrier_width=20)
    with pytest.raises(ConfigError, match="barrier_width = 1.5"):
        CrossingUnit(frac_bits=8, mantissa_bits=14, barrier_width=1.5)
    assert repr(CrossingUnit(frac_bits=8, mantissa_bits=14, barrier_width=20)) == (
        "CrossingUnit(frac_bits=8, mantissa_bits=14, barrier_width=20)")


@pytest.mark.parametrize("spec", [Spec(), Spec(barrier_bits=24, gain_bits=7, field_bits=8)],
                         ids=["default", "wide_barrier"])
def test_crossing_barrier_width_holds_every_barrier(spec):
    width = crossing_barrier_width(spec)
    e0_max = 2**spec.barrier_bits - 1
    h_min, h_max = -(2 ** (spec.tilt_bits - 1)), 2 ** (spec.tilt_bits - 1) - 1
    extremes = [h_min, -h_max, e0_max - h_min, e0_max + h_max]      # E0 +- h
    assert all(-(2 ** (width - 1)) <= b < 2 ** (width - 1) for b in extremes)


# -- SerialCrossingUnit -------------------------------------------------------------------------

@pytest.mark.parametrize("frac_bits,mantissa_bits,width", FORMATS)
def test_serial_crossing_unit_matches_decide_one(frac_bits, mantissa_bits, width, rng):
    """The same cases as the pipelined unit's, one after the other, each barrier B split into
    a random E0 and h = B - E0: u changes after its start (it is sampled), E0 and h stay; the
    outcome holds from done until the next start, and done comes exactly
    ``latency(b_up, b_down)`` cycles after start."""
    e0_bits = min(14, width - 2)
    dut = SerialCrossingUnit(frac_bits=frac_bits, mantissa_bits=mantissa_bits,
                             e0_bits=e0_bits, h_bits=width)
    cases = crossing_cases(frac_bits, mantissa_bits, width, rng, n_pairs=250)
    h_min = -(1 << (width - 1))
    expected = [decide_one(u, b_up, b_down, frac_bits, mantissa_bits) for u, b_up, b_down in cases]
    assert {result for result in expected} >= {("up", False), ("down", False), ("stay", False),
                                              ("up", True), ("down", True)}
    latencies = []

    async def testbench(ctx):
        for (u, b_up, b_down), want in zip(cases, expected):
            e0 = int(rng.integers(0, min(1 << e0_bits, min(b_up, b_down) - h_min + 1)))
            for port, value in zip((dut.u, dut.e0, dut.h_up, dut.h_down, dut.start),
                                   (u, e0, b_up - e0, b_down - e0, 1)):
                ctx.set(port, value)
            assert not ctx.get(dut.busy)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.u, int(rng.integers(0, ONE)))        # sampled at start: no effect
            cycles = 1
            while not ctx.get(dut.done):
                assert ctx.get(dut.busy)
                await ctx.tick()
                cycles += 1
                assert cycles <= 64, f"{dut!r}: no done for u={u}, b_up={b_up}, b_down={b_down}"
            got = outcome(ctx.get(dut.up), ctx.get(dut.down), ctx.get(dut.inadmissible))
            assert got == want, (f"F={frac_bits} M={mantissa_bits} width={width}: u={u}, "
                                 f"b_up={b_up}, b_down={b_down}: expected {want}, got {got}")
            assert cycles == dut.latency(b_up, b_down), (u, b_up, b_down, cycles)
            latencies.append(cycles)
            for _ in range(int(rng.integers(0, 3))):         # idle cycles keep the outcome
                await ctx.tick()
                assert outcome(ctx.get(dut.up), ctx.get(dut.down),
                               ctx.get(dut.inadmissible)) == want

    simulate(dut, testbench)
    assert SerialCrossingUnit.MIN_LATENCY <= min(latencies) and max(latencies) <= 48
    clip = ZERO_FROM_U << frac_bits
    grid = range(-(1 << frac_bits), clip + (2 << frac_bits), max(1, 1 << (frac_bits - 2)))
    assert min(dut.latency(b_up, b_down) for b_up in grid for b_down in grid) == \
        SerialCrossingUnit.MIN_LATENCY


def test_serial_crossing_unit_rejects_bad_parameters_naming_them():
    with pytest.raises(ConfigError, match="frac_bits = 17"):
        SerialCrossingUnit(frac_bits=17, mantissa_bits=14, e0_bits=14, h_bits=20)
    with pytest.raises(ConfigError, match="h_bits = 63"):
        SerialCrossingUnit(frac_bits=8, mantissa_bits=14, e0_bits=14, h_bits=63)
    assert repr(SerialCrossingUnit(frac_bits=8, mantissa_bits=14, e0_bits=14, h_bits=20)) == (
        "SerialCrossingUnit(frac_bits=8, mantissa_bits=14, e0_bits=14, h_bits=20)")


# -- Verilog ------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    LaneRng,
    lambda: CrossingUnit(frac_bits=8, mantissa_bits=14, barrier_width=52),
    lambda: SerialCrossingUnit(frac_bits=8, mantissa_bits=14, e0_bits=14, h_bits=52),
], ids=["LaneRng", "CrossingUnit", "SerialCrossingUnit"])
def test_converts_to_verilog(make):
    text = verilog.convert(make(), name="top", emit_src=False)
    assert "module top" in text
