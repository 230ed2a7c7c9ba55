"""config.json families with shared experts (Qwen2-MoE), sliding-window attention (Mistral,
StarCoder2, Gemma 2/3) and the Qwen3 / OLMo 2 / Granite layouts: parameter counts against
published ones, traces and KV caches against hand counts, and the long-decode paths (folded,
compact) against the op-by-op trace."""

import numpy as np
import pytest

import workloads.tracer as tracer
from workloads.errors import WorkloadError
from workloads.fold import FoldedOps
from workloads.hf_config import model_from_hf_dict
from workloads.models import ModelConfig
from workloads.scenario import Scenario
from workloads.tracer import kv_cache_bytes, trace_model

# config.json values as published on the Hugging Face hub (the model repositories' own files)
QWEN15_MOE = {"model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632,
              "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
              "num_experts": 60, "num_experts_per_tok": 4, "num_hidden_layers": 24,
              "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 151936,
              "max_position_embeddings": 32768, "tie_word_embeddings": False,
              "decoder_sparse_step": 1, "hidden_act": "silu"}
GEMMA2_9B = {"model_type": "gemma2", "hidden_size": 3584, "intermediate_size": 14336,
             "num_hidden_layers": 42, "num_attention_heads": 16, "num_key_value_heads": 8,
             "head_dim": 256, "vocab_size": 256000, "sliding_window": 4096,
             "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 8192}
MISTRAL_7B_V01 = {"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336,
                  "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 8, "vocab_size": 32000, "sliding_window": 4096,
                  "max_position_embeddings": 32768, "tie_word_embeddings": False,
                  "hidden_act": "silu"}


QWEN3_8B = {"model_type": "qwen3", "hidden_size": 4096, "intermediate_size": 12288,
            "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8,
            "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": False,
            "attention_bias": False, "max_position_embeddings": 40960}
QWEN3_30B_A3B = {"model_type": "qwen3_moe", "hidden_size": 2048, "intermediate_size": 6144,
                 "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8,
                 "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4,
                 "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 40960,
                 "tie_word_embeddings": False, "decoder_sparse_step": 1,
                 "mlp_only_layers": []}
GEMMA3_1B = {"model_type": "gemma3_text", "hidden_size": 1152, "intermediate_size": 6912,
             "num_hidden_layers": 26, "num_attention_heads": 4, "num_key_value_heads": 1,
             "head_dim": 256, "vocab_size": 262144, "sliding_window": 512,
             "sliding_window_pattern": 6, "max_position_embeddings": 32768}
# Exact parameter counts of the checkpoints: the "params" of keras-team/keras-hub's presets
# (keras_hub/src/models/*/..._presets.py @ 71453d08), which load these checkpoints; rounded in
# the model cards (Qwen1.5-MoE-A2.7B "14.3B in total, 2.7B activated", Qwen3-30B-A3B "30.5B,
# 3.3B activated", Qwen3-8B "8.2B", Mistral "7.3B")
EXACT = {"qwen1.5-moe-a2.7b": (QWEN15_MOE, 14_315_784_192),
         "qwen3-30b-a3b": (QWEN3_30B_A3B, 30_532_122_624),
         "qwen3-8b": (QWEN3_8B, 8_190_735_360), "gemma-2-9b": (GEMMA2_9B, 9_241_705_984),
         "gemma-3-1b": (GEMMA3_1B, 999_885_952),
         "mistral-7b-v0.1": (MISTRAL_7B_V01, 7_241_732_096)}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_published_counts(name):
    """Shared experts and their gate (Qwen1.5-MoE), query/key norms (Qwen3, Gemma 3),
    post-norms (Gemma 2/3) counted to the parameter."""
    config, count = EXACT[name]
    assert model_from_hf_dict(config, f"{name}/config.json").param_count() == count


def test_moe_active_counts_match_the_model_cards():
    """Qwen1.5-MoE-A2.7B: 2.7B activated; Qwen3-30B-A3B: 3.3B activated (rounded)."""
    assert model_from_hf_dict(QWEN15_MOE, "q").active_param_count() == \
        pytest.approx(2.7e9, rel=0.01)
    assert model_from_hf_dict(QWEN3_30B_A3B, "q").active_param_count() == \
        pytest.approx(3.3e9, rel=0.02)


def test_qwen15_moe_counts_its_shared_experts():
    """The shared experts (5,632 wide, every token) and their gate are what takes
    Qwen1.5-MoE-A2.7B from 13.5B to 14.3B: three 2,048 x 5,632 matrices and 2,048 gate
    weights per layer."""
    m = model_from_hf_dict(QWEN15_MOE, "q/config.json")
    assert (m.shared_ff, m.shared_gate) == (5632, True)
    without = model_from_hf_dict({**QWEN15_MOE, "shared_expert_intermediate_size": 0}, "q")
    assert m.param_count() - without.param_count() == 24 * (3 * 2048 * 5632 + 2048)


def test_shared_expert_flops_by_hand():
    """A decode step's MoE GEMM FLOPs: top-4 routed experts and the shared MLP, per token
    2 x 3 x d x (4 x 1,408 + 5,632), at TP 1 and split over TP 2."""
    m = model_from_hf_dict(QWEN15_MOE, "q/config.json")
    for tp in (1, 2):
        sc = Scenario(batch=8, prompt_len=16, gen_len=2, tp=tp)
        ops = [op for op in trace_model(m, sc).ops
               if op.phase == "decode" and op.layer == 3 and op.kind == "matmul"
               and op.name in ("ffn_up", "ffn_down", "shared_up", "shared_down")]
        flops = sum(op.flops for op in ops)
        assert flops == 8 * 2 * 3 * 2048 * (4 * 1408 + 5632), tp
        assert {op.name for op in ops} == {"ffn_up", "ffn_down", "shared_up", "shared_down"}


def test_mistral_window_caps_attention_and_kv_cache():
    """Mistral-7B-v0.1 reads at most 4,096 keys in every layer: a decode step at KV length
    6,000 attends to 4,096 (QK^T: 2 x heads x head_dim x 4,096 per request) and the KV cache
    holds 4,096 tokens per request (2 x 32 layers x 8 KV heads x 128 x 2 B each)."""
    m = model_from_hf_dict(MISTRAL_7B_V01, "m/config.json")
    assert (m.sliding_window, m.global_every, m.windowed_layers()) == (4096, 0, 32)
    sc = Scenario(batch=2, prompt_len=5999, gen_len=3)
    qk = [op for op in trace_model(m, sc).ops
          if op.phase == "decode" and op.name == "qk" and op.layer == 0]
    assert qk[0].flops == 2 * 2 * 32 * 128 * 4096
    assert kv_cache_bytes(m, sc) == 2 * 2 * 32 * 8 * 128 * 2 * 4096
    short = Scenario(batch=2, prompt_len=100, gen_len=3)   # under the window: every key
    assert kv_cache_bytes(m, short) == 2 * 2 * 32 * 8 * 128 * 2 * 103


def test_gemma2_alternates_windowed_and_global_layers():
    """Gemma 2 9B: even layers windowed (4,096 keys), odd layers global (HF Gemma2); 21 of
    42 windowed; its parameters are the Gemma 2 report's 8,324,201,984 non-embedding plus
    917,504,000 embedding; four norms per layer (post-norms)."""
    m = model_from_hf_dict(GEMMA2_9B, "g/config.json")
    assert m.windowed(0) and not m.windowed(1) and m.windowed_layers() == 21
    assert m.non_embedding_params() == 8_324_201_984
    assert m.param_count() == 8_324_201_984 + 917_504_000
    sc = Scenario(batch=1, prompt_len=5000, gen_len=3)
    ops = trace_model(m, sc).ops
    qk = {op.layer: op.flops for op in ops if op.phase == "decode" and op.name == "qk"
          and op.step == 1}
    per_key = 2 * 16 * 256
    assert qk[0] == qk[40] == per_key * 4096 and qk[1] == qk[41] == per_key * 5001
    norms = [op.name for op in ops if op.layer == 0 and op.phase == "prefill"
             and op.op_class == "norm"]
    assert norms == ["ln_attn", "ln_attn_post", "ln_ffn", "ln_ffn_post"]
    per_layer_token = 2 * 8 * 256 * 2   # K and V, 8 KV heads, 256 dims, fp16
    assert kv_cache_bytes(m, sc) == pytest.approx(per_layer_token * (21 * 4096 + 21 * 5003))


def _folds_like_op_by_op(m: ModelConfig, sc: Scenario, monkeypatch) -> list:
    """The op-by-op trace of ``m`` under ``sc``, after checking that the folded trace has its
    FLOPs op for op and that a folded run gives the unfolded run's metrics (h100)."""
    from arch import load_arch
    from sim.run import simulate

    want = trace_model(m, sc, compact=False).ops
    folded = trace_model(m, sc, compact=True).compact
    assert isinstance(folded, FoldedOps)
    assert np.array_equal(np.array([k.flops for k in folded.kinds])[folded.kind],
                          [op.flops for op in want])
    got = simulate(load_arch("h100"), m, sc)
    assert got.folded_ops() is not None
    monkeypatch.setattr(tracer, "FOLD", False)
    ref = simulate(load_arch("h100"), m, sc)
    monkeypatch.setattr(tracer, "FOLD", True)
    for key, value in ref.metrics.items():
        assert got.metrics[key] == pytest.approx(value, rel=1e-11, abs=1e-15), key
    return want


def _tiny(**kw) -> ModelConfig:
    base = dict(name="tiny", family="llama", n_layers=4, d_model=64, n_heads=4, n_kv_heads=2,
                d_ff=128, vocab_size=100, max_positions=4096, norm="rmsnorm",
                activation="swiglu", position="rope", tied_embeddings=False, bias=False)
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("window,every", [(12, 0), (12, 2), (12, 3)])
def test_long_decode_paths_match_the_op_by_op_trace(window, every, monkeypatch):
    """A decode that crosses the window (prompt 6, 20 steps, window 12): the compact trace
    and the folded one (the windowed layers' attention resized to at most the window, the
    global layers' to the KV length) have, op for op, the FLOPs and bytes of the trace
    stamped op by op; a folded run's metrics are the unfolded run's."""
    m = _tiny(sliding_window=window, global_every=every)
    sc = Scenario(batch=2, prompt_len=6, gen_len=20)
    want = _folds_like_op_by_op(m, sc, monkeypatch)
    monkeypatch.setattr(tracer, "FOLD", False)
    got = trace_model(m, sc, compact=True).compact
    assert len(got) == len(want)
    flops = np.array([k.flops for k in got.kinds])[got.kind]
    nbytes = np.array([k.bytes for k in got.kinds])[got.kind]
    assert np.array_equal(flops, [op.flops for op in want])
    assert np.array_equal(nbytes, [op.bytes for op in want])
    assert np.array_equal(got.layer, [op.layer for op in want])
    # the last step's global layers read all 25 keys, the windowed ones 12
    last = [op for op in want if op.step == 19 and op.name == "qk"]
    assert [op.flops for op in last] == [2 * 2 * 4 * 16 * (window if m.windowed(op.layer)
                                                         else 25) for op in last]
    monkeypatch.setattr(tracer, "FOLD", True)
    folded = trace_model(m, sc, compact=True).compact
    assert np.array_equal(np.array([k.bytes for k in folded.kinds])[folded.kind], nbytes)


def test_gemma3_text_config_and_layer_types():
    """Gemma 3 (its ``text_config``): every 6th layer global by ``sliding_window_pattern``
    or by ``layer_types``; a pattern the model cannot hold is one line naming the field."""
    text = {"hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34,
            "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
            "vocab_size": 262208, "sliding_window": 1024, "sliding_window_pattern": 6,
            "max_position_embeddings": 131072}
    m = model_from_hf_dict({"model_type": "gemma3", "text_config": text}, "g3/config.json")
    assert (m.family, m.sliding_window, m.global_every, m.windowed_layers()) == \
        ("gemma3_text", 1024, 6, 29)
    assert m.tied_embeddings and m.post_norms
    types = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(34)]
    by_types = model_from_hf_dict({"model_type": "gemma3_text", **text,
                                   "sliding_window_pattern": None, "layer_types": types}, "x")
    assert by_types == m.__class__(**{**m.__dict__, "name": by_types.name,
                                      "source": by_types.source})
    with pytest.raises(WorkloadError, match="g.json: text_config.num_attention_heads: "
                                            "missing required field"):
        model_from_hf_dict({"model_type": "gemma3", "text_config": {"hidden_size": 64}},
                           "g.json")
    types[0] = "full_attention"
    with pytest.raises(WorkloadError, match="c.json: layer_types: expected full_attention "
                                            "at every n-th layer or none"):
        model_from_hf_dict({"model_type": "gemma3_text", **text, "layer_types": types},
                           "c.json")


