"""config.json families of 2024-2025 (gpt-oss, GLM-4.5, OLMoE, Phi-3.5-MoE, Command R7B,
Nemotron, EXAONE 3.5, ERNIE 4.5, Granite MoE, SmolLM3, Mistral Small 3.1): parameter counts
against published ones, the mechanisms they need (sink logits, attention-only biases,
LayerNorms without biases, squared ReLU, layers without RoPE, windowed parallel blocks)
against hand counts, refusals in one line."""

import numpy as np
import pytest

import workloads.tracer as tracer
from workloads.errors import WorkloadError
from workloads.fold import FoldedOps
from workloads.hf_config import model_from_hf_dict
from workloads.models import ModelConfig, get_model
from workloads.scenario import Scenario
from workloads.tracer import kv_cache_bytes, trace_model

# config.json values as the model repositories publish them (sources in each comment)
# openai/gpt-oss-120b (ai-dynamo/aiconfigurator model_configs @ 0b077da, a copy of the hub file)
GPT_OSS_120B = {"model_type": "gpt_oss", "attention_bias": True, "experts_per_token": 4,
                "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880,
                "intermediate_size": 2880,
                "layer_types": ["sliding_attention", "full_attention"] * 18,
                "max_position_embeddings": 131072, "num_attention_heads": 64,
                "num_experts_per_tok": 4, "num_hidden_layers": 36, "num_key_value_heads": 8,
                "num_local_experts": 128, "quantization_config": {"quant_method": "mxfp4"},
                "sliding_window": 128, "swiglu_limit": 7.0, "tie_word_embeddings": False,
                "vocab_size": 201088}
# openai/gpt-oss-20b: the same file but 24 layers and 32 experts
GPT_OSS_20B = {**GPT_OSS_120B, "num_hidden_layers": 24, "num_local_experts": 32,
               "layer_types": ["sliding_attention", "full_attention"] * 12}
# zai-org/GLM-4.5-Air (triple-mu/aiconfigurator @ ba4dfe3)
GLM45_AIR = {"model_type": "glm4_moe", "attention_bias": True, "head_dim": 128,
             "hidden_act": "silu", "hidden_size": 4096, "partial_rotary_factor": 0.5,
             "intermediate_size": 10944, "max_position_embeddings": 131072,
             "moe_intermediate_size": 1408, "norm_topk_prob": True, "num_attention_heads": 96,
             "n_routed_experts": 128, "n_shared_experts": 1, "routed_scaling_factor": 1.0,
             "num_experts_per_tok": 8, "first_k_dense_replace": 1, "num_hidden_layers": 46,
             "num_key_value_heads": 8, "num_nextn_predict_layers": 1,
             "tie_word_embeddings": False, "use_qk_norm": False, "vocab_size": 151552}
# GLM-4.5: the GLM-4.5 report's Table 1 (3 dense + 89 MoE layers, 160 experts, QK-norm),
# NVIDIA Megatron-Bridge's GLM-4.5 page (2.5x scaling); no verbatim file was found
GLM45 = {**GLM45_AIR, "hidden_size": 5120, "intermediate_size": 12288,
         "moe_intermediate_size": 1536, "n_routed_experts": 160, "first_k_dense_replace": 3,
         "num_hidden_layers": 92, "use_qk_norm": True, "routed_scaling_factor": 2.5}
# allenai/OLMoE-1B-7B-0924 (its pretraining config, configs/OLMoE-1B-7B-0924.yml @ 357454f,
# in HF OlmoeConfig's keys; an HF-format OLMoE checkpoint's config.json has these values)
OLMOE = {"model_type": "olmoe", "attention_bias": False, "hidden_act": "silu",
         "hidden_size": 2048, "intermediate_size": 1024, "max_position_embeddings": 4096,
         "num_attention_heads": 16, "num_experts": 64, "num_experts_per_tok": 8,
         "num_hidden_layers": 16, "num_key_value_heads": 16, "tie_word_embeddings": False,
         "vocab_size": 50304}
# microsoft/Phi-3.5-MoE-instruct (keys of optimum-intel's tiny copy, values of a pruned
# derivative's config and transformers' PhimoeConfig defaults, documented as this checkpoint)
PHI35_MOE = {"model_type": "phimoe", "attention_bias": True, "hidden_act": "silu",
             "hidden_size": 4096, "intermediate_size": 6400, "lm_head_bias": True,
             "max_position_embeddings": 131072, "num_attention_heads": 32,
             "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8,
             "num_local_experts": 16, "sliding_window": 131072, "tie_word_embeddings": False,
             "vocab_size": 32064}
# CohereForAI/c4ai-command-r7b-12-2024 (huihui-ai's copy, _name_or_path the official repo)
COMMAND_R7B = {"model_type": "cohere2", "attention_bias": False, "head_dim": 128,
               "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
               "logit_scale": 0.25, "max_position_embeddings": 8192,
               "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
               "sliding_window": 4096, "sliding_window_pattern": 4,
               "use_embedding_sharing": True, "vocab_size": 256000}
