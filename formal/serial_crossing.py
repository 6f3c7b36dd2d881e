"""The compact core's crossing unit (hdl/serial_crossing_unit.py's SerialCrossingUnit) decides
as the specification of formal/crossing.py (`spec_decision`, checked there against the golden
`decide_one`), on the same exhaustive case set: every pair of barriers from -2 to past the clip
(frac_bits 2, mantissa_bits 14), at every draw where one of the decision's compares changes
answer and at both ends.

The unit is multi-cycle with a state machine and a shift register, which a solver would have
to unroll up to 48 cycles for each decision; so, as for CrossingUnit's equivalence, this is an
exhaustive simulation (Amaranth's simulator), driven through the unit's own handshake: a
``start`` while ``busy`` is low, the barrier E0 and the half tilts held until ``done``. Each
barrier pair (B+, B-) is given as E0 = max(0, min(B+, B-)) and h = B - E0, so that E0 and both
tilts take part. Checked at every decision: the outcome (up, down, inadmissible) equals the
specification's; up and down never both; a negative barrier is flagged inadmissible; ``busy``
from the cycle after ``start`` until ``done``, ``done`` for one cycle, exactly
`SerialCrossingUnit.latency` cycles after ``start``.

The full set (112 173 decisions, about 4 minutes) runs in ``make formal``; CI's run
(tests/test_formal.py) takes every fifth B- of every B+ (and all pairs with a negative
barrier), a fifth of the set.

The mutation moves the up compare by one (u == T+ goes up).
"""

from limemu.hdl.serial_crossing_unit import SerialCrossingUnit

from .crossing import FRAC_BITS, LAST, MANTISSA_BITS, draws_to_check, spec_decision
from .runner import Property

E0_BITS, H_BITS = 8, 10            # E0 up to 255, tilts -512..511: every barrier of the set


class UpOffByOne(SerialCrossingUnit):
    """Mutation: the up threshold one too high (u <= T+ goes up)."""

    @staticmethod
    def _goes_up(u, t_up):
        return u <= t_up


def barrier_pairs(stride=1):
    """Every (B+, B-) from -2 to past the clip; with a stride, every stride-th B- of each B+
    (and every pair with a negative barrier)."""
    barriers = range(-2, LAST + 3)
    return [(b_up, b_down) for b_up in barriers for b_down in barriers
            if (b_down - b_up) % stride == 0 or b_up < 0 or b_down < 0]


def simulate(mutant, stride=1):
    """Every case of `barrier_pairs(stride)` through the handshake, against `spec_decision`.
    Returns (ok, the first mismatch or the count)."""
    from amaranth.sim import Simulator

    unit = (UpOffByOne if mutant else SerialCrossingUnit)(
        frac_bits=FRAC_BITS, mantissa_bits=MANTISSA_BITS, e0_bits=E0_BITS, h_bits=H_BITS)
    cases = [(u, b_up, b_down) for b_up, b_down in barrier_pairs(stride)
             for u in draws_to_check(b_up, b_down)]
    problems = []

    async def bench(ctx):                       # stops at the first problem
        for u, b_up, b_down in cases:
            e0 = max(0, min(b_up, b_down))
            ctx.set(unit.start, 1)
            ctx.set(unit.u, u)
            ctx.set(unit.e0, e0)
            ctx.set(unit.h_up, b_up - e0)
            ctx.set(unit.h_down, b_down - e0)
            await ctx.tick()
            ctx.set(unit.start, 0)
            cycles = 1
            while not ctx.get(unit.done):
                if not ctx.get(unit.busy):
                    problems.append(f"busy low before done at (u, B+, B-) = {u, b_up, b_down}")
                    return
                await ctx.tick()
                cycles += 1
            up, down, inadmissible = (ctx.get(unit.up), ctx.get(unit.down),
                                      bool(ctx.get(unit.inadmissible)))
            outcome = "up" if up else "down" if down else "stay"
            case = (u, b_up, b_down)
            if up and down:
                problems.append(f"up and down together at (u, B+, B-) = {case}")
            elif (b_up < 0 or b_down < 0) and not inadmissible:
                problems.append(f"negative barrier not inadmissible at (u, B+, B-) = {case}")
            elif (outcome, inadmissible) != spec_decision(*case):
                problems.append(f"differs at (u, B+, B-) = {case}")
            elif cycles != unit.latency(b_up, b_down) or ctx.get(unit.busy):
                problems.append(f"done after {cycles} cycles, busy {ctx.get(unit.busy)}, "
                                f"at (u, B+, B-) = {case}")
            if problems:
                return
        await ctx.tick()                        # done lasts one cycle
        if ctx.get(unit.done):
            problems.append("done high for two cycles")

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    if problems:
        return False, problems[0]
    return True, f"{len(cases)} cases"


#: CI's subset (tests/test_formal.py): every fifth B- of each B+
CI_STRIDE = 5

PROPERTIES = [
    Property("serial_crossing_unit.equals_model", simulate, "sim", 0,
             "SerialCrossingUnit == the golden decision through its handshake, every barrier "
             "pair, every draw where a compare changes (exhaustive simulation); up and down "
             "never both, negative barriers inadmissible, done after `latency` cycles",
             mutant="the up threshold one too high"),
]
