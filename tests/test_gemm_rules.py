"""Rules of the GEMM tile model (sim/gpu/gemm.py) that hold whatever tile the search picks,
checked against the module docstring with the a100 preset's numbers (108 SMs, 40 MiB of L2 at
7.22 TB/s, one CTA per SM, fp16 dense peak 312 TFLOP/s)."""

from __future__ import annotations

import pytest

from arch import load_arch
from sim.gpu.gemm import best_gemm
from sim.gpu.hw import gpu_hw

PEAK = 312e12
L2_BW = 7.22e12
SMS = 108


@pytest.fixture(scope="module")
def hw():
    return gpu_hw(load_arch("a100"))


def _gemm(hw, m, n, k):
    return best_gemm(hw, 1, m, n, k, 2, m * k * 2, k * n * 2, m * n * 2, PEAK)


def test_operands_read_once_only_when_they_fit_half_the_l2(hw):
    """Operands move through DRAM once when A + B fit in half of the L2 (20 MiB): 2048^3 fp16
    (16 MiB). At 2560^3 (25 MiB, more than half of the 40 MiB L2) the picked kernel's output
    tiles run in more than one wave, and each wave fetches its own panels: more than
    A + B + C."""
    small = _gemm(hw, 2048, 2048, 2048)
    assert 2 * 2048 * 2048 * 2 <= 0.5 * 40 * 2**20
    assert small["dram_bytes"] == 3 * 2048 * 2048 * 2
    big = _gemm(hw, 2560, 2560, 2560)
    assert 0.5 * 40 * 2**20 < 2 * 2560 * 2560 * 2 < 40 * 2**20
    assert big["waves"] > 1
    assert big["dram_bytes"] > 3 * 2560 * 2560 * 2


@pytest.mark.parametrize("m,k", [(16, 768), (16, 1024), (64, 768)])
def test_split_k_keeps_two_k_stages_per_split(hw, m, k):
    """Split-K (few output tiles, long k) is tried only while every split keeps at least two
    k-stages of the tile: with 64-deep stages, k 768 splits at most 6 ways, 1024 at most 8."""
    res = _gemm(hw, m, 128, k)
    tk = int(res["tile"].split("x")[2])
    assert res["split_k"] > 1
    assert k / res["split_k"] >= 2 * tk


def test_l2_traffic_and_its_share_of_the_l2_bandwidth(hw):
    """128 x 128 x 65536: split-K spreads the long k over CTAs. Every CTA reads its A and B
    panels (tm + tn rows of k / split elements) through L2, the split partials add C
    (2 split - 1) times; CTAs fewer than the 108 slots draw that share of the L2 bandwidth."""
    m = n = 128
    k = 65536
    res = _gemm(hw, m, n, k)
    tm, tn, _ = (int(x) for x in res["tile"].split("x"))
    split = res["split_k"]
    ctas = (m // tm) * (n // tn) * split
    assert res["ctas"] == ctas and ctas < SMS
    l2 = ctas * (tm + tn) * (k // split) * 2 + m * n * 2 * (2 * split - 1)
    assert res["l2_bytes"] == pytest.approx(l2, rel=1e-12)
    assert res["t_l2"] == pytest.approx(l2 / (L2_BW * ctas / SMS), rel=1e-12)


def test_split_k_main_loop_fp32_partials_and_reduction_by_hand(hw):
    """The same 128 x 128 x 65536 GEMM, tile by tile (one wave: every CTA has its own SM):
    k / split / tk main-loop steps of max(2 tm tn tk FLOPs at the SM's share of 312 TFLOP/s x
    0.811, the warps' shared-memory reads tm tn tk (1/wm + 1/wn) x 2 B at 128 B/clock x
    1.41 GHz), one DRAM round trip (0.5 us), and the CTA's fp32 partial tile written at its
    share of the achievable 2039 GB/s x 0.88. DRAM: A, B and C once (they fit the L2), then
    the reduction kernel reads the split fp32 partials and writes C: (2 split + 1) C."""
    m = n = 128
    k = 65536
    res = _gemm(hw, m, n, k)
    tm, tn, tk = (int(x) for x in res["tile"].split("x"))
    split, ctas = res["split_k"], res["ctas"]
    assert split > 1 and ctas <= SMS and res["waves"] == 1
    wm, wn = (64 if tm >= 128 else 32), (64 if tn >= 128 else 32)
    t_mma = 2 * tm * tn * tk / (PEAK * 0.811 / SMS)
    t_smem = tm * tn * tk * 2 * (1 / wm + 1 / wn) / (128 * 1.41e9)
    epilogue = tm * tn * 4 / (2039e9 * 0.88 / ctas)
    t_compute = (k // split // tk) * max(t_mma, t_smem) + 0.5e-6 + epilogue
    assert res["t_compute"] == pytest.approx(t_compute, rel=1e-9)
    c = m * n * 2
    assert res["dram_bytes"] == 2 * m * k * 2 + c + (2 * split + 1) * c