# nvidia/Minitron-4B-Base (the hub file @ ebb5506)
MINITRON_4B = {"model_type": "nemotron", "hidden_act": "relu2", "hidden_size": 3072,
               "intermediate_size": 9216, "max_position_embeddings": 4096,
               "num_attention_heads": 24, "num_hidden_layers": 32, "num_key_value_heads": 8,
               "norm_eps": 1e-05, "partial_rotary_factor": 0.5, "tie_word_embeddings": False,
               "vocab_size": 256000, "head_dim": 128}
# LGAI-EXAONE/EXAONE-3.5-7.8B-Instruct and 2.4B (re-saved copies of the hub files)
EXAONE_78B = {"model_type": "exaone", "activation_function": "silu", "head_dim": 128,
              "hidden_size": 4096, "intermediate_size": 14336,
              "max_position_embeddings": 32768, "num_attention_heads": 32,
              "num_key_value_heads": 8, "num_layers": 32, "tie_word_embeddings": False,
              "vocab_size": 102400}
EXAONE_24B = {"model_type": "exaone", "activation_function": "silu", "head_dim": 80,
              "hidden_size": 2560, "intermediate_size": 7168,
              "max_position_embeddings": 32768, "num_attention_heads": 32,
              "num_key_value_heads": 8, "num_layers": 30, "vocab_size": 102400}
# baidu/ERNIE-4.5-21B-A3B-PT (transformers Ernie4_5_MoeConfig defaults, documented as it)
ERNIE45_21B = {"model_type": "ernie4_5_moe", "hidden_size": 2560, "intermediate_size": 12288,
               "moe_intermediate_size": 1536, "num_hidden_layers": 28,
               "num_attention_heads": 20, "num_key_value_heads": 4, "head_dim": 128,
               "moe_num_experts": 64, "moe_num_shared_experts": 2, "moe_k": 6,
               "moe_layer_start_index": 1, "moe_layer_end_index": 27,
               "moe_layer_interval": 1, "vocab_size": 103424, "tie_word_embeddings": True,
               "hidden_act": "silu", "use_bias": False, "max_position_embeddings": 131072}
# ibm-granite/granite-3.0-3b-a800m-instruct (the hub file)
GRANITE_MOE_3B = {"model_type": "granitemoe", "attention_bias": False,
                  "attention_multiplier": 0.015625, "embedding_multiplier": 12.0,
                  "hidden_act": "silu", "hidden_size": 1536, "intermediate_size": 512,
                  "logits_scaling": 6.0, "max_position_embeddings": 4096,
                  "num_attention_heads": 24, "num_experts_per_tok": 8,
                  "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 40,
                  "residual_multiplier": 0.22, "tie_word_embeddings": True,
                  "vocab_size": 49155}
# HuggingFaceTB/SmolLM3-3B (fine-tunes' copies; no_rope_layers as SmolLM3Config forms it)
SMOLLM3 = {"model_type": "smollm3", "hidden_size": 2048, "intermediate_size": 11008,
           "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 4,
           "vocab_size": 128256, "tie_word_embeddings": True,
           "max_position_embeddings": 65536, "use_sliding_window": False,
           "sliding_window": None, "no_rope_layers": [int((i + 1) % 4 != 0) for i in range(36)]}
# mistralai/Mistral-Small-3.1-24B-Instruct-2503 (the hub file; its text decoder)
MISTRAL_SMALL_31 = {"model_type": "mistral3", "text_config": {
    "head_dim": 128, "hidden_act": "silu", "hidden_size": 5120, "intermediate_size": 32768,
    "max_position_embeddings": 131072, "model_type": "mistral", "num_attention_heads": 32,
    "num_hidden_layers": 40, "num_key_value_heads": 8, "sliding_window": None,
    "vocab_size": 131072}}


def _read(config: dict) -> ModelConfig:
    return model_from_hf_dict(config, "m/config.json")


def test_gpt_oss_counts_are_the_published_ones():
    """gpt-oss-120b / -20b: keras-hub's presets of the checkpoints (keras_hub gpt_oss_presets.py
    @ 71453d08: 116,829,156,672 and 20,914,757,184 parameters); the model card's Table 1
    (arXiv 2508.10925): attention 0.96B / 0.64B, active 5.13B / 3.61B counting the unembedding
    and not the embedding. Its attention biases, expert biases, router bias and one sink per
    head and layer are in them: 64 sinks x 36 layers alone are 2,304."""
    big, small = _read(GPT_OSS_120B), _read(GPT_OSS_20B)
    assert big.param_count() == 116_829_156_672
    assert small.param_count() == 20_914_757_184
    for m, attention, active in ((big, 0.96e9, 5.13e9), (small, 0.64e9, 3.61e9)):
        assert round(m.n_layers * m.attention_params(), -7) == attention
        assert round(m.active_param_count() - m.vocab_size * m.d_model, -7) == active
    assert big.param_count() - _read({**GPT_OSS_120B, "model_type": "llama"}).param_count() \
        == 36 * (64 + 128)   # sinks, router biases: all a Llama reading of the file lacks


