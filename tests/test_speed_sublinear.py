"""Per-token cost of a long one-stream run (issue 18): the op table's columns are formed when
first read (a run's metrics and checks form only what they read, sums without keeping), the
engine's times are one cumulative array summed a block at a time, the invariants check a block
of rows at a time and total the trace per op kind. Each gives what the whole-array form gives,
bit for bit where it is a float result."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arch import load_arch
from sim import engine as engine_mod
from sim import invariants as inv_mod
from sim.columns import Columns, Lazy, Text, column_once
from sim.engine import _cumulative
from sim.invariants import InvariantError, _trace_totals, check_invariants
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.tracer import trace_model

SCENARIO = {"batch": 2, "prompt_len": 32, "gen_len": 12}


@pytest.fixture(scope="module")
def run():
    """A one-GPU run on arrays (one stream: the per-kind op table) and its trace."""
    model, sc = get_model("llama2-7b"), Scenario(**SCENARIO)
    return simulate(load_arch("h100"), model, sc), trace_model(model, sc, compact=True)


def test_lazy_column_formed_once_when_read_and_not_kept_by_once():
    calls = []

    def make():
        calls.append(1)
        return np.arange(4.0)

    t = Columns({"a": Lazy(make), "b": np.ones(4), "t": Lazy(lambda: Text(["x", "y"],
                                                                        np.array([0, 1, 1, 0])))},
                ["a", "b", "t"], 4)
    assert np.array_equal(t.once("a"), np.arange(4.0)) and len(calls) == 1
    assert np.array_equal(column_once(t, "a"), np.arange(4.0)) and len(calls) == 2
    assert isinstance(t._cols["a"], Lazy)            # once() kept nothing
    assert np.array_equal(t["a"], np.arange(4.0)) and len(calls) == 3
    assert np.array_equal(t["a"], np.arange(4.0)) and len(calls) == 3    # kept now
    assert t.is_text("t") and t.text("t").labels == ["x", "y"]
    assert list(t.once("t")) == ["x", "y", "y", "x"]
    eager = Columns({"a": np.arange(4.0), "b": np.ones(4),
                     "t": Text(["x", "y"], np.array([0, 1, 1, 0]))}, ["a", "b", "t"], 4)
    assert t.frame().equals(eager.frame())
    assert t.subset(np.array([2, 0])).frame().equals(eager.subset(np.array([2, 0])).frame())


def test_run_forms_only_the_op_columns_it_reads(run):
    """``simulate`` reads end and latency (kept) and sums the rest without keeping them: the
    columns only the report writes are never formed; read later, they equal the per-op
    formulas (start, end and the per-kind figures of the timeline's costs)."""
    res, _ = run
    table = res.columns("ops")
    for name in ("alone_s", "bound", "op", "op_class", "kind", "shards", "energy_J",
                 "flops", "roofline_s", "dram_bytes"):
        assert isinstance(table._cols[name], Lazy), name
    assert not isinstance(table._cols["end_s"], Lazy)
    frame = res.ops                     # the report's view forms every column
    assert not any(isinstance(v, Lazy) for v in table._cols.values())
    assert np.array_equal(frame["latency_s"].to_numpy(),
                          frame["end_s"].to_numpy() - frame["start_s"].to_numpy())
    assert float(frame["energy_J"].sum()) == res.metrics["dynamic_energy_J"]
    assert float(frame["flops"].sum()) == res.metrics["flops"]
    # an op starts where the one before it ends: start and end share one array of times
    assert np.array_equal(frame["start_s"].to_numpy()[1:], frame["end_s"].to_numpy()[:-1])
    assert frame["start_s"].iloc[0] == 0.0


@pytest.mark.parametrize("block", [1, 3, 7, 1 << 16])
def test_cumulative_blocks_equal_one_cumsum(monkeypatch, block):
    """Block by block from the last time of the block before: the very additions of one
    ``np.cumsum``; restarting each block at zero and adding the carry afterwards (another
    association) differs on these values, so the test would see it."""
    monkeypatch.setattr(engine_mod, "BLOCK", block)
    rng = np.random.default_rng(1)
    per_kind = np.array([1e16, 1.0, -1e16, 3.3e-7, 2.0 ** -30, 0.1])
    kind = rng.integers(0, len(per_kind), size=50)
    times = np.empty(len(kind) + 1)
    times[0] = 0.0
    _cumulative(per_kind, kind, times)
    want = np.cumsum(per_kind[kind])
    assert np.array_equal(times[1:], want) and times[0] == 0.0
    if 1 < block < len(kind):
        carry = np.concatenate([np.cumsum(per_kind[kind[lo:lo + block]]) for lo in
                                range(0, len(kind), block)])
        first = np.arange(len(kind)) // block * block     # each op's block start
        offsets = np.where(first > 0, want[np.maximum(first - 1, 0)], 0.0)
        assert not np.array_equal(carry + offsets, want)


def test_trace_totals_per_kind_equal_the_ordered_sums(run):
    _, trace = run
    flops, nbytes = _trace_totals(trace)
    assert math.isclose(flops, trace.total_flops, rel_tol=1e-14)
    assert math.isclose(nbytes, trace.total_bytes, rel_tol=1e-14)
    counts = np.bincount(trace.compact.kind, minlength=len(trace.compact.kinds))
    # by hand: the count of each kind times its FLOPs, summed exactly
    assert flops == math.fsum(k.flops * int(c) for k, c in zip(trace.compact.kinds, counts,
                                                                   strict=True))
    assert trace.compact.dep_ptr.dtype == np.int32 == trace.compact.dep_idx.dtype


def _table(res, **changed) -> Columns:
    t = res.columns("ops")
    data = {k: (changed[k] if k in changed else t[k] if not t.is_text(k) else t.text(k))
            for k in t.order}
    return Columns(data, t.order, len(t))


@pytest.mark.parametrize("block", [5, 1 << 16])
def test_invariants_by_blocks_name_the_op(monkeypatch, run, block):
    monkeypatch.setattr(inv_mod, "BLOCK", block)
    res, trace = run
    assert set(check_invariants(trace, _table(res)).values()) == {"passed"}
    t = res.columns("ops")
    n = len(t)
    # two ops below their bounds in different blocks: the one furthest below is named
    bound = np.array(t["roofline_s"], dtype=float)
    lat = np.asarray(t["latency_s"])
    bound[n - 3] = lat[n - 3] * 1.01
    bound[7] = lat[7] * 1.5
    with pytest.raises(InvariantError, match=r"^op 7 .*below its roofline"):
        check_invariants(trace, _table(res, roofline_s=bound))
    # an op starting before its dependency ends, in the last block
    start = np.array(t["start_s"], dtype=float)
    i = n - 2
    dep = int(trace.compact.dep_idx[trace.compact.dep_ptr[i]])
    start[i] = float(t["end_s"][dep]) - 1e-9
    with pytest.raises(InvariantError, match=rf"^op {i} .*before its dependency {dep}$"):
        check_invariants(trace, _table(res, start_s=start))
    # the FLOPs of the largest op changed by one part in 10^8: not conserved
    flops = np.array(t["flops"], dtype=float)
    flops[int(np.argmax(flops))] *= 1 + 1e-8
    with pytest.raises(InvariantError, match="flops not conserved"):
        check_invariants(trace, _table(res, flops=flops))
    # ids 0..n-1 but two swapped across a block boundary still ran once each; one twice fails
    ids = np.arange(n, dtype=np.int32)
    j = min(block, n - 1)
    ids[[j - 1, j]] = ids[[j, j - 1]]
    check_invariants(trace, _table(res, id=ids))
    ids[1] = 0
    with pytest.raises(InvariantError, match="lost or duplicated"):
        check_invariants(trace, _table(res, id=ids))


@pytest.mark.parametrize("labels,codes", [
    (["prefill", "decode"], [0, 0, 0, 1, 1, 1, 1]),     # one run each: slices
    (["prefill", "decode"], [0, 1, 0, 1]),              # interleaved: masks
    (["decode"], [0, 0]),                               # no prefill rows
    (["prefill", "decode", "prefill"], [0, 1, 2]),      # a label twice: masks
    (["prefill", "decode"], []),
])
def test_phase_rows_select_what_the_masks_select(labels, codes):
    from sim.run import _rows_of

    phase = Text(labels, np.array(codes, dtype=np.int8))
    values = np.arange(1.0, len(codes) + 1.0) * 0.1
    for label in ("prefill", "decode"):
        rows = _rows_of(phase, label)
        mask = phase.eq(label)
        assert np.array_equal(values[rows], values[mask])
        assert float(values[rows].sum()) == float(values[mask].sum())
    if codes == [0, 0, 0, 1, 1, 1, 1]:
        assert _rows_of(phase, "decode") == slice(3, 7)


def test_a_result_with_unformed_columns_pickles_and_copies(run):
    import copy
    import pickle

    res, _ = run
    model, sc = get_model("llama2-7b"), Scenario(**SCENARIO)
    fresh = simulate(load_arch("h100"), model, sc)
    assert isinstance(fresh.columns("ops")._cols["alone_s"], Lazy)
    back = pickle.loads(pickle.dumps(fresh))
    assert back.ops.equals(res.ops) and back.metrics == res.metrics
    assert copy.deepcopy(fresh).ops.equals(res.ops)


def test_simulate_leaves_no_collection_of_its_objects_to_the_exit():
    """Re-enabling the collector after a run would collect its young objects at once (a pass
    over every object the run made); they are moved to the oldest generation instead: no
    collection runs during ``simulate``, the collector is on after it and nothing stays
    frozen."""
    import gc

    model, sc = get_model("llama2-7b"), Scenario(**SCENARIO)
    arch = load_arch("h100")
    simulate(arch, model, sc)
    seen: list[int] = []

    def record(phase, info):
        if phase == "start":
            seen.append(info["generation"])

    assert gc.isenabled()
    gc.collect()
    gc.callbacks.append(record)
    try:
        simulate(arch, model, sc)
        count = gc.get_count()
    finally:
        gc.callbacks.remove(record)
    # without the move, the collector, enabled again on the way out, collects at once
    assert seen == [] and count[0] < 100
    assert gc.isenabled() and gc.get_freeze_count() == 0
