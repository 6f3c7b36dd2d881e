"""The host driver (scripts/limemu/link.py) against a scripted serial port: retries,
timeouts, duplicates, refusals, garbage, stale answers, and the bursts it coalesces reads
into."""

import struct
import time

import pytest
from limemu.hdl import protocol
from limemu.hdl.regmap import Geometry, RegisterMap
from limemu.link import BoardDevice, Link, LinkError, _runs
from limemu.model.errors import ConfigError
from limemu.model.spec import Spec


def small_map(lanes=3):
    spec = Spec(cells=8, lanes=lanes, weight_bits=4)
    return RegisterMap(spec, Geometry(lanes=lanes, groups=3, q_storage="dense",
                                      q_capacity=1, table_depth=256))


def test_reads_are_coalesced_into_runs_of_consecutive_addresses():
    assert _runs([3, 4, 5, 7, 2]) == [(3, 3), (7, 1), (2, 1)]


class ScriptedPort:
    """A serial port whose answers come from `respond(request_bytes) -> bytes`."""

    def __init__(self, respond):
        self.respond, self.pending, self.requests = respond, b"", []

    def write(self, data):
        self.requests.append(bytes(data))
        self.pending += self.respond(bytes(data))

    def read(self, n):
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def reset_input_buffer(self):
        self.pending = b""

    def close(self):
        pass


def request_seq(frame):
    return frame[2]


def link_to(respond, **options):
    port = ScriptedPort(respond)
    options.setdefault("timeout", 0.05)
    return Link("scripted", serial_factory=lambda *a, **k: port, log=lambda m: None,
                **options), port


def test_lost_answer_is_retried_with_the_same_seq_and_duplicate_counts_as_done():
    answers = iter([b"", "DUPLICATE"])

    def respond(frame):
        status = next(answers)
        return protocol.encode_response(status, request_seq(frame)) if status else b""

    link, port = link_to(respond)
    link.write([(4, 1)])
    assert len(port.requests) == 2 and port.requests[0] == port.requests[1]
    assert link.resent == 1


def test_damaged_answers_and_damaged_requests_are_retried_then_reported():
    def respond(frame):
        good = protocol.encode_response("OK", request_seq(frame))
        return good[:-1] + bytes([good[-1] ^ 1])             # CRC broken

    link, port = link_to(respond, retries=2)
    with pytest.raises(LinkError, match="failed 3 times.*CRC mismatch"):
        link.read([0])
    link, port = link_to(lambda f: protocol.encode_response("BAD_CRC", request_seq(f)),
                         retries=1)
    with pytest.raises(LinkError, match="failed 2 times.*BAD_CRC"):
        link.write([(0, 0)])


def test_refusals_are_raised_at_once_with_their_meaning():
    link, port = link_to(lambda f: protocol.encode_response("BAD_ADDRESS", request_seq(f)))
    with pytest.raises(LinkError, match="BAD_ADDRESS.*outside the register map"):
        link.write([(0, 0)])
    assert len(port.requests) == 1
    link, port = link_to(lambda f: protocol.encode_response("BUSY", request_seq(f)))
    with pytest.raises(LinkError, match="BUSY"):
        link.write([(0, 0)])


def test_garbage_reports_and_stale_answers_are_skipped():
    def respond(frame):
        seq = request_seq(frame)
        words = struct.pack("<I", 0xABCD)
        return (b"\x00\x17" + protocol.encode_response("GARBAGE", 0, skipped=3)
                + protocol.encode_response("OK", (seq - 1) & 0xFF, payload=b"\0" * 4)
                + protocol.encode_response("OK", seq, skipped=2, payload=words))

    link, _ = link_to(respond)
    assert link.read([7]) == [0xABCD]
    assert link.skipped == 5


def test_no_answer_times_out_with_a_clear_message():
    link, port = link_to(lambda f: b"", retries=1)
    with pytest.raises(LinkError, match="no answer"):
        link.info()
    assert len(port.requests) == 2


def test_unopenable_port_names_it():
    with pytest.raises(ConfigError, match="/dev/nonexistent-limemu"):
        Link("/dev/nonexistent-limemu")


