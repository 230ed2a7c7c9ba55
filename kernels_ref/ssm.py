"""The Mamba selective scan in float64 (Gu & Dao 2023, Algorithm 2; the recurrence of
``selective_scan_ref`` in the mamba_ssm package)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _softplus(x):
    return x if x > 20.0 else math.log1p(math.exp(x))


def selective_scan(u, delta, a, b, c, d, z, delta_bias, delta_softplus):
    """u, delta, z [B, D, L]; a [D, N]; b, c [B, N, L]; d, delta_bias [D].

    For each channel: dt = softplus(delta + bias) (if ``delta_softplus``),
    h_t = exp(dt_t a) * h_{t-1} + dt_t b_t u_t, y_t = <c_t, h_t> + d u_t, and y *= silu(z) when
    ``z`` has a non-zero size; the state starts at zero. Returns y [B, D, L].
    """
    h0 = np.zeros((u.shape[0], u.shape[1], a.shape[1]))
    return selective_scan_state(u, delta, a, b, c, d, z, delta_bias, delta_softplus, h0)[0]


@njit(parallel=True, cache=True)
def selective_scan_state(u, delta, a, b, c, d, z, delta_bias, delta_softplus, h0):
    """:func:`selective_scan` from the initial state ``h0`` [B, D, N] (a decode step carries
    the state of the tokens before it). Returns (y [B, D, L], the last state [B, D, N])."""
    bsz, dim, length = u.shape
    n = a.shape[1]
    y = np.empty((bsz, dim, length))
    last = np.empty((bsz, dim, n))
    gate = z.size > 0
    for t in prange(bsz * dim):
        bi = t // dim
        ch = t % dim
        h = h0[bi, ch].copy()
        for s in range(length):
            dt = delta[bi, ch, s] + delta_bias[ch]
            if delta_softplus:
                dt = _softplus(dt)
            x = u[bi, ch, s]
            acc = 0.0
            for k in range(n):
                h[k] = math.exp(dt * a[ch, k]) * h[k] + dt * b[bi, k, s] * x
                acc += c[bi, k, s] * h[k]
            out = acc + d[ch] * x
            if gate:
                zz = z[bi, ch, s]
                out *= zz / (1.0 + math.exp(-zz))
            y[bi, ch, s] = out
        last[bi, ch] = h
    return y, last
