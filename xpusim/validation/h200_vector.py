"""H200 memory-bound kernels (copy, GELU, norms, softmax; CUDA graphs) vs the h200 preset on the
``torch-graphs`` stack (PyTorch's own kernels, no host work)."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._own_gpu import vector_points

NAME = "h200-vector"
DESCRIPTION = ("H200 fp16 copy / tanh-GELU / LayerNorm / RMSNorm / softmax, "
               "validation/h200/h200_vector.csv from validation/measure_gpu.py; "
               "torch-graphs stack")
THRESHOLD = 0.10


def run(ctx: ValidationContext) -> list[Point]:
    return vector_points(ctx, "h200", "h200")
