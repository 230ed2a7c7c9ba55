"""Wall time of the PIM reproductions (full runs) and their headline figures.

    python benchmarks/bench_reproductions_pim.py [--quick]

Each reproduction runs in this process after one warm-up import; the table shows wall seconds
and every claim's measured value next to its target.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAMES = ("neupims", "pim_gpt", "duplex")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the reproductions' --quick mode")
    args = ap.parse_args()
    t = time.perf_counter()
    import sim.micro.dram  # noqa: F401  (numba cache load)

    print(f"import warm-up: {time.perf_counter() - t:.2f} s")
    for name in NAMES:
        mod = importlib.import_module(f"xpusim.reproductions.{name}")
        ns = argparse.Namespace(quick=args.quick, seed=1, iterations=0, json=True)
        t = time.perf_counter()
        out = mod.reproduce(ns)
        wall = time.perf_counter() - t
        print(f"\n{out['name']}: {wall:.1f} s wall, {len(out.get('points', []))} points")
        for r in out["results"]:
            print(f"  {r['claim']:60s} {r['measured']:8.3f}  target {r['target']:8.3f}  "
                  f"({r['rel_error']:+.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