def test_qwen3_olmo2_granite_starcoder2_layouts():
    """Qwen3 has no q/k/v biases (unlike Qwen2) and an explicit head_dim; Qwen3-MoE routes 8
    of 128 experts; OLMo 2 and Granite are Llama-shaped; StarCoder2 has LayerNorm, a plain
    GELU MLP with biases and a 4,096-key window."""
    q3 = model_from_hf_dict({"model_type": "qwen3", "hidden_size": 1024,
                             "intermediate_size": 3072, "num_hidden_layers": 28,
                             "num_attention_heads": 16, "num_key_value_heads": 8,
                             "head_dim": 128, "vocab_size": 151936,
                             "tie_word_embeddings": True}, "x")
    assert (q3.head_dim, q3.q_dim, q3.qkv_bias, q3.bias) == (128, 2048, False, False)
    # the query/key norm: one RMSNorm over every query and key head (16 + 8 a token) of 128
    # channels, after the QKV projection; checked against the float64 reference
    ops = [op for op in trace_model(q3, Scenario(batch=4, prompt_len=8, gen_len=2)).ops
           if op.layer == 0 and op.phase == "decode"]
    names = [op.name for op in ops]
    assert names[names.index("qkv_proj") + 1] == "qk_norm"
    assert ops[names.index("qk_norm")].compute.size == {"t": 4 * 24, "d": 128}
    from arch import load_arch
    from sim.functional.layer import CheckSpec, check_layer
    rep = check_layer(load_arch("h100"), q3, CheckSpec(batch=1, prompt=16, max_width=256))
    assert rep.passed and "qk_norm" in {r.op for r in rep.rows}
    moe = model_from_hf_dict({"model_type": "qwen3_moe", "hidden_size": 2048,
                              "intermediate_size": 6144, "moe_intermediate_size": 768,
                              "num_experts": 128, "num_experts_per_tok": 8,
                              "num_hidden_layers": 48, "num_attention_heads": 32,
                              "num_key_value_heads": 4, "head_dim": 128,
                              "vocab_size": 151936, "mlp_only_layers": [],
                              "decoder_sparse_step": 1}, "x")
    assert (moe.n_experts, moe.top_k, moe.d_ff, moe.shared_ff) == (128, 8, 768, 0)
    with pytest.raises(WorkloadError, match="m.json: mlp_only_layers: expected \\[\\]"):
        model_from_hf_dict({"model_type": "qwen3_moe", "hidden_size": 64,
                            "intermediate_size": 64, "num_experts": 4,
                            "num_hidden_layers": 2, "num_attention_heads": 4,
                            "vocab_size": 10, "mlp_only_layers": [0]}, "m.json")
    sc2 = model_from_hf_dict({"model_type": "starcoder2", "hidden_size": 6144,
                              "intermediate_size": 24576, "num_hidden_layers": 40,
                              "num_attention_heads": 48, "num_key_value_heads": 4,
                              "vocab_size": 49152, "sliding_window": 4096,
                              "hidden_act": "gelu_pytorch_tanh", "use_bias": True,
                              "max_position_embeddings": 16384}, "x")
    assert (sc2.norm, sc2.activation, sc2.bias, sc2.sliding_window, sc2.global_every) == \
        ("layernorm", "gelu", True, 4096, 0)
    for kind in ("olmo2", "granite"):
        m = model_from_hf_dict({"model_type": kind, "hidden_size": 4096,
                                "intermediate_size": 11008, "num_hidden_layers": 32,
                                "num_attention_heads": 32, "vocab_size": 100352}, "x")
        assert (m.norm, m.activation, m.family) == ("rmsnorm", "swiglu", kind)
    # OLMo-2-1124-7B by hand: untied embeddings, and per layer the four projections, the
    # gated MLP, two norms and the query/key norms' gain per channel of the projections
    d, ff, layers = 4096, 11008, 32
    by_hand = 2 * 100352 * d + layers * (4 * d * d + 3 * d * ff + 2 * d + 2 * d) + d
    assert m.qk_norm == "" and by_hand == 7_298_617_344 == model_from_hf_dict(
        {"model_type": "olmo2", "hidden_size": d, "intermediate_size": ff,
         "num_hidden_layers": layers, "num_attention_heads": 32, "num_key_value_heads": 32,
         "vocab_size": 100352, "tie_word_embeddings": False}, "x").param_count()


