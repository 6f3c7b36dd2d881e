"""The one specification object of a LIM synapse array.

Everything that decides a bit of the emulator's behaviour is a field of :class:`Spec` or is
derived from it here: widths, fixed-point formats, the random generator's seed, the schedules,
the update order. The golden model consumes it; the HDL is built from it.

Fixed-point formats (docs/physics.md §1; energies are in the Landauer unit u = kT ln 2):

* barrier E0: unsigned, ``barrier_bits`` wide, ``barrier_frac_bits`` (F) fraction bits. The
  same LSB, 2**-F u, is the unit of every energy the array counts (tilt, heat, work).
* gain eta: unsigned, ``gain_bits`` wide, ``gain_frac_bits`` fraction bits (u per loss unit),
  at most F - 2 so that a half tilt eta*dL/2 is an exact multiple of the energy LSB: tilts are
  never rounded, which keeps detailed balance and the first law exact.
* field g = QW - b: signed, ``field_bits`` wide.
* probabilities: thresholds against a 32-bit uniform draw (see crossing.py).
"""

from dataclasses import dataclass, fields

from .crossing import threshold_table
from .errors import require
from .schedules import Schedule

ORDERS = ("natural", "colour", "banked")
INITS = ("random", "zero", "low", "high")
TILT_MODES = ("field", "external")
Q_STORAGES = ("dense", "sparse")

#: the integer fields a hardware build is made of (a board's INFO answers them, in this order)
HARDWARE_FIELDS = ("cells", "weight_bits", "lanes", "barrier_bits", "barrier_frac_bits",
                   "gain_bits", "gain_frac_bits", "field_bits", "q_bits", "mantissa_bits",
                   "cell_counter_bits")
#: the fixed-point formats a run may change (``--set KEY=VALUE``, a run file's [formats])
FORMAT_FIELDS = ("barrier_bits", "barrier_frac_bits", "gain_bits", "gain_frac_bits",
                 "field_bits", "q_bits", "mantissa_bits")

#: the schedules of a Spec that names none: constants in physical units, in its own formats
DEFAULT_BARRIER_U = 4
DEFAULT_GAIN_U_PER_LOSS = 1

MAX_CELLS = 2**20
MAX_LANES = 1024


def ladder(weight_bits):
    """(w_lo, w_hi, delta) of a weight format (docs/physics.md §2): 1 bit = spins +-1 with
    step 2; b bits = signed integers [-2**(b-1), 2**(b-1) - 1] with step 1."""
    if weight_bits == 1:
        return -1, 1, 2
    return -(2 ** (weight_bits - 1)), 2 ** (weight_bits - 1) - 1, 1


