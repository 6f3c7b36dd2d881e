"""The schedule unit in RTL: Schedule.values_at(k) of python_model/schedules.py, one step at a time.

The value changes once per step of the array and a step lasts many cycles, so the unit is a
small sequential datapath rather than one wide combinational path:

* an accumulator ``ramp`` = min(k, k_sat) * rate for linear and exponential schedules (one
  addition per step, frozen at k_sat);
* a counter pair ``entry`` = min(k // steps_per_entry, length - 1), ``entry_step`` = k mod
  steps_per_entry addressing the table RAM;
* :class:`Log2Fixed`: a leading-one detector normalising tau + k in six shifts, and LOG2_TABLE
  as a 256-entry ROM;
* EXP2_TABLE as a 256-entry ROM, one shift-add multiplier (signed by unsigned, one bit per cycle)
  shared by the logarithmic (scale * octaves) and exponential (start * 2**f) kinds, and one
  barrel shifter for 2**e;
* a final clamp to [lo, hi].

The table contents come from python_model.schedules, and so do the register widths
(:func:`~python_model.schedules.schedule_registers`).

Size and speed seen for bits=24, table_depth=4096 (Yosys 0.70, nextpnr 0.11, all ports driven
from flip-flops): iCE40 UP5K about 1440 LUT4 and 26 EBR at 28 MHz; ECP5 about 1280 LUT4 at
99 MHz. The longest path is the exponential's barrel shifter into the value register.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from python_model.schedules import (EXP2_TABLE, EXP_RANGE_OCTAVES, KIND_CODES, LOG2_BITS,
                                    LOG2_INPUT_BITS, LOG2_TABLE, LOG_FRAC_BITS,
                                    MAX_STEPS_PER_ENTRY, RATE_FRAC_BITS, STEP_BITS,
                                    TABLE_INDEX_BITS, schedule_registers)

#: EXP2_TABLE[f] = 2**16 * 2**(f/256): its fraction bits are those of EXP2_TABLE[0] = 1.0
EXP2_FRAC_BITS = int(EXP2_TABLE[0]).bit_length() - 1
EXP2_BITS = int(EXP2_TABLE.max()).bit_length()


def _rom(table):
    """A read-only Memory holding a table of python_model.schedules."""
    values = [int(v) for v in table]
    return Memory(shape=unsigned(max(values).bit_length()), depth=len(values), init=values)


class Log2Fixed(wiring.Component):
    """log2_fixed(n) of python_model.schedules for 1 <= n < 2**49, in LATENCY cycles.

    Six normalisation steps (shift left by 32, 16, 8, 4, 2, 1 when the top bits are zero) find
    the leading one with little logic per cycle; the 8 bits after it then address LOG2_TABLE.

    Ports: ``n`` (49 bits) is sampled when ``start`` is high at a clock edge; ``busy`` is high
    for the LATENCY cycles after that; ``result`` (22 bits) is valid while ``busy`` is low.
    """

    n: In(LOG2_INPUT_BITS)
    start: In(1)
    busy: Out(1)
    result: Out(LOG2_BITS)

    SHIFTS = tuple(2**i for i in reversed(range((LOG2_INPUT_BITS - 1).bit_length())))
    LATENCY = len(SHIFTS) + 1        # the normalisation steps, then the ROM read

    def elaborate(self, platform):
        m = Module()
        m.submodules.log2_rom = rom = _rom(LOG2_TABLE)
        read = rom.read_port()
        top = LOG2_INPUT_BITS - 1
        normalised = Signal(LOG2_INPUT_BITS)          # n shifted until its bit `top` is set
        exponent = Signal(range(LOG2_INPUT_BITS))     # top - the shifts so far
        stage = Signal(range(len(self.SHIFTS)))
        m.d.comb += [read.addr.eq(normalised[top - TABLE_INDEX_BITS:top]),
                     self.result.eq((exponent << LOG_FRAC_BITS) + read.data)]

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [normalised.eq(self.n), exponent.eq(top), stage.eq(0)]
                    m.next = "NORMALISE"
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

    Ports:

    * ``cfg_<name>`` for every register of ``schedule_registers(bits, table_depth)``: driven by
      the core from ``schedule_register_values``; stable during a run.
    * ``table_we``, ``table_addr``, ``table_data``: host writes into the table RAM (entries
      0 .. table_length - 1 of a table schedule).
    * ``restart``: k := 0; ``advance``: k := k + 1. One-cycle strobes, only while ``busy`` is low.
    * ``busy``: high from the cycle after a strobe for LATENCY[kind] cycles.
    * ``value`` (bits): Schedule.values_at(k), valid while ``busy`` is low after the first restart.
    * ``step`` (48 bits): k. Advancing past 2**48 - 1 (which the model rejects) wraps it.

    Latency in cycles: constant and linear 2, table 3, exponential 4 + 22 (the multiplier),
    logarithmic 4 + 7 (log2) + 22 (the multiplier); see LATENCY. Throughput: one step per
    LATENCY[kind] + 1 cycles.

    Besides ``step``, the state a step leaves behind is ``ramp`` = min(k, k_sat) * rate,
    ``entry`` = min(k // steps_per_entry, table_length - 1) and ``entry_step`` = k mod
    steps_per_entry; they are attributes so that a simulation can start the unit at any k.
    """

    MULTIPLY_CYCLES = LOG2_BITS      # one bit of the unsigned operand (octaves or 2**f) per cycle
    LATENCY = {
        "constant": 2,                                  # START, CLAMP
        "linear": 2,
        "table": 3,                                     # START (RAM read), READ_TABLE, CLAMP
        "exponential": 4 + MULTIPLY_CYCLES,             # + READ_EXP2, SCALE
        "logarithmic": 4 + Log2Fixed.LATENCY + MULTIPLY_CYCLES,     # + the loading cycle, SCALE
    }

    def __init__(self, *, bits, table_depth=4096):
        for name, value in (("bits", bits), ("table_depth", table_depth)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} = {value!r}: must be an integer")
        self.bits = bits
        self.table_depth = table_depth
        self.registers = schedule_registers(bits, table_depth)    # checks the ranges
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

    def __repr__(self):
        return f"ScheduleUnit(bits={self.bits}, table_depth={self.table_depth})"

    def elaborate(self, platform):
        m = Module()
        bits = self.bits
        kind = self.cfg_kind

        m.submodules.table = table = Memory(shape=unsigned(bits), depth=self.table_depth, init=[])
        table_write = table.write_port()
        table_read = table.read_port()
        m.submodules.exp2_rom = exp2_rom = _rom(EXP2_TABLE)
        exp2_read = exp2_rom.read_port()
        m.submodules.log2 = log2 = Log2Fixed()

        # multiplier: {product_hi, product_lo} = a * b, b shifted out of product_lo bit by bit
        multiplicand = Signal(self.cfg_scale.shape())          # scale or start
        product_hi = Signal(self.cfg_scale.shape())
        product_lo = Signal(LOG2_BITS)                          # octaves or EXP2_TABLE[f] at first
        multiply_count = Signal(range(self.MULTIPLY_CYCLES))
        product = Cat(product_lo, product_hi).as_signed()
        partial = product_hi + Mux(product_lo[0], multiplicand, 0)

        # exponential: value = start * EXP2_TABLE[f] * 2**(e - 16), e and f from the ramp. A product
        # >= 2**16 shifted left by `headroom` or more exceeds every hi < 2**bits; below that the
        # shifter computes (product << headroom) >> (headroom + 16 - e), all shifted out from
        # `shifter_bits` on. READ_EXP2 registers the shift, comparing e with constants only
        # (short carry chains).
        exponent = self.ramp >> RATE_FRAC_BITS
        headroom = max(bits - EXP2_FRAC_BITS, 0)
        exp_product_bits = bits + EXP2_BITS
        shifter_bits = exp_product_bits + headroom
        no_shift_exponent = EXP2_FRAC_BITS + headroom            # the e of a zero right shift
        exp_overflow = Signal()
        exp_right_shift = Signal(range(shifter_bits + 1))
        right_shift = (no_shift_exponent - exponent)[:len(exp_right_shift)]
        shifted = (product[:exp_product_bits] << headroom) >> exp_right_shift
        exp_value = Mux(exp_overflow | shifted[bits:].any(), 2**bits, shifted[:bits])

        # the value before the clamp: start + (product >> 16) or the shifted exponential
        x = Signal(signed(len(product) - LOG_FRAC_BITS + 1))

        m.d.comb += [
            table_write.addr.eq(self.table_addr),
            table_write.data.eq(self.table_data),
            table_write.en.eq(self.table_we),
            table_read.addr.eq(self.entry),
            exp2_read.addr.eq(self.ramp[RATE_FRAC_BITS - TABLE_INDEX_BITS:RATE_FRAC_BITS]),
            log2.n.eq(self.cfg_tau + self.step),
        ]

        def load_multiplier(a, b):
            m.d.sync += [multiplicand.eq(a), product_hi.eq(0), product_lo.eq(b),
                         multiply_count.eq(0)]
            m.next = "MULTIPLY"

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.restart):
                    m.d.sync += [self.step.eq(0), self.ramp.eq(0), self.entry.eq(0),
                                 self.entry_step.eq(0)]
                    m.next = "START"
                with m.Elif(self.advance):
                    m.d.sync += self.step.eq(self.step + 1)
                    with m.If(self.step < self.cfg_k_sat):
                        m.d.sync += self.ramp.eq(self.ramp + self.cfg_rate)
                    with m.If(self.entry_step + 1 == self.cfg_steps_per_entry):
                        m.d.sync += self.entry_step.eq(0)
                        with m.If(self.entry + 1 < self.cfg_table_length):
                            m.d.sync += self.entry.eq(self.entry + 1)
                    with m.Else():
                        m.d.sync += self.entry_step.eq(self.entry_step + 1)
                    m.next = "START"

            with m.State("START"):
                with m.Switch(kind):
                    with m.Case(KIND_CODES["linear"]):
                        m.d.sync += x.eq(self.cfg_start + (self.ramp >> RATE_FRAC_BITS))
                        m.next = "CLAMP"
                    with m.Case(KIND_CODES["logarithmic"]):
                        m.d.comb += log2.start.eq(1)
                        m.next = "LOG2"
                    with m.Case(KIND_CODES["exponential"]):
                        m.next = "READ_EXP2"
                    with m.Case(KIND_CODES["table"]):
                        m.next = "READ_TABLE"
                    with m.Default():           # constant, and unused codes (never hang)
                        m.d.sync += x.eq(self.cfg_start)
                        m.next = "CLAMP"

            with m.State("READ_TABLE"):
                m.d.sync += x.eq(table_read.data)
                m.next = "CLAMP"

            with m.State("LOG2"):
                with m.If(~log2.busy):
                    load_multiplier(self.cfg_scale, log2.result - self.cfg_log2_tau)

            with m.State("READ_EXP2"):
                m.d.sync += [exp_overflow.eq(exponent >= no_shift_exponent),
                             exp_right_shift.eq(Mux(exponent <= no_shift_exponent - shifter_bits,
                                                    shifter_bits, right_shift))]
                load_multiplier(self.cfg_start, exp2_read.data)

            with m.State("MULTIPLY"):
                m.d.sync += [product_hi.eq(partial >> 1),
                             product_lo.eq(Cat(product_lo[1:], partial[0])),
                             multiply_count.eq(multiply_count + 1)]
                with m.If(multiply_count == self.MULTIPLY_CYCLES - 1):
                    m.next = "SCALE"

            with m.State("SCALE"):
                with m.If(kind == KIND_CODES["logarithmic"]):
                    m.d.sync += x.eq(self.cfg_start + (product >> LOG_FRAC_BITS))
                with m.Else():
                    m.d.sync += x.eq(exp_value)
                m.next = "CLAMP"

            with m.State("CLAMP"):
                m.d.sync += self.value.eq(Mux(x < self.cfg_lo, self.cfg_lo,
                                              Mux(x > self.cfg_hi, self.cfg_hi, x)))
                m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
