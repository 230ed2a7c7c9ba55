"""TensorRT-LLM v0.9.0 static-batch suite: the published rows, the benchmark's routing and dtype
facts, the masked-MHA decode kernel, and predictions next to NVIDIA's figures."""

import dataclasses
import math

import pytest

from arch import load_arch
from arch.software import load_stack
from sim.devices.base import device_for
from sim.gpu.attention import AttentionShape, masked_mha, paged_attention
from workloads.models import get_model
from workloads.routing import expert_token_counts
from workloads.tracer import trace_model
from xpusim.validation import PROJECT_DATA
from xpusim.validation import trtllm_e2e as S


@pytest.fixture(scope="module")
def rows():
    return {S.case(r): r for r in S.load_rows()}


def test_table_rows_as_published(rows):
    """48 rows: 16 throughput + 8 first-token per GPU; spot values from performance.md v0.9.0."""
    all_rows = list(rows.values())
    assert len(all_rows) == 48
    assert sum(r["table"] == "throughput" for r in all_rows) == 32
    assert rows["tput h100 fp16 mixtral-8x7b b512 tp2 i128 o128"]["value"] == "5255"
    assert rows["tput a100 fp16 llama2-70b b512 tp8 i128 o2048"]["value"] == "684"
    assert rows["ttft h100 fp8 llama2-70b b1 tp8 i2048 o1"]["value"] == "85.1"
    assert rows["ttft a100 fp16 mistral-7b b1 tp1 i2048 o1"]["value"] == "139.6"
    splits = [r["split"] for r in S.load_rows()]
    assert splits[:4] == ["train", "test", "train", "test"]
    assert splits.count("train") == splits.count("test") == 24


def test_measured_time_is_batch_time_over_gpus(rows):
    r = rows["tput h100 fp8 llama2-7b b896 tp1 i128 o128"]
    assert S.measured_time(r) == pytest.approx(896 * 128 / 19854)
    r = rows["tput h100 fp8 llama2-70b b1024 tp2 i128 o128"]   # out tok/s per GPU, 2 GPUs
    assert S.measured_time(r) == pytest.approx(1024 * 128 / (3214 * 2))
    assert S.measured_time(rows["ttft a100 fp16 llama2-7b b1 tp1 i128 o1"]) == \
        pytest.approx(16.2e-3)


def test_mistral_config_matches_hf_parameter_count():
    m = get_model("mistral-7b")
    assert (m.n_layers, m.d_model, m.n_heads, m.n_kv_heads, m.d_ff) == (32, 4096, 32, 8, 14336)
    assert m.param_count() == 7_241_732_096   # Mistral-7B-v0.1 on Hugging Face
    assert get_model("mistral") is m


def test_benchmark_routing_sends_all_tokens_to_top_k_experts(rows):
    """All-padId prompts and greedy decoding: every token has the same hidden state."""
    mix = get_model("mixtral-8x7b")
    assert S.expert_counts(mix) == (1.0, 1.0, 0, 0, 0, 0, 0, 0)
    assert S.expert_counts(get_model("llama2-7b")) == ()
    assert expert_token_counts(512, 8, 2, weights=S.expert_counts(mix)) == [512, 512] + [0] * 6
    sc = S.scenario(rows["tput h100 fp16 mixtral-8x7b b512 tp2 i128 o128"])
    assert sc.dtype == "fp16" and sc.kv_dtype == "fp16"   # no FP8 Mixtral in v0.9.0
    sc = dataclasses.replace(sc, gen_len=2, prompt_len=16, batch=4)
    trace = trace_model(mix, sc, phases=("decode",))
    ups = [op for op in trace.ops if op.layer == 0 and "_up" in op.name and "expert" in op.name]
    assert len(ups) == 2   # two experts per layer, not min(8, 4 * 2)
    # FP8 recipe: FP8 weights and KV cache, 16-bit activations (TensorRT-LLM FP8Linear)
    sc = S.scenario(rows["tput h100 fp8 llama2-7b b896 tp1 i128 o128"])
    assert (sc.dtype, sc.weight_format, sc.kv_dtype) == ("fp16", "fp8", "fp8")


