"""Benchmark of the golden model: cell-evaluations per second on one core.

    python scripts/bench_model.py [--cells 4096] [--steps 300]

A 4096-spin Max-Cut array (random graph, mean degree 6, 8 lanes) at fixed barriers from
consolidated (few moves) to plastic (many moves), in colour and natural order, and a whole
annealing run. The move rate is printed beside each figure: the model's cost per step grows
with the number of moves (the decisions that a move invalidates, those of its neighbours and
its own in the next step, are made again).
"""

import argparse
import time

from limemu.model import Schedule, Spec
from limemu.model.engine import LimArray
from limemu.workloads import maxcut_workload


def measure(spec, problem, steps, repeats=3):
    """(median cell-evaluations/s over `repeats` runs, move rate)."""
    rates = []
    for _ in range(repeats):
        array = LimArray(spec, problem)
        array.run(20)                               # warm-up: first chunks, caches
        before = dict(array.counters.exact)
        start = time.perf_counter()
        array.run(steps)
        seconds = time.perf_counter() - start
        c = array.counters.exact
        moves = c["up_moves"] + c["down_moves"] - before["up_moves"] - before["down_moves"]
        evaluations = c["evaluations"] - before["evaluations"]
        rates.append(evaluations / seconds)
    return sorted(rates)[len(rates) // 2], moves / evaluations


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=4096)
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    workload = maxcut_workload(cells=args.cells, seed=1)
    print(f"golden model, {args.cells}-spin Max-Cut (random graph, mean degree 6), "
          f"{args.lanes} lanes, gain 1 u/loss, {args.steps} steps per figure (median of 3)")
    print(f"{'order':8s} {'barrier':>8s} {'move rate':>10s} {'cell-evaluations/s':>20s}")
    for order in ("colour", "natural"):
        for barrier_u in (24, 16, 12, 10, 8):
            spec = Spec(cells=args.cells, lanes=args.lanes, weight_bits=1, q_storage="sparse",
                        order=order, barrier=Schedule.constant(barrier_u << 8),
                        gain=Schedule.constant(1 << 6))
            rate, move_rate = measure(spec, workload.problem, args.steps)
            print(f"{order:8s} {barrier_u:6d} u {move_rate:10.2e} {rate:20.3g}", flush=True)
    steps = 2000
    spec = Spec(cells=args.cells, lanes=args.lanes, weight_bits=1, q_storage="sparse",
                order="colour", barrier=Schedule.constant(4 << 8),
                gain=Schedule.exponential(6, round(2**16 * 5 / steps)))
    rate, move_rate = measure(spec, workload.problem, steps)
    print(f"whole anneal (colour order, barrier 4 u, gain 0.1 -> 3 u/loss over {steps} steps): "
          f"move rate {move_rate:.2e}, {rate:.3g} cell-evaluations/s")


if __name__ == "__main__":
    main()
