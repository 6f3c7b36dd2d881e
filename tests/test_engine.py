"""The vectorised golden model against the cycle-by-cycle reference, and its identities."""

import numpy as np
import pytest
from conftest import random_problem
from limemu.model import ConfigError, IdentityError, QuadraticProblem, Schedule, Spec
from limemu.model.counters import Counters
from limemu.model.engine import LimArray
from limemu.model.reference import reference_run

SCHEDULES = {
    "constant": (Schedule.constant(3 << 8), Schedule.constant(40)),
    "linear": (Schedule.linear(1 << 8, 3 << 16), Schedule.linear(10, 2**15)),
    "logarithmic": (Schedule.logarithmic(2 << 8, 1 << 8, 5), Schedule.logarithmic(8, 32, 3)),
    "exponential": (Schedule.exponential(1 << 8, 2**13), Schedule.exponential(8, 2**12)),
    "table": (Schedule.table([(k % 7) << 8 for k in range(256)]),
              Schedule.table([4 + k % 50 for k in range(256)])),
}


def assert_matches_reference(spec, problem, steps):
    array = LimArray(spec, problem)
    w0 = array.W.copy()
    array.run(steps)
    weights, counts, field = reference_run(spec, problem, array.order, w0, steps)
    bad_w = np.flatnonzero(weights != array.W)
    assert bad_w.size == 0, (f"weights[{bad_w[0]}]: model {array.W[bad_w[0]]}, reference "
                             f"{weights[bad_w[0]]} [{spec!r}]")
    for name, value in counts.items():
        assert array.counters.exact[name] == value, (f"counter {name}: model "
                                                     f"{array.counters.exact[name]}, reference "
                                                     f"{value} [{spec!r}]")
    assert np.array_equal(field, array.g)
    return array


@pytest.mark.parametrize("lanes", [1, 3, 4, 8])
@pytest.mark.parametrize("bits", [1, 3, 8])
@pytest.mark.parametrize("storage", ["dense", "sparse"])
@pytest.mark.parametrize("order", ["natural", "colour"])
def test_model_matches_reference(lanes, bits, storage, order, rng):
    problem = random_problem(rng, 11, density=0.4)
    spec = Spec(cells=11, lanes=lanes, weight_bits=bits, q_storage=storage, order=order,
                seed=int(rng.integers(2**32)), barrier=SCHEDULES["linear"][0],
                gain=SCHEDULES["linear"][1])
    assert_matches_reference(spec, problem, 40)


@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_model_matches_reference_for_each_schedule_kind(kind, rng):
    barrier, gain = SCHEDULES[kind]
    problem = random_problem(rng, 7)
    spec = Spec(cells=7, lanes=2, weight_bits=4, barrier=barrier, gain=gain, seed=3)
    assert_matches_reference(spec, problem, 300)


def test_model_matches_reference_on_random_configurations(rng):
    for trial in range(40):
        n = int(rng.integers(1, 25))
        spec = Spec(cells=n, lanes=int(rng.integers(1, n + 1)),
                    weight_bits=int(rng.choice([1, 2, 4, 5])),
                    q_storage=str(rng.choice(["dense", "sparse"])),
                    order=str(rng.choice(["natural", "colour"])),
                    seed=int(rng.integers(2**63)),
                    barrier=Schedule.linear(int(rng.integers(0, 1200)),
                                            int(rng.integers(-2**18, 2**18))),
                    gain=Schedule.linear(int(rng.integers(0, 200)),
                                         int(rng.integers(-2**16, 2**16))))
        problem = random_problem(rng, n, density=float(rng.random()))
        assert_matches_reference(spec, problem, int(rng.integers(1, 80)))


def test_steps_split_over_several_runs_give_the_same_result(rng):
    problem = random_problem(rng, 9)
    spec = Spec(cells=9, lanes=2, barrier=SCHEDULES["exponential"][0],
                gain=SCHEDULES["linear"][1])
    whole = LimArray(spec, problem)
    whole.run(500)
    parts = LimArray(spec, problem)
    for steps in (1, 2, 97, 400):
        parts.run(steps)
    assert np.array_equal(whole.W, parts.W)
    assert whole.counters.exact == parts.counters.exact


@pytest.mark.parametrize("seed", range(6))
def test_first_law_is_exact_with_annealing_schedules(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 60))
    problem = random_problem(rng, n, density=0.3, magnitude=9)
    spec = Spec(cells=n, lanes=int(rng.integers(1, 6)), weight_bits=int(rng.choice([1, 4, 8])),
                order=str(rng.choice(["natural", "colour"])), seed=seed,
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


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(cells=5), "cells = 5"),
    (dict(cells=4, weights=[0, 0, 0, 99]), "weights[3] = 99"),
    (dict(cells=4, weights=[0, 0]), "weights"),
    (dict(cells=4, weight_bits=1, weights=[1, 1, 0, 1]), "weights[2] = 0"),
    (dict(cells=4, field_bits=8, scale=1000), "field_bits = 8"),
])
def test_bad_arrays_are_rejected(kwargs, fragment):
    kwargs = dict(kwargs)
    scale = kwargs.pop("scale", 1)
    weights = kwargs.pop("weights", None)
    problem = QuadraticProblem.dense(np.eye(4, dtype=np.int64) * scale, [1, 2, 3, 4])
    with pytest.raises(ConfigError) as info:
        LimArray(Spec(**kwargs), problem, weights=weights)
    assert fragment in str(info.value)


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


# -- repaired windows (engine._repair_window) ------------------------------------------------------
# Large sparse arrays decide windows of many steps at once and repair the decisions that moves
# invalidate; a sizer picks the kind (repaired or cut) and size of every window by speed. Here
# small arrays use them too, and every window's kind and size is drawn at random: the results
# must not depend on any of it.

