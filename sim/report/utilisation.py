"""Utilisation of a run: achieved against peak FLOP/s and bandwidth, MFU, and what bounds
each op class.

Achieved FLOP/s per device = FLOPs / devices used / phase time (wall time of the phase, so
idle gaps count against it, as MFU does); achieved bandwidth = DRAM bytes / devices / phase
time. Resources of a system run (links, host tiers) report bytes over the run's makespan
against their bandwidth and the busy fraction the engine measured.
"""

from __future__ import annotations

import pandas as pd

from sim.report.rollups import sum_table


def _phase_times(metrics: dict) -> dict[str, float]:
    ttft = float(metrics.get("ttft_s", 0.0))
    latency = float(metrics.get("latency_s", 0.0))
    out = {"whole run": latency}
    if ttft > 0 and latency > ttft:
        out = {"prefill": ttft, "decode": latency - ttft, **out}
    return out


def utilisation_table(summary: dict, ops: pd.DataFrame,
                      resources: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows ``(component, phase, achieved, peak, utilisation, unit)``; utilisation of the top
    compute peak is the MFU."""
    m, dev = summary["metrics"], summary.get("device", {})
    devices = max(int(dev.get("devices_used", 1) or 1), 1)
    roofs = dev.get("roofs", {}) or {}
    peak_flops = max(roofs.values()) if roofs else 0.0
    peak_bw = float(dev.get("peak_bandwidth_Bps", 0.0) or 0.0)
    rows = []
    for phase, secs in _phase_times(m).items():
        sel = ops if phase == "whole run" else ops[ops["phase"] == phase]
        if secs <= 0:
            continue
        flops = float(sel["flops"].sum()) / devices / secs
        dram = float(sel["dram_bytes"].sum()) / devices / secs
        top = max(roofs, key=roofs.get) if roofs else "compute"
        rows.append(("compute (" + top + ")", phase, flops, peak_flops,
                     flops / peak_flops if peak_flops else float("nan"), "FLOP/s"))
        rows.append(("device memory", phase, dram, peak_bw,
                     dram / peak_bw if peak_bw else float("nan"), "B/s"))
    if resources is not None and len(resources):
        span = float(m.get("latency_s", 0.0)) or 1.0
        for r in resources.itertuples(index=False):
            bw = float(r.bandwidth_Bps)
            achieved = float(r.bytes) / span
            rows.append((str(r.resource), "whole run", achieved, bw,
                         achieved / bw if bw else float("nan"), "B/s"))
    return pd.DataFrame(rows, columns=["component", "phase", "achieved", "peak", "utilisation",
                                       "unit"])


def mfu(summary: dict, ops: pd.DataFrame) -> float:
    """Model FLOP/s utilisation of the whole run (0 when the peak is unknown)."""
    t = utilisation_table(summary, ops)
    row = t[(t["phase"] == "whole run") & (t["unit"] == "FLOP/s")]
    return float(row["utilisation"].iloc[0]) if len(row) else 0.0


def bound_shares(ops: pd.DataFrame) -> pd.DataFrame:
    """Per op class: its op time and the share of it each bound holds (compute, memory,
    ...), largest first."""
    t = sum_table(ops, "op_class", "bound", "latency_s")
    total = t.sum(axis=1)
    shares = t.div(total.where(total > 0, 1.0), axis=0)
    shares.insert(0, "time_s", total)
    shares["bound by"] = t.idxmax(axis=1)
    return shares.sort_values("time_s", ascending=False).reset_index()
