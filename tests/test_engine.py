"""The compiled golden model against the cycle-by-cycle reference, and its identities."""

import numpy as np
import pytest
from conftest import random_problem
from limemu.model import ConfigError, IdentityError, QuadraticProblem, Schedule, Spec
from limemu.model import engine as engine_module
from limemu.model.counters import CellCounters, Counters
from limemu.model.engine import LimArray
from limemu.model.reference import reference_details, reference_external_run

SCHEDULES = {
    "constant": (Schedule.constant(3 << 8), Schedule.constant(40)),
    "linear": (Schedule.linear(1 << 8, 3 << 16), Schedule.linear(10, 2**15)),
    "logarithmic": (Schedule.logarithmic(2 << 8, 1 << 8, 5), Schedule.logarithmic(8, 32, 3)),
    "exponential": (Schedule.exponential(1 << 8, 2**13), Schedule.exponential(8, 2**12)),
    "table": (Schedule.table([(k % 7) << 8 for k in range(256)]),
              Schedule.table([4 + k % 50 for k in range(256)])),
}


def assert_matches_reference(spec, problem, steps, split=(), snapshot_every=0):
    """Runs the engine (in the parts `split`, then the rest) and the reference; compares
    weights, every counter, the field, per-cell moves, coupling error and snapshots."""
    array = LimArray(spec, problem)
    w0 = array.W.copy()
    parts = [s for s in split if s] + [steps - sum(split)]
    snapshots = [array.run(part, snapshot_every=snapshot_every) for part in parts]
    ref = reference_details(spec, problem, array.order, w0, steps)
    bad_w = np.flatnonzero(ref.weights != array.W)
    assert bad_w.size == 0, (f"weights[{bad_w[0]}]: model {array.W[bad_w[0]]}, reference "
                             f"{ref.weights[bad_w[0]]} [{spec!r}]")
    for name, value in ref.counts.items():
        assert array.counters.exact[name] == value, (f"counter {name}: model "
                                                     f"{array.counters.exact[name]}, reference "
                                                     f"{value} [{spec!r}]")
    assert np.array_equal(ref.field, array.g), spec
    assert np.array_equal(ref.cell_up, array.cell_up), spec
    assert np.array_equal(ref.cell_down, array.cell_down), spec
    assert array.coupling_error == ref.coupling_error, spec
    if snapshot_every and len(parts) == 1:
        assert np.array_equal(snapshots[0], ref.snapshots[snapshot_every - 1::snapshot_every])
    return array


@pytest.mark.parametrize("lanes", [1, 3, 4, 8])
@pytest.mark.parametrize("bits", [1, 3, 8, 16])
@pytest.mark.parametrize("storage", ["dense", "sparse"])
@pytest.mark.parametrize("order", ["natural", "colour", "banked"])
def test_model_matches_reference(lanes, bits, storage, order, rng):
    problem = random_problem(rng, 11, density=0.4)
    spec = Spec(cells=11, lanes=lanes, weight_bits=bits, q_storage=storage, order=order,
                seed=int(rng.integers(2**32)), barrier=SCHEDULES["linear"][0],
                gain=SCHEDULES["linear"][1])
    assert_matches_reference(spec, problem, 40, snapshot_every=3)


@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_model_matches_reference_for_each_schedule_kind(kind, rng):
    barrier, gain = SCHEDULES[kind]
    problem = random_problem(rng, 7)
    spec = Spec(cells=7, lanes=2, weight_bits=4, barrier=barrier, gain=gain, seed=3)
    assert_matches_reference(spec, problem, 300)


