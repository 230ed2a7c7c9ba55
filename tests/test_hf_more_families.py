"""More config.json families: GLM-4 (glm, glm4), StableLM 2, MPT, OLMo 1, InternLM3, EXAONE
4.0, Arcee AFM, Hunyuan (dense, MoE), dots.llm1, Ling (bailing_moe), and GPT-NeoX/Pythia's
parallel residual: parameter counts against the published ones (or the checkpoint's bytes),
and what each family's layer traces differently, by hand."""

from __future__ import annotations

import pytest

from workloads.errors import WorkloadError
from workloads.hf_config import model_from_hf_dict
from workloads.scenario import Scenario
from workloads.tracer import trace_model

# THUDM/glm-4-9b-chat-hf's config.json (HF blame @ c7f73fd); 4 safetensors shards of 18.81 GB bf16
GLM4_9B = {
    "model_type": "glm", "attention_bias": True, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 13696, "max_position_embeddings": 131072,
    "num_attention_heads": 32, "num_hidden_layers": 40, "num_key_value_heads": 2,
    "tie_word_embeddings": False, "vocab_size": 151552}
# GLM-4-32B-0414's shape as a fine-tune's config.json carries it (Edens-Gate/GLM-v2-lora; the
# official file was not reachable); "32 billion parameters"
GLM4_32B_0414 = {
    "model_type": "glm4", "attention_bias": False, "head_dim": 128, "hidden_size": 6144,
    "intermediate_size": 23040, "max_position_embeddings": 32768, "num_attention_heads": 48,
    "num_hidden_layers": 61, "num_key_value_heads": 2, "partial_rotary_factor": 0.5,
    "tie_word_embeddings": False, "vocab_size": 151552}
# stabilityai/stablelm-2-zephyr-1_6b's config.json (HF @ e5559fe; stablelm-2-1_6b's shape);
# its 3,289,069,520-byte model.safetensors less a 38,864-byte header is 1,644,515,328 x 2 B
STABLELM2_16B = {
    "model_type": "stablelm", "hidden_act": "silu", "hidden_size": 2048,
    "intermediate_size": 5632, "max_position_embeddings": 4096, "num_attention_heads": 32,
    "num_hidden_layers": 24, "num_key_value_heads": 32, "partial_rotary_factor": 0.25,
    "tie_word_embeddings": False, "use_qkv_bias": True, "vocab_size": 100352}
# stabilityai/stablelm-2-12b's config.json (HF @ 74dd3f5)
STABLELM2_12B = {
    "model_type": "stablelm", "hidden_act": "silu", "hidden_size": 5120,
    "intermediate_size": 13824, "max_position_embeddings": 4096, "num_attention_heads": 32,
    "num_hidden_layers": 40, "num_key_value_heads": 8, "partial_rotary_factor": 0.25,
    "qk_layernorm": True, "tie_word_embeddings": False, "use_norm_bias": False,
    "use_parallel_residual": True, "use_qkv_bias": False, "vocab_size": 100352}
# mosaicml/mpt-7b(-instruct)'s config.json (as quoted by MLC's MPT README and re-exports)
MPT_7B = {
    "model_type": "mpt", "attn_config": {"alibi": True, "alibi_bias_max": 8, "clip_qkv": None,
                                         "attn_type": "multihead_attention", "qk_ln": False},
    "d_model": 4096, "expansion_ratio": 4, "max_seq_len": 2048, "n_heads": 32, "n_layers": 32,
    "no_bias": True, "vocab_size": 50432}
# allenai/OLMo-1B-hf's config.json (onnx-community's copy with its _name_or_path); 4.71 GB fp32
OLMO_1B = {
    "model_type": "olmo", "attention_bias": False, "clip_qkv": None, "hidden_act": "silu",
    "hidden_size": 2048, "intermediate_size": 8192, "max_position_embeddings": 2048,
    "num_attention_heads": 16, "num_hidden_layers": 16, "num_key_value_heads": 16,
    "tie_word_embeddings": True, "vocab_size": 50304}
