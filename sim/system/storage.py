"""How fast a flash tier serves an access pattern: request size and queue depth.

A request of ``r`` bytes is striped page by page over the channels (page-level striping, as
MQSim's CWDP allocation does): it costs the firmware's command time, one array read (tR) and the
transfer of its bytes over the channels it spans. ``q`` requests in flight overlap, so the tier
moves ``min(internal read bandwidth, q x r / t_request)`` bytes/s (Little's law). When the
cycle-level flash model is available (``sim.micro.flash.pattern_timing``) it answers instead.
A load on a flash tier is then scaled by ``sustained / pattern`` bandwidth, so a shallow queue
or small requests occupy the tier longer.
"""

from __future__ import annotations

import dataclasses
import math

from arch.sections.storage import FlashSpec

_MEMO: dict[tuple, float] = {}


def pattern_bandwidth(flash: FlashSpec, request_bytes: float, queue_depth: int) -> float:
    """Bytes/s a flash back end reads at, for ``queue_depth`` requests of ``request_bytes``
    (memoised per back end and pattern)."""
    key = (dataclasses.astuple(flash), request_bytes, queue_depth)
    hit = _MEMO.get(key)
    if hit is None:
        hit = _MEMO[key] = _pattern(flash, request_bytes, queue_depth)
    return hit


def _pattern(flash: FlashSpec, request_bytes: float, queue_depth: int) -> float:
    try:
        from sim.micro.flash import pattern_timing  # the cycle-level model, when present
    except ImportError:
        pattern_timing = None
    if pattern_timing is not None:
        try:
            return float(pattern_timing(flash, "seq", request_bytes, queue_depth)[0])
        except (TypeError, ValueError, AttributeError):
            pass
    pages = max(1, math.ceil(request_bytes / flash.page_size))
    spread = min(pages, flash.channels) * flash.channel_bandwidth
    t_request = flash.controller_latency + flash.read_latency + request_bytes / spread
    return min(flash.read_bandwidth, queue_depth * request_bytes / t_request)


def flash_scale(system, tier_name: str, request_bytes: float, queue_depth: int) -> float:
    """Factor (>= 1) by which a load on ``tier_name`` occupies it longer than a sustained
    stream, for this access pattern; 1 for a tier that is not flash. ``queue_depth`` 0 means
    the device's own engine reads with every plane busy (in-storage access)."""
    tier = system.tiers[tier_name]
    if tier.kind != "flash" or not tier.device:
        return 1.0
    flash = system.devices[tier.device].arch.flash
    qd = queue_depth or flash.planes
    return max(1.0, tier.bandwidth / pattern_bandwidth(flash, request_bytes, qd))
