"""FPGA functional execution: the matrix engine's group-wise reduction, its vector lanes, and the
low-bit datapaths of W2A8KV4 designs (AccLLM): 2:4-sparse int2 weights with group scales
against int8 activations, and decode attention over a 4-bit KV cache with per-token group
scales.

Declared numerics (docs/fpga.md; assumptions where the papers are silent):

* contractions in ``xpusim check``: operands in the op's datatype, the reduction rank cut into
  groups of ``GROUP`` (128: the weight-quantization group, the unit the engine applies one
  scale to); inside a group one fp32 rounding per multiply-accumulate (DSP cascade feeding an
  fp32 adder, assumption), group partials added into an fp32 accumulator in K order;
* vector engine: fp16 lanes (``fpga_design.vector_lanes`` per row reduction), as the presets
  state;
* :func:`lowbit_linear` (the W2A8 datapath): integer products of int8 activations and the kept
  int2 weights summed exactly per group (an int32 DSP accumulator cannot overflow: 64 products
  of at most 128 x 2), the group sum times its fp16 scale rounded to fp32 and added into an
  fp32 accumulator in group order, then times the token's activation scale (fp32);
* :func:`kv4_decode_attention`: K and V dequantized per element as int4 x fp16 scale (exact in
  fp32), scores as fp32 dot products in e order, softmax in fp32 (max, exp, sum in key order),
  P.V accumulated in fp32 in key order, divided once at the end.

Each kernel has a float64 reference in ``kernels_ref`` and an allowance derived from these
rounding steps; a wrong scale, a dropped sparse block or a misplaced index exceeds it.
``xpusim check`` runs them as rows: linear ops on the low-bit datapath with ``--act-dtype
int8`` (2:4 blocks with ``--sparsity 2:4``), decode attention (fused, or its QK and PV ops)
over an integer ``--kv-dtype`` cache (:func:`kv_store`, :func:`kv_scores`, :func:`kv_pv`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from arch import Arch
from kernels_ref.dtypes import quantize
from kernels_ref.lowbit import compress_n_m, dequantize_kv, quantize_kv
from sim.functional.base import (
    FunctionalDevice,
    MatmulNumerics,
    MatmulPlan,
    VectorNumerics,
    register_functional,
)
from sim.functional.formats import Rounder
from sim.functional.plans import tiled_plan

GROUP = 128
U32 = 2.0 ** -24
SOURCE = ("fpga: K in groups of 128 (the quantization group), one fp32 rounding per MAC inside "
          "a group, group partials added in fp32 in K order (assumption; docs/fpga.md)")


@register_functional
class FpgaFunctional(FunctionalDevice):
    """Functional executor for arches of type ``fpga``."""

    arch_type = "fpga"

    def __init__(self, arch: Arch):
        super().__init__(arch)
        self.design = arch.fpga_design

    def matmul_numerics(self, dtype: str) -> MatmulNumerics:
        if dtype.startswith("int"):
            return MatmulNumerics(dtype, Rounder("int32"), 1, Rounder("fp32"), SOURCE)
        return MatmulNumerics(dtype, Rounder("fp32"), 1, Rounder("fp32"), SOURCE)

    def vector_numerics(self) -> VectorNumerics:
        return VectorNumerics("fp16", self.design.vector_lanes,
                              "fpga_design.vector_lanes fp16 lanes per row reduction")

    def plan_matmul(self, op: Any, dtype: str, shape: tuple[int, int, int, int]) -> MatmulPlan:
        _, m, n, k = shape
        groups = math.ceil(k / GROUP)
        plan = tiled_plan(shape, (m, n, GROUP), groups, self.matmul_numerics(dtype),
                          {"group": GROUP, "groups": groups})
        plan.detail["mapping"] = "fpga groups"
        return plan

    def unit_for(self, op: Any) -> str:
        return "matrix" if getattr(op, "kind", "") in ("matmul", "attention") else "vector"

    # the low-bit datapaths ``xpusim check`` runs (--act-dtype int8, an integer --kv-dtype)
    def quantize_activations(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-token int8 activations (:func:`quantize_activations`)."""
        return quantize_activations(x)

    def linear_lowbit(self, xq: np.ndarray, x_scale: np.ndarray, q: np.ndarray,
                      scales: np.ndarray, group: int, sparsity: str) -> tuple:
        """A linear op on the W2A8 / W4A8 datapath (:func:`run_lowbit_linear`)."""
        return run_lowbit_linear(xq, x_scale, q, scales, group, sparsity)

    def attention_kv_quantized(self, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                               kv_dtype: str, scale: float) -> tuple:
        """Decode attention over the quantized KV cache (:func:`run_kv_attention`)."""
        return run_kv_attention(q, k, v, kv_dtype, scale)

    def kv_cache(self, k: np.ndarray, v: np.ndarray, kv_dtype: str) -> tuple[np.ndarray, ...]:
        """The quantized KV cache (:func:`kv_store`)."""
        return kv_store(k, v, kv_dtype)

    def kv_qk(self, q: np.ndarray, kq: np.ndarray, ks: np.ndarray) -> tuple:
        """Unfused decode QK over the quantized cache (:func:`kv_scores`)."""
        return kv_scores(q, kq, ks)

    def kv_av(self, p: np.ndarray, vq: np.ndarray, vs: np.ndarray) -> tuple:
        """Unfused decode PV over the quantized cache (:func:`kv_pv`)."""
        return kv_pv(p, vq, vs)


