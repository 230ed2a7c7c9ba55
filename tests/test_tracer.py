"""The tracer emits per-layer ops whose FLOPs follow from the model's shape."""

import pytest

from workloads.errors import WorkloadError
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import COLLECTIVE
from workloads.tracer import kv_bytes_per_token, kv_cache_bytes, trace_model


def _matmul_flops(trace, phase, step=None, names=None):
    return sum(op.flops for op in trace.ops if op.phase == phase and op.kind == "matmul"
               and (step is None or op.step == step) and (names is None or op.name in names))


LINEAR = {"qkv_proj", "o_proj", "ffn_up", "ffn_down", "lm_head"}


@pytest.mark.parametrize("name", ["llama2-7b", "llama2-70b", "gpt3-7b", "opt-13b"])
def test_decode_linear_flops_are_twice_the_weights(name):
    """Per generated token, the projections do 2 FLOPs per weight they touch."""
    m = get_model(name)
    tr = trace_model(m, Scenario(batch=1, prompt_len=16, gen_len=3))
    flops = _matmul_flops(tr, "decode", step=1, names=LINEAR)
    weights = m.n_layers * (m.layer_params() - (m.q_dim + 2 * m.kv_dim + m.d_model
                                                if m.bias else 0)) + m.vocab_size * m.d_model
    norms = m.n_layers * 2 * (2 * m.d_model if m.norm == "layernorm" else m.d_model)
    mlp_bias = m.n_layers * ((2 if m.activation == "swiglu" else 1) * m.d_ff + m.d_model) \
        if m.bias else 0
    assert flops == 2 * (weights - norms - mlp_bias)


def test_prefill_flops_scale_with_tokens_and_attention_is_quadratic():
    m = get_model("llama2-7b")
    a = trace_model(m, Scenario(batch=1, prompt_len=256, gen_len=1))
    b = trace_model(m, Scenario(batch=1, prompt_len=512, gen_len=1))
    lin = lambda t: _matmul_flops(t, "prefill", names=LINEAR - {"lm_head"})  # noqa: E731
    att = lambda t: _matmul_flops(t, "prefill", names={"qk", "av"})  # noqa: E731
    assert lin(b) == 2 * lin(a)
    assert att(b) == 4 * att(a)


def test_kv_cache_grows_each_decode_step():
    tr = trace_model(get_model("llama2-7b"), Scenario(batch=2, prompt_len=100, gen_len=5))
    qk = [op for op in tr.ops if op.name == "qk" and op.layer == 0]
    kv_lens = [op.compute.size["n"] for op in qk]
    assert kv_lens == [100, 101, 102, 103, 104]
    assert [op.step for op in qk] == [0, 1, 2, 3, 4]


def test_gqa_groups_and_tensor_parallel_sharding():
    m = get_model("llama2-70b")
    tr = trace_model(m, Scenario(batch=1, prompt_len=8, gen_len=2, tp=8))
    qk = next(op for op in tr.ops if op.name == "qk")
    assert qk.compute.size["g"] == 1 and qk.compute.size["r"] == 8 and qk.shards == 8
    tr1 = trace_model(m, Scenario(batch=1, prompt_len=8, gen_len=2, tp=1))
    assert _matmul_flops(tr, "decode", names=LINEAR - {"lm_head"}) == \
        _matmul_flops(tr1, "decode", names=LINEAR - {"lm_head"})
    colls = [op for op in tr.ops if op.kind == COLLECTIVE]
    assert len([c for c in colls if c.name.startswith("allreduce")]) == 2 * m.n_layers * 2


def test_moe_uniform_top2_routing():
    m = get_model("mixtral-8x7b")
    tr = trace_model(m, Scenario(batch=4, prompt_len=64, gen_len=2))
    up = next(op for op in tr.ops if op.name == "ffn_up" and op.phase == "prefill")
    batch, tokens_per_expert, n, k = up.compute.gemm_shape
    assert (batch, tokens_per_expert, n, k) == (8, 4 * 64 * 2 // 8, 2 * m.d_ff, m.d_model)
    dec = next(op for op in tr.ops if op.name == "ffn_up" and op.phase == "decode")
    assert dec.compute.gemm_shape[0] == 8  # 4 tokens x top-2 touch all 8 experts


def test_flash_attention_is_one_op():
    tr = trace_model(get_model("llama2-7b"), Scenario(batch=1, prompt_len=64, gen_len=2,
                                                      attention="flash"))
    names = {op.name for op in tr.ops}
    assert "attention" in names and "qk" not in names and "softmax" not in names


@pytest.mark.parametrize("kwargs,opt", [({"batch": 0}, "--batch"), ({"prompt_len": 0}, "--prompt"),
                                        ({"gen_len": -1}, "--gen"), ({"dtype": "fp12"}, "--dtype"),
                                        ({"tp": 0}, "--tp")])
def test_bad_scenarios(kwargs, opt):
    with pytest.raises(WorkloadError, match=opt):
        Scenario(**kwargs)


def test_tp_must_divide_heads():
    with pytest.raises(WorkloadError, match="--tp"):
        trace_model(get_model("gpt2-xl"), Scenario(tp=2))  # 25 heads


def test_kv_cache_bytes():
    m = get_model("llama2-7b")
    sc = Scenario(batch=2, prompt_len=100, gen_len=28)
    assert kv_cache_bytes(m, sc) == 2 * 32 * 4096 * 2 * 2 * 128


def test_kv_bytes_per_token_replicates_kv_heads_below_tp():
    # llama2-70b: 80 layers, 8 KV heads of 128, fp16: K and V are 2 x 80 x 8 x 128 x 2 B =
    # 320 KiB per token; at tp 8 each device holds one KV head's share (40 KiB), at tp 16 a
    # KV head is replicated on two devices: still one head each, not half of one
    m = get_model("llama2-70b")
    assert kv_bytes_per_token(m, "fp16") == 327_680
    assert kv_bytes_per_token(m, "fp16", tp=8) == 40_960
    assert kv_bytes_per_token(m, "fp16", tp=16) == 40_960
    assert kv_bytes_per_token(m, "fp16", tp=8, pp=4) == 10_240   # a quarter of the layers
    # falcon-7b has one KV head (MQA): 2 x 32 x 1 x 64 x 2 B per token, on any tp
    falcon = get_model("falcon-7b")
    assert kv_bytes_per_token(falcon, "fp16") == kv_bytes_per_token(falcon, "fp16", tp=4) == 8192
