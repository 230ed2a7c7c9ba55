"""Compiled loops that write a long report's text: the CSV writer's rows
(:mod:`sim.report.csv_blocks`: floats as C's ``%.9g`` writes them, rows of int, float and text
fields joined into bytes) and the Chrome trace's op events (:mod:`sim.report.trace_text`:
starts as ``'%.4f'`` without trailing zeros).

A float's text is worked out from its nine significant digits ``N`` (``10**8 <= N < 10**9``)
and its decimal exponent ``X``: ``x * 10**(8 - X)`` is one correctly rounded multiplication
(or division) by an exact power of ten (``10**p``, ``p <= 22``), within half a unit in the
last place of the exact product, so rounding it to an integer gives the exact product's
rounding unless its fraction lies within two units of one half. Those values, values outside
``[1e-14, 1e22)``, infinities and subnormals are marked :data:`OTHER` and formatted by Python's
``%`` (``write_csv`` passes their text in); every other value's text is the C library's, digit
for digit (tests/test_text_kernel.py checks millions of values against ``%``). A start's four
decimals are worked out the same way (:func:`fixed4_digits`, tests/test_trace_text.py).

Built ahead of time by :mod:`sim.report.text_aot` (numba's ``pycc``), else run by numba's JIT.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.report.text_fields import (
    BYTES_KEY,
    DIGITS,
    DUR_KEY,
    EMPTY,
    FLOAT,
    FLOAT_WIDTH,
    HASH,
    INT,
    LAYER_KEY,
    LOG10_2,
    NEG_ZERO,
    OTHER,
    REPLICAS_KEY,
    SEEN,
    STEP_KEY,
    TID_KEY,
    TS_KEY,
    ZERO,
)

#: exact powers of ten (every one up to 10**22 is a double)
POW10 = np.array([10.0 ** k for k in range(23)])

@njit(cache=True, nogil=True)
def float_digits(values, bits, digits, exps, status, seen, seen_digits, seen_exps):
    """Per value of ``values`` (its bit pattern in ``bits``): its status (``status``) and, for
    :data:`DIGITS`, its nine significant digits (``digits``, negative for a negative value)
    and exponent (``exps``) as ``%.9g`` rounds it; how many are :data:`OTHER`. The digits of
    the last values met are kept by bit pattern (``seen``, :data:`SEEN` entries, ``NO_VALUE``
    where empty; ``seen_digits``, ``seen_exps``): a value met again is not worked out again."""
    others = 0
    for i in range(values.shape[0]):
        v = values[i]
        if v != v:
            status[i] = EMPTY
            continue
        if v == 0.0:
            status[i] = NEG_ZERO if math.copysign(1.0, v) < 0 else ZERO
            continue
        key = bits[i]
        h = ((key * HASH) >> 52) & (SEEN - 1)
        if seen[h] == key:
            status[i] = DIGITS
            digits[i] = seen_digits[h]
            exps[i] = seen_exps[h]
            continue
        n, e = _nine_digits(abs(v))
        if n < 0:
            status[i] = OTHER
            others += 1
            continue
        status[i] = DIGITS
        digits[i] = -n if v < 0 else n
        exps[i] = e
        seen[h] = key
        seen_digits[h] = digits[i]
        seen_exps[h] = e
    return others


@njit(cache=True, nogil=True)
def _nine_digits(x):
    """(N, X) of a positive ``x`` (see the module), or (-1, 0) where it is not certain."""
    if not (1e-14 <= x < 1e22):
        return -1, 0
    _, bits = math.frexp(x)   # x = m 2**bits, 0.5 <= m < 1: log10(x) within log10(2) of
    e = int(math.floor((bits - 1) * LOG10_2))   # (bits - 1) log10(2), at most one above it
    e = min(max(e, -14), 21)   # where X lies for x in range: p = 8 - e within 10**+-22
    y = 0.0
    for _ in range(3):
        p = 8 - e
        if p > 22 or p < -22:
            return -1, 0
        y = x * POW10[p] if p >= 0 else x / POW10[-p]
        if y < 1e8:
            e -= 1
        elif y >= 1e9:
            e += 1
        else:
            break
    if not (1e8 <= y < 1e9):
        return -1, 0
    whole = math.floor(y)
    frac = y - whole
    _, ex = math.frexp(y)
    ulp = math.ldexp(1.0, ex - 53)
    if abs(frac - 0.5) <= 2.0 * ulp:   # too near a tie to round from y
        return -1, 0
    n = int(whole) + (1 if frac > 0.5 else 0)
    if n == 1000000000:
        n = 100000000
        e += 1
    return n, e


@njit(cache=True, nogil=True)
def _put_uint(out, at, v):
    """Write the decimal digits of ``v`` >= 0 at ``out[at]``; the position after them."""
    if v == 0:
        out[at] = 48
        return at + 1
    k = 0
    t = v
    while t > 0:
        t //= 10
        k += 1
    end = at + k
    while v > 0:
        end -= 1
        q = v // 10
        out[end] = 48 + v - 10 * q
        v = q
    return at + k


@njit(cache=True, nogil=True)
def _put_int(out, at, v):
    """Write the decimal text of ``v`` (above the int64 minimum) at ``out[at]``; the
    position after it."""
    if v < 0:
        out[at] = 45   # '-'
        at += 1
        v = -v
    return _put_uint(out, at, v)


@njit(cache=True, nogil=True)
def _put_float(out, at, n, e):
    """``%.9g`` of the value with nine digits ``n`` (negative: a negative value) and
    exponent ``e`` at ``out[at]``; the position after it. The digits are first written
    where the field's last nine bytes may go (``at + 6``, up to ``at + 14``), then moved."""
    if n < 0:
        out[at] = 45   # '-'
        at += 1
        n = -n
    s = at + 6
    for k in range(8, -1, -1):
        q = n // 10
        out[s + k] = 48 + n - 10 * q
        n = q
    last = 8
    while last > 0 and out[s + last] == 48:   # trailing zeros dropped (no '#' flag)
        last -= 1
    if e < -4 or e >= 9:   # d.dddddddde+XX
        out[at] = out[s]
        if last == 0:
            at += 1
        else:
            out[at + 1] = 46   # '.'
            for k in range(1, last + 1):   # (moved left: s + k > at + 1 + k)
                out[at + 1 + k] = out[s + k]
            at += 2 + last
        out[at] = 101   # 'e'
        out[at + 1] = 45 if e < 0 else 43
        at += 2
        a = -e if e < 0 else e
        if a < 10:
            out[at] = 48
            at += 1
        return _put_uint(out, at, a)
    if e >= 0:   # integer digits, then the fraction left
        for k in range(e + 1):
            out[at + k] = out[s + k]
        at += e + 1
        if last > e:
            out[at] = 46
            for k in range(e + 1, last + 1):   # (out[at + k - e] from s + k >= at + k - e)
                out[at + k - e] = out[s + k]
            at += last - e + 1
        return at
    # 0.000ddd: -e + 1 bytes before the digits, at most 5 (< 6: moved left, from the first)
    lead = -e + 1
    for k in range(last + 1):
        out[at + lead + k] = out[s + k]
    out[at] = 48
    out[at + 1] = 46
    for k in range(2, lead):
        out[at + k] = 48
    return at + lead + last + 1


