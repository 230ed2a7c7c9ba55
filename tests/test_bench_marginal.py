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


def test_output_parts_run_without_the_writer_thread():
    """``--output-parts`` writes ops.parquet in the caller's thread (``Background.inline``):
    it ends (the writer must not wait for codes the caller gives later), and the parts it
    times add up to at most the output's CPU."""
    import json
    import subprocess

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_run.py"),
                           "--repeat", "1", "--output-parts", "--cases", "7b-g256", "--json"],
                          capture_output=True, text=True, timeout=600, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(done.stdout)["runs"]
    parts = {k: v for k, v in row.items() if k.startswith("output_") and k.endswith("_s")
             and k not in ("output_s", "output_wall_s", "output_rest_s")}
    assert parts["output_parquet_s"] > 0
    assert sum(parts.values()) <= row["output_s"] * 1.05 + 0.01


def test_cold_runs_clear_the_module_memo_dicts():
    """Every memo dict ``clear_memo_caches`` names exists (a rename would leave a run warm),
    and a SN40L run after it asks the mapper again for every PCU share: as many new shares
    as a first run's."""
    import importlib

    from bench_run import MEMO_DICTS, clear_memo_caches

    import mappings.dataflow as md
    from arch import load_arch
    from sim.run import simulate
    from workloads.models import get_model
    from workloads.scenario import Scenario

    for module, attr in MEMO_DICTS:
        assert isinstance(getattr(importlib.import_module(module), attr), dict), (module, attr)
    args = (load_arch("sn40l"), get_model("llama2-7b"), Scenario(batch=8, prompt_len=64,
                                                                   gen_len=4))
    clear_memo_caches()
    simulate(*args)
    first = len(md._MAPPED)
    assert first > 0
    clear_memo_caches()
    assert not md._MAPPED and not md._BY_STAGE
    simulate(*args)
    assert len(md._MAPPED) == first
