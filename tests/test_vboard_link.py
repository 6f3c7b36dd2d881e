"""The host link end to end on the virtual board: the whole board top (UART, bridge, core)
under Verilator on a pseudo-terminal. Every protocol error is answered, and a refused request
changes nothing: the test reads every readable word of the register map before and after.
Then a run through the command line agrees with the golden model bit for bit."""

import json
import struct
import time

import pytest
from limemu.cli import main
from limemu.hdl import protocol
from limemu.hdl.regmap import CONTROL, STATUS, Geometry, RegisterMap
from limemu.host import register_writes, run_plan
from limemu.link import Link, LinkError
from limemu.model.errors import ConfigError
from limemu.model.spec import Spec
from limemu.vboard import VirtualBoard

SPEC = Spec(cells=6, lanes=3, weight_bits=4)
GEOMETRY = Geometry(lanes=3, groups=2, q_storage="dense", q_capacity=1, table_depth=256)
#: the protocol on both cores' board tops (the compact core holds the bus off at times)
BUILDS = {"pipelined": (SPEC, GEOMETRY),
          "compact": (SPEC.replace(lanes=1), Geometry(lanes=1, groups=6, q_storage="dense",
                                                      q_capacity=1, table_depth=256,
                                                      core="compact"))}


@pytest.fixture(scope="module", params=list(BUILDS))
def board(request):
    spec, geometry = BUILDS[request.param]
    with VirtualBoard(spec, geometry) as vb:
        link = Link(vb.port, baud=vb.baud, timeout=2.0, retries=0, log=lambda m: None)
        yield vb, link, RegisterMap(spec, geometry)
        link.close()


def readable(rmap):
    top = max(r.base + r.size for r in rmap)
    return [a for a in range(top) if rmap.refusal(a, write=False, running=False) is None]


def snapshot(link, rmap):
    return link.read(readable(rmap))


def exchange(link, frame, *, wait=2.0):
    """Send raw bytes; return the next answer (status name, seq, skipped, payload)."""
    link.serial.write(frame)
    answer = link._frame(time.monotonic() + wait)
    assert not isinstance(answer, str), answer
    return answer


def test_info_describes_the_build(board):
    vb, link, rmap = board
    info = link.info()
    assert info["geometry"] == rmap.geometry and info["spec"]["lanes"] == rmap.spec.lanes
    assert info["clock_hz"] == vb.clock_hz and info["baud"] == vb.baud


def weight_write(rmap, seq, values, *, index=0):
    address = rmap["weight"].address(index)
    return protocol.encode_request("WRITE", seq, protocol.write_payload(address, values))


REFUSED = {
    "BAD_CRC": lambda rmap: weight_write(rmap, 11, [5])[:-1] + b"\x00",
    "UNKNOWN_COMMAND": lambda rmap: b"\xa5" + _body(0x7E, 12, protocol.write_payload(0, [1])),
    "BAD_LENGTH": lambda rmap: b"\xa5" + _body(protocol.COMMANDS["WRITE"], 13, b"\0" * 6),
    # a burst that is valid except for its last word: the register before the counters, then
    # the first (read-only) counter word
    "BAD_ADDRESS": lambda rmap: protocol.encode_request(
        "WRITE", 14, protocol.write_payload(_before_counters(rmap).base,
                                            list(range(5, 6 + _before_counters(rmap).size)))),
}


def _before_counters(rmap):
    """The (writable) register just below the first counter."""
    return max((r for r in rmap if r.base < rmap["counter_steps"].base), key=lambda r: r.base)


def _body(command, seq, payload):
    body = struct.pack("<BBH", command, seq, len(payload)) + payload
    return body + struct.pack("<H", protocol.crc16(body))


@pytest.mark.parametrize("status", sorted(REFUSED))
def test_a_refused_request_is_answered_and_changes_nothing(board, status):
    _, link, rmap = board
    link.write(register_writes(rmap, "cells", 6))
    before = snapshot(link, rmap)
    answer = exchange(link, REFUSED[status](rmap))
    assert answer[0] == status
    assert snapshot(link, rmap) == before


def test_a_truncated_request_is_answered_after_the_timeout_and_changes_nothing(board):
    _, link, rmap = board
    before = snapshot(link, rmap)
    answer = exchange(link, weight_write(rmap, 21, [5, 6])[:-3], wait=5.0)
    assert answer[:2] == ("TRUNCATED", 21)
    assert snapshot(link, rmap) == before


