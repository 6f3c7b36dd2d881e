"""The register map of the array core: one description, read by the HDL and by the host.

Pure Python (no Amaranth), so host code imports it without the HDL toolchain. The core's bus
(hdl/array_core.py) decodes exactly these addresses; the host driver (scripts/limemu/host.py)
encodes and decodes through them. Nothing about addresses is written anywhere else.

Bus: 32-bit words, word addresses. A register of w bits takes ceil(w/32) consecutive words,
least significant word first. A memory of `depth` entries of w bits takes
``depth * stride`` words, ``stride`` = ceil(w/32) rounded up to a power of two; entry i, word j
is at ``base + i * stride + j``. Writing the last word of a wide entry commits the entry (the
lower words are staged), so an entry is never half-written.

Memories of the lane banks are indexed by (group, lane) as ``group * lanes_p2 + lane``
(lanes_p2 = lanes rounded up to a power of two): the hardware never divides by `lanes`.
The slot of position p of the update order is ``slot[p] = group * lanes + lane``.
"""

from dataclasses import dataclass

from limemu.model.counters import counter_layout
from limemu.model.errors import require
from limemu.model.schedules import KINDS, MAX_TABLE_ENTRIES, STEP_BITS, schedule_registers

MAGIC = 0x4C494D45            # "LIME"
VERSION = 1
WORD_BITS = 32
RUN_CYCLES_BITS = 48          # a banked core's run-cycle count: 78 hours at 1 GHz

# bits of the control register (write: strobes) and the status register (read)
CONTROL = {"start": 0, "stop": 1, "clear": 2, "clear_errors": 3, "init_field": 4, "accept": 5}
STATUS = {"busy": 0, "done": 1, "error_busy_write": 2, "error_address": 3,
          "error_config": 4, "accepted": 5}


