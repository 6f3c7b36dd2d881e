"""python_model/order.py: the colour and banked orders."""

import numpy as np
import pytest
from limemu.model.order import bank_rows, greedy_colouring, update_order
from limemu.workloads import random_graph
from limemu.workloads.gset import Graph
from limemu.workloads.maxcut import maxcut_problem


def torus(rows, cols):
    node = np.arange(rows * cols).reshape(rows, cols)
    i = np.concatenate([node.ravel(), node.ravel()])
    j = np.concatenate([np.roll(node, -1, axis=1).ravel(), np.roll(node, -1, axis=0).ravel()])
    return Graph(rows * cols, i, j, np.ones(len(i), dtype=np.int64), name="torus")


@pytest.mark.parametrize("lanes", [3, 8, 32])
def test_banked_order_keeps_the_colour_classes_and_their_groups(lanes):
    problem = maxcut_problem(random_graph(300, m=3000, seed=2))
    colour, banked = (update_order(problem.n, lanes, kind, problem)
                      for kind in ("colour", "banked"))
    assert banked.coupled_pairs == 0 and banked.groups == colour.groups
    assert np.all(np.diff(banked.slot) > 0)                      # positions in slot order
    classes = greedy_colouring(problem)
    assert np.array_equal(classes[banked.sequence], classes[colour.sequence])
    assert np.array_equal(banked.group, colour.group)             # same groups, same lanes used
    assert np.array_equal(banked.slot, colour.slot)
    assert not np.array_equal(banked.sequence, colour.sequence)   # but other cells on them


def test_banked_order_spreads_the_columns_of_a_gset_graph_over_the_lanes():
    problem = maxcut_problem(random_graph(800, m=19_176, seed=1))
    colour, banked = (bank_rows(problem, update_order(problem.n, 32, kind, problem)
                                .cell_lanes(32)) for kind in ("colour", "banked"))
    assert colour.mean() > 4.4 and banked.mean() < 3.7           # 4.48 and 3.63 rows a column
    assert np.all(banked >= np.ceil(np.diff(problem.indptr) / 32))


def test_banked_order_is_the_colour_order_where_that_is_already_balanced():
    problem = maxcut_problem(torus(40, 20))                       # one row a column already
    colour, banked = (update_order(problem.n, 32, kind, problem) for kind in ("colour", "banked"))
    assert bank_rows(problem, colour.cell_lanes(32)).max() == 1
    assert np.array_equal(banked.sequence, colour.sequence)


def test_banked_order_with_one_lane_is_the_colour_order():
    problem = maxcut_problem(random_graph(50, m=200, seed=3))
    colour, banked = (update_order(problem.n, 1, kind, problem) for kind in ("colour", "banked"))
    assert np.array_equal(banked.sequence, colour.sequence)


def test_bank_rows_counts_the_fullest_lane_of_each_column():
    problem = maxcut_problem(Graph(4, np.array([0, 0, 0]), np.array([1, 2, 3]),
                                   np.ones(3, dtype=np.int64)))
    # cell 0 is coupled to 1, 2, 3; with cells 1 and 2 on lane 1 its column has 2 rows there
    assert bank_rows(problem, np.array([0, 1, 1, 0])).tolist() == [2, 1, 1, 1]
