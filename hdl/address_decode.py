"""Address decoding of the register map (hdl/regmap.py) in logic: whether a bus address lies in
a region, and its offset there.

A region lies in one aligned block of 2**k words (``Region.block_bits``), so the decode is an
equality compare of the address bits above k and, only where the region does not fill its
block, compares of the k low bits with constants. Range compares on the whole address would
each need a carry chain as wide as the address (a logic cell a bit on an iCE40, for every
region); these need a few LUTs.
"""

from amaranth import Const


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
