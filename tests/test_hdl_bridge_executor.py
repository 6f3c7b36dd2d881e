# amaranth: UnusedElaboratable=no
"""The bridge's executor (hdl/bridge_executor.py) in Amaranth's simulator: requests put on its
stream as the receiver would hold them, the buffer a memory, the core a Python register file
answering reads three cycles late; the responses and words it hands on, and the bus accesses
it makes (none for a refused request), against the protocol's rules."""

from collections import deque

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator
from limemu.hdl.bridge_executor import BridgeExecutor
from limemu.hdl.frame_receiver import Event
from limemu.hdl.protocol import (
    ADDRESS_BYTES,
    COMMANDS,
    MAX_WORDS,
    READ_LENGTH,
    STATUS,
    info_words,
    read_refusal,
    write_refusal,
)
from limemu.hdl.regmap import Geometry, RegisterMap
from limemu.model.spec import Spec

SPEC = Spec(cells=8, lanes=2, weight_bits=4)
GEOMETRY = Geometry(lanes=2, groups=4, q_storage="dense", q_capacity=1, table_depth=256)
RMAP = RegisterMap(SPEC, GEOMETRY)
INFO = info_words(SPEC, GEOMETRY, clock_hz=1000, baud=10)
BUFFER = [0x1000 + i for i in range(MAX_WORDS)]
READ_LATENCY = 3


def request(command, seq, address=0, words=0, count=0, **fields):
    """The receiver's request of a frame (its crc matched unless crc_ok=0)."""
    length = {"INFO": 0, "WRITE": ADDRESS_BYTES + 4 * words, "READ": READ_LENGTH}[command]
    out = {"event": Event.FRAME, "command": COMMANDS[command], "seq": seq, "seq_received": 1,
           "length": length, "address": address, "address_beyond": 0, "count": count,
           "first_starts": 0, "crc_ok": 1}
    out.update(fields)
    return out


class Harness:
    def __init__(self, running=False):
        self.dut = BridgeExecutor(RMAP, INFO)
        self.top = Module()
        self.top.submodules.executor = self.dut
        self.top.submodules.buffer = buffer = Memory(shape=32, depth=MAX_WORDS, init=BUFFER)
        wiring.connect(self.top, self.dut.buffer, buffer.read_port())
        self.running = running
        self.writes, self.reads, self.responses, self.words = [], [], [], []

    def value(self, address):
        return (address * 0x9E3779B1) & 0xFFFFFFFF

    async def core(self, ctx):
        bus, answers, cycle = self.dut.core, deque(), 0
        ctx.set(bus.busy, self.running)
        async for _, _, we, re, addr, wdata in ctx.tick().sample(bus.we, bus.re, bus.addr,
                                                                 bus.wdata):
            cycle += 1
            if we:
                self.writes.append((addr, wdata))
            if re:
                self.reads.append(addr)
                answers.append((cycle - 1 + READ_LATENCY, self.value(addr)))
            answer = answers and answers[0][0] == cycle
            ctx.set(bus.rdata, answers.popleft()[1] if answer else 0)
            ctx.set(bus.rack, bool(answer))

    async def transmitter(self, ctx):
        dut = self.dut
        ctx.set(dut.tx_idle, 1)
        ctx.set(dut.response.ready, 1)
        ctx.set(dut.words.ready, 1)
        async for _, _, valid, response, word_valid, word in ctx.tick().sample(
                dut.response.valid, dut.response.payload, dut.words.valid, dut.words.payload):
            if valid:
                self.responses.append((response.status, response.seq, response.length))
            if word_valid:
                self.words.append(word)

    async def execute(self, ctx, fields):
        """Hold the request until the executor releases it; its response and words."""
        first_response, first_word = len(self.responses), len(self.words)
        ctx.set(self.dut.request.payload, fields)
        ctx.set(self.dut.request.valid, 1)
        await ctx.tick().until(self.dut.request.ready)
        ctx.set(self.dut.request.valid, 0)
        await ctx.tick()
        assert not ctx.get(self.dut.active)
        responses = self.responses[first_response:]
        assert len(responses) == 1, responses
        return responses[0], self.words[first_word:]

    def run(self, testbench):
        sim = Simulator(self.top)
        sim.add_clock(1e-6)
        sim.add_testbench(self.core, background=True)
        sim.add_testbench(self.transmitter, background=True)
        sim.add_testbench(testbench)
        sim.run()


