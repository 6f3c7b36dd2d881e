"""A board: the array core (Geometry.core) behind the UART host bridge, with four status LEDs.

The one top the FPGA wrappers (synth/) and the Verilator virtual board instantiate: a host
speaks the protocol of hdl/protocol.py on ``rx``/``tx`` and nothing else reaches the core.

``led_busy``/``led_done``/``led_error`` are the core's outputs; ``led_link`` is the bridge's
``active`` (a frame is being received, executed or answered, or skipped bytes wait to be
reported). A simulation may stop clocking while both ``led_link`` and ``led_busy`` are low and
``rx`` is idle: nothing would change.
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .cores import make_core
from .host_bridge import HostBridge, link_divisor
from .regmap import RegisterMap

TIMEOUTS_PER_SECOND = 50          # a frame silent for 20 ms is dropped


class BoardTop(wiring.Component):
    """Ports: ``rx`` In(1), ``tx`` Out(1), ``led_busy``, ``led_done``, ``led_error``,
    ``led_link`` Out(1)."""

    rx: In(1, init=1)
    tx: Out(1, init=1)
    led_busy: Out(1)
    led_done: Out(1)
    led_error: Out(1)
    led_link: Out(1)

    def __init__(self, spec, geometry, *, clock_hz, baud, timeout_cycles=None):
        self.spec, self.geometry = spec, geometry
        self.clock_hz, self.baud = clock_hz, baud
        self.regmap, self.divisor, self.timeout_cycles = self.check(
            spec, geometry, clock_hz=clock_hz, baud=baud, timeout_cycles=timeout_cycles)
        super().__init__()

    @staticmethod
    def check(spec, geometry, *, clock_hz, baud, timeout_cycles=None):
        """Raise ConfigError for a board that cannot be built; else return its register map,
        link divisor and frame timeout. Callers check first so that a refused configuration
        leaves no half-built component behind (amaranth warns about unused ones)."""
        if timeout_cycles is None:
            timeout_cycles = clock_hz // TIMEOUTS_PER_SECOND
        regmap = RegisterMap(spec, geometry)                # checks spec against geometry
        divisor = link_divisor(clock_hz=clock_hz, baud=baud, timeout_cycles=timeout_cycles)
        return regmap, divisor, timeout_cycles

    def __repr__(self):
        return (f"BoardTop(spec={self.spec!r}, geometry={self.geometry!r}, "
                f"clock_hz={self.clock_hz}, baud={self.baud}, "
                f"timeout_cycles={self.timeout_cycles})")

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = make_core(self.spec, self.geometry)
        m.submodules.bridge = bridge = HostBridge(self.regmap, clock_hz=self.clock_hz,
                                                  baud=self.baud,
                                                  timeout_cycles=self.timeout_cycles)
        wiring.connect(m, bridge.core, core)
        m.d.comb += [
            bridge.rx.eq(self.rx), self.tx.eq(bridge.tx),
            self.led_busy.eq(core.busy), self.led_done.eq(core.done),
            self.led_error.eq(core.error), self.led_link.eq(bridge.active),
        ]
        return m
