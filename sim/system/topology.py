"""A system as a graph: device instances, memory tiers and switches joined by links, with routes.

:func:`build_system` turns an arch into a :class:`System`. A ``system`` arch lists its components
and links (``arch/sections/topology.py``); any other arch becomes a one-component system of
``system.devices x system.nodes`` instances of itself (one without a ``system`` section), each
with its main memory as a tier and, when there are several, a switch ``switch`` joined to each
by its intra-node link (kind ``nvlink``). Units: bytes, bytes/s, seconds, J/bit.

Nodes are device instances (``gpu0``), standalone tiers (``host_ddr``) and switches; a device's
own tier (``gpu0.hbm``) is the device node. :meth:`System.route` finds the route with the fewest
hops; ties go to the larger bottleneck (sustained bytes/s of the slowest hop), then to the
smaller sequence of link names.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import field

from arch import Arch
from sim.devices.base import SimError
from workloads.records import record

__all__ = ["Tier", "Link", "Hop", "Route", "DeviceInstance", "System", "build_system",
           "main_memory_level"]


@record(frozen=True)
class Tier:
    """A memory: ``bandwidth`` sustained (peak x efficiency) and ``peak_bandwidth`` in B/s,
    ``capacity`` in B, ``latency`` in s, ``energy_per_bit`` in J/bit; ``device`` names the
    instance owning it ("" for a standalone tier), ``shared_by`` the instances that use it;
    ``read_write_efficiency`` the measured (read fraction, fraction of peak) points, sorted by
    read fraction (empty: one efficiency at every mix)."""

    name: str
    kind: str
    capacity: float
    bandwidth: float
    peak_bandwidth: float
    latency: float
    energy_per_bit: float
    device: str = ""
    shared_by: tuple[str, ...] = ()
    read_write_efficiency: tuple[tuple[float, float], ...] = ()

    @property
    def efficiency(self) -> float:
        """Sustained fraction of peak bandwidth at the tier's streaming mix."""
        return self.bandwidth / self.peak_bandwidth if self.peak_bandwidth > 0 else 1.0

    def efficiency_at(self, read_fraction: float) -> float:
        """Achievable fraction of peak bandwidth when ``read_fraction`` of the bytes are reads
        (0..1): piecewise-linear in the tier's ``read_write_efficiency`` points (read fraction,
        efficiency), flat beyond the outermost ones; :attr:`efficiency` without a table. A load
        of B bytes at that mix occupies the tier as B / efficiency_at(r) bytes at peak."""
        if not 0.0 <= read_fraction <= 1.0:
            raise SimError(f"tier {self.name}: read fraction must lie in [0, 1], "
                           f"got {read_fraction}")
        points = self.read_write_efficiency
        if not points:
            return self.efficiency
        if read_fraction <= points[0][0]:
            return points[0][1]
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            if read_fraction <= x1:
                return y0 + (y1 - y0) * (read_fraction - x0) / (x1 - x0)
        return points[-1][1]

    def bandwidth_at(self, read_fraction: float) -> float:
        """Sustained bytes/s at ``read_fraction`` reads: peak x :meth:`efficiency_at`."""
        return self.peak_bandwidth * self.efficiency_at(read_fraction)


@record(frozen=True)
class Link:
    """A link between nodes ``a`` and ``b``: ``bandwidth`` peak B/s per direction."""

    name: str
    kind: str
    a: str
    b: str
    bandwidth: float
    efficiency: float
    latency: float
    energy_per_bit: float

    @property
    def sustained(self) -> float:
        """Achievable bytes/s per direction."""
        return self.bandwidth * self.efficiency


@record(frozen=True)
class Hop:
    """One link of a route; ``forward`` when it is crossed from ``a`` to ``b``."""

    link: str
    forward: bool


@record(frozen=True)
class Route:
    """Hops from ``src`` to ``dst``; ``latency`` (s) sums the hops, ``bottleneck`` (B/s) is the
    smallest sustained bandwidth on the way (inf for an empty route)."""

    src: str
    dst: str
    hops: tuple[Hop, ...]
    latency: float
    bottleneck: float


@record(frozen=True)
class DeviceInstance:
    """One device: ``arch`` is its device view, ``memory`` the name of its main tier."""

    name: str
    component: str
    index: int
    arch: Arch = field(compare=False, repr=False)
    memory: str = ""


