"""A100 layernorm latency vs LLMCompass's measurements (@torch.compile layer_norm, fp16 M x N)."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._llmcompass import harness_device, latency, layernorm_op, matrix_cases

NAME = "a100-layernorm"
DESCRIPTION = "A100 layernorm over fp16 M x N, LLMCompass ae/figure5/de (torch.compile, host-timed)"
THRESHOLD = 0.10
FILE = ("gpu", "a100_layernorm_llmcompass.csv")


def cases(ctx: ValidationContext) -> list[tuple[str, tuple[int, int], float, str]]:
    return matrix_cases(ctx, FILE)


def run(ctx: ValidationContext, device=None) -> list[Point]:
    dev = device or harness_device()
    return [Point(case, t, latency(dev, layernorm_op(*mn)), split)
            for case, mn, t, split in cases(ctx)]
