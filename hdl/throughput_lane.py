"""One lane of the throughput core: a cell's field in, its decision out, one group a cycle.

    s1  the cell's field g, weight w, valid bit and Q_nn (from the banks, read at issue);
        dL2 = delta^2 Q_nn +- 2 delta g, the half tilts h = eta dL2 << shift (two
        multipliers) and the crossing barriers E0 + h, registered
    s2  the crossing unit takes them with the lane's draw (the generator advances: one draw
        per group, idle lanes too); CrossingUnit.latency cycles later it decides
    out move up, move down, blocked (a move off the ladder's end), inadmissible, the chosen
        move's dL2 and the new weight, registered

Every stage takes a new group each cycle and never stalls: the core issues a group only when
nothing in flight can change its fields (see hdl/throughput_core.py). Only g, Q_nn, w and the
valid bit travel to the decision (13 bits for Max-Cut); dL2 is formed again there. The heat of
a move, -2 h = -2 eta dL2 << shift, is the gain times the chosen dL2: the core sums dL2 over a
step and multiplies once (eta is constant within a step), so no tilt travels either.
"""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from limemu.model.crossing import mantissa_rom
from limemu.model.rng import DRAW_BITS

from .crossing_unit import CrossingUnit, crossing_barrier_width

#: cycles from a lane's inputs (s1) to the crossing unit's (s2, where the draw is taken)
BARRIER_STAGES = 1
#: cycles from a lane's inputs (s1) to its registered outputs
LANE_LATENCY = BARRIER_STAGES + CrossingUnit.latency + 1


def delayed(m, value, cycles, name):
    """``value`` ``cycles`` cycles later, through a chain of registers."""
    for k in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{k + 1}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


