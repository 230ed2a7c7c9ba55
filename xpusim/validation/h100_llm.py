"""H100 fused attention and Llama decode steps (our measurements, CUDA graphs) vs the h100
preset."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._own_gpu import attention_points, decode_step_points, prefill_step_points

NAME = "h100-llm"
DESCRIPTION = ("H100 SDPA attention (prefill, decode), Llama decode and prefill steps (CUDA "
               "graph), validation/h100/*.csv from validation/measure_gpu.py; nothing fitted on it")
THRESHOLD = 0.10


def run(ctx: ValidationContext) -> list[Point]:
    return (attention_points(ctx, "h100", "h100") + decode_step_points(ctx, "h100", "h100")
            + prefill_step_points(ctx, "h100", "h100"))
