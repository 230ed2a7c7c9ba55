"""Utilisation of a run: achieved against peak FLOP/s and bandwidth, MFU, and what bounds
each op class.

Achieved FLOP/s per device = FLOPs / devices used / phase time (wall time of the phase, so
idle gaps count against it, as MFU does); achieved bandwidth = DRAM bytes / devices / phase
time. Resources of a system run (links, host tiers) report bytes over the run's makespan
against their bandwidth and the busy fraction the engine measured.
"""

from __future__ import annotations

import numpy as np

from sim.columns import Columns, column
from sim.report.rollups import sum_matrix
from sim.report.tables import nargsort

UTILISATION_COLUMNS = ["component", "phase", "achieved", "peak", "utilisation", "unit"]


def _phase_times(metrics: dict) -> dict[str, float]:
    ttft = float(metrics.get("ttft_s", 0.0))
    latency = float(metrics.get("latency_s", 0.0))
    out = {"whole run": latency}
    if ttft > 0 and latency > ttft:
        out = {"prefill": ttft, "decode": latency - ttft, **out}
    return out


def utilisation_table(summary: dict, ops, resources=None):
    """Rows ``(component, phase, achieved, peak, utilisation, unit)`` as a DataFrame;
    utilisation of the top compute peak is the MFU."""
    import pandas as pd

    return pd.DataFrame(utilisation_rows(summary, ops, resources), columns=UTILISATION_COLUMNS)


def utilisation_records(rows: list[tuple]) -> list[dict]:
    """The rows as ``DataFrame(rows).to_dict(orient="records")`` gives them (a column
    holding ints and floats is all floats), without pandas."""
    cols = list(zip(*rows, strict=True)) if rows else []
    fixed = []
    for values in cols:
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers and len(numbers) == len(values) and any(isinstance(v, float)
                                                           for v in numbers):
            values = tuple(float(v) for v in values)
        fixed.append(values)
    return [dict(zip(UTILISATION_COLUMNS, r, strict=True)) for r in zip(*fixed, strict=True)]


def utilisation_rows(summary: dict, ops, resources=None) -> list[tuple]:
    """The rows of :func:`utilisation_table` (``ops``: summed rows or the op table, a
    DataFrame or Columns; ``resources``: a DataFrame, Columns or None; no pandas but for a
    system run's resources)."""
    m, dev = summary["metrics"], summary.get("device", {})
    devices = max(int(dev.get("devices_used", 1) or 1), 1)
    roofs = dev.get("roofs", {}) or {}
    peak_flops = max(roofs.values()) if roofs else 0.0
    peak_bw = float(dev.get("peak_bandwidth_Bps", 0.0) or 0.0)
    rows = []
    phases = np.asarray(column(ops, "phase"))
    for phase, secs in _phase_times(m).items():
        sel = slice(None) if phase == "whole run" else np.flatnonzero(phases == phase)
        if secs <= 0:
            continue
        flops = float(np.sum(np.asarray(column(ops, "flops"))[sel])) / devices / secs
        dram = float(np.sum(np.asarray(column(ops, "dram_bytes"))[sel])) / devices / secs
        top = max(roofs, key=roofs.get) if roofs else "compute"
        rows.append(("compute (" + top + ")", phase, flops, peak_flops,
                     flops / peak_flops if peak_flops else float("nan"), "FLOP/s"))
        rows.append(("device memory", phase, dram, peak_bw,
                     dram / peak_bw if peak_bw else float("nan"), "B/s"))
    if resources is not None and len(resources):
        span = float(m.get("latency_s", 0.0)) or 1.0
        for name, bw, nbytes in zip(*(column(resources, c).tolist() for c in (
                "resource", "bandwidth_Bps", "bytes")), strict=True):
            bw = float(bw)
            achieved = float(nbytes) / span
            rows.append((str(name), "whole run", achieved, bw,
                         achieved / bw if bw else float("nan"), "B/s"))
    return rows


def mfu(summary: dict, ops) -> float:
    """Model FLOP/s utilisation of the whole run (0 when the peak is unknown)."""
    rows = utilisation_records(utilisation_rows(summary, ops))
    hit = [r for r in rows if r["phase"] == "whole run" and r["unit"] == "FLOP/s"]
    return float(hit[0]["utilisation"]) if hit else 0.0


def bound_rows(ops) -> Columns:
    """:func:`bound_shares` as :class:`Columns` (no pandas)."""
    classes, bounds, t = sum_matrix(ops, "op_class", "bound", "latency_s")
    total = np.zeros(len(classes))
    for j in range(t.shape[1]):   # DataFrame.sum(axis=1): the columns left to right
        total = t[:, j].copy() if j == 0 else total + t[:, j]
    shares = t / np.where(total > 0, total, 1.0)[:, None]
    labels = bounds.tolist()
    data: dict = {"op_class": classes, "time_s": total}
    for j, b in enumerate(labels):
        data[b] = shares[:, j]
    by = np.empty(len(classes), dtype=object)
    by[:] = [labels[j] for j in np.argmax(t, axis=1).tolist()] if t.shape[1] else None
    data["bound by"] = by
    order = nargsort(total, ascending=False)
    names = ["op_class", "time_s", *labels, "bound by"]
    return Columns({k: np.asarray(v)[order] for k, v in data.items()}, names, len(order))


def bound_shares(ops):
    """Per op class: its op time and the share of it each bound holds (compute, memory,
    ...), largest first (a DataFrame)."""
    return bound_rows(ops).frame()
