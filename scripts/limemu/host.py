"""Host side of the array core: what to write to load a run, what to read back, how to decode.

Pure functions over hdl/regmap.py (no simulator, no serial port): the Verilator testbench,
the virtual board and a real board all move the same words. A "plan" is a list of
(word address, 32-bit word) writes; reads are lists of addresses whose words are decoded here.
"""

import numpy as np

from limemu.hdl.lane_rng import seed_word
from limemu.hdl.regmap import (
    BANKED_CORES,
    CONTROL,
    STATUS,
    Geometry,
    RegisterMap,
    from_words,
    to_words,
    words,
)
from limemu.model.counters import counter_layout
from limemu.model.errors import require
from limemu.model.order import bank_rows
from limemu.model.schedules import schedule_register_values, schedule_table_values


def geometry_for(spec, order, q_nnz=0, table_depth=None, core="pipelined", problem=None):
    """The smallest geometry that holds `spec` with this update order (and sparse Q), for
    the core named `core`; a banked core (the throughput core) holds Q as rows, as many as
    `problem`'s columns need in this order."""
    kwargs = {} if table_depth is None else {"table_depth": table_depth}
    if core in BANKED_CORES:
        require(spec.tilt == "field", "tilt", spec.tilt, f"the {core} core computes tilts "
                "from Q and b only (no external tilts): use the pipelined core")
        require(spec.cell_counter_bits == 0, "cell_counter_bits", spec.cell_counter_bits,
                f"the {core} core has no per-cell counters: use the pipelined core")
        q_nnz = banked_rows_needed(problem, order, spec.lanes) if problem is not None else 0
    return Geometry(lanes=spec.lanes, groups=order.groups, q_storage=spec.q_storage,
                    q_capacity=max(1, q_nnz), core=core, **kwargs)


def check_schedules(spec, geometry):
    """Raises ConfigError for a schedule the build's schedule units do not compute (or that
    does not fit them), naming it: before anything is built or loaded."""
    for unit, bits in (("barrier", spec.barrier_bits), ("gain", spec.gain_bits)):
        schedule = getattr(spec, unit)
        require(schedule.kind in geometry.schedule_kinds, f"{unit}.kind", schedule.kind,
                f"the {geometry.core} core computes only {geometry.schedule_kinds} schedules; "
                "`limemu run --tabulate N` runs it as a table of N entries sampled over the run")
        schedule_register_values(schedule, bits, geometry.table_depth, name=unit,
                                 kinds=geometry.schedule_kinds)


