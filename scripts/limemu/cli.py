"""The `limemu` command: run workloads, cross-check backends, project energies."""

import argparse
import json
import sys

from limemu.hdl.regmap import CORES
from limemu.model import physics
from limemu.model.counters import counter_layout
from limemu.model.errors import ConfigError, IdentityError, require
from limemu.model.spec import INITS, ORDERS
from limemu.model.thermo import BELOW_LANDAUER

from . import api, build, studies, thermo
from .backends import BACKENDS
from .files import check_output_file, write_atomic
from .link import LinkError
from .results import load_result
from .runner import WORKLOAD_DEFAULTS, build_run
from .board_build import board_run_options
from .trace import trace_path
from .train import add_train_options, command_train


def add_run_options(p, extra_workloads=()):
    p.add_argument("--workload", choices=sorted(WORKLOAD_DEFAULTS) + list(extra_workloads),
                   default="maxcut", help="problem to solve (default: maxcut on a random "
                   "graph)" + ("; mh: the MH chain of `limemu train --nonideality strong` "
                               "(--steps, --seed, --lanes, --core)" if extra_workloads else ""))
    p.add_argument("--graph", help="Max-Cut graph in G-set format (first line 'n m', then "
                   "'i j w' per edge, 1-based)")
    p.add_argument("--cells", type=int, help="number of cells (Max-Cut: nodes of the random "
                   "graph)")
    p.add_argument("--bits", type=int, help="weight bits (1 = spins)")
    p.add_argument("--lanes", type=int, help="cells evaluated per cycle")
    p.add_argument("--steps", type=int, help="steps to run")
    p.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    p.add_argument("--order", choices=ORDERS,
                   help="update order; colour makes every group an independent set, banked too and "
                        "spreads each column of Q over the lanes (fewer cycles on the "
                        "throughput core; the default of colour-order workloads on a "
                        "--board whose build has it)")
    p.add_argument("--init", choices=INITS,
                   help="initial weights")
    p.add_argument("--barrier", metavar="SCHEDULE", help="barrier E0 in u: constant:V, "
                   "linear:A,B, log:A,S,TAU, exp:A,B or table:FILE")
    p.add_argument("--gain", metavar="SCHEDULE", help="gain eta in u per loss unit, same "
                   "forms as --barrier")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="spec format field (barrier_frac_bits, gain_frac_bits, mantissa_bits, "
                   "...); repeatable")
    p.add_argument("--tabulate", type=int, metavar="N",
                   help="run the linear, log and exp schedules as tables of N entries (256 "
                   "to 4096) sampled over the run: for hardware that computes tables only "
                   "(the compact core, the iCEBreaker's)")
    p.add_argument("--temperature", type=float, default=300.0,
                   help="temperature of the energy report in K (default 300)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def add_hardware_options(p):
    p.add_argument("--waves", metavar="FILE", help="verilator: write a VCD trace")
    p.add_argument("--core", choices=CORES,
                   help="verilator, vboard: the RTL core to simulate (default pipelined; "
                   "compact: one lane, the iCEBreaker's core); a board's build decides itself")
    p.add_argument("--board", choices=build.BOARD_NAMES,
                   help="verilator: simulate the core and array of `limemu build --board B` "
                   "(its formats, lanes and capacities) and report the run's time at the "
                   "board's clock")
    p.add_argument("--port", help="board: serial port of the board (e.g. /dev/ttyUSB1)")
    p.add_argument("--baud", type=int, help="board: baud rate of its build (default: 1000000)")
    p.add_argument("--link-timeout", type=float, default=1.0, metavar="S",
                   help="board, vboard: seconds to wait for an answer beyond its time on "
                   "the wire (default 1)")
    p.add_argument("--retries", type=int, default=3,
                   help="board, vboard: resends of a request whose answer is lost or "
                   "damaged (default 3)")
    p.add_argument("--resyncs", type=int, default=0,
                   help="board, vboard: once the retries are spent, rounds of as many again "
                   "after waiting for the line to fall quiet (default 0; a long run on a "
                   "noisy line wants some, see docs/soak.md)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="limemu", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a workload and report weights, counters and energy")
    add_run_options(run)
    run.add_argument("--backend", choices=BACKENDS, default="model",
                     help="model: vectorised golden model; reference: cycle-by-cycle Python; "
                     "verilator: the RTL in Verilator; vboard: the board top (UART included) "
                     "in Verilator on a pseudo-terminal; board: an FPGA board on --port")
    run.add_argument("--json", metavar="OUT", help="write the result as JSON")
    add_hardware_options(run)
    studies.add_run_options(run)

    check = sub.add_parser("crosscheck", help="run the golden model and another backend on "
                           "the same configuration; exit 0 only if weights and counters agree")
    add_run_options(check, extra_workloads=["mh"])
    check.add_argument("--backend", choices=[b for b in BACKENDS if b != "model"],
                       default="reference", help="backend compared with the model")
    check.add_argument("--checkpoints", type=int, default=4,
                       help="compare at this many checkpoints (default 4; the reference "
                       "backend compares once, at the end)")
    add_hardware_options(check)

    bound = sub.add_parser("bound", help="energy projection: LIM bound vs conventional")
    bound.add_argument("--params", type=float, required=True, help="model parameters")
    bound.add_argument("--ops", type=float, required=True, help="model-update operations")
    bound.add_argument("--bits", type=float, required=True, help="bits per update")
    bound.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    bound.add_argument("--measured", metavar="RUN.json",
                       help="also project with the heat per cell-evaluation of this run")

    second_law = sub.add_parser("thermo", help="the second law and the fluctuation theorem "
                                "checked on R runs against the exact distributions (small "
                                "arrays)")
    add_run_options(second_law)
    thermo.add_options(second_law, BACKENDS)
    add_hardware_options(second_law)

    studies.add_commands(sub)
    build.add_commands(sub)

    train = sub.add_parser("train", help="chip-in-the-loop training on the breast-cancer data: "
                           "Metropolis-Hastings on the array or backprop, on a non-ideal chip")
    add_train_options(train)

    args = parser.parse_args(argv)
    try:
        args = studies.prepare_args(parser, run, args, argv)
        check_outputs(args)
        if args.command == "run":
            return command_run(args)
        if args.command in studies.COMMANDS:
            return studies.COMMANDS[args.command](args)
        if args.command in build.COMMANDS:
            return build.COMMANDS[args.command](args)
        if args.command == "crosscheck":
            return command_crosscheck(args)
        if args.command == "thermo":
            return thermo.command_thermo(args, *build_run(run_options(args)),
                                         backend_options(args))
        if args.command == "train":
            return command_train(args)
        return command_bound(args)
    except ConfigError as error:
        print(f"limemu: error: {error}{run_file_named(args, error)}", file=sys.stderr)
        return 2
    except IdentityError as error:
        print(f"limemu: IDENTITY VIOLATED (a bug, please report): {error}", file=sys.stderr)
        return 3
    except LinkError as error:
        print(f"limemu: link error: {error}", file=sys.stderr)
        return 4
    except KeyboardInterrupt:
        print(f"limemu {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130


def run_file_named(args, error):
    """' (options from FILE)' when a --config run file gave options and the error does not name
    it already: the bad value may have come from the file rather than the command line."""
    config = getattr(args, "config", None)
    return f" (options from {config})" if config and str(config) not in str(error) else ""


def check_outputs(args):
    """Before anything runs: every file the command will write can be written (--json and
    its trace, --waves); report and sweep check theirs themselves."""
    if getattr(args, "json", None):
        check_output_file(args.json, "--json")
        if getattr(args, "trace_every", None):
            check_output_file(trace_path(args.json), "--json (its trace file)")
    if getattr(args, "waves", None):
        check_output_file(args.waves, "--waves")


def run_options(args):
    """The run's options; the compact core evaluates one cell at a time, so with it the lanes
    default to 1. On a board whose build has the throughput core a workload whose default
    order is colour runs in banked order unless --order says otherwise: the same independent
    sets, each column of Q spread over the lanes' banks, fewer cycles a step."""
    options = board_run_options(vars(args))
    if options.get("core") == "compact" and options.get("lanes") is None:
        options = {**options, "lanes": 1}
    workload = WORKLOAD_DEFAULTS.get(options.get("workload") or "maxcut", {})
    if options.get("board") and options.get("core") == "throughput" and \
            options.get("order") is None and workload.get("order") == "colour":
        options = {**options, "order": "banked"}
    return options


def command_run(args):
    workload, spec, steps = build_run(run_options(args))
    print(f"limemu run: {workload.description}")
    print(f"  array: {spec.cells} cells x {spec.weight_bits} bit(s), {spec.lanes} lane(s), "
          f"{spec.order} order, Q {spec.q_storage}; {steps} steps, seed {spec.seed}, "
          f"backend {args.backend}")
    print(f"  barrier: {spec.barrier.describe(spec.barrier_frac_bits, 'u')}")
    print(f"  gain:    {spec.gain.describe(spec.gain_frac_bits, 'u/loss')}")
    studies.check_trace(args)
    outcome = api.run(workload, spec, steps, backend=args.backend,
                      trace_every=args.trace_every or 0, temperature_K=args.temperature,
                      progress=not args.quiet, **backend_options(args))
    result = outcome.to_dict()
    print_summary(result)
    if args.json:
        studies.complete(result, args, workload, spec, steps, outcome.trace)
        write_atomic(args.json, json.dumps(result, indent=1))
        print(f"  wrote {args.json}")
    return 1 if any(outcome.overflow.values()) else 0


def print_summary(result):
    m, e, c = result["metrics"], result["energy"], result["counters"]
    print("result:")
    print(f"  loss L(W) = {result['loss']:g}")
    for key in ("cut", "best_known", "exhaustive_optimum", "max_abs_error_vs_numpy",
                "rmse_model", "rmse_numpy", "distance_to_optimum", "loss_gap"):
        if key in m:
            print(f"  {key} = {m[key]}")
    print("counters:")
    for name, value in c.items():
        flag = "  OVERFLOW" if result["overflow"].get(name) else ""
        print(f"  {name:14s} {value}{flag}")
    if any(result["overflow"].values()):
        print("  WARNING: a counter overflowed its hardware width; its value has wrapped")
    print(f"energy (T = {e['temperature_K']:g} K, u = kT ln 2 = "
          f"{physics.landauer_unit_J(e['temperature_K']):.3e} J):")
    print(f"  heat released (net)   {e['heat_net_u']:12.6g} u   {e['heat_J']:.3e} J")
    print(f"  heat (gross, sum |D|) {e['heat_abs_u']:12.6g} u   {e['heat_abs_J']:.3e} J")
    print(f"  barrier work          {e['barrier_work_u']:12.6g} u")
    print(f"  annealing work        {e['anneal_work_u']:12.6g} u")
    if "coupling_error_u" in e:
        print(f"  coupling error        {e['coupling_error_u']:12.6g} u   "
              f"({result['update_order']['coupled_pairs_in_groups']} coupled pairs in groups)")
    print(f"  Landauer bound N*b    {e['landauer_bound_u']:12.6g} u   "
          f"(net heat / bound = {_ratio(e['ratio_to_landauer'])})")
    if "clausius_bound_u" in e:
        ratio = e["ratio_to_clausius"]           # None when the bound is not positive
        print(f"  Clausius bound H0-HK  {e['clausius_bound_u']:12.6g} u   ("
              + ("" if ratio is None else f"net heat / bound = {_ratio(ratio)}; ")
              + f"H0 = {e['entropy_initial_bits']:.4g}, HK = {e['entropy_final_bits']:.4g} "
              "bits, exact)")
    print(f"  {BELOW_LANDAUER}")
    print(f"  speed bound           {e['speed_bound_u']:12.6g} u   at net rate "
          f"{e['net_rate']:.3g} per evaluation (net heat / bound = "
          f"{_ratio(e['ratio_to_speed_bound'])})")
    print(f"  first law: {result['identities']['first_law']}; "
          f"{result['cell_evaluations_per_s']:.3g} cell-evaluations/s")
    if "cycles" in result:
        evaluations = result["counters"]["evaluations"]
        print(f"core: {result['cycles']} cycles, "
              f"{evaluations / max(result['cycles'], 1):.3g} cell-evaluations per cycle")
    if "board_seconds" in result:
        print(f"  on the {result['board']} board at {result['clock_hz'] / 1e6:g} MHz: "
              f"{result['board_seconds']:.4g} s")


def _ratio(value):
    return f"{value:.3g}" if isinstance(value, (int, float)) else str(value)


def command_crosscheck(args):
    if args.workload == "mh":
        return command_crosscheck_mh(args)
    workload, spec, steps = build_run(run_options(args))
    options = backend_options(args)
    segments = api.checkpoint_count(args.backend, args.checkpoints)
    print(f"limemu crosscheck: model vs {args.backend}: {workload.description}; "
          f"{spec.cells} cells, {spec.lanes} lane(s), {steps} steps, seed {spec.seed}, "
          f"{segments} checkpoint(s)")
    outcome = api.crosscheck(workload, spec, steps, backend=args.backend, checkpoints=segments,
                             progress=not args.quiet, log=None if args.quiet else print,
                             **options)
    if args.waves:
        print(f"  wrote {args.waves}")
    if outcome.passed:
        n = len(counter_layout(spec))
        print(f"crosscheck: PASS: {spec.cells} weights, {n} counters, their overflow flags and "
              f"the field identical at every checkpoint up to step {steps} "
              f"({outcome.seconds:.1f} s)")
        return 0
    print(f"crosscheck: FAIL: {outcome.mismatch}")
    return 1


def command_crosscheck_mh(args):
    from .train import crosscheck_mh  # noqa: PLC0415
    steps = args.steps or 200
    options = dict(steps=steps, seed=args.seed, lanes=args.lanes, nonideality="strong",
                   core=args.core or "pipelined", port=args.port, baud=args.baud,
                   quiet=args.quiet)
    print(f"limemu crosscheck: model vs {args.backend}: the MH chain of `limemu train "
          f"--nonideality strong`, {steps} steps, seed {args.seed}, {options['core']} core")
    passed, message = crosscheck_mh(options, args.backend,
                                    log=(lambda *a: None) if args.quiet else print)
    print(f"crosscheck: {'PASS' if passed else 'FAIL'}: {message}")
    return 0 if passed else 1


def backend_options(args):
    """Options only the RTL backends take: --waves (verilator), the link's (vboard, board)."""
    options = {}
    if getattr(args, "waves", None):
        require(args.backend == "verilator", "waves", args.waves,
                "needs --backend verilator")
        options["waves"] = args.waves
    if getattr(args, "board", None):
        options.update(board=args.board, core=board_run_options(vars(args))["core"])
    elif getattr(args, "core", None):
        require(args.backend in ("verilator", "vboard"), "core", args.core,
                "needs --backend verilator or vboard (a board's bitstream has its core)")
        options["core"] = args.core
    for name in ("port", "baud"):
        if getattr(args, name, None) is not None:
            require(args.backend == "board", name, getattr(args, name),
                    "needs --backend board")
            options[name] = getattr(args, name)
    if args.backend in ("vboard", "board"):
        require(args.link_timeout > 0, "link-timeout", args.link_timeout, "must be > 0")
        require(0 <= args.retries <= 100, "retries", args.retries, "must be in [0, 100]")
        require(0 <= args.resyncs <= 1000, "resyncs", args.resyncs, "must be in [0, 1000]")
        options.update(timeout=args.link_timeout, retries=args.retries, resyncs=args.resyncs)
    return options


def command_bound(args):
    measured = None
    if args.measured:
        run = load_result(args.measured, "--measured")
        measured = float(run["energy"]["heat_abs_u"]) / max(run["counters"]["evaluations"], 1)
    result = physics.projection(params=args.params, ops=args.ops, bits=args.bits,
                                temperature_K=args.temperature, measured_u_per_op=measured)
    print(physics.format_projection(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
