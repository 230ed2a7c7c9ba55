"""Low-bit weight and KV-cache formats, in float64: N:M structured pruning and its compressed
storage, and per-token group quantization of a KV cache.

Weights are [K, N] with the reduction rank first (as :func:`kernels_ref.dtypes.
quantize_weights`). N:M sparsity keeps ``n`` of every ``m`` consecutive K positions of a column;
the compressed form stores the kept values [K n/m, N] and their positions 0..m-1 inside the
group (NVIDIA's 2:4 layout: two 2-bit indices per group of four). A group with fewer than ``n``
non-zeros stores zeros at unused positions. KV quantization: one scale per token per ``group``
consecutive elements of the head dimension, scale = max|x| / qmax, values RNE and saturated.
"""

from __future__ import annotations

import numpy as np

from kernels_ref.dtypes import IntFormat, get_format, quantize


def prune_n_m(w: np.ndarray, n: int = 2, m: int = 4) -> np.ndarray:
    """``w`` [K, N] with all but the ``n`` largest-magnitude of every ``m`` consecutive rows of
    each column set to zero (ties: the lower row wins). K must be a multiple of ``m``."""
    w = np.asarray(w, dtype=np.float64)
    k, cols = w.shape
    if k % m or not 0 < n < m:
        raise ValueError(f"prune_n_m: K={k} must be a multiple of m={m}, 0 < n={n} < m")
    g = w.reshape(k // m, m, cols)
    order = np.argsort(-np.abs(g), axis=1, kind="stable")   # largest first, lower row on ties
    keep = np.zeros_like(g, dtype=bool)
    np.put_along_axis(keep, order[:, :n, :], True, axis=1)
    return np.where(keep, g, 0.0).reshape(k, cols)


def compress_n_m(w: np.ndarray, n: int = 2, m: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(values [K n/m, N], positions [K n/m, N] in 0..m-1) of an N:M-sparse ``w`` [K, N];
    raise ``ValueError`` when a group holds more than ``n`` non-zeros."""
    w = np.asarray(w, dtype=np.float64)
    k, cols = w.shape
    if k % m:
        raise ValueError(f"compress_n_m: K={k} is not a multiple of m={m}")
    g = w.reshape(k // m, m, cols)
    nz = g != 0
    if (nz.sum(axis=1) > n).any():
        raise ValueError(f"compress_n_m: a group of {m} holds more than {n} non-zeros")
    # kept positions: the non-zeros in row order, padded with the lowest zero positions
    rank = np.argsort(~nz, axis=1, kind="stable")[:, :n, :]
    pos = np.sort(rank, axis=1)
    vals = np.take_along_axis(g, pos, axis=1)
    return vals.reshape(k // m * n, cols), pos.reshape(k // m * n, cols).astype(np.int64)


def decompress_n_m(values: np.ndarray, positions: np.ndarray, n: int = 2,
                   m: int = 4) -> np.ndarray:
    """The dense [K, N] matrix of a compressed N:M one."""
    kept, cols = values.shape
    groups = kept // n
    out = np.zeros((groups, m, cols))
    np.put_along_axis(out, positions.reshape(groups, n, cols),
                      values.reshape(groups, n, cols), axis=1)
    return out.reshape(groups * m, cols)


def quantize_kv(x: np.ndarray, dtype: str = "int4", group: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per-token group quantization of ``x`` [..., d]: (integer values [..., d] in float64,
    scales [..., ceil(d / group)]); ``group`` 0 = one scale per token."""
    fmt = get_format(dtype)
    if not isinstance(fmt, IntFormat):
        raise ValueError(f"quantize_kv needs an integer dtype, got '{dtype}'")
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[-1]
    g = group or d
    groups = -(-d // g)
    pad = groups * g - d
    xp = np.concatenate([x, np.zeros((*x.shape[:-1], pad))], axis=-1) if pad else x
    xg = xp.reshape(*x.shape[:-1], groups, g)
    amax = np.abs(xg).max(axis=-1)
    scales = np.where(amax > 0, amax / fmt.hi, 1.0)
    q = quantize(xg / scales[..., None], dtype, saturate=True)
    return q.reshape(*x.shape[:-1], groups * g)[..., :d], scales


def dequantize_kv(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """float64 ``q x scale`` of :func:`quantize_kv` (exact products)."""
    d = q.shape[-1]
    g = -(-d // scales.shape[-1])
    return q * np.repeat(scales, g, axis=-1)[..., :d]
