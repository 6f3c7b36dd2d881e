"""The host bridge: the framed serial protocol of hdl/protocol.py on a UART, as a bus master of
the array core (hdl/array_core.py).

Three small state machines share a frame buffer:

* the receiver turns bytes into a request: it hunts for REQUEST_SYNC (counting the bytes it
  skips), then takes command, seq, length, payload and crc, computing the CRC one byte per
  cycle as the bytes arrive. The payload's address (and a READ's count) go to registers, its
  words to a buffer memory of MAX_WORDS words. It ends in HELD with an event for the
  executor: a complete frame, a frame too long for the buffer (as soon as its header is in),
  a truncated frame (``timeout_cycles`` without a byte inside a frame) or garbage followed by
  the same silence. Bytes that arrive while it is HELD are skipped bytes too.
* the executor checks a complete frame - crc, command, length, the duplicate filter (a WRITE
  with the seq of the last applied WRITE), the run rule, then every word address of the burst,
  one per cycle, against `AddressRule` (the register map's `RegisterMap.refusal` as logic) -
  and only then applies it: one bus write per cycle, or one bus read per word of the answer.
  It starts the response and releases the receiver when the transmitter has taken the
  response's last byte.
* the transmitter sends the response: header, payload words (from the bus or the INFO table,
  handed over through a one-word register), CRC computed on the fly.

The link is half duplex in practice: the host waits for a response before it sends the next
request. UART framing errors are ignored here: a damaged byte fails the CRC.

Cycles beyond the line time (10 bits a byte), from the end of a request's last stop bit to the
start bit of its response (divisor 4): a WRITE of n words 6 + 2n (per word one cycle of address
check and one bus write), a READ of n words 6 + n, an INFO 5. Inside a payload, the next word
(a bus read of a few cycles, or two cycles of the INFO ROM) is fetched while the UART shifts out
the last byte of the one before, so the line never waits for it.
"""

from functools import reduce
from operator import xor

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from limemu.model.errors import require

from .address_decode import region_hit, region_offset
from .protocol import (
    COMMANDS,
    CRC_BYTES,
    INFO_FIELDS,
    MAX_WORDS,
    REQUEST_SYNC,
    RESPONSE_SYNC,
    STATUS,
    crc16,
    crc16_byte,
    info_words,
    read_payload,
    write_payload,
)
from .regmap import CONTROL, WORD_BITS, words
from .uart import FRAME_BITS, MIN_DIVISOR, UartRx, UartTx

# payload sizes, taken from the protocol's own encoders
WORD_BYTES = WORD_BITS // 8
ADDRESS_BYTES = len(write_payload(0, [0])) - WORD_BYTES     # a payload starts with the address
READ_LENGTH = len(read_payload(0, 1))                       # address + count
COUNT_BYTES = READ_LENGTH - ADDRESS_BYTES
BUFFER_BYTES = len(write_payload(0, [0] * MAX_WORDS))       # the longest payload there is

CRC_BITS = 8 * CRC_BYTES
CRC_INIT = crc16(b"")                  # the CRC of nothing: its initial value
RUN_CYCLES_BITS = 48                   # INFO's run_cycles: 78 hours at 1 GHz before it wraps
MAX_BAUD_ERROR = 0.02

assert WORD_BYTES == 4                 # byte-in-word = two bits of the payload position


def link_divisor(*, clock_hz, baud, timeout_cycles):
    """The UART divisor of a link (clock cycles per bit, clock_hz / baud rounded), after
    checking the link: at least MIN_DIVISOR cycles per bit, a baud error of at most 2 %, a
    timeout of at least two byte times."""
    require(isinstance(clock_hz, int) and 0 < clock_hz < 2**WORD_BITS, "clock_hz",
            clock_hz, f"must be a positive integer < 2**{WORD_BITS} (an INFO word)")
    require(isinstance(baud, int) and 0 < baud < 2**WORD_BITS, "baud", baud,
            f"must be a positive integer < 2**{WORD_BITS}")
    divisor = round(clock_hz / baud)
    require(divisor >= MIN_DIVISOR, "clock_hz / baud", clock_hz / baud,
            f"must be >= {MIN_DIVISOR} clock cycles per bit")
    error = abs(clock_hz / divisor - baud) / baud
    require(error <= MAX_BAUD_ERROR, "baud", baud,
            f"is {clock_hz / divisor:.0f} at {clock_hz} Hz / {divisor}: error "
            f"{error:.1%} > {MAX_BAUD_ERROR:.0%}")
    byte_time = FRAME_BITS * divisor
    require(isinstance(timeout_cycles, int) and timeout_cycles >= 2 * byte_time,
            "timeout_cycles", timeout_cycles,
            f"must be an integer >= two byte times ({2 * byte_time} cycles at divisor "
            f"{divisor}) so that back-to-back bytes never time out")
    return divisor


