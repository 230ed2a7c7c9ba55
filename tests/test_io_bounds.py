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
