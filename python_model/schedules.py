"""Schedules of the barrier E0(k) and the gain eta(k), in exact integer arithmetic.

A schedule maps the step number k to a raw fixed-point value of its format (barrier or gain).
Every kind is defined by integer operations that a small hardware unit performs once per step
(an accumulator, a leading-one detector with a 256-entry table, a shifter, a RAM), so the golden
model and the RTL compute the same values. All kinds clamp to [lo, hi].

Kinds (k >= 0, ``>>`` is an arithmetic shift, i.e. floor division by a power of two):

* ``constant``:     x = start
* ``linear``:       x = start + (k * rate >> RATE_FRAC_BITS)
* ``logarithmic``:  x = start + (scale * (LOG2(tau + k) - LOG2(tau)) >> LOG_FRAC_BITS)
  (``start + scale*log2(1 + k/tau)``: the 1/log cooling of simulated annealing)
* ``exponential``:  x = start * 2**(k * rate / 2**RATE_FRAC_BITS), computed as
  ``(start * EXP2_TABLE[f]) << e >> 16`` with e, f the integer and top 8 fraction bits of the
  exponent
* ``table``:        x = values[min(k // steps_per_entry, len(values) - 1)] (piecewise constant)
"""

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, require

RATE_FRAC_BITS = 16          # fraction bits of linear and exponential rates (per step)
LOG_FRAC_BITS = 16           # fraction bits of the fixed-point log2
TABLE_INDEX_BITS = 8         # log2 and exp2 use the 8 bits after the binary point as table index
MIN_TABLE_ENTRIES = 256      # docs/physics.md §7
MAX_TABLE_ENTRIES = 4096     # the schedule RAM of the hardware
MAX_STEPS = 2**48 - 1        # the hardware step counter
MAX_TAU = 2**32              # logarithmic: the largest tau (steps)
MAX_STEPS_PER_ENTRY = 2**32  # table: the longest entry (steps)
EXP_RANGE_OCTAVES = 64       # exponential: beyond 64 octaves every value is clamped

KINDS = ("constant", "linear", "logarithmic", "exponential", "table")

#: LOG2_TABLE[m] = round(log2(1 + m/256) * 2**16)
LOG2_TABLE = np.array([round(math.log2(1 + m / 256) * 2**LOG_FRAC_BITS) for m in range(256)],
                      dtype=np.int64)
#: EXP2_TABLE[f] = round(2**(f/256) * 2**16)
EXP2_TABLE = np.array([round(2 ** (f / 256) * 2**16) for f in range(256)], dtype=np.int64)


def log2_fixed(n):
    """Fixed-point log2 of integers n >= 1 (LOG_FRAC_BITS fraction bits), as the hardware does:
    exponent from the leading one, fraction from a table indexed by the next 8 bits."""
    n = np.asarray(n, dtype=np.int64)
    exponent = np.frexp(n.astype(np.float64))[1].astype(np.int64) - 1   # exact for n < 2**53
    shift = TABLE_INDEX_BITS - exponent
    mantissa = np.where(shift >= 0, n << np.maximum(shift, 0), n >> np.maximum(-shift, 0))
    return (exponent << LOG_FRAC_BITS) + LOG2_TABLE[mantissa & 255]


