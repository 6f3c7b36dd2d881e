"""Sweeps on Dask (``limemu sweep SWEEP.toml``): many runs, one table, one report.

A sweep file has four tables, all optional but ``base``::

    [base]                       # a run, as in a run file (config.py); strings may hold
    workload = "maxcut"          # {placeholders} filled from grid or runs entries
    cells = 24
    steps = 1500
    lanes = 4
    order = "colour"
    barrier = "constant:{e0}"
    gain = "exp:0.1,{eta}"
    trace_every = 25             # default: steps // 100

    [grid]                       # every combination of these lists
    e0 = [3, 4]                  # not a run option: fills {e0}
    eta = [3.0, 6.0]
    seed = [1, 2, 3]             # a run option: set directly

    [[runs]]                     # optional entries, each merged over base and crossed with
    workload = "maxcut"          # the grid (e.g. one per workload)

    [target]                     # the precision of time/energy-to-solution (solution.py)
    cut_fraction = 1.0           # Max-Cut: of the reference cut (reference_cut = ... to give one)
    error = 1.0                  # lsq / twoparam: max |W - W_opt| in weight steps

Each run's options are hashed (config.config_hash of the sorted JSON); its result goes to
``OUT/runs/<hash>.json`` with its trace ``<hash>.trace.npz``, each written atomically (a
temporary file, then a rename) by the client as soon as the run is done, the JSON last. A sweep
started again skips every run whose JSON exists, so an interrupted sweep resumes without redoing
finished runs and without losing any. Runs that raise are listed (and rerun next time).

Then ``OUT/results.parquet`` (or ``.csv``): one row per run with its parameters, final figures,
counters, and time/energy-to-solution; and ``OUT/report.html`` with the speed-energy trade-off.

Dask: a ``LocalCluster`` of ``workers`` (default 2) single-threaded worker processes, or threads
with ``processes=False``; or an existing scheduler (``--scheduler tcp://host:8786``), whose
workers need limemu installed and the same paths (graph and table files) readable. The client
writes every file, so workers need no shared file system.
"""

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np

from limemu.model.errors import ConfigError

from .config import RUN_KEYS, check_run_table, config_hash, read_toml
from .progress import bar, note
from .files import check_output_folder
from .results import load_result
from .runner import WORKLOAD_DEFAULTS, build_run
from .solution import time_and_energy_to_solution
from .trace import load_trace, run_experiment, trace_bytes, trace_summary, write_atomic

SWEEP_TABLES = ("base", "grid", "runs", "target")
TARGET_KEYS = ("cut_fraction", "reference_cut", "error")
TABLE_FORMATS = ("parquet", "csv")
SCHEDULER_TIMEOUT = "30s"         # connecting to --scheduler
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


# -- the plan -----------------------------------------------------------------------------------
def load_sweep(path):
    """The sweep file as a plan: {'name', 'target', 'runs': [{'hash', 'options', 'params'}],
    'varying': [keys whose values differ between runs, seed excepted]}."""
    path = Path(path)
    doc = read_toml(path)
    return plan_sweep(doc, str(path), path.parent, name=path.stem)


def plan_sweep(doc, where, base_dir, name="sweep"):
    for key in doc:
        if key not in SWEEP_TABLES:
            raise ConfigError(f"{where}: unknown table {key!r}; a sweep has {SWEEP_TABLES}")
    base = doc.get("base", {})
    grid = doc.get("grid", {})
    entries = doc.get("runs", [{}]) or [{}]
    target = doc.get("target", {})
    if not isinstance(base, dict) or not isinstance(grid, dict) or not isinstance(target, dict):
        raise ConfigError(f"{where}: base, grid and target must be tables")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{where}: runs must be an array of tables ([[runs]])")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: grid.{key} = {values!r}: must be a non-empty list")
    check_target(target, where)
    runs, seen = [], set()
    for number, entry in enumerate(entries, 1):
        clash = set(entry) & set(grid)
        if clash:
            raise ConfigError(f"{where}: runs entry {number} and grid both set {sorted(clash)}")
        for combo in itertools.product(*grid.values()):
            params = {**entry, **dict(zip(grid, combo))}
            options = _expand(base, params, f"{where}, runs entry {number}", base_dir)
            key = config_hash(options)
            if key in seen:
                continue
            seen.add(key)
            runs.append({"hash": key, "options": options, "params": params})
    labels = sorted({k for run in runs for k in run["params"]})
    varying = [k for k in labels if k != "seed" and
               len({json.dumps(run["params"].get(k), sort_keys=True) for run in runs}) > 1]
    return {"name": name, "target": target, "runs": runs, "varying": varying}


