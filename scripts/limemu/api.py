"""Runs from Python: sessions on every backend, results, the cross-check.

The same concepts as the command line (``limemu run``, ``limemu crosscheck``), which is a thin
layer over this module. A run needs a problem (problems.py: ``maxcut``, ``least_squares``,
``quadratic``...), a :class:`~limemu.model.spec.Spec` (``make_spec``, specs.py) and a backend:

* ``model``: the vectorised golden model; ``reference``: its cycle-by-cycle Python loop (runs
  once, from step 0);
* ``verilator``: the RTL under Verilator; ``vboard``: the board top, UART included, under
  Verilator on a pseudo-terminal; ``board``: an FPGA board (option ``port``).

``open_session`` gives a :class:`Session` to run in segments and read the state in between;
``run`` does a whole run and returns a :class:`Result`; ``crosscheck`` compares the model with
another backend bit for bit. docs/api.md is the guide.
"""

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from limemu.model.counters import Counters
from limemu.model.errors import ConfigError, require
from limemu.model.spec import Spec

from .backends import BACKENDS
from .compare import crosscheck as compare_sessions
from .progress import StepProgress
from .recorder import Recorder
from .runner import energy_report, result_dict, segmented
from .runner import identities as identity_checks
from .runner import open_session as open_backend
from .workloads import Workload


class Session:
    """A run in progress on one backend. Run it in segments (``run(steps)``) and read the
    state in between: ``weights()``, ``counters()``, ``energy()``, ``identities()``,
    ``trace()``; ``result()`` is the whole record so far. Close it (or use ``with``): an RTL
    backend holds a simulator process or a serial port."""

    def __init__(self, backend: str, problem: Workload, spec: Spec, *, trace_every: int = 0,
                 progress: bool = True, **options: Any):
        require(backend in BACKENDS, "backend", backend, f"must be one of {BACKENDS}")
        require(isinstance(spec, Spec), "spec", type(spec).__name__,
                "must be a Spec (see limemu.make_spec)")
        require(isinstance(trace_every, int) and trace_every >= 0, "trace_every", trace_every,
                "must be an integer >= 0 steps (0: no trace)")
        require(not trace_every or segmented(backend), "trace_every", trace_every,
                f"backend {backend!r} runs only once from step 0 and cannot stop every K "
                "steps; use the model")
        self.backend, self.problem, self.spec = backend, problem, spec
        self._started = time.perf_counter()
        self._every = trace_every
        self._meter = StepProgress(f"{backend} (traced every {trace_every})", spec.cells,
                                   progress and trace_every > 0)
        self._session = open_backend(backend, problem, spec,
                                            progress=progress and not trace_every, **options)
        self._recorder = None
        if trace_every:
            try:
                self._recorder = Recorder(problem, spec, self._session.weights())
                self._recorder.record(self._session)
            except BaseException:
                self._session.close()
                raise

    @property
    def step(self) -> int:
        """Steps run so far."""
        return self._session.step

    def run(self, steps: int) -> None:
        """Run `steps` more steps (traced every `trace_every` steps if asked)."""
        require(isinstance(steps, (int, np.integer)) and steps >= 0, "steps", steps,
                "must be an integer >= 0")
        if self._recorder is None:
            self._session.run(int(steps))
            return
        target = self.step + int(steps)
        self._meter.begin(self.step, target)
        try:
            while self.step < target:
                self._session.run(min(self._every, target - self.step))
                self._recorder.record(self._session)
                self._meter(self.step, target)
        finally:
            self._meter.end()

    def weights(self) -> np.ndarray:
        """The weights (int64; spins as +-1)."""
        return self._session.weights()

    def counters(self) -> dict[str, int]:
        """Every counter as an exact integer (unbounded; see hardware_counters)."""
        return self._session.counters()

    def hardware_counters(self) -> dict[str, int]:
        """Every counter as the hardware's register holds it (wrapped at its width)."""
        return Counters.from_exact(self.spec, self.counters()).hardware()

    def overflow(self) -> dict[str, bool]:
        """The sticky overflow flag of every counter."""
        return self._session.overflow()

    def field(self) -> np.ndarray | None:
        """The field g = QW - b as the array holds it (None with external tilts)."""
        return self._session.field()

    def cell_counters(self):
        """(up, down, wrapped) per-cell move counts, or None without per-cell counters."""
        return self._session.cell_counters()

    def energy(self, temperature_K: float = 300.0) -> dict:
        """The energy report: heat and work in u and J, the Landauer and speed bounds."""
        extra = self._session.extra()
        return energy_report(self.spec, self.counters(), self.weights(),
                                    extra["weights0"], extra.get("coupling_error"),
                                    temperature_K)

    def identities(self) -> dict[str, str]:
        """How the identities were checked (the first law: exactly, by the model after every
        segment, or on the RTL's own registers); a violation raises IdentityError."""
        return identity_checks(self.backend, self._session.extra())

    def trace(self) -> dict[str, np.ndarray] | None:
        """The trace points so far as arrays (recorder.py), or None when not traced."""
        return None if self._recorder is None else self._recorder.arrays()

    def result(self, temperature_K: float = 300.0) -> "Result":
        """The run so far as a Result."""
        weights, exact = self.weights(), self.counters()
        overflow, extra = self.overflow(), self._session.extra()
        extra["seconds"] = time.perf_counter() - self._started
        record = result_dict(self.problem, self.spec, self.step, self.backend, weights,
                                    exact, overflow, extra, temperature_K)
        return Result(backend=self.backend, problem=self.problem, spec=self.spec,
                      steps=self.step, weights=weights, counters=exact, overflow=overflow,
                      record=record, trace=self.trace(), extra=extra)

    def close(self) -> None:
        """Release the backend (simulator process, serial port)."""
        self._session.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True, eq=False)
