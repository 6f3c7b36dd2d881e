"""The host side of the serial link (hdl/protocol.py): one driver for a real board and for the
virtual board, which differ only in the port they open.

`Link` sends requests and waits for their answers, with explicit timeouts and retries: a
request whose answer is lost, damaged, or reports a damaged request (BAD_CRC, TRUNCATED,
BAD_LENGTH) is sent again with the same sequence number, so the bridge never applies a WRITE
twice (DUPLICATE). BAD_LENGTH is retried because this driver's frames always have a valid
length: the bridge checks the length before the CRC, so a length field damaged on the line is
answered BAD_LENGTH. Refusals that a retry cannot cure (BAD_ADDRESS, BUSY, UNKNOWN_COMMAND)
raise `LinkError` at once. A WRITE never gets the seq of the WRITE before it: after 255 other
requests the bridge would take it for a resend and answer DUPLICATE without applying it.

With `resyncs` > 0, a request that failed every retry is not given up yet: the host waits for
the line to fall quiet (any partial frame at the bridge is dropped by then), discards what it
received, and sends the same frame (same seq) through another round of retries, up to
`resyncs` rounds (counted in `resynced`): what a board left running overnight on a noisy line
needs.

`BoardDevice` moves the core's words over a Link with the interface the hardware sessions use
(write, read, run, close), like the Verilator testbench's.
"""

import struct
import sys
import time

from limemu.hdl import protocol
from limemu.hdl.regmap import STATUS
from limemu.model.errors import ConfigError

from .progress import bar

RETRIED = ("BAD_CRC", "TRUNCATED", "BAD_LENGTH")
POLL_SECONDS = 0.002          # status polls while the core runs


class LinkError(RuntimeError):
    """The board refused a request, or did not answer after every retry."""


