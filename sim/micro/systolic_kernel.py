"""The numba kernel of the SCALE-Sim-compatible GEMM run (:mod:`sim.micro.systolic_trace`,
which holds the model's description and its Python side): the USER-mode run (``_run``) and
the CALC-mode passes (``_calc_read_pass``, ``_calc_write_pass``), built ahead of time by
:mod:`sim.micro.systolic_aot`."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.micro.systolic_trace import ACTIVE_FRAC, SETS_PER_BUFFER


@njit(cache=True)
def _user_read(st, prm, set_of, idx, cycle, offset):
    """USER read buffer: st = [win_start, win_end, last_prefetch, accesses]; returns offset."""
    num_sets, n_active, n_pref, per_prefetch, bw = prm[0], prm[1], prm[2], prm[4], prm[5]
    sid = set_of[idx]
    tries = 0
    while True:
        s, e = st[0], st[1]
        if s < e:
            hit = s <= sid < e
        else:
            hit = sid >= s or sid < e
        if hit:
            return offset
        tries += 1
        if tries > num_sets + 2:   # SCALE-Sim would loop for ever; give up on the address
            return offset
        s = (s + n_pref) % num_sets
        st[0] = s
        st[1] = (s + n_active) % num_sets
        st[3] += per_prefetch * bw
        st[2] += per_prefetch + 1
        p = st[2] - (cycle + offset)
        offset += p
        if p > 0:
            offset += p


@njit(cache=True)
def _ofmap_row_count(df, r, fr, fc, m, n, k, rows, cols):
    """Valid output words the array writes in fold row ``r`` (their addresses do not matter to
    the write buffer, only how many arrive per cycle)."""
    if df == 0:
        p, h, w = k - 1, rows, min(cols, n - fc * cols)
        lo = max(0, r - p - h + 1)
        hi = min(w, r - p - (rows - min(rows, m - fr * rows)) + 1)
    else:
        p = 2 * rows - 1
        h = m if df == 1 else n
        w = min(cols, n - fc * cols) if df == 1 else min(cols, m - fc * cols)
        lo = max(0, r - p - h + 1)
        hi = min(w, r - p + 1)
    return hi - lo if hi > lo else 0


@njit(cache=True)
def _write_row(wb, lines, cycle, q):
    """``q`` output words arrive at ``cycle``; returns the cycle the array may go on.
    wb = [free, line_idx, n_lines, drain_line, drain_end, accesses, max_c, total, drain_size,
          bw, error]"""
    free, line_idx, n_lines, drain_line, drain_end = wb[0], wb[1], wb[2], wb[3], wb[4]
    accesses, max_c, active, bw = wb[5], wb[6], wb[7] - wb[8], wb[9]
    per_drain = (wb[8] + bw - 1) // bw
    ring = lines.size
    current = cycle
    for _ in range(q):
        line_idx += 1
        free -= 1
        if line_idx == bw:
            lines[n_lines % ring] = bw
            n_lines += 1
            line_idx = 0
            if n_lines - drain_line >= ring:
                wb[10] = 2
        if current < drain_end:
            if free <= 0:
                current = drain_end
        elif free < active:
            if line_idx != 0:
                lines[n_lines % ring] = line_idx
                n_lines += 1
                line_idx = 0
            end_line = min(drain_line + per_drain, n_lines)
            cnt = end_line - drain_line
            if cnt <= 0:
                wb[10] = 1
                drain_end = current - 1
            else:
                data = cnt * bw - (bw - lines[(end_line - 1) % ring])
                accesses += data
                free += data
                drain_line = end_line
                drain_end = current + cnt - 1
                if drain_end > max_c:
                    max_c = drain_end
    wb[0], wb[1], wb[2], wb[3], wb[4], wb[5], wb[6] = free, line_idx, n_lines, drain_line, \
        drain_end, accesses, max_c
    return current


@njit(cache=True)
def _flush_writes(wb, lines, cycle):
    """SCALE-Sim's final drain of everything left in the write buffer from ``cycle`` on."""
    ring = lines.size
    if wb[1] != 0:
        lines[wb[2] % ring] = wb[1]
        wb[2] += 1
        wb[1] = 0
    bw = wb[9]
    per_drain = (wb[8] + bw - 1) // bw
    while wb[3] < wb[2]:
        end_line = min(wb[3] + per_drain, wb[2])
        cnt = end_line - wb[3]
        wb[5] += cnt * bw - (bw - lines[(end_line - 1) % ring])
        wb[3] = end_line
        wb[4] = cycle + cnt - 1
        if wb[4] > wb[6]:
            wb[6] = wb[4]
        cycle = wb[4] + 1