# --- the W2A8 sparse datapath -----------------------------------------------------------------
@njit(cache=True)
def _lowbit_kernel(xq, values, pos, scales, n_keep, m_group, group, out):
    t_len, _ = xq.shape
    kept, cols = values.shape
    per_group = group // m_group * n_keep  # kept entries per scale group
    n_groups = scales.shape[0]
    for t in range(t_len):
        for c in range(cols):
            acc = np.float32(0.0)
            for gi in range(n_groups):
                s = 0.0  # integer sum, exact in float64 (|s| < 2^53)
                for kk in range(gi * per_group, min(kept, (gi + 1) * per_group)):
                    dense = (kk // n_keep) * m_group + pos[kk, c]
                    s += xq[t, dense] * values[kk, c]
                acc = np.float32(acc + np.float32(s * scales[gi, c]))
            out[t, c] = acc


def lowbit_linear(xq: np.ndarray, x_scale: np.ndarray, values: np.ndarray, pos: np.ndarray,
                  scales: np.ndarray, n_keep: int = 2, m_group: int = 4,
                  group: int = GROUP) -> np.ndarray:
    """Y [T, N] = (x_scale x Xq) @ W on the W2A8 datapath: ``xq`` [T, K] int8 values,
    ``x_scale`` [T] per-token scales, ``values``/``pos`` the compressed N:M weights
    (:func:`kernels_ref.lowbit.compress_n_m`) as integers, ``scales`` [K / group, N] fp16
    group scales over dense K. Returns fp32 values (in float64)."""
    if group % m_group:
        raise ValueError(f"group {group} must be a multiple of the sparsity group {m_group}")
    out = np.empty((xq.shape[0], values.shape[1]))
    _lowbit_kernel(np.ascontiguousarray(xq, dtype=np.float64),
                   np.ascontiguousarray(values, dtype=np.float64),
                   np.ascontiguousarray(pos, dtype=np.int64),
                   np.ascontiguousarray(scales, dtype=np.float64), n_keep, m_group, group, out)
    return quantize(out * np.asarray(x_scale, dtype=np.float64)[:, None], "fp32")


def lowbit_allowance(xq: np.ndarray, x_scale: np.ndarray, w_abs: np.ndarray,
                     group: int = GROUP) -> np.ndarray:
    """Absolute error bound of :func:`lowbit_linear` against the float64 reference: each
    group's scaled sum is rounded once, the fp32 accumulator once per group (depth G), the
    activation scale once: |err| <= gamma(G + 2) x |x_scale| (|Xq| @ |W|), W the dequantized
    dense weights."""
    groups = math.ceil(xq.shape[1] / group)
    s = (groups + 2) * U32
    gam = s / (1 - s)
    return gam * np.abs(x_scale)[:, None] * (np.abs(xq) @ w_abs) * 1.01


# --- decode attention over an int4 KV cache -----------------------------------------------------
@njit(cache=True)
def _kv4_kernel(q, kq, ks, vq, vs, group, scale, out):
    heads, d = q.shape
    groups, n, _ = kq.shape
    rep = heads // groups
    sc = np.empty(n, dtype=np.float32)
    for h in range(heads):
        g = h // rep
        mx = np.float32(-np.inf)
        for j in range(n):
            acc = np.float32(0.0)
            for e in range(d):
                k = np.float32(kq[g, j, e] * ks[g, j, e // group])
                acc = np.float32(acc + np.float32(np.float32(q[h, e]) * k))
            sc[j] = np.float32(acc * np.float32(scale))
            if sc[j] > mx:
                mx = sc[j]
        tot = np.float32(0.0)
        o = np.zeros(d, dtype=np.float32)
        for j in range(n):
            p = np.float32(np.exp(np.float32(sc[j] - mx)))
            tot = np.float32(tot + p)
            for e in range(d):
                v = np.float32(vq[g, j, e] * vs[g, j, e // group])
                o[e] = np.float32(o[e] + np.float32(p * v))
        for e in range(d):
            out[h, e] = np.float32(o[e] / tot)


def kv4_decode_attention(q: np.ndarray, kq: np.ndarray, ks: np.ndarray, vq: np.ndarray,
                         vs: np.ndarray, scale: float) -> np.ndarray:
    """One query per head ``q`` [H, d] over int4 caches ``kq``/``vq`` [G, n, d] with per-token
    group scales ``ks``/``vs`` [G, n, d / group] (:func:`kernels_ref.lowbit.quantize_kv`).
    Returns [H, d] fp32 values (in float64)."""
    d = q.shape[1]
    group = -(-d // ks.shape[-1])
    out = np.empty(q.shape)
    f = np.ascontiguousarray
    _kv4_kernel(f(q, dtype=np.float64), f(kq, dtype=np.float64), f(ks, dtype=np.float64),
                f(vq, dtype=np.float64), f(vs, dtype=np.float64), group, float(scale), out)
    return out


def kv4_allowance(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """Absolute error bound of :func:`kv4_decode_attention` against the float64 reference on
    the dequantized caches ``k``, ``v`` [G, n, d]: each score is off by at most
    gamma(d + 2) x scale x |q|.|k| (fp32 products and sums, the scaling), which perturbs each
    probability by a factor exp(+-2 max score error); exp costs 2 ulps, the sum n roundings,
    P.V n roundings and the division one: relative error of the output <= 2 Es + (2n + 8) u
    times sum p |v| / sum p."""
    heads, d = q.shape
    groups, n, _ = k.shape
    rep = heads // groups
    out = np.empty(q.shape)
    gam_d = (d + 2) * U32
    for h in range(heads):
        kg, vg = k[h // rep], v[h // rep]
        s = scale * (kg @ q[h])
        es = float(np.max(gam_d * scale * (np.abs(kg) @ np.abs(q[h]))))
        p = np.exp(s - s.max())
        mag = (p @ np.abs(vg)) / p.sum()
        rel = math.expm1(2 * es) + (2 * n + 8) * U32
        out[h] = rel * mag * 1.01
    return out


# --- the low-bit datapaths as the check runs them ------------------------------------------------
#: KV-cache quantization group along the head dimension: one fp16 scale per token per KV head
#: (assumption: AccLLM's KV4 group size was not at hand; docs/fpga.md)
KV_GROUP = 0


def parse_sparsity(sparsity: str) -> tuple[int, int]:
    """(N, M) of an ``N:M`` pattern; (1, 1) for '' (dense)."""
    if not sparsity:
        return 1, 1
    n, _, m = sparsity.partition(":")
    if not (n.isdigit() and m.isdigit() and 0 < int(n) < int(m) <= 64):
        raise ValueError(f"expected N:M with 0 < N < M <= 64 (e.g. 2:4), got '{sparsity}'")
    return int(n), int(m)


def quantize_activations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-token int8 activations of ``x`` [T, K] (the A8 of W2A8/W4A8): (integer values [T, K],
    fp32 scales [T]); scale = max|x| / 127 of the token rounded to fp32, values RNE saturated.
    Part of the quantized model, so the reference and the device both read these values."""
    amax = np.abs(x).max(axis=1)
    scales = quantize(np.where(amax > 0, amax / 127.0, 1.0), "fp32")
    return quantize(x / scales[:, None], "int8", saturate=True), scales


def run_lowbit_linear(xq: np.ndarray, x_scale: np.ndarray, q: np.ndarray,
                      scales: np.ndarray, group: int, sparsity: str
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The linear op on the W2A8 / W4A8 datapath: ``q`` [K, N] integer weights (N:M-pruned when
    ``sparsity`` says so, stored compressed as the engine reads them), ``scales`` [K / group,
    N] fp16. Returns (fp32 result [T, N], allowance [T, N], mapping detail)."""
    n_keep, m_group = parse_sparsity(sparsity)
    if m_group > 1:
        values, pos = compress_n_m(q, n_keep, m_group)
    else:
        values, pos = q, np.zeros(q.shape, dtype=np.int64)
    raw = lowbit_linear(xq, x_scale, values, pos, scales, n_keep, m_group, group)
    w_abs = np.abs(q) * np.repeat(np.abs(scales), group, axis=0)[:q.shape[0]]
    allow = lowbit_allowance(xq, x_scale, w_abs, group)
    detail = {"mapping": "low-bit A8" + ("" if m_group == 1 else f" {sparsity}"),
              "group": group, "acc": "exact per group, fp32 across groups"}
    return raw, allow, detail


def run_kv_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, kv_dtype: str, scale: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Decode attention over a quantized KV cache: ``q`` [B, H, d] one query per head, ``k``,
    ``v`` [B, G, n, d] the cache before quantization. The cache is stored per token as
    ``kv_dtype`` integers with fp16 group scales (:func:`quantize_kv`, group
    :data:`KV_GROUP`); returns (device result [B, H, d] in fp32, dequantized K, V [B, G, n, d]
    the reference reads, allowance [B, H, d], mapping detail)."""
    kq, ks, vq, vs, kd, vd = kv_store(k, v, kv_dtype)
    out = np.stack([kv4_decode_attention(q[b], kq[b], ks[b], vq[b], vs[b], scale)
                    for b in range(q.shape[0])])
    allow = np.stack([kv4_allowance(q[b], kd[b], vd[b], scale) for b in range(q.shape[0])])
    detail = {"mapping": f"{kv_dtype} KV decode", "kv_group": KV_GROUP or q.shape[-1],
              "acc": "fp32"}
    return out, kd, vd, allow, detail



def kv_store(k: np.ndarray, v: np.ndarray, kv_dtype: str) -> tuple[np.ndarray, ...]:
    """The cache as the device stores it: (kq, ks, vq, vs, K, V dequantized), integers of
    ``kv_dtype`` with fp16 per-token group scales (group :data:`KV_GROUP`)."""
    kq, ks = quantize_kv(k, kv_dtype, KV_GROUP)
    vq, vs = quantize_kv(v, kv_dtype, KV_GROUP)
    ks, vs = quantize(ks, "fp16"), quantize(vs, "fp16")
    return kq, ks, vq, vs, dequantize_kv(kq, ks), dequantize_kv(vq, vs)


# --- the unfused decode attention (QK and PV ops) over the quantized cache ------------------------
@njit(cache=True)
def _kv_scores_kernel(q, kq, ks, group, out):
    heads, d = q.shape
    groups, n, _ = kq.shape
    rep = heads // groups
    for h in range(heads):
        g = h // rep
        for j in range(n):
            acc = np.float32(0.0)
            for e in range(d):
                k = np.float32(kq[g, j, e] * ks[g, j, e // group])
                acc = np.float32(acc + np.float32(np.float32(q[h, e]) * k))
            out[h, j] = acc


@njit(cache=True)
def _kv_pv_kernel(p, vq, vs, group, out):
    heads, n = p.shape
    groups, _, d = vq.shape
    rep = heads // groups
    for h in range(heads):
        g = h // rep
        for e in range(d):
            acc = np.float32(0.0)
            for j in range(n):
                v = np.float32(vq[g, j, e] * vs[g, j, e // group])
                acc = np.float32(acc + np.float32(np.float32(p[h, j]) * v))
            out[h, e] = acc


def kv_scores(q: np.ndarray, kq: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores [B, H, n] = q [B, H, d] . K over the quantized cache ``kq`` [B, G, n, d] with
    scales ``ks``: K dequantized per element (exact in fp32), fp32 products and sums in e order.
    Returns (fp32 result, allowance gamma(d + 1) |q| . |K|)."""
    b, heads, d = q.shape
    group = -(-d // ks.shape[-1])
    out = np.empty((b, heads, kq.shape[2]))
    f = np.ascontiguousarray
    for i in range(b):
        _kv_scores_kernel(f(q[i], dtype=np.float64), f(kq[i], dtype=np.float64),
                          f(ks[i], dtype=np.float64), group, out[i])
    kd = np.repeat(np.abs(dequantize_kv(kq, ks)), heads // kq.shape[1], axis=1)
    s = (d + 1) * U32
    allow = s / (1 - s) * np.einsum("bhe,bhje->bhj", np.abs(q), kd) * 1.01
    return out, allow


def kv_pv(p: np.ndarray, vq: np.ndarray, vs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Output [B, H, d] = P [B, H, n] . V over the quantized cache: V dequantized per element,
    fp32 products and sums in key order. Returns (fp32 result, allowance gamma(n + 1) |P|.|V|)."""
    b, heads, n = p.shape
    d = vq.shape[-1]
    group = -(-d // vs.shape[-1])
    out = np.empty((b, heads, d))
    f = np.ascontiguousarray
    for i in range(b):
        _kv_pv_kernel(f(p[i], dtype=np.float64), f(vq[i], dtype=np.float64),
                      f(vs[i], dtype=np.float64), group, out[i])
    vd = np.repeat(np.abs(dequantize_kv(vq, vs)), heads // vq.shape[1], axis=1)
    s = (n + 1) * U32
    allow = s / (1 - s) * np.einsum("bhj,bhje->bhe", np.abs(p), vd) * 1.01
    return out, allow
