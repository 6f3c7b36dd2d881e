"""Schedules from the command line, in physical units.

    constant:V            V all along
    linear:A,B            from A at step 0 to B at the last step
    log:A,S,TAU           A + S*log2(1 + k/TAU)   (1/log cooling)
    exp:A,B               geometric from A at step 0 to B at the last step
    table:FILE            one value per line (>= 256 lines), spread evenly over the run

Barrier values are in u (= kT ln 2), gain values in u per loss unit. They are rounded to the
fixed-point format of the spec (barrier_frac_bits, gain_frac_bits).

The run follows the curve asked for (through its parameters rounded to the format) within
`TOLERANCE_SPAN` of its span plus `TOLERANCE_STEPS` steps of the format, at every step. The
schedule units' ramps have 16 fraction bits per step, so over a long run a linear or
exponential rate can round far from the one asked (exp:0.1,6 over 300 000 steps would end at
2.2 u): such a curve is run as a table instead (the fewest entries, from `MIN_TABLE_ENTRIES`
up, that follow it within the tolerance), and refused when no table does.
"""

import math
from pathlib import Path

import numpy as np

from limemu.model.errors import ConfigError
from limemu.model.schedules import (
    MAX_STEPS_PER_ENTRY,
    MAX_TABLE_ENTRIES,
    MIN_TABLE_ENTRIES,
    RATE_FRAC_BITS,
    Schedule,
)

MAX_TABLE_LINE_BYTES = 64       # a table file's size limit: this per entry
TOLERANCE_SPAN = 0.01           # a run's schedule may stray from the curve by 1 % of its span
TOLERANCE_STEPS = 2             # plus 2 steps of the format (rounding to it, the ramp's floor)
TOLERANCE_SAMPLES = 4097        # steps at which that is checked, spread over the run

KIND_ALIASES = {"constant": "constant", "const": "constant", "linear": "linear",
                "log": "logarithmic", "logarithmic": "logarithmic", "exp": "exponential",
                "exponential": "exponential", "table": "table"}


def parse_schedule(text, option, frac_bits, steps, bits):
    """Schedule for option `option` (e.g. '--barrier') from text like 'linear:2,12', in a
    format of `bits` bits with `frac_bits` fraction bits, over a run of `steps` steps."""
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
        rate = round((raw[1] - raw[0]) * 2**RATE_FRAC_BITS / last)    # the rounded ends
        lo, hi = sorted(raw)
        schedule = Schedule.linear(raw[0], rate, lo=lo, hi=hi)

        def curve(k):
            return raw[0] + (raw[1] - raw[0]) * k / last
    elif kind == "logarithmic":
        if args[2] < 1:
            raise ConfigError(f"{option} = {text!r}: TAU must be >= 1 step")
        schedule = Schedule.logarithmic(raw[0], round(args[1] * scale), round(args[2]))

        def curve(k):
            return raw[0] + raw[1] * np.log2(1 + k / round(args[2]))
    else:
        if raw[0] <= 0 or raw[1] <= 0:
            raise ConfigError(f"{option} = {text!r}: an exponential schedule needs values "
                              f"> 0 (at least {1 / scale:g} in this format)")
        rate = round(math.log2(raw[1] / raw[0]) * 2**RATE_FRAC_BITS / last)  # the rounded ends
        lo, hi = sorted(raw)
        schedule = Schedule.exponential(raw[0], rate, lo=lo, hi=hi)

        def curve(k):
            return raw[0] * (raw[1] / raw[0]) ** (k / last)
    return _faithful(schedule, curve, f"{option} = {text!r}", frac_bits, bits, steps)


def _faithful(schedule, curve, where, frac_bits, bits, steps):
    """`schedule` if it follows `curve` (raw units of the format, a function of the step) within
    the tolerance over the run; else the smallest table that does; else ConfigError."""
    top = 2**bits - 1
    k = np.unique(np.linspace(0, steps - 1, TOLERANCE_SAMPLES).round().astype(np.int64))
    wanted = np.clip(curve(k.astype(np.float64)), 0, top)
    limit = TOLERANCE_STEPS + TOLERANCE_SPAN * (wanted.max() - wanted.min())

    def worst(candidate):
        """(largest deviation in raw units, the step where it is)."""
        got = candidate.validated(where, bits).values_at(k)
        error = np.abs(got - wanted)
        return float(error.max()), int(k[error.argmax()])

    error, at = worst(schedule)
    if error <= limit:
        return schedule
    entries = MIN_TABLE_ENTRIES
    while entries <= MAX_TABLE_ENTRIES:
        per_entry = -(-steps // entries)
        if per_entry > MAX_STEPS_PER_ENTRY:
            entries *= 2
            continue
        starts = np.arange(entries, dtype=np.float64) * per_entry
        values = np.clip(np.round(curve(starts)), 0, top).astype(np.int64)
        table = Schedule.table(values.tolist(), steps_per_entry=per_entry)
        if worst(table)[0] <= limit:
            return table
        entries *= 2
    step = 2.0**-frac_bits
    raise ConfigError(f"{where}: over {steps} steps the schedule units cannot follow this curve "
                      f"within {TOLERANCE_SPAN:.0%} of its span + {TOLERANCE_STEPS * step:g} "
                      f"(off by {error * step:g} at step {at}; no table of at most "
                      f"{MAX_TABLE_ENTRIES} entries of at most 2**32 steps follows it either); "
                      "give fewer steps or a gentler curve")


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
