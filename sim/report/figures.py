"""The run report's figures as SVG text: roofline, energy, breakdowns, one decode step.

Each function takes the pre-aggregated rows of :mod:`sim.report.rollups` (or one decode
step's ops) and returns a standalone SVG document (:mod:`sim.report.svg`), written as
``roofline.svg`` ... and inlined in ``report.html``. Vector output, no matplotlib.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.report.rollups import intensity_points, sum_table
from sim.report.svg import Panel, Svg, legend, markers

#: colour of each op class (matplotlib's tab10 names, as hex)
CLASS_COLORS = {"gemm": "#1f77b4", "attention": "#ff7f0e", "norm": "#2ca02c",
                "activation": "#d62728", "elementwise": "#9467bd", "moe": "#8c564b",
                "communication": "#7f7f7f", "memory": "#bcbd22"}
OTHER_COLOR = "#17becf"
PHASE_MARKERS = {"prefill": "o", "decode": "^", "forward": "s", "backward": "v",
                 "optimizer": "D"}
ROOF_DASHES = ("-", "--", "-.", ":", "long", "dashdot2")
#: roofline plot box: left, top, width, height (pixels) in a 900 x 600 figure
ROOFLINE_BOX = (80.0, 40.0, 800.0, 500.0)


def roofline_limits(points: pd.DataFrame, peak: float,
                    bandwidths: dict[str, float]) -> tuple[tuple[float, float], ...]:
    """``(x range, y range)`` of a roofline before rounding out to whole decades: intensity
    from half the lowest (at most 0.1) to twice the highest (at least 1e3) FLOP/B; FLOP/s
    from half the slowest point to twice the peak."""
    xs = points["intensity"] if len(points) else pd.Series([1.0])
    lo = max(min(float(xs.min()), 0.1) / 2, 1e-3)
    hi = max(float(xs.max()), 1e3) * 2
    ach = points["achieved"] if len(points) else pd.Series([peak])
    y_hi = max(peak, float(ach.max())) * 2
    y_lo = max(min(float(ach.min()), peak / 1e3) / 2, y_hi / 1e12)
    return (lo, hi), (y_lo, y_hi)


def roof_line(peak: float, bw: float, x_lo: float, x_hi: float) -> list[tuple[float, float]]:
    """The roof ``min(peak, bw * x)`` over ``[x_lo, x_hi]`` as its vertices (data units): a
    straight line on log-log axes up to the knee at ``x = peak / bw``, then flat."""
    knee = peak / bw
    pts = [(x_lo, min(peak, bw * x_lo))]
    if x_lo < knee < x_hi:
        pts.append((knee, peak))
    pts.append((x_hi, min(peak, bw * x_hi)))
    return pts


def roofline_svg(points: pd.DataFrame, bandwidth: float | dict[str, float],
                 roofs: dict[str, float], title: str, label_top: int = 6) -> str:
    """Every op (identical ops share a point) at (FLOP/byte, achieved FLOP/s per device),
    coloured by op class, marked by phase; a roof per compute peak and per bandwidth
    (``label -> B/s``: HBM, L2/SRAM, links, host tiers); the ``label_top`` ops with the most
    time labelled. ``points``: :func:`sim.report.rollups.roofline_points` rows."""
    bws = bandwidth if isinstance(bandwidth, dict) else {"memory": float(bandwidth)}
    bws = {k: v for k, v in bws.items() if v > 0} or {"memory": 1.0}
    df = intensity_points(points)
    peak = max(roofs.values()) if roofs else float(df["achieved"].max() if len(df) else 1e12)
    xlim, ylim = roofline_limits(df, peak, bws)
    svg = Svg(900, 600, "roofline")
    ax = Panel.make(svg, ROOFLINE_BOX, xlim, ylim, xlog=True, ylog=True)
    ax.clip()
    ax.axes("arithmetic intensity (FLOP per byte of compulsory traffic)",
            "achieved FLOP/s per device", f"Roofline - {title}")
    entries = []
    for i, (label, p) in enumerate(sorted(roofs.items(), key=lambda kv: -kv[1])):
        style = {"stroke": "#000" if i == 0 else "#737373", "width": 1.4 if i == 0 else 1.0,
                 "dash": "-" if i == 0 else ":"}
        y = float(ax.y.px(p))
        svg.polyline([(ax.left, y), (ax.right, y)], style["stroke"], style["width"],
                     style["dash"], clip=True)
        entries.append(("line", style, f"{label}: {p / 1e12:,.1f} TFLOP/s"))
    for i, (label, bw) in enumerate(sorted(bws.items(), key=lambda kv: -kv[1])):
        style = {"stroke": f"C{i % 10}", "width": 1.2, "dash": ROOF_DASHES[i % 6]}
        line = roof_line(peak, bw, ax.x.lo, ax.x.hi)
        svg.polyline([(float(ax.x.px(x)), float(ax.y.px(y))) for x, y in line],
                     style["stroke"], 1.2, style["dash"], opacity=0.8, clip=True)
        entries.append(("line", style, f"{label}: {bw / 1e9:,.0f} GB/s"))
    if len(df):
        px, py = ax.x.px(df["intensity"].to_numpy()), ax.y.px(df["achieved"].to_numpy())
        for (cls, phase), idx in df.groupby(["op_class", "phase"], sort=True).indices.items():
            markers(svg, px[idx], py[idx], PHASE_MARKERS.get(phase, "o"), 3.0,
                    CLASS_COLORS.get(cls, OTHER_COLOR), 0.65)
        top = df.assign(px=px, py=py).sort_values("total_s", ascending=False) \
            .drop_duplicates(["op", "phase"]).head(label_top)
        for k, row in enumerate(top.itertuples()):
            tx, ty = row.px + 8, row.py + 14 + 12 * k
            svg.line(row.px, row.py, tx, ty - 3, "#808080", 0.6)
            svg.text(tx + 1, ty, f"{row.op} ({row.phase})", 9)
    classes, phases = set(df["op_class"].unique()), set(df["phase"].unique())
    entries += [("marker", {"fill": c}, k) for k, c in CLASS_COLORS.items() if k in classes]
    entries += [("marker", {"shape": m, "fill": "#4d4d4d"}, ph)
                for ph, m in PHASE_MARKERS.items() if ph in phases]
    legend(svg, entries, ax.right - 4, ax.bottom - 4, "bottom-right", ncol=2)
    return svg.render()


def energy_bars(ops: pd.DataFrame, static_J: float) -> pd.DataFrame:
    """Energy per bar (rows ``op class: NAME`` and ``static``; columns compute, memory, link
    and static joules), most ALU energy first."""
    agg = ops.groupby("op_class")[["energy_compute_J", "energy_memory_J", "energy_link_J"]].sum()
    agg.index = [f"op class: {c}" for c in agg.index]
    agg.loc["static"] = [0.0, 0.0, 0.0]
    agg = agg.sort_values(by="energy_compute_J", ascending=False)
    agg["static_J"] = [static_J if i == "static" else 0.0 for i in agg.index]
    return agg


ENERGY_PARTS = (("energy_compute_J", "spent on ALU work", "C0"),
                ("energy_memory_J", "spent on memory accesses", "C1"),
                ("energy_link_J", "spent on links", "C7"),
                ("static_J", "static (idle power)", "C2"))


def energy_svg(ops: pd.DataFrame, static_J: float, title: str) -> str:
    """Energy by op class (x axis: ``op class: ...``), each bar split into where the energy
    goes (ALU work, memory accesses, links), plus the static (idle-power) energy."""
    agg = energy_bars(ops, static_J)
    svg = Svg(800, 450, "energy")
    top = float(agg[[c for c, _, _ in ENERGY_PARTS]].sum(axis=1).max()) or 1.0
    ax = Panel.make(svg, (80.0, 35.0, 700.0, 280.0), (-0.5, len(agg) - 0.5), (0.0, top * 1.05))
    ax.axes("", "energy (J)", f"Energy by op class and component - {title}", grid="y",
            xticks=[(i, str(name)) for i, name in enumerate(agg.index)], xrotate=30)
    ax.stacked_bars(np.arange(len(agg)), [agg[c].to_numpy() for c, _, _ in ENERGY_PARTS],
                    [col for _, _, col in ENERGY_PARTS])
    legend(svg, [("box", {"fill": col}, label) for _, label, col in ENERGY_PARTS],
           ax.left, svg.height - 8, "bottom-left", ncol=len(ENERGY_PARTS))
    return svg.render()


def _phase_split(ops: pd.DataFrame, by: str, value: str) -> pd.DataFrame:
    """``value`` summed by ``by`` (rows) and phase (columns)."""
    return sum_table(ops, by, "phase", value)


def breakdown_svg(ops: pd.DataFrame, title: str) -> str:
    """Four panels: op time and energy by op class and by layer, phases stacked (time summed
    over streams; layer -1 holds the embedding and LM head). ``ops``: summed rows."""
    svg = Svg(1200, 750, "breakdown")
    svg.text(600, 24, f"Where the time and energy go - {title}", 13, "middle")
    boxes = ((150.0, 70.0, 400.0, 250.0), (750.0, 70.0, 420.0, 250.0),
             (150.0, 420.0, 400.0, 250.0), (750.0, 420.0, 420.0, 250.0))
    for box, (by, value, unit, scale) in zip(
            boxes, (("op_class", "latency_s", "ms", 1e3), ("op_class", "energy_J", "J", 1),
                    ("layer", "latency_s", "ms", 1e3), ("layer", "energy_J", "J", 1)),
            strict=True):
        t = _phase_split(ops, by, value) * scale
        if by == "op_class":
            t = t.loc[t.sum(axis=1).sort_values().index]
        total = float(t.sum(axis=1).max()) if len(t) else 1.0
        labels = [str(i) for i in t.index]
        pos = np.arange(len(labels))
        what = "op time" if value == "latency_s" else "energy"
        horizontal = by == "op_class"
        span = (-0.6, len(labels) - 0.4)
        if horizontal:
            ax = Panel.make(svg, box, (0.0, total * 1.05 or 1.0), span)
            ax.axes(f"{what} ({unit})", "", f"{what} by op class", grid="x",
                    yticks=list(zip(pos, labels, strict=True)))
        else:
            ax = Panel.make(svg, box, span, (0.0, total * 1.3 or 1.0))   # room for the legend
            step = max(1, len(labels) // 16)
            ax.axes("layer", f"{what} ({unit})", f"{what} by layer", grid="y",
                    xticks=list(zip(pos[::step], labels[::step], strict=True)))
        colors = [f"C{j % 10}" for j in range(len(t.columns))]
        ax.stacked_bars(pos, [t[c].to_numpy() for c in t.columns], colors, horizontal)
        entries = [("box", {"fill": c}, str(ph)) for c, ph in zip(colors, t.columns,
                                                                   strict=True)]
        if horizontal:
            legend(svg, entries, ax.right - 4, ax.bottom - 4, "bottom-right")
        else:
            legend(svg, entries, ax.right - 4, ax.top + 4, "top-right")
    return svg.render()


def step_rows(sel: pd.DataFrame, op_links: dict | None = None,
              transfers: pd.DataFrame | None = None) -> dict[str, list[tuple]]:
    """Rows of a decode step's Gantt chart: ``name -> [(start_s, duration_s, colour)]``, a
    row per device stream (ops coloured by class) and per link or memory tier it loads."""
    rows: dict[str, list[tuple[float, float, str]]] = {}
    stream_col = "stream" if "stream" in sel else "device"
    for row in sel.itertuples(index=False):
        rows.setdefault(str(getattr(row, stream_col)), []).append(
            (row.start_s, row.latency_s, CLASS_COLORS.get(row.op_class, OTHER_COLOR)))
        loads = (op_links or {}).get(int(row.id), ())
        for res in loads:
            rows.setdefault(f"link {res}", []).append((row.start_s, row.latency_s, "#666"))
        if not loads and row.op_class == "communication":  # collective with no port loads
            rows.setdefault("link (collectives)", []).append((row.start_s, row.latency_s,
                                                              "#666"))
    if transfers is not None and len(transfers) and len(sel):
        t0, t1 = float(sel["start_s"].min()), float(sel["end_s"].max())
        tr = transfers[(transfers["end_s"] > t0) & (transfers["start_s"] < t1)]
        for row in tr.itertuples(index=False):
            for res in (row.src, *str(row.route).split(), row.dst):
                if res:
                    rows.setdefault(f"link {res}", []).append(
                        (row.start_s, row.latency_s, CLASS_COLORS["memory"]))
    return rows


def timeline_svg(sel: pd.DataFrame, step: int, title: str,
                 transfers: pd.DataFrame | None = None,
                 op_links: dict[int, tuple[str, ...]] | None = None) -> str:
    """One decode step (``sel``: its ops) as a Gantt chart: a row per device stream (ops
    coloured by op class) and per link or memory tier the step loads (collectives and
    transfers); at most 24 rows."""
    t0, t1 = float(sel["start_s"].min()), float(sel["end_s"].max())
    rows = step_rows(sel, op_links, transfers)
    names = sorted(rows, key=lambda n: (n.startswith("link "), n))[:24]
    left = 20 + 6 * max((len(n) for n in names), default=4)
    svg = Svg(1200, 100 + 24 * len(names), "timeline")
    ms = (t1 - t0) * 1e3 or 1.0
    ax = Panel.make(svg, (left, 30.0, 1180 - left, 24.0 * len(names)), (0.0, ms),
                    (-0.5, len(names) - 0.5), ydown=True)
    ax.axes(f"time within decode step {step} (ms)", "",
            f"One decode step (step {step}) per stream and link - {title}", grid="x",
            yticks=[(i, n) for i, n in enumerate(names)], tick_size=9)
    ax.clip()
    by_color: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        y0, y1 = float(ax.y.px(i - 0.38)), float(ax.y.px(i + 0.38))
        for s, d, col in rows[name]:
            x0 = float(ax.x.px((s - t0) * 1e3))
            w = max(float(ax.x.px((s - t0 + d) * 1e3)) - x0, 0.3)
            by_color.setdefault(col, []).append(
                f"<rect x='{x0:.2f}' y='{min(y0, y1):.2f}' width='{w:.2f}' "
                f"height='{abs(y1 - y0):.2f}'/>")
    for col, rects in by_color.items():
        svg.add(f"<g fill='{col}' clip-path='url(#timeline-clip)'>{''.join(rects)}</g>")
    present = [c for c in CLASS_COLORS if c in set(sel["op_class"].unique())]
    entries = [("box", {"fill": CLASS_COLORS[c]}, c) for c in present]
    legend(svg, entries, ax.left, ax.bottom + 44, "top-left", ncol=max(1, len(present)))
    return svg.render()

