"""Benchmark of the golden model against dwave-samplers' simulated annealer, on one core.

    python scripts/bench_model.py [--sweeps 10000] [--graphs 4] [--repeats 3] [--cut-graphs 32]
                                  [--million] [--phases] [--barrier SCHEDULE --gain SCHEDULE]

Three G-set-like graph kinds, `--graphs` seeded graphs of each: random graphs of 800 nodes and
19 176 unit edges (like G1-G5), 800-node toroidal grids (20 x 40) with random +-1 weights (like
G11-G13), and random graphs of 2000 nodes and 19 990 unit edges (like G22-G26). On each graph,
one anneal of `--sweeps` steps of `limemu run --workload maxcut` with its defaults (the graph
given as a G-set file, so the schedule, lanes and order are the command's), and one anneal of
dwave-samplers' SimulatedAnnealingSampler with the same number of sweeps (num_reads=1, h = 0,
J = the edge weights: its energy sum J s_i s_j is the Max-Cut loss L, so both minimise it).

Rates are per second of CPU time of this process (time.process_time: other jobs on a shared
machine do not count), the median of `--repeats` timings of the same anneal, with their
spread: limemu's cell-evaluations/s and dwave's spin updates/s (nodes x sweeps / s). Only the
sweeps are timed: not limemu's set-up of the array, nor dwave's of its model (the CPU time of
one sweep, set-up included, is subtracted from that of the anneal). Then the
consolidated rate: the first G1-like graph from its annealed state at a barrier of 24 u, where
almost nothing moves. Then the cuts of both on `--cut-graphs` graphs of each kind (untimed:
one graph's cut varies by about 1 % between seeds, so the comparison needs many graphs), the
difference of their sums and the mean difference per graph with its standard error. `--million`: also a 10**6-cell sparse array (a random graph of mean
degree 3) for a few steps, with the process's peak memory. `--phases`: instead, the time per
evaluation along one anneal of each kind, per 1000 steps. `--barrier`, `--gain`: run limemu
with these schedules instead of the defaults (as `limemu run` takes them; how the default
Max-Cut schedule was chosen, docs/engine.md).
"""

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from limemu.model import Schedule, Spec
from limemu.model.engine import LimArray
from limemu.model.problem import QuadraticProblem
from limemu.runner import build_run
from limemu.workloads.gset import Graph, random_graph, write_gset
from limemu.workloads.maxcut import cut_value

CONSOLIDATED_BARRIER_U = 24
CONSOLIDATED_GAIN = 0.5               # u per loss unit: |g| up to 48 stays admissible


def toroidal_grid(rows, cols, seed):
    """A rows x cols torus, every node joined to its right and lower neighbour, weights +-1."""
    rng = np.random.default_rng(seed)
    node = np.arange(rows * cols).reshape(rows, cols)
    i = np.concatenate((node.ravel(), node.ravel()))
    j = np.concatenate((np.roll(node, -1, axis=1).ravel(), np.roll(node, -1, axis=0).ravel()))
    return Graph(rows * cols, i, j, rng.choice([-1, 1], len(i)), name=f"torus{rows}x{cols}_s{seed}")


KINDS = {
    "random 800, 19176 unit edges": lambda seed: random_graph(800, m=19176, seed=seed),
    "torus 20x40, +-1 weights": lambda seed: toroidal_grid(20, 40, seed),
    "random 2000, 19990 unit edges": lambda seed: random_graph(2000, m=19990, seed=seed),
}


def cpu_seconds(run):
    start = time.process_time()
    result = run()
    return result, time.process_time() - start


def timed(run, repeats, setup=lambda: None):
    """(result of the last run, median CPU seconds, spread (min, max) of CPU seconds) of
    `repeats` calls of run(setup()), the set-up untimed."""
    seconds = []
    for _ in range(repeats):
        result, spent = cpu_seconds(lambda: run(setup()))
        seconds.append(spent)
    return result, statistics.median(seconds), (min(seconds), max(seconds))


def limemu_anneal(path, args, seed):
    """The anneal of `limemu run --workload maxcut --graph path --steps sweeps --seed seed`
    (and --barrier, --gain if given); times the steps (not the array's set-up)."""
    workload, spec, steps = build_run({"workload": "maxcut", "graph": str(path),
                                       "steps": args.sweeps, "seed": seed,
                                       "barrier": args.barrier, "gain": args.gain})
    LimArray(spec, workload.problem).run(1)           # compiled code loaded (or compiled)

    def run(array):
        array.run(steps)
        return array

    array, seconds, spread = timed(run, args.repeats, lambda: LimArray(spec, workload.problem))
    return array, spec, seconds, spread


