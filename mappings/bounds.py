"""I/O lower bounds between a fast memory of ``S`` (or ``M``) words and slow memory.

* GEMM (Hong & Kung 1981; tight constant from Smith, Lowery, Langou, van de Geijn, "A Tight I/O
  Lower Bound for Matrix Multiplication", arXiv:1702.02017): ``Q >= 2 m n k / sqrt(S) - 2 S``,
  and never less than the compulsory ``m k + k n + m n``.
* Attention ``O = softmax(Q K^T) V`` with ``N`` queries/keys of head dimension ``d`` (Saha & Ye,
  "The I/O Complexity of Attention, or How Optimal is FlashAttention?", ICML 2024): Θ(N² d² / M)
  for ``M >= d²`` and Θ(N² d / sqrt(M)) below. The constant used here comes from the red-blue
  pebbling segment argument: split a schedule into segments of ``M`` I/Os; a segment sees at most
  ``2M`` words of Q and of K; by Loomis–Whitney it can perform at most
  ``P = sqrt(2M · 2M · C)`` of the ``N² d`` products of ``Q K^T``, where ``C <= (2M/d)² + 2M``
  bounds the score entries it can touch (complete dot products need a full Q and K row each;
  partial ones must be held or moved, at most ``2M``). Hence
  ``Q_io >= M (N² d / P - 1)``, which is ``>= N² d² / (4.9 M) - M`` for ``M >= d²`` and
  ``>= N² d / (4.9 sqrt(M)) - M`` below, and never less than the compulsory ``4 N d``.
"""

from __future__ import annotations

import math


def gemm_io_lower_bound(m: int, n: int, k: int, s: float) -> float:
    """Words any schedule of ``C[m,n] += A[m,k] B[k,n]`` must move with ``s`` words on chip."""
    if s <= 0:
        raise ValueError("fast-memory size must be positive")
    compulsory = m * k + k * n + m * n
    return max(float(compulsory), 2.0 * m * n * k / math.sqrt(s) - 2.0 * s)


def attention_io_lower_bound(n: int, d: int, m: float, heads: int = 1) -> float:
    """Words any schedule of single-query-block-free attention (``N x d`` Q, K, V, O per head)
    must move with ``m`` words of fast memory (see the module docstring for the constant)."""
    if m <= 0:
        raise ValueError("fast-memory size must be positive")
    touched = (2.0 * m / d) ** 2 + 2.0 * m
    per_segment = math.sqrt(2.0 * m * 2.0 * m * touched)
    pebbling = m * (n * n * d / per_segment - 1.0)
    return heads * max(4.0 * n * d, pebbling)


def attention_io_scaling(n: int, d: int, m: float) -> float:
    """The asymptotic form Θ: ``N² d² / M`` for ``M >= d²``, ``N² d / sqrt(M)`` below."""
    return n * n * d * d / m if m >= d * d else n * n * d / math.sqrt(m)
