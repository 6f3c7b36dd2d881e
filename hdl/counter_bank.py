"""The hardware counters of docs/physics.md §9, widths and flags from counters.counter_layout.

Each counter adds its increment every cycle (0 when nothing happens) and wraps modulo
2**width; a sticky overflow flag records that the exact value left the counter's range, the
same rule the golden model applies (python_model/counters.py).
"""

from amaranth import Cat, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from limemu.model.counters import counter_layout

INCREMENT_BITS = 72            # wide enough for any per-cycle increment of any counter


class CounterBank(wiring.Component):
    """Ports: ``inc_<name>`` (signed increment, added on the clock edge), ``clear`` (all
    counters and flags to 0), ``value_<name>`` (the register), ``overflow`` (one sticky bit
    per counter, in layout order). Latency 1 cycle, one increment per cycle per counter."""

    def __init__(self, spec):
        self.layout = counter_layout(spec)
        members = {"clear": In(1), "overflow": Out(len(self.layout))}
        for name, width, is_signed in self.layout:
            members[f"inc_{name}"] = In(signed(INCREMENT_BITS))
            members[f"value_{name}"] = Out(signed(width) if is_signed else unsigned(width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        flags = []
        for name, width, is_signed in self.layout:
            value = getattr(self, f"value_{name}")
            inc = getattr(self, f"inc_{name}")
            exact = Signal(signed(max(width, INCREMENT_BITS) + 2), name=f"{name}_exact")
            m.d.comb += exact.eq(value + inc)
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else \
                (0, (1 << width) - 1)
            outside = (exact < lo) | (exact > hi)
            flag = Signal(name=f"{name}_overflow")
            flags.append(flag)
            with m.If(self.clear):
                m.d.sync += [value.eq(0), flag.eq(0)]
            with m.Else():
                m.d.sync += value.eq(exact[:width])
                with m.If(outside):
                    m.d.sync += flag.eq(1)
        m.d.comb += self.overflow.eq(Cat(*flags))
        return m

    def __repr__(self):
        return f"CounterBank(layout={self.layout!r})"

