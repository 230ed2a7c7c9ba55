"""Long runs write small outputs: ops as parquet (CSV on request), a sampled timeline above
200k ops, whole-run totals in the summary (issue 16, item 5)."""

import io
import json

import pandas as pd
import pytest

from arch import load_arch
from sim.report import write_run_report
from sim.report.sampling import decode_stride, sample_ops, timeline_mode
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario


@pytest.fixture(scope="module")
def result():
    return simulate(load_arch("h100"), get_model("gpt2-small"),
                    Scenario(batch=2, prompt_len=32, gen_len=41))


def _toy(prefill: int, steps: int, per_step: int) -> pd.DataFrame:
    rows = [("prefill", 0)] * prefill + [("decode", s) for s in range(1, steps + 1)
                                         for _ in range(per_step)]
    return pd.DataFrame(rows, columns=["phase", "step"])


def test_stride_keeps_about_the_budget():
    ops = _toy(prefill=400, steps=2047, per_step=419)  # the --gen 2048 Llama-2-7B run's shape
    every = decode_stride(ops, budget=40_000)
    kept = sample_ops(ops, every)
    # room for (40,000 - 400) / 419 = 94.5 steps of 2,047: one in ceil(2047 / 94.5) = 22
    assert every == 22
    assert (kept["phase"] == "prefill").sum() == 400
    assert len(kept) <= 40_000 + 419 and set(kept["step"]) >= {1, 23, 2047}
    assert decode_stride(_toy(10, 5, 3), budget=40_000) == 1


def test_default_mode_samples_above_200k_ops():
    assert timeline_mode("auto", 200_000) == "full"
    assert timeline_mode("auto", 200_001) == "sampled"
    assert timeline_mode("none", 10) == "none"


def test_sampled_timeline_and_full_ops(result, tmp_path, monkeypatch):
    monkeypatch.setattr("sim.report.sampling.SAMPLED_OPS", 600)
    pytest.importorskip("pyarrow")
    out = tmp_path / "rep"
    write_run_report(result, out, ops_as="parquet", timeline="sampled")
    ops = pd.read_parquet(out / "ops.parquet")
    pd.testing.assert_frame_equal(ops, result.ops.reset_index(drop=True))
    summary = json.loads((out / "summary.json").read_text())
    every = summary["outputs"]["timeline_decode_step_every"]
    assert every > 1 and summary["metrics"]["ops"] == len(result.ops)  # whole-run totals
    events = [e for e in json.loads((out / "timeline.json").read_text())["traceEvents"]
              if e["ph"] == "X"]
    steps = {e["args"]["step"] for e in events if e["args"]["phase"] == "decode"}
    assert steps == set(range(1, 41, every)) | {40}
    n_prefill = int((result.ops["phase"] == "prefill").sum())
    assert sum(e["args"]["phase"] == "prefill" for e in events) == n_prefill


def test_csv_on_request_and_no_timeline(result, tmp_path):
    out = tmp_path / "rep"
    write_run_report(result, out, ops_as="csv", timeline="none")
    names = {p.name for p in out.iterdir()}
    assert "ops.csv" in names and "ops.parquet" not in names and "timeline.json" not in names
    want = result.ops.to_csv(index=False, float_format="%.9g")
    assert (out / "ops.csv").read_text() == want   # DataFrame.to_csv's bytes, without pandas
    from sim.report.tables import write_csv

    blocks = io.StringIO()   # blocks that split the decode steps anywhere
    assert write_csv(result.columns("ops"), blocks, rows=97) and blocks.getvalue() == want
