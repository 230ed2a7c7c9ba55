"""How far tile fidelity is from cycle fidelity, per device, over a model's distinct ops.

For every preset whose device offers ``--fidelity cycle`` this traces the model, takes each
distinct op once (ops sharing a compute object are one shape), estimates it with the tile and
the cycle device models and prints the relative difference ``(tile - cycle) / cycle`` of the
per-op latency: median and max of its absolute value, the signed median, and the share of ops
where tile is faster. It also checks ``roofline <= tile`` and ``roofline <= cycle`` for every op
and times a whole ``simulate`` run at cycle fidelity (CPU seconds, ``time.process_time``, in
this process before the per-op pass: numba's kernels may already be loaded by an earlier preset,
the cycle models' memo holds nothing of this preset's DRAM/PIM/flash configuration).

The plain NPU presets have no JEDEC ``dram`` section, which cycle fidelity needs; the row
``neupims-npu+hbm2`` is ``neupims-npu`` with the ``dram`` section of preset ``neupims`` (the
same NeuPIMs HBM2, 32 channels, from the paper and its artifact).

    python benchmarks/fidelity_gap.py [--model llama2-7b] [--prompt 128] [--gen 16] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CYCLE_PRESETS = ("neupims-npu+hbm2", "neupims", "neupims-naive", "pim-hbm-pim",
                 "pim-neupims-hbm2", "pim-gddr6-aim", "duplex", "instinfer-csd")


def load(name: str):
    """An arch by preset name; ``neupims-npu+hbm2`` as described in the module docstring."""
    from arch import arch_from_dict, load_arch, load_arch_data

    if name == "neupims-npu+hbm2":
        data, _ = load_arch_data("neupims-npu")
        data = dict(data, name=name, dram=load_arch_data("neupims")[0]["dram"])
        return arch_from_dict(data, "neupims-npu+hbm2")
    return load_arch(name)


def distinct_ops(trace) -> list:
    seen: set[int] = set()
    out = []
    for op in trace.ops:
        key = id(op.compute) if op.compute is not None else id(op)
        if op.kind == "collective" or key in seen:
            continue
        seen.add(key)
        out.append(op)
    return out


def gap_row(name: str, model_name: str, prompt: int, gen: int, batch: int = 1,
            whole_run: bool = True) -> dict:
    """One table row: tile-vs-cycle per-op differences on ``name`` (see the module doc)."""
    from sim.devices.base import SimError, device_for
    from sim.run import simulate
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from workloads.tracer import trace_model

    arch = load(name)
    model = get_model(model_name)
    sc = Scenario(batch=batch, prompt_len=prompt, gen_len=gen)
    run: dict = {}
    if whole_run:  # first, while the cycle models' memo holds nothing of this preset
        try:
            t0 = time.process_time()
            res = simulate(arch, model, sc, fidelity="cycle")
            run["cycle_run_cpu_s"] = time.process_time() - t0
            run["cycle_latency_s"] = res.metrics["latency_s"]
            run["tile_latency_s"] = simulate(arch, model, sc, fidelity="tile").metrics[
                "latency_s"]
        except SimError as exc:
            run["cycle_run_error"] = str(exc)
    tile, cycle = device_for(arch, "tile"), device_for(arch, "cycle")
    ops = distinct_ops(tile.split_trace(trace_model(model, sc, units=tile.unit_ops())))
    rel, worst, bad = [], ("", 0.0), []
    for op in ops:
        t, c = tile.estimate(op), cycle.estimate(op)
        roof = tile.roofline(op)
        if not (roof <= t.latency * (1 + 1e-9) and roof <= c.latency * (1 + 1e-9)):
            bad.append(op.name)
        if c.latency > 0:
            r = (t.latency - c.latency) / c.latency
            rel.append(r)
            if abs(r) > abs(worst[1]):
                worst = (f"{op.phase}:{op.name}", r)
    row = {"preset": name, "ops": len(ops),
           "median_abs_rel": statistics.median(abs(r) for r in rel) if rel else 0.0,
           "max_abs_rel": abs(worst[1]), "worst_op": worst[0],
           "median_signed_rel": statistics.median(rel) if rel else 0.0,
           "tile_faster_share": sum(r < 0 for r in rel) / max(len(rel), 1),
           "roofline_violations": bad, **run}
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="llama2-7b")
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--gen", type=int, default=16)
    p.add_argument("--presets", nargs="*", default=list(CYCLE_PRESETS))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = []
    for name in args.presets:
        try:
            rows.append(gap_row(name, args.model, args.prompt, args.gen))
        except Exception as exc:  # report a preset that cannot run this model, go on
            rows.append({"preset": name, "error": f"{type(exc).__name__}: {exc}"})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"tile vs cycle, {args.model}, prompt {args.prompt}, gen {args.gen}, batch 1 "
          "(rel = (tile - cycle) / cycle per distinct op)")
    print(f"{'preset':18s} {'ops':>4s} {'med|rel|':>9s} {'max|rel|':>9s} {'med rel':>8s} "
          f"{'tile<cyc':>8s} {'cycle s':>8s} {'tile s':>8s} {'CPU s':>6s}  worst op")
    for r in rows:
        if "error" in r:
            print(f"{r['preset']:18s} error: {r['error'][:100]}")
            continue
        run = (f"{r['cycle_latency_s']:8.3f} {r['tile_latency_s']:8.3f} "
               f"{r['cycle_run_cpu_s']:6.1f}" if "cycle_run_cpu_s" in r else
               f"{'-':>8s} {'-':>8s} {'-':>6s}")
        print(f"{r['preset']:18s} {r['ops']:4d} {r['median_abs_rel']:9.2%} "
              f"{r['max_abs_rel']:9.2%} {r['median_signed_rel']:8.2%} "
              f"{r['tile_faster_share']:8.0%} {run}  {r['worst_op']}"
              + (f"  ROOFLINE VIOLATED: {r['roofline_violations']}"
                 if r["roofline_violations"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
