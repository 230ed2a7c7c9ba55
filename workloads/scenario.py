"""A serving scenario: batch, prompt and generated lengths, datatypes, parallelism."""

from __future__ import annotations

from workloads.einsum import DTYPE_BYTES, packed_format
from workloads.errors import WorkloadError
from workloads.records import record

ATTENTION_IMPLS = ("unfused", "flash")
#: largest batch, length or device count (products of two stay inside 64-bit integers)
MAX_COUNT = 2**31 - 1


def _big(value: int) -> str:
    """A possibly huge integer for a message: ``1e+23``, or its digit count past floats."""
    return f"{value:.3g}" if abs(value) < 10**300 else f"a {len(str(abs(value)))}-digit integer"


@record(frozen=True)
class Scenario:
    """Static batching: ``batch`` requests, each ``prompt_len`` tokens in, ``gen_len`` out.

    The first generated token comes from prefill; each of the other ``gen_len - 1`` comes from
    one decode step. ``tp`` devices split every layer (Megatron tensor parallelism); ``pp``
    pipeline stages hold contiguous groups of layers, the activations crossing each boundary.
    ``microbatches`` splits the batch into that many micro-batches (sizes as even as possible)
    that flow through the layers independently, so pipeline stages and a device's compute and
    communication can work on different micro-batches at once.
    ``attention`` is ``unfused`` (QK, softmax, AV as separate kernels, as eager PyTorch runs
    them) or ``flash`` (one fused kernel).
    """

    batch: int = 1
    prompt_len: int = 512
    gen_len: int = 128
    dtype: str = "fp16"
    kv_dtype: str = ""
    tp: int = 1
    attention: str = "unfused"
    pp: int = 1
    microbatches: int = 1
    ep: int = 1
    expert_skew: float = 0.0
    # measured per-expert loads (workloads.routing.load_expert_counts); () = --expert-skew's law
    expert_counts: tuple[float, ...] = ()
    sparse_kv: float = 1.0
    # low-bit weights and sink + window attention (docs/fpga.md): stored weight dtype of the
    # layers' linear ops ("" = dtype), fp16 scale per ``weight_group`` elements of K (0: none),
    # structured sparsity "N:M" ("" = dense); attention reads at most attn_sink + attn_window
    # KV entries (StreamingLLM / AccLLM Lambda-shaped attention; window 0 = full attention)
    weights: str = ""
    weight_group: int = 0
    sparsity: str = ""
    attn_sink: int = 0
    attn_window: int = 0

    def __post_init__(self) -> None:
        for name, opt in (("batch", "--batch"), ("prompt_len", "--prompt"),
                          ("gen_len", "--gen"), ("tp", "--tp"), ("pp", "--pp"),
                          ("microbatches", "--microbatches"), ("ep", "--ep")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise WorkloadError("", opt, f"expected a positive integer, got {value!r:.40}")
            if value > MAX_COUNT:
                raise WorkloadError("", opt, f"expected at most {MAX_COUNT:,}, got {_big(value)}")
        for name, opt in (("dtype", "--dtype"), ("kv_dtype", "--kv-dtype")):
            value = getattr(self, name)
            if name == "kv_dtype" and not value:
                object.__setattr__(self, "kv_dtype", self.dtype)
                continue
            if not isinstance(value, str) or value not in DTYPE_BYTES:
                raise WorkloadError("", opt, f"unknown dtype {value!r:.40} "
                                             f"(expected one of {', '.join(DTYPE_BYTES)})")
        skew = self.expert_skew
        if isinstance(skew, bool) or not isinstance(skew, (int, float)) or not 0 <= skew <= 10:
            raise WorkloadError("", "--expert-skew", f"expected a number in [0, 10], got {skew!r}")
        if self.expert_counts and skew > 0:
            raise WorkloadError("", "--expert-counts", "give either --expert-counts or "
                                                       "--expert-skew, not both")
        frac = self.sparse_kv
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
            raise WorkloadError("", "--sparse-kv", f"expected a fraction in (0, 1], got {frac!r}")
        if self.ep > 1 and self.ep != self.tp:
            raise WorkloadError("", "--ep", f"expert parallelism {self.ep} must equal --tp "
                                            f"{self.tp} (the experts are spread over the "
                                            "tensor-parallel devices)")
        if self.microbatches > self.batch:
            raise WorkloadError("", "--microbatches", f"{self.microbatches} micro-batches exceed "
                                                      f"the batch of {self.batch} requests")
        self._check_lowbit()
        if self.attention not in ATTENTION_IMPLS:
            raise WorkloadError("", "--attention", f"expected one of {', '.join(ATTENTION_IMPLS)}, "
                                                   f"got '{self.attention}'")

    def _check_lowbit(self) -> None:
        """Validate the low-bit weight and sink + window options."""
        if self.weights and (not isinstance(self.weights, str) or self.weights not in DTYPE_BYTES):
            raise WorkloadError("", "--weights", f"unknown dtype {self.weights!r:.40} "
                                                 f"(expected one of {', '.join(DTYPE_BYTES)})")
        for name, opt in (("weight_group", "--weight-group"), ("attn_sink", "--attn-sink"),
                          ("attn_window", "--attn-window")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
                raise WorkloadError("", opt, f"expected an integer >= 0, got {value!r:.40}")
        if self.sparsity and (not isinstance(self.sparsity, str)
                              or packed_format(f"int8/{self.sparsity}") is None):
            raise WorkloadError("", "--sparsity", f"expected N:M with 0 < N < M <= 64 (e.g. 2:4), "
                                                  f"got {self.sparsity!r:.40}")
        if self.attn_sink and not self.attn_window:
            raise WorkloadError("", "--attn-sink", "sink tokens need --attn-window > 0 (the "
                                                   "local window after them)")

    @property
    def weight_format(self) -> str:
        """Stored format of the layers' linear weights: ``dtype``, or a packed format
        ``BASE[/gG][/N:M]`` (:func:`workloads.einsum.packed_format`)."""
        base = self.weights or self.dtype
        if not self.weight_group and not self.sparsity:
            return base
        return base + (f"/g{self.weight_group}" if self.weight_group else "") \
            + (f"/{self.sparsity}" if self.sparsity else "")

    def attended(self, n: int) -> int:
        """KV entries one query reads at KV length ``n`` (capped at sink + window)."""
        return min(n, self.attn_sink + self.attn_window) if self.attn_window else n

    @property
    def total_tokens(self) -> int:
        """Tokens generated over the whole run."""
        return self.batch * self.gen_len

    @property
    def max_context(self) -> int:
        """Longest KV length reached (prompt plus all generated tokens but the last)."""
        return self.prompt_len + self.gen_len - 1
