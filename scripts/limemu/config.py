"""Experiment files: a run described completely in TOML (``limemu run --config run.toml``).

A run file is a flat TOML table; every key is optional and means what the command-line option
of the same name means (``limemu run --help``)::

    workload = "maxcut"          # maxcut | lsq | twoparam
    cells = 32                   # Max-Cut: nodes of the seeded random graph
    # graph = "G14.txt"          # Max-Cut: a G-set file instead (relative to this file)
    bits = 1
    lanes = 4
    order = "colour"             # natural | colour | banked
    init = "random"              # random | zero | low | high
    steps = 2000
    seed = 3
    barrier = "constant:4"       # schedules as on the command line (table:FILE relative to
    gain = "exp:0.1,6"           # this file)
    backend = "model"
    temperature = 300.0          # K, for the joules of the energy report
    trace_every = 20             # record a trace every 20 steps (see trace.py)

    [formats]                    # fixed-point formats, as --set KEY=VALUE
    barrier_frac_bits = 8

Options given on the command line override the file. The result JSON embeds ``run_config``,
the same table with every default filled in (and absolute paths), so that
``limemu run --config RESULT.json`` repeats a run exactly: a result JSON is accepted wherever a
run file is.

TOML reader: ``tomllib`` (Python >= 3.11), ``tomli`` on Python 3.10 (a dependency there).
"""

import hashlib
import json
from pathlib import Path

from limemu.model.errors import ConfigError
from limemu.model.spec import FORMAT_FIELDS


try:                                        # Python >= 3.11
    import tomllib as _toml
except ModuleNotFoundError:                 # pragma: no cover - Python 3.10
    import tomli as _toml

#: key -> type of the value in a run file (``formats`` is a table of integers)
RUN_KEYS = {
    "workload": str, "graph": str, "cells": int, "bits": int, "lanes": int, "steps": int,
    "seed": int, "order": str, "init": str, "barrier": str, "gain": str, "backend": str,
    "temperature": float, "trace_every": int, "formats": dict, "tabulate": int, "core": str,
}
_KIND_NAMES = {int: "an integer", str: "a string", float: "a number", dict: "a table"}
#: run_config's record of the schedules as they ran (a long ramp runs as a table,
#: schedule_options.py); informative, not an option: a repeat recomputes it
AS_RUN = "schedules_as_run"


# -- reading TOML -------------------------------------------------------------------------------
def read_toml(path):
    """The TOML document at ``path`` as a dict; ConfigError naming the file on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at "
                          f"offset {error.start}); a TOML file is text") from None
    return parse_toml(text, str(path))


def parse_toml(text, name="<toml>"):
    """Parse TOML text; ConfigError naming the document when it is not valid TOML."""
    try:
        return _toml.loads(text)
    except _toml.TOMLDecodeError as error:
        raise ConfigError(f"{name}: not valid TOML ({error})") from None


# -- run files ----------------------------------------------------------------------------------
def load_run_config(path):
    """(options, recorded_spec) from a run file (TOML) or a result JSON (its ``run_config``).

    ``options`` are checked (names, types) and use the command-line names (``formats`` becomes
    ``set``: a list of 'KEY=VALUE'); relative paths are made relative to the file's folder.
    ``recorded_spec`` is the spec dict of a result JSON (to compare with the repeat), else None.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:      # UnicodeDecodeError is a ValueError
            raise ConfigError(f"--config = {str(path)!r}: not a readable JSON file "
                              f"({error})") from None
        if not isinstance(data, dict) or not isinstance(data.get("run_config"), dict):
            raise ConfigError(f"--config = {str(path)!r}: a result JSON needs 'run_config' "
                              "(written by limemu run from this version on)")
        table = dict(data["run_config"])
        recorded = _recorded_spec(data, path)
        digest = table.pop("graph_sha256", None)
        if digest and isinstance(table.get("graph"), str) and \
                file_sha256(table["graph"]) != digest:
            raise ConfigError(f"--config = {str(path)!r}: the graph file {table['graph']} is "
                              "missing or has changed since the run (SHA-256 differs)")
    else:
        table = read_toml(path)
        recorded = None
    return check_run_table(table, str(path), base=path.parent), recorded


