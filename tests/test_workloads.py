"""Workload builders: G-set parsing, random graphs, Max-Cut, least squares, the two-parameter demo.

Run: PYTHONPATH=/work/main:/work/main/scripts python -m pytest tests/test_workloads.py -q -W error
"""

import itertools
import math
import re

import numpy as np
import pytest
from limemu.model.errors import ConfigError
from limemu.workloads import (
    Graph,
    Workload,
    build_workload,
    exhaustive_maxcut,
    lsq_workload,
    maxcut_workload,
    parse_gset,
    random_graph,
    twoparam_workload,
    workload_options,
    write_gset,
)
from limemu.workloads.lsq import FILL, rounding_bound
from limemu.workloads.maxcut import cut_value, gset_best_known
from limemu.workloads.twoparam import exhaustive_minimum


def _edges(graph):
    """The edge set as {(min, max): w} (0-based), for order-independent comparison."""
    return {(min(a, c), max(a, c)): w
            for a, c, w in zip(graph.i.tolist(), graph.j.tolist(), graph.w.tolist())}


def _assert_simple(graph):
    i, j = graph.i, graph.j
    assert np.all((i >= 0) & (i < graph.n) & (j >= 0) & (j < graph.n)), graph
    assert not np.any(i == j), f"self-loop in {graph!r}"
    assert len(_edges(graph)) == graph.m, f"duplicate edge in {graph!r}"


# == G-set parsing ================================================================================
SMALL_EDGES = [(1, 2, 1), (2, 3, -1), (4, 1, 2), (3, 5, 7)]


def _small_gset_text(eol, tail):
    lines = ["5 4  "] + [f"{a} {c} {w} " + (" " if k % 2 else "\t")
                         for k, (a, c, w) in enumerate(SMALL_EDGES)]
    return eol.join(lines) + eol + tail


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("tail", ["", "\n", "\r\n\r\n", "  \r\n\t\n\n"],
                         ids=["no-tail", "blank", "crlf-blanks", "space-blanks"])
def test_parse_gset_tolerates_trailing_spaces_crlf_and_blank_lines(tmp_path, eol, tail):
    path = tmp_path / "small.txt"
    path.write_bytes(_small_gset_text(eol, tail).encode("ascii"))
    for graph in (parse_gset(path), parse_gset(str(path)),
                  parse_gset(path.read_bytes(), name="small"),
                  parse_gset(path.read_text(encoding="ascii"), name="small")):
        assert graph.n == 5 and graph.m == 4 and graph.name == "small"
        assert graph.i.tolist() == [a - 1 for a, _, _ in SMALL_EDGES]
        assert graph.j.tolist() == [c - 1 for _, c, _ in SMALL_EDGES]
        assert graph.w.tolist() == [w for _, _, w in SMALL_EDGES]
        assert graph.i.dtype == graph.j.dtype == graph.w.dtype == np.int64


