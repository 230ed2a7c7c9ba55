"""``xpusim reproduce duplex``: Duplex (MICRO'24) xPU + logic-die PIM vs the GPU system on Mixtral.

Four devices (tensor parallel 4) serve Mixtral-8x7B (uniform top-2 routing) with continuous
batching: every iteration decodes one token for each of ``batch`` requests at the mean context
``in + out/2`` and prefills, amortised, the ``batch / out`` requests that join per iteration.
GPU system: ``h100`` through the GPU device model. Duplex: ``duplex`` — the same xPU model for
dense work, MoE experts and decode attention placed by Op/B and co-processed on xPU and
logic-die PIM (:mod:`sim.devices.xpu_pim`): each layer runs on the event engine
(:meth:`sim.serving.layer_costs.LayerCosts.layer`), a co-processed op as two concurrent tasks.
The bank-PIM comparison point (16x bandwidth, Op/B 1) is reported beside it.

Targets (seeds/README): up to 2.67x throughput, 2.07x on average, 28% less energy on average.
"""

from __future__ import annotations

import argparse
import itertools
import time

from xpusim.reproductions._shape import claim, report

NAME = "duplex"
DESCRIPTION = "Duplex logic-die PIM + xPU vs GPU system: Mixtral-8x7B throughput and energy"

BATCHES = (32, 64, 128)
LENGTHS = (256, 1024, 4096)
TP = 4


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="batch 32 and 128, in/out 256 and 4096")


def _throughput(costs, model, batch: int, n_in: int, n_out: int) -> tuple[float, float]:
    """(tokens/s, J/token) of one device in steady-state continuous batching."""
    n_ctx = n_in + n_out // 2
    layers = model.n_layers
    # a layer's ops on the event engine (co-processed ops as concurrent xPU and PIM tasks)
    dec = costs.layer(batch, n_ctx)
    pre = costs.layer(1, n_in, s=n_in, phase="prefill")
    head_dec = costs.stages(batch, n_ctx)["head"]
    head_pre = costs.stages(1, n_in, s=n_in, phase="prefill")["head"]
    t_dec = layers * dec.seconds + head_dec.seconds
    e_dec = layers * dec.energy_J + head_dec.energy_J
    t_pre = layers * pre.seconds + head_pre.seconds
    e_pre = layers * pre.energy_J + head_pre.energy_J
    joins = batch / n_out                       # requests finishing (and joining) per iteration
    t_iter = t_dec + joins * t_pre
    e_iter = e_dec + joins * e_pre + costs.device.static_power() * t_iter
    return batch / t_iter, e_iter / batch


# Energy variants of the logic-die PIM (pJ/bit inside the stack, pJ/FLOP on the logic die) and,
# optionally, of the xPU's HBM access (pJ/bit): the preset's assumptions +-50%, and the
# per-level DRAM energies AttAcc (Park et al., ASPLOS'24; same group as Duplex) uses, from
# O'Connor et al. MICRO'17 (FGDRAM): cell ACT/PRE 0.11 + cell RD/WR 0.44 + column decoder to
# bank-group mux 1.01 + bank-group mux to global I/O 1.23 + TSV 0.5 (+ interposer I/O 0.3 for the
# xPU) pJ/bit, and one ALU energy (0.32 pJ per MAC = 0.16 pJ/FLOP) for every processor.
FGDRAM_LOGIC = 0.11 + 0.44 + 1.01 + 1.23 + 0.5     # to the logic die through the normal path
FGDRAM_BUNDLE = 0.11 + 0.44 + 1.01 + 0.5           # bank bundle straight to extra TSVs
FGDRAM_XPU = FGDRAM_LOGIC + 0.3                    # plus the interposer I/O
ATTACC_FLOP = 0.32 / 2


def energy_variants(base_bit: float, base_flop: float) -> list[tuple[str, float, float, float]]:
    """(label, logic-PIM pJ/bit, logic-PIM pJ/FLOP, xPU HBM pJ/bit or 0 = preset's)."""
    return [
        ("preset (assumed)", base_bit, base_flop, 0.0),
        ("in-stack access x0.5", 0.5 * base_bit, base_flop, 0.0),
        ("in-stack access x1.5", 1.5 * base_bit, base_flop, 0.0),
        ("logic-die FLOP x0.5", base_bit, 0.5 * base_flop, 0.0),
        ("logic-die FLOP x1.5", base_bit, 1.5 * base_flop, 0.0),
        ("FGDRAM path to logic die (3.29 pJ/bit)", FGDRAM_LOGIC, base_flop, 0.0),
        ("FGDRAM bank-bundle path (2.06 pJ/bit)", FGDRAM_BUNDLE, base_flop, 0.0),
        ("AttAcc table: logic 3.29, xPU HBM 3.59 pJ/bit", FGDRAM_LOGIC, base_flop, FGDRAM_XPU),
    ]


def _with_energy(arch, bit_pj: float, flop_pj: float, hbm_pj: float):
    """``arch`` with the logic-PIM (and optionally the HBM) energies replaced (pJ units)."""
    import dataclasses

    out = arch
    if "logic_pim" in arch.sections:
        out = out.replace(logic_pim=dataclasses.replace(arch.logic_pim,
                                                        energy_per_bit=bit_pj * 1e-12,
                                                        energy_per_flop=flop_pj * 1e-12))
    if hbm_pj:
        en = out.energy
        mem = {**en.memory, "hbm": hbm_pj * 1e-12}
        out = out.replace(energy=dataclasses.replace(en, memory=mem))
    return out


