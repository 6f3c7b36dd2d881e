"""The API's problem builders (problems.py): Max-Cut, least squares, quadratic forms."""

import numpy as np
import pytest
import limemu
from limemu import ConfigError, QuadraticProblem
from limemu.workloads import maxcut_workload, random_graph, write_gset


def test_maxcut_from_a_graph_a_file_or_a_random_graph(tmp_path):
    graph = random_graph(12, m=20, seed=4)
    path = tmp_path / "g.txt"
    write_gset(graph, path)
    from_graph, from_file = limemu.maxcut(graph), limemu.maxcut(path)
    assert from_graph.problem.nnz == from_file.problem.nnz == 40
    assert np.array_equal(from_graph.problem.to_dense(), from_file.problem.to_dense())
    assert from_file.options["path"] == str(path)
    random = limemu.maxcut(cells=30, seed=2, degree=4)
    same = maxcut_workload(cells=30, seed=2, degree=4)
    assert np.array_equal(random.problem.to_dense(), same.problem.to_dense())
    spins = np.ones(12, np.int64)
    spins[:6] = -1
    assert from_graph.evaluate(spins)["cut"] == from_file.evaluate(spins)["cut"]


def test_least_squares_on_given_data_approaches_numpys_solution():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([0.8, -0.4, 0.2]) + 0.3 * rng.normal(size=200)
    problem = limemu.least_squares(X, y, bits=6)
    assert problem.cells == 3 and problem.options["data"] == "given (200 x 3)"
    spec = limemu.make_spec(problem, 4000, barrier="constant:2", gain="exp:0.001,0.1",
                            formats={"barrier_frac_bits": 12, "gain_frac_bits": 10})
    result = limemu.run(problem, spec, 4000, progress=False)
    assert result.metrics["max_abs_error_vs_numpy"] <= 1.5
    assert result.metrics["rmse_model"] == pytest.approx(result.metrics["rmse_numpy"], rel=0.05)


def test_least_squares_defaults_to_the_diabetes_data():
    problem = limemu.least_squares()
    assert problem.cells == 10 and problem.problem.name == "lsq:diabetes:8b"


@pytest.mark.parametrize("X,y,fragment", [
    (np.ones((5, 2)), None, "give both X and y"),
    (np.ones(5), np.ones(5), "X = 'shape"),
    (np.ones((5, 2)), np.ones(4), "y = 'shape"),
    (np.ones((2, 3)), np.ones(2), "more samples than features"),
    (np.full((5, 2), np.nan), np.ones(5), "finite"),
    (np.zeros((5, 2)), np.ones(5), "not zero"),
])
def test_least_squares_refuses_bad_data(X, y, fragment):
    with pytest.raises(ConfigError, match=fragment):
        limemu.least_squares(X, y)


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_a_quadratic_form_runs_and_reports_its_loss(bits):
    Q = np.array([[4, -2, 0], [-2, 4, 1], [0, 1, 4]])
    b = np.array([3, -2, 1])
    problem = limemu.quadratic(Q, b, bits=bits, name="small")
    assert problem.q_storage == "dense" and problem.weight_bits == bits
    spec = limemu.make_spec(problem, 200, gain="constant:1")
    result = limemu.run(problem, spec, 200, progress=False)
    assert result.loss == pytest.approx(problem.problem.loss(result.weights))
    assert "small" in problem.description


def test_quadratic_storage_follows_size_and_density():
    n = 200
    diagonal = QuadraticProblem.sparse(n, np.arange(n - 1), np.arange(1, n), np.ones(n - 1))
    assert limemu.quadratic(diagonal, bits=1).q_storage == "sparse"
    assert limemu.quadratic(np.eye(n, dtype=int) + 1, bits=2).q_storage == "dense"
    assert limemu.quadratic(np.eye(8, dtype=int), bits=2).q_storage == "dense"


@pytest.mark.parametrize("Q,b,bits,fragment", [
    (np.array([[1, 2], [3, 1]]), None, 2, "symmetric"),
    (np.array([[0.5]]), None, 2, "integers"),
    (np.eye(2, dtype=int), [1, 2, 3], 2, "b = 'shape"),
    (np.eye(2, dtype=int), None, 17, "bits = 17"),
])
def test_quadratic_refuses_bad_input(Q, b, bits, fragment):
    with pytest.raises(ConfigError, match=fragment):
        limemu.quadratic(Q, b, bits=bits)


def test_two_parameter_is_the_fig4_demo():
    problem = limemu.two_parameter(bits=6)
    assert problem.cells == 2 and problem.weight_bits == 6
