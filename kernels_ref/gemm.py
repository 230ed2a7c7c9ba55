"""GEMM, batched GEMM, GEMV and weight-only quantized GEMM in float64.

``gemm_naive`` is the definition (three loops, k innermost). ``gemm`` computes the same sums,
blocked for speed: output tiles run in parallel, four rows at a time sweep a packed chunk of B
four k-steps at a time (register blocking), so LLVM vectorises over columns. Every kernel takes
C-contiguous float64 arrays (B may be float32: it is widened as it is packed); results are
float64 sums whose only error is float64 rounding (at most ``K * 2^-53 * sum|a*b|``,
negligible next to any datatype we check).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from kernels_ref.dtypes import dequantize_weights

TILE_M = 64
TILE_N = 256
CHUNK_K = 128


@njit(cache=True)
def gemm_naive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C[m, n] = sum_k A[m, k] B[k, n], three plain loops."""
    m, k = a.shape
    n = b.shape[1]
    c = np.zeros((m, n))
    for i in range(m):
        for j in range(n):
            s = 0.0
            for kk in range(k):
                s += a[i, kk] * b[kk, j]
            c[i, j] = s
    return c


@njit(cache=True, inline="always")
def mac_rows4(c0, c1, c2, c3, ra, rb, rc, rd, bc, k0, kb, w):
    """c0..c3[:w] += rows ra..rd[k0:k0+kb] times the packed B chunk bc[:kb, :w]: four k-steps
    per sweep over the columns (register blocking; LLVM vectorises the column loop). Shared
    with the functional executor, which rounds the rows after each call."""
    q = 0
    while q + 4 <= kb:
        t = k0 + q
        x0, x1, x2, x3 = ra[t], ra[t + 1], ra[t + 2], ra[t + 3]
        y0, y1, y2, y3 = rb[t], rb[t + 1], rb[t + 2], rb[t + 3]
        z0, z1, z2, z3 = rc[t], rc[t + 1], rc[t + 2], rc[t + 3]
        u0, u1, u2, u3 = rd[t], rd[t + 1], rd[t + 2], rd[t + 3]
        b0, b1, b2, b3 = bc[q], bc[q + 1], bc[q + 2], bc[q + 3]
        for j in range(w):
            v0, v1, v2, v3 = b0[j], b1[j], b2[j], b3[j]
            c0[j] = c0[j] + x0 * v0 + x1 * v1 + x2 * v2 + x3 * v3
            c1[j] = c1[j] + y0 * v0 + y1 * v1 + y2 * v2 + y3 * v3
            c2[j] = c2[j] + z0 * v0 + z1 * v1 + z2 * v2 + z3 * v3
            c3[j] = c3[j] + u0 * v0 + u1 * v1 + u2 * v2 + u3 * v3
        q += 4
    while q < kb:
        t = k0 + q
        x0, y0, z0, u0 = ra[t], rb[t], rc[t], rd[t]
        b0 = bc[q]
        for j in range(w):
            c0[j] += x0 * b0[j]
            c1[j] += y0 * b0[j]
            c2[j] += z0 * b0[j]
            c3[j] += u0 * b0[j]
        q += 1


@njit(cache=True)
def _tile(a, b, c, i0, i1, j0, j1):
    """c[i0:i1, j0:j1] += a[i0:i1, :] @ b[:, j0:j1]: four rows x four k-steps per sweep over a
    packed chunk of B (LLVM vectorises the column loop)."""
    k = a.shape[1]
    w = j1 - j0
    bc = np.empty((CHUNK_K, w))
    zero = np.zeros(k)
    spare = np.empty((3, w))
    for k0 in range(0, k, CHUNK_K):
        kb = min(CHUNK_K, k - k0)
        for kk in range(kb):
            for j in range(w):
                bc[kk, j] = b[k0 + kk, j0 + j]
        for i in range(i0, i1, 4):
            ra = a[i]
            rb = a[i + 1] if i + 1 < i1 else zero
            rc = a[i + 2] if i + 2 < i1 else zero
            rd = a[i + 3] if i + 3 < i1 else zero
            c0 = c[i, j0:j1]
            c1 = c[i + 1, j0:j1] if i + 1 < i1 else spare[0]
            c2 = c[i + 2, j0:j1] if i + 2 < i1 else spare[1]
            c3 = c[i + 3, j0:j1] if i + 3 < i1 else spare[2]
            mac_rows4(c0, c1, c2, c3, ra, rb, rc, rd, bc, k0, kb, w)