def random_spec(rng, n, **fixed):
    fields = dict(cells=n, lanes=int(rng.integers(1, n + 1)),
                  weight_bits=int(rng.choice([1, 2, 4, 5, 16])),
                  q_storage=str(rng.choice(["dense", "sparse"])),
                  order=str(rng.choice(["natural", "colour", "banked"])),
                  seed=int(rng.integers(2**63)),
                  barrier=Schedule.linear(int(rng.integers(0, 1200)),
                                          int(rng.integers(-2**18, 2**18))),
                  gain=Schedule.linear(int(rng.integers(0, 200)),
                                       int(rng.integers(-2**16, 2**16))))
    return Spec(**{**fields, **fixed})


def test_model_matches_reference_on_random_configurations(rng):
    for _ in range(60):
        n = int(rng.integers(1, 25))
        problem = random_problem(rng, n, density=float(rng.random()),
                                 diagonal=bool(rng.random() < 0.7))
        steps = int(rng.integers(1, 80))
        split = tuple(int(x) for x in rng.integers(0, steps + 1, int(rng.integers(0, 3))))
        if sum(split) > steps:
            split = ()
        assert_matches_reference(random_spec(rng, n), problem, steps, split=split,
                                 snapshot_every=int(rng.integers(0, 4)))


def test_model_matches_reference_at_high_move_rates(rng):
    # low barriers and large tilts: most evaluations move, many are inadmissible
    for bits, order in ((1, "colour"), (3, "natural"), (8, "natural")):
        problem = random_problem(rng, 10, density=1.0)
        spec = Spec(cells=10, lanes=3, weight_bits=bits, order=order, q_storage="sparse",
                    seed=int(rng.integers(2**32)), barrier=Schedule.constant(1 << 6),
                    gain=Schedule.linear(4, 2**12))
        array = assert_matches_reference(spec, problem, 400)
        c = array.counters.exact
        assert c["up_moves"] + c["down_moves"] > c["evaluations"] // 10
        assert c["inadmissible"] > 0


def test_heat_beyond_int64_is_exact(rng):
    # half tilts of ~2**58 LSBs (the widest the spec allows: 62-bit tilts) and all cells in one
    # group, which flips back and forth: a few hundred moves sum past 2**63 (the wide sums)
    n = 6
    upper = np.triu(rng.integers(2**29, 2**30, (n, n)), 1)
    problem = QuadraticProblem.dense(upper + upper.T, np.zeros(n, np.int64))
    spec = Spec(cells=n, lanes=n, weight_bits=1, q_bits=32, gain_bits=24, field_bits=35,
                order="natural", seed=5, barrier=Schedule.constant(0),
                gain=Schedule.constant(2**23))
    array = assert_matches_reference(spec, problem, 60)
    assert array.counters.exact["heat_abs"] > 2**63


def test_annealing_work_beyond_int64_is_exact():
    # a ferromagnet of 16 cells with |L2| ~ 2**41 and a gain rising over its whole 24-bit range:
    # the annealing work passes 2**63, and the step closing runs in Python integers
    n = 16
    problem = QuadraticProblem.dense(np.full((n, n), -2**26), np.zeros(n, np.int64))
    spec = Spec(cells=n, lanes=1, weight_bits=4, q_bits=32, gain_bits=24, field_bits=35,
                init="low", seed=9, barrier=Schedule.constant(3 << 8),
                gain=Schedule.linear(0, 2**35))
    array = assert_matches_reference(spec, problem, 40)
    assert abs(array.counters.exact["anneal_work"]) > 2**63


def test_both_step_closings_give_the_same_work(rng, monkeypatch):
    problem = random_problem(rng, 12, density=0.6, magnitude=9)
    spec = Spec(cells=12, lanes=5, weight_bits=3, order="natural", seed=4,
                barrier=SCHEDULES["exponential"][0], gain=SCHEDULES["table"][1])
    compiled = LimArray(spec, problem)
    compiled.run(500)
    monkeypatch.setattr(engine_module, "INT64_SAFE", 0)       # every chunk in Python
    exact = LimArray(spec, problem)
    exact.run(500)
    assert compiled.counters.exact == exact.counters.exact
    assert (compiled.anneal_true, compiled.coupling_error) == (exact.anneal_true,
                                                               exact.coupling_error)
    assert compiled.coupling_error != 0


