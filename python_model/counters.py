"""The hardware counters (docs/physics.md §9): names, widths, signedness, overflow flags.

Every counter is wide enough not to wrap in a day of the fastest hardware we plan (2**50
events, i.e. 10**10 cell evaluations per second for 86400 s); past that it wraps modulo 2**width
and its sticky overflow flag is set. Energies are in energy LSBs (2**-barrier_frac_bits u).
"""

import numpy as np

from .schedules import STEP_BITS

DAY_EVENT_BITS = 50
EVENT_BITS = 56

#: every counter, in register-map order
COUNTER_NAMES = ("steps", "evaluations", "up_moves", "down_moves", "blocked_moves",
                 "inadmissible", "heat_net", "heat_abs", "barrier_work", "anneal_work",
                 "field_adds")
#: the counters of a Metropolis-Hastings run on the array (python_model/mh.py): decided
#: proposals, accepted ones, and the moves reverted after a rejection. Only a multi-level
#: array has them (MH moves multi-level cells; a spin array's cores stay as small as before).
MH_COUNTER_NAMES = ("proposals", "acceptances", "reverted_moves")
SIGNED_COUNTERS = ("heat_net", "anneal_work")
ENERGY_COUNTERS = ("heat_net", "heat_abs", "barrier_work", "anneal_work")


def counter_widths(spec):
    """{name: width in bits} of every counter of an array of this spec."""
    cell_bits = max(1, (spec.cells - 1).bit_length())
    heat = spec.tilt_bits + 2 + DAY_EVENT_BITS
    return {
        "steps": STEP_BITS,
        "evaluations": EVENT_BITS + 8,
        "up_moves": EVENT_BITS,
        "down_moves": EVENT_BITS,
        "blocked_moves": EVENT_BITS,
        "inadmissible": EVENT_BITS,
        "heat_net": heat,
        "heat_abs": heat,
        "barrier_work": spec.barrier_bits + cell_bits + DAY_EVENT_BITS,
        "anneal_work": spec.tilt_bits + spec.weight_bits + cell_bits + 2 + DAY_EVENT_BITS,
        "field_adds": EVENT_BITS + cell_bits,
        "proposals": EVENT_BITS,
        "acceptances": EVENT_BITS,
        "reverted_moves": EVENT_BITS,
    }


def counter_names(spec):
    """Every counter an array of this spec has, in register-map order."""
    return COUNTER_NAMES + (() if spec.spins else MH_COUNTER_NAMES)


def counter_layout(spec):
    """(name, width, signed) of every counter, in register-map order."""
    widths = counter_widths(spec)
    return tuple((name, widths[name], name in SIGNED_COUNTERS) for name in counter_names(spec))


class Counters:
    """Exact (unbounded) counts plus the hardware view: value modulo 2**width, sticky flags."""

    def __init__(self, spec):
        self.layout = counter_layout(spec)
        self.exact = {name: 0 for name, _, _ in self.layout}
        self.overflow = {name: False for name, _, _ in self.layout}

    @classmethod
    def from_exact(cls, spec, exact):
        """Counters holding these exact counts, with their overflow flags set."""
        counters = cls(spec)
        counters.exact.update(exact)
        counters.check_overflow()
        return counters

    def add(self, name, amount):
        self.exact[name] += int(amount)

    def check_overflow(self):
        """Set sticky flags for counters now outside their range (called after each batch)."""
        for name, width, signed in self.layout:
            v = self.exact[name]
            if (signed and not -(1 << (width - 1)) <= v < 1 << (width - 1)) or \
                    (not signed and not 0 <= v < 1 << width):
                self.overflow[name] = True

    def hardware(self):
        """The values the hardware registers hold (wrapped, two's complement read as signed)."""
        out = {}
        for name, width, signed in self.layout:
            v = self.exact[name] % (1 << width)
            if signed and v >= 1 << (width - 1):
                v -= 1 << width
            out[name] = v
        return out


class CellCounters:
    """Optional per-cell up/down move counters (Spec.cell_counter_bits wide; 0 = none).

    A cell is evaluated once per step, so it moves at most once per step: the counts follow
    exactly from the weights after consecutive steps. The hardware counters wrap modulo
    2**bits and one sticky flag records that any of them did.
    """

    def __init__(self, spec):
        self.bits = spec.cell_counter_bits
        self.up = np.zeros(spec.cells, dtype=np.int64)
        self.down = np.zeros(spec.cells, dtype=np.int64)

    def add_steps(self, before, after_each_step):
        """Count the moves between `before` (cells,) and each row of `after_each_step`."""
        states = np.vstack([np.asarray(before)[None, :], np.asarray(after_each_step)])
        change = np.diff(states, axis=0)
        self.up += np.count_nonzero(change > 0, axis=0)
        self.down += np.count_nonzero(change < 0, axis=0)

    def hardware(self):
        """(up, down, wrapped): the registers' values and the sticky wrap flag."""
        top = 1 << self.bits
        wrapped = bool(np.any(self.up >= top) or np.any(self.down >= top))
        return self.up % top, self.down % top, wrapped