def words(width):
    return -(-width // WORD_BITS)


def pow2_at_least(n):
    return 1 << max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class Region:
    """One register or memory of the map."""

    name: str
    base: int                 # word address
    width: int                # bits of one entry
    signed: bool = False
    access: str = "rw"        # rw | ro | wo (strobes)
    depth: int = 0            # 0: a register; else a memory of `depth` entries

    @property
    def is_memory(self):
        return self.depth > 0

    @property
    def stride(self):
        return pow2_at_least(words(self.width)) if self.is_memory else words(self.width)

    @property
    def size(self):
        return self.depth * self.stride if self.is_memory else words(self.width)

    def address(self, index=0, word=0):
        return self.base + index * self.stride + word

    @property
    def block_bits(self):
        """k such that the region lies in one aligned block of 2**k words: decoding compares
        the address bits from k up with ``base >> k`` and only the k low bits with constants
        (a memory's block is its own aligned span, so its offset is just the low bits)."""
        return (self.base ^ (self.base + self.size - 1)).bit_length()


#: the array cores: ``pipelined`` (hdl/array_core.py: every lane in one cycle, a speculative
#: group pipeline), ``compact`` (hdl/compact_core.py: one lane, one evaluation at a time, for
#: the smallest FPGAs) and ``throughput`` (hdl/throughput_core.py: many lanes, Q in rows banked
#: by lane, groups streamed under an exact hazard rule, speculating past its boundaries). They
#: speak the same register map (less what a core leaves out, see RegisterMap) and give the same
#: results.
CORES = ("pipelined", "compact", "throughput")
#: the schedule kinds each core's schedule units compute. The compact core has the constant and
#: the table (piecewise constant, any curve in up to table_depth pieces): the datapaths of the
#: computed kinds (a ramp, a leading-one normaliser, a multiplier, two ROMs, the clamp) would
#: not fit an iCE40UP5K beside the array.
CORE_SCHEDULE_KINDS = {"pipelined": KINDS, "compact": ("constant", "table"), "throughput": KINDS}
#: the cores that store Q as rows banked by lane (regions ``column``, ``qrow``, ``group_wait``)
#: and have neither external tilts nor per-cell counters
BANKED_CORES = ("throughput",)
#: the memories indexed by slot (group * lanes_p2 + lane), one entry per cell
LANE_REGIONS = ("weight", "valid", "field", "diag", "bias", "tilt", "cell_up", "cell_down",
                "column")
#: the memories whose entry i lives in lane ``i % lanes_p2``'s bank but is not one per cell:
#: a dense Q's entry ``(column * groups_p2 + row group) * lanes_p2 + row lane``
LANE_BANKED_REGIONS = ("q",)


#: the cores with the Metropolis-Hastings commands (python_model/mh.py) for a multi-level array:
#: a step with zero external tilts proposes; ``accept`` then decides the proposal on the
#: energy difference the host wrote into ``mh_delta``, with a generator of its own (seed
#: number ``lanes``) and a crossing unit; a rejected proposal is reverted by the core
MH_CORES = ("pipelined", "compact")


def has_mh(spec, geometry):
    """Whether a core of this spec and geometry has the MH commands and counters' sources."""
    return not spec.spins and geometry.core in MH_CORES


def mh_delta_bits(spec):
    """Signed width of ``mh_delta`` (E' - E in energy LSBs): its heat fits the counters'
    per-cycle increments (hdl/counter_bank.py)."""
    return spec.tilt_bits + 2


def seed_count(spec, geometry):
    """Seeds a core takes: one per lane, and the acceptance generator's (number ``lanes``)."""
    return spec.lanes + (1 if has_mh(spec, geometry) else 0)


@dataclass(frozen=True)
class Geometry:
    """The sizes the hardware is built for (the Spec's widths plus capacities), and which
    core holds them."""

    lanes: int
    groups: int               # group capacity (>= the update order's groups)
    q_storage: str            # dense | sparse
    # sparse: entries of Q (nonzeros); dense: unused; a banked core (BANKED_CORES): rows of
    # Q, each one (group, value) per lane, whatever q_storage says (it only decides how the
    # field additions are counted)
    q_capacity: int
    table_depth: int = MAX_TABLE_ENTRIES
    core: str = "pipelined"   # one of CORES

    @property
    def schedule_kinds(self):
        return CORE_SCHEDULE_KINDS[self.core]

    @property
    def lanes_p2(self):
        return pow2_at_least(self.lanes)

    @property
    def groups_p2(self):
        return max(2, pow2_at_least(self.groups))      # >= 2: every bank address has a bit

    @property
    def slots(self):
        """Bank index space: group * lanes_p2 + lane."""
        return self.groups_p2 * self.lanes_p2

    @property
    def lane_bits(self):
        """Bits of the lane in a bank index (0 for one lane)."""
        return (self.lanes_p2 - 1).bit_length()

    @property
    def group_bits(self):
        return (self.groups_p2 - 1).bit_length()

    @property
    def ptr_bits(self):
        """Width of a sparse column's start and of its length."""
        return max(1, self.q_capacity.bit_length())

    def entry_layout(self, q_bits):
        """(offset, width) of the fields of a sparse Q entry: value, target lane, target group."""
        return {"value": (0, q_bits), "lane": (q_bits, self.lane_bits),
                "group": (q_bits + self.lane_bits, self.group_bits)}

    def entry_bits(self, q_bits):
        return sum(width for _, width in self.entry_layout(q_bits).values())

    def pack_entry(self, q_bits, value, index):
        """A sparse entry: Q value (two's complement) for the row at bank index `index`."""
        layout = self.entry_layout(q_bits)
        return ((value & ((1 << q_bits) - 1))
                | ((index & (self.lanes_p2 - 1)) << layout["lane"][0])
                | ((index >> self.lane_bits) << layout["group"][0]))

    def pack_column(self, start, length):
        """A sparse column's table entry: its first entry and its length."""
        return start | (length << self.ptr_bits)

    # -- the banked layout of Q (BANKED_CORES) ---------------------------------------------------
    @property
    def banked(self):
        return self.core in BANKED_CORES

    @property
    def adds_bits(self):
        """Width of a banked column's count of nonzeros (at most a value per lane per row)."""
        return max(1, (self.q_capacity * self.lanes).bit_length())

    def banked_column_layout(self):
        """(offset, width) of a banked column's fields: first row, rows, nonzeros."""
        p = self.ptr_bits
        return {"first": (0, p), "rows": (p, p), "nonzeros": (2 * p, self.adds_bits)}

    def pack_banked_column(self, first, rows, nonzeros):
        return first | (rows << self.ptr_bits) | (nonzeros << (2 * self.ptr_bits))

    def row_entry_bits(self, q_bits):
        """Bits of one lane's part of a row of Q: the value, then the target group."""
        return q_bits + self.group_bits

    def pack_row(self, q_bits, entries):
        """A row of banked Q from ``{lane: (group, value)}`` (lanes left out add nothing)."""
        bits = self.row_entry_bits(q_bits)
        word = 0
        for lane, (group, value) in entries.items():
            word |= ((value & ((1 << q_bits) - 1)) | (group << q_bits)) << (lane * bits)
        return word

    @property
    def dense_q_depth(self):
        """Per-bank entries of a dense Q: column index (slots) x row group (groups_p2)."""
        return self.slots * self.groups_p2


class RegisterMap:
    """Addresses of everything the host reads or writes, generated from (spec, geometry)."""

    def __init__(self, spec, geometry):
        g = geometry
        require(g.lanes == spec.lanes, "geometry.lanes", g.lanes, f"must equal spec.lanes = "
                f"{spec.lanes}")
        require(g.groups * g.lanes >= spec.cells, "geometry.groups", g.groups,
                f"must be >= cells / lanes = {-(-spec.cells // spec.lanes)}")
        require(1 <= g.table_depth <= MAX_TABLE_ENTRIES, "geometry.table_depth", g.table_depth,
                f"must be in [1, {MAX_TABLE_ENTRIES}]")
        require(g.core in CORES, "geometry.core", g.core, f"must be one of {CORES}")
        require(g.core != "compact" or g.lanes == 1, "lanes", g.lanes,
                "must be 1 for the compact core (it evaluates one cell at a time)")
        require(not g.banked or spec.cell_counter_bits == 0, "cell_counter_bits",
                spec.cell_counter_bits, f"must be 0 for the {g.core} core (it has no per-cell "
                "counters: use the pipelined core)")
        self.spec, self.geometry = spec, g
        self.regions = {}
        self._next = 0
        reg = self._register
        reg("magic", WORD_BITS, access="ro")
        reg("version", WORD_BITS, access="ro")
        reg("control", len(CONTROL), access="wo")
        reg("status", len(STATUS), access="ro")
        reg("run_steps", STEP_BITS)
        reg("cells", max(1, spec.cells.bit_length()))
        reg("groups", g.group_bits + 1)
        reg("external_tilt", 1)
        reg("step", STEP_BITS, access="ro")
        reg("barrier_now", spec.barrier_bits, access="ro")
        reg("gain_now", spec.gain_bits, access="ro")
        reg("loss2", spec.loss_bits, signed=True)
        if has_mh(spec, g):
            reg("mh_delta", mh_delta_bits(spec), signed=True)
        for name, width, signed in counter_layout(spec):
            reg(f"counter_{name}", width, signed=signed, access="ro")
        reg("overflow", len(counter_layout(spec)), access="ro")
        if g.banked:
            reg("run_cycles", RUN_CYCLES_BITS, access="ro")   # the core's cycles in runs
        if spec.cell_counter_bits:
            reg("cell_overflow", 1, access="ro")          # sticky: a per-cell counter wrapped
        for unit, bits in (("barrier", spec.barrier_bits), ("gain", spec.gain_bits)):
            for name, width, signed in schedule_registers(bits, g.table_depth,
                                                          g.schedule_kinds):
                reg(f"{unit}_{name}", width, signed=signed)
        mem = self._memory
        mem("seed", 216, pow2_at_least(seed_count(spec, g)), access="wo")
        mem("weight", max(spec.weight_bits, 2), g.slots, signed=True)
        mem("valid", 1, g.slots)
        mem("field", spec.field_bits, g.slots, signed=True)
        mem("diag", spec.q_bits, g.slots, signed=True)
        mem("bias", spec.field_bits, g.slots, signed=True)
        if not g.banked:
            mem("tilt", spec.tilt_bits, g.slots, signed=True)
        if spec.cell_counter_bits:
            # per-cell move counters: the host zeroes them when it loads a run
            mem("cell_up", spec.cell_counter_bits, g.slots)
            mem("cell_down", spec.cell_counter_bits, g.slots)
        if g.banked:
            require(g.q_capacity >= 1, "geometry.q_capacity", g.q_capacity, "must be >= 1")
            mem("column", sum(w for _, w in g.banked_column_layout().values()), g.slots)
            mem("qrow", g.lanes * g.row_entry_bits(spec.q_bits), g.q_capacity)
            mem("group_wait", 1, g.groups_p2)
        elif g.q_storage == "dense":
            mem("q", spec.q_bits, g.dense_q_depth * g.lanes_p2, signed=True)
        else:
            require(g.q_capacity >= 1, "geometry.q_capacity", g.q_capacity, "must be >= 1")
            mem("column", 2 * g.ptr_bits, g.slots)             # Geometry.pack_column
            mem("entry", g.entry_bits(spec.q_bits), g.q_capacity)
        if "table" in g.schedule_kinds:
            mem("barrier_table", spec.barrier_bits, g.table_depth, access="wo")
            mem("gain_table", spec.gain_bits, g.table_depth, access="wo")
        self.address_bits = max(1, (self._next - 1).bit_length())

    def _register(self, name, width, signed=False, access="rw"):
        self._add(Region(name, self._next, width, signed, access))

    def _memory(self, name, width, depth, signed=False, access="rw"):
        size = pow2_at_least(Region(name, 0, width, signed, access, depth).size)
        base = -(-self._next // size) * size         # aligned: decoding is a bit compare
        self._add(Region(name, base, width, signed, access, depth))

    def _add(self, region):
        self.regions[region.name] = region
        self._next = region.base + region.size

    def __getitem__(self, name):
        return self.regions[name]

    def __iter__(self):
        return iter(self.regions.values())

    def lane_limited(self, region):
        """Whether entry i of `region` belongs to lane ``i % lanes_p2``, which must be < lanes
        (lane banks, the field and a dense Q; seeds are indexed by lane alone). A lane that
        does not exist has no bank: its entries are refused, not silently dropped."""
        return region.name in LANE_REGIONS + LANE_BANKED_REGIONS

    def index_limit(self, region):
        """Entries of a memory region that exist (seed: one per lane)."""
        return seed_count(self.spec, self.geometry) if region.name == "seed" else region.depth

    def region_of(self, address):
        """The region holding `address`, or None."""
        for region in self:
            if region.base <= address < region.base + region.size:
                return region
        return None

    def refusal(self, address, *, write, running):
        """Why the core refuses one word access (None: accepted). "address": outside every
        region, the wrong direction, a word past an entry's words, a lane or seed that does
        not exist; "busy": anything but a register read or a control write during a run.
        The host bridge (hdl/host_bridge.py) checks every word of a request against this rule
        before it applies any."""
        for region in self:
            if not region.base <= address < region.base + region.size:
                continue
            if region.access == ("ro" if write else "wo"):
                return "address"
            if not region.is_memory:
                if running and write and region.name != "control":
                    return "busy"
                return None
            index, word = divmod(address - region.base, region.stride)
            lanes_p2 = self.geometry.lanes_p2
            if (word >= words(region.width) or index >= self.index_limit(region)
                    or (self.lane_limited(region) and index % lanes_p2 >= self.spec.lanes)):
                return "address"
            return "busy" if running else None
        return "address"

    def __repr__(self):
        return f"RegisterMap(spec={self.spec!r}, geometry={self.geometry!r})"

    def describe(self):
        """A printable table of the map."""
        lines = [f"{'name':22s} {'address':>10s} {'words':>8s} {'bits':>5s} access"]
        for r in self:
            kind = f"{r.depth} x" if r.is_memory else ""
            lines.append(f"{r.name:22s} {r.base:#10x} {r.size:8d} {kind:>8s}{r.width:5d} "
                         f"{r.access}{' signed' if r.signed else ''}")
        return "\n".join(lines)


def to_words(value, width):
    """Two's complement words (least significant first) of `value` in `width` bits."""
    v = value & ((1 << width) - 1)
    return [(v >> (WORD_BITS * i)) & 0xFFFFFFFF for i in range(words(width))]


def from_words(ws, width, signed):
    v = 0
    for i, w in enumerate(ws):
        v |= int(w) << (WORD_BITS * i)
    v &= (1 << width) - 1
    if signed and v >> (width - 1):
        v -= 1 << width
    return v