def test_gpt_oss_alternates_128_key_windows():
    """HF GptOssAttention: even layers read their last 128 keys, odd layers every key; the KV
    cache keeps 128 tokens in the 18 windowed layers (2 x 8 KV heads x 64 x 2 B a token)."""
    m = _read(GPT_OSS_20B)
    assert (m.sliding_window, m.global_every, m.windowed_layers()) == (128, 2, 12)
    sc = Scenario(batch=1, prompt_len=1000, gen_len=3)
    qk = {op.layer: op.flops for op in trace_model(m, sc).ops
          if op.phase == "decode" and op.name == "qk" and op.step == 1}
    assert qk[0] == 2 * 64 * 64 * 128 and qk[1] == 2 * 64 * 64 * 1001
    per_token = 2 * 8 * 64 * 2
    assert kv_cache_bytes(m, sc) == per_token * (12 * 128 + 12 * 1003)


def test_glm45_counts_by_the_reports_rule():
    """GLM-4.5 report, Table 1: 355B total and 32B active "including the MTP layer, not the
    word embeddings and the output layer"; its Air: 106B / 12B (this figure matches the count
    without the MTP layer). The MTP layer is one MoE layer plus its 2d x d projection and
    norms (HF skips it; so do we)."""
    full, air = _read(GLM45), _read(GLM45_AIR)
    embeddings = 2 * full.vocab_size * full.d_model
    mtp = full.layer_params() + 2 * full.d_model ** 2 + 3 * full.d_model
    assert full.param_count() - embeddings + mtp == pytest.approx(355e9, rel=0.001)
    assert full.active_param_count() - embeddings == pytest.approx(32e9, rel=0.005)
    air_embeddings = 2 * air.vocab_size * air.d_model
    assert air.param_count() - air_embeddings == pytest.approx(106e9, rel=0.005)
    assert air.active_param_count() - air_embeddings == pytest.approx(12e9, rel=0.02)
    # by hand: q, k, v biased, the output projection not (HF Glm4MoeAttention)
    d, q, kv = 4096, 96 * 128, 8 * 128
    assert air.attention_params() == d * q + 2 * d * kv + q * d + q + 2 * kv
    assert (air.rotary_dim, air.first_dense, air.dense_ff, air.shared_ff) == \
        (64, 1, 10944, 1408)
    assert (full.qk_norm, air.qk_norm) == ("head", "")


def test_olmoe_phimoe_granite_ernie_counts():
    """OLMoE-1B-7B: "1.3 billion active and 6.9 billion total" (allenai/OLMoE README);
    Phi-3.5-MoE: 41.873B (Open LLM Leaderboard request "params": 41.873), "6.6B active"
    (model card); Granite-3.0-3B-A800M: "3.3B", "800M" active (model card table, active
    without the embedding); ERNIE-4.5-21B-A3B: "21B total, 3B active" (transformers docs;
    "22B" on the hub's listing), active without the tied embedding."""
    olmoe = _read(OLMOE)
    assert round(olmoe.param_count(), -8) == 6.9e9
    assert round(olmoe.active_param_count(), -8) == 1.3e9
    phi = _read(PHI35_MOE)
    assert round(phi.param_count(), -6) == 41_873e6
    assert round(phi.active_param_count(), -8) == 6.6e9
    granite = _read(GRANITE_MOE_3B)
    embedding = granite.vocab_size * granite.d_model
    assert round(granite.param_count(), -8) == 3.3e9
    assert round(granite.active_param_count() - embedding, -8) == 0.8e9
    ernie = _read(ERNIE45_21B)
    assert round(ernie.param_count(), -9) == 22e9
    assert round(ernie.active_param_count() - ernie.vocab_size * ernie.d_model, -8) == 3.1e9
    assert (ernie.first_dense, ernie.shared_ff, ernie.dense_ff, ernie.router_bias) == \
        (1, 3072, 12288, True)


def test_phimoe_biases_are_in_attention_only():
    """HF PhimoeAttention: q, k, v and o with biases (``attention_bias``), LayerNorms with
    biases, experts and router without; an LM head bias (``lm_head_bias``)."""
    m = _read(PHI35_MOE)
    d, q, kv = 4096, 4096, 1024
    assert m.attention_params() == 2 * d * q + 2 * d * kv + q + 2 * kv + d
    assert m.mlp_params() == 3 * d * 6400
    assert m.norm_params() == 2 * d
    no_head_bias = _read({**PHI35_MOE, "lm_head_bias": False})
    assert m.param_count() - no_head_bias.param_count() == 32064


