"""Report writing at scale: plots and tables read pre-aggregated rows (same figures as the whole
op table), without copying a long run's table, and the trace JSON is unchanged by caching."""

from __future__ import annotations

import tracemalloc
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arch import load_arch
from sim.report import timeline as timeline_mod
from sim.report.html import top_ops
from sim.report.plots import _power_of_ten
from sim.report.rollups import intensity_points as _intensity_points
from sim.report.rollups import rollups, roofline_points
from sim.report.units import METRICS
from sim.report.writer import SUMMED_VALUES, summed_ops
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario


@pytest.fixture(scope="module")
def result():
    return simulate(load_arch("h100"), get_model("llama2-7b"),
                    Scenario(batch=8, prompt_len=512, gen_len=24))


def _table(rows):
    cols = ["op", "op_class", "phase", "flops", "bytes", "shards", "latency_s"]
    return pd.DataFrame(rows, columns=cols)


def test_roofline_points_count_by_hand():
    # A decode op at one shape: three ops of 1 s, one of 2 s; an op without FLOPs is no point
    ops = _table([("a", "gemm", "decode", 10.0, 5.0, 1, 1.0)] * 3
                 + [("a", "gemm", "decode", 10.0, 5.0, 1, 2.0),
                    ("b", "memory", "decode", 0.0, 8.0, 1, 1.0),
                    ("a", "gemm", "prefill", 40.0, 5.0, 1, 1.0)])
    pts = roofline_points(ops).set_index(["phase", "latency_s"])
    assert pts["n"].to_dict() == {("decode", 1.0): 3, ("decode", 2.0): 1, ("prefill", 1.0): 1}
    got = _intensity_points(roofline_points(ops)).set_index(["phase", "latency_s"])
    assert got.loc[("decode", 1.0), "total_s"] == 3 * 1.0 + 2.0    # the shape's summed time
    assert got.loc[("decode", 2.0), "achieved"] == 10.0 / 2.0
    assert got.loc[("prefill", 1.0), "intensity"] == 40.0 / 5.0


def test_points_from_rows_match_the_whole_table(result):
    ops = result.ops
    # the whole-table computation the report used before (every op, then duplicates dropped)
    df = ops[(ops["flops"] > 0) & (ops["bytes"] > 0) & (ops["latency_s"] > 0)]
    total = df.groupby(["op", "phase", "flops", "bytes"])["latency_s"].transform("sum")
    want = df.assign(achieved=df["flops"] / df["shards"] / df["latency_s"], total_s=total) \
        .drop_duplicates(["op", "phase", "flops", "bytes", "latency_s"])
    got = _intensity_points(roofline_points(ops))
    key = ["op", "phase", "flops", "bytes", "latency_s"]
    want, got = want.sort_values(key).reset_index(drop=True), got.sort_values(key) \
        .reset_index(drop=True)
    assert len(got) == len(want) > 50
    assert (got[key].to_numpy() == want[key].to_numpy()).all()
    assert (got["achieved"].to_numpy() == want["achieved"].to_numpy()).all()
    np.testing.assert_allclose(got["total_s"], want["total_s"], rtol=1e-12)


def test_summed_rows_keep_every_total(result):
    ops = result.ops
    rows = summed_ops(ops)
    assert len(rows) < len(ops) / 10 and int(rows["n"].sum()) == len(ops)
    for col in SUMMED_VALUES:
        assert rows[col].sum() == pytest.approx(float(ops[col].sum()), rel=1e-12)
    # per layer and phase, as the breakdown plot sums them
    a = rows.groupby(["layer", "phase"])["latency_s"].sum()
    b = ops.groupby(["layer", "phase"])["latency_s"].sum()
    np.testing.assert_allclose(a.sort_index(), b.sort_index(), rtol=1e-12)


def test_top_ops_from_rows_match_the_whole_table(result):
    ops = result.ops
    want = ops.groupby(["phase", "op"]).agg(
        count=("id", "size"), time_s=("latency_s", "sum"),
        bound=("bound", lambda s: s.value_counts().index[0]))
    got = top_ops(summed_ops(ops)).set_index(["phase", "op"]).loc[want.index]
    assert (got["count"] == want["count"]).all()
    assert (got["bound"] == want["bound"]).all()
    np.testing.assert_allclose(got["time_s"], want["time_s"], rtol=1e-12)
    assert list(top_ops(ops).columns) == list(top_ops(summed_ops(ops)).columns)


def test_rollups_do_not_copy_the_table(result):
    """Integer codes and hashes of the key columns, never a copy of the table: ~60-70 bytes
    per op at the peak (measured 0.26-0.33 of the table's ~220 bytes per op at 10k-860k
    ops); a copy of the key columns alone would be over half of it."""
    ops = result.ops
    size = int(ops.memory_usage(deep=True).sum())
    rollups(ops)   # warm: first-call allocations of pandas/numpy internals
    tracemalloc.start()
    rollups(ops)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.4 * size


def test_rollups_equal_pandas_groupby(result, rollups_match_pandas):
    """The summed rows and points are ``groupby(sort=False)`` of the table: same groups in
    the same order (first appearance), same sums and counts."""
    rollups_match_pandas(rollups(result.ops), result.ops)


