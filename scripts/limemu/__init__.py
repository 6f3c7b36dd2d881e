"""limemu: an emulator of learning-in-memory (LIM) synapse arrays, from Python.

Build a problem, a spec, and run it on a backend (model, reference, verilator, vboard, board)::

    import limemu
    problem = limemu.maxcut(cells=32, seed=2)
    spec = limemu.make_spec(problem, steps=2000, barrier="constant:4", gain="exp:0.1,6")
    result = limemu.run(problem, spec, steps=2000)
    print(result.metrics["cut"], result.energy["heat_net_u"])

``limemu.LimSampler`` is a dimod sampler (``pip install limemu[dimod]``). The golden model is
``limemu.model``, the RTL ``limemu.hdl``, the board builds ``limemu.synth``; docs/api.md is the
guide. Importing limemu loads NumPy only: dimod, Amaranth and cocotb are loaded when used.
"""

from limemu.model.errors import ConfigError, IdentityError
from limemu.model.problem import QuadraticProblem
from limemu.model.schedules import Schedule
from limemu.model.spec import Spec

from .api import Crosscheck, Result, Session, crosscheck, open_session, run
from .backends import BACKENDS
from .problems import least_squares, maxcut, quadratic, two_parameter
from .specs import make_spec
from .workloads import Graph, Workload, parse_gset

__version__ = "0.1.0"

__all__ = ["BACKENDS", "ConfigError", "Crosscheck", "Graph", "IdentityError", "LimSampler",
           "QuadraticProblem", "Result", "Schedule", "Session", "Spec", "Workload",
           "crosscheck", "least_squares", "make_spec", "maxcut", "open_session", "parse_gset",
           "quadratic", "run", "two_parameter"]


def __getattr__(name):
    """LimSampler on first use: it needs dimod, an optional extra."""
    if name == "LimSampler":
        try:
            from .sampler import LimSampler  # noqa: PLC0415 (dimod only when asked for)
        except ModuleNotFoundError as error:
            if error.name != "dimod":
                raise
            raise ImportError("limemu.LimSampler needs dimod: pip install 'limemu[dimod]'") \
                from error
        return LimSampler
    raise AttributeError(f"module 'limemu' has no attribute {name!r}")
