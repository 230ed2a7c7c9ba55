"""DRAM model speed vs DRAMsim3 on the reference traces (shared/reference/dram).

For every case of ``dramsim3_trace_cases.csv`` the trace is regenerated with the reference
generator, then simulated ``--repeat`` times; the best wall time is reported twice: the cycle
kernel alone, and end to end (INI + trace parsing + simulation, what ``xpusim import dramsim3``
does). DRAMsim3's own wall time per case comes from the CSV (measured by whoever ran it there).

    python benchmarks/bench_dram.py [--repeat 3] [--reference DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reference", default=os.environ.get(
        "XPUSIM_REFERENCE_DIR", str(ROOT.parent / "shared" / "reference")))
    args = ap.parse_args()
    ref = Path(args.reference) / "dram"
    if not ref.is_dir():
        print(f"reference data not found at {ref}", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    import numpy as np

    from sim.micro.dram import simulate
    from sim.micro.dram_config import DramConfig
    from sim.micro.dram_ini import load_dramsim3_ini
    from sim.micro.dram_trace import read_trace

    simulate(DramConfig(), np.zeros(1, np.uint64), np.zeros(1), np.zeros(1), 10)
    warm = time.perf_counter() - t0
    print(f"import + JIT (cached) warm-up: {warm:.2f} s")
    rows = list(csv.DictReader(open(ref / "dramsim3_trace_cases.csv", newline="")))
    print(f"{'case':5s} {'config':24s} {'reqs':>7s} {'cycles':>8s} {'kernel s':>9s} "
          f"{'e2e s':>7s} {'DRAMsim3 s':>10s} {'speedup':>8s} {'req/s (e2e)':>12s}")
    tot_ours = tot_theirs = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in rows:
            trace = Path(tmp) / f"{r['case']}.trace"
            subprocess.run([sys.executable, str(ref / "make_trace.py"), str(trace), r["requests"],
                            r["pattern"], r["every_cycles"], r["write_fraction"],
                            r["stride_bytes"], r["span_bytes"], r["seed"]], check=True)
            cfg_path = ref / "dramsim3_configs" / r["config"]
            best_k = best_e = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                cfg = load_dramsim3_ini(cfg_path)
                tr = read_trace(trace)
                tk = time.perf_counter()
                simulate(cfg, tr.addrs, tr.writes, tr.times, int(r["cycles"]),
                         tail="newline" if tr.trailing_newline else "no_newline")
                te = time.perf_counter()
                best_k = min(best_k, te - tk)
                best_e = min(best_e, te - t)
            theirs = float(r["wall_s"])
            tot_ours += best_e
            tot_theirs += theirs
            print(f"{r['case']:5s} {r['config']:24s} {int(r['requests']):7d} "
                  f"{int(r['cycles']):8d} {best_k:9.3f} {best_e:7.3f} {theirs:10.3f} "
                  f"{theirs / best_e:7.2f}x {int(r['requests']) / best_e:12.0f}")
    print(f"total end-to-end: ours {tot_ours:.3f} s, DRAMsim3 {tot_theirs:.3f} s "
          f"({tot_theirs / tot_ours:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
