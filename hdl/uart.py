"""A UART, 8N1: one start bit (0), eight data bits least significant first, one stop bit (1).

``divisor`` is the number of clock cycles of one bit (clock_hz / baud, rounded by the caller).
Both ends speak `amaranth.lib.stream`: the receiver's bytes come out of a stream without
back-pressure (``always_ready``: a byte is gone if nobody takes it), the transmitter's go into a
stream with ``ready``.

Receiver: the line passes a two-flip-flop synchroniser (it comes from another clock domain,
the host's). A falling edge while idle starts a byte; the start bit is checked half a bit later
(a shorter low pulse is a glitch and ignored) and every later bit is sampled one divisor after
the previous one, i.e. in the middle of the bit. The synchroniser delays every sample by the
same two cycles, so it does not shift the sampling point within a bit. At the middle of the
stop bit the byte is delivered (``data.valid`` for one cycle); a stop bit of 0 also pulses
``frame_error`` (the byte is delivered all the same: the frame's CRC decides) and the receiver
then waits for the line to go high before it looks for the next start bit (a break or a
framing slip would otherwise read as a stream of zeros).

Transmitter: the ``data`` stream in (a byte is taken when ``valid`` and ``ready`` are high); the
``tx`` line is a flip-flop, idle high. ``ready`` rises in the last cycle of the stop bit, so
bytes offered back to back leave exactly ten bits apart.
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out
from limemu.model.errors import require

DATA_BITS = 8
FRAME_BITS = 1 + DATA_BITS + 1          # start, data, stop: the line time of one byte
MIN_DIVISOR = 4                         # half a bit must be at least two cycles


def check_divisor(divisor):
    require(isinstance(divisor, int) and divisor >= MIN_DIVISOR, "divisor", divisor,
            f"must be an integer >= {MIN_DIVISOR} (clock cycles per bit)")


class _Uart(wiring.Component):
    """What both directions share: the checked ``divisor``."""

    def __init__(self, divisor):
        check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def __repr__(self):
        return f"{type(self).__name__}({self.divisor})"


class UartRx(_Uart):
    """Ports: ``rx`` (the line); ``data``, a stream of the bytes received (one ``valid`` cycle
    per byte, no back-pressure); ``frame_error`` (with ``data.valid``, when the stop bit was 0)
    and ``busy`` (a byte is being received)."""

    rx: In(1, init=1)
    data: Out(stream.Signature(DATA_BITS, always_ready=True))
    frame_error: Out(1)
    busy: Out(1)

    def first_sample(self):
        """Cycles from the falling edge to the start bit's sample: half a bit."""
        return self.divisor // 2

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.synchroniser = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(self.divisor))     # cycles to the next sample
        bit = Signal(range(DATA_BITS))
        shift = Signal(DATA_BITS)
        sample = timer == 0
        with m.If(~sample):
            m.d.sync += timer.eq(timer - 1)
        m.d.sync += [self.data.valid.eq(0), self.frame_error.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.first_sample() - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.comb += self.busy.eq(1)
                with m.If(sample):
                    m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                    with m.If(line):                  # high again: a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += self.busy.eq(1)
                with m.If(sample):
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), bit.eq(bit + 1),
                                 timer.eq(self.divisor - 1)]
                    with m.If(bit == DATA_BITS - 1):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.comb += self.busy.eq(1)
                with m.If(sample):
                    m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1),
                                 self.frame_error.eq(~line)]
                    m.next = "IDLE"
                    with m.If(~line):
                        m.next = "BREAK"
            with m.State("BREAK"):                    # after a frame error: wait for idle
                with m.If(line):
                    m.next = "IDLE"
        return m


class UartTx(_Uart):
    """Ports: ``data``, the stream of bytes to send; ``tx`` (the line, idle high)."""

    data: In(stream.Signature(DATA_BITS))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))     # cycles left of the bit on the line
        remaining = Signal(range(FRAME_BITS + 1))   # bits of the byte still on or to the line
        shift = Signal(DATA_BITS + 1)           # the bits after the one on the line
        bit_ends = timer == 0
        m.d.comb += self.data.ready.eq((remaining == 0) | ((remaining == 1) & bit_ends))

        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [self.tx.eq(0), shift.eq(Cat(self.data.payload, 1)),
                         remaining.eq(FRAME_BITS), timer.eq(self.divisor - 1)]
        with m.Elif(remaining != 0):
            with m.If(bit_ends):
                # next bit; ones shift in behind the stop bit, so the line idles high
                m.d.sync += [self.tx.eq(shift[0]), shift.eq(Cat(shift[1:], 1)),
                             remaining.eq(remaining - 1), timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
