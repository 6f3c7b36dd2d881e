"""The workloads solved by the golden model: least squares, Max-Cut, the two-parameter demo."""

import numpy as np
import pytest
from limemu.model.engine import LimArray
from limemu.runner import build_run, run_backend
from limemu.workloads import build_workload, random_graph, write_gset


def run(options):
    workload, spec, steps = build_run(options)
    array = LimArray(spec, workload.problem)
    array.run(steps)
    return workload, spec, array


@pytest.mark.slow
def test_least_squares_converges_to_numpy_within_the_spread_eta_implies():
    workload, spec, array = run({"workload": "lsq"})
    eta_end = int(spec.gain.values_at([array.step])[0]) / 2**spec.gain_frac_bits
    sigma = workload.posterior_std(eta_end)
    # keep sampling at the final gain: the mean state estimates the optimum
    snapshots = array.run(4000, snapshot_every=10)
    mean = snapshots.mean(axis=0)
    w_cont = np.array(workload.reference["W_cont"])      # optimum of the integer problem
    w_numpy = np.array(workload.reference["W_numpy"])     # numpy.linalg.lstsq, weight units
    rounding = workload.reference["rounding_error"]      # |W_cont - W_numpy| from rounding Q, b
    # 400 correlated samples: allow 4 standard deviations of one sample, plus half a lattice
    # step (the states are integers)
    assert np.all(np.abs(mean - w_cont) < 4 * sigma + 0.5), (mean, w_cont, sigma)
    assert np.all(np.abs(mean - w_numpy) < 4 * sigma + 0.5 + rounding)
    metrics = workload.evaluate(array.W)
    assert metrics["rmse_model"] < 1.01 * metrics["rmse_numpy"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_maxcut_on_a_small_graph_reaches_the_exhaustive_optimum(seed):
    workload, spec, array = run({"workload": "maxcut", "cells": 14, "seed": seed,
                                 "steps": 3000})
    metrics = workload.evaluate(array.W)
    assert workload.reference["optimum"] is not None
    assert metrics["cut"] == workload.reference["optimum"], metrics


def test_maxcut_from_a_gset_file(tmp_path):
    graph = random_graph(12, m=30, weights="pm1", seed=5)
    path = tmp_path / "g12.txt"
    write_gset(graph, path)
    workload, spec, array = run({"workload": "maxcut", "graph": str(path), "steps": 3000})
    metrics = workload.evaluate(array.W)
    assert metrics["cut"] == workload.reference["optimum"]


def test_two_parameter_demo_reaches_the_optimum():
    workload, spec, array = run({"workload": "twoparam"})
    metrics = workload.evaluate(array.W)
    assert metrics["distance_inf"] <= 1, metrics


def test_reference_backend_agrees_with_model_on_a_demo_run():
    workload, spec, steps = build_run({"workload": "maxcut", "cells": 20, "steps": 100})
    a = run_backend("model", workload, spec, steps, progress=False)
    b = run_backend("reference", workload, spec, steps, progress=False)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_build_workload_rejects_unknown_names():
    from limemu.model import ConfigError
    with pytest.raises(ConfigError, match="workload"):
        build_workload("tsp")
