"""Hybrid decoders of Mamba-2 and attention layers (Granite 4.0-H): the Mamba-2 mixer's
parameters, its chunked state space dual in a prefill and its state update in a decode
counted by hand, the states a request keeps, long decodes folded, refusals in one line."""

import math

import pytest

from workloads.errors import WorkloadError
from workloads.hf_config import model_from_hf_dict
from workloads.models import ModelConfig
from workloads.scenario import Scenario
from workloads.tracer import kv_cache_bytes, trace_model

# ibm-granite/granite-4.0-h-tiny as third-party copies of its config.json give it (a test
# fixture "GRANITE_H_TINY_HF" and a server manifest agree; the hub was not reachable)
GRANITE_H_TINY = {
    "model_type": "granitemoehybrid", "hidden_size": 1536, "num_hidden_layers": 40,
    "num_attention_heads": 12, "num_key_value_heads": 4, "intermediate_size": 512,
    "shared_intermediate_size": 1024, "num_local_experts": 64, "num_experts_per_tok": 6,
    "vocab_size": 100352, "tie_word_embeddings": True, "mamba_d_state": 128,
    "mamba_n_groups": 1, "mamba_n_heads": 48, "mamba_d_head": 64, "mamba_expand": 2,
    "mamba_d_conv": 4, "mamba_chunk_size": 256, "max_position_embeddings": 131072,
    "layer_types": (["mamba"] * 5 + ["attention"] + ["mamba"] * 4) * 4}
# granite-4.0-h-small's fields as a third-party copy of its config.json lists them (its Mamba
# heads not listed: the class default, 128 of 64 channels = 2 x 4,096)
GRANITE_H_SMALL = {**GRANITE_H_TINY, "hidden_size": 4096, "num_attention_heads": 32,
                   "num_key_value_heads": 8, "num_local_experts": 72, "num_experts_per_tok": 10,
                   "shared_intermediate_size": 1536, "intermediate_size": 768,
                   "mamba_n_heads": 128, "mamba_d_head": 64}


def _tiny(**kw) -> ModelConfig:
    base = dict(name="hy", family="granitemoehybrid", n_layers=4, d_model=256, n_heads=4,
                n_kv_heads=2, d_ff=512, vocab_size=1000, max_positions=8192, norm="rmsnorm",
                activation="swiglu", position="rope", tied_embeddings=True, bias=False,
                ssm_heads=8, ssm_head_dim=32, d_state=16, d_conv=4, ssm_groups=1,
                attn_layers=(1,))
    return ModelConfig(**{**base, **kw})


def test_granite_h_counts():
    """Granite 4.0-H-Tiny "7B total, 1B active" (IBM's preview post; model card "7B") and
    H-Small "32B total, 9B active": a Mamba-2 mixer of the Tiny is 14,642,576 parameters
    (in_proj 1,536 -> 2 x 3,072 + 2 x 128 + 48, the convolution over 3,328 channels with its
    4 taps and bias, dt_bias, A_log and D per head, the gated norm, out_proj), by hand; its
    attention sits in layers 5, 15, 25, 35."""
    tiny, small = (model_from_hf_dict(c, "g/config.json") for c in (GRANITE_H_TINY,
                                                                     GRANITE_H_SMALL))
    inner, conv = 3072, 3072 + 2 * 128
    assert tiny.mamba2_params() == 1536 * (2 * inner + 256 + 48) + conv * 5 + 3 * 48 + inner \
        + inner * 1536 == 14_642_576
    assert tiny.attn_layers == (5, 15, 25, 35) and tiny.mamba_layers() == 36
    assert tiny.param_count() == pytest.approx(7e9, rel=0.01)
    assert small.param_count() == pytest.approx(32e9, rel=0.01)
    assert small.active_param_count() == pytest.approx(9e9, rel=0.03)
    assert (tiny.nope_every, tiny.shared_ff, tiny.n_experts) == (1, 1024, 64)
    dense = model_from_hf_dict({**GRANITE_H_TINY, "num_local_experts": 0}, "g")
    assert (dense.n_experts, dense.d_ff) == (1, 1024)   # the shared MLP alone (H-Micro)


