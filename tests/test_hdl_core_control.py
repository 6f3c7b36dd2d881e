# amaranth: UnusedElaboratable=no
"""A core's control and status logic (hdl/core_control.py) in Amaranth's simulator: which
strobe a control write gives the core, the status flags it leaves, the refusals and
clear_errors; and the shared signature's ports."""

import pytest
from amaranth import Shape
from amaranth.sim import Simulator
from limemu.hdl.core_control import CoreControl, CoreSignature
from limemu.hdl.regmap import CONTROL, STATUS, Geometry, RegisterMap
from limemu.model.spec import Spec

RMAP = RegisterMap(Spec(cells=8, lanes=2, weight_bits=4),
                   Geometry(lanes=2, groups=4, q_storage="dense", q_capacity=1, table_depth=256))


def control(*names):
    return sum(1 << CONTROL[name] for name in names)


def flags(ctx, dut):
    word = ctx.get(dut.status.as_value())
    return {name for name, bit in STATUS.items() if word >> bit & 1}


def simulate(testbench):
    dut = CoreControl(RMAP)
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def bench(ctx):
        ctx.set(dut.cells, 8)
        ctx.set(dut.groups, 4)
        ctx.set(dut.run_steps, 10)
        await testbench(ctx, dut)

    sim.add_testbench(bench)
    sim.run()


async def write(ctx, dut, word):
    """A control write: returns the strobes the core saw in its cycle."""
    ctx.set(dut.control.as_value(), word)
    strobes = {name for name in ("start_run", "start_init", "clear")
               if ctx.get(getattr(dut, name))}
    await ctx.tick()
    ctx.set(dut.control.as_value(), 0)
    return strobes


@pytest.mark.parametrize("word,strobe", [
    (control("start"), "start_run"), (control("init_field"), "start_init"),
    (control("clear"), "clear"), (control("start", "init_field", "clear"), "start_run"),
    (control("init_field", "clear"), "start_init")])
def test_one_strobe_at_a_time_in_priority_order(word, strobe):
    async def testbench(ctx, dut):
        assert await write(ctx, dut, word) == {strobe}
        assert flags(ctx, dut) == ({"busy"} if strobe != "clear" else set())
        if strobe != "clear":
            assert await write(ctx, dut, word) == set()    # not while busy
            ctx.set(dut.finish, 1)
            await ctx.tick()
            ctx.set(dut.finish, 0)
            assert flags(ctx, dut) == {"done"}

    simulate(testbench)


@pytest.mark.parametrize("register,value", [("cells", 0), ("cells", 9), ("groups", 0),
                                            ("groups", 5)])
def test_a_start_outside_the_build_sets_error_config(register, value):
    async def testbench(ctx, dut):
        ctx.set(getattr(dut, register), value)
        assert await write(ctx, dut, control("start")) == set()
        assert flags(ctx, dut) == {"error_config"} and ctx.get(dut.error)
        await write(ctx, dut, control("clear_errors"))
        assert flags(ctx, dut) == set() and not ctx.get(dut.error)

    simulate(testbench)


def test_a_start_of_no_steps_is_done_at_once():
    async def testbench(ctx, dut):
        ctx.set(dut.run_steps, 0)
        assert await write(ctx, dut, control("start")) == set()
        assert flags(ctx, dut) == {"done"}

    simulate(testbench)


def test_stop_is_kept_for_the_run_and_cleared_by_the_next_start():
    async def testbench(ctx, dut):
        await write(ctx, dut, control("stop"))
        assert not ctx.get(dut.stop_requested)            # no run: nothing to stop
        await write(ctx, dut, control("start"))
        await write(ctx, dut, control("stop"))
        assert ctx.get(dut.stop_requested)
        ctx.set(dut.finish, 1)
        await ctx.tick()
        ctx.set(dut.finish, 0)
        await write(ctx, dut, control("start"))
        assert not ctx.get(dut.stop_requested)

    simulate(testbench)


def test_refusals_set_their_flags_and_clear_errors_wins():
    async def testbench(ctx, dut):
        for port, flag in ((dut.refuse_address, "error_address"),
                           (dut.refuse_busy, "error_busy_write")):
            ctx.set(port, 1)
            await ctx.tick()
            ctx.set(port, 0)
            assert flag in flags(ctx, dut)
        ctx.set(dut.refuse_address, 1)                     # in the clear_errors cycle
        await write(ctx, dut, control("clear_errors"))
        ctx.set(dut.refuse_address, 0)
        assert flags(ctx, dut) == set()

    simulate(testbench)


def test_core_signature_is_the_bus_and_the_status_outputs():
    signature = CoreSignature(12)
    assert signature == CoreSignature(12) and signature != CoreSignature(13)
    assert {name: (member.flow.name, Shape.cast(member.shape).width)
            for name, member in signature.members.items()} == {
        "addr": ("In", 12), "wdata": ("In", 32), "we": ("In", 1), "re": ("In", 1),
        "rdata": ("Out", 32), "rack": ("Out", 1), "ready": ("Out", 1), "busy": ("Out", 1),
        "done": ("Out", 1), "error": ("Out", 1)}
