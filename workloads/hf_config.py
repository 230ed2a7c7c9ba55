"""Read a Hugging Face ``config.json`` from disk into a :class:`ModelConfig`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from workloads.errors import WorkloadError
from workloads.hf_families import FAMILIES, read_family
from workloads.hf_fields import (
    HF_ACTIVATIONS,
    ConfigReader,
    activation_of,
    every_nth,
    layer_indices,
    periodic,
)
from workloads.models import ModelConfig
from workloads.safe_json import MAX_BYTES, JsonInputError, load_json_text

_LLAMA_LIKE = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe",
               "gemma", "gemma2", "gemma3_text", "phi3", "olmo2", "granite", "internlm2",
               "gpt_oss", "olmoe", "smollm3", "granitemoe", "qwen2_vl", "qwen2_5_vl",
               "olmo3", "minimax_m2", "seed_oss", "internlm3", "helium", "minicpm", "mimo",
               "ministral")
_GEMMA = ("gemma", "gemma2", "gemma3_text")
_FALCON = ("falcon", "RefinedWebModel", "RefinedWeb")
#: multimodal configs whose ``text_config`` is the decoder: the model type it is read as (None:
#: its own ``model_type``, Mistral Small 3.1's ``mistral`` by default)
_NESTED = {"gemma3": "gemma3_text", "llama4": "llama4_text", "mistral3": None,
           "qwen3_vl": "qwen3", "qwen3_vl_moe": "qwen3_moe", "qwen3_5_moe": "qwen3_5_moe_text",
           "qwen3_5": "qwen3_5_text", "deepseek_vl_v2": "deepseek_v2", "glm4v": "glm4",
           "glm4v_moe": "glm4_moe", "mllama": "mllama_text_model"}
#: the key a type of :data:`_NESTED` nests its decoder under (else ``text_config``)
_NESTED_KEY = {"deepseek_vl_v2": "language_config"}
#: keys under which a multimodal config nests its text decoder's (HF's ``text_config``;
#: InternVL's ``llm_config``; DeepSeek-VL2's ``language_config``)
_NESTING_KEYS = ("text_config", "llm_config", "language_config")
_DEEPSEEK = ("deepseek", "deepseek_v2", "deepseek_v3", "deepseek_v32")
SUPPORTED = (*_LLAMA_LIKE, *_NESTED, "llama4_text", "mllama_text_model", "starcoder2", *_DEEPSEEK,
             "cohere", "dbrx", "gpt2", "gpt_bigcode", "opt", "bloom", "gpt_neox", "gptj",
             *_FALCON, "phi", "bert", "t5", "mamba", "falcon_mamba", *FAMILIES)
#: model types whose config's ``sliding_window`` windows their attention (HF's
#: Mistral/Mixtral/Starcoder2/Gemma2/Gemma3 attention read it; Qwen2/3 only under
#: ``use_sliding_window``, false in their releases; Phi-3's is not modelled)
_WINDOWED = ("mistral", "mixtral", "starcoder2", "gemma2", "gemma3_text", "gpt_oss", "olmo3",
             "ministral")
#: windowed models whose every n-th layer reads every key (HF Gemma2: odd layers; Gemma3:
#: ``sliding_window_pattern``, 6 by default), where the config has no ``layer_types``
_GLOBAL_EVERY = {"gemma2": 2, "gemma3_text": 6, "olmo3": 4}
#: query/key norms (HF Qwen3Attention, Gemma3Attention: per head dimension; Olmo2Attention:
#: over the projections)
_QK_NORM = {"qwen3": "head", "qwen3_moe": "head", "gemma3_text": "head", "olmo2": "full",
            "olmoe": "full", "olmo3": "full"}
#: config.json keys that hold each ModelConfig field (errors name the key of the file)
_HF_KEYS = {
    "n_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "d_model": ("hidden_size", "n_embd", "n_embed"),
    "n_heads": ("num_attention_heads", "n_head"),
    "n_kv_heads": ("num_key_value_heads", "multi_query_group_num", "num_attention_heads",
                   "n_head"),
    "d_ff": ("moe_intermediate_size", "intermediate_size", "ffn_hidden_size", "ffn_dim",
             "n_inner", "hidden_size"),
    "vocab_size": ("vocab_size", "padded_vocab_size"),
    "max_positions": ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"),
    "head_dim": ("head_dim", "kv_channels", "hidden_size"),
    "n_experts": ("num_local_experts", "num_experts"),
    "top_k": ("num_experts_per_tok",),
    "activation": ("hidden_act", "activation_function"),
}


def model_from_hf_dict(data: Any, file: str = "config.json",
                       name: str | None = None) -> ModelConfig:
    """Build a :class:`ModelConfig` from the parsed JSON of a Hugging Face config."""
    model = _build(data, file, name)
    if model.n_heads % model.n_kv_heads:
        key = next((k for k in ("num_key_value_heads", "multi_query_group_num")
                    if isinstance(data, dict) and k in data), "num_key_value_heads")
        raise WorkloadError(file, key, f"expected a divisor of num_attention_heads "
                                       f"({model.n_heads}), got {model.n_kv_heads}")
    if model.head_dim < 1:
        raise WorkloadError(file, "hidden_size", "expected at least one dimension per head")
    return model


def _build(data: Any, file: str, name: str | None) -> ModelConfig:
    try:
        return _build_model(data, file, name)
    except WorkloadError as exc:
        if exc.file or not isinstance(data, dict):
            raise
        keys = _HF_KEYS.get(exc.path, ())
        key = next((k for k in keys if k in data), keys[0] if keys else exc.path)
        raise WorkloadError(file, key, exc.message) from None


def _build_model(data: Any, file: str, name: str | None) -> ModelConfig:
    if not isinstance(data, dict):
        raise WorkloadError(file, "", f"expected a JSON object, got {type(data).__name__}")
    r = ConfigReader(data, file)
    model_type = r.str("model_type", "") or _type_of_architecture(data)
    if not model_type:
        raise WorkloadError(file, "model_type", "missing required field (a text value)")
    name = name or Path(file).parent.name or model_type
    source = f"Hugging Face config.json read from {file}"
    key = _NESTED_KEY.get(model_type, "text_config") if model_type in _NESTED else next(
        (k for k in _NESTING_KEYS if model_type not in SUPPORTED and isinstance(data.get(k), dict)
         and data[k].get("model_type") in SUPPORTED), None)
    if key is not None:   # with a vision tower (LLaVA, PaliGemma, InternVL, DeepSeek-VL2, ...):
        # the text decoder's config
        text = data.get(key)
        if not isinstance(text, dict):
            raise WorkloadError(file, key, "expected an object (the text decoder's config)")
        inner = _NESTED.get(model_type) or text.get("model_type", "mistral")
        # the whole model's head tying where the decoder's config does not say (Qwen3.5-27B)
        tied = {k: data[k] for k in ("tie_word_embeddings",) if k in data and k not in text}
        try:
            return _build_model({**tied, **text, "model_type": inner}, file, name)
        except WorkloadError as exc:   # the field as the file nests it
            raise WorkloadError(file, f"{key}.{exc.path}" if exc.path else key,
                                exc.message) from None
    if model_type == "mllama_text_model":
        return _mllama_text(r, name, source)
    if model_type == "llama4_text":
        return _llama4(r, name, source)
    if model_type in FAMILIES:
        return read_family(model_type, r, name, source)
    if model_type in _LLAMA_LIKE:
        return _llama_like(r, model_type, name, source)
    if model_type in _DEEPSEEK:
        return _deepseek(r, model_type, name, source)
    if model_type == "starcoder2":   # HF Starcoder2: LayerNorm, plain GELU MLP, biases
        heads = r.int("num_attention_heads")
        return ModelConfig(
            name=name, family=model_type, n_layers=r.int("num_hidden_layers"),
            d_model=r.int("hidden_size"), n_heads=heads,
            n_kv_heads=r.int("num_key_value_heads", default=heads),
            d_ff=r.int("intermediate_size"), vocab_size=r.int("vocab_size"),
            max_positions=r.int("max_position_embeddings", default=4096),
            activation=activation_of(r, "hidden_act", "gelu_pytorch_tanh"), position="rope",
            bias=r.bool("use_bias", True), tied_embeddings=r.bool("tie_word_embeddings", True),
            source=source, **_window(r, model_type))
    if model_type == "gpt_bigcode":   # StarCoder, SantaCoder: GPT-2 with multi-query heads
        heads = r.int("n_head")
        return ModelConfig(
            name=name, family="gpt_bigcode", n_layers=r.int("n_layer"),
            d_model=r.int("n_embd"), n_heads=heads,
            n_kv_heads=1 if r.bool("multi_query", True) else heads,
            d_ff=r.int("n_inner", default=4 * r.int("n_embd")), vocab_size=r.int("vocab_size"),
            max_positions=r.int("n_positions", "n_ctx"),
            activation=activation_of(r, "activation_function", "gelu_pytorch_tanh"),
            tied_embeddings=r.bool("tie_word_embeddings", True), source=source)
    if model_type == "cohere":   # Command R: one LayerNorm, attention and MLP in parallel
        heads = r.int("num_attention_heads")
        return ModelConfig(
            name=name, family="cohere", n_layers=r.int("num_hidden_layers"),
            d_model=r.int("hidden_size"), n_heads=heads,
            n_kv_heads=r.int("num_key_value_heads", default=heads),
            d_ff=r.int("intermediate_size"), vocab_size=r.int("vocab_size"),
            max_positions=r.int("max_position_embeddings", default=8192),
            activation="swiglu", position="rope", block="parallel", norm_bias=False,
            bias=r.bool("attention_bias", False),
            tied_embeddings=r.bool("tie_word_embeddings", True),
            qk_norm="full" if r.bool("use_qk_norm", False) else "", source=source)
    if model_type == "dbrx":
        return _dbrx(r, name, source)
    if model_type == "gpt2":
        d = r.int("n_embd")
        return ModelConfig(
            name=name, family="gpt2", n_layers=r.int("n_layer"), d_model=d,
            n_heads=r.int("n_head"), n_kv_heads=r.int("n_head"),
            d_ff=r.int("n_inner", default=4 * d), vocab_size=r.int("vocab_size"),
            max_positions=r.int("n_positions", "n_ctx"), source=source)
    if model_type == "opt":
        heads = r.int("num_attention_heads")
        if r.int("word_embed_proj_dim", default=r.int("hidden_size")) != r.int("hidden_size"):
            raise WorkloadError(file, "word_embed_proj_dim",
                                "OPT models with an embedding projection are not supported")
        return ModelConfig(
            name=name, family="opt", n_layers=r.int("num_hidden_layers"),
            d_model=r.int("hidden_size"), n_heads=heads, n_kv_heads=heads,
            d_ff=r.int("ffn_dim"), vocab_size=r.int("vocab_size"),
            max_positions=r.int("max_position_embeddings"), position_offset=2,
            activation=activation_of(r, "activation_function", "relu"),
            tied_embeddings=r.bool("tie_word_embeddings", True), source=source)
    if model_type == "bloom":
        d = r.int("hidden_size", "n_embed")
        heads = r.int("n_head", "num_attention_heads")
        return ModelConfig(
            name=name, family="bloom", n_layers=r.int("n_layer", "num_hidden_layers"),
            d_model=d, n_heads=heads, n_kv_heads=heads, d_ff=4 * d,
            vocab_size=r.int("vocab_size"), max_positions=r.int("seq_length", default=2048),
            position="alibi", embed_norm=True, source=source)
    if model_type == "gpt_neox":   # HF GPTNeoXLayer: with use_parallel_residual (Pythia,
        # GPT-NeoX-20B) x + attn(ln1(x)) + mlp(ln2(x)); RoPE on rotary_pct of each head
        heads = r.int("num_attention_heads")
        d = r.int("hidden_size")
        return ModelConfig(
            name=name, family="gpt_neox", n_layers=r.int("num_hidden_layers"),
            d_model=d, n_heads=heads, n_kv_heads=heads,
            d_ff=r.int("intermediate_size"), vocab_size=r.int("vocab_size"),
            max_positions=r.int("max_position_embeddings"), position="rope",
            block="parallel2" if r.bool("use_parallel_residual", True) else "sequential",
            rotary_dim=int(d // heads * r.fraction("rotary_pct", 0.25)),
            tied_embeddings=r.bool("tie_word_embeddings", False), source=source)
    if model_type == "gptj":  # HF GPTJ: parallel block, no attention biases, LM head bias
        d = r.int("n_embd")
        heads = r.int("n_head")
        return ModelConfig(
            name=name, family="gptj", n_layers=r.int("n_layer"), d_model=d, n_heads=heads,
            n_kv_heads=heads, d_ff=r.int("n_inner", default=4 * d),
            vocab_size=r.int("vocab_size"), max_positions=r.int("n_positions", default=2048),
            activation=activation_of(r, "activation_function", "gelu_new"), position="rope",
            rotary_dim=r.int("rotary_dim", default=0, minimum=0), block="parallel",
            bias=False, mlp_bias=True, head_bias=True,
            tied_embeddings=r.bool("tie_word_embeddings", False), source=source)
    if model_type in _FALCON:
        return _falcon(r, name, source)
    if model_type in ("bert", "t5", "mamba", "falcon_mamba"):
        return _family(r, model_type, name, source)
    if model_type == "phi":  # HF Phi (phi-1, phi-1.5, phi-2): parallel block, biases everywhere
        heads = r.int("num_attention_heads")
        d = r.int("hidden_size")
        factor = r.fraction("partial_rotary_factor", 0.5)
        return ModelConfig(
            name=name, family="phi", n_layers=r.int("num_hidden_layers"), d_model=d,
            n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
            d_ff=r.int("intermediate_size"), vocab_size=r.int("vocab_size"),
            max_positions=r.int("max_position_embeddings", default=2048),
            activation=activation_of(r, "hidden_act", "gelu_new"), position="rope",
            rotary_dim=int(factor * (d // heads)), block="parallel", head_bias=True,
            tied_embeddings=r.bool("tie_word_embeddings", False), source=source)
    raise WorkloadError(file, "model_type", f"unsupported model_type '{model_type}' "
                                            f"(supported: {', '.join(SUPPORTED)})")


def _mllama_text(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Llama 3.2 Vision's text decoder (``mllama`` nesting ``mllama_text_model``; HF
    MllamaTextModel) as text-only inference runs it: Llama's layers (read as ``llama``); its
    ``cross_attention_layers`` read image states, and without an image transformers and vLLM
    skip them (``skip_cross_attention``), so they are held in memory but not traced
    (``idle_params``: a Llama layer's attention, MLP and two norms, plus a gain per query and
    key head channel and two tanh gates), as are the embedding's 8 extra rows."""
    llama = _llama_like(r, "llama", name, source)
    cross = layer_indices(r, "cross_attention_layers", llama.n_layers, ())
    if len(cross) >= llama.n_layers:
        raise WorkloadError(r.file, "cross_attention_layers", f"expected fewer than "
                                                              f"{llama.n_layers} layers (a "
                                                              "decoder needs a text layer)")
    layer = llama.layer_params() + 2 * llama.head_dim + 2
    return replace(llama, family="mllama", n_layers=llama.n_layers - len(cross),
                   idle_params=len(cross) * layer + 8 * llama.d_model)


