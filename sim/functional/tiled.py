"""Run a contraction as a list of work items, the way a tiled kernel or an array does.

A work item ``(x, i0, i1, j0, j1, k0, k1, dest)`` computes the output tile
``[x, i0:i1, j0:j1]`` over the reduction range ``k0:k1``: its accumulator starts at zero, adds
``block`` exact products at a time and rounds after each addition (``acc`` rounder: the
accumulator's datatype and rounding), then either *stores* the tile into partial buffer
``dest`` (GPU split-K: each split writes its own workspace) or *accumulates* it into ``dest``
with the ``obuf`` rounder (systolic folds adding into the output buffer). Partial buffers start
as NaN when storing, so a tile nobody computed shows up as NaN, and as zero when accumulating.
:func:`reduce_partials` then sums the buffers in a given order with a given rounding.

Products are formed in float64, which is exact for every input format up to fp32 (a 24-bit
by 24-bit significand product has at most 48 bits); the ``block`` products are summed in float64
before the rounding, i.e. a fused multi-operand add (as tensor cores do) modelled to within
float64 rounding (2^-53 relative, far below any accumulator's rounding).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from kernels_ref.dtypes import get_format
from kernels_ref.gemm import mac_rows4
from sim.functional.formats import FP32_RNE, Rounder, apply, round_inplace

STORE, ACCUMULATE = 0, 1


@njit(cache=True)
def _item_mac32(a, b, acc, i0, rows, j0, w, k0, k1):
    """One rounding per multiply-accumulate into fp32, when every product is exact in fp32
    (operands of at most 12 significand bits): float32 arithmetic is then exactly the model,
    and vectorises twice as wide."""
    acc32 = np.zeros((rows, w), dtype=np.float32)
    bc = np.empty(w, dtype=np.float32)
    for k in range(k0, k1):
        for j in range(w):
            bc[j] = np.float32(b[k, j0 + j])
        for r in range(rows):
            x = np.float32(a[i0 + r, k])
            row = acc32[r]
            for j in range(w):
                row[j] = row[j] + x * bc[j]
    for r in range(rows):
        for j in range(w):
            acc[r, j] = np.float64(acc32[r, j])


@njit(cache=True)
def _item(a, b, out, i0, i1, j0, j1, k0, k1, block, acc_code, combine, obuf_code, exact32):
    """One work item: four rows at a time, four k-steps per sweep over the columns; after each
    block of products the accumulator rows are rounded in place."""
    w = j1 - j0
    rows = i1 - i0
    acc = np.zeros((rows + 3, w))  # three spare rows so the 4-row sweep needs no tail case
    if block == 1 and acc_code[0] == FP32_RNE and exact32:
        _item_mac32(a, b, acc, i0, rows, j0, w, k0, k1)
        k1 = k0  # done: skip the general loop
    bc = np.empty((block, w))
    zero = np.zeros(a.shape[1])
    for kb0 in range(k0, k1, block):
        kb = min(block, k1 - kb0)
        for kk in range(kb):
            for j in range(w):
                bc[kk, j] = b[kb0 + kk, j0 + j]
        for r in range(0, rows, 4):
            ra = a[i0 + r]
            rb = a[i0 + r + 1] if r + 1 < rows else zero
            rc = a[i0 + r + 2] if r + 2 < rows else zero
            rd = a[i0 + r + 3] if r + 3 < rows else zero
            c0, c1, c2, c3 = acc[r], acc[r + 1], acc[r + 2], acc[r + 3]
            mac_rows4(c0, c1, c2, c3, ra, rb, rc, rd, bc, kb0, kb, w)
            round_inplace(acc[r:min(rows, r + 4)].reshape(-1), acc_code)
    for r in range(rows):
        for j in range(w):
            if combine == STORE:
                out[i0 + r, j0 + j] = acc[r, j]
            else:
                out[i0 + r, j0 + j] = apply(out[i0 + r, j0 + j] + acc[r, j], obuf_code)


@njit(parallel=True, cache=True)
def _run_parallel(a, b, ws, items, block, acc_code, combine, obuf_code, exact32):
    for t in prange(items.shape[0]):
        it = items[t]
        _item(a[it[0]], b[it[0]], ws[it[7], it[0]], it[1], it[2], it[3], it[4], it[5], it[6],
              block, acc_code, combine, obuf_code, exact32)


def _rounds(items: np.ndarray, shape: tuple[int, int, int, int]) -> list[np.ndarray]:
    """Split ``items`` (in order) into runs whose output regions do not overlap, so each run can
    execute in parallel and overlapping items (a mapping that computes a tile twice) still run
    in their listed order."""
    runs: list[np.ndarray] = []
    start = 0
    painted = np.zeros(shape, dtype=np.bool_)
    for t in range(items.shape[0]):
        x, i0, i1, j0, j1, _, _, dest = (int(v) for v in items[t])
        region = painted[dest, x, i0:i1, j0:j1]
        if region.any():
            runs.append(items[start:t])
            start = t
            painted[:] = False
            region = painted[dest, x, i0:i1, j0:j1]
        region[:] = True
    runs.append(items[start:])
    return [r for r in runs if len(r)]


def run_items(a: np.ndarray, b: np.ndarray, items: np.ndarray, n_dest: int, block: int,
              acc: Rounder, combine: int = STORE, obuf: Rounder | None = None,
              inputs: str = "fp64") -> np.ndarray:
    """Execute work items over ``a`` [X, M, K] and ``b`` [X, K, N] (float64 values already in
    the input datatype ``inputs``). Returns the partial buffers [n_dest, X, M, N]."""
    xs, m, _ = a.shape
    n = b.shape[2]
    fill = np.nan if combine == STORE else 0.0
    ws = np.full((n_dest, xs, m, n), fill)
    items = np.ascontiguousarray(items, dtype=np.int64).reshape(-1, 8)
    obuf_code = (obuf or Rounder("fp64")).code
    a = np.ascontiguousarray(a, dtype=np.float64)
    # B may stay float32 when its values are (weights in a datatype no wider than fp32)
    b = np.ascontiguousarray(b, dtype=np.float32 if b.dtype == np.float32 else np.float64)
    fmt = get_format(inputs)
    exact32 = (fmt.man_bits + 1 if fmt.is_float else fmt.bits) <= 12
    for run in _rounds(items, ws.shape):
        _run_parallel(a, b, ws, run, max(1, int(block)), acc.code, combine, obuf_code, exact32)
    return ws


@njit(cache=True)
def _reduce(ws, order, red_code, out):
    flat_out = out.reshape(-1)
    for e in range(flat_out.size):
        s = 0.0
        for t in range(order.size):
            v = ws[order[t]].reshape(-1)[e]
            s = v if t == 0 else apply(s + v, red_code)
        flat_out[e] = s


def reduce_partials(ws: np.ndarray, order: list[int] | np.ndarray, red: Rounder) -> np.ndarray:
    """Sum partial buffers ``ws[order[0]] + ws[order[1]] + ...`` left to right, rounding each
    addition with ``red``. An index listed twice is added twice (that is the point: a wrong
    reduction plan shows in the numbers)."""
    order = np.asarray(order, dtype=np.int64)
    out = np.empty(ws.shape[1:])
    if order.size == 0:
        out[:] = 0.0
        return out
    _reduce(np.ascontiguousarray(ws), order, red.code, out)
    return out
