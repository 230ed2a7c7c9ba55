"""A several-stream run's first step by the sharing pass, the rest as a longest path whose
sharing is replayed on its times (sim/replay_kernel.py, sim/engine_shared.py).

Where it settles, every start, end and resource figure must be the pass's over the whole
run (and SimPy's), bit for bit; where it does not, the pass over the whole run answers.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine_shared import RATE, _simpy, stream_arrays

import sim.engine_shared as engine_shared
from sim.engine_aot import kernels
from sim.engine_shared import DONE, LATE, PAUSED, SharedInputs, _timed, step_end
from sim.replay_kernel import settled

NONE = np.zeros(0, dtype=np.int64)


def _inputs(streams, lat, nbytes, deps) -> SharedInputs:
    """The pass's inputs for a run on one memory of :data:`RATE` B/s (as
    test_engine_shared's cases), no link loads, no reservations."""
    n = len(lat)
    prev, ptr, idx, by_stream, bounds = stream_arrays(streams, n, deps)
    return SharedInputs(ptr, idx, prev, np.asarray(lat, dtype=np.float64),
                        np.full(n, -1, dtype=np.int64), np.zeros(1, dtype=np.int64), NONE,
                        np.zeros(0), np.zeros(n, dtype=np.int64),
                        np.asarray(nbytes, dtype=np.float64), np.zeros(0), np.array([RATE]),
                        np.zeros(1), by_stream, bounds)


def _whole_pass(run: SharedInputs):
    """The pass over the whole run: (code, start, end, [moved, busy, last])."""
    n = len(run.lat)
    start, end = np.empty(n), np.empty(n)
    state = [np.zeros(1), np.zeros(1), np.zeros(1)]
    code = kernels().shared_times(*run._replace(reserved=np.zeros(1)), start, end, *state,
                                  n + 1, np.zeros(len(run.bounds) - 1, dtype=np.int64),
                                  np.full(2, -1, dtype=np.int64))
    return code, start, end, [float(x[0]) for x in state]


def _stepped_case(rng: np.random.Generator, streams: int = 3, steps: int = 12):
    """``streams`` streams of one op per step, ids step by step; each first op waits for the
    one before, each later op may wait for an op of the two steps before it; latencies
    0.01-0.2 s, bytes 0-0.5 or 0-15 B at 100 B/s: few or many ops end on their transfer,
    alone or shared."""
    ids = [[j * streams + k for j in range(steps)] for k in range(streams)]
    n = streams * steps
    lat = rng.uniform(0.01, 0.2, n).tolist()
    nbytes = rng.uniform(0.0, rng.choice([0.5, 15.0]), n).tolist()
    deps = {k: (k - 1,) for k in range(1, streams)}   # no tie at 0: the first ops in turn
    for i in range(streams, n):
        if rng.random() < 0.4:
            deps[i] = (int(rng.integers(max(0, i - 2 * streams), i)),)
    step = np.arange(n) // streams
    return ids, lat, nbytes, deps, step


def _finished_cases(seed: int, tries: int):
    """(streams, lat, nbytes, deps, step, inputs, whole pass) of the random runs of ``tries``
    (:func:`_stepped_case`) that the whole pass times (no tie it cannot order)."""
    rng = np.random.default_rng(seed)
    for _ in range(tries):
        ids, lat, nbytes, deps, step = _stepped_case(rng)
        run = _inputs(ids, lat, nbytes, deps)
        whole = _whole_pass(run)
        if whole[0] == DONE:
            yield ids, lat, nbytes, deps, step, run, whole


def test_step_end_is_the_first_op_past_the_first_step():
    assert step_end(np.array([0, 0, 0, 1, 1, 2])) == 3
    assert step_end(np.array([5, 5, 7, 6])) == 2     # the first later step, not the next
    assert step_end(np.array([4, 4])) == 2 and step_end(np.zeros(0, dtype=np.int64)) == 0


