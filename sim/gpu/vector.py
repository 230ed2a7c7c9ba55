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
