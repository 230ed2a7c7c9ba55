"""The gated short convolution of LFM2's convolution layers (HF ``Lfm2ShortConv``, vLLM's
``ShortConv``), a recurrent mixer of hybrid decoders.

Per layer, on ``t`` tokens, one tensor-parallel rank's share (vLLM splits the channels): the
layer's norm, ``in_proj`` (d -> B, C, x: 3 x d), ``B x``, the depthwise causal convolution over
it (``short_conv`` taps; in a decode step from its conv state, shifted by a row), ``C`` times
the convolution, ``out_proj`` (d -> d), all-reduced. No activation and, in the releases, no
bias (``ssm_bias``: biases on both projections and the convolution).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workloads.models import ModelConfig
    from workloads.tracer import LayerBuilder, OpTemplate


def mixer(bld: LayerBuilder, b: int, s: int) -> list[OpTemplate]:
    """The gated short convolution of ``b`` requests of ``s`` new tokens each."""
    from workloads.mamba2 import causal_conv

    m, tp = bld.m, bld.sc.tp
    t, d = b * s, bld.shape.d
    channels = d // tp
    conv = [op for op in causal_conv(bld, t, s, channels, m.short_conv)
            if op.name != "conv_act"]   # (no activation after LFM2's convolution)
    return [bld.norm("ln_conv", "x", t, m.norm == "rmsnorm"),
            bld._linear("in_proj", t, d, 3 * channels),
            bld._vector("conv_gate_b", t, channels, "mul"), *conv,
            bld._vector("conv_gate_c", t, channels, "mul"),
            bld._linear("out_proj", t, channels, d), *bld._allreduce("allreduce_conv", t)]


def params(m: ModelConfig) -> int:
    """One gated short convolution: in_proj (d -> 3 d), the depthwise convolution's taps,
    out_proj (d -> d), and their biases under ``ssm_bias``."""
    d = m.d_model
    bias = 5 * d if m.ssm_bias else 0
    return 4 * d * d + m.short_conv * d + bias


def state_bytes_per_request(m: ModelConfig, tp: int, dtype_bytes: float) -> float:
    """Bytes one request's convolution layers keep on one rank between steps: the last
    ``short_conv - 1`` rows of ``B x`` (vLLM's short-conv state)."""
    return m.mamba_layers() * (m.short_conv - 1) * (m.d_model // tp) * dtype_bytes
