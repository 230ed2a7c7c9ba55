"""The same operations written as plain float64 numpy expressions.

They are what the numba kernels are tested against, and the "numpy/BLAS" side of
``benchmarks/bench_kernels.py``. Nothing here is used by the simulator.
"""

from __future__ import annotations

import math

import numpy as np


def gemm(a, b):
    return a @ b


def layernorm(x, gamma, beta, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def rmsnorm(x, gamma, eps):
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * gamma


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def swiglu(gate, up):
    return silu(gate) * up


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def attention(q, k, v, scale, causal):
    """softmax(q k^T * scale + mask) v with grouped-query heads; q [H, S, d], k/v [G, N, d]."""
    heads, s_len, _ = q.shape
    groups, n_len, _ = k.shape
    kk = np.repeat(k, heads // groups, axis=0)
    vv = np.repeat(v, heads // groups, axis=0)
    s = np.einsum("hse,hne->hsn", q, kk) * scale
    if causal:
        i = np.arange(s_len)[:, None]
        j = np.arange(n_len)[None, :]
        s = np.where(j <= i + n_len - s_len, s, -np.inf)
    return np.einsum("hsn,hne->hse", softmax(s), vv)


def selective_scan(u, delta, a, b, c, d, z, delta_bias, delta_softplus):
    """Vectorised over batch and channels, sequential over time (the mamba_ssm reference)."""
    dt = delta + delta_bias[None, :, None]
    if delta_softplus:
        dt = np.where(dt > 20.0, dt, np.log1p(np.exp(np.minimum(dt, 20.0))))
    bsz, dim, length = u.shape
    h = np.zeros((bsz, dim, a.shape[1]))
    ys = []
    for t in range(length):
        da = np.exp(dt[:, :, t, None] * a[None])
        h = da * h + dt[:, :, t, None] * b[:, None, :, t] * u[:, :, t, None]
        ys.append(np.einsum("bdn,bn->bd", h, c[:, :, t]))
    y = np.stack(ys, axis=-1) + d[None, :, None] * u
    if z.size:
        y = y * z / (1.0 + np.exp(-z))
    return y


def moe_ffn_dense(x, idx, weights, w_up, w_down, act="swiglu"):
    """Every token through every chosen expert, one token at a time (no dispatch)."""
    out = np.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(idx.shape[1]):
            e = idx[t, j]
            h = x[t] @ w_up[e]
            if act == "swiglu":
                f = h.shape[0] // 2
                h = silu(h[:f]) * h[f:]
            elif act == "relu":
                h = np.maximum(h, 0.0)
            else:
                h = gelu_tanh(h)
            out[t] += weights[t, j] * (h @ w_down[e])
    return out
