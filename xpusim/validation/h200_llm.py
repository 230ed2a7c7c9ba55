"""H200 fused attention and Llama decode steps (our measurements, CUDA graphs) vs the h200
preset."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._own_gpu import attention_points, decode_step_points, prefill_step_points

NAME = "h200-llm"
DESCRIPTION = ("H200 SDPA attention (prefill, decode), Llama decode and prefill steps (CUDA "
               "graph), validation/h200/*.csv from validation/measure_gpu.py; nothing fitted on it")
THRESHOLD = 0.10


def run(ctx: ValidationContext) -> list[Point]:
    return (attention_points(ctx, "h200", "h200") + decode_step_points(ctx, "h200", "h200")
            + prefill_step_points(ctx, "h200", "h200"))
