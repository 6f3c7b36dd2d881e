"""The counters of docs/physics.md §9 in a RAM, added to one at a time (the compact core's).

The compact core (hdl/compact_core.py) evaluates one cell at a time and counts only a few
events per evaluation, so its counters need no adder each: they live in a RAM of 32-bit words
and one 32-bit adder adds an amount into one counter, word by word (read-modify-write). Widths,
signedness and the overflow rule are python_model/counters.py's; the RAM holds exactly the
words ArrayCore's CounterBank answers on the bus.

Words. Counter i takes ``words(width_i)`` consecutive words, least significant first, in
layout order, so that its first word is the offset of the register ``counter_<name>`` from
``counter_steps`` in the register map (:meth:`CounterRam.word_offsets`). The top word of a
counter holds the value sign-extended (signed counters) or zero-extended (unsigned) beyond its
width: what CounterBank answers for that word.

Adding. ``add`` (a strobe while ``ready``) with ``index`` and ``amount`` (``subtract`` = 1:
minus the amount) reads the counter's first word in the strobe's cycle and, in each of the
next ``words`` cycles, writes word j + (the amount's word j) + carry and reads word j + 1. The
amount is held in a register that shifts right by a word each cycle (its sign extends it over
the counter's words); subtracting adds its complement plus one. The top word is summed with
two more bits, which decide the overflow flag as CounterBank does: the exact value outside
[0, 2**w) unsigned, [-2**(w-1), 2**(w-1)) signed; the count goes on modulo 2**w and the flag is
sticky. ``ready`` is low from the cycle after the strobe until the cycle that writes the top
word, where the strobe of the next addition may come: an addition takes ``words`` cycles.

Ports:

* ``add``, ``index`` (In(range(count))), ``amount`` (In(signed(amount_bits))), ``subtract``;
  ``ready`` (Out(1)).
* ``clear``: In(1) strobe while ``ready``: every count and flag becomes 0; the RAM is zeroed one
  word a cycle, ``ready`` low meanwhile (total_words cycles).
* ``read_en``, ``read_addr`` (In(range(total_words))): a host read, answered on ``read_data``
  (Out(32)) in the next cycle, through a read port of its own (a second copy of the RAM), so
  it never waits. A counter read while it is being added to may show new low words and old
  high words: the core reads its counters when it is done.
* ``overflow``: Out(count): the sticky flags, layout order.

Test hook: ``data`` is the RAM's MemoryData (a testbench may preload a counter near the end of
its range; preloaded words must follow the extension rule).
"""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out
from limemu.model.counters import counter_layout
from limemu.model.errors import require

from .regmap import WORD_BITS, words


