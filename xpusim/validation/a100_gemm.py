"""A100 fp16 GEMM latency vs LLMCompass's measurements (20 shapes, host-timed torch.matmul)."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext, alternate_split
from xpusim.validation._llmcompass import gemm, harness_device, latency
from xpusim.validation._table import read_rows

NAME = "a100-gemm"
DESCRIPTION = ("A100-SXM4-80GB fp16 GEMM latency, LLMCompass ae/figure5/ab "
               "(torch.matmul, host-timed)")
THRESHOLD = 0.05
FILE = ("gpu", "a100_matmul_llmcompass.csv")


def cases(ctx: ValidationContext) -> list[tuple[str, tuple[int, int, int], float, str]]:
    rows = read_rows(ctx.ref(*FILE))
    splits = alternate_split(len(rows))
    return [(f"{r['M']}x{r['N']}x{r['K']}", (int(r["M"]), int(r["N"]), int(r["K"])),
             float(r["latency_ms"]) * 1e-3, s) for r, s in zip(rows, splits, strict=True)]


def run(ctx: ValidationContext, device=None) -> list[Point]:
    dev = device or harness_device()
    return [Point(case, t, latency(dev, gemm(*mnk)), split)
            for case, mnk, t, split in cases(ctx)]
