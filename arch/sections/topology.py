"""The ``system`` device type: components (devices, memories, switches) joined by links.

A system's ``components`` are device classes (``kind: device``: another arch, by preset name or
path, ``count`` instances, with ``overrides`` deep-merged into that arch's data before it is
validated), standalone memories (``kind: memory``: host DDR, a CXL card) and switches. Its
``links`` join two components; ``bandwidth`` is per direction, or PCIe/CXL links give
``generation`` + ``lanes`` and the bandwidth follows from the PCI-SIG signalling rate.

Instances: a device component of count N has instances ``<name>0`` .. ``<name>N-1``; a memory or
switch component of count 1 is named by the component, of count N > 1 like devices. A link
between a count-N (N > 1) and a count-1 component exists once per instance
(``<link>.<instance>``), between two components of equal count N > 1 pairwise (named by the
first component's instances), between two count-1 components once (``<link>``).

After validation each device component carries its resolved device arch in ``device`` (not a
YAML field, so ``dump`` skips it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arch.schema import SpecError, param
from arch.spec import register_device_type, register_section

COMPONENT_KINDS = ("device", "memory", "switch")
MEMORY_KINDS = ("hbm", "hbm2", "hbm2e", "hbm3", "hbm3e", "ddr4", "ddr5", "lpddr4", "lpddr5",
                "lpddr5x", "gddr6", "gddr6x", "cxl", "sram", "nvme")
LINK_KINDS = ("pcie", "nvlink", "nvswitch", "cxl", "infiniband", "ethernet", "on-package", "ddr")
NETWORK_KINDS = ("infiniband", "ethernet")

# PCIe generation -> (transfer rate per lane in T/s, encoding efficiency)
PCIE_GENERATIONS: dict[int, tuple[float, float]] = {
    1: (2.5e9, 8 / 10), 2: (5e9, 8 / 10), 3: (8e9, 128 / 130), 4: (16e9, 128 / 130),
    5: (32e9, 128 / 130), 6: (64e9, 242 / 256),
}
PCIE_SOURCE = ("PCI-SIG PCI Express Base Specification: 1.x 2.5 GT/s and 2.0 5 GT/s per lane "
               "with 8b/10b encoding; 3.0 8 GT/s, 4.0 16 GT/s, 5.0 32 GT/s with 128b/130b; 6.0 "
               "64 GT/s PAM4 in 256-byte FLITs carrying 242 bytes (FLIT mode); per direction "
               "bytes/s = GT/s x lanes x encoding / 8")
CXL_PHY = {5: "CXL 1.1/2.0 (PCIe 5.0 PHY)", 6: "CXL 3.x (PCIe 6.0 PHY)"}
LANES = (1, 2, 4, 8, 12, 16, 32)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_MEMORY_FIELDS = ("memory", "capacity", "bandwidth", "channels", "channel_bandwidth",
                  "efficiency", "latency", "energy_per_bit", "read_write_efficiency")


@dataclass(kw_only=True)
class ComponentSpec:
    """One kind of part of a system: ``count`` devices of an arch, a memory, or a switch."""

    kind: str = param(choices=COMPONENT_KINDS, doc="device, memory or switch")
    arch: str | None = param(default=None, doc="device: arch preset name or YAML path")
    count: int | None = param(gt=0, le=65536, default=None,
                              doc="instances of this component (1; at most 65,536: a system is "
                                  "built instance by instance, ~45 us each)")
    overrides: Any = param(default=None, doc="device: raw arch data deep-merged into the "
                                             "device arch before validation")
    memory: str | None = param(choices=MEMORY_KINDS, default=None,
                               doc="memory: technology (ddr4, ddr5, hbm, cxl ...)")
    capacity: float | None = param("B", gt=0, default=None, doc="memory: bytes per instance")
    bandwidth: float | None = param("B/s", gt=0, default=None,
                                    doc="memory: peak bytes/s (or channels x channel_bandwidth)")
    channels: int | None = param(gt=0, default=None, doc="memory: channels")
    channel_bandwidth: float | None = param("B/s", gt=0, default=None,
                                            doc="memory: peak bytes/s of one channel")
    efficiency: float | None = param(gt=0, le=1, default=None,
                                     doc="memory: sustained fraction of peak bandwidth (1)")
    latency: float | None = param("s", ge=0, default=None, doc="memory: access latency (0 s)")
    energy_per_bit: float | None = param("J/bit", ge=0, default=None,
                                         doc="memory: energy per bit moved (0 J/bit)")
    read_write_efficiency: dict[str, float] | None = param(
        gt=0, le=1, default=None,
        doc="memory: achievable fraction of peak bandwidth by read fraction of the traffic "
            "(keys 0..1: 1 = all reads, 0.667 = 2:1 reads:writes); interpolated linearly, "
            "flat beyond the outermost points (default: efficiency at every mix)")
    device: Any = field(default=None, init=False, repr=False, compare=False,
                        metadata={"doc": "device: the resolved device Arch (not YAML)"})

    def check(self) -> tuple[str, str] | None:
        if self.kind == "device":
            if not self.arch:
                return ("arch", "missing required field for a device (a preset name or an arch "
                                "YAML path)")
            for name in _MEMORY_FIELDS:
                if getattr(self, name) is not None:
                    return (name, "only a memory component takes this field (a device's memory "
                                  "is in its arch; change it with overrides)")
            if self.overrides is not None and not isinstance(self.overrides, dict):
                return ("overrides", f"expected a mapping of arch data, got "
                                     f"{type(self.overrides).__name__}")
            return None
        for name in ("arch", "overrides"):
            if getattr(self, name) is not None:
                return (name, f"only a device component takes this field, not a {self.kind}")
        if self.kind == "switch":
            for name in _MEMORY_FIELDS:
                if getattr(self, name) is not None:
                    return (name, "a switch takes no memory fields (only kind and count)")
            return None
        for name in ("memory", "capacity"):
            if getattr(self, name) is None:
                return (name, "missing required field for a memory component")
        if self.read_write_efficiency is not None:
            problem = _check_mix_table(self.read_write_efficiency)
            if problem:
                return ("read_write_efficiency", problem)
        per_channel = (self.channels, self.channel_bandwidth)
        if self.bandwidth is not None and any(x is not None for x in per_channel):
            return ("bandwidth", "give either bandwidth or channels x channel_bandwidth, not both")
        if self.bandwidth is None and any(x is None for x in per_channel):
            missing = "channel_bandwidth" if self.channels is not None else "channels"
            return (missing if any(x is not None for x in per_channel) else "bandwidth",
                    "missing: a memory needs bandwidth, or channels and channel_bandwidth")
        return None

    @property
    def n(self) -> int:
        """Instances: ``count``, 1 when not given."""
        return self.count or 1

    @property
    def peak_bandwidth(self) -> float:
        """Memory: peak bytes/s of one instance."""
        if self.bandwidth is not None:
            return self.bandwidth
        return float((self.channels or 0) * (self.channel_bandwidth or 0.0))


@dataclass(kw_only=True)
class TopologyLink:
    """A link (kind) between two components; bandwidth per direction."""

    between: list[str] = param(doc="the two components it joins")
    kind: str = param(choices=LINK_KINDS, doc="pcie, nvlink, nvswitch, cxl, infiniband, "
                                               "ethernet, on-package or ddr (a socket's "
                                               "memory channels to its DIMMs)")
    bandwidth: float | None = param("B/s", gt=0, default=None,
                                    doc="peak bytes/s per direction (or generation + lanes)")
    generation: int | None = param(gt=0, default=None,
                                   doc="pcie/cxl: PCIe generation of the physical layer")
    lanes: int | None = param(gt=0, default=None, doc="pcie/cxl: lanes")
    efficiency: float | None = param(gt=0, le=1, default=None,
                                     doc="achievable fraction of bandwidth (1)")
    latency: float | None = param("s", ge=0, default=None, doc="per-hop latency (0 s)")
    energy_per_bit: float | None = param("J/bit", ge=0, default=None,
                                         doc="energy per bit sent (0 J/bit)")

    def check(self) -> tuple[str, str] | None:
        ends = self.between
        if len(ends) != 2 or not all(isinstance(e, str) and e for e in ends):
            return ("between", f"expected two component names [A, B], got {ends}")
        if ends[0] == ends[1]:
            return ("between", f"a link joins two different components, got [{ends[0]}, "
                               f"{ends[1]}] (a link of '{ends[0]}' to itself)")
        by_lanes = self.generation is not None or self.lanes is not None
        if self.bandwidth is not None and by_lanes:
            return ("bandwidth", "give either bandwidth or generation + lanes, not both")
        if self.bandwidth is None and not by_lanes:
            return ("bandwidth", "missing required field (bytes/s per direction; pcie and cxl "
                                 "links may give generation + lanes instead)")
        if not by_lanes:
            return None
        if self.kind not in ("pcie", "cxl"):
            return ("generation" if self.generation is not None else "lanes",
                    f"generation + lanes derive the bandwidth of pcie and cxl links only, not "
                    f"{self.kind} (give bandwidth)")
        if self.generation is None or self.lanes is None:
            return ("generation" if self.generation is None else "lanes",
                    "missing: generation and lanes go together")
        gens = tuple(CXL_PHY) if self.kind == "cxl" else tuple(PCIE_GENERATIONS)
        if self.generation not in gens:
            what = ("the PCIe generation of the CXL PHY: 5 = " + CXL_PHY[5] + ", 6 = " +
                    CXL_PHY[6]) if self.kind == "cxl" else "a PCIe generation"
            return ("generation", f"expected {what} ({', '.join(map(str, gens))}), "
                                  f"got {self.generation}")
        if self.lanes not in LANES:
            return ("lanes", f"expected a link width of {', '.join(map(str, LANES))} lanes, "
                             f"got {self.lanes}")
        return None

    @property
    def peak_bandwidth(self) -> float:
        """Peak bytes/s per direction (from generation x lanes when no bandwidth is given)."""
        if self.bandwidth is not None:
            return self.bandwidth
        return pcie_bandwidth(self.generation or 0, self.lanes or 0)


def mix_points(table: dict[str, float]) -> list[tuple[float, float]]:
    """(read fraction, efficiency) points of a ``read_write_efficiency`` table, by read
    fraction."""
    return sorted((float(k), float(v)) for k, v in table.items())


def _check_mix_table(table: dict[str, float]) -> str | None:
    """A problem with a ``read_write_efficiency`` table (keys read fractions in [0, 1])."""
    if not table:
        return "expected at least one point {read fraction: efficiency}"
    seen: dict[float, str] = {}
    for key in table:
        try:
            frac = float(key)
        except ValueError:
            return f"expected read fractions 0..1 as keys, got '{key}'"
        if not 0.0 <= frac <= 1.0:
            return f"expected read fractions 0..1 as keys, got {key}"
        if frac in seen:
            return f"read fraction {key} given twice ('{seen[frac]}' and '{key}')"
        seen[frac] = key
    return None


def pcie_bandwidth(generation: int, lanes: int) -> float:
    """Peak bytes/s per direction of a PCIe link: GT/s x lanes x encoding / 8."""
    rate, encoding = PCIE_GENERATIONS[generation]
    return rate * lanes * encoding / 8


def instance_names(name: str, spec: ComponentSpec) -> list[str]:
    """Node names of a component's instances (devices always indexed, others when count > 1)."""
    if spec.kind != "device" and spec.n == 1:
        return [name]
    return [f"{name}{i}" for i in range(spec.n)]


