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
* **Stored sizes** — each operand moves through DRAM, L2 and shared memory (stages, warp reads,
  bytes in flight) at its stored size where that is narrower than the compute dtype
  (:func:`read_fraction`): weight-only int4 / int8 / fp8 weights with 16-bit activations, as
  Marlin copies the packed weights and scales into shared memory and dequantises them in
  registers (IST-DASLab/marlin, marlin_cuda_kernel.cu ``fetch_to_shared`` /
  ``fetch_to_registers`` / ``dequant``); such a GEMM also tries Marlin's 16-row tiles
  (:data:`MIXED_INPUT_TILES`). Dequantisation ALU work is not charged (no public per-element
  cost; Marlin overlaps it with the MMAs). An operand stored wider than the compute dtype (the
  fp16 activation of an FP8 GEMM) is read at the compute size, as before.

The kernel takes ``launch + gemm_fixed + max(compute, DRAM, L2)``, where compute and DRAM
combine as the p-norm ``(c^p + m^p)^(1/p)`` when ``gpu.gemm_overlap_p`` > 0 (the software
pipeline does not hide the DRAM stream perfectly; 0: the maximum) and a Hopper cluster of
``gpu.gemm_cluster`` CTAs reads a shared A panel from L2 once (TMA multicast). ``gemm_fixed`` is
the per-kernel cost the tile model does not see (setup, first-wave fill, last-wave drain).
Split-K adds a reduction kernel. Where the library has stream-K kernels (``gpu.gemm_stream_k``:
cuBLAS's segment-K kernels on Hopper; Osama et al., "Stream-K", PPoPP 2023) and the output tiles
exceed the SMs without filling the last round, a stream-K candidate shares all tiles' main-loop
steps evenly over the SMs (the busiest runs ``ceil(tiles x k_iters / SMs)``) and pays the fix-up
of its split tiles: each SM writes one fp32 partial tile and reads another at its share of the L2
bandwidth (:func:`stream_k_fixup`); DRAM traffic is counted as for the tile's data-parallel
kernel. The library is assumed to pick the fastest candidate, as cuBLAS heuristics aim to.

:func:`best_gemm_many` prices many shapes of one GPU and dtype at once (a decode run's attention
GEMMs over every KV length): every (tile, split-K) candidate over numpy arrays, in the float64
operations and order of :func:`gemm_candidate`, so each result equals :func:`best_gemm`'s bit for
bit (values and Python types); :func:`prefill_best_gemm` hands those results to ``best_gemm``'s
``lru_cache`` before the engine asks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from sim.gpu.hw import GpuHw
from sim.gpu.memory import achievable_bandwidth

if TYPE_CHECKING:   # numpy loads with the array path only (``xpusim op gemm`` needs none)
    import numpy as np

SPLIT_K_FACTORS = (1, 2, 3, 4, 6, 8, 12, 16)
#: B per element of a stream-K partial tile (fp32 accumulators)
STREAM_K_PARTIAL = 4.0

#: CTA tiles [rows of the unpacked operand, columns of the packed one, k in 16-bit elements] of
#: a mixed-input (weight-only) GEMM, tried besides ``gpu.gemm_tiles`` when one operand is
#: stored narrower than the kernel computes: Marlin's kernel configurations, 16 rows per
#: ``thread_m_blocks`` (IST-DASLab/marlin, marlin/marlin_cuda_kernel.cu, ``marlin_cuda``'s
#: CALL_IF list: (1, 8, 8) and (1-4, 16, 4) blocks of 16)
MIXED_INPUT_TILES = ((16, 128, 128), (16, 256, 64), (32, 256, 64), (48, 256, 64),
                     (64, 256, 64))


def warp_tile(tm: int, tn: int) -> tuple[int, int]:
    """Warp tile (rows, cols) CUTLASS uses for a CTA tile: 64 wide where the CTA allows."""
    return (64 if tm >= 128 else 32), (64 if tn >= 128 else 32)


def scaled_tk(tk: int, elem: float) -> int:
    """The k extent of one main-loop stage for ``elem``-byte operands (same bytes as 16-bit)."""
    return max(8, int(round(tk * 2.0 / elem)))


def read_fraction(nbytes: float, elements: int, elem: float) -> float:
    """The size an operand of ``nbytes`` B over ``elements`` (its ``batch x rows x k``) moves
    at, as a fraction of the compute element size ``elem`` (B): its stored size where that is
    smaller (weight-only formats: the kernel streams the packed weights and their scales from
    DRAM through L2 into shared memory and dequantises them in registers), else 1 (the int:
    stored at ``elem``; or wider, quantised to ``elem`` by an earlier kernel)."""
    return nbytes / elements / elem if nbytes < elements * elem else 1


def candidate_tiles(hw: GpuHw, fa: float, fb: float) -> tuple[tuple[int, int, int], ...]:
    """The CTA tiles ``(tm, tn, tk)`` tried for operands moving at :func:`read_fraction` ``fa``
    (A) and ``fb`` (B): ``gpu.gemm_tiles``, and :data:`MIXED_INPUT_TILES` when B is the packed
    one (transposed when A is) on a GPU whose weight-only kernels are Marlin's
    (``GpuHw.mixed_input_tiles``)."""
    if not hw.mixed_input_tiles:
        return hw.gemm_tiles
    if fb < 1:
        return hw.gemm_tiles + MIXED_INPUT_TILES
    if fa < 1:
        return hw.gemm_tiles + tuple((tn, tm, tk) for tm, tn, tk in MIXED_INPUT_TILES)
    return hw.gemm_tiles


#: (arguments, result) prefill_best_gemm passes into best_gemm's cache on a miss (only read
#: there, so a concurrent caller of best_gemm finds the same result or computes its own)
_handoff: list[tuple[tuple, dict]] = []


@lru_cache(maxsize=131072)
def best_gemm(hw: GpuHw, batch: int, m: int, n: int, k: int, elem: float, a_bytes: float,
              b_bytes: float, c_bytes: float, peak: float) -> dict:
    """The fastest (tile, split-K) for a batched GEMM; times in s, bytes in B.

    ``peak`` is the chip's dense tensor peak for the dtype (FLOP/s, before efficiency).
    """
    for args, result in _handoff[-1:]:   # priced ahead by prefill_best_gemm (same result)
        if args == (hw, batch, m, n, k, elem, a_bytes, b_bytes, c_bytes, peak):
            _handoff.append(((), {}))       # taken (the cache did not hold it yet)
            return result
    best: dict | None = None
    fa = read_fraction(a_bytes, batch * m * k, elem)
    fb = read_fraction(b_bytes, batch * k * n, elem)
    for tm, tn, tk0 in candidate_tiles(hw, fa, fb):
        tk = scaled_tk(tk0, elem)
        smem_tile = hw.gemm_stages * (tm * fa + tn * fb) * tk * elem
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
        if stream_k_applies(hw, out_tiles):
            cand = gemm_candidate(hw, batch, m, n, k, elem, a_bytes, b_bytes, c_bytes, peak,
                                  tm, tn, tk, 1, per_sm, stream_k=True)
            if cand["time"] < best["time"]:
                best = cand
    if best is None:
        raise ValueError("no GEMM tile in gpu.gemm_tiles fits gpu.smem_per_sm")
    return best


def stream_k_applies(hw: GpuHw, out_tiles) -> bool:
    """Whether a stream-K kernel is a candidate: the library has them and the output tiles
    (an int, or an array of them) leave the busiest SM's last tile round partly empty."""
    return hw.gemm_stream_k and (out_tiles > hw.sms) & (out_tiles % hw.sms != 0)


def stream_k_fixup(hw: GpuHw, tm: int, tn: int) -> tuple[float, float]:
    """(s, B through L2) of a stream-K kernel's fix-up: an SM's share of the iterations starts
    inside one tile and ends inside another, so it writes one fp32 partial tile and reads the
    other SM's partial of the tile it finishes (at its share of the L2 bandwidth); the
    bytes are those of all SMs."""
    per_sm = 2.0 * tm * tn * STREAM_K_PARTIAL
    return per_sm / (hw.l2_achievable / hw.sms), per_sm * hw.sms


def gemm_candidate(hw: GpuHw, batch: int, m: int, n: int, k: int, elem: float, a_bytes: float,
                   b_bytes: float, c_bytes: float, peak: float, tm: int, tn: int, tk: int,
                   split: int, per_sm: int, stream_k: bool = False) -> dict:
    """Time and traffic of one (tile, split-K) choice, or of the tile's stream-K kernel
    (``stream_k``, with ``split`` 1). Each operand moves through DRAM, L2 and shared memory at
    its own size (:func:`read_fraction` of ``elem``)."""
    fa = read_fraction(a_bytes, batch * m * k, elem)
    fb = read_fraction(b_bytes, batch * k * n, elem)
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
    t_smem = tm * tn * tk * elem * (fb / wm + fa / wn) / hw.smem_bw_per_sm
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
    # stream-K: the busiest SM runs its even share of all tiles' main-loop steps, then the
    # fix-up of its split tiles
    fix_time, fix_bytes = stream_k_fixup(hw, tm, tn) if stream_k else (0.0, 0.0)
    if stream_k:
        t_body = math.ceil(ctas * k_iters / hw.sms) * t_step + fix_time
    else:
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
            return (min(wr * tm, m) * fa + min(wc * tn, n) * fb) * k * elem

        # the last, partial wave fetches only the panels of its own tiles
        full, rest = divmod(ctas, per_wave)
        panels = full * panel_bytes(per_wave) + (panel_bytes(rest) if rest else 0.0)
        dram = max(a_bytes + b_bytes, panels) + c_bytes
    inflight = (hw.gemm_stages - 1) * (tm * fa + tn * fb) * tk * elem
    t_dram = dram / achievable_bandwidth(hw, active, inflight)
    # L2 traffic: every CTA reads its A and B panels
    # (on Hopper a cluster of ``gemm_cluster`` CTAs along n shares the A panel: TMA multicast
    # reads it from L2 once for the cluster)
    l2 = ctas * (tm / hw.gemm_cluster * fa + tn * fb) * k_per_cta * elem + \
        c_bytes * (2 * split - 1) + fix_bytes
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
            "stream_k": stream_k, "waves": waves, "ctas": ctas, "ctas_per_sm": per_sm,
            "dram_bytes": dram, "l2_bytes": l2, "t_compute": t_compute, "t_dram": t_dram,
            "t_l2": t_l2, "utilization": flops / peak / max(time, 1e-30)}


