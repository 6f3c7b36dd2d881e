"""Soak of the virtual board on a noisy serial line: a long anneal, bit-exact at every checkpoint.

    python scripts/soak_vboard.py --minutes 60 --fault-rate 1e-3 [--seed 1] [--cells 64]

The virtual board (the board top under Verilator on a pty) is reached through a NoisyLine
(scripts/limemu/noisy_line.py): `--fault-rate` per byte in each direction, shared equally by
bit flips, drops, duplicated bytes and stalls of up to `--delay-ms`. A Max-Cut anneal
(logarithmic barrier schedule) runs on the board and on the golden model in segments of
`--steps` steps until `--minutes` have passed; after each segment every weight, counter,
overflow flag and field entry read back over the noisy link must equal the model's (the
cross-check's comparison), and at the end the core's first law is checked on its registers.

The host driver (limemu.link.Link) retries a lost or damaged request `--retries` times and
then, up to `--resyncs` rounds, waits for the line to fall quiet and retries again. A request
that fails every round is a failure: the soak stops there, since whether a WRITE it carried
was applied is unknown. Prints progress, then the frames sent, the faults injected by kind,
the retries, resyncs, failures and checkpoints; exits 1 on a mismatch or a failure.
"""

import argparse
import sys
import time

from limemu.compare import first_difference
from limemu.hardware import HardwareSession, expect_build
from limemu.hdl.regmap import CORES, RegisterMap
from limemu.link import BoardDevice, Link, LinkError
from limemu.model import Schedule, Spec
from limemu.model.errors import ConfigError, require
from limemu.noisy_line import KINDS, FaultRates, NoisyLine
from limemu.runner import ModelSession
from limemu.vboard import VirtualBoard
from limemu.workloads import maxcut_workload

PROGRESS_SECONDS = 30
# The host's patience must exceed the bridge's frame timeout (VBOARD_TIMEOUT_CYCLES: 2^18
# cycles, 0.3 to 0.4 s of wall time at the virtual board's 0.7 to 0.9 million simulated cycles
# per second, longer on a loaded machine): a request resent sooner feeds the damaged frame the
# bridge is still waiting for, and the resend is lost with it.
TIMEOUT = 1.5
# A started answer whose bytes stop for this long lost some on the line: resent at once (the
# bridge is done with it). Above the longest stall a delay fault inserts by default.
ANSWER_GAP = 0.2
COMPACT_TABLE, COMPACT_STEPS = 256, 256 * 1024


def noisy_board(rates, *, seed, timeout, retries, resyncs, log):
    """A device class for HardwareSession: the virtual board behind a NoisyLine."""

    class NoisyBoardDevice(BoardDevice):
        def __init__(self, spec, geometry, log=None):
            board = VirtualBoard(spec, geometry, log=log)
            try:
                self.line = NoisyLine(board.port, rates, seed=seed)
                link = Link(self.line.port, baud=board.baud, timeout=timeout, retries=retries,
                            resyncs=resyncs, answer_gap=max(ANSWER_GAP, 4 * rates.delay_seconds),
                            log=link_log)
                rmap = RegisterMap(spec, geometry)
                expect_build(link.info(), rmap, "the virtual board")
            except BaseException:
                board.close()
                raise
            super().__init__(link, rmap, name="vboard", board=board)

        def close(self):
            super().close()
            self.line.close()

    def link_log(message):
        if log:
            log(f"  link: {message}")

    return NoisyBoardDevice


