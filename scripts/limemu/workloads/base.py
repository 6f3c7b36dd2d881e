"""The Workload record and the helpers every workload module uses (options, weights)."""


import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from limemu.model.errors import ConfigError, require
from limemu.model.problem import QuadraticProblem
from limemu.model.spec import Q_STORAGES, ladder

def int_option(name, value, lo=None, hi=None):
    """Validate an integer option (bool is refused); returns it as an int."""
    require(isinstance(value, (int, np.integer)) and not isinstance(value, bool), name, value,
            "must be an integer")
    value = int(value)
    if lo is not None:
        require(value >= lo, name, value, f"must be >= {lo}")
    if hi is not None:
        require(value <= hi, name, value, f"must be <= {hi}")
    return value


@dataclass(frozen=True, eq=False)
class Workload:
    """A problem for the array plus how to judge a result.

    ``evaluate(weights)`` returns a dict of metrics (always ``loss``, the float L(W));
    ``reference`` holds JSON-friendly optimum information; ``options`` records how the
    workload was built (for reports and ``repr``).
    """

    name: str
    problem: QuadraticProblem
    weight_bits: int
    q_storage: str
    description: str
    evaluate: Callable[[np.ndarray], dict] = field(repr=False)
    reference: dict = field(default_factory=dict, repr=False)
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        require(isinstance(self.problem, QuadraticProblem), "problem",
                type(self.problem).__name__, "must be a QuadraticProblem")
        int_option("weight_bits", self.weight_bits, 1, 16)
        require(self.q_storage in Q_STORAGES, "q_storage", self.q_storage,
                f"must be one of {Q_STORAGES}")
        require(isinstance(self.description, str) and "\n" not in self.description,
                "description", self.description, "must be one line of text")
        require(callable(self.evaluate), "evaluate", self.evaluate, "must be callable")

    @property
    def cells(self):
        return self.problem.n

    def check_weights(self, weights):
        """The weights as an int64 vector; ConfigError unless they are a valid state."""
        return check_weights(weights, self.problem.n, self.weight_bits)

    def posterior_std(self, eta):
        """Per-weight standard deviation of P(W) ∝ 2^(-eta L(W)) in its Gaussian
        (continuous) approximation: sqrt(diag((eta ln2 Q)^-1)). Needs Q positive definite."""
        return posterior_std(self.problem, eta)

    def __repr__(self):
        return (f"Workload(name={self.name!r}, problem={self.problem.name!r}, cells={self.cells}, "
                f"weight_bits={self.weight_bits}, q_storage={self.q_storage!r}, "
                f"options={self.options!r})")


def check_weights(weights, n, weight_bits):
    """Coerce a final state to int64 and check its shape, integrality and range."""
    W = np.asarray(weights)
    require(W.shape == (n,), "weights", f"shape {W.shape}", f"must have shape ({n},)")
    if W.dtype.kind == "f":
        require(bool(np.all(W == np.round(W))), "weights", W.dtype, "must hold integers")
    else:
        require(W.dtype.kind in "iub", "weights", W.dtype, "must hold integers")
    W = W.astype(np.int64)
    lo, hi, _ = ladder(weight_bits)
    if weight_bits == 1:
        bad = np.flatnonzero(np.abs(W) != 1)
        require(len(bad) == 0, f"weights[{bad[0] if len(bad) else 0}]",
                int(W[bad[0]]) if len(bad) else None, "spins must be -1 or +1")
    else:
        bad = np.flatnonzero((W < lo) | (W > hi))
        require(len(bad) == 0, f"weights[{bad[0] if len(bad) else 0}]",
                int(W[bad[0]]) if len(bad) else None,
                f"must be in [{lo}, {hi}] ({weight_bits}-bit weights)")
    return W


def posterior_std(problem, eta):
    """sqrt(diag((eta ln2 Q)^-1)): the spread of each weight under P(W) ∝ 2^(-eta L(W)),
    Gaussian approximation (accurate when the spread is well above one weight step and far
    from the range ends). ConfigError if eta <= 0 or Q is not positive definite."""
    require(isinstance(eta, (int, float, np.integer, np.floating)) and not isinstance(eta, bool)
            and math.isfinite(eta) and eta > 0, "eta", eta, "must be a finite number > 0")
    Q = problem.to_dense().astype(np.float64)
    try:
        L = np.linalg.cholesky(Q)
    except np.linalg.LinAlgError:
        raise ConfigError(f"{problem.name}: Q is not positive definite, so P(W) ∝ 2^(-eta L) "
                          "has no Gaussian approximation") from None
    Linv = np.linalg.inv(L)
    cov_diag = np.sum(Linv * Linv, axis=0)          # diag(Q^-1) = column norms of L^-1
    return np.sqrt(cov_diag / (float(eta) * math.log(2.0)))