def test_a_too_long_request_is_refused_from_its_header(board):
    _, link, rmap = board
    before = snapshot(link, rmap)
    header = b"\xa5" + struct.pack("<BBH", protocol.COMMANDS["WRITE"], 22, 60000)
    assert exchange(link, header)[:2] == ("BAD_LENGTH", 22)
    time.sleep(0.3)                           # let the bridge report the silence, if it does
    link.serial.reset_input_buffer()
    assert snapshot(link, rmap) == before


def test_garbage_between_frames_is_counted_and_reported(board):
    _, link, rmap = board
    read = protocol.encode_request("READ", 31, protocol.read_payload(rmap["magic"].base, 1))
    status, seq, skipped, payload = exchange(link, b"\x00\x11\x22" + read)
    assert (status, seq, skipped) == ("OK", 31, 3)
    assert exchange(link, b"\x01\x02", wait=5.0)[:3] == ("GARBAGE", 0, 2)


def test_a_repeated_write_is_not_applied_twice(board):
    _, link, rmap = board
    address = rmap["weight"].address(1)
    first = protocol.encode_request("WRITE", 41, protocol.write_payload(address, [3]))
    again = protocol.encode_request("WRITE", 41, protocol.write_payload(address, [7]))
    assert exchange(link, first)[0] == "OK"
    assert exchange(link, again)[0] == "DUPLICATE"
    assert link.read([address]) == [3]
    link.info()                                # INFO clears the duplicate filter
    assert exchange(link, again)[0] == "OK"
    assert link.read([address]) == [7]


def test_a_run_requested_during_a_run_is_refused_and_stop_is_accepted(board):
    _, link, rmap = board
    link.write(register_writes(rmap, "groups", 2))
    link.write(run_plan(rmap, 1 << 40))                     # runs until stopped
    status = rmap["status"].base
    assert link.read([status])[0] >> STATUS["busy"] & 1
    steps_register = rmap["run_steps"].base
    again = run_plan(rmap, 5)
    with pytest.raises(LinkError, match="BUSY"):
        link.write(again)
    with pytest.raises(LinkError, match="BUSY"):
        link.write([(rmap["control"].base, 1 << CONTROL["start"])])
    with pytest.raises(LinkError, match="BUSY"):
        link.read([rmap["weight"].address(0)])              # memories wait for the stop
    link.write([(rmap["control"].base, 1 << CONTROL["stop"])])
    deadline = time.monotonic() + 5
    while link.read([status])[0] >> STATUS["busy"] & 1:
        assert time.monotonic() < deadline, "the core did not stop"
    kept = link.read([steps_register, steps_register + 1])
    if rmap.geometry.core == "compact":      # its run_steps counted down: the steps left
        steps = link.read([rmap["counter_steps"].base])[0]
        assert kept == [(-steps) & 0xFFFFFFFF, (1 << 8) - 1] and steps > 0
    else:
        assert kept == [0, 1 << 8]                          # 1 << 40 kept
    assert not link.read([status])[0] >> STATUS["error_busy_write"] & 1


def test_run_on_the_vboard_gives_the_models_json(tmp_path):
    common = ["run", "--workload", "maxcut", "--cells", "40", "--lanes", "4", "--steps",
              "200", "--quiet", "--seed", "3"]
    assert main(common + ["--json", str(tmp_path / "model.json")]) == 0
    assert main(common + ["--backend", "vboard", "--json", str(tmp_path / "vb.json")]) == 0
    model = json.loads((tmp_path / "model.json").read_text())
    vboard = json.loads((tmp_path / "vb.json").read_text())
    # the RTL backends add the core's own count of run cycles
    assert vboard["backend"] == "vboard" and set(vboard) == set(model) | {"cycles"}
    assert vboard["weights"] == model["weights"] and vboard["counters"] == model["counters"]


@pytest.mark.parametrize("options", [
    ["--workload", "maxcut", "--cells", "48", "--lanes", "5", "--order", "colour"],
    ["--workload", "lsq", "--bits", "8", "--lanes", "2"],
    ["--workload", "maxcut", "--cells", "48", "--core", "compact", "--tabulate", "256"],
])
def test_crosscheck_on_the_vboard(options, capsys):
    assert main(["crosscheck", "--backend", "vboard", "--steps", "300", "--checkpoints", "3",
                 "--quiet"] + options) == 0
    assert "crosscheck: PASS" in capsys.readouterr().out


