"""SCALE-Sim-compatible cycle run of one GEMM layer: demand streams through double-buffered SRAMs.

This reproduces the semantics of SCALE-Sim 3.0.0 (scalesim-project/scale-sim-v3, Apache-2.0) for a
GEMM topology without sparsity or custom layouts, computed independently and fast (numba):

* **Demand streams.** Per fold (column folds outer, row folds inner) each operand sends one row of
  requests per cycle to its SRAM: the streamed operands enter skewed (one cycle per PE row or
  column), the stationary operand is read once at the start of its fold (flipped), the outputs
  leave skewed after the reduction; fold lengths are those of :mod:`sim.micro.systolic`.
  GEMM operand addresses: ifmap ``m*K + k``, filter ``n*K + k``, ofmap ``m*N + n`` plus the
  configured offsets.
* **Read buffers, no-stall mode (``CALC``).** Misses are grouped into sets of ``floor(words/100)``
  distinct addresses; after every 50 sets the active half is replaced by the prefetched half, so an
  address hits only if it was fetched since the last such swap. DRAM reads = misses; the first
  prefetch ends just before the first request at 10 words/cycle, which sets the start of the DRAM
  trace (the "incl. prefetch" part of total cycles). No read stalls.
* **Read buffers, given bandwidth (``USER``).** The operand's prefetch order (SCALE-Sim's prefetch
  matrix, diagonal order where SCALE-Sim uses it) is cut into sets of ``ceil(words/100)``
  addresses; a window of active sets rotates by the prefetch-half every time a request misses,
  each rotation fetching ``ceil(prefetch_words/bw)`` lines of ``bw`` words and delaying the
  request by the time the lines take (SCALE-Sim's accounting, including its doubling of positive
  stalls).
* **Write buffer.** Outputs collect in lines of the DRAM write width; when more than the drain
  half is occupied it drains (one line per cycle) and a full buffer stalls the array.

Total cycles = last ofmap DRAM write - first ifmap/filter DRAM read, as SCALE-Sim prints them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numba import njit

from sim.micro.systolic import DATAFLOWS, fold_cycles, spatial_dims

_DF_CODE = {"os": 0, "ws": 1, "is": 2}
CALC_READ_BW = 10       # words/cycle SCALE-Sim assumes for prefetches in CALC mode
SETS_PER_BUFFER = 100   # SCALE-Sim divides each read buffer into 100 sets
ACTIVE_FRAC = 0.5       # double buffering: half active, half prefetch


@dataclass(frozen=True)
class ScaleSimLayer:
    """SCALE-Sim's per-layer report, computed here (cycles and words, word = 1 byte)."""

    total_cycles: int
    compute_cycles: int
    stall_cycles: int
    utilization: float
    mapping_efficiency: float
    sram_ifmap_reads: int
    sram_filter_reads: int
    sram_ofmap_writes: int
    dram_ifmap_reads: int
    dram_filter_reads: int
    dram_ofmap_writes: int
    dram_ifmap_start: int
    dram_filter_start: int
    dram_ofmap_stop: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ScaleSimConfig:
    """The subset of a SCALE-Sim config that a GEMM run depends on (sizes in KiB, bw in words)."""

    rows: int
    cols: int
    dataflow: str
    ifmap_kb: int
    filter_kb: int
    ofmap_kb: int
    bandwidth: int = 10
    user_bandwidth: bool = False
    ifmap_bank_bw: int = 10
    filter_bank_bw: int = 10
    ifmap_offset: int = 0
    filter_offset: int = 10000000
    ofmap_offset: int = 20000000


# --- prefetch order (USER mode) --------------------------------------------------------------
def _diag_order(mat: np.ndarray) -> np.ndarray:
    """Elements of ``mat`` in SCALE-Sim's anti-diagonal prefetch order (row high to low)."""
    a, b = mat.shape
    d = np.arange(a + b - 1)
    lens = np.minimum(d, a - 1) - np.maximum(0, d - b + 1) + 1
    cum = np.concatenate(([0], np.cumsum(lens)[:-1]))
    r = np.arange(a)[:, None]
    c = np.arange(b)[None, :]
    dd = r + c
    pos = cum[dd] + (np.minimum(dd, a - 1) - r)
    out = np.empty(a * b, dtype=np.int64)
    out[pos.ravel()] = mat.ravel()
    return out