# internlm/internlm3-8b-instruct's config.json (HF blame @ 4b3bebb; "8B")
INTERNLM3_8B = {
    "model_type": "internlm3", "bias": False, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 10240, "max_position_embeddings": 32768,
    "num_attention_heads": 32, "num_hidden_layers": 48, "num_key_value_heads": 2,
    "qkv_bias": False, "tie_word_embeddings": False, "vocab_size": 128512}
# EXAONE-4.0-32B's config.json as TensorRT-LLM's test copies it (its 4 layers and window 4 put
# back to the 64 and 4,096 its comments give); the README's "32.0B"
EXAONE4_32B = {
    "model_type": "exaone4", "head_dim": 128, "hidden_act": "silu", "hidden_size": 5120,
    "intermediate_size": 27392, "max_position_embeddings": 131072, "num_attention_heads": 40,
    "num_hidden_layers": 64, "num_key_value_heads": 8, "sliding_window": 4096,
    "sliding_window_pattern": 4, "tie_word_embeddings": False, "vocab_size": 102400}
# a fine-tune of arcee-ai/AFM-4.5B (Delta-Vector/Austral-AFM-SFT's config.json); the hub's "4.6B"
ARCEE_AFM = {
    "model_type": "arcee", "attention_bias": False, "head_dim": 128, "hidden_act": "relu2",
    "hidden_size": 2560, "intermediate_size": 18432, "max_position_embeddings": 65536,
    "mlp_bias": False, "num_attention_heads": 20, "num_hidden_layers": 36,
    "num_key_value_heads": 4, "tie_word_embeddings": False, "vocab_size": 128005}
# Hunyuan-A13B's config.json as two test fixtures copy it ("80B total, 13B activated")
HUNYUAN_A13B = {
    "model_type": "hunyuan_v1_moe", "attention_bias": False, "attention_head_dim": 128,
    "hidden_size": 4096, "intermediate_size": 3072, "moe_intermediate_size": [3072] * 32,
    "moe_topk": [8] * 32, "num_attention_heads": 32, "num_experts": 64,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "num_shared_expert": [1] * 32,
    "tie_word_embeddings": True, "use_cla": False, "use_mixed_mlp_moe": True,
    "use_qk_norm": True, "vocab_size": 128167}
# rednote-hilab/dots.llm1.base's config.json (HF refs/pr/4); "14B activated and 142B total"
DOTS1 = {
    "model_type": "dots1", "attention_bias": False, "first_k_dense_replace": 1,
    "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 10944,
    "max_position_embeddings": 32768, "moe_intermediate_size": 1408, "n_routed_experts": 128,
    "n_shared_experts": 2, "num_attention_heads": 32, "num_experts_per_tok": 6,
    "num_hidden_layers": 62, "num_key_value_heads": 32, "tie_word_embeddings": False,
    "vocab_size": 152064}
# inclusionAI/Ling-Coder-lite's config.json (HF refs/pr/1; Ling-lite's family): "Ling-Lite has
# 16.8 billion parameters with 2.75 billion activated parameters"
LING_LITE = {
    "model_type": "bailing_moe", "first_k_dense_replace": 0, "hidden_act": "silu",
    "hidden_size": 2048, "intermediate_size": 5632, "max_position_embeddings": 4096,
    "moe_intermediate_size": 1408, "num_experts": 64, "num_shared_experts": 2,
    "num_attention_heads": 16, "num_experts_per_tok": 6, "num_hidden_layers": 28,
    "num_key_value_heads": 4, "tie_word_embeddings": False, "use_bias": False,
    "use_qkv_bias": False, "vocab_size": 126464}
# EleutherAI/pythia-6.9b's shape (the Pythia paper's Table: 6,857,302,016 parameters)
PYTHIA_69B = {
    "model_type": "gpt_neox", "hidden_size": 4096, "num_hidden_layers": 32,
    "num_attention_heads": 32, "intermediate_size": 16384, "vocab_size": 50432,
    "max_position_embeddings": 2048, "rotary_pct": 0.25, "use_parallel_residual": True,
    "tie_word_embeddings": False}


