"""The lane's random generator in RTL: python_model/rng.py's LaneGenerator, register for register.

Two shift registers of 89 and 127 bits (216 flip-flops) obeying b_t = b_{t-89} xor b_{t-38} and
c_t = c_{t-127} xor c_{t-63}; a draw is the XOR of their 32 oldest bits. Both lags exceed 32, so
the 32 bits shifted in per draw are each one XOR of two held bits. Logic per lane: 32 output
XORs, 64 next-state XORs and a load/next select per flip-flop -- on an iCE40 one LUT4 per
register bit (load, seed bit, one or two state bits) plus 32 for the draw; no carry chains.
"""

import functools
import operator

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from limemu.model.rng import COMPONENTS, DRAW_BITS, STATE_BITS, register_seeds


def seed_word(seed, lane):
    """The value the host drives on LaneRng.seed: register_seeds(seed, lane), the 89-bit register
    in bits 0..88 and the 127-bit register above it."""
    word, offset = 0, 0
    for bits, (r, _) in zip(register_seeds(seed, lane), COMPONENTS):
        word |= bits << offset
        offset += r
    return word


#: words of 32 bits that hold a seed word (shift-in loading)
SEED_WORDS = -(-STATE_BITS // DRAW_BITS)


class LaneRng(wiring.Component):
    """One lane's generator.

    Ports: ``seed`` (216 bits, see :func:`seed_word`) is copied into the registers when ``load``
    is high at a clock edge; otherwise ``next`` high at a clock edge advances one draw. ``draw``
    (32 bits, combinational) is the value LaneGenerator.next_draw() would return now. The
    registers reset to zero, whose draws are all zero: load a seed before use.

    Or the seed goes in a word at a time (the compact core, which has no 216-bit register for
    it): ``shift`` high at a clock edge shifts the registers, in seed-word bit order and padded
    to SEED_WORDS words, down by 32 bits with ``shift_data`` entering at the top, so that
    SEED_WORDS shifts of the seed word's 32-bit words, least significant first, load it.
    ``load`` wins over ``shift``, ``shift`` over ``next``.
    """

    seed: In(STATE_BITS)
    load: In(1)
    shift: In(1)
    shift_data: In(DRAW_BITS)
    next: In(1)
    draw: Out(DRAW_BITS)

    def elaborate(self, platform):
        m = Module()
        offset, outputs, registers = 0, [], []
        for r, s in COMPONENTS:
            register = Signal(r, name=f"register{r}")
            registers.append(register)
            shifted_in = register[:DRAW_BITS] ^ register[r - s:r - s + DRAW_BITS]
            with m.If(self.load):
                m.d.sync += register.eq(self.seed[offset:offset + r])
            with m.Elif(self.next & ~self.shift):
                m.d.sync += register.eq(Cat(register[DRAW_BITS:], shifted_in))
            offset += r
            outputs.append(register[:DRAW_BITS])
        pad_bits = SEED_WORDS * DRAW_BITS - STATE_BITS
        chain = Cat(*registers, *([Signal(pad_bits, name="pad")] if pad_bits else []))
        with m.If(self.shift & ~self.load):
            m.d.sync += chain.eq(Cat(chain[DRAW_BITS:], self.shift_data))
        m.d.comb += self.draw.eq(functools.reduce(operator.xor, outputs))
        return m


#: draws a ReplayRng keeps to give again (a power of two, more than a core ever takes back)
REPLAY_DEPTH = 16


class ReplayRng(wiring.Component):
    """A LaneRng whose last draws can be given back and taken again, in the same order: the
    throughput core cancels groups that have taken their draws, and the groups issued again
    must take the same ones.

    Ports: ``seed``/``load`` as LaneRng's (a load forgets what was given back); ``take`` high
    at a clock edge consumes the current ``draw``; otherwise ``undo`` = d gives back the last d
    draws taken: the next d draws are those again, then the generator's new ones. The generator
    never steps back: each new draw taken is also written into a ring of REPLAY_DEPTH words
    (distributed RAM, 32 bits a word), from which given-back draws are read. A caller must not
    have more than REPLAY_DEPTH - 1 draws given back and not yet taken again.
    """

    seed: In(STATE_BITS)
    load: In(1)
    take: In(1)
    undo: In(range(REPLAY_DEPTH))
    draw: Out(DRAW_BITS)

    def elaborate(self, platform):
        m = Module()
        m.submodules.generator = generator = LaneRng()
        m.submodules.ring = ring = Memory(shape=DRAW_BITS, depth=REPLAY_DEPTH, init=[])
        write, read = ring.write_port(), ring.read_port(domain="comb")
        position = Signal(range(REPLAY_DEPTH))      # the ring word of the next draw taken
        given_back = Signal(range(REPLAY_DEPTH))    # draws to take again before new ones
        replaying = given_back != 0
        m.d.comb += [generator.seed.eq(self.seed), generator.load.eq(self.load),
                     read.addr.eq(position),
                     self.draw.eq(Mux(replaying, read.data, generator.draw))]
        with m.If(self.load):
            m.d.sync += [position.eq(0), given_back.eq(0)]
        with m.Elif(self.take):
            m.d.sync += position.eq(position + 1)
            with m.If(replaying):
                m.d.sync += given_back.eq(given_back - 1)
            with m.Else():
                m.d.comb += [generator.next.eq(1), write.en.eq(1), write.addr.eq(position),
                             write.data.eq(generator.draw)]
        with m.Elif(self.undo != 0):
            m.d.sync += [position.eq(position - self.undo),
                         given_back.eq(given_back + self.undo)]
        return m
