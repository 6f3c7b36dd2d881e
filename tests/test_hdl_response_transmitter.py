"""The bridge's transmitter (hdl/response_transmitter.py) in Amaranth's simulator: a response
header and words fed into its streams, bytes taken from its output with stalls; every response
must be protocol.encode_response's, byte for byte."""

import struct

import numpy as np
import pytest
from amaranth.sim import Simulator
from limemu.hdl.protocol import STATUS, encode_response
from limemu.hdl.response_transmitter import ResponseTransmitter

CASES = [("OK", 1, 0, []), ("BAD_CRC", 200, 7, []), ("OK", 3, 255, [0xDEADBEEF]),
         ("OK", 9, 1, [0, 0xFFFFFFFF, 0x01020304, 0x80000000, 0x5A5A5AA5])]


@pytest.mark.parametrize("status,seq,skipped,words", CASES,
                         ids=[f"{s}-{len(w)}words" for s, _, _, w in CASES])
def test_transmitter_sends_the_protocols_response(status, seq, skipped, words):
    dut = ResponseTransmitter()
    rng = np.random.default_rng(len(words))
    received = bytearray()
    taken = []

    async def executor(ctx):
        assert ctx.get(dut.idle)
        ctx.set(dut.skipped.count, skipped)
        ctx.set(dut.response.payload, {"status": STATUS[status], "seq": seq,
                                       "length": 4 * len(words)})
        ctx.set(dut.response.valid, 1)
        _, _, ready, taken_now = await ctx.tick().sample(dut.response.ready, dut.skipped.taken)
        assert ready and taken_now
        ctx.set(dut.response.valid, 0)
        ctx.set(dut.skipped.count, 0)            # the receiver counts again from here
        for word in words:
            await ctx.tick().repeat(int(rng.integers(0, 40)))
            ctx.set(dut.words.payload, word)
            ctx.set(dut.words.valid, 1)
            await ctx.tick().until(dut.words.ready)
            ctx.set(dut.words.valid, 0)
            taken.append(word)

    async def uart(ctx):
        """Takes a byte every few cycles, as a UART would."""
        while True:
            ctx.set(dut.bytes.ready, 0)
            for _ in range(int(rng.integers(1, 6))):     # (no .repeat(): left pending at the end)
                await ctx.tick()
            ctx.set(dut.bytes.ready, 1)
            _, _, valid, byte = await ctx.tick().sample(dut.bytes.valid, dut.bytes.payload)
            if valid:
                received.append(byte)

    async def host(ctx):
        await ctx.tick().repeat(5)
        expected = encode_response(status, seq, skipped, struct.pack(f"<{len(words)}I", *words))
        for _ in range(20_000):
            if len(received) == len(expected) and ctx.get(dut.idle):
                break
            await ctx.tick()
        assert bytes(received) == expected

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(executor, background=True)
    sim.add_testbench(uart, background=True)
    sim.add_testbench(host)
    sim.run()
    assert taken == words
