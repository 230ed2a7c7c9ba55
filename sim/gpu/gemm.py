"""GEMM at tile level: CTA tiles, waves over the SMs, split-K, L2 panel reuse, pipeline fill.

For each candidate CTA tile ``[tm, tn, tk]`` (``gpu.gemm_tiles``, ``tk`` in 16-bit elements and
scaled by 2/bytes for other dtypes, as CUTLASS keeps a k-stage's bytes fixed) that fits shared
memory with ``gpu.gemm_stages`` buffers, and each split-K factor, the model computes:

* **tile time** — ``k_iters`` main-loop steps, each the slower of the tensor-core time
  (``2 tm tn tk`` FLOPs at the SM's share of the sustained peak, i.e. tensor peak x
  ``gpu.tensor_efficiency``) and the shared-memory time of the warps' operand fetches
  (warp tiles of 64x64 or 32x32 read ``tm tn tk (1/wm + 1/wn)`` elements per step); plus a
  prologue (one DRAM latency before the first stage lands) and an epilogue (the C tile written at
  the SM's share of DRAM bandwidth). Persistent kernels (Hopper) overlap the epilogue with the
  next tile's main loop.
* **waves** — ``ceil(CTAs / (SMs x CTAs per SM))``; every tile computes its full padded shape
  (tile and wave quantisation). The busiest SM computes ``ceil(CTAs / SMs)`` tiles: co-resident
  CTAs share its tensor cores, and a partial last wave adds only its own tiles.
* **DRAM traffic** — operands once when they fit in half of L2; otherwise each wave fetches the A
  and B panels its tiles touch (L2 holds one wave's panels; the partial last wave only its own).
  Bandwidth is the achievable HBM bandwidth, capped by Little's law for the CTAs in flight
  (``stages - 1`` k-stages each).
* **L2 traffic** — every CTA reads its A and B panels through L2.

The kernel takes ``launch + gemm_fixed + max(compute, DRAM, L2)``, where compute and DRAM
combine as the p-norm ``(c^p + m^p)^(1/p)`` when ``gpu.gemm_overlap_p`` > 0 (the software
pipeline does not hide the DRAM stream perfectly; 0: the maximum) and a Hopper cluster of
``gpu.gemm_cluster`` CTAs reads a shared A panel from L2 once (TMA multicast). ``gemm_fixed`` is
the per-kernel cost the tile model does not see (setup, first-wave fill, last-wave drain).
Split-K adds a reduction kernel. The library is assumed to pick the fastest candidate, as cuBLAS
heuristics aim to.
"""

from __future__ import annotations

import math
from functools import lru_cache

from sim.gpu.hw import GpuHw
from sim.gpu.memory import achievable_bandwidth

SPLIT_K_FACTORS = (1, 2, 3, 4, 6, 8, 12, 16)


def warp_tile(tm: int, tn: int) -> tuple[int, int]:
    """Warp tile (rows, cols) CUTLASS uses for a CTA tile: 64 wide where the CTA allows."""
    return (64 if tm >= 128 else 32), (64 if tn >= 128 else 32)


def scaled_tk(tk: int, elem: float) -> int:
    """The k extent of one main-loop stage for ``elem``-byte operands (same bytes as 16-bit)."""
    return max(8, int(round(tk * 2.0 / elem)))


