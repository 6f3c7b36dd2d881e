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


def test_the_model_answers_as_the_protocol_documents():
    """The model alone, on frames whose answers hdl/protocol.py states."""
    from limemu.link_fuzz import BUILDS  # noqa: PLC0415
    spec, geometry = BUILDS["pipelined"]
    rmap = RegisterMap(spec, geometry)
    model = BridgeModel(rmap, protocol.info_words(spec, geometry, clock_hz=1, baud=1))
    model.load({a: 0 for a in model.readable})
    weight = rmap["weight"].address(1)

    def answers(stream):
        out = []
        while stream:
            used, request = model.split(stream)
            stream = stream[used:]
            request = request or model.receiver.silence()
            if request is not None:
                answer = model.answer(request)
                out.append((answer.status, answer.seq, answer.skipped))
        return out

    def write(seq, address, values):
        return protocol.encode_request("WRITE", seq, protocol.write_payload(address, values))

    assert answers(b"\x00\x11" + write(7, weight, [3])) == [("OK", 7, 2)]
    assert answers(write(7, weight, [5])) == [("DUPLICATE", 7, 0)]
    assert model.word(weight) == 3
    assert answers(write(8, weight, [5])[:-1] + b"\x00") == [("BAD_CRC", 8, 0)]
    assert answers(write(9, weight, [5])[:6]) == [("TRUNCATED", 9, 0)]
    assert answers(b"\xa5\x02\x0a\xff\xff") == [("BAD_LENGTH", 10, 0)]      # from its header
    assert answers(b"\x01\x02") == [("GARBAGE", 0, 2)]
    assert answers(write(11, rmap["q"].address(3), [5])) == [("BAD_ADDRESS", 11, 0)]
    model.running = True
    assert answers(write(12, weight, [5])) == [("BUSY", 12, 0)]
    assert answers(write(13, rmap["control"].base, [1 << 1])) == [("OK", 13, 0)]
    assert model.word(weight) is None                 # the run moves weights
    assert answers(protocol.encode_request("INFO", 14)) == [("OK", 14, 0)]
    assert model.last_write_seq is None
