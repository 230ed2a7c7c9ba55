"""Fold timing of the systolic array against an independent brute-force construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.micro.systolic import fold_cycles, gemm_cycles, multi_array_cycles, spatial_dims


def _skew_rows(height: int, width: int) -> int:
    """Rows of a ``height x width`` stream after skewing column j down by j cycles."""
    mat = np.zeros((height + width - 1, width), dtype=bool)
    for j in range(width):
        mat[j:j + height, j] = True
    return mat.shape[0]


def brute_force_cycles(m: int, n: int, k: int, rows: int, cols: int, df: str) -> int:
    """Build each fold's demand streams the way a systolic array consumes them and count the
    cycles (independent of the closed form): OS streams T operand rows then drains R x C
    outputs skewed; WS/IS preload R rows of the stationary operand, stream T rows skewed and
    drain the partial sums skewed."""
    sr, sc, t = {"os": (m, n, k), "ws": (k, n, m), "is": (k, m, n)}[df]
    total = 0
    for _ in range(math.ceil(sc / cols)):
        for _ in range(math.ceil(sr / rows)):
            if df == "os":
                # inputs: T rows + (C-1) gap rows, skewed over R columns
                total += _skew_rows(t + cols - 1, rows)
            else:
                # preload R cycles, then streamed operand: T rows + (C-1) gap, skewed over R
                total += rows + _skew_rows(t + cols - 1, rows)
    return total


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_reference_shape(df):
    c = gemm_cycles(512, 512, 512, 32, 32, df)
    assert c.folds == 256
    assert c.cycles_per_fold == (574 if df == "os" else 606)
    assert c.cycles == 256 * c.cycles_per_fold


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 300), n=st.integers(1, 300), k=st.integers(1, 300),
       rows=st.integers(1, 40), cols=st.integers(1, 40), df=st.sampled_from(["os", "ws", "is"]))
def test_closed_form_matches_brute_force(m, n, k, rows, cols, df):
    assert gemm_cycles(m, n, k, rows, cols, df).cycles == brute_force_cycles(m, n, k, rows, cols,
                                                                             df)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 500), n=st.integers(1, 500), k=st.integers(1, 500),
       rows=st.integers(1, 64), cols=st.integers(1, 64), df=st.sampled_from(["os", "ws", "is"]))
def test_utilisation_and_overlap_bounds(m, n, k, rows, cols, df):
    c = gemm_cycles(m, n, k, rows, cols, df)
    assert 0 < c.utilization <= 1.0
    o = gemm_cycles(m, n, k, rows, cols, df, overlap_folds=True)
    sr, sc, t = spatial_dims(m, n, k, df)
    assert o.cycles <= c.cycles
    assert o.cycles >= c.folds * t  # never faster than streaming every fold
    assert o.cycles >= fold_cycles(rows, cols, t, df)


def test_multi_array_splits_columns():
    one = gemm_cycles(1024, 4096, 4096, 128, 128, "ws")
    eight = multi_array_cycles(1024, 4096, 4096, 128, 128, 8, "ws")
    assert eight.cycles * 8 == one.cycles
    assert eight.utilization == pytest.approx(one.utilization)


def test_bad_dataflow_and_shape():
    with pytest.raises(ValueError, match="dataflow"):
        gemm_cycles(4, 4, 4, 2, 2, "xs")
    with pytest.raises(ValueError, match="M must be"):
        gemm_cycles(0, 4, 4, 2, 2, "ws")


def test_overlapped_folds_by_hand():
    """WS on a 64 x 64 array, (M, N, K) = (256, 128, 128): Sr = K = 128, Sc = N = 128, T = M =
    256, 2 x 2 = 4 folds of 2 x 64 + 64 + 256 - 2 = 446 cycles. Double-buffering the
    stationary operand, folds follow each other every max(T, R) = 256 cycles: 446 + 3 x 256.
    With T = 16 below R = 64 the next preload (64 cycles) sets the step: 206 + 3 x 64."""
    o = gemm_cycles(256, 128, 128, 64, 64, "ws", overlap_folds=True)
    assert (o.folds, o.cycles_per_fold) == (4, 446)
    assert o.cycles == 446 + 3 * 256
    s = gemm_cycles(16, 128, 128, 64, 64, "ws", overlap_folds=True)
    assert (s.folds, s.cycles_per_fold) == (4, 206)
    assert s.cycles == 206 + 3 * 64


def test_multi_array_mapping_efficiency_counts_idle_arrays():
    """N = 384 on 128-wide arrays is 3 column folds: with 8 arrays, 3 hold one full fold each
    and 5 idle, so 3/8 of the PEs hold work."""
    c = multi_array_cycles(128, 384, 128, 128, 128, 8, "ws")
    assert c.col_folds == 3
    assert c.mapping_efficiency == pytest.approx(3 / 8)
    assert c.utilization == pytest.approx(128 * 384 * 128 / (c.cycles * 128 * 128 * 8))


def test_mapping_efficiency_of_partial_folds_by_hand():
    """OS, 6 x 5 outputs on a 4 x 4 array: folds of 4 x 4, 4 x 1, 2 x 4 and 2 x 1 PEs hold
    16 + 4 + 8 + 2 = 30 of 4 x 16 = 64; WS with K = 9, N = 6 on 4 x 4: row folds of 4, 4, 1
    rows by column folds of 4, 2 columns hold 9 x 6 = 54 of 6 x 16 = 96."""
    from sim.micro.systolic import gemm_cycles

    os_ = gemm_cycles(6, 5, 3, 4, 4, "os")
    assert (os_.row_folds, os_.col_folds) == (2, 2)
    assert os_.mapping_efficiency == pytest.approx(30 / 64)
    ws = gemm_cycles(7, 6, 9, 4, 4, "ws")
    assert (ws.row_folds, ws.col_folds) == (3, 2)
    assert ws.mapping_efficiency == pytest.approx(54 / 96)
