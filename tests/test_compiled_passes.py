"""Compiled passes over a long run's arrays against plain-Python statements of their rules
(issue 18).

* :func:`sim.stream_chains.handoffs` (:func:`sim.handoff_kernel.handoff_pairs`): which op of
  another stream a run may adopt or run beside, on random several-stream dependency tables,
  against the rules of its docstring written op by op with Python sets.
* :func:`sim.group_kernel.point_groups`: the roofline points' groups (rows with FLOPs, bytes
  and time > 0, equal in all five columns, in order of first appearance) against a dict; and
  the report's rollups through it equal pandas ``groupby`` on a real run's table.
* :func:`sim.plan_kernel.stream_keys`: each op's stage and stream key, by hand.
* :mod:`sim.deps_kernel`: the dependency tables between streams, against Python lists.
* :func:`sim.lane_kernel.quiet_lanes`: the streams' quiet-run arrays, against their rules.

The plan and engine that use them are checked against the op-by-op walk and engine in
tests/test_array_plan.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import sim.report.parquet_footer as F
import sim.report.rollups as R
from sim.columns import Columns
from sim.engine_aot import jit_kernels, kernels
from sim.stream_chains import handoffs


def _random_trace(rng, n_streams: int, n: int, n_deps: int):
    """A compute stream (0) whose ops hand collectives to comm streams (1..): each
    collective waits for a compute op and a random later compute op waits for it (the next:
    turns taken; further: beside), plus random cross-stream dependencies (duplicates
    included), ops no run may stamp and streams without a shared memory."""
    stream = np.zeros(n, dtype=np.int64)
    pairs = []
    i = 0
    while i < n - 1:
        if rng.random() < 0.4:   # a collective on a comm stream after compute op i
            stream[i + 1] = rng.integers(1, n_streams)
            pairs.append((i + 1, i))
            later = i + 2 + int(rng.integers(0, 3))
            if later < n:
                pairs.append((later, i + 1))
            i += 2
        else:
            i += 1
    for _ in range(n_deps):
        a, b = sorted(rng.integers(0, n, 2).tolist())
        pairs.append((b, a))   # b waits for a
    if n_deps:   # a duplicate dependency counts twice
        pairs.append(pairs[0])
    pairs = sorted((p for p in pairs if stream[p[0]] != stream[p[1]]), key=lambda p: p[0])
    position = np.zeros(n, dtype=np.int64)
    next_op = np.full(n, -1, dtype=np.int64)
    last: dict[int, int] = {}
    for j, st in enumerate(stream.tolist()):
        if st in last:
            next_op[last[st]] = j
            position[j] = position[last[st]] + 1
        last[st] = j
    waiter = np.array([p[0] for p in pairs], dtype=np.int64)
    waited = np.array([p[1] for p in pairs], dtype=np.int64)
    memory = np.zeros(n_streams, dtype=np.int64)
    memory[-1] = rng.choice([0, -1, 1])   # the last comm stream: maybe not sharing
    stops = rng.random(n) < 0.05
    return stream, position, next_op, waiter, waited, memory, stops


def _handoffs_by_rules(stream, position, next_op, waiter, waited, memory, stops):
    """The docstring's rules of :func:`handoffs`, op by op."""
    n = len(stream)
    waiters_of = [[] for _ in range(n)]
    waits_of = [[] for _ in range(n)]
    for w, d in zip(waiter.tolist(), waited.tolist(), strict=True):
        waiters_of[d].append(w)
        waits_of[w].append(d)
    only_wait = [ws[0] if len(ws) == 1 else -1 for ws in waits_of]
    adopt, beside = [-1] * n, [-1] * n
    for x in range(n):
        if len(waiters_of[x]) != 1:
            continue
        y = waiters_of[x][0]
        sx, sy = stream[x], stream[y]
        if sx == sy or memory[sx] < 0 or memory[sx] != memory[sy] or next_op[x] < 0 \
                or only_wait[y] != x or stops[y] or next_op[y] < 0:
            continue
        later = any(stream[d] == sx and position[d] > position[x]
                    for d in waits_of[next_op[y]])
        if not later:
            continue
        if waiters_of[y] == [next_op[x]]:
            adopt[x] = y
        else:
            beside[x] = y
    return adopt, beside, only_wait


@pytest.mark.parametrize("seed", range(6))
def test_handoffs_follow_their_rules_on_random_traces(seed):
    rng = np.random.default_rng(seed)
    args = _random_trace(rng, n_streams=3, n=400, n_deps=20)
    want = _handoffs_by_rules(*args)
    got = handoffs(*args)
    assert [g.tolist() for g in got] == [list(w) for w in want]
    # each outcome occurs: adopted, beside, and candidates refused
    assert sum(a >= 0 for a in want[0]) > 5 and sum(b >= 0 for b in want[1]) > 5


def test_handoffs_given_offsets_equal_computed_ones():
    rng = np.random.default_rng(11)
    args = _random_trace(rng, n_streams=2, n=300, n_deps=20)
    from sim.stream_order import offsets

    at = offsets(args[3], len(args[0]))
    for a, b in zip(handoffs(*args), handoffs(*args, wait_at=at), strict=True):
        assert np.array_equal(a, b)


