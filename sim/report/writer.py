"""Write every file of a run report into a directory, all or nothing.

The ops table is ``ops.parquet`` when pyarrow is importable (``ops.csv`` otherwise or on
request); the Perfetto timeline is full, sampled (long runs, see :mod:`sim.report.sampling`)
or left out.
"""

from __future__ import annotations

import json
from pathlib import Path

from sim.report.atomic import staged_directory
from sim.report.html import run_report_html
from sim.report.plots import (
    breakdown_png,
    energy_png,
    roofline_png,
    roofline_points,
    timeline_png,
)
from sim.report.roofs import bandwidth_roofs
from sim.report.sampling import decode_stride, ops_format, sample_ops, sample_transfers
from sim.report.sampling import timeline_mode as _timeline_mode
from sim.report.timeline import chrome_trace
from sim.report.utilisation import bound_shares, mfu, utilisation_table
from sim.result import Result

RUN_FILES = ("summary.json", "ops.parquet", "timeline.json", "roofline.png", "energy.png",
             "report.html")  # ops.csv without pyarrow or with ops_as="csv"

#: what every summing view of the report reads (plots, utilisation, bounds, the top ops)
SUMMED_KEYS = ("phase", "op", "op_class", "layer", "bound")
SUMMED_VALUES = ("latency_s", "energy_J", "energy_compute_J", "energy_memory_J",
                 "energy_link_J", "flops", "bytes", "dram_bytes")


def summed_ops(ops):
    """``ops`` reduced to one row per distinct :data:`SUMMED_KEYS`, the values summed and
    ``n`` the ops each row stands for: all that the report's bar charts, utilisation, bounds
    and top-ops table need (a 2,048-token run's 860k ops become a few thousand rows)."""
    grouped = ops.groupby(list(SUMMED_KEYS), sort=False, observed=True)
    out = grouped[list(SUMMED_VALUES)].sum()
    out["n"] = grouped.size()
    return out.reset_index()


def _write_parquet(ops, path: Path) -> None:
    """Zstandard parquet; float columns byte-stream-split, not dictionary-encoded (times and
    energies are nearly all distinct: ~7 MB instead of 15 MB for 860k ops); the running op id
    delta-encoded (a few bytes instead of 1-3 MB)."""
    floats = [c for c in ops.columns if ops[c].dtype.kind == "f"]
    delta = [c for c in ("id",) if c in ops.columns and ops[c].dtype.kind in "iu"]
    others = [c for c in ops.columns if c not in floats and c not in delta]
    encoding = {**{c: "BYTE_STREAM_SPLIT" for c in floats},
                **{c: "DELTA_BINARY_PACKED" for c in delta}}
    ops.to_parquet(path, index=False, compression="zstd", use_dictionary=others,
                   column_encoding=encoding)


def write_run_report(result: Result, out_dir: str | Path, ops_as: str = "auto",
                     timeline: str = "auto") -> list[Path]:
    """Write the run report files into ``out_dir``; return their paths.

    ``ops_as``: ``auto`` (parquet when pyarrow is importable), ``parquet`` or ``csv``;
    ``timeline``: ``auto`` (sampled above 200k ops), ``full``, ``sampled`` or ``none``."""
    summary = result.summary()
    inputs = result.inputs
    title = f"{inputs['model']} on {inputs['arch']}"
    fmt = ops_format(ops_as)
    mode = _timeline_mode(timeline, len(result.ops))
    every = decode_stride(result.ops) if mode == "sampled" else 1
    summary["outputs"] = {"ops_format": fmt, "timeline": mode, "timeline_decode_step_every":
                          every, "ops": len(result.ops)}
    # plots and tables read pre-aggregated rows, never a copy of a long run's table
    summed = summed_ops(result.ops)
    roof = roofline_png(roofline_points(result.ops), bandwidth_roofs(result),
                        result.device_info.get("roofs", {}), title)
    energy = energy_png(summed, result.energy_by_component.get("static", 0.0), title)
    images = {"breakdown": breakdown_png(summed, title),
              "timeline": timeline_png(result.ops, title, result.transfers, result.op_links)}
    util = utilisation_table(summary, summed, result.resources)
    summary["utilisation"] = {"mfu": mfu(summary, summed),
                              "rows": util.to_dict(orient="records")}
    ops_file = f"ops.{fmt}"
    files = ["summary.json", ops_file] + (["timeline.json"] if mode != "none" else []) + \
        ["roofline.png", "energy.png", "report.html"] + \
        (["transfers.csv"] if len(result.transfers) else []) + \
        (["resources.csv"] if len(result.resources) else [])
    shown = {**summary, "metrics": {**summary["metrics"], "mfu": summary["utilisation"]["mfu"]}}
    page = run_report_html(shown, summed, roof, energy, files, result.resources,
                           result.transfers, images, util, bound_shares(summed))
    with staged_directory(out_dir) as stage:
        (stage / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        if fmt == "parquet":
            _write_parquet(result.ops, stage / ops_file)
        else:
            result.ops.to_csv(stage / ops_file, index=False, float_format="%.9g")
        if mode != "none":
            ops = sample_ops(result.ops, every)
            transfers = sample_transfers(result.transfers, set(ops["step"].unique()), every)
            note = "" if every == 1 else f" (sampled: one decode step in {every})"
            (stage / "timeline.json").write_text(chrome_trace(ops, title + note, transfers,
                                                              result.op_links))
        if len(result.transfers):
            result.transfers.to_csv(stage / "transfers.csv", index=False, float_format="%.9g")
        if len(result.resources):
            result.resources.to_csv(stage / "resources.csv", index=False, float_format="%.9g")
        (stage / "roofline.png").write_bytes(roof)
        (stage / "energy.png").write_bytes(energy)
        (stage / "report.html").write_text(page, encoding="utf-8")
    return [Path(out_dir) / f for f in files]
