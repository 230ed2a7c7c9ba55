"""The compare page: one workload on several arches side by side (metrics with units, where
the time goes, the difference per op class, what bounds it, rooflines overlaid)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from sim.report.atomic import staged_directory
from sim.report.html import STYLE, _img, table_html
from sim.report.plots import _png, roofline_overlay_png, subplots
from sim.report.units import METRICS, readable

COMPARE_FILES = ("report.html", "compare.json", "metrics.csv", "op_classes.csv")


def _readable_metrics(df: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    out = []
    for row in df.to_dict(orient="records"):
        label, unit = METRICS.get(row["metric"], (row["metric"], ""))
        cells = {"quantity": label}
        cells.update({n: readable(row[n], unit) for n in names})
        for c in df.columns:
            if " / " in c:
                cells[c] = "-" if pd.isna(row[c]) else f"{row[c]:.3f}x"
        out.append(cells)
    return pd.DataFrame(out)


def time_by_class_png(op_classes: pd.DataFrame, names: list[str], title: str) -> bytes:
    """Op time by op class per arch (grouped horizontal bars, prefill and decode summed)."""
    t = op_classes.groupby("op_class")[names].sum()
    t = t.loc[t.max(axis=1).sort_values().index]
    fig, ax = subplots(figsize=(9, 0.9 + 0.45 * len(t) * max(1, len(names)) / 2))
    h = 0.8 / len(names)
    for i, n in enumerate(names):
        ax.barh([k + i * h for k in range(len(t))], t[n] * 1e3, height=h, label=n,
                color=f"C{i % 10}")
    ax.set_yticks([k + 0.4 - h / 2 for k in range(len(t))])
    ax.set_yticklabels(t.index)
    ax.set_xlabel("op time (ms, summed over streams)")
    ax.set_title(f"Where the time goes - {title}", fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def compare_html(title: str, names: list[str], metrics: pd.DataFrame, op_classes: pd.DataFrame,
                 bounds: pd.DataFrame, roofline: bytes, time_png: bytes,
                 inputs: list[dict]) -> str:
    """The page."""
    oc = op_classes.copy()
    for c in oc.columns:
        if c not in ("phase", "op_class"):
            oc[c] = [readable(v, "s") for v in oc[c]]
    arches = "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(str(i.get('arch_origin')))}"
                     f"</li>" for n, i in zip(names, inputs, strict=True))
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>xpusim compare -
{html.escape(title)}</title><style>{STYLE}</style></head><body>
<h1>xpusim compare</h1><p>{html.escape(title)}</p><ul>{arches}</ul>
<h2>Metrics</h2><p>Ratios are to the first arch ({html.escape(names[0])}).</p>
{table_html(_readable_metrics(metrics, names), left=("quantity",))}
<h2>Where the time goes</h2>{_img(time_png, "time by op class")}
<h2>Difference per op class</h2><p>Op time per phase and op class, and each arch's difference
to the first (negative: faster).</p>{table_html(oc, left=("phase", "op_class"))}
<h2>What bounds each op class</h2><p>The limit holding most of the class's time.</p>
{table_html(bounds, left=tuple(bounds.columns))}
<h2>Rooflines overlaid</h2>{_img(roofline, "rooflines")}
<h2>Inputs</h2><pre>{html.escape(json.dumps(inputs[0].get("scenario", {}), indent=2))}</pre>
</body></html>"""


def write_compare_report(out_dir: str | Path, title: str, names: list[str], results: list[Any],
                         metrics: pd.DataFrame, op_classes: pd.DataFrame,
                         bounds: pd.DataFrame) -> list[Path]:
    """Write the compare report into ``out_dir`` (all or nothing); return the paths."""
    items = [(n, r.ops, float(r.device_info.get("peak_bandwidth_Bps", 0.0)),
              r.device_info.get("roofs", {})) for n, r in zip(names, results, strict=True)]
    roof = roofline_overlay_png(items, title)
    page = compare_html(title, names, metrics, op_classes, bounds, roof,
                        time_by_class_png(op_classes, names, title),
                        [{k: v for k, v in r.inputs.items() if k != "resolved"}
                         for r in results])
    data = {"title": title, "arches": names,
            "metrics": {n: r.metrics for n, r in zip(names, results, strict=True)},
            "inputs": [r.inputs for r in results]}
    with staged_directory(out_dir) as stage:
        (stage / "report.html").write_text(page, encoding="utf-8")
        (stage / "compare.json").write_text(json.dumps(data, indent=2, default=float))
        metrics.to_csv(stage / "metrics.csv", index=False, float_format="%.9g")
        op_classes.to_csv(stage / "op_classes.csv", index=False, float_format="%.9g")
    return [Path(out_dir) / f for f in COMPARE_FILES]
