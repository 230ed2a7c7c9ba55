"""Run reports: summary.json, ops.parquet / ops.csv, timeline.json, roofline.svg, energy.svg,
breakdown.svg, timeline.svg, report.html.

``write_run_report`` is imported on first use: the light helpers of this package
(:mod:`sim.report.atomic`, :mod:`sim.report.units`) load without pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.report.writer import write_run_report

__all__ = ["write_run_report"]


def __getattr__(name: str):
    if name == "write_run_report":
        from sim.report.writer import write_run_report

        return write_run_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