def _recorded_spec(data, path):
    """The spec dict a result JSON records (config.spec), or None when it has none."""
    config = data.get("config")
    if config is None:
        return None
    spec = config.get("spec") if isinstance(config, dict) else None
    if not isinstance(spec, dict):
        raise ConfigError(f"--config = {str(path)!r}: config = {config!r:.60}: must be a table "
                          "with the run's spec (a limemu result's)")
    return spec


def check_run_table(table, where, base=None):
    """A run table (from TOML or JSON) checked and converted to command-line options."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: a run must be a table of options")
    options = {}
    for key, value in table.items():
        if key == AS_RUN:
            continue
        if key not in RUN_KEYS:
            raise ConfigError(f"{where}: unknown option {key!r}; known: "
                              f"{', '.join(RUN_KEYS)}")
        if value is None:
            continue
        kind = RUN_KEYS[key]
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, kind) and not isinstance(value, bool)
        if not ok:
            raise ConfigError(f"{where}: {key} = {value!r}: must be {_KIND_NAMES[kind]}")
        options[key] = value
    formats = options.pop("formats", {})
    settings = []
    for key, value in formats.items():
        if key not in FORMAT_FIELDS or not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where}: formats.{key} = {value!r}: expected an integer for one "
                              f"of {', '.join(FORMAT_FIELDS)}")
        settings.append(f"{key}={value}")
    if settings:
        options["set"] = settings
    if base is not None:
        options = absolute_paths(options, base)
    return options


def absolute_paths(options, base):
    """Graph and table-schedule paths of ``options`` made absolute, relative to ``base``."""
    options = dict(options)
    base = Path(base)
    if options.get("graph"):
        options["graph"] = str((base / options["graph"]).resolve())
    for key in ("barrier", "gain"):
        text = options.get(key)
        if isinstance(text, str) and text.strip().lower().startswith("table:"):
            kind, _, file = text.partition(":")
            options[key] = f"{kind}:{(base / file.strip()).resolve()}"
    return options


def resolved_run_config(options, spec, steps):
    """The run table with every default filled in (embedded in the result JSON as
    ``run_config``): enough to repeat the run with ``limemu run --config RESULT.json``."""
    from .runner import WORKLOAD_DEFAULTS  # noqa: PLC0415 (cli imports both modules)

    name = options.get("workload") or "maxcut"
    defaults = WORKLOAD_DEFAULTS.get(name, {})

    def pick(key):
        value = options.get(key)
        return defaults.get(key) if value is None else value

    out = {
        "workload": name,
        "graph": str(Path(options["graph"]).resolve()) if options.get("graph") else None,
        "cells": spec.cells, "bits": spec.weight_bits, "lanes": spec.lanes, "steps": int(steps),
        "seed": spec.seed, "order": spec.order, "init": spec.init,
        "barrier": pick("barrier"), "gain": pick("gain"),
        "backend": options.get("backend") or "model",
        "core": options.get("core"),
        "temperature": float(options.get("temperature") or 300.0),
        "trace_every": int(options.get("trace_every") or 0),
        "tabulate": int(options["tabulate"]) if options.get("tabulate") else None,
        "formats": {key: getattr(spec, key) for key in FORMAT_FIELDS},
        AS_RUN: {"barrier": spec.barrier.describe(spec.barrier_frac_bits, "u"),
                 "gain": spec.gain.describe(spec.gain_frac_bits, "u/loss")},
    }
    if out["graph"]:
        out["graph_sha256"] = file_sha256(out["graph"])
    return {key: value for key, value in out.items() if value is not None}


def file_sha256(path):
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def spec_differences(recorded, spec):
    """Names of the spec fields where a repeat differs from the recorded run."""
    if not recorded:
        return []
    now = spec.to_dict()
    return sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))


def config_hash(options):
    """A short stable hash of a run's options (sorted JSON): the key of a sweep's result files."""
    text = json.dumps(options, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
