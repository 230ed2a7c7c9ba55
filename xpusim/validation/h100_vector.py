"""H100 memory-bound kernels (copy, GELU, norms, softmax; CUDA graphs) vs the h100 preset."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._own_gpu import vector_points

NAME = "h100-vector"
DESCRIPTION = ("H100 fp16 copy / tanh-GELU / LayerNorm / RMSNorm / softmax, "
               "validation/h100/h100_vector.csv from validation/measure_gpu.py")
THRESHOLD = 0.10


def run(ctx: ValidationContext) -> list[Point]:
    return vector_points(ctx, "h100", "h100")
