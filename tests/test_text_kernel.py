"""The CSV writer's compiled loops (sim/report/text_kernel.py, built by text_aot.py): floats as
C's ``%.9g`` writes them, digit for digit, including values at and next to the ties of the
ninth digit, powers of ten, signed zeros, infinities, NaN and subnormals; long tables of ints,
floats and text equal ``DataFrame.to_csv``'s bytes through the compiled path, the Python path
and the JIT; the built extension equals the JIT."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from sim.columns import Columns, Text
from sim.report import csv_blocks, tables, text_aot
from sim.report.text_fields import DIGITS, EMPTY, NEG_ZERO, OTHER, ZERO


def _seen(n: int) -> tuple[np.ndarray, ...]:
    """An empty table of digits by bit pattern (float_digits' ``seen`` arrays)."""
    return (np.full(n, 0x7FF8000000000000, dtype=np.int64), np.zeros(n, dtype=np.int64),
            np.zeros(n, dtype=np.int64))


def _hard_floats(rng: np.random.Generator, n: int) -> np.ndarray:
    """Values that test the ninth digit's rounding: random magnitudes across the whole range,
    exact ties of the ninth digit and their neighbours, nine-digit values, powers of ten and
    their neighbours, large integers, negatives and the special values."""
    base = rng.integers(10**8, 10**9, n).astype(np.float64)
    exp = rng.integers(-22, 22, n)
    ties = (base + 0.5) * 10.0 ** (exp - 8.0)
    tens = 10.0 ** np.arange(-20, 23)
    return np.concatenate([
        rng.random(n) * 10.0 ** rng.integers(-16, 24, n), -rng.random(n) * 1e-3,
        ties, np.nextafter(ties, 0), np.nextafter(ties, np.inf), base * 10.0 ** (exp - 8.0),
        rng.integers(0, 2**53, n).astype(np.float64), tens, np.nextafter(tens, 0),
        [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-5, 123456789.0, 1234567890.0, 100.0, 1.5,
         0.000123456789, 1000000005.0, 5e-324, 2.2e-308, 1e22, 9.999999995e8, 1e-4,
         9.9999999949e-5, 99999.99995, -1e300]])


@pytest.mark.parametrize("seed", range(3))
def test_float_digits_and_rows_are_printf(seed):
    """Every value's field is ``'%.9g' % v`` (NaN empty); the values it cannot be sure of are
    left to Python (OTHER), and they are few among ordinary values."""
    k = text_aot.kernels()
    rng = np.random.default_rng(seed)
    values = _hard_floats(rng, 40_000)
    n = len(values)
    digits, exps, status = (np.zeros((1, n), dtype=np.int64) for _ in range(3))
    others = k.float_digits(values, values.view(np.int64), digits[0], exps[0], status[0],
                            *_seen(4096))
    assert others == int((status == OTHER).sum())
    assert (status[0][np.isnan(values)] == EMPTY).all()
    assert (status[0][values == 0] != DIGITS).all()
    assert set(status[0][values == 0].tolist()) == {ZERO, NEG_ZERO}
    # of 40,000 random magnitudes within 1e-14..1e22, none goes to Python
    ordinary = values[:40_000]
    inside = (ordinary >= 1e-14) & (ordinary < 1e22)
    assert (status[0][:40_000][inside] == DIGITS).all()
    texts = [b"%.9g" % values[i] for i in np.flatnonzero(status[0] == OTHER)]
    ptr = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in texts], out=ptr[1:])
    out = np.empty(n * 16 + 16, dtype=np.uint8)
    seen = np.full((1, 4096), 0x7FF8000000000000, dtype=np.int64)
    end = k.write_rows(np.array([1]), np.array([0]), np.zeros((0, n), dtype=np.int64),
                       digits, exps, status, values.view(np.int64)[None, :].copy(), ptr,
                       np.frombuffer(bytearray(b"".join(texts) + b"\0"), dtype=np.uint8),
                       np.zeros((0, n), dtype=np.int64), np.zeros(1, dtype=np.int64),
                       np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.uint8), seen,
                       np.zeros((1, 4096), dtype=np.int64),
                       np.empty((1, 4096 * 15), dtype=np.uint8), out)
    got = out[:end].tobytes().decode().split("\n")[:-1]
    want = ["" if v != v else "%.9g" % v for v in values.tolist()]  # noqa: UP031 (printf)
    assert got == want


