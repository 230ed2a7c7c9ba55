"""TensorRT-LLM v0.9's MoE grouped GEMM as the tile model sees it (sim/gpu/moe.py, issue 17).

Expectations are closed forms from the kernel's published facts: the three CUTLASS 2.x tile
shapes, and on Hopper the Ampere ``mma.sync`` path at 2/3 of the tensor peak (FlashAttention-3
paper), so a large compute-bound expert GEMM runs at 2/3 of the native rate on H100 and at the
native rate on A100 (whose cuBLAS kernels are the same SM80 family)."""

import pytest

from arch import load_arch
from sim.gpu.gemm import best_gemm
from sim.gpu.hw import gpu_hw
from sim.gpu.moe import MMA_SYNC_FRACTION_SM90, MOE_TILES, moe_gemm_view
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import is_expert_gemm
from workloads.tracer import trace_model

#: Mixtral-8x7B expert FC1 (gate+up) at TP2 for 2048 tokens: m x n x k
M, N, K = 2048, 14336, 4096


def _time(hw, peak, m=M, n=N, k=K):
    return best_gemm(hw, 1, m, n, k, 2, 2 * m * k, 2 * k * n, 2 * m * n, peak)["time"]


def test_hopper_view_is_the_sm80_kernel():
    g = load_arch("h100").gpu
    hw, peak = moe_gemm_view(gpu_hw(load_arch("h100")), g.tensor_flops["fp16"])
    assert peak == pytest.approx(989.4e12 * 2 / 3, rel=1e-3)   # datasheet dense fp16 x 2/3
    assert hw.gemm_tiles == MOE_TILES == ((32, 128, 64), (64, 128, 64), (128, 128, 64))
    assert hw.gemm_cluster == 1 and not hw.persistent_gemm


def test_ampere_view_keeps_the_peak_and_schedule():
    arch = load_arch("a100")
    hw0 = gpu_hw(arch)
    hw, peak = moe_gemm_view(hw0, arch.gpu.tensor_flops["fp16"])
    assert peak == arch.gpu.tensor_flops["fp16"]
    assert hw.gemm_tiles == MOE_TILES
    assert (hw.gemm_cluster, hw.persistent_gemm) == (hw0.gemm_cluster, hw0.persistent_gemm)
    # a CUTLASS 2.x grouped GEMM has no stream-K kernels, even on an SM80-class GPU whose
    # library's dense GEMMs have them
    import dataclasses

    hw_sk, _ = moe_gemm_view(dataclasses.replace(hw0, gemm_stream_k=True), peak)
    assert hw_sk.gemm_stream_k is False and not hw_sk.mixed_input_tiles


def test_h100_expert_gemm_rate_is_two_thirds_of_native():
    """Compute-bound (2048 rows): the rate through the view is at most the mma.sync share of
    the datasheet peak at the H100's sustained fraction (the tile model's wave and prologue
    losses take ~10% off it, as they take ~7% off the native kernel's), ~1.5x the native time
    (a 1/2 or 3/4 fraction fails)."""
    arch = load_arch("h100")
    hw, peak0 = gpu_hw(arch), arch.gpu.tensor_flops["fp16"]
    native = _time(hw, peak0)
    view_hw, peak = moe_gemm_view(hw, peak0)
    t = _time(view_hw, peak)
    rate = 2 * M * N * K / t
    expected = 989.4e12 * MMA_SYNC_FRACTION_SM90 * arch.gpu.tensor_efficiency
    assert 0.85 * expected < rate <= expected
    assert t / native == pytest.approx(1 / MMA_SYNC_FRACTION_SM90, rel=0.06)


def test_a100_expert_gemm_rate_unchanged_when_compute_bound():
    arch = load_arch("a100")
    hw, peak0 = gpu_hw(arch), arch.gpu.tensor_flops["fp16"]
    view_hw, peak = moe_gemm_view(hw, peak0)
    t, native = _time(view_hw, peak), _time(hw, peak0)
    assert t == pytest.approx(native, rel=0.05)   # 128x128 is in both tile sets
    assert 2 * M * N * K / t == pytest.approx(312e12 * arch.gpu.tensor_efficiency, rel=0.08)


@pytest.mark.parametrize("counts", [(), (1, 1, 0, 0, 0, 0, 0, 0)])
def test_expert_gemms_of_a_mixtral_trace(counts):
    """Per layer the tracer emits top-2 experts' FC1 and FC2 (routed: one GEMM each per loaded
    expert, 2 x 2; uniform: one GEMM each batched over the experts rank); the router's GEMM
    and the dense layers' are not expert GEMMs."""
    model = get_model("mixtral-8x7b")
    sc = Scenario(batch=1, prompt_len=16, gen_len=1, expert_counts=counts)
    ops = [op for op in trace_model(model, sc).ops if op.phase == "prefill"]
    experts = [op for op in ops if is_expert_gemm(op)]
    per_layer = 4 if counts else 2
    assert len(experts) == per_layer * model.n_layers
    assert not any(is_expert_gemm(op) for op in ops
                   if op.name in ("router", "qkv_proj", "o_proj", "lm_head"))


def test_weight_only_experts_keep_the_moe_tiles():
    """A weight-only (int4) expert GEMM of a decode batch: a plain GEMM picks one of Marlin's
    16-row tiles; TensorRT-LLM's MoE kernel has the same three CTA tiles for quantised
    weights, so through the MoE view the tile is one of those and the 8-row batch pays a
    32-row tile (more smem/L2 traffic per weight byte than Marlin's 16-row one)."""
    arch = load_arch("a100")
    hw0, peak0 = gpu_hw(arch), arch.gpu.tensor_flops["fp16"]
    m, n, k = 8, 14336, 4096
    args = (1, m, n, k, 2, 2 * m * k, k * n // 2, 2 * m * n)
    plain = best_gemm(hw0, *args, peak0)
    hw, peak = moe_gemm_view(hw0, peak0)
    moe = best_gemm(hw, *args, peak)
    assert plain["tile"].startswith("16x")
    assert tuple(int(x) for x in moe["tile"].split("x")) in MOE_TILES
    assert moe["dram_bytes"] >= k * n // 2            # the packed weights, read once at least