def bank_indices(rmap, order):
    """Bank index (group * lanes_p2 + lane) of every cell."""
    lanes = rmap.spec.lanes
    index = np.empty(len(order.sequence), dtype=np.int64)
    index[order.sequence] = (order.slot // lanes) * rmap.geometry.lanes_p2 + order.slot % lanes
    return index


def register_writes(rmap, name, value):
    region = rmap[name]
    return [(region.address(0, j), w) for j, w in enumerate(to_words(int(value), region.width))]


def entry_writes(rmap, name, index, value):
    region = rmap[name]
    return [(region.address(int(index), j), w)
            for j, w in enumerate(to_words(int(value), region.width))]


def control_write(rmap, *names):
    return [(rmap["control"].base, sum(1 << CONTROL[n] for n in names))]


def load_plan(rmap, problem, order, weights, *, external=False):
    """Writes that load a complete run: sizes, schedules, seeds, weights, b, Q. Then the host
    runs `init_field` (when there is a problem: the core computes g = QW - b and the loss
    register; wait for done) and `clear` (counters to 0, schedules to step 0): see
    load_sequence. `problem` may be None in external-tilt mode."""
    spec, geo = rmap.spec, rmap.geometry
    require(order.groups <= geo.groups, "groups", order.groups,
            f"the hardware holds at most {geo.groups} groups")
    index = bank_indices(rmap, order)
    w = np.asarray(weights, dtype=np.int64)
    plan = []
    plan += register_writes(rmap, "cells", len(order.sequence))   # a board may hold more
    plan += register_writes(rmap, "groups", order.groups)
    plan += register_writes(rmap, "external_tilt", int(external))
    for unit, bits in (("barrier", spec.barrier_bits), ("gain", spec.gain_bits)):
        schedule = getattr(spec, unit)
        values = schedule_register_values(schedule, bits, geo.table_depth, name=unit,
                                          kinds=geo.schedule_kinds)
        for name, value in values.items():
            plan += register_writes(rmap, f"{unit}_{name}", value)
        for i, value in enumerate(schedule_table_values(schedule, bits, name=unit)):
            plan += entry_writes(rmap, f"{unit}_table", i, value)
    for lane in range(spec.lanes):
        plan += entry_writes(rmap, "seed", lane, seed_word(spec.seed, lane))
    # every bank entry of a lane that exists is written: nothing of an earlier run survives
    slots = lane_slots(geo)
    valid = np.zeros(geo.slots, dtype=np.int64)
    valid[index] = 1
    banks = [("weight", _scatter(geo, index, w)), ("valid", valid)]
    if spec.cell_counter_bits:
        banks += [("cell_up", np.zeros(geo.slots)), ("cell_down", np.zeros(geo.slots))]
    for name, values in banks:
        for i in slots:
            plan += entry_writes(rmap, name, i, values[i])
    if problem is not None:
        for name, values in (("bias", _scatter(geo, index, problem.b)),
                             ("diag", _scatter(geo, index, problem.diag))):
            for i in slots:
                plan += entry_writes(rmap, name, i, values[i])
        plan += q_plan(rmap, problem, index)
    if geo.banked:
        plan += group_wait_plan(rmap, problem, order)
    return plan


def load_sequence(rmap, problem, order, weights, *, external=False):
    """[(kind, writes)]: the load, in the order a device performs it; kind "write" sends the
    words, kind "run" sends them and waits until the core is done."""
    sequence = [("write", load_plan(rmap, problem, order, weights, external=external))]
    if problem is not None:
        sequence.append(("run", control_write(rmap, "init_field")))
    sequence.append(("write", control_write(rmap, "clear")))
    return sequence


def lane_slots(geo):
    """Bank indices whose lane exists (lane < lanes): the others are refused."""
    return [i for i in range(geo.slots) if i % geo.lanes_p2 < geo.lanes]


def _scatter(geo, index, values):
    out = np.zeros(geo.slots, dtype=np.int64)
    out[index] = values
    return out


def q_plan(rmap, problem, index):
    """Writes of Q: every entry of a dense bank; the column table and entries when sparse;
    the banked rows, their column table and the group waits for a banked core."""
    geo = rmap.geometry
    plan = []
    if geo.banked:
        return banked_q_plan(rmap, problem, index)
    if geo.q_storage == "dense":
        dense = np.zeros(geo.dense_q_depth * geo.lanes_p2, dtype=np.int64)
        Q = problem.to_dense()
        rows, cols = np.nonzero(Q)
        row_group, row_lane = index[rows] >> geo.lane_bits, index[rows] & (geo.lanes_p2 - 1)
        dense[((index[cols] * geo.groups_p2 + row_group) << geo.lane_bits) + row_lane] = \
            Q[rows, cols]
        for i, value in enumerate(dense.tolist()):
            if i % geo.lanes_p2 < geo.lanes:           # a lane that does not exist has no bank
                plan += entry_writes(rmap, "q", i, value)
        return plan
    require(problem.nnz <= geo.q_capacity, "q_capacity", geo.q_capacity,
            f"the problem has {problem.nnz} nonzeros")
    spec = rmap.spec
    start = 0
    columns = np.zeros(geo.slots, dtype=np.int64)
    for cell in range(problem.n):                   # Q is symmetric: column m = row m
        lo, hi = problem.indptr[cell], problem.indptr[cell + 1]
        columns[index[cell]] = geo.pack_column(start, hi - lo)
        for row, value in zip(problem.indices[lo:hi].tolist(), problem.data[lo:hi].tolist()):
            plan += entry_writes(rmap, "entry", start,
                                 geo.pack_entry(spec.q_bits, value, int(index[row])))
            start += 1
    for i in lane_slots(geo):
        plan += entry_writes(rmap, "column", i, int(columns[i]))
    return plan


def banked_columns(problem, lanes, group_of, lane_of):
    """Every column of Q as rows of the banks: for cell m, a list of rows, each a dict
    {lane: (group, value)} holding the r-th nonzero of column m in each lane's bank (the
    throughput core applies a row in every bank at once)."""
    columns = []
    for cell in range(problem.n):
        lo, hi = problem.indptr[cell], problem.indptr[cell + 1]
        per_lane = {}
        for row, value in zip(problem.indices[lo:hi].tolist(), problem.data[lo:hi].tolist()):
            per_lane.setdefault(int(lane_of[row]), []).append((int(group_of[row]), value))
        depth = max((len(v) for v in per_lane.values()), default=0)
        columns.append([{lane: entries[r] for lane, entries in per_lane.items()
                         if r < len(entries)} for r in range(depth)])
    return columns


def banked_rows_needed(problem, order, lanes):
    """Rows of Q a banked core needs for `problem` in this update order: per column, the
    most nonzeros that fall in one lane's bank."""
    return int(bank_rows(problem, order.cell_lanes(lanes)).sum()) if problem.n else 0


def group_waits(problem, order):
    """Per group of the update order, whether it is a boundary, which must not read its fields
    before every earlier group's moves have landed: the first group, and every group with a
    cell coupled (Q_ij != 0, i != j) to a cell of an earlier group since the last boundary.
    The groups in between read fields that no pending move can change (in colour order a
    boundary starts each colour class). The throughput core issues a boundary speculatively
    and cancels it when an earlier group still in flight moves."""
    group_of = np.empty(problem.n, dtype=np.int64)
    group_of[order.sequence] = order.group
    since_wait = np.zeros(problem.n, dtype=bool)
    waits = np.zeros(order.groups, dtype=bool)
    members = np.split(order.sequence, np.flatnonzero(np.diff(order.group)) + 1)
    for group, cells in enumerate(members):
        neighbours = np.concatenate([problem.indices[problem.indptr[c]:problem.indptr[c + 1]]
                                     for c in cells]) if len(cells) else np.array([], int)
        if group == 0 or since_wait[neighbours].any():
            waits[group] = True
            since_wait[:] = False
        since_wait[cells] = True
    return waits


def banked_q_plan(rmap, problem, index):
    """The banked layout: rows of Q, the column table (first row, rows, nonzeros) of every
    slot that exists, and the group waits (every group of the map's capacity)."""
    geo, spec = rmap.geometry, rmap.spec
    group_of, lane_of = index >> geo.lane_bits, index & (geo.lanes_p2 - 1)
    columns = banked_columns(problem, spec.lanes, group_of, lane_of)
    needed = sum(len(rows) for rows in columns)
    require(needed <= geo.q_capacity, "q_capacity", geo.q_capacity,
            f"Q needs {needed} rows of the banks in this update order")
    plan, first = [], 0
    table = np.zeros(geo.slots, dtype=object)
    for cell, rows in enumerate(columns):
        nonzeros = int(problem.indptr[cell + 1] - problem.indptr[cell])
        table[index[cell]] = geo.pack_banked_column(first, len(rows), nonzeros)
        for row in rows:
            plan += entry_writes(rmap, "qrow", first, geo.pack_row(spec.q_bits, row))
            first += 1
    for i in lane_slots(geo):
        plan += entry_writes(rmap, "column", i, int(table[i]))
    return plan


def group_wait_plan(rmap, problem, order):
    """Writes of the group waits (a banked core): every group of the map's capacity."""
    waits = np.zeros(rmap.geometry.groups_p2, dtype=np.int64)
    if problem is not None:
        waits[:order.groups] = group_waits(problem, order)
    else:
        waits[:order.groups] = 1
    plan = []
    for group, wait in enumerate(waits.tolist()):
        plan += entry_writes(rmap, "group_wait", group, wait)
    return plan


def tilt_plan(rmap, order, half_tilts):
    """Writes of the external half tilts of every cell (energy LSBs)."""
    index = bank_indices(rmap, order)
    plan = []
    for cell, h in enumerate(np.asarray(half_tilts, dtype=np.int64).tolist()):
        plan += entry_writes(rmap, "tilt", index[cell], h)
    return plan


def run_plan(rmap, steps):
    return register_writes(rmap, "run_steps", steps) + control_write(rmap, "start")


# -- reading back ------------------------------------------------------------------------------
def state_addresses(rmap, order, *, field=True):
    """Addresses whose words decode_state turns into the array's state."""
    addresses = []
    for region in _state_regions(rmap, field):
        if region.is_memory:
            for i in bank_indices(rmap, order).tolist():
                addresses += [region.address(i, j) for j in range(words(region.width))]
        else:
            addresses += [region.address(0, j) for j in range(words(region.width))]
    return addresses


def decode_state(rmap, order, words_read, *, field=True):
    """dict: weights and field (per cell), counters (hardware values), overflow flags, step,
    loss2, barrier_now, gain_now, status flags."""
    it = iter(words_read)
    out = {}
    n = len(order.sequence)
    for region in _state_regions(rmap, field):
        k = words(region.width)
        if region.is_memory:
            out[region.name] = np.array([from_words([next(it) for _ in range(k)], region.width,
                                                    region.signed) for _ in range(n)],
                                        dtype=np.int64)
        else:
            out[region.name] = from_words([next(it) for _ in range(k)], region.width,
                                          region.signed)
    layout = counter_layout(rmap.spec)
    state = {
        "weights": out["weight"],
        "cell_counters": (out["cell_up"], out["cell_down"]) if "cell_up" in out else None,
        "cell_overflow": bool(out.get("cell_overflow", 0)),
        "field": out.get("field"),
        "counters": {name: out[f"counter_{name}"] for name, _, _ in layout},
        "overflow": {name: bool(out["overflow"] >> i & 1) for i, (name, _, _) in
                     enumerate(layout)},
        "status": {name: bool(out["status"] >> bit & 1) for name, bit in STATUS.items()},
    }
    for name in ("step", "loss2", "barrier_now", "gain_now"):
        state[name] = out[name]
    return state


def _state_regions(rmap, field):
    names = ["status", "step", "loss2", "barrier_now", "gain_now"]
    names += [f"counter_{name}" for name, _, _ in counter_layout(rmap.spec)]
    names += ["overflow", "weight"] + (["field"] if field else [])
    if rmap.spec.cell_counter_bits:
        names += ["cell_overflow", "cell_up", "cell_down"]
    return [rmap[name] for name in names]


__all__ = ["RegisterMap", "geometry_for", "load_plan", "load_sequence", "q_plan", "tilt_plan",
           "run_plan", "state_addresses", "decode_state", "control_write", "register_writes",
           "entry_writes", "bank_indices"]
