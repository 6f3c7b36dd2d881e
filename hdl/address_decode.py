"""Address decoding of the register map (hdl/regmap.py) in logic: whether a bus address lies in
a region, its offset there, and the map's refusal rule (`AddressRule`).

A region lies in one aligned block of 2**k words (``Region.block_bits``), so the decode is an
equality compare of the address bits above k and, only where the region does not fill its
block, compares of the k low bits with constants. Range compares on the whole address would
each need a carry chain as wide as the address (a logic cell a bit on an iCE40, for every
region); these need a few LUTs.
"""

from amaranth import Const, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .regmap import words


def region_hit(region, address):
    """1 when `address` (an unsigned Value of any width) is in `region`."""
    k = region.block_bits
    low_mask = (1 << k) - 1
    first, last = region.base & low_mask, (region.base + region.size - 1) & low_mask
    hit = address[k:] == (region.base >> k) if len(address) > k else Const(1, 1)
    if first != 0:
        hit = hit & (address[:k] >= first)
    if last != low_mask:
        hit = hit & (address[:k] <= last)
    return hit


def region_offset(region, address):
    """``address - region.base`` for an address in `region`, in its block's k bits (only the
    low bits when the region starts its block, as every memory does)."""
    k = region.block_bits
    if k == 0:
        return Const(0, 1)
    low = address[:k]
    first = region.base & ((1 << k) - 1)
    return low if first == 0 else (low - first)[:k]


class AddressRule(wiring.Component):
    """`RegisterMap.refusal(address, write=..., running=...)` as combinational logic, built
    from the regions: ``bad_address`` for "address", ``busy`` for "busy".

    ``address`` is a burst address (the address field plus the word index) in the map's
    address bits plus one; ``beyond`` says the address field had a bit set above the map's
    address bits (outside every region then)."""

    def __init__(self, rmap):
        self.rmap = rmap
        super().__init__({"address": In(rmap.address_bits + 1), "beyond": In(1),
                          "write": In(1), "running": In(1),
                          "bad_address": Out(1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rmap, write, running = self.rmap, self.write, self.running
        m.d.comb += self.bad_address.eq(1)                  # in no region
        for region in rmap:
            wrong_way = {"ro": write, "wo": ~write, "rw": Const(0, 1)}[region.access]
            if not region.is_memory:
                bad = wrong_way
                busy = running & write if region.name != "control" else Const(0, 1)
            else:
                offset = region_offset(region, self.address)
                stride_bits = (region.stride - 1).bit_length()
                word, index = offset[:stride_bits], offset[stride_bits:]
                bad = (wrong_way | (word >= words(region.width))
                       | (index >= rmap.index_limit(region)))
                lane_bits = rmap.geometry.lane_bits
                if rmap.lane_limited(region) and lane_bits:
                    bad = bad | (index[:lane_bits] >= rmap.spec.lanes)
                busy = running
            with m.If(region_hit(region, self.address) & ~self.beyond):
                m.d.comb += [self.bad_address.eq(bad), self.busy.eq(~bad & busy)]
        return m
