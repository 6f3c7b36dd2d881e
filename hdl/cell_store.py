"""The compact core's cell store: every per-cell bank in one single-port RAM of narrow words.

The per-slot regions of the register map (weight, valid, diag, field, bias, tilt, column and the
optional per-cell counters) each take ``ceil(width / WORD_BITS)`` *planes*; plane p of slot s is
RAM word ``p << slot_bits | s``. A value is stored sign-extended (signed regions) or
zero-extended over its planes, least significant plane first, so a plane read alone extends
correctly. On an iCE40UP5K the whole store of a G-set-sized array (1024 slots, 9 planes) is
one 16384 x 16 SPRAM block (hdl/single_port_ram.py).

Accesses are sequences of consecutive planes of one slot: ``start`` with ``plane``, ``count``,
``slot``, ``write`` and ``wdata`` (count x WORD_BITS bits) in cycle t touches planes plane ..
plane + count - 1 in cycles t .. t + count - 1; ``done`` is high in cycle t + count, where
``rdata`` holds the planes read (least significant first) until the next ``start``. ``busy`` is
high in cycles t + 1 .. t + count - 1; a new ``start`` is allowed whenever ``busy`` is low, the
``done`` cycle included.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .single_port_ram import SinglePortRam

WORD_BITS = 16
#: the per-slot regions of a register map, in plane order
CELL_REGIONS = ("weight", "valid", "diag", "field", "bias", "tilt", "column", "cell_up",
                "cell_down")


class CellLayout:
    """Where each per-slot region of `rmap` lives: ``regions[name] = (first plane, planes)``."""

    def __init__(self, rmap):
        g = rmap.geometry
        self.slot_bits = g.group_bits + g.lane_bits
        self.regions = {}
        planes = 0
        for name in CELL_REGIONS:
            if name in rmap.regions:
                count = -(-rmap[name].width // WORD_BITS)
                self.regions[name] = (planes, count)
                planes += count
        self.planes = planes
        self.max_planes = max(count for _, count in self.regions.values())
        self.depth = planes << self.slot_bits

    def __repr__(self):
        return f"CellLayout(regions={self.regions!r}, slot_bits={self.slot_bits})"


class CellStore(wiring.Component):
    """Ports: see the module docstring."""

    def __init__(self, layout):
        self.layout = layout
        super().__init__({
            "start": In(1),
            "plane": In(range(layout.planes)),
            "count": In(range(1, layout.max_planes + 1)),
            "slot": In(max(1, layout.slot_bits)),
            "write": In(1),
            "wdata": In(layout.max_planes * WORD_BITS),
            "busy": Out(1),
            "done": Out(1),
            "rdata": Out(layout.max_planes * WORD_BITS),
        })

    def __repr__(self):
        return f"CellStore({self.layout!r})"

    def elaborate(self, platform):
        m = Module()
        layout = self.layout
        m.submodules.ram = ram = SinglePortRam(width=WORD_BITS, depth=layout.depth)
        plane = Signal.like(self.plane)
        left = Signal(range(layout.max_planes + 1))       # planes after the current one
        slot = Signal.like(self.slot)
        write = Signal()
        pending = Signal(layout.max_planes * WORD_BITS)  # write data of the planes to come
        index = Signal(range(layout.max_planes + 1))       # position of the current plane
        arriving = Signal()                              # a read answers in this cycle
        arriving_index = Signal.like(index)
        last = Signal()                                  # the sequence's last access was last cycle
        held = Signal(layout.max_planes * WORD_BITS)

        def address(p, s):
            return (p << layout.slot_bits) | s[:layout.slot_bits] if layout.slot_bits else p

        with m.If(self.start):
            m.d.comb += [ram.addr.eq(address(self.plane, self.slot)),
                         ram.wdata.eq(self.wdata[:WORD_BITS]), ram.we.eq(self.write),
                         ram.re.eq(~self.write)]
            m.d.sync += [plane.eq(self.plane + 1), left.eq(self.count - 1), slot.eq(self.slot),
                         write.eq(self.write), pending.eq(self.wdata >> WORD_BITS),
                         index.eq(1), arriving.eq(~self.write), arriving_index.eq(0),
                         last.eq(self.count == 1)]
        with m.Elif(self.busy):
            m.d.comb += [ram.addr.eq(address(plane, slot)), ram.wdata.eq(pending[:WORD_BITS]),
                         ram.we.eq(write), ram.re.eq(~write)]
            m.d.sync += [plane.eq(plane + 1), left.eq(left - 1), pending.eq(pending >> WORD_BITS),
                         index.eq(index + 1), arriving.eq(~write), arriving_index.eq(index),
                         last.eq(left == 1)]
        with m.Else():
            m.d.sync += [arriving.eq(0), last.eq(0)]
        m.d.comb += [self.busy.eq(left != 0), self.done.eq(last)]

        # reads: each plane's word lands in `held` at its position; the last one is passed
        # straight through in the `done` cycle
        current = Signal.like(held)
        m.d.comb += current.eq(held)
        with m.If(arriving):
            for i in range(layout.max_planes):
                with m.If(arriving_index == i):
                    m.d.comb += current.word_select(i, WORD_BITS).eq(ram.rdata)
            m.d.sync += held.eq(current)
        with m.If(self.start & ~self.write):
            m.d.sync += held.eq(0)
        m.d.comb += self.rdata.eq(Mux(arriving, current, held))
        return m
