"""benchmarks/bench_run.py's cost per generated token pairs only runs that differ in tokens."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_run import marginal_per_step  # noqa: E402


def _row(case: str, simulate: float) -> dict:
    return {"case": case, "simulate_s": simulate, "trace_s": 0.0, "engine_s": simulate,
            "tables_s": 0.0}


def test_marginal_cost_of_one_more_token():
    rows = [_row("7b-g256", 0.10), _row("7b-g512", 0.15)]
    (step,) = marginal_per_step(rows)
    assert step["from"] == "7b-g256" and step["to"] == "7b-g512"
    assert step["simulate_ms"] == pytest.approx(1e3 * 0.05 / 256)


def test_runs_with_other_policies_are_not_paired():
    # the 13B overlap run and the 13B run without overlap differ in more than tokens
    rows = [_row("13b-pp2mb4-ovl-g128", 0.4), _row("13b-tp2-pp2-mb4-g512", 1.2)]
    assert marginal_per_step(rows) == []
