"""Turn a model and a scenario into a trace of per-layer ops for prefill and decode.

Each layer is built once per distinct shape (prefill, and each decode step's KV length) as a
template of Einsums, then stamped out for every layer; Einsum objects are shared, so a 70B model
with hundreds of decode steps stays cheap to trace.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from workloads.einsum import Cascade, Einsum, TensorRef, contraction, elementwise
from workloads.errors import WorkloadError
from workloads.gc_hold import gc_paused
from workloads.models import ModelConfig
from workloads.records import record
from workloads.routing import expert_token_counts
from workloads.scenario import Scenario
from workloads.trace import (
    ATTENTION,
    COLLECTIVE,
    EXPERT_GEMM_NAME,
    EXPERT_RANK,
    MATMUL,
    MEMORY,
    VECTOR,
    Collective,
    CompactOps,
    Compute,
    Op,
    OpKind,
    Trace,
    op_work,
)

if TYPE_CHECKING:   # numpy is imported where arrays are built (start-up stays light)
    import numpy as np


def _memo(method):
    """Memoise a :class:`LayerBuilder` method on its arguments: decode steps rebuild only what
    changes with the KV length (attention); every other template is built once per shape and
    the same object is stamped again, so its FLOPs and bytes are derived once."""
    name = method.__name__

    def wrapper(self, *args, **kwargs):
        key = (name, args, tuple(sorted(kwargs.items())))
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = method(self, *args, **kwargs)
        return list(hit) if isinstance(hit, list) else hit

    wrapper.__name__ = name
    wrapper.__doc__ = method.__doc__
    return wrapper


#: the rank of the attention Einsums that holds the KV length (the only size that changes from
#: one decode step to the next)
KV_RANK = "n"
#: hold decode steps that differ only in their KV length folded (:mod:`workloads.fold`): the
#: per-op arrays of a compact trace are built only when something reads them; False builds
#: them at once (the same arrays)
FOLD = True
#: the tensors only a windowed layer's attention reads (:meth:`LayerBuilder.attention`)
WINDOW_TENSORS = ("k_window", "v_window", "scores_window", "kv_topk", "scores_topk")


@record(frozen=True)
class OpTemplate:
    """An op before it is placed in a layer: what it computes and how it is classified."""

    name: str
    kind: str
    op_class: str
    compute: Compute | None
    collective: Collective | None = None
    rank: int = -1   # expert-parallel rank that runs it alone (-1: every tensor-parallel device)


def _t(name: str, ranks: str | tuple[str, ...], dtype: str, role: str = "activation") -> TensorRef:
    return TensorRef(name, tuple(ranks), dtype, role)


def layernorm(name: str, x: str, tokens: int, d: int, dtype: str, rms: bool) -> Cascade:
    """LayerNorm / RMSNorm over the last rank as a cascade of reductions and maps."""
    sizes = {"t": tokens, "d": d}
    X = _t(x, "td", dtype)
    steps: list[Einsum] = []
    if not rms:
        steps.append(Einsum(f"{name}.mean", _t(f"{name}.mu", "t", "fp32", "intermediate"), (X,),
                            (("t", tokens), ("d", d)), reduce_op="add"))
        steps.append(elementwise(f"{name}.center", _t(f"{name}.xc", "td", "fp32", "intermediate"),
                                 (X, _t(f"{name}.mu", "t", "fp32", "intermediate")), sizes, "sub"))
        xc = _t(f"{name}.xc", "td", "fp32", "intermediate")
    else:
        xc = X
    steps.append(Einsum(f"{name}.var", _t(f"{name}.var", "t", "fp32", "intermediate"), (xc, xc),
                        (("t", tokens), ("d", d)), map_op="mul", reduce_op="add"))
    steps.append(elementwise(f"{name}.rstd", _t(f"{name}.rstd", "t", "fp32", "intermediate"),
                             (_t(f"{name}.var", "t", "fp32", "intermediate"),), sizes, "copy",
                             unary="rsqrt"))
    steps.append(elementwise(f"{name}.scale", _t(f"{name}.xn", "td", "fp32", "intermediate"),
                             (xc, _t(f"{name}.rstd", "t", "fp32", "intermediate")), sizes, "mul"))
    steps.append(elementwise(f"{name}.gamma", _t(f"{name}.out", "td", dtype),
                             (_t(f"{name}.xn", "td", "fp32", "intermediate"),
                              _t(f"{name}.gamma", "d", dtype, "weight")), sizes, "mul"))
    return Cascade(name, tuple(steps), outputs=(f"{name}.out",))


def softmax(name: str, s: TensorRef, sizes: dict[str, int], reduce_rank: str) -> Cascade:
    """Three-pass softmax over ``reduce_rank``: max, exp(x - max), sum, divide."""
    keep = tuple(r for r in s.ranks if r != reduce_rank)
    all_sizes = tuple((r, sizes[r]) for r in s.ranks)
    m = _t(f"{name}.max", keep, "fp32", "intermediate")
    e = _t(f"{name}.exp", s.ranks, "fp32", "intermediate")
    z = _t(f"{name}.sum", keep, "fp32", "intermediate")
    p = _t(f"{name}.out", s.ranks, s.dtype)
    return Cascade(name, (
        Einsum(f"{name}.max", m, (s,), all_sizes, reduce_op="max"),
        elementwise(f"{name}.exp", e, (s, m), sizes, "sub", unary="exp"),
        Einsum(f"{name}.sum", z, (e,), all_sizes, reduce_op="add"),
        elementwise(f"{name}.div", p, (e, z), sizes, "div"),
    ), outputs=(p.name,))


class LayerShapes:
    """Per-device shapes of one layer under tensor parallelism ``tp``."""

    def __init__(self, model: ModelConfig, tp: int):
        if model.n_heads % tp and model.kv_layers():   # (a model without attention: none)
            raise WorkloadError("", "--tp", f"{model.name} has {model.n_heads} heads, "
                                            f"not divisible by tensor parallelism {tp}")
        for field in ("d_ff", "shared_ff", "dense_ff", "ssm_heads", "gdn_k_heads",
                      "d_inner"):
            if getattr(model, field) % tp:
                raise WorkloadError("", "--tp", f"{model.name} has {field} "
                                                f"{getattr(model, field)}, not divisible by "
                                                f"tensor parallelism {tp}")
        self.heads = model.n_heads // tp
        self.kv_groups = max(1, model.n_kv_heads // tp)  # KV heads are replicated below tp
        self.group_size = self.heads // self.kv_groups
        self.head_dim = model.head_dim
        self.d = model.d_model
        self.ff = model.d_ff // tp
        self.vocab = math.ceil(model.vocab_size / tp)


class LayerBuilder:
    """Builds the op templates of one decoder layer for a given phase and KV length."""

    def __init__(self, model: ModelConfig, scenario: Scenario):
        self.m = model
        self.sc = scenario
        self.shape = LayerShapes(model, scenario.tp)
        self.dt = scenario.dtype
        self.kv_dt = scenario.kv_dtype
        self.w_dt = scenario.weight_format  # layers' linear weights (lm_head, router: dtype)
        self._memo: dict[tuple, object] = {}
        self._blocks: dict[tuple[str, int], LayerBuilder] = {}   # by (block kind, width)

    def kv_len(self, s: int, n: int) -> int:
        """Extent of the KV rank (:data:`KV_RANK`) attention reads with ``s`` queries per
        request at KV length ``n``: ``ceil(n x sparse_kv)`` in a decode step with sparse KV
        selection, at most sink + window keys with windowed attention, at most the model's
        ``sliding_window`` where every layer is windowed (Mistral-7B-v0.1, StarCoder2)."""
        if s == 1 and self.sc.sparse_kv < 1:
            n = max(1, math.ceil(n * self.sc.sparse_kv))
        n = self.sc.attended(n)  # sink + window attention reads at most sink + window keys
        if self.m.sliding_window and not self.m.global_every:
            n = self.m.window_keys(s, n)
        return n

    def kv_lens(self, s: int, ns: list[int]) -> list[int]:
        """``[self.kv_len(s, n) for n in ns]`` (dense, unwindowed attention: ``ns`` itself)."""
        if (s == 1 and self.sc.sparse_kv < 1) or self.sc.attn_window or self.m.sliding_window:
            return [self.kv_len(s, n) for n in ns]
        return list(ns)

    @_memo
    def attention(self, b: int, s: int, n: int, local: bool = False) -> list[OpTemplate]:
        """QK^T, softmax and AV for ``b`` requests, ``s`` queries each, KV length ``n`` (a
        decode step with sparse KV selection attends to ``ceil(n x sparse_kv)`` entries).
        ``local``: a windowed layer of a model whose other layers read every key (Gemma 2/3):
        at most ``sliding_window`` keys, from a cache of its own (``k_window`` / ``v_window``,
        scores ``scores_window``: its ops are kinds of their own, as their KV length stops
        growing at the window)."""
        if self.m.is_mla:
            return self._latent_attention(b, s, n)
        sh, dt = self.shape, self.dt
        n = self.kv_len(s, n)
        if local:
            n = self.m.window_keys(s, n)
        sizes = {"b": b, "g": sh.kv_groups, "r": sh.group_size, "s": s, "n": n,
                 "e": sh.head_dim}
        q = _t("q", "bgrse", dt)
        cache = "window" if local else "cache"
        k = _t(f"k_{cache}", "bgne", self.kv_dt, "kv_cache")
        v = _t(f"v_{cache}", "bgne", self.kv_dt, "kv_cache")
        return self.attention_ops(q, k, v, sizes, "bgrse",
                                   "scores_window" if local else "scores")

    def attention_ops(self, q: TensorRef, k: TensorRef, v: TensorRef, sizes: dict[str, int],
                       out: str, scores: str = "scores") -> list[OpTemplate]:
        """QK^T, softmax and AV of ``q`` against ``k`` and ``v`` (output ranks ``out``): one
        fused op with ``attention: flash``, else three (their scores tensor ``scores``)."""
        dt = self.dt
        if self.sc.attention == "flash":
            flash = Cascade("attention", (
                contraction("attention.qk", _t("scores", "bgrsn", "fp32", "intermediate"),
                            q, k, sizes),
                *softmax("attention.softmax", _t("scores", "bgrsn", "fp32", "intermediate"),
                         sizes, "n").einsums,
                contraction("attention.av", _t("attn_out", out, dt),
                            _t("attention.softmax.out", "bgrsn", "fp32", "intermediate"),
                            v, sizes),
            ), outputs=("attn_out",))
            return [OpTemplate("attention", ATTENTION, "attention", flash)]
        s = _t(scores, "bgrsn", dt)
        probs = _t("softmax.out", "bgrsn", dt)
        return [
            OpTemplate("qk", MATMUL, "attention", contraction("qk", s, q, k, sizes)),
            OpTemplate("softmax", VECTOR, "attention", softmax("softmax", s, sizes, "n")),
            OpTemplate("av", MATMUL, "attention",
                       contraction("av", _t("attn_out", out, dt), probs, v, sizes)),
        ]

    def _latent_attention(self, b: int, s: int, n: int) -> list[OpTemplate]:
        """Multi-head latent attention (DeepSeek-V2/V3) as vLLM and SGLang run it. A decode
        step (``s`` = 1) works on the latent cache: each head's query is taken into the
        latent (``q_absorb``: the no-RoPE part times that head's slice of ``kv_b_proj``),
        attention reads the cache as one key/value head shared by all query heads (keys: the
        ``kv_lora_rank`` latent and the ``rope_dim`` RoPE channels; values: the latent), and
        each head's output leaves the latent (``v_absorb``). A prefill (or chunk) expands the
        cached latents of its ``n`` positions to per-head keys and values (``kv_b_proj``) and
        runs multi-head attention over them. With ``attention: flash`` the attention is one
        fused op (FlashMLA in decode: :func:`sim.gpu.attention.flash_mla`), else QK^T, softmax
        and AV."""
        m, sh, dt = self.m, self.shape, self.dt
        n = self.kv_len(s, n)
        c, nope, vd = m.kv_lora_rank, m.head_dim - m.rope_dim, m.v_dim
        ops: list[OpTemplate] = self._index_scores(b, s, n) if m.index_topk else []
        n = min(n, m.index_topk) if m.index_topk else n   # DSA: the keys the indexer chose
        scores = "scores"
        if s == 1:
            sizes = {"b": b, "g": 1, "r": sh.heads, "s": 1, "n": n, "e": c + m.rope_dim,
                     "f": c}
            # the keys the indexer chose (DSA): a tensor of their own, as a windowed layer's
            # (their extent stops at index_topk; workloads/fold.py resizes them apart)
            latent = "kv_topk" if m.index_topk else "kv_latent"
            scores = "scores_topk" if m.index_topk else scores
            k = _t(latent, "bgne", self.kv_dt, "kv_cache")
            v = _t(latent, "bgnf", self.kv_dt, "kv_cache")
            ops.append(self._linear("q_absorb", b, nope, c, experts=sh.heads))
        else:
            sizes = {"b": b, "g": sh.heads, "r": 1, "s": s, "n": n, "e": m.head_dim, "f": vd}
            k = _t("k_expanded", "bgne", dt)
            v = _t("v_expanded", "bgnf", dt)
            ops.append(self._linear("kv_b_proj", b * n, c, sh.heads * (nope + vd)))
        ops += self.attention_ops(_t("q", "bgrse", dt), k, v, sizes, "bgrsf", scores)
        if s == 1:
            ops.append(self._linear("v_absorb", b, c, vd, experts=sh.heads))
        return ops

    def _index_scores(self, b: int, s: int, n: int) -> list[OpTemplate]:
        """DeepSeek-V3.2's lightning indexer over the cache (its ``Indexer.forward``): each of
        ``b x s`` queries' ``index_heads`` FP8 heads against every cached FP8 key
        (``index_head_dim`` wide), ReLU, weighted by the query's per-head weights and summed
        over heads; then the top ``index_topk`` keys of each query's ``n`` scores chosen (one
        pass over them). Whole on every tensor-parallel rank, as the reference code runs it."""
        m = self.m
        sizes = {"b": b, "s": s, "h": m.index_heads, "e": m.index_head_dim, "n": n}
        logits = _t("index.logits", "bshn", "fp32", "intermediate")
        relu = _t("index.relu", "bshn", "fp32", "intermediate")
        score = _t("index.score", "bsn", "fp32")
        casc = Cascade("index_scores", (
            contraction("index.qk", logits, _t("index.q", "bshe", "fp8"),
                        _t("index_k_cache", "bne", "fp8", "kv_cache"), sizes),
            elementwise("index.relu", relu, (logits,), {r: sizes[r] for r in "bshn"}, "copy",
                        unary="relu"),
            Einsum("index.score", score, (relu, _t("index.w", "bsh", "fp32")),
                   tuple((r, sizes[r]) for r in "bshn"), map_op="mul", reduce_op="add"),
        ))
        pick = Einsum("index_topk", _t("index_topk.out", "bs", "fp32"), (score,),
                      tuple((r, sizes[r]) for r in "bsn"), reduce_op="max")
        return [OpTemplate("index_scores", MATMUL, "attention", casc),
                OpTemplate("index_topk", VECTOR, "attention", pick)]

    def _indexer_projections(self, t: int) -> list[OpTemplate]:
        """The lightning indexer's per-token projections (DeepSeek-V3.2): its queries from the
        query latent, its key and the key's LayerNorm, its per-head weights."""
        m = self.m
        hd, e = m.index_heads, m.index_head_dim
        return [self._linear("index_q", t, m.q_lora_rank, hd * e),
                self._linear("index_k", t, self.shape.d, e),
                self.norm("index_k_norm", "index_key", t, False, e),
                self._linear("index_w", t, self.shape.d, hd)]

    @_memo
    def _linear(self, name: str, t: int, k: int, n: int, op_class: str = "gemm",
                experts: int = 0) -> OpTemplate:
        dt = self.dt
        wdt = dt if name in ("lm_head", "router") else self.w_dt
        if experts:
            x = EXPERT_RANK
            sizes = {x: experts, "t": t, "k": k, "n": n}
            e = contraction(name, _t(f"{name}.out", x + "tn", dt), _t(f"{name}.in", x + "tk", dt),
                            _t(f"{name}.w", x + "kn", wdt, "weight"), sizes)
        else:
            sizes = {"t": t, "k": k, "n": n}
            e = contraction(name, _t(f"{name}.out", "tn", dt), _t(f"{name}.in", "tk", dt),
                            _t(f"{name}.w", "kn", wdt, "weight"), sizes)
        return OpTemplate(name, MATMUL, op_class, e)

    @_memo
    def _vector(self, name: str, t: int, width: int, op: str, n_inputs: int = 2,
                unary: str | None = None, op_class: str = "elementwise") -> OpTemplate:
        sizes = {"t": t, "c": width}
        inputs = tuple(_t(f"{name}.in{i}", "tc", self.dt) for i in range(n_inputs))
        e = elementwise(name, _t(f"{name}.out", "tc", self.dt), inputs, sizes, op, unary)
        return OpTemplate(name, VECTOR, op_class, e)

    @_memo
    def _allgather(self, name: str, rows: int, width: int) -> list[OpTemplate]:
        """Under tensor parallelism, an all-gather of each rank's ``rows x width`` slice of an
        output split by columns (none at TP 1)."""
        if self.sc.tp == 1:
            return []
        nbytes = rows * width * TensorRef("x", (), self.dt).nbytes({})
        return [OpTemplate(name, COLLECTIVE, "communication", None,
                           Collective("allgather", nbytes, self.sc.tp, self.dt))]

    @_memo
    def _allreduce(self, name: str, t: int) -> list[OpTemplate]:
        if self.sc.tp == 1:
            return []
        nbytes = t * self.shape.d * TensorRef("x", (), self.dt).nbytes({})
        return [OpTemplate(name, COLLECTIVE, "communication", None,
                           Collective("allreduce", nbytes, self.sc.tp, self.dt))]

    @_memo
    def mlp(self, t: int, layer: int = 0, dense: bool = False) -> list[OpTemplate]:
        """The MLP of ``t`` tokens: a mixture of experts (``layer``: its routing rotation) or,
        in a dense layer of a mixture-of-experts model (``dense``), a ``dense_ff``-wide MLP."""
        m, sh = self.m, self.shape
        ops: list[OpTemplate] = []
        if dense:
            ff = (m.dense_ff or m.d_ff) // self.sc.tp
            width = 2 * ff if m.activation == "swiglu" else ff
            return [self._linear("ffn_up", t, sh.d, width), self._activation(t, ff),
                    self._linear("ffn_down", t, ff, sh.d)]
        if m.is_moe:
            ops.append(self._linear("router", t, sh.d, m.n_experts, op_class="moe"))
            ops.append(OpTemplate("router_softmax", VECTOR, "moe",
                                  softmax("router_softmax", _t("router.out", "te", self.dt),
                                          {"t": t, "e": m.n_experts}, "e")))
            if self.sc.ep > 1 or self.sc.expert_skew > 0 or self.sc.expert_counts:
                return ops + self._routed_experts(t, layer) + self._shared_experts(t)
            active = min(m.n_experts, t * m.top_k)
            per_expert = math.ceil(t * m.top_k / active)
            width = 2 * sh.ff if m.activation == "swiglu" else sh.ff
            ops.append(self._linear("ffn_up", per_expert, sh.d, width, experts=active))
            ops.append(self._activation(active * per_expert))
            ops.append(self._linear("ffn_down", per_expert, sh.ff, sh.d, experts=active))
            ops.append(self._vector("moe_combine", t, sh.d * m.top_k, "mul", op_class="moe"))
            return ops + self._shared_experts(t)
        width = 2 * sh.ff if m.activation == "swiglu" else sh.ff
        ops.append(self._linear("ffn_up", t, sh.d, width))
        ops.append(self._activation(t))
        ops.append(self._linear("ffn_down", t, sh.ff, sh.d))
        return ops

    def _shared_experts(self, t: int) -> list[OpTemplate]:
        """The shared experts every token of a mixture-of-experts layer runs (``shared_ff``
        wide), their output added to the routed experts'; none where the model has none.
        Qwen2-MoE's sigmoid gate on them (one d -> 1 projection per token) is left out: d
        MACs per token."""
        m = self.m
        if not m.shared_ff:
            return []
        # split like a dense MLP; whole on every rank under expert parallelism, whose
        # all-to-all replaces the MLP's all-reduce
        ff = m.shared_ff if self.sc.ep > 1 else m.shared_ff // self.sc.tp
        width = 2 * ff if m.activation == "swiglu" else ff
        return [self._linear("shared_up", t, self.shape.d, width, op_class="moe"),
                self._activation(t, ff, "shared_act"),
                self._linear("shared_down", t, ff, self.shape.d, op_class="moe"),
                self._vector("shared_add", t, self.shape.d, "add", op_class="moe")]

    @_memo
    def _routed_experts(self, t: int, layer: int) -> list[OpTemplate]:
        """Experts with the router's (possibly skewed) token counts, one GEMM pair per loaded
        expert. With expert parallelism each of the ``ep`` devices holds whole experts and runs
        only its own (``rank``), between an all-to-all that sends tokens to their experts and
        one that brings the results back; the slowest device holds up the combine."""
        m, sh, ep = self.m, self.shape, self.sc.ep
        counts = expert_token_counts(t, m.n_experts, m.top_k, self.sc.expert_skew,
                                     rotation=layer, weights=self.sc.expert_counts or None)
        ff = m.d_ff if ep > 1 else sh.ff
        width = 2 * ff if m.activation == "swiglu" else ff
        elem = TensorRef("x", (), self.dt).nbytes({})
        ops: list[OpTemplate] = []
        if ep > 1:
            slice_bytes = math.ceil(t / ep) * m.top_k * sh.d * elem
            ops.append(OpTemplate("alltoall_dispatch", COLLECTIVE, "communication", None,
                                  Collective("alltoall", slice_bytes, ep, self.dt)))
        per_rank = m.n_experts // ep
        for e, c in enumerate(counts):
            if c == 0:
                continue
            rank = e // per_rank if ep > 1 else -1
            up, act, down = (EXPERT_GEMM_NAME.format(e=e, part=p) for p in ("up", "act", "down"))
            for tpl in (self._linear(up, c, sh.d, width, op_class="moe"),
                        self._activation(c, ff, act),
                        self._linear(down, c, ff, sh.d, op_class="moe")):
                ops.append(OpTemplate(tpl.name, tpl.kind, tpl.op_class, tpl.compute,
                                      tpl.collective, rank))
        if ep > 1:
            ops.append(OpTemplate("alltoall_combine", COLLECTIVE, "communication", None,
                                  Collective("alltoall", slice_bytes, ep, self.dt)))
        ops.append(self._vector("moe_combine", t, sh.d * m.top_k, "mul", op_class="moe"))
        if ep > 1:  # every device needs all tokens again for tensor-parallel attention
            ops.append(OpTemplate("allgather_moe", COLLECTIVE, "communication", None,
                                  Collective("allgather", math.ceil(t / ep) * sh.d * elem, ep,
                                             self.dt)))
        return ops

    @_memo
    def _activation(self, t: int, ff: int = 0, name: str = "ffn_act") -> OpTemplate:
        sh, act = self.shape, self.m.activation
        ff = ff or sh.ff
        if act == "swiglu":  # silu(gate) * up
            sizes = {"t": t, "c": ff}
            g = _t(f"{name}.gate", "tc", self.dt)
            u = _t(f"{name}.up", "tc", self.dt)
            casc = Cascade(name, (
                elementwise(f"{name}.silu", _t(f"{name}.s", "tc", self.dt, "intermediate"), (g,),
                            sizes, "copy", unary="silu"),
                elementwise(f"{name}.mul", _t(f"{name}.out", "tc", self.dt),
                            (_t(f"{name}.s", "tc", self.dt, "intermediate"), u), sizes, "mul"),
            ))
            return OpTemplate(name, VECTOR, "activation", casc)
        if act == "relu2":   # Nemotron: relu(x)^2
            sizes = {"t": t, "c": ff}
            r = _t(f"{name}.r", "tc", self.dt, "intermediate")
            casc = Cascade(name, (
                elementwise(f"{name}.relu", r, (_t(f"{name}.in0", "tc", self.dt),), sizes,
                            "copy", unary="relu"),
                elementwise(f"{name}.square", _t(f"{name}.out", "tc", self.dt), (r,), sizes,
                            "copy", unary="square"),
            ))
            return OpTemplate(name, VECTOR, "activation", casc)
        return self._vector(name, t, ff, "copy", n_inputs=1, unary=act,
                            op_class="activation")

    @_memo
    def rope(self, t: int) -> list[OpTemplate]:
        if self.m.position != "rope":
            return []
        sh = self.shape
        if self.m.is_mla:   # each query head's and the one shared key's rope_dim channels
            width = (sh.heads + 1) * self.m.rope_dim
        else:
            width = (sh.heads + sh.kv_groups) * (self.m.rotary_dim or sh.head_dim)  # partial
        sizes = {"t": t, "c": width}
        x = _t("rope.in", "tc", self.dt)
        casc = Cascade("rope", (
            elementwise("rope.cos", _t("rope.a", "tc", "fp32", "intermediate"),
                        (x, _t("rope.cos", "tc", "fp32", "state")), sizes, "mul"),
            elementwise("rope.sin", _t("rope.b", "tc", "fp32", "intermediate"),
                        (x, _t("rope.sin", "tc", "fp32", "state")), sizes, "mul"),
            elementwise("rope.add", _t("rope.out", "tc", self.dt),
                        (_t("rope.a", "tc", "fp32", "intermediate"),
                         _t("rope.b", "tc", "fp32", "intermediate")), sizes, "add"),
        ))
        return [OpTemplate("rope", VECTOR, "elementwise", casc)]

    def layer(self, b: int, s: int, n: int, layer: int = 0, local: bool = False,
              dense: bool = False, nope: bool = False, mamba: bool = False, kind: str = "",
              width: int = 0) -> list[OpTemplate]:
        """All ops of one decoder layer: ``b`` requests, ``s`` new tokens each, KV length ``n``;
        ``layer``: the routing rotation of a mixture-of-experts layer; ``local``: a windowed
        layer among global ones (:meth:`attention`); ``dense``: a dense layer of a
        mixture-of-experts model (:meth:`mlp`); ``nope``: a layer without RoPE
        (``ModelConfig.nope``); ``mamba``: a hybrid's Mamba-2 layer (its mixer in place of
        attention, :mod:`workloads.mamba2`); ``kind``: a block of one kind in a block-pattern
        model (Nemotron-H: ``M``, ``*``, ``-``, ``E``; Llama-Nemotron's ``L``), ``width``: its
        own key/value heads or MLP width (``ModelConfig.block_width``; 0: the model's)."""
        if width:
            return self.block_builder(kind, width).layer(b, s, n, layer, local, dense, nope,
                                                         mamba, kind)
        if self.m.block != "sequential" or self.m.kind != "decoder":  # tracer_families
            from workloads.tracer_families import layer_hook
            return layer_hook(self, b, s, n, layer, local, nope)
        sh, t, rms = self.shape, b * s, self.m.norm == "rmsnorm"
        if self.m.ssm_parallel:   # Falcon-H1: attention beside the Mamba-2 mixer
            from workloads.mamba2 import parallel_layer
            return parallel_layer(self, b, s, n, layer, local, nope, dense)
        if mamba:
            ops = [*self._mamba2(b, s), self._vector("residual_mamba", t, sh.d, "add")]
            return ops if kind else ops + self._mlp_block(t, layer, dense, rms)
        if kind in ("-", "E"):   # a block of its MLP alone
            return self._mlp_block(t, layer, kind == "-", rms)
        if kind == "L":
            return self._linear_block(t, rms)
        ops = self._attention_block(b, s, n, local, nope, rms)
        return ops if kind else ops + self._mlp_block(t, layer, dense, rms)

    def block_builder(self, kind: str, width: int) -> LayerBuilder:
        """The builder of a block with its own key/value heads or MLP width (one per width,
        kept: their templates are memoised like this builder's)."""
        hit = self._blocks.get((kind, width))
        if hit is None:
            hit = self._blocks[kind, width] = LayerBuilder(self.m.block_model(kind, width),
                                                           self.sc)
        return hit

    def _linear_block(self, t: int, rms: bool) -> list[OpTemplate]:
        """A ``d_model x d_model`` linear in place of attention or an MLP (Llama-Nemotron's
        ``replace_with_linear``): its norm, the linear split by output columns with the
        outputs gathered under tensor parallelism (as TensorRT-LLM runs it), the residual."""
        d = self.shape.d
        return [self.norm("ln_linear", "l", t, rms),
                self._linear("linear_proj", t, d, d // self.sc.tp),
                *self._allgather("allgather_linear", t, d // self.sc.tp),
                self._vector("residual_linear", t, d, "add")]

    def _attention_block(self, b: int, s: int, n: int, local: bool, nope: bool, rms: bool
                         ) -> list[OpTemplate]:
        """A sequential layer's first half: its norm, the query/key/value projections (or
        latent ones), RoPE, attention, the output projection, all-reduce, post-norm and
        residual add."""
        sh, t = self.shape, b * s
        ops = [self.norm("ln_attn", "x", t, rms)]
        if self.m.is_mla:
            ops += self._latent_projections(t)
        else:   # Qwen3-Next: the query projection doubled for the output gate
            qkv_width = (sh.heads * (2 if self.m.attn_gate else 1) + 2 * sh.kv_groups) \
                * sh.head_dim
            ops.append(self._linear("qkv_proj", t, sh.d, qkv_width))
        if self.m.qk_norm:   # Qwen3, Gemma 3, OLMo 2: RMSNorm of each query and key head
            ops.append(self.norm("qk_norm", "qk", t * (sh.heads + sh.kv_groups), True,
                                 sh.head_dim))
        if not nope:   # Llama 4's global layers, SmolLM3's every 4th: no RoPE
            ops += self.rope(t)
        ops += self.attention(b, s, n, local)
        if self.m.attn_gate:   # attention output x sigmoid(gate)
            ops.append(self._vector("attn_gate", t, sh.heads * self.m.v_dim, "mul"))
        ops.append(self._linear("o_proj", t, sh.heads * self.m.v_dim, sh.d))
        ops += self._allreduce("allreduce_attn", t)
        if self.m.post_norms:   # Gemma 2/3: the block's output normed before the residual
            ops.append(self.norm("ln_attn_post", "a", t, rms))
        ops.append(self._vector("residual_attn", t, sh.d, "add"))
        return ops

    @_memo
    def _mamba2(self, b: int, s: int) -> list[OpTemplate]:
        """A hybrid's recurrent mixer, built once per shape: Mamba-2
        (:func:`workloads.mamba2.mixer`), Gated DeltaNet (:func:`workloads.deltanet.mixer`),
        Mamba-1 (:func:`workloads.mamba1.mixer`) or a short convolution
        (:func:`workloads.shortconv.mixer`)."""
        if self.m.gdn_v_heads:
            from workloads.deltanet import mixer as gdn
            return gdn(self, b, s)
        if self.m.mamba1:
            from workloads.mamba1 import mixer as mamba1
            return mamba1(self, b, s)
        if self.m.short_conv:
            from workloads.shortconv import mixer as short_conv
            return short_conv(self, b, s)
        from workloads.mamba2 import mixer
        return mixer(self, b, s)

    def _mlp_block(self, t: int, layer: int, dense: bool, rms: bool) -> list[OpTemplate]:
        """A sequential layer's second half: its norm, MLP (or mixture of experts), all-reduce,
        post-norm and residual add."""
        sh = self.shape
        ops = [self.norm("ln_ffn", "h", t, rms), *self.mlp(t, layer, dense)]
        if self.sc.ep == 1 or dense:  # expert parallelism's all-to-all returns whole outputs
            ops += self._allreduce("allreduce_ffn", t)
        if self.m.post_norms:
            ops.append(self.norm("ln_ffn_post", "f", t, rms))
        ops.append(self._vector("residual_ffn", t, sh.d, "add"))
        return ops

    def _latent_projections(self, t: int) -> list[OpTemplate]:
        """The query and latent projections of multi-head latent attention (HF
        DeepseekV3Attention): the query through its ``q_lora_rank`` latent and RMSNorm (or one
        projection), the shared key/value latent with its RoPE channels and the latent's
        RMSNorm. The down-projections are whole on every tensor-parallel rank (as vLLM runs
        them), the query up-projection split by heads."""
        m, sh, rms = self.m, self.shape, self.m.norm == "rmsnorm"
        heads = sh.heads * m.head_dim
        if m.q_lora_rank:
            ops = [self._linear("q_a_proj", t, sh.d, m.q_lora_rank),
                   self.norm("q_a_norm", "q_latent", t, rms, m.q_lora_rank),
                   self._linear("q_b_proj", t, m.q_lora_rank, heads)]
        else:
            ops = [self._linear("q_proj", t, sh.d, heads)]
        ops += [self._linear("kv_a_proj", t, sh.d, m.kv_lora_rank + m.rope_dim),
                self.norm("kv_a_norm", "kv_latent", t, rms, m.kv_lora_rank)]
        return ops + self._indexer_projections(t) if m.index_topk else ops

    @_memo
    def norm(self, name: str, x: str, t: int, rms: bool, width: int = 0) -> OpTemplate:
        """A LayerNorm / RMSNorm op over ``t`` tokens of ``width`` channels (0: the model
        width)."""
        return OpTemplate(name, VECTOR, "norm",
                          layernorm(name, x, t, width or self.shape.d, self.dt, rms))

    @_memo
    def stage_send(self, t: int) -> list[OpTemplate]:
        """Pipeline parallelism: the activations of ``t`` tokens sent to the next stage."""
        nbytes = t * self.shape.d * TensorRef("x", (), self.dt).nbytes({})
        return [OpTemplate("pp_send", COLLECTIVE, "communication", None,
                           Collective("send", nbytes, 2, self.dt))]

    @_memo
    def embedding(self, t: int) -> list[OpTemplate]:
        """Token (and learned position) embedding lookup for ``t`` tokens."""
        d = self.shape.d
        sizes = {"t": t, "d": d}
        ops = [OpTemplate("embedding", MEMORY, "memory", elementwise(
            "embedding", _t("embedding.out", "td", self.dt),
            (_t("embedding.rows", "td", self.dt, "weight"),), sizes, "copy"))]
        if self.m.position == "learned":
            ops.append(self._vector("pos_embedding", t, d, "add", op_class="memory"))
        return ops

    @_memo
    def head(self, b: int) -> list[OpTemplate]:
        """Final norm and LM head on the last token of each of ``b`` requests."""
        sh = self.shape
        return [OpTemplate("final_norm", VECTOR, "norm",
                           layernorm("final_norm", "y", b, sh.d, self.dt,
                                     self.m.norm == "rmsnorm")),
                self._linear("lm_head", b, sh.d, sh.vocab),
                *self._allgather("allgather_logits", b, sh.vocab)]


class _Stamper:
    """Turns templates into ops with ids; each micro-batch (``chain``) is a dependency chain.

    ``rows``: record each :meth:`add` as one block ``(works, phase, layer, step, tokens,
    requests, chain, deps)`` instead of an :class:`Op` per template: ``works`` holds what each
    op's template gives it (shared per template list), ``deps`` the id of the op before the
    block (each further op depends on the one before it) or, where ranks fan out, each op's
    dependency tuple. ``ops`` then builds the ops on first use (a compact trace turns the
    blocks into arrays, a block at a time, and never needs them)."""

    def __init__(self, tp: int, rows: bool = False):
        self._ops: list[Op] = []
        self.blocks: list[tuple] | None = [] if rows else None
        self.n = 0                         # ops stamped so far (the next op's id)
        self.tp = tp
        self._work: dict[int, tuple] = {}  # per template: (template, shards, FLOPs, bytes, ...)
        self._lists: dict[int, tuple] = {}  # per template list: (list, works, no rank)
        self._last: dict[int, int] = {}    # chain -> id of its last op

    @property
    def ops(self) -> list[Op]:
        """The stamped ops (built from the blocks in ``rows`` mode)."""
        ops = self._ops
        if self.blocks is not None and len(ops) < self.n:
            for i, row in enumerate(self.rows()):
                if i < len(ops):
                    continue
                work, phase, layer, step, tokens, requests, chain, deps = row
                _, shards, flops, nbytes, name, kind, compute, collective, op_class, rank = work
                ops.append(Op(i, name, kind, phase, layer, step, compute, shards, deps,
                              collective, tokens, requests, "", op_class, flops, nbytes, chain,
                              rank))
        return ops

    def rows(self):
        """Each recorded op as ``(work, phase, layer, step, tokens, requests, chain, deps)``."""
        i = 0
        for works, phase, layer, step, tokens, requests, chain, deps in self.blocks or ():
            for j, work in enumerate(works):
                if isinstance(deps, int):
                    dep = ((deps,) if deps >= 0 else ()) if j == 0 else (i - 1,)
                else:
                    dep = deps[j]
                yield work, phase, layer, step, tokens, requests, chain, dep
                i += 1

    def _work_of(self, tpl: OpTemplate) -> tuple:
        """What every op of ``tpl`` shares: (template, shards, FLOPs, bytes, name, kind,
        compute, collective, op_class, rank)."""
        work = self._work.get(id(tpl))
        if work is None or work[0] is not tpl:
            shards = 1 if tpl.kind == COLLECTIVE or tpl.rank >= 0 else self.tp
            # (an empty op_class is the name's, as Op makes it)
            work = (tpl, shards, *op_work(tpl.compute, tpl.collective, shards), tpl.name,
                    tpl.kind, tpl.compute, tpl.collective, tpl.op_class or tpl.name, tpl.rank)
            self._work[id(tpl)] = work
        return work

    def _list_works(self, templates: list[OpTemplate]) -> tuple[list[tuple], bool]:
        """The works of a template list (kept with the list: a step stamps one list for every
        layer) and whether none of its templates has a rank."""
        hit = self._lists.get(id(templates))
        if hit is None or hit[0] is not templates:
            works = [self._work_of(t) for t in templates]
            hit = self._lists[id(templates)] = (templates, works,
                                                all(w[9] < 0 for w in works))
        return hit[1], hit[2]

    def add(self, templates: list[OpTemplate], phase: str, layer: int, step: int,
            tokens: int, requests: int, chain: int = 0) -> None:
        """Append ``templates`` to ``chain``. Templates with a ``rank`` fan out: each rank's
        run depends on the op before the fan and on its own previous op; the next op without a
        rank joins them all (it depends on every rank's last op)."""
        if not templates:
            return
        blocks = self.blocks
        prev = self._last.get(chain, -1)
        i = self.n
        if blocks is not None:
            works, plain = self._list_works(templates)
            if plain:   # no rank fans out: a chain, each op after the one before it
                blocks.append((works, phase, layer, step, tokens, requests, chain, prev))
                self.n = i + len(works)
                self._last[chain] = self.n - 1
                return
            block_works: list[tuple] = []
            block_deps: list[tuple] = []
        rank_last: dict[int, int] = {}
        append = self._ops.append
        for tpl in templates:
            work = self._work_of(tpl)
            rank = work[9]
            if rank >= 0:
                dep = rank_last.get(rank, prev)
                deps = (dep,) if dep >= 0 else ()
                rank_last[rank] = i
            elif rank_last:
                deps = tuple(sorted(rank_last.values()))
                rank_last = {}
            else:
                deps = (prev,) if prev >= 0 else ()
            if blocks is not None:
                block_works.append(work)
                block_deps.append(deps)
            else:
                _, shards, flops, nbytes, name, kind, compute, collective, op_class, _ = work
                append(Op(i, name, kind, phase, layer, step, compute, shards, deps, collective,
                          tokens, requests, "", op_class, flops, nbytes, chain, rank))
            if rank < 0:
                prev = i
            i += 1
        if blocks is not None:
            blocks.append((block_works, phase, layer, step, tokens, requests, chain,
                           block_deps))
        self.n = i
        self._last[chain] = prev


def microbatch_sizes(batch: int, microbatches: int) -> list[int]:
    """Requests per micro-batch: ``batch`` split as evenly as possible, larger ones first."""
    base, extra = divmod(batch, microbatches)
    return [base + (1 if k < extra else 0) for k in range(microbatches)]


def _segments(templates: list[OpTemplate]) -> list[list[OpTemplate]]:
    """A layer's templates cut after each collective: what one micro-batch computes before it
    must wait for communication."""
    out: list[list[OpTemplate]] = [[]]
    for tpl in templates:
        out[-1].append(tpl)
        if tpl.kind == COLLECTIVE:
            out.append([])
    return [seg for seg in out if seg]


def _unit_segments(per_layer: list[list[OpTemplate]],
                   units: frozenset[str]) -> list[list[tuple[int, OpTemplate]]]:
    """All layers' ``(layer, template)`` pairs (``per_layer[i]``: layer ``i``'s templates) cut
    after each collective and wherever the ops move between the main unit and the ops named in
    ``units``; a layer's last segment goes on into the next layer's first (e.g. output
    projection + FFN of layer i with QKV of i + 1)."""
    out: list[list[tuple[int, OpTemplate]]] = [[]]
    for i, templates in enumerate(per_layer):
        for tpl in templates:
            cur = out[-1]
            if cur and (cur[-1][1].name in units) != (tpl.name in units):
                cur = []
                out.append(cur)
            cur.append((i, tpl))
            if tpl.kind == COLLECTIVE:
                out.append([])
    return [seg for seg in out if seg]


def trace_model(model: ModelConfig, scenario: Scenario, phases: tuple[str, ...] = ("prefill",
                "decode"), units: tuple[str, ...] = (), compact: bool = False) -> Trace:
    """The full run: prefill of the prompt, then ``gen_len - 1`` decode steps.

    ``compact``: stamp the prefill and the first two decode steps op by op, the other decode
    steps as arrays from the second one's (only the templates that change with the KV length
    are swapped): the trace then holds :class:`CompactOps` and materialises ``ops`` on first
    use, equal to the op-by-op trace.

    With one micro-batch ops form one chain. With several, each micro-batch is its own chain
    and ops are ordered so that in-order device streams overlap them: under pipeline
    parallelism micro-batch by micro-batch (each stage passes a micro-batch on and takes the
    next), otherwise layer by layer and, inside a layer, segment by segment between collectives
    (one micro-batch computes while another's all-reduce is in flight). ``units`` names ops
    that run on another unit of the device (NeuPIMs: decode attention in PIM): segments are
    then also cut where ops enter or leave that unit and run on across layer boundaries, so one
    micro-batch's attention overlaps another's projections (sub-batch interleaving)."""
    if model.kind != "decoder":  # encoders, encoder-decoders, Mamba: workloads/tracer_families
        from workloads.tracer_families import trace_family
        return trace_family(model, scenario, phases, compact)
    if scenario.max_context > model.max_positions and model.position == "learned":
        raise WorkloadError("", "--prompt", f"prompt + generated tokens ({scenario.max_context}) "
                                            f"exceed {model.name}'s {model.max_positions} "
                                            "learned positions")
    if compact:   # thousands of small acyclic objects: skip the collector passes they cost
        with gc_paused():
            return _trace_decoder(model, scenario, phases, units, compact)
    return _trace_decoder(model, scenario, phases, units, compact)


def layer_variants(model: ModelConfig, scenario: Scenario) -> list[tuple]:
    """Each layer's template variant (layers of one variant stamp the same templates): its
    routing rotation (routing differs from layer to layer under expert parallelism or skew),
    whether it is a windowed layer among global ones (Gemma 2/3), a dense one among
    mixture-of-experts ones (DeepSeek, Llama 4 Maverick), one without RoPE (Llama 4,
    SmolLM3), a Mamba layer, its block kind and width."""
    varies = model.is_moe and (scenario.ep > 1 or scenario.expert_skew > 0)
    rotations = model.n_experts if varies else 1
    mixed = bool(model.sliding_window and model.global_every)
    return [(i % rotations, mixed and model.windowed(i), model.dense_layer(i),
             model.nope(i), model.mamba(i), model.block_kind(i), model.block_width(i))
            for i in range(model.n_layers)]


#: the builder :func:`count_decoder_ops` last used, with its model and scenario: the trace of
#: the same run takes it (and the templates it memoised) instead of building them again
_COUNTED: list[tuple[ModelConfig, Scenario, LayerBuilder]] = []


def _builder(model: ModelConfig, scenario: Scenario) -> LayerBuilder:
    """A :class:`LayerBuilder` of ``model`` and ``scenario``: the one the last count made
    for them (taken, not kept), else a new one."""
    try:   # (another thread may take it between a test and the pop)
        counted_model, counted_scenario, builder = _COUNTED.pop()
    except IndexError:
        return LayerBuilder(model, scenario)
    if counted_model == model and counted_scenario == scenario:
        return builder
    return LayerBuilder(model, scenario)


def count_decoder_ops(model: ModelConfig, scenario: Scenario) -> tuple[int, int]:
    """(ops of the prefill, ops of one decode step) that :func:`trace_model` stamps for a
    decoder, counted from the templates it stamps (one op each) without stamping them: per
    micro-batch its embedding, every layer's variant, a send at each stage boundary and the
    head."""
    builder = LayerBuilder(model, scenario)
    _COUNTED[:] = [(model, scenario, builder)]
    base, extra = divmod(scenario.batch, scenario.microbatches)   # as microbatch_sizes
    sizes = {b: k for b, k in ((base + 1, extra), (base, scenario.microbatches - extra)) if k}
    sends = len(pipeline_boundaries(model.n_layers, scenario.pp))
    layers: dict[tuple, int] = {}
    for v in layer_variants(model, scenario):
        layers[v] = layers.get(v, 0) + 1

    def step(s: int, n: int) -> int:
        return sum(k * (len(builder.embedding(b * s)) + len(builder.head(b))
                        + sends * len(builder.stage_send(b * s))
                        + sum(count * len(builder.layer(b, s, n, *v))
                              for v, count in layers.items()))
                   for b, k in sizes.items())

    p = scenario.prompt_len
    with gc_paused():   # thousands of small acyclic objects, as in the trace
        return step(p, p), step(1, p + 1)


def _trace_decoder(model: ModelConfig, scenario: Scenario, phases: tuple[str, ...],
                   units: tuple[str, ...], compact: bool) -> Trace:
    """:func:`trace_model` of a decoder, its scenario checked."""
    builder = _builder(model, scenario)
    stamp = _Stamper(scenario.tp, rows=compact)
    p = scenario.prompt_len
    sizes = microbatch_sizes(scenario.batch, scenario.microbatches)
    boundaries = pipeline_boundaries(model.n_layers, scenario.pp)
    by_stage = scenario.pp > 1 or len(sizes) == 1
    steps: list[tuple[str, int, int, int]] = []  # (phase, step, new tokens, KV length)
    if "prefill" in phases:
        steps.append(("prefill", 0, p, p))
    if "decode" in phases:
        steps += [("decode", s, 1, p + s) for s in range(1, scenario.gen_len)]
    mixed = bool(model.sliding_window and model.global_every)
    variant = layer_variants(model, scenario)
    variants = sorted(set(variant))

    # the stamped steps' templates, kept in the compact path (it asks again for the last two)
    made: dict[tuple[int, int], tuple[dict, dict, dict, dict]] = {}
    keep = compact

    def templates(s: int, n: int) -> tuple[dict, dict, dict, dict]:
        """Every template list one step stamps: layers, stage sends, heads, embeddings."""
        hit = made.get((s, n))
        if hit is None:
            hit = (
                {(b, v): builder.layer(b, s, n, *v) for b in set(sizes) for v in variants},
                {b: builder.stage_send(b * s) for b in set(sizes)},
                {b: builder.head(b) for b in set(sizes)},
                {b: builder.embedding(b * s) for b in set(sizes)})
            if keep:
                made[s, n] = hit
        return hit

    rest: list[tuple[str, int, int, int]] = []
    if compact:
        first = next((i for i, st in enumerate(steps) if st[0] == "decode"), len(steps))
        if len(steps) - first >= 4:
            steps, rest = steps[:first + 2], steps[first + 2:]
    for phase, step, s, n in steps:
        layers, sends, heads, embeds = templates(s, n)
        if by_stage:
            for k, b in enumerate(sizes):
                stamp.add(embeds[b], phase, -1, step, b * s, b, k)
                for i in range(model.n_layers):
                    if i in boundaries:
                        stamp.add(sends[b], phase, i, step, b * s, b, k)
                    stamp.add(layers[b, variant[i]], phase, i, step, b * s, b, k)
                stamp.add(heads[b], phase, model.n_layers, step, b, b, k)
            continue
        for k, b in enumerate(sizes):
            stamp.add(embeds[b], phase, -1, step, b * s, b, k)
        if units:
            unit_segs = {b: _unit_segments([layers[b, v] for v in variant], frozenset(units))
                         for b in set(sizes)}
            for j in range(len(unit_segs[sizes[0]])):
                for k, b in enumerate(sizes):
                    seg = unit_segs[b][j]
                    for i in sorted({layer for layer, _ in seg}):
                        stamp.add([t for layer, t in seg if layer == i], phase, i, step, b * s,
                                  b, k)
            for k, b in enumerate(sizes):
                stamp.add(heads[b], phase, model.n_layers, step, b, b, k)
            continue
        segments = {key: _segments(tpls) for key, tpls in layers.items()}
        for i in range(model.n_layers):
            r = variant[i]
            for j in range(len(segments[sizes[0], r])):
                for k, b in enumerate(sizes):
                    stamp.add(segments[b, r][j], phase, i, step, b * s, b, k)
        for k, b in enumerate(sizes):
            stamp.add(heads[b], phase, model.n_layers, step, b, b, k)
    keep = False
    if rest:
        kv = builder.kv_lens(1, [n for *_, n in (steps[-2], steps[-1], *rest)])
        arrays = stamp_repeats(stamp, scenario.tp, [templates(1, n) for _, _, _, n in
                                                    (steps[-2], steps[-1])],
                               [step for _, step, _, _ in rest], kv,
                               lambda k: templates(1, rest[k][3]),
                               [model.window_keys(1, x) for x in kv] if mixed else
                               [min(x, model.index_topk) for x in kv] if model.index_topk
                               else None)
        if arrays is not None:
            return Trace(None, model, scenario, {"phases": phases}, compact=arrays)
        return trace_model(model, scenario, phases, units, compact=False)
    return Trace(stamp.ops, model, scenario, {"phases": phases})


def _kind_key(name: str, kind: str, op_class: str, compute, collective, rank: int,
              shards: int) -> tuple:
    return (name, kind, op_class, id(compute), id(collective), rank, shards)


def _swaps(ref: tuple[dict, ...], cur: tuple[dict, ...], tp: int) -> list | None:
    """``(ref template, its replacement)`` for every template of one step's lists (``ref``)
    that another step (``cur``) replaces; None when the two steps differ in structure."""
    out = []
    for a, b in zip(ref, cur, strict=True):
        if a.keys() != b.keys():
            return None
        for key, tpls in a.items():
            if len(tpls) != len(b[key]):
                return None
            for t, u in zip(tpls, b[key], strict=True):
                if t is u:
                    continue
                if (t.name, t.kind, t.op_class, t.rank) != (u.name, u.kind, u.op_class, u.rank):
                    return None
                out.append((t, u))
    return out


def stamp_repeats(stamp: _Stamper, tp: int, ref: list[tuple[dict, ...]], rest: list[int],
                  kv: list[int], templates_of: Callable[[int], tuple[dict, ...]],
                  kv_window: list[int] | None = None) -> CompactOps | None:
    """Arrays of ``stamp``'s ops followed by decode steps stamped from its last step.

    ``ref`` holds the template lists of the last two stamped (decode) steps, ``rest`` the
    numbers of the further steps, ``kv`` the extent of the KV rank in each of those steps
    (the two reference steps first), ``kv_window`` the same for the windowed layers' attention
    (:meth:`LayerBuilder.attention` ``local``) where they alternate with global ones,
    ``templates_of(k)`` the template lists of further step ``k`` (built only where needed).
    A further step is the last one with the templates that changed swapped (attention, whose KV
    length grows) and its dependencies shifted by one step's length. When the reference steps
    differ only in the KV rank's extent, the swapped templates are the last step's resized
    (:meth:`~workloads.einsum.Cascade.resized`) and their FLOPs and bytes come as arrays over
    all steps (``work_over``): no template is built per step, and steps at the start, middle and
    end are checked against the templates the builder makes there. Otherwise every further
    step's templates are built and swapped one by one. Returns None (stamp op by op instead)
    when the steps differ in structure, or when swapping the next-to-last step's templates
    does not give the last step exactly."""
    import numpy as np

    blocks = stamp.blocks if stamp.blocks is not None else \
        [([(None, op.shards, op.flops, op.bytes, op.name, op.kind, op.compute, op.collective,
            op.op_class, op.rank)], op.phase, op.layer, op.step, op.tokens, op.requests,
          op.microbatch, [op.deps]) for op in stamp.ops]
    lengths = [len(b[0]) for b in blocks]
    starts = list(itertools.accumulate(lengths, initial=0))
    head = starts[-1]
    # the last two steps' first ops (a step is whole blocks)
    last_step = blocks[-1][3]
    b2 = next(j for j in range(len(blocks) - 1, -1, -1) if blocks[j][3] != last_step) + 1
    b1 = next((j for j in range(b2 - 1, -1, -1) if blocks[j][3] != blocks[b2 - 1][3]),
              -1) + 1
    a1, a2 = starts[b1], starts[b2]
    size = head - a2
    if a2 - a1 != size or blocks[b1][1] != "decode":
        return None
    kinds: list[OpKind] = []
    index: dict[tuple, int] = {}

    def kind_of(name, kind, op_class, compute, collective, rank, shards, flops, nbytes) -> int:
        key = _kind_key(name, kind, op_class, compute, collective, rank, shards)
        j = index.get(key)
        if j is None:
            if flops is None:
                flops, nbytes = op_work(compute, collective, shards)
            j = index[key] = len(kinds)
            kinds.append(OpKind.of(name, kind, op_class, compute, collective, rank, shards,
                                   flops, nbytes))
        return j

    # a work tuple is shared per template and a works list per template list: each distinct
    # one (in order of first use, as kinds are numbered) gets its kind ids once
    by_work: dict[int, int] = {}
    by_list: dict[int, list[int]] = {}
    per_block = []
    for b in blocks:
        ids = by_list.get(id(b[0]))
        if ids is None:
            ids = []
            for work in b[0]:
                j = by_work.get(id(work))
                if j is None:
                    _, shards, flops, nbytes, name, kind, compute, collective, op_class, \
                        rank = work
                    j = by_work[id(work)] = kind_of(name, kind, op_class, compute, collective,
                                                    rank, shards, flops, nbytes)
                ids.append(j)
            by_list[id(b[0])] = ids
        per_block.append(ids)
    kind = np.array(list(itertools.chain.from_iterable(per_block)), dtype=np.int64)

    def tpl_kind(t: OpTemplate) -> int:
        shards = 1 if t.kind == COLLECTIVE or t.rank >= 0 else tp
        return kind_of(t.name, t.kind, t.op_class, t.compute, t.collective, t.rank, shards,
                       None, None)

    def swapped(block: np.ndarray, swaps: list) -> np.ndarray | None:
        out = block.copy()
        done: dict[int, int] = {}
        for t, u in swaps:
            old, new = tpl_kind(t), tpl_kind(u)
            if done.setdefault(old, new) != new:
                return None     # one template replaced by two different ones
        for old, new in done.items():
            out[block == old] = new
        return out

    # the last step must be the one before it with its templates swapped
    check = _swaps(ref[0], ref[1], tp)
    again = swapped(kind[a1:a2], check) if check is not None else None
    # per block: layer, step, tokens, requests, chain; each repeated over the block's ops
    fields = np.array([b[2:7] for b in blocks], dtype=np.int32).reshape(len(blocks), 5)
    per_op = {f: np.repeat(fields[:, c], lengths) for c, f in
              ((0, "layer"), (2, "tokens"), (3, "requests"), (4, "microbatch"))}
    if again is None or not np.array_equal(again, kind[a2:]) or any(
            not np.array_equal(v[a1:a2], v[a2:]) for v in per_op.values()):
        return None
    base = kind[a2:]
    reps = len(rest)
    n = head + reps * size
    counts, deps = _block_deps(blocks, lengths, starts)
    tail_deps = deps[int(counts[:a2].sum()):]
    phases = tuple(dict.fromkeys(b[1] for b in blocks))
    code = {ph: i for i, ph in enumerate(phases)}
    head_phase = np.repeat(np.array([code[b[1]] for b in blocks], dtype=np.int8), lengths)
    head_step = np.repeat(fields[:, 1], lengths)
    resized = _resized_steps(check, ref, rest, kv, templates_of, tp, tpl_kind, kinds,
                             kv_window)
    if resized is None:   # every further step's templates built and swapped, one by one
        tail_kind = np.empty((reps, size), dtype=kind.dtype)
        for k in range(reps):
            swaps = _swaps(ref[1], templates_of(k), tp)
            block = swapped(base, swaps) if swaps is not None else None
            if block is None:
                return None
            tail_kind[k] = block

    def arrays() -> dict[str, np.ndarray]:
        """Every op's arrays: the stamped ones, then the further steps broadcast into place."""
        per_step = len(tail_deps)
        n_deps = len(deps) + reps * per_step
        # 32-bit dependency arrays where ids fit (half the memory a long run first-touches)
        id_type = np.int32 if max(n, n_deps) < 2**31 else np.int64
        all_kind, layer, step, tokens, requests, chain, phase, dep_idx, ptr = _carve(
            [(n, np.int32)] * 6 + [(n, np.int8), (n_deps, id_type), (n + 1, id_type)])

        def fill(out: np.ndarray, arr: np.ndarray, tail) -> np.ndarray:
            """``out``: ``arr`` followed by ``reps`` rows of ``tail`` (broadcast: one pass)."""
            out[:head] = arr
            out[head:].reshape(reps, size)[:] = tail
            return out

        all_kind[:head] = kind
        if resized is not None:
            resized[0](base, all_kind[head:].reshape(reps, size))
        else:
            all_kind[head:] = tail_kind.reshape(-1)
        for out, arr in ((layer, per_op["layer"]), (tokens, per_op["tokens"]),
                         (requests, per_op["requests"]), (chain, per_op["microbatch"]),
                         (phase, head_phase)):
            fill(out, arr, arr[a2:])
        fill(step, head_step, np.array(rest, dtype=np.int32)[:, None])
        dep_idx[:len(deps)] = deps
        # (the shifts in the ids' own type: every id and offset fits it, no cast per entry)
        np.add(tail_deps.astype(id_type),
               (np.arange(1, reps + 1, dtype=id_type) * size)[:, None],
               out=dep_idx[len(deps):].reshape(reps, per_step))
        ptr[0] = 0
        np.cumsum(counts, out=ptr[1:head + 1])
        np.add(np.cumsum(counts[a2:]).astype(id_type),
               (len(deps) + np.arange(reps, dtype=id_type) * per_step)[:, None],
               out=ptr[head + 1:].reshape(reps, size))
        return {"kind": all_kind, "layer": layer, "step": step, "tokens": tokens,
                "requests": requests, "microbatch": chain, "phase": phase, "dep_ptr": ptr,
                "dep_idx": dep_idx}

    if resized is None or not FOLD or len(head_phase) <= a2 or \
            (head_phase[a2:] != head_phase[a2]).any():
        return CompactOps(kinds=kinds, phases=phases, **arrays())
    from workloads.fold import FoldedOps, StepFold

    ptr = np.zeros(head + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    stamped = CompactOps(kinds=kinds, phases=phases, kind=kind, phase=head_phase,
                         layer=per_op["layer"], step=head_step, tokens=per_op["tokens"],
                         requests=per_op["requests"], microbatch=per_op["microbatch"],
                         dep_ptr=ptr, dep_idx=deps)
    return FoldedOps(kinds, phases, StepFold(stamped, size, np.array(rest, dtype=np.int64),
                                             resized[1], resized[2]), arrays)


def _reads_window(compute: Cascade | Einsum) -> bool:
    """Whether a computation reads a windowed layer's KV cache or scores
    (:meth:`LayerBuilder.attention` ``local``)."""
    steps = compute.einsums if isinstance(compute, Cascade) else (compute,)
    return any(x.name in WINDOW_TENSORS for e in steps for x in (e.output, *e.inputs))


def _block_deps(blocks: list[tuple], lengths: list[int], starts: list[int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """(dependencies per op, all dependency ids in op order) of :class:`_Stamper` blocks, as
    int64 arrays: a chained block's first op depends on the op before the block (none at a
    chain's start), each further op on the one before it; a fanned-out block lists its own."""
    import numpy as np

    if all(isinstance(b[7], int) for b in blocks):   # chains only: one pass over arrays
        head = starts[-1]
        flat = np.arange(-1, head - 1, dtype=np.int64)   # each op after the one before it
        flat[starts[:-1]] = [b[7] for b in blocks]       # a block's first op: the op before
        keep = flat >= 0                                 # (none at a chain's start)
        return keep.astype(np.int64), flat[keep]
    counts: list[int] = []
    flat: list[int] = []
    for b, length, start in zip(blocks, lengths, starts, strict=False):
        deps = b[7]
        if isinstance(deps, int):
            if deps >= 0:
                counts.append(1)
                flat.append(deps)
            else:
                counts.append(0)
            counts.extend(itertools.repeat(1, length - 1))
            flat.extend(range(start, start + length - 1))
        else:
            counts.extend(map(len, deps))
            flat.extend(itertools.chain.from_iterable(deps))
    return np.array(counts, dtype=np.int64), np.array(flat, dtype=np.int64)


def _carve(specs: list[tuple[int, type]]) -> list[np.ndarray]:
    """Uninitialised arrays of ``(length, dtype)``, views of one allocation: a long run's
    columns are one block, large enough for numpy to ask for transparent huge pages, so
    first touching them costs a few page faults instead of one per 4 KiB page (a 2,048-token
    7B run's separate columns cost ~7,000 faults, a third of its tracing CPU)."""
    import numpy as np

    offsets, total = [], 0
    for length, dtype in specs:
        offsets.append(total)
        total += -(-length * np.dtype(dtype).itemsize // 64) * 64   # offsets: 64-byte steps
    buf = np.empty(total, dtype=np.uint8)
    return [buf[o:o + length * np.dtype(dtype).itemsize].view(dtype)
            for o, (length, dtype) in zip(offsets, specs, strict=True)]


def _resized_steps(check: list, ref: list[tuple[dict, ...]], rest: list[int], kv: list[int],
                   templates_of: Callable[[int], tuple[dict, ...]], tp: int,
                   tpl_kind: Callable[[OpTemplate], int], kinds: list[OpKind],
                   kv_window: list[int] | None = None):
    """The fast path of :func:`stamp_repeats`: ``(resized, swapped, first)``, where
    ``resized(block, out)`` fills ``out``, a (steps, len(block)) array, with kind ids, one new
    :class:`OpKind` per swapped template and further step (appended to ``kinds``, step by
    step, in template order: template ``j`` of further step ``r`` is kind
    ``first + r * len(swapped) + j``), ``swapped`` the kind ids those templates replace; or
    None where it
    does not apply: a swapped template is not the other reference step's with only the KV rank
    resized, or a sampled step's real templates are not the resized ones."""
    import numpy as np

    reps = len(rest)
    varying: dict[int, OpTemplate] = {}   # template of the last reference step by its kind id
    extents: dict[int, list[int]] = {}    # and the extents of its KV rank, step by step
    for t, u in check:
        if not isinstance(u.compute, (Cascade, Einsum)) or u.collective is not None or \
                t.compute is None:
            return None
        own = kv_window if kv_window is not None and _reads_window(u.compute) else kv
        if t.compute.resized(KV_RANK, own[1]) != u.compute:
            return None
        varying.setdefault(tpl_kind(u), u)
        extents.setdefault(tpl_kind(u), own)
    if reps == 0:   # (no template varying: nothing grows with the KV length, a model
        # without attention; every further step is the last as it is, checked below)
        return None
    first = len(kinds)
    columns = []   # per swapped template: (FLOPs per step, bytes per step, computes per step)
    try:
        for j, u in varying.items():
            sizes = np.array(extents[j][2:], dtype=np.int64)
            shards = 1 if u.rank >= 0 else tp
            flops, nbytes = u.compute.work_over(KV_RANK, sizes)
            # FLOPs and bytes stored as what the resized computes derive to
            computes = u.compute.resized_all(KV_RANK, sizes.tolist(),
                                             (flops.tolist(), nbytes.tolist()))
            columns.append((u, shards, (flops * shards).tolist(), (nbytes * shards).tolist(),
                            computes))
        slot = {id(u): j for j, u in enumerate(varying.values())}
        uses = sum(id(t) in slot for lists in ref[1] for tpls in lists.values() for t in tpls)
        # the builder's own templates at the first, middle and last further step: every use
        # of a swapped template replaced by its resized copy, nothing else replaced
        for k in sorted({0, reps // 2, reps - 1}):
            swaps = _swaps(ref[1], templates_of(k), tp)
            if swaps is None or len(swaps) != uses:
                return None
            for t, u in swaps:
                j = slot.get(id(t))
                if j is None or u.compute != columns[j][4][k] or u.collective is not None:
                    return None
        # step by step, in template order
        kinds.extend(itertools.chain.from_iterable(zip(*[
            OpKind.many(u.name, u.kind, u.op_class, computes, None, u.rank, shards, flops,
                        nbytes) for u, shards, flops, nbytes, computes in columns],
            strict=True)))
    except (OverflowError, ValueError):
        return None
    nv = len(varying)
    ids = first + np.arange(reps, dtype=np.int64)[:, None] * nv

    def resized(block: np.ndarray, out: np.ndarray) -> None:
        """Fill ``out`` (steps x len(block)) with ``block``, its swapped ids per step."""
        out[:] = block
        for j, old in enumerate(varying):
            out[:, block == old] = ids + j

    return resized, tuple(varying), first


def pipeline_boundaries(n_layers: int, pp: int) -> set[int]:
    """First layer of each pipeline stage after the first (layers split as evenly as possible)."""
    if pp <= 1:
        return set()
    if pp > n_layers:
        raise WorkloadError("", "--pp", f"{pp} pipeline stages exceed the model's {n_layers} "
                                        "layers")
    return {round(k * n_layers / pp) for k in range(1, pp)}


def weight_bytes_per_device(model: ModelConfig, dtype: str, tp: int = 1, pp: float = 1) -> float:
    """Bytes of the parameters one device holds: 1/tp of each of its 1/pp of the layers
    (``pp`` may be fractional: serving's largest stage, :mod:`sim.serve.costs`)."""
    return model.param_count() * TensorRef("x", (), dtype).nbytes({}) / (tp * pp)


def kv_bytes_per_token(model: ModelConfig, kv_dtype: str, tp: int = 1, pp: float = 1) -> float:
    """KV-cache bytes one device holds per token of context (K and V of its layers and its
    KV heads; KV heads are replicated when there are fewer than ``tp``)."""
    elem = TensorRef("x", (), kv_dtype).nbytes({})
    if model.is_mla:   # one latent and its RoPE channels per token, on every TP rank
        index = 0.0    # DeepSeek-V3.2's indexer key: FP8 plus an fp32 scale per 128 values
        if model.index_topk:
            index = model.index_head_dim + 4 * math.ceil(model.index_head_dim / 128)
        return model.n_layers * ((model.kv_lora_rank + model.rope_dim) * elem + index) / pp
    # a hybrid's Mamba-2 layers keep states, MLP blocks nothing; each layer its own heads
    return 2 * model.kv_heads_held(tp) * model.head_dim * elem / pp


def kv_cache_bytes(model: ModelConfig, scenario: Scenario) -> float:
    """Bytes of the KV cache at the longest context, all requests, all layers, one device."""
    if model.kind != "decoder":  # encoder-decoder KV, Mamba state (workloads/tracer_families)
        from workloads.tracer_families import state_bytes
        return state_bytes(model, scenario)
    context = held_tokens(model, scenario.attended(scenario.prompt_len + scenario.gen_len))
    kv = kv_bytes_per_token(model, scenario.kv_dtype, scenario.tp, scenario.pp) \
        * scenario.batch * context
    # a hybrid's recurrent layers: a state per request, whatever the length
    return kv + scenario.batch * state_bytes_per_request(model, scenario.dtype, scenario.tp,
                                                         scenario.pp)


def state_bytes_per_request(model: ModelConfig, dtype: str, tp: int = 1, pp: float = 1) -> float:
    """Bytes one request's recurrent layers (Mamba-1, Mamba-2, Gated DeltaNet) keep on one
    device between steps, whatever its length (0: a model without them)."""
    if not model.recurrent:
        return 0.0
    if model.gdn_v_heads:
        from workloads.deltanet import state_bytes_per_request as per_request
    elif model.mamba1:
        from workloads.mamba1 import state_bytes_per_request as per_request
    elif model.short_conv:
        from workloads.shortconv import state_bytes_per_request as per_request
    else:
        from workloads.mamba2 import state_bytes_per_request as per_request
    return per_request(model, tp, TensorRef("x", (), dtype).nbytes({})) / pp


def held_tokens(model: ModelConfig, context: int) -> float:
    """Tokens of KV a request of ``context`` tokens keeps, averaged over the layers: a
    windowed layer keeps its last ``sliding_window``, the others all ``context``."""
    if not model.sliding_window:
        return float(context)
    local = model.windowed_layers()
    return ((model.n_layers - local) * context
            + local * min(context, model.sliding_window)) / model.n_layers
