# amaranth: UnusedElaboratable=no
"""The UART (hdl/uart.py) against a bit-level model of an 8N1 line, in Amaranth's simulator.

(The first line lets tests build components only to check their constructor.)"""

import pytest
from amaranth import Module
from amaranth.sim import Simulator
from limemu.hdl.uart import FRAME_BITS, UartRx, UartTx
from limemu.model.errors import ConfigError

DIVISOR = 4


def line_bits(byte, stop=1):
    """The 8N1 line levels of one byte: start, data least significant first, stop."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def simulate(dut, *testbenches, background=()):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for testbench in background:
        sim.add_testbench(testbench, background=True)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    sim.run()


async def drive(ctx, line, levels, divisor):
    """Hold each level for `divisor` cycles (the host's transmitter)."""
    for level in levels:
        ctx.set(line, level)
        await ctx.tick().repeat(divisor)


def collector(dut, out):
    """A background testbench recording (data, frame_error) at every valid strobe."""
    async def collect(ctx):
        async for _, _, valid, data, error in ctx.tick().sample(dut.data.valid, dut.data.payload,
                                                                dut.frame_error):
            if valid:
                out.append((data, error))
    return collect


async def read_line(ctx, line, divisor):
    """One byte from a line (the host's receiver): sample the middle of every bit."""
    await ctx.negedge(line)
    await ctx.tick().repeat(divisor // 2)
    levels = [ctx.get(line)]
    for _ in range(FRAME_BITS - 1):
        await ctx.tick().repeat(divisor)
        levels.append(ctx.get(line))
    assert levels[0] == 0 and levels[-1] == 1, f"start/stop bits {levels}"
    return sum(bit << i for i, bit in enumerate(levels[1:9]))


@pytest.mark.parametrize("divisor", [4, 5, 7])
def test_rx_receives_every_byte_back_to_back(divisor):
    """All 256 values, bits exactly `divisor` cycles long, no idle time between bytes."""
    dut = UartRx(divisor)
    got = []
    values = list(range(256))

    async def host(ctx):
        await ctx.tick().repeat(3)
        for value in values:
            await drive(ctx, dut.rx, line_bits(value), divisor)
        await ctx.tick().repeat(2 * divisor)
        assert ctx.get(dut.busy) == 0

    simulate(dut, host, background=[collector(dut, got)])
    assert got == [(value, 0) for value in values]


def test_rx_tolerates_a_slow_and_a_fast_sender():
    """A sender whose bits are one cycle shorter or longer (divisor 32: +-3 %, more than the
    bridge's 2 % baud limit) is still read right: samples are taken mid-bit."""
    divisor = 32
    dut = UartRx(divisor)
    got = []
    values = [0x00, 0xFF, 0x55, 0xAA, 0x0F, 0xF0, 0x81]

    async def host(ctx):
        await ctx.tick().repeat(3)
        for bit_cycles in (divisor - 1, divisor + 1):
            for value in values:
                await drive(ctx, dut.rx, line_bits(value), bit_cycles)
            await drive(ctx, dut.rx, [1], divisor)

    simulate(dut, host, background=[collector(dut, got)])
    assert got == [(value, 0) for value in values] * 2


def test_rx_frame_error_and_glitch():
    """A stop bit of 0 delivers the byte with frame_error; the receiver waits for the line to
    go high and then reads the next byte right. A low pulse shorter than half a bit is not a
    start bit."""
    dut = UartRx(DIVISOR)
    got = []

    async def host(ctx):
        await ctx.tick().repeat(3)
        await drive(ctx, dut.rx, line_bits(0x3C, stop=0), DIVISOR)
        await drive(ctx, dut.rx, [0, 0, 1], DIVISOR)             # the line stays low a while
        await drive(ctx, dut.rx, line_bits(0xC3), DIVISOR)
        ctx.set(dut.rx, 0)                                        # a one-cycle glitch
        await ctx.tick()
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(4 * DIVISOR)
        await drive(ctx, dut.rx, line_bits(0x5A), DIVISOR)
        await ctx.tick().repeat(2 * DIVISOR)

    simulate(dut, host, background=[collector(dut, got)])
    assert got == [(0x3C, 1), (0xC3, 0), (0x5A, 0)]


def test_tx_sends_every_byte_back_to_back():
    """All 256 values offered as soon as `ready`: each is on the line for exactly ten bits of
    `divisor` cycles, with no gap between bytes."""
    divisor = 5
    dut = UartTx(divisor)
    values = list(range(256))
    levels = []

    async def feed(ctx):
        assert ctx.get(dut.tx) == 1
        for value in values:
            ctx.set(dut.data.payload, value)
            ctx.set(dut.data.valid, 1)
            await ctx.tick().until(dut.data.ready)
        ctx.set(dut.data.valid, 0)
        await ctx.tick().until(dut.data.ready)

    async def record(ctx):
        async for _, _, tx in ctx.tick().sample(dut.tx):
            levels.append(tx)

    simulate(dut, feed, background=[record])
    start = levels.index(0)
    expected = [level for value in values for level in line_bits(value) for _ in range(divisor)]
    assert levels[start:start + len(expected)] == expected
    assert all(levels[start + len(expected):])                   # idle high afterwards


def test_tx_to_rx_loopback():
    """Tx's line into Rx (both divisor 4), bytes offered with random pauses in between."""
    m = Module()
    m.submodules.tx = tx = UartTx(DIVISOR)
    m.submodules.rx = rx = UartRx(DIVISOR)
    m.d.comb += rx.rx.eq(tx.tx)
    values = [(i * 37 + 11) % 256 for i in range(64)]
    got = []

    async def feed(ctx):
        for i, value in enumerate(values):
            ctx.set(tx.data.payload, value)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
            ctx.set(tx.data.valid, 0)
            if i % 3 == 0:
                await ctx.tick().repeat(1 + i % 7)
        await ctx.tick().repeat(FRAME_BITS * DIVISOR + 4)

    simulate(m, feed, background=[collector(rx, got)])
    assert got == [(value, 0) for value in values]


def test_tx_line_read_by_the_host_model():
    """The host's bit-level reader (the one the bridge tests use) decodes Tx."""
    dut = UartTx(DIVISOR)
    values = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80]
    got = []

    async def feed(ctx):
        for value in values:
            ctx.set(dut.data.payload, value)
            ctx.set(dut.data.valid, 1)
            await ctx.tick().until(dut.data.ready)
        ctx.set(dut.data.valid, 0)
        await ctx.tick().repeat(2 * FRAME_BITS * DIVISOR)

    async def host(ctx):
        while True:
            got.append(await read_line(ctx, dut.tx, DIVISOR))

    simulate(dut, feed, background=[host])
    assert got == values


@pytest.mark.parametrize("component", [UartRx, UartTx])
@pytest.mark.parametrize("divisor", [0, 1, 3, 4.0])
def test_divisor_checked(component, divisor):
    with pytest.raises(ConfigError, match="divisor"):
        component(divisor)
