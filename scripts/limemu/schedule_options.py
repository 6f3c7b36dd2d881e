"""Schedules from the command line, in physical units.

    constant:V            V all along
    linear:A,B            from A at step 0 to B at the last step
    log:A,S,TAU           A + S*log2(1 + k/TAU)   (1/log cooling)
    exp:A,B               geometric from A at step 0 to B at the last step
    table:FILE            one value per line (>= 256 lines), spread evenly over the run

Barrier values are in u (= kT ln 2), gain values in u per loss unit. They are rounded to the
fixed-point format of the spec (barrier_frac_bits, gain_frac_bits).
"""

import math
from pathlib import Path

from limemu.model.errors import ConfigError
from limemu.model.schedules import (
    MAX_TABLE_ENTRIES,
    MIN_TABLE_ENTRIES,
    RATE_FRAC_BITS,
    Schedule,
)

MAX_TABLE_LINE_BYTES = 64       # a table file's size limit: this per entry

KIND_ALIASES = {"constant": "constant", "const": "constant", "linear": "linear",
                "log": "logarithmic", "logarithmic": "logarithmic", "exp": "exponential",
                "exponential": "exponential", "table": "table"}


def parse_schedule(text, option, frac_bits, steps):
    """Schedule for option `option` (e.g. '--barrier') from text like 'linear:2,12'."""
    kind_text, _, args_text = text.partition(":")
    kind = KIND_ALIASES.get(kind_text.strip().lower())
    if kind is None:
        raise ConfigError(f"{option} = {text!r}: kind must be one of "
                          f"{sorted(set(KIND_ALIASES))}")
    scale = 1 << frac_bits
    last = max(1, steps - 1)
    if kind == "table":
        return _table(Path(args_text.strip()), option, scale, steps)
    try:
        args = [float(a) for a in args_text.split(",")] if args_text.strip() else []
    except ValueError:
        raise ConfigError(f"{option} = {text!r}: parameters must be numbers") from None
    expected = {"constant": 1, "linear": 2, "logarithmic": 3, "exponential": 2}[kind]
    if len(args) != expected:
        raise ConfigError(f"{option} = {text!r}: '{kind_text}' takes {expected} comma-separated "
                          f"numbers, got {len(args)}")
    if any(not math.isfinite(a) for a in args):
        raise ConfigError(f"{option} = {text!r}: parameters must be finite")
    if any(a < 0 for a in args[:1]) or (kind in ("linear", "exponential") and args[1] < 0):
        raise ConfigError(f"{option} = {text!r}: values must be >= 0")
    raw = [round(a * scale) for a in args]
    values = args[:2] if kind == "logarithmic" else args          # TAU is in steps
    lost = [a for a, r in zip(values, raw) if a > 0 and r == 0]
    if lost:
        raise ConfigError(f"{option} = {text!r}: {lost[0]:g} rounds to 0 at the format's "
                          f"resolution {1 / scale:g} (2**-{frac_bits}); give 0 or more than "
                          f"{0.5 / scale:g}, or more fraction bits (--set)")
    if kind == "constant":
        return Schedule.constant(raw[0])
    if kind == "linear":
        rate = round((args[1] - args[0]) * scale * 2**RATE_FRAC_BITS / last)
        lo, hi = sorted(raw)
        return Schedule.linear(raw[0], rate, lo=lo, hi=hi)
    if kind == "logarithmic":
        if args[2] < 1:
            raise ConfigError(f"{option} = {text!r}: TAU must be >= 1 step")
        return Schedule.logarithmic(raw[0], round(args[1] * scale), round(args[2]))
    if raw[0] <= 0 or raw[1] <= 0:
        raise ConfigError(f"{option} = {text!r}: an exponential schedule needs values "
                          f"> 0 (at least {1 / scale:g} in this format)")
    rate = round(math.log2(args[1] / args[0]) * 2**RATE_FRAC_BITS / last)
    lo, hi = sorted(raw)
    return Schedule.exponential(raw[0], rate, lo=lo, hi=hi)


def _table(path, option, scale, steps):
    limit = MAX_TABLE_ENTRIES * MAX_TABLE_LINE_BYTES
    try:
        size = path.stat().st_size
        if size > limit:
            raise ConfigError(f"{option} = table:{path}: {size} bytes: a table holds at most "
                              f"{MAX_TABLE_ENTRIES} entries (at most {limit} bytes)")
        lines = path.read_bytes().decode("utf-8").split()
    except OSError as error:
        raise ConfigError(f"{option} = table:{path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{option} = table:{path}: not text (byte "
                          f"{error.object[error.start]:#04x} at offset {error.start}); a table "
                          "has one number per line") from None
    if not MIN_TABLE_ENTRIES <= len(lines) <= MAX_TABLE_ENTRIES:
        raise ConfigError(f"{option} = table:{path}: {len(lines)} entries: a table needs "
                          f"{MIN_TABLE_ENTRIES} to {MAX_TABLE_ENTRIES}")
    values = []
    for number, line in enumerate(lines, 1):
        try:
            values.append(round(float(line) * scale))
        except ValueError:
            raise ConfigError(f"{option} = table:{path}: entry {number} = {line!r} is not a "
                              "number") from None
    return Schedule.table(values, steps_per_entry=max(1, -(-steps // max(1, len(values)))))
