# amaranth: UnusedElaboratable=no
"""The host bridge (hdl/host_bridge.py: receiver, executor, transmitter) in Amaranth's simulator: requests sent bit by bit on
``rx``, responses decoded from ``tx``, a Python register file on the bus side that answers
reads three cycles late (like the core) and logs every write. Every response is compared byte
for byte with `protocol.encode_response`; every refused request must leave the bus untouched.

(The first line lets tests build components only to check their constructor.)"""

import re
import struct
from collections import deque

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from limemu.hdl.board_top import BoardTop
from limemu.hdl.host_bridge import HostBridge
from limemu.hdl.protocol import (
    BUFFER_BYTES,
    CRC_BYTES,
    INFO_FIELDS,
    MAX_WORDS,
    REQUEST_HEADER,
    REQUEST_SYNC,
    RESPONSE_HEADER,
    RESPONSE_SYNC,
    STATUS_NAMES,
    bursts,
    crc16,
    encode_request,
    encode_response,
    info_words,
    read_payload,
    read_refusal,
    words_of,
    write_payload,
    write_refusal,
)
from limemu.hdl.regmap import CONTROL, Geometry, RegisterMap
from limemu.hdl.uart import FRAME_BITS
from limemu.host import (
    decode_state,
    geometry_for,
    load_sequence,
    run_plan,
    state_addresses,
)
from limemu.model.engine import LimArray
from limemu.model.errors import ConfigError
from limemu.model.problem import QuadraticProblem
from limemu.model.spec import Spec

SPEC = Spec(cells=8, lanes=2, weight_bits=4)
GEOMETRY = Geometry(lanes=2, groups=4, q_storage="dense", q_capacity=1, table_depth=256)
RMAP = RegisterMap(SPEC, GEOMETRY)
OUTSIDE = next(a for a in range(1 << 16) if RMAP.region_of(a) is None)   # the map's first hole
CLOCK_HZ, BAUD = 4_000_000, 1_000_000          # divisor 4
DIVISOR = 4
BYTE_CYCLES = FRAME_BITS * DIVISOR
TIMEOUT = 3 * BYTE_CYCLES
READ_LATENCY = 3                                # cycles from re to rack, as the core
CONTROL_ADDRESS = RMAP["control"].base
START, STOP = 1 << CONTROL["start"], 1 << CONTROL["stop"]


def line_bits(byte):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [1]


