"""One call from (arch, model, scenario) to a checked :class:`Result`."""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from arch import Arch
from sim.columns import Columns, Text
from sim.devices.base import Device, SimError, device_for
from sim.devices.phased import PhaseDevice
from sim.fold_run import folded
from sim.gpu.power_cap import (
    PowerLimitError,
    at_speed,
    board_power,
    gpu_arch,
    limits,
    solve_speed,
    solve_speeds,
)
from sim.plausibility import check_plausible
from sim.result import Result
from sim.system.budget import check_staging, place_on_system, system_metrics
from sim.system.execute import execute
from sim.system.schedule import Policies, build_plan, stages_for
from sim.system.topology import System, build_system
from workloads.gc_hold import gc_paused
from workloads.models import ModelConfig
from workloads.scenario import Scenario
from workloads.tracer import LayerShapes, kv_cache_bytes, trace_model, weight_bytes_per_device

if TYPE_CHECKING:  # loaded where a run places tensors (start-up, issue 18)
    from sim.system.placement import PlacementSpec

VERSION = "0.1.0"
#: the op-table columns whose whole-column sums :func:`_metrics` reports (summed while a long
#: run's op checks run beside, :func:`sim.system.execute.execute`); FLOPs and bytes last, which
#: the checks sum too (the table keeps each sum)
SUMMED_METRICS = ("energy_J", "energy_compute_J", "energy_memory_J", "energy_link_J",
                  "dram_bytes", "flops", "bytes")


def _gib(x: float) -> str:
    return f"{x / 2**30:.1f} GiB"


def memory_per_device(model: ModelConfig, scenario: Scenario) -> dict[str, float]:
    """Bytes one device must hold: its weight shard and its share of the KV cache."""
    LayerShapes(model, scenario.tp)  # heads and d_ff must divide by tp (one-line error if not)
    weights = weight_bytes_per_device(model, scenario.weight_format, scenario.tp, scenario.pp)
    kv = kv_cache_bytes(model, scenario)
    return {"weights": weights, "kv_cache": kv, "total": weights + kv}


def check_fits(device: Device, arch: Arch, model: ModelConfig, scenario: Scenario,
               system: System | None = None) -> dict:
    """Raise :class:`SimError` when there are too few devices, or the model and its KV cache
    exceed one device's memory (used when no placement puts tensors elsewhere)."""
    system = system or build_system(arch)
    stages_for(system, scenario.tp, scenario.pp)
    need = memory_per_device(model, scenario)
    cap = device.memory_capacity()
    if need["total"] > cap:
        raise SimError(f"--model: {model.name} does not fit: it needs {_gib(need['total'])} per "
                       f"device (weights {_gib(need['weights'])} + KV cache "
                       f"{_gib(need['kv_cache'])}) but '{arch.name}' has {_gib(cap)}; "
                       "use a larger --tp, a smaller --batch, a shorter context or --placement")
    return need


def simulate(arch: Arch, model: ModelConfig, scenario: Scenario, fidelity: str = "tile",
             seed: int = 0, placement: PlacementSpec | None = None,
             policies: Policies | None = None, coarsen: bool = True) -> Result:
    """Trace ``model`` under ``scenario``, run it on the system ``arch`` describes (one device
    or many, with their memory tiers and links) and check the invariants.

    ``placement`` puts tensor classes on tiers (default: everything on the device);
    ``policies`` says whether collectives overlap compute and how far transfers prefetch;
    ``coarsen=False`` runs the engine with one event per op (the same times, slower).

    The cyclic garbage collector is held for the call (:func:`workloads.gc_hold.gc_paused`:
    its passes over a long run's many acyclic objects took a fifth of the run's CPU). The
    objects the run leaves are then moved to the collector's oldest generation without a scan
    (``gc.freeze`` + ``gc.unfreeze``), so re-enabling it does not start a young-generation
    collection over all of them at once (~9 us of CPU per generated token of a 7B run); any
    cycles among them go at the next full collection."""
    promote = gc.isenabled()
    with gc_paused():
        result = _simulate(arch, model, scenario, fidelity, seed, placement, policies, coarsen)
        if limits(arch):
            def rerun(a: Arch, speeds: dict[str, float] | None = None,
                      prefill_only: bool = False) -> Result:
                sc = dataclasses.replace(scenario, gen_len=1) if prefill_only else scenario
                return _simulate(a, model, sc, fidelity, seed, placement, policies, coarsen,
                                 speeds)

            try:
                result = _power_limited(arch, result, rerun)
            except PowerLimitError as exc:
                raise SimError(f"{arch.origin or arch.name}: {exc}") from None
        if promote:
            gc.freeze()
            gc.unfreeze()
        return result