def _read(config: dict):
    return model_from_hf_dict(config, "m/config.json")


def _ops(model, layer: int = 0, phase: str = "prefill", **sc) -> dict:
    scenario = Scenario(**{"batch": 1, "prompt_len": 8, "gen_len": 2, **sc})
    return {op.name: op for op in trace_model(model.with_layers(max(layer + 1, 1)),
                                              scenario).ops
            if op.layer == layer and op.phase == phase}


@pytest.mark.parametrize("config,total,active,rel", [
    (GLM4_9B, 9_399_951_360, None, 0),
    (GLM4_32B_0414, 32e9, None, 0.02),
    (STABLELM2_16B, 1_644_515_328, None, 0),
    (MPT_7B, 6.65e9, None, 0.001),
    (OLMO_1B, 4.71e9 / 4, None, 0.002),
    # InternLM3 ("8B"): by hand, 48 x (2 x 4,096^2 + 2 x 4,096 x 256 + 3 x 4,096 x 10,240
    # + 2 x 4,096) + 2 x 128,512 x 4,096 + 4,096
    (INTERNLM3_8B, 48 * (2 * 4096**2 + 2 * 4096 * 256 + 3 * 4096 * 10240 + 2 * 4096)
     + 2 * 128512 * 4096 + 4096, None, 0),
    (EXAONE4_32B, 32.0e9, None, 0.002),
    (ARCEE_AFM, 4.6e9, None, 0.01),
    (HUNYUAN_A13B, 80e9, 13e9, 0.02),
    (DOTS1, 142e9, 14e9, 0.006),
    (LING_LITE, 16.8e9, 2.75e9, 0.002),
    (PYTHIA_69B, 6_857_302_016, None, 0),
])
def test_parameter_counts(config, total, active, rel):
    """Each family's count against the published one (model cards, the Pythia paper, the
    checkpoint's bytes; exact where the figure is)."""
    m = _read(config)
    assert m.param_count() == pytest.approx(total, rel=rel)
    if active is not None:
        assert m.active_param_count() == pytest.approx(active, rel=0.02)


def test_glm_layers_by_hand():
    """GLM-4: q/k/v biases, none on o_proj (glm-4-9b-chat-hf: 9,399,951,360 = 40 layers of
    203,960,832 + both 151,552 x 4,096 tables + the final norm), RoPE on half of each head;
    GLM-4-0414 adds a norm after attention and after the MLP (2 x 6,144 a layer)."""
    m = _read(GLM4_9B)
    d, q, kv = 4096, 32 * 128, 2 * 128
    layer = d * q + 2 * d * kv + q + 2 * kv + q * d + 3 * d * 13696 + 2 * d
    assert m.param_count() == 40 * layer + 2 * 151552 * d + d
    assert (m.rotary_dim, m.qkv_bias, m.bias) == (64, True, False)
    assert _ops(m)["rope"].flops == pytest.approx(8 * (32 + 2) * 64 * 3)
    g4 = _read(GLM4_32B_0414)
    assert g4.param_count() - _read({**GLM4_32B_0414, "model_type": "glm"}).param_count() \
        == 61 * 2 * 6144
    assert {"ln_attn_post", "ln_ffn_post"} <= set(_ops(g4))


def test_stablelm_mpt_olmo_by_hand():
    """StableLM 2 12B: one LayerNorm feeding attention and MLP side by side, a gain per query
    and key head ((32 + 8) x 160 a layer), RoPE on 40 of 160 channels; MPT: ALiBi (no RoPE
    op), weight-only LayerNorms, an ungated GELU MLP 4 x 4,096 wide, the LM head tied
    (6,649,286,656 by hand); OLMo 1: LayerNorms without any parameter."""
    s12 = _read(STABLELM2_12B)
    assert (s12.block, s12.rotary_dim, s12.qk_norm) == ("parallel", 40, "full")
    assert s12.param_count() == 12_143_185_920
    assert "ln_ffn" not in _ops(s12) and "qk_norm" in _ops(s12)
    mpt = _read(MPT_7B)
    d = 4096
    assert mpt.param_count() == 32 * (4 * d * d + 8 * d * d + 2 * d) + 50432 * d + d
    ops = _ops(mpt)
    assert "rope" not in ops and ops["ffn_up"].flops == 2 * 8 * d * 4 * d
    olmo = _read(OLMO_1B)
    layer = 4 * 2048 * 2048 + 3 * 2048 * 8192
    assert olmo.norm_params() == 0 and olmo.param_count() == 16 * layer + 50304 * 2048