def link_instances(name: str, link: TopologyLink,
                   components: dict[str, ComponentSpec]) -> list[tuple[str, str, str]]:
    """(link instance name, node a, node b) of one validated topology link."""
    a_nodes = instance_names(link.between[0], components[link.between[0]])
    b_nodes = instance_names(link.between[1], components[link.between[1]])
    ca, cb = components[link.between[0]].n, components[link.between[1]].n
    if ca == 1 and cb == 1:
        return [(name, a_nodes[0], b_nodes[0])]
    if cb == 1:
        return [(f"{name}.{a}", a, b_nodes[0]) for a in a_nodes]
    if ca == 1:
        return [(f"{name}.{b}", a_nodes[0], b) for b in b_nodes]
    return [(f"{name}.{a}", a, b) for a, b in zip(a_nodes, b_nodes, strict=True)]


# --- validation -------------------------------------------------------------------------------
def _strip_sources(raw: Any, path: str, inherited: str | None,
                   sources: dict[str, str]) -> Any:
    """Raw arch data without ``{value, source}`` wrappers and mapping ``source``/``note`` keys;
    the source of each leaf goes to ``sources`` (by path below the overrides)."""
    if isinstance(raw, dict) and "value" not in raw:
        src = raw.get("source") if isinstance(raw.get("source"), str) else inherited
        return {str(k): _strip_sources(v, f"{path}.{k}" if path else str(k), src, sources)
                for k, v in raw.items() if k not in ("source", "note")}
    if isinstance(raw, dict):
        src = raw.get("source") if isinstance(raw.get("source"), str) else inherited
        raw = raw["value"]
    else:
        src = inherited
    if src and path:
        sources[path] = src
    return raw


