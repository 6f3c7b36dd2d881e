# amaranth: UnusedElaboratable=no
"""The throughput core and its parts in Amaranth's simulator.

The whole core runs the host plan the Verilator backend uses and must equal the golden model
after every segment (weights, field, counters, loss register); its parts are tested on their
own: the adder tree against sum(), the banked field engine against g + sum dw Q[:, m], the
host's group waits against the rule they implement. The core's cycle count must equal the one
limemu/core_timing.py predicts from the model's moves.
"""

import numpy as np
import pytest
from amaranth import Module, Signal, signed
from amaranth.sim import Simulator
from limemu.core_timing import Design, record_moves, run_cycles
from limemu.hdl.adder_tree import pipelined_sum, tree_latency
from limemu.hdl.banked_field import TARGET_COLUMN, TARGET_FIELD, TARGET_ROW, BankedField
from limemu.hdl.cores import make_core
from limemu.hdl.regmap import Geometry, RegisterMap
from limemu.host import (
    bank_indices,
    banked_columns,
    banked_rows_needed,
    decode_state,
    geometry_for,
    group_waits,
    load_sequence,
    run_plan,
    state_addresses,
)
from limemu.model.engine import LimArray
from limemu.model.order import update_order
from limemu.model.schedules import Schedule
from limemu.model.spec import Spec
from limemu.workloads import build_workload

from test_hdl_core import Bus, random_problem, simulate


# -- the adder tree ------------------------------------------------------------------------------

@pytest.mark.parametrize("terms", [1, 2, 3, 5, 8, 32, 33])
def test_adder_tree_sums_its_terms_after_its_latency(terms, rng):
    m = Module()
    inputs = [Signal(signed(6), name=f"t{k}") for k in range(terms)]
    total = pipelined_sum(m, inputs, "sum")
    latency = tree_latency(terms)
    values = rng.integers(-32, 32, (20, terms))

    async def testbench(ctx):
        seen = []
        for cycle in range(len(values) + latency):
            row = values[min(cycle, len(values) - 1)]
            for signal, value in zip(inputs, row):
                ctx.set(signal, int(value))
            await ctx.tick()
            seen.append(ctx.get(total))
        for cycle, row in enumerate(values):
            assert seen[cycle + latency - 1] == int(row.sum()), (cycle, latency)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


# -- the banked field engine -------------------------------------------------------------------

@pytest.mark.parametrize("lanes,storage", [(1, "sparse"), (3, "sparse"), (4, "dense")])
def test_banked_field_applies_every_move_of_a_group(lanes, storage, rng):
    """Groups of movers (with consecutive groups touching the same cells) through the mover
    port: g must become g0 + sum dw Q[:, m], and the engine reports each column's additions."""
    n = 11
    problem = random_problem(n, 4, density=0.6)
    spec = Spec(cells=n, weight_bits=4, lanes=lanes, q_storage=storage)
    order = update_order(n, lanes, "natural", problem)
    rows = banked_rows_needed(problem, order, lanes)
    geometry = Geometry(lanes=lanes, groups=order.groups, q_storage=storage, q_capacity=rows,
                        core="throughput")
    rmap = RegisterMap(spec, geometry)
    index = bank_indices(rmap, order)
    dut = BankedField(spec, geometry)
    g0 = rng.integers(-50, 50, n)
    columns = banked_columns(problem, lanes, index >> geometry.lane_bits,
                             index & (geometry.lanes_p2 - 1))
    occupied = {int(i) for i in index}

    def cells_of(group, mask):        # a core only moves lanes that hold a cell
        return sum(1 << lane for lane in range(lanes)
                   if mask >> lane & 1 and group * geometry.lanes_p2 + lane in occupied)

    moves = []
    for _ in range(12):
        group = int(rng.integers(order.groups))
        moves.append((group, cells_of(group, int(rng.integers(1, 2**lanes))),
                      rng.integers(-3, 4, lanes)))

    async def testbench(ctx):
        ctx.set(dut.cells, n)
        first = 0
        for cell, column in enumerate(columns):
            for row in column:
                await host_write(ctx, dut, TARGET_ROW, first, geometry.pack_row(spec.q_bits, row))
                first += 1
        first = 0
        for cell, column in enumerate(columns):
            nonzeros = int(problem.indptr[cell + 1] - problem.indptr[cell])
            await host_write(ctx, dut, TARGET_COLUMN, int(index[cell]),
                             geometry.pack_banked_column(first, len(column), nonzeros))
            first += len(column)
        for cell in range(n):
            await host_write(ctx, dut, TARGET_FIELD, int(index[cell]), int(g0[cell]) & 0xFFFFFFFF)
        adds = 0
        for group, mask, dws in moves:
            ctx.set(dut.mover_valid, 1)
            ctx.set(dut.mover_group, group)
            ctx.set(dut.mover_mask, mask)
            for lane in range(lanes):
                ctx.set(dut.mover_dw[lane], int(dws[lane]))
            while not ctx.get(dut.mover_ready):
                adds += ctx.get(dut.adds) if ctx.get(dut.adds_valid) else 0
                await ctx.tick()
            adds += ctx.get(dut.adds) if ctx.get(dut.adds_valid) else 0
            await ctx.tick()
        ctx.set(dut.mover_valid, 0)
        while ctx.get(dut.busy):
            adds += ctx.get(dut.adds) if ctx.get(dut.adds_valid) else 0
            await ctx.tick()
        expected, expected_adds = g0.copy(), 0
        Q = problem.to_dense()
        slot_cell = {int(index[c]): c for c in range(n)}
        for group, mask, dws in moves:
            for lane in range(lanes):
                cell = slot_cell.get(group * geometry.lanes_p2 + lane)
                if mask >> lane & 1 and cell is not None:
                    expected += int(dws[lane]) * Q[:, cell]
                    expected_adds += n if storage == "dense" else np.count_nonzero(Q[:, cell])
        for cell in range(n):
            ctx.set(dut.host_re, 1)
            ctx.set(dut.host_target, TARGET_FIELD)
            ctx.set(dut.host_index, int(index[cell]))
            await ctx.tick()
            ctx.set(dut.host_re, 0)
            value = ctx.get(dut.host_rdata) & ((1 << spec.field_bits) - 1)
            value -= (value >> (spec.field_bits - 1)) << spec.field_bits
            assert value == expected[cell], f"cell {cell}"
        assert adds == expected_adds

    simulate(dut, testbench)


