"""One call from (arch, model, scenario) to a checked :class:`Result`."""

from __future__ import annotations

import time
from typing import Any

from arch import Arch
from sim.devices.base import Device, SimError, device_for
from sim.engine import Engine
from sim.invariants import check_invariants
from sim.result import Result, op_table
from workloads.models import ModelConfig
from workloads.scenario import Scenario
from workloads.tracer import LayerShapes, kv_cache_bytes, trace_model, weight_bytes_per_device

VERSION = "0.1.0"


def _gib(x: float) -> str:
    return f"{x / 2**30:.1f} GiB"


def memory_per_device(model: ModelConfig, scenario: Scenario) -> dict[str, float]:
    """Bytes one device must hold: its weight shard and its share of the KV cache."""
    LayerShapes(model, scenario.tp)  # heads and d_ff must divide by tp (one-line error if not)
    weights = weight_bytes_per_device(model, scenario.dtype, scenario.tp, scenario.pp)
    kv = kv_cache_bytes(model, scenario)
    return {"weights": weights, "kv_cache": kv, "total": weights + kv}


def check_fits(device: Device, arch: Arch, model: ModelConfig, scenario: Scenario) -> dict:
    """Raise :class:`SimError` when the model and its KV cache exceed one device's memory."""
    system = arch.sections.get("system")
    devices = system.devices * system.nodes if system else 1
    if scenario.tp > devices:
        raise SimError(f"--tp: {scenario.tp} exceeds the {devices} device(s) of arch "
                       f"'{arch.name}' (use a multi-GPU arch such as dgx-a100 or dgx-h100)")
    pp = scenario.pp
    if scenario.tp * pp > devices:
        raise SimError(f"--pp: {scenario.tp} x {pp} (tp x pp) devices exceed the {devices} "
                       f"device(s) of arch '{arch.name}' (raise system.nodes or lower --pp)")
    need = memory_per_device(model, scenario)
    cap = device.memory_capacity()
    if need["total"] > cap:
        raise SimError(f"--model: {model.name} does not fit: it needs {_gib(need['total'])} per "
                       f"device (weights {_gib(need['weights'])} + KV cache "
                       f"{_gib(need['kv_cache'])}) but '{arch.name}' has {_gib(cap)}; "
                       "use a larger --tp, a smaller --batch or a shorter context")
    return need


def simulate(arch: Arch, model: ModelConfig, scenario: Scenario, fidelity: str = "tile",
             seed: int = 0) -> Result:
    """Trace ``model`` under ``scenario``, run it on ``arch`` and check the invariants."""
    wall = time.perf_counter()
    device = device_for(arch, fidelity)
    need = check_fits(device, arch, model, scenario)
    trace = trace_model(model, scenario)
    timeline = Engine({"device0": device}).run(trace)
    table = op_table(trace, timeline)
    invariants = check_invariants(trace, table)
    metrics, by_component = _metrics(table, device, model, scenario, need)
    metrics["events"] = float(timeline.events)
    inputs: dict[str, Any] = {
        "arch": arch.name, "arch_origin": arch.origin, "arch_type": arch.type,
        "model": model.name, "fidelity": fidelity, "seed": seed, "version": VERSION,
        "scenario": {"batch": scenario.batch, "prompt_len": scenario.prompt_len,
                     "gen_len": scenario.gen_len, "dtype": scenario.dtype,
                     "kv_dtype": scenario.kv_dtype, "tp": scenario.tp,
                     "pp": scenario.pp,
                     "attention": scenario.attention},
    }
    info = {**device.describe(scenario.dtype), "devices_used": scenario.tp * scenario.pp,
            "wall_s": time.perf_counter() - wall}
    return Result(table, metrics, invariants, inputs, by_component, info)


def _metrics(table, device: Device, model: ModelConfig, scenario: Scenario,
             need: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    prefill = table[table["phase"] == "prefill"]
    decode = table[table["phase"] == "decode"]
    latency = float(table["end_s"].max())
    ttft = float(prefill["end_s"].max()) if len(prefill) else 0.0
    decode_time = latency - ttft
    steps = scenario.gen_len - 1
    tokens = scenario.batch * scenario.gen_len
    static_J = device.static_power() * latency * scenario.tp * scenario.pp
    dynamic_J = float(table["energy_J"].sum())
    energy = dynamic_J + static_J
    by_component = {
        "compute": float(table["energy_compute_J"].sum()),
        "memory": float(table["energy_memory_J"].sum()),
        "link": float(table["energy_link_J"].sum()),
        "static": static_J,
    }
    metrics = {
        "ttft_s": ttft,
        "tpot_s": decode_time / steps if steps > 0 else 0.0,
        "latency_s": latency,
        "tokens_per_s": tokens / latency if latency > 0 else 0.0,
        "decode_tokens_per_s": scenario.batch * steps / decode_time if decode_time > 0 else 0.0,
        "energy_J": energy,
        "energy_per_token_J": energy / tokens,
        "dynamic_energy_J": dynamic_J,
        "static_energy_J": static_J,
        "flops": float(table["flops"].sum()),
        "bytes": float(table["bytes"].sum()),
        "dram_bytes": float(table["dram_bytes"].sum()),
        "prefill_flops": float(prefill["flops"].sum()),
        "decode_flops": float(decode["flops"].sum()),
        "weights_bytes_per_device": need["weights"],
        "kv_cache_bytes_per_device": need["kv_cache"],
        "memory_per_device_bytes": need["total"],
        "ops": float(len(table)),
    }
    return metrics, by_component
