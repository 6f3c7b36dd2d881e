"""The one spec object: validation with clear errors, derived formats, serialisation."""

import pytest
from limemu.model import ConfigError, Schedule, Spec


@pytest.mark.parametrize("field,value,fragment", [
    ("cells", 0, "cells = 0"),
    ("cells", 2**21, "cells"),
    ("cells", 3.5, "must be an integer"),
    ("weight_bits", 0, "weight_bits = 0"),
    ("weight_bits", 17, "weight_bits = 17"),
    ("lanes", 0, "lanes = 0"),
    ("lanes", 65, "lanes = 65"),             # more lanes than cells (64)
    ("barrier_frac_bits", 1, "barrier_frac_bits = 1"),
    ("barrier_frac_bits", 13, "barrier_frac_bits = 13"),
    ("barrier_bits", 8, "barrier_bits = 8"),
    ("gain_frac_bits", 7, "gain_frac_bits = 7"),
    ("gain_bits", 40, "gain_bits = 40"),
    ("field_bits", 4, "field_bits = 4"),
    ("field_bits", 41, "field_bits = 41"),
    ("mantissa_bits", 30, "mantissa_bits = 30"),
    ("seed", -1, "seed = -1"),
    ("seed", 2**64, "seed"),
    ("order", "random", "order = 'random'"),
    ("init", "ones", "init = 'ones'"),
    ("tilt", "magnetic", "tilt = 'magnetic'"),
    ("q_storage", "csr", "q_storage = 'csr'"),
    ("barrier", 5, "barrier = 5"),
    ("barrier", Schedule.constant(2**14), "barrier.start"),
    ("gain", Schedule.linear(0, 1, hi=2**16), "gain.hi"),
])
def test_invalid_fields_raise_naming_parameter_value_and_limit(field, value, fragment):
    with pytest.raises(ConfigError) as info:
        Spec(**{field: value})
    assert fragment in str(info.value)


def test_spins_and_multilevel_ladders():
    spins = Spec(weight_bits=1)
    assert (spins.w_lo, spins.w_hi, spins.delta) == (-1, 1, 2)
    b4 = Spec(weight_bits=4)
    assert (b4.w_lo, b4.w_hi, b4.delta) == (-8, 7, 1)


def test_half_tilts_are_exact_energy_lsbs():
    spec = Spec(barrier_frac_bits=8, gain_frac_bits=6)
    # eta = 1 (raw 64), dL2 = 1 (L changes by 1/2): half tilt = 1/4 u = 64 LSB
    assert (64 * 1) << spec.tilt_shift == round(0.25 * 2**spec.barrier_frac_bits)


def test_round_trip_and_repr_show_every_field():
    spec = Spec(cells=10, lanes=3, barrier=Schedule.linear(5, 7), gain=Schedule.table([1] * 256))
    again = Spec.from_dict(spec.to_dict())
    assert again == spec
    text = repr(spec)
    for name in spec.to_dict():
        assert name in text
    assert spec.replace(lanes=2).lanes == 2


def test_spec_is_frozen():
    with pytest.raises(AttributeError):
        Spec().cells = 5
