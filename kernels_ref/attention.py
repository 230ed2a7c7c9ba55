"""Attention in float64 as the cascades FuseMax (Nayak et al., MICRO 2024, §III) distinguishes.

All take q [H, S, d], k and v [G, N, d] (grouped-query attention: query head h reads KV head
h // (H / G)), a score scale and an optional causal mask in which query i (the i-th of the last
S positions) sees keys j <= i + N - S. They differ in how many passes they take over the key
rank N:

* ``attention_3pass`` (PyTorch eager, FLAT): scores and their max; exp and sum; normalise and
  multiply by V.
* ``attention_2pass``: one pass for the running max and the rescaled denominator, a second that
  recomputes the scores and accumulates normalised probabilities times V.
* ``attention_1pass`` (FlashAttention-2, FuseMax): blocks of ``block`` keys, running max RM,
  running denominator RD and running numerator RNV, both rescaled by exp(RM_old - RM_new) when
  the max grows; the division happens once at the end.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _limit(i, s_len, n_len, causal):
    return i + n_len - s_len + 1 if causal else n_len


@njit(cache=True)
def _dot(q, k, i, j):
    s = 0.0
    for e in range(q.shape[1]):
        s += q[i, e] * k[j, e]
    return s


@njit(parallel=True, cache=True)
def attention_3pass(q, k, v, scale, causal):
    heads, s_len, d = q.shape
    groups, n_len, _ = k.shape
    rep = heads // groups
    out = np.zeros((heads, s_len, d))
    for t in prange(heads * s_len):
        h = t // s_len
        i = t % s_len
        g = h // rep
        lim = _limit(i, s_len, n_len, causal)
        sc = np.empty(lim)
        m = -np.inf
        for j in range(lim):  # pass 1: scores and max
            sc[j] = _dot(q[h], k[g], i, j) * scale
            m = max(m, sc[j])
        den = 0.0
        for j in range(lim):  # pass 2: exp and sum
            sc[j] = math.exp(sc[j] - m)
            den += sc[j]
        for j in range(lim):  # pass 3: normalise, times V
            p = sc[j] / den
            for e in range(d):
                out[h, i, e] += p * v[g, j, e]
    return out


@njit(parallel=True, cache=True)
def attention_2pass(q, k, v, scale, causal):
    heads, s_len, d = q.shape
    groups, n_len, _ = k.shape
    rep = heads // groups
    out = np.zeros((heads, s_len, d))
    for t in prange(heads * s_len):
        h = t // s_len
        i = t % s_len
        g = h // rep
        lim = _limit(i, s_len, n_len, causal)
        m = -np.inf
        den = 0.0
        for j in range(lim):  # pass 1: running max and rescaled denominator
            s = _dot(q[h], k[g], i, j) * scale
            if s > m:
                den = den * math.exp(m - s) + 1.0
                m = s
            else:
                den += math.exp(s - m)
        for j in range(lim):  # pass 2: recompute scores, accumulate p * V
            p = math.exp(_dot(q[h], k[g], i, j) * scale - m) / den
            for e in range(d):
                out[h, i, e] += p * v[g, j, e]
    return out


@njit(parallel=True, cache=True)
def attention_1pass(q, k, v, scale, causal, block):
    heads, s_len, d = q.shape
    groups, n_len, _ = k.shape
    rep = heads // groups
    out = np.zeros((heads, s_len, d))
    for t in prange(heads * s_len):
        h = t // s_len
        i = t % s_len
        g = h // rep
        lim = _limit(i, s_len, n_len, causal)
        rm = -np.inf
        rd = 0.0
        rnv = np.zeros(d)
        sc = np.empty(block)
        for j0 in range(0, lim, block):
            j1 = min(lim, j0 + block)
            lm = -np.inf
            for j in range(j0, j1):
                sc[j - j0] = _dot(q[h], k[g], i, j) * scale
                lm = max(lm, sc[j - j0])
            new = max(rm, lm)
            corr = math.exp(rm - new) if rm > -np.inf else 0.0
            rd *= corr
            for e in range(d):
                rnv[e] *= corr
            for j in range(j0, j1):
                p = math.exp(sc[j - j0] - new)
                rd += p
                for e in range(d):
                    rnv[e] += p * v[g, j, e]
            rm = new
        for e in range(d):
            out[h, i, e] = rnv[e] / rd
    return out


def decode_attention(q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray,
                     lengths: np.ndarray, scale: float) -> np.ndarray:
    """One new token per request over its KV cache: q [B, H, d], caches [B, G, Nmax, d] of which
    the first ``lengths[b]`` positions are valid; grouped-query heads. Returns [B, H, d]."""
    b_len, heads, d = q.shape
    out = np.empty((b_len, heads, d))
    for b in range(b_len):
        n = int(lengths[b])
        kc = np.ascontiguousarray(k_cache[b, :, :n])
        vc = np.ascontiguousarray(v_cache[b, :, :n])
        out[b] = attention_3pass(np.ascontiguousarray(q[b][:, None, :]), kc, vc, scale,
                                 False)[:, 0, :]
    return out
