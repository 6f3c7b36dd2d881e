"""The compute-in-memory field engine: keeps g = QW - b and applies g += dw Q[:, m] per move.

The field lives in one bank per lane (bank l holds the slots of lane l, address = group), so
the lanes read their cells' fields in parallel. After a move of the cell in slot m by
dw = +-delta, every row of column m is updated, event-driven, with additions only:

* dense Q: bank l holds Q[row, m] for its rows at address m * groups_p2 + row_group; all
  lanes update one row group per cycle (pipelined): ``groups + 1`` cycles per move;
* sparse Q: a column table (start, length) and a list of entries (lane, group, value) in
  column order; one entry per cycle through a 3-stage pipeline (the rows of one column are
  distinct, so the read-modify-write of consecutive entries never collides): ``length + 3``
  cycles per move.

The host reads and writes g, Q and the sparse tables through the ``host_*`` ports while the
engine is idle. Memories have one synchronous read and one write port each (block RAM).
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

TARGET_FIELD, TARGET_Q, TARGET_COLUMN, TARGET_ENTRY = range(4)


def lane_select(values, lane):
    """values[lane] (0 when lane is past the last one): the host's view of one bank."""
    if len(values) == 1:
        return Mux(lane == 0, values[0], 0)
    width = len(values[0])
    return Mux(lane < len(values),
               Cat(*[v.as_unsigned() for v in values]).word_select(lane, width), 0)


