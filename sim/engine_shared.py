"""A several-stream run whose transfers share resources, timed without SimPy's event loop.

Where transfers share a memory or a link (a collective of one micro-batch beside the next
one's compute ops under ``--overlap``, two stages' sends on one link), the event engine's
times follow from each resource's processor sharing, replayed in time order
(:func:`sim.shared_kernel.shared_times`: one compiled event loop over the streams and
resources, each resource's arrivals, timers and reservations - a PIM unit's share of its
memory - with :class:`~sim.resources.SharedBandwidth`'s arithmetic). That pass gives up
where SimPy's order of two events at one time is not certain from the trace, or where more
transfers are in flight at once than it holds; then the SimPy event loop runs the trace.
Where it finishes, the times and every resource's bytes, busy time, last change and reserved
share are the event loop's, bit for bit (tests/test_engine_shared.py).

Where no op reserves a share, the pass stops once the first step's ops (a prefill) have all
started and nothing is in flight, and the rest is timed as a longest path whose sharing is
replayed on its times and checked (:mod:`sim.replay_kernel`, :func:`_replayed_rest`): the
same figures, bit for bit (tests/test_replay_kernel.py), at ~45-60 instead of ~90-140 ns an
op (a 70B TP2 x PP4 x 4 ``--overlap`` decode, 9.9M ops) where sharing moves no end after the
prefill (a pipeline's memories shared every decode step
by a collective beside the next micro-batch's ops, each op ending on its timeout). Where it
moves one, a second round with that op's floor; where that too leaves an end off, the pass
over the whole run. A long run's replay runs as two parts at once (:func:`_parts`): a
resource's state follows from its own arrivals alone, so each part replays a set of
resources over the streams whose ops move bytes through them, with its own finish times and
resource state, merged after.
"""

from __future__ import annotations

import os
from collections import namedtuple

import numpy as np

from sim.engine_dag import longest_path
from sim.load_index import LoadIndex

#: what the pass returns where it finished, or stopped where asked
#: (:data:`sim.shared_kernel.DONE`, :data:`~sim.shared_kernel.PAUSED`; not imported from
#: there, which would load numba)
DONE, PAUSED = 0, 1
#: what :func:`sim.replay_kernel.replay_shared` returns where a transfer finishes after its
#: op's end as timed (:data:`sim.replay_kernel.LATE`)
LATE = 7
#: the op and resource where the last pass gave up (diagnostics)
WHERE = np.full(2, -1, dtype=np.int64)
#: time the first step by the pass and the rest as a longest path replayed on its resources
#: (:func:`_timed`) before the pass over the whole run
REPLAYS = True
#: rounds of that longest path and replay (each with the floors the one before found)
#: before the pass over the whole run runs instead: one where sharing moves no end after the
#: first step (every pipelined run measured), a second where it moves a few
REPLAY_ROUNDS = 2
#: ops from which the replay runs as two parts, each a set of resources and the streams
#: that move bytes through them, on two threads (:func:`_parts`; a compiled pass without the
#: GIL): a 9.9M-op decode's replay in ~0.2-0.28 instead of ~0.36-0.40 s on two cores
PARALLEL_REPLAY_OPS = 1 << 20
#: the cores this process may run on (two parts need two)
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
    os.cpu_count() or 1

#: :func:`sim.shared_kernel.shared_times`' inputs before its outputs, for the whole run
SharedInputs = namedtuple("SharedInputs", ["dep_ptr", "dep_idx", "prev", "lat", "op_list",
                                           "list_ptr", "list_res", "list_nb", "op_mem",
                                           "size", "share", "bw", "reserved", "by_stream",
                                           "bounds"])


