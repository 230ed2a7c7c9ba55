"""Write every file of a run report into a directory, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

from sim.report.atomic import staged_directory
from sim.report.html import run_report_html
from sim.report.plots import energy_png, roofline_png
from sim.report.timeline import chrome_trace
from sim.result import Result

RUN_FILES = ("summary.json", "ops.csv", "timeline.json", "roofline.png", "energy.png",
             "report.html")


def write_run_report(result: Result, out_dir: str | Path) -> list[Path]:
    """Write the run report files into ``out_dir``; return their paths."""
    summary = result.summary()
    inputs = result.inputs
    title = f"{inputs['model']} on {inputs['arch']}"
    roof = roofline_png(result.ops, result.device_info.get("peak_bandwidth_Bps", 1.0),
                        result.device_info.get("roofs", {}), title)
    energy = energy_png(result.ops, result.energy_by_component.get("static", 0.0), title)
    files = list(RUN_FILES) + (["transfers.csv"] if len(result.transfers) else []) + \
        (["resources.csv"] if len(result.resources) else [])
    page = run_report_html(summary, result.ops, roof, energy, files, result.resources,
                           result.transfers)
    with staged_directory(out_dir) as stage:
        (stage / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        result.ops.to_csv(stage / "ops.csv", index=False, float_format="%.9g")
        (stage / "timeline.json").write_text(chrome_trace(result.ops, title, result.transfers,
                                                          result.op_links))
        if len(result.transfers):
            result.transfers.to_csv(stage / "transfers.csv", index=False, float_format="%.9g")
        if len(result.resources):
            result.resources.to_csv(stage / "resources.csv", index=False, float_format="%.9g")
        (stage / "roofline.png").write_bytes(roof)
        (stage / "energy.png").write_bytes(energy)
        (stage / "report.html").write_text(page, encoding="utf-8")
    return [Path(out_dir) / f for f in files]