@njit(cache=True)
def _new_write_buffer(of_words, bw, row_words):
    """State of an empty write buffer and a ring of line fill counts; lines waiting to drain
    hold at most the buffer's words plus one cycle's outputs (SCALE-Sim stalls the array first).
    """
    wb = np.zeros(11, dtype=np.int64)
    active = int(math.ceil(of_words * ACTIVE_FRAC))
    wb[0] = of_words
    wb[6] = -(1 << 62)
    wb[7] = of_words
    wb[8] = of_words - active
    wb[9] = bw
    return wb, np.zeros(2 * (of_words + row_words + bw) + 64, dtype=np.int64)


@njit(cache=True)
def _fold_consts(df, op, fr, fc, m, n, k, rows, cols):
    """Per-fold constants of a read stream: (base, c_stride, t_stride, prefix, height, width,
    stationary). Element (r, c) of a streamed operand has address index
    ``base + c*c_stride + (r - c - prefix)*t_stride``; a stationary one (read flat, flipped)
    ``base + c*c_stride + (rows - 1 - r)`` with ``r < height``."""
    if df == 0:
        if op == 0:
            return fr * rows * k, k, 1, 0, k, min(rows, m - fr * rows), False
        return fc * cols * k, k, 1, 0, k, min(cols, n - fc * cols), False
    if df == 1:
        if op == 0:
            return fr * rows, 1, k, rows, m, min(rows, k - fr * rows), False
        return fc * cols * k + fr * rows, k, 1, 0, min(rows, k - fr * rows), \
            min(cols, n - fc * cols), True
    if op == 0:
        return fc * cols * k + fr * rows, k, 1, 0, min(rows, k - fr * rows), \
            min(cols, m - fc * cols), True
    return fr * rows, 1, k, rows, n, min(rows, k - fr * rows), False


@njit(cache=True)
def _user_read_row(st, prm, set_of, df, op, fr, fc, r, m, n, k, rows, cols, cycle):
    """One cycle's requests of one operand against a USER read buffer; returns the offset
    (1 = hit latency, more when prefetches stalled the request)."""
    base, cst, tst, p, h, w, stationary = _fold_consts(df, op, fr, fc, m, n, k, rows, cols)
    offset = 1
    if stationary:
        ki = rows - 1 - r
        if r >= rows or ki >= h:
            return offset
        lo, hi, rb, step = 0, w, base + ki, cst
    else:
        lo = max(0, r - p - h + 1)
        hi = min(w, r - p + 1)
        rb, step = base + (r - p) * tst, cst - tst
    for c in range(lo, hi):
        offset = _user_read(st, prm, set_of, rb + c * step, cycle, offset)
    return offset