def test_runs_in_chunks_equal_one_run(rng, monkeypatch):
    problem = random_problem(rng, 9)
    spec = Spec(cells=9, lanes=2, barrier=SCHEDULES["exponential"][0],
                gain=SCHEDULES["linear"][1])
    whole = LimArray(spec, problem)
    snaps = whole.run(500, snapshot_every=7)
    monkeypatch.setattr(engine_module, "CHUNK_POSITIONS", 5 * 9)    # 5 steps per chunk
    chunked = LimArray(spec, problem)
    assert np.array_equal(snaps, chunked.run(500, snapshot_every=7))
    assert np.array_equal(whole.W, chunked.W)
    assert whole.counters.exact == chunked.counters.exact


def test_steps_split_over_several_runs_give_the_same_result(rng):
    problem = random_problem(rng, 9)
    spec = Spec(cells=9, lanes=2, barrier=SCHEDULES["exponential"][0],
                gain=SCHEDULES["linear"][1])
    whole = LimArray(spec, problem)
    whole.run(500)
    parts = LimArray(spec, problem)
    for steps in (1, 2, 97, 0, 400):
        parts.run(steps)
    assert np.array_equal(whole.W, parts.W)
    assert whole.counters.exact == parts.counters.exact
    assert whole.coupling_error == parts.coupling_error


@pytest.mark.parametrize("lanes", [1, 2, 5])
def test_external_tilts_match_reference(lanes, rng):
    for bits in (1, 4):
        spec = Spec(cells=7, lanes=lanes, weight_bits=bits, tilt="external",
                    seed=int(rng.integers(2**32)), barrier=SCHEDULES["linear"][0])
        target = rng.integers(spec.w_lo, spec.w_hi + 1, 7)

        def half_tilt(step, w):
            return np.clip(target - w, -3, 3) * (200 + 40 * (step % 3))

        array = LimArray(spec)
        w0 = array.W.copy()
        array.run_external(60, half_tilt)
        weights, counts, up, down = reference_external_run(spec, array.order, w0, 60,
                                                           half_tilt)
        assert np.array_equal(weights, array.W)
        assert counts == array.counters.exact
        assert np.array_equal(up, array.cell_up) and np.array_equal(down, array.cell_down)


def test_external_tilt_drives_cells_downhill_and_counts_heat():
    spec = Spec(cells=6, lanes=2, weight_bits=4, tilt="external", init="zero",
                barrier=Schedule.constant(3 << 8))
    array = LimArray(spec)
    target = np.array([5, -5, 3, -3, 7, -8])
    # half tilt towards the target, 1 u per unit of distance, capped at 3 u
    array.run_external(3000, lambda step, w: np.clip(target - w, -3, 3) << 8)
    assert np.max(np.abs(array.W - target)) <= 1
    c = array.counters.exact
    assert c["heat_net"] > 0 and c["heat_abs"] >= c["heat_net"]
    assert c["evaluations"] == 3000 * 6


def test_external_tilt_errors():
    array = LimArray(Spec(cells=3, tilt="external"))
    with pytest.raises(ConfigError, match="half_tilt"):
        array.run_external(1, lambda step, w: np.zeros(4, dtype=np.int64))
    with pytest.raises(ConfigError, match="half_tilt"):
        array.run_external(1, lambda step, w: np.zeros(3))
    with pytest.raises(ConfigError, match="tilt"):
        array.run(1)


