"""The array core under Verilator without cocotb: a C++ loop clocks it (verilator_loop.cpp).

Only for scripts/bench_rtl.py. Its simulated cycles per second are the design's own cost
under Verilator; the difference to the `verilator` backend is what cocotb and the --timing
clock add. It speaks the bus like VerilatorArray (write, read, run, close), so a
HardwareSession runs on it unchanged and its results are compared with the model the same
way.
"""

import subprocess
from importlib import resources

from limemu.model.errors import ConfigError

from .verilator import CORE, core_verilog, verilated

HARNESS = "verilator_loop.cpp"           # package data: the C++ loop that clocks the core
EXECUTABLE = "loop"


def build_loop(spec, geometry, *, log=None):
    """Folder of the built loop simulator (no --timing: the loop drives the clock); reused
    while the Verilog and the harness are unchanged."""
    text, _ = core_verilog(spec, geometry)
    harness = resources.files("limemu").joinpath(HARNESS).read_text()
    return verilated("verilator", {f"{CORE}.v": text, HARNESS: harness}, CORE,
                     executable=EXECUTABLE, log=log)


class LoopArray:
    """A running loop simulator of the core: write(pairs), read(addresses) -> words,
    run(pairs) -> cycles, close()."""

    def __init__(self, spec, geometry, *, log=None):
        from limemu.hdl.regmap import RegisterMap  # noqa: PLC0415

        self.rmap = RegisterMap(spec, geometry)
        self.folder = build_loop(spec, geometry, log=log)
        self._process = subprocess.Popen([str(self.folder / EXECUTABLE)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True)

    def _call(self, kind, numbers, count):
        try:
            self._process.stdin.write(f"{kind} {count} {' '.join(map(str, numbers))}\n")
            self._process.stdin.flush()
            reply = self._process.stdout.readline().split()
        except OSError:                                  # the simulator has exited
            reply = []
        if not reply or reply[0] != "ok":
            raise ConfigError(f"the C++-loop simulator answered {reply or 'nothing'} "
                              f"(exit code {self._process.poll()})")
        return [int(x) for x in reply[1:]]

    def write(self, pairs):
        pairs = [(int(a), int(w)) for a, w in pairs]
        self._call("w", [x for pair in pairs for x in pair], len(pairs))

    def read(self, addresses):
        addresses = [int(a) for a in addresses]
        return self._call("r", addresses, len(addresses))

    def run(self, pairs):
        pairs = [(int(a), int(w)) for a, w in pairs]
        return self._call("x", [x for pair in pairs for x in pair], len(pairs))[0]

    def close(self):
        if self._process.poll() is None:
            self._process.communicate("q\n", timeout=30)     # closes both pipes
        else:
            self._process.stdin.close()
            self._process.stdout.close()
