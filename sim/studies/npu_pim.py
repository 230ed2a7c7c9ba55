"""NeuPIMs-style NPU + PIM decode serving study (``neupims`` experiment).

Four systems serve GPT-3 decode under iteration-level batching with a paged KV cache
(:func:`sim.serving.decode.run_decode`): ``gpu`` (GPU device model), NPU-only (the NPU of the
``neupims`` arch with its HBM as plain memory), ``naive`` (an NPU+PIM arch without NeuPIMs'
features) and ``neupims``.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sim.studies import study


def decode_systems(gpu_name: str, neupims_name: str, naive_name: str) -> dict:
    """The four :class:`sim.serving.decode.DecodeSystem` s: gpu, npu, naive, neupims."""
    from arch import load_arch
    from sim.devices.base import device_for
    from sim.devices.npu import NpuDevice
    from sim.devices.npu_pim import npu_view
    from sim.devices.pim import PimModel
    from sim.serving.decode import DecodeSystem

    gpu_arch = load_arch(gpu_name)
    gpu = device_for(gpu_arch, "tile")
    neu = load_arch(neupims_name)
    naive = load_arch(naive_name)
    npu = NpuDevice(npu_view(neu), "tile")
    pim_n, pim_v = PimModel(neu), PimModel(naive)
    cap = npu.memory_capacity()
    return {
        "gpu": DecodeSystem("gpu", gpu, None, gpu_arch.memory["hbm"].capacity,
                            gpu.static_power()),
        "npu": DecodeSystem("npu", npu, None, cap, npu.static_power() +
                            pim_n.background_power()),
        "naive": DecodeSystem("naive", npu, pim_v, cap, npu.static_power() +
                              pim_v.background_power()),
        "neupims": DecodeSystem("neupims", npu, pim_n, cap, npu.static_power() +
                                pim_n.background_power()),
    }


def gmean(xs: list[float]) -> float:
    """Geometric mean (nan when empty)."""
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


@study("npu-pim-decode")
def npu_pim_decode(systems: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """Systems ``gpu``, ``neupims``, ``naive``; params ``models`` (name: [tp, pp]),
    ``datasets``, ``batches``, ``seed``, ``iterations`` and ``warmup`` (0: from the dataset's
    mean output length)."""
    from sim.serving.decode import run_decode
    from sim.serving.lengths import get_dataset, sample
    from workloads.models import get_model

    wall = time.perf_counter()
    seed = int(params["seed"])
    runs = decode_systems(systems["gpu"], systems["neupims"], systems["naive"])
    points = []
    for mname, (tp, pp) in params["models"].items():
        model = get_model(mname)
        for dname in params["datasets"]:
            ds = get_dataset(dname)
            iters = int(params["iterations"]) or int(min(200, max(60, ds.mean_out)))
            warmup = int(params["warmup"]) or int(min(300, 1.5 * ds.mean_out))
            for batch in params["batches"]:
                n_req = int(batch * (warmup + iters) / ds.mean_out * 2 + 4 * batch)
                ins, outs = sample(ds, n_req, seed=seed)
                row = {"model": mname, "tp": tp, "pp": pp, "dataset": dname, "batch": batch}
                for kind, system in runs.items():
                    r = run_decode(system, model, tp, pp, ins, outs, batch, iters, warmup)
                    row[f"{kind}_tokens_per_s"] = r.tokens_per_s
                    row[f"{kind}_J_per_token"] = r.energy_per_token_J
                    row[f"{kind}_mean_batch"] = r.mean_batch
                    if kind in ("naive", "neupims"):
                        row[f"{kind}_npu_util"] = r.npu_utilization
                        row[f"{kind}_pim_util"] = r.pim_utilization
                    if kind == "npu":
                        row["npu_only_util"] = r.npu_utilization
                    row["mean_context"] = r.mean_context
                for base in ("gpu", "npu", "naive"):
                    row[f"speedup_vs_{base}"] = row["neupims_tokens_per_s"] / \
                        row[f"{base}_tokens_per_s"]
                row["naive_vs_npu"] = row["naive_tokens_per_s"] / row["npu_tokens_per_s"]
                points.append(row)
    maxes = {k: max(p[f"speedup_vs_{k}"] for p in points) for k in ("gpu", "npu", "naive")}
    util = {
        "neupims_npu_util": _mean([p["neupims_npu_util"] for p in points]),
        "neupims_pim_util": _mean([p["neupims_pim_util"] for p in points]),
        "naive_npu_util": _mean([p["naive_npu_util"] for p in points]),
        "naive_pim_util": _mean([p["naive_pim_util"] for p in points]),
        "npu_only_util": _mean([p["npu_only_util"] for p in points]),
    }
    energy = {f"{k}_J_per_token": gmean([p[f"{k}_J_per_token"] for p in points])
              for k in ("gpu", "npu", "naive", "neupims")}
    targets = params.get("targets", {})
    trends = _trends(points, targets.get("vs_npu", float("nan")) /
                     targets.get("vs_gpu", float("nan")))
    extra = {"max_speedups": maxes, "utilization": util, "energy": energy, "trends": trends,
             "wall_s": time.perf_counter() - wall}
    return {"points": points, "values": {}, "extra": extra}


def _trends(points: list[dict], implied_gpu_over_npu: float) -> dict:
    """Does the gain grow with batch, and is it larger on ShareGPT than on Alpaca?"""
    out = {}
    by_batch: dict[int, list[float]] = {}
    by_ds: dict[str, list[float]] = {}
    for p in points:
        by_batch.setdefault(p["batch"], []).append(p["speedup_vs_npu"])
        by_ds.setdefault(p["dataset"], []).append(p["speedup_vs_npu"])
    out["speedup_vs_npu_by_batch"] = {b: gmean(v) for b, v in sorted(by_batch.items())}
    out["speedup_vs_npu_by_dataset"] = {d: gmean(v) for d, v in by_ds.items()}
    for base in ("gpu", "naive"):
        grouped: dict[int, list[float]] = {}
        for p in points:
            grouped.setdefault(p["batch"], []).append(p[f"speedup_vs_{base}"])
        out[f"speedup_vs_{base}_by_batch"] = {b: gmean(v) for b, v in sorted(grouped.items())}
    # the published ratios imply GPU-only = NPU-only x (vs NPU target) / (vs GPU target); ours:
    out["gpu_only_over_npu_only"] = gmean([p["gpu_tokens_per_s"] / p["npu_tokens_per_s"]
                                           for p in points])
    out["gpu_only_over_npu_only_implied_by_targets"] = implied_gpu_over_npu
    return out
