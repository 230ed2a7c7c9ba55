"""A100 GELU latency vs LLMCompass's measurements (@torch.compile tanh GELU, fp16)."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext, alternate_split
from xpusim.validation._llmcompass import gelu_op, harness_device, latency
from xpusim.validation._table import read_rows

NAME = "a100-gelu"
DESCRIPTION = ("A100 tanh-GELU over fp16 elements, LLMCompass ae/figure5/g "
               "(torch.compile, host-timed)")
THRESHOLD = 0.10
FILE = ("gpu", "a100_gelu_llmcompass.csv")


def cases(ctx: ValidationContext) -> list[tuple[str, int, float, str]]:
    rows = read_rows(ctx.ref(*FILE))
    splits = alternate_split(len(rows))
    out = []
    for r, s in zip(rows, splits, strict=True):
        n = int(r["numel"])
        out.append((f"{n}", n, n / (float(r["gelem_per_s"]) * 1e9), s))
    return out


def run(ctx: ValidationContext, device=None) -> list[Point]:
    dev = device or harness_device()
    return [Point(case, t, latency(dev, gelu_op(n)), split) for case, n, t, split in cases(ctx)]
