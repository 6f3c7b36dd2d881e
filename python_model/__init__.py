"""limemu golden model: the bit-exact definition of a learning-in-memory synapse array.

NumPy, Numba (the compiled engine) and the standard library only. docs/physics.md defines the
model it implements.
"""

from .errors import ConfigError, IdentityError
from .problem import QuadraticProblem
from .schedules import Schedule
from .spec import Spec

__all__ = ["ConfigError", "IdentityError", "QuadraticProblem", "Schedule", "Spec"]
