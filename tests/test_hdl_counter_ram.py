# amaranth: UnusedElaboratable=no
"""The compact core's counters (hdl/counter_ram.py) in Amaranth's simulator, against the golden
model's counters (limemu.model.counters.Counters) given the same additions: every word the host
reads, the overflow flags, the clear, the timing, the register-map placement."""

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from limemu.hdl.counter_ram import CounterRam
from limemu.hdl.regmap import Geometry, RegisterMap, to_words, words
from limemu.model.counters import Counters, counter_layout
from limemu.model.errors import ConfigError
from limemu.model.spec import Spec

#: an iCE40UP5K-sized array and the widest amounts the compact core adds
BOARD_SPEC = Spec(cells=800, weight_bits=1, barrier_bits=14, gain_bits=12, gain_frac_bits=6,
                  field_bits=16, q_bits=2)
CONFIGS = {"board": (BOARD_SPEC, 44), "narrow": (Spec(cells=5), 2), "wide": (Spec(), 48)}


def uniform(spec, bits):
    """Every counter given amounts of `bits` bits."""
    return {name: bits for name, _, _ in counter_layout(spec)}


def simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def image(dut, values):
    """The RAM image of `values` {name: hardware value}: two's complement over whole words."""
    out = []
    for name, width, _ in dut.layout:
        out += to_words(values[name], words(width) * 32)
    return out


class Bench:
    """Drives the unit and the golden model side by side."""

    def __init__(self, ctx, dut, spec):
        self.ctx, self.dut, self.spec = ctx, dut, spec
        self.model = Counters(spec)
        self.names = [name for name, _, _ in dut.layout]

    async def add(self, name, amount, subtract=False):
        """One addition: strobe, then wait until ready; returns the cycles ready was low."""
        ctx, dut = self.ctx, self.dut
        assert ctx.get(dut.ready)
        ctx.set(dut.add, 1)
        ctx.set(dut.index, self.names.index(name))
        ctx.set(dut.amount, amount)
        ctx.set(dut.subtract, subtract)
        await ctx.tick()
        ctx.set(dut.add, 0)
        self.model.add(name, -amount if subtract else amount)
        self.model.check_overflow()
        cycles = 1
        while not ctx.get(dut.ready):
            await ctx.tick()
            cycles += 1
            assert cycles < 10
        return cycles

    async def check(self, what):
        """Every word through the host port, and the flags."""
        ctx, dut = self.ctx, self.dut
        await self.ctx.tick()                      # the last word is written
        want = image(dut, self.model.hardware())
        for address, expected in enumerate(want):
            ctx.set(dut.read_en, 1)
            ctx.set(dut.read_addr, address)
            await ctx.tick()
            got = ctx.get(dut.read_data)
            assert got == expected, (f"{what}: word {address}: expected {expected:#x}, got "
                                     f"{got:#x}; {dut!r}")
        ctx.set(dut.read_en, 0)
        flags = ctx.get(dut.overflow)
        want_flags = sum(1 << i for i, name in enumerate(self.names)
                         if self.model.overflow[name])
        assert flags == want_flags, f"{what}: flags {flags:#x}, expected {want_flags:#x}"


def amount_range(bits):
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


@pytest.mark.parametrize("config", CONFIGS)
def test_counters_match_model(config, rng):
    """Random additions and subtractions of every size, back to back (the next strobe in the
    cycle that writes the last word), each taking exactly words(width) cycles; then counters
    preloaded next to the ends of their ranges are pushed over them (flags, wrap) and back;
    then a clear."""
    spec, amount_bits = CONFIGS[config]
    dut = CounterRam(spec, uniform(spec, amount_bits))
    lo, hi = amount_range(amount_bits)
    widths = {name: (width, signed) for name, width, signed in dut.layout}

    async def testbench(ctx):
        bench = Bench(ctx, dut, spec)
        for i in range(400):
            name = bench.names[int(rng.integers(len(bench.names)))]
            kind = rng.random()
            amount = int(rng.integers(lo, hi + 1)) if kind < 0.6 else \
                int(rng.choice([lo, hi, 0, 1, -1]))
            width, _ = widths[name]
            cycles = await bench.add(name, amount, subtract=bool(rng.random() < 0.3))
            assert cycles == words(width), f"{name}: {cycles} cycles"
        await bench.check("random additions")

        # next to the ends: preload, cross the end (flag, wrap), come back (the flag stays)
        for name in bench.names:
            width, is_signed = widths[name]
            ends = ([-(1 << (width - 1)), (1 << (width - 1)) - 1] if is_signed
                    else [0, (1 << width) - 1])
            for end in ends:
                await clear(ctx, dut)
                bench.model = Counters(spec)
                for j, w in enumerate(to_words(end, words(width) * 32)):
                    ctx.set(dut.data[dut.offsets[name] + j], w)
                bench.model.exact[name] = end
                step = 1 if end > 0 else -1
                await bench.add(name, step)
                await bench.check(f"{name} past {end}")
                assert bench.model.overflow[name]
                await bench.add(name, step, subtract=True)
                await bench.check(f"{name} back to {end}")
        await clear(ctx, dut)
        bench.model = Counters(spec)
        await bench.check("clear")

    simulate(dut, testbench)


async def clear(ctx, dut):
    """A clear: ready low for total_words cycles, then every word 0 and every flag down."""
    ctx.set(dut.clear, 1)
    await ctx.tick()
    ctx.set(dut.clear, 0)
    cycles = 0
    while not ctx.get(dut.ready):
        await ctx.tick()
        cycles += 1
    assert cycles == dut.total_words
    assert ctx.get(dut.overflow) == 0


def test_layout_matches_the_register_map():
    """Counter i's first word is the offset of counter_<name> from counter_steps in the map,
    and its words are the map's."""
    spec = BOARD_SPEC
    rmap = RegisterMap(spec, Geometry(lanes=1, groups=800, q_storage="sparse", q_capacity=100,
                                      core="compact"))
    base = rmap["counter_steps"].base
    offsets = CounterRam.word_offsets(spec)
    for name, width, _ in counter_layout(spec):
        region = rmap[f"counter_{name}"]
        assert region.base - base == offsets[name] and region.size == words(width)
    assert CounterRam(spec, uniform(spec, 44)).total_words == \
        sum(words(w) for _, w, _ in counter_layout(spec))


def test_rejects_amounts_wider_than_a_counter():
    spec = Spec()
    with pytest.raises(ConfigError, match=r"amount_bits\['steps'\] = 49: must be an integer in "
                       r"\[2, 48\] \(no wider than the counter\)"):
        CounterRam(spec, {**uniform(spec, 44), "steps": 49})
    with pytest.raises(ConfigError, match=r"amount_bits = .*: must map exactly the counters"):
        CounterRam(spec, {"steps": 2})
    assert repr(CounterRam(Spec(cells=5), uniform(Spec(cells=5), 2))).startswith(
        "CounterRam(spec=Spec(")


def test_converts_to_verilog():
    assert "module top" in verilog.convert(CounterRam(BOARD_SPEC, uniform(BOARD_SPEC, 44)),
                                           name="top",
                                           emit_src=False)
