"""Cycle-level DRAM model (numba): channels, ranks, bank groups, banks, rows under JEDEC timing.

Per channel a controller holds a read queue and a write buffer of transactions, per-bank (or
per-rank) command queues, a refresh engine and the state of every bank (open row, row-hit count,
the earliest cycle each command type may issue, computed from :func:`timing_table`). Each memory
cycle a channel:

1. inserts a refresh when the refresh interval elapses (rank-staggered, rank-simultaneous or
   per-bank), and while one is pending precharges the rank's open banks and issues REF as soon
   as tRP/tRFC/... allow, holding back that rank's queues;
2. otherwise issues one command, scanning the command queues round-robin and taking in each the
   first command whose next step (ACT, PRE or the column command) meets its timing: FR-FCFS
   within a bank. An ACT also needs the four-activate window (tFAW; and GDDR's 32-activate
   window); a PRE that would close a row other queued requests still hit waits, unless the row
   has served ``row_hit_cap`` hits already; a write waits for an older read of the same address.
   HBM can issue a row and a column command in the same cycle;
3. moves one transaction into its command queue (reads first; writes drain once the write
   buffer fills, or passes ``write_drain_threshold`` while the command queues are empty).

A read completes ``RL + burst`` cycles after its READ command; writes complete when buffered;
reads of a buffered write are served from the buffer; reads of an address already queued
merge. The front end mirrors DRAMsim3's trace CPU: one request per memory cycle at most, in
trace order, blocking while the controller refuses it; or (for pattern timing) one request per
cycle per channel. The scheduling policy and these details follow DRAMsim3 (umd-memsys/DRAMsim3:
``controller.cc``, ``command_queue.cc``, ``channel_state.cc``, ``refresh.cc``) so that runs of
DRAMsim3's configs and traces compare like for like; see ``docs/dram.md``.

Speed: each queue keeps a lower bound on the first cycle any of its commands can become ready
(timing only ever moves later, so the bound stays valid until a command of its own bank issues
or its contents change); a channel skips the queue scan while the earliest bound lies ahead.

This module holds the numba kernel; :mod:`sim.micro.dram_run` holds the Python side
(:func:`simulate`, :class:`DramStats`, re-exported here) and :mod:`sim.micro.dram_aot` compiles
this kernel ahead of time, so runs need not import numba.
"""

from __future__ import annotations

import sys

import numpy as np
from numba import njit

from sim.micro.dram_config import (
    ACT,
    N_CMD,
    PRE,
    READ,
    READ_P,
    REF,
    REF_BANK,
    WRITE,
    WRITE_P,
)
from sim.micro.dram_layout import (  # noqa: F401  (re-exported)
    FRONTEND_MODES,
    INF,
    NONE,
    P_BANKS,
    P_BG,
    P_BPG,
    P_CH,
    P_CQS,
    P_DRAIN,
    P_DUAL,
    P_GDDR,
    P_HITCAP,
    P_N,
    P_NQ,
    P_OPEN,
    P_PERBANK,
    P_RANKS,
    P_RDELAY,
    P_REFINT,
    P_REFPOL,
    P_T32AW,
    P_TFAW,
    P_TQS,
    P_UNIFIED,
    S_ACT,
    S_DUAL,
    S_LAT,
    S_N,
    S_PRE,
    S_RDCMD,
    S_RDHIT,
    S_READS,
    S_REF,
    S_REFB,
    S_WRCMD,
    S_WRHIT,
    S_WRITES,
    TAIL_MODES,
)
from sim.micro.dram_run import (  # noqa: F401  (the Python side, re-exported)
    DramStats,
    pack_params,
    simulate,
    sparse_timing,
)


