"""Shared fixtures: the reference-data folder and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def reference_dir() -> Path:
    """``$XPUSIM_REFERENCE_DIR`` or ``../shared/reference`` beside the repository."""
    return Path(os.environ.get("XPUSIM_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))


@pytest.fixture
def ref_dir() -> Path:
    """The reference-data folder; skips the test with a clear message when it is absent."""
    path = reference_dir()
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path} (set XPUSIM_REFERENCE_DIR to the "
                    "shared/reference folder to run this validation)")
    return path


def built_ahead_or_skip(aot_module, what: str, env: str):
    """``aot_module.kernels()`` (:mod:`sim.micro.dram_aot` and its like) where they are the
    ahead-of-time build; skips the test otherwise (the JIT path is then the one in use)."""
    k = aot_module.kernels()
    if k.kind != "aot":
        pytest.skip(f"no ahead-of-time {what} here (no C compiler, a failed build, or "
                    f"{env}=0): the JIT path is the one in use")
    return k


def assert_build_name_follows_sources(monkeypatch, tmp_path: Path, home, sources, name,
                                      edited: tuple[str, ...], prefix: str) -> None:
    """An edited source gets a new build name (an old build is never used): ``sources`` (files
    of ``home.HERE``) copied into ``tmp_path``, which becomes ``home.HERE``; ``name()`` starts
    with ``prefix``, stays the same unedited and changes with each file of ``edited`` edited."""
    for file in sources:
        (tmp_path / file).write_bytes((home.HERE / file).read_bytes())
    monkeypatch.setattr(home, "HERE", tmp_path)
    before = name()
    assert before.startswith(prefix) and name() == before
    for file in edited:
        with open(tmp_path / file, "a") as f:
            f.write("\n# edited\n")
        after = name()
        assert after != before
        before = after


def assert_refused(code: int, capsys, *needles: str) -> str:
    """A command refused bad input as the Standards ask: exit code ``code`` 2, one line on
    stderr, no traceback, and each of ``needles`` (file, field, what was expected) in it.
    The line."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err.strip()


def assert_same_run(fast, slow) -> None:
    """Two results of one run are the same bit for bit: every op column, the resource
    table and every metric but ``engine_events`` (the events one engine path waited on)."""
    import pandas as pd

    for col in fast.ops.columns:
        assert fast.ops[col].equals(slow.ops[col]), col
    pd.testing.assert_frame_equal(fast.resources, slow.resources, check_exact=True)
    assert {k: v for k, v in fast.metrics.items() if k != "engine_events"} == \
        {k: v for k, v in slow.metrics.items() if k != "engine_events"}


def arrays_run_and_op_by_op(run, monkeypatch) -> tuple:
    """``run()`` planned and timed from its trace's arrays, then op by op
    (``schedule.PLAN_FROM_ARRAYS = False``: op objects, the pass over them): the first made no
    op object and ``run_planned_arrays`` timed it; the two have every op, transfer and
    resource row, invariant, op link and metric equal bit for bit. Returns both results."""
    import math

    import sim.engine_planned as engine_planned
    import sim.system.schedule as schedule
    from workloads.trace import CompactOps

    made, timed = [], []
    real_materialise, real_run = CompactOps.materialise, engine_planned.run_planned_arrays
    monkeypatch.setattr(CompactOps, "materialise",
                        lambda self: made.append(1) or real_materialise(self))
    monkeypatch.setattr(engine_planned, "run_planned_arrays",
                        lambda *a: timed.append(real_run(*a)) or timed[-1])
    new = run()
    assert made == [] and len(timed) == 1 and timed[0] is not None   # no op object made
    monkeypatch.setattr(schedule, "PLAN_FROM_ARRAYS", False)
    old = run()
    assert made and len(timed) == 1                  # op objects, planned op by op
    for table in ("ops", "transfers", "resources"):
        a, b = getattr(old, table), getattr(new, table)
        assert list(a.columns) == list(b.columns), table
        for col in a.columns:
            assert a[col].equals(b[col]), (table, col)   # bit for bit, in the same order
    assert old.invariants == new.invariants and old.op_links == new.op_links
    for key, value in old.metrics.items():
        got = new.metrics[key]
        assert value == got or (math.isnan(value) and math.isnan(got)), key
    return new, old


