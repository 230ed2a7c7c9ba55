"""Cycle fidelity of an in-storage engine's reads: the op's pages through the flash model.

A computational SSD's engine reads its operands from the drive's own NAND. At ``--fidelity
cycle`` the op's bytes become whole logical pages read by :func:`sim.micro.flash.page_group_read`
(the MQSim-compatible event kernel: FTL striping over channels, chips, dies and planes, tR per
page, NV-DDR transfers per channel), consecutive pages, with one request per page and as many
outstanding as the drive has planes. The engine sits inside the drive, so the NVMe host link
of the reference drive must not be what limits it: the configuration's PCIe lanes are widened
to carry the flash channels' aggregate rate (``engine_config``).

Size bound: at most ``cap`` pages (default 131,072 = 512 MiB at 4 KiB) are simulated; a larger
read runs at the rate of that prefix. Memoised per (drive, pages).
"""

from __future__ import annotations

import math
from functools import lru_cache

DEFAULT_CAP = 1 << 17


def engine_config(flash_spec):
    """The :class:`FlashConfig` of an arch ``flash`` section as the in-drive engine sees it."""
    from sim.micro.flash import FlashConfig

    cfg = FlashConfig.from_spec(flash_spec)
    need = flash_spec.channels * flash_spec.channel_bandwidth / 1e9
    lanes = max(cfg.pcie_lanes, math.ceil(need / cfg.pcie_lane_GBps))
    return cfg.with_(pcie_lanes=lanes)


@lru_cache(maxsize=8192)
def read_seconds(cfg, nbytes: int, cap: int = DEFAULT_CAP) -> tuple[float, int, int]:
    """(seconds, pages, simulated pages) to read ``nbytes`` as consecutive whole pages."""
    from sim.micro.flash import page_group_read

    if nbytes <= 0:
        return 0.0, 0, 0
    pages = math.ceil(nbytes / cfg.page_bytes)
    sim_pages = min(pages, cap)
    planes = cfg.channels * cfg.chips_per_channel * cfg.dies_per_chip * cfg.planes_per_die
    seconds, _ = page_group_read(cfg, sim_pages, queue_depth=planes, pages_per_request=1,
                                 random=False)
    return seconds * pages / sim_pages, pages, sim_pages