def _type_of_architecture(data: dict) -> str:
    """The model type a config without ``model_type`` names by its one architecture, where that
    is a supported type's class (remote code's MiniCPM-2B: ``MiniCPMForCausalLM``); else ""."""
    archs = data.get("architectures")
    if not (isinstance(archs, list) and len(archs) == 1 and isinstance(archs[0], str)):
        return ""
    for suffix in ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration"):
        if archs[0].endswith(suffix):
            guess = archs[0][:-len(suffix)].lower()
            return guess if guess in SUPPORTED else ""
    return ""


def _llama_like(r: ConfigReader, model_type: str, name: str, source: str) -> ModelConfig:
    """Llama-shaped decoders: RMSNorm, RoPE, a gated MLP (or mixture of them), grouped-query
    attention; the norms of the queries and keys (Qwen3, OLMo 2/3, OLMoE, Gemma 3, MiniMax-M2);
    gpt-oss's biases (attention, experts, router), sinks and alternating 128-token window;
    OLMo 3's window in three of four layers; SmolLM3's layers without RoPE; MiniMax-M2's
    partial RoPE and router bias; Seed-OSS's separate output-projection bias. Not traced, each
    under 1% of a layer's work: Gemma 2's logit soft-capping, Granite's multipliers, Qwen2-MoE's
    gate on its shared experts (its parameters are counted), MiniCPM's embedding, residual and
    logit scales. OLMo 2/3 norm after attention and after the MLP instead of before: the same
    two norms a layer, traced in the pre-norm place. Helium's interleaved RoPE is the same
    work; MiMo is Qwen2's decoder, its multi-token-prediction layers (a draft model) left
    out. MiniCPM4's sparse attention (``sparse_config``) is refused, as transformers does."""
    if model_type == "minicpm" and r.data.get("sparse_config") is not None:
        raise WorkloadError(r.file, "sparse_config", "expected null (MiniCPM4's sparse "
                                                     "attention is not modelled)")
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    experts = r.int("num_local_experts", "num_experts", default=1)
    gemma = model_type in _GEMMA   # Gemma ties the LM head to the embedding, gated GELU MLP
    act = activation_of(r, "hidden_activation" if "hidden_activation" in r.data else
                      "hidden_act", "gelu_pytorch_tanh" if gemma else "silu")
    qwen = model_type in ("qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl", "mimo")
    seed = model_type == "seed_oss"
    minimax = model_type == "minimax_m2"
    step = r.int("decoder_sparse_step", default=1) if experts > 1 else 0
    if experts > 1 and r.data.get("mlp_only_layers"):   # Qwen-MoE: dense layers by list
        raise WorkloadError(r.file, "mlp_only_layers", "expected [] (dense layers by list are "
                            "not modelled; every decoder_sparse_step-th layer a mixture of "
                            "experts is)")
    return ModelConfig(
        name=name, family=model_type, n_layers=r.int("num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
        d_ff=r.int("moe_intermediate_size", "intermediate_size") if experts > 1
        else r.int("intermediate_size"),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=4096),
        head_dim=r.int("head_dim", default=d // heads), norm="rmsnorm",
        activation="swiglu" if act in ("silu", "gelu") else act,
        # MiniCPM's configs leave the tying to its class's default (tied)
        position="rope", tied_embeddings=r.bool("tie_word_embeddings",
                                                gemma or model_type == "minicpm"),
        # Qwen2 (HF Qwen2Attention): biases on q/k/v_proj only, none on o_proj or the MLP;
        # InternLM2: ``bias`` on wqkv and wo; Seed-OSS: ``attention_bias`` on q/k/v_proj,
        # ``attention_out_bias`` on o_proj
        bias=False if qwen or seed else r.bool("attention_bias", r.bool("bias", False)),
        qkv_bias=qwen or (seed and r.bool("attention_bias", True))
        or (model_type == "internlm3" and r.bool("qkv_bias", False)),
        attn_bias=seed and r.bool("attention_bias", True)
        and r.bool("attention_out_bias", False),
        mlp_bias=r.bool("mlp_bias", False), n_experts=experts,
        top_k=r.int("num_experts_per_tok", "experts_per_token",
                    default=2 if experts > 1 else 1),
        # gpt-oss (HF GptOssAttention, GptOssTopKRouter): a learned sink logit per head, a
        # bias on the router's scores
        attn_sinks=model_type == "gpt_oss",
        router_bias=experts > 1 and (model_type == "gpt_oss" or (
            minimax and r.bool("use_routing_bias", False))),
        # SmolLM3 (HF SmolLM3Config): no_rope_layers holds 0 where a layer applies no RoPE
        nope_every=every_nth(r, "no_rope_layers", (0, 1), 0)
        if model_type == "smollm3" and r.data.get("no_rope_layers") is not None else 0,
        shared_ff=r.int("shared_expert_intermediate_size", "shared_intermediate_size",
                        default=0, minimum=0) if experts > 1 else 0,
        post_norms=model_type in ("gemma2", "gemma3_text"),
        qk_norm=_minimax_qk_norm(r) if minimax else _QK_NORM.get(model_type, ""),
        # MiniMax-M2: RoPE on the first rotary_dim channels of each head; Phi-4-mini (phi3)
        # and others: on partial_rotary_factor of them
        rotary_dim=r.int("rotary_dim", default=0, minimum=0) if minimax else _partial_rope(
            r, r.int("head_dim", default=d // heads)),
        shared_gate=experts > 1 and model_type == "qwen2_moe"
        and bool(r.int("shared_expert_intermediate_size", default=0, minimum=0)),
        # HF Qwen2MoeDecoderLayer: a mixture of experts where (i + 1) % step == 0, else an
        # intermediate_size-wide MLP
        moe_every=step, dense_ff=r.int("intermediate_size") if step > 1 else 0,
        source=source,
        **_window(r, model_type))


def _partial_rope(r: ConfigReader, head_dim: int) -> int:
    """Channels of a head RoPE rotates where ``partial_rotary_factor`` < 1 (0: all)."""
    factor = r.fraction("partial_rotary_factor", 1.0)
    return int(head_dim * factor) if factor < 1 else 0


def _minimax_qk_norm(r: ConfigReader) -> str:
    """MiniMax-M2's query/key norms (HF MiniMaxM2Attention): over the whole projections where
    ``qk_norm_type`` is ``per_layer`` (its release), per head otherwise; none without
    ``use_qk_norm``."""
    if not r.bool("use_qk_norm", False):
        return ""
    return "full" if r.str("qk_norm_type", "per_layer") == "per_layer" else "head"


def _deepseek(r: ConfigReader, model_type: str, name: str, source: str) -> ModelConfig:
    """DeepSeekMoE (``deepseek``), DeepSeek-V2 and V3: routed and shared experts, the first
    ``first_k_dense_replace`` layers dense (``intermediate_size`` wide); V2/V3 with multi-head
    latent attention; V3.2 (``deepseek_v32``) with DeepSeek sparse attention (``index_topk``
    keys a query, chosen by an ``index_n_heads`` x ``index_head_dim`` indexer). V3's
    multi-token-prediction module (``num_nextn_predict_layers``) is not part of the model's
    forward pass and is left out (the 671B of the V3 report, not the 685B of its
    checkpoint)."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    experts = r.int("n_routed_experts", default=1)
    if r.int("moe_layer_freq", default=1) != 1:
        raise WorkloadError(r.file, "moe_layer_freq", "expected 1 (dense layers between "
                                                      "mixture-of-experts ones are not modelled)")
    moe = experts > 1
    ff = r.int("moe_intermediate_size") if moe else r.int("intermediate_size")
    latent: dict[str, int] = {}
    if model_type != "deepseek" and r.bool("use_mla", True):   # (DeepSeek-VL2-Tiny: MHA)
        rope = r.int("qk_rope_head_dim")
        latent = {"kv_lora_rank": r.int("kv_lora_rank"),
                  "q_lora_rank": r.int("q_lora_rank", default=0, minimum=0),
                  "rope_dim": rope, "rotary_dim": rope,
                  "head_dim": r.int("qk_nope_head_dim") + rope,
                  "v_head_dim": r.int("v_head_dim")}
        if model_type == "deepseek_v32":   # DeepSeek sparse attention's lightning indexer
            latent.update(index_topk=r.int("index_topk"), index_heads=r.int("index_n_heads"),
                          index_head_dim=r.int("index_head_dim"))
    return ModelConfig(
        name=name, family=model_type, n_layers=r.int("num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads), d_ff=ff,
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=4096), norm="rmsnorm",
        activation="swiglu", position="rope",
        tied_embeddings=r.bool("tie_word_embeddings", False),
        bias=r.bool("attention_bias", False), n_experts=experts,
        top_k=r.int("num_experts_per_tok", default=1) if moe else 1,
        shared_ff=r.int("n_shared_experts", default=0, minimum=0) * ff if moe else 0,
        first_dense=min(r.int("first_k_dense_replace", default=0, minimum=0),
                        r.int("num_hidden_layers")) if moe else 0,
        dense_ff=r.int("intermediate_size") if moe else 0,
        router_bias=moe and r.str("topk_method", "") == "noaux_tc", source=source, **latent)


def _llama4(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Llama 4 (HF Llama4TextConfig): a mixture of ``num_local_experts`` experts
    (``intermediate_size`` wide, top ``num_experts_per_tok``) plus one shared expert of the same
    width in every ``interleave_moe_layer_step``-th layer, the others a dense
    ``intermediate_size_mlp``-wide MLP; chunked attention (``attention_chunk_size``) in the
    layers with RoPE, every key in the others (``no_rope_layers``: 0 marks them; by default
    every 4th), whose layers apply no RoPE. Not traced: its weightless L2 norm of the queries
    and keys and its NoPE layers' query temperature (one multiply per query element)."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    layers = r.int("num_hidden_layers")
    experts = r.int("num_local_experts", default=1)
    ff = r.int("intermediate_size")
    window: dict[str, Any] = {}
    chunk = r.int("attention_chunk_size", default=0, minimum=0)
    if chunk:
        # HF Llama4TextConfig: no (or an empty) list means every 4th layer without RoPE
        every = 4 if r.data.get("no_rope_layers") in (None, []) else \
            every_nth(r, "no_rope_layers", (0, 1), 0)
        window = {"sliding_window": chunk, "global_every": every, "window_kind": "chunked",
                  "nope_every": every}
    step = r.int("interleave_moe_layer_step", default=1) if experts > 1 else 0
    return ModelConfig(
        name=name, family="llama4_text", n_layers=layers, d_model=d, n_heads=heads,
        n_kv_heads=r.int("num_key_value_heads", default=heads), d_ff=ff,
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=4096),
        head_dim=r.int("head_dim", default=d // heads), norm="rmsnorm", activation="swiglu",
        position="rope", tied_embeddings=r.bool("tie_word_embeddings", False),
        bias=r.bool("attention_bias", False), n_experts=experts,
        top_k=r.int("num_experts_per_tok", default=1) if experts > 1 else 1,
        shared_ff=ff if experts > 1 else 0, moe_every=step,
        dense_ff=r.int("intermediate_size_mlp", default=ff) if step > 1 else 0,
        source=source, **window)


def _dbrx(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """DBRX (HF DbrxConfig): its ``attn_config`` and ``ffn_config`` objects; a mixture of
    ``moe_num_experts`` gated experts (top ``moe_top_k``) in every layer, LayerNorms without
    biases, no linear biases. ``clip_qkv`` (a clamp of the QKV output) is not traced."""
    def section(key: str) -> ConfigReader:
        value = r.data.get(key)
        if not isinstance(value, dict):
            raise WorkloadError(r.file, key, "expected an object")
        return ConfigReader(value, r.file)

    attn, ffn = section("attn_config"), section("ffn_config")
    heads = r.int("n_heads")
    experts = ffn.int("moe_num_experts")
    return ModelConfig(
        name=name, family="dbrx", n_layers=r.int("n_layers"), d_model=r.int("d_model"),
        n_heads=heads, n_kv_heads=attn.int("kv_n_heads", default=heads),
        d_ff=ffn.int("ffn_hidden_size"), vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_seq_len", default=32768), activation="swiglu",
        position="rope", bias=False, norm_bias=False,
        tied_embeddings=r.bool("tie_word_embeddings", False),
        n_experts=experts, top_k=ffn.int("moe_top_k", default=1) if experts > 1 else 1,
        source=source)


def _window(r: ConfigReader, model_type: str) -> dict[str, int]:
    """``sliding_window`` and ``global_every`` of a windowed model type's config: from its
    ``layer_types`` where given (every layer ``sliding_attention``, or every n-th
    ``full_attention``, counted from the n-th or, ``global_first``, the first layer), else its
    type's pattern; none where ``sliding_window`` is absent or null."""
    if model_type not in _WINDOWED:
        return {}
    window = r.int("sliding_window", default=0, minimum=0)
    if not window:
        return {}
    types = r.data.get("layer_types")
    if types is None:
        every = _GLOBAL_EVERY.get(model_type, 0)
        if model_type == "gemma3_text":
            every = r.int("sliding_window_pattern", default=every)
        return {"sliding_window": window, "global_every": every}
    every, first = periodic(r, "layer_types", ("sliding_attention", "full_attention"),
                            "full_attention")
    return {"sliding_window": window, "global_every": every, "global_first": first}


def _family(r: ConfigReader, model_type: str, name: str, source: str) -> ModelConfig:
    """Encoders (HF ``BertConfig``), encoder-decoders (``T5Config``) and Mamba
    (``MambaConfig``; ``falcon_mamba``: Mamba with RMSNorms without gains on each mixer's dt,
    B and C, HF FalconMambaMixer)."""
    if model_type == "bert":
        d, heads = r.int("hidden_size"), r.int("num_attention_heads")
        return ModelConfig(
            name=name, family="bert", kind="encoder", n_layers=r.int("num_hidden_layers"),
            d_model=d, n_heads=heads, n_kv_heads=heads, d_ff=r.int("intermediate_size"),
            vocab_size=r.int("vocab_size"),
            max_positions=r.int("max_position_embeddings", default=512),
            type_vocab=r.int("type_vocab_size", default=2, minimum=0), pooler=True,
            embed_norm=True, final_norm=False,
            activation=activation_of(r, "hidden_act", "gelu"), source=source)
    if model_type == "t5":
        heads, layers = r.int("num_heads"), r.int("num_layers")
        proj = r.str("feed_forward_proj", "relu")
        gated = proj.startswith("gated-")
        act = proj.removeprefix("gated-")
        if act not in HF_ACTIVATIONS:
            raise WorkloadError(r.file, "feed_forward_proj", f"unknown activation '{proj[:40]}'"
                                f" (expected relu, gelu, gated-gelu or gated-silu ...)")
        return ModelConfig(
            name=name, family="t5", kind="encoder_decoder", n_layers=layers,
            n_decoder_layers=r.int("num_decoder_layers", default=layers), d_model=r.int(
                "d_model"), n_heads=heads, n_kv_heads=heads, head_dim=r.int("d_kv"),
            d_ff=r.int("d_ff"), vocab_size=r.int("vocab_size"),
            max_positions=r.int("n_positions", default=512), norm="rmsnorm",
            activation="swiglu" if gated else HF_ACTIVATIONS[act], position="relative",
            bias=False, rel_pos_buckets=r.int("relative_attention_num_buckets", default=32),
            tied_embeddings=r.bool("tie_word_embeddings", True), source=source)
    d = r.int("hidden_size", "d_model")
    rank = r.data.get("time_step_rank", "auto")
    expand = r.int("expand", default=2)
    if r.data.get("intermediate_size") is not None:   # it wins over expand (HF MambaConfig;
        # falcon-mamba-7b says expand 16 beside intermediate_size 8,192, its weights' width)
        inner = r.int("intermediate_size")
        if inner % d:
            raise WorkloadError(r.file, "intermediate_size", f"expected a multiple of "
                                                             f"hidden_size ({d})")
        expand = inner // d
    return ModelConfig(
        name=name, family=model_type, kind="mamba",
        n_layers=r.int("num_hidden_layers", "n_layer"),
        d_model=d, n_heads=1, n_kv_heads=1, head_dim=d,
        d_ff=expand * d, vocab_size=r.int("vocab_size"),
        max_positions=2048, norm="rmsnorm", activation="silu", position="none", bias=False,
        d_state=r.int("state_size", "d_state", default=16),
        d_conv=r.int("conv_kernel", "d_conv", default=4), expand=expand,
        dt_rank=0 if rank == "auto" else r.int("time_step_rank"),
        ssm_bias=r.bool("use_bias", False),
        ssm_norms="plain" if model_type == "falcon_mamba" else "",
        tied_embeddings=r.bool("tie_word_embeddings", True), source=source)


def _falcon(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Falcon (HF ``falcon``, and the original ``RefinedWebModel`` / ``RefinedWeb`` keys):
    multi-query (7B) or grouped KV with two norms (``new_decoder_architecture``, 40B/180B)."""
    heads = r.int("num_attention_heads", "n_head")
    d = r.int("hidden_size", "n_embed")
    new_arch = r.bool("new_decoder_architecture", "n_head_kv" in r.data)
    if new_arch:
        kv = r.int("num_kv_heads", "n_head_kv", default=heads)
    else:
        kv = 1 if r.bool("multi_query", True) else heads
    if r.bool("alibi", False):
        raise WorkloadError(r.file, "alibi", "Falcon with ALiBi positions is not supported")
    block = "parallel2" if new_arch else \
        ("parallel" if r.bool("parallel_attn", True) else "sequential")
    return ModelConfig(
        name=name, family="falcon", n_layers=r.int("num_hidden_layers", "n_layer"), d_model=d,
        n_heads=heads, n_kv_heads=kv, d_ff=r.int("ffn_hidden_size", default=4 * d),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=2048), position="rope",
        block=block, bias=r.bool("bias", False),
        activation=activation_of(r, "activation", "gelu"),
        tied_embeddings=r.bool("tie_word_embeddings", True), source=source)


def load_hf_config(path: str | Path) -> ModelConfig:
    """Read ``config.json`` (or a directory holding one) into a :class:`ModelConfig`."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise WorkloadError(str(path), "", "file not found")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise WorkloadError(str(path), "", f"file larger than {MAX_BYTES // 2**20} MiB")
        data = load_json_text(path.read_text(encoding="utf-8"))
    except JsonInputError as exc:
        where = f"line {exc.line}, column {exc.column}" if exc.line else ""
        raise WorkloadError(str(path), where, exc.problem) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(str(path), "", f"cannot read file ({exc.__class__.__name__})") from None
    return model_from_hf_dict(data, str(path), name=path.parent.name or None)
