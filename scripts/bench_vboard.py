"""Benchmark of the virtual board: a full load-run-read cycle over the serial link.

    python scripts/bench_vboard.py [--cells 1024] [--lanes 8] [--steps 100]

A 1024-spin Max-Cut array (random graph, mean degree 6, sparse Q, colour order) on the
virtual board (board top with its UART, under Verilator, on a pseudo-terminal). Prints the
build/start time, then the wall time of each phase: load (every word of the run over the
link, init_field included), run (the core's steps on its own), read (weights, field and
counters), with the link's bytes per second; and checks the result against the golden model.
"""

import argparse
import sys
import time
from dataclasses import dataclass

from limemu.compare import first_difference
from limemu.hardware import HardwareSession
from limemu.host import load_sequence
from limemu.model import Schedule, Spec
from limemu.runner import ModelSession
from limemu.workloads import maxcut_workload


@dataclass
class Workload:
    problem: object


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=1024)
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    problem = maxcut_workload(cells=args.cells, seed=1).problem
    spec = Spec(cells=problem.n, weight_bits=1, lanes=args.lanes, q_storage="sparse",
                order="colour", seed=1, barrier=Schedule.constant(6 * 256),
                gain=Schedule.constant(64))
    workload = Workload(problem)
    print(f"virtual board: {problem.n}-spin Max-Cut, {problem.nnz} nonzeros of Q, "
          f"{args.lanes} lanes, {args.steps} steps")
    started = time.perf_counter()
    session = HardwareSession(workload, spec, progress=False, name="vboard",
                              log=lambda m: sys.stderr.write(m + "\n"))
    opened = time.perf_counter() - started
    try:
        words = sum(len(pairs) for _, pairs in load_sequence(
            session.rmap, problem, session.probe.order, session.probe.W0))
        link = session.device.link
        # the session loaded the run while it opened; time a second, identical load
        started = time.perf_counter()
        for kind, pairs in load_sequence(session.rmap, problem, session.probe.order,
                                         session.probe.W0):
            (session.device.run if kind == "run" else session.device.write)(pairs)
        load = time.perf_counter() - started
        started = time.perf_counter()
        session.run(args.steps)
        run = time.perf_counter() - started
        session._state = None
        started = time.perf_counter()
        session.state()
        read = time.perf_counter() - started
        model = ModelSession(workload, spec, progress=False)
        model.run(args.steps)
        difference = first_difference(spec, model, session)
        cycles = session.cycles
    finally:
        session.close()
    print(f"  build + start + first load: {opened:6.2f} s")
    print(f"  load:  {load:6.2f} s  ({words} words, {4 * words / load / 1e3:.0f} kB/s of "
          f"payload; link resends {link.resent})")
    print(f"  run:   {run:6.2f} s  ({args.steps} steps, {cycles} cycles, "
          f"{args.steps * problem.n / run:.3g} cell-evaluations/s)")
    print(f"  read:  {read:6.2f} s")
    print(f"  load + run + read: {load + run + read:.2f} s")
    print(f"  vs golden model: {'identical' if difference is None else difference}")
    return 0 if difference is None else 1


if __name__ == "__main__":
    sys.exit(main())