class System:
    """Devices, tiers, switches and links of one arch, with memoised routes."""

    def __init__(self, name: str, arch: Arch, devices: dict[str, DeviceInstance],
                 tiers: dict[str, Tier], links: dict[str, Link], switches: tuple[str, ...],
                 primary: str):
        self.name = name
        self.arch = arch
        self.devices = devices
        self.tiers = tiers
        self.links = links
        self.switches = switches
        self.primary = primary
        self._adj: dict[str, list[tuple[str, str, bool]]] = {n: [] for n in self._nodes()}
        for link in links.values():
            self._adj[link.a].append((link.name, link.b, True))
            self._adj[link.b].append((link.name, link.a, False))
        self._routes: dict[tuple[str, str], Route] = {}
        #: what callers work out from the fixed topology once per route and reuse (a
        #: transfer's loads per byte), keyed by the caller's own tuples (first item: its name)
        self.derived: dict[tuple, object] = {}

    def __repr__(self) -> str:
        return (f"System({self.name!r}: {len(self.devices)} devices, {len(self.tiers)} tiers, "
                f"{len(self.links)} links)")

    def _nodes(self) -> list[str]:
        standalone = [t.name for t in self.tiers.values() if not t.device]
        return list(self.devices) + standalone + list(self.switches)

    def compute_devices(self, component: str | None = None) -> list[DeviceInstance]:
        """Instances of ``component`` (default: the primary one), in index order."""
        comp = component or self.primary
        out = [d for d in self.devices.values() if d.component == comp]
        if not out:
            comps = sorted({d.component for d in self.devices.values()})
            raise SimError(f"system '{self.name}': no device component '{comp}'"
                           f"{_hint(comp, comps)}; device components: {', '.join(comps)}")
        return out

    def tier_of_device(self, dev: str) -> Tier:
        """The main memory tier of device instance ``dev``."""
        if dev not in self.devices:
            raise SimError(f"system '{self.name}': no device '{dev}'"
                           f"{_hint(dev, list(self.devices))}")
        return self.tiers[self.devices[dev].memory]

    def node_of(self, name: str) -> str:
        """The graph node of a device, tier or switch name (a device's tier is the device)."""
        if name in self._adj:
            return name
        tier = self.tiers.get(name)
        if tier is not None and tier.device:
            return tier.device
        known = list(self._adj) + list(self.tiers)
        raise SimError(f"system '{self.name}': unknown node '{name}'{_hint(name, known)} "
                       "(expected a device, tier or switch name)")

    def route(self, src: str, dst: str) -> Route:
        """The route from ``src`` to ``dst`` (fewest hops, then largest bottleneck, then link
        names); :class:`SimError` when none exists."""
        key = (src, dst)
        hit = self._routes.get(key)
        if hit is None:
            hit = self._find_route(src, dst)
            self._routes[key] = hit
        return hit

    def _find_route(self, src: str, dst: str) -> Route:
        a, b = self.node_of(src), self.node_of(dst)
        if a == b:
            return Route(src, dst, (), 0.0, math.inf)
        dist = {a: 0}
        order = [a]
        queue = deque([a])
        while queue:
            u = queue.popleft()
            for _, v, _ in self._adj[u]:
                if v not in dist:
                    dist[v] = dist[u] + 1
                    order.append(v)
                    queue.append(v)
        if b not in dist:
            raise SimError(f"no route from {src} to {dst} in system '{self.name}'")

        def forward_edges(u: str):
            return [(ln, v, fw) for ln, v, fw in self._adj[u] if dist.get(v) == dist[u] + 1]

        best = {a: math.inf}  # largest bottleneck of a shortest path to each node
        for u in order:
            if u not in best:
                continue
            for ln, v, _ in forward_edges(u):
                cand = min(best[u], self.links[ln].sustained)
                if cand > best.get(v, -1.0):
                    best[v] = cand
        floor = best[b]
        # nodes that reach b along shortest-path edges no slower than the bottleneck
        good = {b}
        for u in reversed(order):
            if any(v in good and self.links[ln].sustained >= floor
                   for ln, v, _ in forward_edges(u)):
                good.add(u)
        hops, node, latency = [], a, 0.0
        while node != b:
            ln, v, fw = min((e for e in forward_edges(node)
                             if e[1] in good and self.links[e[0]].sustained >= floor),
                            key=lambda e: e[0])
            hops.append(Hop(ln, fw))
            latency += self.links[ln].latency
            node = v
        return Route(src, dst, tuple(hops), latency, floor)


def _hint(word: str, options: list[str]) -> str:
    import difflib  # on the error path only (start-up)
    hint = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{hint[0]}'?)" if hint else ""


def main_memory_level(arch: Arch) -> str:
    """The level of ``arch.memory`` a device keeps its tensors in: ``hbm``, else ``dram``, else
    the largest; ``dram`` for an arch that only has a ``dram`` section."""
    memory = arch.sections.get("memory") or {}
    for level in ("hbm", "dram"):
        if level in memory:
            return level
    if memory:
        return max(memory, key=lambda k: memory[k].capacity)
    if "flash" in arch.sections:
        return "flash"
    if "dram" in arch.sections:
        return "dram"
    raise SimError(f"{arch.origin or arch.name}: arch '{arch.name}' has no memory section to "
                   "hold tensors (expected memory.hbm, memory.dram or a dram section)")