def _simulate(arch: Arch, model: ModelConfig, scenario: Scenario, fidelity: str, seed: int,
              placement: PlacementSpec | None, policies: Policies | None,
              coarsen: bool, phase_speeds: dict[str, float] | None = None) -> Result:
    """:func:`simulate`'s body (the collector held by the caller); ``phase_speeds`` prices the
    ops of each phase on ``arch``'s GPU at that fraction of its boost clock."""
    wall = time.perf_counter()
    policies = policies or Policies()
    system = build_system(arch)
    device = device_for(arch, fidelity)
    if phase_speeds:
        device = PhaseDevice({p: device_for(at_speed(arch, c), fidelity)
                              for p, c in phase_speeds.items()}, device)
    if placement is None:
        need = check_fits(device, arch, model, scenario, system)
        placed = None
    else:
        stages_for(system, scenario.tp, scenario.pp)
        need = memory_per_device(model, scenario)
        placed = place_on_system(system, placement, need, scenario.tp * scenario.pp)
    # ops a device unit (PIM) runs beside the rest; co-processed ops as two tasks (Duplex)
    trace = device.split_trace(trace_model(model, scenario, units=device.unit_ops(),
                                           compact=coarsen))
    if policies.attention_on:
        from sim.system.hosted import host_attention  # loaded where ops run off the device

        host_attention(trace, system, scenario.tp, policies.attention_on, scenario.pp)
    plan = build_plan(trace, system, device, placed, policies)
    if placed is not None:
        check_staging(system, plan, placed, policies)
    run = execute(system, trace, plan, placed, need, coarsen, totals=SUMMED_METRICS)
    # numpy columns: the metrics need no pandas (Result builds DataFrames when asked)
    table, transfers, resources, invariants = run.op_columns, run.transfer_columns, \
        run.resource_columns, run.invariants
    timeline, makespan = run.timeline, run.makespan
    metrics, by_component = _metrics(table, device, model, scenario, need)
    metrics["latency_s"] = max(metrics["latency_s"], makespan)
    metrics.update(system_metrics(table, transfers, resources, placed))
    if len(transfers):
        by_component["transfer"] = float(transfers["energy_J"].sum())
        metrics["energy_J"] += by_component["transfer"]
        metrics["energy_per_token_J"] = metrics["energy_J"] / (scenario.batch * scenario.gen_len)
    metrics["events"] = float(timeline.events)
    metrics["engine_events"] = float(timeline.engine_events)
    invariants.update(check_plausible(arch, metrics, by_component, scenario.tp * scenario.pp))
    inputs: dict[str, Any] = {
        "arch": arch.name, "arch_origin": arch.origin, "arch_type": arch.type,
        "model": model.name, "fidelity": fidelity, "seed": seed, "version": VERSION,
        "scenario": {"batch": scenario.batch, "prompt_len": scenario.prompt_len,
                     "gen_len": scenario.gen_len, "dtype": scenario.dtype,
                     "kv_dtype": scenario.kv_dtype, "tp": scenario.tp,
                     "pp": scenario.pp, "microbatches": scenario.microbatches,
                     "attention": scenario.attention},
        "policies": {"overlap": policies.overlap, "prefetch": policies.prefetch,
                     "attention_on": policies.attention_on,
                     "relay_storage": policies.relay_storage},
        "placement": placed.bytes if placed is not None else None,
    }
    info = {**device.describe(scenario.dtype), "devices_used": scenario.tp * scenario.pp,
            "system": system.name, "streams": sorted(plan.streams),
            "wall_s": time.perf_counter() - wall}
    return Result(table, metrics, invariants, inputs, by_component, info, transfers, resources,
                  run.op_links)


