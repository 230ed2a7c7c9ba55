"""The compiled pass over a DRAMsim3 trace's bytes (numba); the reader is
:mod:`sim.micro.dram_tracefile` (re-exported here).

Plain files (ASCII, hex addresses of at most 16 digits with an optional ``0x``, cycles of at
most 18 decimal digits) are parsed by :func:`_parse_plain`; anything else goes through the
Python reader, which gives the same arrays or names the bad line.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.micro.dram_tracefile import (  # noqa: F401  (re-exported)
    WRITE_OPS,
    DramTrace,
    _locate_bad_line,
    _read_text,
    read_trace,
)


@njit(cache=True, inline="always")
def _space(c: int) -> bool:
    # the ASCII characters str.split() separates on: \t \n \v \f \r, \x1c-\x1f, space
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


@njit(cache=True)
def _parse_plain(buf):  # pragma: no cover - compiled; checked against _read_text in the tests
    """One pass over the bytes of a plain trace: (ok, requests, addrs, writes, times); ok is
    False for anything the Python reader must handle (see the module docstring)."""
    n = buf.shape[0]
    cap = n // 5 + 1  # a request takes at least 5 bytes: "A R T" plus a separator
    addrs = np.empty(cap, np.uint64)
    writes = np.zeros(cap, np.int8)
    times = np.empty(cap, np.int64)
    i = 0
    k = 0
    while True:
        while i < n and _space(buf[i]):
            i += 1
        if i >= n:
            break
        start = i
        while i < n and not _space(buf[i]):
            if buf[i] >= 128:
                return False, 0, addrs, writes, times
            i += 1
        r = k // 3
        field = k - 3 * r
        if field == 0:
            if i - start >= 2 and buf[start] == 48 and (buf[start + 1] == 120
                                                        or buf[start + 1] == 88):
                start += 2  # 0x / 0X
            if i - start < 1 or i - start > 16:
                return False, 0, addrs, writes, times
            v = np.uint64(0)
            for j in range(start, i):
                c = buf[j]
                if 48 <= c <= 57:
                    d = c - 48
                elif 97 <= c <= 102:
                    d = c - 87
                elif 65 <= c <= 70:
                    d = c - 55
                else:
                    return False, 0, addrs, writes, times
                v = (v << np.uint64(4)) | np.uint64(d)
            addrs[r] = v
        elif field == 1:
            m = i - start
            w = False
            if m == 5:  # WRITE or write
                w = ((buf[start] == 87 and buf[start + 1] == 82 and buf[start + 2] == 73
                      and buf[start + 3] == 84 and buf[start + 4] == 69)
                     or (buf[start] == 119 and buf[start + 1] == 114 and buf[start + 2] == 105
                         and buf[start + 3] == 116 and buf[start + 4] == 101))
            elif m == 4:  # BOFF
                w = (buf[start] == 66 and buf[start + 1] == 79 and buf[start + 2] == 70
                     and buf[start + 3] == 70)
            elif m == 8:  # P_MEM_WR
                w = (buf[start] == 80 and buf[start + 1] == 95 and buf[start + 2] == 77
                     and buf[start + 3] == 69 and buf[start + 4] == 77 and buf[start + 5] == 95
                     and buf[start + 6] == 87 and buf[start + 7] == 82)
            writes[r] = 1 if w else 0
        else:
            if i - start > 18:
                return False, 0, addrs, writes, times
            t = 0
            for j in range(start, i):
                c = buf[j]
                if c < 48 or c > 57:
                    return False, 0, addrs, writes, times
                t = t * 10 + (c - 48)
            times[r] = t
        k += 1
    if k % 3:
        return False, 0, addrs, writes, times
    return True, k // 3, addrs, writes, times