def _table(rng: np.random.Generator, n: int) -> tuple[Columns, pd.DataFrame]:
    labels = ["gpu0.compute", 'a "quoted", name', "line\nbreak", "ünïcode", ""]
    codes = rng.integers(0, len(labels), n)
    few = np.array([0.0, -0.0, 1 / 3, 1e300, np.nan, np.inf, 2.5e-12, 67108864.0])
    hard = _hard_floats(rng, n // 6 + 10)   # its special values last: kept, the rest mixed
    hard = np.concatenate([hard[-20:], rng.permutation(hard[:-20])])[:n]
    cols = {"id": np.arange(n, dtype=np.int32), "op": Text(labels, codes),
            "start_s": np.cumsum(rng.random(n) * 1e-5),
            "flops": few[rng.integers(0, len(few), n)],
            "t": hard,
            "step": rng.integers(-2**62, 2**62, n), "f32": rng.random(n).astype(np.float32)}
    frame = pd.DataFrame({**cols, "op": [labels[c] for c in codes]})
    return Columns(cols, list(cols), n), frame


@pytest.mark.parametrize("seed", range(2))
def test_long_table_is_to_csv_through_every_path(seed, monkeypatch, tmp_path):
    """A table over the compiled path's threshold equals ``to_csv``'s bytes written by the
    compiled loops (one and four threads, blocks that split it anywhere, a text stream and a
    UTF-8 file's bytes), by the Python path, and by the JIT's loops."""
    rng = np.random.default_rng(seed)
    n = 50_000
    table, frame = _table(rng, n)
    want = frame.to_csv(index=False, float_format="%.9g")
    assert n >= csv_blocks.COMPILED_CSV_ROWS
    for threads, block in ((1, 1 << 16), (4, 777), (2, 1 << 12)):
        monkeypatch.setattr(csv_blocks, "CSV_THREADS", threads)
        out = io.StringIO()
        assert tables.write_csv(table, out, rows=block) and out.getvalue() == want, block
    path = tmp_path / "t.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        assert tables.write_csv(table, f)
    assert path.read_text(encoding="utf-8") == want
    monkeypatch.setattr(text_aot, "_CACHE", [text_aot.jit_kernels()])
    out = io.StringIO()
    assert tables.write_csv(table, out, rows=5000) and out.getvalue() == want
    monkeypatch.setattr(csv_blocks, "COMPILED_CSV_ROWS", 1 << 62)   # the Python path
    out = io.StringIO()
    assert tables.write_csv(table, out) and out.getvalue() == want


def test_columns_the_loops_do_not_take_go_the_python_way(monkeypatch):
    """Bools, mixed objects and negative text codes are written by the Python path; an empty
    table is its header."""
    n = csv_blocks.COMPILED_CSV_ROWS
    ok = Columns({"x": np.arange(n, dtype=np.float64), "b": np.arange(n) % 2 == 0},
                 ["x", "b"], n)
    assert csv_blocks.compiled_plan([ok["x"], ok["b"]], tables._text_fields) is None
    assert csv_blocks.compiled_plan([(["a"], np.full(3, -1))], tables._text_fields) is None
    # one column: an empty field (NaN, "") is written quoted, as the only field of its row
    x = np.arange(n) / 7.0
    x[5] = np.nan
    for col in (x, Text(["a", ""], np.arange(n) % 2)):
        one = Columns({"c": col}, ["c"], n)
        frame = pd.DataFrame({"c": col if isinstance(col, np.ndarray)
                              else [col.labels[c] for c in col.codes]})
        out = io.StringIO()
        assert tables.write_csv(one, out)
        assert out.getvalue() == frame.to_csv(index=False, float_format="%.9g")
    out = io.StringIO()
    assert tables.write_csv(ok, out)
    assert out.getvalue() == pd.DataFrame({"x": ok["x"], "b": ok["b"]}).to_csv(
        index=False, float_format="%.9g")


def test_extension_is_the_jit():
    """The ahead-of-time build gives the JIT's fields (skipped where it cannot be built)."""
    from conftest import built_ahead_or_skip

    aot = built_ahead_or_skip(text_aot, "text loops", "XPUSIM_TEXT_AOT")
    jit = text_aot.jit_kernels()
    rng = np.random.default_rng(9)
    values = _hard_floats(rng, 5000)
    got = [np.zeros(len(values), dtype=np.int64) for _ in range(6)]
    bits = values.view(np.int64)
    assert aot.float_digits(values, bits, *got[:3], *_seen(4096)) == \
        jit.float_digits(values, bits, *got[3:], *_seen(4096))
    ok = got[2] == DIGITS
    for a, b in zip(got[:3], got[3:], strict=True):
        assert (a[ok] == b[ok]).all() and (got[2] == got[5]).all()


def test_a_long_csv_imports_neither_numba_nor_pandas(tmp_path):
    """The built loops need numpy alone (skipped where they cannot be built); the child runs
    outside the checkout, so it imports the package this process imported."""
    import subprocess
    import sys

    from conftest import built_ahead_or_skip

    built_ahead_or_skip(text_aot, "text loops", "XPUSIM_TEXT_AOT")
    code = ("import io, sys, numpy as np; from sim.columns import Columns; "
            "from sim.report.tables import write_csv; n = 40000; "
            "t = Columns({'x': np.arange(n) / 7, 'i': np.arange(n)}, ['x', 'i'], n); "
            "out = io.StringIO(); write_csv(t, out); "
            "print(len(out.getvalue().splitlines()), 'numba' in sys.modules, "
            "'pandas' in sys.modules)")
    got = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=tmp_path).stdout.split()
    assert got == ["40001", "False", "False"]
