"""Max-Cut as an Ising problem on spins.

Spins s ∈ {-1, +1}^n (weight_bits = 1, δ = 2). With Q the weighted adjacency matrix
(Q_ij = Q_ji = w_ij for each edge, zero diagonal) and b = 0:

    L(s) = 1/2 s^T Q s = Σ_edges w_ij s_i s_j
    cut(s) = Σ_edges w_ij (1 - s_i s_j) / 2 = (W_total - L(s)) / 2

so minimising L maximises the cut. ``evaluate`` recomputes the cut from the spins and the edge
list (never from the loss); the tests check the identity above.
"""

import os
import re

import numpy as np

from limemu.model.errors import require
from limemu.model.problem import QuadraticProblem
from limemu.model.spec import MAX_CELLS

from .base import Workload, check_weights, int_option
from .gset import WEIGHT_KINDS, Graph, parse_gset, random_graph

DEFAULT_CELLS = 64
DEFAULT_DEGREE = 6.0
EXHAUSTIVE_MAX_N = 20          # exhaustive_maxcut limit (2^19 assignments after symmetry)
REFERENCE_EXACT_MAX_N = 16     # maxcut_workload solves graphs this small exactly for reference

# Best known cuts of the G-set graphs, as collected in microsoft/AOCoptimizer.jl
# (data/GSet/reference.csv: Breakout Local Search, Benlic & Hao 2013, and later improvements),
# keyed by name with the graph's (n, m) so that a file merely named like a G-set graph does not
# pick up a wrong value. G-set graphs not listed here report best_known = None.
GSET_BEST_KNOWN = {
    "G1": (800, 19176, 11624), "G2": (800, 19176, 11620), "G3": (800, 19176, 11622),
    "G4": (800, 19176, 11646), "G5": (800, 19176, 11631), "G6": (800, 19176, 2178),
    "G7": (800, 19176, 2006), "G8": (800, 19176, 2005), "G9": (800, 19176, 2054),
    "G10": (800, 19176, 2000), "G11": (800, 1600, 564), "G12": (800, 1600, 556),
    "G13": (800, 1600, 582), "G14": (800, 4694, 3064), "G15": (800, 4661, 3050),
    "G16": (800, 4672, 3052), "G17": (800, 4667, 3047), "G18": (800, 4694, 992),
    "G19": (800, 4661, 906), "G20": (800, 4672, 941), "G21": (800, 4667, 931),
    "G22": (2000, 19990, 13359), "G23": (2000, 19990, 13344), "G24": (2000, 19990, 13337),
    "G25": (2000, 19990, 13349), "G26": (2000, 19990, 13328), "G27": (2000, 19990, 3341),
    "G28": (2000, 19990, 3298), "G29": (2000, 19990, 3405), "G30": (2000, 19990, 3413),
    "G31": (2000, 19990, 3310), "G32": (2000, 4000, 1410), "G33": (2000, 4000, 1382),
    "G34": (2000, 4000, 1384), "G35": (2000, 11778, 7687), "G36": (2000, 11766, 7680),
    "G37": (2000, 11785, 7691), "G38": (2000, 11779, 7688), "G39": (2000, 11778, 2408),
    "G40": (2000, 11766, 2400), "G41": (2000, 11785, 2405), "G42": (2000, 11779, 2481),
    "G43": (1000, 9990, 6660), "G44": (1000, 9990, 6650), "G45": (1000, 9990, 6654),
    "G46": (1000, 9990, 6649), "G47": (1000, 9990, 6657), "G48": (3000, 6000, 6000),
    "G49": (3000, 6000, 6000), "G50": (3000, 6000, 5880), "G51": (1000, 5909, 3848),
    "G52": (1000, 5916, 3851), "G53": (1000, 5914, 3850), "G54": (1000, 5916, 3852),
    "G55": (5000, 12498, 10299), "G56": (5000, 12498, 4017), "G57": (5000, 10000, 3494),
    "G58": (5000, 29570, 19293), "G59": (5000, 29570, 6086), "G60": (7000, 17148, 14188),
    "G61": (7000, 17148, 5796), "G62": (7000, 14000, 4870), "G63": (7000, 41459, 27045),
    "G64": (7000, 41459, 8751), "G65": (8000, 16000, 5562), "G66": (9000, 18000, 6364),
    "G67": (10000, 20000, 6950), "G70": (10000, 9999, 9591), "G72": (10000, 20000, 7006),
}


