"""`limemu thermo`: the second law and the integral fluctuation theorem, checked on R runs.

The configuration (workload, array, schedules) is the one `limemu run` takes; its problem is
built once from --seed S, and R runs use the seeds S, S+1, ..., S+R-1 (their draws and, with
init = random, their starts). Per run: the net heat Q from the backend's counters, and the
entropy production Sigma = Q/u + log2 p_0(s_0) - log2 p_K(s_K) from the exact distributions
of the configuration (limemu.model.thermo). The run passes when <2^-Sigma> is 1 within
IFT_STDERRS standard errors and the final states agree with p_K (chi-square test).
"""

import json
import sys
import time

import numpy as np

from limemu.hdl.regmap import RegisterMap
from limemu.model import thermo
from limemu.model.errors import require

from .files import write_atomic
from .hardware import HARDWARE, HardwareSession, open_device
from .runner import _jsonable, open_session

MAX_RUNS = 1_000_000
PROGRESS_SECONDS = 2.0


def add_options(p, backends):
    p.add_argument("--seeds", type=int, default=200, metavar="R",
                   help="independent runs, with seeds S..S+R-1 (S = --seed; default 200)")
    p.add_argument("--backend", choices=backends, default="model",
                   help="where the runs run (vboard: keep R small, each run goes over the "
                   "serial link)")
    p.add_argument("--json", metavar="OUT", help="write the figures as JSON")


class Runs:
    """Net heat (u), start and final weights of each run, and the coupling error (u) of
    each run where the backend knows it (the model)."""

    def __init__(self, count, cells):
        self.heat_u = np.zeros(count)
        self.starts = np.zeros((count, cells), dtype=np.int64)
        self.finals = np.zeros((count, cells), dtype=np.int64)
        self.coupling_error_u = []
        self.coupled_pairs = 0


def run_seeds(open_run, spec, steps, count, half_tilt=None, progress=None):
    """`count` runs of `spec` with seeds spec.seed + i; open_run(spec) gives a session
    (runner.ModelSession's interface); half_tilt: external tilts (session.run_external).
    progress(done, count) after every run."""
    runs = Runs(count, spec.cells)
    for i in range(count):
        run_spec = spec.replace(seed=(spec.seed + i) % 2**64)
        session = open_run(run_spec)
        try:
            if half_tilt is None:
                session.run(steps)
            else:
                session.run_external(steps, half_tilt)
            counters, overflow = session.counters(), session.overflow()
            require(not any(overflow.values()), "steps", steps,
                    f"a counter overflowed in the run of seed {run_spec.seed}: {overflow}")
            extra = session.extra()
            runs.heat_u[i] = counters["heat_net"] * spec.energy_lsb_u
            runs.starts[i] = extra["weights0"]
            runs.finals[i] = session.weights()
        finally:
            session.close()
        runs.coupled_pairs = extra["coupling_pairs"]
        if extra.get("coupling_error") is not None:
            runs.coupling_error_u.append(extra["coupling_error"] * spec.energy_lsb_u)
        if progress is not None:
            progress(i + 1, count)
    return runs


def check_second_law(spec, problem, steps, count, open_run, half_tilt=None, progress=False):
    """(figures, exact run): `count` runs opened by open_run(spec) (see run_seeds) against
    the exact propagation of their configuration (thermo.second_law_figures)."""
    require(2 <= count <= MAX_RUNS, "seeds", count, f"must be in [2, {MAX_RUNS}]")
    started = time.perf_counter()
    exact = thermo.exact_run(spec, problem, steps, half_tilt, progress=_Progress(
        "exact distributions, step {done}/{total}") if progress else None)
    exact_seconds = time.perf_counter() - started
    runs = run_seeds(open_run, spec, steps, count, half_tilt,
                     progress=_Progress("{done}/{total} runs") if progress else None)
    figures = thermo.second_law_figures(exact, runs.heat_u, runs.starts, runs.finals)
    figures["exact_seconds"] = exact_seconds
    figures["coupled_pairs_in_groups"] = runs.coupled_pairs
    if runs.coupling_error_u:
        figures["mean_coupling_error_u"] = float(np.mean(runs.coupling_error_u))
    return figures, exact


class SharedDevice:
    """One simulator (or board link) for all runs on an RTL backend: each run's load writes
    every register and bank entry it uses, runs init_field and clears the counters and the
    step (host.load_sequence), so nothing of the run before survives, and the simulator
    starts once instead of R times."""

    def __init__(self, backend, workload, options, log=None):
        options = dict(options)
        self.backend, self.workload, self.log = backend, workload, log
        self.core = options.pop("core", "pipelined")
        self.options = options
        self.device = None

    def open(self, spec):
        return HardwareSession(self.workload, spec, progress=False, name=self.backend,
                               core=self.core, device=self._borrow, log=self.log)

    def _borrow(self, spec, geometry, log=None):
        if self.device is None:
            self.device = open_device(self.backend, spec, geometry, log=log, **self.options)
        return _Borrowed(self.device, spec.seed)

    def close(self):
        if self.device is not None:
            self.device.close()
            board = getattr(self.device, "board", None)
            if board is not None:
                board.close()
            self.device = None


class _Borrowed:
    """A session's view of the shared device: closing the session leaves it open. Its
    register map is the device's with the run's seed (the load writes rmap.spec.seed)."""

    board = None

    def __init__(self, device, seed):
        self._device = device
        rmap = device.rmap
        self.rmap = RegisterMap(rmap.spec.replace(seed=seed), rmap.geometry)

    def write(self, pairs):
        self._device.write(pairs)

    def read(self, addresses):
        return self._device.read(addresses)

    def run(self, pairs):
        return self._device.run(pairs)

    def close(self):
        pass