def _point_groups_by_dict(key, f, b, s, t):
    seen: dict[tuple, int] = {}
    first, count = [], []
    for i, row in enumerate(zip(key.tolist(), f.tolist(), b.tolist(), s.tolist(), t.tolist(),
                                strict=True)):
        if not (row[1] > 0 and row[2] > 0 and row[4] > 0):
            continue
        g = seen.setdefault(row, len(seen))
        if g == len(first):
            first.append(i)
            count.append(0)
        count[g] += 1
    return first, count


def _run_point_groups(fn, cols, size: int, table_size: int):
    """``point_groups_i8`` of per-row ``cols`` (key, FLOPs, bytes, shards, time; ``by`` the
    row numbers) with a first/count capacity ``size`` and a table of ``table_size`` slots:
    (groups, first rows, counts)."""
    table = np.full(table_size, -1, dtype=np.int64)
    first, count = np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64)
    key, f, b, shards, t = cols
    n = fn(R._bits(key), R._bits(np.asarray(f, dtype=np.float64)),
           R._bits(np.asarray(b, dtype=np.float64)), np.ascontiguousarray(shards, dtype=np.int64),
           np.arange(len(key), dtype=np.int64), R._bits(t), table, first, count)
    return n, first[:max(n, 0)].tolist(), count[:max(n, 0)].tolist()


