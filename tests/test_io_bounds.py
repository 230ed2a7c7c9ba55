"""Attention I/O: the mapper follows Θ(N²d²/M) / Θ(N²d/√M) and never beats the bound."""

from __future__ import annotations

import pytest

from mappings.attention_io import best_attention_io, io_sweep
from mappings.bounds import attention_io_lower_bound


@pytest.mark.parametrize("n,d", [(4096, 64), (16384, 128)])
def test_scaling_regimes_flat(n, d):
    rows = io_sweep(n, d)
    assert rows[0]["M"] <= d * d // 16 * 1 or rows[0]["M"] == 4 * d
    below = [r["normalised"] for r in rows if r["M"] < d * d]
    # above d²: while the Θ term dominates the compulsory 4Nd (M <= N d / 8)
    above = [r["normalised"] for r in rows if d * d <= r["M"] <= n * d // 8]
    for vals in (below, above):
        mean = sum(vals) / len(vals)
        assert all(abs(v / mean - 1) <= 0.20 for v in vals), vals
    for r in rows:
        assert r["ratio_to_bound"] >= 1.0


def test_no_schedule_beats_the_bound():
    for n, d in [(1024, 32), (2048, 64)]:
        m = d * d // 16
        while m <= n * d:
            assert best_attention_io(n, d, m).io_words >= attention_io_lower_bound(n, d, m)
            m *= 2


def test_too_small_memory():
    with pytest.raises(ValueError, match="too small"):
        best_attention_io(1024, 64, 2)


def test_fused_io_counts_a_partial_query_block():
    # N = 10, d = 1, M = 35 words: Bk = 1 fits Bq = (35 - 2) // (2 + 1 + 2) = 6 queries, so
    # ceil(10 / 6) = 2 query blocks each stream K and V (2 N d = 20 words), plus Q in and O
    # out (2 N d = 20): 60 words (Bk = 2, Bq = 5 ties). Tiled (b = 3 <= sqrt(35 / 3)) needs
    # 2 N^2 d / b x 2 + N^2 + N d + N = 253
    s = best_attention_io(10, 1, 35)
    assert s.family == "fused" and s.io_words == 60