@njit(cache=True)
def _run(df, m, n, k, rows, cols, row_folds, col_folds, fold_len, if_words, f_words, of_words,
         of_bw, if_set, f_set, if_prm, f_prm):
    """USER mode: reads may stall, so the three streams advance together row by row."""
    ust_if = np.zeros(4, dtype=np.int64)
    ust_f = np.zeros(4, dtype=np.int64)
    for st, prm in ((ust_if, if_prm), (ust_f, f_prm)):
        st[1] = prm[1]
        st[2] = -1                  # last prefetch cycle of the initial fill
        st[3] = prm[3] * prm[5]     # accesses of the initial fill
    wb, lines = _new_write_buffer(of_words, of_bw, rows + cols)
    stall = 0
    max_out = -(1 << 62)
    last_out = 0
    i = 0
    for fc in range(col_folds):
        for fr in range(row_folds):
            for r in range(fold_len):
                cycle = i + stall
                s_if = _user_read_row(ust_if, if_prm, if_set, df, 0, fr, fc, r, m, n, k, rows,
                                      cols, cycle) - 1
                s_f = _user_read_row(ust_f, f_prm, f_set, df, 1, fr, fc, r, m, n, k, rows,
                                     cols, cycle) - 1
                q = _ofmap_row_count(df, r, fr, fc, m, n, k, rows, cols)
                current = _write_row(wb, lines, cycle, q) if q > 0 else cycle
                stall += max(s_if, s_f, current - cycle)
                if current > max_out:
                    max_out = current
                last_out = current
                i += 1
    _flush_writes(wb, lines, last_out)
    out = np.zeros(12, dtype=np.int64)
    out[0] = ust_if[3]
    out[1] = ust_f[3]
    out[2] = -if_prm[3]
    out[3] = -f_prm[3]
    out[4] = wb[5]
    out[5] = wb[6]
    out[6] = max_out
    out[7] = stall
    out[8] = wb[10]
    return out


@njit(cache=True)
def _calc_read_pass(df, op, m, n, k, rows, cols, row_folds, col_folds, fold_len, words):
    """Misses of one operand's CALC read buffer over the whole run, and the fold row of its
    first request (cycles are not needed: CALC reads never stall)."""
    size = m * k if op == 0 else k * n
    epoch_of = np.full(size, -1, dtype=np.int32)
    epoch_len = (words // SETS_PER_BUFFER) * (SETS_PER_BUFFER // 2)
    epoch = 0
    count = 0
    misses = 0
    first_row = -1
    i0 = 0
    for fc in range(col_folds):
        for fr in range(row_folds):
            base, cst, tst, p, h, w, stationary = _fold_consts(df, op, fr, fc, m, n, k, rows,
                                                                cols)
            if stationary:
                r_hi = rows if rows < fold_len else fold_len
            else:
                r_hi = min(fold_len, p + h + w - 1)
            for r in range(r_hi):
                if stationary:
                    ki = rows - 1 - r
                    if ki >= h:
                        continue
                    lo, hi, rb = 0, w, base + ki
                else:
                    lo = max(0, r - p - h + 1)
                    hi = min(w, r - p + 1)
                    rb = base + (r - p) * tst
                    cst_eff = cst - tst
                if hi <= lo:
                    continue
                if first_row < 0:
                    first_row = i0 + r
                for c in range(lo, hi):
                    if stationary:
                        idx = rb + c * cst
                    else:
                        idx = rb + c * cst_eff
                    if epoch_of[idx] != epoch:
                        epoch_of[idx] = epoch
                        misses += 1
                        count += 1
                        if count == epoch_len:
                            epoch += 1
                            count = 0
            i0 += fold_len
    return misses, first_row


@njit(cache=True)
def _calc_write_pass(df, m, n, k, rows, cols, row_folds, col_folds, fold_len, of_words, of_bw,
                     row_a, row_b):
    """The write-buffer side of a CALC run: [dram_writes, ofmap_stop, max_out, stall,
    error, stall before row_a, stall before row_b]."""
    wb, lines = _new_write_buffer(of_words, of_bw, rows + cols)
    stall = 0
    st_a = 0
    st_b = 0
    max_out = -(1 << 62)
    last_out = 0
    i = 0
    for fc in range(col_folds):
        for fr in range(row_folds):
            for r in range(fold_len):
                if i == row_a:
                    st_a = stall
                if i == row_b:
                    st_b = stall
                cycle = i + stall
                q = _ofmap_row_count(df, r, fr, fc, m, n, k, rows, cols)
                current = _write_row(wb, lines, cycle, q) if q > 0 else cycle
                stall += current - cycle
                if current > max_out:
                    max_out = current
                last_out = current
                i += 1
    _flush_writes(wb, lines, last_out)
    return np.array([wb[5], wb[6], max_out, stall, wb[10], st_a, st_b], dtype=np.int64)
