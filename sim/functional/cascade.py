"""The 1-pass attention cascade executed with a device's datatypes (FlashAttention-2 on GPUs,
FuseMax's cascade on spatial arrays).

For each query row, keys arrive in blocks of ``block``. Per block: scores are multiply-
accumulated with the QK accumulator (``qk_acc``, ``qk_blk`` products per rounding), scaled,
their block max LM taken; the running max RM becomes max(RM, LM), the correction factor
exp(RM_old - RM_new) rescales the running denominator RD and the running numerator RNV; the
block's probabilities exp(s - RM_new) are added to RD, rounded to ``p_code`` (GPUs feed P to
the second tensor-core MMA in the input datatype) and multiply-accumulated with V into RNV
(``pv_acc``, ``pv_blk`` keys per rounding). At the end RNV / RD. Every other intermediate is
rounded to the compute format ``cc``. ``rescale=False`` drops the correction factors (a wrong
cascade, for the check's mutation tests).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from sim.functional.formats import apply


@njit(parallel=True, cache=True)
def attention_1pass(q, k, v, scale, causal, block, qk_acc, qk_blk, cc, p_code, pv_acc, pv_blk,
                    rescale=True):
    heads, s_len, d = q.shape
    groups, n_len, _ = k.shape
    rep = heads // groups
    out = np.zeros((heads, s_len, d))
    for t in prange(heads * s_len):
        h = t // s_len
        i = t % s_len
        g = h // rep
        lim = i + n_len - s_len + 1 if causal else n_len
        rm = -np.inf
        rd = 0.0
        rnv = np.zeros(d)
        sc = np.empty(block)
        pq = np.empty(block)
        for j0 in range(0, lim, block):
            j1 = min(lim, j0 + block)
            lm = -np.inf
            for j in range(j0, j1):
                acc = 0.0
                for e0 in range(0, d, qk_blk):
                    s = 0.0
                    for e in range(e0, min(d, e0 + qk_blk)):
                        s += q[h, i, e] * k[g, j, e]
                    acc = apply(acc + s, qk_acc)
                z = apply(acc * scale, cc)
                sc[j - j0] = z
                if z > lm:
                    lm = z
            new = max(rm, lm)
            corr = apply(math.exp(apply(rm - new, cc)), cc) if rm > -np.inf else 0.0
            if not rescale:  # a broken cascade that forgets the correction (tests use this)
                corr = 1.0
            rd = apply(rd * corr, cc)
            for e in range(d):
                rnv[e] = apply(rnv[e] * corr, pv_acc)
            bs = 0.0
            for j in range(j1 - j0):
                p = apply(math.exp(apply(sc[j] - new, cc)), cc)
                bs = p if j == 0 else apply(bs + p, cc)
                pq[j] = apply(p, p_code)
            rd = apply(rd + bs, cc)
            for e in range(d):
                a = rnv[e]
                for jb in range(j0, j1, pv_blk):
                    s = 0.0
                    for j in range(jb, min(j1, jb + pv_blk)):
                        s += pq[j - j0] * v[g, j, e]
                    a = apply(a + s, pv_acc)
                rnv[e] = a
            rm = new
        for e in range(d):
            out[h, i, e] = apply(rnv[e] / rd, cc)
    return out
