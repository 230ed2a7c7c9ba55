"""Benchmark: the whole FuseMax-vs-FLAT table (24 points, 48 engine runs through the mapper and
the NPU device) - goal <= 60 s. Reports CPU time (time.process_time) and wall time.
Usage: python benchmarks/bench_fusemax.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from xpusim.reproductions import fusemax

    t0, c0 = time.perf_counter(), time.process_time()
    out = fusemax.reproduce(argparse.Namespace(reference="", quiet=True))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"FuseMax table: {len(out['points'])} points in {cpu:.2f} s CPU ({wall:.2f} s wall)")
    for r in out["results"][:4]:
        print(f"  {r['claim']}: {r['measured']:.3f} vs {r['target']} ({r['rel_error']:+.1%})")
    fa = out.get("formula_averages", {})
    if fa:
        print("  artifact-formula port: " + ", ".join(f"{k} {v:.3f}" for k, v in fa.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
