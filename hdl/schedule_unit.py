"""The schedule unit in RTL: Schedule.values_at(k) of python_model/schedules.py, one step at a time.

The value changes once per step of the array and a step lasts many cycles, so the unit is a
small sequential datapath rather than one wide combinational path:

* an accumulator ``ramp`` = min(k, k_sat) * rate for linear and exponential schedules (one
  addition per step, frozen at k_sat);
* a counter pair ``entry`` = min(k // steps_per_entry, length - 1), ``entry_step`` = k mod
  steps_per_entry addressing the table RAM;
* :class:`Log2Fixed`: a leading-one detector normalising tau + k, and LOG2_TABLE as a 256-entry
  ROM;
* EXP2_TABLE as a 256-entry ROM, one shift-add multiplier (signed by unsigned, one bit per cycle)
  shared by the logarithmic (scale * octaves) and exponential (start * 2**f) kinds, and the
  shift by 2**(e - 16);
* a final clamp to [lo, hi].

Two variants compute the same values through the same ports (``serial``):

* ``serial=False`` (ArrayCore): the normaliser shifts by 32, 16, 8, 4, 2, 1 in six cycles, a
  barrel shifter does the exponential's shift, every kind takes a fixed number of cycles.
* ``serial=True`` (CompactCore, for an iCE40UP5K): fewer LUTs, more cycles. The normaliser
  shifts one bit per cycle; there is no barrel shifter: after the multiplication the loop goes
  on with the multiplicand cleared, each extra cycle shifting the product right by one, and the
  number of cycles (from e) places the binary point, so that a fixed slice of the product
  register is the exponential's value; there is no result register either, one adder and the
  clamp take their operands straight from the registers of the kind in the last cycle.
  The number of cycles depends on the step: see :meth:`ScheduleUnit.max_latency`.

The table contents come from limemu.model.schedules, and so do the register widths
(:func:`~limemu.model.schedules.schedule_registers`). EXP2_TABLE is stored as its offsets from
2**16 (all its entries lie in [2**16, 2**17)), and the constant bit is added back in logic: a
16-bit ROM, one block RAM whatever the synthesis tool makes of a constant bit (Yosys 0.70 drops
it by itself, so the count below did not change).

Size and speed seen for bits=24, table_depth=4096 (Yosys 0.70, nextpnr 0.11, all ports driven
from flip-flops), serial=False: iCE40 UP5K about 1440 LUT4 and 26 EBR at 28 MHz; ECP5 about
1280 LUT4 at 99 MHz. The longest path is the exponential's barrel shifter into the value
register. Synthesis alone for the iCE40 (Yosys 0.70 synth_ice40, table_depth=256; logic cells
from nextpnr --pack-only, a cell being a LUT4 with its flip-flop and carry):

    ============  =======  ===  =====  ===  ===========
    bits, serial  LUT4     FF   carry  EBR  logic cells
    ============  =======  ===  =====  ===  ===========
    12, False     1045     330  392    3    1170
    12, True      684      300  338    3    778
    24, False     1349     415  490    4    1507
    24, True      909      376  426    4    1037
    ============  =======  ===  =====  ===  ===========
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from limemu.model.schedules import (
    COMPUTED_KINDS,
    EXP2_TABLE,
    EXP_RANGE_OCTAVES,
    KIND_CODES,
    KINDS,
    LOG2_BITS,
    LOG2_INPUT_BITS,
    LOG2_TABLE,
    LOG_FRAC_BITS,
    MAX_STEPS_PER_ENTRY,
    RATE_FRAC_BITS,
    STEP_BITS,
    TABLE_INDEX_BITS,
    check_kinds,
    schedule_registers,
)

#: EXP2_TABLE[f] = 2**16 * 2**(f/256): its fraction bits are those of EXP2_TABLE[0] = 1.0
EXP2_FRAC_BITS = int(EXP2_TABLE[0]).bit_length() - 1
EXP2_BITS = int(EXP2_TABLE.max()).bit_length()
#: what the EXP2 ROM holds: EXP2_TABLE - 2**16, in [0, 2**16) (one 16-bit block RAM)
EXP2_OFFSETS = EXP2_TABLE - 2**EXP2_FRAC_BITS
assert EXP2_OFFSETS.min() >= 0 and int(EXP2_OFFSETS.max()).bit_length() == EXP2_FRAC_BITS
assert EXP2_BITS == EXP2_FRAC_BITS + 1


def _rom(table):
    """A read-only Memory holding a table of limemu.model.schedules."""
    values = [int(v) for v in table]
    return Memory(shape=unsigned(max(values).bit_length()), depth=len(values), init=values)


def _check_serial(serial):
    if not isinstance(serial, bool):
        raise TypeError(f"serial = {serial!r}: must be True or False")
    return serial


class Log2Fixed(wiring.Component):
    """log2_fixed(n) of limemu.model.schedules for 1 <= n < 2**49.

    The normaliser shifts n left until its leading one reaches the top bit; the 8 bits after
    it then address LOG2_TABLE, and the number of shifts gives the exponent.

    * ``serial=False``: six normalisation steps (shift left by 32, 16, 8, 4, 2, 1 when the top
      bits are zero) with little logic per cycle, then the ROM read: LATENCY = 7 cycles.
    * ``serial=True``: one-bit shifts, the ROM reading the mantissa in the cycle that finds the
      top bit set: ``latency(n)`` = 50 - n.bit_length() cycles, from 1 (n >= 2**48) to
      SERIAL_MAX_LATENCY = 49 (n = 1). It stops after 48 shifts whatever n is (n = 0 too).

    Ports: ``n`` (49 bits) is sampled when ``start`` is high at a clock edge; ``busy`` is high
    for the latency after that; ``result`` (22 bits) is valid while ``busy`` is low.
    """

    n: In(LOG2_INPUT_BITS)
    start: In(1)
    busy: Out(1)
    result: Out(LOG2_BITS)

    SHIFTS = tuple(2**i for i in reversed(range((LOG2_INPUT_BITS - 1).bit_length())))
    LATENCY = len(SHIFTS) + 1        # the normalisation steps, then the ROM read
    SERIAL_MAX_LATENCY = LOG2_INPUT_BITS    # 48 one-bit shifts (n = 1), then the ROM read

    def __init__(self, *, serial=False):
        self.serial = _check_serial(serial)
        super().__init__()

    def __repr__(self):
        return f"Log2Fixed(serial={self.serial})"

    @property
    def max_latency(self):
        return self.SERIAL_MAX_LATENCY if self.serial else self.LATENCY

    def latency(self, n):
        """Cycles ``busy`` stays high for the number n."""
        if not self.serial:
            return self.LATENCY
        return LOG2_INPUT_BITS + 1 - min(max(int(n), 1).bit_length(), LOG2_INPUT_BITS)

    def elaborate(self, platform):
        m = Module()
        m.submodules.log2_rom = rom = _rom(LOG2_TABLE)
        read = rom.read_port()
        top = LOG2_INPUT_BITS - 1
        normalised = Signal(LOG2_INPUT_BITS)          # n shifted until its bit `top` is set
        exponent = Signal(range(LOG2_INPUT_BITS))     # top - the shifts so far
        stage = Signal(range(len(self.SHIFTS)))       # serial=False: the next of SHIFTS
        assert read.data.shape().width == LOG_FRAC_BITS
        m.d.comb += [read.addr.eq(normalised[top - TABLE_INDEX_BITS:top]),
                     self.result.eq(Cat(read.data, exponent))]   # exponent << 16 + fraction

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [normalised.eq(self.n), exponent.eq(top)]
                    if not self.serial:
                        m.d.sync += stage.eq(0)
                    m.next = "NORMALISE"
            if self.serial:
                with m.State("NORMALISE"):
                    with m.If(normalised[top] | (exponent == 0)):
                        m.next = "IDLE"         # the ROM reads the final mantissa
                    with m.Else():
                        m.d.sync += [normalised.eq(normalised << 1), exponent.eq(exponent - 1)]
            else:
                with m.State("NORMALISE"):
                    with m.Switch(stage):
                        for i, shift in enumerate(self.SHIFTS):
                            with m.Case(i):
                                with m.If(normalised[-shift:] == 0):
                                    m.d.sync += [normalised.eq(normalised << shift),
                                                 exponent.eq(exponent - shift)]
                    m.d.sync += stage.eq(stage + 1)
                    with m.If(stage == len(self.SHIFTS) - 1):
                        m.next = "READ_TABLE"
                with m.State("READ_TABLE"):         # the ROM reads the final mantissa
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m


class ScheduleUnit(wiring.Component):
    """One schedule (the barrier E0 or the gain eta) of a `bits`-bit unsigned format.

    Ports (the same for both variants):

    * ``cfg_<name>`` for every register of ``schedule_registers(bits, table_depth)``: driven by
      the core from ``schedule_register_values``; stable during a run.
    * ``table_we``, ``table_addr``, ``table_data``: host writes into the table RAM (entries
      0 .. table_length - 1 of a table schedule).
    * ``restart``: k := 0; ``advance``: k := k + 1. One-cycle strobes, only while ``busy`` is low.
    * ``busy``: high from the cycle after a strobe until ``value`` is valid.
    * ``value`` (bits): Schedule.values_at(k), valid while ``busy`` is low after the first restart.
    * ``step`` (48 bits): k, from the cycle after the strobe. Advancing past 2**48 - 1 (which the
      model rejects) wraps it.

    Latency in cycles (``busy`` high), see :meth:`max_latency`:

    * ``serial=False``, constant for each kind (LATENCY): constant and linear 2, table 3,
      exponential 4 + 22 (the multiplier), logarithmic 4 + 7 (log2) + 22 (the multiplier).
      Throughput: one step per LATENCY[kind] + 1 cycles.
    * ``serial=True``, at most: constant, linear and table 2; exponential 3 + (P + 17 + bits);
      logarithmic 3 + 49 (log2) + (P + 16), where P = max(bits, 16). For bits = 12: 48 and 84;
      bits = 24: 68 and 92. The exponential takes 3 + P + 16 - e cycles for an exponent
      e = floor(k * rate / 2**16) in [-bits, P), P + 20 + bits below that and 3 from P on (the
      value saturates); the logarithmic 3 + (50 - (tau + k).bit_length()) + (P + 16).

    Besides ``step``, the state a step leaves behind is ``ramp`` = min(k, k_sat) * rate,
    ``entry`` = min(k // steps_per_entry, table_length - 1) and ``entry_step`` = k mod
    steps_per_entry; they are attributes so that a simulation can start the unit at any k.
    """

    MULTIPLY_CYCLES = LOG2_BITS      # one bit of the unsigned operand (octaves or 2**f) per cycle
    LATENCY = {                      # serial=False
        "constant": 2,                                  # START, CLAMP
        "linear": 2,
        "table": 3,                                     # START (RAM read), READ_TABLE, CLAMP
        "exponential": 4 + MULTIPLY_CYCLES,             # + READ_EXP2, SCALE
        "logarithmic": 4 + Log2Fixed.LATENCY + MULTIPLY_CYCLES,     # + the loading cycle, SCALE
    }

    def __init__(self, *, bits, table_depth=4096, serial=False, kinds=KINDS):
        for name, value in (("bits", bits), ("table_depth", table_depth)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} = {value!r}: must be an integer")
        self.bits = bits
        self.table_depth = table_depth
        self.serial = _check_serial(serial)
        self.kinds = check_kinds(kinds)
        self.registers = schedule_registers(bits, table_depth, self.kinds)   # checks the ranges
        ports = {f"cfg_{name}": In(signed(width) if is_signed else unsigned(width))
                 for name, width, is_signed in self.registers}
        ports.update(table_we=In(1), table_addr=In(range(table_depth)), table_data=In(bits),
                     restart=In(1), advance=In(1),
                     busy=Out(1), value=Out(bits), step=Out(STEP_BITS))
        super().__init__(ports)
        # |ramp| <= k_sat * |rate| <= (span << 16) + |rate|, span <= max(2**bits, 64 octaves)
        ramp_bound = 2 * (max(2**bits, EXP_RANGE_OCTAVES) << RATE_FRAC_BITS)
        self.ramp = Signal(range(-ramp_bound, ramp_bound))
        self.entry = Signal(range(table_depth))
        self.entry_step = Signal(range(MAX_STEPS_PER_ENTRY))

        # serial=True: the multiplier's loop also shifts. After N cycles, N at least the width
        # of b, its registers hold a * b * 2**(lo_bits - N), rounded down once N > lo_bits (the
        # multiplicand is cleared when b has been shifted out: each further cycle only shifts
        # right), and their slice from bit lo_bits - P on holds a * b * 2**(P - N). N = P + 16
        # gives the logarithmic kind's scale * octaves >> 16; N = P + 16 - e the exponential's
        # start * EXP2_TABLE[f] * 2**(e - 16), with N >= 17 (the width of EXP2_TABLE[f]) for all
        # e < P. From e >= P = max(bits, 16) on the exponential saturates (its value is at least
        # 2**e); below e = -bits its value is 0, and so is the slice after N = P + 17 + bits
        # cycles (start * EXP2_TABLE[f] < 2**(bits + 17)).
        self._point = max(bits, EXP2_FRAC_BITS)                           # P
        self._lo_bits = max(LOG2_BITS, bits) if serial else LOG2_BITS     # >= P, >= 22
        self._log_cycles = self._point + LOG_FRAC_BITS                    # N, logarithmic
        self._vanish_cycles = self._point + EXP2_BITS + bits              # N, e < -bits

    def __repr__(self):
        return (f"ScheduleUnit(bits={self.bits}, table_depth={self.table_depth}, "
                f"serial={self.serial}, kinds={self.kinds})")

    def max_latency(self, kind):
        """The longest ``busy`` time after a strobe for a kind (a name of KINDS), in cycles:
        LATENCY[kind] if not serial (where it is also the shortest)."""
        if kind not in self.kinds:
            raise ValueError(f"kind = {kind!r}: must be one of {self.kinds}")
        if not self.serial:
            return self.LATENCY[kind]
        return {"exponential": 3 + self._vanish_cycles,           # START, READ_EXP2, CLAMP
                "logarithmic": 3 + Log2Fixed.SERIAL_MAX_LATENCY + self._log_cycles,
                }.get(kind, 2)                                      # START, CLAMP

    def elaborate(self, platform):
        m = Module()
        bits = self.bits
        kind = self.cfg_kind
        serial = self.serial
        # only the parts of the kinds this unit computes
        has_ramp = bool({"linear", "exponential"} & set(self.kinds))
        has_table = "table" in self.kinds
        has_log = "logarithmic" in self.kinds
        has_exp = "exponential" in self.kinds
        multiplies = has_log or has_exp
        clamps = bool(set(COMPUTED_KINDS) & set(self.kinds))   # else values come clamped
        start = getattr(self, "cfg_start", 0)                   # (no start: a table-only unit)

        if has_table:
            m.submodules.table = table = Memory(shape=unsigned(bits), depth=self.table_depth,
                                                init=[])
            table_write = table.write_port()
            table_read = table.read_port()
            m.d.comb += [table_write.addr.eq(self.table_addr),
                         table_write.data.eq(self.table_data),
                         table_write.en.eq(self.table_we),
                         table_read.addr.eq(self.entry)]
            table_data = table_read.data
        else:
            table_data = None
        if has_exp:
            m.submodules.exp2_rom = exp2_rom = _rom(EXP2_OFFSETS)
            exp2_read = exp2_rom.read_port()
            exp2 = Cat(exp2_read.data, 1)           # EXP2_TABLE[f]: the constant bit 16 back
            m.d.comb += exp2_read.addr.eq(
                self.ramp[RATE_FRAC_BITS - TABLE_INDEX_BITS:RATE_FRAC_BITS])
        if has_log:
            m.submodules.log2 = log2 = Log2Fixed(serial=serial)
            m.d.comb += log2.n.eq(self.cfg_tau + self.step)

        # multiplier: {product_hi, product_lo} = a * b, b shifted out of product_lo bit by bit
        # (a: scale or start, at most bits + 9 bits signed)
        multiplicand = Signal(signed(bits + 9))
        product_hi = Signal(signed(bits + 9))
        product_lo = Signal(self._lo_bits)                      # octaves or EXP2_TABLE[f] at first
        multiply_count = Signal(range(self._vanish_cycles if serial else self.MULTIPLY_CYCLES))
        multiply_last = Signal.like(multiply_count)             # serial: the loop's last cycle
        product = Cat(product_lo, product_hi).as_signed()
        partial = product_hi + Mux(product_lo[0], multiplicand, 0)

        exponent = self.ramp >> RATE_FRAC_BITS                  # e of the exponential kind
        exp_overflow = Signal()                                 # e >= P: the value saturates
        no_shift_exponent = self._point                         # 16 + headroom, the P of serial

        if serial:
            x = self._serial_result(m, product, exp_overflow, table_data)
        else:
            # exponential: value = start * EXP2_TABLE[f] * 2**(e - 16), e and f from the ramp. A
            # product >= 2**16 shifted left by `headroom` or more exceeds every hi < 2**bits;
            # below that the shifter computes (product << headroom) >> (headroom + 16 - e), all
            # shifted out from `shifter_bits` on. READ_EXP2 registers the shift, comparing e with
            # constants only (short carry chains).
            headroom = max(bits - EXP2_FRAC_BITS, 0)
            exp_product_bits = bits + EXP2_BITS
            shifter_bits = exp_product_bits + headroom
            exp_right_shift = Signal(range(shifter_bits + 1))
            right_shift = (no_shift_exponent - exponent)[:len(exp_right_shift)]
            shifted = (product[:exp_product_bits] << headroom) >> exp_right_shift
            exp_value = Mux(exp_overflow | shifted[bits:].any(), 2**bits, shifted[:bits])
            # the value before the clamp: start + (product >> 16) or the shifted exponential
            x = Signal(signed(len(product) - LOG_FRAC_BITS + 1))

        def load_multiplier(a, b, last_cycle=None):
            m.d.sync += [multiplicand.eq(a), product_hi.eq(0), product_lo.eq(b),
                         multiply_count.eq(0)]
            if serial:
                m.d.sync += multiply_last.eq(last_cycle)
            m.next = "MULTIPLY"

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.restart):
                    m.d.sync += [self.step.eq(0), self.ramp.eq(0), self.entry.eq(0),
                                 self.entry_step.eq(0)]
                    m.next = "START"
                with m.Elif(self.advance):
                    m.d.sync += self.step.eq(self.step + 1)
                    if has_ramp:
                        with m.If(self.step < self.cfg_k_sat):
                            m.d.sync += self.ramp.eq(self.ramp + self.cfg_rate)
                    if has_table:
                        with m.If(self.entry_step + 1 == self.cfg_steps_per_entry):
                            m.d.sync += self.entry_step.eq(0)
                            with m.If(self.entry + 1 < self.cfg_table_length):
                                m.d.sync += self.entry.eq(self.entry + 1)
                        with m.Else():
                            m.d.sync += self.entry_step.eq(self.entry_step + 1)
                    m.next = "START"

            with m.State("START"):
                with m.Switch(kind):
                    if "linear" in self.kinds:
                        with m.Case(KIND_CODES["linear"]):
                            if not serial:
                                m.d.sync += x.eq(self.cfg_start + (self.ramp >> RATE_FRAC_BITS))
                            m.next = "CLAMP"
                    if has_log:
                        with m.Case(KIND_CODES["logarithmic"]):
                            m.d.comb += log2.start.eq(1)
                            m.next = "LOG2"
                    if has_exp:
                        with m.Case(KIND_CODES["exponential"]):
                            m.next = "READ_EXP2"
                    if has_table:
                        with m.Case(KIND_CODES["table"]):
                            m.next = "CLAMP" if serial else "READ_TABLE"  # serial: CLAMP reads
                    with m.Default():           # constant, and codes of no kind here (never hang)
                        if not serial:
                            m.d.sync += x.eq(start)
                        m.next = "CLAMP"

            if has_table and not serial:
                with m.State("READ_TABLE"):
                    m.d.sync += x.eq(table_data)
                    m.next = "CLAMP"

            if has_log:
                with m.State("LOG2"):
                    with m.If(~log2.busy):
                        load_multiplier(self.cfg_scale, log2.result - self.cfg_log2_tau,
                                        self._log_cycles - 1)

            if has_exp:
                with m.State("READ_EXP2"):
                    m.d.sync += exp_overflow.eq(exponent >= no_shift_exponent)
                    if serial:
                        cycles = Mux(exponent < -bits, self._vanish_cycles,
                                     self._log_cycles - exponent)
                        load_multiplier(self.cfg_start, exp2, cycles - 1)
                        with m.If(exponent >= no_shift_exponent):
                            m.next = "CLAMP"        # saturated: no product needed
                    else:
                        m.d.sync += exp_right_shift.eq(
                            Mux(exponent <= no_shift_exponent - shifter_bits, shifter_bits,
                                right_shift))
                        load_multiplier(self.cfg_start, exp2)

            if multiplies:
                with m.State("MULTIPLY"):
                    m.d.sync += [product_hi.eq(partial >> 1),
                                 product_lo.eq(Cat(product_lo[1:], partial[0])),
                                 multiply_count.eq(multiply_count + 1)]
                    if serial:
                        with m.If(multiply_count == self._lo_bits - 1):
                            m.d.sync += multiplicand.eq(0)      # b consumed: shift right only
                        with m.If(multiply_count == multiply_last):
                            m.next = "CLAMP"
                    else:
                        with m.If(multiply_count == self.MULTIPLY_CYCLES - 1):
                            m.next = "SCALE"

            if multiplies and not serial:
                with m.State("SCALE"):
                    with m.If(kind == KIND_CODES["logarithmic"]):
                        m.d.sync += x.eq(self.cfg_start + (product >> LOG_FRAC_BITS))
                    with m.Else():
                        m.d.sync += x.eq(exp_value)
                    m.next = "CLAMP"

            with m.State("CLAMP"):
                if clamps:
                    m.d.sync += self.value.eq(Mux(x < self.cfg_lo, self.cfg_lo,
                                                  Mux(x > self.cfg_hi, self.cfg_hi, x)))
                else:
                    m.d.sync += self.value.eq(x)
                m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m

    def _serial_result(self, m, product, exp_overflow, table_data):
        """serial=True: the value before the clamp, combinationally from the registers the kind
        leaves in its last cycle: start + (ramp >> 16), start + (scale * octaves >> 16), the
        exponential or the table entry, through one adder. The multiplier's slice is first
        saturated to bits + 1 bits (its excess only decides the side of the clamp)."""
        bits = self.bits
        kind = self.cfg_kind
        if not set(COMPUTED_KINDS) & set(self.kinds):            # constant and table only
            if table_data is None:
                return self.cfg_start
            if "constant" not in self.kinds:
                return table_data
            return Mux(kind == KIND_CODES["table"], table_data, self.cfg_start)
        scaled = product[self._lo_bits - self._point:]          # a * b * 2**(P - N)
        excess = scaled[bits:]                                  # all equal: fits bits + 1 bits
        saturated = Mux(excess.all() | ~excess.any(), scaled[:bits + 1].as_signed(),
                        Mux(scaled[-1], -2**bits, 2**bits))
        addend = Signal(signed(bits + 3))
        with m.Switch(kind):
            if "linear" in self.kinds:
                with m.Case(KIND_CODES["linear"]):
                    m.d.comb += addend.eq(self.ramp >> RATE_FRAC_BITS)  # |.| < 2**(bits + 1)
            if "logarithmic" in self.kinds:
                with m.Case(KIND_CODES["logarithmic"]):
                    m.d.comb += addend.eq(saturated)
            if "exponential" in self.kinds:
                with m.Case(KIND_CODES["exponential"]):
                    m.d.comb += addend.eq(Mux(exp_overflow, 2**bits, saturated))
            if table_data is not None:
                with m.Case(KIND_CODES["table"]):
                    m.d.comb += addend.eq(table_data)
        plain = (kind == KIND_CODES["exponential"]) | (kind == KIND_CODES["table"])
        return Mux(plain, 0, self.cfg_start) + addend
