"""The NeuPIMs NPU's GEMM tiling (``npu.tiling: halving``) against the artifact's rule."""

from __future__ import annotations

from arch import load_arch
from sim.devices.npu import NpuDevice, _gemm_traffic, _halving_traffic


def test_halving_tile_rule():
    # budget 512 KiB (the json's 1 MiB spad / 2): GPT3-7B TP4 QKV at 512 tokens halves
    # K, N, K, N, K, N, M, K -> (256, 256, 384) with M, N outer loops 2 and 8
    t = _halving_traffic(1, 512, 3072, 4096, 512 * 3072 * 2.0, 2.0, 512 * 1024.0, 128, 128)
    assert t["tile"] == (256, 384, 256)
    a, w, c = 512 * 4096 * 2.0, 4096 * 3072 * 2.0, 512 * 3072 * 2.0
    assert t["dram_bytes"] == a * 8 + w * 2 + c      # A once per N tile, B once per M tile


def test_neupims_npu_reads_decode_weights_once():
    npu = NpuDevice(load_arch("neupims-npu"))
    assert npu.n.tiling == "halving"
    for m, n, k in ((512, 3072, 4096), (512, 4096, 4096), (256, 7168, 7168)):
        c = npu.gemm_cost(1, m, n, k, "fp16", m * k * 2.0, k * n * 2.0, m * n * 2.0)
        assert c.dram_bytes == (m * k + k * n + m * n) * 2.0
        assert c.latency >= max(c.detail["t_compute"], c.detail["t_dram"])


def test_min_traffic_tiler_unchanged_for_small_buffers():
    # the generic tiler (other presets) still re-reads weights when the buffers are small
    buf = (256 * 1024.0, 128 * 1024.0, 128 * 1024.0)
    t = _gemm_traffic(1, 512, 3072, 4096, 512 * 4096 * 2.0, 4096 * 3072 * 2.0,
                      512 * 3072 * 2.0, 2.0, buf, 128, 128)
    assert t["dram_bytes"] > (512 * 4096 + 4096 * 3072 + 512 * 3072) * 2.0


def test_halving_first_tile_is_the_first_array_sized_sub_tiles():
    """A decode GEMV-like GEMM (M 4, K 4096, N 4096, fp16) in a 2 MiB half scratchpad, tiles
    padded to the 128-wide array: halving the largest dimension (K first on ties) goes
    (4, 4096, 4096) -> K 2048 -> N 2048 -> K 1024 -> N 1024 -> K 512, where A, B and C padded
    take (128 x 512 + 512 x 1024 + 128 x 1024) x 2 B = 1.44 MB <= 2 MiB. A is read once per
    N tile (4), B once, C written once. Compute starts once the first array-sized sub-tiles are
    in: A 4 x 128 and B 128 x 128 elements, (512 + 16,384) x 2 B."""
    m, n, k = 4, 4096, 4096
    t = _halving_traffic(1, m, n, k, m * n * 2.0, 2.0, 2.0 * 2**20, 128, 128)
    assert t["tile"] == (4, 1024, 512)          # (tm, tn, tk)
    assert t["dram_bytes"] == 4 * (m * k * 2) + k * n * 2 + m * n * 2
    assert t["first_tile_bytes"] == (4 * 128 + 128 * 128) * 2