def test_hash_collision_falls_back_to_exact_groups(monkeypatch):
    """Rows whose 64-bit hashes collide are still told apart (the verification pass)."""
    from sim.report import rollups as mod

    real = mod._groups
    monkeypatch.setattr(mod, "_groups", lambda key, card=None: real(
        key if key.dtype != np.uint64 else np.zeros_like(key), card))   # every hash equal
    ops = _table([("a", "gemm", "decode", 10.0, 5.0, 1, 1.0),
                  ("a", "gemm", "decode", 20.0, 5.0, 1, 1.0),
                  ("a", "gemm", "decode", 10.0, 5.0, 1, 1.0)])
    pts = mod.roofline_points(ops)
    assert pts["flops"].tolist() == [10.0, 20.0] and pts["n"].tolist() == [2, 1]


def test_decade_labels_without_mathtext():
    assert _power_of_ten(1e3) == "10\u00b3"
    assert _power_of_ten(1e15) == "10\u00b9\u2075"
    assert _power_of_ten(0.1) == "10\u207b\u00b9"
    assert _power_of_ten(2e3) == "" and _power_of_ten(0.0) == ""


def test_trace_json_unchanged_by_cached_formatting(result):
    args = (result.ops, "t", result.transfers, result.op_links)
    cached = timeline_mod.chrome_trace(*args)
    real = timeline_mod.functools
    try:   # every formatter uncached: each value formatted afresh
        timeline_mod.functools = types.SimpleNamespace(lru_cache=lambda maxsize=None: (
            lambda f: f))
        plain = timeline_mod.chrome_trace(*args)
    finally:
        timeline_mod.functools = real
    assert cached == plain


def test_metric_labels_name_tasks_and_engine_events():
    assert METRICS["events"][0].startswith("tasks")
    assert METRICS["engine_events"][0] == "engine events"


def test_progress_estimate_tracks_measured_cpu(monkeypatch):
    """The ETA's per-op constant against a fresh measurement (the old 25 us/op was 10x off),
    on this host's speed of the moment: the estimate scaled by bare SimPy's rate measured
    right after the run against the rate the constant was fitted at (the host's rate swings
    ~2.5x within minutes, more than the 3x this allows on top of the fit)."""
    import time

    from xpusim.commands._record import SIMPY_RATE_AT_FIT, estimate_run_s

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_run import bare_simpy_events_per_s

    model, scenario = get_model("llama2-7b"), Scenario(batch=8, prompt_len=512, gen_len=256)
    arch = load_arch("h100")
    simulate(arch, model, Scenario(batch=8, prompt_len=512, gen_len=8))   # warm caches
    t = time.process_time()
    simulate(arch, model, scenario)
    measured = time.process_time() - t
    expected = estimate_run_s(model, scenario) * SIMPY_RATE_AT_FIT / \
        bare_simpy_events_per_s()
    assert 1 / 3 < measured / expected < 3


def test_parquet_round_trips_the_op_table(result, tmp_path):
    import pyarrow.parquet as pq

    from sim.report.writer import _write_parquet

    ops = result.ops.copy()
    ops.loc[ops.index[3], "bound"] = None   # a missing value survives the recoding too
    for name, codes in (("plain", None), ("recoded", rollups(ops).factorised)):
        path = tmp_path / f"{name}.parquet"
        _write_parquet(ops, path, codes)
        back = pd.read_parquet(path)
        assert back.equals(ops) and list(back.dtypes) == list(ops.dtypes), name
    assert {"op", "op_class", "phase", "bound"} <= set(rollups(ops).factorised)
    # the same pages: dictionary-encoded strings either way, the same values per row group
    plain, recoded = pq.ParquetFile(tmp_path / "plain.parquet"), \
        pq.ParquetFile(tmp_path / "recoded.parquet")
    col = plain.schema_arrow.get_field_index("op")
    assert "RLE_DICTIONARY" in plain.metadata.row_group(0).column(col).encodings
    assert recoded.metadata.row_group(0).column(col).encodings == \
        plain.metadata.row_group(0).column(col).encodings
    rg = recoded.metadata.row_group(0)   # min/max kept where readers filter: numbers
    step = rg.column(recoded.schema_arrow.get_field_index("step")).statistics
    assert step.has_min_max and (step.min, step.max) == (ops["step"].min(), ops["step"].max())
    op_stats = rg.column(col).statistics
    assert op_stats is None or not op_stats.has_min_max


def test_parquet_layout_per_column(result, tmp_path):
    """Statistics only on the columns in running order, Zstandard only on the op times, the
    one dictionary-encoded integer column ``shards`` (see ``sim.report.writer``)."""
    import pyarrow.parquet as pq

    from sim.report.writer import _write_parquet

    _write_parquet(result.ops, tmp_path / "ops.parquet")
    meta = pq.ParquetFile(tmp_path / "ops.parquet").metadata
    chunks = {meta.row_group(0).column(j).path_in_schema: meta.row_group(0).column(j)
              for j in range(meta.num_columns)}
    with_stats = {c for c, chunk in chunks.items()
                  if chunk.statistics is not None and chunk.statistics.has_min_max}
    assert with_stats == {"id", "step", "start_s", "end_s"}
    assert {c for c, chunk in chunks.items() if chunk.compression == "ZSTD"} == \
        {"start_s", "end_s"}
    assert {chunk.compression for c, chunk in chunks.items()
            if c not in ("start_s", "end_s")} == {"LZ4"}   # pyarrow names LZ4_RAW so
    assert "RLE_DICTIONARY" in chunks["shards"].encodings
    assert "RLE_DICTIONARY" not in chunks["layer"].encodings
    assert chunks["start_s"].encodings[-1] == "BYTE_STREAM_SPLIT"
    assert chunks["energy_J"].encodings[-1] == "PLAIN"       # per kind: LZ4 finds the repeats
