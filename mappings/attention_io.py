"""Attention I/O between a fast memory of ``M`` words and slow memory: the mapper and the sweep.

Two schedule families, each searched over its tile sizes (exhaustively: the space is small):

* **fused** (FlashAttention / 1-pass cascade): a block of ``Bq`` queries with its ``Bq x d``
  output accumulator and running max/sum stays in fast memory while ``Bk`` rows of K and V stream
  past; footprint ``Bq (2d + Bk + 2) + 2 Bk d <= M``; I/O ``2 N d + ceil(N/Bq) 2 N d``.
* **tiled, scores in slow memory** (the ``M < d²`` optimum of Saha & Ye): ``S = Q K^T`` in
  ``b x b`` tiles reduced over ``b``-wide slices of the head dimension (``3 b² <= M``),
  ``exp(S)`` written once; then ``exp(S) V`` as a tiled matmul with the same tiles, row sums
  alongside, and a final division: I/O ``2 N² d / b + N² + N² d / b + N² d / b + N d + N``.

:func:`best_attention_io` returns the least-I/O schedule; :func:`io_sweep` sweeps ``M`` and
reports the normalised products ``IO · M / (N² d²)`` (``M >= d²``) and ``IO · sqrt(M) / (N² d)``
(below), the lower bound of :mod:`mappings.bounds` and the ratio to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from mappings.bounds import attention_io_lower_bound


@dataclass(frozen=True)
class AttentionSchedule:
    """One attention schedule: family, tile sizes and its I/O in words."""

    family: str
    tiles: tuple[int, ...]
    io_words: float


def _fused(n: int, d: int, m: int) -> AttentionSchedule | None:
    best = None
    bk = 1
    while bk <= n:
        bq = (m - 2 * bk * d) // (2 * d + bk + 2)
        if bq >= 1:
            bq = min(bq, n)
            io = 2.0 * n * d + math.ceil(n / bq) * 2.0 * n * d
            if best is None or io < best.io_words:
                best = AttentionSchedule("fused", (bq, bk), io)
        bk *= 2
    return best


def _tiled(n: int, d: int, m: int) -> AttentionSchedule | None:
    best = None
    b = 1
    while b <= n:
        c = b if 3 * b * b <= m else 0   # S, exp(S)·V: b x b tiles of both operands + output
        if c >= 1 and b <= n:
            s_io = 2.0 * n * n * d / b + n * n           # QK^T tiles, write exp(S)
            av_io = 2.0 * n * n * d / b                  # exp(S) and V tiles for exp(S) V
            io = s_io + av_io + n * d + n                 # write O, row sums
            if best is None or io < best.io_words:
                best = AttentionSchedule("tiled", (b, c), io)
        b += 1 if b < 64 else b // 8
    return best


@lru_cache(maxsize=4096)
def best_attention_io(n: int, d: int, m: int) -> AttentionSchedule:
    """Least-I/O schedule of one head of attention (N x d) with ``m`` words of fast memory."""
    cands = [s for s in (_fused(n, d, m), _tiled(n, d, m)) if s is not None]
    if not cands:
        raise ValueError(f"fast memory of {m} words is too small for attention with d={d}")
    return min(cands, key=lambda s: s.io_words)


def io_sweep(n: int, d: int, m_min: int | None = None, m_max: int | None = None
             ) -> list[dict]:
    """Sweep ``M`` over powers of two from ``d²/16`` to ``N d``: best I/O, bound, products."""
    m_lo = m_min or max(4 * d, d * d // 16)
    m_hi = m_max or n * d
    rows = []
    m = m_lo
    while m <= m_hi:
        s = best_attention_io(n, d, m)
        lb = attention_io_lower_bound(n, d, m)
        regime = "M>=d^2" if m >= d * d else "M<d^2"
        norm = s.io_words * m / (n * n * d * d) if m >= d * d else \
            s.io_words * math.sqrt(m) / (n * n * d)
        rows.append({"M": m, "regime": regime, "io_words": s.io_words, "family": s.family,
                     "tiles": s.tiles, "lower_bound_words": lb,
                     "ratio_to_bound": s.io_words / lb, "normalised": norm})
        m *= 2
    return rows
