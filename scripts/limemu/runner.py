"""Runs a workload on a backend and assembles the result (the JSON `limemu run` writes).

The sessions here are the backends' own (the golden model, the cycle-by-cycle reference; the
RTL's are in hardware.py, imported only when one is opened). The public API (api.py) wraps them.
"""

import sys
import time

import numpy as np

from limemu.model import physics
from limemu.model.counters import ENERGY_COUNTERS, CellCounters, Counters
from limemu.model.engine import LimArray
from limemu.model.errors import ConfigError
from limemu.model.reference import reference_run
from limemu.model.thermo import clausius_bound

from .backends import BACKENDS, HARDWARE
from .problems import workload_from_options
from .progress import StepProgress
from .specs import check_steps, spec_for

# Defaults that make `limemu run` with no options do something meaningful: an annealed
# Max-Cut whose groups are independent sets (colour order), so the heat is exact.
WORKLOAD_DEFAULTS = {
    # chosen by measurement on G-set-like graphs (docs/engine.md): the best cuts at 10**4
    # sweeps; a low barrier keeps moves fast, the gain ends cold enough to settle
    "maxcut": dict(cells=64, lanes=4, steps=4000, order="colour",
                   barrier="constant:1.5", gain="exp:0.2,10"),
    # Q = X^T X is ill-conditioned (condition number ~470) and needs max|Q| ~ 4096 to keep
    # NumPy's optimum: the gain then needs 10 fraction bits (hence 12 for the barrier)
    "lsq": dict(cells=10, lanes=1, steps=20000, order="natural",
                barrier="constant:2", gain="exp:0.001,0.1",
                set=["barrier_frac_bits=12", "gain_frac_bits=10"]),
    "twoparam": dict(cells=2, lanes=1, steps=20000, order="natural",
                     barrier="linear:1,8", gain="exp:0.02,2"),
}


def build_run(options):
    """(workload, spec, steps) from a dict of command-line options (None = default)."""
    name = options.get("workload") or "maxcut"
    if name not in WORKLOAD_DEFAULTS:
        raise ConfigError(f"workload = {name!r}: must be one of {sorted(WORKLOAD_DEFAULTS)}")
    defaults = WORKLOAD_DEFAULTS[name]

    def pick(key):
        value = options.get(key)
        return defaults.get(key) if value is None else value

    steps = check_steps(pick("steps"))             # before anything is built
    seed = 1 if options.get("seed") is None else int(options["seed"])
    workload = workload_from_options(name, options, seed, cells=pick("cells"))
    settings = defaults.get("set", []) + (options.get("set") or [])
    lanes = options.get("lanes")
    if lanes is None:              # the default adapts to small problems; a given value does not
        lanes = min(defaults["lanes"], workload.problem.n)
    spec = spec_for(workload, steps, settings=settings, label="--", lanes=int(lanes),
                    seed=seed, order=pick("order"), init=options.get("init"),
                    barrier=pick("barrier"), gain=pick("gain"), tabulate=options.get("tabulate"))
    if options.get("cells") is not None and int(options["cells"]) != workload.problem.n:
        raise ConfigError(f"cells = {options['cells']}: the workload has "
                          f"{workload.problem.n} variables")
    return workload, spec, steps


SNAPSHOT_POSITIONS = 1 << 22       # per-cell counters: weights kept per segment (cells x steps)