def _prefetch_matrix(df: str, operand: str, m: int, n: int, k: int, rows: int,
                     cols: int) -> tuple[np.ndarray, bool]:
    """SCALE-Sim's prefetch matrix of ``operand`` (ifmap|filter) as address indices (-1 = pad)
    and whether SCALE-Sim flattens it in diagonal order."""
    def stack(n_folds: int, height: int, width: int, fn) -> np.ndarray:
        t = np.arange(height)[:, None]
        j = np.arange(width)[None, :]
        blocks = []
        for f in range(n_folds):
            idx, valid = fn(f, t, j)
            blocks.append(np.where(valid, idx, -1))
        return np.concatenate(blocks, axis=0).astype(np.int64)

    if df == "os" and operand == "ifmap":   # ifmap^T[:, fold rows of M]: K x R per row fold
        return stack(math.ceil(m / rows), k, rows,
                     lambda f, t, j: ((f * rows + j) * k + t, f * rows + j < m)), True
    if df == "os" and operand == "filter":  # filter[:, fold cols of N]: K x C per col fold
        return stack(math.ceil(n / cols), k, cols,
                     lambda f, t, j: ((f * cols + j) * k + t, f * cols + j < n)), True
    if df == "ws" and operand == "ifmap":   # ifmap[:, fold cols of K]: M x R per row fold
        return stack(math.ceil(k / rows), m, rows,
                     lambda f, t, j: (t * k + f * rows + j, f * rows + j < k)), True
    if df == "ws" and operand == "filter":  # filter[:, fold cols of N]: K x C, row-major
        return stack(math.ceil(n / cols), k, cols,
                     lambda f, t, j: ((f * cols + j) * k + t, f * cols + j < n)), False
    if df == "is" and operand == "ifmap":   # ifmap^T[:, fold cols of M]: K x C, row-major
        return stack(math.ceil(m / cols), k, cols,
                     lambda f, t, j: ((f * cols + j) * k + t, f * cols + j < m)), False
    if df == "is" and operand == "filter":  # filter[fold rows of K, :]^T: N x R per row fold
        return stack(math.ceil(k / rows), n, rows,
                     lambda f, t, j: (t * k + f * rows + j, f * rows + j < k)), True
    raise ValueError(f"unknown dataflow/operand {df}/{operand}")


def _user_sets(df: str, operand: str, m: int, n: int, k: int, rows: int, cols: int,
               total_words: int, bw: int) -> tuple[np.ndarray, np.ndarray]:
    """Set id of every address (indexed by address - offset) and the USER read-buffer
    parameters ``[num_sets, n_active, n_prefetch, first_lines, lines_per_prefetch]``."""
    mat, diag = _prefetch_matrix(df, operand, m, n, k, rows, cols)
    flat = _diag_order(mat) if diag else mat.ravel()
    valid = flat[flat >= 0]
    eps = math.ceil(total_words / SETS_PER_BUFFER)
    size = m * k if operand == "ifmap" else k * n
    set_of = np.full(size, -1, dtype=np.int64)
    set_of[valid] = np.arange(valid.size, dtype=np.int64) // eps
    num_sets = valid.size // eps + 1
    active = math.ceil(total_words * ACTIVE_FRAC)
    prefetch = total_words - active
    n_active = min(num_sets, math.ceil(active / eps))
    n_pref = min(num_sets - n_active, math.ceil(prefetch / eps))
    fetch_lines = math.ceil(flat.size / bw)
    first_lines = min(math.ceil(active / bw), fetch_lines)
    per_prefetch = math.ceil(prefetch / bw)
    return set_of, np.array([num_sets, n_active, n_pref, first_lines, per_prefetch, bw],
                            dtype=np.int64)


# --- the numba kernel ------------------------------------------------------------------------
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


