"""Where a board build's logic goes: LUT4 and flip-flops per component, after synthesis.

    python -m limemu.synth.breakdown --board icebreaker [limemu build's array options]

Synthesises the board top as `limemu build` does (same Yosys options), but keeps the hierarchy
(`-noflatten`, so the totals come out a little higher than a flat build's) and prints, for each
component of BoardTop, its LUT4 and flip-flops including its subcomponents. No place and route:
a UP5K build takes about 30 s. The figures tell which parts a smaller core must shrink.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from limemu import build as build_cli
from limemu.synth.boards import BoardWrapper, describe_array, find_tool

# cell types counted, per FPGA family: (LUT cells, flip-flop cell prefix)
COUNTED = {"ice40": (("SB_LUT4",), "SB_DFF"), "ecp5": (("LUT4",), "TRELLIS_FF")}


def module_cells(stat):
    """{module name: {cell type: count}} from Yosys' `stat -json` of a hierarchical design."""
    return {name: module.get("num_cells_by_type", {})
            for name, module in stat["modules"].items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cli.add_commands(sub)
    args = parser.parse_args(["build"] + (sys.argv[1:] if argv is None else argv))
    board, spec, geometry = build_cli.build_configuration(args)
    luts, ff_prefix = COUNTED[board.family]
    print(f"{board.title}: {describe_array(spec, geometry)}")
    with tempfile.TemporaryDirectory(prefix="limemu-breakdown-") as folder:
        folder = Path(folder)
        wrapper = BoardWrapper(board, spec, geometry, baud=args.baud)
        plan = board.make_platform().build(wrapper, name="top", do_build=False,
                                           synth_opts=board.synth_opts)
        plan.extract(folder)
        synth = f"synth_{board.family} {board.synth_opts} -top top -noflatten"
        script = f"read_rtlil top.il; {synth}; tee -q -o stat.json stat -json"
        print(f"  {find_tool('yosys')} -p '{synth}' ...", flush=True)
        subprocess.run([find_tool("yosys"), "-q", "-p", script], cwd=folder, check=True,
                       stdout=subprocess.DEVNULL)
        cells = module_cells(json.loads((folder / "stat.json").read_text()))

    # Amaranth names each instance's module by its path (top.top.core.barrier), so a
    # component's total is the sum over the modules under its name.
    totals = {}
    own = {}
    for module, counts in cells.items():
        lut = sum(counts.get(t, 0) for t in luts)
        ff = sum(n for t, n in counts.items() if t.startswith(ff_prefix))
        # a "$N" suffix: Amaranth's name for a submodule whose name a signal also has
        parts = [re.sub(r"\$\d+$", "", part) for part in module.lstrip("\\").split(".")]
        own[".".join(parts)] = (lut, ff)
        for depth in range(1, len(parts) + 1):
            total = totals.setdefault(".".join(parts[:depth]), [0, 0])
            total[0] += lut
            total[1] += ff
    print(f"  {'component (with its subcomponents)':<40} {'LUT4':>7} {'FF':>7}")
    for key in sorted(k for k in totals if k.startswith("top.top.") and k.count(".") <= 3):
        name = "  " * (key.count(".") - 2) + key.removeprefix("top.top.").rsplit(".", 1)[-1]
        print(f"  {name:<40} {totals[key][0]:>7} {totals[key][1]:>7}")
        if key.count(".") == 2 and any(k.startswith(key + ".") for k in totals):
            lut, ff = own.get(key, (0, 0))
            print(f"  {'  (its own logic)':<40} {lut:>7} {ff:>7}")
    lut, ff = totals["top"]
    print(f"  {'whole design':<40} {lut:>7} {ff:>7}")


if __name__ == "__main__":
    main()
