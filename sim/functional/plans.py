"""The generic mappings, as work-item plans: GPU tiles with split-K, systolic folds for
output-, weight- and input-stationary arrays, and PIM bank partial sums.

Each builder returns a :class:`MatmulPlan` for a batched contraction of shape (X, M, N, K):
``C[x, m, n] = sum_k A[x, m, k] B[x, k, n]``.
"""

from __future__ import annotations

import math

import numpy as np

from sim.devices.base import SimError
from sim.functional.base import MatmulNumerics, MatmulPlan, Stage
from sim.functional.formats import Rounder
from sim.functional.tiled import ACCUMULATE, STORE


def tiled_plan(shape: tuple[int, int, int, int], tile: tuple[int, int, int], split: int,
               num: MatmulNumerics, detail: dict | None = None) -> MatmulPlan:
    """A GPU GEMM kernel: CTA tiles ``tile`` = (tm, tn, tk) over the output, each reducing its
    K slice (``split`` slices of whole k-tiles, as CUTLASS's split-K) into its own fp32
    workspace; a second kernel adds the slices in slice order (``num.partial``)."""
    xs, m, n, k = shape
    tm, tn, tk = tile
    split = max(1, int(split))
    k_per = math.ceil(math.ceil(k / split) / tk) * tk
    ranges = [(min(k, s * k_per), min(k, (s + 1) * k_per)) for s in range(split)]
    items = [(x, i0, min(m, i0 + tm), j0, min(n, j0 + tn), k0, k1, s)
             for x in range(xs) for i0 in range(0, m, tm) for j0 in range(0, n, tn)
             for s, (k0, k1) in enumerate(ranges)]
    longest = max(k1 - k0 for k0, k1 in ranges)
    levels = [(math.ceil(longest / num.block), num.acc), (split - 1, num.partial)]
    stage = Stage((tuple(range(split)),), "sequential", num.partial)
    return MatmulPlan(shape, np.array(items, dtype=np.int64), split, num.block, num.acc, num,
                      levels, STORE, None, [stage], None,
                      {"mapping": "tiles", "tile": f"{tm}x{tn}x{tk}", "split_k": split,
                       **(detail or {})})


def systolic_plan(shape: tuple[int, int, int, int], rows: int, cols: int, dataflow: str,
                  num: MatmulNumerics, k_tile: int = 0, detail: dict | None = None
                  ) -> MatmulPlan:
    """A ``rows`` x ``cols`` systolic array (SCALE-Sim's dimension conventions), the reduction
    rank cut into on-chip tiles of ``k_tile`` (0: all of K at once).

    * ``os`` — PEs hold outputs (M on rows, N on columns); a K tile streams through each PE,
      which multiply-accumulates in the accumulator format (one rounding per product). Folds
      over M and N.
    * ``ws`` — PEs hold weights (K on rows, N on columns); inputs stream over M; a column adds
      its ``rows`` products into the partial sum flowing down it.
    * ``is`` — PEs hold inputs (K on rows, M on columns); weights stream over N; partial sums
      flow down the columns as in ``ws``.

    Each fold's partial sums are added into the output buffer (``num.partial``) in K order.
    """
    xs, m, n, k = shape
    df = dataflow.lower()
    if df not in ("os", "ws", "is"):
        raise SimError(f"dataflow must be os, ws or is, got '{dataflow}'")
    k_tile = min(k, k_tile) if k_tile and k_tile > 0 else k
    items: list[tuple[int, ...]] = []
    chunks = 0
    for x in range(xs):
        for t0 in range(0, k, k_tile):
            t1 = min(k, t0 + k_tile)
            if df == "os":
                spans = [(t0, t1)]
            else:
                spans = [(f0, min(t1, f0 + rows)) for f0 in range(t0, t1, rows)]
            for k0, k1 in spans:
                chunks += x == 0
                if df == "os":
                    items += [(x, i0, min(m, i0 + rows), j0, min(n, j0 + cols), k0, k1, 0)
                              for i0 in range(0, m, rows) for j0 in range(0, n, cols)]
                elif df == "ws":
                    items += [(x, 0, m, j0, min(n, j0 + cols), k0, k1, 0)
                              for j0 in range(0, n, cols)]
                else:
                    items += [(x, i0, min(m, i0 + cols), 0, n, k0, k1, 0)
                              for i0 in range(0, m, cols)]
    depth = k_tile if df == "os" else min(rows, k)
    levels = [(depth, num.acc), (chunks, num.partial)]
    return MatmulPlan(shape, np.array(items, dtype=np.int64), 1, 1, num.acc, num, levels,
                      ACCUMULATE, num.partial, [], None,
                      {"mapping": f"systolic {df}", "array": f"{rows}x{cols}",
                       "k_tile": k_tile, "folds": len(items), **(detail or {})})