def test_chunked_ssd_prefill_by_hand():
    """A prefill of 300 tokens in 256-token chunks (2 chunks, the second padded as the
    kernels pad it), 8 heads of 32 channels, 16 states, 1 group: C B^T 2 Q^2 N per chunk and
    group, (L o C B^T) X 2 Q^2 P per chunk and head, B^T X and C h 2 Q P N each; the
    convolution over 8 x 32 + 2 x 16 channels; attention only in layer 1."""
    m = _tiny()
    b, k, q, h, p, n = 2, 2, 256, 8, 32, 16
    ops = {op.name: op for op in trace_model(m, Scenario(batch=b, prompt_len=300,
                                                         gen_len=2)).ops
           if op.phase == "prefill" and op.layer == 0}
    assert ops["ssd_cb"].flops == 2 * b * k * q * q * n
    assert ops["ssd_diag"].flops == 2 * b * k * h * q * q * p
    assert ops["ssd_states"].flops == ops["ssd_off"].flops == 2 * b * k * h * q * p * n
    assert ops["in_proj"].flops == 2 * b * 300 * 256 * (2 * h * p + 2 * n + h)
    assert ops["conv1d"].flops == 2 * b * 300 * (h * p + 2 * n) * 4
    assert "qkv_proj" not in ops and {"ssd_cb", "ssd_diag"} <= {
        o.name for o in ops.values() if o.kind == "matmul"}
    layer1 = {op.name for op in trace_model(m, Scenario(batch=1, prompt_len=8, gen_len=2)).ops
              if op.layer == 1}
    assert "qkv_proj" in layer1 and "in_proj" not in layer1


def test_decode_state_and_cache_by_hand():
    """A decode step reads and writes each head's 32 x 16 fp32 state once (2 x 8 x 32 x 16 x
    4 B for 2 requests) and shifts 3 conv rows; the cache at 304 tokens is the one attention
    layer's K and V (2 x 2 heads x 64 x 2 B a token) plus, per request, 3 Mamba layers' states
    (8 x 32 x 16 x 4 B) and conv rows (3 x (8 x 32 + 2 x 16) x 2 B), whatever the length."""
    m = _tiny()
    sc = Scenario(batch=2, prompt_len=300, gen_len=4)
    step = next(op for op in trace_model(m, sc).ops
                if op.phase == "decode" and op.layer == 0 and op.name == "ssd_step")
    state = 2 * 8 * 32 * 16 * 4
    assert state * 2 <= step.bytes <= state * 2 + 4096
    # per state element dt x B x (2), exp(dt A) h (1), + dt x B (1), y's h C and sum (2);
    # per head exp(dt A) (2)
    assert step.flops == 6 * 2 * 8 * 32 * 16 + 2 * 2 * 8
    per_request = 3 * (8 * 32 * 16 * 4 + 3 * (8 * 32 + 2 * 16) * 2)
    assert kv_cache_bytes(m, sc) == 2 * 2 * 64 * 2 * 304 * 2 + 2 * per_request
    longer = Scenario(batch=2, prompt_len=3000, gen_len=4)
    assert kv_cache_bytes(m, longer) - kv_cache_bytes(m, sc) == 2 * 2 * 64 * 2 * 2700 * 2


def test_tensor_parallel_splits_the_heads():
    """At TP 2 each rank runs 4 of the 8 heads (in_proj's outputs halve but for the group's
    B and C, replicated below TP) and all-reduces out_proj's partial sums."""
    m = _tiny()
    ops = {op.name: op for op in trace_model(m, Scenario(batch=1, prompt_len=8, gen_len=2,
                                                         tp=2)).ops
           if op.phase == "prefill" and op.layer == 0}
    assert ops["in_proj"].flops / ops["in_proj"].shards == 2 * 8 * 256 * (2 * 128 + 32 + 4)
    assert "allreduce_mamba" in ops
    with pytest.raises(WorkloadError, match="ssm_heads 8, not divisible by tensor parallelism"):
        trace_model(_tiny(n_heads=12, n_kv_heads=3, d_ff=3 * 128, d_model=3 * 96),
                    Scenario(tp=3))


