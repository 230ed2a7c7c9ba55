"""Duplex-style xPU + logic-die PIM serving study (``duplex`` experiment).

Devices at tensor parallel ``tp`` serve a MoE model with continuous batching: every iteration
decodes one token for each of ``batch`` requests at the mean context ``in + out/2`` and
prefills, amortised, the ``batch / out`` requests that join per iteration. System ``gpu`` runs
through its device model; system ``duplex`` through :class:`sim.devices.xpu_pim.XpuPimDevice`
(logic-die PIM) and, as the ``bank`` comparison point, the same arch in bank-PIM mode.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any

from sim.studies import study

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


def serving_rate(costs, model, batch: int, n_in: int, n_out: int) -> tuple[float, float]:
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


def with_energy(arch, bit_pj: float, flop_pj: float, hbm_pj: float):
    """``arch`` with the logic-PIM (and optionally the HBM) energies replaced (pJ units)."""
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


@study("xpu-pim-serving")
def xpu_pim_serving(systems: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """Systems ``gpu`` and ``duplex`` (an arch with ``logic_pim``); params ``model``, ``tp``,
    ``batches``, ``lengths`` (in and out lengths), ``sensitivity`` (energy variants). A ``gpu``
    system with the ``duplex`` arch's GPU section runs with its energy table: the same xPU, with
    and without its PIM."""
    from arch import load_arch
    from sim.devices.base import device_for
    from sim.devices.xpu_pim import XpuPimDevice
    from sim.serving.layer_costs import LayerCosts
    from workloads.models import get_model
    from workloads.tracer import kv_bytes_per_token, weight_bytes_per_device

    wall = time.perf_counter()
    tp = int(params["tp"])
    model = get_model(params["model"])
    duplex_arch = load_arch(systems["duplex"])
    gpu_arch = load_arch(systems["gpu"])
    if gpu_arch.has("gpu") and gpu_arch.gpu == duplex_arch.gpu:
        # the same xPU with and without PIM: the baseline is charged the duplex arch's energy
        # table (its DRAM-level footing, on which the logic-PIM energies are set); another GPU
        # (--set systems.gpu=a100) keeps its own
        gpu_arch = gpu_arch.replace(energy=duplex_arch.energy)
    gpu = device_for(gpu_arch, "tile")
    duplex = XpuPimDevice(duplex_arch, "tile", mode="logic")
    bank = XpuPimDevice(duplex_arch, "tile", mode="bank")
    costs = {k: LayerCosts(d, model, tp) for k, d in
             (("gpu", gpu), ("duplex", duplex), ("bank", bank))}
    weights = weight_bytes_per_device(model, "fp16", tp)
    kv_per_token = kv_bytes_per_token(model, "fp16", tp)
    cap = gpu.memory_capacity()
    grid = list(itertools.product(params["batches"], params["lengths"], params["lengths"]))
    points = []
    for batch, n_in, n_out in grid:
        need = weights + batch * (n_in + n_out) * kv_per_token
        row = {"batch": batch, "in": n_in, "out": n_out, "fits": need <= cap,
               "memory_per_device_GiB": need / 2**30}
        for k, c in costs.items():
            tps, jpt = serving_rate(c, model, batch, n_in, n_out)
            row[f"{k}_tokens_per_s"] = tps  # tensor parallel: the system runs at one shard's rate
            row[f"{k}_J_per_token"] = jpt
        row["speedup"] = row["duplex_tokens_per_s"] / row["gpu_tokens_per_s"]
        row["energy_ratio"] = row["duplex_J_per_token"] / row["gpu_J_per_token"]
        row["bank_pim_speedup"] = row["bank_tokens_per_s"] / row["gpu_tokens_per_s"]
        points.append(row)
    sensitivity = []
    lp = duplex_arch.logic_pim
    for label, bit, flop, hbm in (energy_variants(lp.energy_per_bit * 1e12,
                                                  lp.energy_per_flop * 1e12)
                                  if params.get("sensitivity", True) else []):
        d_var = LayerCosts(XpuPimDevice(with_energy(duplex_arch, bit, flop, hbm), "tile"),
                           model, tp)
        g_var = costs["gpu"] if not hbm else \
            LayerCosts(device_for(with_energy(gpu_arch, bit, flop, hbm), "tile"), model, tp)
        ratios = [serving_rate(d_var, model, b, i, o)[1] / serving_rate(g_var, model, b, i, o)[1]
                  for b, i, o in grid]
        sensitivity.append({"variant": label, "logic_pim_pJ_per_bit": round(bit, 4),
                            "logic_pim_pJ_per_flop": round(flop, 4),
                            "xpu_hbm_pJ_per_bit": round(hbm or gpu_arch.energy.memory["hbm"]
                                                        * 1e12, 4),
                            "mean_energy_ratio": sum(ratios) / len(ratios)})
    extra = {"bank_pim_mean_speedup": sum(p["bank_pim_speedup"] for p in points) / len(points),
             "energy_sensitivity": sensitivity, "wall_s": time.perf_counter() - wall}
    return {"points": points, "values": {}, "extra": extra}