def shared_run(arrays, stream: np.ndarray, prev: np.ndarray, names, lat: np.ndarray,
               size: np.ndarray, share: np.ndarray | None, memory_of: dict, loads: LoadIndex,
               by_stream: np.ndarray, bounds: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """(start, end) of every op (s), each resource's figures set, where the pass finishes;
    None (nothing set) where it gives up. ``lat``: each op's latency (s); ``size``: its bytes
    through its stream's shared memory (``memory_of``: stream name -> resource); ``share``:
    the share of that memory an op reserves while it runs (a PIM unit's ``memory_share``;
    negative, or ``share`` None: none), as :func:`sim.resources.occupy` reads it: only an op
    without link loads on a stream with a shared memory reserves, and moves no bytes then
    (an op loading one link twice the pass replays: its transfers share it as SimPy's do);
    ``loads``: the ops' link loads; the rest as :func:`sim.engine_dag.contention_free` takes
    them; ``by_stream`` / ``bounds``: the ops by stream and where each stream's begin
    (:func:`sim.stream_order.stream_layout`)."""
    n = len(lat)
    if not n:
        return None
    # a memory that tasks also load as a link (a transfer into it) is one resource: one code
    res = list(loads.resources)
    code = {id(r): j for j, r in enumerate(res)}
    for mem in memory_of.values():
        if id(mem) not in code:
            code[id(mem)] = len(res)
            res.append(mem)
    mem_of_stream = np.array([code.get(id(memory_of.get(nm)), -1) for nm in names] or [-1],
                             dtype=np.int64)
    op_mem = mem_of_stream[stream] if len(names) else np.full(n, -1, dtype=np.int64)
    op_list = np.ascontiguousarray(loads.of_op, dtype=np.int64)
    share_op = np.zeros(0)    # none reserves (the pass reads an empty array so)
    if share is not None and (np.asarray(share) >= 0).any():
        # occupy: a share with no link loads and a shared memory reserves, moving no bytes
        reserves = (np.asarray(share) >= 0) & (op_mem >= 0) & (op_list < 0)
        if reserves.any():
            share_op = np.where(reserves, share, -1.0).astype(np.float64)
            size = np.where(reserves, 0.0, size)
    bw = np.array([r.bandwidth for r in res], dtype=np.float64)
    reserved = np.array([r.reserved for r in res], dtype=np.float64)
    moved = np.array([r.bytes_moved for r in res], dtype=np.float64)
    busy = np.array([r.busy_time for r in res], dtype=np.float64)
    last = np.array([r._last for r in res], dtype=np.float64)
    # the dependency arrays as they are where both are 32-bit (a trace's own: the pass and
    # the replay compiled for them too; no 80 MB copy each at 10M ops), else 64-bit
    deps = np.int32 if arrays.dep_ptr.dtype == arrays.dep_idx.dtype == np.int32 else np.int64
    run = SharedInputs(np.ascontiguousarray(arrays.dep_ptr, dtype=deps),
                       np.ascontiguousarray(arrays.dep_idx, dtype=deps),
                       np.ascontiguousarray(prev, dtype=np.int64),
                       np.ascontiguousarray(lat, dtype=np.float64), op_list,
                       np.ascontiguousarray(loads.ptr, dtype=np.int64),
                       np.ascontiguousarray(loads.res, dtype=np.int64),
                       np.ascontiguousarray(loads.nb, dtype=np.float64),
                       np.ascontiguousarray(op_mem, dtype=np.int64),
                       np.ascontiguousarray(size, dtype=np.float64), share_op, bw, reserved,
                       np.ascontiguousarray(by_stream, dtype=np.int64),
                       np.ascontiguousarray(bounds, dtype=np.int64))
    WHERE[:] = -1
    step = getattr(arrays, "step", None)   # (a plan's tasks: none, not in step order)
    # (what two replay parts would walk: only where a replay may follow, ops in step order)
    touches = _touches(stream, mem_of_stream, loads, len(res)) \
        if n >= PARALLEL_REPLAY_OPS and CORES > 1 and step is not None and REPLAYS else None
    timed = _timed(run, None if step is None else np.asarray(step), moved, busy, last,
                   touches)
    if timed is None:
        return None
    start, end, moved, busy, last, reserved = timed
    for j, r in enumerate(res):
        r.bytes_moved, r.busy_time, r._last = float(moved[j]), float(busy[j]), float(last[j])
        r.reserved = float(reserved[j])
    return start, end


def _touches(stream: np.ndarray, mem_of_stream: np.ndarray, loads: LoadIndex,
             n_res: int) -> np.ndarray:
    """Per stream and resource code (bool): some op of the stream may move bytes through
    the resource - the stream's shared memory, or a link one of its ops' loads names (a
    superset is safe: a replay part walks a stream it need not)."""
    n_streams = len(mem_of_stream)
    touch = np.zeros((n_streams, n_res), dtype=bool)
    has = np.flatnonzero(mem_of_stream >= 0)
    touch[has, mem_of_stream[has]] = True
    n_lists = len(loads.ptr) - 1
    if len(loads.ids) and n_lists:
        pairs = np.bincount(np.asarray(stream)[loads.ids].astype(np.int64) * n_lists
                            + loads.code, minlength=n_streams * n_lists)
        for p in np.flatnonzero(pairs).tolist():
            k, c = divmod(p, n_lists)
            touch[k, loads.res[loads.ptr[c]:loads.ptr[c + 1]]] = True
    return touch


def _parts(touches: np.ndarray | None, left: np.ndarray, n_res: int
           ) -> list[tuple[np.ndarray, ...]]:
    """``(walk, mine)`` (u1 per stream, per resource) of each part the replay runs as: one
    part of everything, or - given ``touches`` (:func:`_touches`) of two or more resources
    and :data:`PARALLEL_REPLAY_OPS` ops ``left`` (per stream, to replay) - two, each a set
    of resources and the streams that touch them, resources taken in order of the ops that
    touch them, most first, each into the part whose streams then hold fewer ops (each op a
    part walks costs it a step)."""
    n_streams = len(left)
    whole = (np.ones(n_streams, dtype=np.uint8), np.ones(n_res, dtype=np.uint8))
    if touches is None or n_res < 2 or int(left.sum()) < PARALLEL_REPLAY_OPS:
        return [whole]
    weight = left @ touches        # per resource, the ops of the streams that touch it
    walks = [np.zeros(n_streams, dtype=bool), np.zeros(n_streams, dtype=bool)]
    mine = [np.zeros(touches.shape[1], dtype=bool), np.zeros(touches.shape[1], dtype=bool)]
    for r in np.argsort(-weight, kind="stable").tolist():
        grown = [int(left[w | touches[:, r]].sum()) for w in walks]
        j = int(np.argmin(grown))
        walks[j] |= touches[:, r]
        mine[j][r] = True
    if not mine[0].any() or not mine[1].any():
        return [whole]
    return [(w.astype(np.uint8), m.astype(np.uint8)) for w, m in zip(walks, mine, strict=True)]


def step_end(step: np.ndarray) -> int:
    """The first op id whose step is later than the first op's (the ops' count where none
    is): a run's ops come step by step in id order, its first step (a prefill) first."""
    later = step > step[0] if len(step) else np.zeros(0, dtype=bool)
    return int(np.argmax(later)) if later.any() else len(step)


def _timed(run: SharedInputs, step: np.ndarray | None, moved: np.ndarray, busy: np.ndarray,
           last: np.ndarray, touches: np.ndarray | None = None) -> tuple | None:
    """(start, end, moved, busy, last, reserved) of every op (s) and resource, as
    :func:`sim.shared_kernel.shared_times` gives them over the whole run (``moved``,
    ``busy``, ``last``: the resources' state before it), or None where it gives up.

    Where the ops come step by step (``step``: each op's; None: they do not) and none
    reserves a share (:data:`REPLAYS`), the pass stops once the first step's ops have all
    started and nothing is in flight, and the rest is timed apart (:func:`_replayed_rest`);
    where that does not settle, the pass runs over the whole run. ``touches``: which
    resources each stream's ops move bytes through (:func:`_touches`), where the replay may
    run as two parts (:func:`_parts`)."""
    from sim.engine_aot import kernels

    k = kernels()
    n = len(run.lat)
    cut = step_end(step) if REPLAYS and step is not None and not len(run.share) else n + 1
    paused = np.zeros(len(run.bounds) - 1, dtype=np.int64)
    for tries in range(2):
        start, end = np.empty(n), np.empty(n)
        state = moved.copy(), busy.copy(), last.copy(), run.reserved.copy()
        code = _for_deps(k, "shared_times", run)(
            *run._replace(reserved=state[3]), start, end, *state[:3],
            cut if not tries else n + 1, paused, WHERE)
        if code == PAUSED:
            rest = _replayed_rest(k, run._replace(reserved=state[3]), paused, start, end,
                                  state[:3], touches)
            if rest is not None:
                return start, end, *rest, state[3]
            continue     # not settled: the pass over the whole run
        return (start, end, *state) if code == DONE else None
    return None


def _replayed_rest(k, run: SharedInputs, paused: np.ndarray, start: np.ndarray,
                   end: np.ndarray, state: tuple, touches: np.ndarray | None = None
                   ) -> tuple | None:
    """(moved, busy, last) of the resources once the ops from position ``paused[k]`` of each
    stream ``k`` on are timed as a longest path from the others' times (``start``, ``end``,
    filled in) and their sharing replayed on those times from the resources' ``state``
    there (:mod:`sim.replay_kernel`; in two parts at once where :func:`_parts` splits it),
    where each op then ends as the event loop would end it on them, in at most
    :data:`REPLAY_ROUNDS` rounds; None where it does not."""
    n = len(run.lat)
    fixed = np.zeros(n, dtype=np.uint8)    # the ops the pass timed (the first steps')
    first = n                              # the lowest id of the others
    for lo, stop, hi in zip(run.bounds[:-1], paused, run.bounds[1:], strict=True):
        fixed[run.by_stream[lo:stop]] = 1
        if stop < hi:
            first = min(first, int(run.by_stream[stop:hi].min()))
    if first == n:
        return state
    rate = run.bw * (1.0 - run.reserved)
    parts = _parts(touches, run.bounds[1:] - paused, len(run.bw))
    floor = np.zeros(0)
    for _ in range(REPLAY_ROUNDS):
        if not longest_path(first, fixed, run.dep_ptr, run.dep_idx, run.prev, run.lat, start,
                            end, floor):
            return None
        # per part: finish (one part: set for each op it walks; two: -inf where a part walks
        # no op, as settled reads both), its own resource state, where it stopped
        replays = [(np.empty(n) if len(parts) == 1 else np.full(n, -np.inf),
                    tuple(x.copy() for x in state), np.full(2, -1, np.int64)) for _ in parts]

        def replay(j: int, replays: list = replays) -> int:
            finish, got, where = replays[j]
            return _for_deps(k, "replay_shared", run)(
                run.dep_ptr, run.dep_idx, run.prev, start, end, run.op_list, run.list_ptr,
                run.list_res, run.list_nb, run.op_mem, run.size, rate, run.by_stream,
                run.bounds, paused, *parts[j], True, finish, *got, where)
        codes = _both(replay) if len(parts) == 2 else [replay(0)]
        late = [j for j, code in enumerate(codes) if code == LATE]
        if late:   # stopped at the first op that ends later: its finish its floor
            if not len(floor):
                floor = np.full(n, -np.inf)
            for j in late:
                finish, _, where = replays[j]
                floor[where[0]] = max(floor[where[0]], finish[where[0]])
            WHERE[:] = replays[late[0]][2]
            continue
        if any(code != DONE for code in codes):
            WHERE[:] = replays[[code != DONE for code in codes].index(True)][2]
            return None
        floor = np.empty(n)
        second = replays[1][0] if len(parts) == 2 else replays[0][0][:0]
        if not k.settled(first, fixed, start, end, run.lat, replays[0][0], second, floor):
            got = replays[0][1]
            for j in range(1, len(parts)):   # each part's resources from its own state
                mine = parts[j][1].astype(bool)
                for x, y in zip(got, replays[j][1], strict=True):
                    x[mine] = y[mine]
            return got
    return None


def _for_deps(k, name: str, run: SharedInputs):
    """Kernel ``name`` compiled for ``run``'s dependency arrays (``name + "_i4"`` for 32-bit
    ones)."""
    return getattr(k, name + "_i4") if run.dep_ptr.dtype == np.int32 else getattr(k, name)


def _both(replay) -> list[int]:
    """``[replay(0), replay(1)]``, the second on a thread of its own (the compiled replay
    runs without the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="xpusim-replay") as pool:
        other = pool.submit(replay, 1)
        return [replay(0), other.result()]
