"""Benchmark: system runs (streams, contended resources, transfers) against the one-stream engine
and bare SimPy.

Usage: python benchmarks/bench_system.py [--repeat N] [--baseline CHECKOUT] [--json]

Cases (issue "Systems"):
* the default run (`xpusim run`: Llama-2-7B, batch 8, prompt 512, 128 generated, H100);
* Llama-2-70B at TP 8 on DGX-H100 (batch 32, prompt 512, 128 generated);
* the same with 2 micro-batches and collectives overlapping compute (contended HBM and ports);
* OPT-30B on one RTX A6000 with half its weights in host DDR, 256 decode steps, prefetch 1
  (goal: <= 10 s).
Each is an in-process `simulate()` call (tracing, placement, plan, engine, invariants), median
of ``--repeat``. ``--baseline`` runs the first two cases on another checkout (e.g. a worktree of
the commit before the systems engine) in a subprocess, for the before/after ratio (goal <= 1.5).
Events per second of the whole run are compared with bare SimPy timeouts measured in the same
process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_args import rounds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import bare_simpy_events_per_s  # noqa: E402  (the same bare-SimPy yardstick)

CASES = {
    "default h100 llama2-7b b8 p512 g128": dict(arch="h100", model="llama2-7b", batch=8,
                                                prompt=512, gen=128),
    "dgx-h100 llama2-70b tp8 b32 p512 g128": dict(arch="dgx-h100", model="llama2-70b",
                                                  batch=32, prompt=512, gen=128, tp=8),
    "dgx-h100 llama2-70b tp8 mb2 overlap": dict(arch="dgx-h100", model="llama2-70b", batch=32,
                                                prompt=512, gen=128, tp=8, microbatches=2,
                                                overlap=True),
    "a6000-offload opt-30b 256 decode steps": dict(arch="a6000-offload", model="opt-30b",
                                                   batch=1, prompt=512, gen=257,
                                                   placement="weights=gpu.hbm:0.5,host_ddr:0.5",
                                                   prefetch=1),
}
BASELINE_CASES = ("default h100 llama2-7b b8 p512 g128", "dgx-h100 llama2-70b tp8 b32 p512 g128")

_ONE = """
import json, sys, time
sys.path.insert(0, {root!r})
from arch import load_arch
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario
c = {case!r}
ts = []
for _ in range({repeat}):
    t = time.perf_counter()
    r = simulate(load_arch(c["arch"]), get_model(c["model"]),
                 Scenario(batch=c["batch"], prompt_len=c["prompt"], gen_len=c["gen"],
                          tp=c.get("tp", 1)))
    ts.append(time.perf_counter() - t)
ts.sort()
print(json.dumps({{"wall_s": ts[len(ts) // 2], "latency_s": r.metrics["latency_s"],
                  "events": r.metrics["events"]}}))
"""


def run_case(case: dict) -> dict:
    """One in-process simulate() of ``case``: wall time, events, latency."""
    from arch import load_arch
    from sim.run import simulate
    from sim.system.placement import parse_placement
    from sim.system.schedule import Policies
    from workloads.models import get_model
    from workloads.scenario import Scenario

    sc = Scenario(batch=case["batch"], prompt_len=case["prompt"], gen_len=case["gen"],
                  tp=case.get("tp", 1), microbatches=case.get("microbatches", 1))
    spec = parse_placement(case["placement"]) if "placement" in case else None
    pol = Policies(overlap=case.get("overlap", False), prefetch=case.get("prefetch", 1))
    t = time.perf_counter()
    r = simulate(load_arch(case["arch"]), get_model(case["model"]), sc, placement=spec,
                 policies=pol)
    wall = time.perf_counter() - t
    m = r.metrics
    return {"wall_s": wall, "events": m["events"], "latency_s": m["latency_s"],
            "op_time_sum_s": m["op_time_sum_s"], "tpot_s": m["tpot_s"],
            "transfers": m.get("transfers", 0.0)}


def baseline(checkout: str, case: dict, repeat: int) -> dict:
    """The same case on another checkout, in a fresh interpreter."""
    code = _ONE.format(root=str(Path(checkout).resolve()), case=case, repeat=repeat)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=checkout)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=rounds, default=3)
    ap.add_argument("--baseline", default="", help="a checkout to run the first two cases on")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    run_case(CASES["default h100 llama2-7b b8 p512 g128"])  # warm numba caches and imports
    rows = []
    for name, case in CASES.items():
        runs = [run_case(case) for _ in range(args.repeat)]
        best = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
        row = {"case": name, **best, "events_per_s": best["events"] / best["wall_s"]}
        if args.baseline and name in BASELINE_CASES:
            base = baseline(args.baseline, case, args.repeat)
            row["baseline_wall_s"] = base["wall_s"]
            row["slowdown"] = best["wall_s"] / base["wall_s"]
            row["baseline_latency_s"] = base["latency_s"]
        rows.append(row)
    bare = statistics.median(bare_simpy_events_per_s() for _ in range(3))
    if args.json:
        print(json.dumps({"runs": rows, "bare_simpy_events_per_s": bare}, indent=2))
        return
    print(f"{'case':40s} {'wall s':>7s} {'events':>8s} {'ev/s':>9s} {'vs SimPy':>8s} "
          f"{'makespan s':>10s} {'sum ops s':>9s} {'before s':>8s} {'ratio':>6s}")
    for r in rows:
        before = f"{r['baseline_wall_s']:8.2f} {r['slowdown']:6.2f}" if "slowdown" in r else ""
        print(f"{r['case']:40s} {r['wall_s']:7.2f} {r['events']:8.0f} {r['events_per_s']:9.0f} "
              f"{r['events_per_s'] / bare:8.0%} {r['latency_s']:10.4f} "
              f"{r['op_time_sum_s']:9.4f} {before}")
    print(f"bare SimPy timeouts: {bare:,.0f} events/s (same process)")


if __name__ == "__main__":
    main()