class Board:
    """The bridge plus the host's line driver and reader and the core's bus, as testbenches."""

    def __init__(self, dut):
        self.dut = dut
        self.active = dut.active if isinstance(dut, HostBridge) else dut.led_link
        self.received = bytearray()          # every byte of tx
        self.words = {}                      # the register file
        self.writes = []                     # (address, word) in bus order
        self.write_cycles = []
        self.reads = []
        self.cycle = 0

    def value(self, address):
        """A register file word: written, else a pattern of the address."""
        return self.words.get(address, (address * 0x9E3779B1 + 0x1234) & 0xFFFFFFFF)

    async def bus(self, ctx):
        dut, answers = self.dut.core, deque()
        async for _, _, we, read, addr, wdata in ctx.tick().sample(dut.we, dut.re, dut.addr,
                                                                 dut.wdata):
            self.cycle += 1                  # the samples are of cycle self.cycle - 1
            assert not (we and read)
            if we:
                self.writes.append((addr, wdata))
                self.write_cycles.append(self.cycle - 1)
                self.words[addr] = wdata
            if read:
                self.reads.append(addr)
                answers.append((self.cycle - 1 + READ_LATENCY, self.value(addr)))
            if answers and answers[0][0] == self.cycle:
                ctx.set(dut.rdata, answers.popleft()[1])
                ctx.set(dut.rack, 1)
            else:
                ctx.set(dut.rdata, 0)
                ctx.set(dut.rack, 0)

    async def monitor(self, ctx):
        """The host's receiver: sample the middle of every bit of tx."""
        tx = self.dut.tx
        while True:
            await ctx.negedge(tx)
            await ctx.tick().repeat(DIVISOR // 2)
            levels = [ctx.get(tx)]
            for _ in range(FRAME_BITS - 1):
                await ctx.tick().repeat(DIVISOR)
                levels.append(ctx.get(tx))
            assert levels[0] == 0 and levels[-1] == 1, f"tx framing: {levels}"
            self.received.append(sum(bit << i for i, bit in enumerate(levels[1:9])))

    async def send(self, ctx, data):
        for byte in data:
            for level in line_bits(byte):
                ctx.set(self.dut.rx, level)
                await ctx.tick().repeat(DIVISOR)

    def response_complete(self):
        buf = self.received
        return (len(buf) >= RESPONSE_HEADER
                and len(buf) >= RESPONSE_HEADER + struct.unpack_from("<H", buf, 4)[0] + CRC_BYTES)

    def take_response(self):
        """The first complete response received, removed from the buffer, or None."""
        if not self.response_complete():
            return None
        buf = self.received
        assert buf[0] == RESPONSE_SYNC, f"no sync byte at a response's start: {bytes(buf)!r}"
        total = RESPONSE_HEADER + struct.unpack_from("<H", buf, 4)[0] + CRC_BYTES
        raw = bytes(buf[:total])
        del buf[:total]
        return raw

    async def response(self, ctx, within=None):
        """The next response; fails if `within` cycles pass (default: 20 byte times) without
        a byte of it arriving."""
        limit = within if within is not None else 20 * BYTE_CYCLES
        waited, seen = 0, len(self.received)
        while (raw := self.take_response()) is None:
            if len(self.received) != seen:
                waited, seen = 0, len(self.received)
            assert waited < limit, (f"no response within {limit} cycles; received "
                                    f"{bytes(self.received)!r}")
            await ctx.tick().repeat(DIVISOR)
            waited += DIVISOR
        return raw

    async def send_and_answer(self, ctx, data):
        await self.send(ctx, data)
        return await self.response(ctx)

    async def request(self, ctx, command, seq, payload=b""):
        return await self.send_and_answer(ctx, encode_request(command, seq, payload))

    async def quiet(self, ctx):
        """Wait for the bridge to go inactive; no response may be pending."""
        for _ in range(100 * BYTE_CYCLES):
            if not ctx.get(self.active):
                break
            await ctx.tick()
        assert not ctx.get(self.active), "the bridge stays active"
        assert not self.received, f"unexpected bytes {bytes(self.received)!r}"

    def run(self, testbench):
        sim = Simulator(self.dut)
        sim.add_clock(1e-6)
        if isinstance(self.dut, HostBridge):
            sim.add_testbench(self.bus, background=True)
        sim.add_testbench(self.monitor, background=True)
        sim.add_testbench(testbench)
        sim.run()


def decode(raw):
    """(status name, seq, skipped, payload) of a response, after checking its CRC."""
    body, crc = raw[1:-CRC_BYTES], struct.unpack("<H", raw[-CRC_BYTES:])[0]
    assert crc == crc16(body), f"response CRC {crc:#06x} != {crc16(body):#06x}"
    return STATUS_NAMES[raw[1]], raw[2], raw[3], raw[RESPONSE_HEADER:-CRC_BYTES]


def expect(raw, status, seq, skipped=0, payload=b""):
    assert decode(raw) == (status, seq, skipped, payload)
    assert raw == encode_response(status, seq, skipped, payload)


def run(testbench, rmap=RMAP, timeout_cycles=TIMEOUT):
    board = Board(HostBridge(rmap, clock_hz=CLOCK_HZ, baud=BAUD, timeout_cycles=timeout_cycles))

    async def wrapped(ctx):
        await testbench(ctx, board)

    board.run(wrapped)
    return board


def pack_words(words):
    return struct.pack(f"<{len(words)}I", *words)


# -- the pieces ----------------------------------------------------------------------------------

def test_constructor_checks():
    """Too few cycles per bit, a baud rate the divisor misses by more than 2 %, a timeout
    shorter than two bytes are refused, naming the parameter."""
    with pytest.raises(ConfigError, match="clock_hz / baud"):
        HostBridge(RMAP, clock_hz=1_000_000, baud=400_000, timeout_cycles=10_000)
    with pytest.raises(ConfigError, match="^baud = 230400"):       # divisor 4: 8.5 % off
        HostBridge(RMAP, clock_hz=1_000_000, baud=230_400, timeout_cycles=10_000)
    with pytest.raises(ConfigError, match="timeout_cycles"):
        HostBridge(RMAP, clock_hz=CLOCK_HZ, baud=BAUD, timeout_cycles=2 * BYTE_CYCLES - 1)
    bridge = HostBridge(RMAP, clock_hz=12_000_000, baud=115_200, timeout_cycles=240_000)
    assert bridge.divisor == 104
    top = BoardTop(SPEC, GEOMETRY, clock_hz=12_000_000, baud=115_200)
    assert (top.divisor, top.timeout_cycles) == (104, 12_000_000 // 50)
    with pytest.raises(ConfigError, match="clock_hz / baud"):
        BoardTop(SPEC, GEOMETRY, clock_hz=12_000_000, baud=12_000_000 // 3)


def test_board_top_converts_to_verilog():
    top = BoardTop(SPEC, GEOMETRY, clock_hz=12_000_000, baud=115_200)
    assert set(top.signature.members) == {"rx", "tx", "led_busy", "led_done", "led_error",
                                          "led_link"}
    text = verilog.convert(top, name="board_top", emit_src=False)
    module = text[text.index("module board_top("):]
    module = module[:module.index("endmodule")]
    ports = set(re.findall(r"^\s*(input|output) (\w+);", module, re.M))
    assert ports == {("input", "clk"), ("input", "rst"), ("input", "rx"), ("output", "tx"),
                     ("output", "led_busy"), ("output", "led_done"), ("output", "led_error"),
                     ("output", "led_link")}


# -- requests that succeed -----------------------------------------------------------------------

def test_info_answers_the_build_and_live_run_cycles():
    """INFO = protocol.info_words of the build; run_cycles counts the cycles core.busy is
    high and restarts when a WRITE with control start is applied."""
    busy_cycles = 37

    async def testbench(ctx, board):
        expected = info_words(SPEC, GEOMETRY, clock_hz=CLOCK_HZ, baud=BAUD)
        raw = await board.request(ctx, "INFO", 1)
        expect(raw, "OK", 1, payload=pack_words(expected))
        assert len(words_of(decode(raw)[3])) == len(INFO_FIELDS)
        ctx.set(board.dut.core.busy, 1)
        await ctx.tick().repeat(busy_cycles)
        ctx.set(board.dut.core.busy, 0)
        raw = await board.request(ctx, "INFO", 2)
        expect(raw, "OK", 2, payload=pack_words(info_words(
            SPEC, GEOMETRY, clock_hz=CLOCK_HZ, baud=BAUD, run_cycles=busy_cycles)))
        # a write of control without start leaves it; with start clears it
        expect(await board.request(ctx, "WRITE", 3, write_payload(CONTROL_ADDRESS, [STOP])),
               "OK", 3)
        raw = await board.request(ctx, "INFO", 4)
        assert words_of(decode(raw)[3])[-2:] == [busy_cycles, 0]
        expect(await board.request(ctx, "WRITE", 5, write_payload(CONTROL_ADDRESS, [START])),
               "OK", 5)
        raw = await board.request(ctx, "INFO", 6)
        assert words_of(decode(raw)[3])[-2:] == [0, 0]
        await board.quiet(ctx)

    board = run(testbench)
    assert board.writes == [(CONTROL_ADDRESS, STOP), (CONTROL_ADDRESS, START)]


def test_write_then_read_round_trip():
    """A burst to a memory and one to a two-word register, read back; one bus write per
    cycle; reads answered in address order; active falls when all is done."""
    field = RMAP["field"]
    burst = [0xDEADBEEF, 0x00000001, 0xFFFFFFFF, 0x80000000, 0x12345678, 0, 7, 0xCAFEF00D]
    steps = RMAP["run_steps"]

    async def testbench(ctx, board):
        expect(await board.request(ctx, "WRITE", 10, write_payload(field.base, burst)),
               "OK", 10)
        expect(await board.request(ctx, "WRITE", 11, write_payload(steps.base, [5, 0x1234])),
               "OK", 11)
        expect(await board.request(ctx, "READ", 12, read_payload(field.base, len(burst))),
               "OK", 12, payload=pack_words(burst))
        expect(await board.request(ctx, "READ", 13, read_payload(steps.base, 2)),
               "OK", 13, payload=pack_words([5, 0x1234]))
        # a read of registers nobody wrote: the register file's words
        magic = RMAP["magic"].base
        expect(await board.request(ctx, "READ", 14, read_payload(magic, 2)),
               "OK", 14, payload=pack_words([board.value(magic + i) for i in range(2)]))
        await board.quiet(ctx)

    board = run(testbench)
    assert board.writes == ([(field.base + i, w) for i, w in enumerate(burst)]
                            + [(steps.base, 5), (steps.base + 1, 0x1234)])
    first = board.write_cycles[:len(burst)]
    assert first == list(range(first[0], first[0] + len(burst)))      # back to back
    assert board.reads == ([field.base + i for i in range(len(burst))]
                           + [steps.base, steps.base + 1]
                           + [RMAP["magic"].base + i for i in range(2)])


def test_longest_write_fills_the_buffer():
    """A WRITE of MAX_WORDS words (the longest payload) to a write-only table."""
    table = RMAP["barrier_table"]
    assert table.size >= MAX_WORDS
    burst = [(i * 0x01010101 + 0x0F) & 0xFFFFFFFF for i in range(MAX_WORDS)]

    async def testbench(ctx, board):
        payload = write_payload(table.base, burst)
        assert len(payload) == BUFFER_BYTES
        expect(await board.request(ctx, "WRITE", 99, payload), "OK", 99)
        await board.quiet(ctx)

    board = run(testbench)
    assert board.writes == [(table.base + i, w) for i, w in enumerate(burst)]


def test_write_latency_beyond_the_line():
    """From the end of the request's last stop bit to the response's start bit: a fixed
    number of cycles plus two per word (one address check, one bus write)."""
    latencies = {}

    async def testbench(ctx, board):
        for n in (1, 2, 8):
            await board.send(ctx, encode_request("WRITE", n, write_payload(RMAP["q"].base,
                                                                            list(range(n)))))
            # send() returns at the end of the stop bit
            cycles = 0
            while ctx.get(board.dut.tx):
                await ctx.tick()
                cycles += 1
            latencies[n] = cycles
            expect(await board.response(ctx), "OK", n)

    run(testbench)
    assert latencies[2] - latencies[1] == 2 and latencies[8] - latencies[1] == 14, latencies


def test_read_while_running_registers_only():
    """During a run registers are read (the status); memories are BUSY."""
    async def testbench(ctx, board):
        ctx.set(board.dut.core.busy, 1)
        status = RMAP["status"].base
        expect(await board.request(ctx, "READ", 1, read_payload(status, 1)),
               "OK", 1, payload=pack_words([board.value(status)]))
        expect(await board.request(ctx, "READ", 2, read_payload(RMAP["weight"].base, 2)),
               "BUSY", 2)
        await board.quiet(ctx)

    board = run(testbench)
    assert board.reads == [RMAP["status"].base]


# -- refusals ------------------------------------------------------------------------------------

def forged(command, seq, payload=b""):
    """A well-formed request with any command byte: encode_request's, the command replaced
    and the CRC made right again."""
    body = bytearray(encode_request("INFO", seq, payload)[1:-CRC_BYTES])
    body[0] = command
    return bytes([REQUEST_SYNC]) + body + struct.pack("<H", crc16(body))


def request_with_crc_byte_flipped(command, seq, payload, at):
    frame = bytearray(encode_request(command, seq, payload))
    frame[at] ^= 0x01
    return bytes(frame)


REFUSALS = {
    "bad_crc": (request_with_crc_byte_flipped("WRITE", 3, write_payload(RMAP["cells"].base, [5]),
                                              -1), "BAD_CRC"),
    "bad_crc_in_payload": (request_with_crc_byte_flipped("READ", 3, read_payload(0, 1),
                                                         REQUEST_HEADER + 1), "BAD_CRC"),
    "unknown_command": (forged(0x04, 3), "UNKNOWN_COMMAND"),
    "command_zero": (forged(0x00, 3, bytes(4)), "UNKNOWN_COMMAND"),
    "info_with_payload": (encode_request("INFO", 3, b"\x00"), "BAD_LENGTH"),
    "write_no_words": (encode_request("WRITE", 3, struct.pack("<I", 6)), "BAD_LENGTH"),
    "write_partial_word": (encode_request("WRITE", 3, struct.pack("<IIB", 6, 0, 0)),
                           "BAD_LENGTH"),
    "write_empty": (encode_request("WRITE", 3), "BAD_LENGTH"),
    "read_count_zero": (encode_request("READ", 3, struct.pack("<IH", 0, 0)), "BAD_LENGTH"),
    "read_count_too_big": (encode_request("READ", 3, struct.pack("<IH", 0, MAX_WORDS + 1)),
                           "BAD_LENGTH"),
    "read_long_payload": (encode_request("READ", 3, read_payload(0, 1) + bytes(2)),
                          "BAD_LENGTH"),
    "read_short_payload": (encode_request("READ", 3, struct.pack("<I", 0)), "BAD_LENGTH"),
    "write_read_only": (encode_request("WRITE", 3, write_payload(RMAP["magic"].base, [1])),
                        "BAD_ADDRESS"),
    "write_outside_map": (encode_request("WRITE", 3, write_payload(OUTSIDE, [1])),
                          "BAD_ADDRESS"),
    "write_far_outside": (encode_request("WRITE", 3, write_payload(0xFFFFFFFF, [1, 2])),
                          "BAD_ADDRESS"),
    "write_word_past_an_entry": (           # a seed has 7 words in a stride of 8
        encode_request("WRITE", 3, write_payload(RMAP["seed"].address(0, 7), [1])),
        "BAD_ADDRESS"),
    "write_burst_last_word_bad": (encode_request("WRITE", 3, write_payload(
        RMAP["gain_steps_per_entry"].base, [1, 2, 3, 4])), "BAD_ADDRESS"),   # -> OUTSIDE
    "write_burst_into_read_only": (encode_request("WRITE", 3, write_payload(
        CONTROL_ADDRESS, [0, 0])), "BAD_ADDRESS"),                           # control, status
    "read_write_only": (encode_request("READ", 3, read_payload(CONTROL_ADDRESS, 1)),
                        "BAD_ADDRESS"),
    "read_burst_last_word_bad": (encode_request("READ", 3, read_payload(RMAP["q"].base, 65)),
                                 "BAD_ADDRESS"),
    "read_table": (encode_request("READ", 3, read_payload(RMAP["gain_table"].base, 1)),
                   "BAD_ADDRESS"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_requests_change_nothing(case):
    request, status = REFUSALS[case]

    async def testbench(ctx, board):
        expect(await board.send_and_answer(ctx, request), status, 3)
        await board.quiet(ctx)

    board = run(testbench)
    assert board.writes == [] and board.reads == []


def test_busy_rule():
    """While the core runs: one word to control without start passes (and is applied);
    start, a two-word burst at control, any other write, memory reads are BUSY; the run rule
    comes before the address check for writes (as protocol.write_refusal), not for reads."""
    cases = [
        ("WRITE", write_payload(CONTROL_ADDRESS, [START]), "BUSY"),
        ("WRITE", write_payload(CONTROL_ADDRESS, [START | STOP]), "BUSY"),
        ("WRITE", write_payload(CONTROL_ADDRESS, [STOP, 0]), "BUSY"),
        ("WRITE", write_payload(RMAP["cells"].base, [4]), "BUSY"),
        ("WRITE", write_payload(RMAP["weight"].base, [1]), "BUSY"),
        ("WRITE", write_payload(RMAP["magic"].base, [1]), "BUSY"),
        ("WRITE", write_payload(OUTSIDE, [1]), "BUSY"),
        ("READ", read_payload(RMAP["field"].base, 1), "BUSY"),
        ("READ", read_payload(RMAP["status"].base - 1, 1), "BAD_ADDRESS"),
        ("READ", read_payload(RMAP["q"].base + 63, 2), "BAD_ADDRESS"),
        ("WRITE", write_payload(CONTROL_ADDRESS, [STOP]), "OK"),
    ]
    for command, payload, status in cases:
        assert (write_refusal(RMAP, *struct.unpack("<I", payload[:4]),
                              words_of(payload[4:]), True) if command == "WRITE"
                else read_refusal(RMAP, *struct.unpack("<IH", payload), True)) == \
            (None if status == "OK" else status)

    async def testbench(ctx, board):
        ctx.set(board.dut.core.busy, 1)
        for seq, (command, payload, status) in enumerate(cases):
            expect(await board.request(ctx, command, seq, payload), status, seq)
        await board.quiet(ctx)

    board = run(testbench)
    assert board.writes == [(CONTROL_ADDRESS, STOP)] and board.reads == []


def test_bursts_against_the_protocol_rules(rng):
    """Random bursts around the region boundaries, running or not: the status is what
    protocol.write_refusal / read_refusal say, and only accepted requests reach the bus."""
    edges = sorted({a for r in RMAP for a in (r.base, r.base + r.size)})
    cases = []
    for _ in range(40):
        address = max(0, int(rng.choice(edges)) + int(rng.integers(-3, 3)))
        count = int(rng.integers(1, 5))
        running = bool(rng.random() < 0.3)
        if rng.random() < 0.5:
            words = [int(w) for w in rng.integers(0, 2**32, count)]
            if rng.random() < 0.3:
                address, words = CONTROL_ADDRESS, [int(rng.choice([START, STOP, 0]))]
            expected = write_refusal(RMAP, address, words, running)
            cases.append(("WRITE", write_payload(address, words), running, expected,
                          [(address + i, w) for i, w in enumerate(words)]))
        else:
            expected = read_refusal(RMAP, address, count, running)
            cases.append(("READ", read_payload(address, count), running, expected,
                          list(range(address, address + count))))
    assert {c[3] for c in cases} == {None, "BAD_ADDRESS", "BUSY"}

    async def testbench(ctx, board):
        for seq, (command, payload, running, expected, effect) in enumerate(cases):
            ctx.set(board.dut.core.busy, running)
            writes, reads = len(board.writes), len(board.reads)
            raw = await board.request(ctx, command, seq % 256, payload)
            status, _, _, data = decode(raw)
            assert status == (expected or "OK"), (command, payload.hex(), running)
            if expected:
                assert board.writes[writes:] == [] and board.reads[reads:] == []
            elif command == "WRITE":
                assert board.writes[writes:] == effect
            else:
                assert board.reads[reads:] == effect
                assert words_of(data) == [board.value(a) for a in effect]

    run(testbench)


def test_truncated_frames():
    """A frame that stops: TRUNCATED with its seq once the seq is in, 0 before; nothing is
    applied, and the next frame works."""
    full = encode_request("WRITE", 42, write_payload(RMAP["cells"].base, [5]))

    async def testbench(ctx, board):
        for cut in (1, 2, 3, 5, 9, len(full) - 1):
            await board.send(ctx, full[:cut])
            # no answer before the timeout
            await ctx.tick().repeat(TIMEOUT - BYTE_CYCLES)
            assert not board.received
            expect(await board.response(ctx), "TRUNCATED", 42 if cut >= 3 else 0)
        await board.quiet(ctx)
        expect(await board.request(ctx, "WRITE", 43, write_payload(RMAP["cells"].base, [6])),
               "OK", 43)

    board = run(testbench)
    assert board.writes == [(RMAP["cells"].base, 6)]


def test_too_long_answered_at_once_then_garbage():
    """A length beyond the buffer is answered BAD_LENGTH right after the header, while the
    rest still arrives; the rest is skipped and, after silence, reported as GARBAGE."""
    frame = encode_request("WRITE", 8, bytes([0x11]) * (BUFFER_BYTES + 1))
    head, rest = frame[:REQUEST_HEADER], frame[REQUEST_HEADER:REQUEST_HEADER + 30]

    async def testbench(ctx, board):
        await board.send(ctx, head)
        answered_after = None                 # bytes of the rest sent when the answer was in
        for i, byte in enumerate(rest):
            await board.send(ctx, bytes([byte]))
            if answered_after is None and board.response_complete():
                answered_after = i + 1
        # the response (11 bytes) follows the header without waiting for the rest
        assert answered_after is not None and answered_after <= 12, answered_after
        expect(board.take_response(), "BAD_LENGTH", 8)
        expect(await board.response(ctx, within=TIMEOUT + 30 * BYTE_CYCLES), "GARBAGE", 0,
               skipped=len(rest))
        await board.quiet(ctx)
        expect(await board.request(ctx, "READ", 9, read_payload(0, 1)), "OK", 9,
               payload=pack_words([board.value(0)]))

    board = run(testbench)
    assert board.writes == []


def test_garbage_before_a_frame_is_counted():
    """Bytes before the sync byte are skipped and reported in the next response; the count
    restarts after each response and saturates at 255."""
    garbage = bytes([0x00, 0xFF, 0x5A, 0x13, 0x37])

    async def testbench(ctx, board):
        await board.send(ctx, garbage)
        expect(await board.request(ctx, "INFO", 1), "OK", 1, skipped=len(garbage),
               payload=pack_words(info_words(SPEC, GEOMETRY, clock_hz=CLOCK_HZ, baud=BAUD)))
        raw = await board.request(ctx, "READ", 2, read_payload(0, 1))
        expect(raw, "OK", 2, payload=pack_words([board.value(0)]))
        await board.send(ctx, bytes(300))
        expect(await board.request(ctx, "READ", 3, read_payload(1, 1)), "OK", 3, skipped=255,
               payload=pack_words([board.value(1)]))
        await board.quiet(ctx)

    run(testbench, timeout_cycles=8 * BYTE_CYCLES)


def test_garbage_then_silence():
    """Garbage and then nothing: a GARBAGE response (seq 0, the count); active stays high
    until it is sent."""
    async def testbench(ctx, board):
        await board.send(ctx, b"\x01\x02\x03")
        for _ in range(TIMEOUT - BYTE_CYCLES):
            assert ctx.get(board.dut.active)
            await ctx.tick()
        assert not board.received
        expect(await board.response(ctx), "GARBAGE", 0, skipped=3)
        await board.quiet(ctx)
        expect(await board.request(ctx, "READ", 5, read_payload(0, 1)), "OK", 5,
               payload=pack_words([board.value(0)]))

    board = run(testbench)
    assert board.writes == []


def test_duplicate_write_not_applied_again():
    """A WRITE with the seq of the last applied WRITE is DUPLICATE and not applied; a refused
    WRITE does not count as applied; INFO clears the filter; the filter starts cleared. The
    retry of a start whose answer was lost finds the core running: DUPLICATE, not BUSY
    (scripts/limemu/link.py takes a DUPLICATE on a retry as success)."""
    cells = RMAP["cells"].base

    async def testbench(ctx, board):
        expect(await board.request(ctx, "WRITE", 0, write_payload(cells, [1])), "OK", 0)
        expect(await board.request(ctx, "WRITE", 0, write_payload(cells, [1])), "DUPLICATE", 0)
        expect(await board.request(ctx, "WRITE", 0, write_payload(cells, [2])), "DUPLICATE", 0)
        expect(await board.request(ctx, "READ", 0, read_payload(cells, 1)), "OK", 0,
               payload=pack_words([1]))
        expect(await board.request(ctx, "WRITE", 1, write_payload(OUTSIDE, [3])), "BAD_ADDRESS", 1)
        expect(await board.request(ctx, "WRITE", 1, write_payload(cells, [4])), "OK", 1)
        expect(await board.request(ctx, "WRITE", 0, write_payload(cells, [5])), "OK", 0)
        raw = await board.request(ctx, "INFO", 0)
        assert decode(raw)[0] == "OK"
        expect(await board.request(ctx, "WRITE", 0, write_payload(cells, [6])), "OK", 0)
        start = write_payload(CONTROL_ADDRESS, [START])
        expect(await board.request(ctx, "WRITE", 2, start), "OK", 2)
        ctx.set(board.dut.core.busy, 1)                   # the run has begun
        expect(await board.request(ctx, "WRITE", 2, start), "DUPLICATE", 2)
        expect(await board.request(ctx, "WRITE", 3, start), "BUSY", 3)
        await board.quiet(ctx)

    board = run(testbench)
    assert board.writes == [(cells, 1), (cells, 4), (cells, 5), (cells, 6),
                            (CONTROL_ADDRESS, START)]


# -- the whole board -----------------------------------------------------------------------------

def test_board_loads_runs_stops_and_reads_back_through_the_link():
    """BoardTop with the real core, driven only through rx/tx: load a problem in bursts,
    init_field, start a long run; while it runs the link refuses what the core would refuse
    (BUSY) and accepts a stop; then the state read back in bursts equals the golden model's
    after the same number of steps."""
    rng = np.random.default_rng(11)
    n = 4
    upper = np.triu(rng.integers(-3, 4, (n, n)), 1)
    Q = upper + upper.T
    Q[np.diag_indices(n)] = rng.integers(1, 4, n)
    problem = QuadraticProblem.dense(Q, rng.integers(-6, 7, n))
    spec = Spec(cells=n, weight_bits=4, lanes=2, seed=5)
    model = LimArray(spec, problem)
    geometry = geometry_for(spec, model.order, problem.nnz, table_depth=256)
    rmap = RegisterMap(spec, geometry)
    top = BoardTop(spec, geometry, clock_hz=CLOCK_HZ, baud=BAUD, timeout_cycles=TIMEOUT)
    board = Board(top)
    status_address = rmap["status"].base
    seqs = iter(range(1, 10_000))

    async def call(ctx, command, payload=b"", status="OK"):
        seq = next(seqs) % 256
        got, echoed, _, data = decode(await board.request(ctx, command, seq, payload))
        assert (got, echoed) == (status, seq), (command, payload.hex())
        return words_of(data)

    async def write(ctx, pairs):
        for address, words in bursts(pairs):
            await call(ctx, "WRITE", write_payload(address, words))

    async def read(ctx, addresses):
        out = []
        for address, words in bursts([(a, 0) for a in addresses]):
            out += await call(ctx, "READ", read_payload(address, len(words)))
        return out

    async def core_busy(ctx):
        return (await call(ctx, "READ", read_payload(status_address, 1)))[0] & 1

    async def testbench(ctx):
        info = await call(ctx, "INFO")
        assert info[:-2] == info_words(spec, geometry, clock_hz=CLOCK_HZ, baud=BAUD)[:-2]
        for kind, pairs in load_sequence(rmap, problem, model.order, model.W0):
            await write(ctx, pairs)
            while kind == "run" and await core_busy(ctx):
                pass
        await write(ctx, run_plan(rmap, 1 << 40))             # a run that would not end
        assert ctx.get(top.led_busy)
        await call(ctx, "READ", read_payload(rmap["weight"].base, 1), status="BUSY")
        await call(ctx, "WRITE", write_payload(rmap["cells"].base, [n]), status="BUSY")
        await call(ctx, "WRITE", write_payload(CONTROL_ADDRESS, [START]), status="BUSY")
        run_cycles = await call(ctx, "INFO")
        assert run_cycles[-2] > 0
        await call(ctx, "WRITE", write_payload(CONTROL_ADDRESS, [STOP]))
        while await core_busy(ctx):
            pass
        assert not ctx.get(top.led_busy) and not ctx.get(top.led_error)
        state = decode_state(rmap, model.order, await read(ctx, state_addresses(rmap,
                                                                              model.order)))
        assert state["step"] > 0
        model.run(state["step"])
        assert state["weights"].tolist() == model.W.tolist()
        assert state["field"].tolist() == model.g.tolist()
        assert state["counters"] == model.counters.hardware()
        assert model.counters.exact["up_moves"] + model.counters.exact["down_moves"] > 0
        await board.quiet(ctx)

    board.run(testbench)