def test_settled_counts_the_ends_off_and_gives_the_floors():
    """Op 1 ends at its timeout, its transfer later: off; op 3 ends where its transfer
    finishes. Ops before ``first`` and fixed ones are not looked at; a second part's finish
    counts where it is later."""
    start = np.array([0.0, 1.0, 2.0, 3.0])
    lat = np.array([0.5, 0.5, 0.5, 0.5])
    finish = np.array([0.25, 1.75, -np.inf, 3.75])
    end = np.array([0.5, 1.5, 2.5, 3.75])
    floor, free, none = np.empty(4), np.zeros(4, dtype=np.uint8), np.zeros(0)
    assert settled(0, free, start, end, lat, finish, none, floor) == 1
    assert floor.tolist() == [-np.inf, 1.75, -np.inf, 3.75]
    # op 1 fixed (timed apart): nothing off; ops before ``first`` are not looked at
    assert settled(0, np.array([0, 1, 0, 0], dtype=np.uint8), start, end, lat, finish, none,
                   floor) == 0
    assert settled(2, free, start, end, lat, finish, none, floor) == 0
    later = np.array([0.0, -np.inf, -np.inf, 3.9])   # a second part: op 3 finishes later
    assert settled(0, free, start, end, lat, finish, later, floor) == 2
    assert floor.tolist() == [-np.inf, 1.75, -np.inf, 3.9]


@pytest.mark.parametrize("build", ["aot", "jit"])
def test_the_pass_stops_after_the_first_step_where_nothing_is_in_flight(build):
    """Stopped at ``head``, the ops it timed are the whole pass's, each stream's next op
    starts after every change it made, and each op it did not start comes after those."""
    from sim.shared_kernel import shared_times

    kernel = kernels().shared_times if build == "aot" else shared_times
    stopped = 0
    for ids, lat, _, _, step, run, (_, w_start, w_end, _) in _finished_cases(3, 40):
        n = len(lat)
        head = step_end(step)
        start, end = np.full(n, np.nan), np.full(n, np.nan)
        state = [np.zeros(1), np.zeros(1), np.zeros(1)]
        paused = np.zeros(len(ids), dtype=np.int64)
        got = kernel(*run._replace(reserved=np.zeros(1)), start, end, *state, head, paused,
                     np.full(2, -1, dtype=np.int64))
        assert got in (DONE, PAUSED)
        if got == DONE:
            continue
        stopped += 1
        ran = np.concatenate([run.by_stream[lo:p] for lo, p in
                              zip(run.bounds[:-1], paused, strict=True)])
        rest = np.setdiff1d(np.arange(n), ran)
        assert set(range(head)) <= set(ran.tolist())
        assert start[ran].tolist() == w_start[ran].tolist()
        assert end[ran].tolist() == w_end[ran].tolist()
        assert np.isnan(start[rest]).all()
        assert (w_start[rest] > state[2][0]).all()   # after the memory's last change
    assert stopped >= 20


@pytest.mark.parametrize("rounds", [1, 2])
def test_replayed_runs_equal_the_whole_pass_and_simpy(rounds, monkeypatch):
    """Random several-stream runs: whichever way they are timed (settled in the first round,
    in the second with the floors the first found, or by the whole pass where neither
    settles), every start, end and the memory's bytes, busy time and last change are the
    pass's over the whole run and SimPy's."""
    monkeypatch.setattr(engine_shared, "REPLAY_ROUNDS", rounds)
    taken = []
    real = engine_shared._replayed_rest
    monkeypatch.setattr(engine_shared, "_replayed_rest",
                        lambda *a: taken.append(real(*a)) or taken[-1])
    rng = np.random.default_rng(11)
    for _ in range(80):
        ids, lat, nbytes, deps, step = _stepped_case(rng)
        run = _inputs(ids, lat, nbytes, deps)
        code, w_start, w_end, w_state = _whole_pass(run)
        got = _timed(run, step, np.zeros(1), np.zeros(1), np.zeros(1))
        if code != DONE:
            assert got is None
            continue
        start, end, moved, busy, last, reserved = got
        assert start.tolist() == w_start.tolist() and end.tolist() == w_end.tolist()
        assert [float(moved[0]), float(busy[0]), float(last[0])] == w_state
        s_start, s_end, s_state = _simpy(ids, lat, nbytes, deps)
        assert start.tolist() == s_start.tolist() and end.tolist() == s_end.tolist()
        assert w_state == s_state[:3]
    settled_runs = sum(t is not None for t in taken)
    # both ways are taken: runs whose sharing moves no end after the first step settle;
    # others fall back to the whole pass (fewer with a second round)
    assert settled_runs >= 20 and len(taken) - settled_runs >= 5


