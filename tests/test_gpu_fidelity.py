"""GPU GEMM mechanisms (fixed cost, imperfect overlap, TMA multicast) and the Vidur suites
(train/test split, error and bias on the held-out models, transfer A100 -> H100)."""

import dataclasses
import math

import pytest

from arch import load_arch
from sim.devices.base import device_for
from sim.gpu.gemm import best_gemm, gemm_candidate
from xpusim.validation import ValidationContext, bias, mape


def _hw(name="a100", **kw):
    return dataclasses.replace(device_for(load_arch(name), "tile").hw, **kw)


def _gemm(hw, m, n, k, peak=312e12):
    return best_gemm(hw, 1, m, n, k, 2.0, 2.0 * m * k, 2.0 * k * n, 2.0 * m * n, peak)


def test_fixed_cost_adds_once_per_kernel():
    base = _hw(gemm_fixed=0.0, gemm_overlap_p=0.0)
    fixed = dataclasses.replace(base, gemm_fixed=3e-6)
    a, b = _gemm(base, 16, 4096, 4096), _gemm(fixed, 16, 4096, 4096)
    assert a["split_k"] == b["split_k"] == 1
    assert b["time"] - a["time"] == pytest.approx(3e-6, rel=1e-9)


def test_overlap_is_the_p_norm_of_compute_and_dram():
    hw = _hw(gemm_fixed=0.0, gemm_overlap_p=2.0)
    # 128 tokens x a 4096x11008 weight: compute and DRAM time of the same order
    c = gemm_candidate(hw, 1, 128, 11008, 4096, 2.0, 2.0 * 128 * 4096, 2.0 * 4096 * 11008,
                       2.0 * 128 * 11008, 312e12, 128, 128, 64, 1, 1)
    tc, td, tl2 = c["t_compute"], c["t_dram"], c["t_l2"]
    assert 0.3 < tc / td < 3.0
    body = c["time"] - hw.launch - hw.gemm_fixed
    assert body == pytest.approx(max(tl2, math.hypot(tc, td)), rel=1e-9)
    # p = 0: the plain maximum (perfect overlap)
    c0 = gemm_candidate(dataclasses.replace(hw, gemm_overlap_p=0.0), 1, 128, 11008, 4096, 2.0,
                        2.0 * 128 * 4096, 2.0 * 4096 * 11008, 2.0 * 128 * 11008, 312e12,
                        128, 128, 64, 1, 1)
    assert c0["time"] - hw.launch == pytest.approx(max(tc, td, tl2), rel=1e-9)


def test_tma_multicast_halves_the_shared_panel_reads():
    hw1 = _hw("h100", gemm_cluster=1)
    hw2 = dataclasses.replace(hw1, gemm_cluster=2)
    m = n = k = 4096
    args = (1, m, n, k, 2.0, 2.0 * m * k, 2.0 * k * n, 2.0 * m * n, 989.4e12, 128, 256, 64, 1, 1)
    l1, l2 = gemm_candidate(hw1, *args)["l2_bytes"], gemm_candidate(hw2, *args)["l2_bytes"]
    ctas = (m // 128) * (n // 256)
    # hand count: each CTA's A panel (128 x K) is read once per 2-CTA cluster
    assert l1 - l2 == pytest.approx(ctas * 64 * k * 2.0, rel=1e-12)


def test_h100_overlap_is_the_a100_value_not_refitted():
    a, h = load_arch("a100").gpu, load_arch("h100").gpu
    assert h.gemm_overlap_p == a.gemm_overlap_p > 0
    assert "FITTED" in load_arch("a100").provenance["gpu.gemm_overlap_p"]
    assert "not refitted" in load_arch("h100").provenance["gpu.gemm_overlap_p"]


@pytest.fixture(scope="module")
def vidur(request):
    from conftest import reference_dir

    ref = reference_dir()
    if not (ref / "gpu" / "a100_h100_gemm_vidur.csv").is_file():
        pytest.skip(f"Vidur reference data not found under {ref} (set XPUSIM_REFERENCE_DIR)")
    from xpusim.validation import vidur_allreduce_a100, vidur_gemm_a100, vidur_gemm_h100

    ctx = ValidationContext(ref)
    return {"a100": vidur_gemm_a100.run(ctx), "h100": vidur_gemm_h100.run(ctx),
            "allreduce": vidur_allreduce_a100.run(ctx)}


def test_split_is_by_model_and_at_most_half(vidur):
    for gpu in ("a100", "h100"):
        pts = vidur[gpu]
        train = [p for p in pts if p.split == "train"]
        assert len(pts) == 216 and len(train) == 96  # Llama-2-7B rows only
        assert all(p.case.startswith("Llama-2-7b") for p in train)
        assert not any(p.case.startswith("Llama-2-7b") for p in pts if p.split == "test")
    ar = vidur["allreduce"]
    assert len(ar) == 91 and sum(p.split == "train" for p in ar) == 42


@pytest.mark.parametrize("gpu,goal", [("a100", 0.08), ("h100", 0.08)])
def test_held_out_models_error_and_bias(vidur, gpu, goal, capsys):
    """Issue 17 goal on held-out layer GEMMs: MAPE <= 10%, |bias| <= 5% (figures in
    docs/validation.md; before the mechanisms: A100 19.7% / -19.7%, H100 13.8% / -12.4%)."""
    test = [p for p in vidur[gpu] if p.split == "test"]
    with capsys.disabled():
        print(f"\n[vidur {gpu}] test MAPE {mape(test):.1%} bias {bias(test):+.1%}")
    assert mape(test) <= goal and abs(bias(test)) <= 0.05


def test_one_row_by_hand(vidur):
    """Llama-2-7B TP1 decode (1 token) attn_post_proj 1x4096x4096 on A100: 25 us measured; the
    model's weight stream is 32 MiB at 0.88 x 2039 GB/s plus the fixed costs (hand sum)."""
    p = next(p for p in vidur["a100"]
             if p.case == "Llama-2-7b-hf tp1 1tok attn_post_proj")
    g = load_arch("a100")
    stream = 4096 * 4096 * 2 / (g.memory["hbm"].bandwidth * g.memory["hbm"].efficiency)
    hand = stream + g.gpu.gemm_fixed + g.gpu.launch_overhead - 1e-6 + g.memory["hbm"].latency
    assert p.measured == pytest.approx(25e-6)
    assert p.predicted == pytest.approx(hand, rel=0.15)
    assert abs(p.error) < 0.15
