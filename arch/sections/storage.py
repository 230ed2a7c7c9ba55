"""Storage devices: an NVMe SSD (``ssd``) and a computational SSD with an in-storage engine
(``csd``).

``flash`` describes the NAND back end as SSD simulators do (MQSim, SimpleSSD): channels, chips
per channel, dies per chip, planes per die, page size, array timings (tR, tPROG, tBERS) and the
channel bus rate; ``controller_latency`` is the firmware time per command. The internal read
bandwidth is the smaller of the channel buses (``channels x channel_bandwidth``) and the array
(``planes in total x page_size / read_latency``). ``engine`` is a CSD's compute: FLOP/s per
dtype as designed (``flops``), the fraction its GEMV / attention kernels reach as measured
(``efficiency``), a fixed cost per kernel call, and its own DRAM.
"""

from __future__ import annotations

from dataclasses import dataclass

from arch.schema import param
from arch.spec import register_device_type, register_section


@register_section("flash")
@dataclass(kw_only=True)
class FlashSpec:
    """The NAND flash back end of an SSD."""

    capacity: float = param("B", gt=0, doc="user capacity in bytes")
    channels: int = param(gt=0, doc="flash channels")
    chips_per_channel: int = param(gt=0, doc="flash chips (chip enables) per channel")
    dies_per_chip: int = param(gt=0, default=1, doc="dies per chip")
    planes_per_die: int = param(gt=0, default=1, doc="planes per die")
    page_size: float = param("B", gt=0, doc="flash page in bytes")
    read_latency: float = param("s", gt=0, doc="tR: page read from the array into the page "
                                               "register, in s")
    program_latency: float = param("s", gt=0, doc="tPROG: page program, in s")
    erase_latency: float = param("s", gt=0, doc="tBERS: block erase, in s")
    channel_bandwidth: float = param("B/s", gt=0, doc="bytes/s one channel bus moves (MT/s x "
                                                      "bus width)")
    controller_latency: float = param("s", ge=0, default=0.0,
                                      doc="firmware / FTL time per command, in s")

    @property
    def planes(self) -> int:
        """Planes that can read at once."""
        return self.channels * self.chips_per_channel * self.dies_per_chip * self.planes_per_die

    @property
    def read_bandwidth(self) -> float:
        """Internal sequential read bandwidth (B/s): channel buses or array, the smaller."""
        array = self.planes * self.page_size / self.read_latency
        return min(self.channels * self.channel_bandwidth, array)


@register_section("engine")
@dataclass(kw_only=True)
class EngineSpec:
    """The in-storage compute engine of a computational SSD."""

    flops: dict[str, float] = param("FLOP/s", gt=0, doc="designed FLOP/s by dtype")
    efficiency: float = param(gt=0, le=1, doc="fraction of ``flops`` its GEMV / attention "
                                              "kernels reach, as measured")
    launch: float = param("s", ge=0, default=0.0, doc="fixed cost of one kernel call, in s")
    dram_capacity: float = param("B", gt=0, doc="the engine's DRAM, in bytes")
    dram_bandwidth: float = param("B/s", gt=0, doc="the engine's DRAM bandwidth, in B/s")


register_device_type("ssd", required=("flash",), optional=("energy", "interconnect", "system"))
register_device_type("csd", required=("flash", "engine"),
                     optional=("energy", "interconnect", "system"))
