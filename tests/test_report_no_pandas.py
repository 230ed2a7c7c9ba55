"""The run report is written without importing pandas (issue 18, items 1 and 5).

``xpusim run --out DIR`` of a single-device run loads numpy and pyarrow only: the report's
tables are numpy columns and :mod:`sim.report.tables` does what pandas' ``factorize``,
``groupby(...).sum()`` and ``sort_values`` did. Each helper is checked against pandas itself
(independent code: its hash table, its compensated group sums, its argsort), and the whole
report a pandas-free CLI process writes is compared byte for byte with the one written when
pandas is loaded (then the writer's factorising goes through pandas' hash table).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.columns import Columns, Text
from sim.report.tables import factorize, group_sum, nargsort, numpy_factorize

pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parents[1]

#: run the CLI in this process and say which of pandas / pyarrow it loaded
_RUN = """
import json, runpy, sys
{pre}
sys.argv = ["xpusim", *{argv!r}]
try:
    runpy.run_module("xpusim", run_name="__main__", alter_sys=True)
except SystemExit as e:
    assert not e.code, e.code
print(json.dumps({{m: m in sys.modules for m in ("pandas", "pyarrow")}}))
"""

ARGS = ["run", "--model", "gpt2-small", "--batch", "2", "--prompt", "32", "--gen", "41",
        "--quiet"]


def _cli(out: Path, pre: str = "", extra: tuple[str, ...] = ()) -> dict:
    code = _RUN.format(pre=pre, argv=[*ARGS, *extra, "--out", str(out)])
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _files(d: Path) -> dict[str, bytes]:
    out = {}
    for f in sorted(d.iterdir()):
        data = f.read_bytes()
        if f.name == "summary.json":   # the wall-clock seconds differ run to run
            s = json.loads(data)
            s["metrics"].pop("wall_s", None)
            s.get("device", {}).pop("wall_s", None)
            data = json.dumps(s, sort_keys=True).encode()
        out[f.name] = data
    return out


#: a few decode steps kept of a short run (the sampled timeline's path)
FEW = "import sim.report.sampling as s; s.SAMPLED_OPS = 600"
CASES = {"one gpu": ((), ""),
         "sampled": (("--timeline", "sampled"), FEW),
         "tp2 (links, collectives)": (("--arch", "dgx-h100", "--tp", "2", "--gen", "8"), ""),
         "cpu attention (transfers), sampled": (
             ("--arch", "a6000-offload", "--gen", "16", "--cpu-attention", "--timeline",
              "sampled"), FEW)}


@pytest.mark.parametrize("case", list(CASES))
def test_run_out_writes_the_report_without_pandas(tmp_path, case):
    """``run --out`` never imports pandas, and every file it writes is the file written with
    pandas loaded (pandas' hash table doing the factorising), byte for byte."""
    extra, pre = CASES[case]
    loaded = _cli(tmp_path / "lean", pre=pre, extra=extra)
    assert loaded == {"pandas": False, "pyarrow": True}
    assert _cli(tmp_path / "pandas", pre=pre + "\nimport pandas", extra=extra)["pandas"]
    lean, ref = _files(tmp_path / "lean"), _files(tmp_path / "pandas")
    assert list(lean) == list(ref) and "ops.parquet" in lean and "timeline.json" in lean
    for name in ref:
        assert lean[name] == ref[name], name
    outputs = json.loads(lean["summary.json"])["outputs"]
    assert (outputs["timeline_decode_step_every"] > 1) == ("sampled" in extra)
    assert ("transfers.parquet" in lean) == ("--cpu-attention" in extra)
    assert ("resources.csv" in lean) == ("--arch" in extra)
    # the parquet file reads back (with pandas) as the run's op table
    back = pd.read_parquet(tmp_path / "lean" / "ops.parquet")
    assert len(back) == outputs["ops"]


def _cases() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    floats = rng.choice([0.5, 1.5, -2.0, 3.25, np.nan, 1e-9], size=300)
    floats[[3, 9]] = [-0.0, 0.0]   # pandas keeps the first seen of 0.0 / -0.0
    strs = np.array(rng.choice(["decode", "prefill", "b", "a"], size=200), dtype=object)
    strs[[5, 50]] = None
    strs[70] = float("nan")
    return [floats, rng.integers(-5, 5, size=300), strs,
            rng.integers(0, 2**62, size=50, dtype=np.int64), np.zeros(0),
            rng.random(100) > 0.5]


@pytest.mark.parametrize("case", range(6))
def test_numpy_factorize_is_pandas_factorize(case):
    values = _cases()[case]
    for sort, sentinel in ((False, False), (True, True)):
        got_c, got_u = numpy_factorize(values, sort=sort, na_sentinel=sentinel)
        want_c, want_u = pd.factorize(values, sort=sort, use_na_sentinel=sentinel)
        assert got_c.tolist() == want_c.tolist()
        assert len(got_u) == len(want_u)
        for g, w in zip(got_u.tolist(), list(want_u), strict=True):
            if pd.isna(w):
                assert pd.isna(g)
            else:
                assert g == w and type(g) is type(w.item() if hasattr(w, "item") else w)
                if isinstance(w, float):   # -0.0 stays -0.0
                    assert np.signbit(g) == np.signbit(w)
    # with pandas loaded the writer factorises through pandas: the same codes
    assert factorize(values)[0].tolist() == numpy_factorize(values)[0].tolist()


@pytest.mark.parametrize("compiled", [False, True])
def test_group_sum_is_pandas_compensated_groupby_sum(compiled, monkeypatch):
    """By the Python loop and by the compiled one (sim.group_kernel.compensated_sums, from
    COMPILED_SUM_ROWS rows): pandas' compensated sums bit for bit, NaN skipped, -1 left out."""
    from sim.report import tables as tables_mod

    monkeypatch.setattr(tables_mod, "COMPILED_SUM_ROWS", 0 if compiled else 1 << 40)
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 6, size=4000)
    values = rng.random(4000) * 10.0 ** rng.integers(-9, 9, size=4000)
    values[::97] = np.nan
    want = pd.Series(values).groupby(ids).sum().to_numpy()
    got = group_sum(ids, values, 6)
    assert got.tobytes() == want.tobytes()
    left_out = ids.copy()
    left_out[::5] = -1
    kept = left_out >= 0
    want = pd.Series(values[kept]).groupby(left_out[kept]).sum().to_numpy()
    assert group_sum(left_out, values, 6).tobytes() == want.tobytes()
    # pandas' sums are compensated: plain sums differ in the last bits (the check has teeth)
    plain = np.bincount(ids, weights=np.nan_to_num(values), minlength=6)
    assert plain.tobytes() != want.tobytes()
    ints = rng.integers(0, 1000, size=500)
    assert group_sum(ids[:500], ints, 6).tolist() == \
        pd.Series(ints).groupby(ids[:500]).sum().tolist()


