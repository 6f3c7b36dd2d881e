# amaranth: UnusedElaboratable=no
"""The compact core's counters (hdl/counter_store.py) in Amaranth's simulator, against the golden
model's counters (python_model.counters.Counters) fed the same increments: every word the host
reads, the overflow flags, the clear, the margin of the accumulators, the register-map placement.
"""

import random
import zlib

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from hdl.counter_store import ACC_EXTRA_BITS, MARGIN, CounterStore
from hdl.regmap import Geometry, RegisterMap, to_words, words
from python_model.counters import Counters, counter_layout
from python_model.errors import ConfigError
from python_model.spec import Spec

#: the iCE40UP5K build the store is sized for
BOARD_SPEC = Spec(cells=800, weight_bits=1, barrier_bits=12, barrier_frac_bits=6, gain_bits=10,
                  gain_frac_bits=4, field_bits=10, q_bits=2, mantissa_bits=12)


def board_increment_bits(spec):
    event = 2
    return {"steps": event, "evaluations": event, "up_moves": event, "down_moves": event,
            "blocked_moves": event, "inadmissible": event, "heat_net": spec.tilt_bits + 3,
            "heat_abs": spec.tilt_bits + 3, "barrier_work": spec.barrier_bits + 12,
            "anneal_work": spec.gain_bits + spec.loss_bits + 4, "field_adds": 18}


def wide_increment_bits(spec):
    """Extremes: accumulators as wide as their counters (the top word's exact sum reaches the
    ends of what the overflow check assumes), amounts over three words, A = 33, one-bit
    increments."""
    widths = {name: width for name, width, _ in counter_layout(spec)}
    return {"steps": 25, "evaluations": 3, "up_moves": 2, "down_moves": 1, "blocked_moves": 9,
            "inadmissible": 17, "heat_net": widths["heat_net"] - ACC_EXTRA_BITS,
            "heat_abs": 60, "barrier_work": 30,
            "anneal_work": widths["anneal_work"] - ACC_EXTRA_BITS, "field_adds": 1}


CONFIGS = {
    "board": (BOARD_SPEC, board_increment_bits(BOARD_SPEC)),
    "wide": (Spec(), wide_increment_bits(Spec())),
}


def make(config):
    spec, bits = CONFIGS[config]
    return spec, CounterStore(spec, bits)


def simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def expected_words(dut, values):
    """The RAM image of `values` {name: hardware value}: two's complement over whole words."""
    image = []
    for name, width, _ in dut.layout:
        image += to_words(values[name], words(width) * 32)
    return image


def increment_range(dut, name):
    """(lo, hi) of the increments a test gives counter `name` (nonnegative if unsigned)."""
    bits = dut.increment_bits[name]
    signed = dict((n, s) for n, _, s in dut.layout)[name]
    return (-(1 << (bits - 1)) if signed else 0), (1 << (bits - 1)) - 1


