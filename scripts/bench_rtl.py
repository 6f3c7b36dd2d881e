"""Benchmark of the RTL under Verilator next to the golden model, on the same runs.

    python scripts/bench_rtl.py [--cells 1024] [--lanes 1 8 32] [--seconds 5]

A 1024-spin Max-Cut array (random graph, mean degree 6, sparse Q, colour order) at two
fixed barriers: consolidated (few moves) and plastic (many moves). For each lane count it
prints the simulator's cell-evaluations per second and simulated cycles per second (the core
runs the steps on its own; build and load times are excluded and printed apart), and the
golden model's cell-evaluations per second on the identical run, whose results are checked
equal.
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass

sys.path[:0] = [os.path.join(os.path.dirname(__file__), ".."), os.path.dirname(__file__)]

from limemu.compare import first_difference  # noqa: E402
from limemu.hardware import HardwareSession  # noqa: E402
from limemu.runner import ModelSession  # noqa: E402
from limemu.workloads import maxcut_workload  # noqa: E402
from python_model import Schedule, Spec  # noqa: E402


@dataclass
class Workload:
    problem: object


def measure(problem, lanes, barrier_u, seconds):
    spec = Spec(cells=problem.n, weight_bits=1, lanes=lanes, q_storage="sparse",
                order="colour", seed=1, barrier=Schedule.constant(int(barrier_u * 256)),
                gain=Schedule.constant(64))
    workload = Workload(problem)
    started = time.perf_counter()
    rtl = HardwareSession(workload, spec, progress=False,
                          log=lambda m: sys.stderr.write(m + "\n"))
    setup = time.perf_counter() - started
    try:
        rtl.run(2)                                     # calibrate: seconds per step
        steps = max(2, int(seconds * 2 / max(rtl.run_seconds, 1e-6)))
        before = rtl.counters()["evaluations"], rtl.cycles, rtl.run_seconds
        rtl.run(steps)
        evaluations = rtl.counters()["evaluations"] - before[0]
        cycles, run_seconds = rtl.cycles - before[1], rtl.run_seconds - before[2]
        counters = rtl.counters()
        model = ModelSession(workload, spec, progress=False)
        model.run(2)
        start = time.perf_counter()
        model.run(steps)
        model_seconds = time.perf_counter() - start
        difference = first_difference(spec, model, rtl)
    finally:
        rtl.close()
    moves = (counters["up_moves"] + counters["down_moves"]) / counters["evaluations"]
    return dict(setup=setup, steps=steps, rtl_rate=evaluations / run_seconds,
                cycles_rate=cycles / run_seconds, cycles_per_group=cycles / steps / (
                    problem.n / lanes), model_rate=evaluations / model_seconds, moves=moves,
                equal=difference is None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1024)
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--barriers", type=float, nargs="+", default=[16.0, 6.0],
                        help="fixed barriers in u (default: 16 consolidated, 6 plastic)")
    parser.add_argument("--seconds", type=float, default=5.0, help="RTL run time per figure")
    args = parser.parse_args()
    problem = maxcut_workload(cells=args.cells, seed=1).problem
    print(f"RTL (Verilator) vs golden model: {args.cells}-spin Max-Cut, sparse Q, colour "
          f"order, gain 1 u/loss; about {args.seconds:g} s of RTL run per figure")
    print(f"{'lanes':>5s} {'barrier':>7s} {'move rate':>9s} {'RTL evals/s':>12s} "
          f"{'cycles/s':>10s} {'cycles/group':>12s} {'model evals/s':>13s} {'RTL/model':>9s} "
          f"{'setup s':>7s} equal")
    for lanes in args.lanes:
        for barrier in args.barriers:
            r = measure(problem, lanes, barrier, args.seconds)
            print(f"{lanes:5d} {barrier:6g}u {r['moves']:9.2e} {r['rtl_rate']:12.3g} "
                  f"{r['cycles_rate']:10.3g} {r['cycles_per_group']:12.1f} "
                  f"{r['model_rate']:13.3g} {r['rtl_rate'] / r['model_rate']:9.3f} "
                  f"{r['setup']:7.1f} {'yes' if r['equal'] else 'NO'}", flush=True)


if __name__ == "__main__":
    main()
