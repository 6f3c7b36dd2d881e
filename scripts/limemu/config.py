"""Experiment files: a run described completely in TOML (``limemu run --config run.toml``).

A run file is a flat TOML table; every key is optional and means what the command-line option
of the same name means (``limemu run --help``)::

    workload = "maxcut"          # maxcut | lsq | twoparam
    cells = 32                   # Max-Cut: nodes of the seeded random graph
    # graph = "G14.txt"          # Max-Cut: a G-set file instead (relative to this file)
    bits = 1
    lanes = 4
    order = "colour"             # natural | colour
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

TOML reader: ``tomllib`` (Python >= 3.11); on Python 3.10 ``tomli`` when it is installed, else
a small built-in reader of the subset these files need (tables, arrays of tables, strings,
integers, floats, booleans, arrays and inline tables; comments). Anything outside that subset
is refused with a message naming the line, never misread.
"""

import hashlib
import json
import math
import re
from pathlib import Path

from python_model.errors import ConfigError

try:                                        # Python >= 3.11
    import tomllib as _toml
except ModuleNotFoundError:                 # pragma: no cover - Python 3.10
    try:
        import tomli as _toml
    except ModuleNotFoundError:
        _toml = None

#: key -> type of the value in a run file (``formats`` is a table of integers)
RUN_KEYS = {
    "workload": str, "graph": str, "cells": int, "bits": int, "lanes": int, "steps": int,
    "seed": int, "order": str, "init": str, "barrier": str, "gain": str, "backend": str,
    "temperature": float, "trace_every": int, "formats": dict,
}
_KIND_NAMES = {int: "an integer", str: "a string", float: "a number", dict: "a table"}
#: the Spec fields a run file may set in [formats] (as --set does)
FORMAT_KEYS = ("barrier_bits", "barrier_frac_bits", "gain_bits", "gain_frac_bits", "field_bits",
               "mantissa_bits")


# -- reading TOML -------------------------------------------------------------------------------
def read_toml(path):
    """The TOML document at ``path`` as a dict; ConfigError naming the file on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror})") from None
    return parse_toml(text, str(path))


def parse_toml(text, name="<toml>"):
    """Parse TOML text with tomllib / tomli, or the built-in subset reader without them."""
    if _toml is not None:
        try:
            return _toml.loads(text)
        except _toml.TOMLDecodeError as error:
            raise ConfigError(f"{name}: not valid TOML ({error})") from None
    return parse_toml_subset(text, name)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = re.compile(r"[+-]?(?:0x[0-9A-Fa-f_]+|0o[0-7_]+|0b[01_]+|inf|nan|"
                     r"[0-9][0-9_]*(?:\.[0-9_]+)?(?:[eE][+-]?[0-9_]+)?)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def parse_toml_subset(text, name="<toml>"):
    """A reader of the TOML subset limemu's run and sweep files use (Python 3.10 without tomli).

    Supported: ``[table]``, ``[a.b]``, ``[[array.of.tables]]``, ``key = value`` with bare,
    quoted or dotted keys; values: basic and literal strings on one line, integers (decimal,
    hex, octal, binary, with ``_``), floats (incl. ``inf``, ``nan``), booleans, arrays (over
    several lines too) and inline tables; ``#`` comments. Refused (ConfigError naming the
    line): multi-line strings, dates and times, redefined keys, anything malformed.
    """
    return _SubsetReader(text, name).parse()


class _SubsetReader:
    def __init__(self, text, name):
        self.s, self.name, self.i = text.replace("\r\n", "\n"), name, 0
        self.root, self.defined = {}, set()

    def fail(self, what):
        line = self.s.count("\n", 0, self.i) + 1
        raise ConfigError(f"{self.name}, line {line}: {what} (limemu's built-in TOML reader; "
                          "Python >= 3.11 or the tomli package reads all of TOML)")

    # low-level scanning
    def peek(self, k=1):
        return self.s[self.i:self.i + k]

    def skip_space(self, newlines=False):
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
            else:
                break

    def end_of_line(self):
        self.skip_space()
        if self.i < len(self.s) and self.s[self.i] != "\n":
            self.fail(f"unexpected {self.s[self.i:self.i + 10]!r} after the value")

    # grammar
    def parse(self):
        table = self.root
        while True:
            self.skip_space(newlines=True)
            if self.i >= len(self.s):
                return self.root
            if self.peek(2) == "[[":
                self.i += 2
                keys = self.key_path()
                if self.peek(2) != "]]":
                    self.fail("expected ']]'")
                self.i += 2
                parent = self.walk(keys[:-1])
                array = parent.setdefault(keys[-1], [])
                if not isinstance(array, list):
                    self.fail(f"{'.'.join(keys)} is already a value, not an array of tables")
                table = {}
                array.append(table)
            elif self.peek() == "[":
                self.i += 1
                keys = self.key_path()
                if self.peek() != "]":
                    self.fail("expected ']'")
                self.i += 1
                if tuple(keys) in self.defined:
                    self.fail(f"table [{'.'.join(keys)}] defined twice")
                self.defined.add(tuple(keys))
                table = self.walk(keys)
            else:
                keys = self.key_path()
                if self.peek() != "=":
                    self.fail("expected '=' after the key")
                self.i += 1
                self.skip_space()
                self.assign(table, keys, self.value())
            self.end_of_line()

    def walk(self, keys):
        table = self.root
        for key in keys:
            table = table.setdefault(key, {})
            if isinstance(table, list):
                table = table[-1]
            if not isinstance(table, dict):
                self.fail(f"{key} is already a value, not a table")
        return table

    def assign(self, table, keys, value):
        for key in keys[:-1]:
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                self.fail(f"{key} is already a value, not a table")
        if keys[-1] in table:
            self.fail(f"key {keys[-1]!r} defined twice")
        table[keys[-1]] = value

    def key_path(self):
        keys = []
        while True:
            self.skip_space()
            if self.peek() in ('"', "'"):
                keys.append(self.string())
            else:
                m = _BARE_KEY.match(self.s, self.i)
                if not m:
                    self.fail("expected a key")
                keys.append(m.group())
                self.i = m.end()
            self.skip_space()
            if self.peek() != ".":
                return keys
            self.i += 1

    def value(self):
        c = self.peek()
        if c in ('"', "'"):
            if self.peek(3) in ('"""', "'''"):
                self.fail("multi-line strings are not supported")
            return self.string()
        if c == "[":
            return self.array()
        if c == "{":
            return self.inline_table()
        for word, v in (("true", True), ("false", False)):
            if self.s.startswith(word, self.i):
                self.i += len(word)
                return v
        if _DATE.match(self.s, self.i):
            self.fail("dates and times are not supported")
        m = _NUMBER.match(self.s, self.i)
        if not m:
            self.fail(f"cannot read a value at {self.s[self.i:self.i + 10]!r}")
        self.i = m.end()
        return _number(m.group(), self.fail)

    def string(self):
        quote = self.s[self.i]
        self.i += 1
        out = []
        while True:
            if self.i >= len(self.s) or self.s[self.i] == "\n":
                self.fail("unterminated string")
            c = self.s[self.i]
            self.i += 1
            if c == quote:
                return "".join(out)
            if c == "\\" and quote == '"':
                e = self.s[self.i:self.i + 1]
                self.i += 1
                if e in _ESCAPES:
                    out.append(_ESCAPES[e])
                elif e in ("u", "U"):
                    width = 4 if e == "u" else 8
                    digits = self.s[self.i:self.i + width]
                    if not re.fullmatch(r"[0-9A-Fa-f]{%d}" % width, digits):
                        self.fail(f"bad escape \\{e}{digits}")
                    out.append(chr(int(digits, 16)))
                    self.i += width
                else:
                    self.fail(f"bad escape \\{e}")
            else:
                out.append(c)

    def array(self):
        self.i += 1
        items = []
        while True:
            self.skip_space(newlines=True)
            if self.peek() == "]":
                self.i += 1
                return items
            items.append(self.value())
            self.skip_space(newlines=True)
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != "]":
                self.fail("expected ',' or ']' in an array")

    def inline_table(self):
        self.i += 1
        table = {}
        self.skip_space()
        if self.peek() == "}":
            self.i += 1
            return table
        while True:
            keys = self.key_path()
            if self.peek() != "=":
                self.fail("expected '=' in an inline table")
            self.i += 1
            self.skip_space()
            self.assign(table, keys, self.value())
            self.skip_space()
            if self.peek() == "}":
                self.i += 1
                return table
            if self.peek() != ",":
                self.fail("expected ',' or '}' in an inline table")
            self.i += 1


