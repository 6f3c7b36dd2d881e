"""Traces: the state of a run every K steps (``limemu run --trace-every K``).

The run is driven through ``open_session`` in segments of K steps (the golden model runs in
segments bit-exactly: a traced run ends in the same state, with the same counters, as an
untraced one). At step 0 and after every segment the recorder keeps:

* ``step``, ``loss`` (L(W)), ``precision`` (the cut for Max-Cut, the error of the weights for
  the other workloads: see solution.py), ``net_updates`` (sum |W - W0| / delta);
* every hardware counter (exact integers) and the wall-clock ``seconds``;
* ``e0_raw``/``eta_raw`` (the barrier and gain the next step uses, raw fixed point) and the same
  in u and u per loss unit (``e0_u``, ``eta``);
* the **tilts**. With the field g = QW - b (the array's own register) and the step's gain,
  the half tilts of a cell in energy LSBs are exactly the engine's (engine._decide):
  ``h_up = (eta_raw << tilt_shift) * (delta^2 Q_nn + 2 delta g_n)`` and ``h_down`` with
  ``-2 delta g_n``; the up move crosses ``E0 + h_up`` and the down move ``E0 + h_down``.
  Written as in Fig. 3A of arXiv 2402.14878, a cell sits at tilt
  ``D = h_down - h_up = -eta delta g_n`` (the energy an up move releases, net of the curvature
  term) and effective barrier
  ``E0_eff = E0 + (h_up + h_down)/2 = E0 + eta delta^2 Q_nn / 4``: then
  ``p+ + p- = 2^-E0_eff (2^(D/2) + 2^(-D/2))`` and the cell is admissible exactly when
  ``r = physics.normalized_rate(E0_eff, D) <= 1``. Stored compactly: the quantiles
  ``TILT_QUANTILES`` of D over all cells, the mean |D|, the fraction of cells with r > 1, and
  the trajectories (D, E0_eff, W) of up to ``TRACKED_CELLS`` cells spread over the array.

The arrays go to ``<result>.trace.npz`` (compressed NumPy, no pickles) next to the result JSON,
which references it under ``trace``.
"""

import io
import os
import time
import uuid
from pathlib import Path

import numpy as np

from limemu.model import physics
from limemu.model.errors import ConfigError

from .config import resolved_run_config
from .progress import Progress
from .runner import SESSIONS, build_run, open_session, result_dict, run_backend
from .solution import precision_metric, precision_value

TILT_QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
TRACKED_CELLS = 8
TRACE_SUFFIX = ".trace.npz"
LOG2_TOL = float(np.log2(1.0 + physics.ADMISSIBLE_TOL))   # r <= 1 up to float rounding


def half_tilts(spec, problem, g, step):
    """(h_up, h_down, e0_raw, eta_raw): half tilts of every cell in energy LSBs (int64) for the
    decision at step ``step`` with field ``g``, exactly as the engine computes them."""
    e0_raw = int(spec.barrier.values_at([step])[0])
    eta_raw = int(spec.gain.values_at([step])[0])
    scale = eta_raw << spec.tilt_shift
    g = np.asarray(g, dtype=np.int64)
    qd = spec.delta ** 2 * problem.diag
    tdg = 2 * spec.delta * g
    return scale * (qd + tdg), scale * (qd - tdg), e0_raw, eta_raw