def test_a_second_round_settles_what_the_first_leaves_off(monkeypatch):
    """A run whose sharing moves an end after the first step: the first round's replay stops
    at that op (its transfer finishes after its end as timed) or leaves it off, the second
    (that finish its floor) settles, equal to the whole pass."""
    import sim.engine_aot as engine_aot

    replays = []
    k = kernels()
    counted = k._replace(replay_shared=lambda *a: replays.append(k.replay_shared(*a)) or
                         replays[-1])
    monkeypatch.setattr(engine_aot, "kernels", lambda: counted)
    rng = np.random.default_rng(11)
    for _ in range(80):
        ids, lat, nbytes, deps, step = _stepped_case(rng)
        run = _inputs(ids, lat, nbytes, deps)
        replays.clear()
        got = _timed(run, step, np.zeros(1), np.zeros(1), np.zeros(1))
        if got is not None and len(replays) == 2:
            code, w_start, w_end, _ = _whole_pass(run)
            assert code == DONE
            assert got[0].tolist() == w_start.tolist() and got[1].tolist() == w_end.tolist()
            return
    pytest.fail("no random run settled in the second round")


def test_a_replayed_timer_below_the_clock_resolution_finishes_its_transfer(monkeypatch):
    """Op 0 (the first step) moves 1 B; op 1, at 1e6 s, 1e-9 B: 1e-11 s at 100 B/s, below
    the float spacing there. Its timer fires at the time of its arrival with the bytes left
    above the slack, and the replay finishes it with the least left, as SimPy's resource
    does (tests/test_engine_shared.py: the same in the pass)."""
    case = ([[0, 1]], [1e6, 0.0], [1.0, 1e-9], {})
    run = _inputs(*case)
    taken = []
    real = engine_shared._replayed_rest
    monkeypatch.setattr(engine_shared, "_replayed_rest",
                        lambda *a: taken.append(real(*a)) or taken[-1])
    start, end, moved, busy, last, _ = _timed(run, np.array([0, 1]), np.zeros(1), np.zeros(1),
                                              np.zeros(1))
    assert taken and taken[0] is not None          # op 1 was replayed
    assert start.tolist() == [0.0, 1e6] and end.tolist() == [1e6, 1e6]
    s_start, s_end, s_state = _simpy(*case)
    assert end.tolist() == s_end.tolist()
    assert [float(moved[0]), float(busy[0]), float(last[0])] == s_state[:3]


def test_a_pipelined_overlap_run_is_replayed_and_equals_the_whole_pass(monkeypatch):
    """Llama-2-70B TP2 x PP4, four micro-batches, --overlap: its prefill's sharing moves
    ends (the pass times it), the decode's never does (each stage's logits all-gather
    beside the next micro-batch's first ops, two arrivals at one time on the last stage's
    memory each step, in SimPy's order): the decode settles in the first round, and the run
    is the whole pass's, op for op and resource for resource."""
    from conftest import assert_same_run

    from arch import load_arch
    from sim.run import simulate
    from sim.system.schedule import Policies
    from workloads.models import get_model
    from workloads.scenario import Scenario

    rounds = []
    real = engine_shared._replayed_rest
    monkeypatch.setattr(engine_shared, "_replayed_rest",
                        lambda *a: rounds.append(real(*a)) or rounds[-1])

    def run():
        return simulate(load_arch("dgx-h100"), get_model("llama2-70b"),
                        Scenario(batch=8, prompt_len=512, gen_len=16, tp=2, pp=4,
                                 microbatches=4), policies=Policies(overlap=True))

    replayed = run()
    assert len(rounds) == 1 and rounds[0] is not None
    monkeypatch.setattr(engine_shared, "REPLAYS", False)
    whole = run()
    assert len(rounds) == 1
    assert_same_run(replayed, whole)