def dwave_anneal(graph, sweeps, seed, repeats):
    """dwave's anneal; times its sweeps: the CPU time of `sweeps` sweeps less that of one
    sweep (its set-up, which converts the model, is not timed)."""
    import dimod                                       # the bench extra
    from dwave.samplers import SimulatedAnnealingSampler
    bqm = dimod.BinaryQuadraticModel.from_ising(
        {k: 0.0 for k in range(graph.n)},
        {(int(a), int(b)): float(w) for a, b, w in zip(graph.i, graph.j, graph.w)})
    sampler = SimulatedAnnealingSampler()

    def run(_):
        one = cpu_seconds(lambda: sampler.sample(bqm, num_reads=1, num_sweeps=1, seed=seed))[1]
        result, spent = cpu_seconds(lambda: sampler.sample(bqm, num_reads=1,
                                                           num_sweeps=sweeps, seed=seed))
        return result, spent - one

    seconds = [run(None) for _ in range(repeats)]
    sampleset = seconds[-1][0]
    seconds = [x[1] * sweeps / (sweeps - 1) for x in seconds]
    spins = np.array([sampleset.first.sample[k] for k in range(graph.n)], dtype=np.int64)
    loss = int(np.sum(graph.w * spins[graph.i] * spins[graph.j]))
    assert loss == round(sampleset.first.energy), "dwave's energy is not the Max-Cut loss"
    return spins, statistics.median(seconds), (min(seconds), max(seconds))


def spread_text(work, spread):
    return f"{work / spread[1] / 1e6:.0f}-{work / spread[0] / 1e6:.0f}"


def bench_kind(name, make, args, folder):
    """Per graph and in total: rates, their ratio, cuts. Returns the first graph's annealed
    array (for the consolidated rate)."""
    print(f"\n{name}: {args.graphs} graphs, {args.sweeps} sweeps, median of {args.repeats}")
    print(f"  {'graph':22s} {'limemu Mev/s':>14s} {'dwave Mup/s':>13s} {'ratio':>6s} "
          f"{'limemu cut':>10s} {'dwave cut':>9s} {'inadmissible':>12s}")
    totals = np.zeros(5)
    first = None
    for seed in range(1, args.graphs + 1):
        graph = make(seed)
        path = write_gset(graph, folder / f"{graph.name}.txt")
        array, spec, l_sec, l_spread = limemu_anneal(path, args, seed)
        spins, d_sec, d_spread = dwave_anneal(graph, args.sweeps, seed, args.repeats)
        c = array.counters.exact
        work = graph.n * args.sweeps
        cuts = cut_value(graph, array.W), cut_value(graph, spins)
        print(f"  {graph.name:22s} {spread_text(c['evaluations'], l_spread):>14s} "
              f"{spread_text(work, d_spread):>13s} {d_sec / l_sec:6.1f} {cuts[0]:10d} "
              f"{cuts[1]:9d} {c['inadmissible'] / c['evaluations']:12.2f}", flush=True)
        totals += (l_sec, d_sec, *cuts, c['inadmissible'] / c['evaluations'])
        first = first or (array, spec, graph)
    work = args.graphs * graph.n * args.sweeps
    print(f"  {'all graphs':22s} {work / totals[0] / 1e6:14.0f} {work / totals[1] / 1e6:13.0f} "
          f"{totals[1] / totals[0]:6.1f} {totals[2]:10.0f} {totals[3]:9.0f} "
          f"{totals[4] / args.graphs:12.2f}   limemu's cuts {100 * (totals[2] / totals[3] - 1):+.2f} "
          "% of dwave's")
    return first


def cut_sample(name, make, args, folder):
    """The cuts of both annealers (untimed) on `--cut-graphs` seeded graphs of a kind: one
    graph's cut varies by about 1 % between seeds on the tori, so a difference of 0.3 % needs
    dozens of graphs to be seen. Prints the difference of the summed cuts and the mean
    per-graph difference with its standard error."""
    diffs, sums = [], np.zeros(2)
    for seed in range(1, args.cut_graphs + 1):
        graph = make(seed)
        path = write_gset(graph, folder / f"{graph.name}.txt")
        workload, spec, steps = build_run({"workload": "maxcut", "graph": str(path),
                                           "steps": args.sweeps, "seed": seed,
                                           "barrier": args.barrier, "gain": args.gain})
        array = LimArray(spec, workload.problem)
        array.run(steps)
        spins = dwave_anneal(graph, args.sweeps, seed, 1)[0]
        cuts = np.array([cut_value(graph, array.W), cut_value(graph, spins)])
        sums += cuts
        diffs.append(cuts[0] / cuts[1] - 1)
        if sys.stdout.isatty():
            print(f"\r  cuts of {seed}/{args.cut_graphs} graphs", end="", flush=True)
    diffs = np.array(diffs)
    error = diffs.std(ddof=1) / np.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    print(f"\r{name}: cuts of {args.cut_graphs} graphs ({args.sweeps} sweeps): limemu "
          f"{sums[0]:.0f}, dwave {sums[1]:.0f}, sum {100 * (sums[0] / sums[1] - 1):+.2f} %, "
          f"per graph {100 * diffs.mean():+.2f} +- {100 * error:.2f} % (standard error)")