async def host_write(ctx, dut, target, index, value):
    ctx.set(dut.host_we, 1)
    ctx.set(dut.host_target, target)
    ctx.set(dut.host_index, index)
    ctx.set(dut.host_wdata, value)
    await ctx.tick()
    ctx.set(dut.host_we, 0)


# -- the host's group waits --------------------------------------------------------------------

@pytest.mark.parametrize("order_kind,lanes", [("colour", 4), ("natural", 3), ("natural", 1)])
def test_group_waits_start_where_a_group_is_coupled_to_the_groups_since_the_last(
        order_kind, lanes):
    """Between two waits no cell of a group is coupled to a cell of an earlier group, and a
    group that waits is coupled to one of the groups since the previous wait (no needless
    wait); in colour order every colour class starts with a wait."""
    problem = build_workload("maxcut", cells=40, seed=5).problem
    order = update_order(40, lanes, order_kind, problem)
    waits = group_waits(problem, order)
    Q = problem.to_dense() != 0
    np.fill_diagonal(Q, False)
    members = [order.sequence[order.group == k] for k in range(order.groups)]
    since = []
    for k, cells in enumerate(members):
        coupled = bool(since) and Q[np.ix_(cells, np.concatenate(since))].any()
        assert waits[k] == (k == 0 or coupled), k
        since = [cells] if waits[k] else since + [cells]
    assert waits.sum() > 1


# -- the whole core -----------------------------------------------------------------------------

CORE_CASES = [("sparse", 1, 1, "colour"), ("sparse", 4, 1, "colour"), ("dense", 3, 4, "natural"),
              ("sparse", 5, 1, "natural")]


@pytest.mark.parametrize("storage,lanes,bits,order", CORE_CASES,
                         ids=[f"{s}-lanes={n}-bits={b}-{o}" for s, n, b, o in CORE_CASES])
def test_throughput_core_matches_model_in_amaranth_simulator(storage, lanes, bits, order):
    n = 13
    problem = random_problem(n, 5, density=0.4) if bits > 1 else \
        build_workload("maxcut", cells=n, seed=3).problem
    spec = Spec(cells=n, weight_bits=bits, lanes=lanes, q_storage=storage, seed=3, order=order,
                barrier=Schedule.linear(256, 2**14), gain=Schedule.exponential(32, 2**12))
    model = LimArray(spec, problem)
    geometry = geometry_for(spec, model.order, problem.nnz, table_depth=256, core="throughput",
                            problem=problem)
    rmap = RegisterMap(spec, geometry)
    dut = make_core(spec, geometry)

    seen = {"cancellations": 0, "draws_given_back": 0}

    async def watch_cancellations(ctx):
        async for _, _, squash, undo in ctx.tick().sample(dut.squash, dut.rngs[0].undo):
            seen["cancellations"] += squash
            seen["draws_given_back"] += undo

    timing, design = LimArray(spec, problem), Design.as_built(spec)

    async def testbench(ctx):
        bus = Bus(ctx, dut)
        await bus.load(load_sequence(rmap, problem, model.order, model.W0))
        for segment, steps in enumerate((1, 4, 12, 30)):
            cycles = ctx.get(dut.run_cycles)
            await bus.write(run_plan(rmap, steps))
            await ctx.tick()
            await bus.wait_done()
            # the core's cycles are those the cycle model predicts from the model's moves
            # (the first start waits for the schedules that the load's clear restarted)
            predicted = run_cycles(record_moves(timing, steps), design,
                                   after_clear=segment == 0)
            assert ctx.get(dut.run_cycles) - cycles == predicted, (steps, predicted)
            model.run(steps)
            state = decode_state(rmap, model.order,
                                 await bus.read(state_addresses(rmap, model.order)))
            assert state["weights"].tolist() == model.W.tolist()
            assert state["field"].tolist() == model.g.tolist()
            assert state["counters"] == model.counters.hardware()
            assert state["step"] == model.step
            assert state["loss2"] == model.loss2_track
        assert bus.latencies == {3}
        moves = model.counters.exact["up_moves"] + model.counters.exact["down_moves"]
        assert moves > 0, "nothing moved: the comparison would prove little"

    simulate(dut, testbench, watch_cancellations)
    # boundaries issued while moves were in flight, cancelled and issued again
    assert seen["cancellations"] > 0 and seen["draws_given_back"] > 0, seen
