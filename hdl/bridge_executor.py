"""The host bridge's executor: checks a request completely, applies it on the core's bus, answers.

It takes a request from the receiver (hdl/frame_receiver.py) and checks it, in the order of
hdl/protocol.py: crc, command, length, the duplicate filter (a WRITE with the seq of the last
applied WRITE), the run rule, then every word address of the burst, one per cycle, against
`AddressRule` (the register map's `RegisterMap.refusal` as logic). Only then does it apply
it: one bus write per ready cycle, or one bus read per word of the answer. It hands the
transmitter the response's header and then its payload words (from the bus or the INFO table),
and releases the request (``request.ready``) when the transmitter has sent the response.

Ports:

* ``request`` (In, a stream of `request_layout(rmap)`);
* ``buffer`` (a memory read port, 32-bit words): the request's words;
* ``core`` (flipped `CoreSignature`): the bus master's side of a core's ports;
* ``response`` (Out, a stream of RESPONSE_LAYOUT) and ``words`` (Out, a stream of 32-bit words):
  to the transmitter; ``tx_idle`` (In): the transmitter has nothing left to send;
* ``active`` (Out): a request is being checked, applied or answered.

INFO answers `protocol.info_words` of the build, with ``run_cycles``: the cycles the core was
busy since the last start this bridge applied (its high word as it was when the low word was
sent).
"""

from types import SimpleNamespace

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory, ReadPort
from amaranth.lib.wiring import In, Out

from .address_decode import AddressRule
from .core_control import CoreSignature
from .frame_receiver import BUFFER_ADDRESS_BITS, Event, request_layout
from .protocol import (
    ADDRESS_BYTES,
    COMMANDS,
    INFO_FIELDS,
    MAX_WORDS,
    READ_LENGTH,
    STATUS,
    WORD_BYTES,
)
from .regmap import CONTROL, WORD_BITS
from .response_transmitter import RESPONSE_LAYOUT

RUN_CYCLES_BITS = 48                   # INFO's run_cycles: 78 hours at 1 GHz before it wraps


