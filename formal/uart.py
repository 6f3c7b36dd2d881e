"""The UART (hdl/uart.py).

* ``uart_rx.no_lost_byte``: a sender whose baud is off by up to +-2 % (the link's limit,
  hdl/host_bridge.py's MAX_BAUD_ERROR), with any sub-cycle phase, any bytes and any idle
  time between them (back to back too): UartRx delivers every byte, unchanged, without
  frame_error, before the next start bit (or half a bit into the silence after it), and
  nothing else. Bounded: `depth` cycles from reset (one frame and the next one's start).
  The sender is the harness's: its bit time is divisor * 100 / rate cycles, rate in 98..102 of 100,
  kept by a phase accumulator.
* ``uart_tx.framing``: UartTx puts each byte it takes on the line as a start bit, the eight
  data bits least significant first and a stop bit, ``divisor`` cycles each, the line high
  otherwise (a harness that follows the frame bit by bit).

The mutation samples each bit at its end instead of its middle (``first_sample`` one cycle
short of a bit): a fast sender's bits are then read one late.
"""

from amaranth.asserts import AnyConst, AnySeq, Initial
from amaranth.hdl import Assert, Assume, Cat, Module, Mux, ResetSignal, Signal

from limemu.hdl.uart import DATA_BITS, FRAME_BITS, UartRx, UartTx

from .runner import Property

DIVISOR = 4
SCALE = 100                         # the sender's rate 100 is the receiver's baud
RATES = (98, 102)                   # +-2 %


class SamplesLate(UartRx):
    """Mutation: samples at the end of each bit."""

    def first_sample(self):
        return self.divisor - 1


def rx_harness(mutant):
    m = Module()
    m.submodules.rx = rx = (SamplesLate if mutant else UartRx)(DIVISOR)
    # no reset after the start: the synchroniser keeps its samples through one (it has no
    # reset), so a reset in the middle of a frame may misread that frame
    m.d.comb += Assume(~ResetSignal())
    rate = AnyConst(range(RATES[1] + 1))
    m.d.comb += Assume((rate >= RATES[0]) & (rate <= RATES[1]))

    # the sender: a phase accumulator, one bit each DIVISOR * SCALE
    bit_span = DIVISOR * SCALE
    sending, bit = Signal(), Signal(range(FRAME_BITS))
    phase = Signal(range(bit_span + RATES[1]))
    byte = Signal(DATA_BITS)
    frame = Cat(0, byte, 1)
    m.d.comb += rx.rx.eq(~sending | frame.bit_select(bit, 1))
    start, new_byte, start_phase = AnySeq(1), AnySeq(DATA_BITS), AnySeq(range(SCALE))
    starts = ~sending & start
    with m.If(starts):
        m.d.sync += [sending.eq(1), bit.eq(0), phase.eq(start_phase), byte.eq(new_byte)]
    with m.Elif(sending):
        with m.If(phase + rate >= bit_span):
            m.d.sync += [phase.eq(phase + rate - bit_span), bit.eq(bit + 1)]
            with m.If(bit == FRAME_BITS - 1):
                m.d.sync += sending.eq(0)
        with m.Else():
            m.d.sync += phase.eq(phase + rate)

    # what was sent and not yet delivered: at most two bytes, the older first
    pending, expected = Signal(2), Signal(2 * DATA_BITS)
    age = Signal(range(12 * DIVISOR))           # cycles since the older one's start bit
    deliver = rx.data.valid
    m.d.sync += age.eq(Mux(deliver, 0, age + pending[0]))
    with m.If(deliver):
        m.d.sync += [pending.eq(Cat(pending[1], starts)),
                     expected.eq(Cat(expected[DATA_BITS:], new_byte))]
        with m.If(starts & ~pending[1]):
            m.d.sync += [pending.eq(1), expected[:DATA_BITS].eq(new_byte)]
    with m.Elif(starts):
        with m.If(pending[0]):
            m.d.sync += [pending[1].eq(1), expected[DATA_BITS:].eq(new_byte)]
        with m.Else():
            m.d.sync += [pending[0].eq(1), expected[:DATA_BITS].eq(new_byte)]
    with m.If(~Initial()):
        # delivered within 10.5 bit times (plus the synchroniser) of its start bit
        m.d.comb += Assert(age < FRAME_BITS * DIVISOR + DIVISOR // 2 + 3)
        m.d.comb += Assert(~(starts & pending[1]))
        with m.If(deliver):
            m.d.comb += [Assert(pending[0]), Assert(rx.data.payload == expected[:DATA_BITS]),
                         Assert(~rx.frame_error)]
    return m


def tx_harness(mutant):
    m = Module()
    m.submodules.tx = tx = UartTx(4)
    m.d.comb += [tx.data.valid.eq(AnySeq(1)), tx.data.payload.eq(AnySeq(DATA_BITS))]
    taken = tx.data.valid & tx.data.ready
    active, bit = Signal(), Signal(range(FRAME_BITS))
    cycle = Signal(range(tx.divisor))
    frame = Signal(FRAME_BITS, init=-1)
    with m.If(taken):
        m.d.sync += [active.eq(1), bit.eq(0), cycle.eq(0), frame.eq(Cat(0, tx.data.payload, 1))]
    with m.Elif(active):
        m.d.sync += cycle.eq(cycle + 1)
        with m.If(cycle == tx.divisor - 1):
            m.d.sync += [cycle.eq(0), bit.eq(bit + 1)]
            with m.If(bit == FRAME_BITS - 1):
                m.d.sync += active.eq(0)
    m.d.comb += Assert(tx.tx == (~active | frame.bit_select(bit, 1)))
    # a byte is taken only in the last cycle of a frame or when idle
    with m.If(taken & active):
        m.d.comb += Assert((bit == FRAME_BITS - 1) & (cycle == tx.divisor - 1))
    return m


PROPERTIES = [
    Property("uart_rx.no_lost_byte", rx_harness, "bmc", 46,
             "UartRx delivers every byte unchanged at +-2 % baud error, any phase and gaps",
             mutant="samples at the end of each bit", timeout=1800),
    Property("uart_tx.framing", tx_harness, "bmc", 45,
             "UartTx: start, 8 data bits LSB first, stop, divisor cycles each; idle high"),
]
