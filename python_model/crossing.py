"""The crossing unit: one 32-bit uniform draw, three outcomes (docs/physics.md §4).

A move whose crossing barrier is B (energy LSBs of 2**-F u) happens with probability 2**-B.
The probability is a threshold T(B) on the draw u in [0, 2**32): P(u < T) = T / 2**32 exactly.

    T(B) = (MANTISSA[f] << (32 - M) + round) >> i,     i = B >> F,  f = B & (2**F - 1)
    MANTISSA[f] = round(2**(M - f / 2**F))             (2**F entries of M + 1 bits)

with ``round`` = 2**(i-1) (round half up) for i >= 1: a small ROM and a barrel shifter per lane.
T(0) = 2**32 (certain); T = 0 from B = 34 u on.

Outcomes, with T+ = T(B+), T- = T(B-), B+- = E0 -+ D+-/2:

* admissible (B+ >= 0, B- >= 0, T+ + T- <= 2**32): up if u < T+, down if T+ <= u < T+ + T-,
  else stay;
* inadmissible (the inadmissible counter increments): both probabilities are scaled so that
  they sum to 1. The ratio p+/(p+ + p-) only depends on B+ - B-, so the unit subtracts the
  smaller barrier from both (one of them becomes 0), looks up T'+ and T'-, and compares with
  16-bit precision: a = T'+ >> 17, s = (T'+ + T'-) >> 17, up iff (u >> 16) * s < a << 16,
  else down (one 16 x 17 bit multiplier per lane).
"""

import functools

import numpy as np

from .errors import ConfigError

DRAW_BITS = 32
ONE = 1 << DRAW_BITS                      # threshold of probability 1
ZERO_FROM_U = 34                          # T(B) = 0 for B >= 34 u
INADMISSIBLE_PRECISION_BITS = 16
#: the inadmissible compare keeps the thresholds' top bits (a = T'+ >> 17, s = (T'+ + T'-) >> 17)
SCALED_SHIFT = DRAW_BITS + 1 - INADMISSIBLE_PRECISION_BITS
#: and the draw's top 16 bits (u >> 16)
SCALED_DRAW_SHIFT = DRAW_BITS - INADMISSIBLE_PRECISION_BITS


def threshold(b, frac_bits, mantissa_bits):
    """T(b) for a barrier of b LSBs (int b >= 0), exactly as the hardware computes it."""
    i, f = b >> frac_bits, b & ((1 << frac_bits) - 1)
    mantissa = round(2 ** (mantissa_bits - f / 2**frac_bits))
    value = mantissa << (DRAW_BITS - mantissa_bits)
    if i == 0:
        return value
    return (value + (1 << (i - 1))) >> i if i < 64 else 0


@functools.lru_cache(maxsize=None)
def threshold_table(frac_bits, mantissa_bits):
    """Thresholds indexed by clip(B, -1, last) + 1; entry 0 (B < 0) is ONE + 1, a sentinel
    that makes every step with a negative barrier inadmissible. Checks the precision that
    docs/physics.md §4 asks for."""
    last = ZERO_FROM_U << frac_bits
    table = np.array([ONE + 1] + [threshold(b, frac_bits, mantissa_bits) for b in range(last + 1)],
                     dtype=np.int64)
    _check_precision(table[1:], frac_bits, mantissa_bits)
    table.setflags(write=False)
    return table


def mantissa_rom(frac_bits, mantissa_bits):
    """The ROM contents of the hardware: MANTISSA[f] for f in [0, 2**F)."""
    return [round(2 ** (mantissa_bits - f / 2**frac_bits)) for f in range(1 << frac_bits)]


def _check_precision(table, frac_bits, mantissa_bits):
    worst_rel, worst_abs = _errors(table, frac_bits)
    if worst_rel >= 2**-10 or worst_abs > 1:
        raise ConfigError(
            f"mantissa_bits = {mantissa_bits}: probabilities miss their precision (relative "
            f"error {worst_rel:.2e} must be < 2^-10 up to 20 u; absolute error {worst_abs:.2f} "
            "counts of 2^-32 must be <= 1 up to 32 u)")


def _errors(table, frac_bits):
    """Worst relative error (B <= 20 u) and absolute error in counts of 2**-32 (20 < B <= 32)
    of thresholds indexed by B in LSBs."""
    b = np.arange(len(table))
    exact = np.exp2(DRAW_BITS - b / 2**frac_bits)                 # 2**-B in counts
    error = np.abs(table - exact)
    low = b <= 20 << frac_bits
    high = (b > 20 << frac_bits) & (b <= 32 << frac_bits)
    return float(np.max(error[low] / exact[low])), float(np.max(error[high]))


