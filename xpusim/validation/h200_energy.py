"""H200 energy per call (NVML board power x time, our measurements) vs the h200 preset's energy
model (op energy + static power)."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._own_gpu import energy_points

NAME = "h200-energy"
DESCRIPTION = ("H200 joules per call of GEMMs, a GEMV, a copy, Llama decode / prefill steps, "
               "validation/h200/h200_power*.csv; the idle, GEMV and bf16 GEMM rows derive the "
               "values")
THRESHOLD = 0.15


def run(ctx: ValidationContext) -> list[Point]:
    return energy_points(ctx, "h200", "h200")
