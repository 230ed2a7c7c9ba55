"""A self-contained HTML page tying a run's numbers, plots and files together."""

from __future__ import annotations

import base64
import html
import json

import numpy as np

from sim.columns import Columns, as_columns, column, in_first_order, text_codes
from sim.report.rollups import group_ids
from sim.report.tables import group_sum, nargsort

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


def table_html(df, left: tuple[str, ...] = ()) -> str:
    """An HTML table of a DataFrame or :class:`Columns` (header, then a row per row)."""
    if isinstance(df, Columns):
        names = df.order
        body = zip(*(column(df, c).tolist() for c in names), strict=True) if names else ()
    else:
        names = list(df.columns)
        body = df.itertuples(index=False)
    head = "".join(f"<th class='{'l' if c in left else ''}'>{html.escape(str(c))}</th>"
                   for c in names)
    rows = []
    for row in body:
        cells = "".join(f"<td class='{'l' if c in left else ''}'>{_fmt(v)}</td>"
                        for c, v in zip(names, row, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def text_table(rows: list[tuple], names: list[str]) -> Columns:
    """A small table of text cells given row by row (no pandas)."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    data = {}
    for name, values in zip(names, cols, strict=True):
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
        data[name] = arr
    return Columns(data, names, len(rows))


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{alt}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _figure(svg: str, alt: str) -> str:
    """An SVG figure inline (its text as written to the ``.svg`` file)."""
    return f"<figure role='img' aria-label='{html.escape(alt, quote=True)}'>{svg}</figure>"


def _system_html(resources, transfers) -> str:
    """Links, memory tiers and transfers of a system run (empty for a lone stream)."""
    out = ""
    if resources is not None and len(resources):
        res = as_columns(resources)   # by busy time, most first (``sort_values``' order)
        res = res.subset(nargsort(np.asarray(res["busy_s"]), ascending=False))
        out += ("<h2>Links and memory tiers (contended resources)</h2><p>Direction "
                "<code>&gt;</code> / <code>&lt;</code>: from the link's first / second end.</p>"
                + table_html(res, left=("resource",)))
    if transfers is not None and len(transfers):
        out += "<h2>Transfers</h2>" + table_html(transfer_rows(transfers),
                                                  left=("tensor", "src", "dst", "phase"))
    return out


def transfer_rows(transfers) -> Columns:
    """Transfers per (tensor, src, dst, phase), keys sorted: how many, bytes (times
    replicas), time and energy summed: ``groupby(keys, sort=True).agg(...)`` of the table
    (pandas' compensated sums), without pandas. The groups are found from each key column's
    distinct labels and codes (:func:`~sim.columns.text_codes`; a run's table holds them as
    codes): the four codes as one int64 per row, its distinct values in first-seen order
    (:func:`~sim.columns.in_first_order`), their label tuples sorted."""
    t = as_columns(transfers)
    keys = ("tensor", "src", "dst", "phase")
    coded = [text_codes(t, k) for k in keys]
    joint = np.zeros(len(t), dtype=np.int64)
    for labels, codes in coded:       # < 2**62 for any table that fits in memory
        joint = joint * max(len(labels), 1) + codes
    values, _, inverse = in_first_order(joint)
    slots: list[tuple] = []
    for v in values.tolist():         # each distinct key's labels, the last key's code first
        parts = []
        for labels, _ in reversed(coded):
            v, c = divmod(v, max(len(labels), 1))
            parts.append(labels[c])
        slots.append(tuple(reversed(parts)))
    ordered = sorted(slots)   # sort=True: by the key tuples
    rank = {k: i for i, k in enumerate(ordered)}
    lut = np.array([rank[k] for k in slots], dtype=np.int64)
    ids = lut[inverse] if len(inverse) else np.zeros(0, dtype=np.int64)
    n = len(ordered)
    out: dict = {}
    for j, k in enumerate(keys):
        col = np.empty(n, dtype=object)
        col[:] = [key[j] for key in ordered]
        out[k] = col
    out["transfers"] = np.bincount(ids, minlength=n).astype(np.int64)
    total = np.asarray(t["bytes"]) * np.asarray(t["replicas"])
    out["bytes"] = group_sum(ids, total, n)
    out["time_s"] = group_sum(ids, np.asarray(t["latency_s"]), n)
    out["energy_J"] = group_sum(ids, np.asarray(t["energy_J"]), n)
    return Columns(out, list(out), n)


#: energy components as the page names them (not to be confused with the op class "memory")
ENERGY_LABELS = {"compute": "ALU work", "memory": "memory accesses", "link": "links",
                 "static": "static (idle power)", "transfer": "transfers between tiers"}


def metrics_html(metrics: dict) -> str:
    """The metrics as (quantity, value with unit, key) rows: readable magnitudes."""
    from sim.report.units import metric_row

    rows = [metric_row(k, v) for k, v in metrics.items() if isinstance(v, (int, float))]
    return table_html(text_table(rows, ["quantity", "value", "key"]), left=("quantity", "key"))


def _utilisation_html(util) -> str:
    from sim.report.units import readable

    if util is None or not len(util):
        return ""
    names = ("component", "phase", "achieved", "peak", "utilisation", "unit")
    if isinstance(util, list):   # records (``to_dict(orient="records")``)
        cols = {c: [r[c] for r in util] for c in names}
    else:
        cols = {c: column(util, c).tolist() for c in names}
    df = text_table(list(zip(
        cols["component"], cols["phase"],
        [readable(v, u) for v, u in zip(cols["achieved"], cols["unit"], strict=True)],
        [readable(v, u) for v, u in zip(cols["peak"], cols["unit"], strict=True)],
        [readable(v, "%") for v in cols["utilisation"]], strict=True)),
        ["component", "phase", "achieved", "peak", "utilisation"])
    return ("<h2>Utilisation</h2><p>Achieved per device over the phase's wall time against "
            "the peak; the compute row is the MFU. Links and tiers: bytes over the run's "
            "makespan against their bandwidth.</p>" + table_html(df, left=("component",
                                                                             "phase")))


def _bounds_html(bounds) -> str:
    from sim.report.units import readable

    if bounds is None or not len(bounds):
        return ""
    src = as_columns(bounds)
    data = {}
    for c in src.order:
        values = column(src, c).tolist()
        if c == "time_s":
            values = [readable(v, "s") for v in values]
        elif c not in ("op_class", "bound by"):
            values = [readable(v, "%") for v in values]
        data[{"op_class": "op class", "time_s": "op time"}.get(c, c)] = values
    names = list(data)
    df = text_table(list(zip(*data.values(), strict=True)), names)
    return ("<h2>What bounds each op class</h2><p>Share of each class's op time spent in ops "
            "bound by each limit.</p>" + table_html(df, left=("op class", "bound by")))


TOP_COLUMNS = ("phase", "op", "count", "time_s", "flops", "bytes", "energy_J", "bound")


def top_rows(ops) -> Columns:
    """:func:`top_ops` as :class:`Columns` (no pandas): ``groupby(["phase", "op"],
    sort=False)`` sums (pandas' compensated ones), each group's bound the one with the most
    ops (the first seen of equals), rows by time, most first (``sort_values``' order)."""
    ops = as_columns(ops)
    n = np.asarray(ops["n"]) if "n" in ops else np.ones(len(ops), dtype=np.int64)
    ids, count = group_ids(ops, ["phase", "op"])
    first = np.full(count, len(ops), dtype=np.int64)
    np.minimum.at(first, ids, np.arange(len(ops), dtype=np.int64))
    out: dict = {k: np.asarray(ops[k])[first] for k in ("phase", "op")}
    out["count"] = group_sum(ids, n, count)
    for name, src in (("time_s", "latency_s"), ("flops", "flops"), ("bytes", "bytes"),
                      ("energy_J", "energy_J")):
        out[name] = group_sum(ids, np.asarray(ops[src]), count)
    bid, bcount = group_ids(ops, ["phase", "op", "bound"])
    bn = group_sum(bid, n, bcount)
    bfirst = np.full(bcount, len(ops), dtype=np.int64)
    np.minimum.at(bfirst, bid, np.arange(len(ops), dtype=np.int64))
    bound = np.asarray(ops["bound"])
    best = np.empty(count, dtype=object)
    chosen = np.zeros(count, dtype=bool)
    for g in np.argsort(-bn, kind="stable").tolist():   # most ops first, ties first seen
        row = bfirst[g]
        if not chosen[ids[row]]:
            chosen[ids[row]] = True
            best[ids[row]] = bound[row]
    out["bound"] = best
    order = nargsort(out["time_s"], ascending=False)
    return Columns({k: v[order] for k, v in out.items()}, list(TOP_COLUMNS), count)


def top_ops(ops):
    """Per (phase, op): count, time, FLOPs, bytes, energy and the bound most of its ops have,
    most time first. ``ops``: the op table, or rows that each stand for ``n`` ops."""
    return top_rows(ops).frame()


def run_report_html(summary: dict, ops, figures: dict[str, str],
                    files: list[str], resources=None, transfers=None, utilisation=None,
                    bounds=None) -> str:
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
    top = top_rows(ops)
    total = float(np.sum(column(ops, "latency_s"))) or 1.0
    cells = {"phase": top["phase"].tolist(), "op": top["op"].tolist(),
             "count": top["count"].tolist(),
             "op time": [readable(v, "s") for v in top["time_s"].tolist()],
             "share": [readable(v, "%") for v in (top["time_s"] / total).tolist()]}
    for col, unit, name in (("flops", "FLOP", "flops"), ("bytes", "B", "bytes"),
                            ("energy_J", "J", "energy")):
        cells[name] = [readable(v, unit) for v in top[col].tolist()]
    cells["bound"] = top["bound"].tolist()
    top = text_table(list(zip(*(v[:30] for v in cells.values()), strict=True)), list(cells))
    inv = text_table([(k, v) for k, v in summary["invariants"].items()],
                     ["invariant", "status"])
    energy_tbl = text_table([(ENERGY_LABELS.get(k, k), readable(v, "J")) for k, v in
                             summary["energy_by_component_J"].items()],
                            ["spent on", "energy"])
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
<h2>Ops that take the time</h2>{table_html(top, left=("phase", "op", "bound"))}
{_system_html(resources, transfers)}
<h2>Invariants</h2>{table_html(inv, left=("invariant", "status"))}
<h2>Inputs (<code>xpusim rerun summary.json</code> reruns the resolved ones)</h2>
<pre>{html.escape(json.dumps(resolved, indent=2))}</pre>
</body></html>"""
