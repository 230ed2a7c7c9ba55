"""H100 cuBLAS fp16 GEMM kernel time of model layers (Vidur profiling) vs the h100 preset."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._vidur import gemm_points

NAME = "h100-gemm-vidur"
DESCRIPTION = ("H100 (DGX) cuBLAS fp16 GEMMs of Llama-2-7B/CodeLlama-34B/Phi-2 layers, "
               "TP 1-8, 1-4096 tokens (microsoft/vidur profiling); train Llama-2-7B")
THRESHOLD = 0.10


def run(ctx: ValidationContext, device=None) -> list[Point]:
    return gemm_points(ctx, "h100", device)
