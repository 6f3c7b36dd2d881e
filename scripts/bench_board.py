"""Time to 99 % of the reference cut: the ULX3S build's core against dwave-samplers on one core.

    python scripts/bench_board.py [--graphs g1 torus g22] [--seeds 21] [--core-seeds 3]
                                  [--order banked|colour] [--gain SCHEDULE|dwave] [--barrier U]
                                  [--dwave-acceptance Metropolis|Gibbs]
                                  [--dwave-beta-range HOT COLD]

For G-set-like Max-Cut graphs (a random graph of 800 nodes and 19 176 edges like G1, an
800-node toroidal grid with weights +-1 like G11, a random graph of 2000 nodes and 19 990
edges like G22), all generated here from fixed seeds:

1. the reference cut: the best of REFERENCE_READS long runs of dwave-samplers' simulated
   annealing (REFERENCE_SWEEPS sweeps each); the target is 99 % of it;
2. dwave: the fewest sweeps at which the median cut of ``--seeds`` runs (seeds 1..N, its
   default schedule) reaches the target, searched over a doubling grid and then bisected; its
   time is the median over the seeds of dwave's own anneal time (``info["timing"]
   ["sampling_ns"]``, the best of TIMING_REPEATS rounds over the seeds, so that the shared
   machine's load does not flatter the board), on one CPU core;
3. the board: the fewest steps at which the median cut of the same number of runs reaches the
   target (searched the same way on the golden model, which gives the core's results bit for
   bit), with the board schedule below; then the runs of the first ``--core-seeds`` seeds on
   the build's core under Verilator (``limemu run --backend verilator --board ulx3s`` does the
   same), whose cuts must equal the model's; its time is the median of the core's own cycle
   counts over the board clock.

The cuts of a short anneal spread over a few percent, so that the target sits inside the
spread: the median of few seeds makes the fewest sweeps a matter of luck (on the torus, with
cuts on a grid of 2, five seeds put dwave anywhere between 1024 and 4096 sweeps). The search
therefore uses many seeds (21 by default, cheap on the model and on dwave) and the slow
Verilator runs only a few, to time them and to check them bit for bit.

The board's spins follow the array's crossing rule: with a zero barrier every step is
inadmissible and a spin flips with the heat-bath probability 1 / (1 + 2^(eta dL)), one half
where its field is zero, against Metropolis' min(1, ...) in dwave's default. ``--dwave-acceptance
Gibbs`` times dwave with the heat bath as well, to tell the rule's share of a gap in sweeps from
the core's (the reference cut stays the best of Metropolis runs).

The board schedule: a constant barrier (``--barrier``, u, default 0: the fastest crossings)
and the gain schedule of ``limemu run --workload maxcut`` (``--gain``, default its preset,
exp:0.2,10 u per loss unit, chosen on G-set-like graphs: docs/engine.md); ``--gain dwave``
anneals instead between dwave's default inverse temperatures for the graph (``beta / ln 2``
in u per loss unit, at least one LSB of the gain format), whose hot end (a flip of the
largest possible tilt at even odds) keeps most spins moving for the first third of a short
anneal, and each move costs the core field-engine cycles.

Prints a table, the build's peak evaluations per second, and where the core's cycles go: per
step, the groups it issues, the boundaries (the first group of each colour class: it issues
once every decided move has landed, and again when a group still in flight moves), the moves
and the rows of the lane banks they apply (one row a cycle), beside the cycles a step may take
for the board to be 30 times faster than dwave and the ratio a core taking one cycle a group
(no boundary, no field-engine stall) would reach with the same steps. A last table gives the
cycles of the same moves on other designs (WHAT_IF, through limemu/core_timing.py's cycle
model, whose prediction for the core as built must equal the core's count). Exits 1 when the
core's results differ from the model's or its cycles from the cycle model's. The machine's
load average is printed first and last: dwave's times are wall clock, so a loaded machine
makes them longer and the ratios better than they are. The board runs the banked order (the
colour order spread over the lanes' banks, python_model/order.py) unless ``--order colour``.
"""

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from limemu.board_build import BOARD_FORMATS, board_build
from limemu.core_timing import Design, record_moves, run_cycles
from limemu.hardware import HardwareSession, run_segments
from limemu.hdl.throughput_core import ISSUE_TO_DECISION
from limemu.model.errors import ConfigError
from limemu.model.order import bank_rows
from limemu.model.spec import Spec
from limemu.runner import WORKLOAD_DEFAULTS, ModelSession
from limemu.schedule_options import parse_schedule
from limemu.workloads.gset import Graph, random_graph
from limemu.workloads.maxcut import cut_value, maxcut_problem

