"""The counters of PHYSICS.md section 9 in a block RAM behind small accumulators.

A drop-in for what hdl/counter_bank.py does, for the compact core (hdl/compact_core.py) on an
iCE40UP5K, where CounterBank's flip-flops and wide adders do not fit. Widths, signedness and
the overflow rule are python_model/counters.py's; the RAM holds exactly the words ArrayCore
answers on the bus.

Words. The counters live in a RAM of 32-bit words (``amaranth.lib.memory.Memory``, one read
and one write port; 2 SB_RAM40_4K on an iCE40, which are 16 bits wide). Counter i takes
``words(width_i)`` consecutive words, least significant first, in layout order, so its first
word is the offset of the register ``counter_<name>`` from ``counter_steps`` in the register map
(hdl/regmap.py); :meth:`CounterStore.word_offsets` is the one place this is computed. The top
word of a counter holds the value sign-extended (signed counters) or zero-extended (unsigned)
beyond its width: what ArrayCore answers for that word. One more word, ``total_words``, is never
written and reads 0 (see ``clear``).

Accumulators. Each counter has a signed accumulator of A = B + ``ACC_EXTRA_BITS`` (8) bits in
flip-flops, B the width of its ``inc_<name>`` port, that adds the increment every cycle. When it
leaves the window [-2**(A-2), 2**(A-2)) (its two top bits differ) it asks the flush engine to
add it into the RAM. From the first cycle it is outside the window it absorbs ``MARGIN`` =
2**(A-B-1) - 1 = 127 more increments of any value (128 counting the one that crossed; the worst
case is -2**(B-1) every cycle) before it could overflow. The engine serves the counters round
robin, so an asking counter waits at most one round (total_words cycles: every other counter
asking too), after a clear still zeroing the RAM (total_words cycles), plus the cycle between
its first read and its take: ``worst_wait`` = 2 * total_words + 1, which the constructor
requires to be <= MARGIN (27 words and 55 cycles for the board's layout; the test that has
every counter ask at once, again and again, sees 27). Each host read delays the engine a
cycle; only a host reading nearly every cycle for about 70 cycles could push an accumulator
over, and then the counter's overflow flag is set: a count is never wrong silently.

Flush engine. Stage 1 scans the counters round robin, one a cycle, and reads the words of one
that asks, one a cycle (host reads first: the engine waits). Stage 2, the cycle after each
read, writes back the word plus the amount's word plus the carry, through one 32-bit adder
shared by all counters. The amount is taken in stage 2 of the first word: the accumulator plus
that cycle's increment goes straight to the adder and the accumulator restarts from 0 (the
snapshot of the design brief with the increment counted in the amount rather than in the new
accumulator: no increment is stalled or lost, no snapshot register is needed). Its bits above
the first word wait in a small register for the next word, its sign for the words after. The
top word's sum is computed with two more bits, which decide the overflow flag; the word written
is wrapped and extended by the rule above. A counter of n words takes n cycles of the scan
(its last word is written one cycle after its last read), one that does not ask one cycle.

``flush`` makes every counter with a nonzero increment since its last take ask, until
``settled``: if no increments come after it, the counts are in the RAM at most total_words + 1
+ (words of the widest counter) cycles after ``flush`` (a round, and again the counter that was
being added when ``flush`` came), plus a cycle per host read meanwhile; 28 cycles measured for
the board's layout with all 11 counters to add.

Overflow. CounterBank's rule (python_model.counters.Counters.check_overflow: the exact value
outside [0, 2**w) unsigned, [-2**(w-1), 2**(w-1)) signed; values wrap modulo 2**w), checked
each time an accumulator is added into the RAM, on the exact value then: an excursion out of
the range and back between two flushes of the counter is not seen (CounterBank checks every
cycle; once a counter has been flushed, its flag agrees with CounterBank's whenever it only
grows, or only shrinks). A counter that
overflowed goes on modulo 2**w. An accumulator that overflows its A bits sets the flag too.

Ports:

* ``inc_<name>``: In(signed(increment_bits[name])), added in the cycle it is given (0: none).
* ``clear``: In(1) strobe. Every count and flag is 0 from the next cycle on; the increments of
  the clear cycle are dropped. The RAM is zeroed in the background, one word a cycle for the
  next total_words cycles; meanwhile the engine waits and every host read, from the clear
  cycle's on, reads the zero word (answers 0).
* ``flush``: In(1) strobe: add every nonzero accumulator into the RAM (see above).
* ``settled``: Out(1): no clear or flush under way and no nonzero increment since any counter's
  last take, so every accumulator is zero and the RAM holds the exact counts. (An accumulator
  whose increments cancelled counts as nonzero until it is flushed.)
* ``read_en``, ``read_addr`` (word index, In(range(total_words))): a host read; ``read_data``
  Out(32) answers in the next cycle (only then). A counter read while the engine writes it may
  show new low words and old high words; the counts are exact when ``settled``.
* ``overflow``: Out(len(layout)): sticky flags, layout order.

Test hooks: ``data`` is the RAM's ``MemoryData`` (a simulator testbench may read or preload its
rows, ``ctx.set(store.data[i], word)``, e.g. to start a counter near the end of its range;
preloaded words must follow the extension rule); ``_acc`` and ``_acc_overflow`` are the
accumulators and their overflow, per counter in layout order.
"""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out