def test_window_and_shared_expert_fields_checked():
    with pytest.raises(WorkloadError, match="shared_ff: shared experts need a mixture"):
        _tiny(shared_ff=64)
    with pytest.raises(WorkloadError, match="global_every: global layers among windowed"):
        _tiny(global_every=2)


def test_check_runs_shared_experts_post_norms_and_windows():
    """``xpusim check`` runs the new ops against the float64 references (shared experts,
    post-norms, windowed decode attention over the last window keys), a MoE decode step
    that loads fewer experts than the prefill, and refuses a windowed prefill longer than the
    window in one line."""
    from arch import load_arch
    from sim.devices.base import SimError
    from sim.functional.layer import CheckSpec, check_layer
    from workloads.models import get_model

    arch = load_arch("h100")
    spec = CheckSpec(batch=1, prompt=16, max_width=256)
    for model in (model_from_hf_dict(QWEN15_MOE, "q"), model_from_hf_dict(GEMMA2_9B, "g"),
                  get_model("mixtral-8x7b")):
        rep = check_layer(arch, model, spec)
        names = {r.op for r in rep.rows}
        assert rep.passed and "ffn_up" in names, model.name
    assert {"shared_up", "shared_down", "shared_add"} <= \
        {r.op for r in check_layer(arch, model_from_hf_dict(QWEN15_MOE, "q"), spec).rows}
    tiny = {**GEMMA2_9B, "sliding_window": 8}
    rep = check_layer(arch, model_from_hf_dict(tiny, "g"),
                      CheckSpec(batch=1, prompt=16, max_width=256, phases=("decode",)))
    assert rep.passed and {"ln_attn_post", "ln_ffn_post", "qk", "av"} <= \
        {r.op for r in rep.rows}
    with pytest.raises(SimError, match="--prompt: 16 tokens exceed gemma2's 8-key window"):
        check_layer(arch, model_from_hf_dict(tiny, "g"), CheckSpec(batch=1, prompt=16))


