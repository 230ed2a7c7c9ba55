"""H100 bf16/fp16/fp8 GEMM device time (our measurements, CUDA graphs) vs the h100 preset."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._own_gpu import gemm_points

NAME = "h100-gemm"
DESCRIPTION = ("H100 GEMM (bf16/fp16/fp8 grid), validation/h100/h100_gemm.csv from "
               "validation/measure_gpu.py; nothing fitted on it")
THRESHOLD = 0.08


def run(ctx: ValidationContext) -> list[Point]:
    return gemm_points(ctx, "h100", "h100")
