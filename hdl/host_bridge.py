"""The host bridge: the framed serial protocol of hdl/protocol.py on a UART, as the bus master
of an array core (hdl/core_control.py's CoreSignature).

Three components joined by streams (`amaranth.lib.stream`), around a buffer memory of
MAX_WORDS words:

    rx -> UartRx -bytes-> FrameReceiver -request-> BridgeExecutor -response, words->
          ResponseTransmitter -bytes-> UartTx -> tx
                     | buffer (write)        | buffer (read), the core's bus

* `FrameReceiver` (hdl/frame_receiver.py) turns bytes into a request (header, address,
  count, crc verdict; the words into the buffer) and holds it until it is answered;
* `BridgeExecutor` (hdl/bridge_executor.py) checks the request completely, applies it on the
  core's bus and hands the response on;
* `ResponseTransmitter` (hdl/response_transmitter.py) sends it, CRC computed on the fly.

The link is half duplex in practice: the host waits for a response before it sends the next
request. UART framing errors are ignored here: a damaged byte fails the CRC.

Cycles beyond the line time (10 bits a byte), from the end of a request's last stop bit to the
start bit of its response, grow by two per word of a WRITE (one cycle of address check and one
bus write) and by one per word of a READ (the address check). Inside a payload, the next word
(a bus read of a few cycles, or two cycles of the INFO ROM) is fetched while the UART shifts
out the last byte of the one before, so the line never waits for it.
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from limemu.model.errors import require

from .bridge_executor import BridgeExecutor
from .core_control import CoreSignature
from .frame_receiver import FrameReceiver
from .protocol import MAX_WORDS, info_words
from .regmap import WORD_BITS
from .response_transmitter import ResponseTransmitter
from .uart import FRAME_BITS, MIN_DIVISOR, UartRx, UartTx

MAX_BAUD_ERROR = 0.02


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


class HostBridge(wiring.Component):
    """Ports: ``rx``/``tx`` (the UART lines); ``core``, the bus master's side of a core's
    `CoreSignature` (connect it to the core with `wiring.connect`; an access is presented
    only while ``core.ready`` is high); ``active`` (inside a frame, executing, transmitting,
    or holding skipped bytes not yet reported)."""

    def __init__(self, rmap, *, clock_hz, baud, timeout_cycles):
        self.divisor = link_divisor(clock_hz=clock_hz, baud=baud, timeout_cycles=timeout_cycles)
        self.timeout_cycles = timeout_cycles
        self.rmap, self.clock_hz, self.baud = rmap, clock_hz, baud
        self.info = info_words(rmap.spec, rmap.geometry, clock_hz=clock_hz, baud=baud)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "core": In(CoreSignature(rmap.address_bits)),
            "active": Out(1),
        })

    def __repr__(self):
        link = f"clock_hz={self.clock_hz}, baud={self.baud}, timeout_cycles={self.timeout_cycles}"
        return f"HostBridge({self.rmap!r}, {link})"

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = uart_rx = UartRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UartTx(self.divisor)
        m.submodules.receiver = receiver = FrameReceiver(self.rmap, self.timeout_cycles)
        m.submodules.executor = executor = BridgeExecutor(self.rmap, self.info)
        m.submodules.transmitter = transmitter = ResponseTransmitter()
        m.submodules.buffer = buffer = Memory(shape=WORD_BITS, depth=MAX_WORDS, init=[])
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx),
                     executor.tx_idle.eq(transmitter.idle)]
        connect = wiring.connect
        connect(m, uart_rx.data, receiver.bytes)
        connect(m, receiver.buffer, buffer.write_port())
        connect(m, receiver.request, executor.request)
        connect(m, receiver.skipped, transmitter.skipped)
        connect(m, executor.buffer, buffer.read_port())
        connect(m, executor.core, wiring.flipped(self.core))
        connect(m, executor.response, transmitter.response)
        connect(m, executor.words, transmitter.words)
        connect(m, transmitter.bytes, uart_tx.data)
        m.d.comb += self.active.eq(receiver.active | executor.active | ~transmitter.idle
                                   | ~uart_tx.data.ready | uart_rx.busy)
        return m
