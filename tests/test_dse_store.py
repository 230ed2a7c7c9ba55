"""The sweep loop and its store: one row per point, interruption and resume, workers, weights."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import yaml

from arch import SpecError
from dse import load_results, load_sweep, run_sweep, sweep_from_dict
from dse.evaluate import evaluate_point
from dse.store import STORE_FILE, Store

TINY = """
name: tiny
arch: h100
axes:
  gpu.sm_count: [66, 100, 132]
  memory.hbm.bandwidth: [1 TB/s, 2 TB/s, 3.35 TB/s]
  scenario.batch: [1, 8]
derived:
  gpu.tensor_flops.fp16: "989.4e12 * gpu.sm_count / 132"
  area_mm2: "814 * (0.45 + 0.55 * gpu.sm_count / 144)"
constraints: ["area_mm2 <= 760"]
workloads:
  - {model: gpt2-small, layers: 2, prompt_len: 32, gen_len: 3}
objectives: [{min: tpot_s}, {min: energy_per_token_J}]
fidelity: tile
"""


def tiny(tmp_path, **changes):
    data = {**yaml.safe_load(TINY), **changes}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_sweep(path)


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["eval_s"]).reset_index(drop=True)


class Stop(Exception):
    pass


def stop_after(n: int):
    def progress(done, total, evaluated, elapsed):
        if evaluated >= n:
            raise Stop
    return progress


def test_sweep_stores_one_row_per_point_with_params_and_metrics(tmp_path):
    spec = tiny(tmp_path)
    summary = run_sweep(spec, tmp_path / "out", report=False)
    df = load_results(tmp_path / "out")
    assert summary["n_points"] == len(df) == 18 and df["point_id"].is_unique
    assert {"gpu.sm_count", "memory.hbm.bandwidth", "scenario.batch", "area_mm2", "tpot_s",
            "energy_per_token_J", "power_W"} <= set(df.columns)
    bad = df[df["gpu.sm_count"] == 132]  # area 776 mm^2 breaks the 760 mm^2 bound
    assert (bad["status"] == "infeasible").all() and bad["reason"].str.contains("area").all()
    assert bad["tpot_s"].isna().all()  # pre-run constraint: never simulated
    ok = df[df["status"] == "ok"]
    assert len(ok) == 12 and (ok["tpot_s"] > 0).all()
    # more bandwidth never slows a memory-bound decode step down
    slow = ok[ok["memory.hbm.bandwidth"] == 1e12]["tpot_s"].to_numpy()
    fast = ok[ok["memory.hbm.bandwidth"] == 3.35e12]["tpot_s"].to_numpy()
    assert (fast < slow).all()
    csv = pd.read_csv(tmp_path / "out" / "results.csv", keep_default_na=False,
                      na_values=[""])
    assert len(csv) == 18 and list(csv.columns) == list(df.columns)
    if (tmp_path / "out" / "results.parquet").exists():
        assert len(pd.read_parquet(tmp_path / "out" / "results.parquet")) == 18


def test_interrupted_sweep_resumes_without_loss_or_duplicates(tmp_path):
    spec = tiny(tmp_path)
    with pytest.raises(Stop):
        run_sweep(spec, tmp_path / "cut", progress=stop_after(5), report=False)
    assert len(load_results(tmp_path / "cut")) == 5
    with pytest.raises(SpecError, match="holds a sweep already .5 points.; pass --resume"):
        run_sweep(spec, tmp_path / "cut", report=False)
    summary = run_sweep(spec, tmp_path / "cut", resume=True, report=False)
    assert (summary["resumed"], summary["evaluated"]) == (5, 13)
    run_sweep(spec, tmp_path / "whole", report=False)
    cut, whole = load_results(tmp_path / "cut"), load_results(tmp_path / "whole")
    pd.testing.assert_frame_equal(comparable(cut), comparable(whole))


def test_resume_refuses_a_different_sweep_and_a_second_writer(tmp_path):
    run_sweep(tiny(tmp_path), tmp_path / "out", report=False)
    with pytest.raises(SpecError, match=r"differs in: fidelity"):
        run_sweep(tiny(tmp_path, fidelity="roofline"), tmp_path / "out", resume=True,
                  report=False)
    held = Store.open(tmp_path / "out", tiny(tmp_path), resume=True)
    try:
        with pytest.raises(SpecError, match="another sweep is running"):
            Store.open(tmp_path / "out", tiny(tmp_path), resume=True)
    finally:
        held.close()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(SpecError, match="non-empty directory without a sweep store"):
        run_sweep(tiny(tmp_path), tmp_path / "junk", report=False)


def test_adding_axis_values_and_resuming_runs_only_the_new_points(tmp_path):
    run_sweep(tiny(tmp_path), tmp_path / "out", report=False)
    more = yaml.safe_load(TINY)["axes"] | {"scenario.batch": [1, 8, 16]}
    summary = run_sweep(tiny(tmp_path, axes=more), tmp_path / "out", resume=True, report=False)
    assert (summary["resumed"], summary["evaluated"], summary["n_points"]) == (18, 9, 27)


def test_two_workers_give_the_same_results_as_one(tmp_path):
    spec = tiny(tmp_path)
    run_sweep(spec, tmp_path / "one", workers=1, report=False)
    run_sweep(spec, tmp_path / "two", workers=2, report=False)
    pd.testing.assert_frame_equal(comparable(load_results(tmp_path / "one")),
                                  comparable(load_results(tmp_path / "two")))


def test_nsga2_replays_from_the_store_after_an_interruption(tmp_path):
    spec = tiny(tmp_path, strategy={"name": "nsga2", "population": 6, "generations": 3},
                axes={"gpu.sm_count": {"min": 40, "max": 132},
                      "memory.hbm.bandwidth": {"min": "1 TB/s", "max": "4 TB/s", "log": True},
                      "scenario.batch": [1, 8]})
    with pytest.raises(Stop):
        run_sweep(spec, tmp_path / "cut", progress=stop_after(8), report=False)
    run_sweep(spec, tmp_path / "cut", resume=True, report=False)
    run_sweep(spec, tmp_path / "whole", report=False)
    cut, whole = load_results(tmp_path / "cut"), load_results(tmp_path / "whole")
    assert 6 < len(whole) <= 18
    pd.testing.assert_frame_equal(comparable(cut), comparable(whole))


def test_weighted_workloads_combine_metrics(tmp_path):
    spec = tiny(tmp_path, workloads=[
        {"name": "short", "model": "gpt2-small", "layers": 1, "prompt_len": 16, "gen_len": 2},
        {"name": "long", "model": "gpt2-small", "layers": 1, "prompt_len": 256, "gen_len": 2,
         "weight": 3}],
        objectives=[{"min": "tpot_s"}, {"min": "long.ttft_s"}])
    rec = evaluate_point(spec, {"gpu.sm_count": 66, "memory.hbm.bandwidth": 2e12,
                                "scenario.batch": 1})
    m = rec["metrics"]
    assert rec["status"] == "ok"
    assert m["ttft_s"] == pytest.approx((m["short.ttft_s"] + 3 * m["long.ttft_s"]) / 4)
    assert m["long.ttft_s"] > m["short.ttft_s"]


def test_points_that_do_not_fit_or_break_the_arch_are_infeasible_not_errors(tmp_path):
    spec = sweep_from_dict({
        "arch": "h100", "axes": {"memory.hbm.capacity": ["80 GiB", "8 GiB"],
                                 "scenario.batch": [1, 8]},
        "derived": {"gpu.clock": "1.8e9 if scenario.batch < 4 else 0"},  # 0 Hz: invalid arch
        "workloads": [{"model": "llama2-7b", "layers": 32, "prompt_len": 16, "gen_len": 2}],
        "objectives": [{"min": "tpot_s"}], "fidelity": "roofline"})
    recs = {(c, b): evaluate_point(spec, {"memory.hbm.capacity": c, "scenario.batch": b})
            for c in (80 * 2**30, 8 * 2**30) for b in (1, 8)}
    assert recs[(80 * 2**30, 1)]["status"] == "ok"
    small = recs[(8 * 2**30, 1)]
    assert small["status"] == "infeasible" and "does not fit" in small["reason"]
    zero = recs[(80 * 2**30, 8)]
    assert zero["status"] == "infeasible" and "gpu.clock" in zero["reason"]


def test_model_axes_override_every_workload(tmp_path):
    spec = tiny(tmp_path, axes={"model.n_layers": [1, 2]}, derived=None, constraints=None)
    one, two = (evaluate_point(spec, {"model.n_layers": n}) for n in (1, 2))
    assert two["metrics"]["flops"] > one["metrics"]["flops"]
    assert dataclasses.replace(spec.workloads[0].model, n_layers=1).n_layers == 1


def test_store_file_is_sqlite_with_one_committed_row_per_point(tmp_path):
    import sqlite3

    run_sweep(tiny(tmp_path), tmp_path / "out", report=False)
    conn = sqlite3.connect(tmp_path / "out" / STORE_FILE)
    n, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT point_id) FROM points").fetchone()
    conn.close()
    assert n == distinct == 18


def test_spawned_workers_get_the_spec_by_pickle_and_agree(tmp_path):
    """Python 3.14 starts pool workers with forkserver: the spec must travel by pickle."""
    import pickle

    from dse.evaluate import evaluate_chunk
    from dse.executors import LocalExecutor

    spec = tiny(tmp_path)
    again = pickle.loads(pickle.dumps(spec))
    point = {"gpu.sm_count": 100, "memory.hbm.bandwidth": 2e12, "scenario.batch": 8}
    assert evaluate_point(again, point)["metrics"] == evaluate_point(spec, point)["metrics"]
    items = [(i, {**point, "scenario.batch": b}) for i, b in enumerate((1, 8))]
    ex = LocalExecutor(spec, workers=2, context="spawn")
    try:
        got = sorted(ex.run(items), key=lambda r: r["seq"])
    finally:
        ex.close()
    want = evaluate_chunk(spec, items)
    assert [r["metrics"] for r in got] == [r["metrics"] for r in want]


def test_a_sweep_where_no_point_runs_still_reports(tmp_path):
    """Every point infeasible before it runs (tensor parallelism on a one-GPU arch): the
    table has no metric column, and the report says there is no front instead of failing."""
    spec = tiny(tmp_path, axes={"scenario.tp": [2, 4]}, constraints=[], derived={})
    summary = run_sweep(spec, tmp_path / "out", report=True)
    df = load_results(tmp_path / "out")
    assert (df["status"] == "infeasible").all() and len(df) == 2
    assert df["reason"].str.contains("--tp").all()
    assert summary["pareto"] == [] and (tmp_path / "out" / "report.html").exists()