@lru_cache(maxsize=131072)
def best_gemm(hw: GpuHw, batch: int, m: int, n: int, k: int, elem: float, a_bytes: float,
              b_bytes: float, c_bytes: float, peak: float) -> dict:
    """The fastest (tile, split-K) for a batched GEMM; times in s, bytes in B.

    ``peak`` is the chip's dense tensor peak for the dtype (FLOP/s, before efficiency).
    """
    best: dict | None = None
    for tm, tn, tk0 in hw.gemm_tiles:
        tk = scaled_tk(tk0, elem)
        smem_tile = hw.gemm_stages * (tm + tn) * tk * elem
        if smem_tile > hw.smem_per_sm:
            continue
        per_sm = max(1, min(hw.ctas_per_sm, int(hw.smem_per_sm // smem_tile)))
        slots = hw.sms * per_sm
        tiles_m, tiles_n = math.ceil(m / tm), math.ceil(n / tn)
        out_tiles = batch * tiles_m * tiles_n
        for split in SPLIT_K_FACTORS:
            if split > 1 and (out_tiles >= slots or k / split < 2 * tk):
                continue
            cand = gemm_candidate(hw, batch, m, n, k, elem, a_bytes, b_bytes, c_bytes, peak,
                                  tm, tn, tk, split, per_sm)
            if best is None or cand["time"] < best["time"]:
                best = cand
    if best is None:
        raise ValueError("no GEMM tile in gpu.gemm_tiles fits gpu.smem_per_sm")
    return best


def gemm_candidate(hw: GpuHw, batch: int, m: int, n: int, k: int, elem: float, a_bytes: float,
                   b_bytes: float, c_bytes: float, peak: float, tm: int, tn: int, tk: int,
                   split: int, per_sm: int) -> dict:
    """Time and traffic of one (tile, split-K) choice."""
    slots = hw.sms * per_sm
    tiles_m, tiles_n = math.ceil(m / tm), math.ceil(n / tn)
    out_tiles = batch * tiles_m * tiles_n
    ctas = out_tiles * split
    waves = math.ceil(ctas / slots)
    active = min(ctas, slots)
    k_per_cta = math.ceil(math.ceil(k / split) / tk) * tk
    k_iters = k_per_cta // tk
    # main loop: tensor cores vs shared-memory operand fetch, per SM
    sm_peak = peak * hw.tensor_efficiency / hw.sms
    t_mma = 2.0 * tm * tn * tk / sm_peak
    wm, wn = warp_tile(tm, tn)
    t_smem = tm * tn * tk * elem * (1.0 / wm + 1.0 / wn) / hw.smem_bw_per_sm
    t_step = max(t_mma, t_smem)
    # prologue: the first stage's DRAM latency; epilogue: the C tile (fp32 partials under
    # split-K) written at this CTA's share of the DRAM bandwidth
    out_elem = (c_bytes / max(batch * m * n, 1)) if split == 1 else 4.0
    write_bw = hw.hbm_achievable / active
    prologue = hw.hbm_latency
    epilogue = min(tm, m) * min(tn, n) * out_elem / write_bw  # only the real rows/columns
    # per_sm CTAs share one SM's tensor cores and hide each other's prologue and epilogue; the
    # busiest SM computes ceil(CTAs / SMs) tiles (a partial last wave leaves co-resident slots
    # empty, it does not add a full wave of work)
    t_body = math.ceil(ctas / hw.sms) * k_iters * t_step
    overhead = prologue + epilogue
    if hw.persistent_gemm or per_sm > 1:
        t_compute = t_body + overhead
    else:
        t_compute = t_body + waves * overhead
    # DRAM traffic: operands once when they fit in (half of) L2; otherwise L2 holds the A and B
    # panels of one wave, and each wave fetches its own panels
    per_wave = active
    tiles_per_slice = tiles_m * tiles_n * split
    slice_fits = (a_bytes + b_bytes) / batch <= 0.5 * hw.l2_capacity
    if a_bytes + b_bytes <= 0.5 * hw.l2_capacity or (per_wave >= tiles_per_slice and slice_fits):
        dram = a_bytes + b_bytes + c_bytes
    else:
        def panel_bytes(ctas_in_wave: int) -> float:
            out_tiles_w = max(1, ctas_in_wave // split)
            wr = min(tiles_m, max(1, round(math.sqrt(out_tiles_w))))
            wc = min(tiles_n, math.ceil(out_tiles_w / wr))
            return (min(wr * tm, m) + min(wc * tn, n)) * k * elem

        # the last, partial wave fetches only the panels of its own tiles
        full, rest = divmod(ctas, per_wave)
        panels = full * panel_bytes(per_wave) + (panel_bytes(rest) if rest else 0.0)
        dram = max(a_bytes + b_bytes, panels) + c_bytes
    inflight = (hw.gemm_stages - 1) * (tm + tn) * tk * elem
    t_dram = dram / achievable_bandwidth(hw, active, inflight)
    # L2 traffic: every CTA reads its A and B panels
    # (on Hopper a cluster of ``gemm_cluster`` CTAs along n shares the A panel: TMA multicast
    # reads it from L2 once for the cluster)
    l2 = ctas * (tm / hw.gemm_cluster + tn) * k_per_cta * elem + c_bytes * (2 * split - 1)
    t_l2 = l2 / (hw.l2_achievable * active / slots)
    body = max(t_compute, t_dram, t_l2)
    bound = "compute" if body == t_compute else ("memory" if body == t_dram else "l2")
    if hw.gemm_overlap_p > 0:  # imperfect overlap of the main loop and the DRAM stream
        p = hw.gemm_overlap_p
        big = max(t_compute, t_dram)
        if big > 0:
            lo = min(t_compute, t_dram) / big
            body = max(body, big * (1.0 + lo ** p) ** (1.0 / p))
    time = hw.launch + hw.gemm_fixed + body
    if split > 1:  # a second kernel sums the split partials: read split x C in fp32, write C
        red_bytes = c_bytes * (2 * split + 1)
        time += hw.launch + red_bytes / hw.hbm_achievable
        dram += red_bytes
    flops = 2.0 * batch * m * n * k
    return {"time": time, "bound": bound, "tile": f"{tm}x{tn}x{tk}", "split_k": split,
            "waves": waves, "ctas": ctas, "ctas_per_sm": per_sm, "dram_bytes": dram,
            "l2_bytes": l2, "t_compute": t_compute, "t_dram": t_dram, "t_l2": t_l2,
            "utilization": flops / peak / max(time, 1e-30)}
