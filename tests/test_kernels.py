"""The compiled pieces of the engine against their definitions (crossing.py, the Python step
closing); the engine as a whole is compared with the reference in test_engine.py."""

import numpy as np
import pytest
from conftest import random_problem
from test_engine import assert_matches_reference, random_spec
from limemu.model import Schedule, Spec, kernels
from limemu.model import engine as engine_module
from limemu.model.crossing import ONE, decide_one, threshold_table
from limemu.model.engine import LimArray

F, M = Spec().barrier_frac_bits, Spec().mantissa_bits


def random_barriers(rng, n):
    """Draws and barrier pairs over the whole range: negative (inadmissible), small, large,
    beyond 34 u, and pairs of a cell (E0 +- h)."""
    u = rng.integers(0, 2**32, n, dtype=np.int64)
    b_up = rng.integers(-(4 << F), 40 << F, n)
    b_down = np.where(rng.random(n) < 0.5, rng.integers(-(4 << F), 40 << F, n),
                      (2 << F) - b_up)
    return u, b_up, b_down


def test_compiled_decisions_equal_the_scalar_definition(rng):
    table = threshold_table(F, M)
    u, b_up, b_down = random_barriers(rng, 20_000)
    seen = set()
    for k in range(len(u)):
        direction, inadmissible = kernels.decide(int(u[k]), int(b_up[k]), int(b_down[k]),
                                                 table)
        outcome, inad = decide_one(int(u[k]), int(b_up[k]), int(b_down[k]), F, M)
        assert ({1: "up", -1: "down", 0: "stay"}[direction], bool(inadmissible)) == (
            outcome, inad), k
        seen.add((outcome, inad))
    assert seen == {("up", False), ("down", False), ("stay", False), ("up", True),
                    ("down", True)}


def test_decision_thresholds_bound_every_outcome(rng):
    # up iff u < A, down iff A <= u < B: A <= B <= 2**32, and B = 2**32 when inadmissible
    table = threshold_table(F, M)
    _, b_up, b_down = random_barriers(rng, 5_000)
    for x, y in zip(b_up.tolist(), b_down.tolist()):
        a, b, inadmissible = kernels.decision(x, y, table)
        assert 0 <= a <= b <= ONE
        assert b == ONE if inadmissible else True


def test_the_stay_filter_only_skips_admissible_stays(rng):
    # u >> 1 >= T(lowest barrier) is a stay, never an inadmissible step (kernels module doc)
    table = threshold_table(F, M)
    u, b_up, b_down = random_barriers(rng, 20_000)
    skipped = 0
    for k in range(len(u)):
        low = min(int(b_up[k]), int(b_down[k]))
        if (int(u[k]) >> 1) >= kernels._threshold(table, low):
            skipped += 1
            assert decide_one(int(u[k]), int(b_up[k]), int(b_down[k]), F, M) == ("stay", False)
    assert skipped > 1000


@pytest.mark.parametrize("bits,lanes,order", [(1, 4, "colour"), (3, 1, "natural"),
                                              (8, 5, "natural")])
def test_decision_tables_and_the_direct_rule_give_the_same_run(bits, lanes, order, rng,
                                                               monkeypatch):
    problem = random_problem(rng, 14, density=0.5)
    spec = Spec(cells=14, lanes=lanes, weight_bits=bits, order=order, seed=7,
                barrier=Schedule.linear(1 << 8, 2**20), gain=Schedule.exponential(8, 2**12))
    runs = []
    for rows in (10**9, -1):                   # every problem tabulated, then none
        monkeypatch.setattr(engine_module, "DECISION_ROWS", rows)
        array = LimArray(spec, problem)
        assert (array._tables[1].shape[0] > 0) == (rows > 0)
        array.run(300)
        runs.append((array.W.copy(), dict(array.counters.exact)))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]


@pytest.mark.parametrize("scan_below", [0, 1, 8])
def test_both_step_loops_match_reference(scan_below, rng, monkeypatch):
    # 0: every step takes each slot in turn; 1: nearly every step scans past the stays
    monkeypatch.setattr(engine_module, "SCAN_BELOW", scan_below)
    for _ in range(12):
        n = int(rng.integers(2, 20))
        problem = random_problem(rng, n, density=float(rng.random()))
        assert_matches_reference(random_spec(rng, n), problem, int(rng.integers(1, 60)))


def test_compiled_step_closing_equals_python_integers(rng):
    for _ in range(50):
        steps = int(rng.integers(1, 40))
        eta = rng.integers(0, 2**16, steps + 1)
        dl2 = rng.integers(-2**20, 2**20, steps) * (rng.random(steps) < 0.5)
        cross = rng.integers(-2**10, 2**10, steps) * (rng.random(steps) < 0.3)
        losses = np.array([int(rng.integers(-2**30, 2**30))] * 2, dtype=np.int64)
        track = true = int(losses[0])
        anneal = anneal_true = coupling = 0
        for k in range(steps):
            track += int(dl2[k])
            true += int(dl2[k]) + int(cross[k])
            anneal += int(eta[k + 1] - eta[k]) * track
            anneal_true += int(eta[k + 1] - eta[k]) * true
            coupling += int(eta[k]) * int(cross[k])
        got = kernels.close_steps(eta, dl2, cross, losses)
        assert tuple(int(x) for x in got) == (anneal, anneal_true, coupling)
        assert (int(losses[0]), int(losses[1])) == (track, true)