@pytest.mark.parametrize("seed", range(6))
def test_first_law_is_exact_with_annealing_schedules(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 60))
    problem = random_problem(rng, n, density=0.3, magnitude=9)
    spec = Spec(cells=n, lanes=int(rng.integers(1, 6)), weight_bits=int(rng.choice([1, 4, 8])),
                order=str(rng.choice(["natural", "colour", "banked"])), seed=seed,
                barrier=Schedule.exponential(256, 2**12), gain=Schedule.logarithmic(16, 64, 20))
    array = LimArray(spec, problem)
    eta0 = int(spec.gain.values_at([0])[0])
    l0 = problem.loss2(array.W)
    array.run(2000)
    c = array.counters.exact
    eta_k = int(spec.gain.values_at([array.step])[0])
    # recomputed here from the definitions: eta*L in LSBs = eta_raw * L2 << (tilt_shift + 1)
    first_law = ((eta0 * l0 - eta_k * problem.loss2(array.W)) << (spec.tilt_shift + 1)) \
        + array.anneal_true + array.coupling_error
    assert c["heat_net"] == first_law
    assert c["heat_abs"] >= abs(c["heat_net"])
    assert c["up_moves"] + c["down_moves"] > 0


def test_constant_gain_heat_is_the_loss_drop(rng):
    problem = random_problem(rng, 20, density=0.3)
    spec = Spec(cells=20, lanes=1, gain=Schedule.constant(80), barrier=Schedule.constant(900))
    array = LimArray(spec, problem)
    l0 = problem.loss2(array.W)
    array.run(3000)
    assert array.counters.exact["anneal_work"] == 0
    assert array.counters.exact["heat_net"] == (80 * (l0 - problem.loss2(array.W))) << (
        spec.tilt_shift + 1)


def test_colour_order_has_no_coupling_error_and_natural_order_reports_it():
    rng = np.random.default_rng(4)
    problem = random_problem(rng, 16, density=0.8)
    base = dict(cells=16, lanes=8, weight_bits=4, barrier=Schedule.constant(0),
                gain=Schedule.constant(20))
    natural = LimArray(Spec(order="natural", **base), problem)
    natural.run(200)
    assert natural.order.coupled_pairs > 0
    assert natural.coupling_error != 0                 # moves of coupled cells in one group
    coloured = LimArray(Spec(order="colour", **base), problem)
    coloured.run(200)
    assert coloured.order.coupled_pairs == 0
    assert coloured.coupling_error == 0


def test_barrier_work_counts_every_rise_on_every_cell(rng):
    problem = random_problem(rng, 5)
    table = [(k % 4) << 6 for k in range(256)]            # rises by 1/4 u three times in four
    spec = Spec(cells=5, barrier=Schedule.table(table), gain=Schedule.constant(8))
    array = LimArray(spec, problem)
    array.run(256)
    rises = sum(max(0, table[k + 1] - table[k]) for k in range(255))  # step 255 -> 256: none
    assert array.counters.exact["barrier_work"] == 5 * rises


def test_snapshots_record_weights_after_each_step(rng):
    problem = random_problem(rng, 4)
    spec = Spec(cells=4, lanes=1, barrier=Schedule.constant(256), gain=Schedule.constant(16))
    array = LimArray(spec, problem)
    snaps = array.run(50, snapshot_every=5)
    assert snaps.shape == (10, 4)
    again = LimArray(spec, problem)
    for k in range(10):
        again.run(5)
        assert np.array_equal(snaps[k], again.W)