def test_command_r7b_windowed_parallel_block():
    """Command R7B (HF Cohere2): layers where (i + 1) % 4 != 0 read their last 4,096 keys with
    RoPE; layers 3, 7, ... read every key without RoPE; one LayerNorm (a gain, no bias) feeds
    attention and MLP in parallel. 8.028B parameters (Open LLM Leaderboard request)."""
    m = _read(COMMAND_R7B)
    assert (m.block, m.global_every, m.nope_every, m.windowed_layers()) == \
        ("parallel", 4, 4, 24)
    assert round(m.param_count(), -6) == 8_028e6
    assert m.norm_params() == 4096
    sc = Scenario(batch=1, prompt_len=5000, gen_len=3)
    ops = [op for op in trace_model(m, sc).ops if op.phase == "decode" and op.step == 1]
    qk = {op.layer: op.flops for op in ops if op.name == "qk"}
    assert qk[0] == 2 * 32 * 128 * 4096 and qk[3] == 2 * 32 * 128 * 5001
    rope = {op.layer for op in ops if op.name == "rope"}
    assert rope == {i for i in range(32) if (i + 1) % 4}


def test_smollm3_layers_without_rope():
    """SmolLM3 (HF SmolLM3Config ``no_rope_layers``: 0 where a layer skips RoPE): layers 3, 7,
    ..., 35 trace no RoPE op, the other 27 do; its count by hand (tied embeddings, GQA 16/4)."""
    m = _read(SMOLLM3)
    assert m.nope_every == 4
    ops = trace_model(m, Scenario(batch=1, prompt_len=8, gen_len=2)).ops
    rope = [op.layer for op in ops if op.name == "rope" and op.phase == "prefill"]
    assert rope == [i for i in range(36) if (i + 1) % 4]
    layer = 2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 11008 + 2 * 2048
    assert m.param_count() == 36 * layer + 128256 * 2048 + 2048
    assert _read({**SMOLLM3, "no_rope_layers": [1] * 36}).nope_every == 0


def test_nemotron_squared_relu_and_partial_rotary():
    """Minitron-4B (HF Nemotron): an ungated MLP with relu(x)^2 (two element-wise steps, 2 FLOPs
    an element), LayerNorm1P (a LayerNorm with a bias), RoPE on 64 of 128 channels per head
    (query and key heads); 4.19B parameters (the hub's count of the checkpoint)."""
    m = _read(MINITRON_4B)
    assert (m.activation, m.norm, m.rotary_dim) == ("relu2", "layernorm", 64)
    assert round(m.param_count(), -7) == 4.19e9
    assert m.mlp_params() == 2 * 3072 * 9216
    ops = {op.name: op for op in trace_model(m, Scenario(batch=1, prompt_len=8, gen_len=2)).ops
           if op.layer == 0 and op.phase == "prefill"}
    assert ops["ffn_act"].flops == 2 * 8 * 9216
    assert ops["ffn_up"].flops == 2 * 8 * 3072 * 9216   # no gate: 9,216 outputs, not 18,432
    rope = trace_model(m, Scenario(batch=1, prompt_len=8, gen_len=2)).ops
    widths = {op.flops for op in rope if op.name == "rope" and op.phase == "prefill"}
    assert widths == {3 * 8 * (24 + 8) * 64}   # cos and sin products and their sum


def test_exaone_and_mistral_small_counts():
    """EXAONE 3.5 model cards: 6.98B (7.8B) and 2.14B (2.4B, tied) parameters without the
    embeddings; Mistral Small 3.1's text decoder (its ``text_config``): 23.6B (the hub's count of
    its text-only conversion)."""
    assert round(_read(EXAONE_78B).non_embedding_params(), -7) == 6.98e9
    small = _read(EXAONE_24B)
    assert small.tied_embeddings and round(small.non_embedding_params(), -7) == 2.14e9
    mistral = _read(MISTRAL_SMALL_31)
    assert (mistral.family, mistral.head_dim, mistral.sliding_window) == ("mistral", 128, 0)
    assert round(mistral.param_count(), -8) == 23.6e9


def test_command_r_and_dbrx_norms_have_no_bias():
    """Command R and DBRX LayerNorms keep a gain and no bias (HF CohereLayerNorm,
    DbrxBlock's LayerNorm(bias=False)): one d-vector a norm, two per layer in DBRX, one in
    Command R's parallel block, plus the final norm."""
    from test_hf_windows_shared import COMMAND_R, DBRX

    cr, db = _read(COMMAND_R), _read(DBRX)
    assert cr.norm_params() == 8192 and db.norm_params() == 6144
    biased = _read(COMMAND_R).__class__(**{**cr.__dict__, "norm_bias": True})
    assert biased.param_count() - cr.param_count() == (40 + 1) * 8192


