"""Energy studies on the command line: ``run --trace-every/--config``, ``report``, ``sweep``.

cli.py defines the commands; this module adds these options and subcommands to its parser
(``add_run_options``, ``add_commands``), applies a run file (``apply_config``) and implements
``report`` and ``sweep`` (``COMMANDS``).
"""

import sys
from pathlib import Path

from limemu.model.errors import ConfigError

from .config import load_run_config, resolved_run_config, spec_differences
from .trace import backend_segmented, check_trace_request, store_trace


def add_run_options(run):
    """--config and --trace-every on ``limemu run``."""
    run.add_argument("--config", metavar="RUN.toml",
                     help="run file (TOML, see README) or a result JSON to repeat; options "
                     "given on the command line override it")
    run.add_argument("--trace-every", type=int, metavar="K", dest="trace_every",
                     help="record loss, counters, E0, eta and the tilts every K steps into "
                     "OUT.trace.npz next to the --json result")


def add_commands(sub):
    """The ``report`` and ``sweep`` subcommands."""
    report = sub.add_parser("report", help="HTML report with plots of a run (traced with "
                            "--trace-every for the plots versus step)")
    report.add_argument("result", metavar="RUN.json", help="result of limemu run --json")
    report.add_argument("--out", metavar="REPORT.html",
                        help="default: RUN.report.html beside the JSON (PNGs in RUN.report/)")
    report.add_argument("--temperature", type=float,
                        help="K for the joules (default: the run's temperature)")
    report.add_argument("--j-per-op", type=float, default=1e-11, dest="j_per_op",
                        help="conventional digital energy per evaluation in J (default 1e-11)")
    add_target_options(report)

    sweep = sub.add_parser("sweep", help="run a grid of runs on Dask; one table and a report "
                           "of energy versus time to solution (resumes where it stopped)")
    sweep.add_argument("file", metavar="SWEEP.toml", help="sweep file (see README)")
    sweep.add_argument("--out", metavar="DIR", help="results folder (default runs/<file stem>)")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="an existing Dask scheduler (tcp://host:8786); default: a local "
                       "cluster")
    sweep.add_argument("--workers", type=int, default=2,
                       help="local cluster: worker processes (default 2)")
    sweep.add_argument("--threads", action="store_true",
                       help="local cluster: workers are threads of this process, not processes")
    sweep.add_argument("--format", choices=("parquet", "csv"), default="parquet",
                       help="results table format (default parquet)")
    sweep.add_argument("--quiet", action="store_true", help="no progress output")


def add_target_options(p):
    p.add_argument("--cut-fraction", type=float, dest="cut_fraction",
                   help="Max-Cut target: fraction of the reference cut (default 1.0)")
    p.add_argument("--reference-cut", type=float, dest="reference_cut",
                   help="Max-Cut reference cut (default: best known, else best seen)")
    p.add_argument("--error", type=float,
                   help="lsq/twoparam target: max |W - W_opt| in weight steps (default 1 for "
                   "lsq, 0 for twoparam)")


def prepare_args(parser, run_parser, args, argv):
    """For ``limemu run``: with ``--config FILE`` the file's options become the defaults and
    the command line is parsed again (options given there win); then a trace request is
    checked before anything runs. Returns the arguments."""
    if args.command != "run":
        return args
    if getattr(args, "config", None):
        options, recorded = load_run_config(args.config)
        run_parser.set_defaults(**options)
        args = parser.parse_args(argv)
        args.recorded_spec = recorded
        check_choices(run_parser, args, args.config)
    check_trace(args)
    return args


def check_choices(run_parser, args, where):
    """A run file's values bypass argparse's choices: check them against the same lists."""
    for action in run_parser._actions:               # noqa: SLF001 (argparse's own list)
        value = getattr(args, action.dest, None)
        if action.choices is not None and value is not None and value not in action.choices:
            raise ConfigError(f"{where}: {action.dest} = {value!r}: must be one of "
                              f"{', '.join(map(str, action.choices))}")


def check_trace(args):
    """ConfigError unless ``limemu run``'s trace request (--trace-every, --json) can be met."""
    check_trace_request(backend_segmented(args.backend), args.backend, args.trace_every,
                        args.json)


def complete(result, args, workload, spec, steps, trace):
    """Embed the resolved run file (and the trace reference) in the result of ``limemu run``."""
    result["run_config"] = resolved_run_config(vars(args), spec, steps)
    differ = spec_differences(getattr(args, "recorded_spec", None), spec)
    if differ:
        sys.stderr.write(f"limemu: note: this run differs from the recorded one in "
                         f"{', '.join(differ)}\n")
    if trace is not None:
        result["trace"] = store_trace(trace, args.json, args.trace_every, workload.name)
    return result


def command_report(args):
    from .report import write_run_report  # noqa: PLC0415 (matplotlib only here)

    path = write_run_report(args.result, out=args.out, temperature_K=args.temperature,
                            j_per_op=args.j_per_op, target=_target(args))
    print(f"limemu report: wrote {path} (PNGs in {path.with_suffix('')}/)")
    return 0


def command_sweep(args):
    from .sweep import run_sweep  # noqa: PLC0415 (dask, pandas only here)

    if not Path(args.file).is_file():
        raise ConfigError(f"sweep file {args.file!r}: not found")
    try:
        outcome = run_sweep(args.file, out=args.out, scheduler=args.scheduler,
                            workers=args.workers, processes=not args.threads,
                            table_format=args.format, progress=not args.quiet)
    except KeyboardInterrupt:
        sys.stderr.write("limemu sweep: interrupted; finished runs are saved, run the same "
                         "command again to resume\n")
        return 130
    table = outcome["frame"]
    reached = int(table["reached"].fillna(False).astype(bool).sum())
    print(f"limemu sweep: {len(table)} runs ({outcome['skipped']} from before, "
          f"{outcome['done']} now, {len(outcome['failed'])} failed); {reached} reached the "
          f"target; table {outcome['table']}; report {outcome['report']}")
    for key, error in outcome["failed"]:
        print(f"  failed {key}: {error}")
    return 1 if outcome["failed"] else 0


def _target(args):
    return {k: getattr(args, k) for k in ("cut_fraction", "reference_cut", "error")
            if getattr(args, k, None) is not None}


COMMANDS = {"report": command_report, "sweep": command_sweep}
