"""``xpusim check`` for decoder layers with a parallel attention/MLP block (GPT-J, Falcon, Phi)
and partial rotary embeddings (GPT-J: 64 of 256 channels per head, Phi-2: 32 of 80).

The MLP reads the attention's normed input (``parallel``) or a second norm of the layer input
(``parallel2``); ``residual_parallel`` adds the layer input, the attention output and the MLP
output (two adds in the compute format). RoPE rotates the first ``rotary_dim`` channels of each
head in the rotate-half layout over those channels and passes the others through.
"""

from __future__ import annotations

import numpy as np

import kernels_ref.elementwise as ref_ew
from kernels_ref.dtypes import quantize
from sim.functional import vector
from sim.functional.layer import _LayerRun
from workloads.trace import Op


class ParallelRun(_LayerRun):
    """Handlers of a parallel block and of partial RoPE (see the module doc)."""

    def _op_ln_ffn(self, op: Op, checked: bool) -> tuple:
        src = "x" if self.m.block == "parallel2" else "x2"
        return self._norm(op, src, "h_ffn", checked)

    def _op_ffn_up(self, op: Op, checked: bool) -> tuple:
        if self.m.block == "parallel" and "h_ffn" not in self.env:
            self.env["h_ffn"] = self.env["h_attn"]
        return super()._op_ffn_up(op, checked)

    def _op_residual_parallel(self, op: Op, checked: bool) -> tuple:
        """x + attention + MLP. Allowance: two roundings of partial sums, ``2 u sum |terms|``."""
        x, o, dn = self.env["x"], self.env["o"], self.env["down"]
        ref = x + o + dn
        cc = self.cc.code
        y = quantize(vector.add(vector.add(x, o, cc), dn, cc), self.dt)
        self.env["out"] = y
        allow = 2 * self.u_c * (np.abs(x) + np.abs(o) + np.abs(dn)) * 1.01
        return y, ref, allow, self.dt, {"unit": "vector", "compute": self.vec.compute}

    def _op_rope(self, op: Op, checked: bool) -> tuple:
        m = self.m
        rot = m.rotary_dim or m.head_dim
        if rot == m.head_dim:
            return super()._op_rope(op, checked)
        hd, heads, groups = m.head_dim, m.n_heads, m.n_kv_heads
        qkv = self.env["qkv"]
        full = qkv[:, :(heads + groups) * hd].reshape(self.t, heads + groups, hd)
        x = np.ascontiguousarray(full[..., :rot])
        pos = np.tile(np.arange(self.n - self.s, self.n), self.b)
        cos, sin = ref_ew.rope_tables(pos, rot)
        cos32, sin32 = quantize(cos, "fp32"), quantize(sin, "fp32")
        ref_rot = ref_ew.rope(x, cos32, sin32)
        dev_rot = quantize(vector.rope(x, cos32, sin32, self.cc.code), self.dt)
        half = rot // 2
        mag = np.concatenate([np.abs(x[..., :half] * cos32[:, None]) +
                              np.abs(x[..., half:] * sin32[:, None]),
                              np.abs(x[..., half:] * cos32[:, None]) +
                              np.abs(x[..., :half] * sin32[:, None])], axis=-1)
        allow_rot = (2 * self.u_c * mag + self.u_c * np.abs(ref_rot)) * 1.01
        rest = full[..., rot:]
        y = np.concatenate([dev_rot, rest], axis=-1)
        ref = np.concatenate([ref_rot, rest], axis=-1)
        allow = np.concatenate([allow_rot, np.zeros_like(rest)], axis=-1)
        self.env["q_rope"] = y[:, :heads]
        self.env["k_rope"] = y[:, heads:]
        return y, ref, allow, self.dt, {"unit": "vector", "compute": self.vec.compute,
                                        "rotary_dim": rot}
