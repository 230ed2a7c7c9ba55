"""Dataflow node (SN40L-style) study: fusion, model switching, Composition of Experts
(``sn40l`` experiment).

* Fused vs unfused: each kernel (a model's decoder in prefill or decode) on the node with
  ``dataflow.fusion: decoder`` and ``none``; time ratio and kernel calls per kernel.
* Model switching: one expert into HBM; the node from each socket's DDR over its DDR -> HBM
  path; a GPU system from host DRAM, as the paper builds it (one host link at its peak) and on
  the engine (every GPU over its own link, all sharing the host DRAM tier).
* CoE end to end: a router prefill, then the routed expert (copied in on a miss) generating
  for the batch; every batch switching, and LRU over a uniform routing stream.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from sim.studies import study


def with_fusion(arch, fusion: str):
    """``arch`` (a system with dataflow devices, or a dataflow socket) with ``dataflow.fusion``."""
    if arch.type == "system":
        comps = dict(arch.sections["components"])
        for name, comp in comps.items():
            if comp.kind == "device" and comp.device is not None and \
                    comp.device.type == "dataflow":
                new = dataclasses.replace(comp)
                new.device = comp.device.replace(
                    dataflow=dataclasses.replace(comp.device.dataflow, fusion=fusion))
                comps[name] = new
        return arch.replace(components=comps)
    return arch.replace(dataflow=dataclasses.replace(arch.dataflow, fusion=fusion))


def _phase_time(result, phase: str) -> float:
    """Seconds of one prefill, or of one decode step."""
    return result.metrics["ttft_s"] if phase == "prefill" else result.metrics["tpot_s"]


def _calls(ops, mode: str) -> int:
    """Kernel calls in an op table: every op unfused; one per (step, layer) group fused."""
    if mode == "none":
        return len(ops)
    return int(ops.groupby(["step", "layer"]).ngroups)


def fusion_table(node, kernels, tp: int, batch: int, prompt: int, where: str = "") -> list:
    """Per kernel: fused and unfused time of the phase, kernel calls, their ratios
    (``node``: the system or socket; ``tp`` its tensor-parallel degree)."""
    from sim.run import simulate
    from workloads.models import get_model
    from workloads.scenario import Scenario

    rows = []
    runs: dict[tuple[str, str], object] = {}
    for model_name, phase in kernels:
        model = get_model(model_name)
        sc = Scenario(batch=batch, prompt_len=prompt, gen_len=2, tp=tp)
        row = {"kernel": f"{model_name} decoder, {phase}{where}"}
        for mode in ("decoder", "none"):
            key = (model_name, mode)
            if key not in runs:
                runs[key] = simulate(with_fusion(node, mode), model, sc)
            res = runs[key]
            row[f"{mode}_s"] = _phase_time(res, phase)
            ops = res.ops[res.ops["phase"] == phase]
            row[f"{mode}_calls"] = _calls(ops, mode)
        row["speedup"] = row["none_s"] / row["decoder_s"]
        row["calls_cut"] = row["none_calls"] / row["decoder_calls"]
        rows.append(row)
    return rows


def copy_times(system, src_tier_of, shard_bytes: float) -> float:
    """Seconds for every compute device to receive ``shard_bytes`` from its source tier at
    once: each transfer loads its route's links and its source tier (processor sharing)."""
    import simpy

    from sim.resources import SharedBandwidth

    env = simpy.Environment()
    res: dict[str, SharedBandwidth] = {}
    ends: list[float] = []

    def shared(name: str, bw: float) -> SharedBandwidth:
        if name not in res:
            res[name] = SharedBandwidth(env, bw, name)
        return res[name]

    def one(dev: str):
        src = src_tier_of(dev)
        route = system.route(src, dev)
        tier = system.tiers[src]
        loads = [shared(tier.name, tier.bandwidth)]
        for hop in route.hops:
            link = system.links[hop.link]
            loads.append(shared(f"{hop.link}:{hop.forward}", link.bandwidth * link.efficiency))
        if route.latency:
            yield env.timeout(route.latency)
        yield env.all_of([r.transfer(shard_bytes) for r in loads])
        ends.append(env.now)

    for d in system.compute_devices():
        env.process(one(d.name))
    env.run()
    return max(ends)


def switching(expert_bytes: float, node: str = "sn40l-node",
              gpus: tuple[str, ...] = ("dgx-a100", "dgx-h100"), tp: int = 8) -> dict:
    """Model-switch seconds: the dataflow node (DDR -> HBM per socket, ``ddrN`` feeding
    ``rduN``), each GPU system's paper build and engine build (keys use the arch names)."""
    from arch import load_arch
    from sim.system.topology import build_system

    out: dict[str, float] = {}
    system = build_system(load_arch(node))
    out["sn40l_s"] = copy_times(system, lambda dev: "ddr" + dev.removeprefix("rdu"),
                                expert_bytes / tp)
    for name in gpus:
        system = build_system(load_arch(name))
        host = next(t.name for t in system.tiers.values() if not t.device)
        pcie = next(lk for lk in system.links.values() if lk.kind == "pcie")
        out[f"{name}_paper_s"] = expert_bytes / pcie.bandwidth
        out[f"{name}_link_GBps"] = pcie.bandwidth / 1e9
        out[f"{name}_engine_s"] = copy_times(system, lambda dev, h=host: h, expert_bytes / tp)
    return out