def test_exaone4_hunyuan_dots_ling_by_hand():
    """EXAONE 4.0 32B: every 4th layer global and without RoPE, the others windowed to 4,096
    keys (48 of 64), a gain per query/key head; Arcee: an ungated squared-ReLU MLP (2 x 2,560
    x 18,432 a layer); Hunyuan-A13B: 8 of 64 experts plus a shared MLP of 3,072 in every layer;
    dots.llm1: layer 0 dense (10,944), the rest 6 of 128 experts and a 2 x 1,408 shared MLP;
    Ling: every layer experts."""
    ex = _read(EXAONE4_32B)
    assert (ex.windowed_layers(), ex.global_every, ex.nope_every, ex.qk_norm) == \
        (48, 4, 4, "head")
    assert "rope" in _ops(ex, 0) and "rope" not in _ops(ex, 3)
    assert _read({**EXAONE4_32B, "sliding_window_pattern": "LLLG"}).global_every == 4
    assert _read({**EXAONE4_32B, "sliding_window": None}).windowed_layers() == 0
    arcee = _ops(_read(ARCEE_AFM))
    assert arcee["ffn_up"].flops == 2 * 8 * 2560 * 18432 and "ffn_gate" not in arcee
    hy = _read(HUNYUAN_A13B)
    assert (hy.n_experts, hy.top_k, hy.d_ff, hy.shared_ff, hy.head_dim) == (64, 8, 3072, 3072,
                                                                            128)
    dots = _read(DOTS1)
    assert (dots.first_dense, dots.dense_ff, dots.shared_ff, dots.router_bias) == \
        (1, 10944, 2816, True)
    assert "router" not in _ops(dots, 0) and "router" in _ops(dots, 1)
    ling = _read(LING_LITE)
    assert (ling.first_dense, ling.shared_ff, ling.n_experts, ling.top_k) == (0, 2816, 64, 6)


def test_pythia_parallel_residual():
    """GPT-NeoX / Pythia: x + attn(ln1(x)) + mlp(ln2(x)) (two norms of one input, one residual
    add of three), RoPE on a quarter of each head; ``use_parallel_residual`` false is the
    sequential block."""
    m = _read(PYTHIA_69B)
    assert (m.block, m.rotary_dim) == ("parallel2", 32)
    ops = _ops(m)
    assert "residual_parallel" in ops and "residual_attn" not in ops
    assert _read({**PYTHIA_69B, "use_parallel_residual": False}).block == "sequential"


def test_refusals_in_one_line():
    """Hunyuan's cross-layer KV sharing, per-layer values that differ, an MPT attention type
    other than multi-head or multi-query: each names its field."""
    cases = [({**HUNYUAN_A13B, "use_cla": True}, "use_cla"),
             ({**HUNYUAN_A13B, "moe_topk": [8] * 31 + [2]}, "moe_topk"),
             ({**MPT_7B, "attn_config": {"attn_type": "grouped_query_attention"}},
              "attn_config")]
    for config, field in cases:
        with pytest.raises(WorkloadError) as exc:
            _read(config)
        assert exc.value.path == field