def _with_sources(values: Any, path: str, sources: dict[str, str]) -> Any:
    """Inverse of :func:`_strip_sources`: wrap each sourced leaf as ``{value, source}``."""
    if isinstance(values, dict):
        return {k: _with_sources(v, f"{path}.{k}" if path else k, sources)
                for k, v in values.items()}
    return {"value": values, "source": sources[path]} if path in sources else values


def _in_overrides(values: Any, path: str) -> bool:
    """Whether an error at arch ``path`` lies on a value the overrides set."""
    node = values
    for part in path.split("."):
        key = part.split("[")[0]
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
        if not isinstance(node, dict):
            return True
    return True


def _normalise_overrides(arch, name: str, comp: ComponentSpec) -> dict[str, str]:
    """Store the component's overrides without source wrappers; record their sources in the
    system's provenance (``components.<name>.overrides.<path>``); return them by inner path."""
    if comp.overrides is None:
        return {}
    prefix = f"components.{name}.overrides"
    inherited = arch.provenance.pop(prefix, None)
    sources: dict[str, str] = {}
    comp.overrides = _strip_sources(comp.overrides, "", inherited, sources)
    arch.provenance.update({f"{prefix}.{k}": v for k, v in sources.items()})
    return sources


def _resolve_device(arch, name: str, comp: ComponentSpec) -> tuple[str, str] | None:
    """Load the component's device arch (with overrides) into ``comp.device``."""
    from arch import _resolve, arch_from_dict, deep_merge

    sources = _normalise_overrides(arch, name, comp)
    where = f"components.{name}.arch"
    ref = str(comp.arch)
    if ref.endswith((".yaml", ".yml")) and not Path(ref).is_absolute() and arch.origin:
        local = Path(arch.origin).parent / ref
        ref = str(local) if local.is_file() else ref
    try:
        data, label = _resolve(ref)
    except SpecError as exc:
        return where, exc.message if exc.path == "--arch" else f"cannot load: {exc}"
    if not isinstance(data, dict):
        return where, f"'{comp.arch}' is not an arch mapping"
    if data.get("type") == "system":
        return where, f"expected a device arch, '{comp.arch}' is a system (systems do not nest)"
    if comp.overrides:
        data = deep_merge(data, _with_sources(comp.overrides, "", sources))
    try:
        comp.device = arch_from_dict(data, file=label)
    except SpecError as exc:
        if comp.overrides and exc.path and _in_overrides(comp.overrides, exc.path):
            return (f"components.{name}.overrides.{exc.path}",
                    f"{exc.message} (in device arch '{comp.arch}')")
        return where, f"device arch '{comp.arch}' is invalid: {exc}"
    return None


