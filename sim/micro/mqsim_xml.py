"""Read MQSim's own input files: the SSD configuration and the I/O scenario XML.

``load_ssd_config(path)`` turns an ``<Execution_Parameter_Set>`` file into a
:class:`~sim.micro.flash_config.FlashConfig`; ``load_workload(path, cfg)`` turns an
``<MQSim_IO_Scenarios>`` file into a :class:`~sim.micro.flash_config.FlowSpec`. Element names,
units (ns, sectors of 512 B, GB/s per lane, MT/s) and meanings are MQSim's
(``src/exec/*_Parameter_Set.cpp``); both its spellings of the erase-suspend preference are
accepted. Anything this model does not reproduce (SATA, trace flows, mapping-table misses, GC
preconditioning, other cache modes) is refused with a one-line
:class:`~sim.devices.base.SimError` naming the file and the element, as are unknown elements,
missing fields and non-numeric values.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from sim.devices.base import SimError
from sim.micro.flash_config import PLANE_SCHEMES, SECTOR_BYTES, FlashConfig, FlowSpec

#: the largest integer a field may hold: 2^40 (1,100 s in ns, 1 TiB in bytes) keeps the flash
#: model's 64-bit sums of times and sizes far from overflow
INT_LIMIT = 2**40

_HOST = {"PCIe_Lane_Bandwidth", "PCIe_Lane_Count", "SATA_Processing_Delay",
         "Enable_ResponseTime_Logging", "ResponseTime_Logging_Period_Length"}
_DEVICE = {"Seed", "Enabled_Preconditioning", "Memory_Type", "HostInterface_Type",
           "IO_Queue_Depth", "Queue_Fetch_Size", "Caching_Mechanism", "Data_Cache_Sharing_Mode",
           "Data_Cache_Capacity", "Data_Cache_DRAM_Row_Size", "Data_Cache_DRAM_Data_Rate",
           "Data_Cache_DRAM_Data_Busrt_Size", "Data_Cache_DRAM_tRCD", "Data_Cache_DRAM_tCL",
           "Data_Cache_DRAM_tRP", "Address_Mapping", "Ideal_Mapping_Table", "CMT_Capacity",
           "CMT_Sharing_Mode", "Plane_Allocation_Scheme", "Transaction_Scheduling_Policy",
           "Overprovisioning_Ratio", "GC_Exec_Threshold", "GC_Block_Selection_Policy",
           "Use_Copyback_for_GC", "Preemptible_GC_Enabled", "GC_Hard_Threshold",
           "Dynamic_Wearleveling_Enabled", "Static_Wearleveling_Enabled",
           "Static_Wearleveling_Threshold", "Preferred_suspend_erase_time_for_read",
           "Prefered_suspend_erase_time_for_read", "Preferred_suspend_erase_time_for_write",
           "Preferred_suspend_write_time_for_read", "Flash_Channel_Count", "Flash_Channel_Width",
           "Channel_Transfer_Rate", "Chip_No_Per_Channel", "Flash_Comm_Protocol",
           "Flash_Parameter_Set"}
_FLASH = {"Flash_Technology", "CMD_Suspension_Support", "Page_Read_Latency_LSB",
          "Page_Read_Latency_CSB", "Page_Read_Latency_MSB", "Page_Program_Latency_LSB",
          "Page_Program_Latency_CSB", "Page_Program_Latency_MSB", "Block_Erase_Latency",
          "Block_PE_Cycles_Limit", "Suspend_Erase_Time", "Suspend_Program_Time",
          "Die_No_Per_Chip", "Plane_No_Per_Die", "Block_No_Per_Plane", "Page_No_Per_Block",
          "Page_Capacity", "Page_Metadat_Capacity"}
_FLOW = {"Priority_Class", "Device_Level_Data_Caching_Mode", "Channel_IDs", "Chip_IDs",
         "Die_IDs", "Plane_IDs", "Initial_Occupancy_Percentage", "Working_Set_Percentage",
         "Synthetic_Generator_Type", "Read_Percentage", "Address_Distribution",
         "Percentage_of_Hot_Region", "Generated_Aligned_Addresses", "Address_Alignment_Unit",
         "Request_Size_Distribution", "Average_Request_Size", "Variance_Request_Size", "Seed",
         "Average_No_of_Reqs_in_Queue", "Bandwidth", "Stop_Time", "Total_Requests_To_Generate"}

#: device fields the model needs (the rest are accepted and either checked or unused)
_DEVICE_REQUIRED = ("Flash_Channel_Count", "Chip_No_Per_Channel", "Flash_Channel_Width",
                    "Channel_Transfer_Rate", "Plane_Allocation_Scheme", "Flash_Parameter_Set")
_FLASH_REQUIRED = ("Flash_Technology", "Page_Read_Latency_LSB", "Page_Program_Latency_LSB",
                   "Die_No_Per_Chip", "Plane_No_Per_Die", "Block_No_Per_Plane",
                   "Page_No_Per_Block", "Page_Capacity")
_FLOW_REQUIRED = ("Synthetic_Generator_Type", "Read_Percentage", "Address_Distribution",
                  "Average_Request_Size", "Average_No_of_Reqs_in_Queue", "Stop_Time")


def _parse(path: str | Path, root_tag: str) -> ET.Element:
    path = Path(path)
    if not path.is_file():
        raise SimError(f"{path}: file not found")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise SimError(f"{path}: not well-formed XML ({exc})") from None
    except (LookupError, ValueError) as exc:   # e.g. an unknown encoding in the declaration
        raise SimError(f"{path}: not readable XML ({str(exc)[:80]})") from None
    except OSError as exc:
        raise SimError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if root.tag != root_tag:
        raise SimError(f"{path}: expected a <{root_tag}> document, got <{root.tag}>")
    return root


class _Section:
    """Children of one XML element by tag, with typed, located accessors."""

    def __init__(self, path: Path, elem: ET.Element, known: set[str], where: str):
        self.path, self.where = path, where
        self.fields: dict[str, ET.Element] = {}
        for child in elem:
            if child.tag not in known:
                raise SimError(f"{path}: {where}: unknown element <{child.tag}>")
            if child.tag in self.fields:
                raise SimError(f"{path}: {where}.{child.tag}: given twice")
            self.fields[child.tag] = child

    def require(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name not in self.fields:
                raise SimError(f"{self.path}: {self.where}: missing <{name}>")

    def text(self, name: str, default: str | None = None) -> str:
        if name not in self.fields:
            if default is None:
                raise SimError(f"{self.path}: {self.where}: missing <{name}>")
            return default
        return (self.fields[name].text or "").strip()

    def int(self, name: str, default: int | None = None, low: int | None = 0) -> int:
        raw = self.text(name, None if default is None else str(default))
        try:
            value = int(raw)
        except ValueError:
            raise SimError(f"{self.path}: {self.where}.{name}: expected an integer, got "
                           f"'{raw[:40]}'") from None
        if low is not None and value < low:
            raise SimError(f"{self.path}: {self.where}.{name}: expected >= {low}, got {value}")
        if value > INT_LIMIT:   # the flash model keeps times and sizes in 64-bit integers
            raise SimError(f"{self.path}: {self.where}.{name}: expected at most {INT_LIMIT:,}, "
                           f"got {raw[:40]}")
        return value

    def float(self, name: str, default: float | None = None, low: float | None = 0.0) -> float:
        raw = self.text(name, None if default is None else repr(default))
        try:
            value = float(raw)
        except ValueError:
            raise SimError(f"{self.path}: {self.where}.{name}: expected a number, got "
                           f"'{raw[:40]}'") from None
        if not math.isfinite(value) or (low is not None and value < low):
            raise SimError(f"{self.path}: {self.where}.{name}: expected a finite number >= "
                           f"{low}, got {raw}")
        return value

    def bool(self, name: str, default: bool) -> bool:
        raw = self.text(name, "true" if default else "false").lower()
        if raw not in ("true", "false"):
            raise SimError(f"{self.path}: {self.where}.{name}: expected true or false, got "
                           f"'{raw[:40]}'")
        return raw == "true"

    def choice(self, name: str, supported: tuple[str, ...], known: tuple[str, ...] = (),
               default: str | None = None) -> str:
        raw = self.text(name, default)
        if raw in supported:
            return raw
        if raw in known:
            raise SimError(f"{self.path}: {self.where}.{name}: {raw} is not supported by "
                           f"xpusim's flash model (supported: {', '.join(supported)})")
        raise SimError(f"{self.path}: {self.where}.{name}: expected one of "
                       f"{', '.join(supported + known)}, got '{raw[:40]}'")


def load_ssd_config(path: str | Path) -> FlashConfig:
    """MQSim ``ssdconfig.xml`` as a :class:`FlashConfig` (raises :class:`SimError`)."""
    path = Path(path)
    root = _parse(path, "Execution_Parameter_Set")
    top = _Section(path, root, {"Host_Parameter_Set", "Device_Parameter_Set"},
                   "Execution_Parameter_Set")
    top.require(("Host_Parameter_Set", "Device_Parameter_Set"))
    host = _Section(path, top.fields["Host_Parameter_Set"], _HOST, "Host_Parameter_Set")
    dev = _Section(path, top.fields["Device_Parameter_Set"], _DEVICE, "Device_Parameter_Set")
    dev.require(_DEVICE_REQUIRED)
    fl = _Section(path, dev.fields["Flash_Parameter_Set"], _FLASH,
                  "Device_Parameter_Set.Flash_Parameter_Set")
    fl.require(_FLASH_REQUIRED)

    dev.choice("Memory_Type", ("FLASH",), default="FLASH")
    dev.choice("HostInterface_Type", ("NVME",), ("SATA",), default="NVME")
    dev.choice("Flash_Comm_Protocol", ("NVDDR2",), ("NVDDR", "ONFI"), default="NVDDR2")
    dev.choice("Address_Mapping", ("PAGE_LEVEL",), ("HYBRID",), default="PAGE_LEVEL")
    dev.choice("Caching_Mechanism", ("ADVANCED",), ("SIMPLE",), default="ADVANCED")
    dev.choice("Transaction_Scheduling_Policy", ("PRIORITY_OUT_OF_ORDER", "OUT_OF_ORDER"),
               ("FLIN",), default="PRIORITY_OUT_OF_ORDER")
    if not dev.bool("Ideal_Mapping_Table", True):
        raise SimError(f"{path}: Device_Parameter_Set.Ideal_Mapping_Table: false (mapping-"
                       "table misses in a cached mapping table) is not supported by xpusim's "
                       "flash model; set true")
    if dev.bool("Enabled_Preconditioning", False):
        raise SimError(f"{path}: Device_Parameter_Set.Enabled_Preconditioning: true (a steady-"
                       "state drive with garbage collection) is not supported by xpusim's flash "
                       "model; set false")
    scheme = dev.choice("Plane_Allocation_Scheme", PLANE_SCHEMES)
    tech = fl.choice("Flash_Technology", ("SLC", "MLC", "TLC"))
    # every numeric field that is present must parse, used or not
    for sec in (host, dev, fl):
        for name, elem in sec.fields.items():
            raw = (elem.text or "").strip()
            if len(elem) or not raw or raw[0].isalpha():
                continue
            sec.float(name, low=None)
    rd = [fl.int("Page_Read_Latency_LSB")]
    pg = [fl.int("Page_Program_Latency_LSB")]
    rd += [fl.int("Page_Read_Latency_CSB", rd[0]), fl.int("Page_Read_Latency_MSB", rd[0])]
    pg += [fl.int("Page_Program_Latency_CSB", pg[0]), fl.int("Page_Program_Latency_MSB", pg[0])]
    page = fl.int("Page_Capacity", low=SECTOR_BYTES)
    kw = dict(
        name=path.stem,
        channels=dev.int("Flash_Channel_Count", low=1),
        chips_per_channel=dev.int("Chip_No_Per_Channel", low=1),
        dies_per_chip=fl.int("Die_No_Per_Chip", low=1),
        planes_per_die=fl.int("Plane_No_Per_Die", low=1),
        blocks_per_plane=fl.int("Block_No_Per_Plane", low=1),
        pages_per_block=fl.int("Page_No_Per_Block", low=1),
        page_bytes=page, technology=tech, read_ns=tuple(rd), program_ns=tuple(pg),
        erase_ns=fl.int("Block_Erase_Latency", 3800000),
        channel_MTps=dev.int("Channel_Transfer_Rate", low=1),
        channel_width_bytes=dev.int("Flash_Channel_Width", low=1),
        plane_scheme=scheme,
        overprovisioning=dev.float("Overprovisioning_Ratio", 0.07),
        cache_bytes=dev.int("Data_Cache_Capacity", 256 * 2**20),
        dram_row_bytes=dev.int("Data_Cache_DRAM_Row_Size", 8192, low=1),
        dram_MTps=dev.int("Data_Cache_DRAM_Data_Rate", 800, low=1),
        dram_burst_bytes=dev.int("Data_Cache_DRAM_Data_Busrt_Size", 4, low=1),
        dram_tRCD_ns=dev.int("Data_Cache_DRAM_tRCD", 13),
        dram_tCL_ns=dev.int("Data_Cache_DRAM_tCL", 13),
        dram_tRP_ns=dev.int("Data_Cache_DRAM_tRP", 13),
        pcie_lanes=host.int("PCIe_Lane_Count", 4, low=1),
        pcie_lane_GBps=host.float("PCIe_Lane_Bandwidth", 1.0),
        io_queue_depth=dev.int("IO_Queue_Depth", 1024, low=2),
        queue_fetch_size=dev.int("Queue_Fetch_Size", 512, low=1),
        sources={"mqsim_config": str(path)},
    )
    if kw["pcie_lane_GBps"] <= 0:
        raise SimError(f"{path}: Host_Parameter_Set.PCIe_Lane_Bandwidth: expected > 0")
    try:
        return FlashConfig(**kw)
    except SimError as exc:
        raise SimError(f"{path}: {exc}") from None


def _ids(sec: _Section, name: str, count: int) -> None:
    """MQSim lets a flow use a subset of channels/chips/dies/planes; only all of them is
    modelled here."""
    if name not in sec.fields:
        return
    raw = sec.text(name)
    try:
        ids = sorted(int(x) for x in raw.split(",") if x.strip())
    except ValueError:
        raise SimError(f"{sec.path}: {sec.where}.{name}: expected comma-separated integers, "
                       f"got '{raw[:40]}'") from None
    if ids != list(range(count)):
        raise SimError(f"{sec.path}: {sec.where}.{name}: a flow on a subset of the drive "
                       f"({raw}) is not supported; list all {count}")


def load_workload(path: str | Path, cfg: FlashConfig) -> FlowSpec:
    """The one synthetic flow of an MQSim workload file as a :class:`FlowSpec`."""
    path = Path(path)
    root = _parse(path, "MQSim_IO_Scenarios")
    scenarios = list(root)
    for s in scenarios:
        if s.tag != "IO_Scenario":
            raise SimError(f"{path}: MQSim_IO_Scenarios: unknown element <{s.tag}>")
    if len(scenarios) != 1:
        raise SimError(f"{path}: MQSim_IO_Scenarios: expected one <IO_Scenario>, got "
                       f"{len(scenarios)} (run them one file at a time)")
    flows = list(scenarios[0])
    if len(flows) != 1:
        raise SimError(f"{path}: IO_Scenario: expected one flow, got {len(flows)} (several "
                       "concurrent flows are not supported)")
    flow_el = flows[0]
    if flow_el.tag == "IO_Flow_Parameter_Set_Trace_Based":
        raise SimError(f"{path}: IO_Scenario.IO_Flow_Parameter_Set_Trace_Based: trace-based "
                       "flows are not supported (synthetic QUEUE_DEPTH flows are)")
    if flow_el.tag != "IO_Flow_Parameter_Set_Synthetic":
        raise SimError(f"{path}: IO_Scenario: unknown element <{flow_el.tag}>")
    where = "IO_Flow_Parameter_Set_Synthetic"
    f = _Section(path, flow_el, _FLOW, where)
    f.require(_FLOW_REQUIRED)
    f.choice("Synthetic_Generator_Type", ("QUEUE_DEPTH",), ("BANDWIDTH",))
    dist = f.choice("Address_Distribution", ("STREAMING", "RANDOM_UNIFORM"),
                    ("RANDOM_HOTCOLD",))
    f.choice("Request_Size_Distribution", ("FIXED",), ("NORMAL",), default="FIXED")
    f.choice("Device_Level_Data_Caching_Mode", ("WRITE_CACHE",),
             ("TURNED_OFF", "READ_CACHE", "WRITE_READ_CACHE"), default="WRITE_CACHE")
    f.choice("Priority_Class", ("URGENT", "HIGH", "MEDIUM", "LOW"), default="HIGH")
    _ids(f, "Channel_IDs", cfg.channels)
    _ids(f, "Chip_IDs", cfg.chips_per_channel)
    _ids(f, "Die_IDs", cfg.dies_per_chip)
    _ids(f, "Plane_IDs", cfg.planes_per_die)
    for name in ("Initial_Occupancy_Percentage", "Percentage_of_Hot_Region", "Bandwidth",
                 "Variance_Request_Size"):
        if name in f.fields:
            f.float(name)
    qd = f.int("Average_No_of_Reqs_in_Queue")
    if qd < 1:
        raise SimError(f"{path}: {where}.Average_No_of_Reqs_in_Queue: queue depth must be at "
                       f"least 1, got {qd}")
    if qd >= cfg.io_queue_depth:
        raise SimError(f"{path}: {where}.Average_No_of_Reqs_in_Queue: {qd} does not fit the "
                       f"drive's IO_Queue_Depth of {cfg.io_queue_depth}")
    read_pct = f.float("Read_Percentage")
    if read_pct > 100:
        raise SimError(f"{path}: {where}.Read_Percentage: expected 0..100, got {read_pct}")
    size = f.int("Average_Request_Size", low=1)
    if size > 65535:
        raise SimError(f"{path}: {where}.Average_Request_Size: NVMe carries at most 65535 "
                       f"sectors, got {size}")
    ws = f.float("Working_Set_Percentage", 100.0)
    if not 0 < ws <= 100:
        raise SimError(f"{path}: {where}.Working_Set_Percentage: expected 0 < x <= 100, got "
                       f"{ws}")
    stop = f.int("Stop_Time")
    total = f.int("Total_Requests_To_Generate", 0)
    if stop == 0 and total == 0:
        raise SimError(f"{path}: {where}.Stop_Time: give a stop time or "
                       "Total_Requests_To_Generate > 0")
    align = f.int("Address_Alignment_Unit", size, low=1)
    try:
        return FlowSpec(kind="seq" if dist == "STREAMING" else "rand",
                        read_fraction=read_pct / 100.0, request_bytes=size * SECTOR_BYTES,
                        queue_depth=qd, stop_time_s=stop * 1e-9, total_requests=total,
                        seed=f.int("Seed", 1), aligned=f.bool("Generated_Aligned_Addresses",
                                                              True),
                        alignment_bytes=align * SECTOR_BYTES, working_set=ws / 100.0)
    except SimError as exc:
        raise SimError(f"{path}: {exc}") from None