REFERENCE_SWEEPS = 10_000
REFERENCE_READS = 8
TARGET = 0.99
TIMING_REPEATS = 5
TARGET_RATIO = 30
#: the designs whose cycles the benchmark predicts on the board's moves (Design changes)
WHAT_IF = {
    "as built": {},
    "1-cycle columns": {"one_cycle_columns": True},
    "latency 4": {"decision_latency": 4},
    "both": {"one_cycle_columns": True, "decision_latency": 4},
    "both, decided": {"one_cycle_columns": True, "decision_latency": 4,
                      "boundaries": "decided"},
}


@dataclass
class Workload:
    problem: object


def toroidal_grid(rows, cols, seed):
    """A 2-D torus with weights +-1 (the kind of G11-G13)."""
    rng = np.random.default_rng(seed)
    node = np.arange(rows * cols).reshape(rows, cols)
    i = np.concatenate([node.ravel(), node.ravel()])
    j = np.concatenate([np.roll(node, -1, axis=1).ravel(), np.roll(node, -1, axis=0).ravel()])
    return Graph(rows * cols, i, j, rng.choice([-1, 1], size=len(i)),
                 name=f"torus{rows}x{cols}")


GRAPHS = {
    "g1": lambda: random_graph(800, m=19_176, seed=1, name="G1-like"),
    "torus": lambda: toroidal_grid(40, 20, seed=11),
    "g22": lambda: random_graph(2000, m=19_990, seed=22, name="G22-like"),
}


# -- dwave ----------------------------------------------------------------------------------------

class Dwave:
    """dwave-samplers' SimulatedAnnealingSampler on a graph's Ising model (H = sum w s s)."""

    def __init__(self, graph, acceptance="Metropolis", beta_range=None):
        import dimod  # noqa: PLC0415 (the bench's extra dependencies)
        from dwave.samplers import SimulatedAnnealingSampler  # noqa: PLC0415

        self.graph, self.acceptance = graph, acceptance
        self.sampler = SimulatedAnnealingSampler()
        self.bqm = dimod.BQM.from_ising({}, {(int(a), int(b)): float(w) for a, b, w in
                                             zip(graph.i, graph.j, graph.w)})
        from dwave.samplers.sa.sampler import default_beta_range  # noqa: PLC0415
        self.beta_range = [float(b) for b in default_beta_range(self.bqm)]
        self.timed_beta_range = beta_range          # None: dwave's default

    def run(self, sweeps, seed, reference=False):
        """(cut, seconds of dwave's own anneal time): a timed run with this bench's acceptance
        and inverse temperatures, or a reference run with dwave's defaults."""
        result = self.sampler.sample(
            self.bqm, num_reads=1, num_sweeps=sweeps, seed=seed,
            proposal_acceptance_criteria="Metropolis" if reference else self.acceptance,
            beta_range=None if reference else self.timed_beta_range)
        spins = np.zeros(self.graph.n, dtype=np.int64)
        spins[list(result.variables)] = result.record.sample[0]
        return cut_value(self.graph, spins), result.info["timing"]["sampling_ns"] * 1e-9

    def seconds(self, sweeps, seeds):
        """Median over the seeds of each seed's best time over TIMING_REPEATS rounds (a round
        runs every seed once, so that a burst of load spoils one round, not one seed)."""
        best = {seed: math.inf for seed in seeds}
        for _ in range(TIMING_REPEATS):
            for seed in seeds:
                best[seed] = min(best[seed], self.run(sweeps, seed)[1])
        return float(np.median(list(best.values())))

    def reference(self):
        return max(self.run(REFERENCE_SWEEPS, seed, reference=True)[0]
                   for seed in range(1, REFERENCE_READS + 1))


# -- the board --------------------------------------------------------------------------------

def board_gain(gain, beta_range, built):
    """The board's gain schedule: `gain` (a schedule), or with "dwave" a geometric gain between
    dwave's inverse temperatures `beta_range`."""
    if gain != "dwave":
        return gain
    hot, cold = (max(2.0 ** -built.gain_frac_bits, beta / math.log(2)) for beta in beta_range)
    return f"exp:{hot},{cold}"


