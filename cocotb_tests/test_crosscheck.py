"""The RTL under Verilator against the golden model, bit for bit, at checkpoints.

Each configuration builds the core once (reused while its Verilog is unchanged), loads a
problem, lets the core run its steps on its own and compares every weight, counter, overflow
flag and field entry with python_model at 4 checkpoints. Together the configurations cover
lanes 1, 3, 4, 5, 8; weight bits 1, 4, 8; dense and sparse Q; natural and colour order; every
schedule kind for the barrier and for the gain; external-tilt mode; >= 1e5 cell evaluations
each, and one run of >= 1e7; per-cell counters (in one configuration, narrow enough to wrap).
The compact core (one lane, hdl/compact_core.py) runs its own cases of the same kinds: spins
and multi-level weights, dense and sparse, constant and table schedules (the kinds it has; the
tables sample the other kinds' curves), entries of one and of two 16-bit planes, per-cell
counters, external tilts, and the mutation check. The pipelined core under a plain C++ loop
(the benchmark's second simulator, scripts/limemu/verilator_loop.py) is cross-checked too,
mutation check included.
"""

from dataclasses import dataclass

import numpy as np
import pytest
from limemu.compare import crosscheck
from limemu.hardware import HardwareSession
from limemu.model.problem import QuadraticProblem
from limemu.model.schedules import Schedule
from limemu.model.spec import Spec
from limemu.runner import ModelSession
from limemu.verilator_loop import LoopArray
from limemu.workloads import build_workload

U = 1 << 8          # one u in barrier LSBs (barrier_frac_bits = 8)
ETA_ONE = 1 << 6    # gain 1 u per loss unit (gain_frac_bits = 6)


@dataclass
class Workload:
    problem: object


def random_qp(n, seed, *, density=1.0, scale=3):
    """A random symmetric integer problem (dense or sparse couplings)."""
    rng = np.random.default_rng(seed)
    A = rng.integers(-scale, scale + 1, (n, n)) * (rng.random((n, n)) < density)
    Q = np.triu(A, 1)
    Q = Q + Q.T
    Q[np.diag_indices(n)] = rng.integers(1, 2 * scale + 1, n)
    b = rng.integers(-4 * scale, 4 * scale + 1, n)
    return QuadraticProblem.dense(Q, b)


def table(values):
    return Schedule.table(values, steps_per_entry=8)


