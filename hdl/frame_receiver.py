"""The host bridge's receiver: bytes from the UART into one request of hdl/protocol.py.

It hunts for REQUEST_SYNC (counting the bytes it skips), then takes command, seq, length,
payload and crc, feeding the CRC (`protocol.CRC`'s logic) one byte per cycle as the bytes
arrive and comparing the received crc with it on the fly. The payload's address (and a READ's
count) go into the request, its words into the bridge's buffer memory (a write port of
MAX_WORDS words). It then holds the request (``request.valid``) until the executor takes it
(``request.ready``, once the response is sent): a complete frame, a frame too long for the
buffer (as soon as its header is in), a truncated frame (``timeout_cycles`` without a byte
inside a frame) or garbage followed by the same silence. Bytes that arrive while it holds a
request are skipped bytes too.

Ports:

* ``bytes`` (In, a byte stream without back-pressure: UartRx's);
* ``request`` (Out, a stream of `request_layout(rmap)`): valid while the request is held;
* ``buffer`` (a memory write port, 32-bit words): the payload's words, word i at address i;
* ``skipped`` (`SKIPPED_SIGNATURE`): the bytes skipped since the last response, saturating at
  255; the transmitter takes the count with ``taken`` when it starts a response;
* ``active`` (Out): inside a frame, holding a request, or skipped bytes not yet reported.
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out
from limemu.model.errors import require

from .protocol import (
    ADDRESS_BYTES,
    BUFFER_BYTES,
    COUNT_BYTES,
    CRC,
    MAX_WORDS,
    REQUEST_SYNC,
    WORD_BYTES,
)
from .regmap import CONTROL, WORD_BITS

SKIPPED_BITS = 8                       # the response's one-byte field
#: the skipped-bytes count, from the receiver's side: the transmitter takes it (``taken``, a
#: one-cycle strobe) into a response, and counting starts again
SKIPPED_SIGNATURE = wiring.Signature({"count": Out(SKIPPED_BITS), "taken": In(1)})
#: the buffer of a request's words, from the memory's side
BUFFER_ADDRESS_BITS = (MAX_WORDS - 1).bit_length()

assert WORD_BYTES == 4                 # byte-in-word = two bits of the payload position


class Event(enum.Enum, shape=2):
    """What kind of request the receiver holds."""
    FRAME = 0          # a complete frame (``crc_ok`` says whether its crc matched)
    TOO_LONG = 1       # a header whose length exceeds the buffer
    TRUNCATED = 2      # silence inside a frame
    GARBAGE = 3        # skipped bytes, then silence


def request_layout(rmap):
    """A request as the receiver hands it on: its event, header fields, the payload's address
    (its bits inside the map, and whether any above them was set), a READ's count, whether the
    first word has the ``start`` bit (the run rule), whether the crc matched."""
    return data.StructLayout({
        "event": Event, "command": 8, "seq": 8, "seq_received": 1, "length": 16,
        "address": rmap.address_bits, "address_beyond": 1, "count": 8 * COUNT_BYTES,
        "first_starts": 1, "crc_ok": 1})


class FrameReceiver(wiring.Component):
    """``FrameReceiver(rmap, timeout_cycles)``: see the module docstring."""

    def __init__(self, rmap, timeout_cycles):
        require(isinstance(timeout_cycles, int) and timeout_cycles >= 1, "timeout_cycles",
                timeout_cycles, "must be a positive integer")
        self.rmap, self.timeout_cycles = rmap, timeout_cycles
        super().__init__({
            "bytes": In(stream.Signature(8, always_ready=True)),
            "request": Out(stream.Signature(request_layout(rmap))),
            "buffer": In(WritePort.Signature(addr_width=BUFFER_ADDRESS_BITS, shape=WORD_BITS)),
            "skipped": Out(SKIPPED_SIGNATURE),
            "active": Out(1),
        })

    def __repr__(self):
        return f"FrameReceiver({self.rmap!r}, timeout_cycles={self.timeout_cycles})"

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = CRC.create()
        r = self.request.payload
        got, byte = self.bytes.valid, self.bytes.payload
        skip = Signal()                                 # this cycle's byte is skipped
        self._count_skipped(m, skip)
        silent = self._silence(m)
        low_ok = Signal()                               # the crc's low byte matched
        position = Signal(range(BUFFER_BYTES))          # of the payload byte
        m.d.comb += crc.data.eq(byte)

        def truncated():
            m.d.sync += r.event.eq(Event.TRUNCATED)
            m.next = "HELD"

        def header_byte(state, field, after, also=None):
            """A header byte: into `field` and the CRC; then ``also()``."""
            with m.State(state):
                with m.If(got):
                    m.d.comb += crc.valid.eq(1)
                    m.d.sync += field.eq(byte)
                    m.next = after
                    if also is not None:
                        also()
                with m.Elif(silent):
                    truncated()

        def seq_received():
            m.d.sync += r.seq_received.eq(1)

        with m.FSM() as fsm:
            with m.State("HUNT"):
                with m.If(got):
                    with m.If(byte == REQUEST_SYNC):
                        m.d.comb += crc.start.eq(1)
                        m.d.sync += r.seq_received.eq(0)
                        m.next = "COMMAND"
                    with m.Else():
                        m.d.comb += skip.eq(1)
                with m.Elif(silent & (self.skipped.count != 0)):
                    m.d.sync += r.event.eq(Event.GARBAGE)
                    m.next = "HELD"
            header_byte("COMMAND", r.command, "SEQ")
            header_byte("SEQ", r.seq, "LENGTH_LO", seq_received)
            header_byte("LENGTH_LO", r.length[:8], "LENGTH_HI")
            header_byte("LENGTH_HI", r.length[8:], "PAYLOAD",
                        lambda: self._length_checks(m, position))
            self._payload_state(m, crc, position, silent, truncated)
            for state, crc_byte, after in (("CRC_LO", crc.crc[:8], "CRC_HI"),
                                           ("CRC_HI", crc.crc[8:], "HELD")):
                with m.State(state):
                    with m.If(got):
                        matches = byte == crc_byte
                        if state == "CRC_LO":
                            m.d.sync += low_ok.eq(matches)
                        else:
                            m.d.sync += [r.crc_ok.eq(low_ok & matches), r.event.eq(Event.FRAME)]
                        m.next = after
                    with m.Elif(silent):
                        truncated()
            with m.State("HELD"):                       # the executor owns the request
                m.d.comb += [skip.eq(got), self.request.valid.eq(1)]
                with m.If(self.request.ready):
                    m.next = "HUNT"
        m.d.comb += self.active.eq(~fsm.ongoing("HUNT") | (self.skipped.count != 0))
        return m

    def _count_skipped(self, m, skip):
        count = self.skipped.count
        with m.If(self.skipped.taken):
            m.d.sync += count.eq(skip)
        with m.Elif(skip & ~count.all()):               # saturates at 255
            m.d.sync += count.eq(count + 1)

    def _silence(self, m):
        """1 when timeout_cycles have passed since the last byte."""
        silence = Signal(range(self.timeout_cycles + 1))    # cycles since the last byte
        silent = silence == self.timeout_cycles
        with m.If(self.bytes.valid):
            m.d.sync += silence.eq(0)
        with m.Elif(~silent):
            m.d.sync += silence.eq(silence + 1)
        return silent

    def _length_checks(self, m, position):
        """With the length's high byte: a length past the buffer is answered at once, a zero
        length goes straight to the crc."""
        r, byte = self.request.payload, self.bytes.payload
        full_length = Cat(r.length[:8], byte)
        m.d.sync += position.eq(0)
        with m.If(full_length > BUFFER_BYTES):
            m.d.sync += r.event.eq(Event.TOO_LONG)
            m.next = "HELD"
        with m.Elif(full_length == 0):
            m.next = "CRC_LO"

    def _payload_state(self, m, crc, position, silent, truncated):
        """PAYLOAD: the address bytes, a READ's count, the words into the buffer."""
        r, got, byte = self.request.payload, self.bytes.valid, self.bytes.payload
        data_offset = (position - ADDRESS_BYTES)[:len(position)]    # byte of the words
        assembled = Signal(WORD_BITS - 8)               # the word's bytes so far
        new_word = Cat(assembled, byte)
        with m.State("PAYLOAD"):
            with m.If(got):
                m.d.comb += crc.valid.eq(1)
                m.d.sync += position.eq(position + 1)
                with m.If(position < ADDRESS_BYTES):
                    self._address_byte(m, position, byte)
                with m.Else():
                    m.d.sync += assembled.eq(new_word[8:])
                    with m.If(data_offset < COUNT_BYTES):
                        m.d.sync += r.count.eq(Cat(r.count[8:], byte))
                    with m.If(data_offset[:2] == WORD_BYTES - 1):     # a word is complete
                        m.d.comb += [self.buffer.addr.eq(data_offset[2:]),
                                     self.buffer.data.eq(new_word), self.buffer.en.eq(1)]
                        with m.If(data_offset[2:] == 0):
                            m.d.sync += r.first_starts.eq(new_word[CONTROL["start"]])
                with m.If(position == r.length - 1):
                    m.next = "CRC_LO"
            with m.Elif(silent):
                truncated()

    def _address_byte(self, m, position, byte):
        """Byte `position` (0 first, least significant) of the address field: its bits inside
        the map go into the address, any set above them sets ``address_beyond``."""
        r, bits = self.request.payload, self.rmap.address_bits
        for q in range(ADDRESS_BYTES):
            low = 8 * q
            inside = max(0, min(8, bits - low))           # bits of this byte in the map
            with m.If(position == q):
                if inside:
                    m.d.sync += r.address[low:low + inside].eq(byte[:inside])
                above = byte[inside:].any() if inside < 8 else 0
                m.d.sync += r.address_beyond.eq(above if q == 0 else r.address_beyond | above)