@pytest.mark.parametrize("window,every,nope", [(12, 2, 2), (12, 4, 4), (0, 0, 3)])
def test_long_decodes_with_rope_free_layers_fold(window, every, nope, monkeypatch):
    """A decode crossing the window with layers without RoPE (Command R7B-like, SmolLM3-like):
    the folded trace has the op-by-op trace's FLOPs op for op, a folded run its metrics."""
    from arch import load_arch
    from sim.run import simulate

    m = ModelConfig(name="tiny", family="llama", n_layers=4, d_model=64, n_heads=4,
                    n_kv_heads=2, d_ff=128, vocab_size=100, max_positions=4096,
                    norm="rmsnorm", activation="swiglu", position="rope",
                    tied_embeddings=False, bias=False, sliding_window=window,
                    global_every=every, nope_every=nope)
    sc = Scenario(batch=2, prompt_len=6, gen_len=20)
    want = trace_model(m, sc, compact=False).ops
    folded = trace_model(m, sc, compact=True).compact
    assert isinstance(folded, FoldedOps)
    assert np.array_equal(np.array([k.flops for k in folded.kinds])[folded.kind],
                          [op.flops for op in want])
    assert {op.layer for op in want if op.name == "rope"} == \
        {i for i in range(4) if (i + 1) % nope}
    got = simulate(load_arch("h100"), m, sc)
    monkeypatch.setattr(tracer, "FOLD", False)
    ref = simulate(load_arch("h100"), m, sc)
    for key, value in ref.metrics.items():
        assert got.metrics[key] == pytest.approx(value, rel=1e-11, abs=1e-15), key


def test_check_runs_squared_relu_and_the_new_families():
    """``xpusim check`` runs the squared ReLU against its float64 reference and the new
    families' first layers (Phi-3.5-MoE's biased LayerNorms, gpt-oss's experts, Command R7B's
    windowed parallel block, ERNIE's dense first layer)."""
    from arch import load_arch
    from sim.functional.layer import CheckSpec, check_layer

    arch = load_arch("h100")
    spec = CheckSpec(batch=1, prompt=16, max_width=256)
    rep = check_layer(arch, _read(MINITRON_4B), spec)
    act = [r for r in rep.rows if r.op == "ffn_act"]
    assert rep.passed and act
    for config in (PHI35_MOE, GPT_OSS_20B, COMMAND_R7B, ERNIE45_21B):
        rep = check_layer(arch, _read(config), spec)
        assert rep.passed and "ffn_down" in {r.op for r in rep.rows}, config["model_type"]


def test_squared_relu_references_agree():
    """The squared ReLU of the float64 reference (kernels_ref) and of the device's vector
    unit in float64 (sim/functional/vector.py kind 4) against numpy, negative inputs zero."""
    from kernels_ref import elementwise as ref_ew
    from sim.functional import vector
    from sim.functional.formats import Rounder

    x = np.array([-2.0, -0.0, 0.5, 3.0, 1.0 + 2.0 ** -20])
    want = np.maximum(x, 0.0) ** 2
    assert np.array_equal(ref_ew.activation("relu2", x), want)
    assert np.array_equal(vector.activation(x, vector.ACTIVATIONS["relu2"],
                                            Rounder("fp64").code), want)
    # in fp32 the square is rounded once: (1 + 2^-20)^2 loses its 2^-40 term
    got = vector.activation(x, vector.ACTIVATIONS["relu2"], Rounder("fp32").code)
    assert got[-1] == np.float32(want[-1]) != want[-1]


PRESETS = {"gpt-oss-120b": GPT_OSS_120B, "gpt-oss-20b": GPT_OSS_20B,
           "glm-4.5-air": GLM45_AIR, "olmoe-1b-7b": OLMOE, "deepseek-v3.2": None}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_their_config_json(name):
    """``--model gpt-oss-120b`` ... is its config.json as the reader takes it."""
    preset = get_model(name)
    read = model_from_hf_dict(PRESETS[name] or _v32(), f"{name}/config.json")
    assert {k: v for k, v in preset.__dict__.items() if k not in ("name", "source")} == \
        {k: v for k, v in read.__dict__.items() if k not in ("name", "source")}


@pytest.mark.parametrize("config,field,message", [
    ({**ERNIE45_21B, "moe_layer_end_index": 20}, "moe_layer_end_index", "expected -1 or 27"),
    ({**COMMAND_R7B, "layer_types": ["full_attention"] * 3}, "layer_types",
     "expected a list of 32 entries"),
    ({"model_type": "mistral3"}, "text_config", "expected an object"),
    ({**MISTRAL_SMALL_31, "text_config": {**MISTRAL_SMALL_31["text_config"],
                                          "hidden_size": "5120"}},
     "text_config.hidden_size", "expected an integer"),
    ({**MINITRON_4B, "partial_rotary_factor": 1.5}, "partial_rotary_factor",
     "expected a number in"),
    ({**MINITRON_4B, "hidden_act": "relu3"}, "hidden_act", "unknown activation"),
    ({**SMOLLM3, "no_rope_layers": [0, 1, 1, 1] * 9}, "no_rope_layers",
     "expected 0 at every n-th layer"),
])
def test_bad_fields_are_one_line_errors(config, field, message):
    """Each refusal names the file and the field (the CLI prints it in one line, exit 2)."""
    with pytest.raises(WorkloadError) as exc:
        model_from_hf_dict(config, "m/config.json")
    assert exc.value.file == "m/config.json" and exc.value.path == field
    assert message in exc.value.message


def test_nope_needs_rope():
    """Layers without RoPE in a model without RoPE is a field error."""
    with pytest.raises(WorkloadError, match="nope_every"):
        get_model("gpt2-small").__class__(**{**get_model("gpt2-small").__dict__,
                                             "nope_every": 2})