class CounterRam(wiring.Component):
    """``CounterRam(spec, amount_bits)``: the counters of ``counter_layout(spec)``;
    `amount_bits` maps every counter's name to the signed width of the amounts it is given
    (at most its own width: the overflow rule relies on it), the ``amount`` port is as wide as
    the widest. Attributes: ``layout``, ``offsets`` (name -> first word), ``total_words``,
    ``data`` (the RAM's MemoryData)."""

    @staticmethod
    def word_offsets(spec):
        """{name: index of its first word} of every counter, in layout order."""
        offsets, next_word = {}, 0
        for name, width, _ in counter_layout(spec):
            offsets[name] = next_word
            next_word += words(width)
        return offsets

    def __init__(self, spec, amount_bits):
        self.spec = spec
        self.layout = counter_layout(spec)
        names = [name for name, _, _ in self.layout]
        require(isinstance(amount_bits, dict) and set(amount_bits) == set(names),
                "amount_bits", amount_bits, f"must map exactly the counters {names} to widths")
        for name, width, _ in self.layout:
            bits = amount_bits[name]
            require(isinstance(bits, int) and not isinstance(bits, bool) and 2 <= bits <= width,
                    f"amount_bits[{name!r}]", bits,
                    f"must be an integer in [2, {width}] (no wider than the counter)")
        self.amount_bits = dict(amount_bits)
        self.offsets = self.word_offsets(spec)
        self.total_words = sum(words(width) for _, width, _ in self.layout)
        self.data = MemoryData(shape=WORD_BITS, depth=self.total_words, init=[])
        super().__init__({
            "add": In(1),
            "index": In(range(len(self.layout))),
            "amount": In(signed(max(self.amount_bits.values()))),
            "subtract": In(1),
            "ready": Out(1),
            "clear": In(1),
            "read_en": In(1),
            "read_addr": In(range(self.total_words)),
            "read_data": Out(WORD_BITS),
            "overflow": Out(len(self.layout)),
        })

    def __repr__(self):
        return f"CounterRam(spec={self.spec!r}, amount_bits={self.amount_bits})"

    def elaborate(self, platform):
        m = Module()
        layout, total, count = self.layout, self.total_words, len(self.layout)
        n_words = [words(width) for _, width, _ in layout]
        tops = [width - WORD_BITS * (n - 1) for (_, width, _), n in zip(layout, n_words)]

        m.submodules.ram = ram = Memory(data=self.data)
        engine_read = ram.read_port(transparent_for=())
        host_read = ram.read_port(transparent_for=())
        write = ram.write_port()
        m.d.comb += [host_read.en.eq(self.read_en), host_read.addr.eq(self.read_addr),
                     self.read_data.eq(host_read.data)]

        # -- state ----------------------------------------------------------------------------
        busy = Signal()                            # an addition is under way
        clearing = Signal()
        address = Signal(range(total))             # the word read in the previous cycle
        last = Signal(range(total))                # the counter's top word
        current = Signal(range(count))
        carry = Signal()
        # the amount still to add, its word 0 on the low bits (complemented when subtracting)
        amount_shape = signed(max(len(self.amount), WORD_BITS + 1))
        rest = Signal(amount_shape)
        flags = [Signal(name=f"{name}_overflow") for name, _, _ in layout]
        is_top = address == last
        m.d.comb += [self.ready.eq(~clearing & (~busy | is_top)), self.overflow.eq(Cat(*flags))]

        # the first and last word of the counter an `add` names
        base, top_word = Signal.like(address), Signal.like(address)
        with m.Switch(self.index):
            for i, (name, _, _) in enumerate(layout):
                with m.Case(i):
                    m.d.comb += [base.eq(self.offsets[name]),
                                 top_word.eq(self.offsets[name] + n_words[i] - 1)]

        m.d.comb += [engine_read.en.eq(1),
                     engine_read.addr.eq(Mux(busy & ~is_top, address + 1, base))]

        # -- one word: read in the previous cycle, written back in this one ------------------
        sum34, wrong, out = self._word_sum(m, engine_read.data, rest[:WORD_BITS], carry,
                                           current, is_top, tops)

        with m.If(busy):
            m.d.sync += [carry.eq(sum34[WORD_BITS]), rest.eq(rest >> WORD_BITS),
                         address.eq(address + 1)]
            with m.If(is_top):
                m.d.sync += busy.eq(0)
                with m.If(wrong):
                    with m.Switch(current):
                        for i in range(count):
                            with m.Case(i):
                                m.d.sync += flags[i].eq(1)
        with m.If(self.add & self.ready):         # (after the above: it wins over the last word)
            amount = self.amount.as_signed()
            m.d.sync += [busy.eq(1), address.eq(base), last.eq(top_word),
                         current.eq(self.index), carry.eq(self.subtract),
                         rest.eq(Mux(self.subtract, ~amount, amount))]

        self._clear(m, write, busy, clearing, address, out, flags)
        return m

    def _word_sum(self, m, word, x, carry, current, is_top, tops):
        """word + x + carry for the counter `current`: (the sum with two more bits, whether
        the exact value left the counter's range on its top word, the word to write: the top
        word's bits beyond the counter extended)."""
        layout = self.layout
        signed_of = Signal()
        with m.Switch(current):
            for i, (_, _, is_signed) in enumerate(layout):
                with m.Case(i):
                    m.d.comb += signed_of.eq(int(is_signed))
        sum34 = Signal(WORD_BITS + 2)              # word + amount + carry, exact on the top
        d_ext = is_top & signed_of & word[WORD_BITS - 1]
        x_ext = is_top & x[WORD_BITS - 1]
        m.d.comb += sum34.eq(Cat(word, d_ext, d_ext) + Cat(x, x_ext, x_ext) + carry)

        # The top word: bits from t (the counter's bits in its top word) up are the extension.
        # Whether the exact value left the range: the top word held an in-range value (t bits)
        # and the amount's share of it plus the carry lies in [-2**(s-1), 2**(s-1)], s = the
        # amount's bits in the top word (or in [-1, 1] if it has none), s <= t because the
        # amount is no wider than the counter. So the exact top word stays in [-2**t, 2**(t+1))
        # (unsigned) or [-2**t, 2**t) (signed), where bit 33 (the sign) and bit t (unsigned) or
        # t - 1 (signed) tell whether it left the range.
        cuts = sorted(set(tops))
        beyond = Signal(len(cuts))                 # bits >= cuts[j] are the extension
        ext = Signal()
        bit_t = Signal()
        with m.Switch(current):
            for i, (_, _, is_signed) in enumerate(layout):
                t = tops[i]
                with m.Case(i):
                    m.d.comb += [beyond.eq(sum(1 << j for j, c in enumerate(cuts) if t <= c)),
                                 ext.eq(sum34[t - 1] if is_signed else 0),
                                 bit_t.eq(sum34[t] if t < WORD_BITS + 2 else 0)]
        wrong = Mux(signed_of, ext ^ sum34[-1], sum34[-1] | bit_t)
        out = Signal(WORD_BITS)
        for k in range(WORD_BITS):
            group = max([j for j, c in enumerate(cuts) if c <= k], default=None)
            m.d.comb += out[k].eq(sum34[k] if group is None else
                                  Mux(is_top & beyond[group], ext, sum34[k]))
        return sum34, wrong, out

    def _clear(self, m, write, busy, clearing, address, out, flags):
        """The write port: the added word, or zero while clearing (one word a cycle); a
        ``clear`` strobe zeroes the flags at once."""
        total = self.total_words
        zero_address = Signal(range(total))
        m.d.comb += [write.en.eq(busy | clearing),
                     write.addr.eq(Mux(clearing, zero_address, address)),
                     write.data.eq(Mux(clearing, 0, out))]
        with m.If(clearing):
            m.d.sync += zero_address.eq(zero_address + 1)
            with m.If(zero_address == total - 1):
                m.d.sync += clearing.eq(0)
        with m.If(self.clear & self.ready):
            m.d.sync += [clearing.eq(1), zero_address.eq(0)]
            m.d.sync += [flag.eq(0) for flag in flags]
