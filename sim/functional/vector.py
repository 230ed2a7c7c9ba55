"""Vector-unit ops (norms, softmax, RoPE, activations, residual adds, MoE combine) executed in a
device's compute datatype.

Every arithmetic result is rounded to the compute format (``cc``, a :attr:`Rounder.code`): an
add, multiply, divide or square root computed in float64 and rounded once is the correctly
rounded result for any format of at most 25 significand bits (float64 has 53 >= 2p + 2 bits),
so this is exact emulation of an IEEE unit of that format. Transcendentals (exp, tanh, erf,
rsqrt) are computed in float64 and rounded once: a correctly rounded unit; real units are
allowed a few ulps more by the check's tolerance (``TRANSCENDENTAL_ULPS`` in ``tolerance``).

Row reductions follow the usual GPU/vector-unit shape: ``lanes`` partial sums, lane ``l``
adding elements ``l, l + lanes, ...`` in order, then a pairwise tree over the lanes. Its depth
(roundings on the longest path) is ``ceil(n / lanes) + log2(lanes)``; see :func:`reduction_depth`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.functional.formats import apply


def reduction_depth(n: int, lanes: int) -> int:
    """Roundings on the longest path of a ``lanes``-way strided sum of ``n`` terms plus tree."""
    lanes = max(1, min(lanes, n))
    return math.ceil(n / lanes) + math.ceil(math.log2(lanes)) if lanes > 1 else n


@njit(cache=True)
def _rowsum(vals, n, lanes, cc):
    """Strided per-lane sums then a pairwise tree (lanes rounded up to a power of two)."""
    width = 1
    while width < min(lanes, n):
        width *= 2
    part = np.zeros(width)
    for ln in range(width):
        s = 0.0
        first = True
        for j in range(ln, n, width):
            s = vals[j] if first else apply(s + vals[j], cc)
            first = False
        part[ln] = s
    step = width // 2
    while step >= 1:
        for ln in range(step):
            part[ln] = apply(part[ln] + part[ln + step], cc)
        step //= 2
    return part[0]


@njit(cache=True)
def _rowmax(vals, n):
    m = -np.inf
    for j in range(n):
        if vals[j] > m:
            m = vals[j]
    return m


@njit(cache=True)
def rmsnorm(x, gamma, eps, lanes, cc):
    rows, n = x.shape
    y = np.empty_like(x)
    sq = np.empty(n)
    for r in range(rows):
        for j in range(n):
            sq[j] = apply(x[r, j] * x[r, j], cc)
        ms = apply(_rowsum(sq, n, lanes, cc) / n, cc)
        rstd = apply(1.0 / math.sqrt(apply(ms + eps, cc)), cc)
        for j in range(n):
            y[r, j] = apply(apply(x[r, j] * rstd, cc) * gamma[j], cc)
    return y


@njit(cache=True)
def layernorm(x, gamma, beta, eps, lanes, cc):
    rows, n = x.shape
    y = np.empty_like(x)
    tmp = np.empty(n)
    for r in range(rows):
        mu = apply(_rowsum(x[r], n, lanes, cc) / n, cc)
        for j in range(n):
            d = apply(x[r, j] - mu, cc)
            tmp[j] = apply(d * d, cc)
        var = apply(_rowsum(tmp, n, lanes, cc) / n, cc)
        rstd = apply(1.0 / math.sqrt(apply(var + eps, cc)), cc)
        for j in range(n):
            d = apply(x[r, j] - mu, cc)
            y[r, j] = apply(apply(apply(d * rstd, cc) * gamma[j], cc) + beta[j], cc)
    return y


@njit(cache=True)
def softmax(x, scale, limits, lanes, cc):
    """Row r uses its first ``limits[r]`` entries (causal mask); the rest are 0."""
    rows, n = x.shape
    y = np.zeros_like(x)
    z = np.empty(n)
    for r in range(rows):
        lim = limits[r]
        for j in range(lim):
            z[j] = apply(x[r, j] * scale, cc)
        m = _rowmax(z, lim)
        for j in range(lim):
            z[j] = apply(math.exp(apply(z[j] - m, cc)), cc)
        s = _rowsum(z, lim, lanes, cc)
        for j in range(lim):
            y[r, j] = apply(z[j] / s, cc)
    return y


@njit(cache=True)
def rope(x, cos, sin, cc):
    t_len, heads, d = x.shape
    half = d // 2
    y = np.empty_like(x)
    for t in range(t_len):
        for h in range(heads):
            for i in range(half):
                a = x[t, h, i]
                b = x[t, h, i + half]
                c = cos[t, i]
                s = sin[t, i]
                y[t, h, i] = apply(apply(a * c, cc) - apply(b * s, cc), cc)
                y[t, h, i + half] = apply(apply(b * c, cc) + apply(a * s, cc), cc)
    return y


@njit(cache=True)
def _silu(v, cc):
    e = apply(math.exp(-v), cc)
    return apply(v / apply(1.0 + e, cc), cc)


@njit(cache=True)
def activation(x, kind, cc):
    """kind 0 silu, 1 gelu (tanh form), 2 relu, 3 gelu (erf form), 4 squared relu."""
    flat = x.reshape(-1)
    y = np.empty_like(flat)
    c0 = apply(math.sqrt(2.0 / math.pi), cc)
    c1 = apply(0.044715, cc)
    for i in range(flat.size):
        v = flat[i]
        if kind == 0:
            y[i] = _silu(v, cc)
        elif kind == 1:
            cube = apply(apply(v * v, cc) * v, cc)
            inner = apply(c0 * apply(v + apply(c1 * cube, cc), cc), cc)
            t = apply(math.tanh(inner), cc)
            y[i] = apply(apply(0.5 * v, cc) * apply(1.0 + t, cc), cc)
        elif kind == 2:
            y[i] = v if v > 0.0 else 0.0
        elif kind == 4:
            y[i] = apply(v * v, cc) if v > 0.0 else 0.0
        else:
            t = apply(math.erf(apply(v / math.sqrt(2.0), cc)), cc)
            y[i] = apply(apply(0.5 * v, cc) * apply(1.0 + t, cc), cc)
    return y.reshape(x.shape)


@njit(cache=True)
def swiglu(gate, up, cc):
    g = gate.reshape(-1)
    u = up.reshape(-1)
    y = np.empty_like(g)
    for i in range(g.size):
        y[i] = apply(_silu(g[i], cc) * u[i], cc)
    return y.reshape(gate.shape)


@njit(cache=True)
def add(a, b, cc):
    fa = a.reshape(-1)
    fb = b.reshape(-1)
    y = np.empty_like(fa)
    for i in range(fa.size):
        y[i] = apply(fa[i] + fb[i], cc)
    return y.reshape(a.shape)


@njit(cache=True)
def combine(expert_out, weights, cc):
    """y[t] = sum_j w[t, j] * out[t, j], products and sums rounded in order j = 0, 1, ..."""
    t_len, k, d = expert_out.shape
    y = np.zeros((t_len, d))
    for t in range(t_len):
        for e in range(d):
            s = 0.0
            for j in range(k):
                p = apply(weights[t, j] * expert_out[t, j, e], cc)
                s = p if j == 0 else apply(s + p, cc)
            y[t, e] = s
    return y


ACTIVATIONS = {"silu": 0, "gelu": 1, "gelu_tanh": 1, "relu": 2, "gelu_erf": 3, "relu2": 4}