def _hint(word: str, options: list[str]) -> str:
    import difflib  # on the error path only (start-up)
    hint = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{hint[0]}'?)" if hint else ""


def check_system(arch) -> tuple[str, str] | None:
    """Cross-checks of a ``system`` arch; resolves each device component's arch."""
    comps: dict[str, ComponentSpec] = arch.sections["components"]
    links: dict[str, TopologyLink] = arch.sections["links"]
    for name in list(comps) + list(links):
        if not _NAME.match(name):
            where = "components" if name in comps else "links"
            return (f"{where}.{name}", "expected a name of letters, digits, '_' or '-' "
                                       "(no '.', it separates instance and level names)")
    if not any(c.kind == "device" for c in comps.values()):
        return ("components", "a system needs at least one component of kind device")
    owner: dict[str, str] = {}
    for name, comp in comps.items():
        for node in instance_names(name, comp):
            if node in owner:
                return (f"components.{name}", f"instance name '{node}' clashes with component "
                                              f"'{owner[node]}'")
            owner[node] = name
    for lname, link in links.items():
        for end in link.between:
            if end not in comps:
                return (f"links.{lname}.between", f"unknown component '{end}'"
                        f"{_hint(end, list(comps))}; components: {', '.join(comps)}")
        (a, b) = link.between
        ca, cb = comps[a].n, comps[b].n
        if ca > 1 and cb > 1 and ca != cb:
            return (f"links.{lname}.between", f"cannot join '{a}' (count {ca}) and '{b}' "
                    f"(count {cb}): expected equal counts (pairwise) or one side of count 1")
    for name, comp in comps.items():
        if comp.kind == "device":
            problem = _resolve_device(arch, name, comp)
            if problem:
                return problem
    return None


register_section("components")(dict[str, ComponentSpec])
register_section("links")(dict[str, TopologyLink])
register_device_type("system", required=("components", "links"), optional=("placement",),
                     check=check_system)
