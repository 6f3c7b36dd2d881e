"""Result JSONs read back (``report``, ``bound --measured``, a sweep's run files): checked.

A result written by ``limemu run --json`` may have been edited, truncated or replaced by
anything: ``check_result`` checks every field the readers use, so that a damaged file gives one
line naming the file, the field and what it must be, never a traceback deep in a plot.
"""

import json
import math
from pathlib import Path

from limemu.model.errors import ConfigError
from limemu.model.spec import Spec

#: energy figures the readers use (numbers; _jsonable writes inf and nan as strings)
ENERGY_KEYS = ("heat_net_u", "heat_abs_u", "barrier_work_u", "anneal_work_u", "heat_J",
               "temperature_K", "landauer_bound_u", "speed_bound_u", "net_rate")
TABLES = ("energy", "counters", "overflow", "metrics", "identities")
NUMBERS = ("loss", "seconds", "cell_evaluations_per_s")


def _number(value):
    """Whether a JSON value is a number (or a number _jsonable wrote as text, 'inf')."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_result(result, where):
    """ConfigError unless ``result`` (a parsed JSON) is a run result every reader can use."""
    def fail(field, value, what):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ConfigError(f"{where}: {field} = {shown}: {what} (not a limemu run result)")

    if not isinstance(result, dict):
        raise ConfigError(f"{where}: the JSON is a {type(result).__name__}: must be an object "
                          "(not a limemu run result)")
    for key in ("workload", "backend"):
        if not isinstance(result.get(key), str):
            fail(key, result.get(key), "must be a string")
    if not _integer(result.get("steps")) or result["steps"] < 1:
        fail("steps", result.get("steps"), "must be an integer >= 1")
    for key in TABLES:
        if not isinstance(result.get(key), dict):
            fail(key, result.get(key), "must be a table")
    for key in NUMBERS:
        if not _number(result.get(key)):
            fail(key, result.get(key), "must be a number")
    for name, value in result["counters"].items():
        if not _integer(value):
            fail(f"counters.{name}", value, "must be an integer")
    if "evaluations" not in result["counters"]:
        fail("counters.evaluations", None, "must be an integer")
    for key in ENERGY_KEYS:
        if not _number(result["energy"].get(key)):
            fail(f"energy.{key}", result["energy"].get(key), "must be a number")
    if not math.isfinite(float(result["energy"]["temperature_K"])):
        fail("energy.temperature_K", result["energy"]["temperature_K"], "must be finite")
    _check_config(result, fail)
    for key in ("run_config", "reference", "trace"):
        if result.get(key) is not None and not isinstance(result[key], dict):
            fail(key, result[key], "must be a table")
    trace = result.get("trace")
    if trace and not isinstance(trace.get("file"), str):
        fail("trace.file", trace.get("file"), "must be a file name")
    return result


def _check_config(result, fail):
    config = result.get("config")
    if not isinstance(config, dict):
        fail("config", config, "must be a table")
    if not isinstance(config.get("spec"), dict):
        fail("config.spec", config.get("spec"), "must be a table")
    try:
        Spec.from_dict(config["spec"])
    except ConfigError as error:
        fail("config.spec", "...", f"not a valid spec ({error})")
    except (TypeError, ValueError, AttributeError) as error:
        fail("config.spec", "...", f"not a valid spec ({type(error).__name__}: {error})")


def load_result(path, option=None):
    """The run result at ``path``, checked (``option`` names it in errors: '--measured')."""
    where = f"{option} = {str(path)!r}" if option else str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{where}: cannot read it ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{where}: not UTF-8 text (byte {error.object[error.start]:#04x} at "
                          f"offset {error.start}): not a limemu result JSON") from None
    try:
        result = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{where}: not valid JSON ({error})") from None
    return check_result(result, where)