def test_a_dead_virtual_board_is_reported_with_its_log():
    from limemu.link import BoardDevice  # noqa: PLC0415
    board = VirtualBoard(SPEC, GEOMETRY)
    link = Link(board.port, baud=board.baud, timeout=0.5, retries=0, log=lambda m: None)
    device = BoardDevice(link, RegisterMap(SPEC, GEOMETRY), name="vboard", board=board)
    try:
        board._process.kill()
        board._process.wait()
        with pytest.raises(ConfigError, match="not running.*log"):
            device.read([0])
    finally:
        link.close()
        board.close()


RUN = ["--workload", "maxcut", "--cells", "40", "--lanes", "4", "--order", "colour",
       "--steps", "200", "--seed", "5", "--quiet"]


@pytest.fixture(scope="module")
def larger_board():
    """A board build with more room than the run needs, as a real board has: the
    `--backend board` path (INFO, capacity checks, the board's own register map) on the
    virtual board's pty."""
    from limemu.runner import build_run  # noqa: PLC0415
    _, spec, _ = build_run({"workload": "maxcut", "cells": 40, "lanes": 4, "order": "colour"})
    with VirtualBoard(spec.replace(cells=64), Geometry(
            lanes=4, groups=32, q_storage="sparse", q_capacity=1024, table_depth=512)) as vb:
        yield vb


def test_backend_board_runs_on_a_larger_build_bit_exactly(larger_board, tmp_path):
    assert main(["run"] + RUN + ["--json", str(tmp_path / "model.json")]) == 0
    assert main(["run"] + RUN + ["--backend", "board", "--port", larger_board.port,
                                 "--json", str(tmp_path / "board.json")]) == 0
    model = json.loads((tmp_path / "model.json").read_text())
    board = json.loads((tmp_path / "board.json").read_text())
    assert board["weights"] == model["weights"] and board["counters"] == model["counters"]
    assert main(["crosscheck", "--backend", "board", "--port", larger_board.port] + RUN) == 0


def test_backend_board_refuses_a_run_its_build_cannot_hold(larger_board, capsys):
    options = [o if o != "4" else "2" for o in RUN]                  # --lanes 2
    assert main(["run"] + options + ["--backend", "board", "--port", larger_board.port]) == 2
    assert "lanes = 2 (the board has 4)" in capsys.readouterr().err
    assert main(["run", "--workload", "maxcut", "--cells", "100", "--lanes", "4", "--quiet",
                 "--backend", "board", "--port", larger_board.port]) == 2
    assert "cells = 100 (the board holds 64)" in capsys.readouterr().err


COMPACT_RUN = ["--workload", "maxcut", "--cells", "40", "--steps", "200", "--seed", "5",
               "--quiet", "--tabulate", "256"]


@pytest.fixture(scope="module")
def compact_board():
    """A build of the compact core (the iCEBreaker's) with room to spare: `--backend board`
    learns the core from INFO and loads only the schedules it computes."""
    from limemu.runner import build_run  # noqa: PLC0415
    _, spec, _ = build_run({"workload": "maxcut", "cells": 40, "lanes": 1})
    with VirtualBoard(spec.replace(cells=64), Geometry(
            lanes=1, groups=64, q_storage="sparse", q_capacity=1024, table_depth=512,
            core="compact")) as vb:
        yield vb


def test_backend_board_runs_on_a_compact_build_bit_exactly(compact_board, tmp_path, capsys):
    assert main(["run"] + COMPACT_RUN + ["--lanes", "1", "--json",
                                         str(tmp_path / "model.json")]) == 0
    assert main(["run"] + COMPACT_RUN + ["--lanes", "1", "--backend", "board", "--port",
                                         compact_board.port,
                                         "--json", str(tmp_path / "board.json")]) == 0
    model = json.loads((tmp_path / "model.json").read_text())
    board = json.loads((tmp_path / "board.json").read_text())
    assert board["weights"] == model["weights"] and board["counters"] == model["counters"]
    capsys.readouterr()
    # the default exponential anneal of the gain, not tabulated: refused before any load
    options = [o for o in COMPACT_RUN if o not in ("--tabulate", "256")]
    assert main(["run"] + options + ["--lanes", "1", "--backend", "board", "--port",
                                     compact_board.port]) == 2
    assert "gain.kind = 'exponential': the compact core computes only" in capsys.readouterr().err
