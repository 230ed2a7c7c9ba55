"""Splitwise DGX-A100 time per generated token for every TP, batch and prompt size."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._splitwise import points

NAME = "splitwise-token"
DESCRIPTION = ("DGX-A100 time per output token, Llama2-70B TP2/4/8 and BLOOM-176B "
               "TP8, Splitwise perf_model.csv")
THRESHOLD = 0.08


def run(ctx: ValidationContext) -> list[Point]:
    return points(ctx, metric="token")
