"""Readers of the Hugging Face ``config.json`` families whose keys or layers differ from a
Llama's: Phi-3.5-MoE, Command R7B, Nemotron, EXAONE 3.5, ERNIE 4.5 (dense and mixture of
experts), GLM-4.5, Granite 4.0-H and Nemotron-H (Mamba-2 and attention layers), Qwen3-Next and
Qwen3.5 (Gated DeltaNet and attention layers). Each reads the
fields the family's transformers configuration class reads, with its defaults;
:func:`read_family` is what :mod:`workloads.hf_config` dispatches to.
"""

from __future__ import annotations

from collections.abc import Callable

from workloads.errors import WorkloadError
from workloads.hf_fields import (
    ConfigReader,
    activation_of,
    every_nth,
    layer_indices,
    marked_layers,
)
from workloads.hf_heterogeneous import deci, nemotron_nas
from workloads.models import ModelConfig


def _phimoe(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Phi-3.5-MoE (HF PhimoeConfig, modeling_phimoe.py): LayerNorms with biases, biases on
    the query, key, value and output projections (``attention_bias``) and on the LM head
    (``lm_head_bias``), ``num_local_experts`` gated experts without biases, a router without
    one (its sparsemixer picks the top 2 as a top-k does); ``sliding_window`` masks every
    layer. The class defaults are the released checkpoint's (``intermediate_size`` 6400)."""
    heads = r.int("num_attention_heads", default=32)
    d = r.int("hidden_size", default=4096)
    experts = r.int("num_local_experts", default=16)
    return ModelConfig(
        name=name, family="phimoe", n_layers=r.int("num_hidden_layers", default=32),
        d_model=d, n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=8),
        d_ff=r.int("intermediate_size", default=6400),
        vocab_size=r.int("vocab_size", default=32064),
        max_positions=r.int("max_position_embeddings", default=131072),
        head_dim=r.int("head_dim", default=d // heads), norm="layernorm",
        activation=_gated(activation_of(r, "hidden_act", "silu")), position="rope",
        tied_embeddings=r.bool("tie_word_embeddings", False), bias=False,
        attn_bias=r.bool("attention_bias", False), head_bias=r.bool("lm_head_bias", False),
        n_experts=experts, top_k=r.int("num_experts_per_tok", default=2) if experts > 1 else 1,
        sliding_window=r.int("sliding_window", default=0, minimum=0), source=source)


def _cohere2(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Command R7B (HF Cohere2Config, modeling_cohere2.py): Command R's parallel block (one
    LayerNorm without a bias feeding attention and a gated MLP), ``sliding_window`` in the
    layers where ``(i + 1) % sliding_window_pattern != 0`` (4 by default) or as ``layer_types``
    says, the others reading every key without RoPE; embeddings shared with the LM head
    (``use_embedding_sharing``). Not traced: ``logit_scale`` (one multiply per logit)."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    layers = r.int("num_hidden_layers")
    window = r.int("sliding_window", default=0, minimum=0)
    every = r.int("sliding_window_pattern", default=4)
    if r.data.get("layer_types") is not None:
        every = every_nth(r, "layer_types", ("sliding_attention", "full_attention"),
                          "full_attention")
    return ModelConfig(
        name=name, family="cohere2", n_layers=layers, d_model=d, n_heads=heads,
        n_kv_heads=r.int("num_key_value_heads", default=heads),
        d_ff=r.int("intermediate_size"), vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=8192),
        activation="swiglu", position="rope", block="parallel", norm_bias=False,
        bias=r.bool("attention_bias", False),
        tied_embeddings=r.bool("tie_word_embeddings", r.bool("use_embedding_sharing", True)),
        sliding_window=window, global_every=every if window else 0,
        nope_every=every if window else 0, source=source)


