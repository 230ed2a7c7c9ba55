"""A40 cuBLAS fp16 GEMM kernel time of model layers (Vidur profiling) vs the a40 preset."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._vidur import gemm_points

NAME = "a40-gemm-vidur"
DESCRIPTION = ("A40 cuBLAS fp16 GEMMs of Llama-2-7B/-70B, CodeLlama-34B, Phi-2, Qwen-72B and "
               "InternLM-20B layers, TP 1-8, 1-4096 tokens (microsoft/vidur profiling, "
               "validation/a40); train Llama-2-7B")
THRESHOLD = 0.10


def run(ctx: ValidationContext, device=None) -> list[Point]:
    return gemm_points(ctx, "a40", device)