def test_long_decodes_fold(monkeypatch):
    """A hybrid's long decode folds (its Mamba-2 ops do not grow with the KV length): the
    folded trace has the op-by-op trace's FLOPs op for op, its run the unfolded run's
    metrics."""
    from test_hf_windows_shared import _folds_like_op_by_op

    want = _folds_like_op_by_op(_tiny(), Scenario(batch=2, prompt_len=6, gen_len=20),
                                monkeypatch)
    assert {op.name for op in want if op.layer == 0 and op.phase == "decode"} >= {
        "ssd_step", "conv_state", "in_proj", "out_proj"}


def test_refusals_in_one_line():
    """What does not model Mamba-2 layers refuses them in one line: the NPU+PIM decode
    stages' layer model, ``xpusim check``, fine-tuning; a ``layer_types`` entry other than
    mamba/attention, and Mamba heads that do not tile the inner width, name the field."""
    from arch import load_arch
    from sim.devices.base import SimError
    from sim.functional.layer import CheckSpec, check_layer
    from sim.serving.layer_costs import LayerCosts
    from workloads.training import Training, trace_training

    m = model_from_hf_dict(GRANITE_H_TINY, "g")
    with pytest.raises(SimError, match="mixes recurrent"):
        LayerCosts(None, m, 1)   # the NPU+PIM decode stages' per-layer model
    with pytest.raises(SimError, match="layers are priced but not checked"):
        check_layer(load_arch("h100"), m, CheckSpec(batch=1, prompt=8))
    with pytest.raises(WorkloadError, match="fine-tuning traces attention layers only"):
        trace_training(m, Scenario(batch=1, prompt_len=8, gen_len=1), Training())
    with pytest.raises(WorkloadError) as exc:
        model_from_hf_dict({**GRANITE_H_TINY, "layer_types": ["mamba"] * 39 + ["ssm"]}, "g")
    assert exc.value.path == "layer_types"
    with pytest.raises(WorkloadError) as exc:
        model_from_hf_dict({**GRANITE_H_TINY, "mamba_d_head": 63}, "g")
    assert exc.value.path == "mamba_d_head"
    with pytest.raises(WorkloadError, match="attn_layers"):
        _tiny(attn_layers=(4,))
    assert math.isfinite(m.param_count())


# nvidia/Nemotron-H-8B-Base-8K (NVIDIA-NeMo/Megatron-Bridge's copy of its config.json in
# test_nemotron_h_bridge.py) and NVIDIA-Nemotron-3-Nano-30B-A3B-BF16 (ai-dynamo/aiconfigurator
# model_configs @ 095f58a)
NEMOTRON_H_8B = {
    "model_type": "nemotron_h", "attention_head_dim": 128, "chunk_size": 128, "conv_kernel": 4,
    "expand": 2, "hidden_size": 4096,
    "hybrid_override_pattern": "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-",
    "intermediate_size": 21504, "mamba_head_dim": 64, "mamba_num_heads": 128,
    "max_position_embeddings": 8192, "mlp_hidden_act": "relu2", "n_groups": 8,
    "num_attention_heads": 32, "num_hidden_layers": 52, "num_key_value_heads": 8,
    "ssm_state_size": 128, "tie_word_embeddings": False, "use_bias": False,
    "use_conv_bias": True, "vocab_size": 131072}
NEMOTRON_3_NANO = {
    "model_type": "nemotron_h", "chunk_size": 128, "conv_kernel": 4, "head_dim": 128,
    "hidden_size": 2688,
    "hybrid_override_pattern": "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME",
    "intermediate_size": 1856, "mamba_head_dim": 64, "mamba_num_heads": 64,
    "max_position_embeddings": 262144, "mlp_hidden_act": "relu2",
    "moe_intermediate_size": 1856, "moe_shared_expert_intermediate_size": 3712, "n_group": 1,
    "n_groups": 8, "n_routed_experts": 128, "n_shared_experts": 1, "num_attention_heads": 32,
    "num_experts_per_tok": 6, "num_hidden_layers": 52, "num_key_value_heads": 2,
    "ssm_state_size": 128, "tie_word_embeddings": False, "use_bias": False,
    "use_conv_bias": True, "vocab_size": 131072}


