"""The run report's figures as SVG text: roofline, energy, breakdowns, one decode step.

Each function takes the pre-aggregated rows of :mod:`sim.report.rollups` (or one decode
step's ops) and returns a standalone SVG document (:mod:`sim.report.svg`), written as
``roofline.svg`` ... and inlined in ``report.html``. Vector output, no matplotlib.
"""

from __future__ import annotations

import numpy as np

from sim.columns import as_columns, column
from sim.report.rollups import intensity_rows, roofline_rows, sum_matrix
from sim.report.svg import Panel, Svg, legend, markers
from sim.report.tables import factorize, group_sum, nargsort
from sim.report.timeline import link_names

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


def roofline_limits(points, peak: float,
                    bandwidths: dict[str, float]) -> tuple[tuple[float, float], ...]:
    """``(x range, y range)`` of a roofline before rounding out to whole decades: intensity
    from half the lowest (at most 0.1) to twice the highest (at least 1e3) FLOP/B; FLOP/s
    from half the slowest point to twice the peak. ``points``: a DataFrame or Columns."""
    xs = column(points, "intensity") if len(points) else np.array([1.0])
    lo = max(min(float(np.nanmin(xs)), 0.1) / 2, 1e-3)
    hi = max(float(np.nanmax(xs)), 1e3) * 2
    ach = column(points, "achieved") if len(points) else np.array([peak])
    y_hi = max(peak, float(np.nanmax(ach))) * 2
    y_lo = max(min(float(np.nanmin(ach)), peak / 1e3) / 2, y_hi / 1e12)
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


def roofline_svg(points, bandwidth: float | dict[str, float],
                 roofs: dict[str, float], title: str, label_top: int = 6) -> str:
    """Every op (identical ops share a point) at (FLOP/byte, achieved FLOP/s per device),
    coloured by op class, marked by phase; a roof per compute peak and per bandwidth
    (``label -> B/s``: HBM, L2/SRAM, links, host tiers); the ``label_top`` ops with the most
    time labelled. ``points``: :func:`sim.report.rollups.roofline_points` rows (a DataFrame
    or :class:`Columns`) or the op table."""
    bws = bandwidth if isinstance(bandwidth, dict) else {"memory": float(bandwidth)}
    bws = {k: v for k, v in bws.items() if v > 0} or {"memory": 1.0}
    src = as_columns(points)
    df = intensity_rows(src if "n" in src else roofline_rows(points))
    peak = max(roofs.values()) if roofs else float(np.nanmax(df["achieved"]) if len(df)
                                                   else 1e12)
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
    classes, phases = df["op_class"].tolist(), df["phase"].tolist()
    if len(df):
        px, py = ax.x.px(df["intensity"]), ax.y.px(df["achieved"])
        groups: dict[tuple, list[int]] = {}
        for i, key in enumerate(zip(classes, phases, strict=True)):
            groups.setdefault(key, []).append(i)
        for (cls, phase) in sorted(groups):   # groupby(sort=True).indices
            idx = np.array(groups[(cls, phase)], dtype=np.int64)
            markers(svg, px[idx], py[idx], PHASE_MARKERS.get(phase, "o"), 3.0,
                    CLASS_COLORS.get(cls, OTHER_COLOR), 0.65)
        seen: set[tuple] = set()   # by time, largest first; an (op, phase) once
        ops = df["op"].tolist()
        top = []
        for i in nargsort(df["total_s"], ascending=False).tolist():
            if (ops[i], phases[i]) not in seen and len(top) < label_top:
                seen.add((ops[i], phases[i]))
                top.append(i)
        for k, i in enumerate(top):
            x, y = float(px[i]), float(py[i])
            tx, ty = x + 8, y + 14 + 12 * k
            svg.line(x, y, tx, ty - 3, "#808080", 0.6)
            svg.text(tx + 1, ty, f"{ops[i]} ({phases[i]})", 9)
    classes, phases = set(classes), set(phases)
    entries += [("marker", {"fill": c}, k) for k, c in CLASS_COLORS.items() if k in classes]
    entries += [("marker", {"shape": m, "fill": "#4d4d4d"}, ph)
                for ph, m in PHASE_MARKERS.items() if ph in phases]
    legend(svg, entries, ax.right - 4, ax.bottom - 4, "bottom-right", ncol=2)
    return svg.render()


def energy_bars(ops, static_J: float) -> tuple[list[str], dict[str, np.ndarray]]:
    """Energy per bar: (labels ``op class: NAME`` and ``static``; ``column -> joules per bar``
    of compute, memory, link and static), most ALU energy first (``ops``: a DataFrame or
    Columns of summed rows; ``groupby("op_class").sum()`` then ``sort_values``)."""
    ids, classes = factorize(column(ops, "op_class"), sort=True, na_sentinel=True)
    labels = [f"op class: {c}" for c in classes.tolist()] + ["static"]
    parts = {c: np.append(group_sum(ids, column(ops, c), len(classes)), 0.0)
             for c in ("energy_compute_J", "energy_memory_J", "energy_link_J")}
    order = nargsort(parts["energy_compute_J"], ascending=False)
    labels = [labels[i] for i in order.tolist()]
    parts = {c: v[order] for c, v in parts.items()}
    parts["static_J"] = np.array([static_J if i == "static" else 0.0 for i in labels])
    return labels, parts


ENERGY_PARTS = (("energy_compute_J", "spent on ALU work", "C0"),
                ("energy_memory_J", "spent on memory accesses", "C1"),
                ("energy_link_J", "spent on links", "C7"),
                ("static_J", "static (idle power)", "C2"))


