"""LeanAttention (Sanovar et al., 2024): decode attention partitioning on the GPU model.

Batch-1 decode attention on an A100 with 32-64 heads, head dim 64/128 and contexts 1K..512K, run
three ways on ``sim.gpu.attention``: FlashAttention-2 (one CTA per head and query block),
FlashDecoding (FA-2's split-KV kernel with its ``num_splits_heuristic``), LeanAttention (stream-K
over 256/128-token LeanTiles with the associative softmax reduction). The speedups come from the
mechanism (SM occupancy, padded query rows, per-CTA streaming rate, reduction cost); no constant
is set from the targets.
"""

from __future__ import annotations

import argparse
import statistics

from xpusim.commands._common import positive_int
from xpusim.reproductions._shape import claim, report

NAME = "lean-attention"
DESCRIPTION = "LeanAttention vs FlashAttention-2 / FlashDecoding decode attention on A100"
TARGET_AVG_FA2 = 2.6     # LeanAttention arXiv v1 abstract: average 2.6x over FlashAttention-2
TARGET_512K_FA2 = 8.33   # ... up to 8.33x at 512K context
TARGET_AVG_FD = 1.73     # LeanAttention (MLSys'25 / arXiv v2) abstract: 1.73x over FlashDecoding


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="a100", help="GPU preset or YAML (default a100)")
    p.add_argument("--heads", type=positive_int, nargs="+", default=[32, 64],
                   help="query (= KV) head counts (default 32 64)")
    p.add_argument("--head-dims", type=positive_int, nargs="+", default=[64, 128],
                   help="head dimensions (default 64 128)")
    p.add_argument("--max-context", type=positive_int, default=512 * 1024,
                   help="longest context; contexts are 1K, 2K, ... up to it (default 512K)")


def _contexts(longest: int) -> list[int]:
    out, n = [], 1024
    while n <= longest:
        out.append(n)
        n *= 2
    return out or [longest]


def run_grid(arch_name: str, heads: list[int], dims: list[int], contexts: list[int]) -> list:
    """One point per (heads, head dim, context) with the three kernels' times (s)."""
    from arch import load_arch
    from sim.devices.base import SimError, device_for
    from sim.gpu.attention import AttentionShape, flash2, flash_decoding, lean_attention

    dev = device_for(load_arch(arch_name), "tile")
    if dev.arch_type != "gpu":
        raise SimError(f"--arch: lean-attention needs a gpu arch, got type '{dev.arch.type}'")
    ahw = dev._attn_hw("fp16")
    points = []
    for h in heads:
        for d in dims:
            for n in contexts:
                sh = AttentionShape(batch=1, q_heads=h, kv_heads=h, q_len=1, kv_len=n,
                                    head_dim=d)
                fa2, fd, la = flash2(ahw, sh), flash_decoding(ahw, sh), lean_attention(ahw, sh)
                points.append({"heads": h, "head_dim": d, "context": n,
                               "fa2_s": fa2["time"], "fd_s": fd["time"], "lean_s": la["time"],
                               "fa2_ctas": fa2["ctas"], "fd_splits": fd["splits"],
                               "fd_ctas": fd["ctas"], "lean_ctas": la["ctas"],
                               "lean_tiles_per_cta": la["tiles_per_cta"],
                               "speedup_vs_fa2": fa2["time"] / la["time"],
                               "speedup_vs_fd": fd["time"] / la["time"]})
    return points


def reproduce(args: argparse.Namespace) -> dict:
    contexts = _contexts(args.max_context)
    points = run_grid(args.arch, args.heads, args.head_dims, contexts)
    longest = max(p["context"] for p in points)
    at_longest = [p for p in points if p["context"] == longest]
    best = max(at_longest, key=lambda p: p["speedup_vs_fa2"])
    max_fd = max(p["speedup_vs_fd"] for p in points)
    effs = [(p["fd_ctas"] / p["lean_ctas"]) / -(-p["fd_ctas"] // p["lean_ctas"])
            for p in points if p["lean_ctas"]]
    results = [
        claim("speedup vs FlashAttention-2, average over the grid",
              statistics.mean(p["speedup_vs_fa2"] for p in points), TARGET_AVG_FA2),
        claim(f"speedup vs FlashAttention-2 at {longest // 1024}K context (best configuration)",
              best["speedup_vs_fa2"], TARGET_512K_FA2),
        claim("speedup vs FlashDecoding, average over the grid",
              statistics.mean(p["speedup_vs_fd"] for p in points), TARGET_AVG_FD),
    ]
    assumptions = [
        f"arch {args.arch}; batch 1, one query token, MHA (KV heads = query heads), fp16 KV; "
        f"heads {args.heads}, head dims {args.head_dims}, contexts {contexts[0]}..{longest}",
        "FA-2 forward kernel: 128-row query blocks (a decode query is padded to a full block), "
        "128 (d<=64) or 64 KV tokens per block; one CTA per (batch, head, query block)",
        "FlashDecoding: FA-2 split-KV kernel (64-row blocks, 256/128 KV tokens for d 64/128) "
        "with FA-2's num_splits_heuristic (smallest split count within 85% of the best wave "
        "efficiency) and a combine kernel",
        "LeanAttention: the split-KV tiles (LeanTiles of 256 tokens at d=64, 128 at d=128) "
        "dealt evenly to one persistent CTA per SM slot (stream-K); host CTAs read peers' "
        "partial (O, max, sum) from L2",
        "per KV block a CTA runs two MMAs at its SM's share of the sustained tensor peak plus "
        "the online softmax (4 fp32 ops + 1 exp per score), not overlapped (FA-2), and streams "
        "at min(Little's-law rate of its double-buffered tiles, its share of HBM bandwidth)",
        f"why the FlashDecoding target is missed: with FA-2's heuristic, FlashDecoding's "
        f"waves fill {100 * min(effs):.0f}-{100 * max(effs):.0f}% of the SM slots, leaving "
        f"LeanAttention only the wave remainder (at most {max_fd:.2f}x); "
        "the paper's FlashDecoding baseline must leave more of the GPU idle (its split count or "
        "reduction cost are not published in what we could read)",
        f"why the {longest // 1024}K target is missed: there the model's ratio is "
        f"{best['fa2_s'] * 1e3:.2f} ms (FA-2, {best['fa2_ctas']} CTAs) / "
        f"{best['lean_s'] * 1e3:.2f} ms (LeanAttention, {best['lean_ctas']} CTAs) for "
        f"{best['heads']} heads at d={best['head_dim']}: FA-2 is bound by its padded 128-row "
        "blocks on few SMs, LeanAttention by HBM bandwidth; "
        f"{TARGET_512K_FA2}x would need FA-2 ~{TARGET_512K_FA2 / best['speedup_vs_fa2']:.1f}x "
        "slower per head than the mechanism gives",
    ]
    return report(NAME, results, assumptions, points)