class Link:
    """Requests over a serial port (a path: /dev/ttyUSB1, or the virtual board's pty).

    timeout: seconds to wait for an answer beyond the time its bytes need on the wire;
    retries: how many times a request is sent again after a lost or damaged answer;
    resyncs: rounds of retries after a resync once those are spent (0: give up then);
    answer_gap: seconds without a byte after which a started answer counts as cut short
    (None: wait until the timeout)."""

    def __init__(self, port, *, baud=1_000_000, timeout=1.0, retries=3, resyncs=0,
                 answer_gap=None, log=None, serial_factory=None):
        if serial_factory is None:
            import serial  # noqa: PLC0415 (host extra)
            serial_factory = serial.Serial
        try:
            self.serial = serial_factory(port, baudrate=baud, timeout=0.05)
        except (OSError, ValueError) as error:
            raise ConfigError(f"port {port!r}: cannot open it ({error}); is the board "
                              f"connected and the port right (--port)?") from None
        self.port, self.baud = port, baud
        self.timeout, self.retries, self.resyncs = timeout, retries, resyncs
        self.answer_gap = answer_gap
        self.log = log or (lambda message: sys.stderr.write(f"  link: {message}\n"))
        self.seq = 0
        self.write_seq = None     # the seq of the last WRITE sent
        self.requests = 0         # requests made (each counted once, however often sent)
        self.skipped = 0          # garbage bytes the board reported discarding
        self.resent = 0           # requests sent again
        self.resynced = 0         # resyncs after a round of retries failed
        self.serial.reset_input_buffer()

    # -- requests ------------------------------------------------------------------------------
    def request(self, command, payload=b"", answer_words=0):
        """Send one request; return the answer's payload. Retries as documented above."""
        self.seq = (self.seq + 1) & 0xFF
        if command == "WRITE":
            if self.seq == self.write_seq:
                self.seq = (self.seq + 1) & 0xFF
            self.write_seq = self.seq
        self.requests += 1
        frame = protocol.encode_request(command, self.seq, payload)
        wire = (len(frame) + protocol.RESPONSE_HEADER + protocol.CRC_BYTES
                + 4 * answer_words) * 10 / self.baud
        failure, sent = None, 0
        for attempt in range((self.retries + 1) * (self.resyncs + 1)):
            if attempt and attempt % (self.retries + 1) == 0:
                self.resynced += 1
                self.log(f"{command} (seq {self.seq}): {self.retries + 1} attempts failed "
                         f"(last: {failure}); resync {self.resynced}")
                self.resync()
            if attempt:
                self.resent += 1
            self.serial.write(frame)
            sent += 1
            status, payload_in, why = self._answer(self.seq, wire + self.timeout)
            if status in ("OK",) or (status == "DUPLICATE" and attempt):
                return payload_in
            if status is None or status in RETRIED:
                failure = why or f"{status}: {protocol.STATUS_MEANING[status]}"
                continue
            raise LinkError(f"{command} refused by the board: {status} "
                            f"({protocol.STATUS_MEANING[status]})")
        raise LinkError(f"{command} (seq {self.seq}) failed {sent} times on "
                        f"{self.port}; last: {failure}")

    def resync(self, quiet=None):
        """Wait until nothing has arrived for `quiet` seconds (the timeout by default; at most
        20 of them), then discard the input: a partial frame at the bridge has timed out and
        been answered, and no late answer is left to confuse the next one."""
        quiet = self.timeout if quiet is None else quiet
        deadline = time.monotonic() + 20 * quiet
        last = time.monotonic()
        while time.monotonic() - last < quiet and time.monotonic() < deadline:
            if self.serial.read(4096):
                last = time.monotonic()
        self.serial.reset_input_buffer()

    def _answer(self, seq, seconds):
        """(status, payload, None) of the answer to `seq`; (None, None, why) when none came in
        time or it was damaged. Unsolicited answers (GARBAGE, stale seqs) are logged and
        skipped."""
        deadline = time.monotonic() + seconds
        while True:
            frame = self._frame(deadline)
            if isinstance(frame, str):
                return None, None, frame
            status, got_seq, skipped, payload = frame
            if skipped:
                self.skipped += skipped
                self.log(f"the board discarded {skipped} byte(s) outside frames")
            if status == "GARBAGE":
                continue
            if got_seq != seq:
                self.log(f"ignored a stale answer (seq {got_seq}, status {status})")
                continue
            return status, payload, None

    def _frame(self, deadline):
        """One response frame, or a string saying what went wrong."""
        serial = self.serial
        while True:                                          # hunt for the sync byte
            if time.monotonic() > deadline:
                return "no answer (timeout)"
            byte = serial.read(1)
            if byte and byte[0] == protocol.RESPONSE_SYNC:
                break
        header = self._exactly(protocol.RESPONSE_HEADER - 1, deadline)
        if header is None:
            return "answer cut short (timeout in its header)"
        status, seq, skipped, length = struct.unpack("<BBBH", header)
        rest = self._exactly(length + protocol.CRC_BYTES, deadline)
        if rest is None:
            return "answer cut short (timeout in its payload)"
        payload, crc = rest[:length], struct.unpack("<H", rest[length:])[0]
        if protocol.crc16(header + payload) != crc:
            return "answer damaged (CRC mismatch)"
        if status not in protocol.STATUS_NAMES:
            return f"answer with unknown status {status:#x}"
        return protocol.STATUS_NAMES[status], seq, skipped, payload

    def _exactly(self, count, deadline):
        """`count` bytes, or None at the deadline or, with `answer_gap`, when the answer's
        bytes stop arriving for that long (the bridge sends an answer back to back: a byte lost
        on the line need not cost the whole timeout)."""
        data = b""
        last = time.monotonic()
        while len(data) < count:
            now = time.monotonic()
            if now > deadline or (self.answer_gap is not None and now - last > self.answer_gap):
                return None
            got = self.serial.read(count - len(data))
            if got:
                data += got
                last = time.monotonic()
        return data

    # -- commands ------------------------------------------------------------------------------
    def info(self):
        """The build description; the first request to a board, so a failure says what to
        check."""
        try:
            words = protocol.words_of(self.request("INFO",
                                                   answer_words=len(protocol.INFO_FIELDS)))
            return protocol.parse_info(words)
        except (LinkError, ValueError) as error:
            where = "" if self.port in str(error) else f"{self.port}: "
            raise LinkError(f"{where}{error}; is a limemu bitstream of this version loaded "
                            f"(limemu program) and {self.baud} baud its rate?") from None

    def write(self, pairs, progress=None):
        """Write (address, word) pairs, in order, in bursts of consecutive addresses;
        progress(words) after each burst if given."""
        for address, words in protocol.bursts(pairs):
            self.request("WRITE", protocol.write_payload(address, words))
            if progress:
                progress(len(words))

    def read(self, addresses):
        out = []
        for address, count in _runs(addresses):
            payload = self.request("READ", protocol.read_payload(address, count),
                                   answer_words=count)
            words = protocol.words_of(payload)
            if len(words) != count:
                raise LinkError(f"READ of {count} words at {address:#x} answered {len(words)}")
            out += words
        return out

    def close(self):
        self.serial.close()