def test_wide_sums_carry_exactly(rng):
    counts = np.zeros(kernels.COUNT_SLOTS, dtype=np.int64)
    values = rng.integers(-2**60, 2**60, 5000)
    values[::7] = 2**61 - 1                      # long runs of one sign
    for v in values.tolist():
        kernels._add_wide(counts, kernels.HEAT_HI, v)
    total = (int(counts[kernels.HEAT_HI]) << kernels.WIDE_UNIT_BITS) + int(
        counts[kernels.HEAT_LO])
    assert total == sum(values.tolist()) and abs(total) > 2**63


@pytest.mark.parametrize("order,lanes", [("colour", 4), ("natural", 3), ("natural", 1)])
def test_segments_are_runs_of_whole_groups_without_couplings(order, lanes, rng):
    # a segment's moves may wait for its end only if no cell of it sees another's move
    for _ in range(10):
        n = int(rng.integers(lanes, 40))
        problem = random_problem(rng, n, density=float(rng.random()) * 0.4)
        array = LimArray(Spec(cells=n, lanes=lanes, order=order), problem)
        starts = array._order[8]
        group = array.order.group
        Q = problem.to_dense()
        np.fill_diagonal(Q, 0)
        assert starts[0] == 0 and starts[-1] == n and np.all(np.diff(starts) > 0)
        for a, b in zip(starts[:-1], starts[1:]):
            assert a == 0 or group[a] != group[a - 1]           # whole groups
            cells, groups = array.order.sequence[a:b], group[a:b]
            coupled = Q[np.ix_(cells, cells)] != 0
            assert not np.any(coupled & (groups[:, None] != groups[None, :]))
            if b < n:                                           # and as long as they can be
                nxt = array.order.sequence[(group == group[b])]
                assert np.any(Q[np.ix_(cells, nxt)] != 0)
        if order == "colour":
            assert len(starts) - 1 == array.order.colours


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_every_loop_counts_cells_at_the_ladder_ends_under_inadmissible_tilts(bits, rng,
                                                                            monkeypatch):
    # cells that start at an end of the ladder under strong fields: their favoured move is
    # drawn with probability near 1 and blocked; the tabulated, straight and scanning loops
    # must count those blocked moves, stays and moves as the reference does
    for scan_below, rows in ((0, 10**9), (0, -1), (1, 10**9), (1, -1), (8, 10**9)):
        monkeypatch.setattr(engine_module, "SCAN_BELOW", scan_below)
        monkeypatch.setattr(engine_module, "DECISION_ROWS", rows)
        for init in ("high", "low"):
            n = int(rng.integers(4, 16))
            problem = random_problem(rng, n, density=0.7, magnitude=6)
            spec = Spec(cells=n, lanes=int(rng.integers(1, 5)), weight_bits=bits, init=init,
                        order=str(rng.choice(["natural", "colour"])), q_storage="sparse",
                        seed=int(rng.integers(2**32)), barrier=Schedule.constant(3 << 7),
                        gain=Schedule.exponential(16, 2**12))
            array = assert_matches_reference(spec, problem, 120)
            c = array.counters.exact
            assert c["blocked_moves"] > c["evaluations"] // 4 and c["inadmissible"] > 0


@pytest.mark.parametrize("storage", ["sparse", "dense"])
def test_kept_intervals_equal_a_recount(storage, rng, monkeypatch):
    # _interval_step keeps each slot's interval (moves on [lo, lo + width), stays from
    # stay_from, inadmissible) up to date as W and g change: equal to one computed afresh
    monkeypatch.setattr(engine_module, "SCAN_BELOW", 1)
    checked = 0
    for _ in range(20):
        n = int(rng.integers(3, 30))
        problem = random_problem(rng, n, density=float(rng.random()) * 0.5, magnitude=4)
        spec = Spec(cells=n, lanes=int(rng.integers(1, 4)), weight_bits=int(rng.integers(1, 4)),
                    q_storage=storage, order=str(rng.choice(["natural", "colour"])),
                    init=str(rng.choice(["high", "low", "random"])),
                    seed=int(rng.integers(2**32)), barrier=Schedule.constant(2 << 8),
                    gain=Schedule.constant(int(rng.integers(8, 400))))
        array = LimArray(spec, problem)
        array.run(int(rng.integers(1, 40)))
        tables = array._tables
        if not tables[5][3]:
            continue                           # the last step was not an interval step
        keys = np.zeros_like(tables[9])
        kernels.set_keys(keys, tables[1].shape[0] - 1, array._order[0], array.W, array.g,
                         tables[3], array._order[2])
        assert np.array_equal(keys, tables[9])
        fresh = np.zeros_like(tables[8])
        kernels._set_intervals(fresh, keys, tables[1])
        assert np.array_equal(fresh, tables[8])
        checked += 1
    assert checked >= 5
