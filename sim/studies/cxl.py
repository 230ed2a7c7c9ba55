"""CXL-attached memory for long-context fine-tuning (``cxl-finetune`` experiment).

Everything runs through :func:`sim.finetune.simulate_training` and the system plan/event engine
a user runs (``xpusim run --mode finetune``): (1) one AdamW step over N parameters on the host
socket with its fp32 states on local DDR or on a CXL card; (2) end-to-end ZeRO-3-style offload
steps under DRAM-only, naive CXL, naive interleave and CXL-aware priority placements.
"""

from __future__ import annotations

import time
from typing import Any

from sim.studies import metric, study

BYTES_PER_PARAM = 28  # AdamW, fp16 gradients, fp32 states, fp16 copy (workloads.optimizer)


def arch_with_ddr(name: str, ddr_gib: float | None = None):
    """A preset, with the host DDR's capacity replaced when ``ddr_gib`` is given."""
    from arch import arch_from_dict, deep_merge, load_arch_data

    data, label = load_arch_data(name)
    if ddr_gib is not None:
        data = deep_merge(data, {"components": {"host_ddr": {
            "capacity": {"value": f"{ddr_gib} GiB",
                         "source": "xpusim reproduce cxl-finetune: local-DDR budget"}}}})
    return arch_from_dict(data, label)


def optimizer_step_seconds(arch, n: int, tier: str) -> float:
    """Seconds of one AdamW step over ``n`` parameters with its states on ``tier`` (the op
    alone: the upload of the fp16 copy that follows it is not counted)."""
    from sim.devices.base import device_for
    from sim.system.budget import place_on_system
    from sim.system.execute import execute
    from sim.system.placement import parse_placement
    from sim.system.schedule import Policies, build_plan
    from sim.system.topology import build_system
    from workloads.models import get_model
    from workloads.optimizer import adam_step
    from workloads.scenario import Scenario
    from workloads.trace import VECTOR, Op, Trace

    system = build_system(arch)
    step = adam_step("adamw", n, grad_dtype="fp16")
    op = Op(0, "optimizer_step", VECTOR, "optimizer", 0, 0, step, 1, (), None, 0, 0, "",
            "optimizer", where="cpu", tensors=("optimizer",))
    trace = Trace([op], get_model("llama2-7b"), Scenario(batch=1, prompt_len=1, gen_len=1),
                  {"phases": ("optimizer",)})
    need = {"optimizer": 12.0 * n, "total": 12.0 * n}
    placed = place_on_system(system, parse_placement(f"optimizer={tier}"), need, 1)
    plan = build_plan(trace, system, device_for(arch, "tile"), placed, Policies())
    ops = execute(system, trace, plan, placed, need).ops
    return float(ops.loc[ops["op"] == "optimizer_step", "latency_s"].iloc[0])


def training_step(arch, model: str, seq: int, placement: str) -> dict:
    """tokens/s, step, optimizer and transfer seconds of one offloaded fine-tuning step."""
    from sim.finetune import simulate_training
    from sim.system.placement import parse_placement
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from workloads.training import Training

    r = simulate_training(arch, get_model(model), Scenario(batch=1, prompt_len=seq, gen_len=1),
                          Training(recompute=True, offload="full"),
                          placement=parse_placement(placement))
    m = r.metrics
    return {"tokens_per_s": m["tokens_per_s"], "step_s": m["step_s"],
            "optimizer_s": m["optimizer_s"], "transfer_s": m.get("transfer_s", 0.0)}


def _cards(arch) -> int:
    from sim.system.topology import build_system

    return sum(1 for name in build_system(arch).tiers if name.startswith("cxl"))


@study("cxl-finetune-placement")
def cxl_finetune_placement(systems: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """System ``dram`` (the DRAM-only baseline) and CXL systems (any other labels; their cards
    are the tiers named cxl0, cxl1, ...); params ``models``, ``seqs``, ``optimizer_params``,
    ``ddr_gib`` (local DDR of the CXL systems), ``host`` (host-resident classes, priority
    order)."""
    wall = time.perf_counter()
    ddr = float(params["ddr_gib"])
    host = str(params["host"])
    dram = arch_with_ddr(systems["dram"])
    cards = {}
    for label, name in systems.items():
        if label != "dram":
            arch = arch_with_ddr(name, ddr)
            cards[_cards(arch)] = arch
    first = cards[min(cards)]
    opt_points = []
    for n in params["optimizer_params"]:
        t_ddr = optimizer_step_seconds(first, n, "host_ddr")
        t_cxl = optimizer_step_seconds(first, n, "cxl0")
        opt_points.append({"params": n, "ddr_s": t_ddr, "cxl_s": t_cxl,
                           "slowdown": t_cxl / t_ddr, "bytes_per_param": BYTES_PER_PARAM,
                           "ddr_GBps": BYTES_PER_PARAM * n / t_ddr / 1e9,
                           "cxl_GBps": BYTES_PER_PARAM * n / t_cxl / 1e9})
    big = [p["slowdown"] for p in opt_points if p["params"] >= 20_000_000]
    points = []
    for model in params["models"]:
        for seq in params["seqs"]:
            base = training_step(dram, model, seq,
                                 ";".join(f"{c}=host_ddr" for c in host.split(",")))
            row = {"model": model, "seq": seq, "dram_tokens_per_s": base["tokens_per_s"],
                   "dram_optimizer_s": base["optimizer_s"]}
            for k, arch in cards.items():
                group = "|".join(f"cxl{i}" for i in range(k))
                on_cards = ",".join(f"cxl{i}:{1 / k:.6g}" for i in range(k))
                policies = {
                    "naive_cxl": f"optimizer={on_cards};weights=host_ddr;"
                                 "activations=host_ddr;gradients=host_ddr",
                    "interleave": f"interleave[{host}]:host_ddr,{group.replace('|', ',')}",
                    "aware": f"priority:{host}>host_ddr,{group}",
                }
                for pol, text in policies.items():
                    r = training_step(arch, model, seq, text)
                    row[f"{pol}_{k}card_rel"] = r["tokens_per_s"] / base["tokens_per_s"]
                    row[f"{pol}_{k}card_optimizer_s"] = r["optimizer_s"]
                row[f"aware_vs_interleave_{k}card"] = row[f"aware_{k}card_rel"] / \
                    row[f"interleave_{k}card_rel"]
            points.append(row)
    values = {"optimizer_slowdown_20m": sum(big) / len(big) if big else float("nan")}
    return {"points": points, "values": values,
            "extra": {"optimizer_step": opt_points, "wall_s": time.perf_counter() - wall}}


@metric("cxl-aware-vs-interleave-best")
def aware_vs_interleave_best(result: dict[str, Any], params: dict[str, Any]) -> float:
    """CXL-aware over naive-interleave throughput: the largest over points and card counts."""
    return max(v for p in result["points"] for k, v in p.items()
               if k.startswith("aware_vs_interleave_"))
