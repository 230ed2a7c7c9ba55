"""GPU model mechanisms: GEMM tiles and waves, vector passes, attention partitions, collectives,
software stacks (host-timed, async), pipeline parallelism, presets."""

import dataclasses
import math

import pytest

from arch import arch_from_dict, deep_merge, load_arch, load_arch_data
from arch.topology_view import device_view
from sim.devices.base import SimError, device_for
from sim.engine import Engine
from sim.gpu.attention import (
    AttentionShape,
    flash2,
    flash_decoding,
    lean_attention,
    num_splits_heuristic,
    paged_attention,
)
from sim.gpu.collectives import LinkHw, ProtocolHw, collective_time
from sim.gpu.gemm import best_gemm
from sim.gpu.host import async_makespan, op_family
from sim.gpu.hw import gpu_hw
from sim.gpu.memory import achievable_bandwidth
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.tracer import trace_model
from xpusim.commands.op import gemm_op

GPU_PRESETS = ("a100", "a100-40gb", "h100", "a6000", "mi210", "dgx-a100", "dgx-h100")


@pytest.fixture(scope="module")
def a100():
    return device_for(load_arch("a100"), "tile")


def _arch(base: str, overrides: dict):
    data, label = load_arch_data(base)
    if data.get("type") == "system":  # device sections go to the GPU component's overrides
        overrides = {"components": {"gpu": {"overrides": overrides}}}
    return arch_from_dict(deep_merge(data, overrides), label)


@pytest.mark.parametrize("name", GPU_PRESETS)
def test_presets_load_and_run_a_gemm(name):
    dev = device_for(load_arch(name), "tile")
    cost = dev.estimate(gemm_op(4096, 4096, 4096, 1, "fp16"))
    assert cost.latency >= cost.roofline > 0
    assert {"tile", "split_k"} <= cost.detail.keys()


def test_dgx_presets_have_eight_gpus_on_nvswitch():
    for name in ("dgx-a100", "dgx-h100"):
        a = device_view(load_arch(name), "gpu")
        assert a.system.devices == 8 and a.system.intra_node_link == "nvlink"
        assert a.system.inter_node_link == "infiniband"


def test_large_gemm_runs_at_sustained_tensor_rate(a100):
    op = gemm_op(8192, 8192, 8192, 1, "fp16")
    cost = a100.estimate(op)
    tflops = op.flops / cost.latency / 1e12
    eff = load_arch("a100").gpu.tensor_efficiency
    assert 0.9 * 312 * eff < tflops <= 312 * eff


def test_smaller_tiles_are_never_faster_per_flop():
    hw = dataclasses.replace(gpu_hw(load_arch("a100")), gemm_tiles=((64, 64, 64),))
    big = dataclasses.replace(hw, gemm_tiles=((128, 128, 64),))
    small_t = best_gemm(hw, 1, 8192, 8192, 8192, 2.0, 2**27, 2**27, 2**27, 312e12)["t_compute"]
    big_t = best_gemm(big, 1, 8192, 8192, 8192, 2.0, 2**27, 2**27, 2**27, 312e12)["t_compute"]
    assert small_t >= big_t  # 32x32 warp tiles: operand fetch as slow as the MMAs


def test_split_k_used_for_small_output_long_k(a100):
    cost = a100.estimate(gemm_op(128, 128, 65536, 1, "fp16"))
    assert cost.detail["split_k"] > 1


def test_int8_tiles_take_twice_the_k(a100):
    c8 = a100.estimate(gemm_op(4096, 4096, 4096, 1, "int8"))
    assert c8.detail["tile"].endswith("x128")


def test_gemv_bandwidth_near_achievable(a100):
    op = gemm_op(1, 12288, 12288, 1, "fp16")
    cost = a100.estimate(op)
    hbm = load_arch("a100").memory["hbm"]
    assert op.bytes / cost.latency == pytest.approx(hbm.bandwidth * hbm.efficiency, rel=0.1)


