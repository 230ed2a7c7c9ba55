"""Write every file of a run report into a directory, all or nothing.

The ops table is ``ops.parquet`` when pyarrow is importable (``ops.csv`` otherwise or on
request); the Perfetto timeline is full, sampled (long runs, see :mod:`sim.report.sampling`)
or left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sim.report.atomic import staged_directory
from sim.report.figures import breakdown_svg, energy_svg, roofline_svg, timeline_svg
from sim.report.html import run_report_html
from sim.report.rollups import SUMMED_KEYS, SUMMED_VALUES, decode_step, rollups, summed_ops
from sim.report.roofs import bandwidth_roofs
from sim.report.sampling import decode_stride, ops_format, sample_ops, sample_transfers
from sim.report.sampling import timeline_mode as _timeline_mode
from sim.report.timeline import chrome_trace
from sim.report.utilisation import bound_shares, mfu, utilisation_table
from sim.result import Result

RUN_FILES = ("summary.json", "ops.parquet", "timeline.json", "roofline.svg", "energy.svg",
             "breakdown.svg", "timeline.svg", "report.html")
# ops.csv without pyarrow or with ops_as="csv"; timeline.svg only with a decode step

__all__ = ["RUN_FILES", "SUMMED_KEYS", "SUMMED_VALUES", "summed_ops", "write_run_report"]


def _write_parquet(ops, path: Path, factorised: dict | None = None) -> None:
    """Zstandard parquet; float columns byte-stream-split, not dictionary-encoded (times and
    energies are nearly all distinct: ~7 MB instead of 15 MB for 860k ops); the running op id
    delta-encoded (a few bytes instead of 1-3 MB); data pages of format 2.0 (read by pyarrow,
    DuckDB, polars and Spark 3; ~25% less CPU to write than 1.0 pages, the same size);
    min/max statistics for the numeric columns (step, layer, times: what a reader filters
    row groups on), not the strings' (~20% of the writing CPU).

    ``factorised``: ``column -> (codes, distinct values)`` already computed (by
    :func:`sim.report.rollups.rollups`): those string columns are handed to the writer as
    dictionary arrays, so it does not hash their values again (the same pages; the file
    keeps no Arrow schema, so they read back as the strings they were)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    floats = [c for c in ops.columns if ops[c].dtype.kind == "f"]
    delta = [c for c in ("id",) if c in ops.columns and ops[c].dtype.kind in "iu"]
    others = [c for c in ops.columns if c not in floats and c not in delta]
    encoding = {**{c: "BYTE_STREAM_SPLIT" for c in floats},
                **{c: "DELTA_BINARY_PACKED" for c in delta}}
    table = pa.Table.from_pandas(ops, preserve_index=False, nthreads=1)   # no pool to wait on
    recoded = False
    for name, (c, uniques) in (factorised or {}).items():
        i = table.schema.get_field_index(name)
        kind = table.schema.field(i).type if i >= 0 else None
        if kind is None or not (pa.types.is_string(kind) or pa.types.is_large_string(kind)) \
                or pd.isna(uniques).any():   # a null in the dictionary: hashed as usual
            continue
        values = pa.array(np.asarray(uniques, dtype=object), type=kind)
        table = table.set_column(i, name, pa.DictionaryArray.from_arrays(
            pa.array(c), values))
        recoded = True
    numeric = [c for c in ops.columns if ops[c].dtype.kind in "iuf"]
    pq.write_table(table, path, compression="zstd", use_dictionary=others,
                   column_encoding=encoding, data_page_version="2.0",
                   store_schema=not recoded, write_statistics=numeric)


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
    # plots and tables read pre-aggregated rows, never a copy of a long run's table
    roll = rollups(result.ops)
    every = decode_stride(result.ops, decode=roll.decode) if mode == "sampled" else 1
    summary["outputs"] = {"ops_format": fmt, "timeline": mode, "timeline_decode_step_every":
                          every, "ops": len(result.ops)}
    summed = roll.summed
    figures = {"roofline": roofline_svg(roll.points, bandwidth_roofs(result),
                                        result.device_info.get("roofs", {}), title),
               "energy": energy_svg(summed, result.energy_by_component.get("static", 0.0),
                                    title),
               "breakdown": breakdown_svg(summed, title)}
    step = decode_step(roll.decode_steps)
    if step is not None:
        ops = result.ops
        rows = np.flatnonzero((ops["step"].to_numpy() == step) & roll.decode)
        figures["timeline"] = timeline_svg(ops.iloc[rows], step, title, result.transfers,
                                           result.op_links)
    util = utilisation_table(summary, summed, result.resources)
    summary["utilisation"] = {"mfu": mfu(summary, summed),
                              "rows": util.to_dict(orient="records")}
    ops_file = f"ops.{fmt}"
    files = ["summary.json", ops_file] + (["timeline.json"] if mode != "none" else []) + \
        [f"{name}.svg" for name in figures] + ["report.html"] + \
        (["transfers.csv"] if len(result.transfers) else []) + \
        (["resources.csv"] if len(result.resources) else [])
    shown = {**summary, "metrics": {**summary["metrics"], "mfu": summary["utilisation"]["mfu"]}}
    page = run_report_html(shown, summed, figures, files, result.resources, result.transfers,
                           util, bound_shares(summed))
    with staged_directory(out_dir) as stage:
        (stage / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        if fmt == "parquet":
            _write_parquet(result.ops, stage / ops_file, roll.factorised)
        else:
            result.ops.to_csv(stage / ops_file, index=False, float_format="%.9g")
        if mode != "none":
            ops = sample_ops(result.ops, every, roll.decode)
            transfers = sample_transfers(result.transfers, set(ops["step"].unique()), every)
            note = "" if every == 1 else f" (sampled: one decode step in {every})"
            (stage / "timeline.json").write_text(chrome_trace(ops, title + note, transfers,
                                                              result.op_links))
        if len(result.transfers):
            result.transfers.to_csv(stage / "transfers.csv", index=False, float_format="%.9g")
        if len(result.resources):
            result.resources.to_csv(stage / "resources.csv", index=False, float_format="%.9g")
        for name, text in figures.items():
            (stage / f"{name}.svg").write_text(text, encoding="utf-8")
        (stage / "report.html").write_text(page, encoding="utf-8")
    return [Path(out_dir) / f for f in files]
