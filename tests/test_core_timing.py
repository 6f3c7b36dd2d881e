"""limemu/core_timing.py: its rules and errors (tests/test_hdl_throughput_core.py checks its
prediction against the core's own cycle count)."""

import numpy as np
import pytest
from limemu.core_timing import Design, StepMoves, record_moves, run_cycles
from limemu.model.engine import LimArray
from limemu.model.errors import ConfigError
from limemu.model.schedules import Schedule
from limemu.model.spec import Spec
from limemu.workloads import build_workload


def maxcut_array(lanes=4):
    problem = build_workload("maxcut", cells=64, seed=2, degree=8).problem
    spec = Spec(cells=64, weight_bits=1, lanes=lanes, q_storage="sparse", order="banked",
                seed=5, barrier=Schedule.constant(0), gain=Schedule.exponential(2**10, 2**8))
    return LimArray(spec, problem)


def maxcut_moves(steps=20):
    array = maxcut_array()
    return record_moves(array, steps), Design.as_built(array.spec)


def test_recorded_moves_are_the_model_s():
    moves, _ = maxcut_moves()
    array = maxcut_array()
    array.run(20)
    moved = array.counters.exact["up_moves"] + array.counters.exact["down_moves"]
    assert sum(len(columns) for step in moves.steps for columns in step.values()) == moved > 0
    assert moves.groups == array.order.groups and moves.boundaries[0]


def test_faster_designs_take_fewer_cycles_on_the_same_moves():
    moves, built = maxcut_moves()
    as_built = run_cycles(moves, built)
    assert run_cycles(moves, built.but(boundaries="landed")) > as_built
    assert run_cycles(moves, built.but(one_cycle_columns=True)) < as_built
    assert run_cycles(moves, built.but(decision_latency=4)) < as_built
    assert run_cycles(moves, built.but(boundaries="decided")) < as_built


def test_a_step_without_moves_costs_its_groups_and_the_decision_latency():
    built = Design(decision_latency=12, tree_latency=2, schedule_latency=3)
    idle = StepMoves(groups=10, boundaries=np.array([True] + [False] * 9), steps=[{}])
    # PREPARE; RUN: the last group issues at cycle 9 and decides at 21, the adder trees'
    # flags hold its decision until 24, the core leaves RUN at 25; STEP_SUM, STEP_END, SCHEDULE
    assert run_cycles(idle, built) == 1 + (25 + 1) + 3


@pytest.mark.parametrize("changes,parameter", [
    ({"boundaries": "sometimes"}, "boundaries"),
    ({"decision_latency": 0}, "decision_latency"),
    ({"queue_depth": "latency"}, "queue_depth"),
])
def test_a_bad_design_is_refused_naming_the_parameter(changes, parameter):
    _, built = maxcut_moves(steps=1)
    if changes.get("queue_depth") == "latency":       # no room for the groups in flight
        changes = {"queue_depth": built.decision_latency}
    with pytest.raises(ConfigError, match=f"^{parameter} = "):
        built.but(**changes)


def test_segments_must_cover_the_recorded_steps():
    moves, built = maxcut_moves(steps=4)
    assert run_cycles(moves, built, [1, 3]) == run_cycles(moves, built) + 1   # one more start
    with pytest.raises(ConfigError, match="^segments = "):
        run_cycles(moves, built, [2, 3])