def board_spec(graph, steps, seed, build, barrier_u, gain, order="banked"):
    """The run's Spec: the build's formats and lanes, the order, the board schedule (`gain`:
    a gain schedule)."""
    _, built, _ = build
    formats = {k: getattr(built, k) for k in BOARD_FORMATS}
    return Spec(cells=graph.n, weight_bits=1, lanes=built.lanes, q_storage="sparse",
                order=order, seed=seed, **formats,
                barrier=parse_schedule(f"constant:{barrier_u}", "--barrier",
                                       built.barrier_frac_bits, steps, built.barrier_bits),
                gain=parse_schedule(gain, "--gain", built.gain_frac_bits, steps,
                                    built.gain_bits))


def model_cut(graph, spec, steps):
    session = ModelSession(Workload(maxcut_problem(graph)), spec, progress=False)
    session.run(steps)
    return cut_value(graph, session.weights())


def cycle_budget(graph, spec, steps):
    """Where a run's cycles go on the throughput core, from the model's run (the core's is the
    same bit for bit): per step, the groups issued, the boundaries, the moves, the rows
    of the lane banks per column, and the field engine's cycles estimated as the moves times
    the mean rows of a column (one row a cycle, at least one cycle a move); and the cycles
    the same moves take on the core as built and on the WHAT_IF designs
    (limemu/core_timing.py)."""
    session = ModelSession(Workload(maxcut_problem(graph)), spec, progress=False)
    moves = record_moves(session.array, steps)
    array, counts = session.array, session.counters()
    order, problem = array.order, array.problem
    rows = bank_rows(problem, order.cell_lanes(spec.lanes))
    moved = (counts["up_moves"] + counts["down_moves"]) / steps
    built = Design.as_built(spec)
    return {"groups": order.groups, "boundaries": int(moves.boundaries.sum()),
            "rows_per_column": float(rows.mean()), "moves": moved,
            "engine": moved * float(np.maximum(rows, 1).mean()),
            # as the core runs them: in run requests, the first right after the load's clear
            "predicted": {label: run_cycles(moves, built.but(**changes),
                                            run_segments(steps, graph.n), after_clear=True)
                          for label, changes in WHAT_IF.items()}}


def core_run(graph, spec, steps, board):
    """(cut, cycles) of the run on the build's core under Verilator."""
    _, _, geometry = board_build(board)
    session = HardwareSession(Workload(maxcut_problem(graph)), spec, progress=False,
                              core=geometry.core, board=board)
    try:
        session.run(steps)
        return cut_value(graph, session.weights()), session.core_cycles()
    finally:
        session.close()


# -- searching the fewest sweeps ---------------------------------------------------------------

