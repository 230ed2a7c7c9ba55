"""config.json readers of decoders whose layers differ in width: NVIDIA's Llama-Nemotron
(``nemotron-nas``: Super-49B, Ultra-253B, 51B) and Deci's DeciLM (``deci``).

Each layer becomes blocks of one kind (``ModelConfig.blocks``): attention (``*``) with its own
key/value heads, an MLP (``-``) with its own width, or a linear in place of either (``L``);
a layer whose attention or MLP is a no-op has no block for it.
"""

from __future__ import annotations

from typing import Any

from workloads.errors import WorkloadError
from workloads.hf_fields import ConfigReader
from workloads.models import LIMITS, ModelConfig

#: per-layer options of Llama-Nemotron's blocks that no release sets (sparse, windowed or sink
#: attention): refused where set
UNMODELLED = ("sparsify", "window_length", "num_sink_tokens")


def ffn_width(ffn_mult: float, d_model: int) -> int:
    """A Llama-Nemotron MLP's width from its ``ffn_mult`` (vLLM's and TensorRT-LLM's
    ``_ffn_mult_to_intermediate_size``, after NVIDIA's modeling_decilm.py): ``int(2 x mult x
    d / 3)`` rounded up to a multiple of 256."""
    width = int(2 * ffn_mult * d_model / 3)
    return width if width % 256 == 0 else width + 256 - width % 256


def _part(r: ConfigReader, i: int, name: str) -> ConfigReader:
    """Layer ``i``'s ``attention`` or ``ffn`` config, its unmodelled options refused."""
    where = f"block_configs[{i}].{name}"
    layer = r.data["block_configs"][i]
    part = layer.get(name) if isinstance(layer, dict) else None
    if not isinstance(part, dict):
        raise WorkloadError(r.file, where, "expected an object (the layer's block config)")
    for key in UNMODELLED:
        if part.get(key) not in (None, False, 0):
            raise WorkloadError(r.file, f"{where}.{key}", "expected null (sparse, windowed or "
                                                          "sink attention blocks are not "
                                                          "modelled)")
    return ConfigReader(part, r.file)


def _block(r: ConfigReader, i: int, name: str, heads: int, d: int) -> tuple[str, int] | None:
    """Layer ``i``'s attention or MLP as (block kind, width), None for a no-op."""
    part = _part(r, i, name)
    try:
        if part.bool("no_op", False):
            return None
        if part.bool("replace_with_linear", False):
            return "L", 0
        if name == "ffn":
            return "-", _ffn_block_width(r, part.data.get("ffn_mult"), d)
        group = part.int("n_heads_in_group")
        if heads % group:
            raise WorkloadError(r.file, "n_heads_in_group", f"expected a divisor of "
                                                            f"{heads} attention heads, got {group}")
        return "*", heads // group
    except WorkloadError as exc:   # the field as the file nests it
        raise WorkloadError(r.file, f"block_configs[{i}].{name}.{exc.path}", exc.message) \
            from None


def _ffn_block_width(r: ConfigReader, mult: Any, d: int) -> int:
    """The MLP width of ``ffn_mult`` (:func:`ffn_width`), refused in one line where it is not
    a number, or gives no channel or a width past the plausible MLP width (``LIMITS``)."""
    limit = LIMITS["d_ff"][0]
    if isinstance(mult, bool) or not isinstance(mult, (int, float)) or not \
            3 / (2 * d) <= mult <= 3 * limit / (2 * d):
        raise WorkloadError(r.file, "ffn_mult", f"expected a number in [{3 / (2 * d):.3g}, "
                                                f"{3 * limit / (2 * d):.6g}] (an MLP of 1 to "
                                                f"{limit:,} channels), got {mult!r:.40}")
    return ffn_width(mult, d)


def _model(r: ConfigReader, family: str, blocks: list[tuple[str, int]], name: str,
           source: str, **extra: Any) -> ModelConfig:
    """A Llama-shaped decoder of ``blocks`` (kind, width): the first attention block's
    key/value heads and the widest MLP stand for the model's own."""
    heads = r.int("num_attention_heads")
    d = r.int("hidden_size")
    kinds = "".join(k for k, _ in blocks)
    if not blocks:
        raise WorkloadError(r.file, "block_configs", "expected at least one layer with "
                                                     "attention or an MLP")
    kv = next((w for k, w in blocks if k == "*"), heads)
    ff = max((w for k, w in blocks if k == "-"), default=r.int("intermediate_size",
                                                                 default=4 * d))
    return ModelConfig(
        name=name, family=family, n_layers=len(blocks), d_model=d, n_heads=heads,
        n_kv_heads=kv, d_ff=ff, vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=131072),
        head_dim=r.int("head_dim", default=d // heads), norm="rmsnorm", activation="swiglu",
        position="rope", bias=False, attn_bias=r.bool("attention_bias", False),
        mlp_bias=r.bool("mlp_bias", False),
        tied_embeddings=r.bool("tie_word_embeddings", False), blocks=kinds,
        block_widths=tuple(w for _, w in blocks), source=source, **extra)


def nemotron_nas(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """Llama-Nemotron (``nemotron-nas``, DeciLMForCausalLM; vLLM's nemotron_nas.py): each of
    ``block_configs`` is a Llama layer whose attention has ``num_attention_heads /
    n_heads_in_group`` key/value heads, or is a no-op (no norm, no block, no KV cache), or a
    linear (``replace_with_linear``: its norm and a bias-free ``d x d`` linear); whose MLP is
    a gated SiLU MLP :func:`ffn_width` wide, or a no-op, or a linear. Sparse, windowed and
    sink attention blocks (unused by the releases) are refused."""
    layers = r.layers("num_hidden_layers")
    configs = r.data.get("block_configs")
    if not isinstance(configs, list) or len(configs) != layers:
        raise WorkloadError(r.file, "block_configs", f"expected a list of {layers} layer "
                                                     "configs (one per num_hidden_layers)")
    heads, d = r.int("num_attention_heads"), r.int("hidden_size")
    blocks = [b for i in range(layers)
              for b in (_block(r, i, "attention", heads, d), _block(r, i, "ffn", heads, d))
              if b is not None]
    return _model(r, "nemotron-nas", blocks, name, source)


def deci(r: ConfigReader, name: str, source: str) -> ModelConfig:
    """DeciLM (``deci``: DeciLM-7B): a Llama decoder whose layer ``i`` has
    ``num_key_value_heads_per_layer[i]`` key/value heads (each layer an attention block and an
    MLP block ``intermediate_size`` wide)."""
    layers = r.layers("num_hidden_layers")
    per_layer = r.data.get("num_key_value_heads_per_layer")
    heads = r.int("num_attention_heads")
    if not isinstance(per_layer, list) or len(per_layer) != layers or any(
            isinstance(k, bool) or not isinstance(k, int) or k < 1 or heads % k
            for k in per_layer):
        raise WorkloadError(r.file, "num_key_value_heads_per_layer",
                            f"expected {layers} integers, each dividing {heads} heads")
    ff = r.int("intermediate_size")
    blocks = [b for k in per_layer for b in (("*", k), ("-", ff))]
    return _model(r, "deci", blocks, name, source)