def anneal_spec(problem, *, lanes, seed, core):
    """A Max-Cut anneal with no fixed end: the barrier falls logarithmically from 8 u, by
    0.5 u per doubling of 1 + k/64 (about 2.7 u at step 100 000). The compact core, which
    computes tables only, runs it as a table of COMPACT_TABLE entries over COMPACT_STEPS steps
    (held at its last entry after)."""
    barrier = Schedule.logarithmic(8 * 256, -128, 64, lo=256)
    spec = Spec(cells=problem.n, weight_bits=1, lanes=lanes if core != "compact" else 1,
                q_storage="sparse", order="colour", seed=seed, barrier=barrier,
                gain=Schedule.constant(64))
    if core == "compact":
        spec = spec.replace(barrier=barrier.tabulated(
            "barrier", spec.barrier_bits, COMPACT_TABLE, COMPACT_STEPS // COMPACT_TABLE))
    return spec


def soak(*, minutes, fault_rate, seed=1, cells=64, lanes=4, steps=50, core="pipelined",
         delay_ms=20.0, timeout=None, retries=3, resyncs=20, verbose=False, out=print):
    """Runs the soak; returns a dict of its figures (see summary())."""
    require(minutes > 0, "minutes", minutes, "must be > 0")
    require(steps >= 1, "steps", steps, "must be >= 1")
    timeout = TIMEOUT if timeout is None else timeout
    rates = FaultRates.spread(fault_rate, delay_seconds=delay_ms / 1e3)
    workload = maxcut_workload(cells=cells, seed=seed)
    spec = anneal_spec(workload.problem, lanes=lanes, seed=seed, core=core)
    device = noisy_board(rates, seed=seed, timeout=timeout, retries=retries, resyncs=resyncs,
                         log=out if verbose else None)
    out(f"soak: {minutes:g} min, {workload.problem.n}-spin Max-Cut on the virtual board "
        f"({core} core), faults per byte: {rates.describe()}, seed {seed}")
    started = time.monotonic()
    model = ModelSession(workload, spec, progress=False)
    figures = dict(minutes=minutes, fault_rate=fault_rate, seed=seed, checkpoints=0, step=0,
                   failures=0, mismatch=None, failure=None, first_law=None)
    rtl = None
    try:
        rtl = HardwareSession(workload, spec, progress=False, name="vboard", core=core,
                              device=device)
        out(f"  built, started and loaded in {time.monotonic() - started:.1f} s; {steps} "
            f"steps per checkpoint")
        deadline = time.monotonic() + 60 * minutes
        shown = time.monotonic()
        while time.monotonic() < deadline:
            model.run(steps)
            rtl.run(steps)
            figures["step"] = rtl.step
            figures["checkpoints"] += 1
            difference = first_difference(spec, model, rtl)
            if difference is not None:
                figures["mismatch"] = (f"after step {rtl.step} (seed {seed}): first mismatch "
                                       f"{difference}")
                break
            if time.monotonic() - shown >= PROGRESS_SECONDS:
                shown = time.monotonic()
                out(progress_line(started, figures, rtl.device))
        if figures["mismatch"] is None:
            figures["first_law"] = rtl.check_first_law()
    except (LinkError, ConfigError) as error:
        if rtl is None and not isinstance(error, LinkError):
            raise
        figures["failures"] += 1
        figures["failure"] = f"after step {figures['step']}: {error}"
    finally:
        figures["seconds"] = time.monotonic() - started
        if rtl is not None:
            figures.update(link_figures(rtl.device))
            rtl.close()
    return figures


def link_figures(device):
    link, line = device.link, device.line
    counts = line.counts()
    return dict(requests=link.requests, resent=link.resent, resynced=link.resynced,
                frames=link.requests + link.resent, skipped=link.skipped,
                faults=line.injected(),
                bytes={direction: c["bytes"] for direction, c in counts.items()})


def progress_line(started, figures, device):
    f = link_figures(device)
    faults = sum(f["faults"].values())
    return (f"  {(time.monotonic() - started) / 60:5.1f} min: step {figures['step']}, "
            f"{figures['checkpoints']} checkpoints identical; {f['frames']} frames sent, "
            f"{faults} faults injected, {f['resent']} retries, {f['resynced']} resyncs")


def summary(figures):
    lines = [f"soak summary ({figures['seconds'] / 60:.1f} min, fault rate "
             f"{figures['fault_rate']:g} per byte, seed {figures['seed']}):"]
    if "frames" in figures:
        faults = figures["faults"]
        lines += [
            f"  frames sent: {figures['frames']} ({figures['requests']} requests + "
            f"{figures['resent']} resent); bytes to the board {figures['bytes']['to_board']}, "
            f"to the host {figures['bytes']['to_host']}",
            f"  faults injected: {sum(faults.values())} ("
            + ", ".join(f"{kind} {faults[kind]}" for kind in KINDS) + ")",
            f"  retries: {figures['resent']}; resyncs: {figures['resynced']}; garbage bytes the "
            f"board discarded: {figures['skipped']}"]
    lines += [f"  failures (requests that failed every retry): {figures['failures']}",
              f"  checkpoints compared: {figures['checkpoints']} (to step {figures['step']})",
              f"  first law on the core's registers: {figures['first_law']}"]
    if figures["mismatch"]:
        lines.append(f"  result: MISMATCH {figures['mismatch']}")
    elif figures["failure"]:
        lines.append(f"  result: FAILED {figures['failure']}")
    elif not figures["checkpoints"]:
        lines.append("  result: FAILED: no checkpoint was reached")
    else:
        lines.append("  result: bit-exact at every checkpoint")
    return "\n".join(lines)


def passed(figures):
    return figures["mismatch"] is None and figures["failure"] is None and \
        figures["checkpoints"] > 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--fault-rate", type=float, required=True,
                        help="faults per byte in each direction, all kinds together")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cells", type=int, default=64)
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50, help="steps per checkpoint")
    parser.add_argument("--core", default="pipelined", choices=CORES)
    parser.add_argument("--delay-ms", type=float, default=20.0,
                        help="longest stall a delay fault inserts")
    parser.add_argument("--timeout", type=float, default=TIMEOUT,
                        help="seconds to wait for an answer beyond its time on the wire")
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--resyncs", type=int, default=20)
    parser.add_argument("--verbose", action="store_true", help="print the link's messages")
    args = parser.parse_args(argv)

    def out(line):
        print(line, flush=True)

    try:
        figures = soak(minutes=args.minutes, fault_rate=args.fault_rate, seed=args.seed,
                       cells=args.cells, lanes=args.lanes, steps=args.steps, core=args.core,
                       delay_ms=args.delay_ms, timeout=args.timeout, retries=args.retries,
                       resyncs=args.resyncs, verbose=args.verbose, out=out)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out(summary(figures))
    return 0 if passed(figures) else 1


if __name__ == "__main__":
    sys.exit(main())
