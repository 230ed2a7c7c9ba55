"""NPU functional execution: contractions as systolic folds of the NPU's arrays, vector ops on
its vector units, the fused attention cascade as FuseMax's 1-pass form.

Bound to :class:`sim.devices.npu.NpuDevice`: array size, dataflow and the on-chip K tile of each
GEMM come from the arch's ``npu`` section and the model's cost detail (``tile`` = (tm, tn, tk)).
Numerics (declared):

* operands in ``npu.dtype`` ("datatype the arrays and vector units compute in");
* each PE multiply-accumulates in fp32, one rounding per product; fold partial sums are added
  into the fp32 output buffer in K order (the NPU model holds partial sums in fp32:
  ``sim/devices/npu.py`` ``ACC_BYTES``). Assumption: fp32 PE accumulators (not stated by the
  NeuPIMs or FuseMax papers);
* vector units compute in ``npu.dtype``, a row reduction spread over ``npu.vector_lanes`` lanes;
* the fused cascade processes ``npu.array_rows`` keys per block (FuseMax maps keys on PE rows),
  P in ``npu.dtype`` for the P.V einsum, running statistics in ``npu.dtype``.
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
from sim.functional.formats import Rounder
from sim.functional.plans import systolic_plan

SOURCE = ("arch npu.dtype operands; fp32 PE accumulators (assumption) and fp32 output buffer "
          "(sim/devices/npu.py ACC_BYTES)")


def npu_matmul_numerics(npu: Any, dtype: str) -> MatmulNumerics:
    """Systolic-array numerics of an ``npu`` section."""
    if npu.dtype == "int8":
        return MatmulNumerics("int8", Rounder("int32"), 1, Rounder("int32"), SOURCE)
    return MatmulNumerics(npu.dtype, Rounder("fp32"), 1, Rounder("fp32"), SOURCE)


def npu_plan(npu: Any, model: Any, op: Any, dtype: str, shape: tuple[int, int, int, int]
             ) -> MatmulPlan:
    """The systolic plan of ``op`` on an ``npu`` section, K tile from the model's detail."""
    num = npu_matmul_numerics(npu, dtype)
    k_tile = 0
    extra: dict[str, Any] = {}
    if op is not None and model is not None:
        detail = model.matmul_cost(op).detail if hasattr(model, "matmul_cost") else {}
        tile = detail.get("tile")
        if tile:
            k_tile = int(tile[2])
        if detail.get("batch_over_arrays") is not None:
            how = "batch" if detail["batch_over_arrays"] else "columns"
            extra["arrays"] = f"{npu.arrays} ({how})"
    return systolic_plan(shape, npu.array_rows, npu.array_cols, npu.dataflow, num, k_tile, extra)


@register_functional
class NpuFunctional(FunctionalDevice):
    """Functional executor for arches of type ``npu``."""

    arch_type = "npu"

    def __init__(self, arch: Arch):
        super().__init__(arch)
        self.model = device_for(arch, "tile")
        self.npu = arch.npu

    def matmul_numerics(self, dtype: str) -> MatmulNumerics:
        return npu_matmul_numerics(self.npu, dtype)

    def vector_numerics(self) -> VectorNumerics:
        dt = self.npu.dtype if self.npu.dtype != "int8" else "fp32"
        return VectorNumerics(dt, self.npu.vector_lanes,
                              "arch npu.dtype, npu.vector_lanes lanes per row reduction")

    def attention_numerics(self, dtype: str) -> dict[str, Any]:
        mm = self.matmul_numerics(dtype)
        return {"block": self.npu.array_rows, "qk": mm, "pv": mm, "p_dtype": mm.inputs,
                "source": "FuseMax 1-pass cascade: keys on the array rows"}

    def plan_matmul(self, op: Any, dtype: str, shape: tuple[int, int, int, int]) -> MatmulPlan:
        return npu_plan(self.npu, self.model, op, dtype, shape)

    def unit_for(self, op: Any) -> str:
        return "npu"