MALFORMED = {
    # id: (file text, 1-based line the error must name, fragment of the message)
    "empty": ("", 1, "empty"),
    "only-blank-lines": ("\n  \r\n\n", 1, "empty"),
    "header-one-field": ("3\n", 1, "header"),
    "header-three-fields": ("3 1 1\n1 2 1\n", 1, "header"),
    "header-not-integer": ("3 x\n", 1, "header"),
    "header-float": ("3.0 1\n1 2 1\n", 1, "header"),
    "n-zero": ("0 0\n", 1, "n = 0"),
    "n-negative": ("-2 0\n", 1, "n = -2"),
    "m-negative": ("3 -1\n", 1, "m = -1"),
    "m-above-complete": ("3 4\n1 2 1\n", 1, "at most 3"),
    "weight-float": ("3 2\n1 2 1\n2 3 1.5\n", 3, "non-integer"),
    "node-not-integer": ("3 1\n1 x 1\n", 2, "non-integer"),
    "two-fields": ("3 2\n1 2\n2 3 1\n", 2, "3 fields"),
    "four-fields": ("3 1\n1 2 1 4\n", 2, "3 fields"),
    "node-above-n": ("3 1\n1 4 1\n", 2, "outside [1, 3]"),
    "node-zero": ("3 1\n0 2 1\n", 2, "outside [1, 3]"),
    "self-loop": ("3 2\n1 2 1\n2 2 1\n", 3, "self-loop"),
    "duplicate": ("3 2\n1 2 1\n1 2 1\n", 3, "duplicate"),
    "duplicate-reversed": ("4 3\n1 2 1\n3 4 1\n2 1 5\n", 4, "line 2"),
    "too-few-edges": ("3 3\n1 2 1\n2 3 1\n", 4, "ends after 2"),
    "too-few-edges-blank-tail": ("3 3\r\n1 2 1\r\n2 3 1\r\n\r\n\r\n", 4, "ends after 2"),
    "too-many-edges": ("3 1\n1 2 1\n2 3 1\n", 3, "more edges"),
    "blank-line-inside": ("3 2\n1 2 1\n\n2 3 1\n", 3, "blank line"),
    "crlf-duplicate": ("3 2\r\n1 2 1\r\n1 2 1\r\n", 3, "duplicate"),
    "not-ascii": ("3 1\n1 2 \xb5\n", 2, "ASCII"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_parse_gset_rejects_malformed_input_naming_file_and_line(tmp_path, case):
    text, line, fragment = MALFORMED[case]
    path = tmp_path / f"bad_{case}.txt"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        parse_gset(path)
    message = str(info.value)
    assert str(path) in message, message
    assert f"line {line}:" in message, message
    assert fragment in message, message


def test_parse_gset_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        parse_gset(tmp_path / "absent.txt")


@pytest.mark.parametrize("n, m, weights, seed", [(1, 0, "unit", 1), (2, 1, "pm1", 2),
                                                 (7, 21, "pm1", 3), (64, 192, "unit", 4),
                                                 (1000, 2500, "pm1", 5)])
def test_gset_write_parse_round_trip(tmp_path, n, m, weights, seed):
    graph = random_graph(n, m=m, weights=weights, seed=seed)
    path = write_gset(graph, tmp_path / "G_round.txt")
    back = parse_gset(path)
    assert (back.n, back.m, back.name) == (graph.n, graph.m, "G_round")
    for label in ("i", "j", "w"):
        np.testing.assert_array_equal(getattr(back, label), getattr(graph, label), err_msg=label)
    assert path.read_text(encoding="ascii").splitlines()[0] == f"{n} {m}"


@pytest.mark.parametrize("i, j, fragment", [([0, 1], [1, 0], "twice"),
                                            ([0, 2], [1, 2], "self-loop"),
                                            ([0], [3], "outside"), ([-1], [1], "outside")])
def test_graph_constructor_rejects_invalid_edges(i, j, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Graph(3, np.array(i), np.array(j), np.ones(len(i), np.int64))


# == random graphs ================================================================================
@pytest.mark.parametrize("n, m", [(1, 0), (2, 1), (5, 10), (7, 0), (33, 100), (64, 192),
                                  (500, 1500), (2**20, 5000)])
@pytest.mark.parametrize("weights", ["unit", "pm1"])
def test_random_graph_gnm_has_exactly_m_distinct_simple_edges(n, m, weights):
    graph = random_graph(n, m=m, weights=weights, seed=11)
    assert graph.n == n and graph.m == m
    _assert_simple(graph)
    assert np.all(graph.i < graph.j)
    assert set(np.unique(graph.w).tolist()) <= ({1} if weights == "unit" else {-1, 1})


def test_random_graph_complete_graph_lists_every_pair_once():
    n = 50
    graph = random_graph(n, m=n * (n - 1) // 2, seed=3)
    assert set(_edges(graph)) == set(itertools.combinations(range(n), 2))


@pytest.mark.parametrize("kwargs", [dict(n=40, m=100), dict(n=40, p=0.2),
                                    dict(n=40, m=100, weights="pm1")])
def test_random_graph_is_reproducible_per_seed(kwargs):
    a, b = random_graph(seed=7, **kwargs), random_graph(seed=7, **kwargs)
    c = random_graph(seed=8, **kwargs)
    assert _edges(a) == _edges(b)
    assert _edges(a) != _edges(c)


@pytest.mark.parametrize("n, p", [(30, 0.0), (30, 1.0), (200, 0.05), (2000, 0.003)])
def test_random_graph_gnp_edge_count_within_five_sigma(n, p):
    pairs = n * (n - 1) // 2
    graph = random_graph(n, p=p, seed=5)
    _assert_simple(graph)
    sigma = math.sqrt(pairs * p * (1 - p))
    assert abs(graph.m - pairs * p) <= 5 * sigma + 1e-9, (graph.m, pairs * p, sigma)


@pytest.mark.parametrize("kwargs, parameter", [
    (dict(n=4, m=7), "m"), (dict(n=4, m=-1), "m"), (dict(n=4), "m, p"),
    (dict(n=4, m=2, p=0.5), "m, p"), (dict(n=4, p=1.5), "p"), (dict(n=0, m=0), "n"),
    (dict(n=4, m=2, weights="gauss"), "weights"), (dict(n=4, m=2, seed=-1), "seed"),
    (dict(n=4.5, m=2), "n"), (dict(n=4, m=2.0), "m")])
def test_random_graph_rejects_bad_arguments(kwargs, parameter):
    with pytest.raises(ConfigError, match=f"^{re.escape(parameter)} = "):
        random_graph(**kwargs)


# == Max-Cut ======================================================================================
def _cycle(n):
    return Graph(n, np.arange(n), (np.arange(n) + 1) % n, np.ones(n, np.int64), name=f"C{n}")


def _complete(n, w=1):
    pairs = np.array(list(itertools.combinations(range(n), 2)))
    return Graph(n, pairs[:, 0], pairs[:, 1], np.full(len(pairs), w, np.int64), name=f"K{n}")


def _brute_force_maxcut(graph):
    best = None
    for bits in itertools.product((1, -1), repeat=graph.n):
        s = np.array(bits)
        cut = sum(w for a, c, w in zip(graph.i, graph.j, graph.w) if s[a] != s[c])
        best = cut if best is None else max(best, cut)
    return best


@pytest.mark.parametrize("graph, optimum", [
    (_cycle(5), 4), (_complete(4), 4), (_cycle(4), 4), (_cycle(3), 2), (_complete(5), 6),
    (_complete(4, w=-1), 0), (Graph(1, [], [], [], name="K1"), 0),
    (Graph(3, [0, 1], [1, 2], [3, 5], name="P3w"), 8)], ids=lambda x: getattr(x, "name", None))
def test_exhaustive_maxcut_known_optima(graph, optimum):
    cut, spins = exhaustive_maxcut(graph)
    assert cut == optimum
    assert cut_value(graph, spins) == optimum
    assert set(np.unique(spins).tolist()) <= {-1, 1} and spins.shape == (graph.n,)


@pytest.mark.parametrize("n, m, seed", [(6, 9, 1), (7, 15, 2), (8, 12, 3), (9, 20, 4)])
def test_exhaustive_maxcut_matches_itertools_brute_force(n, m, seed):
    graph = random_graph(n, m=m, weights="pm1", seed=seed)
    assert exhaustive_maxcut(graph)[0] == _brute_force_maxcut(graph)


def test_exhaustive_maxcut_handles_twenty_nodes_and_refuses_more():
    graph = random_graph(20, m=60, seed=9)
    cut, spins = exhaustive_maxcut(graph)
    assert cut == cut_value(graph, spins)
    flips = spins[None, :] * np.where(np.eye(20, dtype=bool), -1, 1)   # every single-spin flip
    assert all(cut_value(graph, s) <= cut for s in flips)
    with pytest.raises(ConfigError, match="^n = 21"):
        exhaustive_maxcut(random_graph(21, m=30, seed=9))


@pytest.mark.parametrize("n, weights, seed", [(2, "unit", 1), (16, "pm1", 2), (64, "unit", 3),
                                              (101, "pm1", 4), (1000, "pm1", 5)])
def test_maxcut_cut_from_edges_equals_total_minus_loss_over_two(n, weights, seed):
    workload = maxcut_workload(cells=n, weights=weights, seed=seed)
    graph_w = workload.reference["total_weight"]
    rng = np.random.default_rng(seed)
    Q = workload.problem.to_dense()
    for _ in range(20):
        s = rng.choice(np.array([-1, 1]), size=n)
        metrics = workload.evaluate(s)
        assert metrics["cut"] == (graph_w - metrics["loss"]) / 2, (metrics, s)
        assert metrics["loss"] == 0.5 * float(s @ Q @ s)


def test_maxcut_problem_is_adjacency_with_zero_diagonal_and_zero_bias():
    graph = random_graph(30, m=80, weights="pm1", seed=4)
    workload = maxcut_workload(graph=graph)
    Q = workload.problem.to_dense()
    expected = np.zeros((30, 30), np.int64)
    expected[graph.i, graph.j] = graph.w
    expected[graph.j, graph.i] = graph.w
    np.testing.assert_array_equal(Q, expected)
    assert not np.any(workload.problem.b)
    assert (workload.weight_bits, workload.q_storage, workload.cells) == (1, "sparse", 30)


def test_maxcut_small_graph_reference_is_exact_optimum():
    workload = maxcut_workload(graph=_cycle(5))
    ref = workload.reference
    assert ref["optimum"] == ref["best_known"] == 4
    metrics = workload.evaluate(np.array(ref["optimum_spins"]))
    assert metrics["cut"] == 4 and metrics["optimal"] and metrics["loss"] == ref["loss_at_optimum"]


@pytest.mark.parametrize("cells", [2, 7, 200])
def test_maxcut_random_default_has_mean_degree_six(cells):
    workload = maxcut_workload(cells=cells, seed=2)
    m, pairs = workload.reference["m"], cells * (cells - 1) // 2
    assert m == min(3 * cells, pairs)
    assert workload.cells == cells


def test_maxcut_from_gset_file(tmp_path):
    path = write_gset(_complete(4), tmp_path / "k4.txt")
    workload = maxcut_workload(path=path, cells=4)
    assert workload.reference["graph"] == "k4" and workload.reference["best_known"] == 4
    assert workload.evaluate(np.array([1, -1, 1, -1]))["cut"] == 4
    with pytest.raises(ConfigError, match="^cells = 5"):
        maxcut_workload(path=path, cells=5)


def test_gset_best_known_needs_name_and_size():
    graph = random_graph(800, m=1600, weights="pm1", seed=1)
    named = Graph(graph.n, graph.i, graph.j, graph.w, name="G11")
    assert gset_best_known(named) == 564
    assert maxcut_workload(graph=named).evaluate(np.ones(800, np.int64))["best_known"] == 564
    assert gset_best_known(Graph(4, [0], [1], [1], name="G11")) is None
    assert gset_best_known(graph) is None


@pytest.mark.parametrize("weights", [np.zeros(6, np.int64), np.full(6, 2), np.ones(5, np.int64),
                                     np.array([1, -1, 1, -1, 1, 0.5])])
def test_maxcut_evaluate_rejects_states_that_are_not_spins(weights):
    workload = maxcut_workload(graph=_complete(6))
    with pytest.raises(ConfigError, match="weights"):
        workload.evaluate(weights)


# == least squares ================================================================================
def _diabetes():
    """The data, standardised here independently of the workload code."""
    from sklearn.datasets import load_diabetes
    X, y = load_diabetes(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()


LSQ_CONFIGS = [(4, 2**12), (8, 2**10), (8, 2**12), (8, 2**16), (12, 2**16)]


@pytest.fixture(scope="module")
def lsq_default():
    return lsq_workload()


@pytest.mark.parametrize("bits, q_max", LSQ_CONFIGS)
def test_lsq_q_is_symmetric_positive_definite_integer_with_max_near_q_max(bits, q_max):
    workload = lsq_workload(bits=bits, q_max=q_max)
    Q = workload.problem.to_dense()
    assert Q.dtype == np.int64 and workload.problem.b.dtype == np.int64
    np.testing.assert_array_equal(Q, Q.T)
    assert np.linalg.eigvalsh(Q.astype(float))[0] > 0
    assert abs(int(np.max(np.abs(Q))) - q_max) <= 1
    assert (workload.weight_bits, workload.q_storage, workload.cells) == (bits, "dense", 10)


@pytest.mark.parametrize("bits, q_max", LSQ_CONFIGS)
def test_lsq_continuous_optimum_agrees_with_numpy_lstsq_within_rounding_bound(bits, q_max):
    """What is checked, with W* = w*/step (numpy.linalg.lstsq in weight units) and
    W_cont = Q^-1 b (continuous optimum of the integer problem):

    1. step puts W* at FILL = 0.6 of the top of the range: max|W*| = 0.6 (2^(bits-1) - 1).
    2. The rounding of Q and b (each entry by at most 1/2 LSB) is the only difference:
       Q (W_cont - W*) = e - E W* exactly (to float precision), where E and e are the rounding
       residuals of q_scale * step^2 X^T X / sigma^2 and q_scale * step X^T y / sigma^2,
       recomputed here from scikit-learn's data.
    3. Hence, rigorously, ||W_cont - W*||_2 <= 0.5 kappa(Q) (sqrt(n) + n ||W*||_2) / lambda_max(Q)
       (0.5 LSB per rounded entry, amplified by the condition number).
    4. W_cont lies inside the weight range.
    """
    workload = lsq_workload(bits=bits, q_max=q_max)
    ref = workload.reference
    X, y = _diabetes()
    w_star, *_ = np.linalg.lstsq(X, y, rcond=None)
    w_hi = 2 ** (bits - 1) - 1
    step = ref["step"]
    W_star = w_star / step
    np.testing.assert_allclose(W_star, ref["W_numpy"], rtol=1e-10, atol=1e-10)
    assert np.max(np.abs(W_star)) == pytest.approx(FILL * w_hi, rel=1e-12)

    Q = workload.problem.to_dense().astype(float)
    b = workload.problem.b.astype(float)
    s = ref["q_scale"] / ref["sigma2"]
    E = Q - s * step ** 2 * (X.T @ X)
    e = b - s * step * (X.T @ y)
    assert np.max(np.abs(E)) <= 0.5 + 1e-6 and np.max(np.abs(e)) <= 0.5 + 1e-6
    W_cont = np.linalg.solve(Q, b)
    np.testing.assert_allclose(W_cont, ref["W_cont"], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(Q @ (W_cont - W_star), e - E @ W_star, rtol=0, atol=1e-6)

    eig = np.linalg.eigvalsh(Q)
    kappa = eig[-1] / eig[0]
    bound = 0.5 * kappa * (math.sqrt(10) + 10 * np.linalg.norm(W_star)) / eig[-1]
    assert ref["rounding_bound"] == pytest.approx(bound, rel=1e-9)
    assert rounding_bound(Q, W_star) == pytest.approx(bound, rel=1e-9)
    assert np.linalg.norm(W_cont - W_star) <= bound
    assert np.all((W_cont >= -w_hi - 1) & (W_cont <= w_hi))


def test_lsq_default_rounding_stays_below_half_an_lsb(lsq_default):
    """At the defaults (8 bits, q_max = 2^12) the rounded problem's continuous optimum is within
    half a weight LSB of NumPy's, so round(W_cont) is within one LSB of w*/step."""
    ref = lsq_default.reference
    assert ref["rounding_error"] < 0.5
    assert np.max(np.abs(np.array(ref["W_cont_rounded"]) - np.array(ref["W_numpy"]))) < 1.0


def test_lsq_evaluate_reports_fit_against_numpy(lsq_default):
    ref = lsq_default.reference
    X, y = _diabetes()
    w_star, *_ = np.linalg.lstsq(X, y, rcond=None)
    rmse_np = math.sqrt(np.mean((X @ w_star - y) ** 2))
    best = lsq_default.evaluate(np.array(ref["W_cont_rounded"]))
    assert best["rmse_numpy"] == pytest.approx(rmse_np, rel=1e-12)
    assert rmse_np <= best["rmse_model"] <= rmse_np * 1.001
    assert best["max_abs_error_vs_numpy"] <= 0.5 + ref["rounding_error"]
    assert best["loss_gap"] >= 0
    assert best["loss"] == lsq_default.problem.loss(np.array(ref["W_cont_rounded"]))
    zero = lsq_default.evaluate(np.zeros(10, np.int64))
    assert zero["loss"] == 0.0 and zero["rmse_model"] == pytest.approx(1.0, rel=1e-12)
    assert zero["max_abs_error_vs_numpy"] == pytest.approx(np.max(np.abs(ref["W_numpy"])))
    with pytest.raises(ConfigError, match=r"weights\[0\] = 128"):
        lsq_default.evaluate(np.array([128] + [0] * 9))


@pytest.mark.parametrize("eta", [1e-4, 1 / 16, 1.0])
def test_lsq_posterior_std_is_gaussian_spread_of_eta(lsq_default, eta):
    std = lsq_default.posterior_std(eta)
    Q = lsq_default.problem.to_dense().astype(float)
    np.testing.assert_allclose(std, np.sqrt(np.diag(np.linalg.inv(eta * math.log(2) * Q))),
                               rtol=1e-10)
    np.testing.assert_allclose(lsq_default.posterior_std(4 * eta), std / 2, rtol=1e-12)


def test_lsq_posterior_at_eta_bayes_is_ols_standard_error(lsq_default):
    """P(W) ∝ 2^(-eta_bayes L) is the Bayesian posterior: before Q is rounded its spread is
    exactly the textbook OLS standard error sqrt(sigma^2 diag((X^T X)^-1)) in weight units;
    rounding Q to integers (max|Q| = 2^12, kappa ~ 470) moves it by well under 1 %."""
    ref = lsq_default.reference
    X, _ = _diabetes()
    se = np.sqrt(ref["sigma2"] * np.diag(np.linalg.inv(X.T @ X))) / ref["step"]
    Q_unrounded = ref["q_scale"] * ref["step"] ** 2 * (X.T @ X) / ref["sigma2"]
    eta = ref["eta_bayes"]
    np.testing.assert_allclose(np.sqrt(np.diag(np.linalg.inv(eta * math.log(2) * Q_unrounded))),
                               se, rtol=1e-9)
    np.testing.assert_allclose(lsq_default.posterior_std(eta), se, rtol=1e-2)
    np.testing.assert_allclose(ref["posterior_std_bayes"], lsq_default.posterior_std(eta))


@pytest.mark.parametrize("options, parameter", [
    (dict(cells=9), "cells"), (dict(cells=11), "cells"), (dict(bits=3), "bits"),
    (dict(bits=17), "bits"), (dict(bits=8.0), "bits"), (dict(q_max=8), "q_max"),
    (dict(q_max=True), "q_max"), (dict(seed=-1), "seed")])
def test_lsq_rejects_bad_options_naming_them(options, parameter):
    with pytest.raises(ConfigError, match=f"^{parameter} = "):
        build_workload("lsq", **options)


@pytest.mark.parametrize("eta", [0, -1.0, float("inf"), float("nan")])
def test_posterior_std_rejects_bad_eta(lsq_default, eta):
    with pytest.raises(ConfigError, match="^eta = "):
        lsq_default.posterior_std(eta)


def test_posterior_std_needs_positive_definite_q():
    with pytest.raises(ConfigError, match="positive definite"):
        maxcut_workload(graph=_cycle(5)).posterior_std(1.0)


# == two-parameter demo ===========================================================================
@pytest.mark.parametrize("bits", [4, 6, 8, 10, 12])
def test_twoparam_optimum_is_well_inside_range_and_away_from_start(bits):
    workload = twoparam_workload(bits=bits)
    ref = workload.reference
    h = 2 ** (bits - 1)
    W_star = np.array(ref["W_star"])
    assert np.all(np.abs(W_star) <= 0.75 * h), W_star               # well inside [-h, h-1]
    assert np.linalg.norm(W_star) >= 0.25 * h, W_star               # far from W = 0
    assert ref["loss_star"] < ref["loss_start"] == 0.0
    assert np.linalg.norm(np.array(ref["W_cont"]) - W_star) < 2.0
    assert (workload.weight_bits, workload.cells, workload.q_storage) == (bits, 2, "dense")


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_twoparam_exhaustive_optimum_equals_reference(bits):
    workload = twoparam_workload(bits=bits)
    h = 2 ** (bits - 1)
    x, y = np.meshgrid(np.arange(-h, h), np.arange(-h, h), indexing="ij")
    states = np.stack((x.ravel(), y.ravel()), axis=1)               # all 2^(2 bits) states
    Q, b = workload.problem.to_dense(), workload.problem.b
    loss2 = np.einsum("ki,ij,kj->k", states, Q, states) - 2 * states @ b
    k = int(np.argmin(loss2))
    ref = workload.reference
    assert int(loss2[k]) == ref["loss2_star"] == workload.problem.loss2(np.array(ref["W_star"]))
    assert states[k].tolist() == ref["W_star"]
    assert int(np.count_nonzero(loss2 == loss2[k])) == ref["optimal_states"]
    W, l2, ties = exhaustive_minimum(workload.problem, bits)
    assert (W.tolist(), l2, ties) == (ref["W_star"], ref["loss2_star"], ref["optimal_states"])


def test_twoparam_valley_is_elongated_and_tilted():
    ref = twoparam_workload().reference
    assert ref["condition_number"] == pytest.approx(14.0)
    assert 20 < abs(ref["valley_angle_deg"]) < 70
    lam = np.linalg.eigvalsh(twoparam_workload().problem.to_dense().astype(float))
    assert lam[-1] / lam[0] == pytest.approx(ref["condition_number"])


def test_twoparam_evaluate_distance_and_gap():
    workload = twoparam_workload()
    ref = workload.reference
    at = workload.evaluate(np.array(ref["W_star"]))
    assert at["distance"] == 0 and at["loss_gap"] == 0 and at["at_optimum"]
    start = workload.evaluate(np.zeros(2, np.int64))
    assert start["loss_gap"] == -ref["loss_star"] > 0
    assert start["distance"] == pytest.approx(np.linalg.norm(ref["W_star"]))
    assert start["distance_inf"] == max(abs(v) for v in ref["W_star"]) and not start["at_optimum"]


@pytest.mark.parametrize("options, parameter", [(dict(cells=3), "cells"), (dict(bits=3), "bits"),
                                                (dict(bits=13), "bits")])
def test_twoparam_rejects_bad_options_naming_them(options, parameter):
    with pytest.raises(ConfigError, match=f"^{parameter} = "):
        build_workload("twoparam", **options)


# == build_workload ===============================================================================
@pytest.mark.parametrize("name, options", [("lsq", {}), ("twoparam", {}), ("maxcut", {}),
                                           ("maxcut", dict(cells=12, seed=3, weights="pm1")),
                                           ("lsq", dict(bits=6, seed=1)),
                                           ("twoparam", dict(bits=5, cells=2))])
def test_build_workload_dispatches_by_name(name, options):
    workload = build_workload(name, **options)
    assert isinstance(workload, Workload) and workload.name == name
    assert "\n" not in workload.description and workload.description
    state = np.ones(workload.cells, np.int64)
    metrics = workload.evaluate(state)
    assert metrics["loss"] == workload.problem.loss(state)
    assert isinstance(metrics["loss"], float)
    assert name in repr(workload) and "options=" in repr(workload)
    assert set(workload_options(name)) >= {"cells", "seed", "bits"}


@pytest.mark.parametrize("name", ["lsqq", "", "MaxCut", "ising"])
def test_build_workload_rejects_unknown_name(name):
    with pytest.raises(ConfigError, match=f"^workload = {re.escape(repr(name))}: unknown"):
        build_workload(name)


@pytest.mark.parametrize("name, option", [("lsq", "weight_bits"), ("maxcut", "q_max"),
                                          ("twoparam", "path"), ("lsq", "cell")])
def test_build_workload_rejects_unknown_option_naming_it(name, option):
    with pytest.raises(ConfigError, match=f"^{option} = 1: unknown option of workload"):
        build_workload(name, **{option: 1})


def test_maxcut_rejects_non_spin_bits_and_conflicting_sources(tmp_path):
    with pytest.raises(ConfigError, match="^bits = 4"):
        build_workload("maxcut", bits=4)
    path = write_gset(_cycle(5), tmp_path / "c5.txt")
    with pytest.raises(ConfigError, match="^graph, path"):
        maxcut_workload(graph=_cycle(5), path=path)
    for degree in (0, -1.0, float("nan"), "6"):
        with pytest.raises(ConfigError, match="^degree = "):
            maxcut_workload(cells=5, degree=degree)
