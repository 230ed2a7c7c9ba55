"""Dataflow functional execution (SN40L): a fused pipeline's contractions as the PCUs run them.

Bound to :class:`sim.devices.dataflow.DataflowDevice` and the placement of
:mod:`mappings.dataflow`: each PCU is an output-stationary ``stages x lanes`` array (GEMM rows on
the stages, columns on the lanes) and a GEMM's reduction is cut into ``K_CHUNK``-element chunks
(the unit of PCU work in the placement). Numerics (declared):

* operands in ``dataflow.dtype`` (BF16 on SN40L);
* every PE multiply-accumulates its chunk in ``dataflow.accumulate`` (FP32 on SN40L: Prabhakar
  et al. MICRO'24, BF16 compute with FP32 accumulation), one rounding per product, in K order;
* the chunks' partial sums are added in the same format into the output's PMU buffer, chunk
  after chunk in K order (the pipeline streams them in that order);
* SIMD stages (norms, softmax, activations) compute in FP32 over ``dataflow.lanes`` lanes per
  row reduction (assumption: the SIMD path runs at the accumulator width).
"""

from __future__ import annotations

from typing import Any

from arch import Arch
from mappings.dataflow import K_CHUNK
from sim.functional.base import (
    FunctionalDevice,
    MatmulNumerics,
    MatmulPlan,
    VectorNumerics,
    register_functional,
)
from sim.functional.formats import Rounder
from sim.functional.plans import systolic_plan

SOURCE = ("Prabhakar et al. MICRO'24: BF16 operands, FP32 accumulation in the PCU (arch "
          "dataflow.dtype / dataflow.accumulate); reduction chunks of mappings/dataflow.py "
          "K_CHUNK added into the PMU output buffer in K order")


def dataflow_numerics(d: Any) -> MatmulNumerics:
    """Declared matrix numerics of a ``dataflow`` section."""
    acc = Rounder(d.accumulate)
    return MatmulNumerics(d.dtype, acc, 1, acc, SOURCE)


@register_functional
class DataflowFunctional(FunctionalDevice):
    """Functional executor for arches of type ``dataflow``."""

    arch_type = "dataflow"

    def __init__(self, arch: Arch):
        super().__init__(arch)
        self.d = arch.dataflow

    def matmul_numerics(self, dtype: str) -> MatmulNumerics:
        return dataflow_numerics(self.d)

    def vector_numerics(self) -> VectorNumerics:
        return VectorNumerics("fp32", self.d.lanes,
                              "PCU SIMD in fp32 (assumption), dataflow.lanes lanes per row "
                              "reduction")

    def attention_numerics(self, dtype: str) -> dict[str, Any]:
        mm = self.matmul_numerics(dtype)
        return {"block": self.d.lanes, "qk": mm, "pv": mm, "p_dtype": self.d.dtype,
                "source": "fused attention streams keys in lanes-wide blocks; P in "
                          "dataflow.dtype"}

    def plan_matmul(self, op: Any, dtype: str, shape: tuple[int, int, int, int]) -> MatmulPlan:
        return systolic_plan(shape, self.d.stages, self.d.lanes, "os",
                             self.matmul_numerics(dtype), K_CHUNK,
                             {"pcu": f"{self.d.stages}x{self.d.lanes} output-stationary",
                              "k_chunk": K_CHUNK})

    def unit_for(self, op: Any) -> str:
        return "pcu"