def command_thermo(args, workload, spec, steps, options):
    """`limemu thermo`; options: the RTL backends' (cli.backend_options)."""
    count = args.seeds
    require(2 <= count <= MAX_RUNS, "seeds", count, f"must be in [2, {MAX_RUNS}]")
    thermo.StateSpace(spec)                     # too many states: refused before anything runs
    last = spec.seed + count - 1
    print(f"limemu thermo: {workload.description}")
    print(f"  array: {spec.cells} cells x {spec.weight_bits} bit(s), {spec.lanes} lane(s), "
          f"{spec.order} order, init {spec.init}; {steps} steps; {count} runs, seeds "
          f"{spec.seed}..{last}; backend {args.backend}")
    log = None if args.quiet else _log
    shared = SharedDevice(args.backend, workload, options, log) \
        if args.backend in HARDWARE else None
    if shared is not None:
        open_run = shared.open
    else:
        def open_run(run_spec):
            return open_session(args.backend, workload, run_spec, progress=False, **options)
    try:
        figures, _ = check_second_law(spec, workload.problem, steps, count, open_run,
                                      progress=not args.quiet)
    finally:
        if shared is not None:
            shared.close()
    print_figures(figures)
    if args.json:
        document = {"backend": args.backend, "workload": workload.name,
                    "config": {"spec": spec.to_dict(), "steps": steps,
                               "workload": workload.options},
                    **figures}
        write_atomic(args.json, json.dumps(_jsonable(document), indent=1))
        print(f"  wrote {args.json}")
    return 0 if figures["passed"] else 1


def print_figures(f):
    """The figures of check_second_law, one line each, then the verdict."""
    print(f"  exact distributions over {f['states']} states ({f['exact_seconds']:.1f} s)")
    print(f"  mean net heat <Q>          {f['mean_heat_u']:9.4g} u    +- "
          f"{f['mean_heat_stderr_u']:.2g}   (exact {f['exact_mean_heat_u']:.4g} u)")
    print(f"  Clausius bound H0 - HK     {f['clausius_bound_u']:9.4g} u    (H0 = "
          f"{f['entropy_initial_bits']:.4g} bits, HK = {f['entropy_final_bits']:.4g} bits)")
    print(f"  <Sigma> = <Q>/u + <ds>     {f['mean_entropy_production']:9.4g} bits +- "
          f"{f['mean_entropy_production_stderr']:.2g}   (>= 0)")
    theorem = f["ift_theorem"]
    deviation = _stderrs(f["ift_mean"] - theorem, f["ift_stderr"])
    print(f"  <2^-Sigma>                 {f['ift_mean']:9.4g}      +- {f['ift_stderr']:.2g}   "
          f"({deviation:.1f} standard errors from the theorem's {theorem:.4g}"
          + (")" if f["ift_tested"] else f"; too few runs to test, {thermo.IFT_MIN_RUNS} needed)"))
    print(f"  exact <2^-Sigma>           {f['exact_ift']:9.4g}      (off the theorem by "
          f"{f['detailed_balance_error']:.2g}: the crossing unit's precision, or moves without "
          "detailed balance)")
    if theorem != 1:
        print("  (a start that leaves states out: the theorem's value is the probability that "
              "the time-reversed run ends in the start)")
    print(f"  final states vs p_K        chi2 = {f['chi_square']:.4g}, {f['chi_square_dof']} "
          f"dof, limit {f['chi_square_limit']:.4g} (significance "
          f"{thermo.CHI_SQUARE_SIGNIFICANCE:g})"
          + ("; too few runs to test" if f["chi_square_dof"] == 0 else ""))
    if f["coupled_pairs_in_groups"]:
        error = f.get("mean_coupling_error_u")
        print(f"  coupled cells share groups ({f['coupled_pairs_in_groups']} pairs): moves "
              "decided together count heat that differs from the energy change"
              + (f" (mean coupling error {error:.4g} u per run)" if error is not None else "")
              + "; the identity needs independent groups (--order colour or one lane)")
    failures = []
    if not f["ift_ok"]:
        failures.append(f"<2^-Sigma> is {deviation:.1f} standard errors from the theorem's "
                        f"value (more than {thermo.IFT_STDERRS})")
    if not f["histogram_ok"]:
        failures.append("the final states disagree with the exact distribution (chi-square)")
    if not f["detailed_balance_ok"]:
        failures.append(f"the exact <2^-Sigma> is off the theorem's value by "
                        f"{f['detailed_balance_error']:.2g} (more than "
                        f"{thermo.DETAILED_BALANCE_TOLERANCE:g}): the moves break detailed "
                        "balance (coupled cells in a group, or scaled steps of cells with "
                        "Q_nn != 0)")
    if failures:
        print("thermo: FAIL: " + "; ".join(failures))
    else:
        print(f"thermo: PASS: {f['runs']} runs obey the fluctuation theorem and the exact "
              "distribution")


def _stderrs(difference, stderr):
    if stderr > 0:
        return abs(difference) / stderr
    return 0.0 if difference == 0 else np.inf


class _Progress:
    """Progress on stderr, at most every PROGRESS_SECONDS."""

    def __init__(self, template):
        self.template = template            # formatted with done and total
        self.start = self.last = time.perf_counter()

    def __call__(self, done, total):
        now = time.perf_counter()
        if now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        sys.stderr.write(f"  thermo: {self.template.format(done=done, total=total)} "
                         f"({now - self.start:.0f} s)\n")


def _log(message):
    sys.stderr.write(message + "\n")