def gset_best_known(graph):
    """The best known cut of a G-set graph recognised by name (``G14``, ``g14.txt``...) and
    size, else None."""
    match = re.fullmatch(r"[gG](\d+)", graph.name.strip())
    if not match:
        return None
    entry = GSET_BEST_KNOWN.get(f"G{int(match.group(1))}")
    if entry is None or entry[:2] != (graph.n, graph.m):
        return None
    return entry[2]


def maxcut_problem(graph):
    """The Ising QuadraticProblem of ``graph``: Q = weighted adjacency (zero diagonal), b = 0."""
    require(isinstance(graph, Graph), "graph", type(graph).__name__, "must be a Graph")
    return QuadraticProblem.sparse(graph.n, graph.i, graph.j, graph.w, name=f"maxcut:{graph.name}")


def cut_value(graph, spins):
    """Σ over edges with s_i != s_j of w_ij, from the edge list (an exact Python int)."""
    s = np.asarray(spins, dtype=np.int64)
    return int(np.sum(graph.w[s[graph.i] != s[graph.j]]))


def exhaustive_maxcut(graph):
    """The maximum cut by trying every assignment (n <= 20), vectorised with numpy.

    Spin n-1 is fixed to +1 (flipping all spins keeps the cut), so 2^(n-1) assignments are
    scored, in blocks, from the edge list. Returns ``(best_cut, spins)`` with ``spins`` one
    optimal assignment (the first in binary order) as an int64 vector of ±1.
    """
    require(isinstance(graph, Graph), "graph", type(graph).__name__, "must be a Graph")
    require(graph.n <= EXHAUSTIVE_MAX_N, "n", graph.n,
            f"exhaustive_maxcut enumerates 2^(n-1) assignments: n must be <= {EXHAUSTIVE_MAX_N}")
    n = graph.n
    total = 1 << (n - 1)
    block = 1 << 14
    shifts = np.arange(n, dtype=np.int64)
    best_cut, best_code = None, 0
    for start in range(0, total, block):
        codes = np.arange(start, min(start + block, total), dtype=np.int64)
        bits = (codes[:, None] >> shifts[None, :]) & 1          # bit n-1 is always 0 -> s = +1
        if graph.m:
            cuts = (bits[:, graph.i] != bits[:, graph.j]).astype(np.int64) @ graph.w
        else:
            cuts = np.zeros(len(codes), np.int64)
        k = int(np.argmax(cuts))
        if best_cut is None or cuts[k] > best_cut:
            best_cut, best_code = int(cuts[k]), int(codes[k])
    spins = 1 - 2 * ((best_code >> np.arange(n, dtype=np.int64)) & 1)
    return best_cut, spins.astype(np.int64)