@njit(parallel=True, cache=True)
def gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C = A @ B for A [M, K], B [K, N] (float64, blocked and parallel)."""
    m = a.shape[0]
    n = b.shape[1]
    c = np.zeros((m, n))
    tm = (m + TILE_M - 1) // TILE_M
    tn = (n + TILE_N - 1) // TILE_N
    for t in prange(tm * tn):
        i0 = (t // tn) * TILE_M
        j0 = (t % tn) * TILE_N
        _tile(a, b, c, i0, min(m, i0 + TILE_M), j0, min(n, j0 + TILE_N))
    return c


@njit(parallel=True, cache=True)
def batched_gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C[x] = A[x] @ B[x] for A [X, M, K], B [X, K, N]."""
    nb, m, _ = a.shape
    n = b.shape[2]
    c = np.zeros((nb, m, n))
    tm = (m + TILE_M - 1) // TILE_M
    tn = (n + TILE_N - 1) // TILE_N
    per = tm * tn
    for t in prange(nb * per):
        x = t // per
        r = t % per
        i0 = (r // tn) * TILE_M
        j0 = (r % tn) * TILE_N
        _tile(a[x], b[x], c[x], i0, min(m, i0 + TILE_M), j0, min(n, j0 + TILE_N))
    return c


GEMV_CHUNKS = 8


@njit(parallel=True, cache=True)
def gemv(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """y[n] = sum_k x[k] W[k, n]: ``GEMV_CHUNKS`` contiguous ranges of k stream their rows of W
    in parallel into private partial sums, which are then added in chunk order."""
    k, n = w.shape
    chunks = min(GEMV_CHUNKS, k)
    part = np.zeros((chunks, n))
    step = (k + chunks - 1) // chunks
    for c in prange(chunks):
        p = part[c]
        kk = c * step
        end = min(k, (c + 1) * step)
        while kk + 4 <= end:  # four rows of W per sweep over p
            x0, x1, x2, x3 = x[kk], x[kk + 1], x[kk + 2], x[kk + 3]
            r0, r1, r2, r3 = w[kk], w[kk + 1], w[kk + 2], w[kk + 3]
            for j in range(n):
                p[j] = p[j] + x0 * r0[j] + x1 * r1[j] + x2 * r2[j] + x3 * r3[j]
            kk += 4
        while kk < end:
            xv = x[kk]
            row = w[kk]
            for j in range(n):
                p[j] += xv * row[j]
            kk += 1
    y = np.zeros(n)
    for c in range(chunks):
        for j in range(n):
            y[j] += part[c, j]
    return y


def weight_only_gemm(x: np.ndarray, q: np.ndarray, scales: np.ndarray,
                     group: int = 0) -> np.ndarray:
    """Y = X @ (Q * scales) with integer weights ``q`` [K, N] and per-channel ([1, N]) or
    per-group ([ceil(K/group), N]) scales, in float64 (the dequantized weights are exact there)."""
    return gemm(np.ascontiguousarray(x, dtype=np.float64), dequantize_weights(q, scales, group))


def int_gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer GEMM (int8 x int8 -> int64-exact sums) for integer-valued float64 inputs
    whose sums stay below 2^53, as every int8/int4 GEMM of a transformer does."""
    return gemm(np.ascontiguousarray(a, dtype=np.float64),
                np.ascontiguousarray(b, dtype=np.float64))