def test_two_ops_resumed_by_one_end_are_replayed_in_simpys_order(monkeypatch):
    """x (op 1, stream B) ends at 0.15 s; its stream's next op y (op 2) and w (op 3, stream
    A, waiting for x) both arrive then, y first in SimPy (the same process step). The replay
    meets w first (the lower stream) and adds y's bytes before it: 0.1 B moved by op 0, then
    (0.1 + 0.1) + 1.0 = 1.2 B, not 1.2000000000000002 (w's first). It settles, as SimPy."""
    streams = [[0, 3], [1, 2]]
    case = (streams, [0.05, 0.1, 0.1, 0.1], [0.1, 0.0, 0.1, 1.0], {1: (0,), 3: (1,)})
    taken = []
    real = engine_shared._replayed_rest
    monkeypatch.setattr(engine_shared, "_replayed_rest",
                        lambda *a: taken.append(real(*a)) or taken[-1])
    start, end, moved, busy, last, _ = _timed(_inputs(*case), np.array([0, 0, 1, 1]),
                                              np.zeros(1), np.zeros(1), np.zeros(1))
    assert len(taken) == 1 and taken[0] is not None
    assert start.tolist() == [0.0, 0.05, 0.15000000000000002, 0.15000000000000002]
    assert float(moved[0]) == 1.2
    s_start, s_end, s_state = _simpy(*case)
    assert start.tolist() == s_start.tolist() and end.tolist() == s_end.tolist()
    assert [float(moved[0]), float(busy[0]), float(last[0])] == s_state[:3]


@pytest.mark.parametrize("bytes_3, codes", [(0.0, ["LATE", "DONE"]), (2.0, ["LATE", "LATE"])])
def test_a_replay_stops_at_the_first_op_that_ends_later(bytes_3, codes, monkeypatch):
    """Streams A (ops 0, 2) and B (1, 3); the first step: op 0 (0.05 s, 0.1 B), op 1 waits
    for it (0.01 s). Op 2 (1 ms, 2 B) waits for op 1 too: it starts at 0.06 s and ends on
    its transfer, 20 ms at 100 B/s alone: timed at its timeout, the replay stops at it
    (LATE) and the second round takes its finish as its floor. With op 3 (1 ms, no bytes)
    that settles; where op 3 moves 2 B from 0.06 s too, the two share the memory and op 3
    ends late as well: the whole pass runs. Either way the times are SimPy's."""
    import sim.engine_aot as engine_aot
    from sim.replay_kernel import LATE

    replays = []
    k = kernels()
    monkeypatch.setattr(engine_aot, "kernels", lambda: k._replace(
        replay_shared=lambda *a: replays.append(k.replay_shared(*a)) or replays[-1]))
    case = ([[0, 2], [1, 3]], [0.05, 0.01, 0.001, 0.001], [0.1, 0.0, 2.0, bytes_3],
            {1: (0,), 2: (1,)})
    start, end, moved, busy, last, _ = _timed(_inputs(*case), np.array([0, 0, 1, 1]),
                                              np.zeros(1), np.zeros(1), np.zeros(1))
    assert ["LATE" if c == LATE else "DONE" if c == DONE else c for c in replays] == codes
    s_start, s_end, s_state = _simpy(*case)
    assert start.tolist() == s_start.tolist() and end.tolist() == s_end.tolist()
    assert end[2] > start[2] + 0.001    # op 2 ends on its transfer
    assert [float(moved[0]), float(busy[0]), float(last[0])] == s_state[:3]


