"""A single-port RAM: one access a cycle, a read or a write, at one address.

The compact core (hdl/compact_core.py) keeps its cell banks and its Q store in RAMs like this,
because on an iCE40 UltraPlus they can live in the four 256 kbit SPRAM blocks (16384 x 16 bits
each), which have exactly one port, instead of the thirty 4 kbit block RAMs. On such a device
(an ``SiliconBluePlatform`` whose device is an iCE40UP) a RAM of at least ``SPRAM_MIN_BITS``
is built from ``SB_SPRAM256KA`` tiles, side by side for the width and stacked for the depth;
everywhere else (simulation, Verilator, other FPGAs) it is an ``amaranth.lib.memory.Memory``
with one read and one write port on the same address, which Yosys maps to block RAM.

Timing: drive ``addr`` with ``re`` (a read) or with ``wdata`` and ``we`` (a write) in cycle t;
a read answers on ``rdata`` in cycle t + 1, and ``rdata`` keeps that value until the next read
(on SPRAM tiles a register holds it: their output is only defined after a read).
"""

from amaranth import Cat, ClockSignal, Const, Module, Mux, Signal
from amaranth.hdl import Instance
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.vendor import SiliconBluePlatform
from limemu.model.errors import require

SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16
SPRAM_MIN_BITS = 16384          # smaller RAMs stay in block RAM (4 of them hold 16 kbit)


def uses_spram(platform, width, depth):
    """Whether a RAM of width x depth is built from SPRAM tiles on `platform`."""
    return (isinstance(platform, SiliconBluePlatform) and platform.device.startswith("iCE40UP")
            and width * depth >= SPRAM_MIN_BITS)


def spram_tiles(width, depth):
    """SB_SPRAM256KA blocks of a RAM of width x depth."""
    return -(-width // SPRAM_WIDTH) * -(-depth // SPRAM_DEPTH)


class SinglePortRam(wiring.Component):
    """Ports ``addr``, ``wdata``, ``we``, ``re`` in; ``rdata`` out (see the module docstring)."""

    def __init__(self, *, width, depth):
        for name, value in (("width", width), ("depth", depth)):
            require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                    name, value, "must be a positive integer")
        self.width, self.depth = width, depth
        super().__init__({
            "addr": In(range(depth)) if depth > 1 else In(1),
            "wdata": In(width),
            "we": In(1),
            "re": In(1),
            "rdata": Out(width),
        })

    def __repr__(self):
        return f"SinglePortRam(width={self.width}, depth={self.depth})"

    def elaborate(self, platform):
        m = Module()
        if uses_spram(platform, self.width, self.depth):
            self._spram(m)
        else:
            m.submodules.memory = memory = Memory(shape=self.width, depth=self.depth, init=[])
            read, write = memory.read_port(), memory.write_port()
            m.d.comb += [read.addr.eq(self.addr), read.en.eq(self.re & ~self.we),
                         write.addr.eq(self.addr), write.data.eq(self.wdata),
                         write.en.eq(self.we), self.rdata.eq(read.data)]
        return m

    def _spram(self, m):
        columns = -(-self.width // SPRAM_WIDTH)
        rows = -(-self.depth // SPRAM_DEPTH)
        low = self.addr[:14] if len(self.addr) > 14 else self.addr
        row = self.addr[14:] if len(self.addr) > 14 else Const(0, 1)
        read_row = Signal.like(row)
        answering = Signal()                  # the tiles' outputs hold last cycle's read
        held = Signal(self.width)
        m.d.sync += answering.eq(self.re & ~self.we)
        with m.If(self.re & ~self.we):
            m.d.sync += read_row.eq(row)
        outputs = []
        for r in range(rows):
            pieces = []
            for c in range(columns):
                data_in = Signal(SPRAM_WIDTH, name=f"spram_{r}_{c}_in")
                m.d.comb += data_in.eq(self.wdata[c * SPRAM_WIDTH:(c + 1) * SPRAM_WIDTH])
                data_out = Signal(SPRAM_WIDTH, name=f"spram_{r}_{c}_out")
                m.submodules[f"spram_{r}_{c}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=low, i_DATAIN=data_in, i_MASKWREN=Const(0b1111, 4),
                    i_WREN=self.we & (row == r), i_CHIPSELECT=Const(1, 1),
                    i_CLOCK=ClockSignal(), i_STANDBY=Const(0, 1), i_SLEEP=Const(0, 1),
                    i_POWEROFF=Const(1, 1), o_DATAOUT=data_out)
                pieces.append(data_out)
            outputs.append(pieces)
        data = outputs[0]
        for r in range(1, rows):
            data = [Mux(read_row == r, outputs[r][c], data[c]) for c in range(columns)]
        with m.If(answering):
            m.d.sync += held.eq(Cat(*data)[:self.width])
        m.d.comb += self.rdata.eq(Mux(answering, Cat(*data)[:self.width], held))
