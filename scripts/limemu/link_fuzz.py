"""A fuzzer of the host link: random and mutated frames against the virtual board's bridge,
checked against a Python model of the bridge.

`BridgeModel` is the bridge as hdl/protocol.py documents it, byte by byte: the receiver
(hunting for the sync byte, counting skipped bytes, a frame too long for the buffer answered
from its header, a frame or garbage followed by silence answered TRUNCATED or GARBAGE), the
executor's checks in their order (crc, command, length, duplicate, run rule, every address:
`protocol.write_refusal`, `protocol.read_refusal`, `RegisterMap.refusal`), and what an accepted
request does to the words a host can read back (the core's registers and memories: width,
sign, the staging of a wide entry's lower words). Given its state and a byte stream it says
which answer comes and what is applied.

`Fuzzer` drives a `VirtualBoard` through its pty with raw bytes (no `Link`, no pacing). Each
case is a request (INFO, WRITE or READ at an address chosen near region boundaries, in holes,
beyond the map, on ``control``) that mutations damage: bit flips, truncation, inserted bytes,
garbage before or after, the frame twice, a reused seq with other words, a wrong command,
length or crc. Runs are started and stopped so that requests also arrive while the core runs.
The byte stream is cut where the model's receiver holds a request (the bridge skips what
arrives while it answers, at a time only the cycles decide), so the model knows every answer.

After each case the words the request named are read back with clean requests (and the whole
map every `full_check_every` cases) and compared with the model. Findings: an answer that is
missing (a hang), late, malformed, or unexpected; a status, seq, skipped count or payload that
differs from the model's; a word read back that differs (a refused request that changed
something, an accepted one not applied or applied twice). Each finding carries the bytes sent.

The choices of a case come from a `draw(lo, hi)` function: `random.Random.randint` for long
campaigns (scripts/fuzz_link.py), hypothesis in tests/test_fuzz_link.py.
"""

import os
import select
import struct
import time
from dataclasses import dataclass, field

from limemu.hdl import protocol
from limemu.hdl.regmap import CONTROL, STATUS, WORD_BITS, Geometry, RegisterMap, from_words, words
from limemu.model.spec import Spec

MASK32 = 0xFFFFFFFF
#: the builds fuzzed: small, with holes in the lane banks (3 lanes of 4) and a wide memory entry
#: (tilt, two words: the staging of its lower word); the compact core holds the bus off at times
BUILDS = {
    "pipelined": (Spec(cells=6, lanes=3, weight_bits=4),
                  Geometry(lanes=3, groups=2, q_storage="dense", q_capacity=1, table_depth=256)),
    "compact": (Spec(cells=6, lanes=1, weight_bits=4),
                Geometry(lanes=1, groups=6, q_storage="dense", q_capacity=1, table_depth=256,
                         core="compact")),
}
#: cycles of silence that end a frame: short, so that truncated frames are answered quickly
#: (the pty hands the board a request written at once, without gaps of this length)
TIMEOUT_CYCLES = 4096
#: readable words the core itself changes (runs, init_field, accept, clear): the model learns
#: them again after the core was active, and leaves them unchecked while it runs
CORE_WRITTEN = ("status", "step", "loss2", "run_steps", "overflow", "weight", "field",
                "cell_up", "cell_down", "cell_overflow", "run_cycles")
#: readable words that follow other registers at once (the schedules' current values): never
#: compared
DERIVED = ("barrier_now", "gain_now")
FOREVER_STEPS = (1 << 40) - 1          # run_steps of the runs the fuzzer starts: until a stop
CONTROL_BITS = {name: 1 << bit for name, bit in CONTROL.items()}


def fuzz_board(core="pipelined"):
    """(VirtualBoard, spec, geometry) of the build fuzzed for `core`."""
    from limemu.vboard import VirtualBoard  # noqa: PLC0415 (builds with Verilator)
    spec, geometry = BUILDS[core]
    return VirtualBoard(spec, geometry, timeout_cycles=TIMEOUT_CYCLES), spec, geometry


# -- the model -------------------------------------------------------------------------------------

