"""Side by side: our mapper vs ZigZag 3.9.1 on the same hardware, each mapping scored by both.

Usage: python validation/zigzag/compare.py [--zigzag-python PATH] [--out results.csv] [--quick]

For every case (hardware, GEMM M x N x K) it records
* ours: our mapper's latency-optimal mapping (``convention="zigzag"``, per-operand cuts searched)
  and its CPU time (median of 3 cold runs, ``time.process_time``);
* ours scored by ZigZag: ZigZag given our loop nest as a fixed ``temporal_ordering`` (its LOMA
  still allocates loops to memories, bottom-up, as our ``greedy_cuts`` does);
* ZigZag: its own search (LOMA, lpf_limit 6, opt=latency), CPU time as ZigZag reports it run;
* ZigZag scored by us: its per-operand loop allocation turned into our mapping
  (:func:`mappings.zigzag.mapping_from_zigzag`) and costed by our model.
ZigZag runs in a separate interpreter (``--zigzag-python``, default ``$ZIGZAG_PYTHON`` or
``/tmp/zz/bin/python``); without it only our columns are filled. Results: ``results.csv`` here.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from mappings import mapper  # noqa: E402
from mappings.cost import evaluate  # noqa: E402
from mappings.mapping import gemm_problem  # noqa: E402
from mappings.zigzag import PJ, mapping_from_zigzag, scalesim_matched_arch, tpu_like_arch  # noqa: E402

HARDWARE = {
    # name: (ZigZag hardware, our SpatialArch, ZigZag spatial mapping, our spatial rows/cols)
    "r4": (str(HERE / "hardware" / "r4_scalesim_matched.yaml"),
           lambda: scalesim_matched_arch(32, 32, 256, 256, 128, 32),
           {"D1": ["K", 32], "D2": ["N", 32]}),
    "tpu_like": ("zigzag:tpu_like", tpu_like_arch, {"D1": ["N", 32], "D2": ["K", 32]}),
}

CASES = [  # (name, hardware, M, N, K); R4/R5 from accel/README.md, the rest new layers
    ("R4", "r4", 512, 512, 512),
    ("R5", "tpu_like", 512, 512, 512),
    ("R4-4096x4096x1024", "r4", 4096, 4096, 1024),
    ("r4-ffn-1024x4096x1024", "r4", 1024, 4096, 1024),
    ("r4-decode-64x4096x4096", "r4", 64, 4096, 4096),
    ("tpu-ffn-1024x4096x1024", "tpu_like", 1024, 4096, 1024),
    ("tpu-qkv-2048x768x768", "tpu_like", 2048, 768, 768),
]


def ours(hw: str, m: int, n: int, k: int) -> tuple:
    arch = HARDWARE[hw][1]()
    cpu = []
    for _ in range(3):
        mapper._search.cache_clear()
        t0 = time.process_time()
        res = mapper.search(gemm_problem(m, n, k), arch, objective="latency",
                            convention="zigzag", dataflow="ws")
        cpu.append(time.process_time() - t0)
    return arch, res, statistics.median(cpu)


def zigzag_runs(python: str, cases: list[dict]) -> list[dict] | None:
    if not python or not Path(python).exists():
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(cases, fh)
    out = subprocess.run([python, str(HERE / "zigzag_side.py"), fh.name], capture_output=True,
                         text=True, cwd=tempfile.gettempdir(), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zigzag-python", default=os.environ.get("ZIGZAG_PYTHON",
                                                              "/tmp/zz/bin/python"))
    ap.add_argument("--out", default=str(HERE / "results.csv"))
    ap.add_argument("--quick", action="store_true", help="R4 and R5 only")
    args = ap.parse_args()
    cases = CASES[:2] if args.quick else CASES
    rows, zz_cases = [], []
    for name, hw, m, n, k in cases:
        arch, res, cpu = ours(hw, m, n, k)
        nest = res.mapping.nest()
        ordering = [[r.upper(), int(x)] for r, x in reversed(nest) if x > 1]
        zz_hw, _, spatial = HARDWARE[hw]
        zz_cases.append({"hardware": zz_hw, "m": m, "n": n, "k": k, "spatial": spatial})
        zz_cases.append({"hardware": zz_hw, "m": m, "n": n, "k": k, "spatial": spatial,
                         "ordering": ordering})
        rows.append({"case": name, "hardware": hw, "M": m, "N": n, "K": k,
                     "ours_latency": res.cost.latency_cycles,
                     "ours_energy_uJ": res.cost.energy_total / PJ / 1e6, "ours_cpu_s": cpu,
                     "ours_mapping": res.mapping.describe(arch)})
    zz = zigzag_runs(args.zigzag_python, zz_cases)
    for i, row in enumerate(rows):
        if zz is None:
            continue
        free, fixed = zz[2 * i], zz[2 * i + 1]
        _, _, m, n, k = cases[i]
        arch = HARDWARE[row["hardware"]][1]()
        res = mapper.search(gemm_problem(m, n, k), arch, objective="latency",
                            convention="zigzag", dataflow="ws")
        zm = mapping_from_zigzag(free["allocation"], free["memories"], arch,
                                 res.mapping.spatial_rows, res.mapping.spatial_cols)
        zc = evaluate(gemm_problem(m, n, k), arch, zm, "zigzag")
        row.update({
            "ours_by_zigzag_latency": fixed["latency_cycles"],
            "ours_by_zigzag_energy_uJ": fixed["energy_pJ"] / 1e6,
            "zigzag_latency": free["latency_cycles"], "zigzag_energy_uJ": free["energy_pJ"] / 1e6,
            "zigzag_by_ours_latency": zc.latency_cycles,
            "zigzag_by_ours_energy_uJ": zc.energy_total / PJ / 1e6,
            "zigzag_cpu_s": free["cpu_s"], "speedup": free["cpu_s"] / row["ours_cpu_s"],
            "zigzag_mapping": zm.describe(arch)})
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    for r in rows:
        print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in r.items() if "mapping" not in k))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
