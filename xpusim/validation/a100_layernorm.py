"""A100 layernorm latency vs LLMCompass's measurements (@torch.compile layer_norm, fp16 M x N)."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext, alternate_split
from xpusim.validation._llmcompass import harness_device, latency, layernorm_op
from xpusim.validation._table import read_rows

NAME = "a100-layernorm"
DESCRIPTION = "A100 layernorm over fp16 M x N, LLMCompass ae/figure5/de (torch.compile, host-timed)"
THRESHOLD = 0.10
FILE = ("gpu", "a100_layernorm_llmcompass.csv")


def cases(ctx: ValidationContext) -> list[tuple[str, tuple[int, int], float, str]]:
    rows = read_rows(ctx.ref(*FILE))
    splits = alternate_split(len(rows))
    out = []
    for r, s in zip(rows, splits, strict=True):
        m, n = int(r["M"]), int(r["N"])
        out.append((f"{m}x{n}", (m, n), m * n / (float(r["gelem_per_s"]) * 1e9), s))
    return out


def run(ctx: ValidationContext, device=None) -> list[Point]:
    dev = device or harness_device()
    return [Point(case, t, latency(dev, layernorm_op(*mn)), split)
            for case, mn, t, split in cases(ctx)]