@pytest.mark.parametrize("which", ["aot", "jit"])
def test_point_groups_are_a_dicts_groups(which):
    """Groups of a random table (zeros, negatives, NaN and infinities among the values that
    must be > 0) against a dict's, with 64-bit shards (``_i8``)."""
    rng = np.random.default_rng(5)
    n = 5000
    key = rng.integers(0, 4, n)
    f = rng.choice([0.0, -1.0, 2.0, 3.0, np.inf, np.nan], n)
    b = rng.choice([0.0, 4.0, 5.0, -0.0], n)
    s = rng.integers(1, 3, n)
    t = rng.choice([1e-6, 2e-6, 0.0, -2e-6], n)
    fn = (kernels() if which == "aot" else jit_kernels()).point_groups_i8
    want_first, want_count = _point_groups_by_dict(key, f, b, s, t)
    got = _run_point_groups(fn, (key, f, b, s, t), 1024, 4096)
    assert got == (len(want_first), want_first, want_count)
    assert 10 < len(want_first) < 200 and sum(want_count) < n   # some rows left out
    cols, groups = (key, f, b, s, t), len(want_first)
    # a table just over twice the groups: probes run into other groups' slots (rows equal
    # but for one column among them), the same groups
    tight = 1 << int(np.ceil(np.log2(2 * groups)))
    assert _run_point_groups(fn, cols, groups, tight) == got
    # one group over the capacity or half the table: -1
    assert _run_point_groups(fn, cols, groups - 1, 4096)[0] == -1
    assert _run_point_groups(fn, cols, 1024, tight // 2)[0] == -1


@pytest.mark.parametrize("which", ["aot", "jit"])
def test_point_groups_of_few_codes_are_a_dicts_groups(which):
    """FLOPs, bytes and shards per code (20 codes, 5,000 rows: each code remembers its last
    group), the key and time per row, drawn so that a code's rows change key or time now
    and then and two codes share values: the dict's groups of the gathered columns."""
    rng = np.random.default_rng(11)
    n, codes = 5000, 20
    f_code = rng.choice([0.0, 2.0, 3.0, np.nan], codes)
    b_code = rng.choice([4.0, 5.0], codes)
    s_code = rng.integers(1, 3, codes)
    by = rng.integers(0, codes, n)
    key = np.where(rng.random(n) < 0.1, rng.integers(0, 3, n), 0)
    t = np.where(rng.random(n) < 0.1, rng.choice([1e-6, 2e-6, 0.0], n), 3e-6)
    want_first, want_count = _point_groups_by_dict(key, f_code[by], b_code[by], s_code[by], t)
    fn = (kernels() if which == "aot" else jit_kernels()).point_groups_i8
    table = np.full(4096, -1, dtype=np.int64)
    first, count = np.empty(1024, dtype=np.int64), np.empty(1024, dtype=np.int64)
    got = fn(R._bits(key), R._bits(f_code), R._bits(b_code), s_code.astype(np.int64),
             by.astype(np.int64), R._bits(t), table, first, count)
    assert (got, first[:got].tolist(), count[:got].tolist()) == \
        (len(want_first), want_first, want_count)
    assert 20 < len(want_first) and max(want_count) > 300   # repeats and changes both


@pytest.mark.parametrize("column", range(5))
def test_point_groups_tell_rows_apart_by_each_column(column):
    """64 values of one column, the others equal: 64 groups, however the probes meet."""
    cols = [np.ones(256, dtype=np.int64 if c in (0, 3) else np.float64) for c in range(5)]
    cols[column] = cols[column] * (np.arange(256) % 64 + 1)
    want_first, want_count = list(range(64)), [4] * 64
    for size in (128, 4096):
        assert _run_point_groups(kernels().point_groups_i8, cols, 64, size) == \
            (64, want_first, want_count)


@pytest.fixture(scope="module")
def run():
    from arch import load_arch
    from sim.run import simulate
    from workloads.models import get_model
    from workloads.scenario import Scenario

    return simulate(load_arch("h100"), get_model("gpt2-small"),
                    Scenario(batch=2, prompt_len=32, gen_len=40))


def test_compiled_points_equal_pandas_groupby(run, monkeypatch, rollups_match_pandas):
    """The compiled path (forced on a small table) gives pandas' groups, on the run's
    columns and on its DataFrame; and the same rows as the numpy path."""
    ops = run.columns("ops")
    plain = R.rollups(ops)
    monkeypatch.setattr(R, "COMPILED_ROWS", 0)
    compiled = R.rollups(ops)
    rollups_match_pandas(compiled, run.ops)
    rollups_match_pandas(R.rollups(run.ops), run.ops)
    assert compiled.point_rows.order == plain.point_rows.order
    for c in plain.point_rows.order:
        assert np.array_equal(compiled.point_rows[c], plain.point_rows[c]), c


@pytest.mark.parametrize("which", ["aot", "jit"])
def test_stream_keys_by_hand(which):
    """Four layers on two stages (layer -1: the embedding, stage 0); kinds: 0 compute, 1 a
    pipeline send, 2 a grouped collective (category 1), 3 an expert rank 1 (category 3).
    A send at layer 2 runs on layer 1's stage (0); stage 1 alone has ports."""
    fn = (kernels() if which == "aot" else jit_kernels()).stream_keys
    kind = np.array([0, 0, 2, 1, 3, 2, 0], dtype=np.int32)
    layer = np.array([-1, 0, 1, 2, 2, 3, 3], dtype=np.int32)
    stage_at = np.array([0, 0, 0, 1, 1], dtype=np.int32)   # at layer + 1
    send_k = np.array([False, True, False, False])
    cat_k = np.array([0, 0, 1, 3], dtype=np.int64)
    grouped_k = np.array([False, False, True, False])
    ported = np.array([False, True])
    n, width = len(kind), 4
    stage, here, code = (np.empty(n, dtype=np.int32) for _ in range(3))
    loaded = np.empty(n, dtype=bool)
    keys, firsts = np.empty(8, dtype=np.int64), np.empty(8, dtype=np.int64)
    got = fn(kind, layer, stage_at, send_k, cat_k, grouped_k, ported, width, stage, here,
             code, loaded, keys, firsts)
    assert here.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert stage.tolist() == [0, 0, 0, 0, 1, 1, 1]          # the send: stage 0
    # keys stage * 4 + category: 0, 0, 1, 0, 7, 5, 4
    assert code.tolist() == [0, 0, 1, 0, 2, 3, 4]
    assert got == 5 and keys[:5].tolist() == [0, 1, 7, 5, 4]
    assert firsts[:5].tolist() == [0, 2, 4, 5, 6]
    assert loaded.tolist() == [False, False, False, True, False, True, False]


@pytest.mark.parametrize("width", ["i4", "i8", "jit"])
def test_cross_deps_by_python_sets(width):
    """The dependency tables between streams (sim/deps_kernel.py) against Python lists:
    signalled ops, ops with a signalled dependency, the pairs in op order and stably by
    the op waited for, and both offset tables."""
    rng = np.random.default_rng(7)
    n = 300
    stream = rng.integers(0, 3, n).astype(np.int64)
    deps = [sorted(set(rng.integers(0, i, rng.integers(0, 4)).tolist())) if i else []
            for i in range(n)]
    dtype = np.int64 if width == "i8" else np.int32
    ptr = np.concatenate(([0], np.cumsum([len(d) for d in deps]))).astype(dtype)
    idx = np.array([d for ds in deps for d in ds], dtype=dtype)
    signal_want = [any(stream[o] != stream[d] for o in range(n) for d in deps[o] if d == x)
                   for x in range(n)]
    pairs_want = [(o, d) for o in range(n) for d in deps[o] if signal_want[d]]
    k = jit_kernels() if width == "jit" else kernels()
    wide = width != "i4"
    counts = k.cross_counts_i8 if wide else k.cross_counts_i4
    pairs = k.cross_pairs_i8 if wide else k.cross_pairs_i4
    signal, cand = np.empty(n, dtype=bool), np.empty(n, dtype=bool)
    wait_at, waiter_at = np.empty(n + 1, dtype=np.int64), np.empty(n + 1, dtype=np.int64)
    total = counts(ptr, idx, stream, signal, cand, wait_at)
    assert total == len(pairs_want) > 50
    waiter, waited, by_d, waiter_by = (np.empty(total, dtype=np.int64) for _ in range(4))
    pairs(ptr, idx, signal, waiter, waited, waiter_at, by_d, waiter_by)
    assert signal.tolist() == signal_want
    assert cand.tolist() == [any(signal_want[d] for d in deps[o]) for o in range(n)]
    assert list(zip(waiter.tolist(), waited.tolist(), strict=True)) == pairs_want
    assert wait_at.tolist() == [sum(1 for o, _ in pairs_want if o < i) for i in range(n + 1)]
    stable = sorted(pairs_want, key=lambda p: p[1])
    assert by_d.tolist() == [d for _, d in stable]
    assert waiter_by.tolist() == [o for o, _ in stable]
    assert waiter_at.tolist() == [sum(1 for _, d in pairs_want if d < i) for i in range(n + 1)]


def _next_marked(marked: list[bool]) -> list[int]:
    """Per position p in 0..m: the first marked position >= p (m: none)."""
    m = len(marked)
    return [next((q for q in range(p, m) if marked[q]), m) for p in range(m + 1)]


@pytest.mark.parametrize("which", ["aot", "jit"])
def test_quiet_lanes_by_their_rules(which):
    """The streams' quiet-run arrays (sim/lane_kernel.py) against their rules in plain
    Python, stream by stream, on random flags and adoptions (some following on from the one
    before, some not), ops of three streams interleaved; the stream without a memory is left
    unwritten."""
    from sim.stream_order import stream_layout

    rng = np.random.default_rng(3)
    n = 400
    stream = rng.choice([0, 1, 2], n, p=[0.4, 0.2, 0.4]).astype(np.int32)
    by_stream, bounds, _, _, _ = stream_layout(stream, 3)
    with_memory = np.array([True, False, True])
    stop_all, signal, cand, single = (rng.random(n) < q for q in (0.05, 0.3, 0.4, 0.2))
    next_op = rng.integers(-1, n, n).astype(np.int64)
    adopt_after = np.where(rng.random(n) < 0.3, rng.integers(0, n, n), -1).astype(np.int64)
    for c in (0, 2):     # some adoptions follow on from the one before on their stream
        follows = [o for o in by_stream[bounds[c]:bounds[c + 1]] if adopt_after[o] >= 0]
        for a, b in zip(follows[:-1:2], follows[1::2], strict=False):
            adopt_after[b] = next_op[adopt_after[a]] if next_op[adopt_after[a]] >= 0 else -1
    only_wait = np.where(rng.random(n) < 0.5, np.roll(adopt_after, 1), -1).astype(np.int64)
    # the last op's next op is stream 0's first adoption: a first adoption ends a run by
    # being first, not by reading a "previous adoption" out of range (index -1)
    first_y = next(int(adopt_after[o]) for o in by_stream[bounds[0]:bounds[1]]
                   if adopt_after[o] >= 0)
    next_op[n - 1] = first_y
    out = [np.zeros(n, dtype=bool) for _ in range(6)] + \
        [np.full(n + 3, -7, dtype=np.int64) for _ in range(2)] + \
        [np.empty(n, dtype=np.int64), np.empty(3, dtype=np.int64)]
    fn = (kernels() if which == "aot" else jit_kernels()).quiet_lanes
    fn(stream, bounds, with_memory, stop_all, signal, cand, single, adopt_after,
       only_wait, next_op, *out)
    stops_f, sig_f, wait_f, one_f, ends_f, left_f, block_f, adoption_f, at_f, count = out
    for c in (0, 2):
        lo, hi = bounds[c], bounds[c + 1]
        ids, m = by_stream[lo:hi], hi - lo
        ys = [int(adopt_after[o]) for o in ids]
        at = [p for p in range(m) if ys[p] >= 0]
        heads = {p for j, p in enumerate(at) if j == 0 or ys[p] != next_op[ys[at[j - 1]]]}
        want_ends = [bool(signal[o]) and ys[p] < 0 or p in heads for p, o in enumerate(ids)]
        want_left = [bool(cand[o]) and not (p > 0 and ys[p - 1] >= 0
                                            and only_wait[o] == ys[p - 1])
                     for p, o in enumerate(ids)]
        assert count[c] == len(at) and at_f[lo:lo + count[c]].tolist() == at
        assert 0 < len(heads) < len(at)   # both kinds of adoption occur
        for got, flags in ((stops_f, stop_all), (sig_f, signal), (wait_f, cand),
                           (one_f, single)):
            assert got[lo:hi].tolist() == flags[ids].tolist()
        assert ends_f[lo:hi].tolist() == want_ends and left_f[lo:hi].tolist() == want_left
        assert adoption_f[lo + c:hi + c + 1].tolist() == _next_marked([y >= 0 for y in ys])
        assert block_f[lo + c:hi + c + 1].tolist() == _next_marked(
            [bool(stop_all[o]) or want_ends[p] or want_left[p] for p, o in enumerate(ids)])
    lo, hi = bounds[1], bounds[2]     # the stream without a memory: untouched
    assert not ends_f[lo:hi].any() and (block_f[lo + 1:hi + 2] == -7).all()


@pytest.mark.parametrize("which", ["aot", "jit"])
@pytest.mark.parametrize("code", [-1, 3])
def test_stream_codes_out_of_range_are_refused(which, code):
    """A stream code outside ``0..n_streams-1`` (the arrays are indexed by it unchecked):
    ``ValueError`` from the layout and quiet-lane passes, nothing written out of bounds."""
    n = 50
    stream = np.zeros(n, dtype=np.int32)
    stream[::3] = 1
    stream[-7] = code
    fns = kernels() if which == "aot" else jit_kernels()
    bounds = np.empty(4, dtype=np.int64)
    with pytest.raises(ValueError, match="stream code"):
        fns.stream_layout(stream, bounds, *(np.empty(n, dtype=np.int64) for _ in range(4)))
    ok = np.where(stream == code, 2, stream).astype(np.int32)
    by_stream = np.empty(n, dtype=np.int64)
    fns.stream_layout(ok, bounds, by_stream, *(np.empty(n, dtype=np.int64) for _ in range(3)))
    flags = [np.zeros(n, dtype=bool) for _ in range(4)]
    out = [np.zeros(n, dtype=bool) for _ in range(6)] + \
        [np.full(n + 3, -7, dtype=np.int64) for _ in range(2)] + \
        [np.empty(n, dtype=np.int64), np.empty(3, dtype=np.int64)]
    links = [np.full(n, -1, dtype=np.int64) for _ in range(3)]
    with pytest.raises(ValueError, match="stream code"):
        fns.quiet_lanes(stream, bounds, np.ones(3, dtype=bool), *flags, *links, *out)


@pytest.mark.parametrize("width", ["i1", "i4", "i8"])
def test_used_labels_are_bincounts_nonzero(width, monkeypatch):
    """The labels a text column uses (sim/group_kernel.used_labels) for each code width:
    bincount's nonzero slots; and rollups' ``_used`` takes the compiled pass on a long
    column (forced here) with the same result."""
    from sim.columns import Text

    rng = np.random.default_rng(2)
    dtype = {"i1": np.int8, "i4": np.int32, "i8": np.int64}[width]
    codes = rng.choice([0, 3, 4, 9], 5000).astype(dtype)
    used = np.empty(12, dtype=bool)
    getattr(kernels(), f"used_labels_{width}")(codes, used)
    assert np.flatnonzero(used).tolist() == [0, 3, 4, 9]
    text = Text([f"l{i}" for i in range(12)], codes)
    plain = R._used(text)
    monkeypatch.setattr(R, "COMPILED_ROWS", 0)
    assert R._used(text).tolist() == plain.tolist() == [0, 3, 4, 9]


@pytest.mark.parametrize("which", ["aot", "jit"])
def test_summed_key_passes_by_hand(which):
    """The summed rows' key and groups (sim/group_kernel.py): a text column's codes through
    their lookup table, an integer column from its lowest value, groups numbered by first
    appearance; in place (the output is the key) as rollups runs them."""
    k = kernels() if which == "aot" else jit_kernels()
    codes = np.array([2, 0, 2, 1], dtype=np.int8)
    lut = np.array([10, 11, 12], dtype=np.int64)
    key = np.empty(4, dtype=np.int64)
    k.lut_key_i1(np.zeros(0, dtype=np.int64), 1, codes, lut, key)
    assert key.tolist() == [12, 10, 12, 11]
    k.lut_key_i1(key, 3, codes, lut, key)            # in place: key * 3 + lut[codes]
    assert key.tolist() == [48, 40, 48, 44]
    layer = np.array([5, 7, 5, 6], dtype=np.int32)
    k.offset_key_i4(key, 3, layer, 5, key)           # key * 3 + (layer - 5)
    assert key.tolist() == [144, 122, 144, 133]
    first = np.empty(4, dtype=np.int64)
    n = k.first_groups(key, np.empty(200, dtype=np.int64), key, first)   # ids over the key
    assert n == 3 and key.tolist() == [0, 1, 0, 2] and first[:n].tolist() == [0, 1, 3]
    seen = np.empty(4, dtype=bool)
    k.distinct_marked_i4(layer, np.array([True, False, True, True]), 4, seen)
    assert np.flatnonzero(seen).tolist() == [1, 2]   # layers 5 and 6 marked, 7 not


def test_long_table_rollups_take_the_compiled_key_passes(run, monkeypatch, rollups_match_pandas):
    """Forced onto a short table, the compiled key, group and step passes give pandas'
    groups (and the same summed rows and steps as numpy's passes)."""
    ops = run.columns("ops")
    plain = R.rollups(ops)
    monkeypatch.setattr(R, "COMPILED_ROWS", 0)
    compiled = R.rollups(run.columns("ops"))
    rollups_match_pandas(compiled, run.ops)
    for c in plain.summed_rows.order:
        assert np.array_equal(compiled.summed_rows[c], plain.summed_rows[c]), c
    assert compiled.decode_steps.tolist() == plain.decode_steps.tolist()


def _fresh_ops(gen: int = 40):
    """A new run's op table, its per-kind columns not formed yet."""
    from arch import load_arch
    from sim.run import simulate
    from workloads.models import get_model
    from workloads.scenario import Scenario

    res = simulate(load_arch("h100"), get_model("gpt2-small"),
                   Scenario(batch=2 if gen == 40 else 8, prompt_len=32, gen_len=gen))
    return res, res.columns("ops")


def test_rollups_read_per_kind_columns_through_their_codes(monkeypatch, rollups_match_pandas):
    """Forced onto a short table, the compiled passes sum and group the per-kind columns
    (FLOPs, bytes, shards, energies) through the ops' kind codes without forming them: the
    same summed rows, bit for bit, and points as the numpy passes over formed columns, and
    pandas' groups."""
    _, formed = _fresh_ops()
    plain = R.rollups(formed)
    res, ops = _fresh_ops()
    per_kind = ("flops", "bytes", "shards", "energy_J", "dram_bytes")
    assert all(ops.gathered(c) is not None for c in per_kind)
    monkeypatch.setattr(R, "COMPILED_ROWS", 0)
    compiled = R.rollups(ops)
    assert all(ops.gathered(c) is not None for c in per_kind)   # still not formed
    for got, want in ((compiled.summed_rows, plain.summed_rows),
                      (compiled.point_rows, plain.point_rows)):
        assert got.order == want.order and len(got) == len(want) > 0
        for c in want.order:
            assert np.array_equal(got[c], want[c]), c
    rollups_match_pandas(compiled, res.ops)


def _one_writer(ops, codes, bounds, path) -> None:
    """Arrow's own writer writing the whole table's rows in row groups of ``bounds`` (with
    the op times' level of a table written in row groups)."""
    import pyarrow.parquet as pq

    import sim.report.writer as W

    table, recoded = W._parquet_table(ops, codes)
    with pq.ParquetWriter(path, table.schema,
                          **W._writer_options(table, recoded, W.TIMES_LEVEL)) as out:
        for lo, hi in bounds:
            out.write_table(table.slice(lo, hi - lo), row_group_size=hi - lo)


@pytest.mark.parametrize("rows_per_group,encoders,gen", [(700, 1, 40), (700, 3, 40),
                                                         (2048, 2, 80), (700, 2, 300)])
def test_parquet_written_a_row_group_at_a_time_is_the_whole_tables(monkeypatch, tmp_path,
                                                                   rows_per_group, encoders,
                                                                   gen):
    """A long table written a row group at a time (sim/report/writer._write_chunked, forced
    here with short row groups), the groups encoded by one or several threads and merged,
    the chunks of columns whose rows repeat an encoded group's taken from that group, is the
    file Arrow's writer gives the same table written whole in the same row groups: the same
    bytes; and its per-kind columns were not formed for it. The groups hold whole decode
    steps (148 rows each here) after the first group; at 300 tokens the ``bound`` column
    changes in the decode (a step's attention turns compute-bound), so some groups take it
    from an earlier group and others encode it again. A group can take a chunk only from a
    group already encoded: with E encoders the (E + 2)-th group is the first sure to find a
    whole-step group done (at 2,048 rows and 40 tokens there were four groups, the last partial,
    and whether the third found the second done was the threads' timing: it failed once under
    load; 80 tokens make seven)."""
    import pyarrow.parquet as pq

    import sim.report.writer as W

    monkeypatch.setattr(W, "ROW_GROUP_ROWS", rows_per_group)
    monkeypatch.setattr(W, "ENCODERS", encoders)
    monkeypatch.setattr(R, "COMPILED_ROWS", 0)   # the rollups form no per-kind column either
    joined = []

    def counted(cols, footer=None):
        joined.append([c.leaf.get(F.SCHEMA_NAME).decode() for c in cols])
        return F.joined_group(cols, footer)

    monkeypatch.setattr(W, "joined_group", counted)
    taken = []
    real_taken = W._taken_rows
    monkeypatch.setattr(W, "_taken_rows", lambda *a: taken.append(a[1:3]) or real_taken(*a))
    _, ops = _fresh_ops(gen)
    assert len(ops) > 2 * rows_per_group
    codes = R.rollups(ops).factorised
    together = W._taken_together(ops)
    assert {"flops", "energy_J", "alone_s"} <= set(together)
    W._write_parquet(ops, tmp_path / "chunked.parquet", codes)
    assert ops.gathered("energy_J") is not None and ops.gathered("flops") is not None
    bounds = W._row_bounds(ops)
    step = np.asarray(ops["step"])
    first = int(np.searchsorted(step, step[0], side="right"))
    assert first == 148 and bounds[0][0] == 0 and bounds[-1][1] == len(ops)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert max(hi - lo for lo, hi in bounds) <= rows_per_group
    body = step[first:first + 148 * (gen - 1)].reshape(gen - 1, 148)
    assert (body == body[:, :1]).all()   # whole steps of 148 rows
    steps = rows_per_group // 148 * 148
    assert all((lo - first) % 148 == 0 for lo, _ in bounds[1:])
    assert all(hi - lo == steps for lo, hi in bounds[1:-1])
    _one_writer(ops, codes, bounds, tmp_path / "whole.parquet")
    assert (tmp_path / "chunked.parquet").read_bytes() == \
        (tmp_path / "whole.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "chunked.parquet").metadata.num_row_groups == len(bounds)
    assert joined and all(cols == list(ops.order) for cols in joined)
    assert len(joined) >= len(bounds) - 2 - encoders   # all but the first, last and racing
    # the per-kind float columns of each group taken at once (into a buffer each encoder
    # reuses group after group: the same bytes above)
    assert sorted(taken) == [b for b in bounds for _ in {id(v[1]) for v in together.values()}]


def test_row_bounds_of_a_table_without_steps_in_order(monkeypatch):
    """Steps that fall somewhere: fixed groups of ROW_GROUP_ROWS rows."""
    import sim.report.writer as W

    monkeypatch.setattr(W, "ROW_GROUP_ROWS", 1000)
    _, ops = _fresh_ops()
    n = len(ops)
    want = [(lo, min(n, lo + 1000)) for lo in range(0, n, 1000)]
    assert W._row_bounds(ops) != want   # steps in order: whole steps
    monkeypatch.setattr(ops, "block", lambda name, lo, hi: np.arange(n)[::-1][lo:hi].copy()
                        if name == "step" else Columns.block(ops, name, lo, hi))
    assert W._row_bounds(ops) == want


def test_subset_gathers_per_kind_columns_for_its_rows_alone():
    """``Columns.subset`` of a table whose per-kind columns are not formed: the rows of the
    formed table, equal bit for bit, and nothing formed for them."""
    _, ops = _fresh_ops()
    _, formed = _fresh_ops()
    rows = np.arange(3, len(ops), 97)
    got = ops.subset(rows)
    assert ops.gathered("energy_J") is not None and ops.gathered("shards") is not None
    want = formed.subset(rows)
    for c in ops.order:
        a, b = np.asarray(got[c]), np.asarray(formed[c])[rows]
        assert a.dtype == b.dtype and np.array_equal(a, b), c
        assert np.array_equal(np.asarray(want[c]), b), c


@pytest.mark.parametrize("column", ["flops", "bytes", "shards"])
def test_point_groups_through_codes_are_the_gathered_columns(column):
    """``point_groups`` with FLOPs, bytes and shards per code, read through 32-bit codes,
    gives the groups of the gathered columns read through 64-bit row numbers; 64 codes that
    differ in one of them alone, equal in all else, stay 64 groups (a tight table: probes
    meet)."""
    n_codes = 64
    per_code = {c: np.ones(n_codes) for c in ("flops", "bytes")}
    per_code["shards"] = np.ones(n_codes, dtype=np.int64)
    per_code[column] = per_code[column] * (np.arange(n_codes) + 1)
    by = np.tile(np.arange(n_codes, dtype=np.int32), 4)
    key, t = np.zeros(len(by), dtype=np.int64), np.full(len(by), 1e-6)
    gathered = (key, per_code["flops"][by], per_code["bytes"][by], per_code["shards"][by], t)
    for size in (128, 4096):
        want = _run_point_groups(kernels().point_groups_i8, gathered, 64, size)
        table = np.full(size, -1, dtype=np.int64)
        first, count = np.empty(64, dtype=np.int64), np.empty(64, dtype=np.int64)
        got = kernels().point_groups_i4(
            R._bits(key), R._bits(per_code["flops"]), R._bits(per_code["bytes"]),
            per_code["shards"], by, R._bits(t), table, first, count)
        assert (got, first[:got].tolist(), count[:got].tolist()) == want
        assert want == (64, list(range(64)), [4] * 64)


def test_each_kernel_field_is_the_loop_of_its_name():
    """The engine's extension and numba's dispatchers fill one positional tuple of ~27
    loops: each field holds the loop it is named after (``name`` or ``name_<width>``), on
    both paths, so a loop added out of order cannot run in another's place."""
    jit, aot = jit_kernels(), kernels()
    for field in jit._fields[:-1]:
        loop = getattr(jit, field)
        name = getattr(loop, "__name__", None) or loop.py_func.__name__
        assert field in (name, *(f"{name}_{w}" for w in ("i1", "i4", "i8", "narrow")),
                         *(f"{name}_{t}_{w}" for t in ("i1", "i2") for w in ("i4", "i8"))), \
            field
        if aot.kind == "aot":   # the extension's function carries its exported name
            assert getattr(aot, field).__wrapped__.__name__ == field


@pytest.mark.parametrize("lut_type", [np.int8, np.int16])
@pytest.mark.parametrize("code_type", [np.int32, np.int64])
def test_row_codes_through_a_lookup_table_are_np_takes(lut_type, code_type, monkeypatch):
    """A text column's codes through its lookup table (:meth:`RowCodes.rows`), the whole
    column and a block of rows, on the compiled path (every table and code type it is
    built for) and numpy's: ``np.take(lut, codes[lo:hi])``."""
    rng = np.random.default_rng(7)
    lut = rng.integers(-100, 100, 300).astype(lut_type)
    codes = rng.integers(0, 300, 5000).astype(code_type)
    rc = R.RowCodes(codes, lut, np.arange(300), lut.dtype, len(codes))
    for compiled_from in (0, 1 << 30):
        monkeypatch.setattr(R, "COMPILED_ROWS", compiled_from)
        for lo, hi in ((0, None), (1234, 4321), (17, 18)):
            got = rc.rows(lo, hi)
            want = np.take(lut, codes[lo:hi])
            assert got.dtype == lut.dtype and np.array_equal(got, want), (lo, hi)


def test_codes_outside_their_labels_raise_on_the_compiled_path_too(monkeypatch):
    """A long text column whose codes point past its labels is refused (numpy's error), not
    read out of bounds by the unchecked compiled pass."""
    from sim.columns import Text

    monkeypatch.setattr(R, "COMPILED_ROWS", 0)
    for bad in (np.array([0, 1, 5], dtype=np.int32), np.array([0, -1, 1], dtype=np.int8)):
        with pytest.raises((ValueError, IndexError)):
            R._label_codes(Text(["a", "b", "c"], bad), R._used(Text(["a", "b", "c"], bad)))


def test_op_table_columns_without_nulls_are_required_and_nulls_stay_optional(tmp_path):
    """``ops.parquet``'s columns hold no null, so each is written ``REQUIRED`` (no definition
    levels): every leaf's maximum definition level is 0, and the file reads back as the
    table; a DataFrame column with a null stays ``OPTIONAL`` and keeps its null."""
    import pandas as pd
    import pyarrow.parquet as pq

    import sim.report.writer as W

    _, ops = _fresh_ops()
    W._write_parquet(ops, tmp_path / "ops.parquet")
    schema = pq.ParquetFile(tmp_path / "ops.parquet").schema
    assert len(schema) == len(ops.order)
    assert [schema.column(i).max_definition_level for i in range(len(schema))] == \
        [0] * len(schema)
    back = pd.read_parquet(tmp_path / "ops.parquet")
    assert list(back.columns) == list(ops.order) and len(back) == len(ops)
    for c in ("op", "phase", "stream"):
        assert back[c].tolist() == ops.frame()[c].tolist(), c
    frame = pd.DataFrame({"op": ["a", None, "b"], "x": [1.0, 2.0, 3.0]})
    W._write_parquet(frame, tmp_path / "nulls.parquet")
    schema = pq.ParquetFile(tmp_path / "nulls.parquet").schema
    assert [schema.column(i).max_definition_level for i in range(2)] == [1, 0]
    back = pd.read_parquet(tmp_path / "nulls.parquet")["op"]
    assert back.isna().tolist() == [False, True, False] and back[[0, 2]].tolist() == ["a", "b"]


def test_row_codes_of_a_block_are_the_whole_columns_rows():
    """``RowCodes.rows(lo, hi)`` (what each parquet encoder forms for its row group) is rows
    ``lo..hi-1`` of the codes gathered whole, by hand: a lookup, codes as they are, and one
    label's zeros."""
    codes = np.array([2, 0, 2, 1, 0, 2], dtype=np.int32)
    lut = np.array([5, 3, 4], dtype=np.int8)
    looked = R.RowCodes(codes, lut, np.array(["x"] * 6, dtype=object), lut.dtype, 6)
    assert looked.rows().tolist() == [4, 5, 4, 3, 5, 4] and looked.rows().dtype == np.int8
    assert looked.rows(1, 4).tolist() == [5, 4, 3]
    plain = R.RowCodes.of((codes, np.array(["a", "b", "c"], dtype=object)))
    assert plain.rows(2, 5).tolist() == [2, 1, 0] and plain.rows().dtype == np.int32
    one = R.RowCodes(None, None, np.array(["a"], dtype=object), np.dtype(np.int8), 6)
    assert one.rows(1, 4).tolist() == [0, 0, 0] and one.rows().dtype == np.int8


def test_compiled_passes_release_the_gil():
    """The ahead-of-time kernels run without the GIL (``release_gil``, sim/micro/dram_aot.py):
    while one sums 2**24 rows on a thread, this thread keeps running Python - it is never
    held up for half the call (with the GIL held it would wait out all of it)."""
    import threading
    import time

    k = kernels()
    if k.kind != "aot":
        pytest.skip("no ahead-of-time build here (no C compiler): numba's JIT runs")
    n = 1 << 24
    ids, by = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    values, out = np.ones((1, 8)), np.zeros((1, 8))
    done, span = threading.Event(), []

    def work() -> None:
        t = time.perf_counter()
        k.group_sums_i8(ids, values, by, out)
        span.extend((t, time.perf_counter()))
        done.set()

    ticks = []
    thread = threading.Thread(target=work)
    thread.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
    thread.join()
    assert out[0].tolist() == [float(n)] * 8
    t0, t1 = span
    assert t1 - t0 > 0.02   # long enough to tell
    inside = [t0, *(t for t in ticks if t0 < t < t1), t1]   # this thread's steps in the call
    assert np.diff(inside).max() < (t1 - t0) / 2


@pytest.mark.parametrize("which", ["aot", "jit"])
@pytest.mark.parametrize("k", [0, 1, 3, 4])
def test_row_sums_are_bincounts_bit_for_bit(which, k):
    """``row_sums`` (the summed rows' per-row columns and counts in one pass) equals
    ``np.bincount(ids, weights=col)`` for each of its first ``k`` columns and
    ``np.bincount(ids)``, bit for bit, on values whose sums depend on their order; columns
    past ``k`` are not read (empty here)."""
    k_fn = (kernels() if which == "aot" else jit_kernels()).row_sums
    rng = np.random.default_rng(k)
    n, size = 5000, 37
    ids = rng.integers(0, size, n).astype(np.int64)
    cols = [rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n) for _ in range(k)]
    out, count = np.zeros((k, size)), np.zeros(size, dtype=np.int64)
    k_fn(ids, *(cols + [np.zeros(0)] * (4 - k)), k, out, count)
    assert np.array_equal(count, np.bincount(ids, minlength=size))
    for j in range(k):
        assert np.array_equal(out[j], np.bincount(ids, weights=cols[j], minlength=size)), j


def test_row_sums_of_more_than_four_columns_count_each_row_once(monkeypatch):
    """``rollups._row_sums`` over six per-row columns (two compiled passes of up to four):
    each column's sums are ``np.bincount``'s bit for bit and the counts ``np.bincount(ids)``
    - once, not once per pass."""
    from sim.columns import Columns

    monkeypatch.setattr(R, "COMPILED_ROWS", 0)
    rng = np.random.default_rng(6)
    n, size = 3000, 11
    ids = rng.integers(0, size, n).astype(np.int64)
    cols = {f"c{j}": rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6, n) for j in range(6)}
    table = Columns(cols, list(cols), n)
    sums, count = R._row_sums(table, list(cols), ids, size)
    assert count.tolist() == np.bincount(ids, minlength=size).tolist()
    for name, values in cols.items():
        assert np.array_equal(sums[name], np.bincount(ids, weights=values, minlength=size))