def test_nested_language_model_keys():
    """A vision-language config that nests its decoder under ``llm_config`` (InternVL) or
    ``language_config`` (DeepSeek-VL2) is read as that decoder, errors naming the nested
    field; the vision tower is not modelled."""
    qwen2_7b = {"model_type": "qwen2", "hidden_size": 3584, "num_hidden_layers": 28,
                "num_attention_heads": 28, "num_key_value_heads": 4,
                "intermediate_size": 18944, "vocab_size": 152064,
                "tie_word_embeddings": False}
    alone = _read(qwen2_7b)
    for key in ("llm_config", "language_config"):
        m = _read({"model_type": "some_vlm", key: qwen2_7b, "vision_config": {}})
        assert (m.family, m.param_count()) == ("qwen2", alone.param_count())
        with pytest.raises(WorkloadError) as exc:
            _read({"model_type": "some_vlm", key: {**qwen2_7b, "hidden_size": "x"}})
        assert exc.value.path == f"{key}.hidden_size"
    with pytest.raises(WorkloadError) as exc:   # nothing nested of a known type: refused
        _read({"model_type": "some_vlm", "llm_config": {"model_type": "unknown"}})
    assert exc.value.path == "model_type"


def test_deepseek_vl2_language_config():
    """DeepSeek-VL2 nests its DeepSeek-V2 decoder under ``language_config`` without a model
    type (vLLM builds a DeepseekV2Config of it); the Tiny's (DeepSeek-OCR-2's copy) has
    ``use_mla`` false: plain multi-head attention, 10 heads of 1,280 / 10 = 128, 4 x 1,280^2
    parameters a layer, no latent."""
    lc = {"first_k_dense_replace": 1, "hidden_size": 1280, "intermediate_size": 6848,
          "kv_lora_rank": None, "max_position_embeddings": 8192, "moe_intermediate_size": 896,
          "n_routed_experts": 64, "n_shared_experts": 2, "num_attention_heads": 10,
          "num_experts_per_tok": 6, "num_hidden_layers": 12, "num_key_value_heads": 10,
          "q_lora_rank": None, "qk_nope_head_dim": 0, "qk_rope_head_dim": 0,
          "topk_method": "greedy", "use_mla": False, "v_head_dim": 0, "vocab_size": 129280}
    m = _read({"model_type": "deepseek_vl_v2", "language_config": lc, "vision_config": {}})
    assert (m.family, m.is_mla, m.head_dim) == ("deepseek_v2", False, 128)
    assert m.attention_params() == 4 * 1280 * 1280
    assert (m.first_dense, m.n_experts, m.shared_ff) == (1, 64, 2 * 896)
    with pytest.raises(WorkloadError) as exc:
        _read({"model_type": "deepseek_vl_v2", "language_config": {**lc, "use_mla": True}})
    assert exc.value.path == "language_config.qk_rope_head_dim"



# THUDM/chatglm3-6b's config.json (HF blame @ d4cd7d0); THUDM/glm-4-9b-chat's (HF blame @
# 731ca7f) differs in the keys GLM4_9B_CHAT replaces
CHATGLM3_6B = {
    "model_type": "chatglm", "architectures": ["ChatGLMModel"], "num_layers": 28,
    "padded_vocab_size": 65024, "hidden_size": 4096, "ffn_hidden_size": 13696,
    "kv_channels": 128, "num_attention_heads": 32, "seq_length": 8192,
    "multi_query_attention": True, "multi_query_group_num": 2, "add_bias_linear": False,
    "add_qkv_bias": True, "bias_dropout_fusion": True,
    "apply_residual_connection_post_layernorm": False, "post_layer_norm": True,
    "rmsnorm": True, "layernorm_epsilon": 1e-05, "original_rope": True,
    "tie_word_embeddings": False, "apply_query_key_layer_scaling": True,
    "attention_softmax_in_fp32": True, "fp32_residual_connection": False,
    "torch_dtype": "float16"}
GLM4_9B_CHAT = {**CHATGLM3_6B, "num_layers": 40, "num_hidden_layers": 40,
                "padded_vocab_size": 151552, "seq_length": 131072, "rope_ratio": 500,
                "layernorm_epsilon": 1.5625e-07, "torch_dtype": "bfloat16"}


