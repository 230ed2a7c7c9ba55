"""A whole DRAMsim3 trace run in one compiled call with a C ABI (the source of
:mod:`sim.micro.dram_capi`'s library; imported only to build it).

:func:`trace_run` does in compiled code what :func:`sim.micro.dram_tracefile.read_trace` and
:func:`sim.micro.dram_run.simulate` do with numpy: the one-pass trace parse
(:func:`sim.micro.dram_trace._parse_plain`), DRAMsim3's end-of-file quirk, the address mapping,
the address ids, the sparse timing lists (:func:`sim.micro.dram_run.sparse_timing`, compiled
as is) and :func:`sim.micro.dram.run_kernel` itself, then sums the statistics over channels. Its
arguments are raw pointers and integers only, so a caller needs neither numpy nor numba.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from sim.micro.dram import run_kernel
from sim.micro.dram_capi import (
    D_N,
    D_POS,
    D_SHIFT,
    D_WIDTH,
    DECLINED,
    O_ACCEPTED,
    O_ACT,
    O_IDLE,
    O_LAST,
    O_LEN,
    O_N,
    O_STATS,
    O_TICKS,
    OK,
)
from sim.micro.dram_config import N_CMD
from sim.micro.dram_layout import P_BPG, P_CH, P_N, S_N
from sim.micro.dram_run import sparse_timing
from sim.micro.dram_trace import _parse_plain

_sparse_timing = njit(sparse_timing)

#: tail modes (sim.micro.dram_layout.TAIL_MODES)
_NEWLINE, _NO_NEWLINE, _NONE = 0, 1, 2


@njit(error_model="numpy")
def _decode(addrs, dec, bpg):  # pragma: no cover - compiled
    """Channel, rank, bank (in its rank), row and column of each address
    (:meth:`sim.micro.dram_config.DramConfig.decode`) and an id per distinct address (ids in
    order of first appearance; the kernel uses them only as indices), and how many ids."""
    m = addrs.shape[0]
    out = np.empty((6, m), np.int64)
    shift = np.uint64(dec[D_SHIFT])
    pos = np.empty(6, np.uint64)
    mask = np.empty(6, np.uint64)
    for f in range(6):
        pos[f] = np.uint64(dec[D_POS + f])
        mask[f] = np.uint64((1 << dec[D_WIDTH + f]) - 1)
    ordered = True  # sorted addresses (sequential traces) need no hash table
    for i in range(1, m):
        if addrs[i] < addrs[i - 1]:
            ordered = False
            break
    bits = 1
    while not ordered and (1 << bits) < 2 * m:
        bits += 1
    size = 1 << bits
    first = np.full(size, -1, np.int32)  # open addressing: the first request of an address
    hshift = np.uint64(64 - bits)
    k = 0
    for i in range(m):
        a = addrs[i]
        x = a >> shift
        out[0, i] = np.int64((x >> pos[0]) & mask[0])
        out[1, i] = np.int64((x >> pos[1]) & mask[1])
        out[2, i] = (np.int64((x >> pos[2]) & mask[2]) * bpg
                     + np.int64((x >> pos[3]) & mask[3]))
        out[3, i] = np.int64((x >> pos[4]) & mask[4])
        out[4, i] = np.int64((x >> pos[5]) & mask[5])
        if ordered:
            if i == 0 or a != addrs[i - 1]:
                k += 1
            out[5, i] = k - 1
            continue
        h = np.int64((a * np.uint64(0x9E3779B97F4A7C15)) >> hshift)  # Fibonacci hashing
        while first[h] >= 0 and addrs[first[h]] != a:
            h = (h + 1) & (size - 1)
        if first[h] < 0:
            first[h] = i
            out[5, i] = k
            k += 1
        else:
            out[5, i] = out[5, first[h]]
    return out[0], out[1], out[2], out[3], out[4], out[5], k


def trace_run(buf_p, nbuf, P_p, TT_p, dec_p, cycles, out_p):  # pragma: no cover - compiled
    """Parse the trace bytes ``buf_p[:nbuf]`` and run them on parameters ``P_p[:P_N]`` and the
    dense timing table ``TT_p`` (5 x N_CMD x N_CMD) for ``cycles`` memory cycles with the
    DRAMsim3 front end; write ``O_LEN`` integers to ``out_p``. Returns ``OK``, or ``DECLINED``
    when the trace is not plain (the Python reader must parse it)."""
    buf = carray(buf_p, (nbuf,))
    P = carray(P_p, (P_N,))
    TT = carray(TT_p, (5, N_CMD, N_CMD))
    dec = carray(dec_p, (D_N,))
    out = carray(out_p, (O_LEN,))
    ok, n, addrs, writes, times = _parse_plain(buf)
    if not ok:
        return DECLINED
    newline = nbuf > 0 and (buf[nbuf - 1] == 10 or buf[nbuf - 1] == 13)
    m = n + 1 if (n > 0 and newline) else n
    if m > addrs.shape[0]:  # no spare row in the parse's arrays (never for real traces)
        a2, w2, t2 = np.empty(m, np.uint64), np.empty(m, np.int8), np.empty(m, np.int64)
        for i in range(n):  # (a slice assignment would need Python's C API for its error)
            a2[i], w2[i], t2[i] = addrs[i], writes[i], times[i]
        addrs, writes, times = a2, w2, t2
    if m > n:  # DRAMsim3 reads the last line once more, as a read
        addrs[n] = addrs[n - 1]
        writes[n] = 0
        times[n] = times[n - 1]
    tail = _NONE
    if n > 0:
        tail = _NEWLINE if newline else _NO_NEWLINE
    ch, rank, bank, row, col, aid, k = _decode(addrs[:m], dec, P[P_BPG])
    C = P[P_CH]
    TN, TK, TD = _sparse_timing(TT)
    stats, act, idle, ticks, accepted, nlog, max_done = run_kernel(
        P.copy(), TN, TK, TD, ch, rank, bank, row, col, aid, writes[:m], times[:m], np.int64(k),
        np.int64(0), np.arange(m), np.zeros(C + 1, np.int64), np.int64(tail), np.int64(cycles),
        False, np.zeros((0, 6), np.int64))
    out[O_N] = n
    out[O_TICKS] = ticks
    out[O_ACCEPTED] = accepted
    out[O_LAST] = max_done
    out[O_ACT] = act.sum()
    out[O_IDLE] = idle.sum()
    for s in range(S_N):
        v = 0
        for c in range(stats.shape[0]):
            v += stats[c, s]
        out[O_STATS + s] = v
    return OK