# Qwen/Qwen2.5-VL-7B-Instruct's language model keys (flat in its config.json): the shape of
# Qwen2.5-7B ("7.61B" parameters, "6.53B" non-embedding: Qwen2.5 model card)
QWEN25_VL_7B = {"model_type": "qwen2_5_vl", "hidden_size": 3584, "intermediate_size": 18944,
                "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                "vocab_size": 152064, "max_position_embeddings": 128000,
                "tie_word_embeddings": False, "vision_config": {"depth": 32}}


def test_vision_language_configs_read_their_text_decoder():
    """A multimodal config.json: Qwen2-VL / Qwen2.5-VL keep the decoder's keys at the top
    (QKV biases as Qwen2); Qwen3-VL and any type we do not know nest it in ``text_config``
    (LLaVA, PaliGemma, ...), read as its own ``model_type``; its errors name the nested
    field. The vision towers are not modelled."""
    vl = _read(QWEN25_VL_7B)
    assert (vl.qkv_bias, vl.bias) == (True, False)
    assert vl.param_count() == pytest.approx(7.61e9, rel=0.001)
    assert vl.non_embedding_params() == pytest.approx(6.53e9, rel=0.001)
    text = {k: v for k, v in QWEN25_VL_7B.items() if k != "vision_config"}
    llava = _read({"model_type": "llava_next", "text_config": {**text, "model_type": "qwen2"}})
    assert llava.param_count() == vl.param_count()
    q3 = _read({"model_type": "qwen3_vl", "text_config": {
        **text, "model_type": "qwen3_vl_text", "head_dim": 128}})
    assert (q3.family, q3.qk_norm, q3.qkv_bias) == ("qwen3", "head", False)
    with pytest.raises(WorkloadError) as exc:
        _read({"model_type": "llava", "text_config": {"model_type": "llama"}})
    assert exc.value.path == "text_config.num_attention_heads"
    with pytest.raises(WorkloadError, match="unsupported model_type 'llava'"):
        _read({"model_type": "llava", "text_config": {"model_type": "zamba2"}})


def test_sweep_over_layers_without_rope(tmp_path):
    """``model.nope_every`` as a DSE axis (SmolLM3's question: how many layers may skip
    RoPE): every 4th layer without RoPE drops 8 of 32 layers' RoPE ops, so the op count of
    a Llama-2-7B run falls by 8 per step (a prefill and 3 decode steps), and its time with
    them."""
    from dse import load_results, run_sweep, sweep_from_dict

    spec = sweep_from_dict({
        "name": "nope", "arch": "h100", "axes": {"model.nope_every": [0, 4]},
        "workloads": [{"name": "decode", "model": "llama2-7b", "batch": 1,
                       "prompt_len": 64, "gen_len": 4}],
        "objectives": [{"min": "tpot_s"}]}, "n.yaml")
    run_sweep(spec, tmp_path / "out", report=False)
    df = load_results(tmp_path / "out").sort_values("model.nope_every")
    assert df["ops"].diff().iloc[1] == -8 * 4
    assert df["tpot_s"].iloc[1] < df["tpot_s"].iloc[0]


# MiniMaxAI/MiniMax-M2.5 (ai-dynamo/aiconfigurator model_configs @ 095f58a, abridged copy of
# the hub file; MiniMax-M2's architecture and transformers' MiniMaxM2Config defaults)
MINIMAX_M2 = {"model_type": "minimax_m2", "num_hidden_layers": 62, "hidden_size": 3072,
              "num_attention_heads": 48, "num_key_value_heads": 8, "head_dim": 128,
              "intermediate_size": 1536, "vocab_size": 200064, "num_experts_per_tok": 8,
              "num_local_experts": 256, "max_position_embeddings": 196608, "rotary_dim": 64,
              "hidden_act": "silu", "tie_word_embeddings": False, "use_qk_norm": True,
              "qk_norm_type": "per_layer", "use_routing_bias": True, "use_mtp": True,
              "num_mtp_modules": 3, "shared_intermediate_size": 0, "scoring_func": "sigmoid"}
# allenai/Olmo-3-1025-7B (rasbt/LLMs-from-scratch ch05/13_olmo3 @ 28c65cd maps its config.json;
# layer_types as Olmo3Config forms them: every 4th layer full)
OLMO3_7B = {"model_type": "olmo3", "vocab_size": 100278, "max_position_embeddings": 65536,
            "hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32,
            "intermediate_size": 11008, "num_key_value_heads": 32, "attention_bias": False,
            "sliding_window": 4096, "tie_word_embeddings": False,
            "layer_types": ["sliding_attention"] * 3 + ["full_attention"]}
