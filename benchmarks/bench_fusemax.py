"""Benchmark: the whole FuseMax-vs-FLAT table (24 points) - goal <= 60 s.
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

    t0 = time.perf_counter()
    out = fusemax.reproduce(argparse.Namespace(reference=""))
    wall = time.perf_counter() - t0
    print(f"FuseMax table: {len(out['points'])} points in {wall * 1e3:.1f} ms")
    for r in out["results"][:4]:
        print(f"  {r['claim']}: {r['measured']:.3f} vs {r['target']} ({r['rel_error']:+.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
