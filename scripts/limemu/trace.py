"""Traces: the state of a run every K steps (``limemu run --trace-every K``).

The run is driven through a session in segments of K steps (the golden model runs in
segments bit-exactly: a traced run ends in the same state, with the same counters, as an
untraced one); recorder.py says what each trace point holds. The arrays go to
``<result>.trace.npz`` (compressed NumPy, no pickles) next to the result JSON, which
references it under ``trace``.
"""

import io
import os
import uuid
from pathlib import Path

import numpy as np

from limemu.model.errors import ConfigError

from . import api
from .config import resolved_run_config
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