def test_chatglm_counts_and_the_hf_port():
    """ChatGLM3-6B: 6,243,584,000 parameters (chatglm2-6b's fp16 index, 12,487,168,064 B, is
    twice that plus RoPE's 32-float buffer); glm-4-9b-chat in THUDM's code is the decoder HF's
    ``glm`` port reads from glm-4-9b-chat-hf: the same count and the same ops, op by op."""
    chatglm3 = _read(CHATGLM3_6B)
    d, q, kv = 4096, 32 * 128, 2 * 128
    layer = d * q + 2 * d * kv + q + 2 * kv + q * d + 3 * d * 13696 + 2 * d
    assert chatglm3.param_count() == 28 * layer + 2 * 65024 * d + d == 6_243_584_000
    ours, port = _read(GLM4_9B_CHAT), _read(GLM4_9B)
    assert ours.param_count() == port.param_count() == 9_399_951_360
    scenario = Scenario(batch=2, prompt_len=16, gen_len=3)
    assert [(o.name, o.flops, o.bytes) for o in trace_model(ours.with_layers(2), scenario).ops] \
        == [(o.name, o.flops, o.bytes) for o in trace_model(port.with_layers(2), scenario).ops]
    # without multi-query attention every head has its keys and values
    full = _read({**CHATGLM3_6B, "multi_query_attention": False})
    assert full.n_kv_heads == 32
    assert full.param_count() - chatglm3.param_count() == 28 * 2 * (d + 1) * (32 - 2) * 128


@pytest.mark.parametrize("change,field", [
    ({"position_encoding_2d": True, "inner_hidden_size": 16384}, "position_encoding_2d"),
    ({"apply_residual_connection_post_layernorm": True},
     "apply_residual_connection_post_layernorm"),
    ({"ffn_hidden_size": "13696"}, "ffn_hidden_size"),
    # the model's own checks name ChatGLM's keys
    ({"multi_query_group_num": 3}, "multi_query_group_num"),
    ({"kv_channels": 10**9}, "kv_channels"),
    ({"ffn_hidden_size": 10**9}, "ffn_hidden_size"),
    ({"num_layers": 10**9}, "num_layers"),
])
def test_chatglm_refusals(change, field):
    """ChatGLM-6B's first version and post-norm residuals are refused, naming the field."""
    with pytest.raises(WorkloadError) as err:
        _read({**CHATGLM3_6B, **change})
    assert err.value.path == field


# kyutai/helium-1-preview-2b's config.json (HF blame @ d7376cc); its model.safetensors is
# listed at 4.35 GB of bf16
HELIUM_2B = {
    "architectures": ["HeliumForCausalLM"], "attention_bias": False, "head_dim": 128,
    "hidden_act": "silu", "hidden_size": 2560, "intermediate_size": 7040,
    "max_position_embeddings": 4096, "mlp_bias": False, "model_type": "helium",
    "num_attention_heads": 20, "num_hidden_layers": 24, "num_key_value_heads": 20,
    "rms_norm_eps": 1e-08, "rope_theta": 100000.0, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "vocab_size": 48000}
# openbmb/MiniCPM-2B-sft-bf16's config.json (HF blame @ fab7c2d): no model_type (its remote
# code's class names it) nor tie_word_embeddings (tied by that class's default)
MINICPM_2B = {
    "architectures": ["MiniCPMForCausalLM"], "hidden_act": "silu",
    "hidden_size": 2304, "intermediate_size": 5760, "max_position_embeddings": 4096,
    "num_attention_heads": 36, "num_hidden_layers": 40, "num_key_value_heads": 36,
    "rms_norm_eps": 1e-05, "rope_scaling": None, "vocab_size": 122753, "scale_emb": 12,
    "dim_model_base": 256, "scale_depth": 1.4}
# XiaomiMiMo/MiMo-7B-Base's shape as derivatives' configs carry it (FastMTP; the official file
# was not reached): Qwen2's decoder plus one multi-token-prediction layer
MIMO_7B = {
    "model_type": "mimo", "hidden_size": 4096, "num_hidden_layers": 36,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "intermediate_size": 11008, "vocab_size": 151680, "max_position_embeddings": 32768,
    "tie_word_embeddings": False, "attention_bias": True, "use_sliding_window": False,
    "num_nextn_predict_layers": 1}


