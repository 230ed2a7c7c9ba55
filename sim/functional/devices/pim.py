"""Functional execution on bank-level PIM systems: ``pim`` (PIM memory + host ASIC, PIM-GPT
style) and ``npu_pim`` (NeuPIMs: an NPU whose memory computes).

Mapping, as the timing models map it (``sim/devices/pim.py``, ``sim/micro/dram_pim.py``): a
GEMV's dot products are spread over channels and banks, each dot product stays in one bank's
unit, chunks longer than a DRAM row accumulate in the same unit. ``pim`` runs every contraction
against weights or the KV cache that way and everything else on the host ASIC; ``npu_pim`` runs
decode attention's KV-cache GEMVs in PIM and the rest on the NPU (systolic folds, see
``npu.py``).

Unit numerics (declared; the arch's ``pim`` section gives lanes and operand dtype only):

* adder-tree units (Newton/NeuPIMs, GDDR6-AiM): ``pim.lanes`` products summed by a tree and
  added to the accumulator in one step — modelled as a fused block of ``lanes`` products into an
  fp32 accumulator (assumption: fp32 accumulation, results read out and rounded once);
* SIMD units (Samsung HBM-PIM, preset ``pim-hbm-pim``): each of the 16 FP16 lanes accumulates
  every 16th element in FP16 (Lee et al., ISCA 2021: FP16 MAC lanes); the host adds the 16 lane
  partial sums in fp32 as a pairwise tree (assumption);
* host ASIC vector ops in fp32 over ``pim_host.vector_lanes`` lanes (assumption).
"""

from __future__ import annotations

from typing import Any

from arch import Arch
from sim.devices.base import device_for
from sim.functional.base import (
    FunctionalDevice,
    MatmulNumerics,
    MatmulPlan,
    VectorNumerics,
    register_functional,
)
from sim.functional.devices.npu import NpuFunctional, npu_plan
from sim.functional.formats import Rounder
from sim.functional.plans import pim_plan, tiled_plan

SIMD_FP16_PRESETS = ("pim-hbm-pim",)
_HOST_GEMM = MatmulNumerics("fp32", Rounder("fp32"), 1, Rounder("fp32"),
                            "host ASIC fp32 multiply-add (assumption)")


def pim_unit(arch: Arch) -> tuple[MatmulNumerics, int, str]:
    """(numerics, SIMD lanes, style) of an arch's ``pim`` section."""
    p = arch.pim
    if p.dtype == "int8":
        return (MatmulNumerics("int8", Rounder("int32"), p.lanes, Rounder("int32"),
                               "int8 MACs, exact int32 accumulation"), 1, "tree")
    if arch.name in SIMD_FP16_PRESETS:
        return (MatmulNumerics(p.dtype, Rounder(p.dtype), 1, Rounder("fp32"),
                               "Lee et al. ISCA 2021: 16-lane FP16 SIMD MAC per unit; lanes "
                               "added on the host in fp32 (assumption)"), p.lanes, "simd")
    return (MatmulNumerics(p.dtype, Rounder("fp32"), p.lanes, Rounder("fp32"),
                           f"{p.lanes} multipliers + adder tree per unit, fp32 accumulator "
                           "(assumption)"), 1, "tree")


def pim_matmul_plan(arch: Arch, shape: tuple[int, int, int, int]) -> MatmulPlan:
    num, simd, style = pim_unit(arch)
    return pim_plan(shape, arch.dram.channels, arch.dram.banks, simd, num,
                    detail={"unit_style": style})


@register_functional
class PimFunctional(FunctionalDevice):
    """Functional executor for arches of type ``pim``."""

    arch_type = "pim"

    def __init__(self, arch: Arch):
        super().__init__(arch)
        from sim.devices.pim import pim_gemv_op

        self.model = device_for(arch, "tile")
        self._gemv = pim_gemv_op

    def matmul_numerics(self, dtype: str) -> MatmulNumerics:
        return pim_unit(self.arch)[0]

    def vector_numerics(self) -> VectorNumerics:
        return VectorNumerics("fp32", self.arch.pim_host.vector_lanes,
                              "host ASIC in fp32 (assumption), pim_host.vector_lanes lanes")

    def plan_matmul(self, op: Any, dtype: str, shape: tuple[int, int, int, int]) -> MatmulPlan:
        if op is None or self._gemv(op) is not None:
            return pim_matmul_plan(self.arch, shape)
        return tiled_plan(shape, (64, 64, 8), 1, _HOST_GEMM, {"unit": "host"})

    def unit_for(self, op: Any) -> str:
        return "pim" if op is not None and self._gemv(op) is not None else "host"


@register_functional
class NpuPimFunctional(NpuFunctional):
    """Functional executor for arches of type ``npu_pim`` (NeuPIMs)."""

    arch_type = "npu_pim"

    def __init__(self, arch: Arch):
        FunctionalDevice.__init__(self, arch)
        from sim.devices.npu_pim import kv_gemv

        self.system = device_for(arch, "tile")
        self.model = self.system.npu
        self.npu = arch.npu
        self._kv = kv_gemv

    def _on_pim(self, op: Any) -> bool:
        return op is not None and self._kv(op) is not None

    def plan_matmul(self, op: Any, dtype: str, shape: tuple[int, int, int, int]) -> MatmulPlan:
        if self._on_pim(op):
            return pim_matmul_plan(self.arch, shape)
        return npu_plan(self.npu, self.model, op, dtype, shape)

    def unit_for(self, op: Any) -> str:
        return "pim" if self._on_pim(op) else "npu"