def test_masked_mha_streams_each_query_head_from_l2():
    """GQA group g: DRAM reads the group's cache once (its CTAs are neighbours in the grid),
    every query head's CTA streams it from L2 at the ordinary-load rate (half the L2 peak)."""
    from sim.gpu.attention import LDG_L2_FRACTION

    dev = device_for(load_arch("h100"), "tile")
    ahw, hw = dev._attn_hw("fp16"), dev.hw
    gqa = AttentionShape(64, 32, 8, 1, 4096, 128)
    mmha = masked_mha(ahw, gqa)
    assert LDG_L2_FRACTION == 0.5   # 1 sector/clk/slice of A100's 80 x 64 B/clk
    assert mmha["dram_bytes"] == pytest.approx(gqa.kv_bytes + gqa.qo_bytes)
    # by hand: 2,048 CTAs x 2 MiB (4,096 tokens x 128 x K and V x 2 B) over 9.37 TB/s / 2 =
    # 916 us, more than DRAM's 1.07 GB / 3.08 TB/s = 348 us: L2-bound
    l2_s = 2048 * (2 * 4096 * 128 * 2) / (9.37e12 * 0.5)
    assert l2_s == pytest.approx(916.7e-6, rel=1e-3)
    assert mmha["time"] == pytest.approx(hw.launch + hw.hbm_latency + l2_s, rel=1e-9)
    paged = paged_attention(ahw, gqa)   # vLLM PagedAttention: L2 at its peak
    assert mmha["time"] - hw.launch - hw.hbm_latency == pytest.approx(
        2 * (paged["time"] - hw.launch - hw.hbm_latency), rel=1e-9)
    mha = AttentionShape(64, 32, 32, 1, 4096, 128)   # no group: DRAM-bound, the same cost
    assert masked_mha(ahw, mha)["time"] == pytest.approx(paged_attention(ahw, mha)["time"])
    assert masked_mha(ahw, mha)["time"] == pytest.approx(
        hw.launch + hw.hbm_latency + (mha.kv_bytes + mha.qo_bytes) / hw.hbm_achievable)


def test_stacks_load_and_differ_only_in_decode_kernel():
    _, plain = load_stack(str(PROJECT_DATA / "trtllm" / S.STACK))
    _, xqa = load_stack(str(PROJECT_DATA / "trtllm" / S.XQA_STACK))
    assert plain["decode_attention"]["value"] == "mmha"
    assert xqa["decode_attention"]["value"] == "flashdecoding"
    assert plain["mode"] == xqa["mode"] and plain["per_step"] == xqa["per_step"]
    # --gpt_attention_plugin float16: attention at FP16 beside FP8 GEMMs (FP8 KV cache kept)
    assert plain["attention_dtype"]["value"] == xqa["attention_dtype"]["value"] == "fp16"
    assert S.stack_file(S.load_rows()[0]).name == S.STACK   # Mistral: no XQA in its commands


@pytest.mark.parametrize("key, tol", [
    ("tput a100 fp16 llama2-7b b32 tp1 i128 o2048", 0.10),
    ("ttft a100 fp16 llama2-7b b1 tp1 i2048 o1", 0.10),
    ("ttft a100 fp16 mixtral-8x7b b1 tp2 i2048 o1", 0.25),
    ("tput a100 fp16 mistral-7b b56 tp1 i2048 o2048", 0.15),   # GQA decode (was +81.8%)
    ("ttft h100 fp8 llama2-7b b1 tp1 i2048 o1", 0.15),   # FP16 attention (FP8 rate: -17.2%)
])
def test_predictions_next_to_published(rows, key, tol):
    """A dense decode-bound row, a dense prefill row, an MoE prefill row, a GQA decode-bound
    row and an FP8 prefill row against NVIDIA's figures (the whole table's errors: ``xpusim
    validate``)."""
    r = rows[key]
    pred, meas = S.predict(r), S.measured_time(r)
    assert math.isfinite(pred)
    assert abs(pred / meas - 1) < tol, (key, pred, meas)


def test_identical_routing_reads_two_experts(rows, monkeypatch):
    """Decode at batch 32 is weight-bound: all eight experts' weights (uniform spread) against
    two (the benchmark's identical tokens) is 46.7B / 12.9B = 3.6x the bytes per step. GPU
    time of the decode ops (``alone_s``): at 128 tokens the host's enqueue would hide it."""
    from sim.run import simulate

    r = {**rows["tput a100 fp16 mixtral-8x7b b32 tp2 i2048 o2048"], "input_len": "128",
         "output_len": "8"}
    arch, model = S._arch("a100", str(S.stack_file(r))), get_model("mixtral-8x7b")

    def decode_gpu_s() -> float:
        ops = simulate(arch, model, S.scenario(r)).ops
        return float(ops.loc[ops["phase"] == "decode", "alone_s"].sum())

    ident = decode_gpu_s()
    monkeypatch.setattr(S, "ROUTING", "uniform")
    uniform = decode_gpu_s()
    ratio = model.param_count() / model.active_param_count()
    assert 0.7 * ratio < uniform / ident < 1.05 * ratio


def test_stacks_enqueue_each_op_at_the_fitted_cost():
    """gptSessionBenchmark without CUDA graphs: an async host with one FITTED per-op cost."""
    for name in (S.STACK, S.XQA_STACK):
        _, sec = load_stack(str(PROJECT_DATA / "trtllm" / name))
        assert sec["mode"]["value"] == "async"
        assert sec["dispatch"]["source"].startswith("FITTED")
        assert sec["dispatch"]["default"] == "18.2 us"


