"""A several-stream run without contention, timed as one longest path (no event loop).

Where no two transfers ever share a memory or a link, what the event engine computes is a
longest path: every op starts when its stream's op before it has ended and every op it
depends on has ended (SimPy resumes a stream at the latest of those events' times), and ends
its duration alone later - the latest of its timeout and each transfer's timer, ``start +
duration`` (:mod:`sim.engine_arrays`). :func:`contention_free` computes those times in one
compiled pass (:func:`sim.dag_kernel.dag_times`), then checks, resource by resource, that
the transfers really were alone, in the order the events would run them:

* a transfer starts after the one before it on the resource has finished (its timer fired),
* or exactly when that one's op ended, and its op waits for that op (it comes next on the
  stream, or depends on it): the event engine then resumes it only after the timer removed
  the transfer before it;
* its timer finishes it (no float slack left: :meth:`SharedBandwidth.solo_ends`);

and counts each resource's bytes, busy time and last change as its own events would, in
start order (:meth:`SharedBandwidth.add_solos`). Where any check fails, or an op reserves a
share of a memory (PIM) or moves bytes twice through one link, the event engine runs the
trace instead. The times and tables are
those of the per-op engine, bit for bit (tests/test_engine_dag.py).
"""

from __future__ import annotations

import numpy as np

from sim.load_index import LoadIndex

#: the check runs first on the first 1/PREFIX of the ops (by index), then on the ops that
#: start in the first ~1/PREFIX of them
PREFIX = 32
#: dag_times' ``fixed`` where no op keeps its times, and its ``floor`` where no op has one
NO_FIXED = np.zeros(0, dtype=np.uint8)
NO_FLOOR = np.zeros(0)
#: the cut between those ops and the others is read from every SAMPLE_STRIDE-th start
SAMPLE_STRIDE = 64


def dependency_arrays(arrays) -> tuple[np.ndarray, np.ndarray]:
    """A trace's ``(dep_ptr, dep_idx)`` as :func:`longest_path` takes them: as they are
    where both are contiguous and 32- or 64-bit alike (a trace's own are 32-bit: ~0.15 s
    of copying saved on a 17M-op run), else as int64."""
    ptr, idx = arrays.dep_ptr, arrays.dep_idx
    if ptr.dtype == idx.dtype and ptr.dtype in (np.int32, np.int64) and \
            ptr.flags.c_contiguous and idx.flags.c_contiguous:
        return ptr, idx
    return np.ascontiguousarray(ptr, dtype=np.int64), np.ascontiguousarray(idx, dtype=np.int64)


def longest_path(first: int, fixed: np.ndarray, ptr: np.ndarray, idx: np.ndarray,
                 prev: np.ndarray, dur: np.ndarray, start: np.ndarray, end: np.ndarray,
                 floor: np.ndarray = NO_FLOOR) -> bool:
    """:func:`sim.dag_kernel.dag_times` compiled for ``ptr``/``idx``'s width (both int32 or
    both int64, as :func:`dependency_arrays` gives them); ``floor``: the ops' floors (none
    by default)."""
    from sim.engine_aot import kernels

    k = kernels()
    times = k.dag_times_i4 if ptr.dtype == np.int32 else k.dag_times
    return times(first, fixed, ptr, idx, prev, dur, floor, start, end)


