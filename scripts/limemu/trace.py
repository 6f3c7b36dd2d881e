"""Traces: the state of a run every K steps (``limemu run --trace-every K``).

The run is driven through a session in segments of K steps (the golden model runs in
segments bit-exactly: a traced run ends in the same state, with the same counters, as an
untraced one); recorder.py says what each trace point holds. The arrays go to
``<result>.trace.npz`` (compressed NumPy, no pickles) next to the result JSON, which
references it under ``trace``.
"""

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from limemu.model.errors import ConfigError

from . import api
from .config import resolved_run_config
from .files import write_atomic  # noqa: F401 (re-exported)
from .recorder import TILT_QUANTILES, fig3a_coordinates  # noqa: F401 (re-exported)
from .runner import build_run, segmented
from .solution import precision_metric

TRACE_SUFFIX = ".trace.npz"


def backend_segmented(backend):
    """Whether ``backend`` can run in segments (its session class says so)."""
    return segmented(backend)


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
    runner.run_backend plus the trace."""
    result = api.run(workload, spec, steps, backend=backend, trace_every=every,
                     progress=progress, **options)
    return result.weights, result.counters, result.overflow, result.extra, result.trace


def run_experiment(options, progress=False):
    """Build and run the run ``options`` describe (command-line names, see config.py), traced
    when ``trace_every`` is set. Returns (workload, spec, steps, result dict, trace arrays or
    None); the result embeds ``run_config``."""
    workload, spec, steps = build_run(options)
    temperature = options.get("temperature")
    result = api.run(workload, spec, steps, backend=options.get("backend") or "model",
                     trace_every=int(options.get("trace_every") or 0),
                     temperature_K=300.0 if temperature is None else float(temperature),
                     progress=progress)
    record = result.to_dict()
    record["run_config"] = resolved_run_config(options, spec, steps)
    return workload, spec, steps, record, result.trace


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


def store_trace(arrays, json_path, every, workload_name):
    """Write the .npz next to ``json_path``; returns the JSON's ``trace`` entry."""
    path = trace_path(json_path)
    write_atomic(path, trace_bytes(arrays))
    return trace_summary(arrays, path.name, every, workload_name)


#: what the readers of a trace use: arrays with one row per trace point, and the others
POINT_ARRAYS = ("step", "loss", "precision", "net_updates", "counters", "tracked_tilt",
                "tracked_e0", "tilt_quantiles")
TRACE_ARRAYS = POINT_ARRAYS + ("counter_names", "tilt_levels", "tracked_cells")
TRACED_COUNTERS = ("evaluations", "heat_net", "heat_abs", "barrier_work", "anneal_work")


def load_trace(result, json_path):
    """The trace arrays of a result (dict of arrays), or None when it has no trace;
    ConfigError naming the file when it is missing, damaged or incomplete."""
    entry = result.get("trace")
    if not entry:
        return None
    path = Path(json_path).parent / entry["file"]
    try:
        with open(path, "rb") as f:
            data = np.load(f, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("one array, not an .npz archive of arrays")
            with data:
                arrays = {key: data[key] for key in data.files}
    except OSError as error:
        raise ConfigError(f"trace {path}: cannot read it ({error})") from None
    except (ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise ConfigError(f"trace {path}: damaged, not a limemu trace ({type(error).__name__}: "
                          f"{error})") from None
    check_trace(arrays, path)
    return arrays


def check_trace(arrays, path):
    """ConfigError unless the arrays hold a complete trace (names, shapes, levels)."""
    def fail(what):
        raise ConfigError(f"trace {path}: {what} (a damaged or foreign trace)")

    missing = [name for name in TRACE_ARRAYS if name not in arrays]
    if missing:
        fail(f"no array {missing[0]!r}")
    points = arrays["step"].shape[:1]
    if arrays["step"].ndim != 1 or not points[0]:
        fail(f"step has shape {arrays['step'].shape}: must be one row per trace point (>= 1)")
    for name in POINT_ARRAYS:
        if arrays[name].shape[:1] != points:
            fail(f"{name} has shape {arrays[name].shape}: must have {points[0]} rows")
    names = [str(n) for n in np.asarray(arrays["counter_names"]).ravel()]
    if arrays["counters"].ndim != 2 or arrays["counters"].shape[1] != len(names):
        fail(f"counters has shape {arrays['counters'].shape}: must have one column per "
             f"counter name ({len(names)})")
    absent = [n for n in TRACED_COUNTERS if n not in names]
    if absent:
        fail(f"counter_names lacks {absent[0]!r}")
    levels = list(np.round(np.asarray(arrays["tilt_levels"], dtype=np.float64).ravel(), 4))
    if levels != [round(q, 4) for q in TILT_QUANTILES] or \
            arrays["tilt_quantiles"].shape[1:] != (len(levels),):
        fail(f"tilt_levels = {levels}: must be {list(TILT_QUANTILES)}, one column each")
