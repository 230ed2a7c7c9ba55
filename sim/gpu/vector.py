"""Vector kernels (softmax, layer/RMS norm, activations, element-wise) by shape.

A row operation (softmax, norms) gives each row to one CTA (narrow rows: several per CTA). A row
that fits in the CTA's registers is read once (PyTorch's persistent softmax handles rows up to
1024 elements; norm kernels keep rows up to 8192 elements); a wider row is read again for each
further pass (softmax: max, sum of exponentials, normalise = 2 re-reads, served by L2 since the
block softmax re-reads a row it has just read; norms: statistics then normalise = 1 re-read,
which a looped (non-persistent) reduction issues after the whole row has streamed through and
which is charged to DRAM — an assumption: it is what the measured A100 layernorm at rows of
16K-32K elements and GPT-3's 12288 shows, while an L2-hit re-read would be ~2x faster than
measured). Each pass waits one memory round trip. Element-wise ops stream their operands once.
The kernel takes

    launch + max(passes x latency + DRAM bytes / bandwidth, L2 re-reads / L2 bandwidth,
                 FLOPs / peak)

where the bandwidth is the achievable HBM bandwidth times the software stack's efficiency for
the op family, capped by Little's law for the CTAs in flight (small grids cannot fill it).

This is the generic (fused-kernel) model every stack uses unless it says
``software.vector_kernels: aten``: then PyTorch's own kernels (one CTA per row walking it in a
latency chain, rows in waves by occupancy, the softmax kernel chosen by width, a CUDA graph's
kernel gap in place of ``gpu.launch_overhead``) are modelled by :mod:`sim.gpu.aten` instead
(the ``torch-graphs`` stack; suite ``h200-vector``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from sim.gpu.hw import GpuHw
from sim.gpu.memory import stream_time
from workloads.einsum import Cascade, Einsum

PERSISTENT_ROW = {"softmax": 1024, "norm": 8192}
EXTRA_PASSES = {"softmax": 2, "norm": 1}
REREAD_FROM_DRAM = {"softmax": False, "norm": True}
CTA_INFLIGHT = 1024 * 16.0   # 1024 threads x one 16-byte vector load each
ELEMWISE_PER_CTA = 2048      # 256 threads x 8 elements
ROW_CTA_ELEMENTS = 8192      # 1024 threads x 8 elements


@dataclass(frozen=True)
class VectorShape:
    """What a vector kernel streams: rows x width elements, DRAM bytes and FLOPs."""

    rows: int
    width: int
    input_bytes: float      # bytes of the row-wise input (re-read when a row does not fit)
    dram_bytes: float       # compulsory traffic (inputs once, outputs once)
    flops: float


def vector_shape(compute: Einsum | Cascade) -> VectorShape:
    """Rows and row width from the first reducing Einsum (element-wise: one row per element)."""
    einsums = compute.einsums if isinstance(compute, Cascade) else (compute,)
    width, points, in_bytes = 1, 0, 0.0
    for e in einsums:
        if e.reduce_op and e.reduced_ranks:
            width = math.prod(e.size[r] for r in e.reduced_ranks)
            points = e.points
            in_bytes = float(e.inputs[0].nbytes(e.size))
            break
    if not points:
        points = max(e.output_elements for e in einsums)
        width = 1
        in_bytes = 0.0
    return VectorShape(rows=max(1, points // width), width=width, input_bytes=in_bytes,
                       dram_bytes=float(compute.min_bytes), flops=float(compute.flops))


@lru_cache(maxsize=65536)
def vector_time(hw: GpuHw, shape: VectorShape, family: str, peak: float,
                efficiency: float) -> dict:
    """Seconds and traffic of one vector kernel; ``efficiency`` scales achievable bandwidth."""
    if shape.width > 1:
        # a CTA of 1024 threads takes 8 elements per thread: several narrow rows or one wide row
        rows_per_cta = max(1, ROW_CTA_ELEMENTS // shape.width)
        ctas = max(1, math.ceil(shape.rows / rows_per_cta))
        limit = PERSISTENT_ROW.get(family, 8192)
        extra = EXTRA_PASSES.get(family, 1) if shape.width > limit else 0
        row_bytes = shape.input_bytes / shape.rows
        inflight = min(CTA_INFLIGHT, max(rows_per_cta * row_bytes, 1.0))
        slots = hw.sms * 2          # 1024-thread CTAs: two per SM (2048 threads)
    else:
        ctas = max(1, math.ceil(shape.rows / ELEMWISE_PER_CTA))
        extra = 0
        inflight = CTA_INFLIGHT / 4
        slots = hw.sms * 8          # 256-thread CTAs: eight per SM
    reread = extra * shape.input_bytes
    dram_bytes = shape.dram_bytes + (reread if REREAD_FROM_DRAM.get(family, False) else 0.0)
    l2_bytes = 0.0 if REREAD_FROM_DRAM.get(family, False) else reread
    # each pass over a row waits one memory round trip before its data arrives
    t_dram = (1 + extra) * hw.hbm_latency + stream_time(hw, dram_bytes, ctas, slots, inflight,
                                                        efficiency)
    t_l2 = l2_bytes / hw.l2_achievable if l2_bytes else 0.0
    t_compute = shape.flops / peak if peak > 0 else 0.0
    body = max(t_dram, t_l2, t_compute)
    bound = "memory" if body == t_dram else ("l2" if body == t_l2 else "compute")
    return {"time": hw.launch + body, "bound": bound, "dram_bytes": dram_bytes,
            "l2_bytes": l2_bytes, "ctas": ctas, "passes": 1 + extra, "t_dram": t_dram,
            "t_compute": t_compute}


def vector_time_many(hw: GpuHw, shapes: list[VectorShape], family: str, peak: float,
                     efficiency: float) -> list[dict]:
    """:func:`vector_time` of each of ``shapes`` (one ``family``, ``peak`` FLOP/s and
    ``efficiency``) at once: row kernels (width > 1) over numpy arrays in its float64
    operations and order (that of :func:`sim.gpu.memory.stream_time` included), so each dict
    equals the scalar one bit for bit, Python types included; element-wise shapes (width 1)
    and ints a float64 might not hold exactly go through :func:`vector_time` itself."""
    return vector_time_columns(hw, [s.rows for s in shapes], [s.width for s in shapes],
                               [s.input_bytes for s in shapes], [s.dram_bytes for s in shapes],
                               [s.flops for s in shapes], family, peak, efficiency)


def vector_time_columns(hw: GpuHw, rows_: list, width_: list, in_bytes_: list,
                        dram_bytes_: list, flops_: list, family: str, peak: float,
                        efficiency: float) -> list[dict]:
    """:func:`vector_time_many` of the shapes whose fields (:class:`VectorShape`'s) are the
    columns ``rows_`` ... ``flops_`` (no shape object per row)."""
    import numpy as np

    out: list[dict | None] = [None] * len(rows_)
    idx = [i for i, (r, w, b, d, f) in enumerate(zip(rows_, width_, in_bytes_, dram_bytes_,
                                                     flops_, strict=True))
           if type(r) is int and type(w) is int and 1 < w < 2 ** 52 and 0 < r < 2 ** 52
           and type(b) is float and type(d) is float and type(f) is float]
    if not (hw.hbm_achievable * efficiency > 0 and hw.l2_achievable > 0):
        idx = []   # degenerate rates: the scalar path (and its ZeroDivisionError) decides
    if idx:
        every = len(idx) == len(rows_)
        rows = np.array(rows_ if every else [rows_[i] for i in idx], dtype=np.int64)
        width = np.array(width_ if every else [width_[i] for i in idx], dtype=np.int64)
        in_bytes = np.array(in_bytes_ if every else [in_bytes_[i] for i in idx],
                            dtype=np.float64)
        min_bytes = np.array(dram_bytes_ if every else [dram_bytes_[i] for i in idx],
                             dtype=np.float64)
        flops = np.array(flops_ if every else [flops_[i] for i in idx], dtype=np.float64)
        rows_per_cta = np.maximum(1, ROW_CTA_ELEMENTS // width)
        ctas = np.maximum(1, np.ceil(rows / rows_per_cta).astype(np.int64))
        extra = np.where(width > PERSISTENT_ROW.get(family, 8192),
                         EXTRA_PASSES.get(family, 1), 0)
        row_bytes = in_bytes / rows
        inflight = np.minimum(CTA_INFLIGHT, np.maximum(rows_per_cta * row_bytes, 1.0))
        slots = hw.sms * 2
        reread = extra * in_bytes
        from_dram = REREAD_FROM_DRAM.get(family, False)
        dram = min_bytes + (reread if from_dram else 0.0)
        l2 = np.zeros(len(idx)) if from_dram else reread
        # stream_time(hw, dram, ctas, slots, inflight, efficiency), its branches as masks
        per_cta = dram / ctas
        full, rest = np.divmod(ctas, slots)
        share_full = hw.hbm_achievable * efficiency / max(slots, 1)
        share_rest = hw.hbm_achievable * efficiency / np.maximum(rest, 1)
        if hw.hbm_latency > 0:
            cap = inflight / hw.hbm_latency
            live = inflight > 0
            rate_full = np.where(live, np.minimum(share_full, cap), share_full)
            rate_rest = np.where(live, np.minimum(share_rest, cap), share_rest)
        else:
            rate_full, rate_rest = np.full(len(idx), share_full), share_rest
        t = np.where(full > 0, full * per_cta / rate_full, 0.0)
        t = t + np.where(rest > 0, per_cta / rate_rest, 0.0)
        t = np.where((dram > 0) & (per_cta > 0), t, 0.0)
        t_dram = (1 + extra) * hw.hbm_latency + t
        t_l2 = np.where(l2 != 0, l2 / hw.l2_achievable, 0.0)
        t_compute = flops / peak if peak > 0 else np.zeros(len(idx))
        body = np.maximum(np.maximum(t_dram, t_l2), t_compute)
        bound = np.where(body == t_dram, 0, np.where(body == t_l2, 1, 2))
        names = ("memory", "l2", "compute")
        for i, tm, bd, dr, l2b, ct, ex, td, tc in zip(
                idx, (hw.launch + body).tolist(), bound.tolist(), dram.tolist(), l2.tolist(),
                ctas.tolist(), extra.tolist(), t_dram.tolist(), t_compute.tolist(),
                strict=True):
            out[i] = {"time": tm, "bound": names[bd], "dram_bytes": dr, "l2_bytes": l2b,
                      "ctas": ct, "passes": 1 + ex, "t_dram": td, "t_compute": tc}
    return [r if r is not None else
            vector_time(hw, VectorShape(rows_[i], width_[i], in_bytes_[i], dram_bytes_[i],
                                        flops_[i]), family, peak, efficiency)
            for i, r in enumerate(out)]