def contention_free(arrays, stream: np.ndarray, prev: np.ndarray, names, dur: np.ndarray,
                    size: np.ndarray, stop: np.ndarray, memory_of: dict, loads: LoadIndex
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """(start, end) of every op (s) where no transfer shares a resource (module docstring),
    each resource's figures counted; None (nothing counted) where one would. ``stream``:
    each op's stream code (``names``); ``prev``: the op before each on its stream (-1: none,
    :func:`sim.stream_order.neighbours`);
    ``dur``: each op's duration alone (s); ``size``: its bytes through its stream's shared
    memory (``memory_of``: stream name -> resource); ``stop``: ops no run may stamp;
    ``loads``: the ops' link loads (:class:`~sim.load_index.LoadIndex`)."""
    n = len(dur)
    if not n or stop.any():
        return None
    dur = np.ascontiguousarray(dur, dtype=np.float64)
    if _first_ops_contend(n // PREFIX, arrays.dep_ptr, arrays.dep_idx, prev, dur, stream,
                          names, size, memory_of, loads):
        return None
    ptr, idx = dependency_arrays(arrays)
    start, end = np.empty(n), np.empty(n)
    if not longest_path(0, NO_FIXED, ptr, idx, prev, dur, start, end):
        return None
    # the ops that start first, checked alone first: their pairs in start order are pairs of
    # the whole check, so a failure there is the whole check's (a run with contention gives
    # up after ~1/PREFIX of the work); the cut is the 1/PREFIX quantile of a sample of the
    # starts (any cut gives such a prefix)
    sample = start[::SAMPLE_STRIDE]
    early = start <= np.partition(sample, len(sample) // PREFIX)[len(sample) // PREFIX]
    for keep in (early, None):
        counted = []
        for res, ids, nbytes in transfer_tasks(stream, names, size, memory_of, loads, keep):
            got = _alone(res, ids, nbytes, start, end, prev, ptr, idx)
            if got is None:
                return None
            counted.append((res, got))
    for res, (nbytes, starts, timers) in counted:
        res.add_solos(nbytes, starts, timers, np.ones(len(nbytes), dtype=bool))
    return start, end


def _first_ops_contend(m: int, dep_ptr: np.ndarray, dep_idx: np.ndarray, prev: np.ndarray,
                       dur: np.ndarray, stream: np.ndarray, names, size: np.ndarray,
                       memory_of: dict, loads: LoadIndex) -> bool:
    """Whether the first ``m`` ops of the trace (by index) already share a resource, timed
    alone (nothing counted): their longest path needs no later op (an op's dependencies and
    its stream's op before it come before it), and two of them not alone in start order are
    not alone among all ops - every op between them in the whole order starts no later than
    the second, so before the first's timer, and may only follow the first exactly at its end
    where the first's timer fired then too, so two starts there are equal, which the check
    refuses. A run with contention gives up here after ~1/PREFIX of the longest path."""
    if m <= 0:
        return False
    ptr = np.ascontiguousarray(dep_ptr[:m + 1], dtype=np.int64)   # their dependencies only
    idx = np.ascontiguousarray(dep_idx[:ptr[m]], dtype=np.int64)
    start, end = np.empty(m), np.empty(m)
    if not longest_path(0, NO_FIXED, ptr, idx, prev[:m], dur[:m], start, end):
        return True
    return any(_alone(res, ids, nbytes, start, end, prev, ptr, idx) is None
               for res, ids, nbytes in transfer_tasks(stream, names, size, memory_of, loads,
                                                      first=m))


def transfer_tasks(stream: np.ndarray, names, size: np.ndarray, memory_of: dict,
                   loads: LoadIndex, keep: np.ndarray | None = None, first: int | None = None):
    """Per resource that ops move bytes through: (resource, op ids, bytes of each); only the
    ops where ``keep`` holds, if given, and only ops ``0..first-1``, if given (read from the
    first ``first`` entries alone: the early check costs ~1/PREFIX of the whole one)."""
    if first is not None:
        stream, size = stream[:first], size[:first]
    out: dict[int, tuple] = {}
    by_memory: dict[int, tuple] = {}
    for code, name in enumerate(names):
        mem = memory_of.get(name)
        if mem is not None:
            by_memory.setdefault(id(mem), (mem, []))[1].append(code)
    for mem, codes in by_memory.values():
        member = np.zeros(len(names), dtype=bool)     # per stream code: whether it uses mem
        member[codes] = True
        moves = (size > 0) & member[stream]
        ids = np.flatnonzero(moves if keep is None else moves & keep)
        if len(ids):
            out[id(mem)] = (mem, [ids], [size[ids]])
    for code, at in loads.groups():     # ops sharing a list of loads
        if first is not None:
            at = at[at < first]
        if keep is not None:
            at = at[keep[at]]
        if not len(at):
            continue
        for res, nb in loads.lists[code]:
            if nb > 0:
                got = out.setdefault(id(res), (res, [], []))
                got[1].append(at)
                got[2].append(np.full(len(at), float(nb)))
    for res, ids, nbytes in out.values():
        yield res, np.concatenate(ids), np.concatenate(nbytes)


def _alone(res, ids: np.ndarray, nbytes: np.ndarray, start: np.ndarray, end: np.ndarray,
           prev: np.ndarray, ptr: np.ndarray, idx: np.ndarray) -> tuple | None:
    """Whether the transfers ``nbytes`` of ops ``ids`` through ``res`` were each alone
    (module docstring): (their bytes, starts and timers in start order, which
    :meth:`SharedBandwidth.add_solos` counts as its events would), or None. Each timer is
    :meth:`SharedBandwidth.solo_ends`' (NaN where its transfer would be left unfinished)."""
    nbytes, s, timer, clash = clashes(res, ids, nbytes, start, end, prev, ptr, idx, first=True)
    return None if clash is None or len(clash) else (nbytes, s, timer)


def clashes(res, ids: np.ndarray, nbytes: np.ndarray, start: np.ndarray, end: np.ndarray,
            prev: np.ndarray, ptr: np.ndarray, idx: np.ndarray, first: bool = False
            ) -> tuple:
    """The transfers ``nbytes`` of ops ``ids`` through ``res`` in start order: (their bytes,
    starts, timers, the ops that start while the transfer before them is in flight or with
    it - not alone, module docstring - or None where a timer would leave its transfer
    unfinished). ``first``: stop at the first such op."""
    order = np.lexsort((ids, start[ids]))
    ids, nbytes = ids[order], nbytes[order]
    s = start[ids]
    timer = res.solo_ends(nbytes, s, np.ones(len(ids), dtype=bool))
    if np.isnan(timer).any():
        return nbytes, s, timer, None
    out = []
    for k in np.flatnonzero(~(s[1:] > timer[:-1]) | (s[1:] == s[:-1])).tolist():
        a, b = int(ids[k]), int(ids[k + 1])
        if s[k + 1] == s[k] or not (s[k + 1] == end[a] and (
                prev[b] == a or a in idx[ptr[b]:ptr[b + 1]])):
            out.append(b)
            if first:
                break
    return nbytes, s, timer, np.array(out, dtype=np.int64)
