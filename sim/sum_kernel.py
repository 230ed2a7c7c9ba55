"""numpy's sum of a gathered column, bit for bit, without gathering it (numba).

A run's per-kind columns (FLOPs, bytes, energies) are ``values[by]``: one value per op kind
gathered by each op's kind code. Their whole-run totals must be ``values[by].sum()`` to the
last bit (the metrics and checks compare them with sums over the formed columns), and numpy
sums a contiguous float64 array as ``0.0 + pairwise(x)``: ``pairwise`` splits ``n`` rows at
``n // 2`` rounded down to a multiple of 8 down to blocks of at most 128 rows, each summed by
eight accumulators in turn, then ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))`` and
the rows past the last multiple of 8 one by one; under 8 rows, one by one from 0.0 (numpy
2.x, ``loops_utils.h``: ``pairwise_sum``). :func:`sim.columns.gathered_sum` sums a long
column in leaves of ``LEAF`` rows, split the same way, each leaf as numpy sums the leaf;
:func:`gathered_pairwise` does the same additions reading ``values[by[i]]`` in place, where
the Python version gathers each leaf into a buffer first (~2x the time: 7 columns of a
9.9M-op run in 0.08 instead of 0.16 s). Whether numpy still sums so is checked once per
process before it is used (:func:`sim.columns.gathered_sum`).

:func:`load_sums` adds each row's tuple of link loads to its resources' running sums, row
by row: the floats a ``+=`` loop over the rows gives, every resource in one pass (a system
run's routed bytes, :func:`sim.system.grouped_loads.sums_in_order`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: numpy's pairwise_sum sums blocks of at most this many rows with eight accumulators
BLOCK = 128
#: a node of the split below: not yet split, its first half pushed, its second half pushed,
#: a leaf whose pairwise sum is pushed
_NEW, _FIRST, _SECOND, _LEAF = 0, 1, 2, 3


@njit(cache=True, error_model="numpy")
def _block(values, by, lo, n):
    """numpy's pairwise_sum of ``values[by[lo:lo + n]]`` for ``n`` <= :data:`BLOCK`."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += values[by[i]]
        return res
    r0 = values[by[lo]]
    r1 = values[by[lo + 1]]
    r2 = values[by[lo + 2]]
    r3 = values[by[lo + 3]]
    r4 = values[by[lo + 4]]
    r5 = values[by[lo + 5]]
    r6 = values[by[lo + 6]]
    r7 = values[by[lo + 7]]
    stop = lo + n - n % 8
    i = lo + 8
    while i < stop:
        r0 += values[by[i]]
        r1 += values[by[i + 1]]
        r2 += values[by[i + 2]]
        r3 += values[by[i + 3]]
        r4 += values[by[i + 4]]
        r5 += values[by[i + 5]]
        r6 += values[by[i + 6]]
        r7 += values[by[i + 7]]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < lo + n:
        res += values[by[i]]
        i += 1
    return res


@njit(cache=True, error_model="numpy")
def gathered_pairwise(values, by, lo, n, leaf):
    """``values[by[lo:lo + n]]`` summed as :func:`sim.columns._pairwise` sums it (leaves of
    at most ``leaf`` rows, each ``0.0 +`` numpy's pairwise sum of it), by an explicit stack
    of the split's nodes (one per level: ~log2(n / 128) + 2, so 128 entries are ample)."""
    cap = 128
    s_lo = np.empty(cap, dtype=np.int64)
    s_n = np.empty(cap, dtype=np.int64)
    s_top = np.empty(cap, dtype=np.bool_)   # above the leaves (split until <= leaf rows)
    s_state = np.empty(cap, dtype=np.int64)
    s_first = np.empty(cap)                 # a split node's first half's sum
    s_lo[0], s_n[0], s_top[0], s_state[0] = lo, n, True, _NEW
    sp = 1
    got = 0.0   # the sum of the node last finished
    while sp > 0:
        t = sp - 1
        m = s_n[t]
        if s_top[t] and m <= leaf:   # a leaf: 0.0 + its pairwise sum
            if s_state[t] == _NEW:
                s_state[t] = _LEAF
                s_lo[sp], s_n[sp], s_top[sp], s_state[sp] = s_lo[t], m, False, _NEW
                sp += 1
                continue
            got = 0.0 + got
        elif not s_top[t] and m <= BLOCK:
            got = _block(values, by, s_lo[t], m)
        else:
            h = m // 2
            h -= h % 8
            if s_state[t] == _NEW:
                s_state[t] = _FIRST
                s_lo[sp], s_n[sp], s_top[sp], s_state[sp] = s_lo[t], h, s_top[t], _NEW
                sp += 1
                continue
            if s_state[t] == _FIRST:
                s_first[t] = got
                s_state[t] = _SECOND
                s_lo[sp], s_n[sp], s_top[sp], s_state[sp] = s_lo[t] + h, m - h, s_top[t], _NEW
                sp += 1
                continue
            got = s_first[t] + got
        sp -= 1
    return got


@njit(cache=True, error_model="numpy")
def load_sums(code, ptr, res, nb, sums):
    """Add, row by row, row ``i``'s loads - ``res[q]`` / ``nb[q]`` (B) for ``q`` in
    ``ptr[code[i]]:ptr[code[i] + 1]``, in that order - to ``sums[res[q]]``."""
    for i in range(len(code)):
        c = code[i]
        for q in range(ptr[c], ptr[c + 1]):
            sums[res[q]] += nb[q]