def _numba_np_without_blas_probe() -> None:
    """Import ``numba.np.arraymath`` with numba's BLAS probe answered "none".

    numba imports that module when it loads its first kernel, and the module probes for BLAS by
    importing ``scipy.linalg`` (about 0.3 s of CPU, a quarter of ``xpusim import dramsim3``).
    No DRAM kernel calls BLAS. The probe's answer only picks how ``np.convolve`` and
    ``np.correlate`` compile (no kernel of ours uses them); ``np.dot`` and ``@`` in a kernel
    still import scipy when that kernel compiles or runs (tests/test_startup.py). Does nothing
    once ``scipy.linalg`` or numba's module is loaded.
    """
    blas = "scipy.linalg.cython_blas"
    if {"numba.np.arraymath", "scipy.linalg", blas} & sys.modules.keys():
        return
    sys.modules[blas] = None  # type: ignore[assignment]  # its import fails, scipy unloaded
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        if blas in sys.modules and sys.modules[blas] is None:
            del sys.modules[blas]


_numba_np_without_blas_probe()

@njit(cache=True, inline="always", error_model="numpy")
def _qindex(per_bank: bool, nbanks: int, rank: int, bank: int) -> int:
    return rank * nbanks + bank if per_bank else rank


@njit(cache=True, inline="always", error_model="numpy")
def _cmd_of(write: int, open_page: bool) -> int:
    if write:
        return WRITE if open_page else WRITE_P
    return READ if open_page else READ_P


@njit(cache=True, inline="always", error_model="numpy")
def _arbitrate_pre(cmdq, n, pos, r_rank, r_bank, r_row, rank, bank, open_row, hits, hitcap):
    """DRAMsim3's ArbitratePrecharge: may this queued command's PRE close the open row?"""
    for p in range(pos):
        o = cmdq[p]
        if r_rank[o] == rank and r_bank[o] == bank:
            return False
    for p in range(pos, n):
        o = cmdq[p]
        if r_row[o] == open_row and r_bank[o] == bank and r_rank[o] == rank:
            return hits >= hitcap
    return True


@njit(cache=True, inline="always", error_model="numpy")
def _rw_dependency(cmdq, pos, r_write, r_row, r_col, r_bank, req):
    """An older read of the same row, column and bank blocks a write (write-after-read)."""
    for p in range(pos):
        o = cmdq[p]
        if r_write[o] == 0 and r_row[o] == r_row[req] and r_col[o] == r_col[req] \
                and r_bank[o] == r_bank[req]:
            return True
    return False


