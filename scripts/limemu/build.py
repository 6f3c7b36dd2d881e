"""``limemu build`` and ``limemu program``: FPGA bitstreams of the board top, and loading them.

``build`` runs Yosys and nextpnr (YoWASP) through amaranth-boards (synth/boards.py) and writes
the bitstream, ``report.json`` and a table into ``build/boards/<board>/``; it exits 1 when the
design does not fit or misses timing at the board clock. ``program`` loads a bitstream with
openFPGALoader or iceprog, whichever is on PATH.

cli.py adds the subcommands (``add_commands``) and dispatches through ``COMMANDS``.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from limemu.hdl.regmap import CORES
from limemu.model.errors import ConfigError, require
from limemu.model.spec import Q_STORAGES

BOARD_NAMES = ("icebreaker", "ulx3s")          # limemu.synth.boards.BOARDS (checked by the tests)
DEFAULT_OUT = Path("build") / "boards"

# what a programmer prints when no board answers on USB
NO_BOARD = re.compile(r"unable to open|can'?t find|cannot find|no (ftdi |usb )?device|device not "
                      r"found|no cable|cable not found|no board|jtag init failed|fails? to open|"
                      r"not connected", re.IGNORECASE)


def add_commands(sub):
    """The ``build`` and ``program`` subcommands."""
    build = sub.add_parser("build", help="FPGA bitstream of the array for a board, with a "
                           "resource and timing report (fails when it does not fit or misses "
                           "timing)")
    build.add_argument("--board", required=True, choices=BOARD_NAMES)
    build.add_argument("--cells", type=int, help="cells the array holds (default: the board's)")
    build.add_argument("--bits", type=int, dest="weight_bits",
                       help="weight bits (1 = spins)")
    build.add_argument("--lanes", type=int, help="cells evaluated per cycle")
    build.add_argument("--q-storage", choices=Q_STORAGES, dest="q_storage",
                       help="how the field engine stores Q")
    build.add_argument("--core", choices=CORES,
                       help="the array core: pipelined (every lane each cycle) or compact "
                       "(one lane, sequential; the iCEBreaker's); default: the board's")
    build.add_argument("--q-capacity", type=int, dest="q_capacity", metavar="E",
                       help="sparse Q: entries (nonzeros, both triangles) it holds")
    build.add_argument("--groups", type=int, help="group capacity (default: cells / lanes, "
                       "plus the board's slack for the colour order)")
    build.add_argument("--table-depth", type=int, dest="table_depth", metavar="D",
                       help="entries of the schedule tables, 256..4096")
    build.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="any build field: the Spec's formats (field_bits, q_bits, "
                       "gain_bits, ...), cell_counter_bits, groups, q_capacity; repeatable")
    build.add_argument("--baud", type=int, help="UART baud rate (default: the board's)")
    build.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    build.add_argument("--out", metavar="DIR",
                       help="build folder (default build/boards/<board>)")
    build.add_argument("--quiet", action="store_true",
                       help="no progress of the tools (shown only on a terminal anyway)")

    program = sub.add_parser("program", help="load a bitstream into a board over USB "
                             "(openFPGALoader or iceprog)")
    program.add_argument("--board", required=True, choices=BOARD_NAMES)
    program.add_argument("--bitstream", metavar="FILE",
                         help="default: the last `limemu build` of the board")
    program.add_argument("--out", metavar="DIR",
                         help="the build folder to take the bitstream from (default "
                         "build/boards/<board>)")


BUILD_OPTIONS = ("cells", "weight_bits", "lanes", "q_storage", "core", "q_capacity", "groups",
                 "table_depth")


def parse_build_settings(items):
    """--set KEY=VALUE pairs: integers for every build field, names for q_storage and core."""
    from limemu.synth.boards import BUILD_KEYS  # noqa: PLC0415 (amaranth only for builds)

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        require(sep and key in BUILD_KEYS, "--set", item,
                f"expected KEY=VALUE with KEY in {BUILD_KEYS}")
        if key in ("q_storage", "core"):
            out[key] = value.strip()
            continue
        try:
            out[key] = int(value, 0)
        except ValueError:
            raise ConfigError(f"--set = {item!r}: {key} must be an integer") from None
    return out


def build_configuration(args):
    """(board, spec, geometry) from the command line."""
    from limemu.synth.boards import board_named, configuration  # noqa: PLC0415

    board = board_named(args.board)
    changes = parse_build_settings(args.set)
    for name in BUILD_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    spec, geometry = configuration(board, **changes)
    return board, spec, geometry


def out_dir(args):
    return Path(args.out) if args.out else DEFAULT_OUT / args.board


def command_build(args):
    from limemu.synth.boards import BuildError, build_board, format_report  # noqa: PLC0415

    board, spec, geometry = build_configuration(args)
    require(args.baud is None or args.baud > 0, "baud", args.baud, "must be > 0")
    folder = out_dir(args)

    def log(line):
        print(line, flush=True)

    try:
        report = build_board(board, spec, geometry, folder, log, baud=args.baud,
                             seed=args.seed, progress=not getattr(args, "quiet", False))
    except BuildError as error:
        print(f"limemu build: error: {error}", file=sys.stderr)
        return 1
    print()
    print(format_report(report))
    print(f"limemu build: report in {folder / 'report.json'}")
    if not report["ok"]:
        print(f"limemu build: error: the design {report['failure']} on the {board.title}; "
              "try fewer lanes or cells, narrower formats (--set) or a smaller --q-capacity",
              file=sys.stderr)
        return 1
    return 0


def find_programmer(board):
    """(tool, command, arguments) of the first programmer of the board that is available:
    its environment variable (ICEPROG, OPENFPGALOADER) or the tool on PATH."""
    for tool, variable, arguments in board.programmers:
        command = os.environ.get(variable) or shutil.which(tool)
        if command:
            return tool, command, tuple(arguments)
    return None


def command_program(args):
    from limemu.synth.boards import board_named  # noqa: PLC0415

    board = board_named(args.board)
    if args.bitstream:
        bitstream = Path(args.bitstream)
        if not bitstream.is_file():
            print(f"limemu program: error: no bitstream at {bitstream}", file=sys.stderr)
            return 1
    else:
        bitstream = out_dir(args) / f"{board.top_name}{board.bitstream_suffix}"
        if not bitstream.is_file():
            print(f"limemu program: error: no bitstream at {bitstream}: build one with "
                  f"`limemu build --board {board.name}` (or give --bitstream FILE)",
                  file=sys.stderr)
            return 1
    found = find_programmer(board)
    tools = " or ".join(tool for tool, _, _ in board.programmers)
    if found is None:
        variables = ", ".join(variable for _, variable, _ in board.programmers)
        print(f"limemu program: error: {tools} is needed to program the {board.title} and "
              f"none is on PATH: install one (Debian: openfpgaloader"
              f"{', fpga-icestorm for iceprog' if board.family == 'ice40' else ''}) or "
              f"name it in {variables}", file=sys.stderr)
        return 1
    tool, command, arguments = found
    argv = [command, *arguments, str(bitstream)]
    print(f"limemu program: {' '.join(argv)}", flush=True)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except OSError as error:
        print(f"limemu program: error: cannot run {command}: {error}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired:
        print(f"limemu program: error: {tool} did not finish within 10 minutes",
              file=sys.stderr)
        return 1
    output = (done.stdout or "") + (done.stderr or "")
    if output.strip():
        print(output.rstrip())
    if done.returncode == 0:
        print(f"limemu program: {bitstream} loaded into the {board.title}")
        return 0
    if NO_BOARD.search(output):
        print(f"limemu program: error: {tool} found no {board.title} on USB (exit "
              f"{done.returncode}): connect the board, check the cable and that your user "
              f"may access the USB device (udev rules)", file=sys.stderr)
    else:
        print(f"limemu program: error: {tool} failed (exit {done.returncode}); its output "
              f"is above", file=sys.stderr)
    return 1


COMMANDS = {"build": command_build, "program": command_program}
