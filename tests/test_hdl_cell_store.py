# amaranth: UnusedElaboratable=no
"""The compact core's memories in Amaranth's simulator: the single-port RAM (hdl/single_port_ram.py)
and the cell store of 16-bit planes (hdl/cell_store.py), against a Python dict."""

import pytest
from amaranth import Elaboratable, Module
from amaranth.back import rtlil
from amaranth.sim import Simulator
from amaranth_boards.icebreaker import ICEBreakerPlatform
from limemu.hdl.cell_store import WORD_BITS, CellLayout, CellStore
from limemu.hdl.regmap import Geometry, RegisterMap
from limemu.hdl.single_port_ram import SinglePortRam, spram_tiles, uses_spram
from limemu.model.errors import ConfigError
from limemu.model.spec import Spec


def simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_single_port_ram_reads_writes_and_holds(rng):
    """Random reads and writes; rdata answers the cycle after a read and holds through idle
    and write cycles until the next read."""
    depth, width = 100, 12
    dut = SinglePortRam(width=width, depth=depth)
    contents = {}

    async def testbench(ctx):
        expected = None
        for _ in range(2000):
            kind = rng.random()
            address = int(rng.integers(depth))
            ctx.set(dut.we, 0)
            ctx.set(dut.re, 0)
            ctx.set(dut.addr, address)
            if kind < 0.4:
                value = int(rng.integers(1 << width))
                ctx.set(dut.wdata, value)
                ctx.set(dut.we, 1)
                contents[address] = value
                read = None
            elif kind < 0.8:
                ctx.set(dut.re, 1)
                read = contents.get(address, 0)
            else:
                read = None                              # idle
            await ctx.tick()
            if read is not None:
                expected = read
            if expected is not None:
                assert ctx.get(dut.rdata) == expected

    simulate(dut, testbench)


def test_spram_is_chosen_only_on_an_ultraplus_for_large_rams():
    platform = ICEBreakerPlatform()
    assert uses_spram(platform, 16, 16384) and not uses_spram(platform, 16, 512)
    assert not uses_spram(None, 16, 16384)
    assert spram_tiles(12, 38400) == 3 and spram_tiles(32, 1024) == 2

    class Top(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.ram = SinglePortRam(width=20, depth=20000)
            return m

    text = rtlil.convert(Top(), platform=platform, ports=[])
    assert text.count("SB_SPRAM256KA") >= 4             # 2 wide x 2 deep


def test_single_port_ram_checks_its_arguments():
    with pytest.raises(ConfigError, match=r"width = 0: must be a positive integer"):
        SinglePortRam(width=0, depth=4)


def layout_of(**spec):
    s = Spec(cells=10, **spec)
    rmap = RegisterMap(s, Geometry(lanes=1, groups=10, q_storage="sparse", q_capacity=40,
                                   core="compact"))
    return rmap, CellLayout(rmap)


def test_layout_gives_every_per_slot_region_its_planes():
    rmap, layout = layout_of(field_bits=20, cell_counter_bits=8)
    assert list(layout.regions) == ["weight", "valid", "diag", "field", "bias", "tilt",
                                    "column", "cell_up", "cell_down"]
    first = 0
    for name, (plane, count) in layout.regions.items():
        assert plane == first and count == -(-rmap[name].width // WORD_BITS)
        first += count
    assert layout.depth == layout.planes << 4              # 16 slots (groups_p2)


@pytest.mark.parametrize("field_bits", [16, 33])
def test_cell_store_sequences_match_a_dict(field_bits, rng):
    """Random reads and writes of whole entries (1 to 3 planes), started back to back in the
    done cycle or after gaps: every read returns what was written, done comes `count` cycles
    after start, busy in between."""
    _, layout = layout_of(field_bits=field_bits)
    dut = CellStore(layout)
    slots = 1 << layout.slot_bits
    contents = {}

    async def testbench(ctx):
        pending = None                                     # (expected, done cycle)
        cycle = 0
        for _ in range(600):
            name = str(rng.choice(list(layout.regions)))
            plane, count = layout.regions[name]
            slot = int(rng.integers(slots))
            write = bool(rng.random() < 0.5)
            value = sum(int(rng.integers(1 << WORD_BITS)) << (WORD_BITS * k)
                        for k in range(count))
            ctx.set(dut.start, 1)
            ctx.set(dut.plane, plane)
            ctx.set(dut.count, count)
            ctx.set(dut.slot, slot)
            ctx.set(dut.write, write)
            ctx.set(dut.wdata, value)
            assert not ctx.get(dut.busy)
            await ctx.tick()
            cycle += 1
            ctx.set(dut.start, 0)
            started = cycle
            while not ctx.get(dut.done):
                assert ctx.get(dut.busy)
                await ctx.tick()
                cycle += 1
            assert cycle - started == count - 1
            if write:
                for k in range(count):
                    contents[plane + k, slot] = (value >> (WORD_BITS * k)) & 0xFFFF
            else:
                expected = sum(contents.get((plane + k, slot), 0) << (WORD_BITS * k)
                               for k in range(count))
                assert ctx.get(dut.rdata) & ((1 << (count * WORD_BITS)) - 1) == expected
                pending = expected
            if rng.random() < 0.3:                         # a gap: rdata holds
                await ctx.tick()
                cycle += 1
                if pending is not None and not write:
                    assert ctx.get(dut.rdata) & ((1 << (count * WORD_BITS)) - 1) == pending

    simulate(dut, testbench)
