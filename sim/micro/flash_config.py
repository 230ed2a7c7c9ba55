"""NAND-flash SSD organisation and timing: :class:`FlashConfig` and :class:`FlowSpec`.

Units: the dataclass fields keep the names MQSim's ``SSDConfig`` XML uses where one exists and
say their unit in the name (``_ns``, ``_bytes``, ``_MTps``, ``_GBps``); the event kernel runs in
integer nanoseconds (as MQSim does), the public results are SI (seconds, bytes/s).

Derived timings follow MQSim (CMU-SAFARI/MQSim ``ONFI_Channel_NVDDR2.cpp``,
``PCIe_Link.h``, ``Data_Cache_Manager_Base.h``), read for their semantics:

* channel data moves two bytes per ``2 * floor(1000 / MT/s)`` ns per byte of width (NV-DDR2);
* a read command/address cycle takes ``tCS + 6 tWC + tWB + tRR`` (290 ns with ONFI defaults);
  each extra plane adds ``tDBSY + 6 tWC``; a program command adds ``tADL`` and write post-amble;
* the PCIe link adds ``tlp_header + dllp + physical`` = 20 + 6 + 2 = 28 bytes per
  128-byte TLP payload and moves ``lanes`` bytes per ``1/lane_GBps`` ns;
* a DRAM buffer access takes ``tRCD + tCL`` plus ``bytes / burst / 2`` DDR beats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from sim.devices.base import SimError

#: NAND page-type latency tables: SLC has one type; MLC LSB/MSB; TLC LSB/CSB/MSB
TECHNOLOGIES = ("SLC", "MLC", "TLC")
#: plane allocation schemes (MQSim ``Flash_Plane_Allocation_Scheme_Type``): the order in which
#: consecutive logical pages walk Channel, Way (chip), Die, Plane
PLANE_SCHEMES = ("CWDP", "CWPD", "CDWP", "CDPW", "CPWD", "CPDW", "WCDP", "WCPD", "WDCP",
                 "WDPC", "WPCD", "WPDC", "DCWP", "DCPW", "DWCP", "DWPC", "DPCW", "DPWC",
                 "PCWD", "PCDW", "PWCD", "PWDC", "PDCW", "PDWC")
SECTOR_BYTES = 512

# ONFI NV-DDR2 interface timings (ns), MQSim's defaults in ONFI_Channel_NVDDR2.h
_T_DBSY, _T_CS, _T_RR, _T_WB, _T_WC = 500, 20, 20, 100, 25
_T_ADL, _T_CALS, _T_WPST, _T_WPSTH = 70, 15, 6, 15
#: ready/busy signal delay added to every read (MQSim Flash_Chip default, ns)
RB_DELAY_READ_NS = 20
#: PCIe packet overhead per TLP (bytes): TLP header 20 + DLLP 6 + physical 2 (MQSim PCIe_Link.h)
PCIE_TLP_OVERHEAD_BYTES = 28
PCIE_TLP_PAYLOAD_BYTES = 128
#: NVMe submission / completion queue entry sizes as MQSim lays them out (sizeof of its structs)
SQE_BYTES, CQE_BYTES, DOORBELL_BYTES = 72, 16, 2


#: where the defaults of :class:`FlashConfig` come from
DEFAULT_SOURCES = {
    "organisation": "shared/reference/ssd README: Samsung 980 Pro 2 TB class, 8 channels x 4 "
                    "TLC dies (32 dies), 2 planes, 16 KiB pages",
    "read_ns/program_ns": "Samsung 6th-gen V-NAND published figures: read < 45 us, program "
                          "< 450 us (reference README)",
    "erase_ns": "3.5 ms, reference README (Samsung V-NAND block erase)",
    "channel": "NV-DDR2, 1 byte at 1000 MT/s = 1.0 GB/s per channel (reference README; MQSim "
               "rounds 1000/rate to whole ns)",
    "pcie": "PCIe 4.0 x4: 16 GT/s with 128b/130b = 1.969 GB/s per lane",
    "cache/dram": "64 MiB DRAM write buffer, 1866 MT/s x 4 B bursts, tRCD=tCL=tRP=15 ns "
                  "(reference README, mqsim_cases.py BASE)",
    "queues": "NVMe I/O queue 1024 entries, fetch 512 (MQSim defaults, reference config)",
    "onfi": "tCS 20, tWC 25, tDBSY 500, tWB 100, tRR 20, tADL 70 ns: MQSim "
            "ONFI_Channel_NVDDR2.h defaults",
}


#: flash pages a configuration may hold (2^27: a 2 TB drive of 16 KB pages; the model's
#: per-page mapping arrays then take ~2.7 GB)
MAX_PAGES = 2**27


class FlashConfigError(SimError):
    """An SSD configuration that cannot describe a drive."""


@dataclass(frozen=True)
class FlashConfig:
    """One SSD: NAND array, flash channels, controller, DRAM buffer and host link.

    Defaults are the reference drive of ``shared/reference/ssd`` (a Samsung 980 Pro-class
    PCIe 4.0 x4 TLC SSD: 8 channels x 4 chips, 16 KiB pages, tR 45 us / tPROG 450 us from
    Samsung's published 6th-gen V-NAND figures) so a bare ``FlashConfig()`` is a real drive.
    """

    name: str = "ssd-980pro-like"
    channels: int = 8
    chips_per_channel: int = 4
    dies_per_chip: int = 1
    planes_per_die: int = 2
    blocks_per_plane: int = 512
    pages_per_block: int = 384
    page_bytes: int = 16384
    technology: str = "TLC"
    #: tR / tPROG per page type (LSB, CSB, MSB) in ns; SLC uses the first, MLC the first two
    read_ns: tuple[int, int, int] = (45000, 45000, 45000)
    program_ns: tuple[int, int, int] = (450000, 450000, 450000)
    erase_ns: int = 3500000
    channel_MTps: int = 1000
    channel_width_bytes: int = 1
    #: True: MQSim's channel timing, ``floor(1000 / MT/s)`` ns per transfer (exact only for
    #: rates dividing 1000); False: the exact rate (to the picosecond)
    mqsim_channel_rounding: bool = True
    plane_scheme: str = "CWDP"
    overprovisioning: float = 0.07
    #: firmware / controller latency per flash command (ns) before it reaches the channel;
    #: MQSim models none (0), NVMeVirt-style drives set it
    controller_ns: int = 0
    # DRAM write buffer
    cache_bytes: int = 64 * 2**20
    cache_mode: str = "WRITE_CACHE"
    dram_row_bytes: int = 8192
    dram_MTps: int = 1866
    dram_burst_bytes: int = 4
    dram_tRCD_ns: int = 15
    dram_tCL_ns: int = 15
    dram_tRP_ns: int = 15
    # host interface
    pcie_lanes: int = 4
    pcie_lane_GBps: float = 1.969
    io_queue_depth: int = 1024
    queue_fetch_size: int = 512
    sources: dict = field(default_factory=lambda: dict(DEFAULT_SOURCES), compare=False,
                          hash=False)

    def __post_init__(self) -> None:
        for key in ("channels", "chips_per_channel", "dies_per_chip", "planes_per_die",
                    "blocks_per_plane", "pages_per_block", "page_bytes", "channel_MTps",
                    "channel_width_bytes", "pcie_lanes", "io_queue_depth", "queue_fetch_size",
                    "dram_MTps", "dram_burst_bytes", "dram_row_bytes"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise FlashConfigError(f"{self.name}: {key}: expected a positive integer, "
                                       f"got {value!r}")
        if self.page_bytes % SECTOR_BYTES or self.page_bytes // SECTOR_BYTES > 64:
            raise FlashConfigError(f"{self.name}: page_bytes: expected a multiple of 512 up to "
                                   f"32768, got {self.page_bytes}")
        pages = self.planes * self.blocks_per_plane * self.pages_per_block
        if pages > MAX_PAGES:   # the model keeps a mapping entry (~20 B) per logical page
            raise FlashConfigError(f"{self.name}: channels x chips_per_channel x dies_per_chip x "
                                   f"planes_per_die x blocks_per_plane x pages_per_block: "
                                   f"expected at most {MAX_PAGES:,} flash pages, got {pages:,}")
        if self.planes_per_die > 4:
            raise FlashConfigError(f"{self.name}: planes_per_die: at most 4 (ONFI multi-plane "
                                   f"commands), got {self.planes_per_die}")
        if self.mqsim_channel_rounding and self.channel_MTps > 1000:
            raise FlashConfigError(f"{self.name}: channel_MTps: MQSim's NV-DDR2 timing rounds "
                                   f"1000/rate to whole ns, so rates above 1000 MT/s give "
                                   f"zero-time transfers; got {self.channel_MTps}")
        if self.technology not in TECHNOLOGIES:
            raise FlashConfigError(f"{self.name}: technology: expected one of "
                                   f"{', '.join(TECHNOLOGIES)}, got {self.technology!r}")
        if self.plane_scheme not in PLANE_SCHEMES:
            raise FlashConfigError(f"{self.name}: plane_scheme: expected one of "
                                   f"{', '.join(PLANE_SCHEMES)}, got {self.plane_scheme!r}")
        if not 0.0 <= self.overprovisioning < 1.0:
            raise FlashConfigError(f"{self.name}: overprovisioning: expected 0 <= x < 1, got "
                                   f"{self.overprovisioning}")
        if not self.pcie_lane_GBps > 0:
            raise FlashConfigError(f"{self.name}: pcie_lane_GBps: expected > 0, got "
                                   f"{self.pcie_lane_GBps}")
        for key in ("read_ns", "program_ns"):
            if len(getattr(self, key)) != 3 or min(getattr(self, key)) < 0:
                raise FlashConfigError(f"{self.name}: {key}: expected three latencies >= 0")
        if self.controller_ns < 0 or self.erase_ns < 0:
            raise FlashConfigError(f"{self.name}: latencies must be >= 0")

    # organisation -------------------------------------------------------------------------
    @property
    def chips(self) -> int:
        return self.channels * self.chips_per_channel

    @property
    def planes(self) -> int:
        return self.chips * self.dies_per_chip * self.planes_per_die

    @property
    def sectors_per_page(self) -> int:
        return self.page_bytes // SECTOR_BYTES

    @property
    def logical_pages(self) -> int:
        """Host-visible pages: physical pages less over-provisioning."""
        physical = self.planes * self.blocks_per_plane * self.pages_per_block
        return max(1, int(physical * (1.0 - self.overprovisioning)))

    # channel timings (ns) ---------------------------------------------------------------
    @property
    def two_unit_ps(self) -> int:
        """NV-DDR2 time for two transfers (ps): MQSim truncates it to whole ns."""
        if self.mqsim_channel_rounding:
            return int(1000.0 / self.channel_MTps) * 2 * 1000
        return int(round(2e6 / self.channel_MTps))

    def data_ns(self, nbytes: int) -> int:
        """Channel time to move ``nbytes`` in or out of a chip (ns)."""
        return (nbytes // self.channel_width_bytes // 2) * self.two_unit_ps // 1000

    def read_cmd_ns(self, planes: int) -> int:
        """Read command + address cycles for a ``planes``-plane read (ns)."""
        return _T_CS + planes * 6 * _T_WC + (planes - 1) * _T_DBSY + _T_WB + _T_RR

    def program_cmd_ns(self, planes: int) -> int:
        """Program command + address cycles (data excluded) for ``planes`` planes (ns)."""
        last = _T_WC * 6 + _T_ADL + _T_WPST + _T_WPSTH + _T_WB
        other = _T_WC * 5 + _T_ADL + _T_WPST + _T_CALS + _T_WB
        return _T_CS + (planes - 1) * (other + _T_DBSY) + last

    @property
    def channel_Bps(self) -> float:
        """Channel payload bandwidth (bytes/s)."""
        return self.channel_width_bytes * 2 / (self.two_unit_ps * 1e-12)

    # host link ------------------------------------------------------------------------------
    def pcie_ns(self, payload: int, read_request: bool = False) -> int:
        """Link time of one PCIe message carrying ``payload`` bytes (ns), MQSim's formula."""
        if read_request:
            total = PCIE_TLP_OVERHEAD_BYTES + 4
        else:
            full, rest = divmod(payload, PCIE_TLP_PAYLOAD_BYTES)
            total = full * (PCIE_TLP_PAYLOAD_BYTES + PCIE_TLP_OVERHEAD_BYTES)
            if rest:
                total += rest + PCIE_TLP_OVERHEAD_BYTES
        beats = -(-total // self.pcie_lanes)
        return int(beats / self.pcie_lane_GBps)

    @property
    def pcie_payload_Bps(self) -> float:
        """Host-link payload rate per direction (bytes/s) after TLP overhead."""
        return (self.pcie_lanes * self.pcie_lane_GBps * 1e9 * PCIE_TLP_PAYLOAD_BYTES
                / (PCIE_TLP_PAYLOAD_BYTES + PCIE_TLP_OVERHEAD_BYTES))

    # DRAM buffer ------------------------------------------------------------------------------
    def dram_ns(self, nbytes: int) -> int:
        """One DRAM buffer access of ``nbytes`` (ns), MQSim's estimate (its integer order)."""
        beat = 1e9 / (self.dram_MTps * 1e6)
        row, burst = self.dram_row_bytes, self.dram_burst_bytes
        if nbytes <= row:
            return int(self.dram_tRCD_ns + self.dram_tCL_ns + int((nbytes // burst // 2) * beat))
        per_row = (self.dram_tRCD_ns + self.dram_tCL_ns + int(row // burst // 2 * beat)
                   + self.dram_tRP_ns)
        return int(per_row * (nbytes // row // 2) + self.dram_tRCD_ns + self.dram_tCL_ns
                   + int((nbytes % row) / (burst * beat)))

    @classmethod
    def from_spec(cls, spec, name: str = "flash") -> FlashConfig:
        """The drive an arch ``flash`` section describes (``arch.sections.storage.FlashSpec``:
        SI units). Channels run at their exact rate (1-byte bus, MT/s = B/s / 1e6); tR and
        tPROG apply to every page type; blocks of 384 pages fill the user capacity plus 7 %
        over-provisioning, capped at 2^26 logical pages (a fresh drive's timing does not depend
        on its size); the host link and DRAM buffer are the reference drive's (PCIe 4.0 x4).
        """
        page = int(math.ceil(float(spec.page_size) / SECTOR_BYTES)) * SECTOR_BYTES
        planes = (int(spec.channels) * int(spec.chips_per_channel) * int(spec.dies_per_chip)
                  * int(spec.planes_per_die))
        op = 0.07
        pages = min(float(spec.capacity) / page / (1.0 - op), float(2**26))
        blocks = max(1, int(math.ceil(pages / planes / 384)))
        rd = int(round(float(spec.read_latency) * 1e9))
        pg = int(round(float(spec.program_latency) * 1e9))
        return cls(name=name, channels=int(spec.channels),
                   chips_per_channel=int(spec.chips_per_channel),
                   dies_per_chip=int(spec.dies_per_chip),
                   planes_per_die=min(4, int(spec.planes_per_die)), blocks_per_plane=blocks,
                   pages_per_block=384, page_bytes=page, technology="SLC",
                   read_ns=(rd, rd, rd), program_ns=(pg, pg, pg),
                   erase_ns=int(round(float(spec.erase_latency) * 1e9)),
                   channel_MTps=max(1, int(round(float(spec.channel_bandwidth) / 1e6))),
                   channel_width_bytes=1, mqsim_channel_rounding=False, overprovisioning=op,
                   controller_ns=int(round(float(getattr(spec, "controller_latency", 0.0))
                                           * 1e9)),
                   sources={"arch_flash_section": "converted from FlashSpec (SI units)"})

    def with_(self, **changes) -> FlashConfig:
        """A copy with fields changed (validated again)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class FlowSpec:
    """One synthetic host flow in MQSim's QUEUE_DEPTH mode (or a fixed request count).

    ``kind`` is ``seq`` (MQSim STREAMING from a seeded random start) or ``rand`` (uniform over
    ``working_set`` of the logical space); ``request_bytes`` and ``alignment_bytes`` are
    multiples of 512; the flow keeps ``queue_depth`` requests outstanding until the clock passes
    ``stop_time_s`` (or ``total_requests`` were issued when ``stop_time_s`` is 0); requests then
    in flight finish.
    """

    kind: str = "rand"
    read_fraction: float = 1.0
    request_bytes: int = 4096
    queue_depth: int = 1
    stop_time_s: float = 1.0
    total_requests: int = 0
    seed: int = 1
    aligned: bool = True
    alignment_bytes: int = 4096
    working_set: float = 1.0
    start_fraction: float = -1.0  # seq only: < 0 draws a seeded random start

    def __post_init__(self) -> None:
        if self.kind not in ("seq", "rand"):
            raise FlashConfigError(f"flow: kind: expected 'seq' or 'rand', got {self.kind!r}")
        if not 0.0 <= self.read_fraction <= 1.0 or math.isnan(self.read_fraction):
            raise FlashConfigError(f"flow: read_fraction: expected 0..1, got "
                                   f"{self.read_fraction}")
        if self.request_bytes < SECTOR_BYTES or self.request_bytes % SECTOR_BYTES:
            raise FlashConfigError(f"flow: request_bytes: expected a positive multiple of 512, "
                                   f"got {self.request_bytes}")
        if self.request_bytes > 65535 * SECTOR_BYTES:
            raise FlashConfigError(f"flow: request_bytes: NVMe carries at most 65535 sectors, "
                                   f"got {self.request_bytes}")
        if not 0 <= self.seed < 2**31:
            raise FlashConfigError(f"flow: seed: expected 0 .. 2^31 - 1, got {self.seed}")
        if self.queue_depth < 1:
            raise FlashConfigError(f"flow: queue_depth: expected >= 1, got {self.queue_depth}")
        if self.stop_time_s <= 0 and self.total_requests <= 0:
            raise FlashConfigError("flow: give a stop time > 0 or a request count > 0")
        if self.aligned and (self.alignment_bytes < SECTOR_BYTES
                             or self.alignment_bytes % SECTOR_BYTES):
            raise FlashConfigError(f"flow: alignment_bytes: expected a positive multiple of "
                                   f"512, got {self.alignment_bytes}")
        if not 0.0 < self.working_set <= 1.0:
            raise FlashConfigError(f"flow: working_set: expected 0 < x <= 1, got "
                                   f"{self.working_set}")
