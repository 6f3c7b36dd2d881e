"""``--board B`` on ``limemu run`` and ``crosscheck``: simulate the core ``limemu build --board B``
builds, with its array, and say what the run would take on the board.

A board's build fixes the formats (``Spec`` widths), the lanes, the core and the capacities
(cells, groups, rows or entries of Q, table depth). :func:`board_run_options` makes the run use
the build's formats, lanes and core (and refuses options that contradict them);
:func:`board_geometry` gives the build's geometry, which the simulator is built for (the
register map of a run then has the board's capacities, as with a real board);
:func:`board_timing` turns the core's cycles into time at the board's clock.
"""

from limemu.model.errors import ConfigError, require

#: the Spec fields a build fixes that a run sets through --set
BOARD_FORMATS = ("barrier_bits", "barrier_frac_bits", "gain_bits", "gain_frac_bits",
                 "field_bits", "q_bits", "mantissa_bits")


def board_build(name):
    """(board, spec, geometry) of the default build of board `name`."""
    from limemu.synth.boards import board_named, configuration  # noqa: PLC0415 (amaranth)

    board = board_named(name)
    spec, geometry = configuration(board)
    return board, spec, geometry


def board_run_options(options):
    """The run options with the board's formats, lanes and core; ConfigError when the command
    line asks for others."""
    name = options.get("board")
    if not name:
        return options
    require(options.get("backend") == "verilator", "board", name,
            "simulates the board's core: it needs --backend verilator")
    _, spec, geometry = board_build(name)
    for key, value in (("lanes", spec.lanes), ("core", geometry.core)):
        require(options.get(key) in (None, value), key, options.get(key),
                f"the {name} build has {value}")
    settings = list(options.get("set") or [])
    given = {item.partition("=")[0].strip() for item in settings}
    clash = sorted(given & set(BOARD_FORMATS))
    if clash:
        raise ConfigError(f"--set {', '.join(clash)}: the {name} build fixes the formats "
                          f"({', '.join(f'{k}={getattr(spec, k)}' for k in clash)})")
    settings += [f"{key}={getattr(spec, key)}" for key in BOARD_FORMATS]
    return {**options, "lanes": spec.lanes, "core": geometry.core, "set": settings}


def board_geometry(name, spec, needed):
    """(spec with the build's cells, the build's geometry) for a run of `spec` that needs
    `needed` (a Geometry); ConfigError naming what the build cannot hold."""
    _, built, geometry = board_build(name)
    problems = [f"{k} = {getattr(spec, k)} (the build has {getattr(built, k)})"
                for k in BOARD_FORMATS + ("weight_bits", "lanes")
                if getattr(spec, k) != getattr(built, k)]
    if spec.cells > built.cells:
        problems.append(f"cells = {spec.cells} (the build holds {built.cells})")
    for key in ("groups", "q_capacity"):
        if getattr(needed, key) > getattr(geometry, key):
            problems.append(f"{key}: the run needs {getattr(needed, key)}, the build holds "
                            f"{getattr(geometry, key)}")
    if needed.q_storage != geometry.q_storage:
        problems.append(f"q_storage = {needed.q_storage} (the build has {geometry.q_storage})")
    if problems:
        raise ConfigError(f"the {name} build cannot run this configuration: "
                          + "; ".join(problems))
    return spec.replace(cells=built.cells), geometry


def board_timing(name, cycles, evaluations):
    """{"clock_hz", "board_seconds", "evaluations_per_cycle"} of a run of `cycles` cycles."""
    board, _, _ = board_build(name)
    return {"clock_hz": board.clock_hz, "board_seconds": cycles / board.clock_hz,
            "evaluations_per_cycle": evaluations / cycles if cycles else 0.0}