def project_ctx(tmp_path_factory, *parts: str):
    """A validation context on the project's own data (``validation/``) with an empty reference
    folder; skips the calling module's tests when ``validation/<parts>`` is absent."""
    from xpusim.validation import PROJECT_DATA, ValidationContext

    if not PROJECT_DATA.joinpath(*parts).is_file():
        pytest.skip(f"validation/{'/'.join(parts)} absent")
    return ValidationContext(tmp_path_factory.mktemp("ref"), project_data=PROJECT_DATA)


def assert_bad_rows_fail(tmp_path, data: Path, run, cases) -> None:
    """For each ``(old, new, pattern)``: ``data``'s header and first row with ``old`` replaced
    by ``new``, written where a validation context on ``tmp_path`` finds it
    (``<tmp_path>/<data's folder>/<data's name>``), make ``run(ctx)`` raise a one-line
    :class:`~workloads.errors.WorkloadError` matching ``pattern`` (file, row and column)."""
    from workloads.errors import WorkloadError
    from xpusim.validation import ValidationContext

    head, first = data.read_text().splitlines()[:2]
    folder = tmp_path / data.parent.name
    folder.mkdir(exist_ok=True)
    ctx = ValidationContext(tmp_path, project_data=tmp_path)
    for old, new, pattern in cases:
        assert old in first, old
        (folder / data.name).write_text(f"{head}\n{first.replace(old, new)}\n")
        with pytest.raises(WorkloadError, match=pattern):
            run(ctx)


@pytest.fixture(scope="module")
def vidur_ctx():
    """A validation context on the reference folder; skips without Vidur's all-reduce data."""
    from xpusim.validation import ValidationContext

    ref = reference_dir()
    if not (ref / "gpu" / "dgx_a100_allreduce_vidur.csv").is_file():
        pytest.skip(f"Vidur all-reduce data not found under {ref} (set XPUSIM_REFERENCE_DIR)")
    return ValidationContext(ref)


def _assert_rollups_match_pandas(roll, ops) -> None:
    """``roll`` (sim.report.rollups) equals an independent pandas ``groupby(sort=False)`` of the
    op table ``ops``: the same summed groups in first-appearance order with the same keys, counts
    and sums, the same roofline points, and the sorted decode steps."""
    import numpy as np

    from sim.report.rollups import SUMMED_KEYS, SUMMED_VALUES

    keys, values = list(SUMMED_KEYS), list(SUMMED_VALUES)
    g = ops.groupby(keys, sort=False, observed=True)
    want = g[values].sum().assign(n=g.size()).reset_index()
    assert list(roll.summed.columns) == list(want.columns)
    assert (roll.summed[keys].to_numpy() == want[keys].to_numpy()).all()
    assert roll.summed["n"].tolist() == want["n"].tolist()
    np.testing.assert_allclose(roll.summed[values], want[values], rtol=1e-12)
    pkeys = ["op", "op_class", "phase", "flops", "bytes", "shards", "latency_s"]
    drawn = ops[(ops["flops"] > 0) & (ops["bytes"] > 0) & (ops["latency_s"] > 0)]
    pts = drawn.groupby(pkeys, sort=False, observed=True).size().rename("n").reset_index()
    assert (roll.points.to_numpy() == pts.to_numpy()).all()
    assert roll.decode_steps.tolist() == sorted(ops.loc[ops["phase"] == "decode", "step"]
                                                .unique())


@pytest.fixture
def rollups_match_pandas():
    """The check :func:`_assert_rollups_match_pandas` (rollups against pandas groupby)."""
    return _assert_rollups_match_pandas
