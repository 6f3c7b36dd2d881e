"""Fuzz the host link of the virtual board against the model of its bridge.

    python scripts/fuzz_link.py --frames 100000 [--seed 1] [--core pipelined|compact]

Random and mutated frames (bit flips, truncation, inserted bytes, garbage, duplicates, reused
seqs, wrong commands, lengths and crcs, out-of-range addresses, writes during a run) go to the
board top under Verilator through its pty; every answer and every word read back is compared
with scripts/limemu/link_fuzz.py's BridgeModel. Prints progress, frames per second and the
findings, each with the bytes that were sent; exits 1 on any finding.
"""

import argparse
import random
import sys
import time

from limemu.link_fuzz import BUILDS, Fuzzer, fuzz_board


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=10000,
                        help="fuzzed requests to send (default 10000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--core", choices=sorted(BUILDS), default="pipelined")
    parser.add_argument("--max-findings", type=int, default=20,
                        help="stop after this many findings (default 20)")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    start = time.monotonic()
    vb, spec, geometry = fuzz_board(args.core)
    print(f"fuzz_link: {args.core} core, virtual board up in {time.monotonic() - start:.1f} s; "
          f"{args.frames} frames, seed {args.seed}", flush=True)
    fuzzer = Fuzzer(vb, spec, geometry)
    start = time.monotonic()
    last = start
    reported = 0
    try:
        while fuzzer.requests < args.frames and len(fuzzer.findings) < args.max_findings:
            fuzzer.case(rng.randint)
            for finding in fuzzer.findings[reported:]:
                print(f"  finding at frame {fuzzer.requests}: {finding}", flush=True)
            reported = len(fuzzer.findings)
            now = time.monotonic()
            if now - last >= 10:
                last = now
                print(f"  {fuzzer.requests} frames, {fuzzer.requests / (now - start):.0f} "
                      f"frames/s, {len(fuzzer.findings)} findings", flush=True)
        fuzzer.final_check()
    finally:
        fuzzer.close()
        vb.close()
    elapsed = time.monotonic() - start
    print(f"fuzz_link: {fuzzer.requests} fuzzed frames in {fuzzer.cases} cases, "
          f"{fuzzer.clean} clean requests (checks, runs), {elapsed:.1f} s: "
          f"{fuzzer.requests / elapsed:.0f} fuzzed frames/s")
    print("  answers: " + ", ".join(f"{name} {count}" for name, count in
                                    sorted(fuzzer.statuses.items())))
    print(f"  findings: {len(fuzzer.findings)} (printed above as they came)")
    return 1 if fuzzer.findings else 0


if __name__ == "__main__":
    sys.exit(main())