def test_board_device_run_polls_until_the_core_is_idle():
    rmap = small_map()
    polls = iter([1, 1, 0])                    # busy, busy, idle

    def respond(frame):
        seq, command = request_seq(frame), frame[1]
        if command == protocol.COMMANDS["READ"]:
            return protocol.encode_response("OK", seq, payload=struct.pack("<I", next(polls)))
        if command == protocol.COMMANDS["INFO"]:
            words = protocol.info_words(rmap.spec, rmap.geometry, clock_hz=1, baud=1,
                                        run_cycles=1234)
            return protocol.encode_response("OK", seq, payload=struct.pack(
                f"<{len(words)}I", *words))
        return protocol.encode_response("OK", seq)

    link, port = link_to(respond)
    assert BoardDevice(link, rmap).run([(rmap["control"].base, 1)]) == 1234
    assert len(port.requests) == 5             # write, 3 polls, info


def test_bad_length_is_line_damage_and_retried():
    """This driver's frames always have a valid length, and the bridge checks the length
    before the CRC: BAD_LENGTH means the length field was damaged on the way."""
    answers = iter(["BAD_LENGTH", "OK"])
    link, port = link_to(lambda f: protocol.encode_response(next(answers), request_seq(f)))
    link.write([(0, 0)])
    assert len(port.requests) == 2 and link.resent == 1


def test_a_write_never_reuses_the_seq_of_the_write_before_it():
    """After 255 reads the next seq wraps to the last WRITE's: the bridge would answer that
    WRITE DUPLICATE and not apply it, so the host skips that seq."""
    last_write = {}

    def respond(frame):
        seq, command = request_seq(frame), frame[1]
        if command == protocol.COMMANDS["WRITE"]:
            if last_write.get("seq") == seq:
                return protocol.encode_response("DUPLICATE", seq)
            last_write["seq"] = seq
            return protocol.encode_response("OK", seq)
        return protocol.encode_response("OK", seq, payload=b"\0" * 4)

    link, port = link_to(respond)
    link.write([(0, 1)])
    for _ in range(255):
        link.read([0])
    link.write([(0, 2)])
    writes = [f for f in port.requests if f[1] == protocol.COMMANDS["WRITE"]]
    assert len(writes) == 2 and request_seq(writes[0]) != request_seq(writes[1])
    assert link.resent == 0


def test_resync_rounds_retry_after_the_retries_are_spent():
    answers = iter([b""] * 5 + [None])

    def respond(frame):
        answer = next(answers)
        return protocol.encode_response("OK", request_seq(frame)) if answer is None else answer

    link, port = link_to(respond, retries=1, resyncs=2)
    link.write([(0, 0)])
    assert len(port.requests) == 6 and len(set(port.requests)) == 1     # same frame, same seq
    assert link.resynced == 2 and link.resent == 5
    link, port = link_to(lambda f: b"", retries=1, resyncs=1)
    with pytest.raises(LinkError, match="failed 4 times"):
        link.write([(0, 0)])
    assert link.resynced == 1


class SlowPort(ScriptedPort):
    """A port whose answers stop after `cut` bytes: what the host sees when the line lost the
    rest of one; read() waits like pyserial's until its timeout when nothing comes."""

    def __init__(self, respond, cut):
        super().__init__(respond)
        self.cut = cut

    def write(self, data):
        super().write(data)
        if len(self.requests) == 1:
            self.pending = self.pending[:self.cut]

    def read(self, n):
        out = super().read(n)
        if not out:
            time.sleep(0.01)
        return out


def test_an_answer_cut_short_is_resent_after_the_gap_not_the_timeout():
    words = struct.pack("<4I", 1, 2, 3, 4)
    port = SlowPort(lambda f: protocol.encode_response("OK", request_seq(f), payload=words), 9)
    link = Link("scripted", serial_factory=lambda *a, **k: port, log=lambda m: None,
                timeout=30, answer_gap=0.1)
    started = time.monotonic()
    assert link.read([0, 1, 2, 3]) == [1, 2, 3, 4]
    assert link.resent == 1 and time.monotonic() - started < 5
