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
  shared by the logarithmic (scale * octaves) and exponential (start * 2**f) kinds, and a
  barrel shifter for the shift by 2**(e - 16);
* a final clamp to [lo, hi].

A unit is built for the kinds it is asked for (``kinds``): only their parts are there. With
``serial=True`` (the compact core's, for an iCE40UP5K) a unit of the kinds without a
multiplier (constant, linear, table) has no result register: one adder and the clamp take their
operands straight from the registers (the start, the ramp, the table RAM's output), two cycles
for every kind.

The table contents come from limemu.model.schedules, and so do the register widths
(:func:`~limemu.model.schedules.schedule_registers`). EXP2_TABLE is stored as its offsets from
2**16 (all its entries lie in [2**16, 2**17)), and the constant bit is added back in logic: a
16-bit ROM, one block RAM whatever the synthesis tool makes of a constant bit.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from limemu.model.errors import require
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


class Log2Fixed(wiring.Component):
    """log2_fixed(n) of limemu.model.schedules for 1 <= n < 2**49.

    The normaliser shifts n left until its leading one reaches the top bit (six steps: by 32,
    16, 8, 4, 2, 1 when the top bits are zero); the 8 bits after it then address LOG2_TABLE,
    and the number of shifts gives the exponent.

    Ports: ``n`` (49 bits) is sampled when ``start`` is high at a clock edge; ``busy`` is high
    for LATENCY = 7 cycles after that; ``result`` (22 bits) is valid while ``busy`` is low.
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
        stage = Signal(range(len(self.SHIFTS)))       # the next of SHIFTS
        assert read.data.shape().width == LOG_FRAC_BITS
        m.d.comb += [read.addr.eq(normalised[top - TABLE_INDEX_BITS:top]),
                     self.result.eq(Cat(read.data, exponent))]   # exponent << 16 + fraction

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

    * ``cfg_<name>`` for every register of ``schedule_registers(bits, table_depth, kinds)``:
      driven by the core from ``schedule_register_values``; stable during a run.
    * ``table_we``, ``table_addr``, ``table_data``: host writes into the table RAM (entries
      0 .. table_length - 1 of a table schedule).
    * ``restart``: k := 0; ``advance``: k := k + 1. One-cycle strobes, only while ``busy`` is low.
    * ``busy``: high from the cycle after a strobe until ``value`` is valid.
    * ``value`` (bits): Schedule.values_at(k), valid while ``busy`` is low after the first restart.
    * ``step`` (STEP_BITS): k, from the cycle after the strobe. Advancing past 2**STEP_BITS - 1
      (which the model rejects) wraps it.

    Latency in cycles (``busy`` high), the same for every step: LATENCY[kind]; ``serial=True``:
    2 for each of its kinds. Throughput: one step per latency + 1 cycles.

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
    #: the kinds a serial unit computes (no multiplier)
    SERIAL_KINDS = ("constant", "linear", "table")

    def __init__(self, *, bits, table_depth=4096, serial=False, kinds=KINDS):
        for name, value in (("bits", bits), ("table_depth", table_depth)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} = {value!r}: must be an integer")
        if not isinstance(serial, bool):
            raise TypeError(f"serial = {serial!r}: must be True or False")
        self.bits, self.table_depth, self.serial = bits, table_depth, serial
        self.kinds = check_kinds(kinds)
        require(not serial or set(self.kinds) <= set(self.SERIAL_KINDS), "kinds", self.kinds,
                f"must be among {self.SERIAL_KINDS} for a serial unit (it has no multiplier)")
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

    def __repr__(self):
        return (f"ScheduleUnit(bits={self.bits}, table_depth={self.table_depth}, "
                f"serial={self.serial}, kinds={self.kinds})")

    def max_latency(self, kind):
        """The ``busy`` time after a strobe for a kind (a name of the unit's kinds), in
        cycles."""
        if kind not in self.kinds:
            raise ValueError(f"kind = {kind!r}: must be one of {self.kinds}")
        return 2 if self.serial else self.LATENCY[kind]

    def elaborate(self, platform):
        m = Module()
        table_data = self._table(m)
        log2 = Log2Fixed() if "logarithmic" in self.kinds else None
        if self.serial:
            x = self._serial_result(m, table_data)
        else:
            x = Signal(signed(self.bits + 9 + LOG2_BITS - LOG_FRAC_BITS + 1))
        with m.FSM() as fsm:
            self._step(m)
            with m.State("START"):
                with m.Switch(self.cfg_kind):
                    self._start(m, x, log2)
            if not self.serial:
                if "table" in self.kinds:
                    with m.State("READ_TABLE"):
                        m.d.sync += x.eq(table_data)
                        m.next = "CLAMP"
                if {"logarithmic", "exponential"} & set(self.kinds):
                    self._multiply(m, x, log2)
            with m.State("CLAMP"):
                if set(COMPUTED_KINDS) & set(self.kinds):
                    m.d.sync += self.value.eq(Mux(x < self.cfg_lo, self.cfg_lo,
                                                  Mux(x > self.cfg_hi, self.cfg_hi, x)))
                else:                                   # table and constant come clamped
                    m.d.sync += self.value.eq(x)
                m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m

    def _table(self, m):
        """The table RAM (host writes, read at ``entry``): its output, or None."""
        if "table" not in self.kinds:
            return None
        m.submodules.table = table = Memory(shape=unsigned(self.bits), depth=self.table_depth,
                                            init=[])
        table_write, table_read = table.write_port(), table.read_port()
        m.d.comb += [table_write.addr.eq(self.table_addr), table_write.data.eq(self.table_data),
                     table_write.en.eq(self.table_we), table_read.addr.eq(self.entry)]
        return table_read.data

    def _step(self, m):
        """IDLE: a restart (k := 0) or an advance (k := k + 1, and the ramp and the table's
        entry with it), then START."""
        with m.State("IDLE"):
            with m.If(self.restart):
                m.d.sync += [self.step.eq(0), self.ramp.eq(0), self.entry.eq(0),
                             self.entry_step.eq(0)]
                m.next = "START"
            with m.Elif(self.advance):
                m.d.sync += self.step.eq(self.step + 1)
                if {"linear", "exponential"} & set(self.kinds):
                    with m.If(self.step < self.cfg_k_sat):
                        m.d.sync += self.ramp.eq(self.ramp + self.cfg_rate)
                if "table" in self.kinds:
                    with m.If(self.entry_step + 1 == self.cfg_steps_per_entry):
                        m.d.sync += self.entry_step.eq(0)
                        with m.If(self.entry + 1 < self.cfg_table_length):
                            m.d.sync += self.entry.eq(self.entry + 1)
                    with m.Else():
                        m.d.sync += self.entry_step.eq(self.entry_step + 1)
                m.next = "START"

    def _start(self, m, x, log2):
        """START, by kind: where the value comes from (serial: the registers, in CLAMP)."""
        serial = self.serial
        if "linear" in self.kinds:
            with m.Case(KIND_CODES["linear"]):
                if not serial:
                    m.d.sync += x.eq(self.cfg_start + (self.ramp >> RATE_FRAC_BITS))
                m.next = "CLAMP"
        if "logarithmic" in self.kinds:
            with m.Case(KIND_CODES["logarithmic"]):
                m.d.comb += log2.start.eq(1)
                m.next = "LOG2"
        if "exponential" in self.kinds:
            with m.Case(KIND_CODES["exponential"]):
                m.next = "READ_EXP2"
        if "table" in self.kinds:
            with m.Case(KIND_CODES["table"]):
                m.next = "CLAMP" if serial else "READ_TABLE"     # serial: CLAMP reads the RAM
        with m.Default():           # constant, and codes of no kind here (never hang)
            if not serial:
                m.d.sync += x.eq(getattr(self, "cfg_start", 0))  # (a table-only unit: none)
            m.next = "CLAMP"

    def _multiply(self, m, x, log2):
        """The logarithmic and exponential kinds: LOG2 or READ_EXP2, then MULTIPLY (one bit of
        the unsigned operand a cycle: {product_hi, product_lo} = a * b, b shifted out of
        product_lo), then SCALE."""
        bits = self.bits
        multiplicand = Signal(signed(bits + 9))                 # scale or start
        product_hi = Signal(signed(bits + 9))
        product_lo = Signal(LOG2_BITS)                          # octaves or EXP2_TABLE[f] at first
        multiply_count = Signal(range(self.MULTIPLY_CYCLES))
        product = Cat(product_lo, product_hi).as_signed()
        partial = product_hi + Mux(product_lo[0], multiplicand, 0)

        def load_multiplier(a, b):
            m.d.sync += [multiplicand.eq(a), product_hi.eq(0), product_lo.eq(b),
                         multiply_count.eq(0)]
            m.next = "MULTIPLY"

        if log2 is not None:
            m.submodules.log2 = log2
            m.d.comb += log2.n.eq(self.cfg_tau + self.step)
            with m.State("LOG2"):
                with m.If(~log2.busy):
                    load_multiplier(self.cfg_scale, log2.result - self.cfg_log2_tau)
        exp_value = self._exponential(m, product, load_multiplier) \
            if "exponential" in self.kinds else None
        with m.State("MULTIPLY"):
            m.d.sync += [product_hi.eq(partial >> 1),
                         product_lo.eq(Cat(product_lo[1:], partial[0])),
                         multiply_count.eq(multiply_count + 1)]
            with m.If(multiply_count == self.MULTIPLY_CYCLES - 1):
                m.next = "SCALE"
        with m.State("SCALE"):
            with m.If(self.cfg_kind == KIND_CODES["logarithmic"]):
                m.d.sync += x.eq(self.cfg_start + (product >> LOG_FRAC_BITS))
            with m.Else():
                m.d.sync += x.eq(exp_value)
            m.next = "CLAMP"

    def _exponential(self, m, product, load_multiplier):
        """READ_EXP2 (loads start * EXP2_TABLE[f]); returns the exponential's value from the
        product: start * EXP2_TABLE[f] * 2**(e - 16), e and f from the ramp. A product >= 2**16
        shifted left by `headroom` or more exceeds every hi < 2**bits; below that the shifter
        computes (product << headroom) >> (headroom + 16 - e), all shifted out from
        `shifter_bits` on. READ_EXP2 registers the shift, comparing e with constants only
        (short carry chains)."""
        bits = self.bits
        m.submodules.exp2_rom = exp2_rom = _rom(EXP2_OFFSETS)
        exp2_read = exp2_rom.read_port()
        exp2 = Cat(exp2_read.data, 1)           # EXP2_TABLE[f]: the constant bit 16 back
        m.d.comb += exp2_read.addr.eq(self.ramp[RATE_FRAC_BITS - TABLE_INDEX_BITS:RATE_FRAC_BITS])
        exponent = self.ramp >> RATE_FRAC_BITS
        no_shift_exponent = max(bits, EXP2_FRAC_BITS)
        exp_overflow = Signal()                     # the value saturates
        headroom = max(bits - EXP2_FRAC_BITS, 0)
        exp_product_bits = bits + EXP2_BITS
        shifter_bits = exp_product_bits + headroom
        exp_right_shift = Signal(range(shifter_bits + 1))
        right_shift = (no_shift_exponent - exponent)[:len(exp_right_shift)]
        with m.State("READ_EXP2"):
            m.d.sync += [exp_overflow.eq(exponent >= no_shift_exponent),
                         exp_right_shift.eq(Mux(exponent <= no_shift_exponent - shifter_bits,
                                                shifter_bits, right_shift))]
            load_multiplier(self.cfg_start, exp2)
        shifted = (product[:exp_product_bits] << headroom) >> exp_right_shift
        return Mux(exp_overflow | shifted[bits:].any(), 2**bits, shifted[:bits])

    def _serial_result(self, m, table_data):
        """serial=True: the value before the clamp, combinationally from the registers the kind
        leaves: start (constant), start + (ramp >> 16) (linear), the table entry; one adder."""
        kind, start = self.cfg_kind, getattr(self, "cfg_start", 0)
        if "linear" not in self.kinds:                           # constant and table only
            if table_data is None:
                return start
            if "constant" not in self.kinds:
                return table_data
            return Mux(kind == KIND_CODES["table"], table_data, start)
        addend = Signal(signed(self.bits + 3))
        with m.Switch(kind):
            with m.Case(KIND_CODES["linear"]):
                m.d.comb += addend.eq(self.ramp >> RATE_FRAC_BITS)  # |.| < 2**(bits + 1)
            if table_data is not None:
                with m.Case(KIND_CODES["table"]):
                    m.d.comb += addend.eq(table_data)
        return Mux(kind == KIND_CODES["table"], 0, start) + addend
