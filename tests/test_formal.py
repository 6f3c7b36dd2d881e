"""The formal proofs of formal/ (SymbiYosys on the RTL) at CI's bounds, and their mutations:
each proof passes, each deliberately broken component fails its proof. The receiver's
tolerance check (uart_rx.no_lost_byte, minutes of solver time) runs in `make formal` only; the
serial crossing unit's simulation runs on a fifth of its cases here, all of them there."""

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))           # formal/ is a folder of the checkout, not the package
from formal import crossing, runner, serial_crossing  # noqa: E402

MAKE_FORMAL_ONLY = {"uart_rx.no_lost_byte"}
SUBSET_HERE = {"serial_crossing_unit.equals_model"}      # test_serial_crossing_unit below
RUNS = [(p, mutant) for p, mutant in runner.jobs_of(runner.all_properties())
        if p.name not in MAKE_FORMAL_ONLY | SUBSET_HERE]


def test_the_tools_are_installed():
    assert runner.missing_tools() == []


@pytest.mark.parametrize("prop, mutant", RUNS,
                         ids=[p.name + ("-mutant" if mutant else "") for p, mutant in RUNS])
def test_proof(prop, mutant, tmp_path):
    result = runner.run(prop, mutant=mutant, build=tmp_path)
    assert result.expected, result.line() + "\n" + (
        result.log.read_text()[-3000:] if result.log else "")


def test_every_component_family_has_a_proof_and_a_mutation():
    properties = runner.all_properties()
    families = {p.name.split(".")[0] for p in properties}
    assert families >= {"address_rule", "counter_bank", "counter_ram", "crossing_unit",
                        "serial_crossing_unit", "uart_rx", "uart_tx", "bridge_executor",
                        "frame_receiver"}
    broken = {p.name.split(".")[0] for p in properties if p.mutant}
    assert broken >= {"address_rule", "counter_bank", "counter_ram", "crossing_unit",
                      "serial_crossing_unit", "uart_rx", "bridge_executor", "frame_receiver"}


@pytest.mark.parametrize("mutant", [False, True], ids=["proof", "mutant"])
def test_serial_crossing_unit(mutant):
    """SerialCrossingUnit against the specification on CI's subset of the case set (every
    fifth B- of each B+); the mutation fails on it."""
    ok, detail = serial_crossing.simulate(mutant, stride=serial_crossing.CI_STRIDE)
    assert ok != mutant, detail


def test_the_crossing_specification_is_the_golden_decision():
    """The harness's specification (thresholds from the golden table, the inadmissible
    compare as a count of draws) against decide_one, on random and boundary draws."""
    from limemu.model.crossing import decide_one

    rng = random.Random(7)
    for _ in range(3000):
        b_up, b_down = rng.randint(-3, crossing.LAST + 5), rng.randint(-3, crossing.LAST + 5)
        draws = crossing.draws_to_check(b_up, b_down) + [rng.randrange(1 << 32)]
        for u in draws:
            assert crossing.spec_decision(u, b_up, b_down) == decide_one(
                u, b_up, b_down, crossing.FRAC_BITS, crossing.MANTISSA_BITS), (u, b_up, b_down)
