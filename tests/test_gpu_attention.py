"""The fused attention kernels of sim/gpu/attention.py against hand counts.

Expectations follow the module docstring with the a100 preset's numbers: 108 SMs, 164 KiB of
shared memory per SM, achievable HBM bandwidth B = 2039 GB/s x 0.88, loaded latency
L = 0.5 us, L2 7.22 TB/s at 0.2 us, launch 2 us. Where a test is about the memory side the
per-SM compute rates are made free (1e30), so every block costs its bytes alone.
"""

from __future__ import annotations

import math

import pytest

from arch import load_arch
from sim.devices.base import device_for
from sim.gpu.attention import (
    AttentionShape,
    AttnHw,
    flash2,
    flash_decoding,
    lean_attention,
    masked_mha,
    num_splits_heuristic,
    paged_attention,
)
from sim.gpu.hw import gpu_hw

B = 2039e9 * 0.88
L = 0.5e-6
L2, L2_LAT = 7.22e12, 0.2e-6
LAUNCH = 2e-6
SMS = 108


@pytest.fixture(scope="module")
def free():
    """The a100 with free compute: attention times are their memory side."""
    return AttnHw(gpu_hw(load_arch("a100")), 1e30, 1e30, 1e30)


def test_fa2_prefill_tiles_ctas_and_compute_by_hand():
    """FA-2's forward kernel at head dim 64: 128-row query blocks over 128-token KV blocks.
    64 heads x 256 queries: 128 CTAs. Q (128 x 64 x 2 B) + double-buffered K and V (4 x 128
    x 64 x 2 B) = 80 KiB: two CTAs per SM, so one wave of 216 slots, and on 108 SMs two CTAs
    share an SM's tensor and CUDA cores. Per KV block: 4 Br Bc d FLOPs of MMAs plus the
    softmax (4 ALU ops and one exponential per score), one after the other; 8 blocks, one
    DRAM round trip before the first."""
    ahw = device_for(load_arch("a100"), "tile")._attn_hw("fp16")
    sh = AttentionShape(1, 64, 64, 256, 1024, 64)
    res = flash2(ahw, sh)
    assert res["block"] == "128x128" and res["ctas"] == 128 and res["waves"] == 1
    scores = 128 * 128
    block = 4.0 * 128 * 128 * 64 / ahw.sm_tensor + scores * 4 / ahw.sm_alu + \
        scores / ahw.sm_sfu
    # the K and V tile (32 KiB) of a head's two query blocks: DRAM once, at B / 64 per pair
    assert 2 * 128 * 64 * 2 / (B * 2 / 128) < 2 * block           # compute-bound
    assert res["time"] == pytest.approx(LAUNCH + L + 8 * 2 * block, rel=1e-9)


def test_query_blocks_of_one_head_share_its_kv_tiles_through_l2(free):
    """One head, 256 queries at d64: FA-2's two 128-row query blocks walk the same 128-token
    K and V tiles side by side. DRAM serves each tile once; each CTA draws it from L2, with its
    double-buffered K and V tiles (2 x 32 KiB) in flight at the L2's 0.2 us latency (327.7
    GB/s, below B and half the L2): 8 blocks of 32 KiB."""
    res = flash2(free, AttentionShape(1, 1, 1, 256, 1024, 64))
    assert res["ctas"] == 2 and res["block"] == "128x128"
    tile = 2 * 128 * 64 * 2
    rate = 2 * tile / L2_LAT
    assert rate < min(L2 / 2, B)
    assert res["time"] == pytest.approx(LAUNCH + L + 8 * tile / rate, rel=1e-9)


def test_flash_decoding_mqa_splits_and_combine_by_hand(free):
    """One MQA decode (64 query heads packed into one 64-row block) over 16384 tokens at d128:
    128 KV blocks of 128 tokens; FA-2's heuristic over 2 x 108 slots takes 128 splits of one
    block (eff 128/216; no eligible count between 64 and 128). 64 + 4 x 128 rows x 128 x 2 B
    = 144 KiB: one CTA per SM, so waves of 108 and 20 CTAs, each streaming its 64 KiB K+V
    block at B / CTAs, after one round trip. The combine kernel reads 128 fp32 partials of
    (128 + 2) values per query head and writes the fp16 output."""
    sh = AttentionShape(1, 64, 1, 1, 16384, 128)
    res = flash_decoding(free, sh)
    assert res["splits"] == 128 and res["ctas"] == 128 and res["waves"] == 2
    block = 2 * 128 * 128 * 2
    main = (block / (B / 108) + L) + (block / (B / 20) + L)
    combine = 128 * 64 * (128 + 2) * 4 + 64 * 128 * 2
    assert combine / B > L                 # the combine streams (not its latency floor)
    assert res["time"] == pytest.approx(LAUNCH + main + LAUNCH + combine / B, rel=1e-9)