def test_littles_law_limits_small_grids():
    hw = gpu_hw(load_arch("a100"))
    one = achievable_bandwidth(hw, 1, 32 * 1024)
    full = achievable_bandwidth(hw, 108, 32 * 1024)
    assert one == pytest.approx(32 * 1024 / hw.hbm_latency)
    assert full == pytest.approx(hw.hbm_achievable)


def _vector(dev, name, op_class, casc):
    from workloads.trace import VECTOR, Op

    return dev.estimate(Op(0, name, VECTOR, "prefill", 0, 0, casc, op_class=op_class))


def test_wide_rows_need_more_passes(a100):
    from workloads.tracer import layernorm

    narrow = _vector(a100, "ln", "norm", layernorm("ln", "x", 8192, 4096, "fp16", False))
    wide = _vector(a100, "ln", "norm", layernorm("ln", "x", 1024, 32768, "fp16", False))
    assert narrow.detail["passes"] == 1 and wide.detail["passes"] == 2
    assert wide.latency > narrow.latency * 1.3  # same elements, a second DRAM pass


def test_attention_partitions_order():
    dev = device_for(load_arch("a100"), "tile")
    ahw = dev._attn_hw("fp16")
    sh = AttentionShape(1, 32, 32, 1, 65536, 128)
    fa2, fd, la = flash2(ahw, sh)["time"], flash_decoding(ahw, sh)["time"], \
        lean_attention(ahw, sh)["time"]
    assert la <= fd <= fa2
    assert flash2(ahw, sh)["ctas"] == 32 and lean_attention(ahw, sh)["ctas"] == 108
    kv = sh.kv_bytes
    assert kv / la <= dev.hw.hbm_achievable * 1.001   # never faster than HBM
    assert paged_attention(ahw, sh)["ctas"] == 32


def test_gqa_decode_packs_group_queries():
    ahw = device_for(load_arch("a100"), "tile")._attn_hw("fp16")
    gqa = flash2(ahw, AttentionShape(1, 64, 8, 1, 4096, 128))
    assert gqa["ctas"] == 8


def test_num_splits_heuristic_as_published():
    assert num_splits_heuristic(108, 108, 100) == 1          # enough blocks already
    assert num_splits_heuristic(32, 108, 512) == 3            # 96 CTAs: 89% of one wave
    assert num_splits_heuristic(1, 108, 4) <= 4               # at most one split per block


def test_flash_decoding_splits_over_twice_the_sms():
    """FA-2's set_params_splitkv (and PyTorch's copy) calls the heuristic with twice the SM
    count (its split kernel's CTAs are 128 threads): one 16K-token decode of 32 heads at d128
    on an A100 (108 SMs) has 32 query blocks and 128 KV blocks of 128 tokens, so 6 splits
    (192 CTAs, 89% of 216 slots), not the 3 the SM count alone gives (96 CTAs)."""
    ahw = device_for(load_arch("a100"), "tile")._attn_hw("fp16")
    res = flash_decoding(ahw, AttentionShape(1, 32, 32, 1, 16384, 128))
    assert num_splits_heuristic(32, 216, 128) == 6 and num_splits_heuristic(32, 108, 128) == 3
    assert res["splits"] == 6 and res["ctas"] == 192


def test_collectives_ring_latency_and_bandwidth():
    a = device_view(load_arch("dgx-a100"), "gpu")
    dev = device_for(a, "tile")
    link = LinkHw(a.interconnect["nvlink"].bandwidth, a.interconnect["nvlink"].efficiency,
                  a.interconnect["nvlink"].latency)
    small = collective_time("allreduce", 8.0, 4, link, dev.protocols, 8)
    big = collective_time("allreduce", 16 * 2**30, 4, link, dev.protocols, 8)
    # 8-byte all-reduce on 4 GPUs: NCCL LL ~ 12.5 us per back-to-back call (nccl-tests,
    # LLMCompass ae/figure5/h), i.e. the kernel with its launch overhead (2 us), not without it
    assert small["protocol"] == "ll"
    assert small["time"] + a.gpu.launch_overhead == pytest.approx(12.52e-6, rel=0.02)
    busbw = 2 * 3 / 4 * 16 * 2**30 / big["time"]
    assert big["protocol"] == "simple" and busbw == pytest.approx(233.7e9, rel=0.03)


