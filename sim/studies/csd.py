"""In-storage attention on a computational SSD vs FlexGen-style offload (``instinfer``).

Every figure is a :func:`sim.run.simulate` run on one storage system under four policies:
FlexGen (KV cache on the SSD read through the host page cache and a pinned relay, attention on
the GPU or on the host CPU, the better per batch), InstInfer dense (KV cache on the CSD's
flash, attention on its engine) and InstInfer sparse (1/8 of the KV cache in 4 KB page groups).
Throughput = batch x gen / (prefill + (gen - 1) decode steps at the mean context).
"""

from __future__ import annotations

import time
from typing import Any

from sim.studies import study


def csd_policies(flexgen_io: tuple[float, int], sparse: float) -> dict:
    """label -> (placement, Policies, KV fraction read) of the four systems compared."""
    from sim.system.schedule import Policies

    flex = dict(relay_storage=True, storage_request=float(flexgen_io[0]),
                storage_queue_depth=int(flexgen_io[1]))
    return {
        "flexgen_gpu": ("kv_cache=ssd0.flash", Policies(**flex), 1.0),
        "flexgen_cpu": ("kv_cache=ssd0.flash", Policies(attention_on="cpu", **flex), 1.0),
        "instinfer": ("kv_cache=csd0.flash", Policies(attention_on="csd"), 1.0),
        "instinfer_sparse": ("kv_cache=csd0.flash",
                             Policies(attention_on="csd", storage_request=4096.0), sparse),
    }


def serving_throughput(arch, model, batch: int, spec: str, policies, sparse: float,
                       prompt: int, gen: int, window: int) -> dict:
    """tokens/s of ``batch`` requests of ``prompt`` + ``gen`` tokens (prefill, then decode
    measured over ``window`` steps at the mean context); ``fits`` False on a memory misfit."""
    from sim.devices.base import SimError
    from sim.run import simulate
    from sim.system.placement import parse_placement
    from workloads.scenario import Scenario

    placement = parse_placement(spec)
    try:
        pre = simulate(arch, model, Scenario(batch=batch, prompt_len=prompt, gen_len=1,
                                             sparse_kv=sparse), placement=placement,
                       policies=policies)
        dec = simulate(arch, model, Scenario(batch=batch, prompt_len=prompt + gen // 2,
                                             gen_len=window + 1, sparse_kv=sparse),
                       placement=placement, policies=policies)
    except SimError as exc:   # a memory-fit failure is a result, not a crash
        return {"fits": False, "reason": str(exc)}
    ttft, tpot = pre.metrics["ttft_s"], dec.metrics["tpot_s"]
    total = ttft + (gen - 1) * tpot
    return {"fits": True, "ttft_s": ttft, "tpot_s": tpot, "tokens_per_s": batch * gen / total}


def flexgen_t4(arch_name: str, rows: list[dict], flexgen_io, targets: dict) -> list[dict]:
    """FlexGen's published T4 throughputs (claim targets ``t4_<model>``) next to the same
    policies (placement, GPU batches, CPU attention) on ``arch_name``."""
    from arch import load_arch
    from sim.run import simulate
    from sim.system.placement import parse_placement
    from sim.system.schedule import Policies
    from workloads.models import get_model
    from workloads.scenario import Scenario

    arch = load_arch(arch_name)
    out = []
    for row in rows:
        model, batch, spec = row["model"], int(row["batch"]), row.get("placement")
        r = simulate(arch, get_model(model),
                     Scenario(batch=batch, prompt_len=int(row["prompt"]),
                              gen_len=int(row["gen"]), microbatches=int(row["gpu_batches"])),
                     placement=parse_placement(spec) if spec else None,
                     policies=Policies(attention_on="cpu" if row["cpu_attention"] else "",
                                       relay_storage=True, storage_request=float(flexgen_io[0]),
                                       storage_queue_depth=int(flexgen_io[1])))
        out.append({"model": model, "batch": batch, "gpu_batches": int(row["gpu_batches"]),
                    "placement": spec or "all on the GPU", "cpu_attention": row["cpu_attention"],
                    "tokens_per_s": r.metrics["tokens_per_s"],
                    "published_tokens_per_s": targets.get(f"t4_{model}", float("nan"))})
    return out


@study("csd-attention-vs-offload")
def csd_attention_vs_offload(systems: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """System ``storage`` (GPU + host + SSD + CSD) and ``flexgen_t4`` (the FlexGen check);
    params ``model``, ``batches``, ``prompt``, ``gen``, ``window``, ``flexgen_io`` (request
    bytes, queue depth), ``sparse_kv``, ``flexgen_t4_runs`` (empty: no T4 check)."""
    from arch import load_arch
    from workloads.models import get_model

    wall = time.perf_counter()
    arch = load_arch(systems["storage"])
    model = get_model(params["model"])
    prompt, gen, window = int(params["prompt"]), int(params["gen"]), int(params["window"])
    io = params["flexgen_io"]
    points = []
    for b in params["batches"]:
        row: dict = {"batch": b}
        for name, (spec, pol, sparse) in csd_policies(io, float(params["sparse_kv"])).items():
            r = serving_throughput(arch, model, b, spec, pol, sparse, prompt, gen, window)
            row[f"{name}_tokens_per_s"] = r.get("tokens_per_s", float("nan"))
            row[f"{name}_tpot_s"] = r.get("tpot_s", float("nan"))
            row[f"{name}_fits"] = r["fits"]
            if not r["fits"]:
                row[f"{name}_reason"] = r["reason"]
        row["flexgen_tokens_per_s"] = max(row["flexgen_gpu_tokens_per_s"],
                                          row["flexgen_cpu_tokens_per_s"])
        points.append(row)
    fits = [p for p in points if p["flexgen_gpu_fits"] or p["flexgen_cpu_fits"]]
    flex_best = max(p["flexgen_tokens_per_s"] for p in fits)
    top = max(points, key=lambda p: p["batch"])
    at64 = next((p for p in points if p["batch"] == 64), points[-1])
    oom = [p["batch"] for p in points if not (p["flexgen_gpu_fits"] or p["flexgen_cpu_fits"])]
    t4 = flexgen_t4(systems["flexgen_t4"], params["flexgen_t4_runs"], io,
                    params.get("targets", {})) if params["flexgen_t4_runs"] else []
    values = {"top_batch": top["batch"], "at64_batch": at64["batch"],
              "sparse_top_vs_flexgen_best": top["instinfer_sparse_tokens_per_s"] / flex_best,
              "dense_vs_flexgen_at64": at64["instinfer_tokens_per_s"] /
              at64["flexgen_tokens_per_s"],
              "oom_batches": oom or "none", "mean_context": prompt + gen // 2,
              "decode_steps": gen - 1}
    values.update({f"t4_{r['model']}_tokens_per_s": r["tokens_per_s"] for r in t4})
    extra = {"flexgen_best_tokens_per_s": flex_best, "flexgen_oom_batches": oom,
             "flexgen_t4": t4, "wall_s": time.perf_counter() - wall}
    return {"points": points, "values": values, "extra": extra}
