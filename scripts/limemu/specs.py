"""The spec of a run from a problem and physical settings (schedules in u, formats by name).

``make_spec`` is the API's way to build a :class:`~limemu.model.spec.Spec` the way the command
line does: the array takes its size, weight format and Q storage from the problem; schedules
are given as text in physical units (``"exp:0.1,6"``, see schedule_options.py) or as raw
:class:`~limemu.model.schedules.Schedule` objects; fixed-point formats by name.
"""

from collections.abc import Iterable, Mapping

import numpy as np

from limemu.model.errors import ConfigError, require
from limemu.model.schedules import MAX_STEPS, STEP_BITS, Schedule
from limemu.model.spec import FORMAT_FIELDS, Spec

from .schedule_options import parse_schedule
from .workloads import Workload


def make_spec(problem: Workload, steps: int, *, lanes: int = 1, order: str = "natural",
              barrier: str | Schedule = "constant:4", gain: str | Schedule = "constant:1",
              seed: int = 1, init: str | None = None, formats: Mapping[str, int] | None = None,
              tabulate: int | None = None, cell_counter_bits: int = 0) -> Spec:
    """The spec of a run of `problem` over `steps` steps.

    barrier: E0 in u; gain: eta in u per loss unit. Text schedules (``constant:V``,
    ``linear:A,B``, ``log:A,S,TAU``, ``exp:A,B``, ``table:FILE``) span the `steps` steps and are
    rounded to the formats; a Schedule is taken as it is (raw units of its format).
    order: ``natural`` or ``colour`` (every group of `lanes` cells an independent set).
    init: initial weights, ``random``, ``zero``, ``low`` or ``high`` (default: random spins,
    zero multi-bit weights). formats: fixed-point fields by name (FORMAT_FIELDS). tabulate: run
    the linear, log and exp schedules as tables of that many entries (hardware that computes
    tables only). Raises ConfigError naming the parameter, the value and the limit."""
    formats = dict(formats or {})
    for key, value in formats.items():
        if key not in FORMAT_FIELDS or not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"formats[{key!r}] = {value!r}: expected an integer for one of "
                              f"{', '.join(FORMAT_FIELDS)}")
    settings = [f"{key}={value}" for key, value in formats.items()]
    return spec_for(problem, steps, settings=settings, lanes=lanes, order=order,
                    barrier=barrier, gain=gain, seed=seed, init=init, tabulate=tabulate,
                    cell_counter_bits=cell_counter_bits)


def check_steps(steps, label=""):
    """`steps` as an int; ConfigError unless in [1, MAX_STEPS] (the hardware step counter)."""
    require(isinstance(steps, (int, np.integer)) and not isinstance(steps, bool), f"{label}steps",
            steps, "must be an integer")
    require(1 <= steps <= MAX_STEPS, f"{label}steps", int(steps),
            f"must be in [1, {MAX_STEPS}] (the {STEP_BITS}-bit step counter)")
    return int(steps)


def spec_for(problem, steps, *, settings=(), label="", lanes=1, order="natural",
             barrier="constant:4", gain="constant:1", seed=1, init=None, tabulate=None,
             cell_counter_bits=0):
    """make_spec with the formats as KEY=VALUE texts; `label` prefixes the option names in
    error messages (the command line's "--")."""
    if not isinstance(problem, Workload):
        raise ConfigError(f"problem = {problem!r}: must be a Workload (limemu.maxcut, "
                          "limemu.least_squares, limemu.quadratic, ...)")
    steps = check_steps(steps, label)
    bits = problem.weight_bits
    fields = dict(cells=problem.problem.n, weight_bits=bits, lanes=lanes, seed=seed,
                  order=order, q_storage=problem.q_storage,
                  init=init or ("random" if bits == 1 else "zero"),
                  cell_counter_bits=cell_counter_bits)
    fields.update(parse_settings(settings))
    probe = Spec(**fields)         # validates the formats before the schedules use them
    for name, frac_bits, bits in (("barrier", probe.barrier_frac_bits, probe.barrier_bits),
                                  ("gain", probe.gain_frac_bits, probe.gain_bits)):
        value = barrier if name == "barrier" else gain
        if isinstance(value, Schedule):
            fields[name] = value
        elif isinstance(value, str):
            fields[name] = parse_schedule(value, label + name, frac_bits, steps, bits)
        else:
            raise ConfigError(f"{label}{name} = {value!r}: must be a schedule text such as "
                              "'constant:4' or a Schedule")
    if tabulate is not None:
        tabulate_schedules(fields, probe, int(tabulate), steps)
    return Spec(**fields)


def tabulate_schedules(fields, probe, entries, steps):
    """--tabulate N: every schedule that is not a constant or a table becomes a table of N
    entries sampled over the run (Schedule.tabulated), for hardware that computes tables only
    (the compact core); the model runs the same table, so the cross-check still holds."""
    per_entry = max(1, -(-steps // entries)) if entries > 0 else 1
    for name, bits in (("barrier", probe.barrier_bits), ("gain", probe.gain_bits)):
        if fields[name].kind not in ("constant", "table"):
            fields[name] = fields[name].tabulated(f"--tabulate ({name})", bits, entries,
                                                  per_entry)


def parse_settings(items: Iterable[str]) -> dict:
    """--set KEY=VALUE pairs for integer Spec fields (formats, widths)."""
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or key not in FORMAT_FIELDS:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with KEY in {FORMAT_FIELDS}")
        try:
            out[key] = int(value)
        except ValueError:
            raise ConfigError(f"--set {item!r}: {key} must be an integer") from None
    return out
