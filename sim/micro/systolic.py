"""Cycle-exact systolic-array GEMM timing: fill and drain per fold for OS, WS and IS dataflows.

A GEMM ``C[M,N] = A[M,K] @ B[K,N]`` on an array of ``rows x cols`` PEs is cut into *folds*: the
two spatial operand dimensions (``Sr`` on the rows, ``Sc`` on the columns) are tiled by the array
and the third (``T``) streams through it in time. The mapping of (M, N, K) to (Sr, Sc, T) is the one
SCALE-Sim uses (Samajdar et al., "A Systematic Methodology for Characterizing Scalability of DNN
Accelerators using SCALE-Sim", ISPASS 2020, Sec. III):

=========  ==========  ==========  ==========
dataflow   Sr (rows)   Sc (cols)   T (time)
=========  ==========  ==========  ==========
``os``     M           N           K
``ws``     K           N           M
``is``     K           M           N
=========  ==========  ==========  ==========

Per fold, with R rows and C columns (every fold padded to the full array, as in SCALE-Sim):

* output stationary: operands enter skewed, ``T`` steps of accumulation, then the R x C outputs
  drain out skewed: ``R + C + T - 2`` cycles;
* weight / input stationary: ``R`` cycles to load the stationary operand, then the streamed
  operand enters skewed over ``T`` steps and partial sums leave at the bottom:
  ``2R + C + T - 2`` cycles.

Folds run back to back (no overlap), which is SCALE-Sim's schedule; ``overlap_folds=True`` models
an array that double-buffers the stationary operand (TPU-style), so only the first fold pays the
preload and the last fold the drain: ``F * max(T, preload) + fill + drain``.

SCALE-Sim's report prints the index of the last cycle, i.e. the cycle count minus one; the exact
peer-compatible run (with SRAM and DRAM traffic) lives in :mod:`sim.micro.systolic_trace`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

DATAFLOWS = ("os", "ws", "is")


@dataclass(frozen=True)
class SystolicCycles:
    """Timing of one GEMM on one array.

    ``cycles`` in clock cycles; ``folds = row_folds * col_folds``; ``cycles_per_fold`` is the same
    for every fold (folds are padded); ``utilization`` = MACs / (cycles x PEs);
    ``mapping_efficiency`` = mean fraction of PEs holding real work per fold.
    """

    cycles: int
    folds: int
    row_folds: int
    col_folds: int
    cycles_per_fold: int
    sr: int
    sc: int
    t: int
    macs: int
    utilization: float
    mapping_efficiency: float


def spatial_dims(m: int, n: int, k: int, dataflow: str) -> tuple[int, int, int]:
    """(Sr, Sc, T) of a GEMM under ``dataflow`` (see the module table)."""
    if dataflow == "os":
        return m, n, k
    if dataflow == "ws":
        return k, n, m
    if dataflow == "is":
        return k, m, n
    raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, got '{dataflow}'")


def fold_cycles(rows: int, cols: int, t: int, dataflow: str) -> int:
    """Cycles of one fold (fill + ``t`` streaming steps + drain) on a ``rows x cols`` array."""
    if dataflow == "os":
        return rows + cols + t - 2
    if dataflow in ("ws", "is"):
        return 2 * rows + cols + t - 2
    raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, got '{dataflow}'")


@lru_cache(maxsize=65536)
def gemm_cycles(m: int, n: int, k: int, rows: int, cols: int, dataflow: str = "ws",
                overlap_folds: bool = False) -> SystolicCycles:
    """Cycle-exact timing of an (M, N, K) GEMM on one ``rows x cols`` array (memoised).

    With ``overlap_folds`` the stationary operand of the next fold loads while the current one
    computes (and for OS the next fold's operands follow the previous wave), so consecutive folds
    are separated by ``max(T, rows)`` cycles instead of a full fill/drain.
    """
    for name, v in (("M", m), ("N", n), ("K", k), ("rows", rows), ("cols", cols)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    sr, sc, t = spatial_dims(m, n, k, dataflow)
    row_folds, col_folds = math.ceil(sr / rows), math.ceil(sc / cols)
    folds = row_folds * col_folds
    per_fold = fold_cycles(rows, cols, t, dataflow)
    if overlap_folds and folds > 1:
        step = max(t, rows) if dataflow != "os" else max(t, 1)
        cycles = per_fold + (folds - 1) * step
    else:
        cycles = folds * per_fold
    macs = m * n * k
    # PEs used summed over folds: every row fold but the last fills its ``rows``, the last
    # the rest, so the row folds cover ``sr`` in all (the columns likewise ``sc``)
    used = sr * sc
    return SystolicCycles(cycles=cycles, folds=folds, row_folds=row_folds, col_folds=col_folds,
                          cycles_per_fold=per_fold, sr=sr, sc=sc, t=t, macs=macs,
                          utilization=macs / (cycles * rows * cols),
                          mapping_efficiency=used / (folds * rows * cols))


def multi_array_cycles(m: int, n: int, k: int, rows: int, cols: int, arrays: int,
                       dataflow: str = "ws", overlap_folds: bool = False) -> SystolicCycles:
    """A GEMM split over ``arrays`` identical arrays by its column-spatial dimension ``Sc``.

    Each array takes a contiguous slice of ``Sc`` (whole folds; the last array may get fewer);
    the GEMM finishes when the busiest array does. ``utilization`` is over all arrays' PEs.
    """
    if arrays <= 1:
        return gemm_cycles(m, n, k, rows, cols, dataflow, overlap_folds)
    sr, sc, t = spatial_dims(m, n, k, dataflow)
    col_folds = math.ceil(sc / cols)
    per_array_folds = math.ceil(col_folds / arrays)
    sc_slice = min(sc, per_array_folds * cols)
    if dataflow == "os":
        one = gemm_cycles(m, sc_slice, k, rows, cols, dataflow, overlap_folds)
    elif dataflow == "ws":
        one = gemm_cycles(m, sc_slice, k, rows, cols, dataflow, overlap_folds)
    else:  # is: Sc is M
        one = gemm_cycles(sc_slice, n, k, rows, cols, dataflow, overlap_folds)
    macs = m * n * k
    busy = min(arrays, col_folds)
    return SystolicCycles(cycles=one.cycles, folds=math.ceil(sr / rows) * col_folds,
                          row_folds=one.row_folds, col_folds=col_folds,
                          cycles_per_fold=one.cycles_per_fold, sr=sr, sc=sc, t=t, macs=macs,
                          utilization=macs / (one.cycles * rows * cols * arrays),
                          mapping_efficiency=one.mapping_efficiency * busy / arrays)