@dataclass
class Request:
    """What the receiver holds: its event (FRAME, TOO_LONG, TRUNCATED, GARBAGE), header fields
    and payload as received."""
    event: str
    command: int = 0
    seq: int = 0
    seq_received: bool = False
    length: int = 0
    payload: bytes = b""
    crc_ok: bool = False

    @property
    def address(self):
        return struct.unpack_from("<I", self.payload)[0] if len(self.payload) >= 4 else None

    def named(self):
        """(address, words) the request names, as far as it arrived (None: no address)."""
        if self.address is None:
            return None
        if self.command == protocol.COMMANDS["READ"] and len(self.payload) >= 6:
            count = struct.unpack_from("<H", self.payload, 4)[0]
        else:
            count = (len(self.payload) - 4) // 4
        return self.address, max(1, min(count, protocol.MAX_WORDS))


@dataclass
class Answer:
    """A response: status name, seq, skipped, payload words (None: a word not predicted)."""
    status: str
    seq: int
    skipped: int
    words: list = field(default_factory=list)
    masks: list = None          # the bits of each word the model knows (None: all)

    def __str__(self):
        return f"{self.status} seq={self.seq} skipped={self.skipped} words={len(self.words)}"


class Receiver:
    """hdl/frame_receiver.py, byte by byte, with bytes arriving back to back."""

    def __init__(self):
        self.state = "HUNT"
        self.skipped = 0
        self.request = None

    def feed(self, byte):
        """One byte; returns the Request once the receiver holds one (it then skips bytes until
        the answer is sent), else None."""
        s = self.state
        if s == "HUNT":
            if byte == protocol.REQUEST_SYNC:
                self.request = Request("FRAME")
                self.body, self.payload = bytearray(), bytearray()
                self.state = "COMMAND"
            else:
                self.skipped = min(self.skipped + 1, 255)
            return None
        r = self.request
        if s in ("COMMAND", "SEQ", "LENGTH_LO", "LENGTH_HI"):
            self.body.append(byte)
            if s == "COMMAND":
                r.command, self.state = byte, "SEQ"
            elif s == "SEQ":
                r.seq, r.seq_received, self.state = byte, True, "LENGTH_LO"
            elif s == "LENGTH_LO":
                r.length, self.state = byte, "LENGTH_HI"
            else:
                r.length |= byte << 8
                if r.length > protocol.BUFFER_BYTES:
                    return self._hold("TOO_LONG")
                self.state = "PAYLOAD" if r.length else "CRC_LO"
            return None
        if s == "PAYLOAD":
            self.body.append(byte)
            self.payload.append(byte)
            if len(self.payload) == r.length:
                self.state = "CRC_LO"
            return None
        if s == "CRC_LO":
            self.crc_lo, self.state = byte, "CRC_HI"
            return None
        r.crc_ok = protocol.crc16(self.body) == self.crc_lo | byte << 8
        return self._hold("FRAME")

    def silence(self):
        """The request the timeout makes of what arrived (TRUNCATED, GARBAGE) or None."""
        if self.state != "HUNT":
            return self._hold("TRUNCATED")
        if self.skipped:
            self.request = Request("GARBAGE")
            return self._hold("GARBAGE")
        return None

    def _hold(self, event):
        r = self.request
        r.event = event
        if event != "GARBAGE":
            r.payload = bytes(self.payload)
        self.state = "HUNT"
        return r

    def taken(self):
        """The transmitter took the skipped count into a response."""
        count, self.skipped = self.skipped, 0
        return count


