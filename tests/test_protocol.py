"""The host link's frame format (hdl/protocol.py) and the host driver (scripts/limemu/link.py)
against a scripted serial port: retries, timeouts, duplicates, refusals, garbage, stale
answers. The bridge's side of the same protocol is tested in test_hdl_host_bridge.py (Amaranth)
and end to end on the virtual board in test_vboard_link.py."""

import struct

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


def test_crc16_is_ccitt_false_and_the_crc_parameters_answer():
    assert protocol.crc16(b"123456789") == 0x29B1          # the standard check value
    data = bytes(range(256)) * 3
    assert protocol.crc16(data) == protocol.CRC.compute(data)


def test_request_and_response_layout():
    frame = protocol.encode_request("WRITE", 9, protocol.write_payload(0x10, [1, 2]))
    assert frame[0] == protocol.REQUEST_SYNC
    command, seq, length = struct.unpack("<BBH", frame[1:5])
    assert (command, seq, length) == (protocol.COMMANDS["WRITE"], 9, 12)
    assert struct.unpack("<H", frame[-2:])[0] == protocol.crc16(frame[1:-2])
    answer = protocol.encode_response("OK", 9, skipped=300, payload=b"\x01\x00\x00\x00")
    assert answer[0] == protocol.RESPONSE_SYNC and answer[3] == 255     # saturates
    with pytest.raises(ConfigError, match="words"):
        protocol.write_payload(0, [0] * (protocol.MAX_WORDS + 1))
    with pytest.raises(ConfigError, match="count"):
        protocol.read_payload(0, 0)
    with pytest.raises(ConfigError, match="seq"):
        protocol.encode_request("INFO", 256)


def test_bursts_and_runs_split_at_gaps_and_at_the_limit():
    pairs = [(5, 1), (6, 2), (8, 3), (9, 4)] + [(100 + i, i) for i in range(300)]
    chunks = protocol.bursts(pairs)
    assert chunks[:2] == [(5, [1, 2]), (8, [3, 4])]
    assert [len(w) for _, w in chunks[2:]] == [protocol.MAX_WORDS, 300 - protocol.MAX_WORDS]
    assert _runs([3, 4, 5, 7, 2]) == [(3, 3), (7, 1), (2, 1)]


def test_info_words_round_trip_and_refuse_foreign_boards():
    rmap = small_map()
    words = protocol.info_words(rmap.spec, rmap.geometry, clock_hz=12_000_000, baud=1_000_000,
                                run_cycles=(7 << 32) + 5)
    info = protocol.parse_info(words)
    assert info["geometry"] == rmap.geometry and info["run_cycles"] == (7 << 32) + 5
    assert info["spec"]["lanes"] == 3 and info["clock_hz"] == 12_000_000
    with pytest.raises(ValueError, match="not a limemu board"):
        protocol.parse_info([0] + words[1:])
    with pytest.raises(ValueError, match="version"):
        protocol.parse_info(words[:1] + [99] + words[2:])


def test_refusal_rules():
    rmap = small_map(lanes=3)
    weight, control = rmap["weight"], rmap["control"]
    assert rmap.refusal(weight.address(2), write=True, running=False) is None
    assert rmap.refusal(weight.address(3), write=True, running=False) == "address"   # lane 3
    assert rmap.refusal(weight.address(2), write=True, running=True) == "busy"
    assert rmap.refusal(rmap["magic"].base, write=True, running=False) == "address"
    assert rmap.refusal(rmap["seed"].address(2), write=True, running=False) is None
    assert rmap.refusal(rmap["seed"].address(3), write=True, running=False) == "address"
    assert rmap.refusal(rmap["seed"].address(0), write=False, running=False) == "address"
    seed = rmap["seed"]
    assert rmap.refusal(seed.address(0, seed.stride - 1), write=True, running=False) == "address"
    assert rmap.refusal(rmap["step"].base, write=False, running=True) is None
    assert protocol.write_refusal(rmap, control.base, [1 << 1], running=True) is None   # stop
    assert protocol.write_refusal(rmap, control.base, [1], running=True) == "BUSY"      # start
    assert protocol.write_refusal(rmap, weight.address(0), [0, 0, 0, 0],
                                  running=False) == "BAD_ADDRESS"     # its last word is lane 3
    assert protocol.read_refusal(rmap, weight.address(0), 3, running=True) == "BUSY"


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