def fig3a_coordinates(spec, problem, g, step):
    """(D, E0_eff) in u for every cell (see the module docstring), and (e0_raw, eta_raw)."""
    h_up, h_down, e0_raw, eta_raw = half_tilts(spec, problem, g, step)
    lsb = spec.energy_lsb_u
    D = (h_down - h_up) * lsb
    e0_eff = (e0_raw + (h_up + h_down) // 2) * lsb        # h_up + h_down = 2 scale qd: even
    return D, e0_eff, e0_raw, eta_raw


def tracked_cells(n, count=TRACKED_CELLS):
    """Indices of the cells whose trajectories are kept: spread evenly over the array."""
    return np.unique(np.linspace(0, n - 1, min(n, count)).round().astype(np.int64))


class Recorder:
    """Collects the trace points of one run (see the module docstring)."""

    def __init__(self, workload, spec, weights0):
        self.workload, self.spec = workload, spec
        self.w0 = np.asarray(weights0, dtype=np.int64)
        self.cells = tracked_cells(spec.cells)
        self.rows = []
        self.started = time.perf_counter()

    def record(self, session):
        spec, problem = self.spec, self.workload.problem
        step = session.step
        W = session.weights()
        counters = session.counters()
        metrics = self.workload.evaluate(W)
        D, e0_eff, e0_raw, eta_raw = fig3a_coordinates(spec, problem, session.field(), step)
        # r = 2**(e0_at_max_rate(D) - E0_eff) > 1, compared in the exponent (no overflow)
        log2_r = np.asarray(physics.e0_at_max_rate(D)) - e0_eff
        self.rows.append({
            "step": step,
            "seconds": time.perf_counter() - self.started,
            "loss": float(metrics["loss"]),
            "precision": precision_value(self.workload.name, metrics),
            "net_updates": int(np.sum(np.abs(W - self.w0))) // spec.delta,
            "counters": counters,
            "e0_raw": e0_raw,
            "eta_raw": eta_raw,
            "tilt_quantiles": np.quantile(D, TILT_QUANTILES),
            "tilt_abs_mean": float(np.mean(np.abs(D))),
            "inadmissible_fraction": float(np.mean(log2_r > LOG2_TOL)),
            "tracked_tilt": D[self.cells],
            "tracked_e0": e0_eff[self.cells],
            "tracked_weight": W[self.cells],
        })

    def arrays(self):
        """The trace as a dict of NumPy arrays (the contents of the .npz file)."""
        rows, spec = self.rows, self.spec
        names = list(rows[0]["counters"])
        table = [[row["counters"][name] for name in names] for row in rows]
        exact = all(-(1 << 63) <= v < 1 << 63 for line in table for v in line)
        out = {
            "step": np.array([r["step"] for r in rows], dtype=np.int64),
            "seconds": np.array([r["seconds"] for r in rows]),
            "loss": np.array([r["loss"] for r in rows]),
            "precision": np.array([r["precision"] for r in rows]),
            "net_updates": np.array([r["net_updates"] for r in rows], dtype=np.int64),
            "counter_names": np.array(names),
            "counters": np.array(table, dtype=np.int64 if exact else np.float64),
            "e0_raw": np.array([r["e0_raw"] for r in rows], dtype=np.int64),
            "eta_raw": np.array([r["eta_raw"] for r in rows], dtype=np.int64),
            "tilt_levels": np.array(TILT_QUANTILES),
            "tilt_quantiles": np.array([r["tilt_quantiles"] for r in rows]),
            "tilt_abs_mean": np.array([r["tilt_abs_mean"] for r in rows]),
            "inadmissible_fraction": np.array([r["inadmissible_fraction"] for r in rows]),
            "tracked_cells": self.cells,
            "tracked_tilt": np.array([r["tracked_tilt"] for r in rows]),
            "tracked_e0": np.array([r["tracked_e0"] for r in rows]),
            "tracked_weight": np.array([r["tracked_weight"] for r in rows], dtype=np.int64),
        }
        out["e0_u"] = out["e0_raw"] * 2.0 ** -spec.barrier_frac_bits
        out["eta"] = out["eta_raw"] * 2.0 ** -spec.gain_frac_bits
        return out


def backend_segmented(backend):
    """Whether ``backend`` can run in segments (its session class says so)."""
    return bool(getattr(SESSIONS.get(backend), "segmented", True))


def check_trace_request(backend_segmented, backend, every, json_path):
    """ConfigError unless a trace of every ``every`` steps can be recorded and stored."""
    if not every:
        return
    if every < 1:
        raise ConfigError(f"--trace-every = {every}: must be >= 1 step (0: no trace)")
    if not json_path:
        raise ConfigError("--trace-every: the trace is stored next to the result JSON; "
                          "give --json OUT")
    if not backend_segmented:
        raise ConfigError(f"--trace-every with backend = {backend!r}: this backend runs only "
                          "once from step 0 and cannot stop every K steps; use --backend model")


def run_traced(backend, workload, spec, steps, every, progress=True, **options):
    """Run ``steps`` steps on ``backend`` in segments of ``every`` steps, recording a trace.

    Returns (weights, exact counters, overflow flags, extra, trace arrays) like
    runner.run_backend plus the trace. Progress goes to stderr (every 2 s) when ``progress``.
    """
    started = time.perf_counter()
    session = open_session(backend, workload, spec, progress=False, **options)
    try:
        check_trace_request(getattr(session, "segmented", False), backend, every, "-")
        recorder = Recorder(workload, spec, session.weights())
        recorder.record(session)
        meter = Progress(f"{backend} (traced every {every})", spec.cells, progress)
        while session.step < steps:
            session.run(min(every, steps - session.step))
            recorder.record(session)
            meter(session.step, steps)
        weights, exact, overflow = session.weights(), session.counters(), session.overflow()
        extra = session.extra()
    finally:
        session.close()
    extra["seconds"] = time.perf_counter() - started
    return weights, exact, overflow, extra, recorder.arrays()


def run_experiment(options, progress=False):
    """Build and run the run ``options`` describe (command-line names, see config.py), traced
    when ``trace_every`` is set. Returns (workload, spec, steps, result dict, trace arrays or
    None); the result embeds ``run_config``."""
    workload, spec, steps = build_run(options)
    backend = options.get("backend") or "model"
    every = int(options.get("trace_every") or 0)
    temperature = options.get("temperature")
    temperature = 300.0 if temperature is None else float(temperature)
    if every:
        weights, exact, overflow, extra, arrays = run_traced(backend, workload, spec, steps,
                                                             every, progress)
    else:
        weights, exact, overflow, extra = run_backend(backend, workload, spec, steps, progress)
        arrays = None
    result = result_dict(workload, spec, steps, backend, weights, exact, overflow, extra,
                         temperature)
    result["run_config"] = resolved_run_config(options, spec, steps)
    return workload, spec, steps, result, arrays


def trace_path(json_path):
    """``runs/x.json`` -> ``runs/x.trace.npz``."""
    json_path = Path(json_path)
    stem = json_path.name[:-5] if json_path.name.endswith(".json") else json_path.name
    return json_path.with_name(stem + TRACE_SUFFIX)


def trace_bytes(arrays):
    """The compressed .npz file of a trace, as bytes."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def trace_summary(arrays, file_name, every, workload_name):
    """The ``trace`` entry of the result JSON: where the arrays are and what they hold."""
    return {
        "file": file_name,
        "format": "npz",
        "every": int(every),
        "points": int(len(arrays["step"])),
        "precision_metric": precision_metric(workload_name)[0],
        "tilt_quantile_levels": list(TILT_QUANTILES),
        "tracked_cells": [int(c) for c in arrays["tracked_cells"]],
        "arrays": sorted(arrays),
    }


def write_atomic(path, data):
    """Write bytes (or text) to ``path`` atomically: a temporary file in the same folder, then
    os.replace, so that a reader (or an interrupted writer) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "xb") as f:              # "x": a new file, with the umask's mode
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def store_trace(arrays, json_path, every, workload_name):
    """Write the .npz next to ``json_path``; returns the JSON's ``trace`` entry."""
    path = trace_path(json_path)
    write_atomic(path, trace_bytes(arrays))
    return trace_summary(arrays, path.name, every, workload_name)


def load_trace(result, json_path):
    """The trace arrays of a result (dict of arrays), or None when it has no trace."""
    entry = result.get("trace")
    if not entry:
        return None
    path = Path(json_path).parent / entry["file"]
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except OSError as error:
        raise ConfigError(f"trace {path}: cannot read it ({error})") from None