CASES = {
    # lanes 1, multi-level weights, dense Q, constant schedules
    "lanes1-bits4-dense-constant": dict(
        problem=lambda: random_qp(16, 1), steps=6250,
        spec=dict(weight_bits=4, lanes=1, barrier=Schedule.constant(3 * U),
                  gain=Schedule.constant(ETA_ONE))),
    # Max-Cut spins, sparse, colour order, exponential annealing of the gain
    "lanes4-spins-sparse-exponential": dict(
        problem=lambda: build_workload("maxcut", cells=64, seed=2).problem, steps=1600,
        spec=dict(weight_bits=1, lanes=4, q_storage="sparse", order="colour",
                  barrier=Schedule.constant(4 * U),
                  gain=Schedule.exponential(ETA_ONE // 8, 2**16 // 400))),
    # 8-bit weights, 8 lanes, natural order (coupled cells share groups), linear ramps
    "lanes8-bits8-dense-linear": dict(
        problem=lambda: random_qp(40, 3, scale=2), steps=2500,
        spec=dict(weight_bits=8, lanes=8, barrier=Schedule.linear(1 * U, 2**16 // 4),
                  gain=Schedule.linear(ETA_ONE // 4, 2**16 // 64, hi=4 * ETA_ONE))),
    # a non-power-of-two lane count, sparse Q, logarithmic schedules
    "lanes5-bits4-sparse-logarithmic": dict(
        problem=lambda: random_qp(45, 4, density=0.1), steps=2223,
        spec=dict(weight_bits=4, lanes=5, q_storage="sparse", order="colour",
                  barrier=Schedule.logarithmic(2 * U, U, 64),
                  gain=Schedule.logarithmic(ETA_ONE // 4, ETA_ONE, 100))),
    # tables for both schedules, dense spins; 6-bit per-cell counters (they wrap)
    "lanes3-spins-dense-table-cellcounters": dict(
        problem=lambda: random_qp(24, 5, scale=1), steps=4200,
        spec=dict(weight_bits=1, lanes=3, cell_counter_bits=6,
                  barrier=table([2 * U + (i * 7) % (3 * U) for i in range(300)]),
                  gain=table([ETA_ONE // 8 + i for i in range(256)]))),
    # the compact core (one lane, constant and table schedules): Max-Cut spins, sparse, colour
    # order, a constant barrier and an exponential anneal of the gain as a table
    "compact-spins-sparse-constant-table": dict(
        core="compact", problem=lambda: build_workload("maxcut", cells=48, seed=3).problem,
        steps=2100,
        spec=dict(weight_bits=1, lanes=1, q_storage="sparse", order="colour",
                  barrier=Schedule.constant(3 * U),
                  gain=Schedule.exponential(ETA_ONE // 8, 2**16 // 400).tabulated(
                      "gain", 16, 300, 7))),
    # compact: 8-bit weights, dense Q, logarithmic curves as tables, fields and tilts of two
    # planes
    "compact-bits8-dense-table-wide": dict(
        core="compact", problem=lambda: random_qp(20, 6, scale=2), steps=5000,
        spec=dict(weight_bits=8, lanes=1,
                  barrier=Schedule.logarithmic(U, U, 64).tabulated("barrier", 14, 256, 19),
                  gain=Schedule.logarithmic(ETA_ONE // 4, ETA_ONE, 100).tabulated(
                      "gain", 16, 1000, 5))),
    # compact: 4-bit weights, sparse, tables, narrow formats (g, b and Q_nn in one plane) and
    # 5-bit per-cell counters (they wrap)
    "compact-bits4-sparse-table-narrow-cellcounters": dict(
        core="compact", problem=lambda: random_qp(25, 7, density=0.2), steps=4000,
        spec=dict(weight_bits=4, lanes=1, q_storage="sparse", cell_counter_bits=5,
                  field_bits=12, q_bits=4, gain_bits=10, gain_frac_bits=6,
                  barrier=table([U + (i * 5) % (3 * U) for i in range(256)]),
                  gain=table([ETA_ONE // 4 + i % 64 for i in range(300)]))),
    # the throughput core (hdl/throughput_core.py): one lane, Max-Cut spins, sparse, colour
    # order, an exponential anneal of the gain
    "throughput-lanes1-spins-sparse-exponential": dict(
        core="throughput", problem=lambda: build_workload("maxcut", cells=48, seed=4).problem,
        steps=2100,
        spec=dict(weight_bits=1, lanes=1, q_storage="sparse", order="colour",
                  barrier=Schedule.constant(2 * U),
                  gain=Schedule.exponential(ETA_ONE // 8, 2**16 // 400))),
    # throughput: 8 lanes, 4-bit weights, Q counted dense, natural order (coupled cells share
    # groups: every group waits), linear ramps
    "throughput-lanes8-bits4-dense-natural-linear": dict(
        core="throughput", problem=lambda: random_qp(40, 8, scale=2), steps=2500,
        spec=dict(weight_bits=4, lanes=8, barrier=Schedule.linear(1 * U, 2**16 // 4),
                  gain=Schedule.linear(ETA_ONE // 4, 2**16 // 64, hi=4 * ETA_ONE))),
    # throughput: an odd lane count, sparse, colour order, logarithmic schedules
    "throughput-lanes5-bits4-sparse-logarithmic": dict(
        core="throughput", problem=lambda: random_qp(45, 9, density=0.1), steps=2223,
        spec=dict(weight_bits=4, lanes=5, q_storage="sparse", order="colour",
                  barrier=Schedule.logarithmic(2 * U, U, 64),
                  gain=Schedule.logarithmic(ETA_ONE // 4, ETA_ONE, 100))),
    # throughput: the ULX3S build's core and array (16 lanes, its formats: 8-bit field,
    # 2-bit Q, 12-bit gain) on a G-set-like Max-Cut (mean degree 24), banked order, barriers
    # from 0 (heat bath) up, tables for both schedules
    "throughput-ulx3s-lanes16-spins-sparse-table-narrow-banked": dict(
        core="throughput", board="ulx3s",
        problem=lambda: build_workload("maxcut", cells=256, seed=5, degree=24).problem,
        steps=400,
        spec=dict(weight_bits=1, lanes=16, q_storage="sparse", order="banked", field_bits=8,
                  q_bits=2, gain_bits=12, barrier=table([(i * 3) % U for i in range(256)]),
                  gain=table([ETA_ONE // 16 + i for i in range(256)]))),
    # throughput: 32 lanes, the same formats and workload kind, banked order, an exponential
    # anneal of the gain at a constant barrier
    "throughput-lanes32-spins-sparse-narrow-banked-exponential": dict(
        core="throughput",
        problem=lambda: build_workload("maxcut", cells=320, seed=6, degree=24).problem,
        steps=320,
        spec=dict(weight_bits=1, lanes=32, q_storage="sparse", order="banked", field_bits=8,
                  q_bits=2, gain_bits=12, barrier=Schedule.constant(U // 2),
                  gain=Schedule.exponential(ETA_ONE // 8, 2**16 // 300))),
}


def run_case(name, case):
    problem = case["problem"]()
    spec = Spec(cells=problem.n, seed=11, **case["spec"])
    workload = Workload(problem)
    model = ModelSession(workload, spec, progress=False)
    rtl = HardwareSession(workload, spec, progress=False, core=case.get("core", "pipelined"),
                          board=case.get("board"))
    try:
        message, steps = crosscheck(spec, model, rtl, case["steps"], segments=4)
        evaluations = rtl.counters()["evaluations"]
        moves = rtl.counters()["up_moves"] + rtl.counters()["down_moves"]
        cell_counters = rtl.cell_counters()
    finally:
        rtl.close()
    return message, steps, evaluations, moves, cell_counters


@pytest.mark.parametrize("name", sorted(CASES))
def test_rtl_matches_model(name):
    message, steps, evaluations, moves, cell_counters = run_case(name, CASES[name])
    assert message is None, f"{name}: {message}"
    assert evaluations >= 100_000, f"{name}: only {evaluations} cell evaluations"
    assert moves > 0, f"{name}: no cell ever moved: the comparison proves little"
    if cell_counters is not None:
        assert cell_counters[2], f"{name}: no per-cell counter wrapped: the flag is untested"


def pull_to_target(step, weights):
    """External half tilts (energy LSBs): a pull of each weight towards a moving target, as a
    chip-in-the-loop gradient would be, plus a deterministic ripple."""
    n = len(weights)
    target = ((np.arange(n) * 37 + step // 200) % 200) - 100
    ripple = (np.arange(n) * 31 + step * 7919) % 97 - 48
    return (target - weights) * 24 + ripple


@pytest.mark.parametrize("core,lanes", [("pipelined", 4), ("compact", 1)])
def test_rtl_matches_model_with_external_tilts(core, lanes):
    barrier = Schedule.exponential(U, 2**16 // 2000)
    if core == "compact":                  # it computes tables (and constants) only
        barrier = barrier.tabulated("barrier", 14, 256, 13)
    spec = Spec(cells=32, weight_bits=8, lanes=lanes, tilt="external", init="zero", seed=12,
                barrier=barrier)
    workload = Workload(None)
    model = ModelSession(workload, spec, progress=False)
    rtl = HardwareSession(workload, spec, progress=False, core=core)
    try:
        message, _ = crosscheck(spec, model, rtl, 3125, segments=4, half_tilt=pull_to_target)
        counters = rtl.counters()
    finally:
        rtl.close()
    assert message is None, message
    assert counters["evaluations"] >= 100_000
    assert counters["up_moves"] > 0 and counters["down_moves"] > 0


@pytest.mark.slow
def test_rtl_matches_model_over_ten_million_evaluations():
    problem = build_workload("maxcut", cells=512, seed=7).problem
    spec = Spec(cells=512, weight_bits=1, lanes=8, q_storage="sparse", order="colour", seed=13,
                barrier=Schedule.constant(4 * U),
                gain=Schedule.exponential(ETA_ONE // 16, 2**16 // 2500))
    workload = Workload(problem)
    model = ModelSession(workload, spec, progress=False)
    rtl = HardwareSession(workload, spec, progress=False)
    try:
        message, _ = crosscheck(spec, model, rtl, 19532, segments=4)
        counters = rtl.counters()
    finally:
        rtl.close()
    assert message is None, message
    assert counters["evaluations"] >= 10_000_000


def test_cpp_loop_simulator_matches_model():
    """The benchmark's C++-loop simulator gives the model's results, like the cocotb one."""
    spec = Spec(cells=64, lanes=4, weight_bits=1, order="colour", q_storage="sparse", seed=8,
                barrier=Schedule.constant(5 * U), gain=Schedule.constant(ETA_ONE))
    workload = build_workload("maxcut", cells=64, seed=8)
    model = ModelSession(workload, spec, progress=False)
    rtl = HardwareSession(workload, spec, progress=False, device=LoopArray)
    try:
        message, steps = crosscheck(spec, model, rtl, 1600, segments=4)
        moves = sum(model.counters()[k] for k in ("up_moves", "down_moves"))
    finally:
        rtl.close()
    assert message is None, message
    assert steps * spec.cells >= 100_000 and moves > 1000


@pytest.mark.parametrize("core,lanes,device", [("pipelined", 2, None), ("compact", 1, None),
                                               ("pipelined", 2, LoopArray)])
def test_crosscheck_catches_a_probability_table_off_by_one(monkeypatch, core, lanes, device):
    """Mutation check: one mantissa ROM entry one LSB high must make the cross-check fail."""
    import limemu.hdl.crossing_unit
    import limemu.hdl.serial_crossing_unit

    original = limemu.hdl.crossing_unit.mantissa_rom

    def mutated_rom(frac_bits, mantissa_bits):
        rom = original(frac_bits, mantissa_bits)
        rom[MUTATED_ENTRY] += 1
        return rom

    for module in (limemu.hdl.crossing_unit, limemu.hdl.serial_crossing_unit):   # each core's unit
        monkeypatch.setattr(module, "mantissa_rom", mutated_rom)
    # No tilt and E0 = 1.5 u: every lookup is the entry of fraction 1/2 at shift 1, where
    # one mantissa LSB (M = 11) moves a threshold by 2**-12: about 16 differing decisions
    # are expected in 2000 steps x 16 cells, the first one in the first few hundred steps.
    spec = Spec(cells=16, weight_bits=4, lanes=lanes, mantissa_bits=11, seed=14,
                tilt="external", init="zero", barrier=Schedule.constant(U + U // 2))
    workload = Workload(None)
    model = ModelSession(workload, spec, progress=False)
    rtl = HardwareSession(workload, spec, progress=False, core=core, device=device)
    try:
        message, step = crosscheck(spec, model, rtl, 2000, segments=20,
                                   half_tilt=lambda step, w: np.zeros(16, dtype=np.int64))
    finally:
        rtl.close()
    assert message is not None, "an RTL with a wrong probability entry passed the cross-check"
    assert "first mismatch" in message and "seed 14" in message and "Spec(" in message


MUTATED_ENTRY = 128


def test_crosscheck_catches_a_probability_table_off_by_one_in_the_throughput_core(monkeypatch):
    """The mutation check of the throughput core, which has no external tilts: a problem
    without couplings or biases keeps g = 0, so every tilt is 0 and every lookup is the one of
    test_crosscheck_catches_a_probability_table_off_by_one."""
    import limemu.hdl.crossing_unit
    import limemu.hdl.throughput_lane

    original = limemu.hdl.crossing_unit.mantissa_rom

    def mutated_rom(frac_bits, mantissa_bits):
        rom = original(frac_bits, mantissa_bits)
        rom[MUTATED_ENTRY] += 1
        return rom

    monkeypatch.setattr(limemu.hdl.crossing_unit, "mantissa_rom", mutated_rom)
    # the throughput core's lanes share ROMs built by throughput_lane.mantissa_roms
    monkeypatch.setattr(limemu.hdl.throughput_lane, "mantissa_rom", mutated_rom)
    spec = Spec(cells=16, weight_bits=4, lanes=3, mantissa_bits=11, seed=14, init="zero",
                barrier=Schedule.constant(U + U // 2))
    workload = Workload(QuadraticProblem.dense(np.zeros((16, 16), dtype=np.int64),
                                               np.zeros(16, dtype=np.int64)))
    model = ModelSession(workload, spec, progress=False)
    rtl = HardwareSession(workload, spec, progress=False, core="throughput")
    try:
        message, step = crosscheck(spec, model, rtl, 2000, segments=20)
    finally:
        rtl.close()
    assert message is not None, "an RTL with a wrong probability entry passed the cross-check"
    assert "first mismatch" in message and "seed 14" in message and "Spec(" in message
