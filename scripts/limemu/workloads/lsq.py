"""Least squares on a real data set: scikit-learn's diabetes data (442 samples x 10 features,
shipped with scikit-learn, no download), or the caller's own X and y (``data=(X, y)``).

The diabetes X and y are standardised (zero mean, unit variance per column; no intercept is
then needed); the caller's are used as given (add a column of ones for an intercept).
The model is ``y ≈ X w`` with ``w = W * step``, ``W`` signed ``bits``-bit integers. The weight
quantum ``step`` puts NumPy's least-squares solution ``w*`` at ``FILL`` (0.6) of the top of the
weight range: ``max |w*| / step = 0.6 * (2^(bits-1) - 1)``.

The loss is the negative log-likelihood of the fit with noise variance ``sigma^2`` (the residual
variance of ``w*``, ``||X w* - y||^2 / (N - p)``):

    L(W) = 1/2 ||X W step - y||^2 / sigma^2 + const
    ->  Q = step^2 X^T X / sigma^2,   b = step X^T y / sigma^2

Q and b are multiplied by one common factor ``q_scale`` (so that ``max |Q| = q_max``, default
2**12) and rounded to integers. Because of that rounding the continuous optimum of the integer
problem, ``W_cont = Q^-1 b``, differs slightly from ``w* / step``; ``reference`` gives both, the
difference and a rigorous bound on it (``rounding_bound``, see :func:`rounding_bound`).
The difference is about 0.4 LSB at the defaults (8 bits, q_max = 2**12) and grows in
proportion to the weight range: more bits need a larger ``q_max`` (e.g. 12 bits: 2**16).

At gain ``eta_bayes = 1 / (q_scale ln 2)`` the stationary distribution ``P(W) ∝ 2^(-eta L)`` is
the Bayesian posterior of the weights (flat prior, Gaussian noise of variance ``sigma^2``).
"""

import math

import numpy as np

from limemu.model.errors import ConfigError, require
from limemu.model.problem import QuadraticProblem
from limemu.model.spec import ladder

from .base import Workload, check_weights, int_option
from .base import posterior_std as _posterior_std

FEATURES = 10
SAMPLES = 442
DEFAULT_BITS = 8
MIN_BITS = 4
DEFAULT_Q_MAX = 2 ** 12
Q_MAX_RANGE = (16, 2 ** 20)
FILL = 0.6


def load_data():
    """(X, y, feature names): the diabetes data, standardised (population std, ddof = 0)."""
    from sklearn.datasets import load_diabetes  # noqa: PLC0415 (optional dependency, lazy)

    data = load_diabetes()
    X = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target, dtype=np.float64)
    require(X.shape == (SAMPLES, FEATURES), "diabetes data", X.shape,
            f"expected ({SAMPLES}, {FEATURES}) from scikit-learn")
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = (y - y.mean()) / y.std()
    return X, y, list(data.feature_names)


def posterior_std(problem, eta):
    """Per-weight standard deviation sqrt(diag((eta ln2 Q)^-1)) of P(W) ∝ 2^(-eta L(W))
    (Gaussian approximation; see :func:`limemu.workloads.posterior_std`)."""
    return _posterior_std(problem, eta)


def rounding_bound(Q, w_float):
    """Bound on ||Q^-1 b - w_float||_2 when Q and b are roundings (to within 1/2 each entry) of
    Qs and bs with Qs w_float = bs exactly.

    Q (W_cont - w) = e - E w with |e_i| <= 1/2, |E_ij| <= 1/2, so
    ||W_cont - w||_2 <= (||e||_2 + ||E||_2 ||w||_2) / lambda_min(Q)
                     <= 0.5 (sqrt(n) + n ||w||_2) / lambda_min(Q)
                      = 0.5 LSB * kappa(Q) * (sqrt(n) + n ||w||_2) / lambda_max(Q).
    """
    Q = np.asarray(Q, dtype=np.float64)
    n = Q.shape[0]
    lam_min = float(np.linalg.eigvalsh(Q)[0])
    return 0.5 * (math.sqrt(n) + n * float(np.linalg.norm(w_float))) / lam_min


def lsq_workload(cells=None, bits=DEFAULT_BITS, q_max=DEFAULT_Q_MAX, seed=None, data=None):
    """Least-squares workload on the diabetes data, or on ``data = (X, y)``.

    ``cells``, if given, must equal the number of features (10 for the diabetes data);
    ``bits`` (>= 4, default 8) is the weight width; ``q_max`` (default 2**12) the largest |Q|
    entry after scaling; ``seed`` is accepted for a uniform interface and unused (the workload
    is deterministic).
    """
    bits = int_option("bits", bits, MIN_BITS, 16)
    q_max = int_option("q_max", q_max, *Q_MAX_RANGE)
    if seed is not None:
        int_option("seed", seed, 0)
    X, y, names = load_data() if data is None else check_data(data)
    if cells is not None:
        cells = int_option("cells", cells)
        require(cells == X.shape[1], "cells", cells,
                f"the least-squares problem has exactly {X.shape[1]} weights (features)")
    return _lsq(X, y, names, bits, q_max, seed, given=data is not None)


