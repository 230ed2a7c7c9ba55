"""The report's grouping by hash table (Arrow's, when pyarrow is loaded) and by op slot gives
pandas' groups (issue 18, item 5: a 2,048-token 70B TP8 report, 2.47M ops).

:func:`sim.report.tables.arrow_factorize` numbers values as ``pd.factorize`` does; the
roofline points of a long :class:`sim.columns.Columns` table whose slots hold several times
(most rows at one time per slot and phase, the rest at others) and one slot with two shapes
are ``groupby(sort=False)`` of its DataFrame, with the hash table and with sorting; a sampled
timeline's rows picked from the known decode steps are the rows picked by step arithmetic.
Each expectation is pandas' (independent code) or the slower path's.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

import sim.report.rollups as rollups_mod
from sim.columns import Columns, Text
from sim.report.rollups import POINT_KEYS, SUMMED_KEYS, SUMMED_VALUES, rollups
from sim.report.sampling import sample_ops
from sim.report.tables import _HASH_MIN, arrow_factorize

pytest.importorskip("pyarrow")

N = max(_HASH_MIN + 1, 60_000)   # long enough for Arrow's hash table


def _values() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    floats = rng.choice([0.5, 1.5, -2.0, 3.25, np.nan, 1e-9, 0.0, -0.0], size=N)
    floats[:3] = [-0.0, np.nan, 0.0]   # -0.0 first: kept as the value seen first
    return [floats, rng.integers(-40, 40, size=N), rng.integers(0, 2**62, size=N),
            rng.random(N) > 0.5, rng.integers(0, 5, size=N).astype(np.int8)]


@pytest.mark.parametrize("case", range(5))
def test_arrow_factorize_is_pandas_factorize(case):
    values = _values()[case]
    got_c, got_u = arrow_factorize(values)
    want_c, want_u = pd.factorize(values, use_na_sentinel=False)
    assert got_c.tolist() == want_c.tolist()
    assert len(got_u) == len(want_u)
    if values.dtype.kind == "f":
        assert np.array_equal(got_u, want_u, equal_nan=True)
        assert np.signbit(got_u).tolist() == np.signbit(want_u).tolist()
    else:
        assert got_u.tolist() == want_u.tolist()
    if values.dtype.kind == "f":   # NaN with the sentinel: left to the sort
        assert arrow_factorize(values, na_sentinel=True) is None


def _long_table(seed: int = 5, two_shapes: bool | None = True) -> Columns:
    """``N`` ops over 60 slots sharing one code array (10 names, 4 classes, 3 bounds); per
    (slot, phase) most rows at one time and ~30% at one of two others; ~1% at time 0 (not
    drawn); slot 7 with two FLOPs values (``two_shapes``: at each of its times, which sends
    the table to the generic path; False: at different times, the slot path, checked per
    group; None: one FLOPs value per slot, the slot path unchecked)."""
    rng = np.random.default_rng(seed)
    nslots = 60
    slots = rng.integers(0, nslots, size=N).astype(np.int32)
    phase = rng.integers(0, 2, size=N).astype(np.int8)
    names = [f"op{j % 10}" for j in range(nslots)]
    classes = [("gemm", "norm", "attn", "comm")[j % 4] for j in range(nslots)]
    bounds = [("compute", "memory", "link")[j % 3] for j in range(nslots)]
    base = rng.random(nslots) * 1e-3
    pick = rng.choice(3, size=N, p=[0.7, 0.2, 0.1])
    latency = base[slots] * (1.0 + pick * 1e-6) + phase * 1e-3
    latency[rng.random(N) < 0.01] = 0.0
    flops = (np.arange(nslots) * 1e9 + 1e9)[slots]
    if two_shapes:
        flops[(slots == 7) & (np.arange(N) % 2 == 0)] = 5.0e12
    elif two_shapes is not None:
        flops[(slots == 7) & (pick == 2)] = 5.0e12
    data = {"op": Text(names, slots), "op_class": Text(classes, slots),
            "phase": Text(["prefill", "decode"], phase),
            "layer": rng.integers(0, 4, size=N).astype(np.int32),
            "bound": Text(bounds, slots),
            "step": np.where(phase == 1, rng.integers(1, 50, size=N), 0).astype(np.int32),
            "shards": np.ones(N, dtype=np.int32),
            "flops": flops, "bytes": (np.arange(nslots) * 1e6 + 1e6)[slots],
            "latency_s": latency}
    for v in SUMMED_VALUES:
        data.setdefault(v, rng.random(N))
    return Columns(data, list(data), N)


@pytest.mark.parametrize("two_shapes", [None, False, True],
                         ids=["slot path", "slot path checked", "generic path"])
@pytest.mark.parametrize("hashed", [True, False], ids=["hash table", "sorting"])
def test_points_of_a_long_slot_table_are_pandas_groupby(monkeypatch, hashed, two_shapes):
    table = _long_table(two_shapes=two_shapes)
    monkeypatch.setattr(rollups_mod, "hashing", lambda: hashed)
    generic, plain = [], rollups_mod._points

    def spy(*args):   # the generic path, taken where a slot group holds two shapes
        generic.append(1)
        return plain(*args)

    monkeypatch.setattr(rollups_mod, "_points", spy)
    with monkeypatch.context() as m:   # without pandas: Arrow's hash table groups
        m.delitem(sys.modules, "pandas")
        roll = rollups(table)
    assert bool(generic) == bool(two_shapes)
    ops = table.frame()
    drawn = ops[(ops["flops"] > 0) & (ops["bytes"] > 0) & (ops["latency_s"] > 0)]
    want = drawn.groupby(list(POINT_KEYS), sort=False).size().rename("n").reset_index()
    assert len(want) > 2 * 60   # several times per slot and phase: the per-time groups count
    assert (roll.points.to_numpy() == want.to_numpy()).all()
    g = ops.groupby(list(SUMMED_KEYS), sort=False)
    summed = g[list(SUMMED_VALUES)].sum().assign(n=g.size()).reset_index()
    assert (roll.summed[list(SUMMED_KEYS)].to_numpy() ==
            summed[list(SUMMED_KEYS)].to_numpy()).all()
    assert roll.summed["n"].tolist() == summed["n"].tolist()


def test_slot_with_two_shapes_and_one_time_splits_by_shape():
    """One (slot, phase, time) holding two FLOPs values is two points (the per-slot check
    fails, the per-group check sends the table to the exact path)."""
    table = _long_table(seed=6)
    lat = table._data["latency_s"]
    seven = np.flatnonzero(table._data["op"].codes == 7)
    lat[seven] = 1.0   # all of slot 7 at one time (both phases), two FLOPs values
    roll = rollups(table)
    pts = roll.points
    got = pts[pts["latency_s"] == 1.0][["flops", "n"]].values.tolist()
    ops = table.frame()
    want = ops.iloc[seven].groupby(["phase", "flops"], sort=False).size()
    assert sorted(got) == sorted([[f, n] for (_, f), n in want.items()])
    assert len(got) == 4   # two phases x two shapes


def test_sampling_from_known_steps_keeps_the_same_rows():
    table = _long_table()
    roll = rollups(table)
    for every in (1, 3, 7, 48, 100):
        by_steps = sample_ops(table, every, roll.decode, roll.decode_steps)
        by_rows = sample_ops(table, every, roll.decode)
        assert len(by_steps) == len(by_rows)
        assert np.array_equal(np.asarray(by_steps["latency_s"]),
                              np.asarray(by_rows["latency_s"]))
        assert np.array_equal(np.asarray(by_steps["step"]), np.asarray(by_rows["step"]))
    kept = sample_ops(table, 7, roll.decode, roll.decode_steps)
    steps = set(np.asarray(kept["step"])[np.asarray(kept["phase"]) == "decode"].tolist())
    assert steps == set(range(1, 50, 7)) | {49}   # by hand: steps 1, 8, ..., 43 and the last