def test_serving_iterations_price_windowed_and_global_layers():
    """``xpusim serve``'s iteration model: a Gemma 2 decode attention at KV length 12,288 is
    21 global layers at 12,288 keys plus 21 windowed ones at 4,096, each as the tracer's op;
    under the window every layer reads every key."""
    from arch import load_arch
    from sim.serve.costs import IterationModel

    m = model_from_hf_dict(GEMMA2_9B, "g")
    model = IterationModel(load_arch("h100"), m)
    bld = model.builder

    def one(n: int, local: bool) -> float:
        return model._ops_cost(bld.attention(8, 1, n, local), "decode").seconds

    got = model.decode_attention(8, 12288).seconds
    assert got == pytest.approx(21 * one(12288, False) + 21 * one(4096, True), rel=1e-12)
    assert one(4096, True) < 0.5 * one(12288, False)
    assert model.decode_attention(8, 1024).seconds == pytest.approx(42 * one(1024, False),
                                                                    rel=1e-12)


# DeepSeek configs (deepseek-ai/DeepSeek-V3, DeepSeek-V2-Lite, deepseek-moe-16b-base)
DEEPSEEK_V3 = {"model_type": "deepseek_v3", "vocab_size": 129280, "hidden_size": 7168,
               "intermediate_size": 18432, "moe_intermediate_size": 2048,
               "num_hidden_layers": 61, "num_attention_heads": 128,
               "num_key_value_heads": 128, "n_shared_experts": 1, "n_routed_experts": 256,
               "num_experts_per_tok": 8, "first_k_dense_replace": 3, "moe_layer_freq": 1,
               "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
               "qk_rope_head_dim": 64, "v_head_dim": 128, "topk_method": "noaux_tc",
               "num_nextn_predict_layers": 1, "tie_word_embeddings": False,
               "max_position_embeddings": 163840}
DEEPSEEK_V2_LITE = {"model_type": "deepseek_v2", "vocab_size": 102400, "hidden_size": 2048,
                    "intermediate_size": 10944, "moe_intermediate_size": 1408,
                    "num_hidden_layers": 27, "num_attention_heads": 16,
                    "num_key_value_heads": 16, "n_shared_experts": 2, "n_routed_experts": 64,
                    "num_experts_per_tok": 6, "first_k_dense_replace": 1, "moe_layer_freq": 1,
                    "q_lora_rank": None, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
                    "qk_rope_head_dim": 64, "v_head_dim": 128, "topk_method": "greedy",
                    "tie_word_embeddings": False, "max_position_embeddings": 163840}
DEEPSEEK_MOE_16B = {"model_type": "deepseek", "vocab_size": 102400, "hidden_size": 2048,
                    "intermediate_size": 10944, "moe_intermediate_size": 1408,
                    "num_hidden_layers": 28, "num_attention_heads": 16,
                    "num_key_value_heads": 16, "n_shared_experts": 2, "n_routed_experts": 64,
                    "num_experts_per_tok": 6, "first_k_dense_replace": 1, "moe_layer_freq": 1,
                    "tie_word_embeddings": False, "max_position_embeddings": 4096}


DEEPSEEK_V2 = {**DEEPSEEK_V2_LITE, "hidden_size": 5120, "intermediate_size": 12288,
               "moe_intermediate_size": 1536, "num_hidden_layers": 60,
               "num_attention_heads": 128, "num_key_value_heads": 128,
               "n_routed_experts": 160, "q_lora_rank": 1536,
               "topk_method": "group_limited_greedy"}


def test_deepseek_published_counts():
    """Exact: the checkpoints' safetensors totals - DeepSeek-V2-Lite-Chat 15,706,484,224;
    DeepSeek-V3's FP8 checkpoint 684,531,386,000, which is the main model's 671,026,419,200
    plus its multi-token-prediction layer (13,463,426,304, with its own copies of the
    embedding and head) plus 41,540,496 FP8 scales (gogongxt/python scripts @ cbff706d,
    d881ab73). Rounded: the V3 README's "671B ... 37B activated", the V2 README's "236B,
    21B activated" and V2-Lite's "2.4B activated" (without the input embedding, 102,400 x
    2,048), DeepSeekMoE's "16.4B" (16.376 on the Open LLM Leaderboard)."""
    v3 = model_from_hf_dict(DEEPSEEK_V3, "v3")
    assert v3.param_count() == 671_026_419_200 == 684_531_386_000 - 13_463_426_304 - 41_540_496
    assert v3.active_param_count() == pytest.approx(37e9, rel=0.02)
    lite = model_from_hf_dict(DEEPSEEK_V2_LITE, "lite")
    assert lite.param_count() == 15_706_484_224
    assert lite.active_param_count() - 102400 * 2048 == pytest.approx(2.4e9, rel=0.03)
    v2 = model_from_hf_dict(DEEPSEEK_V2, "v2")
    assert v2.param_count() == pytest.approx(236e9, rel=3e-3)
    assert v2.active_param_count() == pytest.approx(21e9, rel=0.02)
    moe = model_from_hf_dict(DEEPSEEK_MOE_16B, "moe")
    assert moe.param_count() == pytest.approx(16.376e9, rel=1e-4)
    # by hand: V3's three dense layers hold 3 x 18,432-wide MLPs instead of 256 + 1 experts
    # of 2,048 and a router with its bias
    d = 7168
    dense, moe_layer = 3 * d * 18432, 257 * 3 * d * 2048 + (d + 1) * 256
    all_moe = model_from_hf_dict({**DEEPSEEK_V3, "first_k_dense_replace": 0}, "x")
    assert all_moe.param_count() - v3.param_count() == 3 * (moe_layer - dense)


