"""sim.stream_order: the stable stream order, bounds, each op's neighbours and position on its
stream (one compiled pass), and offsets, against a plain loop and by hand."""

from __future__ import annotations

import bisect

import numpy as np
import pytest

from sim.stream_order import offsets, stream_layout, stream_positions


def _by_loop(stream: list[int], n_streams: int):
    order = [i for c in range(n_streams) for i, s in enumerate(stream) if s == c]
    prev, after, last = [-1] * len(stream), [-1] * len(stream), {}
    for i, s in enumerate(stream):
        if s in last:
            prev[i], after[last[s]] = last[s], i
        last[s] = i
    return order, prev, after


@pytest.mark.parametrize("n_streams", [1, 4, 40_000])   # the last: codes over int16
def test_layout_equals_a_loop(n_streams):
    rng = np.random.default_rng(7)
    # stream 2 has no op (an empty stream between others)
    stream = rng.choice([c for c in range(min(n_streams, 6)) if c != 2] or [0], 500)
    stream = np.where(stream == 5, n_streams - 1, stream).astype(np.int32)
    order, prev, after = _by_loop(stream.tolist(), n_streams)
    codes = sorted(stream.tolist())
    bounds = [bisect.bisect_left(codes, c) for c in range(n_streams + 1)]
    assert offsets(stream, n_streams).tolist() == bounds
    layout = stream_layout(stream, n_streams)
    assert [a.tolist() for a in layout[:4]] == [order, bounds, prev, after]
    count: dict[int, int] = {}
    want_pos = []
    for s in stream.tolist():
        want_pos.append(count.get(s, 0))
        count[s] = want_pos[-1] + 1
    assert layout[4].tolist() == want_pos
    assert stream_positions(layout[0], layout[1]).tolist() == want_pos


def test_layout_hand_counted():
    """Streams 1, 0, 1, 1, 0 of three: stream 0 holds ops 1 and 4, stream 1 ops 0, 2, 3,
    stream 2 none; positions 0, 0, 1, 2, 1."""
    by_stream, bounds, prev, after, position = stream_layout(
        np.array([1, 0, 1, 1, 0], dtype=np.int32), 3)
    assert by_stream.tolist() == [1, 4, 0, 2, 3] and bounds.tolist() == [0, 2, 5, 5]
    assert prev.tolist() == [-1, -1, 0, 2, 1] and after.tolist() == [2, 4, 3, -1, -1]
    assert position.tolist() == [0, 0, 1, 2, 1]
    assert stream_positions(by_stream, bounds).tolist() == [0, 0, 1, 2, 1]
    assert stream_layout(np.array([1, 0, 1, 1, 0], dtype=np.int32), 3, positions=False)[4] is None


def test_layout_written_into_the_head_of_longer_tables():
    """``by_stream`` and ``prev`` given (the heads of a planned run's task tables, whose
    tails hold its transfers' tasks): the same hand-counted values written there, in place,
    the tails untouched."""
    tasks, before = np.full(8, 99, dtype=np.int64), np.full(9, 77, dtype=np.int64)
    by_stream, _, prev, _, _ = stream_layout(np.array([1, 0, 1, 1, 0], dtype=np.int32), 3,
                                             positions=False, by_stream=tasks[:5],
                                             prev=before[:5])
    assert np.shares_memory(by_stream, tasks) and np.shares_memory(prev, before)
    assert tasks.tolist() == [1, 4, 0, 2, 3, 99, 99, 99]
    assert before.tolist() == [-1, -1, 0, 2, 1, 77, 77, 77, 77]


@pytest.mark.parametrize("m", [0, 1, 7, 60])
def test_next_at_equals_a_search(m):
    """``sim.engine_arrays._next_at``: per position the first marked one at or after it."""
    from sim.engine_arrays import _next_at

    rng = np.random.default_rng(m)
    for share in (0.0, 0.2, 0.9, 1.0):
        at = np.flatnonzero(rng.random(m) < share)
        want = [next((a for a in at.tolist() if a >= p), m) for p in range(m + 1)]
        assert _next_at(at, m).tolist() == want


def test_next_at_by_hand():
    from sim.engine_arrays import _next_at

    assert _next_at(np.array([1, 4]), 6).tolist() == [1, 1, 4, 4, 4, 6, 6]