def coe(switch: dict, systems: dict[str, str], params: dict[str, Any]) -> tuple[list, dict]:
    """CoE time per batch on each system (every batch switching, and LRU over a uniform
    stream), and the parts it is made of."""
    from arch import load_arch
    from sim.run import simulate
    from workloads.coe import CoE, misses, routing_stream
    from workloads.models import get_model
    from workloads.scenario import Scenario

    tp, batch, prompt = int(params["tp"]), int(params["batch"]), int(params["prompt"])
    n_exp = int(params["n_experts"])
    model = get_model(params["expert_model"])
    expert_bytes = model.param_count() * 2
    parts: dict[str, dict] = {}
    stream = routing_stream(int(params["stream"]), n_exp, int(params["seed"]))
    names = [systems["node"], *(systems[g] for g in params["gpu_systems"])]
    for name in names:
        arch = load_arch(name)
        gen = simulate(arch, model, Scenario(batch=batch, prompt_len=prompt,
                                             gen_len=int(params["gen"]), tp=tp))
        router = simulate(arch, model, Scenario(batch=batch, prompt_len=prompt, gen_len=1,
                                                tp=tp))
        hbm = gen.device_info["memory_capacity_B"] * tp
        reserve = gen.metrics["kv_cache_bytes_per_device"] * tp
        slots = CoE(n_exp, expert_bytes, expert_bytes).resident_experts(hbm, reserve)
        miss = misses(stream, slots, "lru")
        parts[name] = {"generate_s": gen.metrics["latency_s"],
                       "router_s": router.metrics["latency_s"], "hbm_expert_slots": slots,
                       "miss_rate": sum(miss) / max(len(miss), 1)}
    rows = []
    sn = parts[systems["node"]]
    sn_all = sn["router_s"] + switch["sn40l_s"] + sn["generate_s"]
    sn_lru = sn["router_s"] + sn["miss_rate"] * switch["sn40l_s"] + sn["generate_s"]
    for gpu in names[1:]:
        g = parts[gpu]
        for build in ("paper", "engine"):
            sw = switch[f"{gpu}_{build}_s"]
            t_all = g["router_s"] + sw + g["generate_s"]
            t_lru = g["router_s"] + g["miss_rate"] * sw + g["generate_s"]
            rows.append({"baseline": gpu, "switching": build, "dgx_all_switch_s": t_all,
                         "sn40l_all_switch_s": sn_all, "speedup_all_switch": t_all / sn_all,
                         "dgx_lru_s": t_lru, "sn40l_lru_s": sn_lru,
                         "speedup_lru": t_lru / sn_lru})
    return rows, parts


@study("dataflow-coe")
def dataflow_coe(systems: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """Systems ``node`` (dataflow node), ``socket`` (one socket) and the GPU systems named in
    ``params["gpu_systems"]``; params ``tp``, ``batch``, ``prompt``, ``gen``, ``kernels``
    ([model, phase]), ``socket_kernels``, ``expert_model``, ``n_experts``, ``stream``,
    ``seed``. Values ``<label>_<build>_all`` / ``_lru`` (CoE speedups), ``<label>_<build>
    _switch`` (switching speedups), fusion min/max and the largest call cut."""
    from arch import load_arch
    from workloads.models import get_model

    wall = time.perf_counter()
    cpu = time.process_time()
    tp, batch, prompt = int(params["tp"]), int(params["batch"]), int(params["prompt"])
    table = fusion_table(load_arch(systems["node"]), [tuple(k) for k in params["kernels"]],
                         tp, batch, prompt)
    if params["socket_kernels"]:   # one socket, no all-reduces: fusion without the P2P link
        table += fusion_table(load_arch(systems["socket"]),
                              [tuple(k) for k in params["socket_kernels"]], 1, batch, prompt,
                              where=" (1 socket)")
    expert_bytes = get_model(params["expert_model"]).param_count() * 2
    gpus = tuple(systems[g] for g in params["gpu_systems"])
    sw = switching(expert_bytes, systems["node"], gpus, tp)
    coe_rows, parts = coe(sw, systems, params)
    by = {(r["baseline"], r["switching"]): r for r in coe_rows}
    values: dict[str, float] = {}
    for label in params["gpu_systems"]:
        name = systems[label]
        for build in ("paper", "engine"):
            values[f"{label}_{build}_all"] = by[(name, build)]["speedup_all_switch"]
            values[f"{label}_{build}_lru"] = by[(name, build)]["speedup_lru"]
            values[f"{label}_{build}_switch"] = sw[f"{name}_{build}_s"] / sw["sn40l_s"]
    speedups = [r["speedup"] for r in table]
    values.update({"fusion_min": min(speedups), "fusion_max": max(speedups),
                   "calls_cut_max": max(r["calls_cut"] for r in table)})
    extra = {"fusion_table": table, "switching": sw, "coe": coe_rows, "coe_parts": parts,
             "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    return {"points": None, "values": values, "extra": extra}
