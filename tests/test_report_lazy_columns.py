"""The report's rollups on the run's lazily formed op table (issue 18, item 5).

Two shortcuts of :func:`sim.report.rollups.rollups` on a one-stream run's table, each checked
against an independent expectation:

* exact (code, time) groups by probing (:func:`sim.report.rollups._probe_slots`) instead of
  a hash table: compared with a plain Python dict of the rows' tuples (first appearance);
* the per-slot FLOPs, bytes and shards check skipped where the table says those columns are
  gathered by the ops' slot (:meth:`sim.columns.Columns.keyed_by`): that claim is checked on
  the formed columns, and the rollups equal those of the same columns without the claim.
"""

from __future__ import annotations

import numpy as np
import pytest

import sim.report.rollups as R
from arch import load_arch
from sim.columns import Columns, Lazy
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario


def _dict_groups(*columns: np.ndarray) -> tuple[list[int], int]:
    """Group id per row of equal tuples, numbered in order of first appearance (a dict)."""
    seen: dict[tuple, int] = {}
    rows = zip(*(c.tolist() for c in columns), strict=True)
    ids = [seen.setdefault(row, len(seen)) for row in rows]
    return ids, len(seen)


@pytest.fixture(scope="module")
def run():
    # 12 layers x 300 steps: a one-stream run on arrays, ~60k ops
    return simulate(load_arch("h100"), get_model("gpt2-small"),
                    Scenario(batch=2, prompt_len=32, gen_len=300))


def _codes_times(n: int, n_codes: int, n_times: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    code = rng.integers(0, n_codes, n).astype(np.int64)
    times = rng.choice(rng.uniform(1e-6, 1e-3, n_times), n)
    return code, times


@pytest.mark.parametrize("bits", [16, 4])   # 4 bits: 16 slots a round, values collide
def test_probe_slots_are_exact_groups(monkeypatch, bits):
    monkeypatch.setattr(R, "_PROBE_BITS", bits)
    code, times = _codes_times(20_000, 3, 2, seed=3)   # 6 distinct (code, time) pairs
    probed = R._probe_slots([code, times])
    assert probed is not None
    slot, card = probed
    assert card % (1 << bits) == 0 and slot.min() >= 0 and slot.max() < card
    if bits == 4:   # this seed's pairs collide in the first round: a second one settles them
        assert card > 1 << bits
    want, count = _dict_groups(code, times)
    # one slot per distinct pair, and the same pair in one slot
    got, got_count = _dict_groups(slot)
    assert got == want and got_count == count
    ids, n_ids = R._exact_groups(code, 3, times)
    assert ids.tolist() == want and n_ids == count


def test_exact_groups_many_values_fall_back(monkeypatch):
    """Too many distinct values for the probe table: the hash-table path, the same ids."""
    monkeypatch.setattr(R, "_PROBE_BITS", 6)   # 64 slots for ~10k distinct pairs
    code, times = _codes_times(10_000, 50, 400, seed=1)
    assert R._probe_slots([code, times]) is None
    ids, n_ids = R._exact_groups(code, 50, times)
    want, count = _dict_groups(code, times)
    assert ids.tolist() == want and n_ids == count


def test_exact_groups_probe_equals_hash_path(run, monkeypatch):
    """On a run's own (slot, phase) codes and op times: probing gives the hash path's ids."""
    ops = run.columns("ops")
    phase = ops.text("phase").codes.astype(np.int64)
    code = ops.text("op").codes.astype(np.int64) * 2 + phase
    times = ops["latency_s"]
    probed = R._exact_groups(code, int(code.max()) + 1, times)
    monkeypatch.setattr(R, "_probe_slots", lambda columns: None)
    hashed = R._exact_groups(code, int(code.max()) + 1, times)
    assert probed[1] == hashed[1] and np.array_equal(probed[0], hashed[0])
    assert probed[0].tolist() == _dict_groups(code, times)[0]


def test_keyed_by_columns_are_per_slot(run):
    """The columns a one-stream run's table says are per slot are: one value per slot."""
    ops = run.columns("ops")
    slots = ops.text("op").codes
    keyed = [c for c in ops.order if ops.keyed_by(c) is not None]
    assert {"flops", "bytes", "shards", "op", "op_class", "kind", "bound",
            "energy_J", "dram_bytes", "alone_s"} <= set(keyed)
    assert not {"start_s", "end_s", "latency_s", "step", "layer", "phase", "id"} & set(keyed)
    for c in keyed:
        assert ops.keyed_by(c) is slots
        values = ops[c]
        first = {}
        for s, v in zip(slots.tolist(), values.tolist(), strict=True):
            assert first.setdefault(s, v) == v, (c, s)


def test_rollups_with_and_without_keyed_by_are_equal(run):
    """The rollups of the table equal those of the same columns given without ``by`` (so
    the per-slot check runs): the shortcut changes no row, no bit."""
    ops = run.columns("ops")
    plain = Columns(dict(ops._data), ops.order, ops.n, copy=False)
    assert plain.keyed_by("flops") is None
    a, b = R.rollups(ops), R.rollups(plain)
    for got, want in ((a.point_rows, b.point_rows), (a.summed_rows, b.summed_rows)):
        assert got.order == want.order and len(got) == len(want) > 0
        for c in got.order:
            assert np.array_equal(got[c], want[c]), c
    assert np.array_equal(a.decode_steps, b.decode_steps)


def test_lazy_by_is_known_before_forming():
    """``keyed_by`` reads the claim without forming the column; a formed table keeps it."""
    formed = []
    codes = np.array([0, 1, 0], dtype=np.int32)
    cols = Columns({"x": Lazy(lambda: formed.append(1) or np.array([5.0, 6.0, 5.0]),
                              by=codes), "y": np.zeros(3)}, ["x", "y"], 3)
    assert cols.keyed_by("x") is codes and cols.keyed_by("y") is None and not formed
    assert cols["x"].tolist() == [5.0, 6.0, 5.0] and formed == [1]
    assert cols.keyed_by("x") is codes