def test_nemotron_h_blocks_by_hand():
    """Nemotron-H (HF/vLLM NemotronH): a block per pattern character, each with its RMSNorm:
    M a Mamba-2 mixer (128 heads x 64, 8 groups of 128 states), * attention (no RoPE), - an
    ungated squared-ReLU MLP, E experts; the 8B's 24 M, 4 *, 24 - blocks count 8,100,852,736
    ("8B"), by hand per block; Nemotron 3 Nano's 23 M, 6 *, 23 E: 31.58B ("31.6B"), 3.58B
    active ("3.6B")."""
    h8 = model_from_hf_dict(NEMOTRON_H_8B, "n/config.json")
    d, inner, bc = 4096, 128 * 64, 2 * 8 * 128
    mamba = d + d * (2 * inner + bc + 128) + (inner + bc) * 5 + 3 * 128 + inner + inner * d
    attn = d + d * 128 * (2 * 32 + 2 * 8)
    mlp = d + 2 * d * 21504
    assert h8.param_count() == 24 * mamba + 4 * attn + 24 * mlp + 2 * 131072 * d + d \
        == 8_100_852_736
    assert (h8.mamba_layers(), h8.kv_layers(), h8.head_dim) == (24, 4, 128)
    nano = model_from_hf_dict(NEMOTRON_3_NANO, "n/config.json")
    assert nano.param_count() == pytest.approx(31.6e9, rel=0.002)
    assert nano.active_param_count() == pytest.approx(3.6e9, rel=0.01)
    ops = trace_model(nano.with_layers(6), Scenario(batch=1, prompt_len=8, gen_len=2)).ops
    names = {i: [op.name for op in ops if op.layer == i and op.phase == "prefill"]
             for i in range(6)}
    assert names[0][:2] == ["ln_mamba", "in_proj"] and "ffn_up" not in names[0]
    assert names[1][:2] == ["ln_ffn", "router"] and "in_proj" not in names[1]
    assert names[5][:2] == ["ln_attn", "qkv_proj"] and "rope" not in names[5] \
        and "ffn_up" not in names[5]
    up = next(op for op in ops if op.layer == 1 and op.name == "shared_up")
    assert up.flops == 2 * 8 * 2688 * 3712   # ungated: 3,712 outputs, not twice that


def test_nemotron_h_cache_estimate_and_fold(monkeypatch):
    """Only the attention blocks keep keys and values, the Mamba-2 blocks a state; the op
    count the run limit estimates from one- and two-block models of each kind is the trace's;
    a long decode folds."""
    from test_hf_windows_shared import _folds_like_op_by_op

    from workloads.limits import estimate_ops
    from workloads.tracer import kv_bytes_per_token

    h8 = model_from_hf_dict(NEMOTRON_H_8B, "n")
    assert kv_bytes_per_token(h8, "fp16") == 2 * 4 * 8 * 128 * 2
    small = model_from_hf_dict({**NEMOTRON_3_NANO, "hidden_size": 256,
                                "hybrid_override_pattern": "ME*-ME",
                                "num_hidden_layers": 6, "n_routed_experts": 8,
                                "num_experts_per_tok": 2, "moe_intermediate_size": 64,
                                "moe_shared_expert_intermediate_size": 128,
                                "intermediate_size": 256, "num_attention_heads": 4,
                                "num_key_value_heads": 2, "head_dim": 64, "mamba_num_heads": 8,
                                "mamba_head_dim": 32, "ssm_state_size": 16, "n_groups": 2,
                                "vocab_size": 1000}, "n")
    sc = Scenario(batch=2, prompt_len=12, gen_len=5)
    assert estimate_ops(small, sc) == len(trace_model(small, sc, compact=False).ops)
    # its "-" block is a dense MLP (intermediate_size 256), not the experts
    mlp = {op.name: op for op in trace_model(small, sc).ops
           if op.layer == 3 and op.phase == "prefill"}
    assert "router" not in mlp and mlp["ffn_up"].flops == 2 * 24 * 256 * 256
    # the head width as the file gives it (Nano-9B-v2: 128 where 4,480 / 40 = 112)
    assert model_from_hf_dict({**NEMOTRON_H_8B, "attention_head_dim": 64}, "n").head_dim == 64
    _folds_like_op_by_op(small, Scenario(batch=2, prompt_len=6, gen_len=20), monkeypatch)
    with pytest.raises(WorkloadError) as exc:
        model_from_hf_dict({**NEMOTRON_H_8B, "hybrid_override_pattern": "M-M"}, "n")
    assert exc.value.path == "hybrid_override_pattern"


