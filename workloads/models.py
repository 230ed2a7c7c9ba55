"""Transformer model shapes: presets with sources, and the parameter count derived from shape."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

from workloads.errors import WorkloadError
from workloads.records import record

#: plausibility limits of model shapes: (largest accepted, the largest published model it covers)
LIMITS: dict[str, tuple[int, str]] = {
    "n_layers": (4096, "DeepNet, 1,000 layers (Wang et al. 2022)"),
    "d_model": (131072, "PaLM 540B, 18,432 (Chowdhery et al. 2022)"),
    "n_heads": (4096, "BLOOM-176B, 112 heads"),
    "n_kv_heads": (4096, "BLOOM-176B, 112 heads"),
    "d_ff": (1048576, "PaLM 540B, 73,728"),
    "vocab_size": (4194304, "Gemma 3, 262,144 tokens"),
    "max_positions": (33554432, "Llama 4 Scout, 10M-token context"),
    "head_dim": (4096, "Gemma 2, 256"),
    "n_experts": (4096, "Switch-C, 2,048 experts (Fedus et al. 2022)"),
    "top_k": (4096, "at most the number of experts"),
    "position_offset": (4096, "OPT, 2"),
    "n_decoder_layers": (4096, "DeepNet, 1,000 layers (Wang et al. 2022)"),
    "rotary_dim": (4096, "Gemma 2, 256"),
    "type_vocab": (4096, "BERT, 2 segment types"),
    "rel_pos_buckets": (4096, "T5, 32 buckets (Raffel et al. 2020)"),
    "d_state": (4096, "Mamba-2, 128 (Dao & Gu 2024)"),
    "d_conv": (4096, "Mamba, 4"),
    "short_conv": (4096, "LFM2, 3 taps"),
    "expand": (64, "Mamba, 2"),
    "dt_rank": (131072, "Mamba-2.8B, 160"),
    "shared_ff": (1048576, "Qwen1.5-MoE-A2.7B, 5,632 (four experts' width, fused)"),
    "sliding_window": (33554432, "Mistral-7B-v0.1, 4,096"),
    "global_every": (4096, "Gemma 3, every 6th layer global"),
    "first_dense": (4096, "DeepSeek-V3, 3 dense layers"),
    "moe_every": (4096, "Llama 4 Maverick, every 2nd layer"),
    "dense_ff": (1048576, "DeepSeek-V3, 18,432"),
    "q_lora_rank": (131072, "DeepSeek-V3, 1,536"),
    "kv_lora_rank": (131072, "DeepSeek-V3, 512"),
    "rope_dim": (4096, "DeepSeek-V3, 64"),
    "v_head_dim": (4096, "DeepSeek-V3, 128"),
    "nope_every": (4096, "Llama 4 and SmolLM3, every 4th layer without RoPE"),
    "index_topk": (33554432, "DeepSeek-V3.2, 2,048 keys"),
    "index_heads": (4096, "DeepSeek-V3.2, 64 indexer heads"),
    "index_head_dim": (4096, "DeepSeek-V3.2, 128"),
    "ssm_heads": (65536, "Granite 4.0-H Small, 128 Mamba-2 heads"),
    "ssm_head_dim": (4096, "Mamba-2, 64"),
    "ssm_groups": (65536, "Bamba, 1; Nemotron-H, 8"),
    "ssm_chunk": (1048576, "Mamba-2, 256"),
    "gdn_k_heads": (65536, "Qwen3-Next, 16 Gated DeltaNet key heads"),
    "gdn_v_heads": (65536, "Qwen3-Next, 32 value heads"),
    "gdn_k_dim": (4096, "Qwen3-Next, 128"),
    "gdn_v_dim": (4096, "Qwen3-Next, 128"),
}
#: fields that may be 0 (meaning: absent or derived)
ZERO_OK = ("head_dim", "position_offset", "n_decoder_layers", "rotary_dim", "type_vocab",
           "rel_pos_buckets", "d_state", "d_conv", "short_conv", "expand", "dt_rank",
           "shared_ff",
           "sliding_window", "global_every", "first_dense", "moe_every", "dense_ff",
           "q_lora_rank", "kv_lora_rank", "rope_dim", "v_head_dim", "nope_every", "index_topk",
           "index_heads", "index_head_dim", "ssm_heads", "ssm_head_dim", "ssm_groups",
           "ssm_chunk", "gdn_k_heads", "gdn_v_heads", "gdn_k_dim", "gdn_v_dim")
#: model kinds: decoder-only, bidirectional encoder, encoder-decoder with cross attention,
#: selective state-space model (Mamba)
KINDS = ("decoder", "encoder", "encoder_decoder", "mamba", "onnx")
#: decoder blocks: attention then MLP, or both from one norm (GPT-J, Falcon-7B, Phi), or from
#: two norms of the same input (Falcon-40B ``new_decoder_architecture``)
BLOCKS = ("sequential", "parallel", "parallel2")
#: what a windowed layer reads: its last keys, or the keys of its query's chunk
WINDOW_KINDS = ("sliding", "chunked")
#: norms of the queries and keys: none, one gain per head dimension, over the projections
QK_NORMS = ("", "head", "full")
#: RMSNorms of a Mamba-1 mixer's dt, B and C: none, without gains (Falcon-Mamba), with (Jamba)
SSM_NORMS = ("", "plain", "gain")
#: a block-pattern layer's kind (Nemotron-H): Mamba-2 mixer, attention, MLP, mixture of experts;
#: a linear in place of attention or an MLP (Llama-Nemotron's ``replace_with_linear``)
BLOCK_KINDS = ("M", "*", "-", "E", "L")
#: activation functions the tracer knows (``swiglu``: gated MLP with SiLU; ``relu2``: squared
#: ReLU, Nemotron's ungated MLP, So et al. 2021)
ACTIVATIONS = ("gelu", "relu", "relu2", "silu", "swiglu", "sigmoid", "tanh")


@record(frozen=True)
class ModelConfig:
    """Shape of a transformer (dense or mixture-of-experts; decoder, encoder or encoder-decoder)
    or of a Mamba selective state-space model (``kind``).

    ``position`` is ``learned`` (an embedding table of ``max_positions`` rows, plus
    ``position_offset`` extra rows as OPT has), ``rope`` or ``alibi``. ``activation`` ``swiglu``
    means a gated MLP with three matrices. ``kind`` ``encoder_decoder`` has ``n_layers``
    encoder and ``n_decoder_layers`` decoder layers (with cross attention) sharing one embedding;
    ``mamba`` layers hold an SSM of ``expand * d_model`` channels and ``d_state`` states with a
    ``d_conv``-tap causal convolution and a ``dt_rank``-wide step projection (0: ceil(d/16)),
    Gu & Dao 2023. ``block`` ``parallel``/``parallel2``: attention and MLP read the same input
    (one or two norms) and add into one residual. ``mlp_bias``: MLP biases even when ``bias`` is
    off (GPT-J); ``head_bias``: the LM head has a bias; ``rotary_dim``: RoPE on that many
    channels of a head (0: all); ``type_vocab``/``pooler``: BERT's segment embeddings and pooler;
    ``final_norm``: a norm after the last layer (post-norm BERT has none); ``rel_pos_buckets``:
    T5's relative-position bias, one table per stack. Kind ``onnx``: the trace comes from the
    ONNX file ``graph`` (``workloads/onnx_import.py``), the other fields summarise its shapes
    and ``n_params`` counts its weight initializers (it replaces the shape formula).
    ``shared_ff``: the width of the shared experts every token of a mixture-of-experts layer
    also runs (DeepSeekMoE, Qwen2-MoE: their shared experts as one MLP; 0: none).
    ``sliding_window``: a windowed layer's query reads at most that many keys (Mistral-7B-v0.1,
    StarCoder2, Gemma 2/3; 0: none) and keeps that many in its KV cache; ``global_every``: with
    a window, layer ``i`` reads every key where ``(i + 1) % global_every == 0`` (Gemma 2: 2,
    Gemma 3: 6; 0: every layer windowed), or with ``global_first`` where ``i % global_every ==
    0`` (the first of each period: Ministral). ``post_norms``: a norm after attention and after
    the MLP too, before each residual add (Gemma 2/3). ``qk_norm``: RMSNorm gains on the queries
    and keys, ``head`` (one ``head_dim`` gain each: Qwen3, Gemma 3) or ``full`` (over the whole
    projections: OLMo 2; traced as an RMSNorm of each query and key head, which moves the same
    bytes); ``shared_gate``: a d -> 1 sigmoid gate on the shared experts (Qwen2-MoE; counted
    as parameters, its op not traced: d MACs per token). ``first_dense``: the first layers of
    a mixture-of-experts model have a dense MLP ``dense_ff`` wide (0: ``d_ff``) instead
    (DeepSeekMoE ``first_k_dense_replace``),
    and with ``moe_every`` > 1 only every ``moe_every``-th layer (``(i + 1) % moe_every == 0``)
    is a mixture of experts (Llama 4 Maverick: 2); ``window_kind`` ``chunked``: a windowed
    layer reads the keys of its query's own ``sliding_window``-token chunk (Llama 4's chunked
    attention), ``sliding``: the last ``sliding_window`` keys; ``nope_every``: layer ``i``
    applies no RoPE where ``(i + 1) % nope_every == 0`` (Llama 4's and Command R7B's global
    layers, SmolLM3's every 4th; 0: RoPE in every layer of a RoPE model);
    ``router_bias``: a per-expert bias on the router's scores (DeepSeek-V3, gpt-oss);
    ``attn_sinks``: one learned logit per head that every query's softmax also normalises over
    (gpt-oss; counted as parameters, n_heads per layer: its one extra exponent per query row
    is not traced). ``attn_bias``: biases on the query, key, value and output projections
    and none in the MLP (Phi-3.5-MoE; ``bias`` puts them in both, ``qkv_bias`` on the first
    three only). ``norm_bias`` False: LayerNorms with a gain and no bias (Command R, DBRX, MPT);
    ``norm_weight`` False: norms without gain or bias (OLMo 1's non-parametric LayerNorm).
    ``index_topk`` > 0: DeepSeek sparse attention (DeepSeek-V3.2): a lightning indexer of
    ``index_heads`` heads of ``index_head_dim`` (queries from the query latent, one key per
    token kept in FP8 beside the latent cache) scores every cached key for each query, and
    the latent attention reads the ``index_topk`` best.
    ``ssm_heads`` > 0: a hybrid of Mamba-2 and attention layers (Granite 4.0-H, Bamba): the
    layers in ``attn_layers`` (0-based) attend, the others run a Mamba-2 mixer of
    ``ssm_heads`` heads of ``ssm_head_dim`` channels, ``d_state`` states, ``ssm_groups``
    groups of B and C (0: 1), a ``d_conv``-tap causal convolution and chunks of ``ssm_chunk``
    tokens in a prefill (0: 256); ``ssm_bias``: biases on its in and out projections. Each
    layer has its MLP (dense or a mixture of experts). ``blocks``: instead, layers of one kind
    each, a character per layer (Nemotron-H's ``hybrid_override_pattern``): ``M`` a Mamba-2
    mixer, ``*`` attention, ``-`` an MLP, ``E`` a mixture of experts, ``L`` a ``d_model x
    d_model`` linear without bias (Llama-Nemotron's ``replace_with_linear``), each with its
    norm and residual; ``block_widths`` (one per block, 0: the model's own) give each ``*``
    block its key/value heads and each ``-`` block its MLP width (Llama-Nemotron's
    heterogeneous layers, DeciLM's per-layer key/value heads). ``gdn_v_heads`` > 0 instead:
    the layers outside ``attn_layers`` run a Gated DeltaNet (Qwen3-Next: ``gdn_k_heads``
    query/key heads of ``gdn_k_dim``, ``gdn_v_heads`` value heads of ``gdn_v_dim``, a
    ``d_conv``-tap convolution). ``attn_gate``: a sigmoid gate
    on each attention output element, its inputs from a doubled query projection (Qwen3-Next).
    ``ssm_parallel``: every layer runs its attention and a Mamba-2 mixer side by side on one
    normed input and adds both outputs to the residual, then its MLP (Falcon-H1; ``attn_layers``
    empty); ``ssm_gated_norm`` False: the mixer's output is gated without the gated RMSNorm
    (Falcon-H1's ``mamba_rms_norm`` false). ``expand`` > 0 in a decoder instead: the layers
    outside ``attn_layers`` run a Mamba-1 mixer (Jamba: ``expand * d_model`` channels,
    ``d_state`` states, a ``d_conv``-tap convolution, a ``dt_rank``-wide step projection).
    ``short_conv`` > 0 instead: the layers outside ``attn_layers`` run LFM2's gated short
    convolution of that many taps (:mod:`workloads.shortconv`). ``idle_params``: parameters
    the model holds in memory that no traced op reads (Llama 3.2 Vision's cross-attention
    layers, which text-only inference skips): counted in ``param_count`` and the weight bytes,
    not in ``active_param_count``. ``ssm_norms``: RMSNorms of a
    Mamba-1 mixer's dt, B and C after ``x_proj``
    (:data:`SSM_NORMS`: ``plain`` without gains, Falcon-Mamba; ``gain`` with, Jamba).
    ``kv_lora_rank`` > 0: multi-head latent attention (DeepSeek-V2/V3): keys and values come from
    a ``kv_lora_rank``-wide latent (the KV cache: latent plus ``rope_dim`` RoPE channels per
    token, shared by all heads), queries through a ``q_lora_rank``-wide latent (0: a plain
    projection); ``head_dim`` is the query/key head width (its last ``rope_dim`` channels
    rotated), ``v_head_dim`` the value head width (0: ``head_dim``).
    """

    name: str
    family: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab_size: int
    max_positions: int
    head_dim: int = 0  # 0: d_model // n_heads
    norm: str = "layernorm"  # layernorm | rmsnorm
    activation: str = "gelu"  # gelu | relu | silu | swiglu
    position: str = "learned"  # learned | rope | alibi
    position_offset: int = 0
    tied_embeddings: bool = True
    bias: bool = True
    qkv_bias: bool = False
    embed_norm: bool = False
    n_experts: int = 1
    top_k: int = 1
    kind: str = "decoder"
    n_decoder_layers: int = 0
    block: str = "sequential"
    mlp_bias: bool = False
    head_bias: bool = False
    rotary_dim: int = 0
    type_vocab: int = 0
    pooler: bool = False
    final_norm: bool = True
    rel_pos_buckets: int = 0
    d_state: int = 0
    d_conv: int = 0
    expand: int = 0
    dt_rank: int = 0
    graph: str = ""
    n_params: int = 0
    source: str = ""
    shared_ff: int = 0
    sliding_window: int = 0
    global_every: int = 0
    global_first: bool = False
    post_norms: bool = False
    qk_norm: str = ""
    shared_gate: bool = False
    first_dense: int = 0
    moe_every: int = 0
    window_kind: str = "sliding"
    nope_every: int = 0
    dense_ff: int = 0
    router_bias: bool = False
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    rope_dim: int = 0
    v_head_dim: int = 0
    attn_sinks: bool = False
    attn_bias: bool = False
    norm_bias: bool = True
    index_topk: int = 0
    index_heads: int = 0
    index_head_dim: int = 0
    ssm_heads: int = 0
    ssm_head_dim: int = 0
    ssm_groups: int = 0
    ssm_chunk: int = 0
    attn_layers: tuple[int, ...] = ()
    ssm_bias: bool = False
    blocks: str = ""
    block_widths: tuple[int, ...] = ()
    gdn_k_heads: int = 0
    gdn_v_heads: int = 0
    gdn_k_dim: int = 0
    gdn_v_dim: int = 0
    attn_gate: bool = False
    ssm_norms: str = ""
    ssm_parallel: bool = False
    ssm_gated_norm: bool = True
    norm_weight: bool = True
    short_conv: int = 0
    idle_params: int = 0

    def __post_init__(self) -> None:
        for name, (limit, covers) in LIMITS.items():
            value = getattr(self, name)
            low = 0 if name in ZERO_OK else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise WorkloadError("", name, f"expected an integer >= {low}, got {value!r:.40}")
            if value > limit:
                raise WorkloadError("", name, f"implausible value {value:,} (at most "
                                              f"{limit:,}; largest published: {covers})")
        for field in ("n_params", "idle_params"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise WorkloadError("", field, f"expected an integer >= 0, got {value!r:.40}")
        if self.top_k > self.n_experts:
            raise WorkloadError("", "top_k", f"{self.top_k} experts per token but the model has "
                                             f"{self.n_experts}")
        if self.activation not in ACTIVATIONS:
            raise WorkloadError("", "activation", f"unknown activation '{self.activation:.40}' "
                                                  f"(expected one of {', '.join(ACTIVATIONS)})")
        for name, allowed in (("kind", KINDS), ("block", BLOCKS)):
            if getattr(self, name) not in allowed:
                raise WorkloadError("", name, f"unknown {name} '{getattr(self, name)!s:.40}' "
                                              f"(expected one of {', '.join(allowed)})")
        if self.kind == "mamba" and not (self.d_state and self.d_conv and self.expand):
            raise WorkloadError("", "d_state", "a Mamba model needs d_state, d_conv and "
                                               "expand >= 1")
        if self.short_conv and (self.kind != "decoder" or self.expand or self.ssm_heads
                                or self.gdn_v_heads or self.blocks):
            raise WorkloadError("", "short_conv", "short-convolution layers go in decoders "
                                                  "without another recurrent mixer or a block "
                                                  "pattern")
        if self.kind == "decoder" and self.expand and (
                self.ssm_heads or self.gdn_v_heads or self.is_mla or self.blocks
                or not (self.d_state and self.d_conv)):
            raise WorkloadError("", "expand", "Mamba-1 layers in a decoder need d_state and "
                                              "d_conv >= 1, and no Mamba-2, Gated DeltaNet, "
                                              "latent attention or block pattern")
        if self.ssm_parallel and (not self.ssm_heads or self.attn_layers or self.blocks):
            raise WorkloadError("", "ssm_parallel", "attention beside a Mamba-2 mixer in every "
                                                    "layer needs ssm_heads, and no attn_layers "
                                                    "or block pattern")
        if self.ssm_norms not in SSM_NORMS:
            raise WorkloadError("", "ssm_norms", f"unknown ssm_norms '{self.ssm_norms!s:.40}' "
                                                 f"(expected one of {', '.join(SSM_NORMS)})")
        if self.shared_ff and not self.is_moe:
            raise WorkloadError("", "shared_ff", "shared experts need a mixture-of-experts "
                                                 "model (n_experts > 1)")
        for field in ("first_dense", "moe_every"):
            if getattr(self, field) and not self.is_moe:
                raise WorkloadError("", field, "dense layers among mixture-of-experts ones "
                                               "need n_experts > 1")
        if self.window_kind not in WINDOW_KINDS:
            raise WorkloadError("", "window_kind", f"unknown window_kind "
                                                   f"'{self.window_kind!s:.40}' (expected one "
                                                   f"of {', '.join(WINDOW_KINDS)})")
        if self.index_topk and not (self.kv_lora_rank and self.q_lora_rank
                                    and self.index_heads and self.index_head_dim):
            raise WorkloadError("", "index_topk", "sparse attention's indexer needs latent "
                                                  "attention with a query latent (q_lora_rank, "
                                                  "kv_lora_rank) and index_heads, index_head_dim")
        if self.kv_lora_rank and not (self.rope_dim and self.head_dim > self.rope_dim):
            raise WorkloadError("", "rope_dim", "latent attention needs 0 < rope_dim < "
                                                "head_dim (the rotated channels of each head)")
        if self.qk_norm not in QK_NORMS:
            raise WorkloadError("", "qk_norm", f"unknown qk_norm '{self.qk_norm!s:.40}' "
                                               f"(expected one of {', '.join(QK_NORMS)})")
        if self.gdn_v_heads and (self.ssm_heads or not (
                self.gdn_k_heads and self.gdn_k_dim and self.gdn_v_dim and self.d_conv)
                or self.gdn_v_heads % self.gdn_k_heads):
            raise WorkloadError("", "gdn_v_heads", "Gated DeltaNet layers need gdn_k_heads "
                                                   "dividing gdn_v_heads, gdn_k_dim, gdn_v_dim "
                                                   "and d_conv >= 1, and no Mamba-2 heads")
        if self.ssm_heads:
            if not (self.ssm_head_dim and self.d_state and self.d_conv):
                raise WorkloadError("", "ssm_heads", "Mamba-2 layers need ssm_head_dim, "
                                                     "d_state and d_conv >= 1")
            if self.kind != "decoder" or self.is_mla:
                raise WorkloadError("", "ssm_heads", "Mamba-2 layers go in decoders with "
                                                     "grouped-query attention")
        if self.blocks and (len(self.blocks) != self.n_layers
                            or set(self.blocks) - set(BLOCK_KINDS)
                            or ("M" in self.blocks and not self.ssm_heads)
                            or ("E" in self.blocks and not self.is_moe)):
            raise WorkloadError("", "blocks", f"expected {self.n_layers} of "
                                              f"{', '.join(BLOCK_KINDS)} (M needs ssm_heads, E "
                                              "n_experts > 1)")
        if self.block_widths:
            self._check_block_widths()
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.n_layers
               for i in self.attn_layers) or list(self.attn_layers) != sorted(
                   set(self.attn_layers)):
            raise WorkloadError("", "attn_layers", f"expected increasing layer indices in "
                                                   f"[0, {self.n_layers})")
        if self.nope_every and self.position != "rope":
            raise WorkloadError("", "nope_every", "layers without RoPE need position 'rope'")
        if self.global_first and not self.global_every:
            raise WorkloadError("", "global_first", "global first layers of each period need "
                                                    "global_every > 0")
        if self.global_every and not self.sliding_window:
            raise WorkloadError("", "global_every", "global layers among windowed ones need "
                                                    "sliding_window > 0")
        if self.head_dim == 0:
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        if (self.kind == "mamba" or self.mamba1) and self.dt_rank == 0:
            object.__setattr__(self, "dt_rank", math.ceil(self.d_model / 16))

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 1

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    @property
    def v_dim(self) -> int:
        """Width of one value head."""
        return self.v_head_dim or self.head_dim

    @property
    def is_mla(self) -> bool:
        """Multi-head latent attention (DeepSeek-V2/V3)."""
        return self.kv_lora_rank > 0

    def dense_layer(self, layer: int) -> bool:
        """Whether layer ``layer`` (0-based) has a dense MLP in a mixture-of-experts model."""
        return self.is_moe and (layer < self.first_dense or (
            self.moe_every > 1 and (layer + 1) % self.moe_every != 0))

    def dense_layers(self) -> int:
        """How many of the ``n_layers`` layers of a mixture-of-experts model are dense."""
        return sum(self.dense_layer(i) for i in range(self.n_layers))

    def window_keys(self, s: int, n: int) -> int:
        """Keys a windowed layer's query reads at KV length ``n`` with ``s`` new tokens: the
        last ``sliding_window`` (sliding), or in a decode step the keys of its own chunk,
        ``(n - 1) % sliding_window + 1`` (chunked; a prefill: at most the window, as
        sliding)."""
        if self.window_kind == "chunked" and s == 1:
            return (n - 1) % self.sliding_window + 1
        return min(n, self.sliding_window)

    @property
    def d_inner(self) -> int:
        """Mamba: channels of the selective scan (``expand * d_model``)."""
        return self.expand * self.d_model

    def mlp_params(self) -> int:
        """Parameters of one expert's MLP."""
        mats = 3 if self.activation == "swiglu" else 2
        params = mats * self.d_model * self.d_ff
        if self.bias or self.mlp_bias:
            params += (mats - 1) * self.d_ff + self.d_model
        return params

    def shared_mlp_params(self) -> int:
        """Parameters of a mixture-of-experts layer's shared experts (0: none)."""
        if not self.shared_ff:
            return 0
        gate = self.d_model if self.shared_gate else 0
        return gate + replace(self, d_ff=self.shared_ff, shared_ff=0, n_experts=1, top_k=1,
                              shared_gate=False, first_dense=0, moe_every=0,
                              blocks="", block_widths=()).mlp_params()

    def windowed(self, layer: int) -> bool:
        """Whether decoder layer ``layer`` (0-based) reads only its last ``sliding_window``
        keys."""
        if not self.sliding_window:
            return False
        at = layer if self.global_first else layer + 1
        return not (self.global_every and at % self.global_every == 0)

    def nope(self, layer: int) -> bool:
        """Whether decoder layer ``layer`` (0-based) of a RoPE model applies no RoPE."""
        return bool(self.nope_every) and (layer + 1) % self.nope_every == 0

    def mamba(self, layer: int) -> bool:
        """Whether decoder layer ``layer`` (0-based) of a hybrid runs a Mamba-2 mixer."""
        if self.blocks:
            return self.blocks[layer] == "M"
        return self.recurrent and layer not in self.attn_layers

    @property
    def recurrent(self) -> bool:
        """A hybrid whose other layers run a recurrent mixer (Mamba-1, Mamba-2, Gated DeltaNet
        or a short convolution)."""
        return bool(self.ssm_heads or self.gdn_v_heads or self.mamba1 or self.short_conv)

    @property
    def mamba1(self) -> bool:
        """A decoder hybrid whose recurrent layers run a Mamba-1 mixer (Jamba)."""
        return self.kind == "decoder" and self.expand > 0

    def block_kind(self, layer: int) -> str:
        """Layer ``layer``'s kind in a block-pattern model (:data:`BLOCK_KINDS`), else ``""``."""
        return self.blocks[layer] if self.blocks else ""

    def block_width(self, layer: int) -> int:
        """Block ``layer``'s own key/value heads (``*``) or MLP width (``-``); 0: the model's."""
        return self.block_widths[layer] if self.block_widths else 0

    def _check_block_widths(self) -> None:
        """``block_widths``: one integer >= 0 per block, key/value heads dividing ``n_heads``
        on ``*`` blocks, a width on ``-`` blocks, 0 elsewhere (one-line error)."""
        for i, (kind, w) in enumerate(zip(self.blocks, self.block_widths, strict=False)):
            if isinstance(w, bool) or not isinstance(w, int) or w < 0 or (
                    w and (kind not in "*-" or (kind == "*" and self.n_heads % w))):
                raise WorkloadError("", f"block_widths[{i}]", f"expected 0, key/value heads "
                                                              f"dividing {self.n_heads} (*) or "
                                                              f"an MLP width (-) for a '{kind}' "
                                                              f"block, got {w!r:.40}")
        if not self.blocks or len(self.block_widths) != len(self.blocks):
            raise WorkloadError("", "block_widths", f"expected one width per block "
                                                    f"({len(self.blocks)}), got "
                                                    f"{len(self.block_widths)}")

    def block_model(self, kind: str, width: int) -> ModelConfig:
        """This model with block kind ``kind``'s width ``width`` as its own (a ``*`` block's
        key/value heads, a ``-`` block's MLP width), without its block pattern."""
        if kind == "*" and width:
            return replace(self, n_kv_heads=width, blocks="", block_widths=())
        if kind == "-":
            return replace(self, d_ff=width or self.dense_ff or self.d_ff, n_experts=1,
                           top_k=1, shared_ff=0, first_dense=0, moe_every=0, dense_ff=0,
                           blocks="", block_widths=())
        return replace(self, blocks="", block_widths=())

    def first_layer(self) -> ModelConfig:
        """A block-pattern model of attention and MLP blocks as one plain layer of its first
        attention block and its first MLP block (their own widths)."""
        widths = self.block_widths or (0,) * len(self.blocks)
        kv = next(w for k, w in zip(self.blocks, widths, strict=True) if k == "*")
        ff = next(w for k, w in zip(self.blocks, widths, strict=True) if k == "-")
        return replace(self, n_layers=1, blocks="", block_widths=(),
                       n_kv_heads=kv or self.n_kv_heads, d_ff=ff or self.d_ff)

    def kv_heads_held(self, tp: int = 1) -> int:
        """Key/value heads one device keeps over all layers (each layer's heads split over
        ``tp`` ranks, replicated where fewer): layers with attention x heads, or each ``*``
        block's own."""
        if self.block_widths:
            return sum(max(1, (w or self.n_kv_heads) // tp)
                       for k, w in zip(self.blocks, self.block_widths, strict=True) if k == "*")
        return self.kv_layers() * max(1, self.n_kv_heads // tp)

    def with_layers(self, n: int) -> ModelConfig:
        """This model cut to ``n`` layers (or grown: a block pattern repeats its last kind);
        a hybrid keeps its attention layers below ``n``."""
        blocks = (self.blocks + self.blocks[-1:] * n)[:n] if self.blocks else ""
        widths = (self.block_widths + self.block_widths[-1:] * n)[:n] if self.block_widths \
            else ()
        return replace(self, n_layers=n, blocks=blocks, block_widths=widths,
                       attn_layers=tuple(i for i in self.attn_layers if i < n))

    def mamba_layers(self) -> int:
        """How many layers run a Mamba-2 mixer (0 but in a hybrid)."""
        if self.blocks:
            return self.blocks.count("M")
        return self.n_layers - len(self.attn_layers) if self.recurrent else 0

    def kv_layers(self) -> int:
        """How many layers keep keys and values (all but Mamba and MLP blocks)."""
        if self.kind == "mamba":
            return 0
        if self.ssm_parallel:   # attention in every layer, beside its mixer
            return self.n_layers
        if self.blocks:
            return self.blocks.count("*")
        return self.n_layers - self.mamba_layers()

    def block_params(self, kind: str, width: int = 0) -> int:
        """One block of a block-pattern model: its norm and its mixer or MLP (``width``: its
        own key/value heads or MLP width, :meth:`block_width`)."""
        if kind == "M":
            return self.norm_params() + self.mamba2_params()
        if kind == "*":
            return self.norm_params() + self.block_model(kind, width).attention_params()
        if kind == "-":
            return self.norm_params() + self.block_model(kind, width).mlp_params()
        if kind == "L":
            return self.norm_params() + self.d_model * self.d_model
        return self.norm_params() + self.n_experts * self.mlp_params() \
            + self.shared_mlp_params() + (self.d_model + int(self.router_bias)) * self.n_experts

    @property
    def ssm_inner(self) -> int:
        """Channels of a Mamba-2 mixer (``ssm_heads x ssm_head_dim``)."""
        return self.ssm_heads * self.ssm_head_dim

    def mamba2_params(self) -> int:
        """One Mamba-2 mixer (HF Mamba2Mixer): in_proj (d -> z, x, B, C, dt: 2 inner + 2
        groups x states + heads), the depthwise convolution over x, B and C (taps and bias),
        dt_bias, A_log and D per head, the gated RMSNorm's gain, out_proj (inner -> d)."""
        d, di, h = self.d_model, self.ssm_inner, self.ssm_heads
        bc = 2 * max(1, self.ssm_groups) * self.d_state
        proj = 2 * di + bc + h
        conv = (di + bc) * (self.d_conv + 1)
        bias = proj + d if self.ssm_bias else 0
        norm = di if self.ssm_gated_norm else 0
        return d * proj + conv + 3 * h + norm + di * d + bias

    def gdn_params(self) -> int:
        """One Gated DeltaNet (HF Qwen3NextGatedDeltaNet): in_proj_qkvz and in_proj_ba, the
        depthwise convolution over q, k and v (no bias), dt_bias and A_log per value head, the
        gated RMSNorm's gain (one value head wide), out_proj."""
        qk, v = self.gdn_k_heads * self.gdn_k_dim, self.gdn_v_heads * self.gdn_v_dim
        d = self.d_model
        return d * (2 * qk + 2 * v + 2 * self.gdn_v_heads) + (2 * qk + v) * self.d_conv \
            + 2 * self.gdn_v_heads + self.gdn_v_dim + v * d

    def windowed_layers(self) -> int:
        """How many of the ``n_layers`` layers are windowed."""
        return sum(self.windowed(i) for i in range(self.n_layers))

    def attention_params(self) -> int:
        """Parameters of one attention block (Q, K, V, output projections and biases)."""
        d = self.d_model
        if self.is_mla:   # DeepSeek-V2/V3: latent projections and their RMSNorm gains
            h, q, c = self.n_heads, self.q_lora_rank, self.kv_lora_rank
            nope = self.head_dim - self.rope_dim
            queries = d * q + q + q * h * self.head_dim if q else d * h * self.head_dim
            return (queries + d * (c + self.rope_dim) + c + c * h * (nope + self.v_dim)
                    + h * self.v_dim * d + self.indexer_params())
        attn = d * self.q_dim * (2 if self.attn_gate else 1) + 2 * d * self.kv_dim \
            + self.q_dim * d
        if self.bias or self.attn_bias:
            attn += self.q_dim + 2 * self.kv_dim + d
        elif self.qkv_bias:
            attn += self.q_dim + 2 * self.kv_dim
        return attn

    def indexer_params(self) -> int:
        """DeepSeek-V3.2's lightning indexer in one layer: its query projection from the query
        latent, its key projection and LayerNorm (gain and bias), its per-head weights."""
        if not self.index_topk:
            return 0
        hd, e = self.index_heads, self.index_head_dim
        return self.q_lora_rank * hd * e + self.d_model * e + 2 * e + self.d_model * hd

    def norm_params(self) -> int:
        """Parameters of one norm (LayerNorm: gain and bias, gain alone without ``norm_bias``;
        RMSNorm: gain; none without ``norm_weight``)."""
        if not self.norm_weight:
            return 0
        return 2 * self.d_model if self.norm == "layernorm" and self.norm_bias else self.d_model

    def mamba_layer_params(self) -> int:
        """One Mamba block (HF ``MambaMixer`` + its RMSNorm): in_proj (d -> 2 d_inner), the
        depthwise conv (taps and bias), x_proj (d_inner -> dt_rank + 2 d_state), dt_proj with
        bias, A_log, D, out_proj (d_inner -> d)."""
        d, di, n, r = self.d_model, self.d_inner, self.d_state, self.dt_rank
        gains = r + 2 * n if self.ssm_norms == "gain" else 0
        bias = 2 * di + d if self.ssm_bias else 0
        return (d * 2 * di + di * self.d_conv + di + di * (r + 2 * n) + r * di + di + di * n
                + di + di * d + gains + bias + self.norm_params())

    def layer_params(self, dense: bool = False, mamba: bool = False) -> int:
        """Parameters of one layer (encoder-decoder: of one encoder layer; ``dense``: one of
        the first ``first_dense`` layers of a mixture-of-experts model; ``mamba``: a hybrid's
        Mamba-2 layer)."""
        if self.kind == "mamba":
            return self.mamba_layer_params()
        d = self.d_model
        if dense:
            mlp = replace(self, d_ff=self.dense_ff or self.d_ff, n_experts=1, top_k=1,
                          shared_ff=0, first_dense=0, moe_every=0, blocks="",
                          block_widths=()).mlp_params()
        else:
            mlp = self.n_experts * self.mlp_params() + self.shared_mlp_params()
        if self.is_moe and not dense:
            mlp += (d + int(self.router_bias)) * self.n_experts  # router (and its bias)
        norms = (1 if self.block == "parallel" else 2) * self.norm_params()
        if self.post_norms:
            norms += 2 * self.norm_params()
        if self.ssm_parallel:   # attention and the Mamba-2 mixer side by side, one norm
            return self.attention_params() + self.mamba2_params() + mlp + norms
        if mamba:
            if self.short_conv:
                from workloads.shortconv import params
                return params(self) + mlp + norms
            if self.mamba1:   # its mixer without the block's own norm (counted in norms)
                return self.mamba_layer_params() - self.norm_params() + mlp + norms
            return (self.gdn_params() if self.gdn_v_heads else self.mamba2_params()) + mlp \
                + norms
        if self.qk_norm:
            norms += 2 * self.head_dim if self.qk_norm == "head" else self.q_dim + self.kv_dim
        sinks = self.n_heads if self.attn_sinks else 0
        return self.attention_params() + mlp + norms + sinks

    def decoder_layer_params(self) -> int:
        """Encoder-decoder: one decoder layer (self attention, cross attention, MLP, 3 norms)."""
        return self.layer_params() + self.attention_params() + self.norm_params()

    def embedding_params(self) -> int:
        d = self.d_model
        params = self.vocab_size * d
        if self.position == "learned":
            params += (self.max_positions + self.position_offset) * d
        if self.embed_norm:
            params += 2 * d
        return params + self.type_vocab * d

    def param_count(self) -> int:
        """Total parameters: embeddings, layers, final norm(s), pooler, LM head (unless tied)."""
        if self.n_params:  # counted from an ONNX graph's initializers
            return self.n_params
        final_norm = self.norm_params() if self.final_norm else 0
        head = 0 if self.tied_embeddings else self.vocab_size * self.d_model
        head += self.vocab_size if self.head_bias else 0
        if self.blocks:   # a pattern of blocks of one kind (and width) each (Nemotron-H)
            kinds = Counter(zip(self.blocks, self.block_widths or (0,) * len(self.blocks),
                                strict=True))
            layers = sum(self.block_params(*k) * count for k, count in kinds.items())
        elif self.recurrent:   # a hybrid: each layer's mixer and MLP as they are
            kinds = [(self.dense_layer(i), self.mamba(i)) for i in range(self.n_layers)]
            layers = sum(self.layer_params(*k) * kinds.count(k) for k in set(kinds))
        else:
            dense = self.dense_layers()
            layers = (self.n_layers - dense) * self.layer_params() \
                + dense * self.layer_params(dense=True)
        total = self.embedding_params() + layers + final_norm + head
        if self.pooler:
            total += self.d_model * self.d_model + self.d_model
        if self.kind == "encoder_decoder":  # decoder stack, its final norm, two bias tables
            total += self.n_decoder_layers * self.decoder_layer_params() + final_norm
            total += 2 * self.rel_pos_buckets * self.n_heads
        elif self.rel_pos_buckets:
            total += self.rel_pos_buckets * self.n_heads
        return total + self.idle_params

    def non_embedding_params(self) -> int:
        """Parameters outside the token embedding and an untied LM head (Gemma Table 2)."""
        head = 0 if self.tied_embeddings else self.vocab_size * self.d_model
        return self.param_count() - self.vocab_size * self.d_model - head

    def active_param_count(self) -> int:
        """Parameters touched per token (MoE: only ``top_k`` experts; never ``idle_params``)."""
        if not self.is_moe:
            return self.param_count() - self.idle_params
        moe_layers = self.blocks.count("E") if self.blocks else \
            self.n_layers - self.dense_layers()
        inactive = (self.n_experts - self.top_k) * self.mlp_params() * moe_layers
        return self.param_count() - inactive - self.idle_params


def _gpt3(name: str, layers: int, d: int, heads: int, source: str) -> ModelConfig:
    return ModelConfig(name=name, family="gpt3", n_layers=layers, d_model=d, n_heads=heads,
                       n_kv_heads=heads, d_ff=4 * d, vocab_size=50257, max_positions=2048,
                       source=source)


def _gpt2(name: str, layers: int, d: int, heads: int) -> ModelConfig:
    return ModelConfig(name=name, family="gpt2", n_layers=layers, d_model=d, n_heads=heads,
                       n_kv_heads=heads, d_ff=4 * d, vocab_size=50257, max_positions=1024,
                       source=f"Hugging Face {name.replace('gpt2-small', 'gpt2')} config.json "
                              "(Radford et al. 2019)")


def _opt(name: str, layers: int, d: int, heads: int) -> ModelConfig:
    return ModelConfig(name=name, family="opt", n_layers=layers, d_model=d, n_heads=heads,
                       n_kv_heads=heads, d_ff=4 * d, vocab_size=50272, max_positions=2048,
                       position_offset=2, activation="relu",
                       source=f"Hugging Face facebook/{name} config.json (Zhang et al. 2022)")


def _hf_shaped(name: str, family: str, source: str, **shape) -> ModelConfig:
    """A Llama-shaped decoder of a Hugging Face family (RMSNorm, gated MLP, RoPE, untied head,
    no biases unless ``shape`` says otherwise), as workloads/hf_config.py reads its config.json
    (tests/test_hf_windows_shared.py checks each preset against that reading)."""
    base = dict(norm="rmsnorm", activation="swiglu", position="rope", tied_embeddings=False,
                bias=False)
    return ModelConfig(name=name, family=family, source=source, **{**base, **shape})


def _llama(name: str, layers: int, d: int, heads: int, kv: int, ff: int, vocab: int,
           positions: int, source: str) -> ModelConfig:
    return _hf_shaped(name, "llama", source, n_layers=layers, d_model=d, n_heads=heads,
                      n_kv_heads=kv, d_ff=ff, vocab_size=vocab, max_positions=positions)


_PRESETS: list[ModelConfig] = [
    _gpt3("gpt3-7b", 32, 4096, 32,
          "NeuPIMs (ASPLOS'24) GPT3-7B shape: 4096 hidden, 32 heads, 32 layers"),
    _gpt3("gpt3-13b", 40, 5120, 40,
          "NeuPIMs (ASPLOS'24) GPT3-13B shape; Brown et al. 2020 Table 2.1"),
    _gpt3("gpt3-30b", 48, 7168, 56,
          "NeuPIMs (ASPLOS'24) GPT3-30B shape: 7168 hidden, 56 heads, 48 layers"),
    _gpt3("gpt3-175b", 96, 12288, 96, "Brown et al. 2020, Table 2.1: GPT-3 175B"),
    _opt("opt-6.7b", 32, 4096, 32),
    _opt("opt-13b", 40, 5120, 40),
    _opt("opt-30b", 48, 7168, 56),
    _opt("opt-66b", 64, 9216, 72),
    _opt("opt-175b", 96, 12288, 96),
    _llama("llama2-7b", 32, 4096, 32, 32, 11008, 32000, 4096,
           "Hugging Face meta-llama/Llama-2-7b-hf config.json (Touvron et al. 2023)"),
    _llama("llama2-13b", 40, 5120, 40, 40, 13824, 32000, 4096,
           "Hugging Face meta-llama/Llama-2-13b-hf config.json"),
    _llama("llama2-70b", 80, 8192, 64, 8, 28672, 32000, 4096,
           "Hugging Face meta-llama/Llama-2-70b-hf config.json (GQA, 8 KV heads)"),
    _llama("llama3-8b", 32, 4096, 32, 8, 14336, 128256, 8192,
           "Hugging Face meta-llama/Meta-Llama-3-8B config.json"),
    _llama("llama3-70b", 80, 8192, 64, 8, 28672, 128256, 8192,
           "Hugging Face meta-llama/Meta-Llama-3-70B config.json"),
    replace(_llama("mistral-7b", 32, 4096, 32, 8, 14336, 32000, 32768,
                   "Hugging Face mistralai/Mistral-7B-v0.1 config.json (GQA, 8 KV heads, "
                   "a 4,096-key sliding window in every layer)"),
            family="mistral", sliding_window=4096),
    replace(_llama("mixtral-8x7b", 32, 4096, 32, 8, 14336, 32000, 32768,
                   "Hugging Face mistralai/Mixtral-8x7B-v0.1 config.json (Jiang et al. 2024)"),
            family="mixtral", n_experts=8, top_k=2),
    ModelConfig(name="bloom-176b", family="bloom", n_layers=70, d_model=14336, n_heads=112,
                n_kv_heads=112, d_ff=4 * 14336, vocab_size=250880, max_positions=2048,
                position="alibi", embed_norm=True,
                source="Hugging Face bigscience/bloom config.json (BigScience 2022)"),
    _gpt2("gpt2-small", 12, 768, 12),
    _gpt2("gpt2-medium", 24, 1024, 16),
    _gpt2("gpt2-large", 36, 1280, 20),
    _gpt2("gpt2-xl", 48, 1600, 25),
]

def _bert(name: str, layers: int, d: int, heads: int, source: str, vocab: int = 30522,
          family: str = "bert") -> ModelConfig:
    return ModelConfig(name=name, family=family, kind="encoder", n_layers=layers, d_model=d,
                       n_heads=heads, n_kv_heads=heads, d_ff=4 * d, vocab_size=vocab,
                       max_positions=512, type_vocab=2 if family == "bert" else 0,
                       pooler=family == "bert", embed_norm=True, final_norm=False,
                       source=source)


def _t5(name: str, layers: int, d: int, heads: int, ff: int, count: str) -> ModelConfig:
    return ModelConfig(name=name, family="t5", kind="encoder_decoder", n_layers=layers,
                       n_decoder_layers=layers, d_model=d, n_heads=heads, n_kv_heads=heads,
                       head_dim=64, d_ff=ff, vocab_size=32128, max_positions=512,
                       norm="rmsnorm", activation="relu", position="relative", bias=False,
                       rel_pos_buckets=32,
                       source=f"Hugging Face google-t5/{name} config.json (Raffel et al. 2020, "
                              f"{count} parameters)")


def _mamba(name: str, layers: int, d: int) -> ModelConfig:
    return ModelConfig(name=name, family="mamba", kind="mamba", n_layers=layers, d_model=d,
                       n_heads=1, n_kv_heads=1, head_dim=d, d_ff=2 * d, vocab_size=50280,
                       max_positions=2048, norm="rmsnorm", activation="silu", position="none",
                       bias=False, d_state=16, d_conv=4, expand=2,
                       source=f"Hugging Face state-spaces/{name}-hf config.json (Gu & Dao 2023, "
                              "Table 12 sizes; vocabulary 50277 padded to 50280)")


_PRESETS += [
    _bert("bert-base", 12, 768, 12, "Devlin et al. 2019 (110M); Hugging Face "
          "google-bert/bert-base-uncased config.json"),
    _bert("bert-large", 24, 1024, 16, "Devlin et al. 2019 (340M); Hugging Face "
          "google-bert/bert-large-uncased config.json"),
    replace(_bert("trxl", 18, 1024, 16, "FuseMax artifact flat_validation.csv TrXL shape "
                  "(D 1024, E 64, H 16, S 4096); 18 layers and 267,735-token vocabulary of "
                  "Transformer-XL Large on WikiText-103 (Dai et al. 2019), embedding modelled "
                  "as a full table (the paper's adaptive input is smaller)", 267735, "trxl"),
            position="relative", final_norm=True),
    _bert("xlm", 12, 2048, 16, "FuseMax artifact flat_validation.csv XLM shape (D 2048, E 128, "
          "H 16, S 8192); Hugging Face FacebookAI/xlm-mlm-en-2048 config.json (12 layers, "
          "30,145 tokens; Conneau & Lample 2019)", 30145, "xlm"),
    _t5("t5-small", 6, 512, 8, 2048, "60M"),
    _t5("t5-base", 12, 768, 12, 3072, "220M"),
    _t5("t5-large", 24, 1024, 16, 4096, "770M"),
    _mamba("mamba-130m", 24, 768),
    _mamba("mamba-370m", 48, 1024),
    _mamba("mamba-790m", 48, 1536),
    _mamba("mamba-1.4b", 48, 2048),
    _mamba("mamba-2.8b", 64, 2560),
    ModelConfig(name="gpt-j-6b", family="gptj", n_layers=28, d_model=4096, n_heads=16,
                n_kv_heads=16, d_ff=16384, vocab_size=50400, max_positions=2048,
                position="rope", rotary_dim=64, block="parallel", bias=False, mlp_bias=True,
                head_bias=True, tied_embeddings=False,
                source="Hugging Face EleutherAI/gpt-j-6b config.json and model card "
                       "(6,053,381,344 parameters)"),
    ModelConfig(name="falcon-7b", family="falcon", n_layers=32, d_model=4544, n_heads=71,
                n_kv_heads=1, d_ff=4 * 4544, vocab_size=65024, max_positions=2048,
                position="rope", block="parallel", bias=False,
                source="Hugging Face tiiuae/falcon-7b config.json (multi-query, parallel "
                       "attention; Almazrouei et al. 2023)"),
    ModelConfig(name="falcon-40b", family="falcon", n_layers=60, d_model=8192, n_heads=128,
                n_kv_heads=8, d_ff=4 * 8192, vocab_size=65024, max_positions=2048,
                position="rope", block="parallel2", bias=False,
                source="Hugging Face tiiuae/falcon-40b config.json (new_decoder_architecture: "
                       "8 KV groups, separate attention and MLP norms)"),
    ModelConfig(name="phi-2", family="phi", n_layers=32, d_model=2560, n_heads=32,
                n_kv_heads=32, d_ff=10240, vocab_size=51200, max_positions=2048,
                position="rope", rotary_dim=32, block="parallel", head_bias=True,
                tied_embeddings=False,
                source="Hugging Face microsoft/phi-2 config.json (partial_rotary_factor 0.4; "
                       "2.7B parameters, Microsoft Research blog 2023)"),
    replace(_llama("gemma-2b", 18, 2048, 8, 1, 16384, 256000, 8192,
                   "Hugging Face google/gemma-2b config.json; Gemma Team 2024 Table 2 "
                   "(1,981,884,416 non-embedding parameters; GeGLU counted as a gated MLP)"),
            family="gemma", head_dim=256, tied_embeddings=True),
    replace(_llama("gemma-7b", 28, 3072, 16, 16, 24576, 256000, 8192,
                   "Hugging Face google/gemma-7b config.json; Gemma Team 2024 Table 2 "
                   "(7,751,248,896 non-embedding parameters; GeGLU counted as a gated MLP)"),
            family="gemma", head_dim=256, tied_embeddings=True),
]

# config.json values as published; where each copy was read: docs/models.md
_PRESETS += [
    _hf_shaped("qwen3-8b", "qwen3", "Hugging Face Qwen/Qwen3-8B config.json (copy in "
               "ai-dynamo/aiconfigurator model_configs @ 095f58a)", n_layers=36, d_model=4096,
               n_heads=32, n_kv_heads=8, d_ff=12288, vocab_size=151936, max_positions=40960,
               head_dim=128, qk_norm="head"),
    _hf_shaped("qwen3-30b-a3b", "qwen3_moe", "Hugging Face Qwen/Qwen3-30B-A3B config.json "
               "(ai-dynamo/aiconfigurator @ 095f58a): 128 experts, top 8", n_layers=48,
               d_model=2048, n_heads=32, n_kv_heads=4, d_ff=768, vocab_size=151936,
               max_positions=40960, head_dim=128, n_experts=128, top_k=8, qk_norm="head",
               moe_every=1),
    _hf_shaped("qwen1.5-moe-a2.7b", "qwen2_moe", "Hugging Face Qwen/Qwen1.5-MoE-A2.7B "
               "config.json (mlc-ai/mlc-llm model_preset.py @ 79d603f): 60 experts, top 4, "
               "a 5,632-wide shared expert", n_layers=24, d_model=2048, n_heads=16,
               n_kv_heads=16, d_ff=1408, vocab_size=151936, max_positions=32768, qkv_bias=True,
               n_experts=60, top_k=4, shared_ff=5632, shared_gate=True, moe_every=1),
    _hf_shaped("gemma2-9b", "gemma2", "Hugging Face google/gemma-2-9b config.json (mlc-llm "
               "model_preset.py @ 79d603f): 4,096-key window on even layers", n_layers=42,
               d_model=3584, n_heads=16, n_kv_heads=8, d_ff=14336, vocab_size=256000,
               max_positions=8192, head_dim=256, tied_embeddings=True, sliding_window=4096,
               global_every=2, post_norms=True),
    _hf_shaped("gemma3-1b", "gemma3_text", "Hugging Face google/gemma-3-1b-it config.json "
               "(mlc-llm model_preset.py @ 79d603f): 512-key window, every 6th layer global",
               n_layers=26, d_model=1152, n_heads=4, n_kv_heads=1, d_ff=6912,
               vocab_size=262144, max_positions=32768, head_dim=256, tied_embeddings=True,
               sliding_window=512, global_every=6, post_norms=True, qk_norm="head"),
    _hf_shaped("deepseek-v3", "deepseek_v3", "Hugging Face deepseek-ai/DeepSeek-V3 config.json "
               "(NVIDIA-NeMo/Megatron-Bridge test fixture @ 067f987): multi-head latent "
               "attention, 256 experts top 8 + 1 shared, 3 dense layers; without its MTP module",
               n_layers=61, d_model=7168, n_heads=128, n_kv_heads=128, d_ff=2048,
               vocab_size=129280, max_positions=163840, head_dim=192, rotary_dim=64,
               n_experts=256, top_k=8, shared_ff=2048, first_dense=3, dense_ff=18432,
               router_bias=True, q_lora_rank=1536, kv_lora_rank=512, rope_dim=64,
               v_head_dim=128),
    _hf_shaped("deepseek-v3.2", "deepseek_v32", "Hugging Face deepseek-ai/DeepSeek-V3.2-Exp "
               "config.json: DeepSeek-V3's, plus DeepSeek sparse attention's indexer "
               "(index_n_heads 64, index_head_dim 128, index_topk 2048: ModelArgs of its "
               "inference/model.py @ 6d8cb70); without its MTP module",
               n_layers=61, d_model=7168, n_heads=128, n_kv_heads=128, d_ff=2048,
               vocab_size=129280, max_positions=163840, head_dim=192, rotary_dim=64,
               n_experts=256, top_k=8, shared_ff=2048, first_dense=3, dense_ff=18432,
               router_bias=True, q_lora_rank=1536, kv_lora_rank=512, rope_dim=64,
               v_head_dim=128, index_topk=2048, index_heads=64, index_head_dim=128),
    _hf_shaped("deepseek-v2-lite", "deepseek_v2", "Hugging Face deepseek-ai/DeepSeek-V2-Lite "
               "config.json (mlc-llm model_preset.py @ 79d603f): latent attention without a "
               "query latent, 64 experts top 6 + 2 shared, 1 dense layer", n_layers=27,
               d_model=2048, n_heads=16, n_kv_heads=16, d_ff=1408, vocab_size=102400,
               max_positions=163840, head_dim=192, rotary_dim=64, n_experts=64, top_k=6,
               shared_ff=2816, first_dense=1, dense_ff=10944, kv_lora_rank=512, rope_dim=64,
               v_head_dim=128),
    _hf_shaped("llama4-scout", "llama4_text", "Hugging Face meta-llama/Llama-4-Scout-17B-16E-"
               "Instruct config.json text_config (inference-sim model_configs @ 50bc797): 16 "
               "experts top 1 + 1 shared, 8,192-token chunked attention, every 4th layer "
               "global without RoPE; no vision encoder", n_layers=48, d_model=5120, n_heads=40,
               n_kv_heads=8, d_ff=8192, vocab_size=202048, max_positions=10485760,
               head_dim=128, n_experts=16, shared_ff=8192, sliding_window=8192,
               global_every=4, moe_every=1, window_kind="chunked", nope_every=4),
    _hf_shaped("llama4-maverick", "llama4_text", "Hugging Face meta-llama/Llama-4-Maverick-17B-"
               "128E-Instruct config.json text_config (ai-dynamo/aiconfigurator @ 0b077da): "
               "128 experts top 1 + 1 shared on odd layers, dense 16,384-wide MLPs on even "
               "ones; chunked attention as Scout; no vision encoder", n_layers=48,
               d_model=5120, n_heads=40, n_kv_heads=8, d_ff=8192, vocab_size=202048,
               max_positions=1048576, head_dim=128, n_experts=128, shared_ff=8192,
               sliding_window=8192, global_every=4, moe_every=2, dense_ff=16384,
               window_kind="chunked", nope_every=4),
    _hf_shaped("gpt-oss-120b", "gpt_oss", "Hugging Face openai/gpt-oss-120b config.json "
               "(ai-dynamo/aiconfigurator model_configs @ 0b077da): 128 experts top 4 with "
               "biases, a router bias, a sink logit per head, 128-token window in even layers; "
               "its release stores the experts in MXFP4, 4.25 bits a weight (--weights int4 "
               "--weight-group 32 is the nearest: 4.5 bits, and the attention too)",
               n_layers=36, d_model=2880, n_heads=64, n_kv_heads=8, d_ff=2880,
               vocab_size=201088, max_positions=131072, head_dim=64, bias=True,
               n_experts=128, top_k=4, router_bias=True, attn_sinks=True, sliding_window=128,
               global_every=2, moe_every=1),
    _hf_shaped("gpt-oss-20b", "gpt_oss", "Hugging Face openai/gpt-oss-20b config.json (ai-"
               "dynamo/aiconfigurator @ 0b077da): gpt-oss-120b's layer with 32 experts, 24 "
               "layers", n_layers=24, d_model=2880, n_heads=64, n_kv_heads=8, d_ff=2880,
               vocab_size=201088, max_positions=131072, head_dim=64, bias=True,
               n_experts=32, top_k=4, router_bias=True, attn_sinks=True, sliding_window=128,
               global_every=2, moe_every=1),
    _hf_shaped("glm-4.5-air", "glm4_moe", "Hugging Face zai-org/GLM-4.5-Air config.json "
               "(triple-mu/aiconfigurator @ ba4dfe3): 128 experts top 8 + 1 shared, 1 dense "
               "layer, QKV biases, RoPE on half of each head; without its MTP layer",
               n_layers=46, d_model=4096, n_heads=96, n_kv_heads=8, d_ff=1408,
               vocab_size=151552, max_positions=131072, head_dim=128, rotary_dim=64,
               qkv_bias=True, n_experts=128, top_k=8, shared_ff=1408, first_dense=1,
               dense_ff=10944, router_bias=True),
    _hf_shaped("olmoe-1b-7b", "olmoe", "allenai/OLMoE-1B-7B-0924 as its pretraining config "
               "(allenai/OLMoE configs/OLMoE-1B-7B-0924.yml @ 357454f) and HF OlmoeConfig "
               "name it: 64 experts top 8, RMSNorm of the whole query and key projections",
               n_layers=16, d_model=2048, n_heads=16, n_kv_heads=16, d_ff=1024,
               vocab_size=50304, max_positions=4096, n_experts=64, top_k=8, qk_norm="full",
               moe_every=1),
]



def _layer_blocks(runs: tuple[tuple[int, int, int], ...]) -> dict:
    """``blocks`` and ``block_widths`` of layers given as runs of ``(layers, key/value heads,
    MLP width)``, each 0 for a no-op attention or MLP (Llama-Nemotron's block_configs)."""
    blocks, widths = [], []
    for count, heads, width in runs:
        layer = [(k, w) for k, w in (("*", heads), ("-", width)) if w]
        blocks += [k for k, _ in layer] * count
        widths += [w for _, w in layer] * count
    return {"n_layers": len(blocks), "blocks": "".join(blocks), "block_widths": tuple(widths)}


#: newer families' presets, each field for field its config.json as workloads/hf_config.py reads
#: it (tests/test_model_presets_2026.py)
_PRESETS += [
    _hf_shaped("qwen3.5-27b", "qwen3_next", "Hugging Face Qwen/Qwen3.5-27B config.json "
               "text_config (pasted verbatim in ModelCloud/GPTQModel issue 2559): Gated "
               "DeltaNet layers, gated attention every 4th, a 17,408-wide MLP in every layer; "
               "no vision tower, no MTP layer", n_layers=64, d_model=5120, n_heads=24,
               n_kv_heads=4, d_ff=17408, vocab_size=248320, max_positions=262144,
               head_dim=256, rotary_dim=64, d_conv=4, qk_norm="head",
               attn_layers=tuple(range(3, 64, 4)), gdn_k_heads=16, gdn_v_heads=48,
               gdn_k_dim=128, gdn_v_dim=128, attn_gate=True),
    _hf_shaped("qwen3-next-80b-a3b", "qwen3_next", "Hugging Face Qwen/Qwen3-Next-80B-A3B-"
               "Instruct config.json (a model-info report's dump of the checkpoint; "
               "ai-dynamo/aiconfigurator's Thinking copy @ 1b7cfb10 is identical): 512 experts "
               "top 10 + 1 gated shared; no MTP layer", n_layers=48, d_model=2048, n_heads=16,
               n_kv_heads=2, d_ff=512, vocab_size=151936, max_positions=262144, head_dim=256,
               n_experts=512, top_k=10, rotary_dim=64, d_conv=4, shared_ff=512,
               qk_norm="head", shared_gate=True, moe_every=1,
               attn_layers=tuple(range(3, 48, 4)), gdn_k_heads=16, gdn_v_heads=32,
               gdn_k_dim=128, gdn_v_dim=128, attn_gate=True),
    _hf_shaped("granite-4.0-h-tiny", "granitemoehybrid", "ibm-granite/granite-4.0-h-tiny "
               "config.json as third-party copies give it (a test fixture and a server "
               "manifest agree): Mamba-2 layers, attention without RoPE in layers 5, 15, 25, "
               "35, 64 experts top 6 + a shared MLP", n_layers=40, d_model=1536, n_heads=12,
               n_kv_heads=4, d_ff=512, vocab_size=100352, max_positions=131072, head_dim=128,
               tied_embeddings=True, n_experts=64, top_k=6, d_state=128, d_conv=4,
               shared_ff=1024, moe_every=1, nope_every=1, ssm_heads=48, ssm_head_dim=64,
               ssm_groups=1, ssm_chunk=256, attn_layers=(5, 15, 25, 35)),
    _hf_shaped("llama-3.3-nemotron-super-49b", "nemotron-nas", "Hugging Face nvidia/Llama-3_3-"
               "Nemotron-Super-49B-v1 config.json (its copy in NVIDIA-NeMo/Megatron-Bridge "
               "llama_nemotron_config.py @ 2cec89e): 80 layers, 49 with attention of 8 "
               "key/value heads, MLPs of six widths (ffn_mult x 2/3 x d rounded up to 256)",
               d_model=8192, n_heads=64, n_kv_heads=8, d_ff=28672, vocab_size=128256,
               max_positions=131072, head_dim=128, **_layer_blocks((
                   (1, 8, 14336), (5, 8, 28672), (2, 0, 14336), (3, 8, 28672), (1, 0, 17920),
                   (30, 8, 28672), (1, 0, 7168), (2, 0, 14336), (1, 0, 7168), (1, 0, 28672),
                   (1, 0, 7168), (1, 0, 14336), (3, 0, 7168), (1, 8, 28672), (1, 0, 7168),
                   (2, 0, 5632), (1, 0, 7168), (3, 0, 5632), (2, 0, 7168), (2, 0, 2816),
                   (2, 0, 5632), (2, 0, 2816), (1, 0, 5632), (2, 0, 2816), (9, 8, 28672)))),
    _hf_shaped("ministral-8b", "ministral", "mistralai/Ministral-8B-Instruct-2410 (its card: "
               "8,019,808,256 parameters, attention pattern ragged 128k, 32k, 32k, 32k) as HF's "
               "ministral port reads it: a 32,768-key window but in every 4th layer from the "
               "first", n_layers=36, d_model=4096, n_heads=32, n_kv_heads=8, d_ff=12288,
               vocab_size=131072, max_positions=32768, head_dim=128, sliding_window=32768,
               global_every=4, global_first=True),
    _hf_shaped("glm-4-9b", "glm", "Hugging Face THUDM/glm-4-9b-chat-hf config.json (HF blame "
               "@ c7f73fd): q/k/v biases, 2 key/value heads, RoPE on half of each head",
               n_layers=40, d_model=4096, n_heads=32, n_kv_heads=2, d_ff=13696,
               vocab_size=151552, max_positions=131072, head_dim=128, qkv_bias=True,
               rotary_dim=64),
]

MODEL_PRESETS: dict[str, ModelConfig] = {m.name: m for m in _PRESETS}
ALIASES = {"gpt2": "gpt2-small", "llama-2-7b": "llama2-7b", "llama-2-13b": "llama2-13b",
           "llama-2-70b": "llama2-70b", "llama-3-8b": "llama3-8b", "llama-3-70b": "llama3-70b",
           "mixtral": "mixtral-8x7b", "mistral": "mistral-7b", "bloom": "bloom-176b",
           "bert": "bert-base",
           "t5": "t5-small", "mamba": "mamba-130m", "gpt-j": "gpt-j-6b", "gptj": "gpt-j-6b",
           "falcon": "falcon-7b", "phi2": "phi-2", "gemma": "gemma-7b",
           "nemotron-super-49b": "llama-3.3-nemotron-super-49b"}


def list_models() -> list[str]:
    """Names of the built-in model presets."""
    return list(MODEL_PRESETS)


def get_model(name: str) -> ModelConfig:
    """A preset by name (or alias); raise :class:`WorkloadError` with a did-you-mean."""
    key = ALIASES.get(name.lower(), name.lower())
    if key in MODEL_PRESETS:
        return MODEL_PRESETS[key]
    import difflib  # on the error path only (start-up)
    hint = difflib.get_close_matches(key, list(MODEL_PRESETS) + list(ALIASES), n=1)
    more = f" (did you mean '{ALIASES.get(hint[0], hint[0])}'?)" if hint else ""
    raise WorkloadError("", "--model", f"unknown model '{name}'{more}; "
                                       "see `xpusim models list`, or pass a config.json path")