from python_model.counters import counter_layout
from python_model.errors import require

from .regmap import WORD_BITS, words

ACC_EXTRA_BITS = 8           # accumulator width A = increment width B + 8
MARGIN = (1 << (ACC_EXTRA_BITS - 1)) - 1     # increments after leaving the window: 127


class CounterStore(wiring.Component):
    """The counters in a RAM of 32-bit words behind accumulators (see the module docstring).

    ``CounterStore(spec, increment_bits)``: `increment_bits` maps every counter name of
    ``counter_layout(spec)`` to the signed width of its increment port.

    Attributes: ``layout`` (counter_layout), ``offsets`` (name -> first word), ``total_words``,
    ``accumulator_bits`` (name -> A), ``worst_wait`` (cycles an asking counter can wait),
    ``data`` (the RAM's MemoryData, a test hook).
    """

    @staticmethod
    def word_offsets(spec):
        """{name: index of its first word} of every counter, in layout order; the counters
        take consecutive words, ``words(width)`` each."""
        offsets, next_word = {}, 0
        for name, width, _ in counter_layout(spec):
            offsets[name] = next_word
            next_word += words(width)
        return offsets

    def __init__(self, spec, increment_bits):
        self.spec = spec
        self.layout = counter_layout(spec)
        names = [name for name, _, _ in self.layout]
        require(isinstance(increment_bits, dict) and set(increment_bits) == set(names),
                "increment_bits", increment_bits, f"must map exactly the counters {names} "
                "to widths")
        for name, width, _ in self.layout:
            bits = increment_bits[name]
            require(isinstance(bits, int) and not isinstance(bits, bool)
                    and 1 <= bits <= width - ACC_EXTRA_BITS, f"increment_bits[{name!r}]", bits,
                    f"must be an integer in [1, {width - ACC_EXTRA_BITS}] (the accumulator, "
                    f"{ACC_EXTRA_BITS} bits wider, must not be wider than the {width}-bit "
                    "counter)")
        self.increment_bits = dict(increment_bits)
        self.accumulator_bits = {n: b + ACC_EXTRA_BITS for n, b in self.increment_bits.items()}
        self.offsets = self.word_offsets(spec)
        self.total_words = sum(words(width) for _, width, _ in self.layout)
        # a clear still zeroing, one round of the round-robin engine, the cycle of the take
        self.worst_wait = 2 * self.total_words + 1
        require(self.worst_wait <= MARGIN, "total_words", self.total_words,
                f"must be <= {(MARGIN - 1) // 2}: an accumulator outside its window must be "
                f"served within {MARGIN} cycles")
        # one word more: word total_words is never written and reads 0 (see `clear`)
        self.data = MemoryData(shape=WORD_BITS, depth=self.total_words + 1, init=[])
        # the accumulators and their own overflow, here so that a testbench can watch them
        self._acc = [Signal(signed(self.accumulator_bits[name]), name=f"{name}_acc")
                     for name in names]
        self._acc_overflow = [Signal(name=f"{name}_acc_overflow") for name in names]
        members = {
            "clear": In(1),
            "flush": In(1),
            "settled": Out(1),
            "read_en": In(1),
            "read_addr": In(range(self.total_words)),
            "read_data": Out(WORD_BITS),
            "overflow": Out(len(self.layout)),
        }
        for name in names:
            members[f"inc_{name}"] = In(signed(self.increment_bits[name]))
        super().__init__(members)

    def __repr__(self):
        return (f"CounterStore(spec={self.spec!r}, increment_bits={self.increment_bits!r})")

    def elaborate(self, platform):
        m = Module()
        layout, total, count = self.layout, self.total_words, len(self.layout)
        n_words = [words(width) for _, width, _ in layout]
        bases = [self.offsets[name] for name, _, _ in layout]
        a_bits = [self.accumulator_bits[name] for name, _, _ in layout]
        tops = [width - WORD_BITS * (n - 1) for (_, width, _), n in zip(layout, n_words)]
        zero_word = total                          # never written: reads 0

        m.submodules.ram = ram = Memory(data=self.data)
        rd = ram.read_port(transparent_for=())
        wr = ram.write_port()

        # -- state ----------------------------------------------------------------------------
        p = Signal(range(count))                   # round-robin pointer: the counter served
        iaddr = Signal(range(total + 1))           # next word to read (== base(p) when idle)
        active = Signal()                          # reading words 1.. of counter p
        draining = Signal()                        # after `flush`: every dirty counter asks
        clearing = Signal()                        # zeroing the RAM
        zaddr = Signal(range(total))
        # stage 2: the word read in the previous cycle is added to and written back
        v2, top2, first2 = Signal(), Signal(), Signal()
        a2 = Signal(range(total))
        cur2 = Signal(range(count))
        carry = Signal()
        amount_bits = max(WORD_BITS, max(a_bits))
        hi = Signal(signed(max(1, amount_bits - WORD_BITS)))   # the amount above word 0
        flags = [Signal(name=f"{name}_overflow") for name, _, _ in layout]
        dirty = Signal(count)                      # a nonzero increment since the last take

        # -- accumulators ---------------------------------------------------------------------
        take = Signal(count)                       # counter i's amount goes into the RAM
        req = Signal(count)
        sums = []
        for i, (name, _, _) in enumerate(layout):
            acc, a = self._acc[i], a_bits[i]
            inc = getattr(self, f"inc_{name}")
            acc_sum = Signal(signed(a + 1), name=f"{name}_acc_sum")
            sums.append(acc_sum)
            m.d.comb += [acc_sum.eq(acc + inc),
                         self._acc_overflow[i].eq(acc_sum[a] ^ acc_sum[a - 1]),
                         take[i].eq(v2 & first2 & (cur2 == i)),
                         req[i].eq((acc[a - 1] ^ acc[a - 2]) | (draining & dirty[i]))]
            with m.If(self.clear | take[i]):       # this cycle's increment is in the amount
                m.d.sync += [acc.eq(0), dirty[i].eq(0)]
            with m.Else():
                m.d.sync += acc.eq(acc_sum)
                with m.If(inc.any()):
                    m.d.sync += dirty[i].eq(1)
            with m.If(self._acc_overflow[i]):     # (a clear, later, wins)
                m.d.sync += flags[i].eq(1)

        m.d.comb += self.settled.eq(~self.clear & ~clearing & ~active & ~v2 & ~dirty.any())
        with m.If(self.flush):
            m.d.sync += draining.eq(1)
        with m.Elif(self.settled):
            m.d.sync += draining.eq(0)

        # -- the RAM's read port: a clear, then the host, then the engine ---------------------
        port_free = ~self.read_en & ~clearing & ~self.clear
        m.d.comb += [
            rd.en.eq(1),
            rd.addr.eq(Mux(self.clear | clearing, zero_word,
                           Mux(self.read_en, self.read_addr, iaddr))),
            self.read_data.eq(rd.data),
        ]

        # -- the engine, stage 1: scan and read -----------------------------------------------
        base_next = Signal.like(iaddr)             # first word of the counter after p
        last_word = Signal.like(iaddr)             # last word of counter p
        with m.Switch(p):
            for i in range(count):
                with m.Case(i):
                    m.d.comb += [base_next.eq((bases[i] + n_words[i]) % total),
                                 last_word.eq(bases[i] + n_words[i] - 1)]
        issue = Signal()
        is_top = Signal()
        m.d.comb += is_top.eq(iaddr == last_word)

        def advance():
            m.d.sync += [p.eq(Mux(p == count - 1, 0, p + 1)), iaddr.eq(base_next)]

        m.d.sync += v2.eq(0)
        with m.If(~active):
            with m.If(~clearing & ~self.clear):
                with m.If(req.bit_select(p, 1)):
                    m.d.comb += issue.eq(port_free)
                with m.Else():
                    advance()
        with m.Else():
            m.d.comb += issue.eq(port_free)
        with m.If(issue):
            m.d.sync += [v2.eq(1), a2.eq(iaddr), top2.eq(is_top), first2.eq(~active),
                         cur2.eq(p), active.eq(~is_top)]
            with m.If(is_top):
                advance()
            with m.Else():
                m.d.sync += iaddr.eq(iaddr + 1)

        # -- the engine, stage 2: add and write back ------------------------------------------
        amount = Signal(signed(amount_bits))       # accumulator + increment of counter cur2
        signed_of = Signal()
        with m.Switch(cur2):
            for i, (_, _, is_signed) in enumerate(layout):
                with m.Case(i):
                    m.d.comb += [amount.eq(sums[i][:a_bits[i]].as_signed()),
                                 signed_of.eq(int(is_signed))]
        x = Signal(WORD_BITS)                      # the amount's word
        m.d.comb += x.eq(Mux(first2, amount[:WORD_BITS], hi))
        sum34 = Signal(WORD_BITS + 2)              # word + amount + carry, exact on the top
        d_ext = top2 & signed_of & rd.data[WORD_BITS - 1]
        x_ext = top2 & x[WORD_BITS - 1]
        m.d.comb += sum34.eq(Cat(rd.data, d_ext, d_ext) + Cat(x, x_ext, x_ext)
                             + (carry & ~first2))
        with m.If(v2):
            m.d.sync += carry.eq(sum34[WORD_BITS])
            with m.If(first2):
                m.d.sync += hi.eq(amount[WORD_BITS:].as_signed() if amount_bits > WORD_BITS
                                  else amount[WORD_BITS - 1:].as_signed())
            with m.Else():
                m.d.sync += hi.eq(hi >> WORD_BITS)

        # the top word: bits from t (the counter's bits in its top word) up are the extension
        cuts = sorted(set(tops))
        beyond = Signal(len(cuts))                 # bits >= cuts[j] are the extension
        ext = Signal()
        # Whether the exact value left the range. The top word held an in-range value (t bits)
        # and the amount's share of it plus the carry lies in [-2**(s-1), 2**(s-1)], s = the
        # amount's bits in the top word (or in [-1, 1] if it has none), s <= t because A <= the
        # counter's width. So the exact top word stays in [-2**t, 2**(t+1)) (unsigned) or
        # [-2**t, 2**t) (signed), where bit 33 (the sign) and bit t (unsigned) or t-1 (signed)
        # tell whether it left the range.
        bit_t = Signal()
        with m.Switch(cur2):
            for i, (_, _, is_signed) in enumerate(layout):
                t = tops[i]
                with m.Case(i):
                    m.d.comb += [beyond.eq(sum(1 << j for j, c in enumerate(cuts) if t <= c)),
                                 ext.eq(sum34[t - 1] if is_signed else 0),
                                 bit_t.eq(sum34[t])]
        wrong = Mux(signed_of, ext ^ sum34[-1], sum34[-1] | bit_t)
        out = Signal(WORD_BITS)
        for k in range(WORD_BITS):
            group = max([j for j, c in enumerate(cuts) if c <= k], default=None)
            m.d.comb += out[k].eq(sum34[k] if group is None else
                                  Mux(top2 & beyond[group], ext, sum34[k]))
        with m.If(v2 & top2 & wrong):
            with m.Switch(cur2):
                for i in range(count):
                    with m.Case(i):
                        m.d.sync += flags[i].eq(1)

        # -- clear: zero every word (the zero word is read, so the adder gives 0) -------------
        m.d.comb += [wr.en.eq(clearing | v2), wr.addr.eq(Mux(clearing, zaddr, a2)),
                     wr.data.eq(out)]
        with m.If(clearing):
            m.d.sync += zaddr.eq(zaddr + 1)
            with m.If(zaddr == total - 1):
                m.d.sync += clearing.eq(0)
        with m.If(self.clear):
            m.d.sync += [clearing.eq(1), zaddr.eq(0), active.eq(0), v2.eq(0), top2.eq(0),
                         first2.eq(0), hi.eq(0), carry.eq(0), draining.eq(0), p.eq(0),
                         iaddr.eq(0)]
            m.d.sync += [flag.eq(0) for flag in flags]

        m.d.comb += self.overflow.eq(Cat(*flags))
        return m