def maxcut_workload(graph=None, path=None, cells=None, seed=1, degree=DEFAULT_DEGREE,
                    weights="unit", best_known=None, bits=1):
    """Max-Cut workload.

    * ``graph``: a :class:`Graph`; or ``path``: a G-set file; else a seeded random G(n, m)
      graph with ``n = cells`` (default 64) nodes and ``m = round(degree * n / 2)`` edges
      (mean degree ``degree``, default 6; capped at the complete graph), weights ``"unit"`` or
      ``"pm1"``.
    * ``cells``, if given with a graph or file, must equal its node count.
    * ``best_known``: the best known cut (for reports); by default looked up for G-set graphs.
    * ``bits``: accepted for a uniform interface; must be 1 (Max-Cut runs on spins).
    """
    require(bits == 1 and not isinstance(bits, bool), "bits", bits,
            "Max-Cut runs on spins: weight bits must be 1")
    require(graph is None or path is None, "graph, path", (graph, path),
            "give at most one of graph and path")
    source = None
    if path is not None:
        require(isinstance(path, (str, os.PathLike)), "path", path, "must be a file path")
        graph = parse_gset(path)
        source = os.fspath(path)
    if graph is not None:
        require(isinstance(graph, Graph), "graph", type(graph).__name__, "must be a Graph")
        if cells is not None:
            int_option("cells", cells)
            require(cells == graph.n, "cells", cells,
                    f"must equal the node count of graph {graph.name!r} ({graph.n})")
        require(weights == "unit", "weights", weights,
                "only chooses the weights of a random graph; the given graph has its own")
        generated = None
    else:
        n = int_option("cells", DEFAULT_CELLS if cells is None else cells, 2)
        require(n <= MAX_CELLS, "cells", n, f"must be <= {MAX_CELLS} (MAX_CELLS, the largest "
                "array)")
        require(isinstance(degree, (int, float)) and not isinstance(degree, bool) and
                0 < degree < float("inf"), "degree", degree, "mean degree must be a number > 0 "
                "(it is capped at cells - 1, the complete graph)")
        require(weights in WEIGHT_KINDS, "weights", weights, f"must be one of {WEIGHT_KINDS}")
        m = min(int(round(degree * n / 2)), n * (n - 1) // 2)
        graph = random_graph(n, m=m, weights=weights, seed=seed)
        generated = {"model": "G(n, m)", "n": n, "m": m, "degree": degree, "weights": weights,
                     "seed": int(seed)}

    if best_known is None:
        best_known = gset_best_known(graph)
        best_source = "G-set table (AOCoptimizer.jl reference.csv)" if best_known is not None \
            else None
    else:
        best_known = int_option("best_known", best_known)
        best_source = "given"
    optimum = optimum_spins = None
    if graph.n <= REFERENCE_EXACT_MAX_N:
        optimum, spins = exhaustive_maxcut(graph)
        optimum_spins = spins.tolist()
        if best_known is None:
            best_known, best_source = optimum, "exhaustive search (exact)"

    problem = maxcut_problem(graph)
    total = graph.total_weight

    def evaluate(weights_final):
        s = check_weights(weights_final, graph.n, 1)
        loss2 = problem.loss2(s)
        metrics = {"loss": loss2 / 2, "cut": cut_value(graph, s), "total_weight": total}
        if best_known is not None:
            metrics["best_known"] = best_known
            metrics["cut_ratio"] = metrics["cut"] / best_known if best_known > 0 else None
        if optimum is not None:
            metrics["optimal"] = metrics["cut"] == optimum
        return metrics

    reference = {
        "graph": graph.name, "n": graph.n, "m": graph.m, "total_weight": total,
        "source": source, "generated": generated,
        "best_known": best_known, "best_known_source": best_source,
        "optimum": optimum, "optimum_spins": optimum_spins,
        "loss_at_optimum": None if optimum is None else total - 2 * optimum,
        "identity": "cut = (total_weight - loss) / 2",
    }
    description = (f"Max-Cut on {graph.name} ({graph.n} nodes, {graph.m} edges) as an Ising "
                   "problem: L(s) = sum_edges w s_i s_j, cut = (W_total - L)/2")
    options = {"graph": graph.name, "path": source, "cells": graph.n,
               "seed": seed if generated else None, "degree": degree if generated else None,
               "weights": weights, "best_known": best_known}
    return Workload(name="maxcut", problem=problem, weight_bits=1, q_storage="sparse",
                    description=description, evaluate=evaluate, reference=reference,
                    options=options)
