"""A sum of many terms as a binary tree of adders, registered every few levels.

Used where a core adds one small value per lane each cycle (popcounts, loss changes): a flat sum
of 32 terms is 31 adders in a row, far too long a path for one cycle; the tree is 5 adder levels,
and a register every ``levels_per_stage`` levels keeps each cycle's path short. The sum appears
:func:`tree_latency` cycles after its terms.
"""

from amaranth import Signal, signed, unsigned


def tree_latency(terms, levels_per_stage=2):
    """Cycles between the terms and their sum (registers of the tree, output included)."""
    levels = max(0, (terms - 1).bit_length())
    return max(1, -(-levels // levels_per_stage))


def pipelined_sum(m, terms, name, levels_per_stage=2):
    """The registered sum of ``terms`` (Amaranth values, all signed or all unsigned), the tree's
    registers in ``m``'s sync domain; returns a Signal, valid tree_latency(len(terms)) cycles
    after the terms."""
    is_signed = any(t.shape().signed for t in terms)
    level, depth = list(terms), 0
    stages = tree_latency(len(terms), levels_per_stage)
    stage = 0
    while len(level) > 1 or stage < stages:
        if len(level) > 1:
            level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i]
                     for i in range(0, len(level), 2)]
            depth += 1
        if depth % levels_per_stage == 0 or len(level) == 1:
            registered = []
            for i, value in enumerate(level):
                width = len(value)
                reg = Signal(signed(width) if is_signed else unsigned(width),
                             name=f"{name}_s{stage}_{i}")
                m.d.sync += reg.eq(value)
                registered.append(reg)
            level = registered
            stage += 1
            if len(level) == 1 and stage >= stages:
                break
    return level[0]