# Qwen/Qwen3-Next-80B-A3B-Instruct config.json (a model-info report dumping the checkpoint's
# raw file; identical to the Thinking config ai-dynamo/aiconfigurator vendored @ 1b7cfb10)
QWEN3_NEXT = {
    "model_type": "qwen3_next", "decoder_sparse_step": 1, "full_attention_interval": 4,
    "head_dim": 256, "hidden_act": "silu", "hidden_size": 2048, "intermediate_size": 5120,
    "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_num_key_heads": 16,
    "linear_num_value_heads": 32, "linear_value_head_dim": 128,
    "max_position_embeddings": 262144, "mlp_only_layers": [], "moe_intermediate_size": 512,
    "norm_topk_prob": True, "num_attention_heads": 16, "num_experts": 512,
    "num_experts_per_tok": 10, "num_hidden_layers": 48, "num_key_value_heads": 2,
    "partial_rotary_factor": 0.25, "shared_expert_intermediate_size": 512,
    "tie_word_embeddings": False, "vocab_size": 151936}


def test_qwen3_next_counts_the_checkpoint():
    """Qwen3-Next-80B-A3B: its safetensors hold 81,324,862,720 parameters (the same report):
    ours without the multi-token-prediction layer plus that layer (a full-attention MoE layer,
    its 2d -> d projection and three norms) is exactly that; a Gated DeltaNet layer is
    in_proj_qkvz 2,048 -> 2 x 2,048 + 2 x 4,096, in_proj_ba -> 64, the convolution over q, k,
    v (8,192 x 4, no bias), dt_bias and A_log (32 each), the norm (128), out_proj 4,096 -> 2,048;
    the attention's query projection is doubled for its gate; 3.56B active without the input
    embedding ("3B activated", model card)."""
    q = model_from_hf_dict(QWEN3_NEXT, "q/config.json")
    d = 2048
    assert q.gdn_params() == d * (2 * 2048 + 2 * 4096 + 64) + 8192 * 4 + 64 + 128 + 4096 * d
    mtp = q.layer_params() + 2 * d * d + 3 * d
    assert q.param_count() + mtp == 81_324_862_720
    assert q.attn_layers == tuple(range(3, 48, 4)) and q.rotary_dim == 64
    assert q.attention_params() == d * 4096 * 2 + 2 * d * 512 + 4096 * d
    assert q.active_param_count() - 151936 * d == pytest.approx(3.56e9, rel=0.002)


