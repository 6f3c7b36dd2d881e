"""Trace points of a run: the state every K steps (see trace.py for the file they go to).

At step 0 and after every segment the recorder keeps:

* ``step``, ``loss`` (L(W)), ``precision`` (the cut for Max-Cut, the error of the weights for
  the other workloads: see solution.py), ``net_updates`` (sum |W - W0| / delta);
* every hardware counter (exact integers) and the wall-clock ``seconds``;
* ``e0_raw``/``eta_raw`` (the barrier and gain the next step uses, raw fixed point) and the same
  in u and u per loss unit (``e0_u``, ``eta``);
* the **tilts**. With the field g = QW - b (the array's own register) and the step's gain,
  the half tilts of a cell in energy LSBs are exactly the engine's (engine._decide):
  ``h_up = (eta_raw << tilt_shift) * (delta^2 Q_nn + 2 delta g_n)`` and ``h_down`` with
  ``-2 delta g_n``; the up move crosses ``E0 + h_up`` and the down move ``E0 + h_down``.
  Written as in the paper's Fig. 3A, a cell sits at tilt ``D = h_down - h_up = -eta delta g_n``
  (the energy an up move releases, net of the curvature term) and effective barrier
  ``E0_eff = E0 + (h_up + h_down)/2 = E0 + eta delta^2 Q_nn / 4``: then
  ``p+ + p- = 2^-E0_eff (2^(D/2) + 2^(-D/2))`` and the cell is admissible exactly when
  ``r = physics.normalized_rate(E0_eff, D) <= 1``. Stored compactly: the quantiles
  ``TILT_QUANTILES`` of D over all cells, the mean |D|, the fraction of cells with r > 1, and
  the trajectories (D, E0_eff, W) of up to ``TRACKED_CELLS`` cells spread over the array.
"""

import time

import numpy as np

from limemu.model import physics

from .solution import precision_value

TILT_QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
TRACKED_CELLS = 8
LOG2_TOL = float(np.log2(1.0 + physics.ADMISSIBLE_TOL))   # r <= 1 up to float rounding


def half_tilts(spec, problem, g, step):
    """(h_up, h_down, e0_raw, eta_raw): half tilts of every cell in energy LSBs (int64) for the
    decision at step ``step`` with field ``g``, exactly as the engine computes them."""
    e0_raw = int(spec.barrier.values_at([step])[0])
    eta_raw = int(spec.gain.values_at([step])[0])
    scale = eta_raw << spec.tilt_shift
    g = np.asarray(g, dtype=np.int64)
    qd = spec.delta ** 2 * problem.diag
    tdg = 2 * spec.delta * g
    return scale * (qd + tdg), scale * (qd - tdg), e0_raw, eta_raw


def fig3a_coordinates(spec, problem, g, step):
    """(D, E0_eff) in u for every cell (see the module docstring), and (e0_raw, eta_raw)."""
    h_up, h_down, e0_raw, eta_raw = half_tilts(spec, problem, g, step)
    lsb = spec.energy_lsb_u
    D = (h_down - h_up) * lsb
    e0_eff = (e0_raw + (h_up + h_down) // 2) * lsb        # h_up + h_down = 2 scale qd: even
    return D, e0_eff, e0_raw, eta_raw


def tracked_cells(n, count=TRACKED_CELLS):
    """Indices of the cells whose trajectories are kept: spread evenly over the array."""
    return np.unique(np.linspace(0, n - 1, min(n, count)).round().astype(np.int64))


class Recorder:
    """Collects the trace points of one run (see the module docstring)."""

    def __init__(self, workload, spec, weights0):
        self.workload, self.spec = workload, spec
        self.w0 = np.asarray(weights0, dtype=np.int64)
        self.cells = tracked_cells(spec.cells)
        self.rows = []
        self.started = time.perf_counter()

    def record(self, session):
        spec, problem = self.spec, self.workload.problem
        step = session.step
        W = session.weights()
        counters = session.counters()
        metrics = self.workload.evaluate(W)
        D, e0_eff, e0_raw, eta_raw = fig3a_coordinates(spec, problem, session.field(), step)
        # r = 2**(e0_at_max_rate(D) - E0_eff) > 1, compared in the exponent (no overflow)
        log2_r = np.asarray(physics.e0_at_max_rate(D)) - e0_eff
        self.rows.append({
            "step": step,
            "seconds": time.perf_counter() - self.started,
            "loss": float(metrics["loss"]),
            "precision": precision_value(self.workload.name, metrics),
            "net_updates": int(np.sum(np.abs(W - self.w0))) // spec.delta,
            "counters": counters,
            "e0_raw": e0_raw,
            "eta_raw": eta_raw,
            "tilt_quantiles": np.quantile(D, TILT_QUANTILES),
            "tilt_abs_mean": float(np.mean(np.abs(D))),
            "inadmissible_fraction": float(np.mean(log2_r > LOG2_TOL)),
            "tracked_tilt": D[self.cells],
            "tracked_e0": e0_eff[self.cells],
            "tracked_weight": W[self.cells],
        })

    def arrays(self):
        """The trace as a dict of NumPy arrays (the contents of the .npz file)."""
        rows, spec = self.rows, self.spec
        names = list(rows[0]["counters"])
        table = [[row["counters"][name] for name in names] for row in rows]
        exact = all(-(1 << 63) <= v < 1 << 63 for line in table for v in line)
        out = {
            "step": np.array([r["step"] for r in rows], dtype=np.int64),
            "seconds": np.array([r["seconds"] for r in rows]),
            "loss": np.array([r["loss"] for r in rows]),
            "precision": np.array([r["precision"] for r in rows]),
            "net_updates": np.array([r["net_updates"] for r in rows], dtype=np.int64),
            "counter_names": np.array(names),
            "counters": np.array(table, dtype=np.int64 if exact else np.float64),
            "e0_raw": np.array([r["e0_raw"] for r in rows], dtype=np.int64),
            "eta_raw": np.array([r["eta_raw"] for r in rows], dtype=np.int64),
            "tilt_levels": np.array(TILT_QUANTILES),
            "tilt_quantiles": np.array([r["tilt_quantiles"] for r in rows]),
            "tilt_abs_mean": np.array([r["tilt_abs_mean"] for r in rows]),
            "inadmissible_fraction": np.array([r["inadmissible_fraction"] for r in rows]),
            "tracked_cells": self.cells,
            "tracked_tilt": np.array([r["tracked_tilt"] for r in rows]),
            "tracked_e0": np.array([r["tracked_e0"] for r in rows]),
            "tracked_weight": np.array([r["tracked_weight"] for r in rows], dtype=np.int64),
        }
        out["e0_u"] = out["e0_raw"] * 2.0 ** -spec.barrier_frac_bits
        out["eta"] = out["eta_raw"] * 2.0 ** -spec.gain_frac_bits
        return out