def test_helium_minicpm_mimo_counts():
    """Helium-1-preview-2B: a Llama decoder (its interleaved RoPE the same work), 2,172,643,840
    by hand, half its 4.35 GB of bf16; MiniCPM-2B tied by default: 2,442,057,984 without the
    embedding ("2.4B parameters excluding embeddings"); MiMo-7B: Qwen2's layers (q/k/v biases,
    none on o_proj), its MTP layer left out."""
    d, ff = 2560, 7040
    helium = _read(HELIUM_2B)
    assert helium.param_count() == 24 * (4 * d * d + 3 * d * ff + 2 * d) + 2 * 48000 * d + d \
        == 2_172_643_840
    assert 2 * helium.param_count() == pytest.approx(4.35e9, abs=0.005e9)
    minicpm = _read(MINICPM_2B)   # its type from its one architecture, MiniCPMForCausalLM
    d, ff = 2304, 5760
    assert (minicpm.family, minicpm.tied_embeddings) == ("minicpm", True)
    with pytest.raises(WorkloadError, match="model_type: missing"):
        _read({**MINICPM_2B, "architectures": ["MiniCPMForSequenceClassification"]})
    with pytest.raises(WorkloadError, match="sparse_config: expected null"):
        _read({**MINICPM_2B, "sparse_config": {"kernel_size": 32}})
    assert minicpm.non_embedding_params() == 40 * (4 * d * d + 3 * d * ff + 2 * d) + d \
        == 2_442_057_984
    assert minicpm.non_embedding_params() == pytest.approx(2.4e9, rel=0.02)
    assert not _read({**MINICPM_2B, "tie_word_embeddings": False}).tied_embeddings
    mimo = _read(MIMO_7B)
    d, q, kv = 4096, 4096, 1024
    layer = d * q + 2 * d * kv + q + 2 * kv + q * d + 3 * d * 11008 + 2 * d
    assert mimo.param_count() == 36 * layer + 2 * 151680 * d + d == 7_622_619_136
    assert (mimo.qkv_bias, mimo.bias) == (True, False)


def test_glm4v_nests_glm4_decoders():
    """GLM-4.1V and GLM-4.5V nest GLM-4-0414's and GLM-4.5-Air's decoders in ``text_config``
    (``glm4v_text``: M-RoPE, the same work; ``glm4v_moe_text``: no q/k norms, no MTP layer):
    GLM-4.1V's 9,400,279,040 is glm-4-9b's 9,399,951,360 plus its 40 x 2 sandwich norms;
    GLM-4.5V's decoder counts as GLM-4.5-Air's ("106B", "12B active")."""
    from test_hf_families import GLM45_AIR

    text = {**GLM4_9B, "model_type": "glm4v_text",
            "rope_parameters": {"mrope_section": [8, 12, 12], "rope_theta": 10000}}
    g41 = _read({"model_type": "glm4v", "text_config": text, "vision_config": {"depth": 24}})
    assert g41.param_count() == 9_399_951_360 + 40 * 2 * 4096 == 9_400_279_040
    assert (g41.post_norms, g41.rotary_dim, g41.qkv_bias) == (True, 64, True)
    text = {k: v for k, v in GLM45_AIR.items() if k != "num_nextn_predict_layers"}
    g45 = _read({"model_type": "glm4v_moe",
                 "text_config": {**text, "model_type": "glm4v_moe_text"}})
    assert g45.param_count() == _read(GLM45_AIR).param_count()
    assert g45.param_count() == pytest.approx(106e9, rel=0.01)


# mistralai/Ministral-8B-Instruct-2410's shape (its card: "Parameters 8,019,808,256";
# "Attention Pattern Ragged (128k,32k,32k,32k)") as HF's ministral port reads it: layer_types
# full then three sliding layers; the original file (model_type mistral) windows every layer
MINISTRAL_8B = {
    "model_type": "ministral", "head_dim": 128, "hidden_size": 4096,
    "intermediate_size": 12288, "max_position_embeddings": 32768, "num_attention_heads": 32,
    "num_hidden_layers": 36, "num_key_value_heads": 8, "sliding_window": 32768,
    "tie_word_embeddings": False, "vocab_size": 131072,
    "layer_types": ["full_attention", "sliding_attention", "sliding_attention",
                    "sliding_attention"] * 9}


