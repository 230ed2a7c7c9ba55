"""A Gated DeltaNet mixer's op templates (Yang et al. 2024, "Gated Delta Networks"; HF
Qwen3NextGatedDeltaNet; flash-linear-attention's ``chunk_gated_delta_rule`` and
``fused_recurrent_gated_delta_rule``), for the linear-attention layers of Qwen3-Next.

Per layer, on ``t`` tokens: ``in_proj`` (d -> q, k, v, z and the per-head beta and decay
inputs), the depthwise causal convolution over q, k and v and its SiLU, the gated delta rule,
the gated RMSNorm over each value head and ``out_proj``. The queries and keys of the
``gdn_k_heads`` key heads are repeated up to the ``gdn_v_heads`` value heads, as the kernels
repeat them; under tensor parallelism both split over the ranks and ``out_proj``'s partial
sums are all-reduced.

A prefill runs 64-token chunks (fla's chunk size) as matrix products per chunk and value
head: ``gdn_kk`` (beta K K^T), ``gdn_wu`` (the triangular inverse's WY products with beta K
and beta V; the inverse's own forward substitution is not counted), ``gdn_qk`` (Q K^T),
``gdn_ws`` (W times the entering state), ``gdn_qs`` (Q times it), ``gdn_av`` ((Q K^T o decay)
times the corrected values), ``gdn_state`` (K^T times them: the chunk's state update). A decode
step updates each value head's ``k x v`` fp32 state once (``gdn_step``): decay it, read S^T k,
add the rank-1 correction beta k (v - S^T k)^T, read S^T q.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from workloads.einsum import Cascade, Einsum, contraction, elementwise
from workloads.mamba2 import STATE_DTYPE, causal_conv
from workloads.trace import MATMUL, VECTOR
from workloads.tracer import OpTemplate, _t

if TYPE_CHECKING:
    from workloads.models import ModelConfig
    from workloads.tracer import LayerBuilder

CHUNK = 64   # flash-linear-attention's chunk_gated_delta_rule chunk size


def rank_shape(m: ModelConfig, tp: int) -> tuple[int, int, int, int]:
    """(key heads, value heads, key dim, value dim) of one tensor-parallel rank."""
    return (max(1, m.gdn_k_heads // tp), max(1, m.gdn_v_heads // tp), m.gdn_k_dim,
            m.gdn_v_dim)


def mixer(bld: LayerBuilder, b: int, s: int) -> list[OpTemplate]:
    """The Gated DeltaNet mixer of ``b`` requests of ``s`` new tokens each (one rank's
    share)."""
    m = bld.m
    t = b * s
    kh, vh, dk, dv = rank_shape(m, bld.sc.tp)
    qk, v = kh * dk, vh * dv
    ops = [bld.norm("ln_linear_attn", "x", t, m.norm == "rmsnorm"),
           bld._linear("in_proj", t, bld.shape.d, 2 * qk + 2 * v + 2 * vh)]
    ops += causal_conv(bld, t, s, 2 * qk + v, m.d_conv)
    ops += _chunks(bld, b, s) if s > 1 else [_step(bld, b)]
    ops += [bld.norm("gdn_norm", "o", t * vh, True, dv),
            bld._vector("gdn_gate", t, v, "mul"),
            bld._linear("out_proj", t, v, bld.shape.d)]
    return ops + bld._allreduce("allreduce_linear_attn", t)


def _chunks(bld: LayerBuilder, b: int, s: int) -> list[OpTemplate]:
    """A prefill's chunked gated delta rule: its matrix products per chunk and value head
    (the last chunk padded, as the kernels pad it)."""
    dt, f = bld.dt, STATE_DTYPE
    _, vh, dk, dv = rank_shape(bld.m, bld.sc.tp)
    q = min(CHUNK, s)
    sizes = {"b": b, "k": math.ceil(s / q), "h": vh, "q": q, "r": q, "e": dk, "v": dv,
             "f": dk + dv}

    def ranks(rs: str) -> dict[str, int]:
        return {r: sizes[r] for r in rs}

    def mm(name: str, out: tuple[str, str], a: tuple[str, str], b_: tuple[str, str],
           rs: str) -> OpTemplate:
        return OpTemplate(name, MATMUL, "ssm", contraction(
            name, _t(*out), _t(*a, dt), _t(*b_, dt), ranks(rs)))

    keys, queries = ("gdn.k", "bkhre"), ("gdn.q", "bkhqe")
    return [
        mm("gdn_kk", ("gdn.kk", "bkhqr", dt), ("gdn.kq", "bkhqe"), keys, "bkhqre"),
        mm("gdn_wu", ("gdn.wu", "bkhqf", dt), ("gdn.kk", "bkhqr"), ("gdn.kv", "bkhrf"),
           "bkhqrf"),
        mm("gdn_qk", ("gdn.qk", "bkhqr", dt), queries, keys, "bkhqre"),
        mm("gdn_ws", ("gdn.ws", "bkhqv", f), ("gdn.w", "bkhqe"), ("gdn.s", "bkhev"),
           "bkhqev"),
        mm("gdn_qs", ("gdn.qs", "bkhqv", f), queries, ("gdn.s", "bkhev"), "bkhqev"),
        mm("gdn_av", ("gdn.av", "bkhqv", f), ("gdn.qk", "bkhqr"), ("gdn.vn", "bkhrv"),
           "bkhqrv"),
        mm("gdn_state", ("gdn.ds", "bkhev", f), ("gdn.kt", "bkhre"), ("gdn.vn", "bkhrv"),
           "bkhrev"),
        OpTemplate("gdn_out", VECTOR, "ssm", elementwise(
            "gdn_out", _t("gdn.o", "bkhqv", dt),
            (_t("gdn.qs", "bkhqv", f), _t("gdn.av", "bkhqv", f)), ranks("bkhqv"), "add")),
    ]


def _step(bld: LayerBuilder, b: int) -> OpTemplate:
    """A decode step's state update (``fused_recurrent_gated_delta_rule``), per value head:
    ``S = g S``, ``u = beta (v - S^T k)``, ``S = S + k u^T``, ``o = S^T q``; the fp32 state
    read and written once."""
    dt, f = bld.dt, STATE_DTYPE
    _, vh, dk, dv = rank_shape(bld.m, bld.sc.tp)
    sizes = {"b": b, "h": vh, "e": dk, "v": dv}
    full = tuple((r, sizes[r]) for r in "bhev")
    prev = _t("gdn.state", "bhev", f, "state")
    decayed = _t("gdn.sg", "bhev", f, "intermediate")
    mem = _t("gdn.mem", "bhv", f, "intermediate")
    u = _t("gdn.u", "bhv", f, "intermediate")
    new = _t("gdn.h", "bhev", f, "intermediate")
    k = _t("gdn.k", "bhe", dt)
    return OpTemplate("gdn_step", VECTOR, "ssm", Cascade("gdn_step", (
        Einsum("gdn.sg", decayed, (prev, _t("gdn.g", "bh", f)), full, map_op="mul",
               reduce_op=None),
        Einsum("gdn.mem", mem, (decayed, k), full, map_op="mul", reduce_op="add"),
        elementwise("gdn.u", u, (_t("gdn.v", "bhv", dt), mem, _t("gdn.beta", "bh", f)),
                    {r: sizes[r] for r in "bhv"}, "mul"),
        Einsum("gdn.ku", _t("gdn.ku", "bhev", f, "intermediate"), (k, u), full,
               map_op="mul", reduce_op=None),
        Einsum("gdn.h", new, (decayed, _t("gdn.ku", "bhev", f, "intermediate")), full,
               map_op="add", reduce_op=None),
        Einsum("gdn.o", _t("gdn.o", "bhv", dt), (new, _t("gdn.q", "bhe", dt)), full,
               map_op="mul", reduce_op="add"),
        Einsum("gdn.state", _t("gdn.state", "bhev", f, "state"), (new,), full,
               reduce_op=None),
    ), outputs=("gdn.o", "gdn.state")))


def state_bytes_per_request(m: ModelConfig, tp: int, dtype_bytes: float) -> float:
    """Bytes one request's Gated DeltaNet layers keep on one rank between steps: each layer's
    fp32 state (value heads x key dim x value dim) and its conv state (``d_conv - 1`` rows of
    q, k and v)."""
    kh, vh, dk, dv = rank_shape(m, tp)
    conv = (2 * kh * dk + vh * dv) * (m.d_conv - 1) * dtype_bytes
    return m.mamba_layers() * (vh * dk * dv * 4 + conv)
