"""Benchmark: the mapper on the R4 problem (512^3 GEMM, SCALE-Sim-matched 32x32 hardware) and R5
(ZigZag's tpu_like) vs ZigZag 3.9.1's run times in the reference CSV, with latency and energy next
to ZigZag's under the same per-access costs. Mapper time: median CPU time (time.process_time) of
5 cold searches, so that other load on the machine does not count; next to it the same search on
the reference path (``search(..., fast=False)``: every nest scored by ``mappings.cost.evaluate``
instead of the vectorised ``evaluate_batch``, same result). The full side-by-side (more layers,
each tool scoring the other's mapping) is validation/zigzag/compare.py.
Usage: python benchmarks/bench_mapper.py [REFERENCE_DIR]
"""

from __future__ import annotations

import csv
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ref = Path(sys.argv[1] if len(sys.argv) > 1 else
               os.environ.get("XPUSIM_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))
    with open(ref / "accel" / "systolic_gemm_reference_cases.csv", newline="") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    from mappings import mapper
    from mappings.mapping import gemm_problem
    from mappings.zigzag import analyse, report, scalesim_matched_arch, tpu_like_arch

    for case, arch in (("R4", scalesim_matched_arch(32, 32, 256, 256, 128, 32)),
                       ("R5", tpu_like_arch())):
        cpu = []
        for _ in range(5):
            mapper.clear_memos()
            t0 = time.process_time()
            res, _ = analyse(512, 512, 512, arch)
            cpu.append(time.process_time() - t0)
        wall = statistics.median(cpu)
        ref_cpu = []
        for _ in range(3):
            mapper.clear_memos()
            t0 = time.process_time()
            mapper.search(gemm_problem(512, 512, 512), arch, objective="latency",
                          convention="zigzag", dataflow="ws", fast=False)
            ref_cpu.append(time.process_time() - t0)
        ref_wall = statistics.median(ref_cpu)
        r = report(res, arch)
        peer = rows[case]
        lat, e = float(peer["total_cycles"]), float(peer["energy_pJ"])
        print(f"{case}: mapper {wall * 1e3:.0f} ms CPU ({r['mappings_evaluated']} mappings) vs "
              f"ZigZag {float(peer['wall_s']):.1f} s -> {float(peer['wall_s']) / wall:.1f}x "
              f"(reference path {ref_wall * 1e3:.0f} ms, {ref_wall / wall:.1f}x slower); "
              f"latency {r['latency_cycles']:.0f} vs {lat:.0f} "
              f"({r['latency_cycles'] / lat - 1:+.1%});"
              f" energy {r['energy_pJ'] / 1e6:.2f} uJ vs {e / 1e6:.2f} uJ "
              f"({r['energy_pJ'] / e - 1:+.1%}); mapping {r['mapping']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