@pytest.fixture
def random_windows(monkeypatch):
    from limemu.model import engine
    monkeypatch.setattr(engine, "REPAIR_MIN_CELLS", 1)
    monkeypatch.setattr(engine, "SMALLEST_WINDOW", 1)
    choice = np.random.default_rng(11)

    def record(self, kept, seconds):
        self.previous = self.size
        self.current = int(choice.integers(len(self.sizes)))
        self.size = self.sizes[self.current]

    monkeypatch.setattr(engine._Sizer, "record", record)
    return engine


@pytest.mark.parametrize("rounds", [0, 1, 6])
def test_repaired_windows_match_reference_on_random_configurations(rounds, random_windows,
                                                                   monkeypatch, rng):
    monkeypatch.setattr(random_windows, "REPAIR_ROUNDS", rounds)
    for trial in range(30):
        n = int(rng.integers(1, 30))
        spec = Spec(cells=n, lanes=int(rng.integers(1, n + 1)),
                    weight_bits=int(rng.choice([1, 3, 8])),
                    q_storage=str(rng.choice(["dense", "sparse"])),
                    order=str(rng.choice(["natural", "colour"])),
                    seed=int(rng.integers(2**63)),
                    barrier=Schedule.linear(int(rng.integers(0, 900)),
                                            int(rng.integers(-2**18, 2**17))),
                    gain=Schedule.linear(int(rng.integers(0, 200)),
                                         int(rng.integers(-2**16, 2**16))))
        problem = random_problem(rng, n, density=float(rng.choice([0.1, 0.3, 1.0])),
                                 diagonal=bool(rng.random() < 0.5))
        array = assert_matches_reference(spec, problem, int(rng.integers(1, 60)))
        assert array._repair is not None


def test_repaired_windows_match_reference_at_high_move_rates(random_windows, rng):
    # many moves over many steps: repairs are cut short by the rounds and by the budget
    for bits, order in ((1, "colour"), (3, "natural"), (8, "natural")):
        problem = random_problem(rng, 10, density=1.0)
        spec = Spec(cells=10, lanes=3, weight_bits=bits, order=order, q_storage="sparse",
                    seed=int(rng.integers(2**32)), barrier=Schedule.constant(1 << 6),
                    gain=Schedule.linear(4, 2**12))
        array = assert_matches_reference(spec, problem, 400)
        c = array.counters.exact
        assert c["up_moves"] + c["down_moves"] > c["evaluations"] // 10


def test_repaired_windows_are_the_default_for_large_sparse_arrays(rng):
    n = 160
    i, j = rng.integers(0, n, (2, 3 * n))
    keep = i < j
    i, j = np.unique(np.stack((i[keep], j[keep])), axis=1)
    problem = QuadraticProblem.sparse(n, i, j, rng.choice([-2, -1, 1, 2], len(i)),
                                      rng.integers(-3, 4, n))
    for order, lanes in (("colour", 8), ("natural", 5)):
        spec = Spec(cells=n, lanes=lanes, weight_bits=1, q_storage="sparse", order=order,
                    seed=int(rng.integers(2**32)), barrier=Schedule.linear(3 << 8, -2**14),
                    gain=Schedule.exponential(8, 2**13))
        array = assert_matches_reference(spec, problem, 30)
        assert array._repair is not None


def test_repaired_windows_clip_fields_where_tilts_could_overflow(random_windows, rng):
    # tentative weights off the ladder give fields beyond the bound: clipped when the tilts of
    # such fields could overflow int64 (never for a decision that is kept)
    n = 12
    upper = np.triu(rng.integers(-2**20, 2**20, (n, n)) * (rng.random((n, n)) < 0.3), 1)
    problem = QuadraticProblem.dense(upper + upper.T, rng.integers(-5, 6, n))
    spec = Spec(cells=n, lanes=2, weight_bits=1, q_bits=24, gain_bits=24, field_bits=32,
                q_storage="sparse", seed=5, barrier=Schedule.linear(2 << 8, -2**15),
                gain=Schedule.linear(1, 4))
    array = assert_matches_reference(spec, problem, 80)
    assert array._repair.g_clip is not None


def test_repaired_windows_snapshots_and_split_runs(random_windows, rng):
    problem = random_problem(rng, 9, density=0.5)
    spec = Spec(cells=9, lanes=2, weight_bits=3, order="natural", q_storage="sparse",
                barrier=Schedule.constant(1 << 8), gain=Schedule.constant(30))
    whole = LimArray(spec, problem)
    snaps = whole.run(300, snapshot_every=3)
    parts = LimArray(spec, problem)
    for k in range(100):
        parts.run(3)
        assert np.array_equal(snaps[k], parts.W)
    assert whole.counters.exact == parts.counters.exact
    assert whole.coupling_error == parts.coupling_error


@pytest.mark.parametrize("fastest", [0, 256, 4096, 65536])
def test_window_sizer_settles_on_the_fastest_choice(fastest):
    # only speed depends on the sizer; here windows of `fastest` positions (0: cut windows)
    # keep the most evaluations per second
    from limemu.model.engine import _Sizer
    sizer = _Sizer(256, 65536, 4096)

    def speed(size):
        if not size:
            return 3e7 if fastest == 0 else 5e6
        return 1e7 * 0.8 ** abs(np.log2(size / (fastest or 4096)))

    for _ in range(3000):
        kept = sizer.size or 2000
        sizer.record(kept, kept / speed(sizer.size))
    assert sizer.sizes[sizer.best] == fastest
