"""Sections every device class can use: memories, energy per action, links, system size."""

from __future__ import annotations

from dataclasses import dataclass

from arch.schema import param
from arch.spec import register_section


@dataclass(kw_only=True)
class MemoryLevel:
    """One level of the memory hierarchy (HBM, L2, SRAM buffer, DDR ...)."""

    capacity: float = param("B", gt=0, doc="capacity in bytes")
    bandwidth: float = param("B/s", gt=0, doc="peak bandwidth in bytes/s")
    efficiency: float = param(gt=0, le=1, default=1.0,
                              doc="achievable fraction of peak bandwidth for streaming access")
    latency: float = param("s", ge=0, default=0.0, doc="access latency in seconds")


@dataclass(kw_only=True)
class EnergySpec:
    """Energy per action (Accelergy-style table) and static power."""

    compute: dict[str, float] = param("J/FLOP", gt=0, doc="energy per FLOP by dtype")
    memory: dict[str, float] = param("J/bit", gt=0, doc="energy per bit moved, by memory level")
    link: dict[str, float] = param("J/bit", gt=0, default_factory=dict,
                                   doc="energy per bit sent, by link")
    static_power: float = param("W", ge=0, default=0.0, doc="power drawn while powered, in W")

    def check_arch(self, arch) -> tuple[str, str] | None:
        memory = arch.sections.get("memory", {})
        for level in self.memory:
            if level not in memory:
                return (f"energy.memory.{level}", f"no memory level '{level}' in section memory "
                                           f"(expected one of {', '.join(memory) or 'none'})")
        links = arch.sections.get("interconnect", {})
        for link in self.link:
            if link not in links:
                return (f"energy.link.{link}", f"no link '{link}' in section interconnect")
        return None


@dataclass(kw_only=True)
class LinkSpec:
    """A point-to-point or switched link (NVLink, PCIe, InfiniBand, CXL)."""

    bandwidth: float = param("B/s", gt=0, doc="per-device bandwidth in one direction, bytes/s")
    latency: float = param("s", ge=0, default=0.0, doc="per-hop latency in seconds")
    efficiency: float = param(gt=0, le=1, default=1.0, doc="achievable fraction of bandwidth")


@dataclass(kw_only=True)
class SystemSpec:
    """How many devices the arch holds and how they connect."""

    devices: int = param(gt=0, le=1024, default=1,
                         doc="devices per node (at most 1,024; NVL72 racks hold 72)")
    nodes: int = param(gt=0, le=131072, default=1,
                       doc="nodes (at most 131,072; the largest clusters have ~100,000 GPUs)")
    intra_node_link: str = param(default="", doc="interconnect key used inside a node")
    inter_node_link: str = param(default="", doc="interconnect key used between nodes")

    def check_arch(self, arch) -> tuple[str, str] | None:
        links = arch.sections.get("interconnect", {})
        for key in ("intra_node_link", "inter_node_link"):
            name = getattr(self, key)
            if name and name not in links:
                return (f"system.{key}", f"no link '{name}' in section interconnect "
                             f"(expected one of {', '.join(links) or 'none'})")
        if self.devices * self.nodes > 1 and not self.intra_node_link:
            return ("system.intra_node_link", "a multi-device system needs an intra_node_link")
        return None


register_section("memory")(dict[str, MemoryLevel])
register_section("energy")(EnergySpec)
register_section("interconnect")(dict[str, LinkSpec])
register_section("system")(SystemSpec)