def test_latent_attention_by_hand():
    """DeepSeek-V3 at TP 8 (16 heads a rank): a decode step's latent attention over KV length
    n - q_absorb 2 x heads x 128 x 512, QK^T 2 x heads x 576 x n, AV 2 x heads x n x 512,
    v_absorb 2 x heads x 512 x 128 per request - its prefill expands n latents to keys and
    values (2 x n x 512 x heads x 256) and runs 192-wide heads; the KV cache holds 576 values
    per token and layer on every rank; the first three layers are dense."""
    m = model_from_hf_dict(DEEPSEEK_V3, "v3")
    sc = Scenario(batch=2, prompt_len=100, gen_len=3, tp=8, dtype="fp8")
    ops = trace_model(m, sc).ops
    h = 16
    dec = {op.name: op.flops / op.shards for op in ops   # per rank
           if op.phase == "decode" and op.step == 1 and op.layer == 5}
    n = 101
    assert dec["q_absorb"] == 2 * 2 * h * 128 * 512
    assert dec["qk"] == 2 * 2 * h * 576 * n
    assert dec["av"] == 2 * 2 * h * n * 512
    assert dec["v_absorb"] == 2 * 2 * h * 512 * 128
    assert dec["q_b_proj"] == 2 * 2 * 1536 * h * 192 and dec["o_proj"] == 2 * 2 * h * 128 * 7168
    pre = {op.name: op.flops / op.shards for op in ops
           if op.phase == "prefill" and op.layer == 5}
    assert pre["kv_b_proj"] == 2 * 2 * 100 * 512 * h * 256
    assert pre["qk"] == 2 * 2 * h * 100 * 100 * 192 and pre["av"] == 2 * 2 * h * 100 * 100 * 128
    from workloads.tracer import kv_bytes_per_token
    assert kv_bytes_per_token(m, "fp8", 8) == 61 * 576 * 1
    by_layer = {(op.layer, op.name) for op in ops if op.phase == "decode"}
    assert (2, "ffn_up") in by_layer and (2, "router") not in by_layer
    assert {(3, "router"), (3, "shared_up")} <= by_layer
    up = {op.layer: op.flops / op.shards for op in ops
          if op.phase == "decode" and op.step == 1 and op.name == "ffn_up"}
    assert up[0] == 2 * 2 * 7168 * 2 * 18432 // 8


def test_latent_attention_folds_and_serves(monkeypatch):
    """A small latent-attention MoE with a dense first layer: the folded long decode has, op
    for op, the op-by-op trace's FLOPs, and its run the unfolded run's metrics; ``xpusim
    serve``'s token-linear cost is the dense layer's plus the MoE layers'."""
    m = model_from_hf_dict({**DEEPSEEK_V2_LITE, "hidden_size": 256, "num_hidden_layers": 3,
                            "num_attention_heads": 4, "num_key_value_heads": 4,
                            "n_routed_experts": 8, "num_experts_per_tok": 2,
                            "moe_intermediate_size": 64, "intermediate_size": 512,
                            "kv_lora_rank": 64, "qk_nope_head_dim": 32,
                            "qk_rope_head_dim": 16, "v_head_dim": 32, "vocab_size": 1000}, "s")
    _folds_like_op_by_op(m, Scenario(batch=2, prompt_len=6, gen_len=24), monkeypatch)
    from arch import load_arch
    from sim.serve.costs import IterationModel

    it = IterationModel(load_arch("h100"), m)
    bld = it.builder
    from sim.serving.layer_costs import ATTN as skip
    moe = [t for t in bld.layer(1, 64, 1) if t.name not in skip]
    dense = [t for t in bld.layer(1, 64, 1, dense=True) if t.name not in skip]
    assert {t.name for t in dense} >= {"ffn_up", "ffn_down"} and \
        "router" not in {t.name for t in dense}
    want_s = 2 * it._ops_cost(moe, "prefill").seconds + it._ops_cost(dense, "prefill").seconds \
        + it._ops_cost(bld.embedding(64), "prefill").seconds
    assert it.linear(64).seconds == pytest.approx(want_s, rel=1e-12)


