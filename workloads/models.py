"""Transformer model shapes: presets with sources, and the parameter count derived from shape."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace

from workloads.errors import WorkloadError

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
}
#: activation functions the tracer knows (``swiglu``: gated MLP with SiLU)
ACTIVATIONS = ("gelu", "relu", "silu", "swiglu", "sigmoid", "tanh")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a decoder-only transformer (dense or mixture-of-experts).

    ``position`` is ``learned`` (an embedding table of ``max_positions`` rows, plus
    ``position_offset`` extra rows as OPT has), ``rope`` or ``alibi``. ``activation`` ``swiglu``
    means a gated MLP with three matrices.
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
    source: str = ""

    def __post_init__(self) -> None:
        for name, (limit, covers) in LIMITS.items():
            value = getattr(self, name)
            low = 0 if name in ("head_dim", "position_offset") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise WorkloadError("", name, f"expected an integer >= {low}, got {value!r:.40}")
            if value > limit:
                raise WorkloadError("", name, f"implausible value {value:,} (at most "
                                              f"{limit:,}; largest published: {covers})")
        if self.top_k > self.n_experts:
            raise WorkloadError("", "top_k", f"{self.top_k} experts per token but the model has "
                                             f"{self.n_experts}")
        if self.activation not in ACTIVATIONS:
            raise WorkloadError("", "activation", f"unknown activation '{self.activation:.40}' "
                                                  f"(expected one of {', '.join(ACTIVATIONS)})")
        if self.head_dim == 0:
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 1

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    def mlp_params(self) -> int:
        """Parameters of one expert's MLP."""
        mats = 3 if self.activation == "swiglu" else 2
        params = mats * self.d_model * self.d_ff
        if self.bias:
            params += (mats - 1) * self.d_ff + self.d_model
        return params

    def layer_params(self) -> int:
        """Parameters of one decoder layer."""
        d = self.d_model
        attn = d * self.q_dim + 2 * d * self.kv_dim + self.q_dim * d
        if self.bias:
            attn += self.q_dim + 2 * self.kv_dim + d
        elif self.qkv_bias:
            attn += self.q_dim + 2 * self.kv_dim
        mlp = self.n_experts * self.mlp_params()
        if self.is_moe:
            mlp += d * self.n_experts  # router
        norms = 2 * (2 * d if self.norm == "layernorm" else d)
        return attn + mlp + norms

    def embedding_params(self) -> int:
        d = self.d_model
        params = self.vocab_size * d
        if self.position == "learned":
            params += (self.max_positions + self.position_offset) * d
        if self.embed_norm:
            params += 2 * d
        return params

    def param_count(self) -> int:
        """Total parameters: embeddings, layers, final norm, LM head (unless tied)."""
        final_norm = 2 * self.d_model if self.norm == "layernorm" else self.d_model
        head = 0 if self.tied_embeddings else self.vocab_size * self.d_model
        return self.embedding_params() + self.n_layers * self.layer_params() + final_norm + head

    def active_param_count(self) -> int:
        """Parameters touched per token (MoE: only ``top_k`` experts)."""
        if not self.is_moe:
            return self.param_count()
        inactive = (self.n_experts - self.top_k) * self.mlp_params() * self.n_layers
        return self.param_count() - inactive


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


def _llama(name: str, layers: int, d: int, heads: int, kv: int, ff: int, vocab: int,
           positions: int, source: str) -> ModelConfig:
    return ModelConfig(name=name, family="llama", n_layers=layers, d_model=d, n_heads=heads,
                       n_kv_heads=kv, d_ff=ff, vocab_size=vocab, max_positions=positions,
                       norm="rmsnorm", activation="swiglu", position="rope",
                       tied_embeddings=False, bias=False, source=source)


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

MODEL_PRESETS: dict[str, ModelConfig] = {m.name: m for m in _PRESETS}
ALIASES = {"gpt2": "gpt2-small", "llama-2-7b": "llama2-7b", "llama-2-13b": "llama2-13b",
           "llama-2-70b": "llama2-70b", "llama-3-8b": "llama3-8b", "llama-3-70b": "llama3-70b",
           "mixtral": "mixtral-8x7b", "bloom": "bloom-176b"}


def list_models() -> list[str]:
    """Names of the built-in model presets."""
    return list(MODEL_PRESETS)


def get_model(name: str) -> ModelConfig:
    """A preset by name (or alias); raise :class:`WorkloadError` with a did-you-mean."""
    key = ALIASES.get(name.lower(), name.lower())
    if key in MODEL_PRESETS:
        return MODEL_PRESETS[key]
    hint = difflib.get_close_matches(key, list(MODEL_PRESETS) + list(ALIASES), n=1)
    more = f" (did you mean '{ALIASES.get(hint[0], hint[0])}'?)" if hint else ""
    raise WorkloadError("", "--model", f"unknown model '{name}'{more}; "
                                       "see `xpusim models list`, or pass a config.json path")
