"""The array core a Geometry asks for (Geometry.core): one place that maps the name to the class."""

from .array_core import ArrayCore
from .compact_core import CompactCore

CORE_CLASSES = {"pipelined": ArrayCore, "compact": CompactCore}


def make_core(spec, geometry):
    """The core component of `geometry.core` for (spec, geometry)."""
    return CORE_CLASSES[geometry.core](spec, geometry)
