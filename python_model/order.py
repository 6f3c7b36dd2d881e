"""Update order: which cell each lane evaluates in each cycle of a step (docs/physics.md §8).

A step is a sequence of groups; a group is what the `lanes` lanes evaluate in one cycle, all
against the same field g. Every lane draws one random number per group, idle or not.

* natural: cells 0..N-1 in order, groups of `lanes` consecutive cells;
* colour: a greedy colouring (largest degree first) of the coupling graph; cells sorted by
  colour, each colour class cut into groups, so every group is an independent set and the
  coupling error is zero.
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


def update_order(n, lanes, kind, problem=None):
    if kind == "colour" and problem is not None:
        colour = greedy_colouring(problem)
    else:
        colour = np.zeros(n, dtype=np.int64)
    sequence = np.lexsort((np.arange(n), colour))
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