@pytest.mark.parametrize("ascending", [True, False])
def test_nargsort_is_sort_values_order(ascending):
    rng = np.random.default_rng(11)
    values = rng.choice([1.0, 2.0, 3.0, np.nan, 0.5], size=200)   # many ties, NaN
    want = pd.Series(values).sort_values(ascending=ascending).index.to_numpy()
    assert nargsort(values, ascending=ascending).tolist() == want.tolist()
    df = pd.DataFrame({"x": values})
    assert nargsort(values, ascending=ascending).tolist() == \
        df.sort_values("x", ascending=ascending).index.tolist()


def test_subset_is_iloc_of_the_frame():
    text = Text(["a", "b", "c"], np.array([2, 0, 1, 1, 0, 2]))
    cols = Columns({"x": np.arange(6.0), "t": text, "v": Text.of(list("pqrstu"))},
                   ["x", "t", "v"], 6)
    rows = np.array([4, 1, 5])
    sub = cols.subset(rows)
    assert len(sub) == 3 and sub["t"].tolist() == ["a", "a", "c"]   # codes 0, 0, 2
    want = cols.frame().iloc[rows].reset_index(drop=True)
    pd.testing.assert_frame_equal(sub.frame(), want, check_dtype=False)
    assert sub["v"].tolist() == ["t", "q", "u"]


def test_csv_text_is_to_csv():
    """Floats through ``%.9g`` (NaN empty, large ints of an int column in full), bools,
    text quoted only where it must be: ``DataFrame.to_csv``'s bytes."""
    from sim.report.tables import csv_text

    rows = [{"resource": "nvlink.gpu0>", "bw": 4.5e11, "n": 12345678901, "ok": True,
             "t": 1 / 3},
            {"resource": 'a "quoted", name', "bw": float("nan"), "n": -2, "ok": False,
             "t": 2.5e-12},
            {"resource": "line\nbreak", "bw": 1.0, "n": 0, "ok": True, "t": float("inf")}]
    table = Columns.from_rows(rows, ["resource", "bw", "n", "ok", "t"])
    want = pd.DataFrame(rows).to_csv(index=False, float_format="%.9g")
    assert csv_text(table) == want
    mixed = Columns.from_rows([{"x": "a"}, {"x": None}], ["x"])
    assert csv_text(mixed) is None   # not plain text: the caller writes the DataFrame