class Bench:
    """Drives the store and a golden model side by side; every host read is checked against
    the RAM's contents in the cycle of the read (0 while a clear is zeroing)."""

    def __init__(self, ctx, dut, spec):
        self.ctx, self.dut, self.spec = ctx, dut, spec
        self.model = Counters(spec)
        self.cycle = 0
        self.clear_until = -1            # reads up to this cycle answer 0
        self.reads_checked = 0
        self.zero_reads_of_nonzero_words = 0
        self.max_outside = 0             # longest run of an accumulator outside its window
        self.outside = [0] * len(dut.layout)
        self.watch = False
        self.image = None                # the RAM when `settled` was seen

    async def tick(self, incs=None, *, clear=False, flush=False, read=None):
        ctx, dut = self.ctx, self.dut
        incs = incs or {}
        for name, _, _ in dut.layout:
            ctx.set(getattr(dut, f"inc_{name}"), incs.get(name, 0))
        ctx.set(dut.clear, clear)
        ctx.set(dut.flush, flush)
        ctx.set(dut.read_en, read is not None)
        if read is not None:
            ctx.set(dut.read_addr, read)
        if clear:
            self.model = Counters(self.spec)             # this cycle's increments are dropped
            self.clear_until = self.cycle + dut.total_words
        else:
            for name, value in incs.items():
                self.model.add(name, value)
        expected = None
        if read is not None:
            stored = ctx.get(dut.data[read])
            expected = 0 if self.cycle <= self.clear_until else stored
            if expected == 0 and stored != 0:
                self.zero_reads_of_nonzero_words += 1
        if self.watch:
            self._watch_accumulators()
        await ctx.tick()
        self.cycle += 1
        if expected is not None:
            got = ctx.get(dut.read_data)
            assert got == expected, (f"cycle {self.cycle}: read of word {read} gave "
                                     f"{got:#x}, expected {expected:#x}; {dut!r}")
            self.reads_checked += 1
        return expected

    def _watch_accumulators(self):
        for i, (name, _, _) in enumerate(self.dut.layout):
            a = self.dut.accumulator_bits[name]
            value = self.ctx.get(self.dut._acc[i])
            assert not self.ctx.get(self.dut._acc_overflow[i]), \
                f"cycle {self.cycle}: accumulator of {name} overflowed ({value})"
            if -(1 << (a - 2)) <= value < 1 << (a - 2):
                self.outside[i] = 0
            else:
                self.outside[i] += 1
                self.max_outside = max(self.max_outside, self.outside[i])

    async def settle(self, rng=None, limit=400):
        """Strobe `flush` and wait for `settled` (random host reads meanwhile if rng)."""
        await self.tick(flush=True)
        for _ in range(limit):
            if self.ctx.get(self.dut.settled):
                # the RAM holds the counts in the very cycle `settled` is high
                self.image = [self.ctx.get(self.dut.data[i])
                              for i in range(self.dut.total_words)]
                return
            read = None
            if rng is not None and rng.random() < 0.3:
                read = rng.randrange(self.dut.total_words)
            await self.tick(read=read)
        raise AssertionError(f"not settled {limit} cycles after flush; {self.dut!r}")

    async def read_all(self):
        got = []
        for address in range(self.dut.total_words):
            got.append(await self.tick(read=address))
        return got

    async def check(self, exits=None):
        """Right after `settle`: the RAM when `settled` rose and every word read equal the
        model's hardware values; each flag lies between the model's flag now and the model's
        flag checked every cycle (`exits`: the counter left its range at some cycle)."""
        assert self.ctx.get(self.dut.settled)
        want = expected_words(self.dut, self.model.hardware())
        assert self.image == want, f"RAM when settled; {self.dut!r}"
        got = await self.read_all()
        for address, (g, w) in enumerate(zip(got, want)):
            assert g == w, (f"word {address}: {g:#x}, expected {w:#x}; "
                            f"model {self.model.hardware()}; {self.dut!r}")
        self.model.check_overflow()
        flags = self.ctx.get(self.dut.overflow)
        for i, (name, _, _) in enumerate(self.dut.layout):
            flag = bool(flags >> i & 1)
            now = self.model.overflow[name]
            ever = now if exits is None else (now or exits[name])
            assert now <= flag <= ever, (f"overflow flag of {name}: {flag}, model now {now}, "
                                         f"ever {ever}; {self.dut!r}")


def in_range(layout, name, value):
    width, signed = {n: (w, s) for n, w, s in layout}[name]
    return (-(1 << (width - 1)) <= value < 1 << (width - 1)) if signed else \
        0 <= value < 1 << width


@pytest.mark.parametrize("config", list(CONFIGS))
def test_counter_store_matches_model_on_random_streams(config):
    """Random increments (mostly 0, some large, both signs for signed counters, phases of the
    largest magnitude every cycle that force threshold flushes), random flush strobes and host
    reads, clears in the middle; checked after every settle."""
    spec, dut = make(config)
    rng = random.Random(zlib.crc32(config.encode()))       # seeded by the configuration
    names = [name for name, _, _ in dut.layout]

    async def testbench(ctx):
        bench = Bench(ctx, dut, spec)
        bench.watch = True
        exits = dict.fromkeys(names, False)

        def note_exits():
            for name in names:
                if not in_range(dut.layout, name, bench.model.exact[name]):
                    exits[name] = True

        await bench.tick(clear=True)
        for block in range(8):
            maximal = block % 2 == 1                   # no flush strobes: thresholds
            negative = {name: rng.random() < 0.5 for name in names}
            for cycle in range(400):
                incs = {}
                for name in names:
                    lo, hi = increment_range(dut, name)
                    r = rng.random()
                    if maximal and r < 0.9:
                        incs[name] = lo if lo and negative[name] else hi
                    elif r < 0.7:
                        incs[name] = 0
                    elif r < 0.9:
                        incs[name] = min(max(rng.randint(-3, 3), lo), hi)
                    else:
                        incs[name] = rng.randint(lo, hi)
                read = rng.randrange(dut.total_words) if rng.random() < 0.2 else None
                clear = block in (3, 4) and cycle == 150
                if clear:
                    exits = dict.fromkeys(names, False)
                await bench.tick(incs, clear=clear, flush=not maximal and rng.random() < 0.02,
                                 read=read)
                note_exits()
            await bench.settle(rng)
            await bench.check(exits)
        assert bench.reads_checked > 700
        assert bench.max_outside > 0               # threshold flushes happened

    simulate(dut, testbench)


