"""Sweep report: Pareto scatter, parallel coordinates, sensitivity, best points, HTML page.

The page uses the run report's style and table helpers (:mod:`sim.report.html`) and the same
headless figures (:mod:`sim.report.plots`: no pyplot, so a notebook's backend is left
alone); every file is written atomically.
"""

from __future__ import annotations

import html
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps

from dse.analysis import best_points, feasible, knee_point, pareto_front, sensitivity
from sim.report.atomic import staged_directory
from sim.report.html import STYLE, _img, table_html
from sim.report.plots import _png, subplots

REPORT_FILES = ("pareto.png", "parallel.png", "sensitivity.png", "summary.json", "report.html")
MAX_LINES = 3000  # parallel-coordinates lines drawn for the non-front points


def _label(name: str) -> str:
    return name.replace("_", " ")


def pareto_png(df: pd.DataFrame, objectives: list[tuple[str, str]], title: str) -> bytes:
    """Every pair of the first three objectives: all points, infeasible ones, the front."""
    objs = objectives[:3]
    pairs = list(itertools.combinations(range(len(objs)), 2)) or [(0, 0)]
    fig, axes = subplots(1, len(pairs), figsize=(6.2 * len(pairs), 4.8), squeeze=False)
    ok = feasible(df)
    bad = df[(df["status"] != "ok")]
    front = pareto_front(df, objs)
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        mx, my = objs[i][0], objs[j][0]
        ax.scatter(ok[mx], ok[my], s=12, color="0.65", alpha=0.7, label="feasible")
        if mx in bad and my in bad and bad[[mx, my]].notna().all(axis=1).any():
            ax.scatter(bad[mx], bad[my], s=14, marker="x", color="tab:red", alpha=0.4,
                       label="infeasible")
        if len(objs) == 2:
            ax.plot(front[mx], front[my], "-o", color="tab:blue", ms=5, lw=1.2,
                    label=f"Pareto front ({len(front)})")
        else:
            sub = pareto_front(df, [objs[i], objs[j]])
            ax.scatter(front[mx], front[my], s=22, color="tab:blue",
                       label=f"3-objective front ({len(front)})")
            ax.plot(sub[mx], sub[my], "-", color="tab:orange", lw=1.2, label="2-objective front")
        ax.set_xlabel(f"{_label(mx)} ({objs[i][1]})")
        ax.set_ylabel(f"{_label(my)} ({objs[j][1]})")
        for axis, m in ((ax.xaxis, mx), (ax.yaxis, my)):
            vals = ok[m].to_numpy(dtype=float) if m in ok else np.array([])
            vals = vals[np.isfinite(vals)]
            if vals.size and vals.min() > 0 and vals.max() / vals.min() > 50:
                (ax.set_xscale if axis is ax.xaxis else ax.set_yscale)("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Pareto front - {title}")
    return _png(fig)


def parallel_png(df: pd.DataFrame, params: list[str], objectives: list[tuple[str, str]],
                 title: str) -> bytes:
    """Parallel coordinates over parameters and objectives (front in colour, others grey)."""
    cols = list(dict.fromkeys([c for c in params if c in df and df[c].nunique() > 1]
                              + [m for m, _ in objectives]))
    ok = feasible(df).dropna(subset=[m for m, _ in objectives])
    fig, ax = subplots(figsize=(max(8, 1.6 * len(cols)), 5))
    if ok.empty or not cols:
        ax.text(0.5, 0.5, "no feasible points", ha="center")
        return _png(fig)
    data = pd.DataFrame({c: pd.to_numeric(ok[c], errors="coerce") if ok[c].dtype != object
                         else ok[c].astype("category").cat.codes for c in cols})
    lo, hi = data.min(), data.max()
    logs = [c for c in cols if lo[c] > 0 and hi[c] / lo[c] > 50]
    scaled = data.copy()
    scaled[logs] = np.log10(data[logs].astype(float))
    slo, shi = scaled.min(), scaled.max()
    norm = (scaled - slo) / (shi - slo).replace(0, 1)
    front_idx = set(pareto_front(df, objectives).index)
    others = norm[~norm.index.isin(front_idx)]
    if len(others) > MAX_LINES:
        others = others.iloc[np.linspace(0, len(others) - 1, MAX_LINES).astype(int)]
    x = np.arange(len(cols))
    for _, row in others.iterrows():
        ax.plot(x, row.to_numpy(), color="0.75", lw=0.5, alpha=0.5)
    front = norm[norm.index.isin(front_idx)]
    first = objectives[0][0]
    cmap = colormaps["viridis"]
    order = front[first].sort_values().index
    for k, idx in enumerate(order):
        ax.plot(x, front.loc[idx].to_numpy(), color=cmap(k / max(len(order) - 1, 1)), lw=1.6)
    ax.set_xticks(x)
    ax.set_xticklabels([_label(c) + (" (log)" if c in logs else "") for c in cols],
                       rotation=20, ha="right", fontsize=8)
    for k, c in enumerate(cols):
        ax.annotate(f"{hi[c]:.3g}", (k, 1.0), xytext=(0, 4), textcoords="offset points",
                    ha="center", fontsize=7)
        ax.annotate(f"{lo[c]:.3g}", (k, 0.0), xytext=(0, -11), textcoords="offset points",
                    ha="center", fontsize=7)
    ax.set_yticks([])
    ax.set_ylim(-0.08, 1.08)
    ax.set_title(f"Parallel coordinates - {title}\n(grey: feasible points; colour: Pareto "
                 f"front by {_label(first)})", fontsize=10)
    for k in x:
        ax.axvline(k, color="0.3", lw=0.6)
    return _png(fig)