def _power_limited(arch: Arch, boost: Result, rerun) -> Result:
    """The run at the SM clocks ``arch``'s power limit allows (sim/gpu/power_cap.py): ``boost``
    itself where its average board power per GPU is within the limit.

    Where the prefill and the decode each last longer than the limiter's reaction
    (``gpu.power_reaction``) and follow each other (one pipeline stage, no
    micro-batches, no transfers), each is held to the limit on its own: ``rerun(arch,
    speeds)`` prices each phase's ops at its own speed. Otherwise the run as a whole:
    ``rerun(at_speed(arch, c))``. The metrics say so: ``gpu_speed`` (the slowest phase's
    fraction of the boost clock), ``board_power_W`` and ``boost_power_W`` per GPU over the
    run, and per phase ``gpu_speed_<phase>`` and ``board_power_<phase>_W``."""
    sc = boost.inputs["scenario"]
    devices = sc["tp"] * sc["pp"]
    m = boost.metrics
    spans = {"prefill": m["ttft_s"], "decode": m["latency_s"] - m["ttft_s"]}
    if sc["pp"] == 1 and sc["microbatches"] <= 1 and not len(boost.columns("transfers")) and \
            min(spans.values()) >= gpu_arch(arch).gpu.power_reaction:
        return _phase_limited(arch, boost, rerun, devices)
    runs = {1.0: boost}

    def run(c: float) -> tuple[float, float, float]:
        if c not in runs:
            runs[c] = rerun(at_speed(arch, c))
        return _energies(runs[c], devices)

    state = solve_speed(arch, run)
    result = runs[state.speed]
    result.metrics.update(gpu_speed=state.speed, board_power_W=state.power,
                          boost_power_W=state.boost_power)
    result.device_info["power_limit_W"] = gpu_arch(arch).gpu.power_limit
    return result


def _energies(result: Result, devices: int) -> tuple[float, float, float]:
    """(seconds, compute J, other dynamic J) per GPU of a whole run."""
    m, parts = result.metrics, result.energy_by_component
    compute = parts.get("compute", 0.0) / devices
    return m["latency_s"], compute, (m["energy_J"] - m["static_energy_J"]) / devices - compute


def _phase_energies(result: Result, devices: int) -> dict[str, tuple[float, float, float]]:
    """(seconds, compute J, other dynamic J) per GPU of each phase of a run: the prefill up to
    the first token, the decode after it, each with its ops' energy."""
    m, fold = result.metrics, result.folded_ops()
    if fold is not None:
        total, phase = fold.total, None
    else:
        table = result.columns("ops")
        total, phase = _totals(table), table.text("phase")
    out = {}
    for label, seconds in (("prefill", m["ttft_s"]), ("decode", m["latency_s"] - m["ttft_s"])):
        rows = label if phase is None else _rows_of(phase, label)
        compute = total("energy_compute_J", rows) / devices
        out[label] = (seconds, compute, total("energy_J", rows) / devices - compute)
    return out


def _phase_limited(arch: Arch, boost: Result, rerun, devices: int) -> Result:
    """:func:`_power_limited` with each phase held to the limit on its own.

    Where the decode draws no more than the limit at the boost clock (the common case: its
    search settles at once), the prefill's search runs the prefill alone (``rerun(...,
    prefill_only=True)``: the same ops, priced first, so the same figures) and the run is made
    once, at the speeds found: 2-4 prefill passes instead of 2-4 whole runs."""
    runs = {(1.0, 1.0): boost}
    first = _phase_energies(boost, devices)
    dev = gpu_arch(arch)
    seconds, compute, other = first["decode"]
    quiet_decode = board_power(dev.energy.static_power, 1.0, seconds, compute + other) <= \
        dev.gpu.power_limit
    prefills: dict[float, tuple[float, float, float]] = {}

    def run(speeds: dict[str, float]) -> dict[str, tuple[float, float, float]]:
        key = (speeds["prefill"], speeds["decode"])
        if key in runs:
            return _phase_energies(runs[key], devices)
        if quiet_decode and speeds["decode"] == 1.0:
            c = speeds["prefill"]
            if c not in prefills:
                alone = rerun(arch, {"prefill": c, "decode": 1.0}, prefill_only=True)
                prefills[c] = _phase_energies(alone, devices)["prefill"]
            return {"prefill": prefills[c], "decode": first["decode"]}
        runs[key] = rerun(arch, speeds)
        return _phase_energies(runs[key], devices)

    states = solve_speeds(arch, run, ("prefill", "decode"))
    key = (states["prefill"].speed, states["decode"].speed)
    if key not in runs:
        runs[key] = rerun(arch, {"prefill": key[0], "decode": key[1]})
    result = runs[key]
    m = result.metrics
    static = gpu_arch(arch).energy.static_power
    seconds, compute, other = _energies(result, devices)
    boost_seconds = boost.metrics["latency_s"]
    _, b_compute, b_other = _energies(boost, devices)
    m.update(gpu_speed=min(s.speed for s in states.values()),
             board_power_W=static + (compute + other) / seconds,
             boost_power_W=static + (b_compute + b_other) / boost_seconds)
    for label, state in states.items():
        m[f"gpu_speed_{label}"] = state.speed
        m[f"board_power_{label}_W"] = state.power
    result.device_info["power_limit_W"] = gpu_arch(arch).gpu.power_limit
    return result