class ModelSession:
    """A run in progress on the golden model. Every backend offers the same methods, so that
    callers (runs, traces, cross-checks) can run in segments and read the state in between:
    run(steps), weights(), counters() (exact ints), overflow(), field() (g, or None),
    step, and extra() (facts for the result JSON)."""

    name = "model"
    segmented = True

    def __init__(self, workload, spec, progress=True):
        self.array = LimArray(spec, workload.problem if spec.tilt == "field" else None)
        self.progress = StepProgress("model", spec.cells, progress)
        self.cells = CellCounters(spec) if spec.cell_counter_bits else None

    @property
    def step(self):
        return self.array.step

    def run(self, steps):
        self.progress.begin(self.array.step, self.array.step + int(steps))
        try:
            self._run(steps)
        finally:
            self.progress.end()

    def _run(self, steps):
        if self.cells is None:
            self.array.run(steps, progress=self.progress)
            return
        segment = max(1, SNAPSHOT_POSITIONS // self.array.spec.cells)
        done = 0
        while done < steps:                      # weights after every step, in segments
            count = min(segment, steps - done)
            before = self.array.W.copy()
            self.cells.add_steps(before, self.array.run(count, snapshot_every=1,
                                                        progress=self.progress))
            done += count

    def run_external(self, steps, half_tilt):
        for _ in range(int(steps)):
            before = self.array.W.copy()
            self.array.run_external(1, half_tilt)
            if self.cells is not None:
                self.cells.add_steps(before, self.array.W[None, :])

    def weights(self):
        return self.array.W.copy()

    def counters(self):
        return dict(self.array.counters.exact)

    def overflow(self):
        return dict(self.array.counters.overflow)

    def field(self):
        return self.array.g.copy() if self.array.problem is not None else None

    def cell_counters(self):
        return None if self.cells is None else self.cells.hardware()

    def extra(self):
        a = self.array
        return dict(weights0=a.W0.copy(), coupling_error=getattr(a, "coupling_error", None),
                    coupling_pairs=a.order.coupled_pairs, colours=a.order.colours)

    def close(self):
        pass


class ReferenceSession:
    """The cycle-by-cycle Python reference. It always runs from step 0, so it runs once."""

    name = "reference"
    segmented = False

    def __init__(self, workload, spec, progress=True):
        self.workload, self.spec, self.progress = workload, spec, progress
        self.probe = LimArray(spec, workload.problem)       # same order and initial weights
        self.W, self.g, self.exact, self.step = self.probe.W0.copy(), self.probe.g, None, 0

    def run(self, steps):
        if self.step:
            raise ConfigError("backend = 'reference': runs only once from step 0 (no segments)")
        meter = StepProgress("reference (pure Python)", self.spec.cells, self.progress)
        meter.begin(0, steps)
        try:
            self.W, self.exact, self.g = reference_run(self.spec, self.workload.problem,
                                                       self.probe.order, self.probe.W0, steps,
                                                       progress=meter)
        finally:
            meter.end()
        self.step = steps

    def weights(self):
        return self.W.copy()

    def counters(self):
        return dict(self.exact) if self.exact else dict(Counters(self.spec).exact)

    def overflow(self):
        return dict(Counters.from_exact(self.spec, self.counters()).overflow)

    def field(self):
        return np.array(self.g)

    def cell_counters(self):
        return None

    def extra(self):
        order = self.probe.order
        return dict(weights0=self.probe.W0.copy(), coupling_error=None,
                    coupling_pairs=order.coupled_pairs, colours=order.colours)

    def close(self):
        pass


SESSIONS = {"model": ModelSession, "reference": ReferenceSession}


def open_session(backend, workload, spec, progress=True, **options):
    """A session of `backend` loaded with the workload (see ModelSession for the methods).
    Options of the RTL backends: waves (verilator: a VCD file to write); port, baud, timeout,
    retries, resyncs (board: the serial link)."""
    if backend in HARDWARE:
        from .hardware import HardwareSession  # noqa: PLC0415 (amaranth only for the RTL)
        return HardwareSession(workload, spec, progress, name=backend,
                               log=_log if progress else None, **options)
    if backend not in SESSIONS:
        raise ConfigError(f"backend = {backend!r}: must be one of {BACKENDS}")
    return SESSIONS[backend](workload, spec, progress)


def segmented(backend):
    """Whether `backend` can run in segments and be read in between (the reference cannot)."""
    return bool(getattr(SESSIONS.get(backend), "segmented", True))


def _log(message):
    print(message, file=sys.stderr)


def run_backend(backend, workload, spec, steps, progress=True, **options):
    """Run; returns (weights, exact counters dict, overflow flags, extra dict)."""
    started = time.perf_counter()
    session = open_session(backend, workload, spec, progress, **options)
    try:
        session.run(steps)
        weights, exact, overflow = session.weights(), session.counters(), session.overflow()
        extra = session.extra()
    finally:
        session.close()
    extra["seconds"] = time.perf_counter() - started
    return weights, exact, overflow, extra


def energy_report(spec, exact, weights, weights0, coupling_error=None, temperature_K=300.0, *,
                  problem=None, steps=None):
    """The energy report of a run from its exact counters: heat and work in u and J, the
    Landauer and speed bounds for the same cells and net updates, and the ratios to them;
    with `problem` (a Workload) and `steps`, the Clausius bound of arrays small enough to
    enumerate."""
    lsb = spec.energy_lsb_u
    net_updates = int(np.sum(np.abs(np.asarray(weights) - weights0))) // spec.delta
    energy = physics.energy_to_solution(
        heat_u=exact["heat_net"] * lsb, n_params=spec.cells, bits=spec.weight_bits,
        net_updates=net_updates, evaluations=exact["evaluations"],
        barrier_work_u=exact["barrier_work"] * lsb, temperature_K=temperature_K)
    energy.update({f"{name}_u": exact[name] * lsb for name in ENERGY_COUNTERS})
    energy["heat_abs_J"] = physics.u_to_joules(energy["heat_abs_u"], temperature_K)
    if coupling_error is not None:
        energy["coupling_error_u"] = coupling_error * lsb
    if problem is not None:
        bound = clausius_bound(spec, problem.problem if spec.tilt == "field" else None, steps)
        if bound is not None:           # small arrays: the second law's bound beside N b
            energy.update(bound)
            energy["ratio_to_clausius"] = (energy["heat_u"] / bound["clausius_bound_u"]
                                           if bound["clausius_bound_u"] > 0 else None)
    return _jsonable(energy)


def identities(backend, extra):
    """How the run's identities were checked: the model checks the first law exactly after
    every run (a violation raises); the RTL backends check it on the core's registers."""
    return {"first_law": "exact" if backend == "model" else
            extra.get("first_law", "not checked")}


def result_dict(workload, spec, steps, backend, weights, exact, overflow, extra,
                temperature_K=300.0):
    """The result of a run as `limemu run --json` writes it (see the README)."""
    metrics = workload.evaluate(weights)
    energy = energy_report(spec, exact, weights, extra["weights0"], extra.get("coupling_error"),
                           temperature_K, problem=workload, steps=steps)
    result = {
        "workload": workload.name,
        "backend": backend,
        "config": {"spec": spec.to_dict(), "steps": steps, "workload": workload.options},
        "steps": steps,
        "counters": Counters.from_exact(spec, exact).hardware(),
        "overflow": overflow,
        "weights": [int(w) for w in weights],
        "loss": float(metrics["loss"]),
        "energy": energy,
        "metrics": _jsonable(metrics),
        "reference": _jsonable(workload.reference),
        "update_order": {"kind": spec.order, "colours": extra["colours"],
                         "coupled_pairs_in_groups": extra["coupling_pairs"]},
        "identities": identities(backend, extra),
        "seconds": extra["seconds"],
        # the RTL backends: time spent running steps (set-up and builds excluded)
        "cell_evaluations_per_s": exact["evaluations"] / max(extra.get("run_seconds",
                                                                       extra["seconds"]), 1e-9),
    }
    if "cycles" in extra:                  # the RTL backends: the core's cycles
        result["cycles"] = int(extra["cycles"])
    for key in ("board", "clock_hz", "board_seconds", "evaluations_per_cycle"):
        if key in extra:                   # --board: the build's clock and the run's time
            result[key] = extra[key]
    if "cut" in metrics:
        result["cut"] = int(metrics["cut"])
    return result


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if np.isfinite(v) else str(v)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value
