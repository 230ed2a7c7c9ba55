"""SCALE-Sim-compatible cycle run of one GEMM layer: demand streams through double-buffered SRAMs.

This reproduces the semantics of SCALE-Sim 3.0.0 (scalesim-project/scale-sim-v3, Apache-2.0) for a
GEMM topology without sparsity or custom layouts, computed independently and fast (numba, built
ahead of time: :mod:`sim.micro.systolic_kernel`, :mod:`sim.micro.systolic_aot`, so ``xpusim
import scalesim`` imports no numba):

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

from sim.micro.systolic import DATAFLOWS, fold_cycles, spatial_dims
from sim.micro.systolic_aot import kernels

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


def _run_calc(df: int, m: int, n: int, k: int, rows: int, cols: int, row_folds: int,
              col_folds: int, fold_len: int, if_words: int, f_words: int,
              of_words: int) -> np.ndarray:
    """CALC mode in three passes (reads never stall there, so they decouple from timing)."""
    k_ = kernels()
    if_miss, if_row = k_.calc_read_pass(df, 0, m, n, k, rows, cols, row_folds, col_folds,
                                        fold_len, if_words)
    f_miss, f_row = k_.calc_read_pass(df, 1, m, n, k, rows, cols, row_folds, col_folds,
                                      fold_len, f_words)
    w = k_.calc_write_pass(df, m, n, k, rows, cols, row_folds, col_folds, fold_len, of_words,
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
        out = kernels().run(_DF_CODE[df], m, n, k, rows, cols, row_folds, col_folds, fold_len,
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
