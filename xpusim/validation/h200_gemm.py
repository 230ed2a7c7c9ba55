"""H200 bf16/fp16/fp8 GEMM device time (our measurements, CUDA graphs) vs the h200 preset."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._own_gpu import gemm_points

NAME = "h200-gemm"
DESCRIPTION = ("H200 GEMM (bf16/fp16/fp8 grid), validation/h200/h200_gemm.csv from "
               "validation/measure_gpu.py; train even rows (h200 GEMM values FITTED)")
THRESHOLD = 0.08


def run(ctx: ValidationContext) -> list[Point]:
    return gemm_points(ctx, "h200", "h200", split=True)
