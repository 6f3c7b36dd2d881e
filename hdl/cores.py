"""The array core a Geometry asks for (Geometry.core): one place that maps the name to the class."""

from .array_core import ArrayCore
from .compact_core import CompactCore
from .serial_crossing_unit import SerialCrossingUnit
from .throughput_core import ThroughputCore

CORE_CLASSES = {"pipelined": ArrayCore, "compact": CompactCore, "throughput": ThroughputCore}


def make_core(spec, geometry):
    """The core component of `geometry.core` for (spec, geometry)."""
    return CORE_CLASSES[geometry.core](spec, geometry)


def cycles_per_evaluation_at_best(geometry):
    """Clock cycles per cell evaluation when nothing moves, at best: the pipelined and the
    throughput core take a group of `lanes` cells a cycle, the compact core one cell in 11
    cycles plus the crossing unit's shortest decision."""
    if geometry.core == "compact":
        return CompactCore.OWN_CYCLES_PER_EVALUATION + SerialCrossingUnit.MIN_LATENCY
    return 1 / geometry.lanes
