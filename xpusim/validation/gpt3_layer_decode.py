"""GPT-3 175B layer on 4x A100, decode (batch 8, KV 3072), per op, vs LLMCompass."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._gpt3_layer import points

NAME = "gpt3-layer-decode"
DESCRIPTION = ("GPT-3 175B layer, 4x A100 TP4, batch 8, decode at KV 3072: 12 ops, "
               "LLMCompass ae/figure5/kl")
THRESHOLD = 0.10


def run(ctx: ValidationContext, device=None) -> list[Point]:
    return points(ctx, "decode", device)
