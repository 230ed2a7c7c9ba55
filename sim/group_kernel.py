"""Groups of equal rows in one pass (numba): the run report's roofline points, and which
labels a text column's codes use.

A roofline point is one distinct (key, FLOPs, bytes, shards, time) among the ops whose FLOPs,
bytes and time are all > 0 (:mod:`sim.report.rollups`). A 2,048-token pipeline run has ~10M
ops and a few thousand points: an open-addressing table of group numbers, probed once per
row, replaces several numpy passes over every column (~0.1 s instead of ~1.2 s for 10M rows).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim import compensated

#: a float64's bits above this are NaNs (sign clear); 0 is +0.0, >= 2**63 negative
_POSITIVE_MAX = np.uint64(0x7FF0000000000000)
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_SHIFT = np.uint64(29)
#: point_groups remembers each code's last group where the rows are at least this many
#: times the codes (a table of per-kind values); per-row columns (``by`` the row numbers) not
_CODES_PER_ROW = 4


#: :func:`sim.compensated.compensated_sums` compiled (the report's transfer-table sums)
compensated_sums = njit(cache=True, error_model="numpy")(compensated.compensated_sums)


@njit(cache=True, error_model="numpy")
def used_labels(codes, used):
    """``used[c]``: some entry of ``codes`` is ``c`` (``used`` as long as the labels the
    codes index; one pass, where ``np.bincount`` makes two and counts)."""
    used[:] = False
    for c in codes:
        used[c] = True


@njit(cache=True, error_model="numpy")
def lut_key(key, card, codes, lut, out):
    """``out[i] = key[i] * card + lut[codes[i]]`` (``key`` empty: ``lut[codes[i]]``): a
    mixed-radix key grown by a text column's codes through its label lookup table."""
    if len(key):
        for i in range(len(codes)):
            out[i] = key[i] * card + lut[codes[i]]
    else:
        for i in range(len(codes)):
            out[i] = lut[codes[i]]


@njit(cache=True, error_model="numpy")
def offset_key(key, card, values, lo, out):
    """``out[i] = key[i] * card + values[i] - lo``: a mixed-radix key grown by an integer
    column whose values span ``card`` from ``lo``."""
    for i in range(len(values)):
        out[i] = key[i] * card + (values[i] - lo)


@njit(cache=True, error_model="numpy")
def first_groups(key, table, ids, first):
    """``ids[i]``: the group of key ``key[i]`` (in ``range(len(table))``), numbered in order
    of first appearance (``ids`` empty: not written - only the groups' first rows wanted, e.g.
    a run's op kinds in the order they first occur); ``first[g]``: group ``g``'s first row;
    ``table``: scratch. The number of groups."""
    table[:] = -1
    n_groups = 0
    write = len(ids) > 0
    for i in range(len(key)):
        g = table[key[i]]
        if g < 0:
            g = n_groups
            table[key[i]] = g
            first[g] = i
            n_groups += 1
        if write:
            ids[i] = g
    return n_groups


@njit(cache=True, error_model="numpy")
def distinct_marked(values, mask, lo, seen):
    """``seen[v - lo]``: some row with ``mask`` holds the value ``v`` (``seen`` spans the
    values from ``lo``): the distinct values of the marked rows without gathering them."""
    seen[:] = False
    for i in range(len(values)):
        if mask[i]:
            seen[values[i] - lo] = True


@njit(cache=True, error_model="numpy")
def row_sums(ids, a, b, c, d, k, out, count):
    """``out[j, ids[i]] += col_j[i]`` for the first ``k`` (0-4) of the per-row columns ``a``,
    ``b``, ``c``, ``d`` and ``count[ids[i]] += 1``, row by row: ``np.bincount(ids,
    weights=col_j)`` and ``np.bincount(ids)`` (the same additions in the same order) in one
    pass over ``ids`` (columns past ``k`` are not read)."""
    for i in range(len(ids)):
        g = ids[i]
        count[g] += 1
        if k > 0:
            out[0, g] += a[i]
        if k > 1:
            out[1, g] += b[i]
        if k > 2:
            out[2, g] += c[i]
        if k > 3:
            out[3, g] += d[i]


@njit(cache=True, error_model="numpy")
def group_sums(ids, values, by, out):
    """``out[ids[i], j] += values[by[i], j]`` row by row, for every column ``j`` of
    ``values`` at once: ``np.bincount(ids, weights=values[:, j][by])`` per ``j`` (the same
    additions in the same order) without the gathered columns, reading ``ids`` and ``by``
    once; a code's values and a group's sums are each one row (one cache line for up to 8
    columns: ~1.7x faster than a row per column on a 9.9M-op run's 7 columns)."""
    k = values.shape[1]
    for i in range(len(ids)):
        g, c = ids[i], by[i]
        for j in range(k):
            out[g, j] += values[c, j]


@njit(cache=True, error_model="numpy")
def point_groups(key, flops, nbytes, shards, by, time, table, first, count):
    """Group the rows whose FLOPs, bytes and ``time`` are > 0 by the equal 64 bits of
    ``key``, FLOPs, bytes, ``time`` (uint64 views: the floats' bits, the key's) and the equal
    shards (int64), numbered in order of first appearance. FLOPs, bytes and shards are
    per-code values gathered by ``by`` (row ``i``'s are ``flops[by[i]]``, ...: columns that
    are one value per op kind, read through the kinds, or per-row columns with ``by`` the
    row numbers). ``table``: int64, a power of two long, filled with -1 (group numbers by
    hash slot); ``first[g]``, ``count[g]``: group ``g``'s first row and how many rows it
    holds (capacity ``len(first)``). The number of groups, or -1 where more groups than that
    capacity or than half the table come up (the caller retries larger).

    Where the codes are few against the rows (a run's op kinds: each recurs step after step
    with the same time and key), each code remembers the group, time and key of its last
    hashed row: a row of that code with that time and key is in that group (its FLOPs,
    bytes and shards are the code's), counted without hashing (~4x less time on a 10M-op
    table of 6k kinds); any other row is hashed as above."""
    mask = np.uint64(len(table) - 1)
    cap = min(len(first), len(table) // 2)
    n_groups = 0
    codes = len(flops) if len(flops) * _CODES_PER_ROW <= len(key) else 0
    last_group = np.full(codes, -1, dtype=np.int64)
    last_time = np.empty(codes, dtype=np.uint64)
    last_key = np.empty(codes, dtype=np.uint64)
    for i in range(len(key)):
        c = by[i]
        t = time[i]
        if codes:
            g = last_group[c]
            if g >= 0 and last_time[c] == t and last_key[c] == key[i]:
                count[g] += 1
                continue
        f, b = flops[c], nbytes[c]
        if f == 0 or f > _POSITIVE_MAX or b == 0 or b > _POSITIVE_MAX or \
                t == 0 or t > _POSITIVE_MAX:
            continue
        s = shards[c]
        h = key[i] * _M1
        for v in (f, b, np.uint64(s), t):
            h ^= v
            h *= _M2
            h ^= h >> _SHIFT
        slot = h & mask
        while True:
            g = table[slot]
            if g < 0:
                if n_groups == cap:
                    return -1
                g = n_groups
                table[slot] = g
                first[g] = i
                count[g] = 1
                n_groups += 1
                break
            r = first[g]
            cr = by[r]
            if key[r] == key[i] and flops[cr] == f and nbytes[cr] == b and \
                    shards[cr] == s and time[r] == t:
                count[g] += 1
                break
            slot = (slot + np.uint64(1)) & mask
        if codes:
            last_group[c], last_time[c], last_key[c] = g, t, key[i]
    return n_groups
