"""Mean net heat against the Clausius bound over anneal lengths, on a small Max-Cut.

    python scripts/thermo_sweep.py [--cells 12] [--runs 100] [--out docs/thermo_sweep.png]

For every anneal length K (steps) the same annealed Max-Cut (a random graph of --cells nodes
from --seed, colour order, 4 lanes, barrier 4 u, gain exponential from 0.02 to 4 u per loss
unit over the K steps) is propagated exactly: the mean net heat <Q>, the Clausius bound
H0 - HK and their difference <Sigma> >= 0. Beside them, --runs runs on the model (seeds
S..S+R-1) check the exact mean heat and the fluctuation theorem (limemu thermo's check).
Prints the table and writes the plot. Progress goes to stderr.
"""

import argparse
import sys
import time

import numpy as np
from limemu.runner import build_run, open_session
from limemu.thermo import check_second_law
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LENGTHS = (25, 50, 100, 200, 400, 800, 1600, 3200, 6400)
RUN_OPTIONS = dict(workload="maxcut", lanes=4, order="colour", barrier="constant:4",
                   gain="exp:0.02,4")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=12, help="Max-Cut nodes (default 12)")
    p.add_argument("--seed", type=int, default=1, help="graph seed and first run seed")
    p.add_argument("--runs", type=int, default=100, help="model runs per length (default 100)")
    p.add_argument("--lengths", default=",".join(map(str, LENGTHS)),
                   help="anneal lengths in steps, comma-separated")
    p.add_argument("--out", default="docs/thermo_sweep.png", help="the plot (PNG)")
    args = p.parse_args(argv)
    rows = []
    started = time.perf_counter()
    for steps in (int(x) for x in args.lengths.split(",")):
        workload, spec, steps = build_run({**RUN_OPTIONS, "cells": args.cells, "steps": steps,
                                           "seed": args.seed})
        figures, exact = check_second_law(
            spec, workload.problem, steps, args.runs,
            lambda s, w=workload: open_session("model", w, s, progress=False))
        rows.append(dict(steps=steps, landauer=spec.cells * spec.weight_bits, **figures))
        sys.stderr.write(f"  K = {steps}: done ({time.perf_counter() - started:.0f} s)\n")
    print(table(rows, args))
    plot(rows, args)
    print(f"wrote {args.out}")
    return 0 if all(r["passed"] for r in rows) else 1


def table(rows, args):
    lines = [f"Max-Cut, {args.cells} nodes (graph seed {args.seed}), colour order, 4 lanes, "
             f"barrier 4 u, gain 0.02 -> 4 u/loss over K steps; {args.runs} model runs per K",
             f"{'K':>6} {'<Q> exact':>10} {'<Q> runs':>16} {'H0 - HK':>9} {'<Sigma>':>9} "
             f"{'<2^-Sigma> runs':>17} {'N b':>5} {'check':>6}"]
    for r in rows:
        runs = f"{r['mean_heat_u']:.3f} +- {r['mean_heat_stderr_u']:.2f}"
        ift = f"{r['ift_mean']:.3f} +- {r['ift_stderr']:.3f}"
        sigma = r["exact_mean_heat_u"] - r["clausius_bound_u"]
        lines.append(f"{r['steps']:>6} {r['exact_mean_heat_u']:>10.3f} {runs:>16} "
                     f"{r['clausius_bound_u']:>9.3f} {sigma:>9.3f} {ift:>17} "
                     f"{r['landauer']:>5} {'pass' if r['passed'] else 'FAIL':>6}")
    return "\n".join(lines)


def plot(rows, args):
    steps = np.array([r["steps"] for r in rows])
    fig = Figure(figsize=(7.0, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(steps, [r["exact_mean_heat_u"] for r in rows], "o-", color="C0",
            label="mean net heat <Q> (exact)")
    ax.errorbar(steps, [r["mean_heat_u"] for r in rows],
                yerr=[r["mean_heat_stderr_u"] for r in rows], fmt="s", ms=4, color="C1",
                capsize=3, label=f"mean net heat of {args.runs} model runs (+- 1 s.e.)")
    ax.plot(steps, [r["clausius_bound_u"] for r in rows], "^--", color="C2",
            label="Clausius bound H0 - HK (exact)")
    ax.axhline(rows[0]["landauer"], color="k", ls=":", lw=1,
               label=f"Landauer N b = {rows[0]['landauer']} u")
    ax.set_xscale("log")
    ax.set_xlabel("anneal length K (steps)")
    ax.set_ylabel("energy (u = kT ln 2)")
    ax.set_title(f"{args.cells}-node Max-Cut: heat approaches the second law's bound as the "
                 "anneal slows", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
