"""The virtual board (scripts/limemu/vboard.py): the board top under Verilator on a pty,
spoken to with pyserial and hand-made frames (no host driver), as a real board would be."""

import os
import struct
import time

import pytest
import serial
from limemu.hdl import protocol
from limemu.hdl.regmap import Geometry, RegisterMap
from limemu.model import Spec
from limemu.model.errors import ConfigError
from limemu.vboard import VBOARD_BAUD, VBOARD_CLOCK_HZ, VirtualBoard

SPEC = Spec(cells=16, lanes=2, weight_bits=4)
GEOMETRY = Geometry(lanes=2, groups=8, q_storage="dense", q_capacity=1, table_depth=256)


@pytest.fixture(scope="module")
def board():
    with VirtualBoard(SPEC, GEOMETRY) as running:
        yield running


@pytest.fixture
def port(board):
    with serial.Serial(board.port, baudrate=board.baud, timeout=5) as opened:
        opened.reset_input_buffer()
        yield opened


def exactly(port, count):
    data = port.read(count)
    assert len(data) == count, f"expected {count} bytes, got {data!r}"
    return data


def response(port):
    """(status name, seq, skipped, payload) of the next response, checked byte by byte."""
    header = exactly(port, protocol.RESPONSE_HEADER)
    sync, status, seq, skipped, length = struct.unpack("<BBBBH", header)
    assert sync == protocol.RESPONSE_SYNC
    payload = exactly(port, length)
    (crc,) = struct.unpack("<H", exactly(port, protocol.CRC_BYTES))
    assert crc == protocol.crc16(header[1:] + payload)
    return protocol.STATUS_NAMES[status], seq, skipped, payload


def test_info_describes_the_build(port):
    port.write(protocol.encode_request("INFO", 7))
    status, seq, skipped, payload = response(port)
    assert (status, seq, skipped) == ("OK", 7, 0)
    assert protocol.words_of(payload) == protocol.info_words(
        SPEC, GEOMETRY, clock_hz=VBOARD_CLOCK_HZ, baud=VBOARD_BAUD, run_cycles=0)


def test_a_register_written_reads_back(port):
    rmap = RegisterMap(SPEC, GEOMETRY)
    address = rmap["run_steps"].base                       # 48 bits: two words
    port.write(protocol.encode_request("INFO", 1))         # resets the duplicate filter
    assert response(port)[:2] == ("OK", 1)
    words = [0x89ABCDEF, 0x4567]
    port.write(protocol.encode_request("WRITE", 2, protocol.write_payload(address, words)))
    assert response(port) == ("OK", 2, 0, b"")
    port.write(protocol.encode_request("READ", 3, protocol.read_payload(address, 2)))
    status, seq, _, payload = response(port)
    assert (status, seq) == ("OK", 3) and protocol.words_of(payload) == words
    # the same WRITE again (a host's retry) is not applied twice
    port.write(protocol.encode_request("WRITE", 2, protocol.write_payload(address, [5, 0])))
    assert response(port)[0] == "DUPLICATE"
    port.write(protocol.encode_request("READ", 4, protocol.read_payload(address, 2)))
    assert protocol.words_of(response(port)[3]) == words


def test_full_bursts_cross_the_line_intact(port):
    """The longest frames there are, both ways: all of Q in one WRITE and one READ."""
    region = RegisterMap(SPEC, GEOMETRY)["q"]
    assert region.size == protocol.MAX_WORDS and region.width <= 16
    port.write(protocol.encode_request("INFO", 1))
    assert response(port)[0] == "OK"
    for seq, shift in ((2, 0), (3, 5)):
        words = [(i * 2654435761 >> shift) & 0xFFFF for i in range(protocol.MAX_WORDS)]
        port.write(protocol.encode_request("WRITE", seq, protocol.write_payload(region.base,
                                                                                words)))
        assert response(port) == ("OK", seq, 0, b"")
        port.write(protocol.encode_request("READ", seq + 10, protocol.read_payload(
            region.base, protocol.MAX_WORDS)))
        status, _, _, payload = response(port)
        assert status == "OK" and protocol.words_of(payload) == words


def test_a_truncated_frame_is_answered_promptly(port):
    frame = protocol.encode_request("INFO", 9)
    start = time.monotonic()
    port.write(frame[:-1])
    status, seq, skipped, payload = response(port)
    assert (status, payload) == ("TRUNCATED", b"")
    assert time.monotonic() - start < 1.0, "the frame timeout is too long for a virtual board"


def test_a_frame_written_in_two_pieces_is_still_one_frame(port):
    """The frame timeout has room for a host's pause between writes (about 0.1 s at this
    design's simulation speed; 10 ms here)."""
    frame = protocol.encode_request("INFO", 10)
    port.write(frame[:4])
    time.sleep(0.01)
    port.write(frame[4:])
    assert response(port)[:3] == ("OK", 10, 0)


def test_the_port_survives_being_closed_and_reopened(board):
    for seq in (11, 12):
        with serial.Serial(board.port, timeout=5) as opened:
            opened.write(protocol.encode_request("INFO", seq))
            assert response(opened)[:2] == ("OK", seq)


def test_an_idle_board_stops_its_clock(board, port):
    port.write(protocol.encode_request("INFO", 13))
    response(port)
    time.sleep(0.05)
    before = board.stats()
    time.sleep(0.3)
    after = board.stats()
    assert after["cycles"] == before["cycles"] and after["bytes_out"] == before["bytes_out"]
    assert before["framing_errors"] == 0 and before["cycles_per_second"] > 1e5


def test_close_ends_the_process_and_a_dead_board_says_so():
    board = VirtualBoard(SPEC, GEOMETRY)
    pid = board.pid
    assert board.alive and os.path.exists(board.port)
    board.close()
    assert not board.alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    board.close()                                          # idempotent

    board = VirtualBoard(SPEC, GEOMETRY)
    try:
        os.kill(board.pid, 9)
        board._process.wait(timeout=5)
        with pytest.raises(ConfigError, match=r"not running.*exit code -9.*log"):
            board.stats()
    finally:
        board.close()
        board.log_path.unlink(missing_ok=True)             # kept because the process failed
