# amaranth: UnusedElaboratable=no
"""Address decoding (hdl/address_decode.py) in Amaranth's simulator: AddressRule against the
register map's own refusal rule, over every address of two maps."""

import pytest
from amaranth.sim import Simulator
from limemu.hdl.address_decode import AddressRule
from limemu.hdl.regmap import Geometry, RegisterMap
from limemu.model.spec import Spec

MAPS = {
    "dense": RegisterMap(Spec(cells=8, lanes=2, weight_bits=4),
                         Geometry(lanes=2, groups=4, q_storage="dense", q_capacity=1,
                                  table_depth=256)),
    # three lanes of four: lane-limited entries (lane 3) and a seed (index 3) that do not
    # exist; sparse Q; per-cell counters
    "sparse3": RegisterMap(Spec(cells=9, lanes=3, weight_bits=2, cell_counter_bits=8,
                                q_storage="sparse"),
                           Geometry(lanes=3, groups=3, q_storage="sparse", q_capacity=20,
                                    table_depth=256)),
}


@pytest.mark.parametrize("name", list(MAPS))
def test_address_rule_is_the_register_map_refusal(name):
    """Every address of the map (and past it, up to where a burst can reach), write and read,
    running and not: AddressRule says exactly what RegisterMap.refusal says."""
    rmap = MAPS[name]
    dut = AddressRule(rmap)
    end = 1 << rmap.address_bits
    addresses = list(range(end + 4)) + [2 * end - 1, 2 * end, 2**32 - 1, 2**32, 2**32 + 254]
    outcomes = {None: 0, "address": 0, "busy": 0}

    async def testbench(ctx):
        for write in (False, True):
            for running in (False, True):
                ctx.set(dut.write, write)
                ctx.set(dut.running, running)
                for address in addresses:
                    ctx.set(dut.address, address & ((2 << rmap.address_bits) - 1))
                    ctx.set(dut.beyond, address >> (rmap.address_bits + 1) != 0)
                    expected = rmap.refusal(address, write=write, running=running)
                    actual = ("address" if ctx.get(dut.bad_address) else
                              "busy" if ctx.get(dut.busy) else None)
                    assert actual == expected, (f"{name}: address {address:#x} write={write} "
                                                f"running={running}")
                    outcomes[expected] += 1

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    assert all(outcomes.values())                  # every outcome occurred
