"""Evidence table: Metropolis-Hastings on the array versus backprop, on non-ideal chips.

    python scripts/bench_mh.py [--seeds 10] [--steps 20000] [--remeasure] [--json OUT]
    python scripts/bench_mh.py --reproduce-on verilator [--first-seed 1]

For every non-ideality level (none, mild, strong) and training-set size (the full training
split, 10 % of it), both methods train the same network for the same chip on the same
stratified split, seed by seed (the seed fixes the split, the chip's mismatch and read noise,
the array's generators and the initial weights); every other setting is the default of
`limemu train`. Prints test accuracy on the chip, mean +- sample standard deviation over the
seeds, with the energy counters of the MH runs (heat in u, cell evaluations, forward
multiply-accumulates) and the multiply-accumulates of backprop beside it; with --remeasure
also MH that evaluates the current state again before every decision (the read-noise option
of `limemu train`). Progress goes to stderr, the table to stdout.

--reproduce-on BACKEND runs one seed per row of the table on the golden model and on BACKEND
(verilator, vboard or board) and prints both test accuracies and whether the two chains left
the same weights, counters and statistics (they must: the chains are the same).
"""

import argparse
import json
import sys
import time

import numpy as np
from limemu.model.mh import LEVELS
from limemu.train import load_data, run_training