def _runs(addresses, limit=protocol.MAX_WORDS):
    """(address, count) runs of consecutive addresses."""
    runs = []
    for a in (int(x) for x in addresses):
        if runs and runs[-1][0] + runs[-1][1] == a and runs[-1][1] < limit:
            runs[-1][1] += 1
        else:
            runs.append([a, 1])
    return [tuple(r) for r in runs]


class BoardDevice:
    """The core's words over a Link: write(pairs), read(addresses), run(pairs) -> cycles."""

    TRANSFER_PROGRESS_WORDS = 20_000      # show progress on loads longer than this
    READ_THROUGH_GAP = 64

    def __init__(self, link, rmap, name="board", board=None):
        self.link, self.rmap, self.name = link, rmap, name
        self.board = board          # the virtual board's process, if any
        self.status_address = rmap["status"].base

    def _explained(self, error):
        """A link failure; when the virtual board's simulation died, say so and where its
        log is (a dead pty only shows as a generic serial error)."""
        if self.board is not None:
            self.board.check()
        raise error

    def write(self, pairs):
        pairs = list(pairs)
        with bar(total=4 * len(pairs), desc=f"  {self.name}: load", unit="B", unit_scale=True,
                 enabled=len(pairs) > self.TRANSFER_PROGRESS_WORDS) as meter:
            self._call(self.link.write, pairs, lambda words: meter.update(4 * words))

    def _call(self, method, *args):
        import serial  # noqa: PLC0415
        try:
            return method(*args)
        except LinkError as error:
            self._explained(error)
        except (OSError, serial.SerialException) as error:    # unplugged, or not a serial port
            self._explained(LinkError(f"{self.link.port}: {error}"))

    def read(self, addresses):
        """Words at `addresses`, read in as few requests as possible: wanted addresses closer
        than READ_THROUGH_GAP words apart are read as one burst when every word between them is
        readable in the same region (a round trip costs far more than a few extra words)."""
        addresses = [int(a) for a in addresses]
        spans = []
        for a in sorted(set(addresses)):
            if spans and a - spans[-1][1] <= self.READ_THROUGH_GAP and self._readable_between(
                    spans[-1][1] - 1, a):
                spans[-1][1] = a + 1
            else:
                spans.append([a, a + 1])
        burst = [a for lo, hi in spans for a in range(lo, hi)]
        got = dict(zip(burst, self._call(self.link.read, burst)))
        return [got[a] for a in addresses]

    def _readable_between(self, a, b):
        region = self.rmap.region_of(a)
        return region is not None and region is self.rmap.region_of(b) and all(
            self.rmap.refusal(x, write=False, running=False) is None for x in range(a + 1, b))

    def run(self, pairs):
        """Write the run's registers (ending in a control strobe), wait until the core is no
        longer busy; returns the cycles it ran (the bridge's run counter)."""
        self._call(self.link.write, pairs)
        while True:
            status = self._call(self.link.read, [self.status_address])[0]
            if not status >> STATUS["busy"] & 1:
                break
            time.sleep(POLL_SECONDS)
        return self._call(self.link.info)["run_cycles"]

    def close(self):
        self.link.close()