OLMO3_7B["layer_types"] = OLMO3_7B["layer_types"] * 8
# ByteDance-Seed/Seed-OSS-36B (its model card's shape; SeedOssConfig's bias defaults, which
# onnxruntime-genai's support of the checkpoint states: q/k/v biases, none on o_proj or MLP)
SEED_OSS_36B = {"model_type": "seed_oss", "hidden_size": 5120, "num_hidden_layers": 64,
                "intermediate_size": 27648, "num_attention_heads": 80, "num_key_value_heads": 8,
                "head_dim": 128, "vocab_size": 155136, "max_position_embeddings": 524288,
                "tie_word_embeddings": False, "attention_bias": True,
                "attention_out_bias": False, "mlp_bias": False}


def test_minimax_olmo3_seed_oss():
    """MiniMax-M2: "230 billion total parameters with 10 billion active" (transformers docs)
    without its MTP modules; query/key RMSNorms over the whole projections (6,144 + 1,024
    gains), RoPE on 64 of 128 channels, a router bias. OLMo 3 7B: three windowed layers to one
    global (4,096 keys), query/key norms over the projections; its count by hand. Seed-OSS-36B
    ("36B"): biases on q, k, v and not on the output projection (``attention_out_bias``)."""
    mm = _read(MINIMAX_M2)
    assert mm.param_count() == pytest.approx(230e9, rel=0.01)
    assert mm.active_param_count() - mm.vocab_size * mm.d_model == pytest.approx(10e9, rel=0.05)
    assert (mm.qk_norm, mm.rotary_dim, mm.router_bias, mm.shared_ff) == ("full", 64, True, 0)
    assert mm.layer_params() - _read({**MINIMAX_M2, "use_qk_norm": False,
                                      "use_routing_bias": False}).layer_params() == \
        48 * 128 + 8 * 128 + 256
    olmo = _read(OLMO3_7B)
    assert (olmo.global_every, olmo.windowed_layers(), olmo.qk_norm) == (4, 24, "full")
    d = 4096
    layer = 4 * d * d + 3 * d * 11008 + 2 * d + 2 * d
    assert olmo.param_count() == 32 * layer + 2 * 100278 * d + d
    assert _read({**OLMO3_7B, "layer_types": None}).global_every == 4
    seed = _read(SEED_OSS_36B)
    q, kv = 80 * 128, 8 * 128
    assert seed.attention_params() == 5120 * q + 2 * 5120 * kv + q * 5120 + q + 2 * kv
    assert seed.param_count() == pytest.approx(36e9, rel=0.01)
    both = _read({**SEED_OSS_36B, "attention_out_bias": True})
    assert both.attention_params() - seed.attention_params() == 5120


def _v32(**over) -> dict:
    from test_hf_windows_shared import DEEPSEEK_V3

    # deepseek-ai/DeepSeek-V3.2-Exp config.json: DeepSeek-V3's plus the indexer keys (its
    # inference/model.py ModelArgs: index_n_heads 64, index_head_dim 128, index_topk 2048)
    return {**DEEPSEEK_V3, "model_type": "deepseek_v32", "index_n_heads": 64,
            "index_head_dim": 128, "index_topk": 2048, **over}


def test_deepseek_v32_indexer_counts_by_hand():
    """DeepSeek-V3.2's lightning indexer (inference/model.py ``Indexer``, deepseek-ai/
    DeepSeek-V3.2-Exp @ 6d8cb70): ``wq_b`` 1,536 -> 64 x 128, ``wk`` 7,168 -> 128 and its
    LayerNorm (gain and bias), ``weights_proj`` 7,168 -> 64: 13,959,424 parameters a layer
    over V3's; its FP8 key (128 B and an fp32 scale a token and layer) beside the latent."""
    from test_hf_windows_shared import DEEPSEEK_V3

    from workloads.tracer import kv_bytes_per_token

    v32, v3 = _read(_v32()), _read(DEEPSEEK_V3)
    per_layer = 1536 * 64 * 128 + 7168 * 128 + 2 * 128 + 7168 * 64
    assert per_layer == 13_959_424
    assert v32.param_count() - v3.param_count() == 61 * per_layer
    assert kv_bytes_per_token(v32, "fp8", 8) == 61 * (576 + 128 + 4)
    assert kv_bytes_per_token(v32, "bf16", 8) == 61 * (576 * 2 + 128 + 4)


def test_deepseek_sparse_attention_by_hand():
    """A V3.2 decode step at TP 8 (16 heads a rank), KV length n: the indexer scores every key
    (64 FP8 heads x 128 channels, ReLU, weighted sum over heads: (2 x 128 + 3) x 64 x n per
    query, whole on every rank) and picks the top 2,048 (a pass over n scores); the latent
    attention reads min(n, 2,048) keys: under the top-k every key, past it 2,048."""
    for prompt, keys in ((1000, 1001), (4000, 2048)):
        ops = {op.name: op for op in trace_model(_read(_v32()), Scenario(
            batch=2, prompt_len=prompt, gen_len=3, tp=8)).ops
            if op.phase == "decode" and op.step == 1 and op.layer == 5}
        n = prompt + 1
        per_rank = {k: op.flops / op.shards for k, op in ops.items()}
        assert per_rank["index_scores"] == 2 * (2 * 128 + 3) * 64 * n
        assert per_rank["index_topk"] == 2 * n
        assert per_rank["qk"] == 2 * 2 * 16 * 576 * keys
        assert per_rank["av"] == 2 * 2 * 16 * keys * 512
        assert ops["index_scores"].shards == 8 and ops["index_q"].flops / 8 == 2 * 2 * 1536 * 8192
    # without the indexer the same step reads every key
    from test_hf_windows_shared import DEEPSEEK_V3

    v3 = {op.name: op.flops / op.shards for op in trace_model(_read(DEEPSEEK_V3), Scenario(
        batch=2, prompt_len=4000, gen_len=3, tp=8)).ops
        if op.phase == "decode" and op.step == 1 and op.layer == 5}
    assert v3["qk"] == 2 * 2 * 16 * 576 * 4001 and "index_scores" not in v3


