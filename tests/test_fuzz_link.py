"""The host link fuzzed on the virtual board against the model of its bridge
(scripts/limemu/link_fuzz.py): a short derandomized hypothesis campaign, the checker shown to
catch a bridge that differs from its model by one rule, and the bridge's refusal of a dense Q
entry of a lane the build does not have (the fuzzer's first finding: such a write was
answered OK and dropped)."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from limemu.hdl import protocol
from limemu.hdl.regmap import RegisterMap
from limemu.link_fuzz import BridgeModel, Fuzzer, fuzz_board

ANSWERS = set(protocol.STATUS)               # every status the bridge can answer


@pytest.fixture(scope="module")
def board():
    vb, spec, geometry = fuzz_board("pipelined")
    with vb:
        yield vb, spec, geometry


@pytest.fixture(scope="module")
def fuzzer(board):
    fuzzer = Fuzzer(*board, answer_seconds=10.0)    # a loaded CI machine is slow, not hung
    yield fuzzer
    fuzzer.close()


def test_fuzzed_frames_are_answered_and_applied_as_the_model_says(fuzzer):
    """40 derandomized examples of 10 cases each (about 500 fuzzed frames); then every status
    came up, runs included (BUSY), so the property looked at all of the protocol."""

    @settings(max_examples=40, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def agrees(data):
        fuzzer.resync()
        before = len(fuzzer.findings)
        for _ in range(10):
            fuzzer.case(lambda lo, hi: data.draw(st.integers(lo, hi)))
        fuzzer.compare(fuzzer.model.readable)
        assert not fuzzer.findings[before:], "\n".join(map(str, fuzzer.findings[before:]))

    agrees()
    assert fuzzer.requests > 300 and set(fuzzer.statuses) == ANSWERS, fuzzer.statuses


class WithoutDuplicateFilter(BridgeModel):
    """A bridge that applies a repeated WRITE again."""

    def duplicate(self, r):
        return False


class WithoutMissingLanes(BridgeModel):
    """The rule before the fix: a dense Q entry of a missing lane is accepted."""

    def __init__(self, rmap, info):
        super().__init__(rmap, info)
        q = rmap["q"]
        for (write, running), table in self._refusals.items():
            for a in range(q.base, q.base + q.size):
                if (a - q.base) % rmap.geometry.lanes_p2 >= rmap.spec.lanes:
                    table[a] = "busy" if running else None


@pytest.mark.parametrize("model_class", [WithoutDuplicateFilter, WithoutMissingLanes])
def test_a_bridge_that_differs_by_one_rule_is_caught(board, model_class):
    fuzzer = Fuzzer(*board, model_class=model_class, answer_seconds=10.0)
    rng = random.Random(1)
    try:
        while not fuzzer.findings and fuzzer.cases < 2000:
            fuzzer.case(rng.randint)
    finally:
        fuzzer.close()
    assert fuzzer.findings and fuzzer.findings[0].kind == "answer", fuzzer.cases
    assert fuzzer.findings[0].sent                     # the bytes that replay it


def test_a_dense_q_entry_of_a_missing_lane_is_refused(fuzzer):
    """3 lanes in banks of 4: entry 3 of Q is lane 3's, which has no bank."""
    fuzzer.resync()
    rmap = fuzzer.rmap
    q = rmap["q"]
    assert rmap.refusal(q.address(3), write=True, running=False) == "address"
    assert fuzzer.clean_request("WRITE", protocol.write_payload(q.address(3), [5])).status \
        == "BAD_ADDRESS"
    assert fuzzer.clean_request("READ", protocol.read_payload(q.address(2), 2)).status \
        == "BAD_ADDRESS"
    assert fuzzer.clean_request("WRITE", protocol.write_payload(q.address(2), [5])).status \
        == "OK"
    assert fuzzer.read_words([q.address(2)]) == {q.address(2): 5}
    assert not fuzzer.findings


def test_the_host_loads_no_entry_of_a_missing_lane():
    import numpy as np  # noqa: PLC0415
    from limemu.host import q_plan  # noqa: PLC0415
    from limemu.link_fuzz import BUILDS  # noqa: PLC0415
    from limemu.workloads import maxcut_workload  # noqa: PLC0415
    spec, geometry = BUILDS["pipelined"]
    rmap = RegisterMap(spec, geometry)
    problem = maxcut_workload(cells=spec.cells, seed=1).problem
    cells = np.arange(spec.cells)
    slots = cells // spec.lanes * geometry.lanes_p2 + cells % spec.lanes
    plan = q_plan(rmap, problem, slots)
    q = rmap["q"]
    assert len(plan) == q.size * spec.lanes // geometry.lanes_p2
    assert all(rmap.refusal(a, write=True, running=False) is None for a, _ in plan)