def energy_svg(ops, static_J: float, title: str) -> str:
    """Energy by op class (x axis: ``op class: ...``), each bar split into where the energy
    goes (ALU work, memory accesses, links), plus the static (idle-power) energy."""
    labels, agg = energy_bars(ops, static_J)
    svg = Svg(800, 450, "energy")
    sums = agg["energy_compute_J"] + agg["energy_memory_J"] + agg["energy_link_J"] \
        + agg["static_J"]
    top = float(np.nanmax(sums)) or 1.0
    ax = Panel.make(svg, (80.0, 35.0, 700.0, 280.0), (-0.5, len(labels) - 0.5),
                    (0.0, top * 1.05))
    ax.axes("", "energy (J)", f"Energy by op class and component - {title}", grid="y",
            xticks=[(i, str(name)) for i, name in enumerate(labels)], xrotate=30)
    ax.stacked_bars(np.arange(len(labels)), [agg[c] for c, _, _ in ENERGY_PARTS],
                    [col for _, _, col in ENERGY_PARTS])
    legend(svg, [("box", {"fill": col}, label) for _, label, col in ENERGY_PARTS],
           ax.left, svg.height - 8, "bottom-left", ncol=len(ENERGY_PARTS))
    return svg.render()


def _phase_split(ops, by: str, value: str) -> tuple[list, list, np.ndarray]:
    """``value`` summed by ``by`` (rows: their values, sorted) and phase (columns)."""
    rows, cols, table = sum_matrix(ops, by, "phase", value)
    return rows.tolist(), cols.tolist(), table


def _row_sums(t: np.ndarray) -> np.ndarray:
    """Each row's sum, its columns added left to right (``DataFrame.sum(axis=1)``)."""
    out = np.zeros(t.shape[0])
    for j in range(t.shape[1]):
        out = t[:, j].copy() if j == 0 else out + t[:, j]
    return out


def breakdown_svg(ops, title: str) -> str:
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
        index, phase_cols, t = _phase_split(ops, by, value)
        t = t * scale
        if by == "op_class":
            order = nargsort(_row_sums(t)).tolist()
            t, index = t[order], [index[i] for i in order]
        total = float(np.nanmax(_row_sums(t))) if len(t) else 1.0
        labels = [str(i) for i in index]
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
        colors = [f"C{j % 10}" for j in range(len(phase_cols))]
        ax.stacked_bars(pos, [t[:, j] for j in range(len(phase_cols))], colors, horizontal)
        entries = [("box", {"fill": c}, str(ph)) for c, ph in zip(colors, phase_cols,
                                                                   strict=True)]
        if horizontal:
            legend(svg, entries, ax.right - 4, ax.bottom - 4, "bottom-right")
        else:
            legend(svg, entries, ax.right - 4, ax.top + 4, "top-right")
    return svg.render()


def step_rows(sel, op_links: dict | None = None,
              transfers=None) -> dict[str, list[tuple]]:
    """Rows of a decode step's Gantt chart: ``name -> [(start_s, duration_s, colour)]``, a
    row per device stream (ops coloured by class) and per link or memory tier it loads.
    ``sel``: a DataFrame or Columns; ``transfers``: a DataFrame, Columns or None."""
    rows: dict[str, list[tuple[float, float, str]]] = {}
    stream_col = "stream" if "stream" in sel else "device"
    cols = [column(sel, c).tolist() for c in (stream_col, "start_s", "latency_s", "op_class")]
    links = link_names(op_links or {}, np.asarray(column(sel, "id")))
    for stream, start, dur, cls, loads in zip(*cols, links, strict=True):
        rows.setdefault(str(stream), []).append(
            (start, dur, CLASS_COLORS.get(cls, OTHER_COLOR)))
        for res in loads:
            rows.setdefault(f"link {res}", []).append((start, dur, "#666"))
        if not loads and cls == "communication":  # collective with no port loads
            rows.setdefault("link (collectives)", []).append((start, dur, "#666"))
    if transfers is not None and len(transfers) and len(sel):
        t0, t1 = float(np.nanmin(column(sel, "start_s"))), float(np.nanmax(column(sel, "end_s")))
        during = np.flatnonzero((np.asarray(column(transfers, "end_s")) > t0)
                                & (np.asarray(column(transfers, "start_s")) < t1))
        src, route, dst, start, dur = (np.asarray(column(transfers, c))[during].tolist() for c in
                                       ("src", "route", "dst", "start_s", "latency_s"))
        for s, r, d, t, lat in zip(src, route, dst, start, dur, strict=True):
            for res in (s, *str(r).split(), d):
                if res:
                    rows.setdefault(f"link {res}", []).append((t, lat, CLASS_COLORS["memory"]))
    return rows


def timeline_svg(sel, step: int, title: str, transfers=None,
                 op_links: dict[int, tuple[str, ...]] | None = None) -> str:
    """One decode step (``sel``: its ops) as a Gantt chart: a row per device stream (ops
    coloured by op class) and per link or memory tier the step loads (collectives and
    transfers); at most 24 rows. ``sel``: a DataFrame or Columns."""
    t0, t1 = float(np.nanmin(column(sel, "start_s"))), float(np.nanmax(column(sel, "end_s")))
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
    present = [c for c in CLASS_COLORS if c in set(column(sel, "op_class").tolist())]
    entries = [("box", {"fill": CLASS_COLORS[c]}, c) for c in present]
    legend(svg, entries, ax.left, ax.bottom + 44, "top-left", ncol=max(1, len(present)))
    return svg.render()