@pytest.mark.parametrize("build", ["aot", "jit"])
def test_a_whole_run_replayed_on_the_pass_times_gives_its_resource_figures(build):
    """Replayed from its first op on the whole pass's own times, a random run gives the
    pass's bytes moved, busy time and last change, and each op's end is the later of its
    timeout and its transfers' finish; ops that move no bytes finish at -inf, whatever
    ``finish`` held before (it is set as each op is met, not read)."""
    from sim.replay_kernel import replay_shared

    kernel = kernels().replay_shared if build == "aot" else replay_shared
    checked = 0
    for _, lat, nbytes, _, _, run, (_, start, end, state) in _finished_cases(5, 30):
        n = len(lat)
        finish = np.full(n, 7.0)
        got = [np.zeros(1), np.zeros(1), np.zeros(1)]
        assert kernel(run.dep_ptr, run.dep_idx, run.prev, start, end, run.op_list,
                      run.list_ptr, run.list_res, run.list_nb, run.op_mem, run.size, run.bw,
                      run.by_stream, run.bounds, run.bounds[:-1].copy(),
                      np.ones(len(run.bounds) - 1, dtype=np.uint8), np.ones(1, dtype=np.uint8),
                      False, finish, *got, np.full(2, -1, dtype=np.int64)) == DONE
        assert [float(x[0]) for x in got] == state
        assert np.maximum(start + np.asarray(lat), finish).tolist() == end.tolist()
        assert (finish[np.asarray(nbytes) == 0] == -np.inf).all()
        # the memory not this call's: left as it was, no transfer finishes
        got = [np.full(1, 3.0), np.full(1, 4.0), np.full(1, 5.0)]
        assert kernel(run.dep_ptr, run.dep_idx, run.prev, start, end, run.op_list,
                      run.list_ptr, run.list_res, run.list_nb, run.op_mem, run.size, run.bw,
                      run.by_stream, run.bounds, run.bounds[:-1].copy(),
                      np.ones(len(run.bounds) - 1, dtype=np.uint8), np.zeros(1, dtype=np.uint8),
                      False, finish, *got, np.full(2, -1, dtype=np.int64)) == DONE
        assert [float(x[0]) for x in got] == [3.0, 4.0, 5.0] and (finish == -np.inf).all()
        checked += 1
    assert checked >= 15


def _two_memory_case(rng: np.random.Generator, steps: int = 12):
    """Four streams of one op per step on three resources at :data:`RATE` B/s: streams 0, 1
    on memory 0, streams 2, 3 on memory 1, and a link (resource 2) that some ops of streams
    1 and 2 load (three lists of 0-6 B): two parts of the replay meet on the link's streams.
    (inputs, step)."""
    n_streams = 4
    ids = [[j * n_streams + k for j in range(steps)] for k in range(n_streams)]
    n = n_streams * steps
    lat = rng.uniform(0.01, 0.2, n)
    size = rng.uniform(0.0, rng.choice([0.5, 15.0]), n)
    deps = {k: (k - 1,) for k in range(1, n_streams)}
    for i in range(n_streams, n):
        if rng.random() < 0.4:
            deps[i] = (int(rng.integers(max(0, i - 2 * n_streams), i)),)
    prev, ptr, idx, by_stream, bounds = stream_arrays(ids, n, deps)
    stream = np.arange(n) % n_streams
    op_mem = np.where(stream < 2, 0, 1).astype(np.int64)
    op_list = np.where((stream == 1) | (stream == 2), rng.integers(-1, 3, n), -1)
    run = SharedInputs(ptr, idx, prev, lat, op_list.astype(np.int64),
                       np.arange(4, dtype=np.int64), np.full(3, 2, dtype=np.int64),
                       rng.uniform(0.0, 1.0, 3), op_mem, size, np.zeros(0),
                       np.full(3, RATE), np.zeros(3), by_stream, bounds)
    return run, np.arange(n) // n_streams


def _touches_of(run: SharedInputs) -> np.ndarray:
    """Per stream and resource whether some op of the stream moves bytes through it."""
    n_streams = len(run.bounds) - 1
    touch = np.zeros((n_streams, len(run.bw)), dtype=bool)
    for k in range(n_streams):
        for i in run.by_stream[run.bounds[k]:run.bounds[k + 1]].tolist():
            if run.size[i] > 0:
                touch[k, run.op_mem[i]] = True
            c = run.op_list[i]
            if c >= 0:
                touch[k, run.list_res[run.list_ptr[c]:run.list_ptr[c + 1]]] = True
    return touch


