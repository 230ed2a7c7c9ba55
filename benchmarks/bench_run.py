"""Benchmark: wall time of `xpusim run` and the engine's events/s against bare SimPy.

Usage: python benchmarks/bench_run.py [--repeat N] [--json]

Cases (issue "Foundation", item 8): Llama-2-7B (batch 1, prompt 2048, 256 generated) and
Llama-2-70B (batch 32, same lengths) on one H100 at roofline and tile fidelity. Llama-2-70B in
fp16 (138 GB) does not fit one 80 GB H100, so that case runs fp8 weights and KV cache (69 GB +
11 GB). Wall times are end-to-end CLI runs (process start, tracing, simulation, invariants,
JSON out; no report files) and in-process `simulate()` calls.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import simpy

CASES = [
    ("llama2-7b b1 p2048 g256", ["--model", "llama2-7b", "--batch", "1", "--prompt", "2048",
                                 "--gen", "256"]),
    ("llama2-70b b32 p2048 g256 fp8", ["--model", "llama2-70b", "--batch", "32", "--prompt",
                                       "2048", "--gen", "256", "--dtype", "fp8"]),
]


def bare_simpy_events_per_s(n: int = 300_000) -> float:
    """Plain SimPy: one process yielding n timeouts."""
    env = simpy.Environment()

    def proc():
        for _ in range(n):
            yield env.timeout(1e-6)

    env.process(proc())
    t = time.perf_counter()
    env.run()
    return n / (time.perf_counter() - t)


def engine_events_per_s(args_list: list[str], fidelity: str) -> dict:
    """Time the engine alone on a traced workload."""
    from arch import load_arch
    from sim.devices.base import device_for
    from sim.engine import Engine
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from workloads.tracer import trace_model

    opts = dict(zip(args_list[::2], args_list[1::2], strict=True))
    sc = Scenario(batch=int(opts["--batch"]), prompt_len=int(opts["--prompt"]),
                  gen_len=int(opts["--gen"]), dtype=opts.get("--dtype", "fp16"))
    trace = trace_model(get_model(opts["--model"]), sc)
    dev = device_for(load_arch("h100"), fidelity)
    Engine({"d": dev}).run(trace)  # warm the estimate memo
    t = time.perf_counter()
    tl = Engine({"d": dev}).run(trace)
    dt = time.perf_counter() - t
    return {"events": tl.events, "engine_s": dt, "events_per_s": tl.events / dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for name, case in CASES:
        for fidelity in ("roofline", "tile"):
            walls = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "xpusim", "run", "--arch", "h100", *case,
                                "--fidelity", fidelity, "--json"], check=True,
                               capture_output=True)
                walls.append(time.perf_counter() - t)
            eng = engine_events_per_s(case, fidelity)
            rows.append({"case": name, "fidelity": fidelity, "cli_wall_s": statistics.median(walls),
                         **eng})
    bare = bare_simpy_events_per_s()
    if args.json:
        print(json.dumps({"runs": rows, "bare_simpy_events_per_s": bare}, indent=2))
        return
    print(f"{'case':32s} {'fidelity':9s} {'CLI wall s':>10s} {'events':>8s} {'engine s':>9s} "
          f"{'events/s':>10s}")
    for r in rows:
        print(f"{r['case']:32s} {r['fidelity']:9s} {r['cli_wall_s']:10.2f} {r['events']:8d} "
              f"{r['engine_s']:9.3f} {r['events_per_s']:10.0f}")
    print(f"bare SimPy timeouts: {bare:,.0f} events/s; engine reaches "
          f"{max(r['events_per_s'] for r in rows) / bare:.0%} of it")


if __name__ == "__main__":
    main()
