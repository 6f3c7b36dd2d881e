"""What every array core shares: its ports (`CoreSignature`), its control and status logic
(`CoreControl`) and its constructor (`CoreBase`).

A core is built from a Spec and a Geometry and speaks the register map of hdl/regmap.py. Build a
new core as a `CoreBase` subclass: it gets the ports, the register map and a ``__repr__``; in
``elaborate`` it adds `CoreControl` and the registers (``self.control(m, p)``), decodes the bus
(hdl/core_bus.py has the parts both cores use) and runs its FSM between the strobes CoreControl
gives it:

    self.control(m, p)                          # p.regs, p.ctl, ...
    ctl = p.ctl
    with m.FSM():
        with m.State("IDLE"):
            with m.If(ctl.start_run): ...          # a start the sizes allow: run
            with m.Elif(ctl.start_init): ...       # init_field: build g = QW - b
        ...                                        # the run, and at its end:
            m.d.comb += ctl.finish.eq(1)           # busy falls, done rises

The bus, from the core's side (the host bridge and the Verilator harnesses drive it):

* a write: ``addr``, ``wdata`` and ``we`` for one cycle in which ``ready`` is high;
* a read: ``addr`` and ``re`` for one cycle in which ``ready`` is high, answered by ``rdata``
  in the cycle ``rack`` is high (a fixed or a variable number of cycles later: the core's
  docstring says); reads are answered in order;
* ``ready``: the core takes an access in this cycle (a core that always takes one drives it
  high);
* ``busy``, ``done``, ``error``: the status register's flags (``error``: any error flag), for
  LEDs and testbenches.

Refused accesses change nothing and set a status flag (`CoreControl.refuse_address`,
``refuse_busy``); the control register's strobes act only while the core is not busy.
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from . import core_bus
from .regmap import CONTROL, STATUS, WORD_BITS, RegisterMap


def _flags_layout(bits):
    """One bit per name, at the bit position the register map gives it."""
    assert sorted(bits.values()) == list(range(len(bits))), bits
    return data.StructLayout({name: 1 for name in sorted(bits, key=bits.get)})


#: the control register's strobes (a write of ``control``) and the status register's flags
CONTROL_LAYOUT = _flags_layout(CONTROL)
STATUS_LAYOUT = _flags_layout(STATUS)
ERROR_FLAGS = tuple(name for name in STATUS if name.startswith("error_"))


class CoreSignature(wiring.Signature):
    """The ports of an array core, from the core's side: the bus (``addr`` of `address_bits`,
    ``wdata``, ``we``, ``re`` in; ``rdata``, ``rack``, ``ready`` out) and the status outputs
    ``busy``, ``done``, ``error``. See the module docstring for the bus protocol."""

    def __init__(self, address_bits):
        self.address_bits = address_bits
        super().__init__({
            "addr": In(address_bits),
            "wdata": In(WORD_BITS),
            "we": In(1),
            "re": In(1),
            "rdata": Out(WORD_BITS),
            "rack": Out(1),
            "ready": Out(1, init=1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
        })

    def __eq__(self, other):
        return type(other) is CoreSignature and other.address_bits == self.address_bits

    def __repr__(self):
        return f"CoreSignature({self.address_bits})"


class CoreControl(wiring.Component):
    """The control register's strobes and the status register's flags of a core.

    Ports:

    * ``control`` (In, CONTROL_LAYOUT): the strobes of an accepted write of ``control``, for
      one cycle (zero otherwise);
    * ``cells``, ``groups``, ``run_steps`` (In): the registers a start is checked against;
    * ``refuse_address``, ``refuse_busy`` (In): one-cycle strobes of the bus decoder: set
      ``error_address`` (unknown address, wrong direction, a word or index that does not exist)
      or ``error_busy_write`` (a write or a memory read during a run);
    * ``start_allowed`` (In, 1 unless driven): what else a start needs, for a core that refuses
      some configurations (the throughput core: no external tilts); a start without it sets
      ``error_config``;
    * ``accept_allowed`` (In, 0 unless driven): a proposal waits for its decision (an MH core,
      after a single step with external tilts); an ``accept`` without it sets ``error_config``;
    * ``decided``, ``accepted`` (In): a one-cycle strobe of the decision and its outcome, into
      the status flag ``accepted``;
    * ``finish`` (In): the core's run, field initialisation or decision is over: ``busy``
      falls, ``done`` rises;
    * ``start_run``, ``start_init``, ``clear``, ``start_accept`` (Out): one-cycle strobes to
      the core's FSM: a start the sizes allow (cells and groups in [1, the build's],
      ``run_steps`` > 0; a start of 0 steps only sets ``done``, one outside the sizes
      ``error_config``), an ``init_field``, a ``clear`` (zero the counters, restart the
      schedules), an ``accept`` that is allowed. Only while not busy; one at a time, in this
      order of priority. ``busy`` rises with all but ``clear``;
    * ``stop_requested`` (Out): a ``stop`` came during this run (cleared by the next start);
    * ``status`` (Out, STATUS_LAYOUT): the flags (``status.busy``, ``status.done``: the core's
      outputs), ``error`` (Out): any error flag.

    ``clear_errors`` clears the error flags; a refusal strobe in the same cycle loses to it,
    a refused start (``error_config``) wins.
    """

    def __init__(self, rmap):
        self.max_cells, self.max_groups = rmap.spec.cells, rmap.geometry.groups
        super().__init__({
            "control": In(CONTROL_LAYOUT),
            "cells": In(rmap["cells"].width),
            "groups": In(rmap["groups"].width),
            "run_steps": In(rmap["run_steps"].width),
            "refuse_address": In(1),
            "refuse_busy": In(1),
            "start_allowed": In(1, init=1),
            "accept_allowed": In(1),
            "decided": In(1),
            "accepted": In(1),
            "finish": In(1),
            "start_run": Out(1),
            "start_init": Out(1),
            "clear": Out(1),
            "start_accept": Out(1),
            "stop_requested": Out(1),
            "status": Out(STATUS_LAYOUT),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        control = self.control
        status = Signal(STATUS_LAYOUT)
        errors = Cat(*[status[name] for name in ERROR_FLAGS])
        m.d.comb += [self.status.eq(status), self.error.eq(errors.any())]

        sizes_ok = ((self.groups != 0) & (self.groups <= self.max_groups)
                    & (self.cells != 0) & (self.cells <= self.max_cells) & self.start_allowed)
        start = control.start & ~status.busy
        accept = ~status.busy & ~control.start & ~control.init_field & ~control.clear & \
            control.accept
        m.d.comb += [
            self.start_run.eq(start & sizes_ok & (self.run_steps != 0)),
            self.start_init.eq(~status.busy & ~control.start & control.init_field),
            self.clear.eq(~status.busy & ~control.start & ~control.init_field & control.clear),
            self.start_accept.eq(accept & self.accept_allowed),
        ]
        with m.If(accept & ~self.accept_allowed):
            m.d.sync += status.error_config.eq(1)
        with m.If(self.decided):
            m.d.sync += status.accepted.eq(self.accepted)

        with m.If(self.refuse_address):
            m.d.sync += status.error_address.eq(1)
        with m.If(self.refuse_busy):
            m.d.sync += status.error_busy_write.eq(1)
        with m.If(control.clear_errors):
            m.d.sync += errors.eq(0)
        with m.If(start & ~sizes_ok):
            m.d.sync += status.error_config.eq(1)
        with m.Elif(start & (self.run_steps == 0)):
            m.d.sync += status.done.eq(1)               # nothing to run: done at once

        with m.If(self.start_run):
            m.d.sync += self.stop_requested.eq(0)
        with m.Elif(control.stop & status.busy):
            m.d.sync += self.stop_requested.eq(1)

        with m.If(self.start_run | self.start_init | self.start_accept):
            m.d.sync += [status.busy.eq(1), status.done.eq(0)]
        with m.If(self.clear):
            m.d.sync += status.done.eq(0)
        with m.If(self.finish):
            m.d.sync += [status.busy.eq(0), status.done.eq(1)]
        return m

    def __repr__(self):
        return f"CoreControl(max_cells={self.max_cells}, max_groups={self.max_groups})"


class CoreBase(wiring.Component):
    """An array core's constructor: ``spec``, ``geometry``, ``regmap`` (checks the two against
    each other), the ports of `CoreSignature`, ``__repr__``; and `control`, its CoreControl
    and registers."""

    def __init__(self, spec, geometry):
        self.spec, self.geometry = spec, geometry
        self.regmap = RegisterMap(spec, geometry)
        super().__init__(CoreSignature(self.regmap.address_bits))

    def __repr__(self):
        return f"{type(self).__name__}(spec={self.spec!r}, geometry={self.geometry!r})"

    def control(self, m, p):
        """The parts every core has around its own: `p` (a namespace) holds the core's
        ScheduleUnits ``barrier`` and ``gain`` and its counters ``counters`` (with a ``clear``
        port); this adds ``regs`` (the host's registers, core_bus.registers), ``ctl`` (the
        core's CoreControl, which drives ``busy``, ``done``, ``error``), ``running`` and
        ``cell_overflow`` (the per-cell counters' sticky flag, cleared with the counters).
        The schedule units take their configuration from the registers; a clear zeroes the
        counters and restarts the schedules."""
        p.regs = core_bus.registers(self.regmap)
        m.submodules.control = ctl = p.ctl = CoreControl(self.regmap)
        p.running = ctl.status.busy
        m.d.comb += [ctl.cells.eq(p.regs["cells"]), ctl.groups.eq(p.regs["groups"]),
                     ctl.run_steps.eq(p.regs["run_steps"]), self.busy.eq(ctl.status.busy),
                     self.done.eq(ctl.status.done), self.error.eq(ctl.error),
                     p.counters.clear.eq(ctl.clear), p.barrier.restart.eq(ctl.clear),
                     p.gain.restart.eq(ctl.clear)]
        core_bus.configure_schedules(m, p.regs, {"barrier": p.barrier, "gain": p.gain})
        p.cell_overflow = Signal()
        with m.If(ctl.clear):
            m.d.sync += p.cell_overflow.eq(0)
