"""The compact core's counters in RAM (hdl/counter_ram.py's CounterRam) of a spin array's layout
(11 counters, 48 to 110 bits, 29 words), each given amounts as wide as itself, with additions
and subtractions back to back and clears (never both in one cycle):

* ``exact_<counter>`` (bounded): additions to that one counter (``steps``: unsigned, 2 words;
  ``heat_net``: signed, 4 words; all counters at once take the solver minutes a step), any
  word of it read through the host read port: whenever no word is being written, the word
  read is that word of the exact sum of what was added since the last clear (a shadow two bits
  wider than the counter's words), unless the counter's overflow flag is set. So a counter changes
  only by what is added to it (adding a non-negative amount never makes it smaller: it never
  decreases except by clear) and never wraps without its flag.
* ``sticky`` (proven; additions to any counter): an overflow flag once set stays set until a
  clear is taken.

``exact`` speaks about the RAM's words, which a harness cannot name, so the induction step
cannot tie its shadows to them: it is a bounded check from reset (the RAM zeroed), deep enough
for several additions to cross the ends of a counter's range (amounts as wide as the counter:
two additions leave it). The RAM has no reset (a reset zeroes the flags and the engine, not
the counts), so the harness assumes none after the start.

The mutation misses an overflow past the top of an unsigned counter's range (it wraps from its
largest value to 0 without the flag).
"""

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assert, Assume, Module, Mux, ResetSignal, Signal, signed

from limemu.hdl.counter_ram import CounterRam
from limemu.hdl.regmap import WORD_BITS, words
from limemu.model.spec import Spec

from .runner import Property

SPEC = Spec(cells=4, weight_bits=1)


class MissesTopOverflow(CounterRam):
    """Mutation: an unsigned counter's flag misses the exact value past the top of its range
    (only the sign of the top word's exact sum counts)."""

    def _word_sum(self, m, word, x, carry, current, is_top, tops):
        sum34, wrong, out = super()._word_sum(m, word, x, carry, current, is_top, tops)
        signed_of = Signal(name="mutant_signed")
        with m.Switch(current):
            for i, (_, _, is_signed) in enumerate(self.layout):
                with m.Case(i):
                    m.d.comb += signed_of.eq(int(is_signed))
        return sum34, Mux(signed_of, wrong, sum34[-1]), out


def harness(which, mutant, counter=None):
    """`counter`: the name of the one counter added to and read (exact), None: any (sticky)."""
    from limemu.model.counters import counter_layout

    layout = counter_layout(SPEC)
    m = Module()
    m.submodules.ram = ram = (MissesTopOverflow if mutant else CounterRam)(
        SPEC, {name: width for name, width, _ in layout})
    m.d.comb += Assume(~ResetSignal())
    for port in (ram.add, ram.index, ram.amount, ram.subtract, ram.clear):
        m.d.comb += port.eq(AnySeq(port.shape()))
    count = len(layout)
    m.d.comb += [Assume(ram.index < count), Assume(~(ram.add & ram.clear))]
    for i, (_, width, _) in enumerate(layout):     # each amount fits its counter's amount_bits
        with m.If(ram.index == i):
            m.d.comb += Assume((ram.amount >= -(1 << (width - 1)))
                               & (ram.amount < (1 << (width - 1))))
    added = ram.add & ram.ready
    cleared = ram.clear & ram.ready

    if which == "sticky":
        flags_before, cleared_before = Signal.like(ram.overflow), Signal()
        past = Signal()
        m.d.sync += [flags_before.eq(ram.overflow), cleared_before.eq(cleared), past.eq(1)]
        with m.If(past & ~cleared_before):
            m.d.comb += Assert((ram.overflow & flags_before) == flags_before)
        return m

    i = [name for name, _, _ in layout].index(counter)
    width = layout[i][1]
    m.d.comb += Assume(ram.index == i)
    # the exact sum since the last clear
    shadow = Signal(signed(WORD_BITS * words(width) + 2), name="shadow")
    with m.If(cleared):
        m.d.sync += shadow.eq(0)
    with m.Elif(added):
        m.d.sync += shadow.eq(Mux(ram.subtract, shadow - ram.amount, shadow + ram.amount))
    # cycles in which words are still to be written (an addition's, a clear's)
    writing = Signal(range(ram.total_words + 1))
    with m.If(cleared):
        m.d.sync += writing.eq(ram.total_words)
    with m.Elif(added):
        m.d.sync += writing.eq(words(width))
    with m.Elif(writing != 0):
        m.d.sync += writing.eq(writing - 1)

    word = AnyConst(range(words(width)))
    m.d.comb += [Assume(word < words(width)), ram.read_en.eq(1),
                 ram.read_addr.eq(ram.offsets[counter] + word)]
    expected = Signal(WORD_BITS)
    for j in range(words(width)):
        with m.If(word == j):
            m.d.comb += expected.eq(shadow[WORD_BITS * j:WORD_BITS * (j + 1)])
    # the read answers next cycle with the words as they were: check it if none was written
    check, expected_before = Signal(), Signal(WORD_BITS)
    m.d.sync += [check.eq((writing == 0) & ~ram.overflow[i]), expected_before.eq(expected)]
    with m.If(check):
        m.d.comb += Assert(ram.read_data == expected_before)
    return m


DEPTH, DEEP = 8, 10
#: the counters of the exact check: the shortest unsigned one and a signed one
EXACT = ("steps", "heat_net")
PROPERTIES = [
    *[Property(f"counter_ram.exact_{name}",
               lambda mutant, name=name: harness("exact", mutant, name), "bmc", DEPTH,
               f"CounterRam {name}: a word read without its flag is the exact sum since "
               f"clear, bounded ({DEPTH} cycles)", deep=DEEP,
               mutant="" if name != "steps" else
               "an unsigned counter wraps past its top without the flag")
      for name in EXACT],
    Property("counter_ram.sticky", lambda mutant: harness("sticky", mutant), "prove", 2,
             "CounterRam: an overflow flag stays set until clear"),
]
