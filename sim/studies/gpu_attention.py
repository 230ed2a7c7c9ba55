"""Decode-attention partitionings on the GPU model (``lean-attention`` experiment).

Batch-1 decode attention over a grid of heads, head dims and contexts, run three ways on
:mod:`sim.gpu.attention`: FlashAttention-2, FlashDecoding (FA-2's split-KV kernel with its
``num_splits_heuristic``) and LeanAttention (stream-K over LeanTiles).
"""

from __future__ import annotations

import statistics
from typing import Any

from sim.studies import study


def contexts_up_to(longest: int) -> list[int]:
    """1K, 2K, 4K, ... up to ``longest`` tokens (``[longest]`` when below 1K)."""
    out, n = [], 1024
    while n <= longest:
        out.append(n)
        n *= 2
    return out or [longest]


def attention_grid(arch_name: str, heads: list[int], dims: list[int],
                   contexts: list[int]) -> list[dict]:
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


@study("decode-attention-partitioning")
def decode_attention_partitioning(systems: dict[str, str],
                                  params: dict[str, Any]) -> dict[str, Any]:
    """System ``gpu``; params ``heads``, ``head_dims``, ``max_context``. Values for the
    claims and assumptions: the best FA-2 speedup at the longest context and its point, the
    mean speedups, FlashDecoding's SM-slot fill range."""
    contexts = contexts_up_to(int(params["max_context"]))
    points = attention_grid(systems["gpu"], params["heads"], params["head_dims"], contexts)
    longest = max(p["context"] for p in points)
    best = max((p for p in points if p["context"] == longest),
               key=lambda p: p["speedup_vs_fa2"])
    effs = [(p["fd_ctas"] / p["lean_ctas"]) / -(-p["fd_ctas"] // p["lean_ctas"])
            for p in points if p["lean_ctas"]]
    values = {
        "mean_speedup_vs_fa2": statistics.mean(p["speedup_vs_fa2"] for p in points),
        "mean_speedup_vs_fd": statistics.mean(p["speedup_vs_fd"] for p in points),
        "best_speedup_vs_fa2_at_longest": best["speedup_vs_fa2"],
        "max_speedup_vs_fd": max(p["speedup_vs_fd"] for p in points),
        "first_context": contexts[0], "longest": longest, "longest_k": longest // 1024,
        "best_fa2_ms": best["fa2_s"] * 1e3, "best_lean_ms": best["lean_s"] * 1e3,
        "best_fa2_ctas": best["fa2_ctas"], "best_lean_ctas": best["lean_ctas"],
        "best_heads": best["heads"], "best_head_dim": best["head_dim"],
        "fd_fill_min_pct": 100 * min(effs), "fd_fill_max_pct": 100 * max(effs),
    }
    return {"points": points, "values": values}