def test_gated_deltanet_by_hand():
    """A 100-token prefill in 64-token chunks (2, the second padded) of 32 value heads of
    128 x 128 (keys repeated from 16 heads): beta K K^T and Q K^T 2 C^2 d_k a chunk and head,
    the WY products 2 C^2 (d_k + d_v), W S and Q S 2 C d_k d_v, the scores times the values
    2 C^2 d_v, the state update 2 C d_k d_v; a decode step reads and writes the fp32 state
    (32 x 128 x 128 x 4 B a request; k, v, q in and the output out) and costs 7 operations an
    element; the cache holds the
    12 attention layers' K and V plus the 36 states."""
    q = model_from_hf_dict(QWEN3_NEXT, "q")
    b, c, k, h, dk, dv = 1, 64, 2, 32, 128, 128
    ops = {op.name: op for op in trace_model(q.with_layers(4), Scenario(
        batch=b, prompt_len=100, gen_len=3)).ops if op.layer == 0}
    per = b * k * h
    assert ops["gdn_kk"].flops == ops["gdn_qk"].flops == per * 2 * c * c * dk
    assert ops["gdn_wu"].flops == per * 2 * c * c * (dk + dv)
    assert ops["gdn_ws"].flops == ops["gdn_qs"].flops == ops["gdn_state"].flops \
        == per * 2 * c * dk * dv
    assert ops["gdn_av"].flops == per * 2 * c * c * dv
    step = next(op for op in trace_model(q.with_layers(4), Scenario(
        batch=2, prompt_len=100, gen_len=3)).ops if op.name == "gdn_step")
    state = 2 * h * dk * dv * 4
    vec = 2 * h * 128 * 2   # one request's k, v, q or output vectors (fp16)
    assert step.bytes == 2 * state + 4 * vec + 2 * (2 * h * 4)   # + its decay g and beta
    assert step.flops == 7 * 2 * h * dk * dv + 2 * 2 * h * dv   # + the per-value beta (v - m)
    sc = Scenario(batch=1, prompt_len=1000, gen_len=2)
    per_request = 36 * (h * dk * dv * 4 + (2 * 2048 + 4096) * 3 * 2)
    assert kv_cache_bytes(q, sc) == 2 * 12 * 2 * 256 * 2 * 1002 + per_request
    gate = [op for op in trace_model(q.with_layers(4), Scenario(batch=1, prompt_len=8,
                                                                gen_len=2)).ops
            if op.layer == 3 and op.phase == "prefill"]
    names = [op.name for op in gate]
    assert names.index("attn_gate") == names.index("o_proj") - 1
    qkv = next(op for op in gate if op.name == "qkv_proj")
    assert qkv.flops == 2 * 8 * d_model_of(q) * (2 * 16 * 256 + 2 * 2 * 256)


def d_model_of(m: ModelConfig) -> int:
    return m.d_model