def test_hierarchical_allreduce_crosses_nodes():
    ib = LinkHw(25e9, 0.9, 2e-6)
    nv = LinkHw(300e9, 0.78, 0.4e-6)
    proto = (ProtocolHw("simple", 8.4e-6, 3.4e-6, 1.0),)
    intra = collective_time("allreduce", 2**28, 8, nv, proto, 8, ib)
    inter = collective_time("allreduce", 2**28, 16, nv, proto, 8, ib)
    # NCCL runs one flat ring over all 16 ranks (not a hierarchical RS/AR/AG); its bandwidth is
    # the node's 8 NICs together (8 x 22.5 GB/s) where that is below NVLink's 234 GB/s
    # latency: 28 NVLink steps of max(3.8, 3x1 us Intel net overhead), 2 NET steps of 14 us,
    # x1.4 (NCCL's ring plateau across nodes)
    wire = 2 * 15 / 16 * 2**28 / (8 * 25e9 * 0.9) + (8.4 + 28 * 3.8 + 2 * 14) * 1.4e-6
    assert inter["algorithm"] == "ring" and inter["time"] == pytest.approx(wire, rel=0.01)
    assert inter["time"] > 1.3 * intra["time"]


def test_timed_software_mode_adds_host_floor():
    ideal = device_for(load_arch("a100"), "tile")
    timed = device_for(_arch("a100", {"software": {
        "mode": "timed", "dispatch": {"matmul": 30e-6}, "issue": {"matmul": 20e-6}}}), "tile")
    tiny, big = gemm_op(64, 64, 64, 1, "fp16"), gemm_op(8192, 8192, 8192, 1, "fp16")
    assert timed.estimate(tiny).latency == pytest.approx(30e-6)
    assert timed.estimate(big).latency == pytest.approx(ideal.estimate(big).latency + 20e-6)


def test_async_host_bounds_small_decode_and_replay_matches_engine():
    arch = _arch("dgx-a100", {"software": {"mode": "async", "dispatch": {"default": 40e-6},
                                           "per_step": 2e-3, "per_request": 1e-4}})
    dev = device_for(arch, "tile")
    ideal = device_for(load_arch("dgx-a100"), "tile")
    sc = Scenario(batch=2, prompt_len=64, gen_len=3, tp=2, attention="flash")
    trace = trace_model(get_model("llama2-7b"), sc)
    end = float(Engine({"device0": dev}).run(trace).end.max())
    end_ideal = float(Engine({"device0": ideal}).run(trace).end.max())
    assert end > end_ideal + 3 * 2e-3
    lat = [dev.estimate(op).latency for op in trace.ops]
    new = [i == 0 or (op.phase, op.step) != (trace.ops[i - 1].phase, trace.ops[i - 1].step)
           for i, op in enumerate(trace.ops)]
    cost = [2e-3 + 1e-4 * op.requests if n else 0.0
            for op, n in zip(trace.ops, new, strict=True)]
    replay = async_makespan(lat, [40e-6] * len(lat), new, cost)
    assert replay == pytest.approx(end, rel=1e-9)


def test_async_run_keeps_invariants():
    arch = _arch("dgx-a100", {"software": {"mode": "async", "dispatch": {"default": 30e-6}}})
    res = simulate(arch, get_model("llama2-7b"), Scenario(batch=1, prompt_len=32, gen_len=3,
                                                          tp=2, attention="flash"))
    assert set(res.invariants.values()) == {"passed"}