@njit(cache=True, inline="always", error_model="numpy")
def _ready_at(tim, ch, r, b, BPG, NB, BG, t):
    """Earliest cycle command ``t`` may issue to bank ``b`` of rank ``r``: the latest of the
    bank's own, its bank group's, its rank's and the other ranks' constraints."""
    v = tim[ch, r, b, t]
    w = tim[ch, r, NB + b // BPG, t]
    if w > v:
        v = w
    w = tim[ch, r, NB + BG, t]
    if w > v:
        v = w
    w = tim[ch, r, NB + BG + 1, t]
    if w > v:
        v = w
    return v


@njit(cache=True, inline="always", error_model="numpy")
def _first_ready(ch, qi, T, cmdq, cmdq_n, qb, bstate, brow, bhits, btim, faw, faw_n, aw32,
                 aw32_n, gddr, open_page, hitcap, r_rank, r_bank, r_row, r_col, r_write,
                 per_bank, BPG, NB, BG):
    """(position, command) of the first issuable command of queue ``qi``, or (-1, -1) and the
    queue's ready bound updated."""
    n = cmdq_n[ch, qi]
    q = cmdq[ch, qi]
    if per_bank and n > 0:
        # every entry targets the same bank: its state and timing are read once
        r = r_rank[q[0]]
        b = r_bank[q[0]]
        if bstate[ch, r, b] == 0:
            # closed: the first entry's ACT (ACTs are never arbitrated)
            t = _ready_at(btim, ch, r, b, BPG, NB, BG, ACT)
            if faw_n[ch, r] >= 4 and faw[ch, r, 0] > t:
                t = faw[ch, r, 0]
            if gddr and aw32_n[ch, r] >= 32 and aw32[ch, r, 0] > t:
                t = aw32[ch, r, 0]
            if t <= T:
                return 0, ACT
            qb[ch, qi] = t
            return -1, -1
        orow = brow[ch, r, b]
        bound = INF
        for pos in range(n):
            req = q[pos]
            if r_row[req] == orow:
                need = _cmd_of(r_write[req], open_page)
                t = _ready_at(btim, ch, r, b, BPG, NB, BG, need)
                if t > T:
                    if t < bound:
                        bound = t
                    continue
                if (need == WRITE or need == WRITE_P) and \
                        _rw_dependency(q, pos, r_write, r_row, r_col, r_bank, req):
                    continue
                return pos, need
            if pos == 0:
                # only the oldest entry may close the row (an older entry of the same bank
                # blocks the rest), and not while younger entries still hit it
                t = _ready_at(btim, ch, r, b, BPG, NB, BG, PRE)
                if t > T:
                    if t < bound:
                        bound = t
                    continue
                if _arbitrate_pre(q, n, 0, r_rank, r_bank, r_row, r, b, orow,
                                  bhits[ch, r, b], hitcap):
                    return 0, PRE
        qb[ch, qi] = bound
        return -1, -1
    bound = INF
    for pos in range(n):
        req = q[pos]
        r = r_rank[req]
        b = r_bank[req]
        if bstate[ch, r, b] == 0:
            need = ACT
        elif brow[ch, r, b] == r_row[req]:
            need = _cmd_of(r_write[req], open_page)
        else:
            need = PRE
        t = _ready_at(btim, ch, r, b, BPG, NB, BG, need)
        if need == ACT:
            if faw_n[ch, r] >= 4 and faw[ch, r, 0] > t:
                t = faw[ch, r, 0]
            if gddr and aw32_n[ch, r] >= 32 and aw32[ch, r, 0] > t:
                t = aw32[ch, r, 0]
        if t > T:
            if t < bound:
                bound = t
            continue
        if need == PRE:
            if not _arbitrate_pre(q, n, pos, r_rank, r_bank, r_row, r, b, brow[ch, r, b],
                                  bhits[ch, r, b], hitcap):
                continue
        elif need == WRITE or need == WRITE_P:
            if _rw_dependency(q, pos, r_write, r_row, r_col, r_bank, req):
                continue
        return pos, need
    qb[ch, qi] = bound
    return -1, -1


@njit(cache=True, inline="always", error_model="numpy")
def _apply_timing(ch, ctype, r, b, T, TN, TK, TD, btim, R, NB, BPG, BG):
    """Push the earliest-issue cycles the command implies.

    Constraints live in four layers (bank, bank group, rank, from other ranks) so one command
    updates a handful of entries instead of every bank: a bank-group or rank entry also binds
    the issuing bank, which is exact because the same-bank delay is never shorter, or the
    constraint is implied by the bank's own state (e.g. a closed bank needs ACT first).
    Per-bank refresh keeps exact per-bank updates (its own bank is left unconstrained).
    """
    if ctype == REF:
        for j in range(TN[4, ctype]):
            t = TK[4, ctype, j]
            v = T + TD[4, ctype, j]
            if v > btim[ch, r, NB + BG, t]:
                btim[ch, r, NB + BG, t] = v
        return
    if ctype == REF_BANK:
        bg = b // BPG
        for bb in range(NB):
            if bb == b:
                continue
            scope = 1 if bb // BPG == bg else 2
            for j in range(TN[scope, ctype]):
                t = TK[scope, ctype, j]
                v = T + TD[scope, ctype, j]
                if v > btim[ch, r, bb, t]:
                    btim[ch, r, bb, t] = v
        return
    for j in range(TN[0, ctype]):
        t = TK[0, ctype, j]
        v = T + TD[0, ctype, j]
        if v > btim[ch, r, b, t]:
            btim[ch, r, b, t] = v
    g = NB + b // BPG
    for j in range(TN[1, ctype]):
        t = TK[1, ctype, j]
        v = T + TD[1, ctype, j]
        if v > btim[ch, r, g, t]:
            btim[ch, r, g, t] = v
    for j in range(TN[2, ctype]):
        t = TK[2, ctype, j]
        v = T + TD[2, ctype, j]
        if v > btim[ch, r, NB + BG, t]:
            btim[ch, r, NB + BG, t] = v
    n3 = TN[3, ctype]
    if n3:
        for rr in range(R):
            if rr == r:
                continue
            for j in range(n3):
                t = TK[3, ctype, j]
                v = T + TD[3, ctype, j]
                if v > btim[ch, rr, NB + BG + 1, t]:
                    btim[ch, rr, NB + BG + 1, t] = v



@njit(cache=True, inline="always", error_model="numpy")
def _accept(cur, ch, write, added_at, last, unified, r_aid, pend_wr, pend_rd_cnt, pend_rd_sum,
            rq, rq_n, wb, wb_n, stats, dirty, scheduled, max_done):
    """The controller takes request ``cur`` on channel ``ch``: a write joins the write buffer
    (or the unified queue) unless one to the same address is pending; a read of an address with
    a pending write is served from it at once; other reads queue, merging with pending reads of
    the same address. Returns the updated (scheduled, max_done)."""
    a = r_aid[cur]
    if write:
        if pend_wr[a] == 0:
            pend_wr[a] = 1
            if unified:
                rq[ch, rq_n[ch]] = cur
                rq_n[ch] += 1
            else:
                wb[ch, wb_n[ch]] = cur
                wb_n[ch] += 1
        scheduled += 1
        if added_at + 1 > max_done:
            max_done = added_at + 1
        if added_at + 1 <= last:
            stats[ch, S_WRITES] += 1
    elif pend_wr[a] == 1:
        scheduled += 1
        if added_at + 1 > max_done:
            max_done = added_at + 1
        if added_at + 1 <= last:
            stats[ch, S_READS] += 1
            stats[ch, S_LAT] += 1
    else:
        pend_rd_cnt[a] += 1
        pend_rd_sum[a] += added_at
        if pend_rd_cnt[a] == 1:
            rq[ch, rq_n[ch]] = cur
            rq_n[ch] += 1
    dirty[ch] = True
    return scheduled, max_done


@njit(cache=True, error_model="numpy")
def run_kernel(P, TN, TK, TD, r_ch, r_rank, r_bank, r_row, r_col, r_aid, r_write, r_time, n_addr,
               fe_mode, fe_order, fe_start, tail_mode, cycles, until_done, log):
    """Simulate ``cycles`` memory cycles (or until every request is done when ``until_done``).

    ``log`` (rows of cycle, command, channel, rank, bank, row) receives the first
    ``len(log)`` commands issued. Returns (stats[C, S_N], rank_active[C, R], rank_idle[C, R],
    ticks, accepted, logged).
    """
    C = P[P_CH]
    R = P[P_RANKS]
    BPG = P[P_BPG]
    NB = P[P_BANKS]
    NQ = P[P_NQ]
    per_bank = P[P_PERBANK] == 1
    CQS = P[P_CQS]
    TQS = P[P_TQS]
    unified = P[P_UNIFIED] == 1
    open_page = P[P_OPEN] == 1
    rdelay = P[P_RDELAY]
    refint = P[P_REFINT]
    refpol = P[P_REFPOL]
    dual = P[P_DUAL] == 1
    tfaw = P[P_TFAW]
    gddr = P[P_GDDR] == 1
    t32aw = P[P_T32AW]
    drain_th = P[P_DRAIN]
    hitcap = P[P_HITCAP]
    BG = P[P_BG]
    N = r_ch.shape[0]

    bstate = np.zeros((C, R, NB), np.int8)
    brow = np.full((C, R, NB), -1, np.int64)
    bhits = np.zeros((C, R, NB), np.int64)
    btim = np.zeros((C, R, NB + BG + 2, N_CMD), np.int64)  # bank, group, rank, other ranks
    open_cnt = np.zeros((C, R), np.int64)
    faw = np.zeros((C, R, 4), np.int64)
    faw_n = np.zeros((C, R), np.int64)
    aw32 = np.zeros((C, R, 32), np.int64)
    aw32_n = np.zeros((C, R), np.int64)
    cmdq = np.zeros((C, NQ, CQS), np.int64)
    cmdq_n = np.zeros((C, NQ), np.int64)
    qb = np.full((C, NQ), INF, np.int64)
    cq_total = np.zeros(C, np.int64)
    gmin = np.zeros(C, np.int64)
    qidx = np.zeros(C, np.int64)
    rq = np.zeros((C, TQS), np.int64)
    rq_n = np.zeros(C, np.int64)
    wb = np.zeros((C, TQS), np.int64)
    wb_n = np.zeros(C, np.int64)
    draining = np.zeros(C, np.int64)
    dirty = np.ones(C, np.bool_)
    pend_rd_cnt = np.zeros(n_addr, np.int64)
    pend_rd_sum = np.zeros(n_addr, np.int64)
    pend_wr = np.zeros(n_addr, np.int8)
    RQC = 256
    refq = np.zeros((C, RQC, 3), np.int64)
    refq_n = np.zeros(C, np.int64)
    in_ref = np.zeros(C, np.bool_)
    ref_lo = np.zeros(C, np.int64)
    ref_hi = np.zeros(C, np.int64)
    nxt_rank = np.zeros(C, np.int64)
    nxt_bg = np.zeros(C, np.int64)
    nxt_bank = np.zeros(C, np.int64)
    stats = np.zeros((C, S_N), np.int64)
    rank_act = np.zeros((C, R), np.int64)
    rank_idle = np.zeros((C, R), np.int64)

    last = cycles - 1
    # front end
    p = 0
    get_next = True
    eof = False
    cur = -1
    cur_write = 0
    ch_ptr = fe_start[:-1].copy()
    n_real = N - 1 if tail_mode == 0 else N  # tail_mode 0: the last entry is EOF's re-read
    accepted = 0
    scheduled = 0  # requests whose completion cycle is known
    max_done = -1
    ticks = cycles
    nlog = 0
    log_cap = log.shape[0]

    next_ref = refint
    for T in range(cycles):
        for ch in range(C):
            # ---- refresh insertion
            if T == next_ref and refq_n[ch] < RQC:
                k = refq_n[ch]
                if refpol == 2:
                    refq[ch, k, 0] = REF_BANK
                    refq[ch, k, 1] = nxt_rank[ch]
                    refq[ch, k, 2] = nxt_bg[ch] * BPG + nxt_bank[ch]
                    nxt_bg[ch] = (nxt_bg[ch] + 1) % BG
                    if nxt_bg[ch] == 0:
                        nxt_bank[ch] = (nxt_bank[ch] + 1) % BPG
                        if nxt_bank[ch] == 0:
                            nxt_rank[ch] = (nxt_rank[ch] + 1) % R
                else:
                    refq[ch, k, 0] = REF
                    refq[ch, k, 1] = nxt_rank[ch] if refpol == 0 else 0
                    refq[ch, k, 2] = -1
                    if refpol == 0:
                        nxt_rank[ch] = (nxt_rank[ch] + 1) % R
                refq_n[ch] = k + 1
            # ---- command issue: up to two per cycle (HBM dual issue)
            issued_rw = -1  # -1 none, 0 row command, 1 column command
            for slot in range(2):
                if slot == 1 and (not dual or issued_rw < 0):
                    break
                ctype = NONE
                cr = 0
                cb = 0
                creq = -1
                if slot == 0 and refq_n[ch] > 0:
                    typ = refq[ch, 0, 0]
                    rr = refq[ch, 0, 1]
                    bb0 = refq[ch, 0, 2]
                    if not in_ref[ch]:
                        if typ == REF:
                            ref_lo[ch] = rr * NB if per_bank else rr
                            ref_hi[ch] = ref_lo[ch] + (NB if per_bank else 1)
                        else:
                            ref_lo[ch] = _qindex(per_bank, NB, rr, bb0)
                            ref_hi[ch] = ref_lo[ch] + 1
                        in_ref[ch] = True
                    if typ == REF:
                        nready = 0
                        for bb in range(NB):
                            need = PRE if bstate[ch, rr, bb] == 1 else REF
                            if T >= _ready_at(btim, ch, rr, bb, BPG, NB, BG, need):
                                if need == PRE:
                                    ctype = PRE
                                    cr = rr
                                    cb = bb
                                    break
                                nready += 1
                        if ctype == NONE and nready == NB:
                            ctype = REF
                            cr = rr
                            cb = -1
                    else:
                        need = PRE if bstate[ch, rr, bb0] == 1 else REF_BANK
                        if T >= _ready_at(btim, ch, rr, bb0, BPG, NB, BG, need):
                            ctype = need
                            cr = rr
                            cb = bb0
                    if ctype == REF or ctype == REF_BANK:
                        in_ref[ch] = False
                        gmin[ch] = 0
                if ctype == NONE and T >= gmin[ch]:
                    newmin = INF
                    found = False
                    qbc = qb[ch]
                    inref = in_ref[ch]
                    lo_ = ref_lo[ch]
                    hi_ = ref_hi[ch]
                    start = qidx[ch] + 1
                    for i in range(NQ):
                        qi = start + i
                        if qi >= NQ:
                            qi -= NQ
                        bq = qbc[qi]
                        if bq > T:
                            if bq < newmin and not (inref and lo_ <= qi < hi_):
                                newmin = bq
                            continue
                        if inref and lo_ <= qi < hi_:
                            continue
                        pos, need = _first_ready(ch, qi, T, cmdq, cmdq_n, qb, bstate, brow,
                                                 bhits, btim, faw, faw_n, aw32, aw32_n, gddr,
                                                 open_page, hitcap, r_rank, r_bank, r_row,
                                                 r_col, r_write, per_bank, BPG, NB, BG)
                        if pos >= 0:
                            qidx[ch] = qi
                            req = cmdq[ch, qi, pos]
                            ctype = need
                            cr = r_rank[req]
                            cb = r_bank[req]
                            creq = req
                            if need == READ or need == READ_P or need == WRITE \
                                    or need == WRITE_P:
                                for k in range(pos, cmdq_n[ch, qi] - 1):
                                    cmdq[ch, qi, k] = cmdq[ch, qi, k + 1]
                                cmdq_n[ch, qi] -= 1
                                cq_total[ch] -= 1
                                qb[ch, qi] = 0
                                dirty[ch] = True
                            found = True
                            break
                        if qbc[qi] < newmin:
                            newmin = qbc[qi]
                    gmin[ch] = 0 if found else newmin
                if ctype == NONE:
                    break
                is_rw = ctype == READ or ctype == READ_P or ctype == WRITE or ctype == WRITE_P
                if slot == 1 and (1 if is_rw else 0) == issued_rw:
                    # DRAMsim3 drops a second command of the same kind; a column command found
                    # here was already taken off its queue and never completes (mirrored)
                    break
                issued_rw = 1 if is_rw else 0
                if slot == 1:
                    stats[ch, S_DUAL] += 1
                if nlog < log_cap:
                    log[nlog, 0] = T
                    log[nlog, 1] = ctype
                    log[nlog, 2] = ch
                    log[nlog, 3] = cr
                    log[nlog, 4] = cb
                    log[nlog, 5] = r_row[creq] if creq >= 0 else -1
                    nlog += 1
                # ---- issue: stats, pending transactions
                if ctype == READ or ctype == READ_P:
                    a = r_aid[creq]
                    nrd = pend_rd_cnt[a]
                    comp = T + rdelay
                    scheduled += nrd
                    if comp > max_done:
                        max_done = comp
                    if comp <= last:
                        stats[ch, S_READS] += nrd
                        stats[ch, S_LAT] += nrd * comp - pend_rd_sum[a]
                    pend_rd_cnt[a] = 0
                    pend_rd_sum[a] = 0
                    stats[ch, S_RDCMD] += 1
                    if bhits[ch, cr, cb] != 0:
                        stats[ch, S_RDHIT] += 1
                elif ctype == WRITE or ctype == WRITE_P:
                    pend_wr[r_aid[creq]] = 0
                    stats[ch, S_WRCMD] += 1
                    if bhits[ch, cr, cb] != 0:
                        stats[ch, S_WRHIT] += 1
                elif ctype == ACT:
                    stats[ch, S_ACT] += 1
                elif ctype == PRE:
                    stats[ch, S_PRE] += 1
                elif ctype == REF:
                    stats[ch, S_REF] += 1
                elif ctype == REF_BANK:
                    stats[ch, S_REFB] += 1
                # ---- bank state
                if ctype == REF:
                    for k in range(refq_n[ch]):
                        if refq[ch, k, 1] == cr:
                            for k2 in range(k, refq_n[ch] - 1):
                                refq[ch, k2, 0] = refq[ch, k2 + 1, 0]
                                refq[ch, k2, 1] = refq[ch, k2 + 1, 1]
                                refq[ch, k2, 2] = refq[ch, k2 + 1, 2]
                            refq_n[ch] -= 1
                            break
                    lo = cr * NB if per_bank else cr
                    for q in range(lo, lo + (NB if per_bank else 1)):
                        qb[ch, q] = 0
                else:
                    if bstate[ch, cr, cb] == 1:
                        if ctype == READ or ctype == WRITE:
                            bhits[ch, cr, cb] += 1
                        elif ctype == READ_P or ctype == WRITE_P or ctype == PRE:
                            bstate[ch, cr, cb] = 0
                            brow[ch, cr, cb] = -1
                            bhits[ch, cr, cb] = 0
                            open_cnt[ch, cr] -= 1
                    elif ctype == ACT:
                        bstate[ch, cr, cb] = 1
                        brow[ch, cr, cb] = r_row[creq]
                        open_cnt[ch, cr] += 1
                    if ctype == REF_BANK:
                        for k in range(refq_n[ch]):
                            if refq[ch, k, 0] == REF_BANK and refq[ch, k, 1] == cr \
                                    and refq[ch, k, 2] == cb:
                                for k2 in range(k, refq_n[ch] - 1):
                                    refq[ch, k2, 0] = refq[ch, k2 + 1, 0]
                                    refq[ch, k2, 1] = refq[ch, k2 + 1, 1]
                                    refq[ch, k2, 2] = refq[ch, k2 + 1, 2]
                                refq_n[ch] -= 1
                                break
                    qb[ch, _qindex(per_bank, NB, cr, cb)] = 0
                gmin[ch] = 0
                # ---- timing
                if ctype == ACT:
                    n4 = faw_n[ch, cr]
                    if n4 > 0 and (T >= faw[ch, cr, 0] or n4 >= 4):
                        for k in range(n4 - 1):
                            faw[ch, cr, k] = faw[ch, cr, k + 1]
                        n4 -= 1
                    faw[ch, cr, n4] = T + tfaw
                    faw_n[ch, cr] = n4 + 1
                    if gddr:
                        n32 = aw32_n[ch, cr]
                        if n32 > 0 and (T >= aw32[ch, cr, 0] or n32 >= 32):
                            for k in range(n32 - 1):
                                aw32[ch, cr, k] = aw32[ch, cr, k + 1]
                            n32 -= 1
                        aw32[ch, cr, n32] = T + t32aw
                        aw32_n[ch, cr] = n32 + 1
                _apply_timing(ch, ctype, cr, cb, T, TN, TK, TD, btim, R, NB, BPG, BG)
            # ---- background power accounting
            for r in range(R):
                if open_cnt[ch, r] == 0:
                    rank_idle[ch, r] += 1
                else:
                    rank_act[ch, r] += 1
            # ---- move one transaction into the command queues
            if dirty[ch]:
                before = draining[ch]
                moved = False
                if draining[ch] == 0 and not unified:
                    if wb_n[ch] >= TQS or (wb_n[ch] > drain_th and cq_total[ch] == 0):
                        draining[ch] = wb_n[ch]
                use_wb = (not unified) and draining[ch] > 0
                nq_ = wb_n[ch] if use_wb else rq_n[ch]
                for i in range(nq_):
                    req = wb[ch, i] if use_wb else rq[ch, i]
                    q = _qindex(per_bank, NB, r_rank[req], r_bank[req])
                    if cmdq_n[ch, q] < CQS:
                        if (not unified) and r_write[req]:
                            if pend_rd_cnt[r_aid[req]] > 0:
                                draining[ch] = 0
                                break
                            draining[ch] -= 1
                        cmdq[ch, q, cmdq_n[ch, q]] = req
                        cmdq_n[ch, q] += 1
                        cq_total[ch] += 1
                        qb[ch, q] = 0
                        gmin[ch] = 0
                        if use_wb:
                            for k in range(i, wb_n[ch] - 1):
                                wb[ch, k] = wb[ch, k + 1]
                            wb_n[ch] -= 1
                        else:
                            for k in range(i, rq_n[ch] - 1):
                                rq[ch, k] = rq[ch, k + 1]
                            rq_n[ch] -= 1
                        moved = True
                        break
                dirty[ch] = moved or draining[ch] != before
        if T == next_ref:
            next_ref += refint
        # ---- front end (after the memory tick, as DRAMsim3's trace CPU)
        added_at = T + 1
        if fe_mode == 0:
            if not eof:
                if get_next:
                    get_next = False
                    if p < N:
                        cur = fe_order[p]
                        cur_write = r_write[cur]
                        p += 1
                        if tail_mode == 1 and p == N:
                            eof = True  # no newline after the last line: read once
                        if tail_mode == 0 and p == N:
                            eof = True  # the re-read of the last line at end of file
                    else:
                        eof = True
                        cur = -1
                if cur >= 0 and r_time[cur] <= T:
                    ch = r_ch[cur]
                    if unified or cur_write == 0:
                        ok = rq_n[ch] < TQS
                    else:
                        ok = wb_n[ch] < TQS
                    get_next = ok
                    if ok:
                        accepted += 1
                        scheduled, max_done = _accept(
                            cur, ch, cur_write, added_at, last, unified, r_aid, pend_wr,
                            pend_rd_cnt, pend_rd_sum, rq, rq_n, wb, wb_n, stats, dirty,
                            scheduled, max_done)
        else:
            for ch in range(C):
                k = ch_ptr[ch]
                if k >= fe_start[ch + 1]:
                    continue
                cur = fe_order[k]
                if r_time[cur] > T:
                    continue
                w = r_write[cur]
                ok = (rq_n[ch] < TQS) if (unified or w == 0) else (wb_n[ch] < TQS)
                if not ok:
                    continue
                ch_ptr[ch] = k + 1
                accepted += 1
                scheduled, max_done = _accept(
                    cur, ch, w, added_at, last, unified, r_aid, pend_wr, pend_rd_cnt,
                    pend_rd_sum, rq, rq_n, wb, wb_n, stats, dirty, scheduled, max_done)
        if until_done and accepted >= n_real and scheduled >= accepted and T >= max_done:
            ticks = T + 1
            break
    return stats, rank_act, rank_idle, ticks, accepted, nlog, max_done