def test_executor_applies_a_write_once_and_answers_its_duplicate():
    base = RMAP["field"].base

    async def testbench(ctx):
        ok, _ = await harness.execute(ctx, request("WRITE", 4, base, words=3))
        assert ok == (STATUS["OK"], 4, 0)
        again, _ = await harness.execute(ctx, request("WRITE", 4, base, words=3))
        assert again == (STATUS["DUPLICATE"], 4, 0)

    harness = Harness()
    harness.run(testbench)
    assert harness.writes == [(base + i, BUFFER[i]) for i in range(3)]


def test_executor_reads_and_hands_the_words_on():
    base = RMAP["weight"].base

    async def testbench(ctx):
        ok, words = await harness.execute(ctx, request("READ", 8, base, count=5))
        assert ok == (STATUS["OK"], 8, 20)
        assert words == [harness.value(base + i) for i in range(5)]

    harness = Harness()
    harness.run(testbench)
    assert harness.reads == [base + i for i in range(5)]


def test_executor_answers_info_with_the_build():
    async def testbench(ctx):
        ok, words = await harness.execute(ctx, request("INFO", 2))
        assert ok == (STATUS["OK"], 2, 4 * len(INFO))
        assert words == INFO

    harness = Harness()
    harness.run(testbench)


REFUSED = {
    "bad-crc": (request("WRITE", 1, RMAP["field"].base, words=1, crc_ok=0), "BAD_CRC"),
    "unknown-command": ({**request("INFO", 1), "command": 0x7F}, "UNKNOWN_COMMAND"),
    "bad-length": ({**request("WRITE", 1, words=1), "length": ADDRESS_BYTES + 3},
                   "BAD_LENGTH"),
    "read-too-many": (request("READ", 1, count=MAX_WORDS + 1), "BAD_LENGTH"),
    "past-the-map": (request("WRITE", 1, (1 << RMAP.address_bits) - 2, words=3),
                     "BAD_ADDRESS"),
    "read-only": (request("WRITE", 1, RMAP["magic"].base, words=1), "BAD_ADDRESS"),
    "truncated": ({**request("INFO", 6), "event": Event.TRUNCATED}, "TRUNCATED"),
    "too-long": ({**request("INFO", 6), "event": Event.TOO_LONG}, "BAD_LENGTH"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_executor_refuses_without_touching_the_bus(case):
    fields, status = REFUSED[case]

    async def testbench(ctx):
        response, words = await harness.execute(ctx, fields)
        assert response == (STATUS[status], fields["seq"], 0) and words == []

    harness = Harness()
    harness.run(testbench)
    assert harness.writes == [] and harness.reads == []


@pytest.mark.parametrize("command", ["WRITE", "READ"])
def test_executor_follows_the_run_rule(command):
    """During a run: memories are BUSY for both directions, registers can be read, and only a
    control write without start passes (protocol.write_refusal / read_refusal)."""
    cases = [(RMAP["field"].base, 2), (RMAP["status"].base, 1), (RMAP["control"].base, 1)]

    async def testbench(ctx):
        for seq, (address, n) in enumerate(cases):
            fields = (request("WRITE", seq, address, words=n) if command == "WRITE" else
                      request("READ", seq, address, count=n))
            response, _ = await harness.execute(ctx, fields)
            words = BUFFER[:n]
            expected = (write_refusal(RMAP, address, words, True) if command == "WRITE" else
                        read_refusal(RMAP, address, n, True)) or "OK"
            assert STATUS[expected] == response[0], (command, address, response)

    harness = Harness(running=True)
    harness.run(testbench)