@njit(cache=True, nogil=True)
def write_rows(kinds, slots, ints, digits, exps, status, bits, other_ptr, other_bytes, codes,
               label_base, label_ptr, label_bytes, seen, seen_len, seen_text, out):
    """Rows of a block as CSV bytes into ``out``; the bytes written. Column ``c`` is of kind
    ``kinds[c]`` and row ``slots[c]`` of its kind's arrays: ints (``ints``), floats (their
    :func:`float_digits` ``digits``, ``exps`` and ``status``, their bit patterns ``bits``;
    :data:`OTHER` ones the next text of ``other_ptr`` / ``other_bytes`` in row-major order),
    text (``codes``: label ``j`` of the column is field ``label_base[slot] + j`` of
    ``label_ptr`` / ``label_bytes``). A float column's last texts are kept by bit pattern
    (``seen``, a direct-mapped table of :data:`SEEN` entries per column, :data:`NO_VALUE`
    where empty; ``seen_len``, ``seen_text``): a value met again is copied, not formatted
    (most of an op table's columns repeat one value per op kind)."""
    n_cols = kinds.shape[0]
    rows = ints.shape[1] if ints.shape[0] else (digits.shape[1] if digits.shape[0]
                                                else codes.shape[1])
    at = 0
    other = 0
    for r in range(rows):
        for c in range(n_cols):
            if c:
                out[at] = 44   # ','
                at += 1
            s = slots[c]
            if kinds[c] == INT:
                at = _put_int(out, at, ints[s, r])
            elif kinds[c] == FLOAT:
                st = status[s, r]
                if st == DIGITS:
                    key = bits[s, r]
                    h = ((key * HASH) >> 52) & (SEEN - 1)
                    base = h * FLOAT_WIDTH
                    if seen[s, h] == key:
                        for k in range(seen_len[s, h]):
                            out[at + k] = seen_text[s, base + k]
                        at += seen_len[s, h]
                    else:
                        end = _put_float(out, at, digits[s, r], exps[s, r])
                        seen[s, h] = key
                        seen_len[s, h] = end - at
                        for k in range(end - at):
                            seen_text[s, base + k] = out[at + k]
                        at = end
                elif st == ZERO:
                    out[at] = 48
                    at += 1
                elif st == NEG_ZERO:
                    out[at] = 45
                    out[at + 1] = 48
                    at += 2
                elif st == OTHER:
                    for k in range(other_ptr[other], other_ptr[other + 1]):
                        out[at] = other_bytes[k]
                        at += 1
                    other += 1
            else:
                f = label_base[s] + codes[s, r]
                for k in range(label_ptr[f], label_ptr[f + 1]):
                    out[at] = label_bytes[k]
                    at += 1
        out[at] = 10   # '\n'
        at += 1
    return at


