"""The run report written from the run's numpy columns is the report of its DataFrame
(issue 18, item 5).

``write_run_report`` reads the op table as the run gave it (:class:`sim.columns.Columns`):
the rollups take the text columns' codes instead of hashing strings, ``ops.parquet`` is
written from the arrays (dictionary arrays for text) and only the rows a sampled timeline or
the decode-step figure show become a DataFrame. Each check below compares that path with
the DataFrame it stands for, computed independently (pandas ``groupby``, ``iloc``,
``Table.from_pandas``, ``json.dumps`` per event, the report of the same run given as a
DataFrame).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from arch import load_arch
from sim.columns import Columns, Text
from sim.report import write_run_report
from sim.report.rollups import SUMMED_VALUES, rollups, text_codes
from sim.report.timeline import chrome_trace
from sim.result import Result
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def run():
    return simulate(load_arch("h100"), get_model("gpt2-small"),
                    Scenario(batch=2, prompt_len=32, gen_len=41))


def _fresh(res: Result) -> Result:
    """The same run with its op table as columns whose DataFrame is not built yet."""
    table = res.columns("ops")
    assert isinstance(table, Columns)
    cols = Columns(table._data, table.order, table.n, copy=False)
    return Result(cols, res.metrics, res.invariants, res.inputs, res.energy_by_component,
                  res.device_info, res.columns("transfers"), res.columns("resources"),
                  res.op_links)


def _as_frame(res: Result) -> Result:
    """The same run with its op table given as a DataFrame (the plain path)."""
    return Result(res.ops.copy(), res.metrics, res.invariants, res.inputs,
                  res.energy_by_component, res.device_info, res.columns("transfers"),
                  res.columns("resources"), res.op_links)


def test_take_is_iloc(run):
    cols = _fresh(run).columns("ops")
    frame = run.ops
    for rows in (np.array([5, 0, 17, len(frame) - 1]), np.arange(0, len(frame), 7),
                 np.zeros(0, dtype=np.int64)):
        got = cols.take(rows)
        pd.testing.assert_frame_equal(got, frame.iloc[rows], check_exact=True)
        assert list(got.dtypes) == list(frame.dtypes)
    assert cols._frame is None   # taking rows did not build the whole frame


def test_rollups_of_columns_equal_pandas_groupby(run, rollups_match_pandas):
    """Summed rows and points from the codes are ``groupby(sort=False)`` of the DataFrame:
    the same groups in the same order, sums, counts and key dtypes; the decode rows and
    steps are the DataFrame's."""
    ops = run.ops
    roll = rollups(_fresh(run).columns("ops"))
    rollups_match_pandas(roll, ops)
    assert roll.decode.tolist() == (ops["phase"] == "decode").tolist()
    # and exactly what the DataFrame path gives, dtypes included
    plain = rollups(ops)
    pd.testing.assert_frame_equal(roll.summed, plain.summed, check_exact=True)
    pd.testing.assert_frame_equal(roll.points, plain.points, check_exact=True)


def _hand_table() -> Columns:
    """Six ops whose name, class and bound share one code array over four slots: slots 0 and
    2 both say ("a", "gemm", "compute"), slot 3 is never used, slot 1 is ("b", "norm",
    "memory"); phases and layers as listed."""
    slots = np.array([0, 2, 1, 0, 2, 1], dtype=np.int32)
    phase = Text(["prefill", "decode"], np.array([0, 0, 0, 1, 1, 1], dtype=np.int8))
    names, classes = ["a", "b", "a", "zz"], ["gemm", "norm", "gemm", "zz"]
    bounds = ["compute", "memory", "compute", "zz"]
    data = {"op": Text(names, slots), "op_class": Text(classes, slots), "phase": phase,
            "layer": np.array([0, 0, 0, 0, 1, 0], dtype=np.int32),
            "bound": Text(bounds, slots), "step": np.array([0, 0, 0, 1, 1, 1], dtype=np.int32),
            "shards": np.ones(6, dtype=np.int32),
            "flops": np.array([10.0, 10.0, 0.0, 10.0, 10.0, 0.0]),
            "bytes": np.array([4.0, 4.0, 8.0, 4.0, 4.0, 8.0]),
            "latency_s": np.array([1.0, 1.0, 2.0, 3.0, 3.0, 4.0])}
    for v in SUMMED_VALUES:
        data.setdefault(v, np.arange(1.0, 7.0))
    return Columns(data, list(data), 6)


def test_shared_code_slots_with_equal_labels_count_by_hand():
    """Slots with equal labels are one group; groups in order of first appearance."""
    roll = rollups(_hand_table())
    rows = roll.summed[["phase", "op", "layer", "n", "energy_J"]].values.tolist()
    # prefill a (rows 0, 1), prefill b (2), decode a layer 0 (3), decode a layer 1 (4),
    # decode b (5); energy_J of row i is i + 1
    assert rows == [["prefill", "a", 0, 2, 3.0], ["prefill", "b", 0, 1, 3.0],
                    ["decode", "a", 0, 1, 4.0], ["decode", "a", 1, 1, 5.0],
                    ["decode", "b", 0, 1, 6.0]]
    pts = roll.points[["phase", "op", "latency_s", "n"]].values.tolist()
    assert pts == [["prefill", "a", 1.0, 2], ["decode", "a", 3.0, 2]]   # no FLOPs: no point
    codes, labels = text_codes(_hand_table().text("op"))
    assert labels.tolist() == ["a", "b"] and codes.tolist() == [0, 0, 1, 0, 0, 1]
    assert roll.decode_steps.tolist() == [1]


