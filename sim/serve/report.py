"""Files of a serving run, written all or nothing (:func:`sim.report.atomic.staged_directory`):

* ``summary.json`` — metrics, invariants, inputs;
* ``requests.parquet`` (or ``.csv``) — one row per request (:func:`metrics.request_table`);
* ``iterations.parquet`` (or ``.csv``) — one row per iteration of every replica;
* ``timeline.json`` — a Chrome/Perfetto trace: one process per replica, each iteration a
  slice (sequences, tokens, decode sequences in its args), counters of batch size, KV blocks
  in use and queue length;
* ``report.html`` — metrics with units, latency CDFs (TTFT, TBT, E2E) and time series of batch
  size, KV-cache use and queue length (matplotlib on an Agg canvas, as ``sim.report``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from sim.report.atomic import staged_directory
from sim.report.html import STYLE, _img, metrics_html, table_html
from sim.report.plots import _png, subplots
from sim.report.sampling import ops_format
from workloads.safe_json import strict_json_values

SERVE_FILES = ("summary.json", "requests.parquet", "iterations.parquet", "timeline.json",
               "report.html")
#: iterations drawn per replica in the timeline (evenly sampled above this)
TIMELINE_BUDGET = 50_000


def chrome_timeline(iters: pd.DataFrame, names: dict[int, str]) -> dict:
    """Perfetto/Chrome trace events of the iterations (times in microseconds)."""
    events: list[dict] = []
    for rep, df in iters.groupby("replica", sort=True):
        pid = int(rep)
        events.append({"ph": "M", "name": "process_name", "pid": pid,
                       "args": {"name": names.get(pid, f"replica{pid}")}})
        step = max(1, len(df) // TIMELINE_BUDGET)
        for row in df.iloc[::step].itertuples(index=False):
            ts = row.start_s * 1e6
            events.append({"ph": "X", "name": "iteration", "pid": pid, "tid": 0, "ts": ts,
                           "dur": (row.end_s - row.start_s) * 1e6,
                           "args": {"seqs": int(row.seqs), "tokens": int(row.tokens),
                                    "decode_seqs": int(row.decode_seqs),
                                    "preempted": int(row.preempted)}})
            events.append({"ph": "C", "name": "batch", "pid": pid, "ts": ts,
                           "args": {"seqs": int(row.seqs), "waiting": int(row.waiting),
                                    "kv_blocks": int(row.kv_blocks)}})
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def _cdf_png(table: pd.DataFrame, tbts: np.ndarray) -> bytes:
    fig, axes = subplots(1, 3, figsize=(12, 3.6))
    done = table[table["state"] == "done"]
    for ax, (name, vals) in zip(axes, (("TTFT", done["ttft_s"].to_numpy(float)),
                                       ("time between tokens", tbts),
                                       ("end-to-end latency", done["e2e_s"].to_numpy(float))),
                                strict=True):
        vals = np.sort(vals[np.isfinite(vals)])
        if len(vals):
            ax.plot(vals, np.arange(1, len(vals) + 1) / len(vals))
        ax.set_xlabel(f"{name} (s)")
        ax.set_ylabel("fraction of requests" if name != "time between tokens"
                      else "fraction of tokens")
        ax.grid(alpha=0.3)
    fig.suptitle("Latency CDFs")
    return _png(fig)


def _series_png(iters: pd.DataFrame, kv_capacity: dict[int, int]) -> bytes:
    fig, axes = subplots(3, 1, figsize=(10, 7.5), sharex=True)
    for rep, df in iters.groupby("replica", sort=True):
        step = max(1, len(df) // 5000)
        df = df.iloc[::step]
        t = df["end_s"].to_numpy()
        axes[0].plot(t, df["seqs"], lw=0.8, label=f"replica {rep}")
        axes[1].plot(t, df["kv_blocks"] / max(kv_capacity.get(int(rep), 1), 1), lw=0.8)
        axes[2].plot(t, df["waiting"], lw=0.8)
    axes[0].set_ylabel("batch (sequences)")
    axes[1].set_ylabel("KV cache in use")
    axes[2].set_ylabel("queue (requests)")
    axes[2].set_xlabel("time (s)")
    for ax in axes:
        ax.grid(alpha=0.3)
    if iters["replica"].nunique() <= 8:
        axes[0].legend(fontsize=7)
    return _png(fig)


def replica_table(sim, duration: float) -> pd.DataFrame:
    """One row per replica: role, busy fraction, iterations, KV capacity (blocks, and the
    layers a block holds: all of them, or one KV cache group's with windowed layers) and
    peak, energy."""
    return pd.DataFrame([{
        "replica": r.name, "role": r.role, "devices": r.model.devices,
        "busy_fraction": r.busy_s / duration if duration > 0 else 0.0,
        "iterations": len(r.log), "kv_blocks": r.kv.capacity,
        "kv_block_layers": r.layout.group_layers,
        "kv_peak_fraction": r.kv.peak / r.kv.capacity if r.kv.capacity else 0.0,
        "dynamic_energy_J": r.energy_J} for r in sim.replicas])


def report_html(summary: dict, cdf: bytes, series: bytes, files: list[str],
                replicas: pd.DataFrame | None = None) -> str:
    m = summary["metrics"]
    title = html.escape(f"xpusim serve: {summary['inputs'].get('model', '')} on "
                        f"{summary['inputs'].get('arch', '')}")
    inv = ", ".join(k for k, v in summary["invariants"].items() if v)
    links = " · ".join(f"<a href='{f}'>{f}</a>" for f in files)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{STYLE}</style></head><body><h1>{title}</h1>"
            f"<p>{m.get('requests_completed', 0)} of {m.get('requests', 0)} requests completed, "
            f"{m.get('requests_failed', 0)} failed; invariants checked: "
            f"<span class='ok'>{html.escape(inv)}</span></p><p>{links}</p>"
            f"<h2>Latency</h2>{_img(cdf, 'latency CDFs')}"
            f"<h2>Batch size, KV cache and queue over time</h2>{_img(series, 'time series')}"
            + (f"<h2>Replicas</h2>{table_html(replicas, left=('replica', 'role'))}"
               if replicas is not None and len(replicas) else "")
            + f"<h2>Metrics</h2>{metrics_html(m)}"
            f"<h2>Inputs</h2><pre>{html.escape(json.dumps(summary['inputs'], indent=1))}</pre>"
            "</body></html>")


def write_serve_report(result, out_dir: str | Path, table_as: str = "auto") -> list[Path]:
    """Write the serving report files of ``result`` (a :class:`sim.serve.ServeResult`)."""
    fmt = ops_format(table_as)
    ext = "parquet" if fmt == "parquet" else "csv"
    summary = {"metrics": result.metrics, "invariants": result.invariants,
               "inputs": result.inputs}
    names = {r.index: r.name for r in result.sim.replicas}
    caps = {r.index: r.kv.capacity for r in result.sim.replicas}
    files = ["summary.json", f"requests.{ext}", f"iterations.{ext}", "timeline.json",
             "report.html"]
    # (the tables of an earlier report in the other format are not kept beside these)
    owned = (*files, *(f"{t}.{e}" for t in ("requests", "iterations") for e in ("csv", "parquet")))
    with staged_directory(out_dir, owned) as stage:
        (stage / "summary.json").write_text(json.dumps(strict_json_values(summary), indent=1,
                                                       default=float, allow_nan=False))
        for name, df in (("requests", result.requests), ("iterations", result.iterations)):
            if ext == "parquet":
                df.to_parquet(stage / f"{name}.parquet", index=False)
            else:
                df.to_csv(stage / f"{name}.csv", index=False)
        (stage / "timeline.json").write_text(json.dumps(chrome_timeline(result.iterations,
                                                                        names)))
        cdf = _cdf_png(result.requests, result.sim.tbts())
        series = _series_png(result.iterations, caps) if len(result.iterations) else cdf
        reps = replica_table(result.sim, float(result.metrics.get("duration_s", 0.0)))
        (stage / "report.html").write_text(report_html(summary, cdf, series, files[:-1], reps))
    return [Path(out_dir) / f for f in files]
