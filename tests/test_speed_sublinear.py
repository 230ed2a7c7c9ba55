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
from sim.columns import LEAF, Columns, Lazy, Text, _pairwise_matches, column_once, gathered_sum
from sim.engine import _cumulative
from sim.invariants import InvariantError, _trace_totals, check_invariants
from sim.run import simulate
from workloads.fold import first_seen
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
    # summed per op kind by the run, over the rows here: equal up to the order of the sum
    assert math.fsum(frame["energy_J"]) == pytest.approx(res.metrics["dynamic_energy_J"],
                                                         rel=1e-13)
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


# --- sums and blocks of per-kind columns without forming them; first occurrences -------------

def _spread(n: int, seed: int) -> np.ndarray:
    """Values of widely spread magnitudes and both signs (sums depend on their order)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n) * np.exp(rng.uniform(-4.0, 4.0, n))


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("n,lo", [(10, 0), (LEAF, 0), (LEAF + 1, 0), (3 * LEAF + 12_345, 0),
                                  (2 * LEAF + 8, 5), (5 * LEAF - 3, 1_000),
                                  (LEAF + 131, 7), (4 * LEAF + 1_037, 3)])
def test_gathered_sum_is_numpys_sum_of_the_gathered_column(n, lo, compiled, monkeypatch):
    """numpy's pairwise order over leaves, gathered into one buffer or read in place by the
    compiled pass (``compiled``: from any length; 32- and 64-bit codes): the float numpy's
    sum of the formed column (or of a slice of it) gives."""
    import sim.columns as C

    monkeypatch.setattr(C, "COMPILED_SUM_ROWS", 0 if compiled else 1 << 62)
    assert not compiled or C._sums_as_numpy("compiled", C._compiled_sum)
    rng = np.random.default_rng(n)
    values = _spread(997, n)
    by = rng.integers(0, len(values), size=n + lo + 17).astype(np.int32)
    formed = values[by]
    hi = lo + n
    for codes in (by, by.astype(np.int64)):
        assert gathered_sum(values, codes, lo, hi) == float(formed[lo:hi].sum())
        if lo == 0:
            assert gathered_sum(values, codes[:n]) == float(formed[:n].sum())


@pytest.mark.parametrize("compiled", [False, True])
def test_gathered_sum_follows_numpys_split_not_another(compiled, monkeypatch):
    """Splitting halves without numpy's rounding to a multiple of 8 (another association of
    the same additions) gives other floats on some of these draws; gathered_sum never does,
    by leaves gathered or by the compiled pass."""
    import sim.columns as C

    monkeypatch.setattr(C, "COMPILED_SUM_ROWS", 0 if compiled else 1 << 62)
    n = 3 * LEAF + 12_345

    def halves(formed, a, m):
        if m <= LEAF:
            return np.add.reduce(formed[a:a + m])
        h = m // 2
        return halves(formed, a, h) + halves(formed, a + h, m - h)

    assert _pairwise_matches()
    other = 0
    for seed in range(12):
        values = _spread(997, seed)
        by = np.random.default_rng(seed).integers(0, len(values), size=n)
        want = float(values[by].sum())
        assert gathered_sum(values, by) == want
        other += float(halves(values[by], 0, n)) != want
    assert other >= 1


def test_total_and_block_read_a_gathered_column_without_forming_it():
    rng = np.random.default_rng(3)
    n = 2 * LEAF + 99
    values, by = _spread(50, 4), rng.integers(0, 50, size=n).astype(np.int32)
    lazy = Lazy(lambda: values[by.astype(np.intp)], by=by, values=values)
    t = Columns({"x": lazy, "id": Lazy(lambda: np.arange(n), arange=True)}, ["x", "id"], n)
    want = values[by]
    assert t.total("x") == float(want.sum())
    assert t.total("x", slice(7, n - 5)) == float(want[7:n - 5].sum())
    mask = np.zeros(n, dtype=bool)
    mask[::3] = True
    assert t.total("x", mask) == float(want[mask].sum())
    assert np.array_equal(t.block("x", LEAF - 3, LEAF + 4), want[LEAF - 3:LEAF + 4])
    assert t.is_range("id") and isinstance(t._cols["x"], Lazy)     # nothing formed
    assert t.keyed_by("x") is by
    assert np.array_equal(t["x"], want) and t.total("x") == float(t["x"].sum())
    with pytest.raises(ValueError, match="values need the codes"):
        Lazy(lambda: values, values=values)


@pytest.mark.parametrize("fold", [False, True])
def test_long_run_metrics_equal_the_sums_of_the_formed_columns(fold, monkeypatch):
    """A run longer than a leaf (> 65,536 ops): its metrics sum the per-kind columns without
    forming them; the formed columns' own sums (the report's view) are the same floats. With
    its decode steps folded (workloads/fold.py) the metrics are each kind's figure times its
    count: equal to the formed sums to float rounding, the prefill's exactly."""
    import workloads.tracer as tracer

    monkeypatch.setattr(tracer, "FOLD", fold)
    model, sc = get_model("llama2-7b"), Scenario(batch=2, prompt_len=32, gen_len=180)
    res = simulate(load_arch("h100"), model, sc)
    assert (res.folded_ops() is not None) == fold
    table = res.columns("ops")
    assert len(table) > LEAF
    for name in ("energy_J", "flops", "bytes", "dram_bytes", "roofline_s", "alone_s"):
        assert isinstance(table._cols[name], Lazy), name
    m, parts = res.metrics, res.energy_by_component
    frame = res.ops
    prefill = (frame["phase"] == "prefill").to_numpy()
    same = (lambda v: pytest.approx(v, rel=1e-12)) if fold else (lambda v: v)
    assert m["dynamic_energy_J"] == same(float(frame["energy_J"].sum()))
    assert parts["compute"] == same(float(frame["energy_compute_J"].sum()))
    assert parts["memory"] == same(float(frame["energy_memory_J"].sum()))
    assert parts["link"] == same(float(frame["energy_link_J"].sum()))
    assert m["flops"] == same(float(frame["flops"].sum()))
    assert m["bytes"] == same(float(frame["bytes"].sum()))
    assert m["dram_bytes"] == same(float(frame["dram_bytes"].sum()))
    assert m["prefill_flops"] == float(frame["flops"].to_numpy()[prefill].sum())
    assert m["decode_flops"] == same(float(frame["flops"].to_numpy()[~prefill].sum()))


