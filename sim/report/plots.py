"""Roofline and energy plots of a run (matplotlib, headless).

Figures are built with :class:`matplotlib.figure.Figure` and rendered by the Agg canvas
directly: pyplot and the global backend are never touched, so a notebook that imports the
report keeps its inline plots.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

CLASS_COLORS = {"gemm": "tab:blue", "attention": "tab:orange", "norm": "tab:green",
                "activation": "tab:red", "elementwise": "tab:purple", "moe": "tab:brown",
                "communication": "tab:gray", "memory": "tab:olive"}


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure of ``figsize`` inches on its own Agg canvas (no pyplot, no global backend)."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (8, 5),
             **kwargs):
    """``(fig, axes)`` like :func:`matplotlib.pyplot.subplots`, without pyplot."""
    fig = new_figure(figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _png(fig: Figure, tight: bool = True) -> bytes:
    """The figure as PNG bytes (110 dpi). ``tight`` crops to the drawn artists (one extra
    layout pass); the run report's figures set their margins and draw once."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight" if tight else None)
    return buf.getvalue()


_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076"
                                            "\u2077\u2078\u2079")


def _power_of_ten(value: float, _pos: int | None = None) -> str:
    """``10`` with a Unicode superscript exponent (no mathtext parse per label)."""
    if value <= 0:
        return ""
    exp = int(round(np.log10(value)))
    if not np.isclose(value, 10.0 ** exp):
        return ""
    return "10" + str(exp).translate(_SUPERSCRIPT)