def _device_tier(view: Arch, inst: str) -> Tier:
    level = main_memory_level(view)
    energy = view.sections.get("energy")
    per_bit = energy.memory.get(level, 0.0) if energy else 0.0
    memory = view.sections.get("memory") or {}
    if level in memory:
        m = memory[level]
        return Tier(f"{inst}.{level}", level, m.capacity, m.bandwidth * m.efficiency,
                    m.bandwidth, m.latency, per_bit, inst, (inst,))
    if level == "flash":    # an SSD: its NAND array behind the channel buses
        f = view.sections["flash"]
        return Tier(f"{inst}.flash", "flash", f.capacity, f.read_bandwidth, f.read_bandwidth,
                    f.read_latency + f.controller_latency, per_bit, inst, (inst,))
    dram = view.sections["dram"]
    return Tier(f"{inst}.{level}", level, dram.capacity, dram.peak_bandwidth,
                dram.peak_bandwidth, 0.0, per_bit, inst, (inst,))


def build_system(arch: Arch) -> System:
    """The :class:`System` of ``arch`` (any arch type; see the module doc)."""
    if arch.type != "system":
        return _single(arch)
    # loaded for system archs only (a one-device run never needs them: start-up)
    from arch.sections.topology import instance_names, link_instances, mix_points
    from arch.topology_view import device_view, primary_component

    devices: dict[str, DeviceInstance] = {}
    tiers: dict[str, Tier] = {}
    switches: list[str] = []
    comps = arch.sections["components"]
    for name, comp in comps.items():
        nodes = instance_names(name, comp)
        if comp.kind == "device":
            view = device_view(arch, name)
            for i, inst in enumerate(nodes):
                tier = _device_tier(view, inst)
                tiers[tier.name] = tier
                devices[inst] = DeviceInstance(inst, name, i, view, tier.name)
        elif comp.kind == "memory":
            peak = comp.peak_bandwidth
            eff = comp.efficiency if comp.efficiency is not None else 1.0
            mix = tuple(mix_points(comp.read_write_efficiency or {}))
            for node in nodes:
                tiers[node] = Tier(node, comp.memory or "", comp.capacity or 0.0, peak * eff,
                                   peak, comp.latency or 0.0, comp.energy_per_bit or 0.0,
                                   read_write_efficiency=mix)
        else:
            switches += nodes
    links: dict[str, Link] = {}
    for lname, spec in arch.sections["links"].items():
        eff = spec.efficiency if spec.efficiency is not None else 1.0
        for iname, a, b in link_instances(lname, spec, comps):
            links[iname] = Link(iname, spec.kind, a, b, spec.peak_bandwidth, eff,
                                spec.latency or 0.0, spec.energy_per_bit or 0.0)
    _share_tiers(tiers, links, list(devices), set(switches))
    return System(arch.name, arch, devices, tiers, links, tuple(switches),
                  primary_component(arch))


def _share_tiers(tiers: dict[str, Tier], links: dict[str, Link], devices: list[str],
                 switches: set[str]) -> None:
    """Fill ``shared_by`` of standalone tiers: the devices linked to it directly or through
    switches only (not through other devices or memories)."""
    adj: dict[str, list[str]] = {}
    for link in links.values():
        adj.setdefault(link.a, []).append(link.b)
        adj.setdefault(link.b, []).append(link.a)
    order = {d: i for i, d in enumerate(devices)}
    for name, tier in list(tiers.items()):
        if tier.device:
            continue
        seen, found, stack = {name}, set(), [name]
        while stack:
            for v in adj.get(stack.pop(), []):
                if v in seen:
                    continue
                seen.add(v)
                if v in order:
                    found.add(v)
                elif v in switches:
                    stack.append(v)
        tiers[name] = dataclasses.replace(
            tier, shared_by=tuple(sorted(found, key=order.__getitem__)))


def _single(arch: Arch) -> System:
    """A non-system arch as a one-component system (module doc)."""
    system = arch.sections.get("system")
    count = system.devices * system.nodes if system else 1
    comp = arch.type
    devices: dict[str, DeviceInstance] = {}
    tiers: dict[str, Tier] = {}
    for i in range(count):
        inst = f"{comp}{i}"
        tier = _device_tier(arch, inst)
        tiers[tier.name] = tier
        devices[inst] = DeviceInstance(inst, comp, i, arch, tier.name)
    links: dict[str, Link] = {}
    switches: tuple[str, ...] = ()
    if count > 1:
        switches = ("switch",)
        lname = system.intra_node_link
        spec = arch.sections.get("interconnect", {}).get(lname)
        if spec is None:
            raise SimError(f"{arch.origin or arch.name}: system.intra_node_link: a "
                           f"{count}-device arch needs a link in interconnect")
        energy = arch.sections.get("energy")
        per_bit = energy.link.get(lname, 0.0) if energy else 0.0
        for inst in devices:
            name = f"{lname}.{inst}"
            links[name] = Link(name, "nvlink", inst, "switch", spec.bandwidth, spec.efficiency,
                               spec.latency, per_bit)
    return System(arch.name, arch, devices, tiers, links, switches, comp)
