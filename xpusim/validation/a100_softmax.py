"""A100 softmax latency vs LLMCompass's measurements (eager torch.softmax over an fp16 M x N)."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext, alternate_split
from xpusim.validation._llmcompass import harness_device, latency, softmax_op
from xpusim.validation._table import read_rows

NAME = "a100-softmax"
DESCRIPTION = "A100 softmax over fp16 M x N, LLMCompass ae/figure5/cf (torch.softmax, host-timed)"
THRESHOLD = 0.10
FILE = ("gpu", "a100_softmax_llmcompass.csv")


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
    return [Point(case, t, latency(dev, softmax_op(*mn)), split)
            for case, mn, t, split in cases(ctx)]
