"""A Mamba-2 mixer's op templates (Dao & Gu 2024, "Transformers are SSMs"; HF Mamba2Mixer;
``mamba_ssm``'s ``mamba_chunk_scan_combined`` and ``selective_state_update``), for the Mamba-2
layers of hybrid decoders (Granite 4.0-H, Bamba).

Per layer, on ``t`` tokens: ``in_proj`` (d -> z, x, B, C, dt), the depthwise causal convolution
over x, B and C (in a decode step from its conv state, shifted by a row) and its SiLU, the state
space dual (SSD), the gate and gated RMSNorm, ``out_proj``. Under tensor parallelism the heads
(and the groups of B and C, replicated below ``tp``) split over the ranks, as vLLM's
MambaMixer2 splits them; ``out_proj``'s partial sums are all-reduced.

A prefill's SSD runs chunk by chunk (``ssm_chunk`` tokens, 256 by default) as matrix products
on the tensor cores (the chunked form of Listing 1 of the paper): ``ssd_cb`` (C B^T per chunk
and group), ``ssd_diag`` ((L o C B^T) X per head: the chunk's own output), ``ssd_states``
(B^T X: each chunk's final state), ``ssd_pass`` (the states passed from chunk to chunk, decayed),
``ssd_off`` (C times the state entering the chunk) and ``ssd_out`` (the two outputs and the D
skip). A decode step updates each head's ``head_dim x d_state`` state once (``ssd_step``):
``h = exp(dt A) h + dt x B^T``, ``y = h C + D x``, the state read and written in fp32.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from workloads.einsum import Cascade, Einsum, contraction, elementwise
from workloads.trace import MATMUL, MEMORY, VECTOR
from workloads.tracer import OpTemplate, _t

if TYPE_CHECKING:
    from workloads.models import ModelConfig
    from workloads.tracer import LayerBuilder

STATE_DTYPE = "fp32"   # the SSM state as mamba_ssm keeps it
DEFAULT_CHUNK = 256    # mamba_chunk_scan_combined's chunk_size in Mamba-2's configs


def rank_shape(bld: LayerBuilder) -> tuple[int, int, int, int, int]:
    """(heads, heads per group, groups, head dim, states) of one tensor-parallel rank."""
    m, tp = bld.m, bld.sc.tp
    heads = max(1, m.ssm_heads // tp)
    groups = max(1, max(1, m.ssm_groups) // tp)
    return heads, max(1, heads // groups), groups, m.ssm_head_dim, m.d_state


def mixer(bld: LayerBuilder, b: int, s: int) -> list[OpTemplate]:
    """The Mamba-2 mixer of ``b`` requests of ``s`` new tokens each (one rank's share)."""
    m = bld.m
    t = b * s
    heads, _, groups, p, n = rank_shape(bld)
    inner, k = heads * p, m.d_conv
    conv_dim = inner + 2 * groups * n
    ops = [bld.norm("ln_mamba", "x", t, m.norm == "rmsnorm"),
           bld._linear("in_proj", t, bld.shape.d, 2 * inner + 2 * groups * n + heads)]
    ops += causal_conv(bld, t, s, conv_dim, k)
    ops += _ssd_chunks(bld, b, s) if s > 1 else [_ssd_step(bld, b)]
    ops.append(bld._vector("ssd_gate", t, inner, "mul"))
    if m.ssm_gated_norm:
        ops.append(bld.norm("ssd_norm", "y", t, True, inner))
    ops.append(bld._linear("out_proj", t, inner, bld.shape.d))
    return ops + bld._allreduce("allreduce_mamba", t)


def parallel_layer(bld: LayerBuilder, b: int, s: int, n: int, layer: int, local: bool,
                   nope: bool, dense: bool) -> list[OpTemplate]:
    """Falcon-H1's layer (HF FalconH1DecoderLayer, vLLM FalconH1ParallelHybrid): one RMSNorm,
    then its attention and a Mamba-2 mixer on that normed input, each with its output
    projection all-reduced under tensor parallelism (as vLLM runs the two), both outputs and
    the input added into the residual; then the MLP block. Not traced: the muP multipliers
    (one multiply per element of the input, the key, the in_proj output and each output)."""
    t = b * s
    attn = bld._attention_block(b, s, n, local, nope, True)
    mix = bld._mamba2(b, s)   # (built once per shape: the same templates step after step)
    assert attn[-1].name == "residual_attn" and mix[0].name == "ln_mamba"
    return [*attn[:-1], *mix[1:], bld._vector("residual_hybrid", t, bld.shape.d, "add",
                                                n_inputs=3),
            *bld._mlp_block(t, layer, dense, True)]


def causal_conv(bld: LayerBuilder, t: int, s: int, channels: int, k: int) -> list[OpTemplate]:
    """A Mamba layer's depthwise causal convolution over ``channels`` (``k`` taps) and its
    SiLU: a prefill reads each token's window from the in_proj output itself; a decode step
    reads it from the conv state (``k - 1`` earlier rows and the new one) and shifts the state
    by one row (``conv_state``). Mamba-1 convolves x, Mamba-2 x, B and C."""
    dt = bld.dt
    sizes = {"t": t, "c": channels, "k": k, "j": k - 1}
    x_in = _t("conv1d.window", "tkc", dt, "state") if s == 1 else _t("conv1d.in", "tc", dt)
    conv = Einsum("conv1d", _t("conv1d.out", "tc", STATE_DTYPE, "intermediate"),
                  (x_in, _t("conv1d.w", "ck", dt, "weight")),
                  tuple((r, sizes[r]) for r in "tck"))
    shift = [OpTemplate("conv_state", MEMORY, "memory", elementwise(
        "conv_state", _t("conv_state.out", "tjc", dt, "state"),
        (_t("conv_state.in", "tjc", dt, "state"),), sizes, "copy"))] if s == 1 and k > 1 else []
    act = elementwise("conv_act", _t("conv_act.out", "tc", dt),
                      (_t("conv1d.out", "tc", STATE_DTYPE, "intermediate"),
                       _t("conv1d.bias", "c", dt, "weight")), {"t": t, "c": channels}, "add",
                      unary="silu")
    return [OpTemplate("conv1d", VECTOR, "ssm", conv), *shift,
            OpTemplate("conv_act", VECTOR, "activation", act)]


def _ssd_chunks(bld: LayerBuilder, b: int, s: int) -> list[OpTemplate]:
    """A prefill's chunked SSD: its matrix products per chunk (the last chunk padded, as the
    kernels pad it) and the state passing between chunks."""
    dt, f = bld.dt, STATE_DTYPE
    _, per_group, groups, p, n = rank_shape(bld)
    q = min(bld.m.ssm_chunk or DEFAULT_CHUNK, s)
    sizes = {"b": b, "k": math.ceil(s / q), "g": groups, "h": per_group, "q": q, "r": q,
             "p": p, "n": n}

    def ranks(rs: str) -> dict[str, int]:
        return {r: sizes[r] for r in rs}

    c_, b_ = _t("ssd.C", "bkgqn", dt), _t("ssd.B", "bkgrn", dt)
    x = _t("ssd.x", "bkghrp", dt)
    cb = _t("ssd.cb", "bkgqr", dt)
    states = _t("ssd.states", "bkghpn", f)
    passed = _t("ssd.passed", "bkghpn", dt)
    y_diag, y_off = _t("ssd.y_diag", "bkghqp", f), _t("ssd.y_off", "bkghqp", f)
    return [
        OpTemplate("ssd_cb", MATMUL, "ssm", contraction("ssd_cb", cb, c_, b_, ranks("bkgqrn"))),
        OpTemplate("ssd_diag", MATMUL, "ssm",
                   contraction("ssd_diag", y_diag, cb, x, ranks("bkghqrp"))),
        OpTemplate("ssd_states", MATMUL, "ssm",
                   contraction("ssd_states", states, x, b_, ranks("bkghrpn"))),
        OpTemplate("ssd_pass", VECTOR, "ssm",
                   elementwise("ssd_pass", passed, (states, _t("ssd.decay", "bkgh", f)),
                               ranks("bkghpn"), "mul")),
        OpTemplate("ssd_off", MATMUL, "ssm",
                   contraction("ssd_off", y_off, c_, passed, ranks("bkghqpn"))),
        OpTemplate("ssd_out", VECTOR, "ssm",
                   elementwise("ssd_out", _t("ssd.y", "bkghqp", dt),
                               (y_diag, y_off, _t("ssd.x", "bkghqp", dt)), ranks("bkghqp"),
                               "add")),
    ]


def _ssd_step(bld: LayerBuilder, b: int) -> OpTemplate:
    """A decode step's state update (``selective_state_update``): per head ``h = exp(dt A) h +
    dt x B^T`` and ``y = h C + D x``, the state read and written in fp32."""
    dt, f = bld.dt, STATE_DTYPE
    _, per_group, groups, p, n = rank_shape(bld)
    sizes = {"b": b, "g": groups, "h": per_group, "p": p, "n": n}
    full = tuple((r, sizes[r]) for r in "bghpn")
    prev = _t("ssm.state", "bghpn", f, "state")
    da = _t("ssd.dA", "bgh", f, "intermediate")
    dbx = _t("ssd.dBx", "bghpn", f, "intermediate")
    new = _t("ssd.h", "bghpn", f, "intermediate")
    return OpTemplate("ssd_step", VECTOR, "ssm", Cascade("ssd_step", (
        elementwise("ssd.dA", da, (_t("ssd.dt", "bgh", f), _t("ssd.A", "gh", f, "weight")),
                    {r: sizes[r] for r in "bgh"}, "mul", unary="exp"),
        elementwise("ssd.dBx", dbx, (_t("ssd.x", "bghp", dt), _t("ssd.B", "bgn", dt),
                                     _t("ssd.dt", "bgh", f)), sizes, "mul"),
        Einsum("ssd.sh", _t("ssd.sh", "bghpn", f, "intermediate"), (prev, da), full,
               map_op="mul", reduce_op=None),
        Einsum("ssd.h", new, (_t("ssd.sh", "bghpn", f, "intermediate"), dbx), full,
               map_op="add", reduce_op=None),
        Einsum("ssd.y", _t("ssd.y", "bghp", dt), (new, _t("ssd.C", "bgn", dt)), full,
               map_op="mul", reduce_op="add"),
        Einsum("ssm.state", _t("ssm.state", "bghpn", f, "state"), (new,), full,
               reduce_op=None),
    ), outputs=("ssd.y", "ssm.state")))


def state_bytes_per_request(m: ModelConfig, tp: int, dtype_bytes: float) -> float:
    """Bytes one request's Mamba-2 layers keep on one rank between steps: each layer's fp32
    SSM state (heads x head dim x states) and its conv state (``d_conv - 1`` rows of x, B, C)."""
    heads = max(1, m.ssm_heads // tp)
    groups = max(1, max(1, m.ssm_groups) // tp)
    conv = (heads * m.ssm_head_dim + 2 * groups * m.d_state) * (m.d_conv - 1) * dtype_bytes
    return m.mamba_layers() * (heads * m.ssm_head_dim * m.d_state * 4 + conv)
