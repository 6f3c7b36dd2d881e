"""The host bridge's transmitter: a response of hdl/protocol.py, byte by byte, to the UART.

It takes a response header (status, seq, payload length) from the executor, the count of
skipped bytes from the receiver, sends the header, then the payload's words as the executor
hands them over (one word at a time, low byte first), then the CRC (`protocol.CRC`'s logic),
computed on the fly over every byte after the sync byte.

Ports:

* ``response`` (In, a stream of RESPONSE_LAYOUT): taken when the transmitter is idle;
* ``words`` (In, a stream of 32-bit words): the payload, taken as the word's last byte leaves;
* ``skipped`` (flipped `SKIPPED_SIGNATURE`): the count goes into the response (``taken``);
* ``bytes`` (Out, a byte stream): to UartTx;
* ``idle`` (Out): no response under way (the last byte has been taken by the UART).
"""

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .frame_receiver import SKIPPED_SIGNATURE
from .protocol import CRC, RESPONSE_SYNC, WORD_BYTES
from .regmap import WORD_BITS

#: a response's header fields besides sync and skipped
RESPONSE_LAYOUT = data.StructLayout({"status": 8, "seq": 8, "length": 16})


class ResponseTransmitter(wiring.Component):
    """See the module docstring."""

    response: In(stream.Signature(RESPONSE_LAYOUT))
    words: In(stream.Signature(WORD_BITS))
    skipped: In(SKIPPED_SIGNATURE)
    bytes: Out(stream.Signature(8))
    idle: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = CRC.create()
        header = Signal(RESPONSE_LAYOUT)
        skipped = Signal(8)
        remaining = Signal(16)                          # the length, then the bytes to send
        byte_of_word = Signal(range(WORD_BYTES))
        sent = self.bytes.valid & self.bytes.ready
        m.d.comb += crc.data.eq(self.bytes.payload)

        def offer(value, counted=True):
            """Offer `value`; whether it counts in the CRC."""
            m.d.comb += [self.bytes.payload.eq(value), self.bytes.valid.eq(1),
                         crc.valid.eq(sent & counted)]

        # (state, byte, counted in the CRC, next state), one byte a state
        offers = (("SYNC", RESPONSE_SYNC, False, "STATUS"),
                  ("STATUS", header.status, True, "SEQ"),
                  ("SEQ", header.seq, True, "SKIPPED"),
                  ("SKIPPED", skipped, True, "LENGTH_LO"),
                  ("LENGTH_LO", remaining[:8], True, "LENGTH_HI"),
                  ("LENGTH_HI", remaining[8:], True, "PAYLOAD"),
                  ("CRC_LO", crc.crc[:8], False, "CRC_HI"),
                  ("CRC_HI", crc.crc[8:], False, "IDLE"))
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.idle.eq(1), self.response.ready.eq(1),
                             self.skipped.taken.eq(self.response.valid),
                             crc.start.eq(self.response.valid)]
                with m.If(self.response.valid):
                    m.d.sync += [header.eq(self.response.payload), skipped.eq(self.skipped.count),
                                 remaining.eq(self.response.payload.length), byte_of_word.eq(0)]
                    m.next = "SYNC"
            for state, value, counted, after in offers:
                with m.State(state):
                    offer(value, counted)
                    with m.If(self.bytes.ready):
                        m.next = after
                        if after == "PAYLOAD":
                            with m.If(remaining == 0):             # no payload
                                m.next = "CRC_LO"
            self._payload_state(m, remaining, byte_of_word, sent, crc)
        return m

    def _payload_state(self, m, remaining, byte_of_word, sent, crc):
        """PAYLOAD: the word's bytes, low first; the word is taken with its last byte."""
        with m.State("PAYLOAD"):
            m.d.comb += [self.bytes.payload.eq(self.words.payload.word_select(byte_of_word, 8)),
                         self.bytes.valid.eq(self.words.valid), crc.valid.eq(sent)]
            with m.If(sent):
                m.d.sync += [byte_of_word.eq(byte_of_word + 1), remaining.eq(remaining - 1)]
                with m.If(byte_of_word == WORD_BYTES - 1):
                    m.d.comb += self.words.ready.eq(1)     # the executor may hand on the next
                with m.If(remaining == 1):
                    m.next = "CRC_LO"