def sensitivity_png(sens: pd.DataFrame, title: str) -> bytes:
    """Heat map of first-order indices (rows: parameters, columns: objectives)."""
    fig, ax = subplots(figsize=(1.8 + 1.6 * len(sens.columns), 1.0 + 0.5 * len(sens)))
    im = ax.imshow(sens.to_numpy(dtype=float), vmin=0, vmax=1, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(sens.columns)))
    ax.set_xticklabels([_label(c) for c in sens.columns], rotation=15, ha="right", fontsize=8)
    ax.set_yticks(range(len(sens.index)))
    ax.set_yticklabels(list(sens.index), fontsize=8)
    for (r, c), v in np.ndenumerate(sens.to_numpy(dtype=float)):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8,
                color="white" if v > 0.6 else "black")
    fig.colorbar(im, ax=ax, label="first-order index")
    ax.set_title(f"Sensitivity - {title}", fontsize=10)
    return _png(fig)


def sweep_report_html(summary: dict[str, Any], spec_text: str, front: pd.DataFrame,
                      best: pd.DataFrame, sens: pd.DataFrame, knee: pd.Series | None,
                      pngs: dict[str, bytes], files: list[str]) -> str:
    """The sweep report page."""
    counts = summary["status"]
    facts = pd.DataFrame([
        ("points", summary["n_points"]), ("feasible", counts.get("ok", 0)),
        ("infeasible", counts.get("infeasible", 0)), ("errors", counts.get("error", 0)),
        ("evaluated in this run", summary["evaluated"]), ("resumed from store",
                                                          summary["resumed"]),
        ("wall time (s)", round(summary["wall_s"], 2)),
        ("points per minute", round(summary["points_per_min"], 1)),
        ("executor", f"{summary['executor']} x {summary['workers']}"),
        ("strategy", summary["strategy"]), ("fidelity", summary["fidelity"]),
        ("objectives", ", ".join(summary["objectives"])),
    ], columns=["", "value"])
    links = " &middot; ".join(f"<a href='{html.escape(f)}'>{html.escape(f)}</a>" for f in files)
    knee_html = ""
    if knee is not None:
        knee_df = pd.DataFrame([(k, v) for k, v in knee.items() if k != "eval_s"],
                               columns=["column", "value"])
        knee_html = ("<h2>Balanced point (closest to utopia on the front)</h2>"
                     + table_html(knee_df, left=("column", "value")))
    sens_tbl = sens.reset_index().rename(columns={"index": "parameter"})
    left = ("point_id", "status", "best_for", "reason")
    errors = ""
    if counts.get("error", 0):
        errors = ("<p><b>Some points failed with internal errors</b>; see the <code>reason</code>"
                  " column of <code>results.csv</code>.</p>")
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>xpusim sweep -
{html.escape(summary['name'])}</title><style>{STYLE}</style></head><body>
<h1>xpusim sweep report</h1><p>{html.escape(summary['name'])}</p>
<p>Files: {links}. Load the results in Python with <code>dse.load_results(DIR)</code>.</p>
{errors}<h2>Summary</h2>{table_html(facts, left=("", "value"))}
<h2>Pareto front ({len(front)} points)</h2>{_img(pngs['pareto.png'], 'pareto front')}
{table_html(front.drop(columns=['eval_s', 'reason'], errors='ignore').head(50), left=left)}
{knee_html}
<h2>Parallel coordinates</h2>{_img(pngs['parallel.png'], 'parallel coordinates')}
<h2>Sensitivity (first-order variance share)</h2>{_img(pngs['sensitivity.png'], 'sensitivity')}
{table_html(sens_tbl, left=("parameter",))}
<h2>Best points per objective</h2>
{table_html(best.drop(columns=['eval_s', 'reason'], errors='ignore'), left=left)}
<h2>Sweep spec (rerun with this)</h2><pre>{html.escape(spec_text)}</pre>
</body></html>"""


def write_sweep_report(df: pd.DataFrame, spec, out: str | Path,
                       summary: dict[str, Any]) -> list[Path]:
    """Write the plots, ``summary.json`` and ``report.html`` into ``out``; return their paths.

    ``summary`` (from :func:`dse.runner.run_sweep`) gains ``pareto``: the front's point ids.
    """
    objectives = [(o.metric, o.goal) for o in spec.objectives]
    # where no point ran (all infeasible) the table has no metric columns: empty ones, so
    # that the report says "no feasible points" instead of failing
    df = df.assign(**{m: float("nan") for m, _ in objectives if m not in df})
    axes = [a.path for a in spec.axes]
    params = axes + [d.target for d in spec.derived if d.kind == "free"]
    title = spec.name
    front = pareto_front(df, objectives)
    sens = sensitivity(df, axes, objectives)
    best = best_points(df, objectives, n=5)
    knee = knee_point(df, objectives)
    summary.update({"strategy": spec.strategy.name, "fidelity": spec.fidelity,
                    "objectives": [f"{g} {m}" for m, g in objectives],
                    "pareto": front["point_id"].tolist(),
                    "sensitivity": {m: sens[m].to_dict() for m in sens.columns}})
    if knee is not None:
        summary["knee_point_id"] = knee["point_id"]
    pngs = {"pareto.png": pareto_png(df, objectives, title),
            "parallel.png": parallel_png(df, params, objectives, title),
            "sensitivity.png": sensitivity_png(sens, title)}
    files = ["report.html", "results.csv", *pngs, "summary.json", "points.sqlite"]
    page = sweep_report_html(summary, spec.text or "", front, best, sens, knee, pngs, files)
    with staged_directory(out) as stage:
        for name, data in pngs.items():
            (stage / name).write_bytes(data)
        (stage / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        (stage / "report.html").write_text(page, encoding="utf-8")
    return [Path(out) / f for f in REPORT_FILES]
