"""A run on the array core (RTL): the same session interface as the golden model's.

The device is anything that moves words over the core's bus (`open_device`): the core under
Verilator (cocotb drives the bus), the virtual board (the whole board top under Verilator,
over the serial link on a pty) and a real board over the serial link. The host loads the
run, lets the core run K steps on its own, and reads weights, field and counters at
checkpoints.
"""

import time

import numpy as np

from limemu.hdl.regmap import CORES, STATUS, from_words
from limemu.model.engine import LimArray, checked_half_tilts
from limemu.model.errors import ConfigError, IdentityError, require
from limemu.model.spec import HARDWARE_FIELDS

from .host import (
    bank_indices,
    check_schedules,
    decode_state,
    geometry_for,
    load_sequence,
    run_plan,
    state_addresses,
    tilt_plan,
)
from .backends import HARDWARE
from .board_build import board_geometry, board_timing
from .progress import StepProgress

SEGMENT_EVALUATIONS = 2_000_000        # cell evaluations per run request (progress output)


def run_segments(steps, cells):
    """The step counts of the run requests that make a run of `steps` steps."""
    segment = max(1, SEGMENT_EVALUATIONS // cells)
    return [min(segment, steps - done) for done in range(0, steps, segment)]


def open_device(backend, spec, geometry, *, waves=None, log=None, port=None, baud=None,
                timeout=1.0, retries=3, resyncs=0):
    """A device of `backend` that holds a run of `spec` needing `geometry`; its `rmap` is the
    register map it speaks (a board's own build, which may be larger)."""
    from limemu.hdl.regmap import RegisterMap  # noqa: PLC0415
    if backend != "board" and port is not None:
        raise ConfigError(f"port = {port!r}: only --backend board takes a port")
    if backend == "verilator":
        from .verilator import VerilatorArray  # noqa: PLC0415
        device = VerilatorArray(spec, geometry, waves=waves, log=log)
        device.rmap = RegisterMap(spec, geometry)
        return device
    if waves:
        raise ConfigError(f"waves = {waves!r}: only --backend verilator writes waves")
    from .link import BoardDevice, Link  # noqa: PLC0415
    if backend == "vboard":
        from .vboard import VirtualBoard  # noqa: PLC0415
        board = VirtualBoard(spec, geometry, log=log)
        try:
            link = Link(board.port, baud=board.baud, timeout=timeout, retries=retries,
                        resyncs=resyncs)
            rmap = RegisterMap(spec, geometry)
            expect_build(link.info(), rmap, "the virtual board")
        except BaseException:
            board.close()
            raise
        return BoardDevice(link, rmap, name="vboard", board=board)
    if backend == "board":
        if port is None:
            raise ConfigError("port: --backend board needs --port (e.g. /dev/ttyUSB1)")
        link = Link(port, baud=baud or 1_000_000, timeout=timeout, retries=retries,
                    resyncs=resyncs)
        try:
            rmap = RegisterMap(*board_spec(link.info(), spec, geometry, port))
        except BaseException:
            link.close()
            raise
        return BoardDevice(link, rmap, name="board")
    raise ConfigError(f"backend = {backend!r}: must be one of {HARDWARE}")


def expect_build(info, rmap, what):
    """Checks that INFO describes exactly the build of `rmap`."""
    got = {**info["spec"], "geometry": info["geometry"]}
    want = {**{k: getattr(rmap.spec, k) for k in HARDWARE_FIELDS}, "geometry": rmap.geometry}
    if got != want:
        raise ConfigError(f"{what} reports a build of {got}, expected {want}")


def board_spec(info, spec, needed, port):
    """(spec, geometry) of a board's build that can hold the run `spec` needing `needed`:
    every format field equal, capacities at least the run's. The register map then has the
    board's counter widths (its cells capacity), which are at least the run's."""
    board, geo = info["spec"], info["geometry"]
    problems = [f"{k} = {getattr(spec, k)} (the board has {board[k]})"
                for k in HARDWARE_FIELDS if k != "cells" and board[k] != getattr(spec, k)]
    if spec.cells > board["cells"]:
        problems.append(f"cells = {spec.cells} (the board holds {board['cells']})")
    if geo.q_storage != needed.q_storage:
        problems.append(f"q_storage = {needed.q_storage} (the board has {geo.q_storage})")
    for name in ("groups", "q_capacity"):
        if getattr(needed, name) > getattr(geo, name):
            problems.append(f"{name}: the run needs {getattr(needed, name)}, the board holds "
                            f"{getattr(geo, name)}")
    for unit in ("barrier", "gain"):
        schedule = getattr(spec, unit)
        if schedule.kind == "table" and len(schedule.values) > geo.table_depth:
            problems.append(f"{unit} table of {len(schedule.values)} entries (the board holds "
                            f"{geo.table_depth})")
    if problems:
        raise ConfigError(f"the board on {port} cannot run this configuration: "
                          + "; ".join(problems) + ". Build a bitstream for it with "
                          "`limemu build` and the same array options.")
    return spec.replace(cells=board["cells"]), geo


class HardwareSession:
    """Session on the RTL: backend verilator, vboard or board (see open_device)."""

    segmented = True

    def __init__(self, workload, spec, progress=True, *, name="verilator", waves=None,
                 log=None, core="pipelined", device=None, board=None, **link_options):
        """device: a class taking (spec, geometry, log=...) to use instead of the backend's
        (scripts/bench_rtl.py: the core under a plain C++ loop); board: a board's name, to
        simulate the core and array its default build has (board_build.py)."""
        require(core in CORES, "core", core, f"must be one of {', '.join(CORES)}")
        self.name = name
        self.spec = spec
        # the model's own set-up gives the update order and the initial weights: both
        # backends start from the same state by construction
        self.probe = LimArray(spec, workload.problem if spec.tilt == "field" else None)
        order = self.probe.order
        problem = workload.problem if spec.tilt == "field" else None
        nnz = problem.nnz if problem is not None else 0
        geometry = geometry_for(spec, order, nnz, core=core, problem=problem)
        device_spec, self.board = spec, board
        if board is not None:
            device_spec, geometry = board_geometry(board, spec, geometry)
        check_schedules(spec, geometry)
        if device is not None:
            self.device = device(device_spec, geometry, log=log)
        else:
            self.device = open_device(name, device_spec, geometry, waves=waves, log=log,
                                      **link_options)
        self.rmap = self.device.rmap
        self.geometry = self.rmap.geometry
        try:
            check_schedules(spec, self.geometry)      # a board's own build (INFO) may differ
            for kind, words in load_sequence(self.rmap, problem, order, self.probe.W0,
                                             external=spec.tilt == "external"):
                if kind == "run":
                    self.device.run(words)
                else:
                    self.device.write(words)
        except BaseException:
            self.close()                              # the simulator or the port, not left open
            raise
        self.progress = StepProgress(name, spec.cells, progress)
        self.step = 0
        self.cycles = 0
        self.run_seconds = 0.0
        self._state = None

    def run(self, steps):
        target = self.step + int(steps)
        self.progress.begin(self.step, target)
        try:
            for count in run_segments(target - self.step, self.spec.cells):
                started = time.perf_counter()
                self.cycles += self.device.run(run_plan(self.rmap, count))
                self.run_seconds += time.perf_counter() - started
                self.step += count
                self._state = None
                self.progress(self.step, target)
        finally:
            self.progress.end()
        step_region, status = self.rmap["step"], self.rmap["status"]
        words = self.device.read([status.base] + [step_region.address(0, j) for j in
                                                   range(step_region.size)])
        step = from_words(words[1:], step_region.width, False)
        busy = words[0] >> STATUS["busy"] & 1
        if step != self.step or busy:
            raise RuntimeError(f"{self.name}: the core reports step {step} (busy={busy}), "
                               f"expected {self.step}")

    def run_external(self, steps, half_tilt):
        """Steps with tilts from the caller (tilt = 'external'): the host writes every cell's
        half tilt, runs one step, and reads the weights back for the next tilts."""
        order = self.probe.order
        weight = self.rmap["weight"]
        addresses = [weight.address(i) for i in bank_indices(self.rmap, order).tolist()]
        for _ in range(int(steps)):
            words = self.device.read(addresses)
            w = np.array([from_words([x], weight.width, True) for x in words], dtype=np.int64)
            h = checked_half_tilts(self.spec, half_tilt(self.step, w))
            self.device.write(tilt_plan(self.rmap, order, h))
            self.cycles += self.device.run(run_plan(self.rmap, 1))
            self.step += 1
            self._state = None

    def state(self):
        if self._state is None:
            order = self.probe.order
            words = self.device.read(state_addresses(self.rmap, order))
            self._state = decode_state(self.rmap, order, words)
        return self._state

    def weights(self):
        return self.state()["weights"].copy()

    def counters(self):
        return dict(self.state()["counters"])

    def overflow(self):
        return dict(self.state()["overflow"])

    def field(self):
        return self.state()["field"].copy()

    def cell_counters(self):
        """(up, down) per-cell move counts as the hardware holds them, and the sticky wrap
        flag; None without per-cell counters."""
        state = self.state()
        if state["cell_counters"] is None:
            return None
        up, down = state["cell_counters"]
        return up.copy(), down.copy(), state["cell_overflow"]

    def extra(self):
        order = self.probe.order
        extra = dict(weights0=self.probe.W0.copy(), coupling_error=None,
                     coupling_pairs=order.coupled_pairs, colours=order.colours,
                     cycles=self.core_cycles(), run_seconds=self.run_seconds,
                     first_law=self.check_first_law())
        if self.board is not None:
            extra.update(board=self.board, **board_timing(
                self.board, extra["cycles"], self.counters()["evaluations"]))
        return extra

    def core_cycles(self):
        """Cycles of the runs so far: the core's own count (``run_cycles``, cleared when the
        run was loaded) when its register map has one, else the simulator's or the board's
        count from each start to done."""
        if "run_cycles" not in self.rmap.regions:
            return self.cycles
        region = self.rmap["run_cycles"]
        words = self.device.read([region.address(0, j) for j in range(region.size)])
        return from_words(words, region.width, False)

    def check_first_law(self):
        """The first law (docs/physics.md §5) on the RTL's own registers: heat_net =
        eta0 L0 - etaK LK + anneal_work with the core's loss register, exactly; and the loss
        register equals L(W) of the weights read back when no group holds coupled cells.
        Raises IdentityError on a violation; returns how it was checked."""
        if self.probe.problem is None:
            return "not applicable (external tilts)"
        state, spec = self.state(), self.spec
        if any(state["overflow"].values()):
            return "not checked (a counter overflowed)"
        shift = spec.tilt_shift + 1
        eta0 = int(spec.gain.values_at([0])[0])
        c = state["counters"]
        expected = ((eta0 * self.probe.loss2_initial) << shift) - (
            (state["gain_now"] * state["loss2"]) << shift) + c["anneal_work"]
        failures = []
        if c["heat_net"] != expected:
            failures.append(f"heat_net {c['heat_net']} != eta0 L0 - etaK LK + anneal_work = "
                            f"{expected}")
        if self.probe.order.coupled_pairs == 0:
            loss2 = self.probe.problem.loss2(state["weights"])
            if loss2 != state["loss2"]:
                failures.append(f"loss register {state['loss2']} != L2(W) = {loss2}")
        if failures:
            raise IdentityError(f"{self.name} after step {self.step}: " + "; ".join(failures)
                                + f" [{spec!r}]")
        return "exact (RTL counters and loss register)"

    def close(self):
        self.device.close()
        board = getattr(self.device, "board", None)
        if board is not None:
            board.close()
