"""The throughput core's field engine: g = QW - b banked by lane, Q stored as rows of the banks.

The field of the cell at slot ``group * lanes_p2 + lane`` lives in ``lane``'s bank at address
``group``. A column m of Q is stored as rows: row r holds, for every lane, one (target group,
value) pair, the r-th nonzero of the column whose row lies in that lane's bank (value 0 where
the lane has fewer). Applying g += dw Q[:, m] reads the column's rows one per cycle and every
bank adds its pair at once: a column takes as many cycles as its fullest bank has nonzeros
(a G-set column of 48 nonzeros over 32 banks: about 4), not one per nonzero.

A column table gives, per slot, the column's first row, its number of rows and its nonzeros
(the field additions it counts). Two streams of work enter:

* ``movers``: the moves of one group (``mover_group``, a lane mask ``mover_mask`` and the
  weight change of each lane ``mover_dw``); a selector takes them one lane at a time, lowest
  first, and hands each mover's column to the engine;
* the engine: column table read (1 cycle), then one row a cycle (row read, field read,
  add and write: 3 cycles of latency, one row a cycle of throughput), with no bubble between
  columns; a column of no rows costs one cycle.

Each bank's field memory has two read ports: ``eval_addr`` -> ``eval_field`` (the lanes'
evaluations, one cycle of latency) and the engine's, both transparent for the write port (the
engine's so that consecutive updates of one cell add up; the lanes' so that a read in the
cycle of a field's last write already sees it), and one write port. ``busy`` is high while
any move is queued or in flight, ``eval_stale`` while an evaluation could still read a field
that a pending move changes (``busy`` but for the last write); a core reads a group's fields
only when no pending move can change them. ``adds``/``adds_valid`` report each column's
additions as its table entry is read (``cells`` for every column when Q is counted dense, as
the model counts it).

Host ports (while idle): ``host_we``/``host_re``, ``host_target`` (TARGET_FIELD, TARGET_COLUMN,
TARGET_ROW), ``host_index``, ``host_wdata``; ``host_rdata`` is valid the cycle after
``host_re``. ``fill_we`` with ``fill_addr`` writes ``fill_data[lane]`` into every bank at once
(the core's `init_field`: g = -b, one group a cycle).
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

TARGET_FIELD, TARGET_COLUMN, TARGET_ROW = range(3)


def lane_of(values, lane):
    """values[lane] as a flat mux (0 past the last one)."""
    width = len(values[0])
    flat = Cat(*[v.as_unsigned() for v in values])
    return Mux(lane < len(values), flat.word_select(lane, width), 0) if len(values) > 1 \
        else Mux(lane == 0, values[0], 0)


class BankedField(wiring.Component):
    """See the module docstring. ``dw`` width: a weight plus a sign (moves are +-delta,
    `init_field` applies whole weights)."""

    def __init__(self, spec, geometry):
        self.spec, self.geometry = spec, geometry
        g = geometry
        self.dw_bits = max(spec.weight_bits, 2) + 1
        self.column_bits = sum(w for _, w in g.banked_column_layout().values())
        self.row_bits = g.lanes * g.row_entry_bits(spec.q_bits)
        largest = max(g.slots, g.q_capacity)
        host_bits = max(spec.field_bits, self.column_bits, self.row_bits)
        super().__init__({
            "eval_addr": In(g.group_bits),
            "eval_field": Out(signed(spec.field_bits)).array(g.lanes),
            "mover_valid": In(1),
            "mover_ready": Out(1),
            "mover_group": In(g.group_bits),
            "mover_mask": In(g.lanes),
            "mover_dw": In(signed(self.dw_bits)).array(g.lanes),
            "busy": Out(1),
            "eval_stale": Out(1),
            "adds": Out(max(g.adds_bits, spec.cells.bit_length())),
            "adds_valid": Out(1),
            "cells": In(max(1, spec.cells.bit_length())),
            "host_we": In(1),
            "host_re": In(1),
            "host_target": In(2),
            "host_index": In(max(1, (largest - 1).bit_length())),
            "host_wdata": In(host_bits),
            "host_rdata": Out(host_bits),
            "fill_we": In(1),
            "fill_addr": In(g.group_bits),
            "fill_data": In(signed(spec.field_bits)).array(g.lanes),
        })

    def __repr__(self):
        return f"BankedField(spec={self.spec!r}, geometry={self.geometry!r})"

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        m.submodules.columns = columns = Memory(shape=unsigned(self.column_bits), depth=g.slots,
                                                init=[])
        m.submodules.rows = rows = Memory(shape=unsigned(self.row_bits), depth=g.q_capacity,
                                          init=[])
        col_read, col_write = columns.read_port(), columns.write_port()
        row_read, row_write = rows.read_port(), rows.write_port()
        banks = self._banks(m)
        column, dw, column_valid = self._selector(m)
        self._engine(m, col_read, row_read, banks, column, dw, column_valid)
        self._host(m, col_read, col_write, row_read, row_write, banks)
        return m

    # -- the banks ------------------------------------------------------------------------------
    def _banks(self, m):
        """Per lane: the field memory and its three ports (eval read, engine read, write)."""
        g, spec = self.geometry, self.spec
        banks = []
        for lane in range(g.lanes):
            mem = Memory(shape=signed(spec.field_bits), depth=g.groups_p2, init=[])
            m.submodules[f"field_{lane}"] = mem
            write = mem.write_port()
            bank = {"eval": mem.read_port(transparent_for=(write,)),
                    "update": mem.read_port(transparent_for=(write,)), "write": write}
            m.d.comb += [bank["eval"].addr.eq(self.eval_addr),
                         self.eval_field[lane].eq(bank["eval"].data)]
            with m.If(self.fill_we):
                m.d.comb += [write.addr.eq(self.fill_addr), write.data.eq(self.fill_data[lane]),
                             write.en.eq(1)]
            banks.append(bank)
        return banks

    # -- the mover selector ------------------------------------------------------------------------
    def _selector(self, m):
        """One group's movers in, one (slot, dw) a cycle out (lowest lane first). Returns the
        column (slot), its dw and whether one is offered; ``self._take`` accepts it."""
        g = self.geometry
        group = Signal(g.group_bits)
        mask = Signal(g.lanes)
        dws = [Signal(signed(self.dw_bits), name=f"sel_dw_{lane}") for lane in range(g.lanes)]
        lowest = Signal(range(max(2, g.lanes)))
        for lane in reversed(range(g.lanes)):
            with m.If(mask[lane]):
                m.d.comb += lowest.eq(lane)
        self._take = Signal()
        last = (mask & (mask - 1)) == 0                  # at most one mover left
        m.d.comb += self.mover_ready.eq((mask == 0) | (self._take & last))
        with m.If(self._take):
            m.d.sync += mask.eq(mask & ~(1 << lowest))
        with m.If(self.mover_valid & self.mover_ready):
            m.d.sync += [group.eq(self.mover_group), mask.eq(self.mover_mask)]
            m.d.sync += [dws[lane].eq(self.mover_dw[lane]) for lane in range(g.lanes)]
        column = Cat(lowest[:g.lane_bits], group) if g.lane_bits else group
        dw = Signal(signed(self.dw_bits))
        m.d.comb += dw.eq(dws[0])
        for lane in range(1, g.lanes):
            with m.If(lowest == lane):
                m.d.comb += dw.eq(dws[lane])
        self._selector_busy = mask != 0
        return column, dw, mask != 0

    # -- the engine ----------------------------------------------------------------------------
    def _engine(self, m, col_read, row_read, banks, column, dw, column_valid):
        """Column table -> rows -> read, add, write in every bank."""
        g, spec = self.geometry, self.spec
        layout = g.banked_column_layout()

        def field(name):
            at, width = layout[name]
            return col_read.data[at:at + width]

        loaded = Signal()                      # the table entry of the accepted column is here
        loaded_dw = Signal(signed(self.dw_bits))
        next_row = Signal(g.ptr_bits)
        rows_left = Signal(g.ptr_bits)
        row_dw = Signal(signed(self.dw_bits))
        issue = Signal()
        issue_row = Signal(g.ptr_bits)
        rows_now = Mux(loaded, field("rows"), rows_left)
        last_issue = rows_now <= 1
        accept = column_valid & last_issue
        m.d.comb += self._take.eq(accept)
        with m.If(accept):
            m.d.comb += col_read.addr.eq(column)
        m.d.sync += [loaded.eq(accept), loaded_dw.eq(dw)]
        with m.If(loaded):
            m.d.comb += [self.adds_valid.eq(1),
                         self.adds.eq(self.cells if g.q_storage == "dense" else field("nonzeros"))]
            m.d.comb += [issue.eq(field("rows") != 0), issue_row.eq(field("first"))]
            m.d.sync += [next_row.eq(field("first") + 1),
                         rows_left.eq(Mux(field("rows") != 0, field("rows") - 1, 0)),
                         row_dw.eq(loaded_dw)]
        with m.Elif(rows_left != 0):
            m.d.comb += [issue.eq(1), issue_row.eq(next_row)]
            m.d.sync += [next_row.eq(next_row + 1), rows_left.eq(rows_left - 1)]
        current_dw = Mux(loaded, loaded_dw, row_dw)
        with m.If(issue):
            m.d.comb += row_read.addr.eq(issue_row)

        # row data arrives: each bank reads its target's field
        r1_valid, r1_dw = Signal(), Signal(signed(self.dw_bits))
        m.d.sync += [r1_valid.eq(issue), r1_dw.eq(current_dw)]
        entry_bits = g.row_entry_bits(spec.q_bits)
        r2_valid = Signal()
        m.d.sync += r2_valid.eq(r1_valid)
        for lane, bank in enumerate(banks):
            entry = row_read.data[lane * entry_bits:(lane + 1) * entry_bits]
            value = entry[:spec.q_bits].as_signed()
            target = entry[spec.q_bits:]
            r2_addr = Signal(g.group_bits, name=f"r2_addr_{lane}")
            r2_delta = Signal(signed(self.dw_bits + spec.q_bits), name=f"r2_delta_{lane}")
            m.d.comb += bank["update"].addr.eq(target)
            m.d.sync += [r2_addr.eq(target), r2_delta.eq(r1_dw * value)]
            # the field arrives: add, write (the next row's read of this cell sees it)
            with m.If(r2_valid):
                m.d.comb += [bank["write"].addr.eq(r2_addr),
                             bank["write"].data.eq(bank["update"].data + r2_delta),
                             bank["write"].en.eq(1)]
        m.d.comb += [self.eval_stale.eq(self._selector_busy | loaded | (rows_left != 0)
                                        | r1_valid),
                     self.busy.eq(self.eval_stale | r2_valid)]

    # -- the host ------------------------------------------------------------------------------
    def _host(self, m, col_read, col_write, row_read, row_write, banks):
        g = self.geometry
        lane_bits = g.lane_bits
        host_lane = self.host_index[:lane_bits] if lane_bits else Const(0, 1)
        host_addr = self.host_index[lane_bits:]
        read_lane = Signal(range(g.lanes_p2))
        read_target = Signal(2)
        with m.If(self.host_re):
            m.d.sync += [read_lane.eq(host_lane), read_target.eq(self.host_target)]
            with m.Switch(self.host_target):
                with m.Case(TARGET_FIELD):
                    for bank in banks:
                        m.d.comb += bank["eval"].addr.eq(host_addr)
                with m.Case(TARGET_COLUMN):
                    m.d.comb += col_read.addr.eq(self.host_index)
                with m.Case(TARGET_ROW):
                    m.d.comb += row_read.addr.eq(self.host_index)
        with m.If(self.host_we):
            with m.Switch(self.host_target):
                with m.Case(TARGET_FIELD):
                    for lane, bank in enumerate(banks):
                        with m.If(host_lane == lane):
                            m.d.comb += [bank["write"].addr.eq(host_addr),
                                         bank["write"].data.eq(self.host_wdata),
                                         bank["write"].en.eq(1)]
                with m.Case(TARGET_COLUMN):
                    m.d.comb += [col_write.addr.eq(self.host_index),
                                 col_write.data.eq(self.host_wdata), col_write.en.eq(1)]
                with m.Case(TARGET_ROW):
                    m.d.comb += [row_write.addr.eq(self.host_index),
                                 row_write.data.eq(self.host_wdata), row_write.en.eq(1)]
        with m.Switch(read_target):
            with m.Case(TARGET_FIELD):
                m.d.comb += self.host_rdata.eq(lane_of([b["eval"].data for b in banks],
                                                       read_lane))
            with m.Case(TARGET_COLUMN):
                m.d.comb += self.host_rdata.eq(col_read.data)
            with m.Case(TARGET_ROW):
                m.d.comb += self.host_rdata.eq(row_read.data)