@pytest.mark.parametrize("build", ["aot", "jit"])
def test_a_replay_in_two_parts_equals_the_whole_pass(build, monkeypatch):
    """Random runs on two memories and a link, their replay forced into two parts on two
    threads (each a set of resources and the streams that touch them, with its own finish
    times and resource state): every start, end and resource figure is the whole pass's,
    bit for bit, whether it settles (most), settles in a second round after a part stops
    at a late op, or falls back."""
    import sim.engine_aot as engine_aot
    from sim.replay_kernel import replay_shared

    if build == "jit":
        k = kernels()
        monkeypatch.setattr(engine_aot, "kernels", lambda: k._replace(
            replay_shared=replay_shared, settled=settled))
    monkeypatch.setattr(engine_shared, "PARALLEL_REPLAY_OPS", 0)
    parts, taken = [], []
    real_parts, real_rest = engine_shared._parts, engine_shared._replayed_rest
    monkeypatch.setattr(engine_shared, "_parts",
                        lambda *a: parts.append(real_parts(*a)) or parts[-1])
    monkeypatch.setattr(engine_shared, "_replayed_rest",
                        lambda *a: taken.append(real_rest(*a)) or taken[-1])
    rounds: list[list] = []   # per run, each round's codes of the two parts
    real_both = engine_shared._both
    monkeypatch.setattr(engine_shared, "_both",
                        lambda replay: rounds[-1].append(real_both(replay)) or rounds[-1][-1])
    rng = np.random.default_rng(5)
    checked = late_then_settled = 0
    for _ in range(60):
        run, step = _two_memory_case(rng)
        rounds.append([])
        n = len(run.lat)
        start, end = np.empty(n), np.empty(n)
        state = [np.zeros(3), np.zeros(3), np.zeros(3)]
        code = kernels().shared_times(*run._replace(reserved=np.zeros(3)), start, end,
                                      *state, n + 1, np.zeros(4, dtype=np.int64),
                                      np.full(2, -1, dtype=np.int64))
        got = _timed(run, step, np.zeros(3), np.zeros(3), np.zeros(3), _touches_of(run))
        if code != DONE:
            assert got is None
            continue
        assert got[0].tolist() == start.tolist() and got[1].tolist() == end.tolist()
        assert [x.tolist() for x in got[2:5]] == [x.tolist() for x in state]
        checked += 1
        late_then_settled += len(rounds[-1]) == 2 and LATE in rounds[-1][0] and \
            taken[-1] is not None
    split = [p for p in parts if len(p) == 2]
    assert checked >= 30 and len(split) == len(parts) >= 30
    # the link's streams walked by the part that holds it; each resource in one part
    assert all((p[0][1] ^ p[1][1]).all() for p in split)
    settled_runs = sum(t is not None for t in taken)
    assert settled_runs >= 15 and len(taken) - settled_runs >= 10 and late_then_settled >= 1


def test_32_bit_dependency_arrays_give_the_same_runs(monkeypatch):
    """A trace's own dependency arrays are 32-bit: the pass and the replay compiled for them
    (``shared_times_i4``, ``replay_shared_i4``) time random one- and two-memory runs (the
    replay in two parts) as the 64-bit ones do, bit for bit, settled or not."""
    monkeypatch.setattr(engine_shared, "PARALLEL_REPLAY_OPS", 0)
    rng = np.random.default_rng(9)
    replayed = 0
    for j in range(40):
        if j % 2:
            run, step = _two_memory_case(rng)
            touches, n_res = _touches_of(run), 3
        else:
            ids, lat, nbytes, deps, step = _stepped_case(rng)
            run, touches, n_res = _inputs(ids, lat, nbytes, deps), None, 1
        narrow = run._replace(dep_ptr=run.dep_ptr.astype(np.int32),
                              dep_idx=run.dep_idx.astype(np.int32))
        got = [_timed(r, step, np.zeros(n_res), np.zeros(n_res), np.zeros(n_res), touches)
               for r in (run, narrow)]
        if got[0] is None:
            assert got[1] is None
            continue
        assert [x.tolist() for x in got[0]] == [x.tolist() for x in got[1]]
        replayed += 1
    assert replayed >= 25
