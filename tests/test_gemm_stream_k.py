"""Stream-K GEMM kernels (``gpu.gemm_stream_k``, sim/gpu/gemm.py): the busiest SM's even share
of all tiles' main-loop steps and the fix-up of split tiles, by hand; where the candidate
applies; and the published best-of-search Hopper rows it moves (suite mamf)."""

from __future__ import annotations

import pytest

from arch import load_arch
from sim.devices.base import device_for
from sim.gpu import gemm as G

M, N, K = 1280, 4096, 12032     # suite mamf's H200 fp8 row (1,453 TFLOP/s measured)


def _device(name: str):
    return device_for(load_arch(name), "tile")


def test_busiest_sm_share_and_fixup_by_hand():
    """H200, fp8: 128 x 128 x 128 tiles make 10 x 32 = 320 output tiles of ceil(12032 / 128) =
    94 main-loop steps on 132 SMs. Data-parallel, the busiest SM computes 3 tiles (282 steps);
    stream-K shares the 30,080 steps evenly (ceil: 228 on the busiest SM), then writes one
    fp32 partial tile and reads another (2 x 128 x 128 x 4 B) at its 1/132 share of the L2
    bandwidth; all SMs' partials add to the L2 bytes. Both add one DRAM latency (prologue) and
    one epilogue (the persistent kernel overlaps the others with main loops)."""
    dev = _device("h200")
    hw, peak = dev.hw.for_dtype("fp8"), dev.tensor_peak("fp8")
    args = (1, M, N, K, 1, M * K, K * N, M * N, peak, 128, 128, 128, 1, 1)
    dp = G.gemm_candidate(hw, *args)
    sk = G.gemm_candidate(hw, *args, stream_k=True)
    t_mma = 2 * 128**3 / (peak * hw.tensor_efficiency / 132)
    t_smem = 128**3 * 1 * (1 / 64 + 1 / 64) / hw.smem_bw_per_sm    # 64 x 64 warp tiles
    assert t_smem < t_mma
    fixup = 2 * 128 * 128 * 4 / (hw.l2_bw * hw.l2_eff / 132)
    assert (dp["ctas"], hw.sms) == (320, 132)
    epilogue = 128 * 128 * 1 / (hw.hbm_achievable / 132)      # the fp8 C tile, once (persistent)
    assert dp["t_compute"] == pytest.approx(282 * t_mma + hw.hbm_latency + epilogue, rel=1e-12)
    assert sk["t_compute"] - dp["t_compute"] == pytest.approx((228 - 282) * t_mma + fixup,
                                                               rel=1e-9)
    assert sk["l2_bytes"] - dp["l2_bytes"] == 132 * 2 * 128 * 128 * 4
    assert sk["stream_k"] and not dp["stream_k"]


def test_candidate_only_where_the_last_round_is_partly_empty():
    """Stream-K is tried where the output tiles exceed the SMs and are not a multiple of them,
    and only on a preset whose library has it (Hopper's cuBLAS, not the A100's)."""
    h200, a100 = _device("h200").hw, _device("a100").hw
    assert h200.gemm_stream_k and not a100.gemm_stream_k
    assert [bool(G.stream_k_applies(h200, t)) for t in (100, 132, 264, 320)] == \
        [False, False, False, True]
    assert not G.stream_k_applies(a100, 320)
    h200_best = _device("h200").estimate(_gemm("fp8"))
    assert h200_best.detail["stream_k"] and h200_best.detail["tile"] == "128x128x128"
    assert not _device("a100").estimate(_gemm("bf16")).detail["stream_k"]


def _gemm(dtype: str):
    from xpusim.commands.op import gemm_op

    return gemm_op(M, N, K, 1, dtype)


def test_mamf_hopper_row_moves_toward_its_measurement(tmp_path):
    """Suite mamf's H200 fp8 row run as the suite runs it (flush, C reset and GEMM back to back
    under the 700 W limit): 25.6% slow with data-parallel kernels only, within 15% with
    stream-K (the measurement: 2MNK / 1,453.4 TFLOP/s = 86.8 us)."""
    from sim.sustained import at_limit, ops_work
    from xpusim.validation.mamf import FLUSH_BYTES, fill_op

    off = tmp_path / "h200-no-stream-k.yaml"
    off.write_text("name: h200-dp\ntype: gpu\nextends: h200\ngpu:\n"
                   "  gemm_stream_k: {value: false, source: test}\n")
    measured = 2 * M * N * K / 1453.4e12
    errors = {}
    for name in ("h200", str(off)):
        from xpusim.commands.op import vector_op

        ops = (_gemm("fp8"), fill_op(FLUSH_BYTES), vector_op("copy", M, N, "fp8"))
        (*_, costs), _ = at_limit(load_arch(name), ops_work(ops))
        errors[name] = costs[0].latency / measured - 1
    assert errors[str(off)] > 0.20
    assert abs(errors["h200"]) < 0.15