def pim_plan(shape: tuple[int, int, int, int], channels: int, banks: int, lanes: int,
             num: MatmulNumerics, k_banks: int = 1, k_channels: int = 1,
             tree: Rounder | None = None, bank_mode: str = "sequential",
             bank: Rounder | None = None, channel_mode: str = "sequential",
             channel: Rounder | None = None, detail: dict | None = None) -> MatmulPlan:
    """GEMV (or small-M GEMM) on bank-level PIM.

    The output rank N is split over ``channels / k_channels`` channel groups (the banks of a
    channel hold disjoint outputs, which changes no sum, so a work item is one channel's share);
    the reduction rank K over ``k_channels`` channels and ``k_banks`` banks per channel
    (1, 1: every dot product stays in one bank, as the PIM timing model maps GEMVs). In a bank,
    ``lanes`` SIMD lanes each accumulate every ``lanes``-th element of the bank's K slice (a DRAM
    column holds ``lanes`` consecutive elements) in ``num.acc``, ``num.block`` products per
    rounding (an adder-tree unit is ``lanes=1, block=<multipliers>``). Lane partials are added by
    a pairwise tree (``tree``), bank partials within a channel in ``bank_mode`` order
    (``bank``), then channel partials (``channel_mode``, ``channel``).
    """
    xs, m, n, k = shape
    if banks % k_banks or channels % k_channels:
        raise SimError(f"PIM mapping: k_banks {k_banks} must divide banks {banks} and "
                       f"k_channels {k_channels} must divide channels {channels}")
    tree = tree or num.partial
    bank = bank or num.partial
    channel = channel or num.partial
    parts = k_channels * k_banks
    slices = channels // k_channels
    k_len = math.ceil(k / parts)
    n_len = math.ceil(n / slices)
    perm: list[int] = []
    items: list[tuple[int, ...]] = []
    for p in range(parts):
        p0, p1 = min(k, p * k_len), min(k, (p + 1) * k_len)
        for ln in range(lanes):
            start = len(perm)
            perm += range(p0 + ln, p1, lanes)
            for x in range(xs):
                for sl in range(slices):
                    n0, n1 = min(n, sl * n_len), min(n, (sl + 1) * n_len)
                    if n0 < n1:
                        items.append((x, 0, m, n0, n1, start, len(perm), p * lanes + ln))
    lane_len = math.ceil(k_len / lanes)
    stages = [Stage(tuple(tuple(range(p * lanes, (p + 1) * lanes)) for p in range(parts)),
                    "tree", tree),
              Stage(tuple(tuple(range(c * k_banks, (c + 1) * k_banks))
                          for c in range(k_channels)), bank_mode, bank),
              Stage((tuple(range(k_channels)),), channel_mode, channel)]
    levels = [(math.ceil(lane_len / num.block), num.acc), (stages[0].depth(), tree),
              (stages[1].depth(), bank), (stages[2].depth(), channel)]
    return MatmulPlan(shape, np.array(items, dtype=np.int64), parts * lanes, num.block, num.acc,
                      num, levels, STORE, None, stages, np.array(perm, dtype=np.int64),
                      {"mapping": "pim banks", "channels": channels, "banks": banks,
                       "lanes": lanes, "k_banks": k_banks, "k_channels": k_channels,
                       **(detail or {})})