FRACTIONS = (("full", 1.0), ("10 %", 0.1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10, help="seeds per cell (default 10)")
    p.add_argument("--first-seed", type=int, default=1, help="first seed (default 1)")
    p.add_argument("--steps", type=int, help="MH steps (default: limemu train's)")
    p.add_argument("--levels", default=",".join(LEVELS), help="comma-separated levels")
    p.add_argument("--json", metavar="OUT", help="also write every run's summary as JSON")
    p.add_argument("--remeasure", action="store_true",
                   help="also MH with --remeasure (column 'MH re')")
    p.add_argument("--reproduce-on", metavar="BACKEND", choices=("verilator", "vboard", "board"),
                   help="one seed per row on the model and on BACKEND, compared")
    p.add_argument("--port", help="serial port of --reproduce-on board")
    args = p.parse_args(argv)
    if args.reproduce_on:
        return reproduce(args)
    if args.seeds < 2:
        p.error("--seeds must be >= 2 (a standard deviation needs two runs)")
    levels = [x.strip() for x in args.levels.split(",") if x.strip()]
    data = load_data()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    runs = []
    started = time.perf_counter()
    methods = ("backprop", "mh") + (("mh_re",) if args.remeasure else ())
    total = len(levels) * len(FRACTIONS) * len(seeds) * len(methods)
    for level in levels:
        for label, fraction in FRACTIONS:
            for seed in seeds:
                for method in methods:
                    options = dict(method="backprop" if method == "backprop" else "mh",
                                   nonideality=level, train_fraction=fraction, seed=seed,
                                   remeasure=method == "mh_re")
                    if args.steps and method != "backprop":
                        options["steps"] = args.steps
                    r = run_training(options, data=data)
                    runs.append({**summary(r, level, label), "method": method})
                    sys.stderr.write(
                        f"  [{len(runs)}/{total}] {level:6s} {label:4s} seed {seed:2d} "
                        f"{method:8s} test accuracy {r['metrics']['test_accuracy']:.3f} "
                        f"({r['seconds']:.1f} s, {time.perf_counter() - started:.0f} s so "
                        "far)\n")
    print(table(runs, levels, len(seeds), args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    return 0


def summary(r, level, label):
    s = {"level": level, "data": label, "method": r["method"], "seed": r["config"]["seed"],
         "n_train": r["config"]["n_train"], "test_accuracy": r["metrics"]["test_accuracy"],
         "train_accuracy": r["metrics"]["train_accuracy"], "macs": r["energy"]["macs"],
         "seconds": r["seconds"]}
    if r["method"] == "mh":
        e, c = r["energy"], r["counters"]
        s.update(heat_net_u=e["heat_net_u"], heat_abs_u=e["heat_abs_u"],
                 anneal_work_u=e["anneal_work_u"], evaluations=c["evaluations"],
                 moves=c["up_moves"] + c["down_moves"] - c["reverted_moves"],
                 acceptance=r["mh"]["acceptance_rate"])
    else:
        s["ideal_float_test_accuracy"] = r["ideal_float"]["test_accuracy"]
    return s


def table(runs, levels, n_seeds, args):
    def pick(level, label, method, key):
        return np.array([r[key] for r in runs if r["level"] == level and r["data"] == label
                         and r["method"] == method], dtype=np.float64)

    def ms(a, scale=100.0, digits=1):
        return f"{scale * a.mean():.{digits}f} ± {scale * a.std(ddof=1):.{digits}f}"

    steps = args.steps or "default"
    lines = [f"test accuracy on the chip (%), mean ± std over {n_seeds} seeds; MH steps: "
             f"{steps}; energy columns: means per MH run",
             f"{'level':7s} {'train data':12s} {'backprop':>13s} {'MH':>13s} {'MH - BP':>13s} "
             f"{'worst BP/MH':>11s} {'MH heat |D|':>12s} {'MH net heat':>12s} {'MH moves':>9s} "
             f"{'MH fwd MACs':>12s} {'BP MACs':>9s}"
             + (f" {'MH re':>13s} {'MH re - MH':>13s}" if args.remeasure else "")]
    for level in levels:
        for label, _ in FRACTIONS:
            bp = pick(level, label, "backprop", "test_accuracy")
            mh = pick(level, label, "mh", "test_accuracy")
            n_train = int(pick(level, label, "mh", "n_train")[0])
            lines.append(
                f"{level:7s} {label + f' ({n_train})':12s} {ms(bp):>13s} {ms(mh):>13s} "
                f"{ms(mh - bp):>13s} "
                f"{f'{100 * bp.min():.0f} / {100 * mh.min():.0f}':>11s} "
                f"{pick(level, label, 'mh', 'heat_abs_u').mean():10.0f} u "
                f"{pick(level, label, 'mh', 'heat_net_u').mean():10.0f} u "
                f"{pick(level, label, 'mh', 'moves').mean():9.0f} "
                f"{pick(level, label, 'mh', 'macs').mean():12.3g} "
                f"{pick(level, label, 'backprop', 'macs').mean():9.3g}"
                + (f" {ms(pick(level, label, 'mh_re', 'test_accuracy')):>13s} "
                   f"{ms(pick(level, label, 'mh_re', 'test_accuracy') - mh):>13s}"
                   if args.remeasure else ""))
    lines.append("")
    lines.append("the claims of arXiv 2402.06284, checked per level:")
    for level in levels:
        gap = [pick(level, label, "mh", "test_accuracy").mean()
               - pick(level, label, "backprop", "test_accuracy").mean() for label, _ in FRACTIONS]
        mh_small = pick(level, "10 %", "mh", "test_accuracy")
        bp_full = pick(level, "full", "backprop", "test_accuracy")
        best = max(float(np.max(pick(level, label, "mh", "test_accuracy")
                                - pick(level, label, "backprop", "test_accuracy")))
                   for label, _ in FRACTIONS)
        lines.append(f"  {level:7s} MH - backprop: {100 * gap[0]:+.1f} points (full), "
                     f"{100 * gap[1]:+.1f} points (10 %), largest on one seed {100 * best:+.1f};"
                     f" MH on 10 % {100 * mh_small.mean():.1f} % vs backprop on full "
                     f"{100 * bp_full.mean():.1f} %")
    evaluations = pick(levels[0], FRACTIONS[0][0], "mh", "evaluations").mean()
    lines.append(f"  (an MH run: {evaluations:.3g} cell evaluations of the proposal steps; "
                 "heat in u = kT ln 2)")
    return "\n".join(lines)


def reproduce(args):
    """One seed per row of the table, MH on the model and on args.reproduce_on."""
    data = load_data()
    seed, backend = args.first_seed, args.reproduce_on
    print(f"MH on the model and on {backend}, seed {seed}, steps "
          f"{args.steps or 'default'}: test accuracy on the chip (%)")
    print(f"{'level':7s} {'train data':10s} {'model':>7s} {backend:>10s} {'identical':>10s} "
          f"{'steps/s':>8s} {'link steps/s':>13s}")
    failures = 0
    for level in [x.strip() for x in args.levels.split(",") if x.strip()]:
        for label, fraction in FRACTIONS:
            options = dict(method="mh", nonideality=level, train_fraction=fraction, seed=seed,
                           quiet=True, **({"steps": args.steps} if args.steps else {}))
            model = run_training(options, data=data)
            extra = {"port": args.port} if args.port else {}
            other = run_training({**options, "backend": backend, **extra}, data=data)
            same = all(model[k] == other[k] for k in ("weights", "counters", "mh", "metrics",
                                                       "posterior_mean"))
            failures += not same
            t = other["throughput"]
            print(f"{level:7s} {label:10s} {100 * model['metrics']['test_accuracy']:7.1f} "
                  f"{100 * other['metrics']['test_accuracy']:10.1f} {'yes' if same else 'NO':>10s}"
                  f" {t['steps_per_s']:8.0f} {t.get('link_steps_per_s', float('nan')):13.0f}",
                  flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