class ThroughputLane(wiring.Component):
    """Ports: inputs ``group_valid``, ``field``, ``weight``, ``valid``, ``diag`` (s1),
    ``e0``, ``eta_shifted`` (constant during a step), ``draw`` (the generator's current draw)
    and output ``next_draw`` (advance it); outputs ``out_valid`` (a group's decision, LANE_LATENCY
    cycles after its inputs), ``move_up``, ``move_down``, ``blocked``, ``inadmissible``, ``dl2``
    (of the move made, 0 when none) and ``new_weight``."""

    def __init__(self, spec):
        self.spec = spec
        weight_shape = signed(max(spec.weight_bits, 2))
        super().__init__({
            "group_valid": In(1),
            "field": In(signed(spec.field_bits)),
            "weight": In(weight_shape),
            "valid": In(1),
            "diag": In(signed(spec.q_bits)),
            "e0": In(spec.barrier_bits),
            "eta_shifted": In(spec.gain_bits + spec.tilt_shift),
            "draw": In(DRAW_BITS),
            "next_draw": Out(1),
            "out_valid": Out(1),
            "move_up": Out(1),
            "move_down": Out(1),
            "blocked": Out(1),
            "inadmissible": Out(1),
            "dl2": Out(signed(spec.dl2_bits)),
            "new_weight": Out(weight_shape),
            # the crossing unit's mantissa lookups (up, down, distance): the core puts them in
            # block RAMs shared by pairs of lanes (mantissa_roms)
            "rom_addr": Out(spec.barrier_frac_bits).array(len(CrossingUnit.LOOKUPS)),
            "rom_data": In(spec.mantissa_bits + 1).array(len(CrossingUnit.LOOKUPS)),
        })

    def __repr__(self):
        return f"ThroughputLane(spec={self.spec!r})"

    def _dl2(self, field, diag):
        d = self.spec.delta
        return d * d * diag + 2 * d * field, d * d * diag - 2 * d * field

    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        m.submodules.crossing = unit = CrossingUnit(
            frac_bits=spec.barrier_frac_bits, mantissa_bits=spec.mantissa_bits,
            barrier_width=crossing_barrier_width(spec), external_rom=True)
        for k in range(len(CrossingUnit.LOOKUPS)):
            m.d.comb += [self.rom_addr[k].eq(unit.rom_addr[k]),
                         unit.rom_data[k].eq(self.rom_data[k])]
        dl2_shape = signed(spec.dl2_bits)
        tilt_shape = signed(spec.tilt_bits + 1)

        # s1 -> s2: dL2 of both moves, their half tilts (wrapped to the tilt's width, as the
        # model holds them) and the crossing barriers, in one cycle
        width = crossing_barrier_width(spec)
        s2_up, s2_down = Signal(signed(width)), Signal(signed(width))
        s2_valid = Signal()
        for value, barrier, name in zip(self._dl2(self.field, self.diag), (s2_up, s2_down),
                                        ("up", "down")):
            dl2 = Signal(dl2_shape, name=f"dl2_{name}")
            half_tilt = Signal(tilt_shape, name=f"half_tilt_{name}")
            m.d.comb += [dl2.eq(value), half_tilt.eq(self.eta_shifted * dl2)]
            m.d.sync += barrier.eq(self.e0 + half_tilt)
        m.d.sync += s2_valid.eq(self.group_valid)

        # what the decision needs, carried along
        carried = {name: delayed(m, value, BARRIER_STAGES + CrossingUnit.latency,
                                 f"carry_{name}")
                   for name, value in (("field", self.field), ("diag", self.diag),
                                       ("weight", self.weight),
                                       ("valid", self.valid & self.group_valid))}
        m.d.comb += [unit.valid_in.eq(s2_valid & delayed(m, self.valid & self.group_valid,
                                                          BARRIER_STAGES, "cell_valid")),
                     unit.u.eq(self.draw), unit.b_up.eq(s2_up), unit.b_down.eq(s2_down),
                     self.next_draw.eq(s2_valid)]
        group_valid = delayed(m, s2_valid, CrossingUnit.latency, "group_valid")

        # the decision
        w, valid = carried["weight"], carried["valid"]
        up_dl2, down_dl2 = self._dl2(carried["field"], carried["diag"])
        at_top, at_bottom = w == spec.w_hi, w == spec.w_lo
        move_up = valid & unit.up & ~at_top
        move_down = valid & unit.down & ~at_bottom
        m.d.sync += [
            self.out_valid.eq(group_valid),
            self.move_up.eq(move_up),
            self.move_down.eq(move_down),
            self.blocked.eq(valid & ((unit.up & at_top) | (unit.down & at_bottom))),
            self.inadmissible.eq(valid & unit.inadmissible),
            self.dl2.eq(Mux(move_up, up_dl2, Mux(move_down, down_dl2, 0))),
            self.new_weight.eq(Mux(move_up, w + spec.delta, w - spec.delta)),
        ]
        return m


def mantissa_roms(m, spec, lanes):
    """The lanes' mantissa lookups in block RAMs of two read ports, three per pair of lanes:
    each lane's up and down lookups in one, both lanes' distance lookups in the third (the
    crossing unit's ROM would otherwise be three ports of logic per lane)."""
    ports = []                                    # (lane, lookup) per read port, in pairs
    for first in range(0, len(lanes), 2):
        pair = list(range(first, min(first + 2, len(lanes))))
        ports += [[(lane, 0), (lane, 1)] for lane in pair]
        ports.append([(lane, 2) for lane in pair])
    for k, group in enumerate(ports):
        rom = Memory(shape=unsigned(spec.mantissa_bits + 1), depth=1 << spec.barrier_frac_bits,
                     init=mantissa_rom(spec.barrier_frac_bits, spec.mantissa_bits),
                     attrs={"ram_style": "block", "rom_style": "block"})
        m.submodules[f"mantissa_rom_{k}"] = rom
        for lane, lookup in group:
            port = rom.read_port()
            m.d.comb += [port.addr.eq(lanes[lane].rom_addr[lookup]),
                         lanes[lane].rom_data[lookup].eq(port.data)]