def test_flat_rows_by_hand():
    """Three ragged rows, one empty, as offsets and one flat array; no rows at all."""
    from sim.columns import flat_rows

    ptr, flat = flat_rows([[3, 1], [], np.array([7])])
    assert ptr.tolist() == [0, 2, 2, 3] and flat.tolist() == [3, 1, 7]
    assert ptr.dtype == np.int64 and flat.dtype == np.int64
    ptr, flat = flat_rows([[0.5], [1.5, 2.5]], np.float64)
    assert ptr.tolist() == [0, 1, 3] and flat.dtype == np.float64
    ptr, flat = flat_rows([])
    assert ptr.tolist() == [0] and len(flat) == 0


@pytest.mark.parametrize("codes", [np.int32, np.int64])
def test_per_op_alone_by_pairs_equals_per_op(codes):
    """``sim.engine_arrays._per_op_alone``: bytes through the stream's memory (none without
    one), the duration alone (the longer of the latency and the bytes at the memory's rate),
    the share flag and the latency, worked out per (kind, stream) pair and gathered (by the
    compiled pass for 32-bit codes, numpy's gathers for others) - or per op where pairs
    outnumber ops - equal a plain loop over the ops."""
    import math

    from sim.engine_arrays import _per_op_alone

    rng = np.random.default_rng(5)
    for n_ops, n_kinds in ((5000, 40), (30, 50_000)):    # pairs gathered; per op
        kind = rng.integers(0, n_kinds, n_ops).astype(codes)
        stream = rng.integers(0, 3, n_ops).astype(codes)
        per_kind = rng.random(n_kinds) * 1e-5
        dram = np.where(rng.random(n_kinds) < 0.7, rng.random(n_kinds) * 1e7, 0.0)
        shares = rng.random(n_kinds) < 0.2
        rate = np.array([2e12, math.inf, 3.35e12])      # stream 1 has no contended memory
        size, dur, stop, lat = _per_op_alone(kind, stream, per_kind, dram, shares, rate)
        assert size.dtype == dur.dtype == lat.dtype == np.float64 and stop.dtype == bool
        for i in range(n_ops):
            k, s = kind[i], stream[i]
            want_size = dram[k] if math.isfinite(rate[s]) else 0.0
            want_dur = max(per_kind[k], want_size / rate[s]) if want_size > 0 else per_kind[k]
            assert size[i] == want_size and dur[i] == want_dur and lat[i] == per_kind[k]
            assert stop[i] == (shares[k] and math.isfinite(rate[s]))


def test_a_long_runs_layout_on_a_thread_and_compiled_kinds_give_the_same_run(monkeypatch):
    """Forced onto a short several-stream run (70B TP2 x PP4 x 4, ``--overlap``): the streams
    laid out on a second thread while the kinds are priced, the kinds' first ops found by
    the compiled pass, and the decode's replay in two parts on two threads (each with the
    streams that move bytes through its resources, found from the run's loads) give the run
    of the plain calls, op for op and resource for resource - and all three paths are taken
    (counted)."""
    from conftest import assert_same_run

    import sim.columns as C
    import sim.engine_aot as AOT
    import sim.engine_arrays as EA
    import sim.engine_shared as ES
    from arch import load_arch
    from sim.run import simulate
    from sim.system.schedule import Policies
    from workloads.models import get_model
    from workloads.scenario import Scenario

    def run():
        return simulate(load_arch("dgx-h100"), get_model("llama2-70b"),
                        Scenario(batch=8, prompt_len=512, gen_len=8, tp=2, pp=4,
                                 microbatches=4), policies=Policies(overlap=True))

    plain = run()
    threads, kernels = [], []
    real_thread, real_kernels = EA._on_thread, EA.kernels
    monkeypatch.setattr(EA, "THREADED_LAYOUT", 0)
    monkeypatch.setattr(C, "COMPILED_FIRST_ROWS", 0)
    monkeypatch.setattr(EA, "_on_thread", lambda fn, *a: threads.append(fn) or
                        real_thread(fn, *a))
    compiled = real_kernels()
    spied = compiled._replace(first_groups_i4=lambda *a: kernels.append(len(a[0])) or
                              compiled.first_groups_i4(*a))
    monkeypatch.setattr(EA, "kernels", lambda: spied)
    monkeypatch.setattr(AOT, "kernels", lambda: spied)
    monkeypatch.setattr(ES, "PARALLEL_REPLAY_OPS", 0)
    monkeypatch.setattr(ES, "CORES", 2)
    parts = []
    real_parts = ES._parts
    monkeypatch.setattr(ES, "_parts", lambda *a: parts.append(real_parts(*a)) or parts[-1])
    forced = run()
    # the layout on a thread, the kinds' first ops by the compiled pass over every op, and
    # the replay in two parts
    assert stream_layout in threads and kernels == [len(plain.ops)]
    assert [len(p) for p in parts] == [2]
    assert_same_run(forced, plain)
