# amaranth: UnusedElaboratable=no
"""The schedule unit (hdl/schedule_unit.py) against Schedule.values_at, bit for bit, in Amaranth's
simulator; and the register description it shares with the host (python_model/schedules.py).

(The first line lets tests build units only to read their ports or constructor checks.)"""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from limemu.hdl.schedule_unit import Log2Fixed, ScheduleUnit
from limemu.model.errors import ConfigError
from limemu.model.schedules import (
    KINDS,
    LOG2_INPUT_BITS,
    MAX_STEPS,
    MAX_TAU,
    MIN_TABLE_ENTRIES,
    RATE_FRAC_BITS,
    Schedule,
    log2_fixed,
    schedule_register_values,
    schedule_registers,
    schedule_table_values,
)

BITS = (14, 16, 24)
TABLE_DEPTH = 512            # a small RAM simulates faster; the default depth is converted below
SERIAL = (False, True)       # ArrayCore's unit, CompactCore's (the same values, fewer LUTs)
serial_variants = pytest.mark.parametrize("serial", SERIAL, ids=lambda s: f"serial={s}")
#: (kind, serial): a serial unit computes the kinds without a multiplier
KIND_VARIANTS = [(kind, serial) for serial in SERIAL for kind in KINDS
                 if not serial or kind in ScheduleUnit.SERIAL_KINDS]
kind_variants = pytest.mark.parametrize("kind,serial", KIND_VARIANTS,
                                        ids=[f"kind={k}-serial={s}" for k, s in KIND_VARIANTS])


def unit_kinds(serial):
    return ScheduleUnit.SERIAL_KINDS if serial else KINDS


def simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


async def strobe(ctx, port, dut):
    """One-cycle strobe, then wait until the unit is idle again; return how long busy was high
    (failing rather than hanging beyond any documented latency)."""
    ctx.set(port, 1)
    await ctx.tick()
    ctx.set(port, 0)
    cycles = 0
    while ctx.get(dut.busy):
        cycles += 1
        assert cycles < 1000, f"{dut!r} still busy after {cycles} cycles"
        await ctx.tick()
    return cycles


def check_latency(dut, kind, cycles, what):
    """Exactly max_latency(kind) cycles: LATENCY[kind] for serial=False, 2 for serial=True."""
    message = f"{kind}: {what}: busy {cycles} cycles; {dut!r}"
    assert cycles == dut.max_latency(kind) == (2 if dut.serial else dut.LATENCY[kind]), message


async def configure(ctx, dut, schedule):
    """Drive the cfg ports as the core would and write a table into the RAM."""
    registers = schedule_register_values(schedule, dut.bits, dut.table_depth, kinds=dut.kinds)
    for name, value in registers.items():
        ctx.set(getattr(dut, f"cfg_{name}"), value)
    for address, entry in enumerate(schedule_table_values(schedule, dut.bits)):
        ctx.set(dut.table_we, 1)
        ctx.set(dut.table_addr, address)
        ctx.set(dut.table_data, entry)
        await ctx.tick()
    ctx.set(dut.table_we, 0)
    return registers