#: ints the array path keeps below (float64 holds them exactly, so its conversions, sums and
#: comparisons equal the scalar path's exact int arithmetic); larger shapes stay scalar
_EXACT = float(2 ** 52)
_BOUNDS = ("compute", "memory", "l2")
_FIELDS = ("time", "bound", "cand", "waves", "ctas", "dram", "dram_int", "l2", "t_compute",
           "t_dram", "t_l2", "util")


def best_gemm_many(hw: GpuHw, batch: Sequence[int], m: Sequence[int], n: Sequence[int],
                   k: Sequence[int], elem: float, a_bytes: Sequence[float],
                   b_bytes: Sequence[float], c_bytes: Sequence[float],
                   peak: float) -> list[dict | None]:
    """:func:`best_gemm` of shapes ``i`` = ``(batch[i], m[i], n[i], k[i], a_bytes[i], ...)`` at
    once, for one ``elem`` (B per operand element) and ``peak`` (FLOP/s); times in s, bytes in B.

    Every (tile, split-K) candidate is evaluated over arrays (of the shapes it applies to) in
    :func:`gemm_candidate`'s float64 operations and order, and the first fastest kept as
    :func:`best_gemm` keeps it, so entry ``i`` equals ``best_gemm(hw, batch[i], ...)`` bit for
    bit, Python types included (the p-norm's powers are Python's own ``**``). Dimensions are
    Python ints >= 1 and each byte sequence all ints or all floats. An entry is None where an
    int of the model reaches 2**52 (left to the scalar path). Raises ValueError as best_gemm
    when no tile fits.
    """
    import numpy as np

    count = len(batch)
    if not (len(m) == len(n) == len(k) == len(a_bytes) == len(b_bytes) == len(c_bytes) == count):
        raise ValueError("best_gemm_many: the shape sequences differ in length")
    if count == 0:
        return []
    kinds = []
    for seq in (a_bytes, b_bytes, c_bytes):
        seen = set(map(type, seq))
        if seen not in ({int}, {float}):
            raise ValueError("best_gemm_many: each byte sequence must be all ints or all floats")
        kinds.append(seen == {int})
    if any(set(map(type, seq)) != {int} or min(seq) < 1 for seq in (batch, m, n, k)):
        raise ValueError("best_gemm_many: GEMM dimensions must be ints >= 1")
    bt, mm, nn, kk = (np.asarray(s, dtype=np.int64) for s in (batch, m, n, k))
    a, b, c = (np.asarray(s, dtype=np.int64 if is_int else np.float64)
               for s, is_int in zip((a_bytes, b_bytes, c_bytes), kinds, strict=True))
    # each operand's read_fraction (-1: the int 1); shapes of one pair are priced together
    elements = (bt * mm * kk, bt * kk * nn)
    codes = [np.where(x < e * elem, x / e / elem, -1.0) if (x < e * elem).any() else None
             for x, e in zip((a, b), elements, strict=True)]
    if codes[0] is None and codes[1] is None:
        return _best_many(hw, bt, mm, nn, kk, a, b, c, kinds, elem, peak, 1, 1)
    pairs, group = np.unique(np.stack([np.full(count, -1.0) if x is None else x
                                       for x in codes], axis=1), axis=0, return_inverse=True)
    group = group.reshape(-1)
    out: list[dict | None] = [None] * count
    for g, (code_a, code_b) in enumerate(pairs.tolist()):
        idx = np.flatnonzero(group == g)
        sub = _best_many(hw, bt[idx], mm[idx], nn[idx], kk[idx], a[idx], b[idx], c[idx],
                         kinds, elem, peak, 1 if code_a == -1.0 else code_a,
                         1 if code_b == -1.0 else code_b)
        ok = (elements[0][idx] < _EXACT) & (elements[1][idx] < _EXACT) & \
            (elements[0][idx] > 0) & (elements[1][idx] > 0)
        for i, res, good in zip(idx.tolist(), sub, ok.tolist(), strict=True):
            out[i] = res if good else None
    return out


