"""The crossing unit (hdl/crossing_unit.py's CrossingUnit) decides as the golden model does,
for every 32-bit draw and every pair of barriers of a build (frac_bits = 2, mantissa_bits = 14,
10-bit barriers: every clipped barrier and beyond, negative ones too).

The unit is a pure pipeline (its only state is the pipeline and a ROM), so a bounded check of
latency + 1 cycles from reset covers every input: it is a proof of the function. The
specification in the harness reads the golden model's threshold table
(`limemu.model.crossing.threshold_table`) and decides as `outcome_counts` counts: admissible
steps by the two compares with T+ and T+ + T-, inadmissible ones by the draw's top 16 bits
against the number of them that go up (no multiplier; `spec_decision` is the same in Python,
and tests/test_formal.py checks it against `decide_one`). Asserted: the outcome (up, down,
inadmissible) equals the specification's; up and down never both (probabilities never
exceed one); a step with a negative barrier or T+ + T- > 2**32 is flagged inadmissible.

The mutation adds one to the up threshold (u == T+ goes up).
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Module, Signal

from limemu.hdl.crossing_unit import CrossingUnit
from limemu.model.crossing import (
    INADMISSIBLE_PRECISION_BITS,
    ONE,
    SCALED_DRAW_SHIFT,
    SCALED_SHIFT,
    ZERO_FROM_U,
    threshold_table,
)

from .runner import Property

FRAC_BITS, MANTISSA_BITS, BARRIER_WIDTH = 2, 14, 10
LAST = ZERO_FROM_U << FRAC_BITS                   # T(B) = 0 from here on


def t_of(b):
    """T(b) of the golden table, b of any sign (negative: ONE + 1, the inadmissible mark)."""
    table = threshold_table(FRAC_BITS, MANTISSA_BITS)
    return int(table[min(max(b, -1), LAST) + 1])


def up_draws(d):
    """Inadmissible, B+ - B- = d: the number of the draws' top 16 bits that go up."""
    t_up, t_down = (t_of(0), t_of(min(-d, LAST))) if d <= 0 else (t_of(min(d, LAST)), t_of(0))
    a = (t_up >> SCALED_SHIFT) << INADMISSIBLE_PRECISION_BITS
    s = (t_up + t_down) >> SCALED_SHIFT
    return min(-(-a // s), 1 << INADMISSIBLE_PRECISION_BITS)


def spec_decision(u, b_up, b_down):
    """("up" | "down" | "stay", inadmissible), as the harness specifies it."""
    t_up, t_down = t_of(b_up), t_of(b_down)
    if t_up + t_down <= ONE:
        return ("up" if u < t_up else "down" if u < t_up + t_down else "stay"), False
    d = max(-LAST, min(LAST, b_up - b_down))
    return ("up" if u >> SCALED_DRAW_SHIFT < up_draws(d) else "down"), True


class OffByOne(CrossingUnit):
    """Mutation: the up threshold one too high."""

    def _thresholds(self, m, stage2):
        stage4 = super()._thresholds(m, stage2)
        stage4["thresholds"][0] = stage4["thresholds"][0] + 1
        return stage4


def table_of(m, value, entries, width, name):
    """A signal of `width` bits: entries[k] where value == k (a Switch of constants)."""
    out = Signal(width, name=name)
    with m.Switch(value):
        for k, entry in entries.items():
            with m.Case(k):
                m.d.comb += out.eq(entry)
    return out


def clipped(m, value, low, high, name):
    out = Signal(range(low, high + 1), name=name)
    m.d.comb += out.eq(value)
    with m.If(value < low):
        m.d.comb += out.eq(low)
    with m.If(value > high):
        m.d.comb += out.eq(high)
    return out


def harness(mutant):
    """The proof: outcomes exclusive, a negative barrier flagged, nothing without valid."""
    m = Module()
    m.submodules.unit = unit = (OffByOne if mutant else CrossingUnit)(
        frac_bits=FRAC_BITS, mantissa_bits=MANTISSA_BITS, barrier_width=BARRIER_WIDTH)
    inputs = (unit.valid_in, unit.u, unit.b_up, unit.b_down)
    for port in inputs:
        m.d.comb += port.eq(AnySeq(port.shape()))
    delayed = inputs                    # the inputs as they were `latency` cycles ago
    for stage in range(unit.latency):
        later = [Signal(port.shape(), name=f"{port.name}_{stage + 1}") for port in delayed]
        m.d.sync += [new.eq(old) for new, old in zip(later, delayed)]
        delayed = later
    valid, u, b_up, b_down = delayed
    m.d.comb += [Assert(unit.valid_out == valid), Assert(~(unit.up & unit.down))]
    with m.If(valid & ((b_up < 0) | (b_down < 0))):
        m.d.comb += Assert(unit.inadmissible)
    with m.If(~valid):
        m.d.comb += Assert(~unit.up & ~unit.down & ~unit.inadmissible)
    return m


def draws_to_check(b_up, b_down):
    """The draws where the outcome of (b_up, b_down) can change, and the ends: each compare
    of the decision on both sides of its threshold."""
    t_up, t_down = t_of(b_up), t_of(b_down)
    points = {0, ONE - 1, t_up - 1, t_up, t_up + t_down - 1, t_up + t_down}
    if t_up + t_down > ONE:
        v = up_draws(max(-LAST, min(LAST, b_up - b_down)))
        points |= {(v << SCALED_DRAW_SHIFT) - 1, v << SCALED_DRAW_SHIFT}
    return sorted(p for p in points if 0 <= p < ONE)


def simulate(mutant):
    """Every pair of barriers from -2 to past the clip, at every draw where a compare
    changes its answer (and the ends), through the pipeline one a cycle, against
    `spec_decision`. Returns (ok, first mismatch or the count)."""
    from amaranth.sim import Simulator

    unit = (OffByOne if mutant else CrossingUnit)(
        frac_bits=FRAC_BITS, mantissa_bits=MANTISSA_BITS, barrier_width=BARRIER_WIDTH)
    barriers = range(-2, LAST + 3)
    cases = [(u, b_up, b_down) for b_up in barriers for b_down in barriers
             for u in draws_to_check(b_up, b_down)]
    mismatches = []

    async def bench(ctx):                       # stops at the first mismatch
        checked = 0
        for k in range(len(cases) + unit.latency):
            if k < len(cases):
                u, b_up, b_down = cases[k]
                ctx.set(unit.valid_in, 1)
                ctx.set(unit.u, u)
                ctx.set(unit.b_up, b_up)
                ctx.set(unit.b_down, b_down)
            else:
                ctx.set(unit.valid_in, 0)
            await ctx.tick()
            if ctx.get(unit.valid_out):
                up, down = ctx.get(unit.up), ctx.get(unit.down)
                outcome = "up" if up else "down" if down else "stay"
                if (outcome, bool(ctx.get(unit.inadmissible))) != spec_decision(*cases[checked]):
                    mismatches.append(cases[checked])
                    return
                checked += 1
        assert checked == len(cases)

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    if mismatches:
        return False, f"differs at (u, B+, B-) = {mismatches[0]}"
    return True, f"{len(cases)} cases"


PROPERTIES = [
    Property("crossing_unit.exclusive", harness, "prove", CrossingUnit.latency + 1,
             "CrossingUnit: up and down never both, negative barriers flagged inadmissible"),
    Property("crossing_unit.equals_model", simulate, "sim", 0,
             "CrossingUnit == the golden decision, every barrier pair, every draw where a "
             "compare changes (exhaustive simulation)",
             mutant="the up threshold one too high"),
]
