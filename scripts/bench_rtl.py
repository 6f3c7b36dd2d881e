"""Benchmark of the RTL under Verilator next to the golden model, on the same runs.

    python scripts/bench_rtl.py [--cells 1024] [--lanes 1 8 32] [--seconds 5]

A 1024-spin Max-Cut array (random graph, mean degree 6, sparse Q, colour order) at two
fixed barriers: consolidated (few moves) and plastic (many moves). For each lane count it
prints the simulator's cell-evaluations per second and simulated cycles per second (the core
runs the steps on its own; build and load times are excluded and printed apart), and the
golden model's cell-evaluations per second on the identical run, whose results are checked
equal.

The same run is repeated on the core under a plain C++ loop (scripts/limemu/verilator_loop.cpp:
no cocotb, no --timing clock), also checked equal to the model: its cycles per second are
what the design itself costs under Verilator, the difference is what the cocotb harness adds.
Exits 1 when any result differs from the model.
"""

import argparse
import sys
import time
from dataclasses import dataclass

from limemu.compare import first_difference
from limemu.hardware import HardwareSession
from limemu.model import Schedule, Spec
from limemu.runner import ModelSession
from limemu.verilator_loop import LoopArray
from limemu.workloads import maxcut_workload


@dataclass
class Workload:
    problem: object


def measure(problem, lanes, barrier_u, seconds):
    spec = Spec(cells=problem.n, weight_bits=1, lanes=lanes, q_storage="sparse",
                order="colour", seed=1, barrier=Schedule.constant(int(barrier_u * 256)),
                gain=Schedule.constant(64))
    workload = Workload(problem)
    started = time.perf_counter()
    rtl = HardwareSession(workload, spec, progress=False, log=log)
    setup = time.perf_counter() - started
    try:
        rtl.run(2)                                     # calibrate: seconds per step
        steps = max(2, int(seconds * 2 / max(rtl.run_seconds, 1e-6)))
        rtl_figures = timed_run(rtl, steps)
        counters = rtl.counters()
        model = ModelSession(workload, spec, progress=False)
        model.run(2)
        start = time.perf_counter()
        model.run(steps)
        model_seconds = time.perf_counter() - start
        differences = {"verilator": first_difference(spec, model, rtl)}
    finally:
        rtl.close()
    loop = HardwareSession(workload, spec, progress=False, log=log, device=LoopArray)
    try:
        loop.run(2)
        loop_figures = timed_run(loop, steps)
        differences["C++ loop"] = first_difference(spec, model, loop)
    finally:
        loop.close()
    for name, found in differences.items():
        if found is not None:
            log(f"{name} differs from the model after {steps + 2} steps: {found}")
    moves = (counters["up_moves"] + counters["down_moves"]) / counters["evaluations"]
    return dict(setup=setup, rtl=rtl_figures, loop=loop_figures,
                cycles_per_group=rtl_figures["cycles"] / steps / (problem.n / lanes),
                model_rate=rtl_figures["evaluations"] / model_seconds, moves=moves,
                equal=all(found is None for found in differences.values()))


def timed_run(session, steps):
    """Runs `steps` steps: its evaluations and cycles, and their rates (the run alone)."""
    before = session.counters()["evaluations"], session.cycles, session.run_seconds
    session.run(steps)
    evaluations = session.counters()["evaluations"] - before[0]
    cycles, seconds = session.cycles - before[1], session.run_seconds - before[2]
    return dict(evaluations=evaluations, cycles=cycles, rate=evaluations / seconds,
                cycles_rate=cycles / seconds)


def log(message):
    sys.stderr.write(message + "\n")


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
    print(f"{'':24s}{'--- verilator (cocotb) ---':>36s} {'--- C++ loop ---':>22s}")
    print(f"{'lanes':>5s} {'barrier':>7s} {'move rate':>9s} {'evals/s':>10s} {'cycles/s':>10s} "
          f"{'cycles/group':>12s} {'evals/s':>10s} {'cycles/s':>10s} {'model evals/s':>13s} "
          f"{'RTL/model':>9s} {'loop/model':>10s} {'setup s':>7s} equal")
    failed = False
    for lanes in args.lanes:
        for barrier in args.barriers:
            r = measure(problem, lanes, barrier, args.seconds)
            failed = failed or not r["equal"]
            rtl, loop = r["rtl"], r["loop"]
            print(f"{lanes:5d} {barrier:6g}u {r['moves']:9.2e} {rtl['rate']:10.3g} "
                  f"{rtl['cycles_rate']:10.3g} {r['cycles_per_group']:12.1f} "
                  f"{loop['rate']:10.3g} {loop['cycles_rate']:10.3g} {r['model_rate']:13.3g} "
                  f"{rtl['rate'] / r['model_rate']:9.3f} {loop['rate'] / r['model_rate']:10.3f} "
                  f"{r['setup']:7.1f} {'yes' if r['equal'] else 'NO'}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
