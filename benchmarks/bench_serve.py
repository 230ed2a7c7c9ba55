"""Benchmark: ``xpusim serve`` speed on the Azure conv trace (issue 14, item 6).

Usage: python benchmarks/bench_serve.py [--cases NAME,...] [--repeat N] [--json]
       python benchmarks/bench_serve.py --sweep [--workers N] [--json]

Llama-2-70B on one DGX-H100 at TP8 (continuous batching unless the case says otherwise).
Each case times the same calls ``xpusim serve`` makes — iteration model, request table,
replicas, event loop, invariants and metrics — from a cold iteration model (its memo empty).
Figures: CPU seconds (``time.process_time``, median of ``--repeat`` runs, so other work on the
machine does not inflate them) and wall seconds of the same runs. Goals: 1,000 requests
<= 5 s wall, 100,000 requests <= 5 min.

Cases:
* ``conv-1k`` / ``conv-1k-chunked``: the trace's first 1,000 rows, replayed timestamps;
* ``conv-100k``: 100,000 requests with the trace's lengths (rows cycled) and Poisson
  arrivals at 4 requests/s (below the replica's ~4.5 req/s capacity, so queues stay finite).
Requests longer than Llama-2-70B's 4,096-token context are truncated (``--over-context
truncate``).

``--sweep``: a serving sweep, request rate x max batch (``max_num_seqs``) x chunk size
(``max_num_batched_tokens``, chunked prefill), 500 conv requests with Poisson arrivals per
point, points on a process pool; the Pareto front of goodput (TTFT <= 1 s, mean TBT <= 50 ms)
against P99 TTFT is taken with ``dse.pareto_front``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from bench_args import chosen_cases, positive, rounds  # noqa: E402

CASES = {
    "conv-1k": {"rows": 1000, "scheduler": "continuous"},
    "conv-1k-chunked": {"rows": 1000, "scheduler": "chunked"},
    "conv-100k": {"rows": 100_000, "scheduler": "continuous", "rate": 4.0},
}
GOALS_S = {"conv-1k": 5.0, "conv-1k-chunked": 5.0, "conv-100k": 300.0}


def requests_for(case: dict):
    from workloads.requests import Requests, arrival_times, check_context, read_trace
    from xpusim.paths import reference_dir

    path = str(reference_dir() / "serving/azure_llm_trace_conv_2023.csv")
    rows = case["rows"]
    trace = read_trace(path, limit=min(rows, 19366))
    if "rate" in case:
        reps = -(-rows // len(trace))
        times = arrival_times([(case["rate"], np.inf)], np.random.default_rng(0), n=rows)
        req = Requests.build(times, np.tile(trace.prompt, reps)[:rows],
                             np.tile(trace.output, reps)[:rows], source=path)
    else:
        req = trace
    return check_context(req, 4096, "llama2-70b", "truncate")


def one_run(case: dict) -> tuple[float, float, dict]:
    from arch import load_arch
    from sim.serve import EngineConfig, IterationModel, Simulation, build_replicas, finish
    from workloads.models import get_model

    req = requests_for(case)
    c0, w0 = time.process_time(), time.perf_counter()
    im = IterationModel(load_arch("dgx-h100"), get_model("llama2-70b"), tp=8)
    reps = build_replicas(im, EngineConfig(scheduler=case["scheduler"]))
    sim = Simulation(reps, req).run()
    res = finish(sim)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    m = res.metrics
    return cpu, wall, {"requests": m["requests"], "completed": m["requests_completed"],
                       "iterations": len(res.iterations), "events": m["events"],
                       "ttft_p50_s": m["ttft_p50_s"], "tbt_p50_s": m["tbt_p50_s"],
                       "e2e_p50_s": m["e2e_p50_s"], "throughput_tok_s": m["throughput_tok_s"],
                       "device_shapes": len(im._linear) + sum(len(v) for v in im._dec.values())
                       + len(im._pre) + len(im._head)}


SWEEP = {"rate": [2.0, 4.0, 6.0], "max_num_seqs": [32, 128, 256],
         "max_num_batched_tokens": [512, 2048]}


def sweep_point(point: dict) -> dict:
    """One sweep point: serve 500 conv requests at ``point``'s rate and engine knobs."""
    from arch import load_arch
    from sim.serve import EngineConfig, IterationModel, Simulation, build_replicas, finish
    from sim.serve.metrics import parse_slo
    from workloads.models import get_model

    req = requests_for({"rows": 500, "rate": point["rate"]})
    im = IterationModel(load_arch("dgx-h100"), get_model("llama2-70b"), tp=8)
    cfg = EngineConfig("chunked", max_num_seqs=point["max_num_seqs"],
                       max_num_batched_tokens=point["max_num_batched_tokens"])
    sim = Simulation(build_replicas(im, cfg), req).run()
    m = finish(sim, parse_slo("ttft=1s,tbt=50ms")).metrics
    return {**point, "status": "ok", **{k: m[k] for k in (
        "goodput_req_s", "throughput_tok_s", "ttft_p99_s", "tbt_p99_s", "e2e_p50_s")}}


def run_sweep(workers: int) -> list[dict]:
    import itertools
    from concurrent.futures import ProcessPoolExecutor

    points = [dict(zip(SWEEP, vals, strict=True)) for vals in itertools.product(*SWEEP.values())]
    if workers <= 1:
        return [sweep_point(p) for p in points]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(sweep_point, points))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="conv-1k,conv-1k-chunked,conv-100k",
                    help=f"comma-separated case names ({', '.join(CASES)})")
    ap.add_argument("--repeat", type=rounds, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="run the serving sweep instead")
    ap.add_argument("--workers", type=positive("workers"), default=2)
    args = ap.parse_args()
    if args.sweep:
        import pandas as pd

        from dse import pareto_front

        t0 = time.perf_counter()
        df = pd.DataFrame(run_sweep(args.workers))
        front = pareto_front(df, [("goodput_req_s", "max"), ("ttft_p99_s", "min")])
        if args.json:
            print(json.dumps({"points": df.to_dict("records"),
                              "pareto": front.to_dict("records"),
                              "wall_s": time.perf_counter() - t0}, indent=1))
        else:
            print(df.to_string(index=False))
            print("\nPareto front (max goodput, min P99 TTFT):")
            print(front.to_string(index=False))
            print(f"{len(df)} points in {time.perf_counter() - t0:.1f} s wall")
        return
    out = {}
    for name in chosen_cases(ap, args.cases, CASES):
        case = CASES[name]
        repeat = 1 if case["rows"] > 10_000 else args.repeat
        runs = [one_run(case) for _ in range(repeat)]
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        out[name] = {"cpu_s": cpu, "wall_s": wall, "goal_s": GOALS_S[name],
                     "within_goal": wall <= GOALS_S[name], **runs[-1][2]}
        if not args.json:
            info = runs[-1][2]
            print(f"{name:16s} cpu {cpu:7.2f} s  wall {wall:7.2f} s (goal {GOALS_S[name]:.0f} s)"
                  f"  {info['iterations']:,} iterations, {info['device_shapes']:,} device "
                  f"shapes, TTFT p50 {info['ttft_p50_s'] * 1e3:.0f} ms, TBT p50 "
                  f"{info['tbt_p50_s'] * 1e3:.1f} ms, {info['throughput_tok_s']:.0f} tok/s")
    if args.json:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