def check_data(data):
    """(X, y, names) from the caller's (X, y): finite floats, X of shape (N, p), y of N,
    N > p (the noise variance is estimated from the residual)."""
    require(isinstance(data, (tuple, list)) and len(data) == 2, "data", type(data).__name__,
            "must be a pair (X, y)")
    X = np.asarray(data[0], dtype=np.float64)
    y = np.asarray(data[1], dtype=np.float64)
    require(X.ndim == 2 and X.shape[1] >= 1, "X", f"shape {X.shape}",
            "must be a matrix of N samples x p features")
    require(y.shape == (X.shape[0],), "y", f"shape {y.shape}", f"must have {X.shape[0]} entries")
    require(X.shape[0] > X.shape[1], "X", f"shape {X.shape}",
            "needs more samples than features (the noise variance is the residual's)")
    require(bool(np.all(np.isfinite(X)) and np.all(np.isfinite(y))), "data", "non-finite",
            "X and y must be finite")
    return X, y, [f"x{k}" for k in range(X.shape[1])]


def _lsq(X, y, names, bits, q_max, seed, given):
    N, p = X.shape
    w_star, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = X @ w_star - y
    sigma2 = float(resid @ resid) / (N - p)
    require(sigma2 > 0 and np.any(w_star != 0), "data", f"{N} x {p}",
            "needs a least-squares solution that is not zero and a residual that is not zero "
            "(the loss is the fit's likelihood, with the residual's variance)")
    w_lo, w_hi, _ = ladder(bits)
    step = float(np.max(np.abs(w_star))) / (FILL * w_hi)

    XtX = X.T @ X
    XtX = (XtX + XtX.T) / 2                              # exactly symmetric before rounding
    Q_float = step ** 2 * XtX / sigma2
    b_float = step * (X.T @ y) / sigma2
    q_scale = q_max / float(np.max(np.abs(Q_float)))
    Q = np.rint(q_scale * Q_float).astype(np.int64)
    b = np.rint(q_scale * b_float).astype(np.int64)
    try:
        np.linalg.cholesky(Q.astype(np.float64))
    except np.linalg.LinAlgError:
        raise ConfigError(f"q_max = {q_max}: too small, the rounded Q is not positive "
                          "definite") from None
    problem = QuadraticProblem.dense(Q, b, name=f"lsq:{'data' if given else 'diabetes'}:{bits}b")

    W_numpy = w_star / step                              # NumPy's solution in weight units
    W_cont = np.linalg.solve(Q.astype(np.float64), b.astype(np.float64))
    eig = np.linalg.eigvalsh(Q.astype(np.float64))
    kappa = float(eig[-1] / eig[0])
    loss_cont = -0.5 * float(b @ W_cont)                 # L(Q^-1 b), a lower bound of L on Z^n
    rmse_numpy = float(np.sqrt(np.mean(resid ** 2)))
    require(np.all((W_cont >= w_lo) & (W_cont <= w_hi)), "bits", bits,
            f"the continuous optimum {W_cont} leaves the weight range [{w_lo}, {w_hi}]")
    eta_bayes = 1.0 / (q_scale * math.log(2.0))

    def rmse(W):
        r = X @ (np.asarray(W, dtype=np.float64) * step) - y
        return float(np.sqrt(np.mean(r ** 2)))

    def evaluate(weights):
        W = check_weights(weights, p, bits)
        loss = problem.loss(W)
        return {
            "loss": loss,
            "loss_gap": loss - loss_cont,
            "rmse_model": rmse(W),
            "rmse_numpy": rmse_numpy,
            "max_abs_error_vs_numpy": float(np.max(np.abs(W - W_numpy))),
            "max_abs_error_vs_cont": float(np.max(np.abs(W - W_cont))),
            "W_numpy": W_numpy.tolist(),
            "W_cont": W_cont.tolist(),
            "rounding_error": float(np.max(np.abs(W_cont - W_numpy))),
        }

    reference = {
        "data": f"given ({N} x {p})" if given else
        "sklearn.datasets.load_diabetes, X and y standardised",
        "features": names, "samples": N,
        "w_numpy": w_star.tolist(),
        "W_numpy": W_numpy.tolist(),
        "W_cont": W_cont.tolist(),
        "W_cont_rounded": np.rint(W_cont).astype(np.int64).tolist(),
        "loss_cont": loss_cont,
        "rounding_error": float(np.max(np.abs(W_cont - W_numpy))),
        "rounding_bound": rounding_bound(Q, W_numpy),
        "step": step, "fill": FILL, "sigma2": sigma2, "q_scale": q_scale, "q_max": q_max,
        "condition_number": kappa,
        "eigenvalues": eig.tolist(),
        "rmse_numpy": rmse_numpy,
        "eta_bayes": eta_bayes,
        "posterior_std_bayes": posterior_std(problem, eta_bayes).tolist(),
        "max_abs_field": problem.max_abs_field(max(-w_lo, w_hi)),
    }
    source = "the given data" if given else "the diabetes data"
    description = (f"least squares on {source} ({N} x {p}{'' if given else ', standardised'}), "
                   f"{bits}-bit weights, step {step:.4g}, max|Q| = {int(np.max(np.abs(Q)))}")
    options = {"cells": p, "bits": bits, "q_max": q_max, "seed": seed}
    if given:
        options["data"] = f"given ({N} x {p})"
    return Workload(name="lsq", problem=problem, weight_bits=bits, q_storage="dense",
                    description=description, evaluate=evaluate, reference=reference,
                    options=options)
