"""A self-contained HTML page tying a run's numbers, plots and files together."""

from __future__ import annotations

import base64
import html
import json

import pandas as pd

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:
1100px;color:#222;padding:0 1rem}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;
border-bottom:1px solid #ddd}table{border-collapse:collapse;font-size:.85rem}td,th{border:1px
solid #ddd;padding:.25rem .6rem;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}
img{max-width:100%;border:1px solid #eee}.ok{color:#16703b;font-weight:600}code{background:#f4f4f4;
padding:0 .2rem}
"""


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))


def table_html(df: pd.DataFrame, left: tuple[str, ...] = ()) -> str:
    head = "".join(f"<th class='{'l' if c in left else ''}'>{html.escape(str(c))}</th>"
                   for c in df.columns)
    rows = []
    for row in df.itertuples(index=False):
        cells = "".join(f"<td class='{'l' if c in left else ''}'>{_fmt(v)}</td>"
                        for c, v in zip(df.columns, row, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{alt}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _system_html(resources: pd.DataFrame | None, transfers: pd.DataFrame | None) -> str:
    """Links, memory tiers and transfers of a system run (empty for a lone stream)."""
    out = ""
    if resources is not None and len(resources):
        res = resources.sort_values("busy_s", ascending=False)
        out += ("<h2>Links and memory tiers (contended resources)</h2><p>Direction "
                "<code>&gt;</code> / <code>&lt;</code>: from the link's first / second end.</p>"
                + table_html(res, left=("resource",)))
    if transfers is not None and len(transfers):
        agg = (transfers.assign(total_bytes=transfers["bytes"] * transfers["replicas"])
               .groupby(["tensor", "src", "dst", "phase"], sort=True)
               .agg(transfers=("id", "size"), bytes=("total_bytes", "sum"),
                    time_s=("latency_s", "sum"), energy_J=("energy_J", "sum"))
               .reset_index())
        out += "<h2>Transfers</h2>" + table_html(agg, left=("tensor", "src", "dst", "phase"))
    return out


def run_report_html(summary: dict, ops: pd.DataFrame, roofline: bytes, energy: bytes,
                    files: list[str], resources: pd.DataFrame | None = None,
                    transfers: pd.DataFrame | None = None) -> str:
    """The report page: metrics, plots, the ops that take the time, invariants and inputs."""
    inputs = summary["inputs"]
    sc = inputs["scenario"]
    title = (f"{inputs['model']} on {inputs['arch']} - batch {sc['batch']}, prompt "
             f"{sc['prompt_len']}, generate {sc['gen_len']}, {sc['dtype']}, TP {sc['tp']}, "
             f"{inputs['fidelity']} fidelity")
    metrics = pd.DataFrame([(k, v) for k, v in summary["metrics"].items()],
                           columns=["metric", "value"])
    top = (ops.groupby(["phase", "op"], sort=False)
           .agg(count=("id", "size"), time_s=("latency_s", "sum"), flops=("flops", "sum"),
                bytes=("bytes", "sum"), energy_J=("energy_J", "sum"),
                bound=("bound", lambda s: s.value_counts().index[0]))
           .reset_index().sort_values("time_s", ascending=False))
    total = float(ops["latency_s"].sum()) or 1.0
    top.insert(4, "share", (top["time_s"] / total).round(4))
    inv = pd.DataFrame([(k, v) for k, v in summary["invariants"].items()],
                       columns=["invariant", "status"])
    energy_tbl = pd.DataFrame([(k, v) for k, v in summary["energy_by_component_J"].items()],
                              columns=["component", "energy_J"])
    links = " &middot; ".join(f"<a href='{html.escape(f)}'>{html.escape(f)}</a>" for f in files)
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>xpusim - {html.escape(title)}
</title><style>{STYLE}</style></head><body>
<h1>xpusim run report</h1><p>{html.escape(title)}</p>
<p>Files: {links}. Open <code>timeline.json</code> in <a href='https://ui.perfetto.dev'>
ui.perfetto.dev</a> or chrome://tracing.</p>
<h2>Metrics</h2>{table_html(metrics, left=("metric",))}
<h2>Roofline</h2>{_img(roofline, "roofline")}
<h2>Energy</h2>{_img(energy, "energy")}{table_html(energy_tbl, left=("component",))}
<h2>Where the time goes</h2>{table_html(top.head(30), left=("phase", "op", "bound"))}
{_system_html(resources, transfers)}
<h2>Invariants</h2>{table_html(inv, left=("invariant", "status"))}
<h2>Inputs (rerun with these)</h2><pre>{html.escape(json.dumps(inputs, indent=2))}</pre>
</body></html>"""
