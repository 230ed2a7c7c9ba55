"""H100 bf16/fp16 GEMM device time (our measurements, CUDA events) vs the h100 preset."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._h100 import device, rows

NAME = "h100-gemm"
DESCRIPTION = "H100 GEMM (bf16/fp16 grid), validation/h100/h100_gemm.csv from measure_h100.py"
THRESHOLD = 0.05


def run(ctx: ValidationContext) -> list[Point]:
    from xpusim.commands.op import gemm_op

    data = rows(ctx, "h100_gemm.csv")
    dev = device()
    out = []
    for r in data:
        m, n, k = int(r["M"]), int(r["N"]), int(r["K"])
        op = gemm_op(m, n, k, 1, r["dtype"])
        out.append(Point(f"{r['dtype']} {m}x{n}x{k}", float(r["latency_s"]),
                         dev.estimate(op).latency))
    return out
