"""One fine-tuning step on a system: trace, placement, plan, engine, per-phase metrics.

ZeRO-Offload (``offload="optimizer"``) keeps fp16 weights and activations on the GPU and puts
fp32 optimizer states and gradients on host-side tiers, where the host CPU runs AdamW;
ZeRO-3-Offload (``"full"``) also keeps the fp16 weights on the host, fetched layer by layer.
The default placement puts the offloaded classes on the first standalone memory tier of the
system (the host DDR); ``placement`` overrides it (e.g. priority placement over DDR and CXL).
"""

from __future__ import annotations

import time
from typing import Any

from arch import Arch
from sim.devices.base import SimError, device_for
from sim.result import Result
from sim.system.budget import place_on_system
from sim.system.execute import execute
from sim.system.placement import PlacementSpec, parse_placement
from sim.system.schedule import Policies, build_plan, home_tier, stages_for
from sim.system.topology import System, build_system
from workloads.models import ModelConfig
from workloads.scenario import Scenario
from workloads.training import Training, trace_training, training_memory

PHASES = ("forward", "recompute", "backward", "optimizer")


def default_placement(system: System, training: Training) -> PlacementSpec | None:
    """Offloaded classes on the first standalone memory tier (None: all on the device)."""
    if training.offload == "none":
        return None
    hosts = [t.name for t in system.tiers.values() if not t.device]
    if not hosts:
        raise SimError(f"--offload {training.offload}: system '{system.name}' has no host "
                       "memory tier (use a system arch with host DDR, e.g. a6000-offload)")
    home = home_tier(system)
    classes = ["optimizer", "gradients"] + (["weights"] if training.offload == "full" else [])
    return parse_placement(";".join(f"{c}={hosts[0]}" for c in classes) +
                           f";activations={home}")


def simulate_training(arch: Arch, model: ModelConfig, scenario: Scenario, training: Training,
                      fidelity: str = "tile", seed: int = 0,
                      placement: PlacementSpec | None = None,
                      policies: Policies | None = None) -> Result:
    """Simulate one training step; metrics: step time, tokens/s, time per phase, bytes per
    tier and link."""
    wall = time.perf_counter()
    policies = policies or Policies()
    system = build_system(arch)
    device = device_for(arch, fidelity)
    stages_for(system, scenario.tp, 1)
    if training.offload != "none" and not any(d.arch.type == "cpu"
                                              for d in system.devices.values()):
        raise SimError(f"--offload {training.offload}: system '{system.name}' has no host CPU "
                       "device to run the optimizer step (use a system with a cpu component)")
    need = training_memory(model, scenario, training)
    need["total"] = sum(need.values())
    spec = placement or default_placement(system, training)
    if spec is None:
        cap = device.memory_capacity()
        if need["total"] > cap:
            raise SimError(f"--model: fine-tuning {model.name} needs {need['total'] / 2**30:.1f} "
                           f"GiB per device but '{arch.name}' has {cap / 2**30:.1f} GiB; use "
                           "--offload optimizer or a larger --tp")
        placed = None
    else:
        placed = place_on_system(system, spec, need, scenario.tp)
    trace = trace_training(model, scenario, training)
    plan = build_plan(trace, system, device, placed, policies)
    run = execute(system, trace, plan, placed, need)
    ops = run.ops
    step = run.makespan
    tokens = scenario.batch * scenario.prompt_len
    metrics: dict[str, float] = {"step_s": step, "tokens_per_s": tokens / step,
                                 "latency_s": step, "events": float(run.timeline.events),
                                 "flops": float(ops["flops"].sum()),
                                 "op_time_sum_s": float(ops["latency_s"].sum())}
    for phase in PHASES:
        sel = ops[ops["phase"] == phase]
        metrics[f"{phase}_s"] = float(sel["latency_s"].sum())
    if len(run.transfers):
        trs = run.transfers
        metrics["transfer_s"] = float(trs["latency_s"].sum())
        metrics["transfer_bytes"] = float((trs["bytes"] * trs["replicas"]).sum())
    for cls, tiers in (placed.bytes.items() if placed is not None else ()):
        for tier, nbytes in tiers.items():
            metrics[f"placed_{cls}@{tier}_bytes"] = float(nbytes)
    dynamic = float(ops["energy_J"].sum()) + (float(run.transfers["energy_J"].sum())
                                              if len(run.transfers) else 0.0)
    static = step * sum(plan.streams[s].static_power() * len(plan.devices_of[s])
                        for s in plan.streams if s.endswith(".compute"))
    metrics["energy_J"] = dynamic + static
    inputs: dict[str, Any] = {
        "arch": arch.name, "arch_origin": arch.origin, "arch_type": arch.type,
        "model": model.name, "fidelity": fidelity, "seed": seed, "mode": "finetune",
        "scenario": {"batch": scenario.batch, "seq": scenario.prompt_len,
                     "prompt_len": scenario.prompt_len, "gen_len": 0,
                     "dtype": scenario.dtype, "tp": scenario.tp},
        "training": {"offload": training.offload, "recompute": training.recompute,
                     "grad_dtype": training.grad_dtype},
        "placement": placed.bytes if placed is not None else None,
    }
    info = {**device.describe(scenario.dtype), "system": system.name,
            "streams": sorted(plan.streams), "wall_s": time.perf_counter() - wall}
    by_component = {"dynamic": dynamic, "static": static}
    return Result(ops, metrics, run.invariants, inputs, by_component, info, run.transfers,
                  run.resources, run.op_links)
