"""The counters (hdl/counter_bank.py's CounterBank), every counter of a core's layout, proven
by induction:

* ``monotone``: without ``clear``, adding a non-negative increment never makes a counter
  smaller, unless its overflow flag is set;
* ``sticky``: an overflow flag once set stays set until ``clear``;
* ``exact``: while its flag is clear, a counter holds the exact sum of what was added since the
  last clear (a shadow sum two bits wider than the counter): it never wraps without its flag.

Every count starts anywhere (its register has no initial value in the proof), so that the
bounded check of the mutation reaches the ends of the range at once. The mutation moves one bound of the range by one (a counter wraps from its largest value to
0, or the signed ones past their largest, without the flag).
"""

from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import Assert, Assume, Module, Signal, signed

from limemu.hdl.counter_bank import CounterBank, increment_bits
from limemu.hdl.regmap import Geometry
from limemu.model.spec import Spec

from .runner import Property


class WrapsWithoutFlag(CounterBank):
    """Mutation: the flag misses the first value past the top of the range."""

    @staticmethod
    def _range(width, is_signed):
        lo, hi = CounterBank._range(width, is_signed)
        return lo, hi + 1


def harness(which, mutant):
    spec = Spec(cells=8, lanes=2)
    geometry = Geometry(lanes=2, groups=4, q_storage="dense", q_capacity=1)
    m = Module()
    m.submodules.bank = bank = (WrapsWithoutFlag if mutant else CounterBank)(
        spec, increment_bits(spec, geometry))
    m.d.comb += bank.clear.eq(AnySeq(1))
    past = Signal()                                   # a cycle has passed since reset
    m.d.sync += past.eq(1)
    was_clear = Signal()
    m.d.sync += was_clear.eq(bank.clear)
    for i, (name, width, is_signed) in enumerate(bank.layout):
        inc, value = getattr(bank, f"inc_{name}"), getattr(bank, f"value_{name}")
        m.d.comb += inc.eq(AnySeq(len(inc)))
        flag = bank.overflow[i]
        before, flag_before = Signal.like(value), Signal()
        inc_before = Signal.like(inc)
        m.d.sync += [before.eq(value), flag_before.eq(flag), inc_before.eq(inc)]
        checked = past & ~was_clear & ~Initial()
        if which == "monotone":
            with m.If(checked & (inc_before >= 0) & ~flag):
                m.d.comb += Assert(value >= before)
        elif which == "sticky":
            with m.If(checked & flag_before):
                m.d.comb += Assert(flag)
        else:
            exact = Signal(signed(width + 2), name=f"{name}_shadow")
            with m.If(bank.clear):
                m.d.sync += exact.eq(0)
            with m.Else():
                m.d.sync += exact.eq(exact + inc)
            with m.If(Initial()):
                m.d.comb += Assume(exact == value)      # counters start anywhere (free)
            with m.If(~flag):
                m.d.comb += Assert(exact == value)
    return m


WHAT = {
    "monotone": "no counter decreases (increment >= 0) but by clear or with its flag",
    "sticky": "an overflow flag stays set until clear",
    "exact": "a counter without its flag holds the exact sum: no wrap without the flag",
}
PROPERTIES = [
    Property(f"counter_bank.{which}", lambda mutant, which=which: harness(which, mutant),
             "prove", 2, what, free=("value_*", "*_shadow"),
             mutant="" if which == "sticky" else "the flag misses the first value past the range")
    for which, what in WHAT.items()
]
