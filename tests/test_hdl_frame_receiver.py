# amaranth: UnusedElaboratable=no
"""The bridge's receiver (hdl/frame_receiver.py) in Amaranth's simulator, bytes fed into its
stream directly (no UART): the request it holds, the words it writes into the buffer, the
skipped bytes it counts, for frames made by protocol.encode_request."""

import pytest
from amaranth.sim import Simulator
from limemu.hdl.frame_receiver import Event, FrameReceiver
from limemu.hdl.protocol import (
    ADDRESS_BYTES,
    BUFFER_BYTES,
    COMMANDS,
    CRC_BYTES,
    encode_request,
    read_payload,
    write_payload,
)
from limemu.hdl.regmap import CONTROL, Geometry, RegisterMap
from limemu.model.spec import Spec

RMAP = RegisterMap(Spec(cells=8, lanes=2, weight_bits=4),
                   Geometry(lanes=2, groups=4, q_storage="dense", q_capacity=1, table_depth=256))
TIMEOUT = 40
GAP = 3                                  # cycles between bytes (a UART gives ten bits' worth)


class Harness:
    """The receiver, a byte feeder and a recorder of the buffer's writes."""

    def __init__(self):
        self.dut = FrameReceiver(RMAP, TIMEOUT)
        self.writes = {}

    async def record_buffer(self, ctx):
        buffer = self.dut.buffer
        async for _, _, en, addr, data in ctx.tick().sample(buffer.en, buffer.addr, buffer.data):
            if en:
                self.writes[addr] = data

    async def send(self, ctx, data):
        for byte in data:
            ctx.set(self.dut.bytes.payload, byte)
            ctx.set(self.dut.bytes.valid, 1)
            await ctx.tick()
            ctx.set(self.dut.bytes.valid, 0)
            await ctx.tick().repeat(GAP)

    def request(self, ctx):
        assert ctx.get(self.dut.request.valid), "no request held"
        return ctx.get(self.dut.request.payload)

    async def release(self, ctx):
        ctx.set(self.dut.request.ready, 1)
        await ctx.tick()
        ctx.set(self.dut.request.ready, 0)
        assert not ctx.get(self.dut.request.valid)

    def run(self, testbench):
        sim = Simulator(self.dut)
        sim.add_clock(1e-6)
        sim.add_testbench(self.record_buffer, background=True)
        sim.add_testbench(testbench)
        sim.run()


WORDS = [0xDEADBEEF, 1 << CONTROL["start"], 0x12345678]
FRAMES = {
    "write": ("WRITE", write_payload(RMAP["field"].base, WORDS)),
    "write-start": ("WRITE", write_payload(RMAP["control"].base, [1 << CONTROL["start"]])),
    "read": ("READ", read_payload(RMAP["weight"].base + 3, 200)),
    "info": ("INFO", b""),
    "beyond": ("WRITE", write_payload(0x8000_0000 | RMAP["control"].base, [0])),
}


@pytest.mark.parametrize("name", list(FRAMES))
def test_receiver_holds_the_frame_it_was_sent(name):
    """Garbage, then a frame: the request holds its header, address (and whether a bit above
    the map was set), a READ's count, the start bit of its first word, a matching crc; the
    words are in the buffer; the garbage is counted; after release it hunts again."""
    command, payload = FRAMES[name]
    frame = encode_request(command, 77, payload)
    harness = Harness()

    async def testbench(ctx):
        await harness.send(ctx, b"\x00\x13" + frame)
        r = harness.request(ctx)
        assert (r.event, r.command, r.seq, r.length) == (Event.FRAME, COMMANDS[command], 77,
                                                          len(payload))
        assert r.seq_received and r.crc_ok
        assert ctx.get(harness.dut.skipped.count) == 2
        if payload:
            address = int.from_bytes(payload[:ADDRESS_BYTES], "little")
            assert r.address == address % 2**RMAP.address_bits
            assert r.address_beyond == (address >> RMAP.address_bits != 0)
        if command == "READ":
            assert r.count == 200
        if command == "WRITE":
            first = int.from_bytes(payload[ADDRESS_BYTES:ADDRESS_BYTES + 4], "little")
            assert r.first_starts == (first >> CONTROL["start"] & 1)
        await harness.release(ctx)
        assert ctx.get(harness.dut.active)          # the skipped bytes are not reported yet
        ctx.set(harness.dut.skipped.taken, 1)
        await ctx.tick()
        assert not ctx.get(harness.dut.active)

    harness.run(testbench)
    if command == "WRITE":
        words = [int.from_bytes(payload[i:i + 4], "little")
                 for i in range(ADDRESS_BYTES, len(payload), 4)]
        assert harness.writes == dict(enumerate(words))


def test_receiver_reports_a_crc_that_does_not_match():
    frame = bytearray(encode_request("WRITE", 5, write_payload(0, WORDS)))
    frame[-CRC_BYTES] ^= 0x01

    async def testbench(ctx):
        await harness.send(ctx, frame)
        r = harness.request(ctx)
        assert r.event == Event.FRAME and not r.crc_ok

    harness = Harness()
    harness.run(testbench)


def test_receiver_refuses_a_long_frame_at_its_header_and_skips_the_rest():
    """A length past the buffer is held at once (TOO_LONG); the bytes that follow while it is
    held are skipped and counted."""
    header = encode_request("WRITE", 9, bytes(BUFFER_BYTES + 4))[:5]

    async def testbench(ctx):
        await harness.send(ctx, header)
        assert harness.request(ctx).event == Event.TOO_LONG
        await harness.send(ctx, bytes(10))
        assert ctx.get(harness.dut.skipped.count) == 10

    harness = Harness()
    harness.run(testbench)


@pytest.mark.parametrize("cut", [2, 3, 8, -1])
def test_receiver_drops_a_frame_that_stops_arriving(cut):
    """Silence for the timeout inside a frame: TRUNCATED, with the seq if it arrived."""
    frame = encode_request("WRITE", 33, write_payload(0, WORDS))[:cut]

    async def testbench(ctx):
        await harness.send(ctx, frame)
        assert not ctx.get(harness.dut.request.valid)
        await ctx.tick().repeat(TIMEOUT)
        r = harness.request(ctx)
        assert r.event == Event.TRUNCATED
        assert r.seq_received == (len(frame) > 2) and (not r.seq_received or r.seq == 33)

    harness = Harness()
    harness.run(testbench)


def test_receiver_reports_garbage_after_silence():
    async def testbench(ctx):
        await harness.send(ctx, b"\x01\x02\x03")
        await ctx.tick().repeat(TIMEOUT)
        assert harness.request(ctx).event == Event.GARBAGE
        assert ctx.get(harness.dut.skipped.count) == 3

    harness = Harness()
    harness.run(testbench)