@pytest.mark.parametrize("seed", range(6))
def test_csv_of_long_text_and_repeated_float_columns_is_to_csv(seed, monkeypatch):
    """A long table's text columns written from their labels and codes (each label's field
    asked of ``csv.writer`` once: commas, quotes, line breaks, carriage returns, tabs) and its
    float columns of a few repeated values formatted a distinct value at a time (NaN empty,
    -0.0 apart from 0.0, infinities), next to columns of distinct floats: ``to_csv``'s bytes,
    in blocks that split the rows anywhere."""
    import io

    from sim.columns import Text
    from sim.report import tables as tables_mod
    from sim.report.tables import write_csv

    monkeypatch.setattr(tables_mod, "_FEW_ROWS", 64)   # the repeated-values path on 300 rows
    rng = np.random.default_rng(seed)
    n = 300
    labels = ["".join(rng.choice(list('ab ,"\n\r;\t\'x'), size=int(rng.integers(0, 5))))
              for _ in range(7)]
    codes = rng.integers(0, len(labels), n)
    few = np.array([0.0, -0.0, 1 / 3, 1e300, np.nan, np.inf, -np.inf, 2.5e-12])
    repeated = few[rng.integers(0, len(few) if seed % 2 else 4, n)]
    distinct = rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)
    cols = {"label": Text(labels, codes), "few": repeated, "t": distinct,
            "n": rng.integers(-2**40, 2**40, n), "ok": rng.random(n) < 0.5}
    table = Columns(cols, list(cols), n)
    frame = pd.DataFrame({"label": [labels[c] for c in codes], "few": repeated, "t": distinct,
                          "n": cols["n"], "ok": cols["ok"]})
    want = frame.to_csv(index=False, float_format="%.9g")
    for block in (1, 37, 1 << 16):
        out = io.StringIO()
        assert write_csv(table, out, rows=block) and out.getvalue() == want, block


def test_transfer_rows_are_the_groupby_aggregate():
    from sim.report.html import transfer_rows

    rng = np.random.default_rng(5)
    n = 300
    df = pd.DataFrame({"id": np.arange(n), "tensor": rng.choice(["kv", "act", "w"], n),
                       "src": rng.choice(["gpu0.hbm", "host_ddr"], n),
                       "dst": rng.choice(["gpu0.hbm", "host_ddr", "cxl"], n),
                       "phase": rng.choice(["prefill", "decode"], n),
                       "bytes": rng.integers(1, 1 << 20, n), "replicas": rng.integers(1, 3, n),
                       "latency_s": rng.random(n) * 1e-6, "energy_J": rng.random(n) * 1e-3})
    want = (df.assign(total_bytes=df["bytes"] * df["replicas"])
            .groupby(["tensor", "src", "dst", "phase"], sort=True)
            .agg(transfers=("id", "size"), bytes=("total_bytes", "sum"),
                 time_s=("latency_s", "sum"), energy_J=("energy_J", "sum")).reset_index())
    got = transfer_rows(df)
    assert got.order == list(want.columns)
    for c in want.columns:
        assert got[c].tolist() == want[c].tolist(), c


def test_transfer_rows_of_coded_columns_are_the_groupby_aggregate():
    """A run's transfer table holds its text columns as labels and codes (a label may be
    listed twice, or not occur): grouped by the codes, the same rows as pandas' groupby of
    the strings."""
    from sim.report.html import transfer_rows

    rng = np.random.default_rng(8)
    n = 5000
    labels = {"tensor": ["kv", "w", "kv", "act", "unused"], "src": ["gpu0.hbm", "host_ddr"],
              "dst": ["cxl0", "gpu0.hbm", "host_ddr"], "phase": ["prefill", "decode"]}
    codes = {k: rng.integers(0, len(v) - (k == "tensor"), n) for k, v in labels.items()}
    cols = {k: Text(labels[k], codes[k]) for k in labels}
    nums = {"id": np.arange(n), "bytes": rng.integers(1, 1 << 20, n),
            "replicas": rng.integers(1, 3, n), "latency_s": rng.random(n) * 1e-6,
            "energy_J": rng.random(n) * 1e-3}
    table = Columns({**cols, **nums}, [*cols, *nums], n)
    df = pd.DataFrame({**{k: np.array(labels[k], dtype=object)[codes[k]] for k in labels},
                       **nums})
    want = (df.assign(total_bytes=df["bytes"] * df["replicas"])
            .groupby(["tensor", "src", "dst", "phase"], sort=True)
            .agg(transfers=("id", "size"), bytes=("total_bytes", "sum"),
                 time_s=("latency_s", "sum"), energy_J=("energy_J", "sum")).reset_index())
    got = transfer_rows(table)
    assert len(got) == len(want) == 3 * 2 * 3 * 2
    for c in want.columns:
        assert got[c].tolist() == want[c].tolist(), c


def test_csv_written_in_blocks_is_to_csv(tmp_path):
    """Row blocks that split the table anywhere (1, 2, 3 rows) give DataFrame.to_csv's bytes;
    a run with --format csv writes its ops.csv without importing pandas."""
    import io
    import subprocess
    import sys

    from sim.report.tables import write_csv

    rows = [{"name": f"op,{i}" if i % 3 else f"op{i}", "t": i / 7, "n": i, "ok": i % 2 == 0}
            for i in range(7)]
    table = Columns.from_rows(rows, ["name", "t", "n", "ok"])
    want = pd.DataFrame(rows).to_csv(index=False, float_format="%.9g")
    for block in (1, 2, 3, 7, 100):
        out = io.StringIO()
        assert write_csv(table, out, rows=block) and out.getvalue() == want
    code = ("import sys; from xpusim.cli import main; rc = main(['run', '--model', "
            "'llama2-7b', '--gen', '4', '--format', 'csv', '--quiet', '--out', sys.argv[1]]); "
            "print(rc, 'pandas' in sys.modules)")
    got = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r")], check=True,
                         capture_output=True, text=True).stdout.split()
    assert got[-2:] == ["0", "False"]
