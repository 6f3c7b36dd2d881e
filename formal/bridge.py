"""The host bridge (hdl/bridge_executor.py, hdl/frame_receiver.py), bounded from reset.

``bridge_executor.safety``: BridgeExecutor with any sequence of requests (any header, crc
verdict, address, count, any event), any core behaviour (ready, rack, read data; ``busy``
rises only after a start was written) and any transmitter: the harness keeps its own record
of the request held and asserts

* no bus write unless the request is a complete FRAME with a good crc, the WRITE command and a
  length of the address plus whole words; the write goes to the request's address plus the
  words written so far, which RegisterMap.refusal (a second AddressRule) admits for a write
  while the core runs or not;
* nothing but one word to control without start is applied while the core runs;
* a WRITE whose seq is that of the last applied WRITE (since the last INFO) is not applied;
* every request is answered exactly once, and only a request is answered.

``frame_receiver.returns_to_hunt``: FrameReceiver (timeout 3 cycles) after any byte sequence:
``timeout + 2`` cycles of silence find it hunting with nothing to report, or holding a
request for the executor (which answers it: the property above).

Mutations: the executor is handed every request with a good crc verdict (a write with a bad
CRC is applied); the receiver never times out.
"""

from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import Assert, Assume, Module, Signal

from limemu.hdl.address_decode import AddressRule
from limemu.hdl.bridge_executor import BridgeExecutor
from limemu.hdl.frame_receiver import Event, FrameReceiver, request_layout
from limemu.hdl.protocol import ADDRESS_BYTES, COMMANDS, INFO_FIELDS, WORD_BYTES
from limemu.hdl.regmap import CONTROL

from .address_rule import MAPS
from .runner import Property

TIMEOUT = 3


def executor_harness(mutant):
    rmap = MAPS["dense"]()
    m = Module()
    m.submodules.executor = ex = BridgeExecutor(rmap, [0] * len(INFO_FIELDS))
    m.submodules.shadow_rule = rule = AddressRule(rmap)
    control = rmap["control"].base
    core = ex.core

    # requests: any, held stable until the executor releases them
    held = Signal()
    req = Signal(request_layout(rmap))
    released = ex.request.valid & ex.request.ready
    with m.If(~held & AnySeq(1)):
        m.d.sync += [held.eq(1), req.as_value().eq(AnySeq(len(req.as_value())))]
    with m.If(released):
        m.d.sync += held.eq(0)
    m.d.comb += [ex.request.valid.eq(held), ex.request.payload.eq(req)]
    if mutant:
        m.d.comb += ex.request.payload.crc_ok.eq(1)

    # the core and the transmitter: anything, but busy rises only after a start was written
    started = Signal()
    m.d.sync += started.eq(core.we & (core.addr == control) & core.wdata[CONTROL["start"]])
    busy_before = Signal()
    m.d.sync += busy_before.eq(core.busy)
    for port in (core.rdata, core.rack, core.ready, core.busy, ex.buffer.data,
                 ex.response.ready, ex.words.ready, ex.tx_idle):
        m.d.comb += port.eq(AnySeq(len(port)))
    m.d.comb += Assume(~core.busy | busy_before | started)

    # the record of the request held
    writes = Signal(range(300))                       # words written for it so far
    own_start = Signal()                              # it wrote a start
    answers = Signal(2)
    filter_valid, filter_seq = Signal(), Signal(8)    # the last applied WRITE since INFO
    answered = ex.response.valid & ex.response.ready
    with m.If(released | ~held):
        m.d.sync += [writes.eq(0), own_start.eq(0), answers.eq(0)]
    with m.Else():
        with m.If(core.we):
            m.d.sync += writes.eq(writes + 1)
        with m.If(started):
            m.d.sync += own_start.eq(1)
        with m.If(answered):
            m.d.sync += answers.eq(answers + 1)
    is_info_ok = ((req.event == Event.FRAME) & req.crc_ok & (req.command == COMMANDS["INFO"])
                  & (req.length == 0))
    with m.If(released):
        with m.If(writes != 0):
            m.d.sync += [filter_valid.eq(1), filter_seq.eq(req.seq)]
        with m.Elif(is_info_ok):
            m.d.sync += filter_valid.eq(0)

    running_now = core.busy & ~own_start & ~started      # a run this request did not start
    m.d.comb += [rule.address.eq(core.addr), rule.beyond.eq(req.address_beyond),
                 rule.write.eq(1), rule.running.eq(running_now)]
    words_part = req.length - ADDRESS_BYTES
    with m.If(~Initial() & core.we):
        m.d.comb += [
            Assert(held), Assert(req.event == Event.FRAME), Assert(req.crc_ok),
            Assert(req.command == COMMANDS["WRITE"]),
            Assert((req.length >= ADDRESS_BYTES + WORD_BYTES) & (words_part[:2] == 0)),
            Assert(core.addr == req.address + writes),
            Assert(~rule.bad_address), Assert(~rule.busy),
        ]
        with m.If(running_now):
            m.d.comb += [Assert(req.length == ADDRESS_BYTES + WORD_BYTES),
                         Assert(core.addr == control), Assert(~req.first_starts)]
        with m.If(writes == 0):
            m.d.comb += Assert(~(filter_valid & (filter_seq == req.seq)))
    with m.If(~Initial()):
        with m.If(answered):
            m.d.comb += [Assert(held), Assert(answers == 0)]
        with m.If(released):
            m.d.comb += Assert(answers == 1)
    return m


class NeverTimesOut(FrameReceiver):
    """Mutation: silence inside a frame is never noticed."""

    def _silence(self, m):
        return Signal()


def receiver_harness(mutant):
    rmap = MAPS["dense"]()
    m = Module()
    m.submodules.receiver = rx = (NeverTimesOut if mutant else FrameReceiver)(rmap, TIMEOUT)
    for port in (rx.bytes.valid, rx.bytes.payload, rx.request.ready):
        m.d.comb += port.eq(AnySeq(len(port)))
    # the transmitter takes the skipped count with the response, before the release
    m.d.comb += rx.skipped.taken.eq(rx.request.valid & rx.request.ready)
    silence = Signal(range(TIMEOUT + 3))
    with m.If(rx.bytes.valid):
        m.d.sync += silence.eq(0)
    with m.Elif(silence != TIMEOUT + 2):
        m.d.sync += silence.eq(silence + 1)
    with m.If(~Initial() & (silence == TIMEOUT + 2)):
        m.d.comb += Assert(rx.request.valid | ~rx.active)
    return m


PROPERTIES = [
    Property("bridge_executor.safety", executor_harness, "bmc", 10,
             "no write without a good frame and admitted addresses; stop only during a run; "
             "no duplicate applied; one answer per request",
             mutant="the executor sees every crc as good", deep=14),
    Property("frame_receiver.returns_to_hunt", receiver_harness, "bmc", 16,
             "after timeout + 2 silent cycles the receiver hunts or holds a request",
             mutant="silence inside a frame never noticed", deep=24),
]
