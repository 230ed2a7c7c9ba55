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


def roofline_png(ops: pd.DataFrame, bandwidth: float, roofs: dict[str, float], title: str) -> bytes:
    """Every op (identical ops share a point) at (FLOP/byte, achieved FLOP/s per device)."""
    df = ops[(ops["flops"] > 0) & (ops["bytes"] > 0) & (ops["latency_s"] > 0)]
    df = df.drop_duplicates(subset=["op", "phase", "flops", "bytes", "latency_s"])
    fig, ax = subplots(figsize=(8, 5.5))
    intensity = df["flops"] / df["bytes"]
    achieved = df["flops"] / df["shards"] / df["latency_s"]
    lo = max(min(float(intensity.min()) if len(df) else 0.1, 0.1) / 2, 1e-3)
    hi = max(float(intensity.max()) if len(df) else 1e3, 1e3) * 2
    x = np.logspace(np.log10(lo), np.log10(hi), 200)
    for i, (label, peak) in enumerate(sorted(roofs.items(), key=lambda kv: -kv[1])):
        ax.plot(x, np.minimum(peak, bandwidth * x), lw=1.5, ls="-" if i == 0 else "--",
                color="black" if i == 0 else "0.5", label=f"{label} {peak / 1e12:.0f} TFLOP/s")
    for cls, group in df.groupby(df["op_class"]):
        sel = group.index
        ax.scatter(intensity[sel], achieved[sel], s=10, alpha=0.6,
                   color=CLASS_COLORS.get(cls, "tab:cyan"), label=cls)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte of compulsory traffic)")
    ax.set_ylabel("achieved FLOP/s per device")
    ax.set_title(f"Roofline - {title}\nmemory {bandwidth / 1e12:.2f} TB/s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def energy_png(ops: pd.DataFrame, static_J: float, title: str) -> bytes:
    """Energy by op class, split into compute, memory and link, plus static energy."""
    agg = ops.groupby("op_class")[["energy_compute_J", "energy_memory_J", "energy_link_J"]].sum()
    agg.loc["static"] = [0.0, 0.0, 0.0]
    agg = agg.sort_values(by="energy_compute_J", ascending=False)
    fig, ax = subplots(figsize=(8, 4.5))
    bottom = np.zeros(len(agg))
    for col, label, color in (("energy_compute_J", "compute", "tab:blue"),
                              ("energy_memory_J", "memory", "tab:orange"),
                              ("energy_link_J", "link", "tab:gray")):
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
