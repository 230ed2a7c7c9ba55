"""Two FPGA LLM-decode designs with their workloads (``accllm`` experiment).

Both designs run as ``fpga`` arches through :func:`sim.run.simulate` at batch 1, each with its
own workload (weight format, KV dtype, sparsity, attention window). The study reports decode
tokens/s and tokens/J per design and context, an ablation that walks from the first design's
workload to the second's one change at a time on the second design, and a port-clock
sensitivity.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from sim.studies import study


def decode_point(arch: Any, model_name: str, workload: dict[str, Any], prompt: int,
                 gen: int) -> dict[str, Any]:
    """Decode tokens/s and tokens/J (dynamic energy of the decode ops + static power over the
    decode time) of batch-1 ``model_name`` on ``arch`` under ``workload``."""
    from sim.devices.base import device_for
    from sim.run import simulate
    from workloads.models import get_model
    from workloads.scenario import Scenario

    sc = Scenario(batch=1, prompt_len=prompt, gen_len=gen, **workload)
    res = simulate(arch, get_model(model_name), sc)
    ops = res.ops
    dec = ops[ops["phase"] == "decode"]
    t = res.metrics["latency_s"] - res.metrics["ttft_s"]
    tokens = gen - 1
    energy = float(dec["energy_J"].sum()) + device_for(arch, "tile").static_power() * t
    hbm = float(dec["dram_bytes"].sum()) / tokens
    return {"tokens_per_s": tokens / t, "tokens_per_J": tokens / energy,
            "ms_per_token": t / tokens * 1e3, "J_per_token": energy / tokens,
            "hbm_GB_per_token": hbm / 1e9, "power_W": energy / t,
            "weight_format": sc.weight_format, "kv_dtype": sc.kv_dtype}


def with_port_clock(arch: Any, clock: float) -> Any:
    """``arch`` with its design's HBM AXI ports at ``clock`` Hz."""
    return arch.replace(fpga_design=dataclasses.replace(arch.fpga_design, hbm_port_clock=clock))


@study("fpga-decode-designs")
def fpga_decode_designs(systems: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """Systems labelled by ``params["designs"]`` (label -> design name; the first is the
    base, the second the new design); params ``model``, ``workloads`` (label -> Scenario
    fields), ``context_lengths`` (name -> [prompt, gen]), ``contexts`` (names run; the first
    also for the ablation), ``ablation`` ([step, changes to the base workload], run on the new
    design), ``sensitivity_port_clock`` (Hz; 0 = none)."""
    from arch import load_arch
    from sim.devices.base import device_for

    wall = time.perf_counter()
    (base, base_name), (new, new_name) = list(params["designs"].items())[:2]
    model = params["model"]
    wl = params["workloads"]
    archs = {base: load_arch(systems[base]), new: load_arch(systems[new])}
    points: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    lengths = params["context_lengths"]
    for label, (prompt, gen) in lengths.items():
        values.update({f"{label}_prompt": prompt, f"{label}_gen": gen})
    for label in params["contexts"]:
        prompt, gen = lengths[label]
        f = decode_point(archs[base], model, wl[base], prompt, gen)
        a = decode_point(archs[new], model, wl[new], prompt, gen)
        points += [{"context": label, "prompt": prompt, "gen": gen, "design": base_name, **f},
                   {"context": label, "prompt": prompt, "gen": gen, "design": new_name, **a}]
        values.update({f"{label}_tps_ratio": a["tokens_per_s"] / f["tokens_per_s"],
                       f"{label}_tpj_ratio": a["tokens_per_J"] / f["tokens_per_J"]})
    ablation = []
    first = lengths[params["contexts"][0]]
    prev = None
    for step, change in params["ablation"]:
        p = decode_point(archs[new], model, {**wl[base], **change}, *first)
        prev = prev or p
        ablation.append({"step": step, "tokens_per_s": p["tokens_per_s"],
                         "tokens_per_J": p["tokens_per_J"],
                         "hbm_GB_per_token": p["hbm_GB_per_token"],
                         "speedup_vs_first": p["tokens_per_s"] / prev["tokens_per_s"]})
    sensitivity = []
    clock = float(params["sensitivity_port_clock"])
    if clock:   # the one assumption that sets the absolute rate: the AXI port clock
        pf = decode_point(with_port_clock(archs[base], clock), model, wl[base], *first)
        pa = decode_point(with_port_clock(archs[new], clock), model, wl[new], *first)
        sensitivity.append({"change": f"HBM AXI ports at {clock / 1e6:.0f} MHz (both designs)",
                            f"{base}_tokens_per_s": pf["tokens_per_s"],
                            f"{new}_tokens_per_s": pa["tokens_per_s"],
                            "tokens_per_s_ratio": pa["tokens_per_s"] / pf["tokens_per_s"],
                            "tokens_per_J_ratio": pa["tokens_per_J"] / pf["tokens_per_J"]})
    values["hbm_GBps"] = device_for(archs[base], "tile").hbm_bandwidth() / 1e9
    extra = {"ablation": ablation, "sensitivity": sensitivity,
             "wall_s": time.perf_counter() - wall}
    return {"points": points, "values": values, "extra": extra}