def preload(ctx, dut, name, value):
    """Write counter `name`'s words of `value` into the RAM (the test hook)."""
    width = dict((n, w) for n, w, _ in dut.layout)[name]
    for j, word in enumerate(to_words(value, words(width) * 32)):
        ctx.set(dut.data[dut.offsets[name] + j], word)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_counters_wrap_and_flags_stick(config):
    """Counters started near the ends of their ranges (preloaded RAM) are driven past them:
    values wrap modulo 2**width, the flag is set at the flush and stays; clear resets both."""
    spec, dut = make(config)
    layout = {name: (width, signed) for name, width, signed in dut.layout}

    async def testbench(ctx):
        bench = Bench(ctx, dut, spec)
        starts = {}
        for name, (width, signed) in layout.items():
            top = 1 << (width - 1) if signed else 1 << width
            starts[name] = top - 5
        starts["up_moves"] = 0                                      # unsigned, goes below 0
        starts["anneal_work"] = -(1 << (layout["anneal_work"][0] - 1)) + 3   # signed, below
        starts["field_adds"] = 17                                   # stays inside
        for name, value in starts.items():
            preload(ctx, dut, name, value)
        bench.model = Counters.from_exact(spec, starts)
        direction = {name: 1 for name in layout}
        direction.update(up_moves=-1, anneal_work=-1, field_adds=1)
        for cycle in range(40):
            incs = {}
            for name in layout:
                bits = dut.increment_bits[name]         # the port's whole range
                extreme = -(1 << (bits - 1)) if direction[name] < 0 else (1 << (bits - 1)) - 1
                incs[name] = extreme if cycle % 3 == 0 else 0
            incs["field_adds"] = 0
            await bench.tick(incs)
        await bench.settle()
        await bench.check()
        bench.model.check_overflow()
        flags = ctx.get(dut.overflow)
        for i, name in enumerate(layout):
            assert bool(flags >> i & 1) == bench.model.overflow[name], name
        assert not flags >> list(layout).index("field_adds") & 1
        assert flags >> list(layout).index("steps") & 1
        # sticky: more counting changes the values, not the flags
        for _ in range(10):
            await bench.tick({"steps": 1})
        await bench.settle()
        await bench.check()
        assert ctx.get(dut.overflow) == flags
        await bench.tick(clear=True)
        assert ctx.get(dut.overflow) == 0
        for _ in range(dut.total_words + 1):
            await bench.tick()
        assert ctx.get(dut.settled)
        await bench.settle()
        await bench.check()

    simulate(dut, testbench)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_reads_during_a_clear_answer_zero(config):
    """Counts in every word, then clear: each read from the clear cycle on answers 0, also of
    words the background zeroing has not reached yet; afterwards the RAM holds zeros."""
    spec, dut = make(config)

    async def testbench(ctx):
        bench = Bench(ctx, dut, spec)
        for name, _, _ in dut.layout:
            preload(ctx, dut, name, -1)                  # all ones: nonzero everywhere
        bench.model = Counters.from_exact(spec, {name: -1 for name, _, _ in dut.layout})
        await bench.tick(clear=True, read=dut.total_words - 1)
        for address in reversed(range(dut.total_words)):  # ahead of the zeroing
            assert await bench.tick({"steps": 1}, read=address) == 0
        assert bench.zero_reads_of_nonzero_words >= dut.total_words // 2
        await bench.tick()
        assert all(ctx.get(dut.data[i]) == 0 for i in range(dut.total_words + 1))
        assert ctx.get(dut.overflow) == 0
        await bench.settle()
        await bench.check()

    simulate(dut, testbench)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_margin_holds_when_every_counter_asks_at_once(config):
    """Every counter gets its most negative increment every cycle, right after a clear: all
    accumulators leave their windows together, again and again. None overflows; none waits
    longer than `worst_wait` (<= MARGIN) cycles; the counts are exact."""
    spec, dut = make(config)
    assert dut.worst_wait <= MARGIN == 127
    assert dut.accumulator_bits == {name: b + 8 for name, b in dut.increment_bits.items()}

    async def testbench(ctx):
        bench = Bench(ctx, dut, spec)
        bench.watch = True
        await bench.tick(clear=True)
        incs = {name: -(1 << (bits - 1)) for name, bits in dut.increment_bits.items()}
        for _ in range(1200):
            await bench.tick(incs)
        assert 0 < bench.max_outside <= dut.worst_wait
        await bench.settle()
        await bench.check()

    simulate(dut, testbench)