@dataclass(frozen=True)
class Spec:
    """A complete, validated configuration of an array and its run.

    Raises ConfigError naming the parameter, its value and the limit on any invalid field.
    """

    cells: int = 64
    weight_bits: int = 4                 # 1: spins (+-1); b >= 2: signed b-bit integers
    lanes: int = 1                       # cells evaluated per hardware cycle (one group)
    barrier_bits: int = 14
    barrier_frac_bits: int = 8
    gain_bits: int = 16
    gain_frac_bits: int = 6
    field_bits: int = 32
    q_bits: int = 16                     # signed width of an entry of Q (the field engine's RAM)
    mantissa_bits: int = 14              # precision of the probability table
    cell_counter_bits: int = 0           # per-cell up/down move counters: 0 = none, else width
    barrier: Schedule | None = None      # None: constant DEFAULT_BARRIER_U
    gain: Schedule | None = None         # None: constant DEFAULT_GAIN_U_PER_LOSS
    seed: int = 1
    order: str = "natural"               # natural | colour | banked (python_model/order.py)
    init: str = "random"                 # initial weights: random | zero | low | high
    tilt: str = "field"                  # field: tilt from Q, b | external: caller supplies it
    q_storage: str = "dense"             # dense | sparse: how the field engine stores Q

    def __post_init__(self):
        for name in HARDWARE_FIELDS + ("seed",):
            value = getattr(self, name)
            require(isinstance(value, int) and not isinstance(value, bool), name, value,
                    "must be an integer")
        require(1 <= self.cells <= MAX_CELLS, "cells", self.cells, f"must be in [1, {MAX_CELLS}]")
        require(1 <= self.weight_bits <= 16, "weight_bits", self.weight_bits,
                "must be in [1, 16] (1 = spins)")
        require(1 <= self.lanes <= min(self.cells, MAX_LANES), "lanes", self.lanes,
                f"must be in [1, min(cells={self.cells}, {MAX_LANES})]")
        require(2 <= self.barrier_frac_bits <= 12, "barrier_frac_bits", self.barrier_frac_bits,
                "must be in [2, 12] (the probability table has 2**barrier_frac_bits entries)")
        require(self.barrier_frac_bits + 1 <= self.barrier_bits <= 24, "barrier_bits",
                self.barrier_bits, f"must be in [barrier_frac_bits + 1 = "
                f"{self.barrier_frac_bits + 1}, 24]")
        require(0 <= self.gain_frac_bits <= self.barrier_frac_bits - 2, "gain_frac_bits",
                self.gain_frac_bits, f"must be in [0, barrier_frac_bits - 2 = "
                f"{self.barrier_frac_bits - 2}] so that half tilts are exact energy LSBs")
        require(self.gain_frac_bits + 1 <= self.gain_bits <= 24, "gain_bits", self.gain_bits,
                f"must be in [gain_frac_bits + 1 = {self.gain_frac_bits + 1}, 24]")
        require(8 <= self.field_bits <= 40, "field_bits", self.field_bits, "must be in [8, 40]")
        require(2 <= self.q_bits <= 32, "q_bits", self.q_bits, "must be in [2, 32]")
        require(self.tilt_bits <= 62, "field_bits + gain_bits", self.field_bits + self.gain_bits,
                f"the tilt needs {self.tilt_bits} bits, more than the 62 the model computes in")
        require(8 <= self.mantissa_bits <= 20, "mantissa_bits", self.mantissa_bits,
                "must be in [8, 20]")
        require(self.cell_counter_bits == 0 or 4 <= self.cell_counter_bits <= 32,
                "cell_counter_bits", self.cell_counter_bits, "must be 0 (none) or in [4, 32]")
        require(0 <= self.seed < 2**64, "seed", self.seed, "must be in [0, 2**64)")
        require(self.order in ORDERS, "order", self.order, f"must be one of {ORDERS}")
        require(self.init in INITS, "init", self.init, f"must be one of {INITS}")
        require(self.tilt in TILT_MODES, "tilt", self.tilt, f"must be one of {TILT_MODES}")
        require(self.q_storage in Q_STORAGES, "q_storage", self.q_storage,
                f"must be one of {Q_STORAGES}")
        for name, bits, frac_bits, default in (
                ("barrier", self.barrier_bits, self.barrier_frac_bits, DEFAULT_BARRIER_U),
                ("gain", self.gain_bits, self.gain_frac_bits, DEFAULT_GAIN_U_PER_LOSS)):
            schedule = getattr(self, name)
            if schedule is None:         # the default, clipped to what the format holds
                schedule = Schedule.constant(min(default << frac_bits, (1 << bits) - 1))
            require(isinstance(schedule, Schedule), name, schedule, "must be a Schedule")
            object.__setattr__(self, name, schedule.validated(name, bits))
        # the probability table must meet its precision (docs/physics.md §4)
        threshold_table(self.barrier_frac_bits, self.mantissa_bits)

    # -- derived quantities (one place each) ----------------------------------------------------
    @property
    def spins(self):
        return self.weight_bits == 1

    @property
    def delta(self):
        """Step between neighbouring wells: 2 for spins, 1 for multi-level weights."""
        return ladder(self.weight_bits)[2]

    @property
    def w_lo(self):
        return ladder(self.weight_bits)[0]

    @property
    def w_hi(self):
        return ladder(self.weight_bits)[1]

    @property
    def tilt_shift(self):
        """Half tilt in energy LSBs = eta_raw * dL2 << tilt_shift, dL2 = 2*(change of L)."""
        return self.barrier_frac_bits - self.gain_frac_bits - 2

    @property
    def tilt_bits(self):
        """Signed width of a half tilt: eta (gain_bits) times dL2 = delta**2 Q_nn +- 2 delta g_n
        (dl2_bits)."""
        return self.gain_bits + self.dl2_bits + self.tilt_shift

    @property
    def dl2_bits(self):
        """Signed width of dL2 = delta**2 Q_nn +- 2 delta g_n (|delta| <= 2)."""
        return max(self.field_bits, self.q_bits) + 3

    @property
    def loss_bits(self):
        """Signed width of the loss register L2 = W^T Q W - 2 b^T W = sum_n W_n (g_n - b_n):
        |g_n|, |b_n| < 2**(field_bits - 1), |W_n| <= 2**(weight_bits - 1), `cells` terms."""
        cell_bits = max(1, (self.cells - 1).bit_length())
        return self.field_bits + max(self.weight_bits, 2) + cell_bits + 1

    @property
    def energy_lsb_u(self):
        """The energy LSB in units of u = kT ln 2."""
        return 2.0 ** -self.barrier_frac_bits

    @property
    def groups(self):
        """Groups per step in natural order (the colour order may need more)."""
        return -(-self.cells // self.lanes)

    def to_dict(self):
        d = {}
        for f in fields(self):
            value = getattr(self, f.name)
            d[f.name] = value.to_dict() if isinstance(value, Schedule) else value
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        for name in ("barrier", "gain"):
            if isinstance(d.get(name), dict):
                d[name] = Schedule.from_dict(d[name])
        return cls(**d)

    def replace(self, **changes):
        return Spec.from_dict({**self.to_dict(), **{k: v for k, v in changes.items()}})