def test_op_families():
    trace = trace_model(get_model("llama2-7b"), Scenario(batch=1, prompt_len=8, gen_len=1, tp=2))
    fams = {op.name: op_family(op) for op in trace.ops}
    assert fams["qkv_proj"] == "matmul" and fams["softmax"] == "softmax"
    assert fams["ln_attn"] == "norm" and fams["ffn_act"] == "activation"
    assert fams["allreduce_attn"] == "collective" and fams["embedding"] == "memory"


def test_pipeline_parallel_trace_and_run():
    sc = Scenario(batch=1, prompt_len=64, gen_len=2, tp=2, pp=2)
    trace = trace_model(get_model("llama2-13b"), sc)
    sends = [op for op in trace.ops if op.name == "pp_send"]
    assert len(sends) == 2 and all(op.collective.kind == "send" for op in sends)
    res = simulate(load_arch("dgx-a100"), get_model("llama2-13b"), sc)
    base = simulate(load_arch("dgx-a100"), get_model("llama2-13b"),
                    Scenario(batch=1, prompt_len=64, gen_len=2, tp=2))
    assert res.metrics["weights_bytes_per_device"] == pytest.approx(
        base.metrics["weights_bytes_per_device"] / 2)
    assert res.metrics["ttft_s"] > base.metrics["ttft_s"]  # + one activation transfer
    with pytest.raises(SimError, match="--pp"):
        simulate(load_arch("dgx-a100"), get_model("llama2-13b"),
                 Scenario(batch=1, prompt_len=64, gen_len=2, tp=8, pp=2))


def test_bad_software_mode_is_one_line_error():
    from arch import SpecError

    with pytest.raises(SpecError, match="software.mode"):
        _arch("a100", {"software": {"mode": "turbo"}})


def test_llama70b_tp8_on_dgx_h100_is_fast_and_sane():
    res = simulate(load_arch("dgx-h100"), get_model("llama2-70b"),
                   Scenario(batch=8, prompt_len=512, gen_len=4, tp=8))
    m = res.metrics
    # decode reads ~17 GB of weights per GPU per step at ~3.1 TB/s: ~6-12 ms per token, plus
    # 160 all-reduces of 128 KB at ~33 us each (ring LL on 4 of NCCL's 24 channels): ~5 ms
    assert 5e-3 < m["tpot_s"] < 17e-3 and m["ttft_s"] > m["tpot_s"]
    assert math.isfinite(m["energy_per_token_J"])


def _templates_ops(templates, phase="prefill"):
    from workloads.trace import Op

    return [Op(i, t.name, t.kind, phase, 0, 1, t.compute, op_class=t.op_class)
            for i, t in enumerate(templates)]


def _builder(model="llama2-7b"):
    from workloads.tracer import LayerBuilder

    return LayerBuilder(get_model(model), Scenario(batch=1, prompt_len=1, gen_len=2,
                                                   dtype="fp16", attention="flash"))


def test_small_memory_op_waits_one_dram_round_trip(a100):
    """An embedding gather of one token (2 x 4096 x 2 B, 9 ns at 1.79 TB/s) still waits one
    HBM round trip (0.5 us) after the 2 us launch; 65536 tokens (1 GiB) stream at the
    achievable bandwidth."""
    small = a100.estimate(_templates_ops(_builder().embedding(1))[0])
    assert small.latency == pytest.approx(2e-6 + 0.5e-6, rel=1e-9)
    big = a100.estimate(_templates_ops(_builder().embedding(65536))[0])
    assert big.latency == pytest.approx(2e-6 + 2 * 65536 * 4096 * 2 / (2039e9 * 0.88),
                                        rel=1e-9)


