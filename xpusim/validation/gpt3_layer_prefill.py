"""GPT-3 175B layer on 4x A100, prefill (batch 8, sequence 2048), per op, vs LLMCompass."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._gpt3_layer import points

NAME = "gpt3-layer-prefill"
DESCRIPTION = ("GPT-3 175B layer, 4x A100 TP4, batch 8, prefill 2048: 12 ops, "
               "LLMCompass ae/figure5/ij")
THRESHOLD = 0.10


def run(ctx: ValidationContext, device=None) -> list[Point]:
    return points(ctx, "prefill", device)
