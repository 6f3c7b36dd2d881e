"""Runs a workload on a backend and assembles the result (the JSON `limemu run` writes)."""

import sys
import time

import numpy as np

from limemu.model import physics
from limemu.model.counters import ENERGY_COUNTERS, CellCounters, Counters
from limemu.model.engine import LimArray
from limemu.model.errors import ConfigError
from limemu.model.reference import reference_run
from limemu.model.spec import Spec

from .hardware import HARDWARE, HardwareSession
from .progress import Progress
from .schedule_options import parse_schedule
from .workloads import build_workload

BACKENDS = ("model", "reference") + HARDWARE

# Defaults that make `limemu run` with no options do something meaningful: an annealed
# Max-Cut whose groups are independent sets (colour order), so the heat is exact.
WORKLOAD_DEFAULTS = {
    "maxcut": dict(cells=64, lanes=4, steps=4000, order="colour",
                   barrier="constant:4", gain="exp:0.1,6"),
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

    steps = int(pick("steps"))
    if steps < 1:
        raise ConfigError(f"steps = {steps}: must be >= 1")
    seed = 1 if options.get("seed") is None else int(options["seed"])
    workload_options = {"seed": seed}
    if name == "maxcut":
        if options.get("graph"):
            workload_options["path"] = options["graph"]
        else:
            workload_options["cells"] = int(pick("cells"))
    elif name == "lsq":
        workload_options["cells"] = int(pick("cells"))
    if options.get("bits") is not None and name != "maxcut":
        workload_options["bits"] = int(options["bits"])
    if name == "twoparam":
        workload_options.pop("seed")
    workload = build_workload(name, **workload_options)
    bits = workload.weight_bits
    if options.get("bits") is not None and int(options["bits"]) != bits:
        raise ConfigError(f"bits = {options['bits']}: the {name} workload needs {bits}")
    fields = dict(cells=workload.problem.n, weight_bits=bits, lanes=int(pick("lanes")),
                  seed=seed, order=pick("order"), q_storage=workload.q_storage,
                  init=options.get("init") or ("random" if bits == 1 else "zero"))
    fields.update(parse_settings(defaults.get("set", []) + (options.get("set") or [])))
    probe = Spec(**fields)         # validates the formats before the schedules use them
    fields["barrier"] = parse_schedule(pick("barrier"), "--barrier", probe.barrier_frac_bits,
                                       steps)
    fields["gain"] = parse_schedule(pick("gain"), "--gain", probe.gain_frac_bits, steps)
    if options.get("tabulate") is not None:
        tabulate_schedules(fields, probe, int(options["tabulate"]), steps)
    if options.get("cells") is not None and int(options["cells"]) != workload.problem.n:
        raise ConfigError(f"cells = {options['cells']}: the workload has "
                          f"{workload.problem.n} variables")
    return workload, Spec(**fields), steps


def tabulate_schedules(fields, probe, entries, steps):
    """--tabulate N: every schedule that is not a constant or a table becomes a table of N
    entries sampled over the run (Schedule.tabulated), for hardware that computes tables only
    (the compact core); the model runs the same table, so the cross-check still holds."""
    per_entry = max(1, -(-steps // entries)) if entries > 0 else 1
    for name, bits in (("barrier", probe.barrier_bits), ("gain", probe.gain_bits)):
        if fields[name].kind not in ("constant", "table"):
            fields[name] = fields[name].tabulated(f"--tabulate ({name})", bits, entries,
                                                  per_entry)


def parse_settings(items):
    """--set KEY=VALUE pairs for integer Spec fields (formats, widths)."""
    allowed = ("barrier_bits", "barrier_frac_bits", "gain_bits", "gain_frac_bits",
               "field_bits", "q_bits", "mantissa_bits")
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in allowed:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with KEY in {allowed}")
        try:
            out[key] = int(value)
        except ValueError:
            raise ConfigError(f"--set {item!r}: {key} must be an integer") from None
    return out


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
        self.progress = Progress("model", spec.cells, progress)
        self.cells = CellCounters(spec) if spec.cell_counter_bits else None

    @property
    def step(self):
        return self.array.step

    def run(self, steps):
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
        return dict(weights0=a.W0.copy(), coupling_error=a.coupling_error,
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
        spec = self.spec
        if self.progress and steps * spec.cells > 200_000:
            sys.stderr.write(f"  reference: {steps * spec.cells} cell-evaluations in pure Python"
                             f" (about {steps * spec.cells / 60_000:.0f} s)\n")
        self.W, self.exact, self.g = reference_run(spec, self.workload.problem, self.probe.order,
                                                   self.probe.W0, steps)
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
    retries (board: the serial link)."""
    if backend in HARDWARE:
        return HardwareSession(workload, spec, progress, name=backend,
                               log=_log if progress else None, **options)
    if backend not in SESSIONS:
        raise ConfigError(f"backend = {backend!r}: must be one of {tuple(SESSIONS)}")
    return SESSIONS[backend](workload, spec, progress)


def _log(message):
    sys.stderr.write(message + "\n")


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


def result_dict(workload, spec, steps, backend, weights, exact, overflow, extra,
                temperature_K=300.0):
    hardware = Counters.from_exact(spec, exact).hardware()
    lsb = spec.energy_lsb_u
    metrics = workload.evaluate(weights)
    net_updates = int(np.sum(np.abs(weights - extra["weights0"]))) // spec.delta
    bits = spec.weight_bits
    energy = physics.energy_to_solution(
        heat_u=exact["heat_net"] * lsb, n_params=spec.cells, bits=bits,
        net_updates=net_updates, evaluations=exact["evaluations"],
        barrier_work_u=exact["barrier_work"] * lsb, temperature_K=temperature_K)
    energy.update({f"{name}_u": exact[name] * lsb for name in ENERGY_COUNTERS})
    energy["heat_abs_J"] = physics.u_to_joules(energy["heat_abs_u"], temperature_K)
    if extra.get("coupling_error") is not None:
        energy["coupling_error_u"] = extra["coupling_error"] * lsb
    result = {
        "workload": workload.name,
        "backend": backend,
        "config": {"spec": spec.to_dict(), "steps": steps, "workload": workload.options},
        "steps": steps,
        "counters": hardware,
        "overflow": overflow,
        "weights": [int(w) for w in weights],
        "loss": float(metrics["loss"]),
        "energy": _jsonable(energy),
        "metrics": _jsonable(metrics),
        "reference": _jsonable(workload.reference),
        "update_order": {"kind": spec.order, "colours": extra["colours"],
                         "coupled_pairs_in_groups": extra["coupling_pairs"]},
        "identities": {"first_law": "exact" if backend == "model" else
                       extra.get("first_law", "not checked")},
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