def test_lean_attention_stream_k_and_fixup_by_hand(free):
    """LeanAttention, 32 heads x 65536 tokens at d128: 32 x 512 = 16384 LeanTiles dealt to
    108 persistent CTAs, the busiest 152; a head's 512 tiles span ceil(512 / 152) = 4 CTAs,
    whose host reads the others' fp32 partials (128 + 2 values) from L2 at its share of the
    L2 bandwidth, after the L2 latency."""
    sh = AttentionShape(1, 32, 32, 1, 65536, 128)
    res = lean_attention(free, sh)
    assert res["ctas"] == SMS and res["tiles_per_cta"] == 152 and res["splits"] == 4
    stream = 152 * (2 * 128 * 128 * 2) / (B / SMS) + L
    fixup = L2_LAT + 4 * (128 + 2) * 4 / (L2 / SMS)
    assert res["time"] == pytest.approx(stream + fixup + LAUNCH, rel=1e-9)
    # 4 x 32 heads = 128 heads of 32 tiles (4096 tokens): 4096 tiles, 38 per CTA, so a CTA's
    # share crosses heads (32 is not a multiple of 38) and a head's host reads one partial
    sh = AttentionShape(4, 32, 32, 1, 4096, 128)
    res = lean_attention(free, sh)
    assert res["tiles_per_cta"] == 38 and res["splits"] == 1
    fixup = L2_LAT + (128 + 2) * 4 / (L2 / SMS)
    assert res["time"] == pytest.approx(38 * (2 * 128 * 128 * 2) / (B / SMS) + L + fixup
                                        + LAUNCH, rel=1e-9)


def test_mmha_streams_each_heads_cache_from_l2_at_the_load_rate(free):
    """GQA decode, 8 sequences x 32 query heads over 8 KV heads, 4096 tokens at d128: 256
    CTAs of one query head each. DRAM reads each group's cache once (134 MB: 74.9 us at B);
    TensorRT-LLM's MMHA CTAs each pull their head's 2 MiB from L2 with ordinary loads at half
    the L2 bandwidth (256 x 2 MiB / 3.61 TB/s = 148.7 us); vLLM's paged kernel at the full
    L2 bandwidth (74.4 us) is DRAM-bound."""
    sh = AttentionShape(8, 32, 8, 1, 4096, 128)
    per_cta = 2 * 4096 * 128 * 2
    dram = 2 * 8 * 8 * 4096 * 128 * 2 + 2 * 8 * 32 * 128 * 2
    mmha, paged = masked_mha(free, sh), paged_attention(free, sh)
    assert mmha["ctas"] == 256 and mmha["waves"] == 1
    assert mmha["time"] == pytest.approx(LAUNCH + L + 256 * per_cta / (0.5 * L2), rel=1e-9)
    assert paged["time"] == pytest.approx(LAUNCH + L + dram / B, rel=1e-9)
    # 4 CTAs of 128 threads per SM: 512 query heads run in two waves of 432
    assert paged_attention(free, AttentionShape(16, 32, 32, 1, 4096, 128))["waves"] == \
        math.ceil(512 / (4 * SMS)) == 2


def test_paged_attention_compute_on_the_cuda_cores_by_hand():
    """vLLM's paged kernel on the CUDA cores: per token, q.k and p.v (2 d FMAs = 4 d
    operations) and the softmax's 4 ALU operations, at 2 operations per lane-cycle (an FMA)
    of the SM's fp32 rate shared by the CTAs on it. With a slow 1e9 op/s per SM and free
    memory: 432 CTAs (4 per SM) in one wave, 4096 tokens at d128."""
    hw = gpu_hw(load_arch("a100"))
    slow = AttnHw(hw, 1e30, 1e9, 1e30)
    sh = AttentionShape(1, 432, 432, 1, 4096, 128)
    res = paged_attention(slow, sh)
    assert res["waves"] == 1
    t = 4096 * (4 * 128 + 4) / (2 * 1e9 / 4)
    assert res["time"] == pytest.approx(LAUNCH + L + t, rel=1e-9)


def test_no_split_once_the_grid_fills_80_percent_of_the_slots():
    """flash_api.cpp num_splits_heuristic: ``if (batch_nheads_mblocks >= 0.8f * num_SMs)
    return 1``: over 216 slots, 173 blocks (>= 172.8) take no split, 172 do."""
    assert num_splits_heuristic(173, 216, 128) == 1
    assert num_splits_heuristic(172, 216, 128) > 1