def _best_many(hw: GpuHw, bt: np.ndarray, mm: np.ndarray, nn: np.ndarray, kk: np.ndarray,
               a: np.ndarray, b: np.ndarray, c: np.ndarray, kinds: list[bool], elem: float,
               peak: float, fa: float, fb: float) -> list[dict | None]:
    """:func:`best_gemm_many` of shapes whose A and B operands move at the same
    :func:`read_fraction` ``fa`` and ``fb`` of ``elem``. A tile's split-K factors above 1 are
    priced together, one row of arrays per factor (:func:`_candidate_rows`: one pass of numpy
    calls where each factor took its own; a fit's 54-shape group in 11 instead of 17-18 ms,
    4,096 decode shapes as before), then taken row by row in :func:`best_gemm`'s order
    (:func:`_take_row`)."""
    import numpy as np

    count = len(bt)
    shapes = {"bt": bt, "m": mm, "n": nn, "k": kk, "c": c, "ab": a + b}
    shapes["abc"] = shapes["ab"] + c
    bmn = bt * mm * nn
    ok = (shapes["abc"] < _EXACT) & (bmn < _EXACT) & (kk < _EXACT)
    shapes["bmn"] = np.maximum(bmn, 1)
    shapes["flops"] = 2.0 * bt * mm * nn * kk
    shapes["ab_fits"] = shapes["ab"] <= 0.5 * hw.l2_capacity
    shapes["slice_fits"] = shapes["ab"] / bt <= 0.5 * hw.l2_capacity
    types = (*kinds, type(elem) is int)
    best = {f: np.zeros(count, dtype=bool if f == "dram_int" else
                        (np.int64 if f in ("bound", "cand", "waves", "ctas") else np.float64))
            for f in _FIELDS}
    have = np.zeros(count, dtype=bool)
    meta: list[tuple[str, int, int]] = []   # candidate -> (tile, split, CTAs per SM)
    for tm, tn, tk0 in candidate_tiles(hw, fa, fb):
        tk = scaled_tk(tk0, elem)
        smem_tile = hw.gemm_stages * (tm * fa + tn * fb) * tk * elem
        if smem_tile > hw.smem_per_sm:
            continue
        per_sm = max(1, min(hw.ctas_per_sm, int(hw.smem_per_sm // smem_tile)))
        slots = hw.sms * per_sm
        tiles = dict(shapes, tiles_m=np.ceil(mm / tm).astype(np.int64),
                     tiles_n=np.ceil(nn / tn).astype(np.int64),
                     rows_cols=np.minimum(tm, mm) * np.minimum(tn, nn))
        tiles["out_tiles"] = bt * tiles["tiles_m"] * tiles["tiles_n"]
        # the candidates in best_gemm's order: split-K 1 (every shape); the split-K factors
        # above 1 that apply to some shape (where the output tiles leave SMs idle), together
        # over the shapes any of them applies to; the tile's stream-K kernel where its tiles
        # leave the last round partly empty
        splits = np.array(SPLIT_K_FACTORS[1:], dtype=np.int64)[:, None]
        applies = ~((tiles["out_tiles"] >= slots) | (kk / splits < 2 * tk))
        some = applies.any(axis=1)
        groups = [((1,), False, None, None)]
        if some.any():
            idx = np.flatnonzero(applies.any(axis=0))
            groups.append((tuple(f for f, x in zip(SPLIT_K_FACTORS[1:], some.tolist(),
                                                   strict=True) if x),
                           False, idx, applies[some][:, idx]))
        if hw.gemm_stream_k:
            idx = np.flatnonzero(stream_k_applies(hw, tiles["out_tiles"]))
            if len(idx):
                groups.append(((1,), True, idx, None))
        for factors, stream_k, idx, where in groups:
            sub = tiles if idx is None else {key: v[idx] for key, v in tiles.items()}
            rows = _candidate_rows(hw, sub, elem, fa, fb, peak, types, tm, tn, tk, factors,
                                   per_sm, stream_k)
            for r, split in enumerate(factors):
                valid = None if where is None else where[r]
                meta.append((f"{tm}x{tn}x{tk}", split, per_sm, stream_k))
                if idx is None:
                    cand, ok_c = _take_row(hw, rows, r, split, sub, peak, have, best["time"],
                                           None)
                    ok &= ok_c
                    take = ~have | (cand["time"] < best["time"])
                    have |= take
                    cand["cand"] = len(meta) - 1
                    for f in _FIELDS:
                        np.copyto(best[f], cand[f], where=take)
                    continue
                held, best_time = have[idx], best["time"][idx]
                cand, ok_c = _take_row(hw, rows, r, split, sub, peak, held, best_time, valid)
                ok[idx] &= ok_c if valid is None else (ok_c | ~valid)
                take = ~held | (cand["time"] < best_time)
                if valid is not None:
                    take &= valid
                at = idx[take]
                have[at] = True
                cand["cand"] = len(meta) - 1
                for f in _FIELDS:
                    v = cand[f]
                    best[f][at] = v[take] if isinstance(v, np.ndarray) else v
    if not have.all():
        raise ValueError("no GEMM tile in gpu.gemm_tiles fits gpu.smem_per_sm")
    out: list[dict | None] = []
    cols = [best[f].tolist() for f in _FIELDS]
    for good, time, bound, cand, waves, ctas, dram, dram_int, l2, tc, td, tl, util in zip(
            ok.tolist(), *cols, strict=True):
        if not good:
            out.append(None)
            continue
        tile, split, per_sm, stream_k = meta[cand]
        out.append({"time": time, "bound": _BOUNDS[bound], "tile": tile, "split_k": split,
                    "stream_k": stream_k, "waves": waves, "ctas": ctas, "ctas_per_sm": per_sm,
                    "dram_bytes": int(dram) if dram_int else dram, "l2_bytes": l2,
                    "t_compute": tc, "t_dram": td, "t_l2": tl, "utilization": util})
    return out


def _candidate_rows(hw: GpuHw, s: dict, elem: float, fa: float, fb: float, peak: float,
                    types: tuple, tm: int, tn: int, tk: int, factors: tuple[int, ...],
                    per_sm: int, stream_k: bool = False) -> dict:
    """:func:`gemm_candidate` of tile ``tm x tn x tk`` for each split-K factor of ``factors``
    (one row per factor; the tile's stream-K kernel with ``stream_k``, ``factors`` (1,)) over
    the shape arrays ``s``, up to the p-norm (same operations, same order; a row's entries
    where its factor does not apply are computed too and never taken), the A and B operands
    moving at :func:`read_fraction` ``fa`` and ``fb`` of ``elem``; also ``dram_int`` (the
    scalar path's ``dram_bytes`` is an int) and ``panels`` (for the range check). ``types``:
    are a, b, c bytes and ``elem`` ints. :func:`_take_row` finishes a row."""
    import numpy as np

    a_int, b_int, c_int, elem_int = types
    mm, nn, kk, c, ab = s["m"], s["n"], s["k"], s["c"], s["ab"]
    tiles_m, tiles_n = s["tiles_m"], s["tiles_n"]
    split = np.array(factors, dtype=np.int64)[:, None]
    slots = hw.sms * per_sm
    ctas = s["out_tiles"] * split
    waves = np.ceil(ctas / slots).astype(np.int64)
    active = np.minimum(ctas, slots)
    k_per_cta = np.ceil(np.ceil(kk / split) / tk).astype(np.int64) * tk
    k_iters = k_per_cta // tk
    sm_peak = peak * hw.tensor_efficiency / hw.sms
    t_mma = 2.0 * tm * tn * tk / sm_peak
    wm, wn = warp_tile(tm, tn)
    t_smem = tm * tn * tk * elem * (fb / wm + fa / wn) / hw.smem_bw_per_sm
    t_step = max(t_mma, t_smem)
    out_elem = np.where(split == 1, c / s["bmn"], 4.0)
    write_bw = hw.hbm_achievable / active
    epilogue = s["rows_cols"] * out_elem / write_bw
    fix_time, fix_bytes = stream_k_fixup(hw, tm, tn) if stream_k else (0.0, 0.0)
    if stream_k:
        t_body = np.ceil(ctas * k_iters / hw.sms).astype(np.int64) * t_step + fix_time
    else:
        t_body = np.ceil(ctas / hw.sms).astype(np.int64) * k_iters * t_step
    overhead = hw.hbm_latency + epilogue
    if hw.persistent_gemm or per_sm > 1:
        t_compute = t_body + overhead
    else:
        t_compute = t_body + waves * overhead
    once = s["ab_fits"] | ((active >= tiles_m * tiles_n * split) & s["slice_fits"])
    full, rest = np.divmod(ctas, active)
    panels = full * _panel_bytes(active, split, tiles_m, tiles_n, tm, tn, mm, nn, kk, elem,
                                 fa, fb) \
        + np.where(rest > 0, _panel_bytes(rest, split, tiles_m, tiles_n, tm, tn, mm, nn, kk,
                                          elem, fa, fb), 0.0)
    bigger = panels > ab
    dram = np.where(once, s["abc"], np.where(bigger, panels, ab) + c)
    panels_int = elem_int and type(fa) is int and type(fb) is int
    dram_int = np.where(once, a_int and b_int and c_int,
                        np.where(bigger, panels_int & (rest > 0), a_int and b_int) & c_int)
    inflight = (hw.gemm_stages - 1) * (tm * fa + tn * fb) * tk * elem
    share = hw.hbm_achievable * 1.0 / np.maximum(active, 1)
    if inflight > 0 and hw.hbm_latency > 0:
        share = np.minimum(share, inflight / hw.hbm_latency)
    t_dram = dram / (share * np.maximum(active, 1))
    l2 = ctas * (tm / hw.gemm_cluster * fa + tn * fb) * k_per_cta * elem + \
        c * (2 * split - 1) + fix_bytes
    t_l2 = l2 / (hw.l2_achievable * active / slots)
    body = np.maximum(np.maximum(t_compute, t_dram), t_l2)
    bound = np.where(body == t_compute, 0, np.where(body == t_dram, 1, 2))
    return {"body": body, "bound": bound, "waves": waves, "ctas": ctas, "dram": dram,
            "dram_int": dram_int, "l2": l2, "t_compute": t_compute, "t_dram": t_dram,
            "t_l2": t_l2, "panels": panels}


def _take_row(hw: GpuHw, rows: dict, r: int, split: int, s: dict, peak: float,
              have: np.ndarray, best_time: np.ndarray, valid: np.ndarray | None
              ) -> tuple[dict, np.ndarray]:
    """Row ``r`` of :func:`_candidate_rows` (split-K factor ``split``) finished as
    :func:`gemm_candidate` finishes: the p-norm, the split-K reduction kernel, the
    utilization; and whether each shape's figures stay under 2**52 (``ok``). ``have`` /
    ``best_time``: the shapes that have a candidate and its time (s); where this one's time
    before the p-norm is not below it, or it does not apply (``valid`` False; None: it applies
    to every shape), the p-norm is skipped (time and utilization are then lower bounds, and
    the candidate is not taken, as the scalar path would not take it)."""
    import numpy as np

    body = rows["body"][r].copy()
    t_compute, t_dram = rows["t_compute"][r], rows["t_dram"][r]
    c = s["c"]
    time = hw.launch + hw.gemm_fixed + body
    red = c * (2 * split + 1)
    if hw.gemm_overlap_p > 0:
        # the p-norm only raises the body, and the time with it: a shape whose time without
        # it already loses to the best so far cannot be taken (its powers are not needed)
        p = hw.gemm_overlap_p
        big = np.maximum(t_compute, t_dram)
        low = time if split == 1 else time + (hw.launch + red / hw.hbm_achievable)
        wanted = (big > 0) & (~have | (low < best_time))
        sel = np.flatnonzero(wanted if valid is None else wanted & valid)
        lo = np.minimum(t_compute, t_dram)[sel] / big[sel]
        norm = big[sel] * np.array([(1.0 + x ** p) ** (1.0 / p) for x in lo.tolist()],
                                   dtype=np.float64)
        body[sel] = np.maximum(body[sel], norm)
        time = hw.launch + hw.gemm_fixed + body
    dram = rows["dram"][r]
    if split > 1:
        time = time + (hw.launch + red / hw.hbm_achievable)
        dram = dram + red
    ok = (np.abs(rows["panels"][r]) < _EXACT) & (np.abs(dram) < _EXACT)
    return {"time": time, "bound": rows["bound"][r], "waves": rows["waves"][r],
            "ctas": rows["ctas"][r], "dram": dram, "dram_int": rows["dram_int"][r],
            "l2": rows["l2"][r], "t_compute": t_compute, "t_dram": t_dram,
            "t_l2": rows["t_l2"][r], "util": s["flops"] / peak / np.maximum(time, 1e-30)}, ok


def _panel_bytes(ctas_in_wave: np.ndarray, split: int, tiles_m: np.ndarray,
                 tiles_n: np.ndarray, tm: int, tn: int, m: np.ndarray, n: np.ndarray,
                 k: np.ndarray, elem: float, fa: float, fb: float) -> np.ndarray:
    """``panel_bytes`` of :func:`gemm_candidate` over arrays (B of A and B panels of a wave;
    ``fa`` / ``fb``: the operands' :func:`read_fraction`)."""
    import numpy as np

    out_tiles_w = np.maximum(1, ctas_in_wave // split)
    wr = np.minimum(tiles_m, np.maximum(1, np.rint(np.sqrt(out_tiles_w)).astype(np.int64)))
    wc = np.minimum(tiles_n, np.ceil(out_tiles_w / wr).astype(np.int64))
    return (np.minimum(wr * tm, m) * fa + np.minimum(wc * tn, n) * fb) * k * elem


def prefill_best_gemm(hw: GpuHw, calls: Sequence[tuple], min_group: int = 32,
                      results: dict | None = None, cache: bool = True) -> int:
    """Price the ``best_gemm(hw, *call)`` calls not yet cached with :func:`best_gemm_many` (grouped
    by dtype, peak and argument types) and hand each result to ``best_gemm``'s cache, as if it
    had been called; how many were priced here. Calls the array path does not take (non-int
    dimensions, huge shapes) and groups under ``min_group`` calls (the arrays' fixed cost, ~2 ms
    CPU, is that of ~15-30 scalar calls) are left for ``best_gemm`` to price when asked.
    ``results``, if given, gets ``call -> best_gemm(hw, *call)`` for the calls priced or found
    cached here (the cache's own objects). ``cache=False`` (with ``results``): the array results
    go to ``results`` only, not into ``best_gemm``'s cache (no hashing of every call; a caller
    that reads them from ``results`` once has no use for the cache)."""
    if not cache and results is not None:
        fast = _prefill_one_group(hw, calls, min_group, results)
        if fast is not None:
            return fast
    groups: dict[tuple, list[tuple]] = {}
    numbers = (int, float)
    for call in dict.fromkeys(calls):
        batch, m, n, k, elem, a_b, b_b, c_b, peak = call
        if not (type(batch) is type(m) is type(n) is type(k) is int) or \
                min(batch, m, n, k) < 1 or type(elem) not in numbers or \
                type(peak) not in numbers or type(a_b) not in numbers or \
                type(b_b) not in numbers or type(c_b) not in numbers:
            continue
        groups.setdefault((elem, type(elem), peak, type(peak), type(a_b), type(b_b),
                           type(c_b)), []).append(call)
    priced = 0
    for (elem, _, peak, *_), group in groups.items():
        if len(group) < min_group:
            continue
        try:
            priced_many = best_gemm_many(hw, *zip(*(g[:4] for g in group), strict=True), elem,
                                         *zip(*(g[5:8] for g in group), strict=True), peak)
        except ValueError:
            continue   # best_gemm raises it with the same message when the op is priced
        if not cache and results is not None:
            for call, res in zip(group, priced_many, strict=True):
                if res is not None:
                    results[call] = res
                    priced += 1
            continue
        for call, res in zip(group, priced_many, strict=True):
            if res is None:
                continue
            _handoff.append(((hw, *call), res))
            try:
                got = best_gemm(hw, *call)
                if results is not None:
                    results[call] = got
            finally:
                priced += len(_handoff) > 1
                _handoff.clear()
    return priced


def _prefill_one_group(hw: GpuHw, calls: Sequence[tuple], min_group: int,
                       results: dict) -> int | None:
    """``prefill_best_gemm(cache=False)`` of calls that form one group (one ``elem`` and one
    ``peak``, every argument of one type: one dtype's calls in ``GpuDevice.prefetch``) from
    their columns at once, without the per-call checks and grouping; how many it priced, or
    None when the calls are not of that form (the general path then groups them)."""
    uniq = list(dict.fromkeys(calls))
    if len(uniq) < min_group:
        return None
    try:
        batch, m, n, k, elem, a_b, b_b, c_b, peak = zip(*uniq, strict=True)
    except (TypeError, ValueError):
        return None
    e0, p0 = elem[0], peak[0]
    if type(e0) not in (int, float) or type(p0) not in (int, float) or p0 != p0 or \
            set(map(type, elem)) != {type(e0)} or set(elem) != {e0} or \
            set(map(type, peak)) != {type(p0)} or set(peak) != {p0} or \
            any(set(map(type, col)) != {int} or min(col) < 1 for col in (batch, m, n, k)) or \
            any(set(map(type, col)) not in ({int}, {float}) for col in (a_b, b_b, c_b)):
        return None
    try:
        priced_many = best_gemm_many(hw, batch, m, n, k, e0, a_b, b_b, c_b, p0)
    except ValueError:
        return 0   # best_gemm raises it with the same message when the op is priced
    priced = 0
    for call, res in zip(uniq, priced_many, strict=True):
        if res is not None:
            results[call] = res
            priced += 1
    return priced