def crc16_update(crc, byte):
    """The CRC after one more byte, as logic. protocol.crc16_byte is linear over GF(2) in
    (crc, byte), so each output bit is the XOR of the input bits whose images under
    crc16_byte have that bit set: the matrix is read off the reference itself."""
    inputs = [(crc[i], crc16_byte(1 << i, 0)) for i in range(CRC_BITS)]
    inputs += [(byte[i], crc16_byte(0, 1 << i)) for i in range(8)]
    out = []
    for bit in range(CRC_BITS):
        terms = [value for value, image in inputs if (image >> bit) & 1]
        out.append(reduce(xor, terms) if terms else Const(0, 1))
    return Cat(*out)


class AddressRule(wiring.Component):
    """`RegisterMap.refusal(address, write=..., running=...)` as combinational logic, built
    from the regions: ``bad_address`` for "address", ``busy`` for "busy".

    ``address`` is a burst address (the address field plus the word index) in the map's
    address bits plus one; ``beyond`` says the address field had a bit set above the map's
    address bits (outside every region then)."""

    def __init__(self, rmap):
        self.rmap = rmap
        super().__init__({"address": In(rmap.address_bits + 1), "beyond": In(1),
                          "write": In(1), "running": In(1),
                          "bad_address": Out(1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rmap, write, running = self.rmap, self.write, self.running
        m.d.comb += self.bad_address.eq(1)                  # in no region
        for region in rmap:
            wrong_way = {"ro": write, "wo": ~write, "rw": Const(0, 1)}[region.access]
            if not region.is_memory:
                bad = wrong_way
                busy = running & write if region.name != "control" else Const(0, 1)
            else:
                offset = region_offset(region, self.address)
                stride_bits = (region.stride - 1).bit_length()
                word, index = offset[:stride_bits], offset[stride_bits:]
                bad = (wrong_way | (word >= words(region.width))
                       | (index >= rmap.index_limit(region)))
                lane_bits = rmap.geometry.lane_bits
                if rmap.lane_limited(region) and lane_bits:
                    bad = bad | (index[:lane_bits] >= rmap.spec.lanes)
                busy = running
            with m.If(region_hit(region, self.address) & ~self.beyond):
                m.d.comb += [self.bad_address.eq(bad), self.busy.eq(~bad & busy)]
        return m


class Event(enum.Enum, shape=2):
    """What the receiver hands to the executor."""
    FRAME = 0          # a complete frame (crc not yet checked)
    TOO_LONG = 1       # a header whose length exceeds the buffer
    TRUNCATED = 2      # silence inside a frame
    GARBAGE = 3        # skipped bytes, then silence


class HostBridge(wiring.Component):
    """Ports: ``rx``/``tx`` (the UART lines); the bus towards the core (``addr``, ``wdata``,
    ``we``, ``re`` out; ``rdata``, ``rack``, ``core_ready``, ``core_busy`` in: an access is
    presented only while ``core_ready`` is high); ``active`` (inside a frame, executing,
    transmitting, or holding skipped bytes not yet reported)."""

    def __init__(self, rmap, *, clock_hz, baud, timeout_cycles):
        self.divisor = link_divisor(clock_hz=clock_hz, baud=baud, timeout_cycles=timeout_cycles)
        self.timeout_cycles = timeout_cycles
        self.rmap, self.clock_hz, self.baud = rmap, clock_hz, baud
        self.info = info_words(rmap.spec, rmap.geometry, clock_hz=clock_hz, baud=baud)
        # a burst address (< 2**address_bits + MAX_WORDS) fits address_bits + 1 bits
        assert 2**rmap.address_bits >= MAX_WORDS
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "addr": Out(rmap.address_bits),
            "wdata": Out(WORD_BITS),
            "we": Out(1),
            "re": Out(1),
            "rdata": In(WORD_BITS),
            "rack": In(1),
            "core_ready": In(1, init=1),
            "core_busy": In(1),
            "active": Out(1),
        })

    def __repr__(self):
        return (f"HostBridge({self.rmap!r}, clock_hz={self.clock_hz}, baud={self.baud}, "
                f"timeout_cycles={self.timeout_cycles})")

    def _address_byte(self, m, position, byte, address, beyond):
        """Byte `position` (0 first, least significant) of the address field: its bits inside
        the map go into `address`, any set above them sets `beyond`."""
        bits = self.rmap.address_bits
        for q in range(ADDRESS_BYTES):
            low = 8 * q
            inside = max(0, min(8, bits - low))           # bits of this byte in the map
            with m.If(position == q):
                if inside:
                    m.d.sync += address[low:low + inside].eq(byte[:inside])
                above = byte[inside:].any() if inside < 8 else 0
                m.d.sync += beyond.eq(above if q == 0 else beyond | above)

    def elaborate(self, platform):
        rmap = self.rmap
        m = Module()
        m.submodules.uart_rx = uart_rx = UartRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UartTx(self.divisor)
        m.submodules.rule = rule = AddressRule(rmap)
        m.submodules.buffer = buffer = Memory(shape=WORD_BITS, depth=MAX_WORDS, init=[])
        buffer_write, buffer_read = buffer.write_port(), buffer.read_port()
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]

        # -- shared state ------------------------------------------------------------------------
        # skipped bytes since the last response: the receiver counts, a response takes them
        skipped = Signal(8)                 # the response's one-byte field
        skip = Signal()                     # this cycle's byte is skipped
        send = Signal()                     # the executor starts a response ...
        send_status = Signal(8)
        send_seq = Signal(8)
        send_length = Signal(16)
        release = Signal()                  # ... and hands the receiver back its buffer
        tx_idle = Signal()
        with m.If(send):
            m.d.sync += skipped.eq(skip)
        with m.Elif(skip & ~skipped.all()):             # saturates at 255
            m.d.sync += skipped.eq(skipped + 1)

        # the request as received
        command, seq, length = Signal(8), Signal(8), Signal(16)
        seq_received = Signal()
        # the address field's bits inside the map, and whether any above them was set
        address = Signal(rmap.address_bits)
        address_beyond = Signal()
        count = Signal(8 * COUNT_BYTES)                 # a READ's word count
        first_starts = Signal()                         # the first word's start bit (run rule)
        crc, crc_received = Signal(CRC_BITS), Signal(CRC_BITS)
        event = Signal(Event)

        # one-word handover from executor (bus or INFO table) to transmitter: the executor
        # sets word_full only when it is clear, the transmitter clears it only when it is set
        word, word_full = Signal(WORD_BITS), Signal()

        # -- receiver -----------------------------------------------------------------------------
        byte, got = uart_rx.data, uart_rx.valid
        # one CRC register and network for both directions: the transmitter only runs while
        # the receiver holds a request (bytes that come meanwhile are skipped, not summed)
        tx_byte, receiver_held = Signal(8), Signal()
        crc_next = crc16_update(crc, Mux(receiver_held, tx_byte, byte))
        silence = Signal(range(self.timeout_cycles + 1))    # cycles since the last byte
        silent = silence == self.timeout_cycles
        with m.If(got):
            m.d.sync += silence.eq(0)
        with m.Elif(~silent):
            m.d.sync += silence.eq(silence + 1)
        position = Signal(range(BUFFER_BYTES))          # of the payload byte
        data_offset = (position - ADDRESS_BYTES)[:len(position)]    # byte of the words
        assembled = Signal(WORD_BITS - 8)               # the word's bytes so far
        new_word = Cat(assembled, byte)

        def body_byte(field, next_state):
            """A header byte: into `field` and the CRC."""
            with m.If(got):
                m.d.sync += [field.eq(byte), crc.eq(crc_next)]
                m.next = next_state
            with m.Elif(silent):
                truncated()

        def truncated():
            m.d.sync += event.eq(Event.TRUNCATED)
            m.next = "HELD"

        with m.FSM(name="receiver") as receiver:
            with m.State("HUNT"):
                with m.If(got):
                    with m.If(byte == REQUEST_SYNC):
                        m.d.sync += [crc.eq(CRC_INIT), seq_received.eq(0)]
                        m.next = "COMMAND"
                    with m.Else():
                        m.d.comb += skip.eq(1)
                with m.Elif(silent & (skipped != 0)):
                    m.d.sync += event.eq(Event.GARBAGE)
                    m.next = "HELD"
            with m.State("COMMAND"):
                body_byte(command, "SEQ")
            with m.State("SEQ"):
                body_byte(seq, "LENGTH_LO")
                with m.If(got):
                    m.d.sync += seq_received.eq(1)
            with m.State("LENGTH_LO"):
                body_byte(length[:8], "LENGTH_HI")
            with m.State("LENGTH_HI"):
                body_byte(length[8:], "PAYLOAD")            # unless too long or empty:
                full_length = Cat(length[:8], byte)
                with m.If(got):
                    m.d.sync += position.eq(0)
                    with m.If(full_length > BUFFER_BYTES):     # answered at once
                        m.d.sync += event.eq(Event.TOO_LONG)
                        m.next = "HELD"
                    with m.Elif(full_length == 0):
                        m.next = "CRC_LO"
            with m.State("PAYLOAD"):
                with m.If(got):
                    m.d.sync += [crc.eq(crc_next), position.eq(position + 1)]
                    with m.If(position < ADDRESS_BYTES):
                        self._address_byte(m, position, byte, address, address_beyond)
                    with m.Else():
                        m.d.sync += assembled.eq(new_word[8:])
                        with m.If(data_offset < COUNT_BYTES):
                            m.d.sync += count.eq(Cat(count[8:], byte))
                        with m.If(data_offset[:2] == WORD_BYTES - 1):     # a word is complete
                            m.d.comb += [buffer_write.addr.eq(data_offset[2:]),
                                         buffer_write.data.eq(new_word), buffer_write.en.eq(1)]
                            with m.If(data_offset[2:] == 0):
                                m.d.sync += first_starts.eq(new_word[CONTROL["start"]])
                    with m.If(position == length - 1):
                        m.next = "CRC_LO"
                with m.Elif(silent):
                    truncated()
            with m.State("CRC_LO"):
                with m.If(got):
                    m.d.sync += crc_received[:8].eq(byte)
                    m.next = "CRC_HI"
                with m.Elif(silent):
                    truncated()
            with m.State("CRC_HI"):
                with m.If(got):
                    m.d.sync += [crc_received[8:].eq(byte), event.eq(Event.FRAME)]
                    m.next = "HELD"
                with m.Elif(silent):
                    truncated()
            with m.State("HELD"):                       # the executor owns the request
                m.d.comb += skip.eq(got)
                with m.If(release):
                    m.next = "HUNT"

        m.d.comb += receiver_held.eq(receiver.ongoing("HELD"))

        # -- executor -----------------------------------------------------------------------------
        is_info = command == COMMANDS["INFO"]
        is_write = command == COMMANDS["WRITE"]
        is_read = command == COMMANDS["READ"]
        words_part = length - ADDRESS_BYTES
        write_words = words_part[2:]
        length_fits = Mux(is_info, length == 0,
                          Mux(is_write, (length >= ADDRESS_BYTES + WORD_BYTES)
                              & (words_part[:2] == 0),
                              (length == READ_LENGTH) & (count >= 1) & (count <= MAX_WORDS)))
        control = rmap["control"].base
        # write_refusal's run rule: during a run only one word to control without start
        stop_only = ((write_words == 1) & (address == control) & ~address_beyond
                     & ~first_starts)

        base = Signal(rmap.address_bits)
        base_beyond = Signal()
        total = Signal(range(MAX_WORDS + 1))            # words of the burst
        index = Signal(range(MAX_WORDS))                # word of the burst / INFO word
        burst_address = base + index                    # < 2**(address_bits + 1)
        last = index == total - 1
        running = Signal()                              # core_busy when the frame was checked
        refused_busy = Signal()
        last_write_seq, last_write_valid = Signal(8), Signal()

        run_cycles = Signal(RUN_CYCLES_BITS)
        # INFO sends run_cycles live, its high word as it was when the low word was sent
        run_cycles_hi_seen = Signal(RUN_CYCLES_BITS - WORD_BITS)
        start_applied = (self.we & (self.addr == control)
                         & self.wdata[CONTROL["start"]])
        with m.If(start_applied):
            m.d.sync += run_cycles.eq(0)
        with m.Elif(self.core_busy):
            m.d.sync += run_cycles.eq(run_cycles + 1)

        # INFO: the build's words in a ROM, the run's cycles live
        live = {"run_cycles_lo": run_cycles[:WORD_BITS], "run_cycles_hi": run_cycles_hi_seen}
        m.submodules.info_rom = info_rom = Memory(
            shape=WORD_BITS, depth=len(INFO_FIELDS),
            init=[0 if name in live else value for name, value in zip(INFO_FIELDS, self.info)])
        info_read = info_rom.read_port()
        m.d.comb += info_read.addr.eq(index)
        info_word = Signal(WORD_BITS)
        m.d.comb += info_word.eq(info_read.data)
        for name, value in live.items():
            with m.If(index == INFO_FIELDS.index(name)):
                m.d.comb += info_word.eq(value)
        info_fetched = Signal()                         # the ROM has read word `index`

        def respond(status, seq_value, length_value=0, then="FINISH"):
            m.d.comb += [send.eq(1), send_status.eq(STATUS[status]), send_seq.eq(seq_value),
                         send_length.eq(length_value)]
            m.next = then

        m.d.comb += [rule.address.eq(burst_address), rule.beyond.eq(base_beyond),
                     rule.write.eq(is_write),
                     rule.running.eq(running)]
        with m.FSM(name="executor") as executor:
            with m.State("IDLE"):
                with m.If(receiver.ongoing("HELD")):
                    with m.Switch(event):
                        with m.Case(Event.GARBAGE):
                            respond("GARBAGE", 0)
                        with m.Case(Event.TRUNCATED):
                            respond("TRUNCATED", Mux(seq_received, seq, 0))
                        with m.Case(Event.TOO_LONG):
                            respond("BAD_LENGTH", seq)
                        with m.Case(Event.FRAME):
                            m.next = "VALIDATE"
            with m.State("VALIDATE"):
                m.d.sync += [base.eq(address), base_beyond.eq(address_beyond), index.eq(0),
                             running.eq(self.core_busy),
                             total.eq(Mux(is_write, write_words, count)),
                             refused_busy.eq(0)]
                with m.If(crc != crc_received):
                    respond("BAD_CRC", seq)
                with m.Elif(~(is_info | is_write | is_read)):
                    respond("UNKNOWN_COMMAND", seq)
                with m.Elif(~length_fits):
                    respond("BAD_LENGTH", seq)
                with m.Elif(is_info):
                    m.d.sync += last_write_valid.eq(0)
                    respond("OK", seq, len(INFO_FIELDS) * WORD_BYTES, then="INFO")
                with m.Elif(is_write & last_write_valid & (last_write_seq == seq)):
                    # before the run rule: the retry of a start whose answer was lost finds
                    # the core running, and must still hear that its WRITE was applied
                    respond("DUPLICATE", seq)
                with m.Elif(is_write & self.core_busy & ~stop_only):
                    respond("BUSY", seq)
                with m.Else():
                    m.next = "CHECK"
            with m.State("CHECK"):                      # one word address per cycle
                with m.If(rule.bad_address):
                    respond("BAD_ADDRESS", seq)
                with m.Else():
                    m.d.sync += [refused_busy.eq(refused_busy | rule.busy), index.eq(index + 1)]
                    with m.If(last):
                        m.d.sync += index.eq(0)
                        m.next = "DECIDE"
            with m.State("DECIDE"):
                with m.If(refused_busy):
                    respond("BUSY", seq)
                with m.Elif(is_read):
                    respond("OK", seq, total * WORD_BYTES, then="READ")
                with m.Else():
                    m.next = "APPLY"                    # the buffer's read port is at word 0
            with m.State("APPLY"):                      # one bus write per ready cycle
                with m.If(self.core_ready):
                    m.d.comb += [buffer_read.addr.eq(index + 1), self.we.eq(1),
                                 self.addr.eq(burst_address), self.wdata.eq(buffer_read.data)]
                    m.d.sync += index.eq(index + 1)
                    with m.If(last):
                        m.d.sync += [last_write_seq.eq(seq), last_write_valid.eq(1)]
                        respond("OK", seq)
                with m.Else():                          # the word stays on the read port
                    m.d.comb += buffer_read.addr.eq(index)
            with m.State("READ"):                       # next read once the last was handed on
                with m.If(~word_full & self.core_ready):
                    m.d.comb += [self.re.eq(1), self.addr.eq(burst_address)]
                    m.next = "READ_WAIT"
            with m.State("READ_WAIT"):
                with m.If(self.rack):
                    m.d.sync += [word.eq(self.rdata), word_full.eq(1), index.eq(index + 1)]
                    m.next = "READ"
                    with m.If(last):
                        m.next = "FINISH"
            with m.State("INFO"):                       # a cycle for the ROM, one to hand on
                with m.If(~word_full):
                    m.d.sync += info_fetched.eq(~info_fetched)
                    with m.If(info_fetched):
                        m.d.sync += [word.eq(info_word), word_full.eq(1), index.eq(index + 1),
                                     run_cycles_hi_seen.eq(run_cycles[WORD_BITS:])]
                        with m.If(index == len(INFO_FIELDS) - 1):
                            m.next = "FINISH"
            with m.State("FINISH"):                     # the response's last byte is taken
                with m.If(tx_idle):
                    m.d.comb += release.eq(1)
                    m.next = "IDLE"

        # -- transmitter --------------------------------------------------------------------------
        status_out, seq_out, skipped_out = Signal(8), Signal(8), Signal(8)
        remaining = Signal(16)                          # the length, then the bytes to send
        byte_of_word = Signal(2)
        in_crc = Signal()                               # this byte counts in the CRC
        sent = uart_tx.valid & uart_tx.ready
        m.d.comb += tx_byte.eq(uart_tx.data)
        with m.If(sent & in_crc):
            m.d.sync += crc.eq(crc_next)

        def offer(value, next_state, counted=True):
            m.d.comb += [uart_tx.data.eq(value), uart_tx.valid.eq(1), in_crc.eq(counted)]
            with m.If(uart_tx.ready):
                m.next = next_state

        with m.FSM(name="transmitter") as transmitter:
            with m.State("IDLE"):
                m.d.comb += tx_idle.eq(1)
                with m.If(send):
                    m.d.sync += [status_out.eq(send_status), seq_out.eq(send_seq),
                                 skipped_out.eq(skipped), remaining.eq(send_length),
                                 byte_of_word.eq(0),
                                 crc.eq(CRC_INIT)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                offer(RESPONSE_SYNC, "STATUS", counted=False)
            with m.State("STATUS"):
                offer(status_out, "SEQ")
            with m.State("SEQ"):
                offer(seq_out, "SKIPPED")
            with m.State("SKIPPED"):
                offer(skipped_out, "LENGTH_LO")
            with m.State("LENGTH_LO"):
                offer(remaining[:8], "LENGTH_HI")
            with m.State("LENGTH_HI"):
                offer(remaining[8:], "PAYLOAD")
                with m.If(uart_tx.ready & (remaining == 0)):      # no payload
                    m.next = "CRC_LO"
            with m.State("PAYLOAD"):                    # the word's bytes, low first
                m.d.comb += [uart_tx.data.eq(word.word_select(byte_of_word, 8)),
                             uart_tx.valid.eq(word_full), in_crc.eq(1)]
                with m.If(sent):
                    m.d.sync += [byte_of_word.eq(byte_of_word + 1), remaining.eq(remaining - 1)]
                    with m.If(byte_of_word == WORD_BYTES - 1):
                        m.d.sync += word_full.eq(0)     # the executor may hand on the next
                    with m.If(remaining == 1):
                        m.next = "CRC_LO"
            with m.State("CRC_LO"):
                offer(crc[:8], "CRC_HI", counted=False)
            with m.State("CRC_HI"):
                offer(crc[8:], "IDLE", counted=False)

        m.d.comb += self.active.eq(~receiver.ongoing("HUNT") | ~executor.ongoing("IDLE")
                                   | ~transmitter.ongoing("IDLE") | ~uart_tx.ready
                                   | uart_rx.busy | (skipped != 0))
        return m