class BridgeExecutor(wiring.Component):
    """``BridgeExecutor(rmap, info)``, `info` the words INFO answers (run_cycles live): see
    the module docstring."""

    def __init__(self, rmap, info):
        assert len(info) == len(INFO_FIELDS)
        self.rmap, self.info = rmap, list(info)
        # a burst address (< 2**address_bits + MAX_WORDS) fits address_bits + 1 bits
        assert 2**rmap.address_bits >= MAX_WORDS
        super().__init__({
            "request": In(stream.Signature(request_layout(rmap))),
            "buffer": In(ReadPort.Signature(addr_width=BUFFER_ADDRESS_BITS, shape=WORD_BITS)),
            "core": In(CoreSignature(rmap.address_bits)),
            "response": Out(stream.Signature(RESPONSE_LAYOUT)),
            "words": Out(stream.Signature(WORD_BITS)),
            "tx_idle": In(1),
            "active": Out(1),
        })

    def __repr__(self):
        return f"BridgeExecutor({self.rmap!r}, info={self.info})"

    def elaborate(self, platform):
        m = Module()
        rmap, r = self.rmap, self.request.payload
        m.submodules.rule = rule = AddressRule(rmap)
        p = self._burst(m)
        self._count_run_cycles(m, p)
        m.d.comb += [rule.address.eq(p.burst_address), rule.beyond.eq(p.base_beyond),
                     rule.write.eq(p.is_write), rule.running.eq(p.running)]
        with m.If(self.response.valid & self.response.ready):
            m.d.sync += self.response.valid.eq(0)
        with m.If(self.words.valid & self.words.ready):
            m.d.sync += self.words.valid.eq(0)      # the transmitter took the word

        def respond(status, seq, length=0, then="FINISH"):
            m.d.sync += [self.response.payload.status.eq(STATUS[status]),
                         self.response.payload.seq.eq(seq),
                         self.response.payload.length.eq(length), self.response.valid.eq(1)]
            m.next = then

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.request.valid):
                    with m.Switch(r.event):
                        with m.Case(Event.GARBAGE):
                            respond("GARBAGE", 0)
                        with m.Case(Event.TRUNCATED):
                            respond("TRUNCATED", Mux(r.seq_received, r.seq, 0))
                        with m.Case(Event.TOO_LONG):
                            respond("BAD_LENGTH", r.seq)
                        with m.Case(Event.FRAME):
                            m.next = "VALIDATE"
            self._validate(m, p, respond)
            self._check(m, p, rule, respond)
            self._apply(m, p, respond)
            self._read(m, p)
            self._info(m, p)
            with m.State("FINISH"):                     # the response has been sent
                with m.If(~self.response.valid & self.tx_idle):
                    m.d.comb += self.request.ready.eq(1)
                    m.next = "IDLE"
        m.d.comb += self.active.eq(~fsm.ongoing("IDLE"))
        return m

    def _burst(self, m):
        """The request's derived fields and the burst's registers, in a namespace."""
        rmap, r = self.rmap, self.request.payload
        p = SimpleNamespace()
        p.is_info = r.command == COMMANDS["INFO"]
        p.is_write = r.command == COMMANDS["WRITE"]
        p.is_read = r.command == COMMANDS["READ"]
        words_part = r.length - ADDRESS_BYTES
        p.write_words = words_part[2:]
        p.length_fits = Mux(p.is_info, r.length == 0, Mux(
            p.is_write, (r.length >= ADDRESS_BYTES + WORD_BYTES) & (words_part[:2] == 0),
            (r.length == READ_LENGTH) & (r.count >= 1) & (r.count <= MAX_WORDS)))
        p.control = rmap["control"].base
        # write_refusal's run rule: during a run only one word to control without start
        p.stop_only = ((p.write_words == 1) & (r.address == p.control) & ~r.address_beyond
                       & ~r.first_starts)
        p.base = Signal(rmap.address_bits)
        p.base_beyond = Signal()
        p.total = Signal(range(MAX_WORDS + 1))            # words of the burst
        p.index = Signal(range(MAX_WORDS))                # word of the burst / INFO word
        p.burst_address = p.base + p.index                # < 2**(address_bits + 1)
        p.last = p.index == p.total - 1
        p.running = Signal()                              # core.busy when the frame was checked
        p.refused_busy = Signal()
        p.last_write_seq, p.last_write_valid = Signal(8), Signal()
        return p

    def _count_run_cycles(self, m, p):
        """The cycles the core is busy after the last start this bridge applied (INFO)."""
        core = self.core
        p.run_cycles = Signal(RUN_CYCLES_BITS)
        start_applied = core.we & (core.addr == p.control) & core.wdata[CONTROL["start"]]
        with m.If(start_applied):
            m.d.sync += p.run_cycles.eq(0)
        with m.Elif(core.busy):
            m.d.sync += p.run_cycles.eq(p.run_cycles + 1)

    def _validate(self, m, p, respond):
        """VALIDATE: the whole frame's checks but the addresses."""
        r = self.request.payload
        with m.State("VALIDATE"):
            m.d.sync += [p.base.eq(r.address), p.base_beyond.eq(r.address_beyond),
                         p.index.eq(0), p.running.eq(self.core.busy),
                         p.total.eq(Mux(p.is_write, p.write_words, r.count)),
                         p.refused_busy.eq(0)]
            with m.If(~r.crc_ok):
                respond("BAD_CRC", r.seq)
            with m.Elif(~(p.is_info | p.is_write | p.is_read)):
                respond("UNKNOWN_COMMAND", r.seq)
            with m.Elif(~p.length_fits):
                respond("BAD_LENGTH", r.seq)
            with m.Elif(p.is_info):
                m.d.sync += p.last_write_valid.eq(0)
                respond("OK", r.seq, len(INFO_FIELDS) * WORD_BYTES, then="INFO")
            with m.Elif(p.is_write & p.last_write_valid & (p.last_write_seq == r.seq)):
                # before the run rule: the retry of a start whose answer was lost finds the
                # core running, and must still hear that its WRITE was applied
                respond("DUPLICATE", r.seq)
            with m.Elif(p.is_write & self.core.busy & ~p.stop_only):
                respond("BUSY", r.seq)
            with m.Else():
                m.next = "CHECK"

    def _check(self, m, p, rule, respond):
        """CHECK: one word address a cycle; DECIDE: refuse, read or apply."""
        seq = self.request.payload.seq
        with m.State("CHECK"):
            with m.If(rule.bad_address):
                respond("BAD_ADDRESS", seq)
            with m.Else():
                m.d.sync += [p.refused_busy.eq(p.refused_busy | rule.busy),
                             p.index.eq(p.index + 1)]
                with m.If(p.last):
                    m.d.sync += p.index.eq(0)
                    m.next = "DECIDE"
        with m.State("DECIDE"):
            with m.If(p.refused_busy):
                respond("BUSY", seq)
            with m.Elif(p.is_read):
                respond("OK", seq, p.total * WORD_BYTES, then="READ")
            with m.Else():
                m.next = "APPLY"                    # the buffer's read port is at word 0

    def _apply(self, m, p, respond):
        """APPLY: one bus write per ready cycle, the next word read from the buffer
        meanwhile."""
        core, buffer, seq = self.core, self.buffer, self.request.payload.seq
        with m.State("APPLY"):
            with m.If(core.ready):
                m.d.comb += [buffer.addr.eq(p.index + 1), core.we.eq(1),
                             core.addr.eq(p.burst_address), core.wdata.eq(buffer.data)]
                m.d.sync += p.index.eq(p.index + 1)
                with m.If(p.last):
                    m.d.sync += [p.last_write_seq.eq(seq), p.last_write_valid.eq(1)]
                    respond("OK", seq)
            with m.Else():                          # the word stays on the read port
                m.d.comb += buffer.addr.eq(p.index)

    def _read(self, m, p):
        """READ, READ_WAIT: one bus read per word, each handed on before the next is read."""
        core = self.core
        with m.State("READ"):                       # next read once the last was handed on
            with m.If(~self.words.valid & core.ready):
                m.d.comb += [core.re.eq(1), core.addr.eq(p.burst_address)]
                m.next = "READ_WAIT"
        with m.State("READ_WAIT"):
            with m.If(core.rack):
                m.d.sync += [self.words.payload.eq(core.rdata), self.words.valid.eq(1),
                             p.index.eq(p.index + 1)]
                m.next = "READ"
                with m.If(p.last):
                    m.next = "FINISH"

    def _info(self, m, p):
        """INFO: the build's words from a ROM, the run's cycles live; a cycle for the ROM, one
        to hand the word on."""
        run_cycles = p.run_cycles
        run_cycles_hi_seen = Signal(RUN_CYCLES_BITS - WORD_BITS)
        live = {"run_cycles_lo": run_cycles[:WORD_BITS], "run_cycles_hi": run_cycles_hi_seen}
        m.submodules.info_rom = info_rom = Memory(
            shape=WORD_BITS, depth=len(INFO_FIELDS),
            init=[0 if name in live else value for name, value in zip(INFO_FIELDS, self.info)])
        info_read = info_rom.read_port()
        m.d.comb += info_read.addr.eq(p.index)
        info_word = info_read.data
        for name, value in live.items():
            info_word = Mux(p.index == INFO_FIELDS.index(name), value, info_word)
        fetched = Signal()                          # the ROM has read word `index`
        with m.State("INFO"):
            with m.If(~self.words.valid):
                m.d.sync += fetched.eq(~fetched)
                with m.If(fetched):
                    m.d.sync += [self.words.payload.eq(info_word), self.words.valid.eq(1),
                                 p.index.eq(p.index + 1),
                                 run_cycles_hi_seen.eq(run_cycles[WORD_BITS:])]
                    with m.If(p.index == len(INFO_FIELDS) - 1):
                        m.next = "FINISH"
