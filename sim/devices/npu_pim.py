"""NPU + bank-level PIM device (arch type ``npu_pim``): NeuPIMs and its naive baseline.

The NPU (``npu`` section, modelled by :class:`sim.devices.npu.NpuDevice` — reused, not
re-implemented) runs GEMMs and vector ops; decode attention's GEMVs against the KV cache run in
the PIM banks of the ``dram`` section (:class:`sim.devices.pim.PimModel`), each request's KV
cache in one channel as NeuPIMs places it. Weight GEMMs stay on the NPU (batched decode makes
them GEMMs). The NPU's DRAM streams at the efficiency the cycle-level DRAM model measures for
the ``dram`` section (memoised ``stream`` pattern), not at an assumed fraction.

In ``xpusim run`` ops execute one after another in trace order, so NPU and PIM never overlap
and single vs dual row buffers give the same time; the concurrent schedule (dual row buffers,
sub-batch interleaving, channel placement) is :mod:`sim.serving.interleave`, used by
``xpusim reproduce neupims``.
"""

from __future__ import annotations

import dataclasses

from arch import Arch
from sim.devices.base import Cost, Device, register_device
from sim.devices.npu import NpuDevice
from sim.devices.pim import PimModel
from sim.micro.dram_patterns import pattern_timing
from workloads.einsum import Einsum
from workloads.trace import COLLECTIVE, MATMUL, Op


def kv_gemv(op: Op) -> tuple[int, int, int, int] | None:
    """(instances, outputs, length, vectors) of a decode attention contraction whose matrix
    operand is the KV cache (QK^T or PV); None otherwise. Prefill attention is a GEMM and stays
    on the NPU (NeuPIMs runs the initiation phase on the NPU)."""
    e = op.compute
    if op.phase == "prefill" or op.kind != MATMUL:
        return None
    if not isinstance(e, Einsum) or not e.is_contraction:
        return None
    if e.inputs[1].role != "kv_cache":
        return None
    batch, m, n, k = e.gemm_shape
    return batch, n, k, m


def npu_view(arch: Arch) -> Arch:
    """The arch as the NPU sees it: its ``memory.dram`` efficiency set to the sustained streaming
    efficiency the cycle-level model measures for the ``dram`` section."""
    pim = PimModel(arch)
    eff = pattern_timing(pim.cfg1, "stream").efficiency
    mem = dict(arch.memory)
    mem["dram"] = dataclasses.replace(mem["dram"], efficiency=min(1.0, eff))
    return arch.replace(memory=mem)


@register_device
class NpuPimDevice(Device):
    """An NPU whose memory is bank-level PIM (NeuPIMs), arch type ``npu_pim``."""

    arch_type = "npu_pim"

    def __init__(self, arch: Arch, fidelity: str = "tile"):
        super().__init__(arch, fidelity)
        self.pim = PimModel(arch)
        self.npu = NpuDevice(npu_view(arch), fidelity)

    def peak_flops(self, op: Op) -> float:
        if kv_gemv(op) is not None:
            return 2.0 * self.pim.peak_macs()
        return self.npu.peak_flops(op)

    def peak_bandwidth(self) -> float:
        return self.npu.peak_bandwidth()

    def memory_capacity(self) -> float:
        return self.npu.memory_capacity()

    def static_power(self) -> float:
        return self.npu.static_power() + self.pim.background_power()

    def link_bandwidth(self) -> float:
        return self.npu.link_bandwidth()

    def roof_lines(self, dtype: str) -> dict[str, float]:
        return {**self.npu.roof_lines(dtype), "PIM MACs": 2.0 * self.pim.peak_macs()}

    def roofline(self, op: Op) -> float:
        if kv_gemv(op) is not None:
            shards = max(op.shards, 1)
            return max(op.flops / shards / (2.0 * self.pim.peak_macs()),
                       op.bytes / shards / self.pim.internal_bandwidth())
        return self.npu.roofline(op)

    def pim_cost(self, op: Op) -> Cost:
        inst, outputs, length, vectors = kv_gemv(op)  # type: ignore[misc]
        r = self.pim.gemv(inst, outputs, length, vectors)
        roof = self.roofline(op)
        return Cost(max(r["seconds"], roof), roof, "pim", {"pim": r["energy_J"]},
                    op.bytes / max(op.shards, 1),
                    {"mac_utilization": r["mac_utilization"], "unit": "pim"})

    def _estimate(self, op: Op) -> Cost:
        if op.kind != COLLECTIVE and self.fidelity != "roofline" and kv_gemv(op) is not None:
            return self.pim_cost(op)
        return self.npu.estimate(op)