class BridgeModel:
    """The bridge and the words a host reads back; see the module docstring.

    `words`: {address: word} of every readable word (None: not known, not compared);
    `running`: the core runs (the run rule applies)."""

    def __init__(self, rmap, info):
        self.rmap, self.info = rmap, list(info)
        self.receiver = Receiver()
        self.last_write_seq = None          # seq of the last applied WRITE (None: none since INFO)
        self.running = False
        # the staged lower words of a wide entry: (region name, word) per word. Which regions
        # share the staging is the core's business (the compact core's seed has its own), so
        # an entry committed with words staged by another region is not known, and read again
        self.staging = [(None, 0)] * (max(words(r.width) for r in rmap if r.is_memory) - 1)
        self.unknown = set()                # (region name, index) of such entries
        self.entries = {}                   # (region name, index) -> entry value (unsigned bits)
        top = 1 << rmap.address_bits
        self.readable = [a for a in range(top)
                         if rmap.refusal(a, write=False, running=False) is None]
        self.place = {}                     # address -> (region, index, word)
        for region in rmap:
            for a in range(region.base, region.base + region.size):
                index, word = divmod(a - region.base, region.stride) if region.is_memory \
                    else (0, a - region.base)
                self.place[a] = (region, index, word)
        self._refusals = {(w, r): [rmap.refusal(a, write=w, running=r) for a in range(top)]
                          for w in (False, True) for r in (False, True)}

    # -- what a host reads back ------------------------------------------------------------------
    def load(self, snapshot):
        """The readable words as read from the board: {address: word}."""
        for a, word in snapshot.items():
            region, index, w = self.place[a]
            value = self.entries.get((region.name, index), 0)
            shift = WORD_BITS * w
            value = (value & ~(MASK32 << shift)) | (word << shift)
            self.entries[(region.name, index)] = value & ((1 << region.width) - 1)

    def word(self, address):
        """The word a read of `address` answers, or None (not known, not compared)."""
        region, index, w = self.place[address]
        if region.name in DERIVED or (self.running and (region.name in CORE_WRITTEN
                                                        or region.name.startswith("counter_"))):
            return None
        value = self.entries.get((region.name, index))
        if value is None:
            return None
        if region.is_memory:                # the entry's bits (see `mask`)
            return (value >> (WORD_BITS * w)) & MASK32
        return (from_words([value], region.width, region.signed) >> (WORD_BITS * w)) & MASK32

    def mask(self, address):
        """The bits of `address`'s word that the register map defines: all of a register's
        (sign-extended when signed); a memory entry's bits only, since the cores answer
        different bits above them (the pipelined core zeros, the compact core the sign)."""
        region, _, w = self.place[address]
        if not region.is_memory:
            return MASK32
        return (1 << max(0, min(WORD_BITS, region.width - WORD_BITS * w))) - 1

    def differs(self, address, got):
        expected = self.word(address)
        return expected is not None and (expected ^ got) & self.mask(address)

    def checked(self, address, count):
        """The readable addresses of a burst, whose words the model knows."""
        top = len(self._refusals[(False, False)])
        return [a for a in range(address, min(address + count, top))
                if self._refusals[(False, False)][a] is None and self.word(a) is not None]

    def forget(self, names):
        for key in [k for k in self.entries if k[0] in names]:
            del self.entries[key]

    def _apply(self, address, word):
        region, index, w = self.place[address]
        if region.name == "control":
            return
        last = words(region.width) - 1
        if region.is_memory and w < last:
            self.staging[w] = (region.name, word)
            return
        if region.is_memory:
            staged = self.staging[:last]
            if any(name != region.name for name, _ in staged):
                self.entries.pop((region.name, index), None)
                self.unknown.add((region.name, index))
                return
            value = sum(staged_word << (WORD_BITS * i) for i, (_, staged_word) in
                        enumerate(staged))
            value |= word << (WORD_BITS * last)
        else:
            old = self.entries.get((region.name, index))
            if old is None:
                return
            value = (old & ~(MASK32 << (WORD_BITS * w))) | (word << (WORD_BITS * w))
        self.entries[(region.name, index)] = value & ((1 << region.width) - 1)

    # -- the bridge --------------------------------------------------------------------------------
    def refusal(self, address, count, *, write):
        top = len(self._refusals[(False, False)])
        table = self._refusals[(write, self.running)]
        reasons = {table[a] if a < top else "address" for a in range(address, address + count)}
        return "BAD_ADDRESS" if "address" in reasons else "BUSY" if "busy" in reasons else None

    def answer(self, request):
        """The Answer to a held request, applying what it applies. The documented checks, in
        their order (hdl/protocol.py)."""
        skipped = self.receiver.taken()
        r = request
        if r.event == "GARBAGE":
            return Answer("GARBAGE", 0, skipped)
        if r.event == "TRUNCATED":
            return Answer("TRUNCATED", r.seq if r.seq_received else 0, skipped)
        if r.event == "TOO_LONG":
            return Answer("BAD_LENGTH", r.seq, skipped)
        status = self.check(r)
        if status is not None:
            return Answer(status, r.seq, skipped)
        if r.command == protocol.COMMANDS["INFO"]:
            self.last_write_seq = None
            info = [None if name.startswith("run_cycles") else value
                    for name, value in zip(protocol.INFO_FIELDS, self.info)]
            return Answer("OK", r.seq, skipped, info)
        address = r.address
        if r.command == protocol.COMMANDS["READ"]:
            count = struct.unpack_from("<H", r.payload, 4)[0]
            burst = range(address, address + count)
            return Answer("OK", r.seq, skipped, [self.word(a) for a in burst],
                          [self.mask(a) for a in burst])
        for i, word in enumerate(protocol.words_of(r.payload[4:])):
            self._apply(address + i, word)
        self.last_write_seq = r.seq
        return Answer("OK", r.seq, skipped)

    def check(self, r):
        """The status a complete frame is refused with, or None."""
        if not r.crc_ok:
            return "BAD_CRC"
        if r.command not in protocol.COMMANDS.values():
            return "UNKNOWN_COMMAND"
        if not self.length_fits(r):
            return "BAD_LENGTH"
        if r.command == protocol.COMMANDS["INFO"]:
            return None
        if r.command == protocol.COMMANDS["WRITE"]:
            if self.duplicate(r):
                return "DUPLICATE"
            ws = protocol.words_of(r.payload[4:])
            if self.running and not (len(ws) == 1 and r.address == self.rmap["control"].base
                                     and not ws[0] & CONTROL_BITS["start"]):
                return "BUSY"
            return self.refusal(r.address, len(ws), write=True)
        count = struct.unpack_from("<H", r.payload, 4)[0]
        return self.refusal(r.address, count, write=False)

    def length_fits(self, r):
        if r.command == protocol.COMMANDS["INFO"]:
            return r.length == 0
        if r.command == protocol.COMMANDS["WRITE"]:
            return r.length >= 8 and (r.length - 4) % 4 == 0
        return (r.length == protocol.READ_LENGTH
                and 1 <= struct.unpack_from("<H", r.payload, 4)[0] <= protocol.MAX_WORDS)

    def duplicate(self, r):
        return self.last_write_seq == r.seq

    def split(self, stream):
        """Feeds `stream` until the receiver holds a request: (bytes used, the request or None
        when the stream ended first)."""
        for i, byte in enumerate(stream):
            request = self.receiver.feed(byte)
            if request is not None:
                return i + 1, request
        return len(stream), None


