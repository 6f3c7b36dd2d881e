"""Schedules: exact integer definitions, their physical meaning, and validation."""

import math

import numpy as np
import pytest
from limemu.model.errors import ConfigError
from limemu.model.schedules import Schedule, log2_fixed
from limemu.schedule_options import TOLERANCE_SPAN, TOLERANCE_STEPS, _faithful, parse_schedule

K = np.arange(0, 5000, dtype=np.int64)


def v(schedule, k=K, bits=16):
    return schedule.validated("s", bits).values_at(k)


def test_constant():
    assert np.all(v(Schedule.constant(123)) == 123)


def test_linear_is_start_plus_rate_times_k_floored_and_clamped():
    s = Schedule.linear(100, 3 * 2**15)                    # 1.5 per step
    assert list(v(s, np.arange(5))) == [100, 101, 103, 104, 106]
    down = Schedule.linear(100, -(2**16))
    assert v(down, np.array([0, 50, 100, 1000])).tolist() == [100, 50, 0, 0]
    capped = Schedule.linear(0, 2**20, hi=300)
    assert v(capped, np.array([10**12])).tolist() == [300]


def test_log2_fixed_is_within_table_resolution():
    n = np.array([1, 2, 3, 5, 100, 12345, 2**40 + 17])
    got = log2_fixed(n) / 2**16
    assert np.all(np.abs(got - np.log2(n)) < 2**-8)
    assert log2_fixed(np.array([1024]))[0] == 10 << 16


def test_logarithmic_follows_start_plus_scale_log2():
    s = Schedule.logarithmic(64, 256, 100)
    got = v(s)
    expected = 64 + 256 * np.log2(1 + K / 100)
    # two table look-ups, each truncating the mantissa to 8 bits (< log2(1 + 2**-8)), and a floor
    assert np.all(np.abs(got - expected) <= 2 * 256 * math.log2(1 + 2**-8) + 1)
    assert np.all(np.diff(got) >= 0)