def precision_report(frac_bits, mantissa_bits):
    """(worst relative error up to 20 u, worst absolute error in 2**-32 from 20 to 32 u)."""
    return _errors(threshold_table(frac_bits, mantissa_bits)[1:], frac_bits)


def decide(u, b_up, b_down, table):
    """Vectorised crossing decisions.

    u: draws (uint32 or int64), b_up/b_down: crossing barriers in LSBs (int64, any sign).
    Returns boolean arrays (up, down, inadmissible); up and down exclude each other.
    """
    last = len(table) - 2
    t_up = table[np.minimum(np.maximum(b_up, -1), last) + 1]
    t_down = table[np.minimum(np.maximum(b_down, -1), last) + 1]
    u = u.astype(np.int64, copy=False)
    total = t_up + t_down
    up = u < t_up
    down = ~up & (u < total)
    inadmissible = total > ONE
    if inadmissible.any():
        k = np.flatnonzero(inadmissible)
        up[k], down[k] = _scaled(u[k], b_up[k], b_down[k], table)
    return up, down, inadmissible


def _scaled(u, b_up, b_down, table):
    last = len(table) - 2
    lowest = np.minimum(b_up, b_down)
    t_up = table[np.minimum(b_up - lowest, last) + 1]
    t_down = table[np.minimum(b_down - lowest, last) + 1]
    a = t_up >> SCALED_SHIFT
    s = (t_up + t_down) >> SCALED_SHIFT
    up = (u >> SCALED_DRAW_SHIFT) * s < a << INADMISSIBLE_PRECISION_BITS
    return up, ~up


def outcome_counts(b_up, b_down, table):
    """The exact probabilities of `decide`: (up, down, inadmissible), up and down as the
    number of the 2**32 draws u that give each outcome (int64 arrays; P = count / 2**32).

    Admissible: T+ and T-. Inadmissible: the scaled compare reads only v = u >> 16 and gives
    up iff v * s < a << 16, i.e. for the ceil((a << 16) / s) smallest v (at most 2**16), each
    standing for 2**16 draws; every other draw gives down."""
    b_up = np.asarray(b_up, dtype=np.int64)
    b_down = np.asarray(b_down, dtype=np.int64)
    last = len(table) - 2
    t_up = table[np.minimum(np.maximum(b_up, -1), last) + 1]
    t_down = table[np.minimum(np.maximum(b_down, -1), last) + 1]
    inadmissible = t_up + t_down > ONE
    up, down = t_up.copy(), t_down.copy()
    if inadmissible.any():
        k = np.flatnonzero(inadmissible)
        lowest = np.minimum(b_up[k], b_down[k])
        t_up = table[np.minimum(b_up[k] - lowest, last) + 1]
        t_down = table[np.minimum(b_down[k] - lowest, last) + 1]
        shift = DRAW_BITS + 1 - INADMISSIBLE_PRECISION_BITS
        a = (t_up >> shift) << INADMISSIBLE_PRECISION_BITS
        s = (t_up + t_down) >> shift                     # >= 2**15: one of them is ONE
        v_up = np.minimum(-(-a // s), 1 << INADMISSIBLE_PRECISION_BITS)
        up[k] = v_up << (DRAW_BITS - INADMISSIBLE_PRECISION_BITS)
        down[k] = ONE - up[k]
    return up, down, inadmissible


def decide_one(u, b_up, b_down, frac_bits, mantissa_bits):
    """Reference for one evaluation, straight from the definitions (for tests and the RTL).
    Returns ("up" | "down" | "stay", inadmissible)."""
    def t(b):
        return ONE + 1 if b < 0 else threshold(min(b, (ZERO_FROM_U << frac_bits)),
                                               frac_bits, mantissa_bits)
    t_up, t_down = t(b_up), t(b_down)
    if t_up + t_down <= ONE:
        return ("up" if u < t_up else "down" if u < t_up + t_down else "stay"), False
    lowest = min(b_up, b_down)
    t_up, t_down = t(b_up - lowest), t(b_down - lowest)
    up = (u >> SCALED_DRAW_SHIFT) * ((t_up + t_down) >> SCALED_SHIFT) < \
        (t_up >> SCALED_SHIFT) << INADMISSIBLE_PRECISION_BITS
    return ("up" if up else "down"), True
