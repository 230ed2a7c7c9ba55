"""The ``dram`` section: DRAM organisation, JEDEC timing (cycles), IDD currents, controller.

One section describes any JEDEC-style DRAM system (DDR4/5, LPDDR4/5, GDDR6, HBM2/2e/3): the
cycle-level model (``sim.micro.dram``) runs on it, and PIM and NPU+PIM devices read their bank
timing from it. Timing values are integers in memory-clock cycles of ``tCK``; currents in mA per
device and ``VDD`` in V (the IDD energy method), so the YAML mirrors datasheet tables.

Presets of type ``dram`` (``dram-hbm3-h100``, ``dram-ddr4-3200`` ...) hold one memory system each;
system presets (``neupims``) carry a ``dram`` section next to their compute sections.
"""

from __future__ import annotations

from dataclasses import dataclass

from arch.plausible import DRAM_QUEUE_MAX as MAX_QUEUE
from arch.plausible import DRAM_TIMING_MAX as _T
from arch.schema import param
from arch.spec import register_device_type, register_section

PROTOCOLS = ("DDR3", "DDR4", "DDR5", "LPDDR4", "LPDDR5", "GDDR5", "GDDR6", "HBM", "HBM2",
             "HBM2E", "HBM3")
FIELDS = ("ch", "ra", "bg", "ba", "ro", "co")


def _pow2(x: int) -> bool:
    return x >= 1 and not x & (x - 1)


@dataclass(kw_only=True)
class DramTimingSpec:
    """JEDEC timing parameters in memory-clock cycles (each at most 2^20 cycles: the longest,
    tREFI, is 12,480 cycles of DDR4-3200, JESD79-4C; see :mod:`arch.plausible`)."""

    CL: int = param(gt=0, le=_T, doc="read latency (CAS), cycles")
    CWL: int = param(ge=0, le=_T, doc="write latency, cycles")
    tRCDRD: int = param(gt=0, le=_T, doc="ACT to READ, cycles (tRCD)")
    tRCDWR: int = param(gt=0, le=_T, doc="ACT to WRITE, cycles (tRCD)")
    tRP: int = param(gt=0, le=_T, doc="PRE to ACT, cycles")
    tRAS: int = param(gt=0, le=_T, doc="ACT to PRE, cycles")
    tRRD_S: int = param(gt=0, le=_T, doc="ACT to ACT, different bank groups, cycles")
    tRRD_L: int = param(gt=0, le=_T, doc="ACT to ACT, same bank group, cycles")
    tFAW: int = param(gt=0, le=_T, doc="four-activate window, cycles")
    tCCD_S: int = param(gt=0, le=_T, doc="column to column, different bank groups, cycles")
    tCCD_L: int = param(gt=0, le=_T, doc="column to column, same bank group, cycles")
    tWTR_S: int = param(ge=0, le=_T, doc="end of write data to READ, different bank groups, cycles")
    tWTR_L: int = param(ge=0, le=_T, doc="end of write data to READ, same bank group, cycles")
    tRTP: int = param(ge=0, le=_T, doc="READ to PRE, cycles")
    tWR: int = param(ge=0, le=_T, doc="write recovery (end of write data to PRE), cycles")
    tRFC: int = param(gt=0, le=_T, doc="all-bank REF to ACT, cycles")
    tREFI: int = param(gt=0, le=_T, doc="average refresh interval, cycles")
    tRTRS: int = param(ge=0, le=_T, doc="rank-to-rank (data bus turnaround), cycles")
    AL: int | None = param(ge=0, le=_T, default=None, doc="additive latency, cycles (0)")
    tRFCb: int | None = param(gt=0, le=_T, default=None, doc="per-bank REF to ACT, cycles")
    tREFIb: int | None = param(gt=0, le=_T, default=None, doc="per-bank refresh interval, cycles")
    tPPD: int | None = param(ge=0, le=_T, default=None, doc="PRE to PRE, cycles (LPDDR/GDDR)")
    t32AW: int | None = param(gt=0, le=_T, default=None, doc="32-activate window, cycles (GDDR)")

    def check(self) -> tuple[str, str] | None:
        # a refresh must end before the next is due, or the DRAM is never available
        if self.tRFC >= self.tREFI:
            return ("tREFI", f"expected more than tRFC ({self.tRFC}) cycles, got {self.tREFI}")
        if self.tRFCb is not None and self.tREFIb is not None and self.tRFCb >= self.tREFIb:
            return ("tREFIb", f"expected more than tRFCb ({self.tRFCb}) cycles, got "
                              f"{self.tREFIb}")
        return None


@dataclass(kw_only=True)
class DramPowerSpec:
    """IDD currents (mA, per device) and supply voltage (V) for the IDD energy method."""

    VDD: float = param(gt=0, doc="supply voltage, V")
    IDD0: float = param(gt=0, doc="one-bank ACT-PRE current, mA")
    IDD2N: float = param(gt=0, doc="precharge standby current, mA")
    IDD3N: float = param(gt=0, doc="active standby current, mA")
    IDD4R: float = param(gt=0, doc="burst read current, mA")
    IDD4W: float = param(gt=0, doc="burst write current, mA")
    IDD5AB: float = param(gt=0, doc="all-bank refresh current, mA")
    IDD5PB: float | None = param(gt=0, default=None, doc="per-bank refresh current, mA")