def start_at(ctx, dut, registers, k):
    """Test-only: put the unit in the state it has after k steps (the invariants its docstring
    states, which the runs from k = 0 check), so that large k can be reached."""
    ctx.set(dut.step, k)
    if "rate" in registers:
        ctx.set(dut.ramp, min(k, registers["k_sat"]) * registers["rate"])
    if registers.get("steps_per_entry"):
        ctx.set(dut.entry, min(k // registers["steps_per_entry"], registers["table_length"] - 1))
        ctx.set(dut.entry_step, k % registers["steps_per_entry"])


def check(schedule, k, actual):
    expected = int(schedule.values_at(k))
    assert actual == expected, (f"{schedule.kind}: k = {k}: expected {expected}, got {actual}; "
                                f"{schedule!r}")


def run_unit(bits, runs, serial, kinds=None):
    """Run (schedule, segments) pairs on one unit; a segment (k0, count) checks the values at
    k0 .. k0 + count - 1: from a restart if k0 = 0, else from the state of step k0 - 1. Every
    step also checks the unit's busy time."""
    dut = ScheduleUnit(bits=bits, table_depth=TABLE_DEPTH, serial=serial,
                       kinds=kinds or unit_kinds(serial))

    async def testbench(ctx):
        for schedule, segments in runs:
            registers = await configure(ctx, dut, schedule)
            for k0, count in segments:
                if k0 == 0:
                    cycles = await strobe(ctx, dut.restart, dut)
                else:
                    start_at(ctx, dut, registers, k0 - 1)
                    cycles = await strobe(ctx, dut.advance, dut)
                check(schedule, k0, ctx.get(dut.value))
                check_latency(dut, schedule.kind, cycles, f"k = {k0}")
                for k in range(k0 + 1, k0 + count):
                    cycles = await strobe(ctx, dut.advance, dut)
                    assert ctx.get(dut.step) == k
                    check(schedule, k, ctx.get(dut.value))
                    check_latency(dut, schedule.kind, cycles, f"k = {k}")

    simulate(dut, testbench)


def random_clamp(rng, top):
    lo, hi = sorted(int(v) for v in rng.integers(0, top + 1, 2))
    return lo, hi


def schedules(kind, bits, rng):
    """(validated schedule, steps to simulate) covering the kind's corners for a format."""
    top = 2**bits - 1
    max_rate = 2**(bits + RATE_FRAC_BITS) - 1
    lo, hi = random_clamp(rng, top)

    def r(low, high):
        return int(rng.integers(low, high + 1))

    cases = []
    if kind == "constant":
        cases = [(Schedule.constant(v), 3) for v in (0, top, r(0, top))]
        cases += [(Schedule("constant", start=v, lo=lo, hi=hi), 3) for v in (0, top, r(0, top))]
    elif kind == "linear":
        to_hi = ((top + 1) << RATE_FRAC_BITS) // 40 + 1               # k_sat = 41
        cases = [(Schedule.linear(0, to_hi), 60),
                 (Schedule.linear(top, -to_hi), 60),
                 (Schedule.linear(r(0, top), to_hi // 3, lo=lo, hi=hi), 150),
                 (Schedule.linear(0, 3 * 2**15, lo=5, hi=80), 60),      # start below lo
                 (Schedule.linear(top, -(2**RATE_FRAC_BITS) - 1, lo=0, hi=top - 40), 60),
                 (Schedule.linear(r(0, top), max_rate), 5),
                 (Schedule.linear(r(0, top), -max_rate), 5),
                 (Schedule.linear(r(0, top), 0, lo=lo, hi=hi), 5),
                 (Schedule.linear(r(0, top), r(-max_rate, max_rate), lo=lo, hi=hi), 40)]
    elif kind == "logarithmic":
        max_scale = 2**(bits + 8) - 1
        cases = [(Schedule.logarithmic(r(0, top // 2), r(1, top // 8), 1), 40),
                 (Schedule.logarithmic(top, -r(1, top // 4), 1, lo=lo), 40),
                 (Schedule.logarithmic(r(0, top), max_scale, 1), 20),
                 (Schedule.logarithmic(r(0, top), -max_scale, 1), 20),
                 (Schedule.logarithmic(r(0, top), r(1, max_scale), 7, lo=lo, hi=hi), 40),
                 (Schedule.logarithmic(r(0, top), r(-max_scale, max_scale), MAX_TAU), 10),
                 (Schedule.logarithmic(0, max_scale, r(2, 1000)), 40)]
    elif kind == "exponential":
        fast = 3 * 2**RATE_FRAC_BITS // 2                               # k_sat = 43
        cases = [(Schedule.exponential(1, 2**RATE_FRAC_BITS // 4), 4 * bits + 10),
                 (Schedule.exponential(top, -(2**RATE_FRAC_BITS) // 4), 4 * bits + 10),
                 (Schedule.exponential(r(1, top), fast, lo=lo, hi=hi), 50),
                 (Schedule.exponential(r(1, top), -fast), 50),
                 (Schedule.exponential(r(1, top), max_rate), 4),
                 (Schedule.exponential(r(1, top), -max_rate), 4),
                 (Schedule.exponential(r(1, top), 0, lo=lo, hi=hi), 3),
                 (Schedule.exponential(r(1, 15), r(1, 2**RATE_FRAC_BITS), lo=lo, hi=hi), 40),
                 (Schedule.exponential(r(1, top), r(-max_rate, max_rate)), 10)]
    elif kind == "table":
        def values(n):
            return rng.integers(0, top + 1, n).tolist()
        cases = [(Schedule.table(values(MIN_TABLE_ENTRIES)), MIN_TABLE_ENTRIES + 20),
                 (Schedule.table(values(MIN_TABLE_ENTRIES), steps_per_entry=3),
                  3 * MIN_TABLE_ENTRIES + 10),
                 (Schedule.table(values(TABLE_DEPTH)), TABLE_DEPTH + 5),
                 (Schedule("table", values=tuple(values(300)), steps_per_entry=2, lo=lo, hi=hi),
                  40)]
    return [(schedule.validated("schedule", bits), steps) for schedule, steps in cases]


@kind_variants
@pytest.mark.parametrize("bits", BITS, ids=lambda b: f"bits={b}")
def test_unit_matches_model_from_restart(kind, serial, bits, rng):
    """Every value from k = 0, then a restart in the middle of the run and a second run."""
    runs = [(schedule, [(0, steps // 2), (0, steps)]) for schedule, steps in
            schedules(kind, bits, rng)]
    run_unit(bits, runs, serial)


def log_uniform(rng, lo, hi, n):
    """n integers in [lo, hi], spread evenly over their bit lengths."""
    return [min(max(int(2 ** rng.uniform(np.log2(lo), np.log2(hi + 1))), lo), hi)
            for _ in range(n)]


@kind_variants
@pytest.mark.parametrize("bits", BITS, ids=lambda b: f"bits={b}")
def test_unit_matches_model_at_any_step(kind, serial, bits, rng):
    """Steps up to 2**48 - 1, entered through start_at: random schedules at random k (and k next
    to k_sat, entry boundaries and the last step), a few steps each. Rates and scales are spread
    over their bit lengths, and half the schedules have no clamp, so that values at large k are
    not all clamped."""
    top = 2**bits - 1
    max_rate = 2**(bits + RATE_FRAC_BITS) - 1
    last = [(MAX_STEPS - 2, 3)]
    runs = []
    for i in range(60):
        lo, hi = random_clamp(rng, top) if i % 2 else (0, top)
        start = int(rng.integers(1, top + 1))
        sign = int(rng.choice([-1, 1]))
        if kind in ("constant", "linear", "exponential"):
            rate = sign * log_uniform(rng, 1, max_rate, 1)[0]
            schedule = Schedule(kind, start=start, rate=rate, lo=lo, hi=hi)
            k_sat = schedule.validated("schedule", bits).saturation_step()
            segments = [(k, 2) for k in log_uniform(rng, 1, k_sat + 2, 3)]
            segments += [(max(k_sat - 1, 1), 3), (log_uniform(rng, 1, MAX_STEPS - 2, 1)[0], 2)]
        elif kind == "logarithmic":
            scale = sign * log_uniform(rng, 1, 2**(bits + 8) - 1, 1)[0]
            tau = log_uniform(rng, 1, MAX_TAU, 1)[0]
            schedule = Schedule.logarithmic(start, scale, tau, lo=lo, hi=hi)
            segments = [(k, 2) for k in log_uniform(rng, 1, MAX_STEPS - 2, 3)]
        else:
            steps_per_entry = log_uniform(rng, 1, 2**32, 1)[0]
            n = int(rng.integers(MIN_TABLE_ENTRIES, TABLE_DEPTH + 1))
            schedule = Schedule("table", values=tuple(rng.integers(0, top + 1, n).tolist()),
                                steps_per_entry=steps_per_entry, lo=lo, hi=hi)
            boundaries = [int(i) * steps_per_entry - 1 for i in rng.integers(1, n + 1, 2)]
            segments = [(max(k, 1), 3) for k in boundaries]
            segments += [(k, 2) for k in log_uniform(rng, 1, MAX_STEPS - 2, 2)]
        runs.append((schedule.validated("schedule", bits), segments + last))
    run_unit(bits, runs, serial)


def test_log2_block_matches_log2_fixed(rng):
    """Log2Fixed on random numbers of every bit length up to 49 (tau + k reaches 2**49 - 2**32),
    and on powers of two and their neighbours, in LATENCY cycles each (n = 0 too, whose result
    is undefined: it must not hang)."""
    top = LOG2_INPUT_BITS
    edges = [v for j in range(top) for v in (2**j - 1, 2**j, 2**j + 1) if 1 <= v < 2**top]
    numbers = edges + log_uniform(rng, 1, 2**top - 1, 3000)
    dut = Log2Fixed()

    async def testbench(ctx):
        for n in numbers:
            ctx.set(dut.n, n)
            cycles = await strobe(ctx, dut.start, dut)
            expected = int(log2_fixed(n))
            actual = ctx.get(dut.result)
            assert actual == expected, f"log2: n = {n}: expected {expected}, got {actual}"
            assert cycles == Log2Fixed.LATENCY, f"log2: n = {n}: {cycles} cycles"
        ctx.set(dut.n, 0)
        assert await strobe(ctx, dut.start, dut) == Log2Fixed.LATENCY

    simulate(dut, testbench)


def test_busy_lasts_the_documented_latency():
    """serial=False: busy rises the cycle after a strobe and stays high exactly LATENCY[kind]
    cycles."""
    bits = 16
    dut = ScheduleUnit(bits=bits, table_depth=TABLE_DEPTH)
    examples = {"constant": Schedule.constant(7), "linear": Schedule.linear(3, 2**16),
                "logarithmic": Schedule.logarithmic(3, 100, 5),
                "exponential": Schedule.exponential(3, 2**15),
                "table": Schedule.table(range(MIN_TABLE_ENTRIES))}
    measured = {}

    async def testbench(ctx):
        assert not ctx.get(dut.busy)
        for kind, schedule in examples.items():
            await configure(ctx, dut, schedule.validated("schedule", bits))
            for port in (dut.restart, dut.advance):
                measured[kind, port.name] = await strobe(ctx, port, dut)

    simulate(dut, testbench)
    expected = {(kind, port): ScheduleUnit.LATENCY[kind] for kind in examples
                for port in ("restart", "advance")}
    assert measured == expected
    assert {kind: dut.max_latency(kind) for kind in KINDS} == ScheduleUnit.LATENCY


@pytest.mark.parametrize("bits", (1, 14, 24), ids=lambda b: f"bits={b}")
def test_register_values_fit_the_registers_and_ports(bits, rng):
    """Extreme and random schedules of every kind fit the widths the unit's ports have."""
    top = 2**bits - 1
    max_rate = 2**(bits + RATE_FRAC_BITS) - 1
    max_scale = 2**(bits + 8) - 1
    extremes = [Schedule.constant(top), Schedule.linear(0, 0), Schedule.linear(top, -max_rate),
                Schedule.exponential(1, 0), Schedule.exponential(top, max_rate),
                Schedule.logarithmic(top, -max_scale, MAX_TAU),
                Schedule.table([top] * TABLE_DEPTH, steps_per_entry=2**32)]
    randoms = [s for kind in KINDS for s, _ in schedules(kind, bits, rng)] if bits >= 8 else []
    registers = schedule_registers(bits, TABLE_DEPTH)
    dut = ScheduleUnit(bits=bits, table_depth=TABLE_DEPTH)
    for name, width, is_signed in registers:
        shape = getattr(dut, f"cfg_{name}").shape()
        assert (shape.width, shape.signed) == (width, is_signed), name
    for schedule in extremes + randoms:
        values = schedule_register_values(schedule, bits, TABLE_DEPTH)
        assert set(values) == {name for name, _, _ in registers}
        for name, width, is_signed in registers:
            low, high = (-(2**(width - 1)), 2**(width - 1)) if is_signed else (0, 2**width)
            assert low <= values[name] < high, f"{name} = {values[name]}: {schedule!r}"


def test_register_values_reject_what_the_unit_cannot_hold():
    table = Schedule.table([1] * 300)
    with pytest.raises(ConfigError, match=r"gain\.values = '300 entries'.*table_depth = 256"):
        schedule_register_values(table, 16, 256, name="gain")
    with pytest.raises(ConfigError, match=r"bits = 25: must be in \[1, 24\]"):
        schedule_register_values(Schedule.constant(1), 25, 4096)
    with pytest.raises(ConfigError, match=r"table_depth = 8192: must be in \[256, 4096\]"):
        schedule_registers(16, 8192)
    with pytest.raises(ConfigError, match=r"schedule\.start = 70000"):
        schedule_register_values(Schedule.constant(70000), 16, 4096)
    with pytest.raises(ConfigError, match=r"schedule\.start = 0: an exponential"):
        schedule_register_values(Schedule("exponential", start=0), 16, 4096)


FEWER_KINDS = ("constant", "table")     # the compact core's


@serial_variants
def test_unit_with_fewer_kinds_matches_model(serial, rng):
    """A unit built for constant and table schedules only (the compact core's) computes them as
    the full unit does (its values come clamped from the host: it has no clamp), has no
    registers of the other kinds, and the host refuses those kinds for it, naming the schedule,
    its kind and the kinds there are."""
    bits = 14
    runs = [(schedule, [(0, steps)]) for kind in FEWER_KINDS
            for schedule, steps in schedules(kind, bits, rng)]
    long_entries = Schedule("table", values=tuple(rng.integers(0, 2**bits, 300).tolist()),
                            steps_per_entry=2**32 - 5, lo=100, hi=2**bits - 100)
    runs.append((long_entries.validated("schedule", bits),
                 [(2**32 - 6, 3), (2**40 + 7, 2), (299 * (2**32 - 5) - 1, 3), (MAX_STEPS - 2, 3)]))
    run_unit(bits, runs, serial, kinds=FEWER_KINDS)
    dut = ScheduleUnit(bits=bits, table_depth=TABLE_DEPTH, serial=serial, kinds=FEWER_KINDS)
    ports = {name for name in dut.signature.members if name.startswith("cfg_")}
    assert ports == {"cfg_kind", "cfg_start", "cfg_steps_per_entry", "cfg_table_length"}
    with pytest.raises(ConfigError, match=r"gain\.kind = 'exponential': this hardware computes "
                       r"only the kinds \('constant', 'table'\)"):
        schedule_register_values(Schedule.exponential(3, 100), bits, TABLE_DEPTH, name="gain",
                                 kinds=FEWER_KINDS)
    with pytest.raises(ValueError, match="kind = 'logarithmic': must be one of"):
        dut.max_latency("logarithmic")


def test_constructor_checks_its_arguments():
    assert (repr(ScheduleUnit(bits=14, table_depth=256))
            == "ScheduleUnit(bits=14, table_depth=256, serial=False, kinds=" + repr(KINDS) + ")")
    assert (repr(ScheduleUnit(bits=14, table_depth=256, serial=True, kinds=["table", "linear"]))
            == "ScheduleUnit(bits=14, table_depth=256, serial=True, kinds=('linear', 'table'))")
    with pytest.raises(ConfigError, match=r"kinds = \('cubic',\): must be a non-empty"):
        ScheduleUnit(bits=14, kinds=("cubic",))
    with pytest.raises(TypeError, match=r"serial = 1: must be True or False"):
        ScheduleUnit(bits=16, serial=1)
    with pytest.raises(ConfigError, match=r"kinds = \('exponential', 'table'\): must be among "
                       r"\('constant', 'linear', 'table'\) for a serial unit"):
        ScheduleUnit(bits=16, serial=True, kinds=("table", "exponential"))
    with pytest.raises(ValueError, match=r"kind = 'cubic': must be one of"):
        ScheduleUnit(bits=16).max_latency("cubic")
    with pytest.raises(TypeError, match=r"bits = '16': must be an integer"):
        ScheduleUnit(bits="16")
    with pytest.raises(ValueError, match=r"bits = 0: must be in \[1, 24\]"):
        ScheduleUnit(bits=0)
    with pytest.raises(ValueError, match=r"table_depth = 100: must be in \[256, 4096\]"):
        ScheduleUnit(bits=16, table_depth=100)


def test_both_variants_have_the_same_ports_and_state():
    """serial only changes the inside: the signature and the state attributes are the same."""
    for bits in (1, 12, 24):
        parallel, serial = (ScheduleUnit(bits=bits, table_depth=256, serial=s,
                                         kinds=ScheduleUnit.SERIAL_KINDS) for s in SERIAL)
        assert parallel.signature == serial.signature
        for name in ("step", "ramp", "entry", "entry_step"):
            assert getattr(parallel, name).shape() == getattr(serial, name).shape(), name


@serial_variants
def test_converts_to_verilog(serial):
    text = verilog.convert(ScheduleUnit(bits=16, serial=serial, kinds=unit_kinds(serial)),
                           name="schedule_unit", emit_src=False)
    assert "module schedule_unit" in text
