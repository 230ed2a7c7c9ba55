"""A Mamba-1 mixer's op templates for the Mamba layers of hybrid decoders (Jamba), after HF
``JambaMambaMixer`` and vLLM's ``MambaMixer``; its selective scan is Gu & Dao 2023's
(:func:`workloads.tracer_families.selective_scan_cascade`).

Per layer, on ``t`` tokens, one tensor-parallel rank's share (vLLM splits the inner channels
over the ranks): the layer's norm, ``in_proj`` (d -> x, z: 2 x inner), the depthwise causal
convolution over x and its SiLU (in a decode step from its conv state), ``x_proj`` (inner ->
dt, B, C: ``dt_rank + 2 d_state``; row-parallel, its partial sums all-reduced, as vLLM's
``RowParallelLinear`` runs it), the RMSNorms of dt, B and C where the model has them
(``ssm_norms``: Jamba, Falcon-Mamba), ``dt_proj`` (dt_rank -> inner), the selective scan (a
prefill over its tokens from a zero state; a decode step from the carried fp32 state, which it
writes back) and ``out_proj`` (inner -> d), all-reduced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workloads.einsum import TensorRef
from workloads.trace import COLLECTIVE, VECTOR, Collective
from workloads.tracer import OpTemplate

if TYPE_CHECKING:
    from workloads.models import ModelConfig
    from workloads.tracer import LayerBuilder


def mixer(bld: LayerBuilder, b: int, s: int) -> list[OpTemplate]:
    """The Mamba-1 mixer of ``b`` requests of ``s`` new tokens each (one rank's share)."""
    from workloads.mamba2 import causal_conv
    from workloads.tracer_families import selective_scan_cascade

    m, tp = bld.m, bld.sc.tp
    t, d, n, r = b * s, bld.shape.d, m.d_state, m.dt_rank
    inner = m.d_inner // tp
    ops = [bld.norm("ln_mamba", "x", t, m.norm == "rmsnorm"),
           bld._linear("in_proj", t, d, 2 * inner),
           *causal_conv(bld, t, s, inner, m.d_conv),
           bld._linear("x_proj", t, inner, r + 2 * n)]
    if tp > 1:   # x_proj is row-parallel: its dt, B and C summed over the ranks
        nbytes = t * (r + 2 * n) * TensorRef("x", (), bld.dt).nbytes({})
        ops.append(OpTemplate("allreduce_x_proj", COLLECTIVE, "communication", None,
                              Collective("allreduce", nbytes, tp, bld.dt)))
    if m.ssm_norms:
        ops += [bld.norm("dt_norm", "dt", t, True, r), bld.norm("bc_norm", "bc", 2 * t, True, n)]
    ops += [bld._linear("dt_proj", t, r, inner),
            OpTemplate("ssm_scan", VECTOR, "ssm",
                       selective_scan_cascade(b, s, inner, n, bld.dt, carried_state=s == 1)),
            bld._linear("out_proj", t, inner, d)]
    return ops + bld._allreduce("allreduce_mamba", t)


def state_bytes_per_request(m: ModelConfig, tp: int, dtype_bytes: float) -> float:
    """Bytes one request's Mamba-1 layers keep on one rank between steps: each layer's fp32
    SSM state (inner x d_state) and its conv state (``d_conv - 1`` rows of x)."""
    inner = m.d_inner // tp
    return m.mamba_layers() * (inner * m.d_state * 4 + inner * (m.d_conv - 1) * dtype_bytes)
