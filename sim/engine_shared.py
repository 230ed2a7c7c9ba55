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
over the whole run.
"""

from __future__ import annotations

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
    if share is not None:
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
    run = SharedInputs(np.ascontiguousarray(arrays.dep_ptr, dtype=np.int64),
                       np.ascontiguousarray(arrays.dep_idx, dtype=np.int64),
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
    timed = _timed(run, None if step is None else np.asarray(step), moved, busy, last)
    if timed is None:
        return None
    start, end, moved, busy, last, reserved = timed
    for j, r in enumerate(res):
        r.bytes_moved, r.busy_time, r._last = float(moved[j]), float(busy[j]), float(last[j])
        r.reserved = float(reserved[j])
    return start, end


def step_end(step: np.ndarray) -> int:
    """The first op id whose step is later than the first op's (the ops' count where none
    is): a run's ops come step by step in id order, its first step (a prefill) first."""
    later = step > step[0] if len(step) else np.zeros(0, dtype=bool)
    return int(np.argmax(later)) if later.any() else len(step)


def _timed(run: SharedInputs, step: np.ndarray | None, moved: np.ndarray, busy: np.ndarray,
           last: np.ndarray) -> tuple | None:
    """(start, end, moved, busy, last, reserved) of every op (s) and resource, as
    :func:`sim.shared_kernel.shared_times` gives them over the whole run (``moved``,
    ``busy``, ``last``: the resources' state before it), or None where it gives up.

    Where the ops come step by step (``step``: each op's; None: they do not) and none
    reserves a share (:data:`REPLAYS`), the pass stops once the first step's ops have all
    started and nothing is in flight, and the rest is timed apart (:func:`_replayed_rest`);
    where that does not settle, the pass runs over the whole run."""
    from sim.engine_aot import kernels

    k = kernels()
    n = len(run.lat)
    cut = step_end(step) if REPLAYS and step is not None and not len(run.share) else n + 1
    paused = np.zeros(len(run.bounds) - 1, dtype=np.int64)
    for tries in range(2):
        start, end = np.empty(n), np.empty(n)
        state = moved.copy(), busy.copy(), last.copy(), run.reserved.copy()
        code = k.shared_times(*run._replace(reserved=state[3]), start, end, *state[:3],
                              cut if not tries else n + 1, paused, WHERE)
        if code == PAUSED:
            rest = _replayed_rest(k, run._replace(reserved=state[3]), paused, start, end,
                                  state[:3])
            if rest is not None:
                return start, end, *rest, state[3]
            continue     # not settled: the pass over the whole run
        return (start, end, *state) if code == DONE else None
    return None


def _replayed_rest(k, run: SharedInputs, paused: np.ndarray, start: np.ndarray,
                   end: np.ndarray, state: tuple) -> tuple | None:
    """(moved, busy, last) of the resources once the ops from position ``paused[k]`` of each
    stream ``k`` on are timed as a longest path from the others' times (``start``, ``end``,
    filled in) and their sharing replayed on those times from the resources' ``state``
    there (:mod:`sim.replay_kernel`), where each op then ends as the event loop would end it
    on them, in at most :data:`REPLAY_ROUNDS` rounds; None where it does not."""
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
    floor = np.zeros(0)
    for _ in range(REPLAY_ROUNDS):
        if not longest_path(first, fixed, run.dep_ptr, run.dep_idx, run.prev, run.lat, start,
                            end, floor):
            return None
        finish = np.empty(n)   # (set for each op replayed)
        got = tuple(x.copy() for x in state)
        code = k.replay_shared(run.dep_ptr, run.dep_idx, run.prev, start, end, run.op_list,
                               run.list_ptr, run.list_res, run.list_nb, run.op_mem, run.size,
                               rate, run.by_stream, run.bounds, paused, True, finish, *got,
                               WHERE)
        if code == LATE:   # stopped at the first op that ends later: its finish its floor
            if not len(floor):
                floor = np.full(n, -np.inf)
            floor[WHERE[0]] = finish[WHERE[0]]
            continue
        if code != DONE:
            return None
        floor = np.empty(n)
        if not k.settled(first, fixed, start, end, run.lat, finish, floor):
            return got
    return None
