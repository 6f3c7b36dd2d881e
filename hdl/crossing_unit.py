"""The crossing unit in RTL: limemu.model.crossing.decide_one bit for bit, one evaluation a cycle.

Threshold of a barrier B >= 0 (docs/physics.md §4), with B clipped to ZERO_FROM_U << F where
T has already reached 0, i = B >> F and f = B mod 2**F:

    T(B) = ((MANTISSA[f] << (32 - M)) + 2**(i-1)) >> i
         = (((MANTISSA[f] << (33 - M)) >> i) + 1) >> 1

(the second form rounds half up with an incrementer instead of an adder of a decoded 2**(i-1),
and needs no case for i = 0: the shifted mantissa is then even and the increment drops out). The
inadmissible rule needs only one threshold besides T(B+) and T(B-): subtracting the smaller
barrier from both leaves 0, whose threshold is 2**32, and |B+ - B-|.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from limemu.model.crossing import (
    DRAW_BITS,
    INADMISSIBLE_PRECISION_BITS,
    ONE,
    ZERO_FROM_U,
    mantissa_rom,
)
from limemu.model.errors import require

# the inadmissible compare keeps thresholds' top bits: a = T'+ >> 17, s = (T'+ + T'-) >> 17
SCALED_SHIFT = DRAW_BITS + 1 - INADMISSIBLE_PRECISION_BITS


#: a crossing unit's outcome: at most one of up and down; inadmissible: p+ + p- > 1
DECISION_PORTS = {"up": Out(1), "down": Out(1), "inadmissible": Out(1)}


def check_unit_parameters(frac_bits, mantissa_bits, *widths):
    """ConfigError unless the table parameters and every (name, value, low, high) of `widths`
    (barrier widths, held in int64 by the golden model) are integers in range."""
    for name, value, low, high, reason in (
            ("frac_bits", frac_bits, 1, 16, "the ROM has 2**frac_bits rows"),
            ("mantissa_bits", mantissa_bits, 1, DRAW_BITS,
             "a mantissa must fit in the 32-bit draw"),
            *[(*width, "the golden model holds barriers in int64") for width in widths]):
        require(isinstance(value, int) and not isinstance(value, bool), name, value,
                "must be an integer")
        require(low <= value <= high, name, value, f"must be in [{low}, {high}]: {reason}")


def crossing_barrier_width(spec):
    """Signed width of a crossing barrier E0 +- h: E0 unsigned ``spec.barrier_bits`` wide, the
    half tilt h signed ``spec.tilt_bits`` wide."""
    return max(spec.barrier_bits + 1, spec.tilt_bits) + 1


class CrossingUnit(wiring.Component):
    """One lane's crossing decision: a 32-bit draw and two barriers in, three outcomes out.

    Inputs (one evaluation per cycle, ``valid_in`` marks it): ``u`` (32-bit draw), ``b_up`` and
    ``b_down`` (signed ``barrier_width``-bit crossing barriers B+ and B- in energy LSBs of
    2**-frac_bits u, any sign: a negative barrier makes the step inadmissible, as in
    ``decide_one``). Outputs ``latency`` = 7 cycles later: ``valid_out``, ``up``, ``down`` and
    ``inadmissible`` (all 0 while ``valid_out`` is 0; ``up`` and ``down`` never both). Throughput:
    one evaluation per cycle, no stalls.

    Pipeline: 1 clip the barriers to [0, 34 u] and subtract them; 2 read the mantissa ROM
    (2**frac_bits x (mantissa_bits + 1) bits, three read ports: T(B+), T(B-), T(|B+ - B-|));
    3 barrel-shift; 4 round; 5 T+ + T- and u < T+, scaled operands; 6 u < T+ + T-, the
    admissibility compare and the 16 x 17-bit multiply; 7 the scaled compare and the outcome.

    Cost per lane: three ROM read ports, three 34-bit shifters by 0..34 and incrementers, an
    adder and four comparators of about 34 bits, a (barrier_width + 1)-bit subtractor, one
    16 x 17-bit multiplier and the pipeline registers (the draw waits five cycles for its
    thresholds). Yosys 0.70 for frac_bits = 8, mantissa_bits = 14, barrier_width = 52:
    synth_ice40 -dsp 716 LUT4, 459 carry cells, 565 flip-flops, 3 block RAMs, 1 SB_MAC16;
    synth_ecp5 keeps the ROMs in LUTs: 1416 LUT4, 610 flip-flops, 1 MULT18X18D.
    """

    latency = 7
    #: the three lookups of a decision, in the order of ``rom_addr`` and ``rom_data``
    LOOKUPS = ("up", "down", "distance")

    def __init__(self, *, frac_bits, mantissa_bits, barrier_width, external_rom=False):
        """external_rom: the unit has no ROM of its own but ports ``rom_addr`` (Out, one per
        lookup) and ``rom_data`` (In, the ROM's word for that address one cycle later): a
        parent can put several lanes' lookups in one block RAM (mantissa_rom's contents)."""
        self.frac_bits = frac_bits          # stored first: __repr__ names a rejected unit too
        self.mantissa_bits = mantissa_bits
        self.barrier_width = barrier_width
        self.external_rom = external_rom
        check_unit_parameters(frac_bits, mantissa_bits, ("barrier_width", barrier_width, 2, 64))
        members = {
            "valid_in": In(1),
            "u": In(DRAW_BITS),
            "b_up": In(signed(barrier_width)),
            "b_down": In(signed(barrier_width)),
            "valid_out": Out(1),
            **DECISION_PORTS,
        }
        if external_rom:
            members.update(rom_addr=Out(frac_bits).array(len(self.LOOKUPS)),
                           rom_data=In(mantissa_bits + 1).array(len(self.LOOKUPS)))
        super().__init__(members)

    def __repr__(self):
        rom = ", external_rom=True" if self.external_rom else ""
        return (f"CrossingUnit(frac_bits={self.frac_bits}, mantissa_bits={self.mantissa_bits}, "
                f"barrier_width={self.barrier_width}{rom})")

    def elaborate(self, platform):
        m = Module()
        clip = ZERO_FROM_U << self.frac_bits           # T(B) = 0 from here on
        stage2 = self._clip_and_read(m, clip)
        stage4 = self._thresholds(m, stage2)
        self._decide(m, stage4)
        return m

    @staticmethod
    def _later(m, value, name, shape=None):
        """``value`` one cycle later, in a register of ``shape`` (default: value's)."""
        register = Signal(value.shape() if shape is None else shape, name=name)
        m.d.sync += register.eq(value)
        return register

    def _clip_and_read(self, m, clip):
        """Stages 1 and 2: clip B+ and B- (their sign travels as a flag), B+ - B- for the
        inadmissible case; min(|B+ - B-|, clip) -- decided on the difference, so that the
        negation only needs the low bits -- and the ROM reads."""
        later, frac_bits = self._later, self.frac_bits
        clipped_shape = unsigned(clip.bit_length())
        valid1 = later(m, self.valid_in, "valid1")
        u1 = later(m, self.u, "u1")
        negative1 = later(m, (self.b_up < 0) | (self.b_down < 0), "negative1")
        up1 = later(m, Mux(self.b_up >= clip, clip, self.b_up), "up1", clipped_shape)
        down1 = later(m, Mux(self.b_down >= clip, clip, self.b_down), "down1", clipped_shape)
        difference1 = later(m, self.b_up - self.b_down, "difference1")

        beyond_clip = (difference1 >= clip) | (difference1 <= -clip)
        magnitude = Mux(difference1 < 0, -difference1, difference1)
        distance1 = Signal(clipped_shape, name="distance1")
        m.d.comb += distance1.eq(Mux(beyond_clip, clip, magnitude))
        if not self.external_rom:
            m.submodules.mantissa_rom = rom = Memory(
                shape=unsigned(self.mantissa_bits + 1), depth=1 << frac_bits,
                init=mantissa_rom(frac_bits, self.mantissa_bits))
        out = {"mantissas": [], "exponents": []}
        for k, (name, barrier) in enumerate(zip(self.LOOKUPS, (up1, down1, distance1))):
            if self.external_rom:
                m.d.comb += self.rom_addr[k].eq(barrier[:frac_bits])
                out["mantissas"].append(self.rom_data[k])
            else:
                port = rom.read_port()
                m.d.comb += port.addr.eq(barrier[:frac_bits])
                out["mantissas"].append(port.data)
            out["exponents"].append(later(m, barrier[frac_bits:], f"{name}_exponent2"))
        out.update(valid=later(m, valid1, "valid2"), u=later(m, u1, "u2"),
                   negative=later(m, negative1, "negative2"),
                   # B+ <= B-: T'+ = T(0) = 2**32
                   up_lower=later(m, difference1 <= 0, "up_lower2"))
        return out

    def _thresholds(self, m, stage2):
        """Stages 3 and 4: twice the threshold before rounding, (MANTISSA[f] << (33 - M)) >> i,
        then the thresholds (<= 2**32: 33 bits)."""
        later, names = self._later, self.LOOKUPS
        doubled3 = [later(m, mantissa.shift_left(DRAW_BITS + 1 - self.mantissa_bits) >> exponent,
                          f"{name}_doubled3")
                    for name, mantissa, exponent in zip(names, stage2["mantissas"],
                                                        stage2["exponents"])]
        stage3 = {key: later(m, stage2[key], f"{key}3")
                  for key in ("valid", "u", "negative", "up_lower")}
        stage4 = {key: later(m, value, f"{key}4") for key, value in stage3.items()}
        stage4["thresholds"] = [
            later(m, (doubled + 1).shift_right(1), f"{name}_threshold4", unsigned(DRAW_BITS + 1))
            for name, doubled in zip(names, doubled3)]
        return stage4

    def _decide(self, m, stage4):
        """Stages 5 to 7: the admissible sum and first compare, the operands of the scaled
        compare (where the lower barrier's threshold is 2**32: s = (2**32 + T(|B+ - B-|)) >> 17
        = 2**15 + (T >> 17)); the second compare, admissibility, the multiply; the scaled
        compare and the outcome."""
        later = self._later
        t_up4, t_down4, t_distance4 = stage4["thresholds"]
        u4 = stage4["u"]
        total5 = later(m, t_up4 + t_down4, "total5")
        up_admissible5 = later(m, u4 < t_up4, "up_admissible5")
        distance_top = t_distance4.shift_right(SCALED_SHIFT)
        scaled_total5 = later(m, (ONE >> SCALED_SHIFT) + distance_top, "scaled_total5")
        scaled_up5 = later(m, Mux(stage4["up_lower"], ONE >> SCALED_SHIFT, distance_top),
                           "scaled_up5", unsigned(INADMISSIBLE_PRECISION_BITS))
        draw_top5 = later(m, u4.shift_right(DRAW_BITS - INADMISSIBLE_PRECISION_BITS),
                          "draw_top5")
        valid5 = later(m, stage4["valid"], "valid5")
        u5 = later(m, u4, "u5")
        negative5 = later(m, stage4["negative"], "negative5")

        down_admissible6 = later(m, ~up_admissible5 & (u5 < total5), "down_admissible6")
        inadmissible6 = later(m, negative5 | (total5 > ONE), "inadmissible6")
        product6 = later(m, draw_top5 * scaled_total5, "product6")
        up_admissible6 = later(m, up_admissible5, "up_admissible6")
        scaled_up6 = later(m, scaled_up5, "scaled_up6")
        valid6 = later(m, valid5, "valid6")

        up_scaled = product6 < scaled_up6.shift_left(INADMISSIBLE_PRECISION_BITS)
        m.d.sync += [
            self.valid_out.eq(valid6),
            self.up.eq(valid6 & Mux(inadmissible6, up_scaled, up_admissible6)),
            self.down.eq(valid6 & Mux(inadmissible6, ~up_scaled, down_admissible6)),
            self.inadmissible.eq(valid6 & inadmissible6),
        ]
