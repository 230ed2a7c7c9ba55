"""Plausibility invariants: a result that leaves physical bounds derived from the arch is an error.

The consistency invariants (:mod:`sim.invariants`) catch bugs: ops lost, latencies below their
roofline. These catch inputs whose magnitudes the models carry through faithfully into absurd
results, and name the parameter behind it:

* ``metrics_finite``: every metric is a finite number >= 0 (JSON has no ``Infinity``);
* ``latency_below_unit_machine``: a run takes no longer than a machine that does 1 FLOP/s and
  moves 1 B/s would need for the same FLOPs and bytes (a sanity floor on every rate: the
  plausibility bounds in :mod:`arch.plausible` put every rate >= 10^6 per second);
* ``energy_below_peak_power`` (GPU arches): each energy component is at most the power of its
  units at their peak rates times the run's time and devices: compute at most
  ``max_dtype(J/FLOP x FLOP/s)`` of the tensor and of the vector units, memory at most
  ``sum_level(J/bit x 8 x B/s)``. Energy per action times actions per second is power; no
  schedule makes a unit do more actions per second than its peak.

:func:`native_dtype_warning` says when a datatype has no native rate on a GPU (e.g. fp8 on A100,
which the model then runs at the fp32 vector rate): an explicit, warned emulation.
"""

from __future__ import annotations

import math
from typing import Any

from arch import Arch
from sim.devices.base import SimError

#: relative slack of the energy bound (float sums over many ops)
REL_TOL = 1e-6


def _largest(table: dict[str, float], prefix: str) -> str:
    if not table:
        return prefix
    key = max(table, key=lambda k: table[k])
    return f"{prefix}.{key}"


def _suspect(arch: Arch, metric: str) -> str:
    """The arch parameter most likely behind an absurd ``metric``."""
    energy = arch.sections.get("energy")
    gpu = arch.sections.get("gpu")
    if "energy" in metric and energy is not None:
        compute = getattr(energy, "compute", {}) or {}
        return _largest(compute, "energy.compute")
    if gpu is not None:
        if metric in ("flops", "prefill_flops", "decode_flops"):
            return "the workload's shapes"
        return "gpu.clock or the smallest of gpu.tensor_flops, gpu.vector_flops, memory.*"
    return "the arch's rates, latencies and energies"


def _gpu_power(arch: Arch) -> dict[str, tuple[float, str]]:
    """Peak power per energy component of one GPU, W, with the parameters it comes from."""
    g, energy, memory = arch.sections["gpu"], arch.sections.get("energy"), arch.memory
    if energy is None:
        return {}
    out: dict[str, tuple[float, str]] = {}
    compute = energy.compute
    fallback = compute.get("fp32", 0.0)
    tensor = max(((compute.get(d) or fallback) * r, d) for d, r in g.tensor_flops.items())
    vector = max(((compute.get(d) or fallback) * r, d) for d, r in g.vector_flops.items())
    # a dtype without a rate runs at the fp32 vector rate; it may be charged its own J/FLOP
    emul = max((e for d, e in compute.items()), default=0.0) * g.vector_flops.get("fp32", 0.0)
    out["compute"] = (tensor[0] + max(vector[0], emul),
                      f"energy.compute.{tensor[1]} x gpu.tensor_flops.{tensor[1]}")
    mem = sum(energy.memory.get(name, 0.0) * 8 * level.bandwidth
              for name, level in memory.items())
    out["memory"] = (mem, "energy.memory x memory.*.bandwidth")
    return out


def check_plausible(arch: Arch, metrics: dict[str, float], by_component: dict[str, float],
                    devices: int) -> dict[str, str]:
    """Check a run's metrics against the bounds above; return ``{name: "passed"}`` or raise
    :class:`SimError` (one line, naming the metric and the parameter)."""
    out: dict[str, str] = {}
    for key, value in {**metrics, **{f"energy_{k}_J": v for k, v in by_component.items()}}.items():
        if not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value) or value < 0:
            raise SimError(f"{_suspect(arch, key)}: the result's {key} is {value!r}; the arch's "
                           "magnitudes are too extreme to give a finite, physical result")
    out["metrics_finite"] = "passed"
    latency = metrics.get("latency_s", 0.0)
    work = metrics.get("flops", 0.0) + metrics.get("bytes", 0.0)
    if work > 0 and latency > work:
        raise SimError(f"{_suspect(arch, 'latency_s')}: the run takes {latency:.3g} s, longer "
                       f"than a machine doing 1 FLOP/s and 1 B/s would need ({work:.3g} s)")
    out["latency_below_unit_machine"] = "passed"
    if arch.type == "gpu" and latency > 0:
        for comp, (power, source) in _gpu_power(arch).items():
            spent = by_component.get(comp, 0.0)
            ceiling = power * latency * devices * (1 + REL_TOL)
            if spent > ceiling:
                raise SimError(f"{source}: {comp} energy {spent:.4g} J exceeds peak power x time "
                               f"({power:.4g} W x {latency:.4g} s x {devices} devices)")
        out["energy_below_peak_power"] = "passed"
    return out


def native_dtype_warning(arch: Arch, dtypes: tuple[str, ...]) -> str | None:
    """A one-line warning when a GPU arch has no native rate for one of ``dtypes`` (it is then
    emulated at the fp32 vector rate), else None."""
    g: Any = arch.sections.get("gpu")
    if g is None:
        return None
    native = set(g.tensor_flops) | set(g.vector_flops)
    missing = [d for d in dict.fromkeys(dtypes) if d and d not in native]
    if not missing:
        return None
    return (f"{', '.join(missing)} not native on {arch.name} (gpu.tensor_flops and "
            f"gpu.vector_flops list {', '.join(sorted(native))}); emulated at the fp32 vector "
            "rate")
