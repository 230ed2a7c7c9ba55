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
img,figure>svg{max-width:100%;height:auto;border:1px solid #eee}figure{margin:0}
.ok{color:#16703b;font-weight:600}code{background:#f4f4f4;
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


def _figure(svg: str, alt: str) -> str:
    """An SVG figure inline (its text as written to the ``.svg`` file)."""
    return f"<figure role='img' aria-label='{html.escape(alt, quote=True)}'>{svg}</figure>"


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


#: energy components as the page names them (not to be confused with the op class "memory")
ENERGY_LABELS = {"compute": "ALU work", "memory": "memory accesses", "link": "links",
                 "static": "static (idle power)", "transfer": "transfers between tiers"}


def metrics_html(metrics: dict) -> str:
    """The metrics as (quantity, value with unit, key) rows: readable magnitudes."""
    from sim.report.units import metric_row

    rows = [metric_row(k, v) for k, v in metrics.items() if isinstance(v, (int, float))]
    return table_html(pd.DataFrame(rows, columns=["quantity", "value", "key"]),
                      left=("quantity", "key"))


def _utilisation_html(util: pd.DataFrame) -> str:
    from sim.report.units import readable

    if util is None or not len(util):
        return ""
    df = pd.DataFrame({
        "component": util["component"], "phase": util["phase"],
        "achieved": [readable(v, u) for v, u in zip(util["achieved"], util["unit"],
                                                     strict=True)],
        "peak": [readable(v, u) for v, u in zip(util["peak"], util["unit"], strict=True)],
        "utilisation": [readable(v, "%") for v in util["utilisation"]]})
    return ("<h2>Utilisation</h2><p>Achieved per device over the phase's wall time against "
            "the peak; the compute row is the MFU. Links and tiers: bytes over the run's "
            "makespan against their bandwidth.</p>" + table_html(df, left=("component",
                                                                             "phase")))


def _bounds_html(bounds: pd.DataFrame) -> str:
    from sim.report.units import readable

    if bounds is None or not len(bounds):
        return ""
    df = bounds.copy()
    df["time_s"] = [readable(v, "s") for v in df["time_s"]]
    for c in df.columns:
        if c not in ("op_class", "time_s", "bound by"):
            df[c] = [readable(v, "%") for v in df[c]]
    df = df.rename(columns={"op_class": "op class", "time_s": "op time"})
    return ("<h2>What bounds each op class</h2><p>Share of each class's op time spent in ops "
            "bound by each limit.</p>" + table_html(df, left=("op class", "bound by")))


def top_ops(ops: pd.DataFrame) -> pd.DataFrame:
    """Per (phase, op): count, time, FLOPs, bytes, energy and the bound most of its ops have,
    most time first. ``ops``: the op table, or rows that each stand for ``n`` ops."""
    if "n" not in ops.columns:
        ops = ops.assign(n=1)
    keys = ["phase", "op"]
    top = (ops.groupby(keys, sort=False, observed=True)
           .agg(count=("n", "sum"), time_s=("latency_s", "sum"), flops=("flops", "sum"),
                bytes=("bytes", "sum"), energy_J=("energy_J", "sum")))
    by_bound = ops.groupby([*keys, "bound"], sort=False, observed=True)["n"].sum()
    ranked = by_bound.reset_index().sort_values("n", ascending=False, kind="stable")
    top["bound"] = ranked.drop_duplicates(keys).set_index(keys)["bound"]
    return top.reset_index().sort_values("time_s", ascending=False)


def run_report_html(summary: dict, ops: pd.DataFrame, figures: dict[str, str],
                    files: list[str], resources: pd.DataFrame | None = None,
                    transfers: pd.DataFrame | None = None,
                    utilisation: pd.DataFrame | None = None,
                    bounds: pd.DataFrame | None = None) -> str:
    """The report page (``ops``: the op table or rows standing for ``n`` ops each, as
    :func:`sim.report.rollups.summed_ops` gives; ``figures``: SVG text of ``roofline``,
    ``energy`` and, when drawn, ``breakdown`` and ``timeline``): metrics with units,
    rooflines, where the time and energy go (op class, layer, prefill vs decode), one decode
    step's timeline, utilisation, bounds, the ops that take the time, system resources,
    invariants and inputs."""
    from sim.report.units import readable

    images = figures
    inputs = summary["inputs"]
    sc = inputs["scenario"]
    title = (f"{inputs['model']} on {inputs['arch']} - batch {sc['batch']}, prompt "
             f"{sc['prompt_len']}, generate {sc['gen_len']}, {sc['dtype']}, TP {sc['tp']}, "
             f"{inputs['fidelity']} fidelity")
    top = top_ops(ops)
    total = float(ops["latency_s"].sum()) or 1.0
    top.insert(4, "share", [readable(v, "%") for v in top["time_s"] / total])
    for col, unit in (("time_s", "s"), ("flops", "FLOP"), ("bytes", "B"), ("energy_J", "J")):
        top[col] = [readable(v, unit) for v in top[col]]
    top = top.rename(columns={"time_s": "op time", "energy_J": "energy"})
    inv = pd.DataFrame([(k, v) for k, v in summary["invariants"].items()],
                       columns=["invariant", "status"])
    energy_tbl = pd.DataFrame([(ENERGY_LABELS.get(k, k), readable(v, "J")) for k, v in
                               summary["energy_by_component_J"].items()],
                              columns=["spent on", "energy"])
    links = " &middot; ".join(f"<a href='{html.escape(f)}'>{html.escape(f)}</a>" for f in files)
    resolved = {k: v for k, v in inputs.items() if k != "resolved"}
    extra = ""
    if images.get("breakdown"):
        extra += ("<h2>Where the time and energy go</h2><p>Op time is summed over streams "
                  "(concurrent ops both count); layer -1 holds the embedding and LM head.</p>"
                  + _figure(images["breakdown"], "breakdown"))
    if images.get("timeline"):
        extra += ("<h2>One decode step</h2><p>Each device stream and each link or memory tier "
                  "the step loads; the whole run is in <code>timeline.json</code>.</p>"
                  + _figure(images["timeline"], "decode step timeline"))
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>xpusim - {html.escape(title)}
</title><style>{STYLE}</style></head><body>
<h1>xpusim run report</h1><p>{html.escape(title)}</p>
<p>Files: {links}. Open <code>timeline.json</code> in <a href='https://ui.perfetto.dev'>
ui.perfetto.dev</a> or chrome://tracing. Rerun: <code>xpusim rerun summary.json</code>.</p>
<h2>Metrics</h2>{metrics_html(summary["metrics"])}
<h2>Roofline</h2><p>Every compute peak (horizontal) and every bandwidth the device draws on
(diagonal: memory levels, links, host tiers); circles prefill, triangles decode; the ops with
the most time labelled.</p>{_figure(images["roofline"], "roofline")}
{extra}{_utilisation_html(utilisation)}{_bounds_html(bounds)}
<h2>Energy</h2>{_figure(images["energy"], "energy")}{table_html(energy_tbl, left=("spent on",))}
<h2>Ops that take the time</h2>{table_html(top.head(30), left=("phase", "op", "bound"))}
{_system_html(resources, transfers)}
<h2>Invariants</h2>{table_html(inv, left=("invariant", "status"))}
<h2>Inputs (<code>xpusim rerun summary.json</code> reruns the resolved ones)</h2>
<pre>{html.escape(json.dumps(resolved, indent=2))}</pre>
</body></html>"""
