"""Time-to-solution and energy-to-solution of a traced run.

A traced run (``--trace-every K``) records the state at steps 0, K, 2K, ..., ``steps``. At each
of those points the workload's **precision** is measured:

* ``maxcut``: the cut of the spins, as a fraction of a **reference cut**; the target is reached
  when ``cut >= cut_fraction * reference`` (default ``cut_fraction = 1.0``). The reference is,
  in this order: ``reference_cut`` when given; the best known cut (the exact optimum found by
  exhaustive search for graphs of up to 16 nodes, or the G-set table); otherwise the best cut
  seen (by this run for ``limemu report``; by any run of the sweep on the same graph for
  ``limemu sweep``). The source is recorded beside the figures.
* ``lsq`` and ``twoparam``: the **error** of the weights, ``max_n |W_n - W_opt,n|`` in weight
  steps, where ``W_opt`` is the continuous optimum ``Q^-1 b`` of the integer problem the array
  solves (``lsq``) or its exact integer optimum ``W*`` (``twoparam``); reached when
  ``error <= error_target`` (default 1 weight step for ``lsq``, 0 for ``twoparam``: at the
  optimum).

**Time-to-solution** ``T`` is the first traced step at which the target is met: an upper bound
of the true first passage, with resolution K (0 if the initial state already meets it).
**Energy-to-solution** ``E`` is the net heat released into the bath up to that step
(``heat_net`` at ``T``, the ideal-LIM cost), in u and in J. Beside it: the gross heat, the
barrier work (LIM + consolidation = heat + barrier work), the evaluations and the net updates
``n_net = sum_n |W_n(T) - W_n(0)| / delta`` until ``T``, and the bounds for them: Landauer
``N b`` u and the speed bound ``n_net D_min(n_net / (N T))`` u (docs/physics.md §10). A run that
never meets the target has ``T = E = None`` and counts against the fraction reached.
"""

import math

import numpy as np

from limemu.model import physics

DEFAULT_TARGET = {"cut_fraction": 1.0, "error": {"lsq": 1.0, "twoparam": 0.0},
                  "reference_cut": None}


def precision_metric(workload_name):
    """(name, higher_is_better) of the value traced for the workload."""
    return ("cut", True) if workload_name == "maxcut" else ("error", False)


def precision_value(workload_name, metrics):
    """The traced precision value from a workload's metrics (see the module docstring)."""
    if workload_name == "maxcut":
        return float(metrics["cut"])
    if workload_name == "lsq":
        return float(metrics["max_abs_error_vs_cont"])
    if workload_name == "twoparam":
        return float(metrics["distance_inf"])
    return float(metrics.get("loss_gap", metrics["loss"]))


def target_settings(workload_name, target=None):
    """The target of a workload: {'cut_fraction', 'reference_cut'} or {'error'}."""
    target = dict(target or {})
    if workload_name == "maxcut":
        return {"cut_fraction": float(target.get("cut_fraction", DEFAULT_TARGET["cut_fraction"])),
                "reference_cut": target.get("reference_cut")}
    default = DEFAULT_TARGET["error"].get(workload_name, 0.0)
    error = target.get("error", default)
    if isinstance(error, dict):
        error = error.get(workload_name, default)
    return {"error": float(error)}


def reference_cut(result, target, best_seen=None):
    """(reference cut, source) for a Max-Cut result (see the module docstring)."""
    if target.get("reference_cut") is not None:
        return float(target["reference_cut"]), "given"
    ref = result.get("reference") or {}
    if ref.get("best_known") is not None:
        return float(ref["best_known"]), ref.get("best_known_source") or "best known"
    if best_seen is not None:
        return float(best_seen), "best cut seen"
    return None, "none"


def solve_point(workload_name, values, target, reference=None):
    """Index of the first trace point meeting the target, or None."""
    values = np.asarray(values, dtype=np.float64)
    if workload_name == "maxcut":
        if reference is None:
            return None
        ok = values >= target["cut_fraction"] * reference - 1e-9
    else:
        ok = values <= target["error"] + 1e-9
    hits = np.flatnonzero(ok)
    return int(hits[0]) if hits.size else None


def time_and_energy_to_solution(result, trace, target=None, best_seen=None,
                                temperature_K=None):
    """The figures of the module docstring for one traced run (a dict, JSON-friendly).

    ``result``: the run's JSON dict; ``trace``: its arrays (see trace.load_trace);
    ``best_seen``: the best cut of a group of runs (Max-Cut without a known reference).
    """
    name = result["workload"]
    settings = target_settings(name, target)
    spec = result["config"]["spec"]
    lsb = 2.0 ** -spec["barrier_frac_bits"]
    cells, bits = spec["cells"], spec["weight_bits"]
    T = float(temperature_K or result["energy"]["temperature_K"])
    metric, _ = precision_metric(name)
    values = trace["precision"]
    out = {"metric": metric, **settings, "reached": False, "time_to_solution_steps": None,
           "energy_to_solution_u": None, "energy_to_solution_J": None}
    if name == "maxcut":
        seen = best_seen if best_seen is not None else float(np.max(values))
        ref, source = reference_cut(result, settings, seen)
        out.update(reference=ref, reference_source=source)
        out["target_value"] = None if ref is None else settings["cut_fraction"] * ref
    else:
        ref = None
        out["target_value"] = settings["error"]
    i = solve_point(name, values, settings, ref)
    best = float(np.max(values) if metric == "cut" else np.min(values))
    out["best_value"] = best
    out["final_value"] = float(values[-1])
    if i is None:
        return out
    counters = dict(zip(trace["counter_names"].tolist(), trace["counters"][i].tolist()))
    steps = int(trace["step"][i])
    evaluations = int(counters["evaluations"])
    net = int(trace["net_updates"][i])
    rate = net / evaluations if evaluations else 0.0
    speed = math.inf if rate >= 1 else net * physics.d_min(rate)
    heat = counters["heat_net"] * lsb
    u_J = physics.landauer_unit_J(T)
    out.update({
        "reached": True,
        "time_to_solution_steps": steps,
        "energy_to_solution_u": heat,
        "energy_to_solution_J": heat * u_J,
        "heat_abs_to_solution_u": counters["heat_abs"] * lsb,
        "barrier_work_to_solution_u": counters["barrier_work"] * lsb,
        "lim_consolidation_to_solution_u": (counters["heat_net"] + counters["barrier_work"])
        * lsb,
        "evaluations_to_solution": evaluations,
        "net_updates_to_solution": net,
        "net_rate_to_solution": rate,
        "landauer_bound_u": float(cells * bits),
        "speed_bound_to_solution_u": speed,
        "temperature_K": T,
    })
    return out


def bound_curve(net_updates, cells, steps):
    """Speed bound on the energy of ``net_updates`` net updates made by ``cells`` cells in
    ``steps`` steps: ``n_net D_min(n_net / (cells steps))`` in u (inf where the rate >= 1)."""
    steps = np.asarray(steps, dtype=np.float64)
    rate = net_updates / (cells * steps)
    out = np.full(steps.shape, np.inf)
    ok = rate < 1
    out[ok] = net_updates * np.asarray(physics.d_min(rate[ok]))
    return out
