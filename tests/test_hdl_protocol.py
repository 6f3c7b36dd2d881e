"""The host link's frame format (hdl/protocol.py): CRC, layouts, bursts, INFO, the refusal
rules. The host driver is tested in test_link.py, the bridge's side of the protocol in
test_hdl_host_bridge.py (Amaranth) and end to end on the virtual board in
test_vboard_link.py."""

import struct

import pytest
from limemu.hdl import protocol
from limemu.hdl.regmap import Geometry, RegisterMap
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
    assert rmap.refusal(rmap["seed"].address(3), write=True, running=False) is None  # MH's
    wide = small_map(lanes=4)      # seeds 0-3 for the lanes, 4 for MH's acceptance generator
    assert wide.refusal(wide["seed"].address(4), write=True, running=False) is None
    assert wide.refusal(wide["seed"].address(5), write=True, running=False) == "address"
    assert rmap.refusal(rmap["seed"].address(0), write=False, running=False) == "address"
    seed = rmap["seed"]
    assert rmap.refusal(seed.address(0, seed.stride - 1), write=True, running=False) == "address"
    assert rmap.refusal(rmap["step"].base, write=False, running=True) is None
    assert protocol.write_refusal(rmap, control.base, [1 << 1], running=True) is None   # stop
    assert protocol.write_refusal(rmap, control.base, [1], running=True) == "BUSY"      # start
    assert protocol.write_refusal(rmap, weight.address(0), [0, 0, 0, 0],
                                  running=False) == "BAD_ADDRESS"     # its last word is lane 3
    assert protocol.read_refusal(rmap, weight.address(0), 3, running=True) == "BUSY"
