"""NPU + bank-level PIM device (arch type ``npu_pim``): NeuPIMs and its naive baseline.

The NPU (``npu`` section, modelled by :class:`sim.devices.npu.NpuDevice` — reused, not
re-implemented) runs GEMMs and vector ops; decode attention's GEMVs against the KV cache run in
the PIM banks of the ``dram`` section (:class:`sim.devices.pim.PimModel`), each request's KV
cache in one channel as NeuPIMs places it. Weight GEMMs stay on the NPU (batched decode makes
them GEMMs). The NPU's DRAM streams at the efficiency the cycle-level DRAM model measures for
the ``dram`` section (memoised ``stream`` pattern), not at an assumed fraction.

With dual row buffers (NeuPIMs) the PIM is a unit of its own: ``unit_of`` puts the decode
attention program (the KV GEMVs and, as the NeuPIMs artifact issues it from the PIM program to
the NPU's vector units, the softmax between them) on a ``pim`` stream beside the NPU's compute
stream, and ``unit_ops`` tells the tracer to cut micro-batches (sub-batches) there, so
``xpusim run --microbatches 2`` interleaves one sub-batch's attention with the other's
projections. While a PIM GEMV runs it takes the command-bus share ``1 - npu_share`` of the
DRAM from the NPU (``Cost.detail['memory_share']``, reserved in the engine's shared memory), so
concurrent NPU ops' DRAM traffic stretches. With single row buffers (``neupims-naive``) the
PIM owns the banks: everything stays on one stream, NPU and PIM never overlap.
``xpusim reproduce neupims`` runs its iterations through the same engine
(:mod:`sim.serving.interleave`).
"""

from __future__ import annotations

import dataclasses

from arch import Arch
from sim.devices.base import Cost, Device, register_device
from sim.devices.npu import NpuDevice
from sim.devices.pim import PimModel, stream_timing
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


def npu_share(bus_busy: float, burst_cycle: float) -> float:
    """Fraction of the DRAM's streaming bandwidth left to the NPU while PIM takes ``bus_busy``
    of the command-bus cycles: a read needs one command per ``burst_cycle`` cycles of data, so
    the free command slots sustain ``(1 - bus_busy) x burst_cycle`` of the data bus (at most
    all of it; at least 5%, a floor that keeps the NPU progressing)."""
    return max(0.05, min(1.0, (1.0 - bus_busy) * burst_cycle))


def npu_view(arch: Arch) -> Arch:
    """The arch as the NPU sees it: its ``memory.dram`` efficiency set to the sustained streaming
    efficiency the cycle-level model measures for the ``dram`` section."""
    pim = PimModel(arch)
    eff = stream_timing(arch, pim.cfg1).efficiency
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

    @classmethod
    def fidelities(cls) -> tuple[str, ...]:
        return ("roofline", "tile", "cycle")

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

    def dual_row_buffers(self) -> bool:
        """True when NPU programs may use the DRAM while PIM computes (NeuPIMs)."""
        return self.pim.pim.row_buffers >= 2 and self.fidelity != "roofline"

    def unit_ops(self) -> tuple[str, ...]:
        """Names of the ops the PIM program runs (decode attention), for the tracer's cuts."""
        return ("qk", "softmax", "av") if self.dual_row_buffers() else ()

    def unit_of(self, op: Op) -> str:
        if not self.dual_row_buffers() or op.phase == "prefill":
            return ""
        if kv_gemv(op) is not None or (op.name == "softmax" and op.op_class == "attention"):
            return "pim"
        return ""

    def pim_cost(self, op: Op) -> Cost:
        inst, outputs, length, vectors = kv_gemv(op)  # type: ignore[misc]
        r = self.pim.gemv(inst, outputs, length, vectors, cycle=self.fidelity == "cycle")
        roof = self.roofline(op)
        detail = {"mac_utilization": r["mac_utilization"], "unit": "pim"}
        if self.pim.pim.row_buffers >= 2:
            detail["memory_share"] = 1.0 - npu_share(r["bus_busy"], self.pim.cfg1.burst_cycle)
        return Cost(max(r["seconds"], roof), roof, "pim", {"pim": r["energy_J"]},
                    op.bytes / max(op.shards, 1), detail)

    def _estimate(self, op: Op) -> Cost:
        if op.kind != COLLECTIVE and self.fidelity != "roofline" and kv_gemv(op) is not None:
            return self.pim_cost(op)
        return self.npu.estimate(op)