def test_largest_amounts_at_the_ends_of_the_range_wrap_exactly():
    """Accumulators as wide as their counters (the wide configuration), grown to the ends of
    their range while host reads keep the engine waiting, added to counters at the ends of
    theirs: the top word's exact sum reaches its extremes, the values wrap, the flags are set."""
    spec, dut = make("wide")
    widths = {name: width for name, width, _ in dut.layout}
    bits = dut.increment_bits
    assert dut.accumulator_bits["heat_net"] == widths["heat_net"]
    assert dut.accumulator_bits["anneal_work"] == widths["anneal_work"]

    async def testbench(ctx):
        bench = Bench(ctx, dut, spec)
        bench.watch = True
        starts = {"heat_net": (1 << (widths["heat_net"] - 1)) - 1,
                  "anneal_work": -(1 << (widths["anneal_work"] - 1))}
        for name, value in starts.items():
            preload(ctx, dut, name, value)
        bench.model = Counters.from_exact(spec, starts)
        # 255 largest positive and 256 largest negative increments: the accumulators end
        # at 255 * (2**(A-9) - 1) and at -2**(A-1), their extremes
        incs = {"heat_net": (1 << (bits["heat_net"] - 1)) - 1,
                "anneal_work": -(1 << (bits["anneal_work"] - 1))}
        for cycle in range(256):
            await bench.tick(incs if cycle < 255 else {"anneal_work": incs["anneal_work"]},
                             read=cycle % dut.total_words)
        assert ctx.get(dut._acc[6]) == 255 * incs["heat_net"]
        assert ctx.get(dut._acc[9]) == -(1 << (widths["anneal_work"] - 1))
        await bench.settle()
        await bench.check()
        assert bench.model.hardware()["anneal_work"] == 0           # -2**w wraps to 0
        assert ctx.get(dut.overflow) == (1 << 6) | (1 << 9)

    simulate(dut, testbench)


def test_starved_engine_sets_the_flag_instead_of_wrapping():
    """A host reading every cycle keeps the engine from the RAM: an accumulator that then
    overflows sets its counter's flag (the count is no longer exact, and says so)."""
    spec, dut = make("board")
    bits = dut.increment_bits["heat_net"]
    index = [name for name, _, _ in dut.layout].index("heat_net")

    async def testbench(ctx):
        bench = Bench(ctx, dut, spec)
        await bench.tick(clear=True)
        for _ in range(dut.total_words + 1):
            await bench.tick()
        for cycle in range(400):
            await bench.tick({"heat_net": (1 << (bits - 1)) - 1},
                             read=cycle % dut.total_words)
        assert ctx.get(dut.overflow) == 1 << index
        await bench.settle()
        assert ctx.get(dut.overflow) == 1 << index

    simulate(dut, testbench)


@pytest.mark.parametrize("spec", [BOARD_SPEC, Spec(), Spec(cells=5)],
                         ids=["board", "default", "cells=5"])
def test_word_offsets_are_the_register_maps(spec):
    """Word index of a counter = offset of register counter_<name> from counter_steps."""
    rmap = RegisterMap(spec, Geometry(lanes=spec.lanes, groups=spec.cells,
                                      q_storage="dense", q_capacity=0))
    base = rmap["counter_steps"].base
    offsets = CounterStore.word_offsets(spec)
    assert list(offsets) == [name for name, _, _ in counter_layout(spec)]
    for name, width, signed in counter_layout(spec):
        region = rmap[f"counter_{name}"]
        assert region.base - base == offsets[name]
        assert region.size == words(width) and region.signed == signed
    dut = CounterStore(spec, board_increment_bits(BOARD_SPEC))
    assert dut.total_words == sum(words(w) for _, w, _ in counter_layout(spec))
    assert dut.offsets == offsets


def test_constructor_checks_increment_bits():
    bits = board_increment_bits(BOARD_SPEC)
    with pytest.raises(ConfigError, match="must map exactly the counters"):
        CounterStore(BOARD_SPEC, {k: v for k, v in bits.items() if k != "steps"})
    with pytest.raises(ConfigError, match=r"increment_bits\['steps'\] = 41: must be an integer "
                                          r"in \[1, 40\]"):
        CounterStore(BOARD_SPEC, dict(bits, steps=41))
    with pytest.raises(ConfigError, match=r"increment_bits\['steps'\] = True"):
        CounterStore(BOARD_SPEC, dict(bits, steps=True))
    assert "increment_bits={'steps': 2" in repr(CounterStore(BOARD_SPEC, bits))


@pytest.mark.parametrize("config", list(CONFIGS))
def test_converts_to_verilog(config):
    _, dut = make(config)
    text = verilog.convert(dut, name="counter_store")
    assert "module counter_store" in text and "inc_anneal_work" in text