def test_cell_counters_equal_the_moves_seen_in_snapshots(rng):
    problem = random_problem(rng, 10, density=0.5)
    spec = Spec(cells=10, lanes=3, weight_bits=2, barrier=Schedule.constant(1 << 8),
                gain=Schedule.constant(20), seed=6)
    array = LimArray(spec, problem)
    seen = CellCounters(spec)
    seen.add_steps(array.W.copy(), array.run(300, snapshot_every=1))
    assert np.array_equal(seen.up, array.cell_up) and np.array_equal(seen.down, array.cell_down)
    c = array.counters.exact
    assert (array.cell_up.sum(), array.cell_down.sum()) == (c["up_moves"], c["down_moves"])


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(cells=5), "cells = 5"),
    (dict(cells=4, weights=[0, 0, 0, 99]), "weights[3] = 99"),
    (dict(cells=4, weights=[0, 0]), "weights"),
    (dict(cells=4, weight_bits=1, weights=[1, 1, 0, 1]), "weights[2] = 0"),
    (dict(cells=4, field_bits=8, scale=1000), "field_bits = 8"),
    (dict(cells=4, q_bits=4, scale=9), "q_bits = 4"),
])
def test_bad_arrays_are_rejected(kwargs, fragment):
    kwargs = dict(kwargs)
    scale = kwargs.pop("scale", 1)
    weights = kwargs.pop("weights", None)
    problem = QuadraticProblem.dense(np.eye(4, dtype=np.int64) * scale, [1, 2, 3, 4])
    with pytest.raises(ConfigError) as info:
        LimArray(Spec(**kwargs), problem, weights=weights)
    assert fragment in str(info.value)


def test_bad_run_arguments_are_rejected(rng):
    array = LimArray(Spec(cells=4), random_problem(rng, 4))
    with pytest.raises(ConfigError, match="steps"):
        array.run(-1)
    with pytest.raises(ConfigError, match="snapshot_every"):
        array.run(3, snapshot_every=-2)


def test_problem_errors_name_the_entry():
    with pytest.raises(ConfigError, match=r"Q\[0, 1\] = 2 but Q\[1, 0\] = 3"):
        QuadraticProblem.dense([[1, 2], [3, 1]], [0, 0])
    with pytest.raises(ConfigError, match="integers"):
        QuadraticProblem.dense([[1.5, 0], [0, 1]], [0, 0])
    with pytest.raises(ConfigError, match="b"):
        QuadraticProblem.dense([[1, 0], [0, 1]], [0, 0, 0])


def test_identity_violation_is_loud(rng):
    problem = random_problem(rng, 6)
    array = LimArray(Spec(cells=6, gain=Schedule.constant(30), barrier=Schedule.constant(200)),
                     problem)
    array.run(100)
    array.counters.add("heat_net", 1)                 # a corrupted counter
    with pytest.raises(IdentityError, match="first law"):
        array.check_identities()


def test_counters_wrap_with_a_sticky_overflow_flag():
    counters = Counters(Spec())
    width = dict((n, w) for n, w, _ in counters.layout)["up_moves"]
    counters.add("up_moves", 2**width + 5)
    counters.check_overflow()
    assert counters.hardware()["up_moves"] == 5
    assert counters.overflow["up_moves"]
    counters.add("heat_net", -(2 ** (dict((n, w) for n, w, _ in counters.layout)["heat_net"])))
    counters.check_overflow()
    assert counters.overflow["heat_net"] and counters.hardware()["heat_net"] == 0


def test_counters_do_not_wrap_in_a_day():
    # 10**10 evaluations/s for a day, each moving with the largest tilt
    spec = Spec()
    layout = {n: w for n, w, _ in Counters(spec).layout}
    events = 10**10 * 86400
    assert events < 2 ** layout["up_moves"] and events < 2 ** layout["evaluations"]
    assert events * 2 ** (spec.tilt_bits + 1) < 2 ** (layout["heat_abs"])


@pytest.mark.slow
def test_a_million_cell_sparse_array_runs():
    # memory O(cells + nonzeros): a ring of 10**6 coupled spins, natural order, 8 lanes
    n = 10**6
    i = np.arange(n)
    problem = QuadraticProblem.sparse(n, i, (i + 1) % n, np.ones(n, np.int64))
    spec = Spec(cells=n, lanes=8, weight_bits=1, q_storage="sparse", seed=2,
                barrier=Schedule.constant(2 << 8), gain=Schedule.exponential(16, 2**13))
    array = LimArray(spec, problem)
    array.run(6)                                      # checks the identities
    c = array.counters.exact
    assert c["evaluations"] == 6 * n and c["up_moves"] + c["down_moves"] > n // 10