def test_fused_attention_energy_splits_mmas_and_softmax(a100):
    """Fused attention's MMAs (4 B H q n d FLOPs) are charged at the fp16 tensor energy
    (1.09 pJ/FLOP), its online softmax (5 operations per score) at the fp32 CUDA-core entry
    (17.4 pJ/FLOP) of the a100 preset."""
    op = _templates_ops(_builder().attention(2, 512, 512))[0]
    scores = 2 * 32 * 512 * 512
    mma = 4 * scores * 128
    assert op.flops == mma + 5 * scores
    cost = a100.estimate(op)
    assert cost.energy["compute"] == pytest.approx(mma * 1.09e-12 + 5 * scores * 17.4e-12,
                                                   rel=1e-9)


def test_allreduce_reads_and_writes_hbm_three_times_what_it_sends():
    """A ring all-reduce sends 2 (p-1)/p of the buffer per rank, and every step reads the
    incoming chunk and the local one and writes their sum: 3x the sent bytes of HBM traffic
    (3.9 pJ/bit), the sent bytes over NVLink (8 pJ/bit); an all-gather only copies."""
    from workloads.trace import COLLECTIVE, Collective, Op

    dev = device_for(device_view(load_arch("dgx-a100"), "gpu"), "tile")
    n = 8 * 2**20
    sent = 2 * 7 / 8 * n
    ar = dev.estimate(Op(0, "ar", COLLECTIVE, "decode", 0, 0, None, op_class="communication",
                         collective=Collective("allreduce", n, 8, "fp16")))
    assert ar.energy["hbm"] == pytest.approx(3 * sent * 8 * 3.9e-12, rel=1e-9)
    assert ar.energy["link"] == pytest.approx(sent * 8 * 8e-12, rel=1e-9)
    ag = dev.estimate(Op(0, "ag", COLLECTIVE, "decode", 0, 0, None, op_class="communication",
                         collective=Collective("allgather", n, 8, "fp16")))
    assert ag.energy["hbm"] == pytest.approx(7 * n * 8 * 3.9e-12, rel=1e-9)
    # a reduce-scatter reduces as it goes: (p-1)/p of the buffer sent, 3x that through HBM
    rs = dev.estimate(Op(0, "rs", COLLECTIVE, "decode", 0, 0, None, op_class="communication",
                         collective=Collective("reducescatter", n, 8, "fp16")))
    assert rs.energy["hbm"] == pytest.approx(3 * 7 / 8 * n * 8 * 3.9e-12, rel=1e-9)


def test_fused_attention_energy_per_shard_under_tensor_parallelism():
    """The same split as above for one of two tensor-parallel shards (16 of the 32 heads):
    the shard's MMAs at 1.09 pJ/FLOP, its 5 operations per score at 17.4 pJ/FLOP."""
    dev = device_for(load_arch("a100"), "tile")
    from workloads.trace import Op
    from workloads.tracer import LayerBuilder

    b = LayerBuilder(get_model("llama2-7b"), Scenario(batch=1, prompt_len=1, gen_len=2,
                                                      dtype="fp16", attention="flash", tp=2))
    t = b.attention(2, 512, 512)[0]
    op = Op(0, t.name, t.kind, "prefill", 0, 1, t.compute, shards=2, op_class=t.op_class)
    scores = 2 * 16 * 512 * 512
    mma = 4 * scores * 128
    assert op.flops / 2 == mma + 5 * scores
    assert dev.estimate(op).energy["compute"] == pytest.approx(
        mma * 1.09e-12 + 5 * scores * 17.4e-12, rel=1e-9)


def test_memory_op_streams_at_the_stacks_bandwidth_efficiency():
    """A stack's ``bandwidth_efficiency`` for the memory family scales a memory op's stream:
    1 GiB of embedding rows at 0.5 x 2039 GB/s x 0.88, after the 2 us launch."""
    dev = device_for(_arch("a100", {"software": {"bandwidth_efficiency": {"memory": 0.5}}}),
                     "tile")
    cost = dev.estimate(_templates_ops(_builder().embedding(65536))[0])
    assert cost.latency == pytest.approx(2e-6 + 2 * 65536 * 4096 * 2 / (0.5 * 2039e9 * 0.88),
                                         rel=1e-9)
