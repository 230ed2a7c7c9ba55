"""Achievable DRAM bandwidth by concurrency (Little's law) and CTA-level streaming schedules.

A CTA keeps ``inflight`` bytes of loads outstanding; with a loaded memory latency ``L`` it cannot
stream faster than ``inflight / L`` (Little's law). ``a`` CTAs running at once share the chip's
achievable bandwidth ``B``, so each streams at ``min(inflight / L, B / a)``. Small grids (few CTAs,
as in batch-1 decode attention) therefore leave bandwidth unused; large grids saturate ``B``.
"""

from __future__ import annotations

from sim.gpu.hw import GpuHw


def cta_rate(hw: GpuHw, active: int, inflight: float, efficiency: float = 1.0) -> float:
    """Bytes/s one of ``active`` concurrent CTAs streams, each with ``inflight`` bytes in flight."""
    share = hw.hbm_achievable * efficiency / max(active, 1)
    if inflight <= 0 or hw.hbm_latency <= 0:
        return share
    return min(share, inflight / hw.hbm_latency)


def achievable_bandwidth(hw: GpuHw, active: int, inflight: float,
                         efficiency: float = 1.0) -> float:
    """Chip-wide bytes/s reached by ``active`` CTAs with ``inflight`` bytes in flight each."""
    return cta_rate(hw, active, inflight, efficiency) * max(active, 1)


def uniform_stream_time(hw: GpuHw, ctas: int, bytes_per_cta: float, slots: int,
                        inflight: float, efficiency: float = 1.0) -> tuple[float, int]:
    """Time (s) and waves for ``ctas`` equal CTAs each streaming ``bytes_per_cta``.

    CTAs run in waves of ``slots`` (SMs x CTAs per SM); the last, partial wave has fewer CTAs
    sharing the bandwidth, so each of them streams faster (up to its Little's-law cap).
    """
    if ctas <= 0 or bytes_per_cta <= 0:
        return 0.0, 0
    full, rest = divmod(ctas, slots)
    t = 0.0
    if full:
        t += full * bytes_per_cta / cta_rate(hw, slots, inflight, efficiency)
    if rest:
        t += bytes_per_cta / cta_rate(hw, rest, inflight, efficiency)
    return t, full + (1 if rest else 0)


def stream_time(hw: GpuHw, nbytes: float, ctas: int, slots: int, inflight: float,
                efficiency: float = 1.0) -> float:
    """Time (s) to stream ``nbytes`` spread evenly over a grid of ``ctas`` CTAs."""
    if nbytes <= 0:
        return 0.0
    ctas = max(int(ctas), 1)
    t, _ = uniform_stream_time(hw, ctas, nbytes / ctas, slots, inflight, efficiency)
    return t