def test_exponential_follows_start_times_power_of_two():
    s = Schedule.exponential(64, round(2**16 / 1000))    # doubles every ~1000 steps
    got = v(s)
    expected = 64 * 2 ** (K * round(2**16 / 1000) / 2**16)
    assert np.all(np.abs(got - expected) <= expected * 2**-7 + 1)
    decay = Schedule.exponential(4096, -(2**16) // 128)   # halves every 128 steps
    assert v(decay, np.array([0, 128, 256])).tolist() == [4096, 2048, 1024]
    huge = v(Schedule.exponential(5, 2**16), np.array([10**9]), bits=12)
    assert huge.tolist() == [4095]


def test_table_is_piecewise_constant_and_holds_the_last_entry():
    values = list(range(256))
    s = Schedule.table(values, steps_per_entry=10)
    got = v(s, np.array([0, 9, 10, 2555, 2560, 10**6]))
    assert got.tolist() == [0, 0, 1, 255, 255, 255]


@pytest.mark.parametrize("schedule,bits,parameter", [
    (Schedule.constant(70000), 16, "s.start"),
    (Schedule.constant(-1), 16, "s.start"),
    (Schedule.linear(0, 1, lo=5, hi=4), 16, "s.hi"),
    (Schedule.linear(0, 1, lo=-1), 16, "s.lo"),
    (Schedule.linear(0, 2**40), 16, "s.rate"),
    (Schedule.logarithmic(0, 1, 0), 16, "s.tau"),
    (Schedule.exponential(0, 1), 16, "s.start"),
    (Schedule.table(range(10)), 16, "s.values"),
    (Schedule.table([0] * 255 + [2**16]), 16, "s.values"),
    (Schedule.table([0] * 256, steps_per_entry=0), 16, "s.steps_per_entry"),
    (Schedule("cosine"), 16, "s.kind"),
])
def test_invalid_schedules_name_the_parameter(schedule, bits, parameter):
    with pytest.raises(ConfigError, match=parameter.replace(".", r"\.")):
        schedule.validated("s", bits)


def test_steps_outside_the_hardware_counter_are_rejected():
    s = Schedule.constant(1).validated("s", 8)
    with pytest.raises(ConfigError, match="step"):
        s.values_at(np.array([-1]))
    with pytest.raises(ConfigError, match="step"):
        s.values_at(np.array([2**48]))


def test_unvalidated_schedule_cannot_be_evaluated():
    with pytest.raises(ConfigError, match="validated"):
        Schedule.constant(1).values_at(np.array([0]))


def test_describe_uses_physical_units():
    text = Schedule.linear(256, 2**16 // 2).describe(8, "u")
    assert "from 1 u" in text and "+0.00195312 u/step" in text


# -- schedules from text: the run follows the curve asked for (schedule_options.py) -------------

GAIN_BITS, GAIN_FRAC = 16, 6


def _as_run(text, steps):
    schedule = parse_schedule(text, "--gain", GAIN_FRAC, steps, GAIN_BITS)
    return schedule, schedule.validated("gain", GAIN_BITS)


@pytest.mark.parametrize("text, steps, end", [
    ("exp:0.1,6", 300_000, 6.0),          # the 16-bit rate alone would end at 2.2
    ("exp:0.1,6", 1_000_000, 6.0),        # ... and at 0.09 (rate 0): a constant
    ("linear:2,10", 400_000_000, 10.0),   # ... stays at 2.0
    ("exp:6,0.1", 10**12, 0.1),
])
def test_long_ramps_run_as_tables_that_reach_the_end_asked_for(text, steps, end):
    schedule, run = _as_run(text, steps)
    assert schedule.kind == "table"
    span = abs(end - run.values_at(np.array([0]))[0] / 2**GAIN_FRAC)
    last = run.values_at(np.array([steps - 1]))[0] / 2**GAIN_FRAC
    assert abs(last - end) <= TOLERANCE_STEPS / 2**GAIN_FRAC + TOLERANCE_SPAN * span


@pytest.mark.parametrize("text, steps, kind", [
    ("exp:0.1,6", 300, "exponential"), ("linear:2,10", 10**6, "linear"),
    ("log:0.5,1,10", 10**12, "logarithmic"), ("exp:0.01,100", 300, "exponential")])
def test_schedules_the_units_follow_keep_their_kind(text, steps, kind):
    schedule, _ = _as_run(text, steps)
    assert schedule.kind == kind


def test_every_step_of_a_tabulated_ramp_is_within_the_tolerance():
    steps = 300_000
    _, run = _as_run("exp:0.1,6", steps)
    k = np.arange(0, steps, 7)
    start, end = round(0.1 * 2**GAIN_FRAC), round(6 * 2**GAIN_FRAC)
    wanted = start * (end / start) ** (k / (steps - 1))
    assert np.abs(run.values_at(k) - wanted).max() <= TOLERANCE_STEPS + TOLERANCE_SPAN * (end - start)


def test_a_curve_no_table_follows_is_refused_naming_the_option():
    def jagged(k):                                # a square wave of 10^5 periods: no table
        return 1000.0 * ((k // 5) % 2)
    with pytest.raises(ConfigError, match=r"--gain = 'x': over 1000000 steps .* within 1% of its "
                                          r"span \+ 0.03125 \(off by 15.625 at step"):
        _faithful(Schedule.constant(0), jagged, "--gain = 'x'", GAIN_FRAC, GAIN_BITS, 1_000_000)


def test_a_run_longer_than_any_table_can_span_is_refused():
    with pytest.raises(ConfigError, match=r"--gain = 'exp:0.1,6': over 281474976710655 steps"
                                          r".*no table of at most 4096 entries"):
        parse_schedule("exp:0.1,6", "--gain", GAIN_FRAC, 2**48 - 1, GAIN_BITS)