@dataclass(frozen=True)
class Schedule:
    """A schedule in raw units of its format. Build one with the class methods."""

    kind: str
    start: int = 0
    rate: int = 0                 # linear, exponential: raw units (resp. octaves) per step, Q.16
    scale: int = 0                # logarithmic: raw units per doubling of (1 + k/tau)
    tau: int = 1                  # logarithmic: steps
    values: tuple = ()            # table
    steps_per_entry: int = 1      # table
    lo: int | None = None         # clamp range; None: the format's range
    hi: int | None = None

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def constant(cls, value):
        return cls("constant", start=int(value))

    @classmethod
    def linear(cls, start, rate, lo=None, hi=None):
        return cls("linear", start=int(start), rate=int(rate), lo=lo, hi=hi)

    @classmethod
    def logarithmic(cls, start, scale, tau, lo=None, hi=None):
        return cls("logarithmic", start=int(start), scale=int(scale), tau=int(tau), lo=lo, hi=hi)

    @classmethod
    def exponential(cls, start, rate, lo=None, hi=None):
        return cls("exponential", start=int(start), rate=int(rate), lo=lo, hi=hi)

    @classmethod
    def table(cls, values, steps_per_entry=1):
        return cls("table", values=tuple(int(v) for v in values),
                   steps_per_entry=int(steps_per_entry))

    def tabulated(self, name, bits, entries, steps_per_entry):
        """This schedule as a table schedule (for hardware that computes tables only): its
        value at the first step of each of `entries` pieces of `steps_per_entry` steps, held
        through the piece, the last piece to the end of the run. Exact at those steps."""
        require(isinstance(entries, int) and MIN_TABLE_ENTRIES <= entries <= MAX_TABLE_ENTRIES,
                f"{name} table entries", entries,
                f"must be in [{MIN_TABLE_ENTRIES}, {MAX_TABLE_ENTRIES}]")
        require(isinstance(steps_per_entry, int) and 1 <= steps_per_entry <= MAX_STEPS_PER_ENTRY,
                f"{name} steps per entry", steps_per_entry,
                f"must be in [1, {MAX_STEPS_PER_ENTRY}]")
        steps = np.arange(entries, dtype=np.int64) * steps_per_entry
        values = self.validated(name, bits).values_at(np.minimum(steps, MAX_STEPS))
        return Schedule.table(values.tolist(), steps_per_entry=steps_per_entry)

    # -- validation ---------------------------------------------------------------------------
    def validated(self, name, bits):
        """Check against an unsigned format of `bits` bits; return a copy with lo/hi filled."""
        top = 2**bits - 1
        require(self.kind in KINDS, f"{name}.kind", self.kind, f"must be one of {KINDS}")
        lo = 0 if self.lo is None else int(self.lo)
        hi = top if self.hi is None else int(self.hi)
        require(0 <= lo <= top, f"{name}.lo", lo, f"must be in [0, {top}] ({bits}-bit format)")
        require(lo <= hi <= top, f"{name}.hi", hi,
                f"must be in [lo={lo}, {top}] ({bits}-bit format)")
        if self.kind != "table":
            require(0 <= self.start <= top, f"{name}.start", self.start,
                    f"must be in [0, {top}] ({bits}-bit format)")
        limit = 2**(bits + RATE_FRAC_BITS)
        require(abs(self.rate) < limit, f"{name}.rate", self.rate, f"|rate| must be < {limit}")
        if self.kind == "logarithmic":
            require(1 <= self.tau <= MAX_TAU, f"{name}.tau", self.tau,
                    "must be in [1, 2**32] steps")
            require(abs(self.scale) < 2**(bits + 8), f"{name}.scale", self.scale,
                    f"|scale| must be < {2**(bits + 8)}")
        if self.kind == "exponential":
            require(self.start > 0, f"{name}.start", self.start,
                    "an exponential schedule needs start > 0")
        if self.kind == "table":
            n = len(self.values)
            require(MIN_TABLE_ENTRIES <= n <= MAX_TABLE_ENTRIES, f"{name}.values", f"{n} entries",
                    f"a table needs {MIN_TABLE_ENTRIES} to {MAX_TABLE_ENTRIES} entries")
            bad = [v for v in self.values if not 0 <= v <= top]
            require(not bad, f"{name}.values", bad[:1], f"entries must be in [0, {top}]")
            require(1 <= self.steps_per_entry <= MAX_STEPS_PER_ENTRY, f"{name}.steps_per_entry",
                    self.steps_per_entry, "must be in [1, 2**32]")
        return Schedule(**{**self.__dict__, "lo": lo, "hi": hi})

    # -- evaluation ---------------------------------------------------------------------------
    def values_at(self, k):
        """Raw values for an array of steps k (int64), exactly as the hardware computes them."""
        if self.lo is None or self.hi is None:
            raise ConfigError(f"schedule {self!r} must be validated against a format first")
        k = np.asarray(k, dtype=np.int64)
        if np.any(k < 0) or np.any(k > MAX_STEPS):
            raise ConfigError(f"step = {int(k.min())}..{int(k.max())}: must be in [0, {MAX_STEPS}]")
        lo, hi = self.lo, self.hi
        if self.kind == "constant":
            x = np.full(k.shape, self.start, dtype=np.int64)
        elif self.kind == "linear":
            x = self.start + ((np.minimum(k, self.saturation_step()) * self.rate) >> RATE_FRAC_BITS)
        elif self.kind == "logarithmic":
            octaves = log2_fixed(self.tau + k) - log2_fixed(np.int64(self.tau))
            x = self.start + ((self.scale * octaves) >> LOG_FRAC_BITS)
        elif self.kind == "exponential":
            z = np.minimum(k, self.saturation_step()) * self.rate
            e = z >> RATE_FRAC_BITS
            f = (z >> (RATE_FRAC_BITS - TABLE_INDEX_BITS)) & 255
            product = self.start * EXP2_TABLE[f]                      # < 2**(bits + 17)
            shift = e - 16
            left = np.clip(shift, 0, 62)
            too_big = (shift > 0) & (product > (hi >> left))
            x = np.where(shift >= 0, np.where(too_big, hi + 1, product << left),
                         product >> np.minimum(-shift, 62))
        else:  # table
            table = np.asarray(self.values, dtype=np.int64)
            x = table[np.minimum(k // self.steps_per_entry, len(table) - 1)]
        return np.clip(x, lo, hi)

    def saturation_step(self):
        """k_sat of a validated linear or exponential schedule: the ramp k*rate stops there.
        Beyond it the value is clamped anyway (it has moved by more than hi - lo + 1, or by more
        than EXP_RANGE_OCTAVES octaves), and bounding k keeps k*rate inside int64."""
        span = self.hi - self.lo + 1 if self.kind == "linear" else EXP_RANGE_OCTAVES
        return (span << RATE_FRAC_BITS) // max(abs(self.rate), 1) + 1

    def describe(self, fmt_frac_bits, unit):
        """A short human description in physical units."""
        s = 2.0**-fmt_frac_bits
        if self.kind == "constant":
            return f"constant {self.start * s:g} {unit}"
        if self.kind == "linear":
            return f"linear from {self.start * s:g} {unit}, {self.rate * s / 2**16:+g} {unit}/step"
        if self.kind == "logarithmic":
            return (f"logarithmic {self.start * s:g} + {self.scale * s:g}*log2(1 + k/{self.tau})"
                    f" {unit}")
        if self.kind == "exponential":
            return f"exponential {self.start * s:g} {unit} * 2^({self.rate / 2**16:g} k)"
        return (f"table of {len(self.values)} entries, {self.steps_per_entry} steps each, "
                f"{self.values[0] * s:g} to {self.values[-1] * s:g} {unit}")

    def to_dict(self):
        d = {"kind": self.kind}
        for key in ("start", "rate", "scale", "tau", "steps_per_entry", "lo", "hi"):
            d[key] = getattr(self, key)
        if self.kind == "table":
            d["values"] = list(self.values)
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d["values"] = tuple(d.get("values", ()))
        return cls(**d)


# -- the configuration registers of the hardware schedule unit (hdl/schedule_unit.py) ------------
# The host computes them from a Schedule here and the HDL takes their widths from here, so the two
# cannot disagree. k_sat and log2(tau) are precomputed (a division and a table look-up once per
# run); everything that depends on the step is computed by the hardware.

MAX_BITS = 24                                          # widest barrier or gain format (Spec)
STEP_BITS = MAX_STEPS.bit_length()                     # the step counter: 48
LOG2_INPUT_BITS = (MAX_TAU + MAX_STEPS).bit_length()   # tau + k of a logarithmic schedule: 49
LOG2_BITS = int(log2_fixed(2**LOG2_INPUT_BITS - 1)).bit_length()   # log2_fixed(tau + k): 22
KIND_CODES = {kind: code for code, kind in enumerate(KINDS)}


def _check_unit(bits, table_depth):
    require(1 <= bits <= MAX_BITS, "bits", bits, f"must be in [1, {MAX_BITS}]")
    require(MIN_TABLE_ENTRIES <= table_depth <= MAX_TABLE_ENTRIES, "table_depth", table_depth,
            f"must be in [{MIN_TABLE_ENTRIES}, {MAX_TABLE_ENTRIES}] (the table sizes a Schedule "
            f"accepts)")


#: the registers each kind reads besides kind. The clamp to [lo, hi] belongs to the kinds that
#: compute their value; a constant's start and a table's entries are loaded clamped already
#: (schedule_register_values, schedule_table_values), so a unit of those kinds alone has none.
KIND_REGISTERS = {
    "constant": ("start",),
    "linear": ("start", "lo", "hi", "rate", "k_sat"),
    "exponential": ("start", "lo", "hi", "rate", "k_sat"),
    "logarithmic": ("start", "lo", "hi", "scale", "tau", "log2_tau"),
    "table": ("steps_per_entry", "table_length"),
}
#: the kinds whose value a unit computes (and clamps)
COMPUTED_KINDS = ("linear", "logarithmic", "exponential")


def check_kinds(kinds):
    """`kinds` as a tuple in KINDS order: a non-empty subset of KINDS."""
    require(isinstance(kinds, (tuple, list, set, frozenset)) and len(kinds) > 0
            and set(kinds) <= set(KINDS), "kinds", kinds,
            f"must be a non-empty collection of {KINDS}")
    return tuple(kind for kind in KINDS if kind in kinds)


def schedule_registers(bits, table_depth, kinds=KINDS):
    """(name, width, signed) of every configuration register of a schedule unit for an unsigned
    `bits`-bit format, a table RAM of `table_depth` entries and the schedule `kinds` it
    computes (a unit without some kinds has no registers only they read). Each width holds
    every value that Schedule.validated accepts."""
    _check_unit(bits, table_depth)
    needed = {name for kind in check_kinds(kinds) for name in KIND_REGISTERS[kind]}
    longest_ramp = max(2**bits, EXP_RANGE_OCTAVES) << RATE_FRAC_BITS    # span << 16 in k_sat
    registers = (
        ("kind", max(KIND_CODES.values()).bit_length(), False),
        ("start", bits, False),
        ("lo", bits, False),
        ("hi", bits, False),
        ("rate", bits + RATE_FRAC_BITS + 1, True),          # |rate| < 2**(bits + 16)
        ("k_sat", (longest_ramp + 1).bit_length(), False),  # Schedule.saturation_step
        ("scale", bits + 8 + 1, True),                      # |scale| < 2**(bits + 8)
        ("tau", MAX_TAU.bit_length(), False),
        ("log2_tau", LOG2_BITS, False),                     # log2_fixed(tau)
        ("steps_per_entry", MAX_STEPS_PER_ENTRY.bit_length(), False),
        ("table_length", table_depth.bit_length(), False),
    )
    return tuple(r for r in registers if r[0] == "kind" or r[0] in needed)


def schedule_table_values(schedule, bits, *, name="schedule"):
    """The entries of a table schedule as its unit's RAM holds them: clamped to [lo, hi], so
    that they are its values (empty for the other kinds)."""
    s = schedule.validated(name, bits)
    if s.kind != "table":
        return []
    return [min(max(int(v), s.lo), s.hi) for v in s.values]


def schedule_register_values(schedule, bits, table_depth, *, name="schedule", kinds=KINDS):
    """Register name -> value of a schedule unit running `schedule` (validated against `bits`
    and the unit's `kinds` here). Registers a kind does not use are 0; a table's entries go
    into the unit's RAM."""
    registers = schedule_registers(bits, table_depth, kinds)
    s = schedule.validated(name, bits)
    kinds = check_kinds(kinds)
    require(s.kind in kinds, f"{name}.kind", s.kind,
            f"this hardware computes only the kinds {kinds}; give the schedule as a table "
            "(piecewise constant, e.g. sampled from the curve you want) or use a build that "
            "has it")
    values = dict.fromkeys((register for register, _, _ in registers), 0)
    values["kind"] = KIND_CODES[s.kind]
    if "lo" in values:
        values.update(lo=s.lo, hi=s.hi)
    if s.kind == "constant":
        values["start"] = min(max(s.start, s.lo), s.hi)            # its value at every step
    elif s.kind != "table":
        values["start"] = s.start
    if s.kind in ("linear", "exponential"):
        values.update(rate=s.rate, k_sat=s.saturation_step())
    elif s.kind == "logarithmic":
        values.update(scale=s.scale, tau=s.tau, log2_tau=int(log2_fixed(s.tau)))
    elif s.kind == "table":
        require(len(s.values) <= table_depth, f"{name}.values", f"{len(s.values)} entries",
                f"the schedule unit's RAM holds at most table_depth = {table_depth} entries")
        values.update(steps_per_entry=s.steps_per_entry, table_length=len(s.values))
    return values