def test_indexer_is_one_gemm_with_its_epilogue_on_a_gpu():
    """The GPU prices the indexer as DeepGEMM's ``fp8_mqa_logits`` runs it: one FP8 GEMM (M =
    queries x heads, N = keys, K = 128) whose epilogue sums the heads in registers, so the
    per-head logits (b x s x 64 x n fp32: 256 B a key against its 128 B of FP8 key) never
    reach DRAM: its DRAM bytes are the FP8 keys, the queries and one fp32 score a key (within
    3% of the keys), not three times the keys, and a decode step's indexer is memory-bound."""
    from arch import load_arch
    from sim.devices.base import device_for

    m = _read(_v32())
    ops = [op for op in trace_model(m, Scenario(batch=16, prompt_len=32000, gen_len=3,
                                                tp=8, dtype="fp8")).ops
           if op.phase == "decode" and op.step == 1 and op.layer == 5]
    op = next(op for op in ops if op.name == "index_scores")
    cost = device_for(load_arch("h100"), "tile").estimate(op)
    n = 32001
    keys = 16 * n * 128          # FP8 keys of 16 requests
    logits = 16 * 64 * n * 4     # the per-head scores the epilogue keeps on chip
    assert keys <= cost.dram_bytes <= 1.04 * keys and keys + logits == 3 * keys
    assert cost.dram_bytes == pytest.approx(op.bytes / op.shards, rel=1e-3)
    assert cost.bound == "memory"


def test_sparse_attention_folds_across_its_top_k(monkeypatch):
    """A small V3.2-shaped model whose decode crosses its top-k (prompt 6, 24 steps, top 10):
    the folded trace has, op for op, the op-by-op trace's FLOPs and its run the unfolded run's
    metrics; the attention's keys stop at 10 while the indexer's keep growing."""
    from test_hf_windows_shared import DEEPSEEK_V2_LITE, _folds_like_op_by_op

    m = _read({**DEEPSEEK_V2_LITE, "model_type": "deepseek_v32", "hidden_size": 256,
               "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4,
               "n_routed_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 64,
               "intermediate_size": 512, "kv_lora_rank": 64, "q_lora_rank": 32,
               "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32,
               "vocab_size": 1000, "index_topk": 10, "index_n_heads": 2,
               "index_head_dim": 16})
    want = _folds_like_op_by_op(m, Scenario(batch=2, prompt_len=6, gen_len=24), monkeypatch)
    qk = {op.step: op.flops for op in want if op.name == "qk" and op.layer == 1
          and op.phase == "decode"}
    scores = {op.step: op.flops for op in want if op.name == "index_scores" and op.layer == 1
              and op.phase == "decode"}
    assert qk[3] < qk[4] == qk[20] and scores[4] < scores[20]


def test_indexer_fields_checked():
    """The indexer needs latent attention with a query latent: one line naming the field."""
    with pytest.raises(WorkloadError) as exc:
        _read(_v32(q_lora_rank=None))
    assert exc.value.path == "index_topk"


def test_npu_pim_stages_and_serving_place_the_indexer():
    """The NPU+PIM decode model's stages put the indexer's projections before attention and
    its scores and top-k with it (they grow with the KV length); ``xpusim serve``'s
    token-linear cost leaves the scores to its attention pricing."""
    from arch import load_arch
    from sim.devices.base import device_for
    from sim.serving.layer_costs import ATTN, LayerCosts

    small = _read(_v32(hidden_size=512, num_hidden_layers=4, first_k_dense_replace=1,
                       n_routed_experts=8, num_experts_per_tok=2, moe_intermediate_size=64,
                       intermediate_size=256, num_attention_heads=4,
                       num_key_value_heads=4, vocab_size=1000, q_lora_rank=64,
                       kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16,
                       v_head_dim=32, index_n_heads=4, index_head_dim=32, index_topk=16))
    stages = LayerCosts(device_for(load_arch("h100"), "tile"), small, 1, "fp16").stages(4, 64)
    assert {"index_q", "index_k", "index_k_norm", "index_w"} <= set(stages["pre"].ops)
    assert {"index_scores", "index_topk"} <= set(stages["attn"].ops)
    assert {"index_scores", "index_topk"} <= set(ATTN)
