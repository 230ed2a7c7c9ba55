"""How fast a flash tier serves an access pattern: request size and queue depth.

Host reads go through the event-level flash model (``sim.micro.flash.pattern_timing``, the
MQSim-exact back end of ``xpusim import mqsim``): a queue-depth flow of the pattern on the drive's
``flash`` section — NVMe queues, firmware command time, tR per page, multi-plane reads, channel
bus transfers, page striping, the host link. An in-storage engine (a CSD reading its own flash)
schedules page reads itself, so its rate is the first-order estimate with every plane busy
(``closed_form_bandwidth``, which the tests compare with the event model). A load on a flash
tier is scaled by ``sustained / pattern`` bandwidth, so a shallow queue or small requests occupy
the tier longer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: a run without flash need not load the storage schemas
    from arch.sections.storage import FlashSpec

_MEMO: dict[tuple, float] = {}  # (flash fields, request, depth, random, internal) -> B/s


def pattern_bandwidth(flash: FlashSpec, request_bytes: float, queue_depth: int,
                      random: bool = False, internal: bool = False) -> float:
    """Bytes/s a flash back end reads at, for ``queue_depth`` requests of ``request_bytes``
    (``random``: uniformly scattered page groups; ``internal``: an in-storage engine, whose
    reads do not cross the host link), from the event-level flash model, memoised."""
    # its fields as they are now (all numbers: no deep copy, ``dataclasses.astuple``'s, which
    # cost ~80 us a call here, 4.5 of the 9.8 CPU s of a 256-token run with attention on a CSD)
    key = (tuple(vars(flash).items()), request_bytes, queue_depth, random, internal)
    hit = _MEMO.get(key)
    if hit is None:
        hit = _MEMO[key] = _pattern(flash, request_bytes, queue_depth, random, internal)
    return hit


def _pattern(flash: FlashSpec, request_bytes: float, queue_depth: int, random: bool,
             internal: bool) -> float:
    if internal:
        # an in-storage engine schedules page reads itself, not through NVMe queues and the
        # host interface's firmware path that the event model (MQSim's) simulates: first order
        return closed_form_bandwidth(flash, request_bytes, queue_depth)
    from sim.micro.flash import pattern_timing
    from sim.micro.flash_config import FlashConfig

    bandwidth, _, _ = pattern_timing(FlashConfig.from_spec(flash), "rand" if random else "seq",
                                     request_bytes, queue_depth)
    return min(flash.read_bandwidth, float(bandwidth))


def closed_form_bandwidth(flash: FlashSpec, request_bytes: float, queue_depth: int) -> float:
    """The first-order estimate the event model refines: each request costs the firmware's
    command time, one tR and its transfer over the channels its pages stripe over; ``q`` in
    flight overlap (Little's law), up to the internal read bandwidth."""
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
    # a request no larger than a page is a page-group read scattered over the drive
    random = request_bytes <= flash.page_size
    bw = pattern_bandwidth(flash, request_bytes, qd, random, internal=queue_depth == 0)
    return max(1.0, tier.bandwidth / bw)