# -- the board's end -------------------------------------------------------------------------------

class Port:
    """The virtual board's pty, raw, non-blocking: bytes out, bytes in with a deadline."""

    def __init__(self, path):
        import termios  # noqa: PLC0415 (POSIX only, like the virtual board)
        import tty  # noqa: PLC0415
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        termios.tcflush(self.fd, termios.TCIOFLUSH)
        self.pending = bytearray()

    def write(self, data):
        view = memoryview(bytes(data))
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                select.select([], [self.fd], [], 0.1)
                continue
            view = view[n:]

    def read(self, n, deadline):
        """Up to `n` bytes, fewer if the deadline passes first."""
        while len(self.pending) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.pending += os.read(self.fd, 65536)
                except BlockingIOError:
                    pass
        out = bytes(self.pending[:n])
        del self.pending[:n]
        return out

    def drain(self, seconds):
        """Everything that arrives within `seconds`."""
        return self.read(1 << 30, time.monotonic() + seconds)

    def close(self):
        os.close(self.fd)


def parse_response(data):
    """(Answer, None) of a complete response's bytes, or (None, why)."""
    if data[0] != protocol.RESPONSE_SYNC:
        return None, f"starts with {data[0]:#04x}, not the response sync"
    body = data[1:-2]
    if protocol.crc16(body) != struct.unpack("<H", data[-2:])[0]:
        return None, "its crc does not match"
    status, seq, skipped, length = struct.unpack_from("<BBBH", body)
    if status not in protocol.STATUS_NAMES:
        return None, f"unknown status {status:#04x}"
    return Answer(protocol.STATUS_NAMES[status], seq, skipped,
                  protocol.words_of(body[5:])), None


