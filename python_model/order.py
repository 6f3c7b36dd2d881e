"""Update order: which cell each lane evaluates in each cycle of a step (docs/physics.md §8).

A step is a sequence of groups; a group is what the `lanes` lanes evaluate in one cycle, all
against the same field g. Every lane draws one random number per group, idle or not.

* natural: cells 0..N-1 in order, groups of `lanes` consecutive cells;
* colour: a greedy colouring (largest degree first) of the coupling graph; cells sorted by
  colour, each colour class cut into groups, so every group is an independent set and the
  coupling error is zero;
* banked: the colour order with the cells of each class placed on the lanes so that every
  column of Q spreads its nonzeros over the lanes (lane_balanced_ranks), when that needs fewer
  rows of the lane banks than index order: the throughput core keeps the field banked by lane
  and applies a column one row of the banks a cycle, as many rows as its fullest bank has
  nonzeros, so this order takes fewer cycles there for the same statistics.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UpdateOrder:
    sequence: np.ndarray      # (N,) cell evaluated at each position of a step
    slot: np.ndarray          # (N,) group * lanes + lane of each position
    group: np.ndarray         # (N,) group of each position
    groups: int               # groups (cycles) per step
    colours: int              # colour classes (1 for natural order)
    coupled_pairs: int        # pairs of coupled cells that share a group

    @property
    def group_start(self):
        """Position of the first cell of each position's group."""
        return np.searchsorted(self.group, self.group, side="left")

    @property
    def group_end(self):
        """Position just after the last cell of each position's group."""
        return np.searchsorted(self.group, self.group, side="right")

    def cell_lanes(self, lanes):
        """Each cell's lane (indexed by cell, not by position)."""
        lane = np.empty(len(self.sequence), dtype=np.int64)
        lane[self.sequence] = self.slot % lanes
        return lane


def greedy_colouring(problem):
    """Colour per cell; neighbours (Q_ij != 0, i != j) get different colours."""
    n = problem.n
    degree = np.diff(problem.indptr) - (problem.diag != 0)
    colour = np.full(n, -1, dtype=np.int64)
    for cell in np.lexsort((np.arange(n), -degree)):
        neighbours = problem.indices[problem.indptr[cell]:problem.indptr[cell + 1]]
        used = set(colour[neighbours].tolist())
        c = 0
        while c in used:
            c += 1
        colour[cell] = c
    return colour


def lane_balanced_ranks(problem, colour, lanes):
    """Rank of every cell inside its colour class (lane = rank % lanes), chosen greedily so
    that each column of Q has its nonzeros in as few rows of the lane banks as possible.

    Classes in order, cells of a class by degree (largest first, then index); a cell goes to the
    lane with room that adds the fewest rows to the columns it is a row of (ties: the fewest
    nonzeros already there, then the lowest lane). A class of s cells fills ceil(s / lanes)
    groups and its last group uses the lowest lanes, as in index order. A G-set graph of 800
    nodes and 48 nonzeros a column on 32 lanes: 3.6 rows a column instead of 4.5 in index
    order."""
    n = problem.n
    degree = np.diff(problem.indptr)
    load = np.zeros((n, lanes), dtype=np.int32)     # load[m, l]: column m's nonzeros on lane l
    rows = np.zeros(n, dtype=np.int32)              # rows of column m so far (its fullest lane)
    rank = np.empty(n, dtype=np.int64)
    lane_index = np.arange(lanes, dtype=np.int64)
    tie_weight = len(problem.indices) + 1               # added rows first, then nonzeros there
    for k in range(int(colour.max()) + 1 if n else 0):
        cells = np.flatnonzero(colour == k)
        groups = -(-len(cells) // lanes)
        last_group_lanes = len(cells) - (groups - 1) * lanes
        room = np.where(lane_index < last_group_lanes, groups, groups - 1)
        placed = np.zeros(lanes, dtype=np.int64)
        for cell in cells[np.lexsort((cells, -degree[cells]))]:
            columns = problem.indices[problem.indptr[cell]:problem.indptr[cell + 1]]
            here = load[columns]
            added_rows = (here >= rows[columns, None]).sum(axis=0)
            key = (added_rows.astype(np.int64) * tie_weight + here.sum(axis=0)) * lanes + lane_index
            lane = int(np.argmin(np.where(placed < room, key, np.iinfo(np.int64).max)))
            rank[cell] = placed[lane] * lanes + lane
            placed[lane] += 1
            load[columns, lane] += 1
            rows[columns] = np.maximum(rows[columns], load[columns, lane])
    return rank


def bank_rows(problem, lane):
    """Per column of Q, the most nonzeros it has on one lane (`lane`: each cell's lane): the
    rows of the lane banks that the throughput core stores and applies for that column."""
    counts = np.zeros((problem.n, int(lane.max()) + 1 if problem.n else 1), dtype=np.int32)
    columns = np.repeat(np.arange(problem.n), np.diff(problem.indptr))
    np.add.at(counts, (columns, lane[problem.indices]), 1)
    return counts.max(axis=1)


def _lanes_of(sequence, colour, lanes):
    """Each cell's lane when the cells of every class are taken in `sequence`'s order."""
    sorted_colour = colour[sequence]
    rank = np.arange(len(sequence)) - np.searchsorted(sorted_colour, sorted_colour, side="left")
    lane = np.empty(len(sequence), dtype=np.int64)
    lane[sequence] = rank % lanes
    return lane


def update_order(n, lanes, kind, problem=None):
    if kind in ("colour", "banked") and problem is not None:
        colour = greedy_colouring(problem)
    else:
        colour = np.zeros(n, dtype=np.int64)
    sequence = np.lexsort((np.arange(n), colour))
    if kind == "banked" and problem is not None and lanes > 1:
        balanced = np.lexsort((lane_balanced_ranks(problem, colour, lanes), colour))
        if bank_rows(problem, _lanes_of(balanced, colour, lanes)).sum() < \
                bank_rows(problem, _lanes_of(sequence, colour, lanes)).sum():
            sequence = balanced                          # (a torus is balanced in index order)
    sorted_colour = colour[sequence]
    class_start = np.searchsorted(sorted_colour, sorted_colour, side="left")
    rank = np.arange(n) - class_start                   # position inside the colour class
    class_groups = -(-np.bincount(sorted_colour) // lanes)
    first_group = np.concatenate(([0], np.cumsum(class_groups)))[sorted_colour]
    group = first_group + rank // lanes
    slot = group * lanes + rank % lanes
    order = UpdateOrder(sequence=sequence, slot=slot, group=group,
                        groups=int(class_groups.sum()), colours=int(colour.max()) + 1,
                        coupled_pairs=0)
    if problem is not None:
        object.__setattr__(order, "coupled_pairs", _coupled_pairs(order, problem))
    return order


def _coupled_pairs(order, problem):
    group_of_cell = np.empty(problem.n, dtype=np.int64)
    group_of_cell[order.sequence] = order.group
    rows = np.repeat(np.arange(problem.n), np.diff(problem.indptr))
    cols = problem.indices
    same = (rows < cols) & (group_of_cell[rows] == group_of_cell[cols])
    return int(np.count_nonzero(same))
