"""The roofs of a run's roofline: compute peaks and every bandwidth the device can draw on.

Bandwidth roofs come from the resolved arch recorded with the run (``inputs.resolved``): each
memory level of the primary device (HBM, L2 / SRAM, DRAM), each interconnect link, and every
contended resource of a system run (``result.resources``: host DDR, CXL, PCIe directions, ...).
"""

from __future__ import annotations

from typing import Any

from sim.columns import column
from sim.report.tables import run_table


def _device_view(result: Any):
    rec = result.inputs.get("resolved") if hasattr(result, "inputs") else None
    if not rec:
        return None
    from arch.preset_cache import parse_cached
    from arch.spec import arch_from_dict
    from arch.topology_view import device_view, primary_component

    try:
        # memoised by content, as the record's dump is (a DGX's arch parsed in Python: ~0.15 s)
        data = parse_cached("record-arch", rec["arch_yaml"], _safe_load)
        arch = arch_from_dict(data, file="summary")
        return device_view(arch, primary_component(arch))
    except Exception:  # noqa: BLE001 - a report without extra roofs beats no report
        return None


def _safe_load(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def bandwidth_roofs(result: Any) -> dict[str, float]:
    """``label -> B/s``: memory levels and links of the device, then the system's resources;
    the device's peak bandwidth when nothing else is known."""
    roofs: dict[str, float] = {}
    view = _device_view(result)
    if view is not None:
        for name, level in (view.sections.get("memory") or {}).items():
            bw = getattr(level, "bandwidth", 0.0)
            if bw:
                roofs[f"{name.upper() if len(name) <= 4 else name}"] = float(bw)
        for name, link in (view.sections.get("interconnect") or {}).items():
            bw = getattr(link, "bandwidth", 0.0)
            if bw:
                roofs[f"{name} link"] = float(bw)
    # the resources as the run gave them (numpy columns: no DataFrame, no pandas)
    res = run_table(result, "resources")
    if res is not None and hasattr(res, "__len__") and len(res) and "bandwidth_Bps" in res:
        for name, bw in zip(column(res, "resource").tolist(),
                            column(res, "bandwidth_Bps").tolist(), strict=True):
            if bw > 0 and not str(name).endswith(".hbm"):
                roofs.setdefault(str(name), float(bw))
    if not roofs:
        bw = result.device_info.get("peak_bandwidth_Bps", 0.0)
        if bw:
            roofs["memory"] = float(bw)
    return roofs
