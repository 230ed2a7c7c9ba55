"""Cycle fidelity of an NPU GEMM: SCALE-Sim-compatible array run + the tile loads' DRAM stream.

* **Array** — :func:`array_cycles` runs the GEMM's folds through the SCALE-Sim-compatible
  cycle run (:func:`sim.micro.systolic_trace.run_gemm`, CALC mode: reads never stall, the
  ofmap write buffer drains one line per cycle and stalls the array when full) and returns its
  cycle count (SCALE-Sim prints the last cycle's index, i.e. count - 1). Arrays that preload the
  next fold's stationary operand (``overlap_folds``) have no SCALE-Sim counterpart; their count
  is the closed-form schedule of :func:`sim.micro.systolic.gemm_cycles`, exact for that
  schedule. An ofmap buffer of at least twice the GEMM's outputs never starts a drain before the
  end (a drain starts when less than half is free), so it is simulated at that size: same cycle
  count, bounded memory.
* **DRAM** — :func:`gemm_segments` lays the operands out row-major (A, then B, then C, 1 MiB
  aligned) and lists the tile loads of the blocked loop nest the tile model chose (tile shape,
  loop order, resident operands) as segments for :mod:`sim.micro.cycle_dram`.

The device (``sim/devices/npu.py``) combines them: ``stall = t_first_tile + max(0, t_dram -
t_array)`` when double-buffered (tile loads overlap compute), ``t_dram`` otherwise; latency =
``t_array + stall``.
"""

from __future__ import annotations

import math
from functools import lru_cache

from sim.micro.cycle_dram import Segment
from sim.micro.systolic import gemm_cycles

ALIGN = 1 << 20


@lru_cache(maxsize=65536)
def array_cycles(m: int, n: int, k: int, rows: int, cols: int, dataflow: str,
                 overlap_folds: bool, if_words: int, f_words: int,
                 of_words: int) -> tuple[int, int, str]:
    """(cycles, ofmap write-stall cycles, source) of one (M, N, K) GEMM on one array.

    ``*_words`` are the SRAM buffer sizes in operand words (SCALE-Sim's word = one element)."""
    if overlap_folds:
        return gemm_cycles(m, n, k, rows, cols, dataflow, True).cycles, 0, "closed form (overlap)"
    from sim.micro.systolic_trace import ScaleSimConfig, run_gemm

    outputs = m * n
    of_words = max(min(of_words, 2 * outputs + 2 * (rows + cols)), 2 * cols)
    kb = [max(1, math.ceil(w / 1024)) for w in (if_words, f_words, of_words)]
    cfg = ScaleSimConfig(rows=rows, cols=cols, dataflow=dataflow, ifmap_kb=kb[0],
                         filter_kb=kb[1], ofmap_kb=kb[2])
    layer = run_gemm(m, n, k, cfg)
    return layer.compute_cycles + 1, layer.stall_cycles, "scalesim run"


def _tiles(size: int, t: int) -> int:
    return math.ceil(size / t)


def _align(x: int) -> int:
    return -(-x // ALIGN) * ALIGN


def gemm_segments(batch: int, m: int, n: int, k: int, elem: int, c_elem: int,
                  tile: tuple[int, int, int], order: str, a_batched: bool, b_batched: bool,
                  b_once: bool, max_bytes: int) -> tuple[tuple[Segment, ...],
                                                        tuple[Segment, ...]]:
    """(prefix of the tile-load stream up to ``max_bytes``, the first tile's loads).

    Loop nest (as :func:`sim.devices.npu._gemm_traffic` counts it): batch items, then the outer
    and middle tile loops (``nm``/``nmk``: N tiles outer; ``mn``: M tiles outer), the reduction
    innermost; A(m, k) and B(k, n) sub-tiles load per step unless resident (``tk == K``: the
    operand of the outer loop stays while the middle loop runs, except for ``nmk``, the
    NeuPIMs tiler, which reloads per tile); the C tile is written after its reduction.
    ``b_once``: a shared B that fits its buffer loads in the first batch item only."""
    tm, tn, tk = tile
    tm, tn, tk = max(1, min(tm, m)), max(1, min(tn, n)), max(1, min(tk, k))
    a_base = 0
    b_base = _align(elem * m * k * (batch if a_batched else 1))
    c_base = b_base + _align(elem * k * n * (batch if b_batched else 1))
    nm, nn, nk = _tiles(m, tm), _tiles(n, tn), _tiles(k, tk)
    segs: list[Segment] = []
    first: tuple[Segment, ...] = ()
    got = 0
    n_outer = nn if order != "mn" else nm
    n_mid = nm if order != "mn" else nn
    for bi in range(batch):
        for o in range(n_outer):
            for mid in range(n_mid):
                mt, nt = (mid, o) if order != "mn" else (o, mid)
                rm, rn = min(tm, m - mt * tm), min(tn, n - nt * tn)
                for kt in range(nk):
                    rk = min(tk, k - kt * tk)
                    a_skip = order == "mn" and tk == k and nt > 0
                    b_skip = (order == "nm" and tk == k and mt > 0) or (b_once and bi > 0)
                    if not a_skip:
                        ab = a_base + elem * ((bi * m * k if a_batched else 0) + mt * tm * k
                                              + kt * tk)
                        segs.append((ab, rm, rk * elem, k * elem, False))
                        got += rm * rk * elem
                    if not b_skip:
                        bb = b_base + elem * ((bi * k * n if b_batched else 0) + kt * tk * n
                                              + nt * tn)
                        segs.append((bb, rk, rn * elem, n * elem, False))
                        got += rk * rn * elem
                    if not first:
                        first = tuple(segs)
                cb = c_base + c_elem * (bi * m * n + mt * tm * n + nt * tn)
                segs.append((cb, rm, rn * c_elem, n * c_elem, True))
                got += rm * rn * c_elem
                if got >= max_bytes:
                    return tuple(segs), first
    return tuple(segs), first
