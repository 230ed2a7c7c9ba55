"""Run reports: summary.json, ops.csv, timeline.json, roofline.png, energy.png, report.html."""

from sim.report.writer import write_run_report

__all__ = ["write_run_report"]