def test_a_run_keeps_two_floats_per_op_in_its_table(monkeypatch):
    """After ``simulate`` the op table holds, per op, one time (start and end are views of one
    array of n + 1 times) and its latency; the one-stream run's stream codes are one int64
    for every row (8 bytes per op more when they were a row each), every per-kind column is
    still unformed. (Decode steps stamped: a folded run holds no per-op array at all until
    its table is read, test_a_folded_run_holds_no_array_per_op.)"""
    import workloads.tracer as tracer

    monkeypatch.setattr(tracer, "FOLD", False)
    res = simulate(load_arch("h100"), get_model("llama2-7b"), Scenario(**SCENARIO))
    table = res.columns("ops")
    n = len(table)
    owned: dict[int, int] = {}
    for name in table.order:
        value = table._cols[name]
        if isinstance(value, Lazy) or name == "phase":   # phase: the trace's own codes
            continue
        arr = np.asarray(value.codes if isinstance(value, Text) else value)
        base = arr
        while base.base is not None:
            base = base.base
        owned[id(base)] = base.nbytes
    assert sum(owned.values()) == 8 * (n + 1) + 8 * n + 8


def test_a_folded_run_holds_no_array_per_op():
    """With its decode steps folded, ``simulate`` leaves the per-op arrays unbuilt (the trace's
    and the timeline's): the run holds O(stamped rows + kinds), the table is built when read,
    and then holds the n + 1 times."""
    res = simulate(load_arch("h100"), get_model("llama2-7b"), Scenario(**SCENARIO))
    fold = res.folded_ops()
    assert fold is not None and fold.arrays.folded and fold.timeline._times is None
    n, steps = len(fold), fold.arrays.fold
    assert len(steps.head.kind) == 3 * steps.size and steps.reps == SCENARIO["gen_len"] - 3
    table = res.columns("ops")
    assert len(table) == n and not fold.arrays.folded
    assert fold.timeline._times.nbytes == 8 * (n + 1)


def _first_by_min_at(kind: np.ndarray, n_kinds: int):
    first = np.full(n_kinds, len(kind), dtype=np.int64)
    np.minimum.at(first, kind, np.arange(len(kind), dtype=np.int64))
    used = np.flatnonzero(first < len(kind))
    used = used[np.argsort(first[used])]
    return used, first[used]


@pytest.mark.parametrize("order", ["appearance", "shuffled", "gap", "empty"])
def test_first_seen_equals_the_minimum_at_scan(order):
    rng = np.random.default_rng(7)
    kind = rng.integers(0, 40, size=3000)
    # renumber kinds in the order they first appear (what a compact trace does)
    _, pos = np.unique(kind, return_index=True)
    rank = np.empty(40, dtype=np.int64)
    rank[np.unique(kind)[np.argsort(pos)]] = np.arange(len(pos))
    kind = rank[kind].astype(np.int32)
    n_kinds = 45
    if order == "shuffled":      # numbered otherwise: the scan decides
        kind = (kind * 7 + 3) % 40
    elif order == "gap":         # a kind number skipped
        kind = np.where(kind >= 5, kind + 1, kind)
    elif order == "empty":
        kind = kind[:0]
    want_used, want_first = _first_by_min_at(kind, n_kinds)
    for codes in (kind, kind.astype(np.int64)):
        for got in (first_seen(codes, n_kinds), _compiled_first_seen(codes, n_kinds)):
            used, first = got
            assert np.array_equal(used, want_used) and np.array_equal(first, want_first)
            assert used.dtype == np.int64 == first.dtype


