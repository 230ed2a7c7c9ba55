"""A several-stream run whose contention ends early: the event engine for its first ops, one
longest path for the rest.

A pipelined decode may contend only while its prefill fills the pipeline: in a 70B TP2 x PP4
run of four micro-batches, two stages' sends share a link once, at 0.18 s, and no transfer
shares anything after. :func:`sim.engine_dag.contention_free` then gives up on the whole run
and the event loop runs every decode step. :func:`split_run` instead

1. times the first ~1/PREFIX of the ops alone (as the contention-free check does; the first
   1/LONGEST_PREFIX where none of those clashes), finds the last of them whose transfer is
   not alone, and cuts at the time ``T`` by which, so timed, every op of that op's step has
   ended;
2. checks the ops of the next ~1/PREFIX after that step on those times (a cheap test that
   gives up before any event where contention goes on, e.g. collectives overlapped with
   compute);
3. runs the event engine on the ops that start before ``T`` so timed - a trace of its own:
   such an op's dependencies and its stream's op before it end no later than it starts, so
   they start before ``T`` too (checked) - while the pipeline's later micro-batches may
   still be in their first steps;
4. times the other ops as one longest path from the prefix's times
   (:func:`sim.dag_kernel.dag_times`, the prefix's ops kept), and checks that each of their
   transfers was alone (the checks of :mod:`sim.engine_dag`) and started after the last
   change the prefix made on its resource.

Where 4 holds, the times are the event engine's, bit for bit: no later transfer shares a
resource with a transfer of the prefix, so nothing outside the prefix changes a prefix op's
time (a prefix op waits only for prefix ops), and the other ops are each alone, so they end
where a longest path ends them. Each resource's bytes, busy time and last change are the
prefix's, then the later transfers' added in start order - the order in which their events
would add them. Where 1, 2 or 4 fails, None: the event engine runs the whole trace
(tests/test_engine_split.py compares the two).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.engine_dag import (
    NO_FIXED,
    PREFIX,
    clashes,
    dependency_arrays,
    longest_path,
    transfer_tasks,
)
from sim.load_index import LoadIndex
from sim.system.grouped_loads import GroupedLoads
from workloads.ragged import slice_indices
from workloads.trace import CompactOps, Trace

#: the prefix the event engine runs is at most 1/LONGEST_PREFIX of the ops (a longer one
#: saves too little of the event loop to be worth the check)
LONGEST_PREFIX = 8


def split_run(run_prefix, trace: Trace, plan, stream: np.ndarray, prev: np.ndarray, names,
              dur: np.ndarray, size: np.ndarray, stop: np.ndarray, memory_of: dict,
              loads: LoadIndex, resources: dict) -> tuple | None:
    """(start, end, the prefix's timeline) of every op (s) where the run's contention ends
    early (module docstring), the ``resources``' figures counted; None, nothing counted,
    where it does not. ``run_prefix(trace, plan)``: the event engine's timeline of a
    trace; the other arguments as :func:`sim.engine_dag.contention_free` takes them."""
    arrays = trace.compact
    n = len(dur)
    m = n // PREFIX
    if not m or stop.any():
        return None
    ptr, idx = dependency_arrays(arrays)
    dur = np.ascontiguousarray(dur, dtype=np.float64)
    head = _head(arrays.step, m, n, ptr, idx, prev, dur, stream, names, size, memory_of, loads)
    if head is None:
        return None
    ids = np.flatnonzero(head)
    sub = run_prefix(_prefix_trace(trace, ids), _prefix_plan(plan, ids))
    start, end = np.empty(n), np.empty(n)
    start[ids], end[ids] = sub.start, sub.end
    fixed = head.view(np.uint8)
    first = int(np.argmin(head)) if not head.all() else len(head)   # the first op after it
    if not longest_path(first, fixed, ptr, idx, prev, dur, start, end):
        return None
    rest = np.ones(n, dtype=bool)
    rest[:len(head)] = ~head
    counted = []
    for res, at, nbytes in transfer_tasks(stream, names, size, memory_of, loads, rest):
        before = sub.resources[res.name]     # the resource as the prefix left it
        if before._left or before.reserved:
            return None
        got = clashes(before, at, nbytes, start, end, prev, ptr, idx, first=True)
        if got[3] is None or len(got[3]) or (before.bytes_moved and
                                             not got[1][0] > before._last):
            return None
        counted.append((res, got[:3]))
    if any(r._left or r.reserved for r in sub.resources.values()):
        return None     # (checked before any resource of the run is touched)
    for name, res in resources.items():
        before = sub.resources[name]
        res.bytes_moved, res.busy_time, res._last = \
            before.bytes_moved, before.busy_time, before._last
    for res, (nbytes, starts, timers) in counted:
        res.add_solos(nbytes, starts, timers, np.ones(len(nbytes), dtype=bool))
    return start, end, sub


def _head(step: np.ndarray, m: int, n: int, ptr: np.ndarray, idx: np.ndarray,
          prev: np.ndarray, dur: np.ndarray, stream: np.ndarray, names, size: np.ndarray,
          memory_of: dict, loads: LoadIndex) -> np.ndarray | None:
    """Which ops the event engine runs (module docstring, steps 1 and 2), over the first ops
    (False beyond): those starting before the cut, timed alone. None where:

    * none of the first ``m`` clashes, nor of the first 1/LONGEST_PREFIX (the
      contention-free check failed elsewhere; those too where the first ``m`` are all of
      the first step);
    * one in the last quarter of those clashes (:func:`_persists`);
    * the steps do not rise with the op ids;
    * the prefix would reach past the first 1/LONGEST_PREFIX of the ops;
    * one of the ``m`` ops after it clashes (:func:`_clash_after`);
    * or it is not closed under dependencies and its streams' order."""
    last = None
    for w in dict.fromkeys((m, n // LONGEST_PREFIX)):
        last = _last_clash(w, ptr, idx, prev, dur, stream, names, size, memory_of, loads)
        if last is not None and not step[w - 1] == step[last] == step[0]:
            break   # (else none, or all in a first step longer than m: a short run's prefill)
    if last is None or _persists(last, w) or (step[1:last + 1] < step[:last]).any():
        return None
    after = int(np.searchsorted(step, step[last], side="right"))   # the next step's first op
    if after > n // LONGEST_PREFIX or after >= n:
        return None
    # the ops up to m past the last that starts before the cut, timed alone (only
    # estimates past the clash): the window doubles until it holds them
    upto = min(n, after + m)
    while True:
        start, end = np.empty(upto), np.empty(upto)
        if not longest_path(0, NO_FIXED, ptr[:upto + 1], idx[:ptr[upto]],
                            prev[:upto], dur[:upto], start, end):
            return None
        head = start < float(end[:after].max())
        late = int(np.flatnonzero(head)[-1])
        if late > n // LONGEST_PREFIX or not head[:after].all():
            return None
        if late + m < upto or upto == n:
            break
        upto = min(n, 2 * upto)
    if late + 1 == n:
        return None
    window = np.zeros(upto, dtype=bool)
    window[after:] = True
    if _clash_after(window & ~head, start, end, ptr, idx, prev, stream, names, size,
                    memory_of, loads):
        return None
    # closed: each prefix op's stream op before it and its dependencies are in the prefix
    ids = np.flatnonzero(head)
    p = prev[ids]
    deps = idx[ptr[ids[0]]:ptr[ids[-1] + 1]]
    if not head[p[p >= 0]].all():
        return None
    own = np.repeat(head[ids[0]:ids[-1] + 1], np.diff(ptr[ids[0]:ids[-1] + 2]))
    if not head[deps[own]].all():
        return None
    return head


def _persists(last: int, w: int) -> bool:
    """Whether contention among the first ``w`` ops, the last clash at op ``last``, goes on
    past them (collectives beside compute in every step): a clash in their last quarter.
    Then the split is not tried."""
    return last > w * 3 // 4


def _clash_after(window: np.ndarray, start: np.ndarray, end: np.ndarray, ptr: np.ndarray,
                 idx: np.ndarray, prev: np.ndarray, stream: np.ndarray, names,
                 size: np.ndarray, memory_of: dict, loads: LoadIndex) -> bool:
    """Whether a transfer of the ops ``window`` (over the first ``len(window)`` ops), timed
    ``start`` / ``end`` (s), is not alone among theirs (step 2 of the module docstring)."""
    for res, ids, nbytes in transfer_tasks(stream, names, size, memory_of, loads, window,
                                   first=len(window)):
        got = clashes(res, ids, nbytes, start, end, prev, ptr, idx, first=True)[3]
        if got is None or len(got):
            return True
    return False


def _last_clash(m: int, ptr: np.ndarray, idx: np.ndarray, prev: np.ndarray, dur: np.ndarray,
                stream: np.ndarray, names, size: np.ndarray, memory_of: dict,
                loads: LoadIndex) -> int | None:
    """The last op (by id) among the first ``m`` whose transfer is not alone when those ops
    are timed alone; None where none is, or where one would be left unfinished."""
    start, end = np.empty(m), np.empty(m)
    if not longest_path(0, NO_FIXED, ptr[:m + 1], idx[:ptr[m]], prev[:m], dur[:m],
                        start, end):
        return None
    last = -1
    for res, ids, nbytes in transfer_tasks(stream, names, size, memory_of, loads, first=m):
        got = clashes(res, ids, nbytes, start, end, prev, ptr, idx)[3]
        if got is None:
            return None
        if len(got):
            last = max(last, int(got.max()))
    return last if last >= 0 else None


def _prefix_trace(trace: Trace, ids: np.ndarray) -> Trace:
    """The trace of ops ``ids`` (ascending, closed under dependencies), numbered ``0..``
    in their order (plain arrays where the trace's are folded)."""
    a = trace.compact
    fields = {f.name: getattr(a, f.name) for f in dataclasses.fields(CompactOps)}
    rows = {name: fields[name][ids] for name in (
        "kind", "phase", "layer", "step", "tokens", "requests", "microbatch", "stream")}
    ptr = np.asarray(a.dep_ptr)
    count = ptr[ids + 1] - ptr[ids]
    renumber = np.full(int(ids[-1]) + 1, -1, dtype=np.int64)
    renumber[ids] = np.arange(len(ids))
    dep_idx = renumber[np.asarray(a.dep_idx)[slice_indices(ptr[ids], count)]]
    dep_ptr = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(count, out=dep_ptr[1:])
    sub = CompactOps(**{**fields, **rows, "dep_ptr": dep_ptr, "dep_idx": dep_idx})
    return Trace(model=trace.model, scenario=trace.scenario, meta=trace.meta, compact=sub)


def _prefix_plan(plan, ids: np.ndarray):
    """``plan`` with the link loads of ops ``ids`` only, numbered as in
    :func:`_prefix_trace`."""
    loads = plan.op_loads
    if isinstance(loads, GroupedLoads):
        at = np.searchsorted(ids, loads.ids)
        mine = (at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == loads.ids)
        loads = GroupedLoads(at[mine], loads.group[mine], loads.tuples)
    else:
        pos = {int(i): j for j, i in enumerate(ids.tolist())}
        loads = {pos[i]: v for i, v in loads.items() if i in pos}
    return dataclasses.replace(plan, op_loads=loads)
