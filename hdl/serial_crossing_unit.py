"""The crossing unit for the compact core: limemu.model.crossing.decide_one bit for bit, one
evaluation at a time, with one table port, one shifter and one adder.

The same rule and the same threshold as hdl/crossing_unit.py,

    T(B) = (((MANTISSA[f] << (33 - M)) >> i) + 1) >> 1,   i = B >> F,  f = B mod 2**F,

with B clipped to ZERO_FROM_U << F, but computed one threshold after the other instead of three
in parallel, which is what fits an iCE40UP5K beside the rest of the array:

* one adder for the barrier of the current *phase*: B+ = E0 + h+ (``UP``), then B- = E0 + h-
  (``DOWN``), then, only for an inadmissible step, B+ - B- = h+ - h- (``DISTANCE``);
* one read port of the mantissa ROM, addressed by that barrier, clipped (min(|B+ - B-|, clip)
  in DISTANCE);
* one shift register instead of a barrel shifter: it loads MANTISSA[f] << (33 - M) and shifts
  right by 8 or by 1 a cycle until i is used up (floor division, as the barrel shifter);
* one accumulator and adder: ``acc + (d >> 1) + d[0]`` adds the rounded threshold (the rounding
  increment is the adder's carry in). After UP it holds T+ (u < T+: up), after DOWN T+ + T-
  (u < T+ + T-: down; > 2**32 or a negative barrier: inadmissible), after DISTANCE T(|B+ - B-|);
* the inadmissible step's scaled compare (u >> 16) * s < a << 16 with its 16 x 17-bit product
  (one SB_MAC16 on an iCE40UP).

Ports: ``u`` (32-bit draw) is sampled when ``start`` is high at a clock edge (only while ``busy``
is low); the barrier ``e0`` (unsigned ``e0_bits``) and the half tilts ``h_up`` and ``h_down``
(signed ``h_bits``), whose sums are the crossing barriers B+ and B- of CrossingUnit, are read
from that cycle on and must stay unchanged until ``done``. ``done`` is high for one cycle, when
``up``, ``down`` and ``inadmissible`` hold the outcome; they keep it until the next ``start``.
``busy`` is high from the cycle after ``start`` until ``done``, which is a cycle where a new
``start`` may come.

Latency, from ``start`` to ``done``: 7 + s(i+) + s(i-) cycles for an admissible step, where
s(i) = i // 8 + i % 8 are the shifts of a threshold (at most 10 for i <= 34; up to 14 for the
meaningless exponent of a negative barrier), plus 3 + s(i_distance) for an inadmissible one
(:meth:`latency`): 8 to 48 cycles, 8 to 30 when neither barrier is negative.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from limemu.model.crossing import (
    DRAW_BITS,
    INADMISSIBLE_PRECISION_BITS,
    ONE,
    ZERO_FROM_U,
    decide_one,
    mantissa_rom,
)

from .crossing_unit import DECISION_PORTS, SCALED_SHIFT, check_unit_parameters

BIG_SHIFT = 8                 # the shift register's long step


class Phase(enum.Enum, shape=2):
    UP = 0
    DOWN = 1
    DISTANCE = 2


def shift_cycles(exponent):
    """Cycles the shift register needs for a right shift by `exponent`."""
    return exponent // BIG_SHIFT + exponent % BIG_SHIFT


class SerialCrossingUnit(wiring.Component):
    """One crossing decision at a time (see the module docstring for ports and latency)."""

    MIN_LATENCY = 8                 # the shortest `latency` (one barrier below 1 u)

    def __init__(self, *, frac_bits, mantissa_bits, e0_bits, h_bits):
        self.frac_bits = frac_bits          # stored first: __repr__ names a rejected unit too
        self.mantissa_bits = mantissa_bits
        self.e0_bits, self.h_bits = e0_bits, h_bits
        check_unit_parameters(frac_bits, mantissa_bits, ("e0_bits", e0_bits, 1, 62),
                              ("h_bits", h_bits, 2, 62))
        super().__init__({
            "start": In(1),
            "u": In(DRAW_BITS),
            "e0": In(e0_bits),
            "h_up": In(signed(h_bits)),
            "h_down": In(signed(h_bits)),
            "busy": Out(1),
            "done": Out(1),
            **DECISION_PORTS,
        })

    def __repr__(self):
        return (f"SerialCrossingUnit(frac_bits={self.frac_bits}, "
                f"mantissa_bits={self.mantissa_bits}, e0_bits={self.e0_bits}, "
                f"h_bits={self.h_bits})")

    def latency(self, b_up, b_down):
        """Cycles from a ``start`` to its ``done`` (start in cycle t, done in t + latency) for
        these barriers (in LSBs)."""
        clip = ZERO_FROM_U << self.frac_bits
        clip_mask = (1 << clip.bit_length()) - 1          # a negative barrier's bits wrap

        def cycles(b):                                    # load, shifts, add
            return 2 + shift_cycles((min(b, clip) & clip_mask) >> self.frac_bits)

        total = cycles(b_up) + 1 + cycles(b_down) + 1     # each followed by its check
        _, inadmissible = decide_one(0, b_up, b_down, self.frac_bits, self.mantissa_bits)
        if inadmissible:
            total += cycles(min(abs(b_up - b_down), clip)) + 1    # + the scaled compare
        return total + 1                                  # + done, one cycle after the last

    def elaborate(self, platform):
        m = Module()
        frac_bits, mantissa_bits = self.frac_bits, self.mantissa_bits
        p = SimpleNamespace(phase=Signal(Phase), u=Signal(DRAW_BITS))
        p.value, p.clipped = self._barrier(m, p.phase)
        m.submodules.mantissa_rom = rom = Memory(
            shape=unsigned(mantissa_bits + 1), depth=1 << frac_bits,
            init=mantissa_rom(frac_bits, mantissa_bits))
        p.read = rom.read_port()
        m.d.comb += p.read.addr.eq(p.clipped[:frac_bits])
        # twice the threshold before rounding, (MANTISSA[f] << (33 - M)) >> i
        p.doubled = Signal(DRAW_BITS + 2)
        p.shifts_left = Signal(ZERO_FROM_U.bit_length())
        p.acc = Signal(DRAW_BITS + 2)                     # T+, then T+ + T- (<= 2**33)
        p.negative = Signal()
        p.up_admissible = Signal()
        p.up_lower = Signal()                             # B+ <= B-: T'+ = T(0) = 2**32
        m.d.sync += self.done.eq(0)
        with m.FSM() as fsm:
            with m.State("IDLE"):                         # the ROM reads B+ (phase UP)
                with m.If(self.start):
                    m.d.sync += [p.u.eq(self.u), p.acc.eq(0),
                                 p.shifts_left.eq(p.clipped[frac_bits:]),
                                 p.negative.eq(p.value < 0)]                 # B+ < 0
                    m.next = "LOAD"
            self._threshold_states(m, p)
            self._check_states(m, p)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m

    def _barrier(self, m, phase):
        """This phase's barrier through one adder: E0 + h+, E0 + h-, or h+ - h- (its carry in,
        the pair of low bits, subtracts); and the barrier clipped where T(B) = 0. A negative B+
        or B- gives a meaningless threshold: the step is inadmissible then, which DOWN_CHECK
        decides."""
        clip = ZERO_FROM_U << self.frac_bits             # T(B) = 0 from here on
        distance = phase == Phase.DISTANCE
        width = max(self.e0_bits + 1, self.h_bits) + 1
        a, b = Signal(signed(width)), Signal(signed(width))
        b_plain = Mux(phase == Phase.UP, self.h_up, self.h_down)
        m.d.comb += [a.eq(Mux(distance, self.h_up, self.e0)),
                     b.eq(Mux(distance, ~b_plain, b_plain))]
        value = Signal(signed(width))
        m.d.comb += value.eq((Cat(distance, a) + Cat(distance, b))[1:])
        barrier = Signal(signed(width + 1))
        m.d.comb += barrier.eq(Mux(distance & (value < 0), -value, value))
        clipped = Signal(range(clip + 1))
        m.d.comb += clipped.eq(Mux(barrier >= clip, clip, barrier))
        return value, clipped

    def _threshold_states(self, m, p):
        """LOAD (the ROM's mantissa) and SHIFT (by the exponent, BIG_SHIFT or one bit a cycle,
        then the rounded threshold into acc and on to the phase's check)."""
        doubled, shifts_left = p.doubled, p.shifts_left
        with m.State("LOAD"):
            m.d.sync += doubled.eq(p.read.data.shift_left(DRAW_BITS + 1 - self.mantissa_bits))
            m.next = "SHIFT"
        with m.State("SHIFT"):
            with m.If(shifts_left >= BIG_SHIFT):
                m.d.sync += [doubled.eq(doubled.shift_right(BIG_SHIFT)),
                             shifts_left.eq(shifts_left - BIG_SHIFT)]
            with m.Elif(shifts_left != 0):
                m.d.sync += [doubled.eq(doubled.shift_right(1)),
                             shifts_left.eq(shifts_left - 1)]
            with m.Else():
                m.d.sync += p.acc.eq(p.acc + doubled.shift_right(1) + doubled[0])
                with m.Switch(p.phase):
                    with m.Case(Phase.UP):
                        m.d.sync += p.phase.eq(Phase.DOWN)
                        m.next = "UP_CHECK"
                    with m.Case(Phase.DOWN):
                        m.d.sync += p.phase.eq(Phase.DISTANCE)
                        m.next = "DOWN_CHECK"
                    with m.Default():
                        m.next = "SCALED"

    @staticmethod
    def _goes_up(u, t_up):
        """The admissible up compare (a method: formal/serial_crossing.py's mutation moves it)."""
        return u < t_up

    def _check_states(self, m, p):
        """UP_CHECK, DOWN_CHECK (admissible: the outcome; else the distance's threshold) and
        SCALED, the inadmissible compare: a = T'+ >> 17, s = (T'+ + T'-) >> 17 with the lower
        barrier's threshold 2**32."""
        frac_bits, acc = self.frac_bits, p.acc
        distance_top = acc.shift_right(SCALED_SHIFT)
        scaled_total = (ONE >> SCALED_SHIFT) + distance_top
        scaled_up = Mux(p.up_lower, ONE >> SCALED_SHIFT, distance_top)
        draw_top = p.u.shift_right(DRAW_BITS - INADMISSIBLE_PRECISION_BITS)
        up_scaled = draw_top * scaled_total < scaled_up.shift_left(INADMISSIBLE_PRECISION_BITS)

        def finish(up, down, inadmissible):
            m.d.sync += [self.up.eq(up), self.down.eq(down),
                         self.inadmissible.eq(inadmissible), p.phase.eq(Phase.UP),
                         self.done.eq(1)]
            m.next = "IDLE"

        with m.State("UP_CHECK"):                         # acc = T+; the ROM reads B-
            m.d.sync += [p.up_admissible.eq(self._goes_up(p.u, acc)),
                         p.shifts_left.eq(p.clipped[frac_bits:]),
                         p.negative.eq(p.negative | (p.value < 0))]        # B- < 0
            m.next = "LOAD"
        with m.State("DOWN_CHECK"):                       # acc = T+ + T-; the ROM reads |B+ - B-|
            with m.If(p.negative | (acc > ONE)):
                m.d.sync += [acc.eq(0), p.up_lower.eq(p.value <= 0),      # B+ - B- <= 0
                             p.shifts_left.eq(p.clipped[frac_bits:])]
                m.next = "LOAD"
            with m.Else():
                finish(p.up_admissible, ~p.up_admissible & (p.u < acc), 0)
        with m.State("SCALED"):                           # acc = T(min(|B+ - B-|, clip))
            finish(up_scaled, ~up_scaled, 1)