def test_short_prompt_first_token_is_host_bound_by_hand(rows):
    """H100 Llama-7B, 128 tokens: every run of kernels before the last is shorter than the
    host's enqueue of the same ops, so the first token comes when the host has enqueued all 355
    ops and the last one has run: 355 x d + its latency."""
    import numpy as np

    r = rows["ttft h100 fp8 llama2-7b b1 tp1 i128 o1"]
    lat, new = S.replay_inputs(r)
    assert len(lat) == 355 and new.sum() == 1
    suffix = np.cumsum(lat[-2::-1])            # GPU time of ops j..353, j from 353 down
    assert np.all(suffix <= np.arange(1, 355) * 18.2e-6)
    pred = S.predict(r)
    assert pred == pytest.approx(355 * 18.2e-6 + lat[-1], rel=1e-12)
    assert pred == pytest.approx(S.replay((lat, new), 18.2e-6), rel=1e-12)
    # was -36.7% without the host; +3.3% with an all-FP8 trace: the last op, lm_head, keeps
    # the activations' dtype for its weights (the tracer's --weights covers the layers' linear
    # weights), fp16 under the FP8 recipe
    assert pred / S.measured_time(r) - 1 == pytest.approx(0.040, abs=0.005)
    # fitted on this row alone, the cost is the closed form (measured - last op) / 355
    d, err = S.fit_dispatch([r], (0.0, 40.0, 0.1))
    assert d == pytest.approx((S.measured_time(r) - lat[-1]) / 355, abs=0.06e-6)
    assert err < 0.002


def test_a100_short_prompt_stays_gpu_bound(rows):
    """A100 Llama-7B, 128 tokens: the GPU's 12.7 ms exceed the host's 355 x 18.2 us = 6.5 ms,
    so the enqueue cost hides behind the kernels (within 1%)."""
    r = rows["ttft a100 fp16 llama2-7b b1 tp1 i128 o1"]
    x = S.replay_inputs(r)
    gpu = S.replay(x, 0.0)
    assert 355 * 18.2e-6 < gpu
    assert gpu <= S.predict(r) < 1.01 * gpu


def test_suite_meets_goal_on_both_halves(tmp_path):
    """Issue 17's end-to-end goal (MAPE <= 15%) on the whole table and on the test half; the GQA
    groups the masked-MHA grid mechanism is about stay within it (they were +49% / +16%)."""
    from xpusim.validation import ValidationContext

    pts = S.run(ValidationContext(reference_dir=tmp_path))
    assert len(pts) == 48

    def mape(sel) -> float:
        errs = [abs(p.error) for p in pts if sel(p)]
        return sum(errs) / len(errs)

    assert mape(lambda p: True) <= S.THRESHOLD
    assert mape(lambda p: p.split == "test") <= S.THRESHOLD
    assert mape(lambda p: p.case.startswith("tput a100 fp16 mistral-7b")) < 0.10
    # FP8 recipe (FP8 GEMM operands, 16-bit activations): the H100 FP8 rows 13.7% -> 8.3%
    assert mape(lambda p: " fp8 " in p.case) < 0.10
    assert mape(lambda p: "mistral-7b" in p.case and "o2048" in p.case) < 0.12


def test_masked_mha_transfers_to_v061_llama70b_group_of_eight():
    """Out of sample: TensorRT-LLM v0.6.1's table (docs/source/performance.md of that release,
    "A100 GPUs (FP16)": LLaMA 70B, batch 240, TP 4, 128 in / 2048 out, 525 out tok/s/GPU) ran
    before XQA existed (v0.7.1 release notes), so its LLaMA 70B decode is masked MHA with GQA
    groups of 8: the old per-query-head DRAM reads gave +45%, the grid/L2 mechanism +1%."""
    r = {"gpu": "a100", "precision": "fp16", "run_dtype": "fp16", "table": "throughput",
         "model": "LLaMA 70B", "xpusim_model": "llama2-70b", "batch": "240", "tp": "4",
         "input_len": "128", "output_len": "2048", "value": "525", "unit": "out_tok/s/gpu"}
    pred = S.predict(r, str(PROJECT_DATA / "trtllm" / S.STACK))
    assert abs(pred / S.measured_time(r) - 1) < 0.10


def test_fp8_recipe_transfers_to_v061_llama70b():
    """Out of sample: TensorRT-LLM v0.6.1's "H100 GPUs (FP8)" table (docs/source/performance.md
    of that release, "updated for v0.6.1"; engines built --enable_fp8 --fp8_kv_cache, masked
    MHA): LLaMA 70B, batch 96, TP 2, 2048 in / 128 out, 306 out tok/s/GPU. With FP8 GEMM
    operands and 16-bit activations -5%; the all-FP8 trace gave -13%."""
    r = {"gpu": "h100", "precision": "fp8", "run_dtype": "fp8", "table": "throughput",
         "model": "LLaMA 70B", "xpusim_model": "llama2-70b", "batch": "96", "tp": "2",
         "input_len": "2048", "output_len": "128", "value": "306", "unit": "out_tok/s/gpu"}
    pred = S.predict(r, str(PROJECT_DATA / "trtllm" / S.STACK))
    assert abs(pred / S.measured_time(r) - 1) < 0.09
