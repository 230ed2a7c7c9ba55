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


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes (110 dpi)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


PHASE_MARKERS = {"prefill": "o", "decode": "^", "forward": "s", "backward": "v",
                 "optimizer": "D"}
ROOF_STYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)))


def _intensity_points(ops: pd.DataFrame) -> pd.DataFrame:
    """One point per distinct (op, phase, shape): intensity, achieved FLOP/s per device and
    the op's summed time over the run (for labels)."""
    df = ops[(ops["flops"] > 0) & (ops["bytes"] > 0) & (ops["latency_s"] > 0)]
    if not len(df):
        return df.assign(intensity=[], achieved=[], total_s=[])
    total = df.groupby(["op", "phase", "flops", "bytes"])["latency_s"].transform("sum")
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
    time labelled."""
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
    handles = [ax.scatter([], [], color=c, s=14, label=k) for k, c in CLASS_COLORS.items()
               if k in set(df["op_class"])] if len(df) else []
    handles += [ax.scatter([], [], color="0.3", marker=m, s=14, label=ph)
                for ph, m in PHASE_MARKERS.items() if len(df) and ph in set(df["phase"])]
    roof_handles, _ = ax.get_legend_handles_labels()
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte of compulsory traffic)")
    ax.set_ylabel("achieved FLOP/s per device")
    ax.set_title(f"Roofline - {title}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=roof_handles[:len(roofs) + len(bws)] + handles, fontsize=7,
              loc="lower right", ncol=2)
    return _png(fig)


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
    ax.set_xscale("log")
    ax.set_yscale("log")
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
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _png(fig)


def _phase_split(ops: pd.DataFrame, by: str, value: str) -> pd.DataFrame:
    """``value`` summed by ``by`` (rows) and phase (columns)."""
    return ops.pivot_table(index=by, columns="phase", values=value, aggfunc="sum",
                           fill_value=0.0, observed=True)


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
        for j, phase in enumerate(t.columns):
            vals = t[phase].to_numpy()
            if by == "op_class":
                ax.barh(labels, vals, left=left, label=phase, color=f"C{j}")
            else:
                ax.bar(labels, vals, bottom=left, label=phase, color=f"C{j}", width=0.85)
            left += vals
        what = "op time" if value == "latency_s" else "energy"
        ax.set_title(f"{what} by {by.replace('_', ' ')}", fontsize=10)
        if by == "op_class":
            ax.set_xlabel(f"{what} ({unit})")
        else:
            ax.set_ylabel(f"{what} ({unit})")
            ax.set_xlabel("layer")
            step = max(1, len(labels) // 16)
            ax.set_xticks(range(0, len(labels), step))
            ax.set_xticklabels(labels[::step], fontsize=7)
        ax.grid(True, axis="x" if by == "op_class" else "y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Where the time and energy go - {title}")
    fig.tight_layout()
    return _png(fig)


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