def phases(name, make, args, folder, chunk=1000):
    """Where the time of one anneal goes: ns of CPU time per evaluation and the fraction of
    evaluations that move, per chunk of steps of the first graph (the best of --repeats)."""
    graph = make(1)
    path = write_gset(graph, folder / f"{graph.name}.txt")
    workload, spec, steps = build_run({"workload": "maxcut", "graph": str(path),
                                       "steps": args.sweeps, "seed": 1,
                                       "barrier": args.barrier, "gain": args.gain})
    best = None
    for _ in range(args.repeats):
        array, row = LimArray(spec, workload.problem), []
        for start in range(0, steps, chunk):
            count = min(chunk, steps - start)
            moves = array.counters.exact["up_moves"] + array.counters.exact["down_moves"]
            seconds = cpu_seconds(lambda: array.run(count))[1]
            evaluations = graph.n * count
            moved = array.counters.exact["up_moves"] + array.counters.exact["down_moves"] - moves
            row.append((seconds / evaluations * 1e9, moved / evaluations))
        best = row if best is None else [min(a, b) for a, b in zip(best, row)]
    print(f"{name}, {graph.name}: ns per evaluation (fraction moving) per {chunk} steps: "
          + " ".join(f"{t:.1f} ({m:.2f})" for t, m in best))


def consolidated(array, spec, graph, sweeps, repeats):
    barrier = Schedule.constant(CONSOLIDATED_BARRIER_U << spec.barrier_frac_bits)
    gain = Schedule.constant(round(CONSOLIDATED_GAIN * 2**spec.gain_frac_bits))
    settled = spec.replace(barrier=barrier, gain=gain)
    weights = array.W.copy()

    def run(again):
        again.run(sweeps)
        return again

    again, seconds, spread = timed(run, repeats,
                                   lambda: LimArray(settled, array.problem, weights=weights))
    c = again.counters.exact
    print(f"\nconsolidated ({graph.name} from its annealed state, barrier "
          f"{CONSOLIDATED_BARRIER_U} u, gain {CONSOLIDATED_GAIN} u per loss unit, {sweeps} sweeps): "
          f"{c['evaluations'] / seconds / 1e6:.0f} M cell-evaluations/s (spread "
          f"{spread_text(c['evaluations'], spread)}), {c['up_moves'] + c['down_moves']} moves, "
          f"{c['inadmissible']} inadmissible")


def footprint(array):
    """Bytes of the NumPy arrays a LimArray holds (its attributes and their tuples, its
    generators and its problem)."""
    seen, total = set(), 0
    stack = [*vars(array).values(), *vars(array.streams).values(), *vars(array.problem).values()]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray) and id(item) not in seen:
            seen.add(id(item))
            total += item.nbytes if item.base is None else 0
        elif isinstance(item, tuple):
            stack.extend(item)
    return total


def million(steps=10):
    n = 10**6
    graph = random_graph(n, m=3 * n // 2, seed=1)
    problem = QuadraticProblem.sparse(n, graph.i, graph.j, graph.w)
    spec = Spec(cells=n, weight_bits=1, lanes=4, q_storage="sparse", order="natural",
                barrier=Schedule.constant(4 << 8), gain=Schedule.constant(1 << 6))
    start = time.process_time()
    array = LimArray(spec, problem)
    setup = time.process_time() - start
    start = time.process_time()
    array.run(steps)
    seconds = time.process_time() - start
    c = array.counters.exact
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n10**6-cell sparse array ({problem.nnz} nonzeros of Q): set-up {setup:.1f} s, "
          f"{steps} steps at {c['evaluations'] / seconds / 1e6:.0f} M cell-evaluations/s, "
          f"{c['up_moves'] + c['down_moves']} moves; the array holds "
          f"{footprint(array) / 2**20:.0f} MB of arrays ({footprint(array) / n:.0f} bytes per "
          f"cell); peak memory of this process {peak:.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=10_000)
    parser.add_argument("--graphs", type=int, default=4, help="graphs of each kind")
    parser.add_argument("--repeats", type=int, default=3, help="timings of each anneal")
    parser.add_argument("--cut-graphs", type=int, default=32,
                        help="graphs of each kind whose cuts are compared (untimed; 0: none)")
    parser.add_argument("--million", action="store_true", help="also a 10**6-cell array")
    parser.add_argument("--phases", action="store_true",
                        help="only the time per evaluation along one anneal of each kind")
    parser.add_argument("--barrier", help="limemu's barrier schedule (default: the command's)")
    parser.add_argument("--gain", help="limemu's gain schedule (default: the command's)")
    args = parser.parse_args()
    schedule = (f"--barrier {args.barrier or '(default)'} --gain {args.gain or '(default)'}"
                if args.barrier or args.gain else "its default schedule")
    print("limemu golden model vs dwave-samplers SimulatedAnnealingSampler (one core, CPU "
          f"time); limemu runs `limemu run --workload maxcut` with {schedule}")
    with tempfile.TemporaryDirectory() as folder:
        if args.phases:
            for name, make in KINDS.items():
                phases(name, make, args, Path(folder))
            return
        firsts = [bench_kind(name, make, args, Path(folder)) for name, make in KINDS.items()]
        consolidated(*firsts[0], args.sweeps, args.repeats)
        if args.cut_graphs:
            print()
            for name, make in KINDS.items():
                cut_sample(name, make, args, Path(folder))
    if args.million:
        million()


if __name__ == "__main__":
    main()
