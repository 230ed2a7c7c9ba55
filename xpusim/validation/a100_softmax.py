"""A100 softmax latency vs LLMCompass's measurements (eager torch.softmax over an fp16 M x N)."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._llmcompass import harness_device, latency, matrix_cases, softmax_op

NAME = "a100-softmax"
DESCRIPTION = "A100 softmax over fp16 M x N, LLMCompass ae/figure5/cf (torch.softmax, host-timed)"
THRESHOLD = 0.10
FILE = ("gpu", "a100_softmax_llmcompass.csv")


def cases(ctx: ValidationContext) -> list[tuple[str, tuple[int, int], float, str]]:
    return matrix_cases(ctx, FILE)


def run(ctx: ValidationContext, device=None) -> list[Point]:
    dev = device or harness_device()
    return [Point(case, t, latency(dev, softmax_op(*mn)), split)
            for case, mn, t, split in cases(ctx)]