def test_deepseek_refusals_in_one_line(capsys):
    """Dense layers between MoE ones, and a functional check of latent attention, are one
    line naming the field; DeepSeekMoE's check runs its dense first layer."""
    from arch import load_arch
    from sim.functional.layer import CheckSpec, check_layer
    from xpusim.cli import main

    with pytest.raises(WorkloadError, match="d.json: moe_layer_freq: expected 1"):
        model_from_hf_dict({**DEEPSEEK_V3, "moe_layer_freq": 2}, "d.json")
    rep = check_layer(load_arch("h100"), model_from_hf_dict(DEEPSEEK_MOE_16B, "moe"),
                      CheckSpec(batch=1, prompt=16, max_width=256))
    assert rep.passed and "router" not in {r.op for r in rep.rows}
    import json
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/config.json"
        with open(path, "w") as f:
            json.dump(DEEPSEEK_V3, f)
        assert main(["check", "--model", path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "multi-head latent attention is priced but not checked" in err[0]


def test_sweep_over_the_sliding_window(tmp_path):
    """``model.sliding_window`` as a DSE axis: each point's KV cache is the hand count
    (8 requests x 32 layers x 8 KV heads x 128 x K and V x 2 B x min(window, 6,016 tokens)) and
    a wider window never decodes faster."""
    from dse import load_results, run_sweep, sweep_from_dict

    spec = sweep_from_dict({
        "name": "window", "arch": "h100",
        "axes": {"model.sliding_window": [512, 2048, 8192]},
        "workloads": [{"name": "decode", "model": "mistral-7b", "batch": 8,
                       "prompt_len": 6000, "gen_len": 16}],
        "objectives": [{"min": "tpot_s"}]}, "w.yaml")
    run_sweep(spec, tmp_path / "out", report=False)
    df = load_results(tmp_path / "out").sort_values("model.sliding_window")
    per_token = 8 * 32 * 8 * 128 * 2 * 2
    assert df["kv_cache_bytes_per_device"].tolist() == [per_token * 512, per_token * 2048,
                                                        per_token * 6016]
    assert df["tpot_s"].is_monotonic_increasing


def test_flash_mla_against_its_published_rates():
    """FlashMLA on an H800 SXM5 (the H100 SXM5's GH100 die: 132 SMs, 3.35 TB/s HBM3):
    "up to 3000 GB/s in memory-bound configuration" and, in its 2025-04-22 kernel, "up to 660
    TFlops" compute-bound (deepseek-ai/FlashMLA README and deep-dive). The h100 preset's
    FlashMLA model, its rates formed here by hand from the kernel's bytes (576 values per
    token, read once: keys and values are one tensor) and FLOPs (2 h_q s_q s_k (576 + 512)):
    a memory-bound decode (16 heads a rank) within 10% of 3000 GB/s, a compute-bound one (128
    heads, two query tokens) within 15% of 660 TFLOP/s at the boost clock (751). FlashMLA's
    benchmark runs the kernel back to back, so the GPU's power limit sets its clock (the
    deep-dive: ~1,600 MHz under this load): priced that way (``sim.sustained``, duty 1, as
    ``xpusim op attention --duty 1`` prices it) the h100 model runs it at 84.7% of boost
    (1,677 MHz) and 637 TFLOP/s, within 5% of 660, while the memory-bound kernel keeps its
    clock and 2,966 GB/s."""
    from arch import load_arch
    from sim.devices.base import device_for
    from sim.devices.gpu import attention_shape
    from sim.gpu.attention import AttentionShape, flash_mla
    from workloads.tracer import LayerBuilder

    ahw = device_for(load_arch("h100"), "tile")._attn_hw("fp16")

    def rates(h_q: int, s_q: int, b: int, n: int) -> tuple[float, float]:
        sh = AttentionShape(batch=b, q_heads=h_q, kv_heads=1, q_len=s_q, kv_len=n,
                            head_dim=576, v_dim=512, kv_shared=True)
        t = flash_mla(ahw, sh)["time"]
        return b * n * 576 * 2 / t, 2 * b * h_q * s_q * n * (576 + 512) / t

    assert rates(16, 1, 64, 16384)[0] == pytest.approx(3000e9, rel=0.10)
    assert rates(128, 2, 64, 16384)[1] == pytest.approx(660e12, rel=0.15)
    from sim.sustained import sustained_cost
    from xpusim.commands.op import attention_op

    arch = load_arch("h100")
    for h_q, s_q, b, n, rate, per in ((128, 2, 64, 16384, 660e12, "flops"),
                                      (16, 1, 64, 16384, 3000e9, "bytes")):
        op = attention_op(b, h_q, 1, s_q, n, 576, "bf16", v_dim=512, shared_kv=True)
        cost, state = sustained_cost(arch, op, 1.0, "tile")
        got = (op.flops if per == "flops" else b * n * 576 * 2) / cost.latency
        assert got == pytest.approx(rate, rel=0.05), per
        assert (state.speed < 0.9) == (per == "flops")
    # the traced decode attention of DeepSeek-V3 (TP 8: 16 heads) is that kernel's shape
    m = model_from_hf_dict(DEEPSEEK_V3, "v3")
    bld = LayerBuilder(m, Scenario(batch=4, prompt_len=8, gen_len=2, tp=8, attention="flash"))
    fused = [t for t in bld.attention(4, 1, 1000) if t.name == "attention"][0]
    sh = attention_shape(fused.compute)
    assert (sh.q_heads, sh.kv_heads, sh.head_dim, sh.v_dim, sh.kv_shared) == \
        (16, 1, 576, 512, True)
    assert sh.kv_bytes == 4 * 1000 * 576 * 2 and fused.compute.min_bytes >= sh.kv_bytes


LLAMA4_SCOUT = {"model_type": "llama4", "text_config": {
    "hidden_size": 5120, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
    "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8,
    "head_dim": 128, "vocab_size": 202048, "num_local_experts": 16, "num_experts_per_tok": 1,
    "interleave_moe_layer_step": 1, "attention_chunk_size": 8192, "use_qk_norm": True,
    "tie_word_embeddings": False, "max_position_embeddings": 10485760}}
LLAMA4_MAVERICK = {"model_type": "llama4", "text_config": {
    **LLAMA4_SCOUT["text_config"], "num_local_experts": 128, "interleave_moe_layer_step": 2,
    "max_position_embeddings": 1048576}}


def test_llama4_counts_and_layers():
    """Llama 4: the checkpoints' totals (Scout-Instruct's safetensors total 108,641,793,536;
    Maverick's 401,583,781,376, Fireworks' parameter_count) less the vision encoder and
    projector (871,932,416, counted by instantiating transformers' Llama4 on the same
    configs) are the text decoders' exact counts; Meta's model card: "17B (Activated)" for
    both, "109B" / "400B" total. Half of Maverick's layers have a dense 16,384-wide MLP; every
    4th layer attends to every key, the others to their query's 8,192-token chunk."""
    scout = model_from_hf_dict(LLAMA4_SCOUT, "s")
    mav = model_from_hf_dict(LLAMA4_MAVERICK, "m")
    vision = 871_932_416
    assert scout.param_count() == 108_641_793_536 - vision
    assert mav.param_count() == 401_583_781_376 - vision
    assert scout.active_param_count() == pytest.approx(17e9, rel=0.015)
    assert mav.active_param_count() == pytest.approx(17e9, rel=0.015)
    assert (scout.dense_layers(), mav.dense_layers()) == (0, 24)
    assert [mav.dense_layer(i) for i in range(4)] == [True, False, True, False]
    rope = [int((i + 1) % 4 != 0) for i in range(48)]   # HF's default list, written out
    text = LLAMA4_MAVERICK["text_config"]
    assert model_from_hf_dict({"model_type": "llama4_text", **text, "no_rope_layers": rope},
                              "m").global_every == 4
    rope[0] = 0
    with pytest.raises(WorkloadError, match="m.json: no_rope_layers: expected 0 at every "
                                            "n-th layer or none"):
        model_from_hf_dict({"model_type": "llama4_text", **text, "no_rope_layers": rope},
                           "m.json")
    assert (mav.window_kind, mav.sliding_window, mav.windowed_layers(), mav.nope_every) == \
        ("chunked", 8192, 36, 4)
    # by hand: a Maverick MoE layer holds 128 + 1 experts of 3 x 5,120 x 8,192 and a router,
    # a dense layer one 3 x 5,120 x 16,384 MLP
    d = 5120
    assert mav.layer_params() - mav.layer_params(dense=True) == \
        129 * 3 * d * 8192 + d * 128 - 3 * d * 16384


def test_chunked_decode_and_interleaved_layers(monkeypatch):
    """A decode crossing a chunk boundary (chunk 8, KV 6..24): a chunked layer reads
    ``(n - 1) % 8 + 1`` keys (back to 1 at n = 9), the global one all ``n``; odd layers a
    mixture of experts, even ones dense; the folded trace has, op for op, the op-by-op
    trace's FLOPs, and its run the unfolded run's metrics."""
    m = ModelConfig(name="tiny", family="llama4_text", n_layers=4, d_model=64, n_heads=4,
                    n_kv_heads=2, d_ff=32, vocab_size=100, max_positions=4096,
                    norm="rmsnorm", activation="swiglu", position="rope",
                    tied_embeddings=False, bias=False, n_experts=4, top_k=1, shared_ff=32,
                    moe_every=2, dense_ff=128, sliding_window=8, global_every=4,
                    window_kind="chunked", nope_every=4)
    want = _folds_like_op_by_op(m, Scenario(batch=2, prompt_len=5, gen_len=20), monkeypatch)
    per_key = 2 * 2 * 4 * 16
    for op in want:
        if op.name == "qk" and op.phase == "decode":
            n = 5 + op.step
            keys = n if op.layer == 3 else (n - 1) % 8 + 1
            assert op.flops == per_key * keys, (op.step, op.layer)
    routed = {op.layer for op in want if op.name == "router"}
    assert routed == {1, 3}
    rotated = {op.layer for op in want if op.name == "rope"}
    assert rotated == {0, 1, 2}   # the global layer 3 is Llama 4's NoPE layer


def test_qwen_sparse_step_interleaves_dense_layers():
    """Qwen2-MoE's ``decoder_sparse_step`` 2: a mixture of experts where (i + 1) % 2 == 0
    (HF Qwen2MoeDecoderLayer), an ``intermediate_size`` MLP elsewhere; 12 of 24 dense."""
    m = model_from_hf_dict({**QWEN15_MOE, "decoder_sparse_step": 2}, "q")
    assert (m.moe_every, m.dense_ff, m.dense_layers()) == (2, 5632, 12)
    whole = model_from_hf_dict(QWEN15_MOE, "q")
    assert whole.param_count() - m.param_count() == 12 * (
        whole.layer_params() - m.layer_params(dense=True))
    assert m.layer_params(dense=True) == whole.attention_params() + 3 * 2048 * 5632 + 2 * 2048



PRESET_CONFIGS = {"qwen3-8b": QWEN3_8B, "qwen3-30b-a3b": QWEN3_30B_A3B,
                  "qwen1.5-moe-a2.7b": QWEN15_MOE, "gemma2-9b": GEMMA2_9B,
                  "gemma3-1b": GEMMA3_1B, "deepseek-v3": DEEPSEEK_V3,
                  "deepseek-v2-lite": DEEPSEEK_V2_LITE, "llama4-scout": LLAMA4_SCOUT,
                  "llama4-maverick": LLAMA4_MAVERICK, "mistral-7b": MISTRAL_7B_V01}


@pytest.mark.parametrize("name", sorted(PRESET_CONFIGS))
def test_presets_are_their_config_json(name):
    """Each preset (``--model qwen3-8b`` ...) is its published config.json as the reader takes
    it, field for field but its name and source."""
    from workloads.models import get_model

    preset = get_model(name)
    read = model_from_hf_dict(PRESET_CONFIGS[name], f"{name}/config.json")
    assert {k: v for k, v in preset.__dict__.items() if k not in ("name", "source")} == \
        {k: v for k, v in read.__dict__.items() if k not in ("name", "source")}


def test_npu_pim_stages_group_the_new_ops():
    """The NPU+PIM decode model's stages (sim/serving/layer_costs.py): the query/key norm and
    the latent projections run before attention, the absorbed projections with it."""
    from arch import load_arch
    from sim.devices.base import device_for
    from sim.serving.layer_costs import LayerCosts

    dev = device_for(load_arch("h100"), "tile")
    q3 = model_from_hf_dict(QWEN3_8B, "q")
    stages = LayerCosts(dev, q3, 1, "fp16").stages(4, 128)
    assert "qk_norm" in stages["pre"].ops and "qk_norm" not in stages["post"].ops
    lite = model_from_hf_dict(DEEPSEEK_V2_LITE, "lite")
    stages = LayerCosts(dev, lite, 1, "fp16").stages(4, 128)
    assert {"q_proj", "kv_a_proj", "kv_a_norm"} <= set(stages["pre"].ops)
    assert {"q_absorb", "qk", "av", "v_absorb"} <= set(stages["attn"].ops)


STARCODER = {"model_type": "gpt_bigcode", "n_embd": 6144, "n_head": 48, "n_layer": 40,
             "n_inner": 24576, "n_positions": 8192, "vocab_size": 49152, "multi_query": True,
             "activation_function": "gelu_pytorch_tanh"}
COMMAND_R = {"model_type": "cohere", "hidden_size": 8192, "intermediate_size": 22528,
             "num_attention_heads": 64, "num_key_value_heads": 64, "num_hidden_layers": 40,
             "vocab_size": 256000, "max_position_embeddings": 8192,
             "tie_word_embeddings": True, "use_qk_norm": False, "logit_scale": 0.0625}
DBRX = {"model_type": "dbrx", "d_model": 6144, "n_heads": 48, "n_layers": 40,
        "max_seq_len": 32768, "vocab_size": 100352, "tie_word_embeddings": False,
        "attn_config": {"kv_n_heads": 8, "clip_qkv": 8, "rope_theta": 500000},
        "ffn_config": {"ffn_hidden_size": 10752, "moe_num_experts": 16, "moe_top_k": 4}}
INTERNLM2_7B = {"model_type": "internlm2", "hidden_size": 4096, "intermediate_size": 14336,
                "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32,
                "vocab_size": 92544, "max_position_embeddings": 32768, "bias": False,
                "tie_word_embeddings": False}


def test_starcoder_command_r_dbrx_internlm2():
    """StarCoder (BigCode: "15.5B"), GPT-2 with one shared KV head; Command R ("35B"), one
    LayerNorm feeding attention and MLP in parallel; DBRX (Databricks: "132B total, 36B
    active"), 16 experts top 4 from its nested configs; InternLM2-7B ("7B"), Llama-shaped."""
    sc = model_from_hf_dict(STARCODER, "s")
    assert (sc.n_kv_heads, sc.position, sc.tied_embeddings) == (1, "learned", True)
    assert sc.param_count() == pytest.approx(15.5e9, rel=0.005)
    cr = model_from_hf_dict(COMMAND_R, "c")
    assert (cr.block, cr.norm, cr.tied_embeddings) == ("parallel", "layernorm", True)
    assert cr.param_count() == pytest.approx(35e9, rel=0.01)
    db = model_from_hf_dict(DBRX, "d")
    assert (db.n_experts, db.top_k, db.n_kv_heads, db.d_ff) == (16, 4, 8, 10752)
    assert db.param_count() == pytest.approx(132e9, rel=0.005)
    assert db.active_param_count() == pytest.approx(36e9, rel=0.015)
    il = model_from_hf_dict(INTERNLM2_7B, "i")
    assert (il.n_kv_heads, il.bias) == (8, False)
    assert il.param_count() == pytest.approx(7.74e9, rel=0.005)
    # by hand: StarCoder's attention projects to 48 query heads and one K and one V head
    attn = 6144 * (6144 + 2 * 128) + 6144 + 2 * 128 + 6144 * 6144 + 6144
    assert sc.attention_params() == attn
    with pytest.raises(WorkloadError, match="d.json: ffn_config: expected an object"):
        model_from_hf_dict({**DBRX, "ffn_config": 3}, "d.json")
    # Command R+'s query/key norm is traced in its parallel block too
    plus = model_from_hf_dict({**COMMAND_R, "use_qk_norm": True}, "c")
    names = [op.name for op in trace_model(plus, Scenario(batch=1, prompt_len=4, gen_len=2)).ops
             if op.layer == 0 and op.phase == "prefill"]
    assert names[names.index("qkv_proj") + 1] == "qk_norm"


def test_sweep_refuses_a_model_field_the_model_cannot_take():
    """A latent rank swept on a model without latent attention is one line at load time (the
    axis, the workload and the field), not a sweep of failed points."""
    from arch import SpecError
    from dse import sweep_from_dict

    with pytest.raises(SpecError, match="w.yaml: axes: the first design point .* gives "
                                        "workload 'decode' \\(llama2-7b\\) an invalid model: "
                                        "rope_dim: latent attention needs"):
        sweep_from_dict({
            "name": "bad", "arch": "h100", "axes": {"model.kv_lora_rank": [256, 512]},
            "workloads": [{"name": "decode", "model": "llama2-7b", "batch": 1,
                           "prompt_len": 64, "gen_len": 4}],
            "objectives": [{"min": "tpot_s"}]}, "w.yaml")


def test_flash_mla_schedule_by_hand():
    """FlashMLA's schedule (csrc get_mla_metadata: 64-token blocks, 5 blocks of overhead per
    request, the SMs shared by the row blocks of each KV head) for 64 requests of 16,384 keys,
    16 heads (one 64-row block): 132 CTAs, ceil(64 x (256 + 5) / 132) = 127 blocks for the
    busiest, then a combine kernel over 132 splits' fp32 partials (512 values + max and sum a
    row) and the output; with 128 heads x 2 query tokens, 4 row blocks share the SMs (and
    each KV tile): 33 CTAs per row block, 507 blocks each, no combine."""
    import math

    from arch import load_arch
    from sim.devices.base import device_for
    from sim.gpu.attention import AttentionShape, _block_time, flash_mla

    ahw = device_for(load_arch("h100"), "tile")._attn_hw("fp16")
    hw = ahw.gpu
    sh = AttentionShape(batch=64, q_heads=16, kv_heads=1, q_len=1, kv_len=16384, head_dim=576,
                        v_dim=512, kv_shared=True)
    res = flash_mla(ahw, sh)
    assert (res["ctas"], res["splits"]) == (132, 132) and hw.sms == 132
    block = _block_time(ahw, 64, 64, 544, 2.0, 132, 1, hw.attention_overlap, 1, 288)
    combine = hw.launch + max(hw.hbm_latency, (132 * 16 * 514 * 4.0 + 64 * 16 * 512 * 2)
                              / hw.hbm_achievable)
    assert res["time"] == pytest.approx(127 * block + hw.hbm_latency + hw.launch + combine,
                                        rel=1e-12)
    wide = flash_mla(ahw, AttentionShape(batch=64, q_heads=128, kv_heads=1, q_len=2,
                                         kv_len=16384, head_dim=576, v_dim=512,
                                         kv_shared=True))
    assert (wide["ctas"], wide["splits"]) == (132, 33)
    # 33 splits for 64 requests: none spread over two CTAs, so no combine
    wide_block = _block_time(ahw, 64, 64, 544, 2.0, 132, 1, hw.attention_overlap, 4, 288)
    assert math.ceil(64 * (256 + 5) / 33) == 507
    assert wide["time"] == pytest.approx(507 * wide_block + hw.hbm_latency + hw.launch,
                                         rel=1e-12)