def test_columns_without_shared_codes_equal_their_dataframe(run):
    """Text columns each with its own codes (``Text.of`` a list) and a plain array column:
    the generic keys and the hashed points give the DataFrame's rollups."""
    frame = run.ops
    data = {k: (Text.of(frame[k].astype(object).tolist()) if frame[k].dtype.kind not in "iuf"
                else frame[k].to_numpy()) for k in frame.columns}
    data["bound"] = frame["bound"].to_numpy(dtype=object)   # not a Text: factorised
    cols = Columns(data, list(frame.columns), len(frame))
    got, want = rollups(cols), rollups(cols.frame())
    pd.testing.assert_frame_equal(got.summed, want.summed, check_exact=True)
    pd.testing.assert_frame_equal(got.points, want.points, check_exact=True)
    assert got.decode.tolist() == want.decode.tolist()


def test_one_slot_with_two_shapes_gives_two_points():
    """Ops of one slot, phase and time with different FLOPs are two points (the slot
    grouping's check sends them to the exact path), each counted once."""
    table = _hand_table()
    table._data["op"].codes[:] = 0   # every op in slot 0; FLOPs 10 at 1 s in rows 0 and 1
    table._data["flops"][1] = 20.0
    pts = rollups(table).points
    assert pts[["phase", "flops", "latency_s", "n"]].values.tolist() == \
        [["prefill", 10.0, 1.0, 1], ["prefill", 20.0, 1.0, 1], ["decode", 10.0, 3.0, 2]]


def test_parquet_from_columns_is_the_dataframes(run, tmp_path):
    """The arrays written as they are give the file the DataFrame gives: equal tables, the
    same encodings and statistics per column chunk; pandas reads back the DataFrame."""
    from sim.report.writer import _write_parquet

    cols = _fresh(run).columns("ops")
    frame = run.ops
    _write_parquet(cols, tmp_path / "cols.parquet", rollups(cols).factorised)
    _write_parquet(frame, tmp_path / "frame.parquet", rollups(frame).factorised)
    _write_parquet(cols, tmp_path / "own.parquet")   # the columns' own codes
    assert cols._frame is None
    want = pq.ParquetFile(tmp_path / "frame.parquet")
    for name in ("cols", "own"):
        got = pq.ParquetFile(tmp_path / f"{name}.parquet")
        assert got.schema_arrow == want.schema_arrow
        assert got.read().equals(want.read()), name
        for g in range(want.metadata.num_row_groups):
            for j in range(want.metadata.num_columns):
                a, b = got.metadata.row_group(g).column(j), want.metadata.row_group(g).column(j)
                assert (a.encodings, a.statistics, a.total_compressed_size) == \
                    (b.encodings, b.statistics, b.total_compressed_size), a.path_in_schema
    back = pd.read_parquet(tmp_path / "cols.parquet")
    assert back.equals(frame) and list(back.dtypes) == list(frame.dtypes)


def _files(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.mark.parametrize("timeline", ["sampled", "full"])
def test_report_from_columns_is_the_report_of_its_dataframe(run, tmp_path, monkeypatch,
                                                            timeline):
    """Every file, byte for byte: from the columns (rows taken for a sampled timeline and
    the decode-step figure, the whole DataFrame never built for the sampled one) and from
    the DataFrame given as the op table."""
    monkeypatch.setattr("sim.report.sampling.SAMPLED_OPS", 600)   # a few decode steps kept
    fast = _fresh(run)
    write_run_report(fast, tmp_path / "cols", ops_as="parquet", timeline=timeline)
    write_run_report(_as_frame(run), tmp_path / "frame", ops_as="parquet", timeline=timeline)
    got, want = _files(tmp_path / "cols"), _files(tmp_path / "frame")
    assert list(got) == list(want)
    for name in want:
        assert got[name] == want[name], name
    every = json.loads(got["summary.json"])["outputs"]["timeline_decode_step_every"]
    assert (every > 1) == (timeline == "sampled")
    assert fast.columns("ops")._frame is None   # neither timeline builds the DataFrame


def test_trace_without_links_is_json_of_each_event(run):
    """The one-format chunk of op events (no links) is ``json.dumps`` of each event built
    row by row, in order; a float layer or step prints as its integer."""
    ops = run.ops.iloc[::5].copy()
    ops["layer"] = ops["layer"].astype(float)
    text = chrome_trace(ops, "t")
    events = json.loads(text)["traceEvents"]
    meta = {(e["pid"], e["args"]["name"]): e.get("tid") for e in events if e["ph"] == "M"}
    pid = {name.rsplit(" - ", 1)[0]: p for (p, name) in meta if name.endswith(" - t")}
    want = []
    for row in ops.itertuples(index=False):
        p = pid[row.device]
        want.append({"name": row.op, "cat": f"{row.op_class},{row.phase}", "ph": "X",
                     "pid": p, "tid": meta[(p, row.stream.rsplit(".", 1)[-1])],
                     "ts": round(row.start_s * 1e6, 4), "dur": round(row.latency_s * 1e6, 4),
                     "args": {"layer": int(row.layer), "step": int(row.step),
                              "phase": row.phase, "flops": float(row.flops),
                              "bytes": float(row.bytes), "bound": row.bound}})
    body = ",".join(json.dumps(e, separators=(",", ":")) for e in want)
    assert body in text and len([e for e in events if e["ph"] == "X"]) == len(ops)
