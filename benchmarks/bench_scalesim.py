"""Benchmark: SCALE-Sim case R1 through xpusim vs SCALE-Sim 3.0.0's own 27 s wall time.

Prints the in-process time of the exact run (numba warm, median of 5) and the wall time of the
whole CLI command (`xpusim import scalesim ...`, process start included), each next to the
speed-up over the reference wall time (accel/systolic_gemm_reference_cases.csv, column wall_s).
Usage: python benchmarks/bench_scalesim.py [REFERENCE_DIR]
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ref = Path(sys.argv[1] if len(sys.argv) > 1 else
               os.environ.get("XPUSIM_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))
    inputs = ref / "accel" / "scalesim_inputs"
    with open(ref / "accel" / "systolic_gemm_reference_cases.csv", newline="") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    from sim.micro.systolic_trace import ScaleSimConfig, run_gemm
    from xpusim.importers.scalesim import read_config

    for case, cfg_name in (("R1", "cfg_os_CALC.cfg"), ("R3", "cfg_ws_USER.cfg")):
        cfg = ScaleSimConfig(**read_config(str(inputs / cfg_name)))
        run_gemm(512, 512, 512, cfg)  # compile / load the numba cache
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            run_gemm(512, 512, 512, cfg)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        peer = float(rows[case]["wall_s"])
        print(f"{case}: in-process {t * 1e3:.1f} ms, SCALE-Sim {peer:.0f} s -> {peer / t:.0f}x")
    cmd = [sys.executable, "-m", "xpusim", "import", "scalesim", "--config",
           str(inputs / "cfg_os_CALC.cfg"), "--topology", str(inputs / "gemm512.csv"),
           "--layout", str(inputs / "layout_gemm512.csv"), "--json"]
    subprocess.run(cmd, capture_output=True, check=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True)
    wall = time.perf_counter() - t0
    peer = float(rows["R1"]["wall_s"])
    print(f"R1 CLI wall (process start included): {wall:.2f} s -> {peer / wall:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