def test_ministral_global_first_layers():
    """Ministral-8B: 8,019,808,256 (its card); layers 0, 4, ..., 32 read every key, the other
    27 at most 32,768 (``global_first``): at a 65,536-token context each request keeps
    (9 x 65,536 + 27 x 32,768) / 36 tokens of KV per layer, and layer 1's QK^T of a decode
    step reads 32,768 keys where layer 0's reads 65,536. Its original config (mistral) windows
    all 36 layers."""
    from workloads.tracer import held_tokens

    m = _read(MINISTRAL_8B)
    assert m.param_count() == 8_019_808_256
    assert (m.global_every, m.global_first) == (4, True)
    assert [m.windowed(i) for i in range(5)] == [False, True, True, True, False]
    assert held_tokens(m, 65536) == (9 * 65536 + 27 * 32768) / 36
    ops = trace_model(m.with_layers(2), Scenario(batch=1, prompt_len=65534, gen_len=3)).ops
    qk = {op.layer: op.flops for op in ops if op.name == "qk" and op.step == 2}
    assert qk[0] == 2 * 32 * 128 * 65536 and qk[1] == 2 * 32 * 128 * 32768
    original = _read({**MINISTRAL_8B, "model_type": "mistral", "layer_types": None})
    assert original.windowed_layers() == 36
    with pytest.raises(WorkloadError, match="every n-th layer"):
        _read({**MINISTRAL_8B, "layer_types": ["sliding_attention", "full_attention",
                                               "full_attention", "sliding_attention"] * 9})


# meta-llama/Llama-3.2-11B-Vision-Instruct's text_config as a re-upload's dump gives it
# (mylesgoose/Llama-3.2-11B-Vision-Instruct; transformers' MllamaTextConfig defaults agree)
MLLAMA_11B = {
    "model_type": "mllama", "architectures": ["MllamaForConditionalGeneration"],
    "image_token_index": 128256, "vision_config": {"hidden_size": 1280, "num_hidden_layers": 32},
    "text_config": {
        "model_type": "mllama_text_model", "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8,
        "vocab_size": 128256, "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
        "rope_theta": 500000.0, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "rms_norm_eps": 1e-05, "hidden_act": "silu"}}


def test_mllama_text_only():
    """Llama 3.2 11B Vision's text decoder: 32 Llama layers traced, 8 cross-attention layers
    held but skipped without an image (as transformers and vLLM skip them) and the embedding's 8
    extra rows: 9,775,192,080, by hand; with the vision encoder (863,567,379, counted from its
    config) and the 7,680 -> 4,096 projector, exactly the checkpoint's 10,670,220,835 BF16
    parameters (HfApi safetensors metadata). What it runs is Llama-3.1-8B, op for op."""
    from workloads.models import get_model
    from workloads.tracer import weight_bytes_per_device

    m = _read(MLLAMA_11B)
    d, q, kv, ff = 4096, 4096, 1024, 14336
    cross = 2 * d * q + 2 * d * kv + 2 * 128 + 2 + 3 * d * ff + 2 * d
    llama = get_model("llama3-8b")
    assert m.param_count() == llama.param_count() + 8 * cross + 8 * d == 9_775_192_080
    assert m.param_count() + 863_567_379 + (7680 * 4096 + 4096) == 10_670_220_835
    assert m.active_param_count() == llama.param_count() == 8_030_261_248
    assert weight_bytes_per_device(m, "bf16") == 2 * 9_775_192_080
    sc = Scenario(batch=2, prompt_len=16, gen_len=3)
    assert [(o.name, o.flops, o.bytes) for o in trace_model(m, sc).ops] == \
        [(o.name, o.flops, o.bytes) for o in trace_model(llama, sc).ops]
    every = {**MLLAMA_11B["text_config"], "cross_attention_layers": list(range(40))}
    with pytest.raises(WorkloadError) as err:
        _read({**MLLAMA_11B, "text_config": every})
    assert err.value.path == "text_config.cross_attention_layers"