def test_qwen3_next_folds_and_qwen35_nests(monkeypatch):
    """A small Qwen3-Next-shaped model's long decode folds; Qwen3.5's config nests the same
    decoder in ``text_config`` (``qwen3_5_moe_text``, its ``layer_types`` listed)."""
    from test_hf_windows_shared import _folds_like_op_by_op

    small = model_from_hf_dict({**QWEN3_NEXT, "hidden_size": 256, "num_hidden_layers": 4,
                                "num_experts": 8, "num_experts_per_tok": 2,
                                "moe_intermediate_size": 64,
                                "shared_expert_intermediate_size": 64, "head_dim": 64,
                                "num_attention_heads": 4, "linear_num_key_heads": 2,
                                "linear_num_value_heads": 4, "linear_key_head_dim": 32,
                                "linear_value_head_dim": 32, "vocab_size": 1000}, "q")
    _folds_like_op_by_op(small, Scenario(batch=2, prompt_len=6, gen_len=20), monkeypatch)
    text = {**QWEN3_NEXT, "model_type": "qwen3_5_moe_text",
            "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 12}
    nested = model_from_hf_dict({"model_type": "qwen3_5_moe", "text_config": text}, "q")
    assert nested.param_count() == model_from_hf_dict(QWEN3_NEXT, "q").param_count()


# Qwen/Qwen3.5-27B's config.json as pasted verbatim in ModelCloud/GPTQModel issue 2559 (its
# text_config; the vision tower is not read): no text-level tie_word_embeddings, the
# whole model's false
QWEN35_27B_TEXT = {
    "model_type": "qwen3_5_text", "attention_bias": False, "attention_dropout": 0.0,
    "attn_output_gate": True, "dtype": "bfloat16", "eos_token_id": 248044,
    "full_attention_interval": 4, "head_dim": 256, "hidden_act": "silu",
    "hidden_size": 5120, "initializer_range": 0.02, "intermediate_size": 17408,
    "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 16,
    "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_num_key_heads": 16,
    "linear_num_value_heads": 48, "linear_value_head_dim": 128,
    "max_position_embeddings": 262144, "mlp_only_layers": [], "mtp_num_hidden_layers": 1,
    "mtp_use_dedicated_embeddings": False, "num_attention_heads": 24,
    "num_hidden_layers": 64, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
    "use_cache": True, "vocab_size": 248320, "mamba_ssm_dtype": "float32",
    "rope_parameters": {"mrope_interleaved": True, "mrope_section": [11, 11, 10],
                        "rope_type": "default", "rope_theta": 10000000,
                        "partial_rotary_factor": 0.25}}
QWEN35_27B = {"model_type": "qwen3_5", "architectures": ["Qwen3_5ForConditionalGeneration"],
              "text_config": QWEN35_27B_TEXT, "tie_word_embeddings": False,
              "vision_config": {"model_type": "qwen3_5", "depth": 27, "hidden_size": 1152}}


@pytest.mark.parametrize("shape,published", [
    # (hidden, MLP, layers, heads, KV heads, DeltaNet value heads, tied), the language model's
    # parameters in the GGUF conversions (llama.cpp): 26.9B, 8.96B, 4.21B, 1.89B, 758M. The
    # shapes: the 27B's official config, the others' re-uploads and fixtures (helper-read)
    ((5120, 17408, 64, 24, 4, 48, False), 26.9e9),
    ((4096, 12288, 32, 16, 4, 32, False), 8.96e9),
    ((2560, 9216, 32, 16, 4, 32, True), 4.21e9),
    ((2048, 6144, 24, 8, 2, 16, True), 1.89e9),
    ((1024, 3584, 24, 8, 2, 16, True), 758e6),
])
def test_qwen35_dense_counts(shape, published):
    """Dense Qwen3.5 (``qwen3_5`` nesting ``qwen3_5_text``): Qwen3-Next's layers with a gated
    MLP in every layer and no experts; its language model against the published counts (the
    0.8B within 0.8%: 752.4M against "758M"; the others within 0.3%)."""
    h, ff, layers, heads, kv, v_heads, tied = shape
    text = {**QWEN35_27B_TEXT, "hidden_size": h, "intermediate_size": ff,
            "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv, "linear_num_value_heads": v_heads,
            "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * (layers // 4),
            "tie_word_embeddings": tied}
    m = model_from_hf_dict({**QWEN35_27B, "text_config": text}, "q/config.json")
    assert (m.n_experts, m.d_ff, m.tied_embeddings) == (1, ff, tied)
    assert m.param_count() == pytest.approx(published, rel=0.008)


def test_qwen35_27b_by_hand():
    """Qwen3.5-27B's decoder, by hand: 48 DeltaNet layers (q/k/v/z/b/a projections 16,480 x
    5,120, a 4-tap convolution of 10,240 channels, dt bias and A per value head, a 128-wide
    gated norm, the 6,144 -> 5,120 output), 16 attention layers (a doubled query 2 x 24 x 256,
    4 key and 4 value heads, a gain per query and key head channel), a 17,408-wide gated MLP
    and two norms in each, untied 248,320-token tables: 26,895,998,464. The whole model's
    ``tie_word_embeddings`` applies where its text_config does not say; RoPE on a quarter of
    each head, read from ``rope_parameters``."""
    h, v_dim, k_dim = 5120, 48 * 128, 16 * 128
    deltanet = (2 * k_dim + 2 * v_dim + 2 * 48) * h + (2 * k_dim + v_dim) * 4 + 2 * 48 + 128 \
        + v_dim * h
    attention = 2 * 24 * 256 * h + 2 * 4 * 256 * h + h * 24 * 256 + 2 * 256
    per_layer = 3 * h * 17408 + 2 * h
    m = model_from_hf_dict(QWEN35_27B, "q/config.json")
    assert m.param_count() == 48 * deltanet + 16 * attention + 64 * per_layer \
        + 2 * 248320 * h + h == 26_895_998_464
    assert (m.attn_layers, m.rotary_dim, m.attn_gate) == (tuple(range(3, 64, 4)), 64, True)
    tied = model_from_hf_dict({**QWEN35_27B, "tie_word_embeddings": True}, "q")
    assert m.param_count() - tied.param_count() == 248320 * h
    half = {**QWEN35_27B_TEXT, "rope_parameters": {"partial_rotary_factor": 0.5}}
    assert model_from_hf_dict({**QWEN35_27B, "text_config": half}, "q").rotary_dim == 128
    with pytest.raises(WorkloadError, match="rope_parameters.partial_rotary_factor"):
        model_from_hf_dict({**QWEN35_27B_TEXT, "rope_parameters": {
            "partial_rotary_factor": 2}}, "q")