def _number(text, fail):
    t = text.replace("_", "")
    sign = -1 if t.startswith("-") else 1
    body = t.lstrip("+-")
    if body in ("inf", "nan"):
        return sign * math.inf if body == "inf" else math.nan
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if body.startswith(prefix):
            if body != t:
                fail(f"a sign is not allowed on {text!r}")
            return int(body[2:], base)
    if re.fullmatch(r"[0-9]+", body):
        if len(body) > 1 and body[0] == "0":
            fail(f"leading zeros are not allowed in {text!r}")
        return sign * int(body)
    return float(t)


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
        except (OSError, ValueError) as error:
            raise ConfigError(f"--config = {str(path)!r}: not a readable JSON file "
                              f"({error})") from None
        if not isinstance(data, dict) or not isinstance(data.get("run_config"), dict):
            raise ConfigError(f"--config = {str(path)!r}: a result JSON needs 'run_config' "
                              "(written by limemu run from this version on)")
        table = dict(data["run_config"])
        recorded = (data.get("config") or {}).get("spec")
        digest = table.pop("graph_sha256", None)
        if digest and table.get("graph") and file_sha256(table["graph"]) != digest:
            raise ConfigError(f"--config = {str(path)!r}: the graph file {table['graph']} is "
                              "missing or has changed since the run (SHA-256 differs)")
    else:
        table = read_toml(path)
        recorded = None
    return check_run_table(table, str(path), base=path.parent), recorded


def check_run_table(table, where, base=None):
    """A run table (from TOML or JSON) checked and converted to command-line options."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: a run must be a table of options")
    options = {}
    for key, value in table.items():
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
        if key not in FORMAT_KEYS or not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where}: formats.{key} = {value!r}: expected an integer for one "
                              f"of {', '.join(FORMAT_KEYS)}")
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
    from .runner import WORKLOAD_DEFAULTS    # noqa: PLC0415 (cli imports both modules)

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
        "temperature": float(options.get("temperature") or 300.0),
        "trace_every": int(options.get("trace_every") or 0),
        "formats": {key: getattr(spec, key) for key in FORMAT_KEYS},
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
