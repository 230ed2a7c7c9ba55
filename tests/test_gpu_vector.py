"""The generic (fused-kernel) vector model of sim/gpu/vector.py against hand counts.

Expectations follow the module docstring with the a100 preset's numbers: achievable HBM
bandwidth B = 2039 GB/s x 0.88, loaded latency L = 0.5 us, L2 7.22 TB/s, launch 2 us, 108 SMs.
A grid's CTAs run in waves of ``slots``; each CTA streams at min(B / CTAs at once, bytes in
flight / L) (Little's law); each pass over the data waits one round trip L.
"""

from __future__ import annotations

import pytest

from arch import load_arch
from sim.gpu.hw import gpu_hw
from sim.gpu.vector import VectorShape, vector_time

B = 2039e9 * 0.88
L = 0.5e-6
LAUNCH = 2e-6
L2 = 7.22e12
PEAK = 1e30      # no compute bound: the tests are about the memory side


@pytest.fixture(scope="module")
def hw():
    return gpu_hw(load_arch("a100"))


def test_small_elementwise_grid_is_littles_law_bound(hw):
    """10 CTAs of 2048 elements (256 threads x 8): each keeps 1024 x 16 B / 4 = 4 KiB in
    flight, so streams at 4096 B / 0.5 us = 8.19 GB/s (B / 10 would be 179 GB/s)."""
    nbytes = 1e6
    res = vector_time(hw, VectorShape(10 * 2048, 1, 0.0, nbytes, 0.0), "elementwise", PEAK,
                      1.0)
    assert res["ctas"] == 10 and res["passes"] == 1
    per_cta = nbytes / 10
    assert res["time"] == pytest.approx(LAUNCH + L + per_cta / (4096 / L), rel=1e-9)


def test_elementwise_runs_eight_ctas_per_sm(hw):
    """600 CTAs of 256 threads fit one wave of 8 x 108 = 864 slots: all share B, so the grid
    streams its bytes at B (in two waves of 4 per SM it would be 432 at B / 432, then 168
    at their Little's-law cap)."""
    ctas = 600
    nbytes = ctas * 1e4
    res = vector_time(hw, VectorShape(ctas * 2048, 1, 0.0, nbytes, 0.0), "elementwise", PEAK,
                      1.0)
    assert res["ctas"] == ctas
    assert B / ctas < 4096 / L               # the share, not the cap, binds
    assert res["time"] == pytest.approx(LAUNCH + L + nbytes / B, rel=1e-9)


def test_narrow_rows_share_a_cta_of_8192_elements(hw):
    """A row op gives a 1024-thread CTA 8192 elements: 8 rows of 1024 (norm, fp16), so 4096
    rows are 512 CTAs with 16 KiB in flight each, in waves of 2 x 108 at B / 216 (and a last
    wave of 80 at B / 80, under their 32.8 GB/s Little's-law cap)."""
    rows, width = 4096, 1024
    in_bytes = rows * width * 2.0
    dram = 2 * in_bytes
    res = vector_time(hw, VectorShape(rows, width, in_bytes, dram, 0.0), "norm", PEAK, 1.0)
    assert res["ctas"] == 512 and res["passes"] == 1
    per_cta = dram / 512
    stream = 2 * per_cta / (B / 216) + per_cta / (B / 80)
    assert B / 80 < 16384 / L
    assert res["time"] == pytest.approx(LAUNCH + L + stream, rel=1e-9)


def test_row_ctas_run_two_per_sm(hw):
    """1024-thread row CTAs run two per SM (2048 threads): 432 one-byte rows of 5000 elements
    (one row per CTA, 5000 B in flight: a 10 GB/s Little's-law cap) are two waves of 216 at
    B / 216 = 8.3 GB/s each, i.e. the bytes at B (one per SM: four waves at the 10 GB/s cap)."""
    rows, width = 432, 5000
    in_bytes = rows * width * 1.0
    dram = 2 * in_bytes
    res = vector_time(hw, VectorShape(rows, width, in_bytes, dram, 0.0), "norm", PEAK, 1.0)
    assert res["ctas"] == 432
    assert B / 216 < 5000 / L < B / 108
    assert res["time"] == pytest.approx(LAUNCH + L + dram / B, rel=1e-9)


def test_norm_rows_up_to_8192_are_read_once(hw):
    """Norm kernels keep rows up to 8192 elements in registers (one pass); a 16384-wide row is
    read again from DRAM for the normalise pass (one more pass, one more round trip)."""
    for width, passes in ((8192, 1), (16384, 2)):
        rows = 64
        in_bytes = rows * width * 2.0
        res = vector_time(hw, VectorShape(rows, width, in_bytes, 2 * in_bytes, 0.0), "norm",
                          PEAK, 1.0)
        assert res["passes"] == passes
        assert res["dram_bytes"] == 2 * in_bytes + (passes - 1) * in_bytes
        assert res["l2_bytes"] == 0.0


def test_wide_softmax_rereads_its_rows_twice_from_l2(hw):
    """A 16384-wide fp16 softmax row exceeds the 1024 elements a persistent softmax holds:
    two more passes (max, sum of exponentials, normalise) that re-read the row from L2, each
    pass one more round trip. 64 rows, one 1024-thread CTA each (16 KiB in flight, B / 64
    binds): DRAM moves input and output once."""
    rows, width = 64, 16384
    in_bytes = rows * width * 2.0
    dram = 2 * in_bytes
    res = vector_time(hw, VectorShape(rows, width, in_bytes, dram, 0.0), "softmax", PEAK, 1.0)
    assert res["passes"] == 3
    assert res["l2_bytes"] == 2 * in_bytes and res["dram_bytes"] == dram
    assert res["t_dram"] == pytest.approx(3 * L + dram / B, rel=1e-9)
    assert 2 * in_bytes / L2 < res["t_dram"]  # the L2 re-reads hide under the DRAM stream
    assert res["time"] == pytest.approx(LAUNCH + 3 * L + dram / B, rel=1e-9)
    # a 1024-wide row stays in registers: one pass, no re-read
    narrow = vector_time(hw, VectorShape(1024, 1024, 1024 * 1024 * 2.0, 4.0 * 2**20, 0.0),
                         "softmax", PEAK, 1.0)
    assert narrow["passes"] == 1 and narrow["l2_bytes"] == 0.0
