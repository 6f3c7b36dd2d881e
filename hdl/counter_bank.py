"""The hardware counters of the model's counter layout (python_model/counters.py), and the
widths of what a core adds to them at once.

CounterBank (the pipelined core's) adds every counter's increment every cycle (0 when nothing
happens) and wraps modulo 2**width; a sticky overflow flag records that the exact value left
the counter's range, the same rule the golden model applies. The compact core keeps the same
counters in RAM (hdl/counter_ram.py). Both take their increments' widths from
`increment_bits`.
"""

from amaranth import Cat, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from limemu.model.counters import counter_layout
from limemu.model.errors import require


def increment_bits(spec, geometry):
    """{counter name: signed width of the most a core adds to it at once}, for every counter
    of ``counter_layout(spec)``: a cycle's sum over the lanes of the pipelined core, or one
    addition of the compact core (whose lanes is 1). Raises ConfigError where an increment
    would be wider than its counter (the overflow rule of CounterRam relies on it)."""
    lane_bits = (geometry.lanes - 1).bit_length()       # a sum over the lanes
    cell_bits = spec.cells.bit_length()                 # 0 .. cells
    events = geometry.lanes.bit_length() + 1            # 0 .. lanes events of a kind
    heat = spec.tilt_bits + 3 + lane_bits               # sum of 2h, h in tilt_bits + 1
    bits = {
        "steps": 2,
        "evaluations": max(geometry.lanes, spec.cells).bit_length() + 1,
        "up_moves": events, "down_moves": events, "blocked_moves": events,
        "inadmissible": events,
        "heat_net": heat, "heat_abs": heat,
        # the barrier's rise (unsigned, barrier_bits) times the run's cells
        "barrier_work": spec.barrier_bits + cell_bits + 1,
        # d_eta (gain_bits + 1) times the loss register, << tilt_shift + 1
        "anneal_work": spec.gain_bits + 1 + spec.loss_bits + spec.tilt_shift + 1,
        # the additions of one field update: a sparse column's length or the run's cells
        "field_adds": max(geometry.ptr_bits, cell_bits) + 2,
        # MH: one decision at a time; a revert undoes up to lanes moves a cycle
        "proposals": 2, "acceptances": 2, "reverted_moves": events,
    }
    for name, width, _ in counter_layout(spec):
        require(bits[name] <= width, f"increment_bits[{name!r}]", bits[name],
                f"must be <= the counter's {width} bits")
    return {name: bits[name] for name, _, _ in counter_layout(spec)}


class CounterBank(wiring.Component):
    """``CounterBank(spec, amount_bits)``, `amount_bits` as `increment_bits` gives it. Ports:
    ``inc_<name>`` (signed increment, added on the clock edge), ``clear`` (all counters and
    flags to 0), ``value_<name>`` (the register), ``overflow`` (one sticky bit per counter, in
    layout order). Latency 1 cycle, one increment per cycle per counter."""

    def __init__(self, spec, amount_bits):
        self.layout = counter_layout(spec)
        self.amount_bits = dict(amount_bits)
        members = {"clear": In(1), "overflow": Out(len(self.layout))}
        for name, width, is_signed in self.layout:
            members[f"inc_{name}"] = In(signed(self.amount_bits[name]))
            members[f"value_{name}"] = Out(signed(width) if is_signed else unsigned(width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        flags = []
        for name, width, is_signed in self.layout:
            value = getattr(self, f"value_{name}")
            inc = getattr(self, f"inc_{name}")
            exact = Signal(signed(max(width, len(inc)) + 2), name=f"{name}_exact")
            m.d.comb += exact.eq(value + inc)
            lo, hi = self._range(width, is_signed)
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

    @staticmethod
    def _range(width, is_signed):
        """(lowest, highest) value a counter holds without its overflow flag."""
        return ((-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else
                (0, (1 << width) - 1))

    def __repr__(self):
        return f"CounterBank(layout={self.layout!r}, amount_bits={self.amount_bits})"