def reproduce(args: argparse.Namespace) -> dict:
    from arch import load_arch
    from sim.devices.base import device_for
    from sim.devices.xpu_pim import XpuPimDevice
    from sim.serving.layer_costs import LayerCosts
    from workloads.models import get_model
    from workloads.tracer import kv_bytes_per_token, weight_bytes_per_device

    wall = time.perf_counter()
    quick = getattr(args, "quick", False)
    model = get_model("mixtral-8x7b")
    gpu_arch = load_arch("h100")
    gpu = device_for(gpu_arch, "tile")
    duplex_arch = load_arch("duplex")
    duplex = XpuPimDevice(duplex_arch, "tile", mode="logic")
    bank = XpuPimDevice(duplex_arch, "tile", mode="bank")
    costs = {k: LayerCosts(d, model, TP) for k, d in
             (("gpu", gpu), ("duplex", duplex), ("bank", bank))}
    batches = (32, 128) if quick else BATCHES
    lengths = (256, 4096) if quick else LENGTHS
    weights = weight_bytes_per_device(model, "fp16", TP)
    kv_per_token = kv_bytes_per_token(model, "fp16", TP)
    cap = gpu.memory_capacity()
    grid = list(itertools.product(batches, lengths, lengths))
    points = []
    for batch, n_in, n_out in grid:
        need = weights + batch * (n_in + n_out) * kv_per_token
        row = {"batch": batch, "in": n_in, "out": n_out, "fits": need <= cap,
               "memory_per_device_GiB": need / 2**30}
        for k, c in costs.items():
            tps, jpt = _throughput(c, model, batch, n_in, n_out)
            row[f"{k}_tokens_per_s"] = tps  # tensor parallel: the system runs at one shard's rate
            row[f"{k}_J_per_token"] = jpt
        row["speedup"] = row["duplex_tokens_per_s"] / row["gpu_tokens_per_s"]
        row["energy_ratio"] = row["duplex_J_per_token"] / row["gpu_J_per_token"]
        row["bank_pim_speedup"] = row["bank_tokens_per_s"] / row["gpu_tokens_per_s"]
        points.append(row)
    sp = [p["speedup"] for p in points]
    er = [p["energy_ratio"] for p in points]
    lp = duplex_arch.logic_pim
    sensitivity = []
    for label, bit, flop, hbm in energy_variants(lp.energy_per_bit * 1e12,
                                                 lp.energy_per_flop * 1e12):
        d_var = LayerCosts(XpuPimDevice(_with_energy(duplex_arch, bit, flop, hbm), "tile"),
                           model, TP)
        g_var = costs["gpu"] if not hbm else \
            LayerCosts(device_for(_with_energy(gpu_arch, bit, flop, hbm), "tile"), model, TP)
        ratios = [_throughput(d_var, model, b, i, o)[1] / _throughput(g_var, model, b, i, o)[1]
                  for b, i, o in grid]
        sensitivity.append({"variant": label, "logic_pim_pJ_per_bit": round(bit, 4),
                            "logic_pim_pJ_per_flop": round(flop, 4),
                            "xpu_hbm_pJ_per_bit": round(hbm or gpu_arch.energy.memory["hbm"]
                                                        * 1e12, 4),
                            "mean_energy_ratio": sum(ratios) / len(ratios)})
    results = [
        claim("Duplex / GPU throughput, max over points", max(sp), 2.67),
        claim("Duplex / GPU throughput, mean over points", sum(sp) / len(sp), 2.07),
        claim("Duplex / GPU energy per token, mean over points", sum(er) / len(er), 0.72),
    ]
    assumptions = [
        "Mixtral-8x7B (32 layers, 4096 hidden, 14336 FFN, 32 heads, 8 KV heads, 8 experts top-2) "
        "with uniform top-2 routing (every expert gets batch*2/8 tokens), FP16, tensor parallel "
        "4 over the four devices; collectives left out for both systems.",
        "Continuous batching in steady state: each iteration decodes batch tokens at the mean "
        "context in + out/2 and prefills batch/out joining requests on the xPU (both systems).",
        "GPU system: 4x H100 (h100 preset, GPU device model). Duplex: same xPU model; decode "
        "attention and MoE experts co-processed on xPU and logic-die PIM, split in proportion "
        "to rate and run on the event engine as two concurrent tasks (xPU and PIM streams) "
        "sharing the stacks' internal bandwidth (4x external x the streaming efficiency the "
        "cycle-level HBM3 model measures) by processor sharing; a layer's ops form one chain, "
        "so the stack takes layers x one layer.",
        "Logic-PIM: 5 stacks x 21.3 TFLOPS; energy 2.4 pJ/bit inside the stack and 0.6 pJ/FLOP "
        "are ASSUMPTIONS (no value from the Duplex paper was readable to us); the published "
        "per-level HBM energies (FGDRAM, MICRO'17, as AttAcc's simulator uses them) give 2.06 "
        "(bank bundle to extra TSVs) to 3.29 pJ/bit (normal path to the logic die); "
        "'energy_sensitivity' reports the mean energy ratio under +-50% and those values; "
        "static power 70 W per device for both systems.",
        "Bank-PIM comparison: 16x bandwidth at Op/B 1 with the same placement.",
    ]
    wall = time.perf_counter() - wall
    return report(NAME, results, assumptions, points,
                  bank_pim_mean_speedup=sum(p["bank_pim_speedup"] for p in points) / len(points),
                  energy_sensitivity=sensitivity, wall_s=wall)