def fewest(reaches, start=8, limit=1 << 16, log=print):
    """The fewest n in [1, limit] with reaches(n) true, searched by doubling from `start` and
    bisecting; None when even `limit` does not reach."""
    low, high = 0, start
    while not reaches(high):
        low, high = high, high * 2
        if high > limit:
            return None
    while high - low > max(1, high // 16):
        middle = (low + high) // 2
        if reaches(middle):
            high = middle
        else:
            low = middle
    return high


def median_reaches(cuts, target):
    return float(np.median(cuts)) >= target


def bench_graph(name, graph, args, build, log):
    board, built, _ = build
    dwave = Dwave(graph, args.dwave_acceptance, args.dwave_beta_range)
    started = time.perf_counter()
    reference = dwave.reference()
    target = TARGET * reference
    log(f"{name}: {graph.n} nodes, {graph.m} edges; reference cut {reference} (best of "
        f"{REFERENCE_READS} dwave runs of {REFERENCE_SWEEPS} sweeps, "
        f"{time.perf_counter() - started:.0f} s); target {target:.1f}")
    seeds = range(1, args.seeds + 1)
    gain = board_gain(args.gain, dwave.beta_range, built)

    def dwave_reaches(sweeps):
        cuts = [dwave.run(sweeps, seed)[0] for seed in seeds]
        log(f"  dwave {sweeps:6d} sweeps: median cut {np.median(cuts):g}")
        return median_reaches(cuts, target)

    def board_reaches(steps):
        cuts = [model_cut(graph, board_spec(graph, steps, seed, build, args.barrier,
                                            gain, args.order), steps)
                for seed in seeds]
        log(f"  board {steps:6d} steps:  median cut {np.median(cuts):g} (golden model)")
        return median_reaches(cuts, target)

    row = {"graph": name, "n": graph.n, "m": graph.m, "reference": reference,
           "target": target}
    row["dwave_sweeps"] = sweeps = fewest(dwave_reaches, log=log)
    row["dwave_s"] = None if sweeps is None else dwave.seconds(sweeps, seeds)
    row["board_steps"] = steps = fewest(board_reaches, log=log)
    row["board_cycles"] = row["board_s"] = None
    row["equal"] = True
    if steps is not None:
        cycles = []
        for seed in seeds[:args.core_seeds]:
            spec = board_spec(graph, steps, seed, build, args.barrier, gain, args.order)
            cut, count = core_run(graph, spec, steps, args.board)
            row["equal"] &= cut == model_cut(graph, spec, steps)
            cycles.append(count)
            row.setdefault("core_cycles", {})[seed] = count
            log(f"  core (Verilator), seed {seed}: cut {cut}, {count} cycles")
        row["board_cycles"] = float(np.median(cycles))
        row["board_s"] = row["board_cycles"] / board.clock_hz
        row["budget"] = cycle_budget(graph, board_spec(graph, steps, 1, build, args.barrier,
                                                       gain, args.order), steps)
    return row


def print_table(rows, build, args):
    board, built, geometry = build
    print(f"\n{board.title}: the {geometry.core} core, {built.lanes} lanes at "
          f"{board.clock_hz / 1e6:g} MHz (board: gain {args.gain}, barrier {args.barrier:g} u; "
          f"dwave: {args.dwave_acceptance} acceptance, beta range "
          f"{args.dwave_beta_range or 'its default'}): peak "
          f"{built.lanes * board.clock_hz:.3g} cell "
          f"evaluations/s; time to {TARGET:.0%} of the reference cut (the fewest sweeps whose "
          f"median cut over {args.seeds} seeds reaches it; the board's cycles: median of "
          f"{args.core_seeds} runs on the core):")
    print(f"{'graph':10s} {'nodes':>6s} {'edges':>6s} {'ref cut':>8s} {'dwave sweeps':>12s} "
          f"{'dwave s':>9s} {'board steps':>11s} {'cycles':>9s} {'board s':>9s} "
          f"{'dwave/board':>11s} equal")
    for r in rows:
        def fmt(value, spec):
            return format(value, spec) if value is not None else "-"
        ratio = r["dwave_s"] / r["board_s"] if r["dwave_s"] and r["board_s"] else None
        print(f"{r['graph']:10s} {r['n']:6d} {r['m']:6d} {r['reference']:8d} "
              f"{fmt(r['dwave_sweeps'], '12d')} {fmt(r['dwave_s'], '9.3g')} "
              f"{fmt(r['board_steps'], '11d')} {fmt(r['board_cycles'], '9.0f')} "
              f"{fmt(r['board_s'], '9.3g')} {fmt(ratio, '11.1f')} "
              f"{'yes' if r['equal'] else 'NO'}")
    print(f"\nper step (seed 1's run; 'engine': the field engine's cycles, estimated as moves "
          f"x mean rows a column, a move at least one cycle; 'for {TARGET_RATIO}x': the cycles a "
          f"step may take for the board to be {TARGET_RATIO} times faster than dwave; 'groups "
          f"only': dwave/board at one cycle a group):")
    print(f"{'graph':10s} {'groups':>7s} {'bounds':>6s} {'moves':>7s} {'rows/col':>8s} "
          f"{'engine':>7s} {'cycles':>8s} {f'for {TARGET_RATIO}x':>8s} {'groups only':>11s}")
    for r in rows:
        b = r.get("budget")
        if b is None or not r["dwave_s"]:
            continue
        allowed = r["dwave_s"] / TARGET_RATIO * board.clock_hz / r["board_steps"]
        # the ratio of a core that took one cycle a group: no boundary, no engine stall
        ceiling = r["dwave_s"] * board.clock_hz / (b["groups"] * r["board_steps"])
        print(f"{r['graph']:10s} {b['groups']:7d} {b['boundaries']:6d} {b['moves']:7.1f} "
              f"{b['rows_per_column']:8.2f} {b['engine']:7.0f} "
              f"{r['board_cycles'] / r['board_steps']:8.0f} {allowed:8.1f} {ceiling:10.1f}x")
    print_what_if(rows, board)


def print_what_if(rows, board):
    """The cycles a step of seed 1's run on the WHAT_IF designs, and dwave/board with each."""
    print(f"\nthe same moves (seed 1's run) on other designs, cycles a step (dwave/board): "
          f"'1-cycle columns' a field engine that applies a column a cycle, 'latency 4' a "
          f"decision 4 cycles after issue (as built: {ISSUE_TO_DECISION}), 'decided' "
          f"boundaries that wait for the decisions before them, not their landing "
          f"(limemu/core_timing.py; 'as built' must equal the core's count):")
    print(f"{'graph':10s} " + " ".join(f"{label:>16s}" for label in WHAT_IF) + "  core (seed 1)")
    for r in rows:
        b = r.get("budget")
        if b is None or not r["dwave_s"]:
            continue
        cells = []
        for label in WHAT_IF:
            cycles = b["predicted"][label]
            ratio = r["dwave_s"] * board.clock_hz / cycles
            cells.append(f"{cycles / r['board_steps']:8.1f} ({ratio:4.1f}x)")
        core = r.get("core_cycles", {}).get(1)
        check = "-" if core is None else f"{core} cycles: " + (
            "exact" if timing_matches(r) else f"PREDICTED {b['predicted']['as built']}")
        print(f"{r['graph']:10s} " + " ".join(f"{c:>16s}" for c in cells) + f"  {check}")


def load_average():
    return "load average {:.1f} {:.1f} {:.1f} on {} cores".format(*os.getloadavg(),
                                                                  os.cpu_count())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graphs", nargs="+", choices=sorted(GRAPHS), default=list(GRAPHS))
    parser.add_argument("--seeds", type=int, default=21,
                        help="runs per point of the search, model and dwave (default 21)")
    parser.add_argument("--core-seeds", type=int, default=3,
                        help="of those, the runs on the core under Verilator (default 3)")
    parser.add_argument("--barrier", type=float, default=0.0,
                        help="the board schedule's constant barrier in u (default 0)")
    parser.add_argument("--dwave-beta-range", type=float, nargs=2, metavar=("HOT", "COLD"),
                        help="dwave's inverse temperatures in the timed runs (default its "
                             "own for each graph; the board's gain g u per loss unit is "
                             "beta = g ln 2)")
    parser.add_argument("--gain", default=WORKLOAD_DEFAULTS["maxcut"]["gain"],
                        help="the board's gain schedule (default limemu's Max-Cut preset, "
                             f"{WORKLOAD_DEFAULTS['maxcut']['gain']}), or dwave: between "
                             "dwave's default inverse temperatures")
    parser.add_argument("--board", default="ulx3s", help="the build to simulate")
    parser.add_argument("--order", choices=("banked", "colour"), default="banked",
                        help="the board's update order (default banked)")
    parser.add_argument("--dwave-acceptance", choices=("Metropolis", "Gibbs"),
                        default="Metropolis",
                        help="dwave's acceptance of a flip in the timed runs (default its own, "
                             "Metropolis; Gibbs is the heat bath, the board's rule for spins); "
                             "the reference is always Metropolis")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: must be at least 1")
    if not 1 <= args.core_seeds <= args.seeds:
        parser.error(f"--core-seeds {args.core_seeds}: must be between 1 and --seeds "
                     f"({args.seeds})")
    if args.dwave_beta_range and not 0 < args.dwave_beta_range[0] <= args.dwave_beta_range[1]:
        parser.error(f"--dwave-beta-range {args.dwave_beta_range[0]:g} "
                     f"{args.dwave_beta_range[1]:g}: must be 0 < HOT <= COLD")
    build = board_build(args.board)
    if args.gain != "dwave":
        try:
            parse_schedule(args.gain, "--gain", build[1].gain_frac_bits, 2, build[1].gain_bits)
        except ConfigError as error:
            parser.error(str(error))

    def log(line):
        print(line, file=sys.stderr, flush=True)

    log(f"start: {load_average()}")
    rows = [bench_graph(name, GRAPHS[name](), args, build, log) for name in args.graphs]
    log(f"end: {load_average()}")
    print_table(rows, build, args)
    return 0 if all(r["equal"] and timing_matches(r) for r in rows) else 1


def timing_matches(row):
    """Whether the cycle model gave seed 1's run on the core its own cycle count."""
    core, budget = row.get("core_cycles", {}).get(1), row.get("budget")
    return core is None or budget is None or core == budget["predicted"]["as built"]


if __name__ == "__main__":
    sys.exit(main())