@dataclass
class Finding:
    kind: str           # hang, answer, state
    what: str
    sent: list          # the byte strings sent since the last check, oldest first

    def __str__(self):
        frames = " | ".join(bytes(s).hex() for s in self.sent[-8:])
        return f"{self.kind}: {self.what}\n    sent: {frames}"


class Fuzzer:
    """Cases against a running VirtualBoard `board` of (spec, geometry), checked by a model
    (`model_class(rmap, info)`, BridgeModel or one with a rule changed)."""

    def __init__(self, board, spec, geometry, *, model_class=BridgeModel, full_check_every=64,
                 run_chance=100, answer_seconds=2.0):
        self.board = board
        self.rmap = RegisterMap(spec, geometry)
        self.info = protocol.info_words(spec, geometry, clock_hz=board.clock_hz, baud=board.baud)
        self.model_class = model_class
        self.full_check_every, self.run_chance = full_check_every, run_chance
        self.answer_seconds = answer_seconds
        self.port = Port(board.port)
        self.findings = []
        self.cases = self.requests = self.clean = 0
        self.statuses = {}
        self.sent = []                       # the fuzzed bytes since the last state check
        self.model = None
        self._seq = 0                        # of the clean requests
        self.core_written = [n for n in self.rmap.regions
                             if n in CORE_WRITTEN or n.startswith("counter_")]

    def close(self):
        self.port.close()

    # -- exchanges ---------------------------------------------------------------------------------
    def send(self, stream, *, fuzzed):
        """Sends `stream` cut where the model's receiver holds a request; checks each answer.
        Returns [(Request, the model's Answer, the Answer received or None)]."""
        out = []
        while stream:
            used, request = self.model.split(stream)
            chunk, stream = stream[:used], stream[used:]
            if fuzzed:
                self.sent.append(chunk)
                self.requests += 1
            else:
                self.clean += 1
            self.port.write(chunk)
            if request is None:
                request = self.model.receiver.silence()
            if request is None:
                continue                                # nothing to answer: silence
            expected = self.model.answer(request)
            got = self._receive(chunk, expected)
            if fuzzed:
                self.statuses[expected.status] = self.statuses.get(expected.status, 0) + 1
            out.append((request, expected, got))
        return out

    def _receive(self, chunk, expected):
        """Reads one response and compares it with `expected`; None if none came."""
        cycles = (len(chunk) + 8 + 4 * len(expected.words)) * 10 * self.board.divisor
        if expected.status in ("TRUNCATED", "GARBAGE"):
            cycles += self.board.timeout_cycles
        bound = self.answer_seconds + cycles / 2e5
        deadline = time.monotonic() + bound
        head = self.port.read(protocol.RESPONSE_HEADER, deadline)
        if len(head) < protocol.RESPONSE_HEADER:
            self._finding("hang", f"no answer within {bound:.1f} s "
                          f"(expected {expected}; got {head.hex() or 'nothing'})")
            self.resync()
            return None
        length = struct.unpack_from("<H", head, 4)[0] if head[0] == protocol.RESPONSE_SYNC else 0
        rest = self.port.read(length + protocol.CRC_BYTES, deadline)
        got, why = parse_response(head + rest) if len(rest) == length + 2 else (
            None, f"{len(rest)} of {length + 2} bytes after the header")
        if got is None:
            self._finding("answer", f"a malformed answer ({why}): {(head + rest).hex()}; "
                          f"expected {expected}")
            self.resync()
            return None
        masks = expected.masks or [MASK32] * len(expected.words)
        differ = [f"word {i}: {g:#x} not {e:#x}" for i, (e, g, mask) in
                  enumerate(zip(expected.words, got.words, masks))
                  if e is not None and (e ^ g) & mask]
        if differ or (got.status, got.seq, got.skipped, len(got.words)) != (
                expected.status, expected.seq, expected.skipped, len(expected.words)):
            self._finding("answer", f"answered {got}, expected {expected}"
                          + (f" ({', '.join(differ[:4])})" if differ else ""))
        return got

    def _finding(self, kind, what):
        self.findings.append(Finding(kind, what, list(self.sent)))

    def clean_request(self, command, payload=b""):
        """A well-formed request (not fuzzed); its Answer as received."""
        seq = self._fresh_seq()
        results = self.send(protocol.encode_request(command, seq, payload), fuzzed=False)
        return results[-1][2] if results else None

    def _fresh_seq(self):
        self._seq = (self._seq + 37) & 0xFF
        if self.model.last_write_seq == self._seq:
            self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def read_words(self, addresses):
        """{address: word} of readable addresses, by clean READ bursts."""
        out = {}
        for base, ws in protocol.bursts([(a, 0) for a in sorted(addresses)]):
            got = self.clean_request("READ", protocol.read_payload(base, len(ws)))
            if got is None or got.status != "OK":
                return None
            out.update(zip(range(base, base + len(ws)), got.words))
        return out

    def write_words(self, address, values):
        got = self.clean_request("WRITE", protocol.write_payload(address, values))
        return got is not None and got.status == "OK"

    def status(self):
        got = self.read_words([self.rmap["status"].base])
        return None if got is None else got[self.rmap["status"].base]

    # -- state -------------------------------------------------------------------------------------
    def resync(self):
        """A fresh model of the board as it is: the line drained, INFO, no run, every readable
        word read."""
        self.port.drain(0.05 + 2 * self.board.timeout_cycles / 2e5)
        self.model = self.model_class(self.rmap, self.info)
        self.model.receiver.skipped = None               # unknown until the next answer
        info = protocol.encode_request("INFO", 0)
        self.port.write(info)
        answer = self.port.read(protocol.RESPONSE_HEADER + protocol.CRC_BYTES
                                + 4 * len(self.info), time.monotonic() + 5)
        if len(answer) < protocol.RESPONSE_HEADER:
            raise RuntimeError(f"the virtual board does not answer INFO ({answer.hex()})")
        self.model.receiver.skipped = 0
        self.model.last_write_seq = None
        self.write_words(self.rmap["control"].base, [CONTROL_BITS["stop"]])
        self._wait_idle()
        self.write_words(self.rmap["run_steps"].base, [FOREVER_STEPS & MASK32,
                                                        FOREVER_STEPS >> 32])
        self.model.running = False
        self.model.load(self.read_words(self.model.readable) or {})
        self.sent = []

    def _wait_idle(self, seconds=5.0):
        deadline = time.monotonic() + seconds
        while True:
            status = self.status()
            if status is None or not status >> STATUS["busy"] & 1:
                return status
            if time.monotonic() > deadline:
                self._finding("state", f"the core stays busy {seconds} s after a stop")
                return status

    def relearn_core(self):
        """After the core was active: the words it writes, read again."""
        names = self.core_written
        self.model.forget(names)
        addresses = [a for a in self.model.readable if self.model.place[a][0].name in names]
        self.model.load(self.read_words(addresses) or {})

    def relearn_unknown(self):
        """The entries the model does not know (committed with another region's staged
        words), read again."""
        if not self.model.unknown:
            return
        addresses = [self.rmap[name].address(index, w) for name, index in self.model.unknown
                     for w in range(words(self.rmap[name].width))]
        self.model.unknown = set()
        self.model.load(self.read_words(addresses) or {})

    def compare(self, addresses):
        """Reads `addresses` (those the model knows) back; a finding per differing word."""
        addresses = [a for a in addresses if self.model.word(a) is not None
                     and (not self.model.running or not self.model.place[a][0].is_memory)]
        if not addresses:
            return
        got = self.read_words(addresses)
        if got is None:
            self._finding("state", f"a clean read of {len(addresses)} words was refused")
            return
        for a, word in got.items():
            expected = self.model.word(a)
            if self.model.differs(a, word):
                region, index, w = self.model.place[a]
                self._finding("state", f"{region.name}[{index}] word {w} (address {a:#x}) reads "
                              f"{word:#x}, the model says {expected:#x}")
                self.model.load({a: word})

    # -- cases -------------------------------------------------------------------------------------
    def case(self, draw):
        """One fuzzed case from `draw(lo, hi)`; then the checks."""
        if self.model is None:
            self.resync()
        self.cases += 1
        if not self.model.running and draw(1, self.run_chance) == 1:
            self.start_run()
        elif self.model.running and draw(1, 12) == 1:
            self.stop_run()
        stream = make_case(draw, self.model, self.rmap)
        results = self.send(stream, fuzzed=True)
        for request, expected, got in results:
            if expected.status == "OK" and request.command == protocol.COMMANDS["WRITE"]:
                self._after_write(request)
        self.relearn_unknown()
        for request, _, _ in results:
            named = request.named()
            if named is not None:
                self.compare(self.model.checked(*named))
        if self.cases % self.full_check_every == 0:
            self.compare(self.model.readable)
        self.sent = []

    def _after_write(self, request):
        """An accepted WRITE: the runs it starts or stops, run_steps kept long."""
        address, n = request.address, (request.length - 4) // 4
        control, steps = self.rmap["control"].base, self.rmap["run_steps"].base
        if address <= control < address + n:
            word = protocol.words_of(request.payload[4:])[control - address]
            self._after_control(word)
        if address < steps + 2 and steps < address + n and not self.model.running:
            self.write_words(steps, [FOREVER_STEPS & MASK32, FOREVER_STEPS >> 32])

    def _after_control(self, word):
        """The core may have started, stopped or done something short: learn which."""
        if self.model.running and not word & CONTROL_BITS["stop"]:
            return
        self.model.forget(self.core_written)            # until read again below
        status = self.status()
        if status is None:
            return
        busy = status >> STATUS["busy"] & 1
        if busy and word & CONTROL_BITS["start"] and not self.model.running:
            self.model.running = True
            return
        if busy:
            self._wait_idle()
        self.model.running = False
        self.relearn_core()

    def start_run(self):
        """A run until stopped (the sizes the build holds), so that requests meet a busy core."""
        spec = self.rmap.spec
        self.write_words(self.rmap["cells"].base, [spec.cells])
        self.write_words(self.rmap["groups"].base, [-(-spec.cells // spec.lanes)])
        self.write_words(self.rmap["external_tilt"].base, [0])
        word = CONTROL_BITS["start"]
        if self.write_words(self.rmap["control"].base, [word]):
            self._after_control(word)

    def stop_run(self):
        word = CONTROL_BITS["stop"]
        if self.write_words(self.rmap["control"].base, [word]):
            self._after_control(word)

    def final_check(self):
        if self.model is not None:
            if self.model.running:
                self.stop_run()
            self.compare(self.model.readable)


# -- the cases -------------------------------------------------------------------------------------

def interesting_addresses(rmap):
    """Addresses near the map's edges: region bases and ends, holes, beyond the map."""
    top = 1 << rmap.address_bits
    out = {0, top - 1, top, top + 1, MASK32, MASK32 - 3, 1 << 31, top - protocol.MAX_WORDS}
    for region in rmap:
        end = region.base + region.size
        out.update({region.base, region.base + 1, end - 1, end, end + 1,
                    region.base + region.stride - 1})
    return sorted(a & MASK32 for a in out)


def make_case(draw, model, rmap):
    """A byte stream: one request, maybe damaged, maybe with company."""
    points = getattr(model, "_points", None)
    if points is None:
        points = model._points = interesting_addresses(rmap)
    kind = draw(0, 19)
    seq = draw(0, 255)
    if model.last_write_seq is not None and draw(0, 9) == 0:
        seq = model.last_write_seq                     # the last applied WRITE's seq again
    control = rmap["control"].base
    if kind == 0:
        frame = protocol.encode_request("INFO", seq)
    elif kind == 1:                                    # a command the bridge does not know
        command = draw(0, 255)
        while command in protocol.COMMANDS.values():
            command = (command + 4) & 0xFF
        frame = raw_request(command, seq, bytes(draw(0, 255) for _ in range(draw(0, 12))))
    else:
        pick = draw(0, 9)
        if pick < 4:
            address = points[draw(0, len(points) - 1)] + draw(-2, 2)
        elif pick < 6:
            address = draw(0, (1 << rmap.address_bits) - 1)
        elif pick < 7:
            address = draw(0, MASK32)
        elif pick < 8:
            address = rmap["run_steps"].base + draw(-1, 2)
        else:
            address = control
        address &= MASK32
        size = draw(0, 19)
        n = (1 if size < 10 else draw(2, 8) if size < 17 else draw(9, protocol.MAX_WORDS)
             if size < 19 else draw(protocol.MAX_WORDS + 1, protocol.MAX_WORDS + 8))
        if kind < 11:                                  # a WRITE
            values = [draw(0, MASK32) if draw(0, 3) else draw(0, 3) for _ in range(n)]
            if address == control or draw(0, 4) == 0:
                values[0] = 1 << draw(0, 7) | (draw(0, 1) << draw(0, 7))
            if address == control and values[0] & CONTROL_BITS["start"] and draw(0, 3):
                values[0] &= ~CONTROL_BITS["start"]    # starts happen, but not too often
            payload = struct.pack(f"<I{n}I", address, *values)
        else:                                          # a READ
            payload = struct.pack("<IH", address, n & 0xFFFF if draw(0, 15) else draw(0, 0xFFFF))
        command = "WRITE" if kind < 11 else "READ"
        frame = raw_request(protocol.COMMANDS[command], seq, payload)
    stream = bytearray(frame)
    for _ in range(draw(1, 3) if draw(0, 1) == 0 else 0):
        stream = mutate(draw, stream, frame)
    return bytes(stream)


def raw_request(command, seq, payload, length=None):
    """A request with any command, length and payload (encode_request checks its arguments)."""
    body = struct.pack("<BBH", command, seq, len(payload) if length is None else length) + payload
    return bytes([protocol.REQUEST_SYNC]) + body + struct.pack("<H", protocol.crc16(body))


def _garbage(draw):
    return bytes(draw(0, 255) if draw(0, 7) else protocol.REQUEST_SYNC
                 for _ in range(draw(1, 6)))


def mutate(draw, stream, frame):
    """One damage to `stream` (`frame`: the request it was made from)."""
    how = draw(0, 9)
    n = len(stream)
    if n == 0:                                         # cut to nothing before: start again
        return bytearray(frame)
    if how == 0:                                       # a bit flipped
        i = draw(0, n - 1)
        stream[i] ^= 1 << draw(0, 7)
    elif how == 1:                                     # cut short
        del stream[draw(0, n - 1):]
    elif how == 2:                                     # bytes inserted
        i = draw(0, n)
        stream[i:i] = _garbage(draw)
    elif how == 3:                                     # garbage before
        stream[:0] = _garbage(draw)
    elif how == 4:                                     # garbage after
        stream += _garbage(draw)
    elif how == 5:                                     # the frame again
        stream += frame
    elif how == 6 and n > 1:                           # another command, crc made right
        stream[1] = draw(0, 255) if draw(0, 1) else draw(0, 4)
        if draw(0, 3) and n >= 7:
            stream[-2:] = struct.pack("<H", protocol.crc16(stream[1:-2]))
    elif how == 7 and n > 4:                           # another length, crc made right again
        length = draw(0, 0xFFFF) if draw(0, 1) else len(frame) - 7 + draw(-5, 5)
        stream[3:5] = struct.pack("<H", length & 0xFFFF)
        if draw(0, 1) and len(stream) >= 7:
            stream[-2:] = struct.pack("<H", protocol.crc16(stream[1:-2]))
    elif how == 8 and n > 2:                           # a byte replaced
        stream[draw(0, n - 1)] = draw(0, 255)
    elif how == 9 and n >= 2:                          # the crc damaged
        stream[-1 - draw(0, 1)] ^= draw(1, 255)
    return stream