def _nemotron(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Nemotron / Minitron (HF NemotronConfig, modeling_nemotron.py): LayerNorm1P (a LayerNorm
    with a bias, its gain stored less one), an ungated MLP (``up_proj``, squared ReLU,
    ``down_proj``), RoPE on the first ``partial_rotary_factor`` of each head (0.5 by
    default); ``head_dim`` may make the query width differ from ``hidden_size``."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    head_dim = r.int("head_dim", default=d // heads)
    act = activation_of(r, "hidden_act", "relu2")
    return ModelConfig(
        name=name, family="nemotron", n_layers=r.int("num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
        d_ff=r.int("intermediate_size"), vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=4096), head_dim=head_dim,
        norm="layernorm", activation=act, position="rope",
        rotary_dim=int(head_dim * r.fraction("partial_rotary_factor", 0.5)),
        bias=False, attn_bias=r.bool("attention_bias", False),
        mlp_bias=r.bool("mlp_bias", False),
        tied_embeddings=r.bool("tie_word_embeddings", False), source=source)


def _exaone(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """EXAONE 3.0/3.5 (its remote ExaoneConfig; transformers maps its keys onto Llama's:
    ``num_layers``, ``activation_function``, ``layer_norm_epsilon``): a Llama decoder. An
    absent ``tie_word_embeddings`` is true (the 2.4B, whose card says its embeddings are
    tied, omits it; the 7.8B and 32B write false)."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    return ModelConfig(
        name=name, family="exaone", n_layers=r.int("num_layers", "num_hidden_layers"),
        d_model=d, n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
        d_ff=r.int("intermediate_size"), vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=4096),
        head_dim=r.int("head_dim", default=d // heads), norm="rmsnorm",
        activation=_gated(activation_of(r, "activation_function", "silu")), position="rope",
        bias=False, tied_embeddings=r.bool("tie_word_embeddings", True), source=source)


def _ernie(r: ConfigReader, model_type: str, name: str, source: str) -> ModelConfig:
    """ERNIE 4.5 (HF Ernie4_5Config / Ernie4_5_MoeConfig): a Llama decoder with ``use_bias``
    on every linear layer and the LM head, tied embeddings by default; the mixture-of-experts
    model's layers ``moe_layer_start_index`` .. ``moe_layer_end_index`` (-1: the last) that are
    every ``moe_layer_interval``-th are ``moe_num_experts`` experts (top ``moe_k``) plus
    ``moe_num_shared_experts`` shared ones as one MLP, the others a dense
    ``intermediate_size`` MLP; the router has no bias, its selection a per-expert correction
    bias (``moe_statics``, counted as the router's bias). The multi-token-prediction layers
    (``num_nextn_predict_layers``) are not part of the forward pass and are left out."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    layers = r.int("num_hidden_layers")
    bias = r.bool("use_bias", False)
    experts = r.int("moe_num_experts", "num_experts", default=1) \
        if model_type == "ernie4_5_moe" else 1
    moe: dict = {}
    if experts > 1:
        end = r.data.get("moe_layer_end_index", -1)
        if end not in (-1, None, layers - 1):
            raise WorkloadError(r.file, "moe_layer_end_index", f"expected -1 or {layers - 1} "
                                "(dense layers after the mixture-of-experts ones are not "
                                "modelled)")
        ff = r.int("moe_intermediate_size")
        moe = {"n_experts": experts, "top_k": r.int("moe_k", "num_experts_per_tok", default=2),
               "shared_ff": r.int("moe_num_shared_experts", default=0, minimum=0) * ff,
               "first_dense": min(r.int("moe_layer_start_index", default=0, minimum=0), layers),
               "moe_every": r.int("moe_layer_interval", default=1),
               "dense_ff": r.int("intermediate_size"), "router_bias": True}
    else:
        ff = r.int("intermediate_size")
    return ModelConfig(
        name=name, family=model_type, n_layers=layers, d_model=d, n_heads=heads,
        n_kv_heads=r.int("num_key_value_heads", default=heads), d_ff=ff,
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=131072),
        head_dim=r.int("head_dim", default=d // heads), norm="rmsnorm",
        activation=_gated(activation_of(r, "hidden_act", "silu")), position="rope",
        bias=bias, head_bias=bias, tied_embeddings=r.bool("tie_word_embeddings", True),
        source=source, **moe)


def _glm4_moe(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """GLM-4.5 / GLM-4.5-Air (HF Glm4MoeConfig, modeling_glm4_moe.py): biases on the query,
    key and value projections only (``attention_bias``; the output projection has none), an
    RMSNorm of each query and key head where ``use_qk_norm``, RoPE on the first
    ``partial_rotary_factor`` of each head; the first ``first_k_dense_replace`` layers a dense
    ``intermediate_size`` MLP, the others ``n_routed_experts`` experts (top
    ``num_experts_per_tok``) plus ``n_shared_experts`` shared ones as one MLP, the router's
    selection bias (``e_score_correction_bias``) counted as its bias. The multi-token-prediction
    layer (``num_nextn_predict_layers``; transformers skips it) is left out."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    layers = r.int("num_hidden_layers")
    head_dim = r.int("head_dim", default=d // heads)
    experts = r.int("n_routed_experts", default=1)
    moe: dict = {}
    ff = r.int("intermediate_size")
    if experts > 1:
        ff = r.int("moe_intermediate_size")
        moe = {"n_experts": experts, "top_k": r.int("num_experts_per_tok", default=1),
               "shared_ff": r.int("n_shared_experts", default=0, minimum=0) * ff,
               "first_dense": min(r.int("first_k_dense_replace", default=0, minimum=0), layers),
               "dense_ff": r.int("intermediate_size"), "router_bias": True}
    return ModelConfig(
        name=name, family="glm4_moe", n_layers=layers, d_model=d, n_heads=heads,
        n_kv_heads=r.int("num_key_value_heads", default=heads), d_ff=ff,
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=131072), head_dim=head_dim,
        norm="rmsnorm", activation=_gated(activation_of(r, "hidden_act", "silu")),
        position="rope", rotary_dim=int(head_dim * r.fraction("partial_rotary_factor", 0.5)),
        bias=False, qkv_bias=r.bool("attention_bias", False),
        qk_norm="head" if r.bool("use_qk_norm", False) else "",
        tied_embeddings=r.bool("tie_word_embeddings", False), source=source, **moe)


def _mamba2_fields(r: ConfigReader, inner: int) -> dict:
    """The Mamba-2 mixer fields of a Granite 4.0-H / Bamba / Falcon-H1 config (their shared
    ``mamba_*`` keys and BambaConfig's defaults): ``mamba_n_heads`` heads of ``mamba_d_head``
    channels (``auto``: ``inner`` / heads, which they must tile), states, groups, the
    convolution's taps, the prefill chunk, the projections' biases."""
    heads = r.int("mamba_n_heads", default=128)
    head_dim = inner // heads if r.data.get("mamba_d_head", "auto") == "auto" \
        else r.int("mamba_d_head")
    if head_dim * heads != inner:
        raise WorkloadError(r.file, "mamba_d_head", f"expected mamba_n_heads x mamba_d_head = "
                                                    f"the Mamba width ({inner})")
    return {"ssm_heads": heads, "ssm_head_dim": head_dim,
            "d_state": r.int("mamba_d_state", default=256),
            "ssm_groups": r.int("mamba_n_groups", default=1),
            "d_conv": r.int("mamba_d_conv", default=4),
            "ssm_chunk": r.int("mamba_chunk_size", default=256),
            "ssm_bias": r.bool("mamba_proj_bias", False)}


def _granite_hybrid(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Granite 4.0-H (HF GraniteMoeHybridConfig, modular_granitemoehybrid.py): per layer a
    Mamba-2 mixer (BambaMixer) or attention, as ``layer_types`` says (all Mamba when absent),
    then the shared MLP (``shared_intermediate_size``, gated) beside ``num_local_experts``
    experts (none: the shared MLP alone); the attention applies no RoPE unless
    ``position_embedding_type`` is ``rope``. Not traced: its embedding, attention, residual and
    logit multipliers (one multiply per element)."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    layers = r.layers("num_hidden_layers")
    attn = marked_layers(r, "layer_types", layers, ("mamba", "attention"), "attention") \
        if r.data.get("layer_types") is not None else ()
    experts = r.int("num_local_experts", default=8, minimum=0)
    shared = r.int("shared_intermediate_size", default=1024)
    moe = {"n_experts": experts, "top_k": r.int("num_experts_per_tok", default=2),
           "d_ff": r.int("intermediate_size"), "shared_ff": shared, "moe_every": 1} \
        if experts > 1 else {"d_ff": shared}
    rope = r.str("position_embedding_type", "nope") == "rope"
    return ModelConfig(
        name=name, family="granitemoehybrid", n_layers=layers, d_model=d, n_heads=heads,
        n_kv_heads=r.int("num_key_value_heads", default=heads),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=4096), norm="rmsnorm",
        activation=_gated(activation_of(r, "hidden_act", "silu")), position="rope",
        nope_every=0 if rope else 1, bias=False, attn_bias=r.bool("attention_bias", False),
        tied_embeddings=r.bool("tie_word_embeddings", False), attn_layers=attn, source=source,
        **_mamba2_fields(r, r.int("mamba_expand", default=2) * d), **moe)


def _bamba(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Bamba (HF BambaConfig, modeling_bamba.py): Mamba-2 layers (BambaMixer) with attention
    in the layers ``attn_layer_indices`` lists, each layer then a gated MLP; RoPE on
    ``partial_rotary_factor`` of each head (0.5, BambaConfig's)."""
    d = r.int("hidden_size")
    layers = r.layers("num_hidden_layers")
    heads = r.int("num_attention_heads")
    return ModelConfig(
        name=name, family="bamba", n_layers=layers, d_model=d, n_heads=heads,
        n_kv_heads=r.int("num_key_value_heads", default=heads), d_ff=r.int("intermediate_size"),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=262144), norm="rmsnorm",
        activation=_gated(activation_of(r, "hidden_act", "silu")), position="rope",
        rotary_dim=int(d // heads * r.fraction("partial_rotary_factor", 0.5)), bias=False,
        attn_bias=r.bool("attention_bias", False),
        tied_embeddings=r.bool("tie_word_embeddings", False),
        attn_layers=layer_indices(r, "attn_layer_indices", layers, ()), source=source,
        **_mamba2_fields(r, r.int("mamba_expand", default=2) * d))


def _jamba(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Jamba (HF JambaConfig, modeling_jamba.py): attention in layer ``i`` where ``i %
    attn_layer_period == attn_layer_offset``, a Mamba-1 mixer (JambaMambaMixer: RMSNorms with
    gains on its dt, B and C) in the others; every layer then a gated MLP, a mixture of
    ``num_experts`` where ``i % expert_layer_period == expert_layer_offset``; no positional
    encoding. A mixture in other layers than every period-th from ``period - 1`` is refused."""
    d = r.int("hidden_size")
    layers = r.layers("num_hidden_layers")
    heads = r.int("num_attention_heads")
    period = r.int("attn_layer_period", default=8)
    offset = r.int("attn_layer_offset", default=4, minimum=0)
    if offset >= period:
        raise WorkloadError(r.file, "attn_layer_offset", f"expected an offset below "
                                                         f"attn_layer_period ({period})")
    experts = r.int("num_experts", default=16)
    moe: dict = {"d_ff": r.int("intermediate_size")}
    if experts > 1:
        every = r.int("expert_layer_period", default=2)
        if r.int("expert_layer_offset", default=1, minimum=0) != every - 1:
            raise WorkloadError(r.file, "expert_layer_offset", f"expected "
                                                               f"expert_layer_period - 1 "
                                                               f"({every - 1})")
        moe = {**moe, "n_experts": experts, "top_k": r.int("num_experts_per_tok", default=2),
               "moe_every": every}
    rank = r.data.get("mamba_dt_rank", "auto")
    return ModelConfig(
        name=name, family="jamba", n_layers=layers, d_model=d, n_heads=heads,
        n_kv_heads=r.int("num_key_value_heads", default=heads), vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=262144), norm="rmsnorm",
        activation=_gated(activation_of(r, "hidden_act", "silu")), position="none",
        bias=False, tied_embeddings=r.bool("tie_word_embeddings", False),
        attn_layers=tuple(range(offset, layers, period)),
        expand=r.int("mamba_expand", default=2), d_state=r.int("mamba_d_state", default=16),
        d_conv=r.int("mamba_d_conv", default=4),
        dt_rank=0 if rank == "auto" else r.int("mamba_dt_rank"),
        ssm_bias=r.bool("mamba_proj_bias", False), ssm_norms="gain", source=source, **moe)


def _falcon_h1(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Falcon-H1 (HF FalconH1Config, modeling_falcon_h1.py): every layer runs attention (RoPE
    on the whole head, an explicit ``head_dim``) and a Mamba-2 mixer side by side on one
    normed input (``ssm_parallel``), ``mamba_d_ssm`` channels wide where given (else
    ``mamba_expand x hidden_size``), its gated RMSNorm only under ``mamba_rms_norm``; then a
    gated MLP. Not traced: the muP multipliers (one multiply per element)."""
    d = r.int("hidden_size")
    heads = r.int("num_attention_heads")
    inner = r.int("mamba_d_ssm") if r.data.get("mamba_d_ssm") is not None \
        else r.int("mamba_expand", default=2) * d
    if r.bool("projectors_bias", False) != r.bool("mamba_proj_bias", False):
        raise WorkloadError(r.file, "projectors_bias", "expected mamba_proj_bias's value (a "
                                                       "bias on out_proj alone is not modelled)")
    return ModelConfig(
        name=name, family="falcon_h1", n_layers=r.int("num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
        head_dim=r.int("head_dim", default=d // heads), d_ff=r.int("intermediate_size"),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=8192), norm="rmsnorm",
        activation=_gated(activation_of(r, "hidden_act", "silu")), position="rope",
        bias=False, attn_bias=r.bool("attention_bias", False),
        tied_embeddings=r.bool("tie_word_embeddings", False), ssm_parallel=True,
        ssm_gated_norm=r.bool("mamba_rms_norm", False), source=source,
        **_mamba2_fields(r, inner))


def _nemotron_h(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Nemotron-H and Nemotron 3 Nano (HF/vLLM NemotronH): layers of one kind each as
    ``hybrid_override_pattern`` spells them (``M`` Mamba-2, ``*`` attention, ``-`` MLP,
    ``E`` mixture of experts; or ``layers_block_type``), each with its RMSNorm and residual;
    ungated squared-ReLU MLPs and experts, a shared expert and the router's correction bias
    in ``E``; attention without RoPE; the Mamba-2 width ``mamba_num_heads x mamba_head_dim``
    (not ``expand x hidden_size``), ``n_groups`` groups of B and C."""
    pattern = r.data.get("hybrid_override_pattern")
    if pattern is None and isinstance(r.data.get("layers_block_type"), list):
        names = {"mamba": "M", "attention": "*", "mlp": "-", "moe": "E"}
        pattern = "".join(names.get(v, "?") for v in r.data["layers_block_type"])
    layers = r.int("num_hidden_layers", default=len(pattern) if isinstance(pattern, str) else 0)
    if not isinstance(pattern, str) or len(pattern) != layers or set(pattern) - set("M*-E"):
        raise WorkloadError(r.file, "hybrid_override_pattern",
                            f"expected {layers} characters, each M, *, - or E")
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    experts = r.int("n_routed_experts", default=1) if "E" in pattern else 1
    ff = r.int("intermediate_size")
    moe: dict = {}
    if experts > 1:
        moe_ff = r.int("moe_intermediate_size", default=ff)
        moe = {"n_experts": experts, "top_k": r.int("num_experts_per_tok", default=1),
               "d_ff": moe_ff, "dense_ff": ff, "router_bias": True,
               "shared_ff": r.int("moe_shared_expert_intermediate_size", default=0, minimum=0)
               * r.int("n_shared_experts", default=1, minimum=0)}
    return ModelConfig(
        name=name, family="nemotron_h", n_layers=layers, d_model=d, n_heads=heads,
        n_kv_heads=r.int("num_key_value_heads", default=heads),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=8192),
        head_dim=r.int("head_dim", "attention_head_dim", default=d // heads), norm="rmsnorm",
        activation=activation_of(r, "mlp_hidden_act", "relu2"), position="rope",
        nope_every=1, bias=False, attn_bias=r.bool("attention_bias", False),
        tied_embeddings=r.bool("tie_word_embeddings", False), blocks=pattern,
        ssm_heads=r.int("mamba_num_heads"), ssm_head_dim=r.int("mamba_head_dim"),
        d_state=r.int("ssm_state_size"), ssm_groups=r.int("n_groups", default=1),
        d_conv=r.int("conv_kernel", default=4), ssm_chunk=r.int("chunk_size", default=256),
        ssm_bias=r.bool("use_bias", False), source=source, **{"d_ff": ff, **moe})


def _mamba2(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Mamba-2 (HF Mamba2Config, modeling_mamba2.py; Mamba-Codestral): ``num_hidden_layers``
    blocks of an RMSNorm and a Mamba-2 mixer each, nothing else (no attention, no MLP):
    ``blocks`` all ``M``. The mixer is ``num_heads x head_dim`` = ``expand x hidden_size``
    channels wide, ``n_groups`` groups of B and C; ``use_bias``: biases on its in and out
    projections (the convolution's bias is counted, as ``use_conv_bias`` sets it by
    default)."""
    d = r.int("hidden_size")
    layers = r.layers("num_hidden_layers")
    heads = r.int("num_heads", default=128)
    head_dim = r.int("head_dim", default=64)
    if heads * head_dim != r.int("expand", default=2) * d:
        raise WorkloadError(r.file, "head_dim", f"expected num_heads x head_dim = expand x "
                                                f"hidden_size ({r.int('expand', default=2) * d})")
    return ModelConfig(
        name=name, family="mamba2", n_layers=layers, d_model=d, n_heads=1, n_kv_heads=1,
        head_dim=d, d_ff=d, vocab_size=r.int("vocab_size"),
        # (Mamba2Config has no context limit; Mistral's announcement of Mamba-Codestral:
        # "tested on in-context retrieval capabilities up to 256k tokens")
        max_positions=r.int("max_position_embeddings", default=262144),
        norm="rmsnorm", activation="silu", position="none", bias=False,
        tied_embeddings=r.bool("tie_word_embeddings", False), blocks="M" * layers,
        ssm_heads=heads, ssm_head_dim=head_dim, d_state=r.int("state_size", default=128),
        ssm_groups=r.int("n_groups", default=8), d_conv=r.int("conv_kernel", default=4),
        ssm_chunk=r.int("chunk_size", default=256), ssm_bias=r.bool("use_bias", False),
        source=source)


def _qwen3_next(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Qwen3-Next (HF Qwen3NextConfig, modular_qwen3_next.py) and Qwen3.5's text decoders
    (``qwen3_5_moe_text``, dense ``qwen3_5_text``: built on its classes, the DeltaNet's input
    projections unfused, the same work): Gated DeltaNet layers (``linear_*``) with
    full attention in the ``layer_types`` marked ``full_attention`` (by default every
    ``full_attention_interval``-th, 4); the attention with a sigmoid output gate (a doubled
    query projection), per-head query/key RMSNorms and RoPE on ``partial_rotary_factor`` of
    each head (0.25); ``num_experts`` experts in every ``decoder_sparse_step``-th layer with one
    shared expert behind a sigmoid gate. Its multi-token-prediction layer is left out."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    layers = r.layers("num_hidden_layers")
    if r.data.get("layer_types") is not None:
        every = every_nth(r, "layer_types", ("linear_attention", "full_attention"),
                          "full_attention")
    else:
        every = r.int("full_attention_interval", default=4)
    attn = tuple(range(every - 1, layers, every)) if every else ()
    if r.data.get("mlp_only_layers"):
        raise WorkloadError(r.file, "mlp_only_layers", "expected [] (dense layers by list are "
                                                       "not modelled)")
    experts = r.int("num_experts", default=1)
    head_dim = r.int("head_dim", default=d // heads)
    moe: dict = {"d_ff": r.int("intermediate_size")}
    if experts > 1:
        step = r.int("decoder_sparse_step", default=1)
        moe = {"n_experts": experts, "top_k": r.int("num_experts_per_tok", default=1),
               "d_ff": r.int("moe_intermediate_size"), "moe_every": step,
               "dense_ff": r.int("intermediate_size", default=0, minimum=0) if step > 1 else 0,
               "shared_ff": r.int("shared_expert_intermediate_size", default=0, minimum=0)}
        moe["shared_gate"] = bool(moe["shared_ff"])
    return ModelConfig(
        name=name, family="qwen3_next", n_layers=layers, d_model=d, n_heads=heads,
        n_kv_heads=r.int("num_key_value_heads", default=heads),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=262144), head_dim=head_dim,
        norm="rmsnorm", activation=_gated(activation_of(r, "hidden_act", "silu")),
        position="rope", rotary_dim=int(head_dim * r.fraction("partial_rotary_factor", 0.25)),
        qk_norm="head", attn_gate=r.bool("attn_output_gate", True), bias=False,
        tied_embeddings=r.bool("tie_word_embeddings", False), attn_layers=attn,
        gdn_k_heads=r.int("linear_num_key_heads"), gdn_v_heads=r.int("linear_num_value_heads"),
        gdn_k_dim=r.int("linear_key_head_dim"), gdn_v_dim=r.int("linear_value_head_dim"),
        d_conv=r.int("linear_conv_kernel_dim", default=4), source=source, **moe)


def _glm(r: ConfigReader, model_type: str, name: str, source: str) -> ModelConfig:
    """GLM-4 (HF ``glm``: glm-4-9b-chat-hf) and GLM-4-0414 / GLM-Z1 (``glm4``): a Llama-shaped
    decoder whose q/k/v have biases under ``attention_bias`` (o_proj never), RoPE on
    ``partial_rotary_factor`` of each head (0.5; interleaved, the same work), a fused gated
    MLP; ``glm4`` adds an RMSNorm after attention and after the MLP (sandwich norms)."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    head_dim = r.int("head_dim", default=d // heads)
    return ModelConfig(
        name=name, family=model_type, n_layers=r.int("num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
        d_ff=r.int("intermediate_size"), vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=131072), head_dim=head_dim,
        norm="rmsnorm", activation=_gated(activation_of(r, "hidden_act", "silu")),
        position="rope", rotary_dim=int(head_dim * r.fraction("partial_rotary_factor", 0.5)),
        bias=False, qkv_bias=r.bool("attention_bias", True), post_norms=model_type == "glm4",
        tied_embeddings=r.bool("tie_word_embeddings", False), source=source)


def _chatglm(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """ChatGLM2, ChatGLM3 and GLM-4-9B in THUDM's own code (``chatglm``: its
    modeling_chatglm.py, vLLM's ChatGLMForCausalLM): the decoder of HF's ``glm`` port under
    other key names - ``multi_query_group_num`` key/value heads of ``kv_channels`` under
    ``multi_query_attention``, a fused q/k/v with biases under ``add_qkv_bias``, the output
    projection and MLP with biases only under ``add_bias_linear``, a gated SiLU MLP
    ``ffn_hidden_size`` wide, RoPE on half of each head, RMSNorms under ``rmsnorm`` (else
    LayerNorms), the final norm under ``post_layer_norm``, an untied ``padded_vocab_size`` head.
    ChatGLM-6B (the first, with 2D positions and post-norm residuals) is refused."""
    for key in ("position_encoding_2d", "inner_hidden_size"):
        if key in r.data:
            raise WorkloadError(r.file, key, "ChatGLM-6B's first version (2D positions) is not "
                                             "modelled; expected a ChatGLM2/3 or GLM-4 config")
    if r.bool("apply_residual_connection_post_layernorm", False):
        raise WorkloadError(r.file, "apply_residual_connection_post_layernorm",
                            "expected false (residuals from the normed input are not modelled)")
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    head_dim = r.int("kv_channels", default=d // heads)
    kv_heads = r.int("multi_query_group_num") if r.bool("multi_query_attention", False) \
        else heads
    bias = r.bool("add_bias_linear", False)
    return ModelConfig(
        name=name, family="chatglm", n_layers=r.layers("num_layers", "num_hidden_layers"),
        d_model=d, n_heads=heads, n_kv_heads=kv_heads, d_ff=r.int("ffn_hidden_size"),
        vocab_size=r.int("padded_vocab_size", "vocab_size"),
        max_positions=r.int("seq_length", default=8192), head_dim=head_dim,
        norm="rmsnorm" if r.bool("rmsnorm", True) else "layernorm", activation="swiglu",
        position="rope", rotary_dim=head_dim // 2, bias=bias,
        qkv_bias=bias or r.bool("add_qkv_bias", False),
        final_norm=r.bool("post_layer_norm", True),
        tied_embeddings=r.bool("tie_word_embeddings", False), source=source)


def _stablelm(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """StableLM 2 / 3B-4E1T (HF StableLmForCausalLM): LayerNorms with biases (the HF port
    builds them whatever ``use_norm_bias`` says), RoPE on ``partial_rotary_factor`` of each
    head (0.25), q/k/v biases under ``use_qkv_bias``, a LayerNorm of each query and key head
    with its own gain under ``qk_layernorm`` (12B), one norm feeding attention and MLP side by
    side under ``use_parallel_residual`` (12B), a gated SiLU MLP."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    parallel = r.bool("use_parallel_residual", False)
    return ModelConfig(
        name=name, family="stablelm", n_layers=r.int("num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
        d_ff=r.int("intermediate_size"), vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=4096), norm="layernorm",
        activation=_gated(activation_of(r, "hidden_act", "silu")), position="rope",
        rotary_dim=int(d // heads * r.fraction("partial_rotary_factor", 0.25)),
        bias=False, qkv_bias=r.bool("use_qkv_bias", False),
        qk_norm="full" if r.bool("qk_layernorm", False) else "",
        block="parallel" if parallel else "sequential",
        tied_embeddings=r.bool("tie_word_embeddings", False), source=source)


def _mpt(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """MPT (HF MptForCausalLM, mosaicml's MPTForCausalLM): LayerNorms without biases, ALiBi
    (``attn_config.alibi``; learned positions without it), no biases (``no_bias``), an
    ungated exact-GELU MLP ``expansion_ratio`` wide (4 in every release, the HF port's
    constant), multi-query heads under ``attn_config.attn_type`` ``multiquery_attention``, the
    LM head tied to the embedding. ``clip_qkv``'s clamp is not traced (one compare an
    element)."""
    heads = r.int("n_heads", "num_attention_heads")
    d = r.int("d_model", "hidden_size")
    attn = r.data.get("attn_config") or {}
    if not isinstance(attn, dict):
        raise WorkloadError(r.file, "attn_config", "expected an object")
    alibi = attn.get("alibi", True)
    kind = attn.get("attn_type", "multihead_attention")
    if not isinstance(alibi, bool) or kind not in ("multihead_attention",
                                                   "multiquery_attention"):
        raise WorkloadError(r.file, "attn_config", "expected alibi true or false and attn_type "
                                                   "multihead_attention or "
                                                   "multiquery_attention")
    return ModelConfig(
        name=name, family="mpt", n_layers=r.int("n_layers", "num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=1 if kind == "multiquery_attention" else heads,
        d_ff=r.int("expansion_ratio", default=4) * d, vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_seq_len", default=2048), norm="layernorm", norm_bias=False,
        activation="gelu", position="alibi" if alibi else "learned",
        bias=not r.bool("no_bias", True),
        tied_embeddings=r.bool("tie_word_embeddings", True), source=source)


def _olmo(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """OLMo 1 / 1.7 (HF OlmoForCausalLM): a Llama-shaped decoder whose LayerNorms have neither
    gain nor bias (``norm_weight`` False), biases on q/k/v/o under ``attention_bias``.
    ``clip_qkv``'s clamp is not traced (one compare an element)."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    return ModelConfig(
        name=name, family="olmo", n_layers=r.int("num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
        d_ff=r.int("intermediate_size"), vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=2048), norm="layernorm",
        norm_weight=False, activation=_gated(activation_of(r, "hidden_act", "silu")),
        position="rope", bias=False, attn_bias=r.bool("attention_bias", False),
        tied_embeddings=r.bool("tie_word_embeddings", False), source=source)


def _exaone4(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """EXAONE 4.0 (HF Exaone4Config, modeling_exaone4.py): RMSNorms on the attention's and the
    MLP's outputs instead of their inputs (two a layer, traced in the pre-norm place as OLMo
    2's), a per-head RMSNorm of queries and keys, a gated MLP, no biases; with a
    ``sliding_window`` the layers where ``(i + 1) % sliding_window_pattern == 0`` (4; "LLLG";
    or by ``layer_types``) read every key without RoPE, the others their window."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    window = r.int("sliding_window", default=0, minimum=0)
    every = 0
    if window:
        if r.data.get("layer_types") is not None:
            every = every_nth(r, "layer_types", ("sliding_attention", "full_attention"),
                              "full_attention")
        else:
            pattern = r.data.get("sliding_window_pattern", 4)
            if isinstance(pattern, str) and pattern and set(pattern) <= {"L", "G"} \
                    and pattern.index("G") == len(pattern) - 1:
                every = len(pattern)
            else:
                every = r.int("sliding_window_pattern", default=4)
    return ModelConfig(
        name=name, family="exaone4", n_layers=r.int("num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
        d_ff=r.int("intermediate_size"), vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=2048),
        head_dim=r.int("head_dim", default=d // heads), norm="rmsnorm",
        activation=_gated(activation_of(r, "hidden_act", "silu")), position="rope", bias=False,
        qk_norm="head", sliding_window=window, global_every=every, nope_every=every,
        tied_embeddings=r.bool("tie_word_embeddings", False), source=source)


def _arcee(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Arcee AFM (HF ArceeForCausalLM): Llama but for its ungated MLP (``up_proj``, squared
    ReLU, ``down_proj``); biases on q/k/v/o under ``attention_bias``, in the MLP under
    ``mlp_bias``."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    return ModelConfig(
        name=name, family="arcee", n_layers=r.int("num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
        d_ff=r.int("intermediate_size"), vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=4096),
        head_dim=r.int("head_dim", default=d // heads), norm="rmsnorm",
        activation=activation_of(r, "hidden_act", "relu2"), position="rope", bias=False,
        attn_bias=r.bool("attention_bias", False), mlp_bias=r.bool("mlp_bias", False),
        tied_embeddings=r.bool("tie_word_embeddings", False), source=source)


def _per_layer(r: ConfigReader, key: str, default: int) -> int:
    """A Hunyuan key given as one integer or as one per layer (all equal: other patterns are
    not modelled)."""
    value = r.data.get(key)
    if isinstance(value, list):
        if not value or any(v != value[0] for v in value):
            raise WorkloadError(r.file, key, "expected one value, or the same value for "
                                             "every layer")
        return ConfigReader({key: value[0]}, r.file).int(key)
    return r.int(key, default=default)


def _hunyuan(r: ConfigReader, model_type: str, name: str, source: str) -> ModelConfig:
    """Hunyuan (HF ``hunyuan_v1_dense``, ``hunyuan_v1_moe``; Hunyuan-7B, Hunyuan-A13B): a Llama
    decoder with a per-head RMSNorm of queries and keys (after RoPE: the same work); the MoE
    model's every layer routes to ``moe_topk`` of ``num_experts`` gated experts
    ``moe_intermediate_size`` wide beside a shared MLP ``intermediate_size x
    num_shared_expert`` wide (vLLM's reading; HF's is the same for A13B), with a per-layer
    value given as a list only where every layer's is the same. Cross-layer KV sharing
    (``use_cla``) is refused."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    if r.bool("use_cla", False):
        raise WorkloadError(r.file, "use_cla", "expected false (cross-layer attention "
                                               "sharing is not modelled)")
    experts = _per_layer(r, "num_experts", 1) if model_type == "hunyuan_v1_moe" else 1
    moe: dict = {"d_ff": r.int("intermediate_size")}
    if experts > 1:
        shared = _per_layer(r, "num_shared_expert", 1) if r.bool("use_mixed_mlp_moe", True) \
            else 0
        moe = {"n_experts": experts, "top_k": _per_layer(r, "moe_topk", 1),
               "d_ff": _per_layer(r, "moe_intermediate_size", r.int("intermediate_size")),
               "shared_ff": r.int("intermediate_size") * shared}
    return ModelConfig(
        name=name, family=model_type, n_layers=r.int("num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=2048),
        head_dim=r.int("head_dim", "attention_head_dim", default=d // heads), norm="rmsnorm",
        activation=_gated(activation_of(r, "hidden_act", "silu")), position="rope", bias=False,
        attn_bias=r.bool("attention_bias", False), qk_norm="head",
        tied_embeddings=r.bool("tie_word_embeddings", False), source=source, **moe)


def _dense_first_moe(r: ConfigReader, experts: int, shared_count: str, router_bias: bool,
                     shared_width: str = "") -> dict:
    """The MLP fields of a DeepSeekMoE-shaped model (dots.llm1, Ling): without experts an
    ``intermediate_size``-wide MLP; with them the first ``first_k_dense_replace`` layers that
    MLP, the others ``num_experts_per_tok`` of ``experts`` experts ``moe_intermediate_size``
    wide beside ``shared_count`` shared experts as one MLP (each ``shared_width`` wide where
    that key is given and set, else the experts' width)."""
    if experts <= 1:
        return {"d_ff": r.int("intermediate_size")}
    width = r.int("moe_intermediate_size")
    each = r.int(shared_width, default=width) if shared_width else width
    return {"n_experts": experts, "top_k": r.int("num_experts_per_tok", default=1),
            "d_ff": width, "dense_ff": r.int("intermediate_size"),
            "first_dense": r.int("first_k_dense_replace", default=0, minimum=0),
            "shared_ff": each * r.int(shared_count, default=0, minimum=0),
            "router_bias": router_bias}


def _dots1(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """dots.llm1 (HF Dots1ForCausalLM): Qwen3's attention (a per-head RMSNorm of queries and
    keys) with DeepSeek-V3's mixture of experts: the first ``first_k_dense_replace`` layers a
    gated MLP ``intermediate_size`` wide, the others ``num_experts_per_tok`` of
    ``n_routed_experts`` experts ``moe_intermediate_size`` wide beside the ``n_shared_experts``
    as one MLP, a sigmoid router with a correction bias."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    experts = r.int("n_routed_experts", default=1)
    moe = _dense_first_moe(r, experts, "n_shared_experts", router_bias=True)
    return ModelConfig(
        name=name, family="dots1", n_layers=r.int("num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=2048),
        head_dim=r.int("head_dim", default=d // heads), norm="rmsnorm",
        activation=_gated(activation_of(r, "hidden_act", "silu")), position="rope", bias=False,
        attn_bias=r.bool("attention_bias", False), qk_norm="head",
        tied_embeddings=r.bool("tie_word_embeddings", False), source=source, **moe)


def _bailing(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Ling / Ling 2.0 (``bailing_moe``; vLLM's bailing_moe.py, the checkpoints' remote code):
    a fused QKV with biases under ``use_qkv_bias`` (every projection under ``use_bias``), a
    per-head norm of queries and keys under ``use_qk_norm``, RoPE on ``partial_rotary_factor``
    of each head; the first ``first_k_dense_replace`` layers a gated MLP
    ``intermediate_size`` wide, the others ``num_experts_per_tok`` of ``num_experts`` experts
    ``moe_intermediate_size`` wide beside ``num_shared_experts`` as one MLP
    (``moe_shared_expert_intermediate_size`` each, else the experts' width), the router's
    expert bias under ``moe_router_enable_expert_bias``."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    head_dim = r.int("head_dim", default=d // heads)
    bias = r.bool("use_bias", False)
    experts = r.int("num_experts", default=1)
    moe = _dense_first_moe(r, experts, "num_shared_experts",
                           r.bool("moe_router_enable_expert_bias", False),
                           shared_width="moe_shared_expert_intermediate_size")
    factor = r.fraction("partial_rotary_factor", 1.0)
    return ModelConfig(
        name=name, family="bailing_moe", n_layers=r.int("num_hidden_layers"), d_model=d,
        n_heads=heads, n_kv_heads=r.int("num_key_value_heads", default=heads),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=4096), head_dim=head_dim,
        norm="rmsnorm", activation=_gated(activation_of(r, "hidden_act", "silu")),
        position="rope", rotary_dim=int(head_dim * factor) if factor < 1 else 0,
        bias=bias, qkv_bias=not bias and r.bool("use_qkv_bias", False),
        qk_norm="head" if r.bool("use_qk_norm", False) else "",
        tied_embeddings=r.bool("tie_word_embeddings", False), source=source, **moe)


def _lfm2(r: ConfigReader, model_type: str, name: str, source: str) -> ModelConfig:
    """LFM2 (HF Lfm2ForCausalLM; ``lfm2_moe``: LFM2-8B-A1B): gated short convolutions
    (``conv_L_cache`` taps; :mod:`workloads.shortconv`) with grouped-query attention in the
    ``full_attention`` layers of ``layer_types`` (or ``full_attn_idxs``; every layer without
    either), a per-head RMSNorm of queries and keys, RoPE; every layer a gated MLP
    ``block_ff_dim`` (``intermediate_size``) wide, cut to 2/3, times
    ``block_ffn_dim_multiplier`` and rounded up to ``block_multiple_of`` under
    ``block_auto_adjust_ff_dim``; the MoE model's first ``num_dense_layers`` dense, the others
    ``num_experts_per_tok`` of ``num_experts`` experts with the router's expert bias. The LM
    head is tied (``tie_embedding``)."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    layers = r.layers("num_hidden_layers")
    if r.data.get("layer_types") is not None:
        attn = marked_layers(r, "layer_types", layers, ("full_attention", "conv"),
                             "full_attention")
    else:   # (neither: every layer attends, as Lfm2Config makes it)
        attn = layer_indices(r, "full_attn_idxs", layers, tuple(range(layers)))
    ff = r.int("block_ff_dim", "intermediate_size")
    moe: dict = {}
    if model_type == "lfm2_moe":
        moe = {"n_experts": r.int("num_experts", default=32),
               "top_k": r.int("num_experts_per_tok", default=4),
               "first_dense": r.int("num_dense_layers", default=2, minimum=0), "dense_ff": ff,
               "router_bias": r.bool("use_expert_bias", True)}
        ff = r.int("moe_intermediate_size", default=1792)
    elif r.bool("block_auto_adjust_ff_dim", True):   # HF Lfm2MLP
        ff = int(2 * ff / 3)
        multiplier = r.data.get("block_ffn_dim_multiplier", 1.0)
        if multiplier is not None:
            if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or \
                    not 0 < multiplier <= 64:
                raise WorkloadError(r.file, "block_ffn_dim_multiplier", "expected a number in "
                                                                        "(0, 64]")
            step = r.int("block_multiple_of", default=256)
            ff = step * -(-int(multiplier * ff) // step)
    tied = r.bool("tie_embedding", r.bool("tie_word_embeddings", True))
    return ModelConfig(
        name=name, family=model_type, n_layers=layers, d_model=d, n_heads=heads,
        n_kv_heads=r.int("num_key_value_heads", default=heads), d_ff=ff,
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=128000), norm="rmsnorm",
        activation="swiglu", position="rope", bias=False, qk_norm="head",
        tied_embeddings=tied, attn_layers=attn, short_conv=r.int("conv_L_cache", default=3),
        ssm_bias=r.bool("conv_bias", False), source=source, **moe)


def _gated(act: str) -> str:
    """A gated MLP's operator: SwiGLU for SiLU (the tracer's gated form), else ``act``."""
    return "swiglu" if act == "silu" else act


def _typed(read: Callable[[ConfigReader, str, str, str], ModelConfig], model_type: str
           ) -> Callable[[ConfigReader, str, str], ModelConfig]:
    """A reader of several model types (``read(r, model_type, name, source)``) for one."""
    return lambda r, name, source: read(r, model_type, name, source)


#: model_type -> reader(reader, name, source)
FAMILIES: dict[str, Callable[[ConfigReader, str, str], ModelConfig]] = {
    "phimoe": _phimoe,
    "cohere2": _cohere2,
    "nemotron": _nemotron,
    "exaone": _exaone,
    "ernie4_5": _typed(_ernie, "ernie4_5"),
    "ernie4_5_moe": _typed(_ernie, "ernie4_5_moe"),
    "glm4_moe": _glm4_moe,
    "granitemoehybrid": _granite_hybrid,
    "nemotron_h": _nemotron_h,
    "glm": _typed(_glm, "glm"),
    "glm4": _typed(_glm, "glm4"),
    "chatglm": _chatglm,
    "stablelm": _stablelm,
    "mpt": _mpt,
    "olmo": _olmo,
    "exaone4": _exaone4,
    "arcee": _arcee,
    "hunyuan_v1_dense": _typed(_hunyuan, "hunyuan_v1_dense"),
    "hunyuan_v1_moe": _typed(_hunyuan, "hunyuan_v1_moe"),
    "dots1": _dots1,
    "bailing_moe": _bailing,
    "lfm2": _typed(_lfm2, "lfm2"),
    "lfm2_moe": _typed(_lfm2, "lfm2_moe"),
    "falcon_h1": _falcon_h1,
    "jamba": _jamba,
    "bamba": _bamba,
    "mamba2": _mamba2,
    "qwen3_next": _qwen3_next,
    "qwen3_5_moe_text": _qwen3_next,
    "qwen3_5_text": _qwen3_next,
    "nemotron-nas": nemotron_nas,
    "deci": deci,
}


def read_family(model_type: str, r: ConfigReader, name: str, source: str) -> ModelConfig:
    """The :class:`ModelConfig` of a config.json of one of :data:`FAMILIES`."""
    return FAMILIES[model_type](r, name, source)