@pytest.mark.parametrize("codes", [[0, 3, 5], [0, -1, 2]])
def test_first_occurrences_refuse_codes_outside_their_range(codes, monkeypatch):
    """The compiled pass writes a table indexed by the codes: codes outside 0..n-1 are
    refused before it runs (numpy's path raises IndexError)."""
    import sim.columns as C

    monkeypatch.setattr(C, "COMPILED_FIRST_ROWS", 0)
    with pytest.raises(ValueError, match="outside 0..4"):
        C.first_occurrences(np.array(codes, dtype=np.int64), 5)


def _compiled_first_seen(kind, n_kinds):
    """The engine's first_seen, its compiled pass forced onto a short table."""
    import sim.columns as C

    keep = C.COMPILED_FIRST_ROWS
    C.COMPILED_FIRST_ROWS = 0
    try:
        return C.first_occurrences(kind, n_kinds)
    finally:
        C.COMPILED_FIRST_ROWS = keep


def test_distinct_ints_by_counting_and_by_sorting():
    """Sorted distinct ints: counted over a narrow range, sorted over a wide one (both equal
    ``np.unique``'s answer)."""
    from sim.columns import distinct_ints

    narrow = np.array([7, 3, 7, 0, 3, 12], dtype=np.int64)
    wide = np.array([5, 2**30, 5, -3, 2**30, 4], dtype=np.int64)
    assert distinct_ints(narrow).tolist() == [0, 3, 7, 12]
    assert distinct_ints(wide).tolist() == [-3, 4, 5, 2**30]
    assert distinct_ints(np.zeros(0, dtype=np.int32)).dtype == np.int64


@pytest.mark.parametrize("codes", [[3, 3, 1, 2, 1], [9, -4, 9, 0, -4, 7], [0, 1, 2, 2, 0],
                                   [5, 2**30, 5, -3], [4]])
def test_in_first_order_by_scan_equals_np_unique(codes):
    """The first-occurrence renumbering by a scan over a narrow range equals ``np.unique``'s
    renumbered by first occurrence (the wide-range path); by hand for the first: values 3, 1,
    2 first met at 0, 2, 3, elements 0 0 1 2 1."""
    from sim.columns import in_first_order

    arr = np.array(codes, dtype=np.int64)
    uniq, first, inverse = np.unique(arr, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    got = in_first_order(arr)
    for a, b in zip(got, (uniq[order], first[order], rank[inverse]), strict=True):
        assert a.tolist() == b.tolist() and a.dtype == np.int64
    if codes == [3, 3, 1, 2, 1]:
        assert [g.tolist() for g in got] == [[3, 1, 2], [0, 2, 3], [0, 0, 1, 2, 1]]


@pytest.mark.parametrize("wide", [False, True])
def test_run_codes_equal_exactly_for_equal_runs(wide):
    """Runs of integers get one code exactly when they are equal: by hand, runs [1, 2],
    [1, 2], [2, 1], [1], [], [1, 2, 3], [1, 2] give codes equal at 0, 1, 6 and distinct
    elsewhere; with values 1, 2**40 and 2**41 for 1, 2 and 3 (``wide``) the mixed-radix code
    of a run passes 2**62 by its third value and is renumbered on the way, and the answer is
    the same; a seeded draw of 400 runs of up to 6 of the 3 values agrees with grouping them
    as tuples."""
    from sim.columns import run_codes

    spread = np.array([0, 1, 2, 3] if not wide else [0, 1, 2**40, 2**41], dtype=np.int64)
    runs = [[1, 2], [1, 2], [2, 1], [1], [], [1, 2, 3], [1, 2]]
    flat = spread[np.array([v for r in runs for v in r], dtype=np.int64)]
    bounds = np.concatenate([[0], np.cumsum([len(r) for r in runs])])
    got = run_codes(flat, bounds).tolist()
    assert got[0] == got[1] == got[6]
    assert len({got[0], got[2], got[3], got[4], got[5]}) == 5
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 7, size=400)
    values = spread[rng.integers(1, 4, size=int(lengths.sum()))]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    codes = run_codes(values, bounds).tolist()
    as_tuples = [tuple(values[a:b].tolist())
                 for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    for i in range(0, 400, 7):
        for j in range(400):
            assert (codes[i] == codes[j]) == (as_tuples[i] == as_tuples[j])


def test_slice_indices_by_hand():
    """Ragged rows gathered in one step: slices [5, 7), [], [0, 3), [2, 3)."""
    from workloads.ragged import slice_indices

    got = slice_indices(np.array([5, 9, 0, 2]), np.array([2, 0, 3, 1]))
    assert got.tolist() == [5, 6, 0, 1, 2, 2] and got.dtype == np.int64
    assert slice_indices(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)).size == 0
    assert slice_indices(np.array([4]), np.array([0])).size == 0