class Result:
    """A finished run: the final weights, exact counters and overflow flags, the JSON record
    ``limemu run --json`` writes (``to_dict()``; its keys are in docs/api.md), and the trace
    arrays when the run was traced."""

    backend: str
    problem: Workload
    spec: Spec
    steps: int
    weights: np.ndarray
    counters: dict[str, int]
    overflow: dict[str, bool]
    record: dict
    trace: dict[str, np.ndarray] | None = None
    extra: dict | None = None

    @property
    def energy(self) -> dict:
        """The energy report (heat_net_u, heat_abs_u, heat_J, landauer_bound_u, ...)."""
        return self.record["energy"]

    @property
    def metrics(self) -> dict:
        """The problem's metrics of the final weights (loss; cut for Max-Cut; ...)."""
        return self.record["metrics"]

    @property
    def loss(self) -> float:
        return self.record["loss"]

    @property
    def identities(self) -> dict[str, str]:
        return self.record["identities"]

    def to_dict(self) -> dict:
        """The JSON record of the run (a copy)."""
        return dict(self.record)


def open_session(backend: str, problem: Workload, spec: Spec, *, trace_every: int = 0,
                 progress: bool = True, **options: Any) -> Session:
    """A :class:`Session` of `problem` under `spec` on `backend`, loaded and at step 0.

    trace_every: record a trace point every K steps (segmented backends only). progress:
    show progress bars (only when stderr is a terminal). options of the RTL backends: core
    (``pipelined`` or ``compact``; verilator, vboard), waves (a VCD file; verilator), port,
    baud (board), timeout, retries, resyncs (vboard, board: the serial link)."""
    return Session(backend, problem, spec, trace_every=trace_every, progress=progress,
                   **options)


def run(problem: Workload, spec: Spec, steps: int, *, backend: str = "model",
        trace_every: int = 0, temperature_K: float = 300.0, progress: bool = True,
        **options: Any) -> Result:
    """Run `steps` steps of `problem` under `spec` on `backend` and return the Result
    (see open_session for the options)."""
    require(isinstance(steps, (int, np.integer)) and steps >= 1, "steps", steps,
            "must be an integer >= 1")
    with open_session(backend, problem, spec, trace_every=trace_every, progress=progress,
                      **options) as session:
        session.run(int(steps))
        return session.result(temperature_K)


@dataclass(frozen=True)
class Crosscheck:
    """The outcome of a cross-check: None or the first mismatch (with its step, seed and the
    spec's repr), the steps compared, the checkpoints and the wall time."""

    backend: str
    steps: int
    checkpoints: int
    mismatch: str | None
    seconds: float

    @property
    def passed(self) -> bool:
        return self.mismatch is None


def checkpoint_count(backend: str, checkpoints: int) -> int:
    """The checkpoints a cross-check with `backend` makes: one for the reference (it runs only
    once), else `checkpoints` (>= 1)."""
    require(isinstance(checkpoints, int) and checkpoints >= 1, "checkpoints", checkpoints,
            "must be >= 1")
    return checkpoints if segmented(backend) else 1


def crosscheck(problem: Workload, spec: Spec, steps: int, *, backend: str = "reference",
               checkpoints: int = 4, progress: bool = True,
               log: Callable[[str], None] | None = None, **options: Any) -> Crosscheck:
    """Run the golden model and `backend` on the same configuration and compare every weight,
    counter, overflow flag and entry of the field at `checkpoints` points (log(line) after
    each). See open_session for the options."""
    require(backend != "model" and backend in BACKENDS, "backend", backend,
            f"must be one of {BACKENDS[1:]} (compared with the model)")
    segments = checkpoint_count(backend, checkpoints)
    started = time.perf_counter()
    model = open_backend("model", problem, spec, progress=False)
    try:
        other = open_backend(backend, problem, spec, progress=progress, **options)
        try:
            mismatch, done = compare_sessions(spec, model, other, int(steps),
                                                segments=segments, log=log)
        finally:
            other.close()
    finally:
        model.close()
    return Crosscheck(backend=backend, steps=done, checkpoints=segments, mismatch=mismatch,
                      seconds=time.perf_counter() - started)


__all__ = ["ConfigError", "Crosscheck", "Result", "Session", "checkpoint_count", "crosscheck",
           "open_session", "run"]
