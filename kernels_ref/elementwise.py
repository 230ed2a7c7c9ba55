"""Normalisations, activations, softmax and rotary embeddings in float64 (numba).

Rows are the last axis: callers pass ``[rows, width]`` arrays (reshape first).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@njit(cache=True)
def layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) * gamma + beta per row; var is the biased (1/n) variance,
    computed in a second pass over the centred values."""
    rows, n = x.shape
    y = np.empty_like(x)
    for r in range(rows):
        mu = 0.0
        for j in range(n):
            mu += x[r, j]
        mu /= n
        var = 0.0
        for j in range(n):
            d = x[r, j] - mu
            var += d * d
        rstd = 1.0 / math.sqrt(var / n + eps)
        for j in range(n):
            y[r, j] = (x[r, j] - mu) * rstd * gamma[j] + beta[j]
    return y


@njit(cache=True)
def rmsnorm(x: np.ndarray, gamma: np.ndarray, eps: float) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) * gamma per row (Zhang & Sennrich 2019; Llama)."""
    rows, n = x.shape
    y = np.empty_like(x)
    for r in range(rows):
        ss = 0.0
        for j in range(n):
            ss += x[r, j] * x[r, j]
        rstd = 1.0 / math.sqrt(ss / n + eps)
        for j in range(n):
            y[r, j] = x[r, j] * rstd * gamma[j]
    return y


@njit(cache=True)
def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (GPT-2's GELU)."""
    flat = x.reshape(-1)
    y = np.empty_like(flat)
    for i in range(flat.size):
        v = flat[i]
        y[i] = 0.5 * v * (1.0 + math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)))
    return y.reshape(x.shape)


@njit(cache=True)
def gelu_erf(x: np.ndarray) -> np.ndarray:
    """x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (the exact GELU)."""
    flat = x.reshape(-1)
    y = np.empty_like(flat)
    for i in range(flat.size):
        v = flat[i]
        y[i] = 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))
    return y.reshape(x.shape)


@njit(cache=True)
def silu(x: np.ndarray) -> np.ndarray:
    """x * sigmoid(x)."""
    flat = x.reshape(-1)
    y = np.empty_like(flat)
    for i in range(flat.size):
        v = flat[i]
        y[i] = v / (1.0 + math.exp(-v))
    return y.reshape(x.shape)


@njit(cache=True)
def relu(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(-1)
    y = np.empty_like(flat)
    for i in range(flat.size):
        y[i] = flat[i] if flat[i] > 0.0 else 0.0
    return y.reshape(x.shape)


@njit(cache=True)
def relu2(x: np.ndarray) -> np.ndarray:
    """relu(x)^2 (squared ReLU, So et al. 2021; Nemotron's MLP)."""
    flat = x.reshape(-1)
    y = np.empty_like(flat)
    for i in range(flat.size):
        y[i] = flat[i] * flat[i] if flat[i] > 0.0 else 0.0
    return y.reshape(x.shape)


@njit(cache=True)
def swiglu(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """silu(gate) * up (Shazeer 2020; Llama's MLP)."""
    g = gate.reshape(-1)
    u = up.reshape(-1)
    y = np.empty_like(g)
    for i in range(g.size):
        v = g[i]
        y[i] = v / (1.0 + math.exp(-v)) * u[i]
    return y.reshape(gate.shape)


def activation(name: str, x: np.ndarray) -> np.ndarray:
    """Apply the activation called ``name`` (gelu = tanh form, gelu_erf, silu, relu, relu2)."""
    fn = {"gelu": gelu_tanh, "gelu_tanh": gelu_tanh, "gelu_erf": gelu_erf, "silu": silu,
          "relu": relu, "relu2": relu2}.get(name)
    if fn is None:
        raise ValueError(f"unknown activation '{name}'")
    return fn(np.ascontiguousarray(x, dtype=np.float64))


@njit(parallel=True, cache=True)
def softmax_naive(x: np.ndarray) -> np.ndarray:
    """Three passes per row: max, sum of exp(x - max), divide. ``-inf`` entries get 0. Rows
    run in parallel."""
    rows, n = x.shape
    y = np.empty_like(x)
    for r in prange(rows):
        m = -np.inf
        for j in range(n):
            m = max(m, x[r, j])
        s = 0.0
        for j in range(n):
            e = math.exp(x[r, j] - m)
            y[r, j] = e
            s += e
        for j in range(n):
            y[r, j] /= s
    return y


ONLINE_BLOCK = 64


@njit(parallel=True, cache=True)
def softmax_online(x: np.ndarray) -> np.ndarray:
    """Online normaliser (Milakov & Gimelshein 2018), in blocks of ``ONLINE_BLOCK``: one pass
    keeps the running max m and running sum d; when a block raises the max, d is rescaled by
    exp(m_old - m_new). Each exp(x - m) is stored against the max current at its block, so the
    second pass only multiplies each block by exp(m_block - m) / d."""
    rows, n = x.shape
    y = np.empty_like(x)
    blocks = (n + ONLINE_BLOCK - 1) // ONLINE_BLOCK
    for r in prange(rows):  # rows in parallel
        ref = np.empty(blocks)
        m = -np.inf
        d = 0.0
        for bi in range(blocks):
            j0 = bi * ONLINE_BLOCK
            j1 = min(n, j0 + ONLINE_BLOCK)
            bm = -np.inf
            for j in range(j0, j1):
                bm = max(bm, x[r, j])
            if bm > m:
                d = d * math.exp(m - bm) if m > -np.inf else 0.0
                m = bm
            ref[bi] = m
            if m == -np.inf:  # everything so far is masked out
                for j in range(j0, j1):
                    y[r, j] = 0.0
                continue
            s = 0.0
            for j in range(j0, j1):
                e = math.exp(x[r, j] - m)
                y[r, j] = e
                s += e
            d += s
        for bi in range(blocks):
            j0 = bi * ONLINE_BLOCK
            scale = math.exp(ref[bi] - m) / d
            for j in range(j0, min(n, j0 + ONLINE_BLOCK)):
                y[r, j] *= scale
    return y


def rope_tables(positions: np.ndarray, dim: int, base: float = 10000.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [T, dim/2] of angle pos * base^(-2i/dim) (Su et al. 2021, RoFormer)."""
    inv = base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    ang = np.asarray(positions, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(ang), np.sin(ang)


@njit(cache=True)
def rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotary embedding, rotate-half layout (GPT-NeoX / Hugging Face Llama): for x [T, H, d]
    and pairs (i, i + d/2): y_i = x_i cos - x_{i+d/2} sin, y_{i+d/2} = x_{i+d/2} cos + x_i sin."""
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
                y[t, h, i] = a * c - b * s
                y[t, h, i + half] = b * c + a * s
    return y