@njit(cache=True, nogil=True)
def fixed4_digits(values, digits, status):
    """Per value of ``values``: ``round(|v| * 10**4)`` as ``'%.4f'`` rounds it (``digits``)
    and its status (``status``: :data:`DIGITS`, or :data:`NEG_ZERO` for a negative value,
    whose text keeps its sign; :data:`OTHER` where the product's fraction lies within two
    units of one half); how many are :data:`OTHER`. Values must be finite, below 2**52 / 10**4
    in magnitude (the caller's check)."""
    others = 0
    for i in range(values.shape[0]):
        v = values[i]
        y = abs(v) * 1e4
        whole = math.floor(y)
        frac = y - whole
        _, ex = math.frexp(y)
        if abs(frac - 0.5) <= 2.0 * math.ldexp(1.0, ex - 53):
            status[i] = OTHER
            others += 1
            continue
        digits[i] = int(whole) + (1 if frac > 0.5 else 0)
        status[i] = NEG_ZERO if (v < 0 or math.copysign(1.0, v) < 0) else DIGITS
    return others


@njit(cache=True, nogil=True)
def _put_fixed4(out, at, n, negative):
    """``'%.4f'`` of ``n / 10**4`` with trailing zeros dropped (``'.0'`` kept) at ``out[at]``;
    the position after it."""
    if negative:
        out[at] = 45
        at += 1
    at = _put_uint(out, at, n // 10000)
    out[at] = 46
    at += 1
    f = n % 10000
    if f == 0:
        out[at] = 48
        return at + 1
    div = 1000
    while f:
        q = f // div
        out[at] = 48 + q
        at += 1
        f -= q * div
        div //= 10
    return at


@njit(cache=True, nogil=True)
def _copy(out, at, ptr, data, j):
    """Text ``j`` of ``ptr`` / ``data`` at ``out[at]``; the position after it."""
    for k in range(ptr[j], ptr[j + 1]):
        out[at] = data[k]
        at += 1
    return at


@njit(cache=True, nogil=True)
def _put_fixed4_or_other(out, at, digits, status, other_ptr, other_bytes, other):
    """A time's text (:func:`fixed4_digits`; an :data:`OTHER` one the next of ``other_ptr``
    / ``other_bytes``); (the position after it, the next OTHER text)."""
    if status == OTHER:
        return _copy(out, at, other_ptr, other_bytes, other), other + 1
    return _put_fixed4(out, at, digits, status == NEG_ZERO), other


@njit(cache=True, nogil=True)
def trace_events(head_c, head_ptr, head_bytes, ts_digits, ts_status, other_ptr, other_bytes,
                 dur_c, dur_ptr, dur_bytes, num_ptr, num_bytes, layer, step, tail_c, tail_ptr,
                 tail_bytes, linked, link_ptr, link_tid, link_meta, meta_ptr, meta_bytes,
                 name_ptr, name_bytes, out):
    """The ops' complete events of a Chrome trace, joined by commas, into ``out``; the bytes
    written. Op ``i``'s event is its head (``head_c``), start (``ts_digits`` / ``ts_status``
    by :func:`fixed4_digits`; an :data:`OTHER` one the next of ``other_ptr`` /
    ``other_bytes``), duration (``dur_c``: its text up to the layer), layer, ``,"step":``,
    step and tail (``tail_c``). An op listed in ``linked`` (ascending) is followed by its
    events on its links ``link_ptr[j]:link_ptr[j + 1]``: a track's metadata event where
    ``link_meta`` names one (else -1), then the event: its name's prefix (``head_c``'s of
    ``name_ptr``), ``,"tid":``, the link's track, the op's start, ``,"dur":``, its duration
    (``num_ptr``) and ``}``."""
    at = 0
    other = 0
    j = 0
    n_linked = linked.shape[0]
    for i in range(head_c.shape[0]):
        if i:
            out[at] = 44
            at += 1
        at = _copy(out, at, head_ptr, head_bytes, head_c[i])
        ts_at = at
        at, other = _put_fixed4_or_other(out, at, ts_digits[i], ts_status[i], other_ptr,
                                         other_bytes, other)
        ts_end = at
        at = _copy(out, at, dur_ptr, dur_bytes, dur_c[i])
        at = _put_int(out, at, layer[i])
        for b in STEP_KEY:
            out[at] = b
            at += 1
        at = _put_int(out, at, step[i])
        at = _copy(out, at, tail_ptr, tail_bytes, tail_c[i])
        if j < n_linked and linked[j] == i:
            for k in range(link_ptr[j], link_ptr[j + 1]):
                out[at] = 44
                at += 1
                if link_meta[k] >= 0:
                    at = _copy(out, at, meta_ptr, meta_bytes, link_meta[k])
                    out[at] = 44
                    at += 1
                at = _copy(out, at, name_ptr, name_bytes, head_c[i])
                for b in TID_KEY:
                    out[at] = b
                    at += 1
                at = _put_uint(out, at, link_tid[k])
                for b in TS_KEY:
                    out[at] = b
                    at += 1
                for p in range(ts_at, ts_end):
                    out[at] = out[p]
                    at += 1
                for b in DUR_KEY:
                    out[at] = b
                    at += 1
                at = _copy(out, at, num_ptr, num_bytes, dur_c[i])
                out[at] = 125   # '}'
                at += 1
            j += 1
    return at


@njit(cache=True, nogil=True)
def _put_key_int(out, at, key, v):
    """``key`` (bytes) then the integer ``v``; the position after them."""
    for b in key:
        out[at] = b
        at += 1
    return _put_int(out, at, v)


@njit(cache=True, nogil=True)
def transfer_events(head_c, head_ptr, head_bytes, combo_c, combo_first, res_ptr, res_tid,
                    res_meta, prefix_c, prefix_ptr, prefix_bytes, ts_digits, ts_status,
                    dur_digits, dur_status, other_ptr, other_bytes, bytes_c, num_ptr,
                    num_bytes, replicas, layer, step, pre_at, pre_meta, meta_ptr, meta_bytes,
                    out):
    """The transfers' complete events of a Chrome trace, joined by commas, into ``out``; the
    bytes written. Transfer ``i``: the metadata events ``pre_meta`` names for it (``pre_at``,
    ascending), its event on its copy stream (``head_c``) and one per resource of its route
    (``combo_c``: resources ``res_ptr[c]:res_ptr[c + 1]``, each its track ``res_tid`` and,
    at the route's first transfer ``combo_first[c]``, a new track's metadata ``res_meta``,
    else -1; ``prefix_c``: the events' name up to the track), each with the same tail: start
    and duration (:func:`fixed4_digits`, :data:`OTHER` ones in order, start before
    duration), bytes (``bytes_c``), replicas, layer and step."""
    at = 0
    other = 0
    p = 0
    n_pre = pre_at.shape[0]
    for i in range(head_c.shape[0]):
        if i:
            out[at] = 44
            at += 1
        while p < n_pre and pre_at[p] == i:
            at = _copy(out, at, meta_ptr, meta_bytes, pre_meta[p])
            out[at] = 44
            at += 1
            p += 1
        at = _copy(out, at, head_ptr, head_bytes, head_c[i])
        tail = at
        for b in TS_KEY:
            out[at] = b
            at += 1
        at, other = _put_fixed4_or_other(out, at, ts_digits[i], ts_status[i], other_ptr,
                                         other_bytes, other)
        for b in DUR_KEY:
            out[at] = b
            at += 1
        at, other = _put_fixed4_or_other(out, at, dur_digits[i], dur_status[i], other_ptr,
                                         other_bytes, other)
        for b in BYTES_KEY:
            out[at] = b
            at += 1
        at = _copy(out, at, num_ptr, num_bytes, bytes_c[i])
        at = _put_key_int(out, at, REPLICAS_KEY, replicas[i])
        at = _put_key_int(out, at, LAYER_KEY, layer[i])
        at = _put_key_int(out, at, STEP_KEY, step[i])
        out[at] = 125
        out[at + 1] = 125
        at += 2
        tail_end = at
        c = combo_c[i]
        for k in range(res_ptr[c], res_ptr[c + 1]):
            out[at] = 44
            at += 1
            if res_meta[k] >= 0 and combo_first[c] == i:
                at = _copy(out, at, meta_ptr, meta_bytes, res_meta[k])
                out[at] = 44
                at += 1
            at = _copy(out, at, prefix_ptr, prefix_bytes, prefix_c[i])
            at = _put_uint(out, at, res_tid[k])
            for q in range(tail, tail_end):
                out[at] = out[q]
                at += 1
    return at