def _run_calc(df: int, m: int, n: int, k: int, rows: int, cols: int, row_folds: int,
              col_folds: int, fold_len: int, if_words: int, f_words: int,
              of_words: int) -> np.ndarray:
    """CALC mode in three passes (reads never stall there, so they decouple from timing)."""
    if_miss, if_row = _calc_read_pass(df, 0, m, n, k, rows, cols, row_folds, col_folds,
                                      fold_len, if_words)
    f_miss, f_row = _calc_read_pass(df, 1, m, n, k, rows, cols, row_folds, col_folds, fold_len,
                                    f_words)
    w = _calc_write_pass(df, m, n, k, rows, cols, row_folds, col_folds, fold_len, of_words,
                         cols, if_row, f_row)
    out = np.zeros(12, dtype=np.int64)
    out[0], out[1] = if_miss, f_miss
    for j, (miss, row, words, st) in enumerate(((if_miss, if_row, if_words, w[5]),
                                                (f_miss, f_row, f_words, w[6]))):
        ips = words // SETS_PER_BUFFER
        first_cycle = row + st
        if ips > 0 and miss >= (SETS_PER_BUFFER // 2) * ips:
            need = (SETS_PER_BUFFER // 2) * ips
            out[2 + j] = first_cycle - (need + CALC_READ_BW - 1) // CALC_READ_BW
        else:
            sets = (miss + ips - 1) // ips if ips > 0 else 1
            out[2 + j] = -((sets * ips + CALC_READ_BW - 1) // CALC_READ_BW)
    out[4], out[5], out[6], out[7], out[8] = w[0], w[1], w[2], w[3], w[4]
    return out


def trace_cycles(m: int, n: int, k: int, cfg: ScaleSimConfig) -> int:
    """The compute cycles :func:`run_gemm` traces for ``(M, N, K)`` under ``cfg``: its folds
    times the cycles of one fold (stalls come on top), without running it."""
    sr, sc, t = spatial_dims(m, n, k, cfg.dataflow)
    return math.ceil(sr / cfg.rows) * math.ceil(sc / cfg.cols) * \
        fold_cycles(cfg.rows, cfg.cols, t, cfg.dataflow)


def run_gemm(m: int, n: int, k: int, cfg: ScaleSimConfig) -> ScaleSimLayer:
    """SCALE-Sim's report for one GEMM layer ``(M, N, K)`` under ``cfg`` (exact)."""
    df = cfg.dataflow
    if df not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, got '{df}'")
    rows, cols = cfg.rows, cfg.cols
    sr, sc, t = spatial_dims(m, n, k, df)
    row_folds, col_folds = math.ceil(sr / rows), math.ceil(sc / cols)
    fold_len = fold_cycles(rows, cols, t, df)
    if_words, f_words, of_words = cfg.ifmap_kb * 1024, cfg.filter_kb * 1024, cfg.ofmap_kb * 1024
    empty = np.zeros(1, dtype=np.int64)
    if cfg.user_bandwidth:
        if_set, if_prm = _user_sets(df, "ifmap", m, n, k, rows, cols, if_words, cfg.ifmap_bank_bw)
        f_set, f_prm = _user_sets(df, "filter", m, n, k, rows, cols, f_words, cfg.filter_bank_bw)
        of_bw = cfg.bandwidth
    else:
        if_set = f_set = if_prm = f_prm = empty
        of_bw = cols
    if cfg.user_bandwidth:
        out = _run(_DF_CODE[df], m, n, k, rows, cols, row_folds, col_folds, fold_len,
                   if_words, f_words, of_words, of_bw, if_set, f_set, if_prm, f_prm)
    else:
        out = _run_calc(_DF_CODE[df], m, n, k, rows, cols, row_folds, col_folds, fold_len,
                        if_words, f_words, of_words)
    if out[8]:
        raise ValueError("SCALE-Sim's write buffer would fail on this configuration "
                         "(ofmap SRAM smaller than one drain line)")
    compute = int(out[6])
    total = int(out[5] - min(out[2], out[3]))
    macs = m * n * k
    folds = row_folds * col_folds
    used = sum(min(rows, sr - i * rows) for i in range(row_folds)) * \
        sum(min(cols, sc - j * cols) for j in range(col_folds))
    if df == "os":
        sram = (col_folds * m * k, row_folds * k * n, m * n + folds * (rows + cols))
    elif df == "ws":
        sram = (col_folds * m * k, k * n, row_folds * m * n)
    else:
        sram = (m * k, col_folds * k * n, row_folds * m * n)
    return ScaleSimLayer(
        total_cycles=total, compute_cycles=compute, stall_cycles=int(out[7]),
        utilization=macs / (compute * rows * cols) if compute > 0 else 0.0,
        mapping_efficiency=used / (folds * rows * cols),
        sram_ifmap_reads=sram[0], sram_filter_reads=sram[1], sram_ofmap_writes=sram[2],
        dram_ifmap_reads=int(out[0]), dram_filter_reads=int(out[1]),
        dram_ofmap_writes=int(out[4]), dram_ifmap_start=int(out[2]),
        dram_filter_start=int(out[3]), dram_ofmap_stop=int(out[5]))