def _log_axes(ax) -> None:
    """Log x and y, decade ticks labelled as plain text, no minor ticks (the default
    formatter parses mathtext per label and each minor tick is a line and a text: together
    most of a roofline's drawing time)."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(_power_of_ten))
        axis.set_minor_locator(NullLocator())


PHASE_MARKERS = {"prefill": "o", "decode": "^", "forward": "s", "backward": "v",
                 "optimizer": "D"}
ROOF_STYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)))


#: what a roofline point is: ops with equal values of these share one point
POINT_KEYS = ("op", "op_class", "phase", "flops", "bytes", "shards", "latency_s")


def roofline_points(ops: pd.DataFrame, chunk: int = 1 << 17) -> pd.DataFrame:
    """The ops a roofline draws (FLOPs, bytes and time > 0) reduced to one row per distinct
    :data:`POINT_KEYS`, with ``n``, how many ops it stands for (a 2,048-token run's 860k ops
    become a few thousand rows). Reduced ``chunk`` rows at a time, so no copy of the whole
    table is held (counts add exactly)."""
    keys = list(POINT_KEYS)
    parts = []
    for lo in range(0, max(len(ops), 1), chunk):
        part = ops.iloc[lo:lo + chunk]
        keep = ((part["flops"] > 0) & (part["bytes"] > 0) & (part["latency_s"] > 0)).to_numpy()
        part = part.loc[keep, keys]
        parts.append(part.groupby(keys, sort=False, observed=True).size().rename("n"))
    rows = pd.concat(parts) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        rows = rows.groupby(level=keys, sort=False, observed=True).sum()
    return rows.reset_index()


def _intensity_points(ops: pd.DataFrame) -> pd.DataFrame:
    """One point per distinct (op, phase, shape, time): intensity, achieved FLOP/s per device
    and the op's summed time over the run (for labels). ``ops`` may be the op table or its
    :func:`roofline_points`."""
    df = ops if "n" in ops.columns else roofline_points(ops)
    if not len(df):
        return df.assign(intensity=[], achieved=[], total_s=[])
    time_s = df["latency_s"] * df["n"]
    total = time_s.groupby([df["op"], df["phase"], df["flops"], df["bytes"]],
                           sort=False, observed=True).transform("sum")
    df = df.assign(intensity=df["flops"] / df["bytes"],
                   achieved=df["flops"] / df["shards"] / df["latency_s"], total_s=total)
    return df.drop_duplicates(subset=["op", "phase", "flops", "bytes", "latency_s"])


def _x_range(*frames: pd.DataFrame) -> np.ndarray:
    vals = [f["intensity"] for f in frames if len(f)]
    lo = min([float(v.min()) for v in vals] + [0.1]) / 2
    hi = max([float(v.max()) for v in vals] + [1e3]) * 2
    return np.logspace(np.log10(max(lo, 1e-3)), np.log10(hi), 200)


def roofline_png(ops: pd.DataFrame, bandwidth: float | dict[str, float],
                 roofs: dict[str, float], title: str, label_top: int = 6) -> bytes:
    """Every op (identical ops share a point) at (FLOP/byte, achieved FLOP/s per device),
    coloured by op class, marked by phase; a roof per compute peak and per bandwidth (a dict
    ``label -> B/s``: HBM, L2/SRAM, links, host tiers), the ``label_top`` ops with the most
    time labelled. ``ops``: the op table or its :func:`roofline_points`."""
    bws = bandwidth if isinstance(bandwidth, dict) else {"memory": float(bandwidth)}
    bws = {k: v for k, v in bws.items() if v > 0} or {"memory": 1.0}
    df = _intensity_points(ops)
    fig, ax = subplots(figsize=(9, 6))
    x = _x_range(df)
    peak = max(roofs.values()) if roofs else float(df["achieved"].max() if len(df) else 1e12)
    for i, (label, p) in enumerate(sorted(roofs.items(), key=lambda kv: -kv[1])):
        ax.axhline(p, color="black" if i == 0 else "0.45", lw=1.4 if i == 0 else 1.0,
                   ls="-" if i == 0 else ":", label=f"{label}: {p / 1e12:,.1f} TFLOP/s")
    for i, (label, bw) in enumerate(sorted(bws.items(), key=lambda kv: -kv[1])):
        ax.plot(x, np.minimum(peak, bw * x), lw=1.2, ls=ROOF_STYLES[i % len(ROOF_STYLES)],
                color=f"C{i % 10}", alpha=0.8, label=f"{label}: {bw / 1e9:,.0f} GB/s")
    for (cls, phase), g in df.groupby(["op_class", "phase"]):
        ax.scatter(g["intensity"], g["achieved"], s=14, alpha=0.65,
                   color=CLASS_COLORS.get(cls, "tab:cyan"),
                   marker=PHASE_MARKERS.get(phase, "o"), edgecolors="none")
    if len(df):
        top = df.sort_values("total_s", ascending=False).drop_duplicates(["op", "phase"])
        for k, row in enumerate(top.head(label_top).itertuples()):
            ax.annotate(f"{row.op} ({row.phase})", (row.intensity, row.achieved), fontsize=7,
                        xytext=(6, -10 - 9 * k), textcoords="offset points",
                        arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5})
    classes, phases = set(df["op_class"].unique()), set(df["phase"].unique())
    handles = [ax.scatter([], [], color=c, s=14, label=k) for k, c in CLASS_COLORS.items()
               if k in classes]
    handles += [ax.scatter([], [], color="0.3", marker=m, s=14, label=ph)
                for ph, m in PHASE_MARKERS.items() if ph in phases]
    roof_handles, _ = ax.get_legend_handles_labels()
    _log_axes(ax)
    ax.set_xlabel("arithmetic intensity (FLOP per byte of compulsory traffic)")
    ax.set_ylabel("achieved FLOP/s per device")
    ax.set_title(f"Roofline - {title}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=roof_handles[:len(roofs) + len(bws)] + handles, fontsize=7,
              loc="lower right", ncol=2)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.09, top=0.94)
    return _png(fig, tight=False)


def roofline_overlay_png(items: list[tuple[str, pd.DataFrame, float, dict[str, float]]],
                         title: str) -> bytes:
    """Rooflines of several arches on one plot: ``(name, ops, main-memory B/s, compute
    roofs)`` each in its own colour, with its ops (o prefill, ^ decode)."""
    fig, ax = subplots(figsize=(9, 6))
    points = [_intensity_points(ops) for _, ops, _, _ in items]
    x = _x_range(*points)
    for i, ((name, _, bw, roofs), df) in enumerate(zip(items, points, strict=True)):
        color = f"C{i % 10}"
        peak = max(roofs.values()) if roofs else 1e12
        ax.plot(x, np.minimum(peak, max(bw, 1.0) * x), color=color, lw=1.6,
                ls=ROOF_STYLES[i % len(ROOF_STYLES)],
                label=f"{name}: {peak / 1e12:,.0f} TFLOP/s, {bw / 1e9:,.0f} GB/s")
        for phase, g in df.groupby("phase"):
            ax.scatter(g["intensity"], g["achieved"], s=12, alpha=0.5, color=color,
                       marker=PHASE_MARKERS.get(phase, "o"), edgecolors="none")
    _log_axes(ax)
    ax.set_xlabel("arithmetic intensity (FLOP per byte of compulsory traffic)")
    ax.set_ylabel("achieved FLOP/s per device")
    ax.set_title(f"Rooflines overlaid - {title} (o prefill, ^ decode)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def energy_png(ops: pd.DataFrame, static_J: float, title: str) -> bytes:
    """Energy by op class (x axis: ``op class: ...``), each bar split into where the energy
    goes (ALU work, memory accesses, links), plus the static (idle-power) energy."""
    agg = ops.groupby("op_class")[["energy_compute_J", "energy_memory_J", "energy_link_J"]].sum()
    agg.index = [f"op class: {c}" for c in agg.index]
    agg.loc["static"] = [0.0, 0.0, 0.0]
    agg = agg.sort_values(by="energy_compute_J", ascending=False)
    fig, ax = subplots(figsize=(8, 4.5))
    bottom = np.zeros(len(agg))
    for col, label, color in (("energy_compute_J", "spent on ALU work", "tab:blue"),
                              ("energy_memory_J", "spent on memory accesses", "tab:orange"),
                              ("energy_link_J", "spent on links", "tab:gray")):
        ax.bar(agg.index, agg[col], bottom=bottom, label=label, color=color)
        bottom += agg[col].to_numpy()
    static_idx = list(agg.index).index("static")
    ax.bar(["static"], [static_J], bottom=[bottom[static_idx]], label="static (idle power)",
           color="tab:green")
    ax.set_ylabel("energy (J)")
    ax.set_title(f"Energy by op class and component - {title}")
    ax.tick_params(axis="x", rotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, axis="y", alpha=0.3)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.3, top=0.92)
    return _png(fig, tight=False)


def _phase_split(ops: pd.DataFrame, by: str, value: str) -> pd.DataFrame:
    """``value`` summed by ``by`` (rows) and phase (columns)."""
    return ops.pivot_table(index=by, columns="phase", values=value, aggfunc="sum",
                           fill_value=0.0, observed=True)


def _bars(ax, pos: np.ndarray, vals: np.ndarray, base: np.ndarray, horizontal: bool,
          color: str, label: str, width: float = 0.8) -> None:
    """Stacked bars as one collection (a patch per bar costs ~1 ms to add and draw)."""
    from matplotlib.collections import PolyCollection

    spans = zip(pos - width / 2, pos + width / 2, base, base + vals, strict=True)
    if horizontal:
        verts = [[(b, a), (t, a), (t, c), (b, c)] for a, c, b, t in spans]
    else:
        verts = [[(a, b), (c, b), (c, t), (a, t)] for a, c, b, t in spans]
    ax.add_collection(PolyCollection(verts, facecolors=color, edgecolors="none", label=label),
                      autolim=True)


def breakdown_png(ops: pd.DataFrame, title: str) -> bytes:
    """Four panels: op time and energy by op class and by layer, prefill and decode stacked
    (time summed over streams; layer -1 holds the embedding and LM head)."""
    fig, axes = subplots(2, 2, figsize=(12, 7.5))
    for ax, (by, value, unit, scale) in zip(
            axes.flat, (("op_class", "latency_s", "ms", 1e3), ("op_class", "energy_J", "J", 1),
                        ("layer", "latency_s", "ms", 1e3), ("layer", "energy_J", "J", 1)),
            strict=True):
        t = _phase_split(ops, by, value) * scale
        if by == "op_class":
            t = t.loc[t.sum(axis=1).sort_values().index]
        left = np.zeros(len(t))
        labels = [str(i) for i in t.index]
        pos = np.arange(len(labels))   # numeric positions: no category axis to lay out
        for j, phase in enumerate(t.columns):
            vals = t[phase].to_numpy()
            _bars(ax, pos, vals, left, by == "op_class", f"C{j}", phase)
            left += vals
        ax.autoscale_view()
        if by == "op_class":     # bars start at zero, as ax.bar's sticky edges keep them
            ax.set_xlim(left=0)
        else:
            ax.set_ylim(bottom=0)
        what = "op time" if value == "latency_s" else "energy"
        ax.set_title(f"{what} by {by.replace('_', ' ')}", fontsize=10)
        if by == "op_class":
            ax.set_xlabel(f"{what} ({unit})")
            ax.set_yticks(pos, labels)
        else:
            ax.set_ylabel(f"{what} ({unit})")
            ax.set_xlabel("layer")
            step = max(1, len(labels) // 16)
            ax.set_xticks(pos[::step], labels[::step], fontsize=7)
            ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.grid(True, axis="x" if by == "op_class" else "y", alpha=0.3)
        # a fixed place: loc="best" searches positions against every artist (slow)
        ax.legend(fontsize=7, loc="lower right" if by == "op_class" else "upper right")
    fig.suptitle(f"Where the time and energy go - {title}")
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.07, top=0.91, wspace=0.3, hspace=0.3)
    return _png(fig, tight=False)


def decode_step(ops: pd.DataFrame) -> int | None:
    """The decode step a timeline shows: the middle one (None without decode)."""
    steps = sorted(ops.loc[ops["phase"] == "decode", "step"].unique())
    return int(steps[len(steps) // 2]) if steps else None


def timeline_png(ops: pd.DataFrame, title: str, transfers: pd.DataFrame | None = None,
                 op_links: dict[int, tuple[str, ...]] | None = None) -> bytes | None:
    """One decode step as a Gantt chart: a row per device stream (ops coloured by op class)
    and per link or memory tier the step loads (collectives and transfers); None when the
    run has no decode step."""
    step = decode_step(ops)
    if step is None:
        return None
    sel = ops[(ops["phase"] == "decode") & (ops["step"] == step)]
    t0, t1 = float(sel["start_s"].min()), float(sel["end_s"].max())
    rows: dict[str, list[tuple[float, float, str]]] = {}
    stream_col = "stream" if "stream" in sel else "device"
    for row in sel.itertuples(index=False):
        rows.setdefault(str(getattr(row, stream_col)), []).append(
            (row.start_s, row.latency_s, CLASS_COLORS.get(row.op_class, "tab:cyan")))
        loads = (op_links or {}).get(int(row.id), ())
        for res in loads:
            rows.setdefault(f"link {res}", []).append((row.start_s, row.latency_s, "0.4"))
        if not loads and row.op_class == "communication":  # collective with no port loads
            rows.setdefault("link (collectives)", []).append((row.start_s, row.latency_s, "0.4"))
    if transfers is not None and len(transfers):
        tr = transfers[(transfers["end_s"] > t0) & (transfers["start_s"] < t1)]
        for row in tr.itertuples(index=False):
            for res in (row.src, *str(row.route).split(), row.dst):
                if res:
                    rows.setdefault(f"link {res}", []).append(
                        (row.start_s, row.latency_s, "tab:olive"))
    names = sorted(rows, key=lambda n: (n.startswith("link "), n))[:24]
    fig, ax = subplots(figsize=(12, 0.9 + 0.38 * len(names)))
    for i, name in enumerate(names):
        bars = [((s - t0) * 1e3, max(d * 1e3, 1e-6)) for s, d, _ in rows[name]]
        ax.broken_barh(bars, (i - 0.38, 0.76), facecolors=[c for _, _, c in rows[name]],
                       edgecolors="none")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, (t1 - t0) * 1e3)
    ax.set_xlabel(f"time within decode step {step} (ms)")
    present = [c for c in CLASS_COLORS if c in set(sel["op_class"])]
    handles = [ax.barh([], [], color=CLASS_COLORS[c], label=c) for c in present]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.35 if
              len(names) < 4 else -0.12), ncol=max(1, len(present)), frameon=False)
    ax.set_title(f"One decode step (step {step}) per stream and link - {title}", fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)