def _metrics(table: Columns, device: Device, model: ModelConfig, scenario: Scenario,
             need: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """Run metrics and energy by component from the op table's numpy columns."""
    fold = folded(table)
    if fold is not None:   # a folded one-stream run: per op kind, no pass over the ops
        total = fold.total
        is_prefill, is_decode = "prefill", "decode"
        latency = fold.makespan if len(fold) else math.nan
        ttft = fold.phase_end("prefill") or 0.0
    else:
        # masks, not row copies: a long run's table is hundreds of MB
        phase = table.text("phase")
        is_prefill, is_decode = _rows_of(phase, "prefill"), _rows_of(phase, "decode")
        # each summed column summed without being kept, or formed where it is gathered per
        # op kind (Columns.total: the same sums, bit for bit)
        end, total = table["end_s"], _totals(table)
        latency = float(end.max()) if len(end) else math.nan
        ttft = float(end[is_prefill].max()) if end[is_prefill].size else 0.0
    decode_time = latency - ttft
    steps = scenario.gen_len - 1
    tokens = scenario.batch * scenario.gen_len
    static_J = device.static_power() * latency * scenario.tp * scenario.pp
    dynamic_J = total("energy_J")
    energy = dynamic_J + static_J
    by_component = {
        "compute": total("energy_compute_J"),
        "memory": total("energy_memory_J"),
        "link": total("energy_link_J"),
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
        "flops": total("flops"),
        "bytes": total("bytes"),
        "dram_bytes": total("dram_bytes"),
        "prefill_flops": total("flops", is_prefill),
        "decode_flops": total("flops", is_decode),
        "weights_bytes_per_device": need["weights"],
        "kv_cache_bytes_per_device": need["kv_cache"],
        "memory_per_device_bytes": need["total"],
        "ops": float(len(table)),
    }
    return metrics, by_component


def _totals(table: Any):
    """``total(name, rows=None)``: ``float(table[name][rows].sum())`` of the op table, by
    :meth:`Columns.total` where it is :class:`Columns` (whole-column sums kept for the
    invariants, which sum some of the same columns)."""
    if isinstance(table, Columns):
        return table.total
    return lambda name, rows=None: float((table[name].to_numpy() if rows is None
                                          else table[name].to_numpy()[rows]).sum())


def _rows_of(phase: Text, label: str) -> slice | np.ndarray:
    """The rows whose phase is ``label``: a slice where they are one contiguous run (a
    one-stream run's prefill, then its decode steps; selecting by it takes the same rows in
    the same order as the mask, without a pass per phase), else a boolean mask."""
    codes = np.asarray(phase.codes)
    where = [j for j, v in enumerate(phase.labels) if v == label]
    if len(where) == 1 and len(codes):
        change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
        if len(change) < 64:    # a few runs: find the label's (one) run
            starts = [0, *change.tolist()]
            ends = [*change.tolist(), len(codes)]
            runs = [(a, b) for a, b in zip(starts, ends, strict=True)
                    if int(codes[a]) == where[0]]
            if len(runs) <= 1:
                return slice(*runs[0]) if runs else slice(0, 0)
    return phase.eq(label)