@dataclass(kw_only=True)
class DramControllerSpec:
    """Memory-controller policy."""

    address_mapping: str = param(doc="six two-letter fields, most significant first, e.g. "
                                     "'rochrababgco' (ro row, ch channel, ra rank, bg bank group, "
                                     "ba bank, co column)")
    queue_structure: str = param(choices=("PER_BANK", "PER_RANK"), doc="command queues")
    row_buf_policy: str = param(choices=("OPEN_PAGE", "CLOSE_PAGE"), doc="row-buffer policy")
    cmd_queue_size: int = param(gt=0, le=MAX_QUEUE, doc="entries per command queue")
    trans_queue_size: int = param(gt=0, le=MAX_QUEUE,
                                  doc="read queue and write buffer entries")
    refresh_policy: str = param(choices=("RANK_LEVEL_STAGGERED", "RANK_LEVEL_SIMULTANEOUS",
                                         "BANK_LEVEL_STAGGERED"), doc="refresh scheduling")
    dual_command_issue: bool = param(doc="a row and a column command may issue in the same cycle "
                                         "(HBM's separate row/column command buses)")
    row_hit_cap: int = param(gt=0, doc="row hits served before a pending miss may close the row")
    write_drain_threshold: int = param(ge=0, doc="buffered writes that start a drain when the "
                                                 "command queues are empty")

    def check(self) -> tuple[str, str] | None:
        m = self.address_mapping
        tokens = sorted(m[i:i + 2] for i in range(0, len(m), 2))
        if len(m) != 12 or tokens != sorted(FIELDS):
            return ("address_mapping", f"expected the six fields {', '.join(FIELDS)} each once, "
                                       f"e.g. 'rochrababgco', got '{m}'")
        return None


@register_section("dram")
@dataclass(kw_only=True)
class DramSpec:
    """A JEDEC DRAM system: ``channels`` independent channels of ``ranks`` ranks of
    ``bankgroups x banks_per_group`` banks; ``rows`` rows of ``columns`` columns of
    ``device_width`` bits per device; ``bus_width`` bits per channel; bursts of ``burst_length``
    beats that occupy ``burst_cycles`` clock cycles."""

    protocol: str = param(choices=PROTOCOLS, doc="DRAM standard")
    channels: int = param(gt=0, doc="independent channels (HBM: pseudo-channels over all stacks)")
    ranks: int = param(gt=0, doc="ranks per channel")
    bankgroups: int = param(gt=0, doc="bank groups per rank")
    banks_per_group: int = param(gt=0, doc="banks per bank group")
    rows: int = param(gt=0, doc="rows per bank")
    columns: int = param(gt=0, doc="columns per row, in device_width-bit units")
    device_width: int = param(gt=0, doc="data bits per device")
    bus_width: int = param(gt=0, doc="data bits per channel")
    burst_length: int = param(gt=0, doc="beats per burst (BL)")
    burst_cycles: int = param(gt=0, doc="clock cycles one burst occupies the data bus")
    tCK: float = param("s", gt=0, doc="clock period, s")
    timing: DramTimingSpec = param(doc="JEDEC timing, cycles")
    power: DramPowerSpec = param(doc="IDD currents and VDD")
    controller: DramControllerSpec = param(doc="controller policy")
    stacks: int | None = param(gt=0, default=None, doc="HBM stacks (for reports)")

    def check(self) -> tuple[str, str] | None:
        # channels need not be a power of two (H100: 160 pseudo-channels); the cycle model
        # simulates a power-of-two subset and scales, channels being independent
        for name in ("ranks", "bankgroups", "banks_per_group", "rows", "columns",
                     "device_width", "bus_width", "burst_length"):
            if not _pow2(getattr(self, name)):
                return (name, f"expected a power of two, got {getattr(self, name)}")
        if self.bus_width % self.device_width:
            return ("bus_width", f"{self.bus_width} is not a multiple of device_width "
                                 f"{self.device_width}")
        if self.columns < self.burst_length:
            return ("columns", f"fewer columns ({self.columns}) than one burst "
                               f"({self.burst_length})")
        return None

    @property
    def banks(self) -> int:
        return self.bankgroups * self.banks_per_group

    @property
    def request_bytes(self) -> int:
        """Bytes per burst on one channel."""
        return self.bus_width // 8 * self.burst_length

    @property
    def page_bytes(self) -> int:
        """Row-buffer bytes per bank across the rank's devices."""
        return self.columns * self.bus_width // 8

    @property
    def peak_bandwidth(self) -> float:
        """Peak data bandwidth of all channels, bytes/s."""
        return self.channels * self.request_bytes / (self.burst_cycles * self.tCK)

    @property
    def capacity(self) -> float:
        """Bytes over all channels."""
        return float(self.channels * self.ranks * self.banks * self.rows * self.page_bytes)


register_device_type("dram", required=("dram",), optional=("energy", "system"))