class FieldEngine(wiring.Component):
    """Ports:

    * ``eval_addr`` (group): the fields of that group appear on ``eval_field[lane]`` one cycle
      later (when the engine is idle and no host read is under way);
    * ``start`` (strobe), ``column`` (slot index group * lanes_p2 + lane), ``dw`` (the
      weight change: +-delta for a move, the whole weight when the field is initialised):
      g += dw Q[:, column]; ``busy`` until done; on completion ``adds_valid``
      pulses with ``adds``, the additions performed (dense: ``cells``);
    * ``cells``, ``groups``: run-time sizes (dense: additions per move, row groups to sweep);
    * ``host_we``/``host_re``, ``host_target`` (field | q | column | entry), ``host_index``,
      ``host_wdata``; ``host_rdata`` is valid the cycle after ``host_re``.
    """

    def __init__(self, spec, geometry):
        self.spec, self.geometry = spec, geometry
        g = geometry
        self.delta = spec.delta
        self.ptr_bits = g.ptr_bits
        # the host's index into the largest table: the field, dense Q or the sparse entries
        largest = max(g.slots, g.dense_q_depth * g.lanes_p2 if g.q_storage == "dense"
                      else g.q_capacity)
        self.index_bits = (largest - 1).bit_length()
        self.entry_bits = g.entry_bits(spec.q_bits)
        host_bits = max(spec.field_bits, spec.q_bits, 2 * self.ptr_bits, self.entry_bits)
        super().__init__({
            "eval_addr": In(g.group_bits),
            "eval_field": Out(signed(spec.field_bits)).array(g.lanes),
            "start": In(1),
            "column": In(g.group_bits + g.lane_bits),
            "dw": In(signed(max(spec.weight_bits, 2) + 1)),
            "busy": Out(1),
            "adds": Out(max(self.ptr_bits, spec.cells.bit_length()) + 1),
            "adds_valid": Out(1),
            "cells": In(max(1, spec.cells.bit_length())),
            "groups": In(g.group_bits + 1),
            "host_we": In(1),
            "host_re": In(1),
            "host_target": In(2),
            "host_index": In(self.index_bits),
            "host_wdata": In(host_bits),
            "host_rdata": Out(host_bits),
        })

    def elaborate(self, platform):
        spec, g = self.spec, self.geometry
        m = Module()
        lanes, lane_bits = g.lanes, g.lane_bits
        host_lane = self.host_index[:lane_bits] if lane_bits else Const(0, 1)
        host_addr = self.host_index[lane_bits:]
        dw = Signal.like(self.dw)
        column = Signal.like(self.column)

        def scaled(q):
            """dw * q for the latched update (one small multiplier per lane)."""
            return dw * q

        # -- field banks ------------------------------------------------------------------------
        field_read, field_write = [], []
        for lane in range(lanes):
            mem = Memory(shape=signed(spec.field_bits), depth=g.groups_p2, init=[])
            m.submodules[f"field_{lane}"] = mem
            field_read.append(mem.read_port())
            field_write.append(mem.write_port())
            m.d.comb += self.eval_field[lane].eq(field_read[lane].data)
        read_lane = Signal(range(g.lanes_p2))          # bank of the last host read
        read_target = Signal(2)

        with m.If(self.host_re):
            m.d.sync += [read_lane.eq(host_lane), read_target.eq(self.host_target)]

        # default addressing: evaluation reads; the host when it asks
        for lane in range(lanes):
            m.d.comb += field_read[lane].addr.eq(self.eval_addr)
            with m.If(self.host_re & (self.host_target == TARGET_FIELD)):
                m.d.comb += field_read[lane].addr.eq(host_addr)
            with m.If(self.host_we & (self.host_target == TARGET_FIELD) & (host_lane == lane)):
                m.d.comb += [field_write[lane].addr.eq(host_addr),
                             field_write[lane].data.eq(self.host_wdata),
                             field_write[lane].en.eq(1)]
        host_field = lane_select([p.data for p in field_read], read_lane)

        with m.If(self.start):
            m.d.sync += [column.eq(self.column), dw.eq(self.dw)]

        if g.q_storage == "dense":
            host_q = self._dense(m, field_read, field_write, scaled, column, host_lane,
                                 host_addr, read_lane)
            with m.Switch(read_target):
                with m.Case(TARGET_FIELD):
                    m.d.comb += self.host_rdata.eq(host_field)
                with m.Case(TARGET_Q):
                    m.d.comb += self.host_rdata.eq(host_q)
        else:
            host_column, host_entry = self._sparse(m, field_read, field_write, scaled, column)
            with m.Switch(read_target):
                with m.Case(TARGET_FIELD):
                    m.d.comb += self.host_rdata.eq(host_field)
                with m.Case(TARGET_COLUMN):
                    m.d.comb += self.host_rdata.eq(host_column)
                with m.Case(TARGET_ENTRY):
                    m.d.comb += self.host_rdata.eq(host_entry)
        return m

    # -- dense Q ------------------------------------------------------------------------------
    def _dense(self, m, field_read, field_write, scaled, column, host_lane, host_addr, read_lane):
        spec, g = self.spec, self.geometry
        lanes, group_bits = g.lanes, g.group_bits
        q_read = []
        for lane in range(lanes):
            mem = Memory(shape=signed(spec.q_bits), depth=g.dense_q_depth, init=[])
            m.submodules[f"q_{lane}"] = mem
            rp, wp = mem.read_port(), mem.write_port()
            q_read.append(rp)
            m.d.comb += rp.addr.eq(host_addr)
            with m.If(self.host_we & (self.host_target == TARGET_Q) & (host_lane == lane)):
                m.d.comb += [wp.addr.eq(host_addr), wp.data.eq(self.host_wdata), wp.en.eq(1)]
        issue = Signal(group_bits + 1)          # row group whose read is issued this cycle
        pending = Signal()                      # a read was issued last cycle
        written = Signal(group_bits)            # its row group
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += issue.eq(0)
                    m.next = "SWEEP"
            with m.State("SWEEP"):
                m.d.comb += self.busy.eq(1)
                issuing = issue < self.groups
                for lane in range(lanes):
                    m.d.comb += [field_read[lane].addr.eq(issue[:group_bits]),
                                 q_read[lane].addr.eq(Cat(issue[:group_bits], column))]
                    with m.If(pending):
                        m.d.comb += [field_write[lane].addr.eq(written),
                                     field_write[lane].data.eq(
                                         field_read[lane].data + scaled(q_read[lane].data)),
                                     field_write[lane].en.eq(1)]
                m.d.sync += [pending.eq(issuing), written.eq(issue[:group_bits])]
                with m.If(issuing):
                    m.d.sync += issue.eq(issue + 1)
                with m.Elif(~pending):
                    m.d.comb += [self.adds.eq(self.cells), self.adds_valid.eq(1)]
                    m.next = "IDLE"
        return lane_select([p.data for p in q_read], read_lane)

    # -- sparse Q -----------------------------------------------------------------------------
    def _sparse(self, m, field_read, field_write, scaled, column):
        spec, g = self.spec, self.geometry
        lanes, lane_bits, group_bits, ptr_bits = g.lanes, g.lane_bits, g.group_bits, self.ptr_bits
        columns = Memory(shape=unsigned(2 * ptr_bits), depth=g.slots, init=[])
        entries = Memory(shape=unsigned(self.entry_bits), depth=g.q_capacity, init=[])
        m.submodules.columns, m.submodules.entries = columns, entries
        col_read, col_write = columns.read_port(), columns.write_port()
        ent_read, ent_write = entries.read_port(), entries.write_port()
        m.d.comb += [col_read.addr.eq(self.host_index), ent_read.addr.eq(self.host_index)]
        with m.If(self.host_we & (self.host_target == TARGET_COLUMN)):
            m.d.comb += [col_write.addr.eq(self.host_index), col_write.data.eq(self.host_wdata),
                         col_write.en.eq(1)]
        with m.If(self.host_we & (self.host_target == TARGET_ENTRY)):
            m.d.comb += [ent_write.addr.eq(self.host_index), ent_write.data.eq(self.host_wdata),
                         ent_write.en.eq(1)]

        pointer = Signal(ptr_bits)
        remaining = Signal(ptr_bits + 1)
        fetched = Signal()                        # stage 1: an entry arrives this cycle
        stage2 = Signal()                         # stage 2: its field arrives this cycle
        s2_lane = Signal(range(g.lanes_p2))
        s2_addr = Signal(group_bits)
        s2_value = Signal(signed(spec.q_bits))
        layout = g.entry_layout(spec.q_bits)

        def entry_field(name):
            at, width = layout[name]
            return ent_read.data[at:at + width]

        entry_value = entry_field("value").as_signed()
        entry_lane = entry_field("lane") if lane_bits else Const(0, 1)
        entry_addr = entry_field("group")
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += col_read.addr.eq(self.column)
                    m.next = "COLUMN"
            with m.State("COLUMN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [pointer.eq(col_read.data[:ptr_bits]),
                             remaining.eq(col_read.data[ptr_bits:]),
                             fetched.eq(0), stage2.eq(0)]
                m.next = "SWEEP"
            with m.State("SWEEP"):
                m.d.comb += self.busy.eq(1)
                # stage 0: fetch the next entry
                m.d.comb += ent_read.addr.eq(pointer)
                m.d.sync += fetched.eq(remaining != 0)
                with m.If(remaining != 0):
                    m.d.sync += [pointer.eq(pointer + 1), remaining.eq(remaining - 1)]
                # stage 1: read the field of the entry's row
                with m.If(fetched):
                    for lane in range(lanes):
                        with m.If(entry_lane == lane):
                            m.d.comb += field_read[lane].addr.eq(entry_addr)
                m.d.sync += [stage2.eq(fetched), s2_lane.eq(entry_lane), s2_addr.eq(entry_addr),
                             s2_value.eq(entry_value)]
                # stage 2: write it back updated
                with m.If(stage2):
                    for lane in range(lanes):
                        with m.If(s2_lane == lane):
                            m.d.comb += [field_write[lane].addr.eq(s2_addr),
                                         field_write[lane].data.eq(
                                             field_read[lane].data + scaled(s2_value)),
                                         field_write[lane].en.eq(1)]
                with m.If((remaining == 0) & ~fetched & ~stage2):
                    m.next = "DONE"
            with m.State("DONE"):
                m.next = "IDLE"
        self._count_sparse_adds(m, col_read.data[ptr_bits:])
        return col_read.data, ent_read.data

    def _count_sparse_adds(self, m, length):
        """``adds`` = the column's length (read the cycle after ``start``), reported with
        ``adds_valid`` once the sweep is over."""
        adds = Signal(self.ptr_bits + 1)
        with m.FSM(name="count"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "LATCH"
            with m.State("LATCH"):
                m.d.sync += adds.eq(length)
                m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(~self.busy):
                    m.d.comb += [self.adds.eq(adds), self.adds_valid.eq(1)]
                    m.next = "IDLE"

    def __repr__(self):
        return f"FieldEngine(spec={self.spec!r}, geometry={self.geometry!r})"