def check_target(target, where):
    """ConfigError unless every target value is a number (error: or a table of them, per
    workload): cut_fraction in (0, 1], reference_cut > 0, error >= 0."""
    limits = {"cut_fraction": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
              "reference_cut": (lambda v: v > 0, "a number > 0"),
              "error": (lambda v: v >= 0, "a number >= 0 (weight steps)")}
    for key, value in target.items():
        if key not in TARGET_KEYS:
            raise ConfigError(f"{where}: unknown target.{key}; known: {TARGET_KEYS}")
        ok, what = limits[key]
        values = value.items() if key == "error" and isinstance(value, dict) else [(None, value)]
        for workload, v in values:
            name = f"target.{key}" + (f".{workload}" if workload else "")
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and
                    math.isfinite(v) and ok(v)):
                raise ConfigError(f"{where}: {name} = {v!r}: must be {what}")


def _expand(base, params, where, base_dir):
    """One run's options: base, then the run options among params, placeholders filled."""
    table = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    free = {}
    for key, value in params.items():
        if key in RUN_KEYS:
            table[key] = value
        elif key.startswith("formats."):
            table.setdefault("formats", {})[key.split(".", 1)[1]] = value
        else:
            free[key] = value
    used = set()

    def fill(text):
        def one(match):
            name = match.group(1)
            if name not in free:
                raise ConfigError(f"{where}: placeholder {{{name}}} in {text!r} has no value "
                                  "in grid or runs")
            used.add(name)
            return str(free[name])
        return _PLACEHOLDER.sub(one, text)

    table = {k: fill(v) if isinstance(v, str) else v for k, v in table.items()}
    unused = set(free) - used
    if unused:
        raise ConfigError(f"{where}: {sorted(unused)} are neither run options "
                          f"({', '.join(RUN_KEYS)}) nor used as {{placeholders}}")
    options = check_run_table(table, where, base=base_dir)
    if not options.get("trace_every"):
        workload = options.get("workload") or "maxcut"
        steps = options.get("steps") or WORKLOAD_DEFAULTS.get(workload, {}).get("steps", 100)
        options["trace_every"] = max(1, int(steps) // 100)
    return options


def check_runs(runs):
    """Build every run's workload and spec here, before any worker starts: a bad value is
    refused naming the run. One build per set of options that differ only in the seed; the
    other seeds are checked on its spec."""
    specs = {}
    for run in runs:
        options = run["options"]
        key = config_hash({k: v for k, v in options.items() if k != "seed"})
        try:
            if key not in specs:
                specs[key] = build_run(options)[1]
            elif options.get("seed") is not None:
                specs[key].replace(seed=options["seed"])
        except ConfigError as error:
            label = ", ".join(f"{k}={v}" for k, v in run["params"].items()) or "base"
            raise ConfigError(f"sweep run {run['hash']} ({label}): {error}") from None


# -- one run (on a worker) ----------------------------------------------------------------------
def run_one(options, key):
    """Run one sweep entry (on a Dask worker): the result dict (with its ``trace`` entry) and
    the trace file's bytes. Nothing is written here: the client writes the files."""
    workload, spec, steps, result, arrays = run_experiment(options, progress=False)
    payload = None
    if arrays is not None:
        payload = trace_bytes(arrays)
        result["trace"] = trace_summary(arrays, f"{key}.trace.npz", options["trace_every"],
                                        workload.name)
    return {"result": result, "trace": payload}


def finished(run_dir, key):
    """Whether the run ``key`` has a complete result in ``run_dir`` (its JSON, written last,
    and its trace). A missing, damaged or foreign file is not: the run is done again."""
    path = Path(run_dir) / f"{key}.json"
    try:
        result = load_result(path)
        sweep = result.get("sweep")
        if not isinstance(sweep, dict) or sweep.get("hash") != key or not isinstance(
                result.get("run_config"), dict):
            return False
        load_trace(result, path)
    except ConfigError:
        return False
    return True


def save_run(run_dir, key, params, payload):
    """Write one run's files atomically: the trace first, the JSON (the mark of a finished run)
    last."""
    result = payload["result"]
    result["sweep"] = {"hash": key, "params": params}
    if payload["trace"] is not None:
        write_atomic(Path(run_dir) / f"{key}.trace.npz", payload["trace"])
    write_atomic(Path(run_dir) / f"{key}.json", json.dumps(result, indent=1))


# -- the sweep ----------------------------------------------------------------------------------
def run_sweep(path, out=None, scheduler=None, workers=2, processes=True, table_format=None,
              progress=True):
    """Run (or resume) the sweep file ``path``. Returns a dict: out, table, report, done,
    skipped, failed [(hash, error)]."""
    plan = load_sweep(path)
    fmt = table_format or "parquet"
    if fmt not in TABLE_FORMATS:
        raise ConfigError(f"--format = {fmt!r}: must be one of {TABLE_FORMATS}")
    if int(workers) < 1:
        raise ConfigError(f"--workers = {workers}: must be >= 1")
    check_runs(plan["runs"])                 # before anything is written or started
    out = Path(out) if out else Path("runs") / plan["name"]
    check_output_folder(out, "--out")
    run_dir = check_output_folder(out / "runs", "--out (its runs folder)")
    manifest = {"name": plan["name"], "source": str(Path(path).resolve()),
                "target": plan["target"], "varying": plan["varying"],
                "runs": [{"hash": r["hash"], "params": r["params"]} for r in plan["runs"]]}
    write_atomic(out / "sweep.json", json.dumps(manifest, indent=1, default=str))
    for stale in run_dir.glob(".*.tmp"):          # left by an interrupted write
        stale.unlink(missing_ok=True)
    todo = [r for r in plan["runs"] if not finished(run_dir, r["hash"])]
    skipped = len(plan["runs"]) - len(todo)
    say = note if progress else _silent
    say(f"sweep {plan['name']}: {len(plan['runs'])} runs, {skipped} finished before (skipped), "
        f"{len(todo)} to run; results in {out}")
    failed = []
    if todo:
        failed = _execute(todo, run_dir, scheduler, int(workers), processes, say)
    table = build_table(plan, run_dir, failed)
    table_path = out / f"results.{fmt}"
    write_table(table, table_path, fmt)
    from .report import write_sweep_report  # noqa: PLC0415 (matplotlib only when needed)
    report = write_sweep_report(table, out, {**manifest, "table": table_path.name,
                                             "failed": failed})
    say(f"sweep {plan['name']}: table {table_path}, report {report}")
    return {"out": out, "table": table_path, "report": report, "done": len(todo) - len(failed),
            "skipped": skipped, "failed": failed, "frame": table}


def _execute(todo, run_dir, scheduler, workers, processes, say):
    from dask.distributed import Client, LocalCluster, as_completed  # noqa: PLC0415

    failed = []
    if scheduler:
        cluster = None
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError, ValueError, TypeError) as error:
            raise ConfigError(f"--scheduler = {scheduler!r}: cannot connect within "
                              f"{SCHEDULER_TIMEOUT} ({error})") from None
        where = f"scheduler {scheduler}"
    else:
        # no dashboard, and the scheduler's HTTP server on a free port: two sweeps at once
        # must not compete for port 8787
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                               dashboard_address=None,
                               scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"})
        client = Client(cluster)
        where = (f"local cluster of {workers} worker {'processes' if processes else 'threads'}")
    try:
        dashboard = getattr(client, "dashboard_link", None) if scheduler else None
        say(f"  running on {where}" + (f"; Dask's progress: {dashboard}" if dashboard else ""))
        futures = {client.submit(run_one, r["options"], r["hash"], key=f"limemu-{r['hash']}",
                                 pure=False): r for r in todo}
        with bar(total=len(todo), desc="  sweep", unit="run", enabled=say is not _silent) \
                as meter:
            for future in as_completed(futures):
                _collect(future, futures[future], run_dir, failed, say)
                future.release()
                meter.update(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return failed


def _collect(future, run, run_dir, failed, say):
    """Save a finished run's files, or note its failure (it is rerun next time)."""
    try:
        payload = future.result()
    except Exception as error:                       # noqa: BLE001 (reported, rerun)
        failed.append((run["hash"], f"{type(error).__name__}: {error}"))
        label = ", ".join(f"{k}={v}" for k, v in run["params"].items())
        say(f"  {run['hash']} FAILED ({label}): {error}")
    else:
        save_run(run_dir, run["hash"], run["params"], payload)


def _silent(text):
    pass


# -- the table ----------------------------------------------------------------------------------
def build_table(plan, run_dir, failed=()):
    """One row per planned run (pandas DataFrame); see the module docstring."""
    import pandas as pd  # noqa: PLC0415

    errors = dict(failed)
    loaded = []
    for run in plan["runs"]:
        path = Path(run_dir) / f"{run['hash']}.json"
        if finished(run_dir, run["hash"]):
            result = json.loads(path.read_text(encoding="utf-8"))
            loaded.append((run, result, load_trace(result, path)))
        else:
            loaded.append((run, None, None))
    best = {}                      # best cut seen per Max-Cut graph (for runs without reference)
    for run, result, trace in loaded:
        if result is not None and trace is not None and result["workload"] == "maxcut":
            graph = _graph_key(result)
            best[graph] = max(best.get(graph, -np.inf), float(np.max(trace["precision"])))
    rows = []
    for run, result, trace in loaded:
        row = {"run": run["hash"], "group": _group(run["params"], plan["varying"])}
        row.update({f"param_{k}": v for k, v in run["params"].items()})
        opts = run["options"]
        if result is None:
            row.update(status="failed" if run["hash"] in errors else "missing",
                       error=errors.get(run["hash"]), workload=opts.get("workload") or "maxcut",
                       reached=False)
            rows.append(row)
            continue
        rc, spec, e = result["run_config"], result["config"]["spec"], result["energy"]
        row.update(status="done", error=None)
        for key in ("workload", "cells", "bits", "lanes", "order", "init", "steps", "seed",
                    "barrier", "gain", "backend", "trace_every"):
            row[key] = rc.get(key)
        row.update(loss=result["loss"], cut=result.get("cut"), seconds=result["seconds"],
                   heat_net_u=e["heat_net_u"], heat_abs_u=e["heat_abs_u"],
                   barrier_work_u=e["barrier_work_u"], anneal_work_u=e["anneal_work_u"],
                   heat_J=e["heat_J"], landauer_bound_u=e["landauer_bound_u"],
                   energy_lsb_u=2.0 ** -spec["barrier_frac_bits"])
        row.update({f"counter_{k}": v for k, v in result["counters"].items()})
        if trace is not None:
            s = time_and_energy_to_solution(result, trace, plan["target"],
                                            best_seen=best.get(_graph_key(result)))
            row.update({k: v for k, v in s.items() if k not in ("landauer_bound_u",)})
        row["json"] = f"runs/{run['hash']}.json"
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in table.columns:       # parameters of mixed types (3 and "a") as text
        kinds = {type(v) for v in table[column] if v is not None and v == v}
        if len(kinds) > 1 and not kinds <= {int, float, np.int64, np.float64, bool}:
            table[column] = table[column].map(lambda v: None if v is None else str(v))
    return table


def _graph_key(result):
    return json.dumps(result["config"]["workload"], sort_keys=True, default=str)


def _group(params, varying):
    parts = [f"{k}={params[k]}" for k in varying if k in params]
    return ", ".join(parts) if parts else "all"


def write_table(table, path, fmt):
    """The table as Parquet (pyarrow) or CSV, written atomically."""
    import io  # noqa: PLC0415

    if fmt == "csv":
        write_atomic(path, table.to_csv(index=False))
    else:
        buffer = io.BytesIO()
        table.to_parquet(buffer, engine="pyarrow", index=False)
        write_atomic(path, buffer.getvalue())
