"""A system arch seen from one of its device components, as the single-device models expect it.

``primary_component(arch)`` names the component that runs the model: the first ``kind: device``
component in YAML order. ``device_view(arch, component)`` is that component's device arch with
``system`` (devices = its count, one node), ``interconnect`` and ``energy.link`` filled from the
topology: every link touching the component replaces (or adds) the device's entry of the same
name; the intra-node link is the first link from the component to a count-1 switch that is not
a network (InfiniBand, Ethernet) link, else the first to a count-1 memory all instances share
(PCIe through the host); the inter-node link is the first network link to a count-1 switch.
A count-1 component keeps its device's own intra-node link. A non-system arch is its own view.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from arch.schema import SpecError
from arch.sections.common import LinkSpec, SystemSpec
from arch.sections.topology import CXL_PHY, NETWORK_KINDS, PCIE_SOURCE, TopologyLink
from arch.spec import DEVICE_TYPES, Arch

__all__ = ["primary_component", "device_view", "link_bandwidth_source"]


def primary_component(arch: Arch) -> str:
    """The component that runs the model: the first device component (YAML order); for a
    non-system arch its type."""
    if arch.type != "system":
        return arch.type
    for name, comp in arch.sections["components"].items():
        if comp.kind == "device":
            return name
    raise SpecError(arch.origin, "components", "a system needs at least one component of kind "
                                               "device")


def link_bandwidth_source(arch: Arch, name: str, link: TopologyLink) -> str:
    """The source of a topology link's per-direction bandwidth (given, or derived from the
    PCIe generation and lanes)."""
    given = arch.provenance.get(f"links.{name}.bandwidth")
    if link.bandwidth is not None:
        return given or f"links.{name}.bandwidth of system '{arch.name}'"
    phy = f" ({CXL_PHY[link.generation]})" if link.kind == "cxl" else ""
    cited = arch.provenance.get(f"links.{name}.generation", "")
    return (f"derived: PCIe {link.generation}.0 x{link.lanes}{phy} = "
            f"{link.peak_bandwidth / 1e9:.4g} GB/s per direction ({PCIE_SOURCE})"
            + (f"; link: {cited}" if cited else ""))


def _replace_prov(prov: dict[str, str], prefix: str, new: dict[str, str]) -> None:
    for key in [k for k in prov if k == prefix or k.startswith(prefix + ".")]:
        del prov[key]
    prov.update(new)


def device_view(arch: Arch, component: str) -> Arch:
    """The device arch of ``component`` with ``system``, ``interconnect`` and ``energy.link``
    taken from the system's topology (see the module doc); a non-system arch unchanged."""
    if arch.type != "system":
        return arch
    comps = arch.sections["components"]
    comp = comps.get(component)
    if comp is None or comp.kind != "device":
        devices = [n for n, c in comps.items() if c.kind == "device"]
        raise SpecError(arch.origin, f"components.{component}",
                        f"no device component '{component}' in system '{arch.name}' "
                        f"(device components: {', '.join(devices)})")
    dev: Arch = comp.device
    prov = dict(dev.provenance)
    interconnect: dict[str, Any] = dict(dev.sections.get("interconnect", {}))
    energy_links: dict[str, float] = {}
    incident: list[tuple[str, TopologyLink, str]] = []
    for lname, link in arch.sections["links"].items():
        if component not in link.between:
            continue
        other = link.between[1] if link.between[0] == component else link.between[0]
        incident.append((lname, link, other))
        interconnect[lname] = LinkSpec(bandwidth=link.peak_bandwidth,
                                       latency=link.latency or 0.0,
                                       efficiency=link.efficiency or 1.0)
        here = f"links.{lname}"
        default = f"default: {here} gives none"
        _replace_prov(prov, f"interconnect.{lname}", {
            f"interconnect.{lname}.bandwidth": link_bandwidth_source(arch, lname, link),
            f"interconnect.{lname}.latency": arch.provenance.get(f"{here}.latency", default),
            f"interconnect.{lname}.efficiency": arch.provenance.get(f"{here}.efficiency",
                                                                    default)})
        if link.energy_per_bit is not None:
            energy_links[lname] = link.energy_per_bit
            prov[f"energy.link.{lname}"] = arch.provenance.get(f"{here}.energy_per_bit", here)
    intra, inter = _pick_links(arch, comp, incident)
    allowed = DEVICE_TYPES[dev.type]["required"] + DEVICE_TYPES[dev.type]["optional"]
    sections = dict(dev.sections)
    if "interconnect" in allowed:
        sections["interconnect"] = interconnect
        if "energy" in dev.sections and energy_links:
            energy = dev.sections["energy"]
            sections["energy"] = dataclasses.replace(energy, link={**energy.link,
                                                                   **energy_links})
    else:  # a device class without links: keep its own provenance
        prov = dict(dev.provenance)
    if "system" in allowed:
        sections["system"] = SystemSpec(devices=comp.n, nodes=1, intra_node_link=intra,
                                        inter_node_link=inter)
        why = f"derived from the topology of system '{arch.name}'"
        _replace_prov(prov, "system", {
            "system.devices": arch.provenance.get(f"components.{component}.count",
                                                  f"{why}: components.{component}.count"),
            "system.nodes": f"{why}: one node",
            "system.intra_node_link": f"{why}: the link joining the instances of '{component}'",
            "system.inter_node_link": f"{why}: the network link of '{component}'"})
    return Arch(name=arch.name, type=dev.type, description=arch.description or dev.description,
                sections=sections, provenance=prov, origin=arch.origin)


def _pick_links(arch: Arch, comp, incident: list[tuple[str, TopologyLink, str]]
                ) -> tuple[str, str]:
    """(intra-node link, inter-node link) names for a device component (module doc)."""
    comps = arch.sections["components"]
    if comp.n == 1:
        own = comp.device.sections.get("system")
        name = own.intra_node_link if own else ""
        known = {n for n, _, _ in incident} | set(comp.device.sections.get("interconnect", {}))
        return (name if name in known else ""), ""
    shared = [(n, lk, comps[o]) for n, lk, o in incident if comps[o].n == 1]
    switched = [(n, lk) for n, lk, c in shared if c.kind == "switch"]
    inter = next((n for n, lk in switched if lk.kind in NETWORK_KINDS), "")
    intra = next((n for n, lk in switched if lk.kind not in NETWORK_KINDS), "")
    if not intra:
        intra = next((n for n, lk, c in shared if c.kind == "memory"), "")
    return intra, inter
