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
"""

from __future__ import annotations

import numpy as np

from sim.load_index import LoadIndex

#: what the pass returns where it finished (:data:`sim.shared_kernel.DONE`; not imported
#: from there, which would load numba)
DONE = 0
#: the op and resource where the last pass gave up (diagnostics)
WHERE = np.full(2, -1, dtype=np.int64)


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
    from sim.engine_aot import kernels

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
    start, end = np.empty(n), np.empty(n)
    WHERE[:] = -1
    got = kernels().shared_times(
        np.ascontiguousarray(arrays.dep_ptr, dtype=np.int64),
        np.ascontiguousarray(arrays.dep_idx, dtype=np.int64),
        np.ascontiguousarray(prev, dtype=np.int64),
        np.ascontiguousarray(lat, dtype=np.float64),
        op_list,
        np.ascontiguousarray(loads.ptr, dtype=np.int64),
        np.ascontiguousarray(loads.res, dtype=np.int64),
        np.ascontiguousarray(loads.nb, dtype=np.float64),
        np.ascontiguousarray(op_mem, dtype=np.int64),
        np.ascontiguousarray(size, dtype=np.float64), share_op, bw, reserved,
        np.ascontiguousarray(by_stream, dtype=np.int64),
        np.ascontiguousarray(bounds, dtype=np.int64), start, end, moved, busy, last, WHERE)
    if got != DONE:
        return None
    for j, r in enumerate(res):
        r.bytes_moved, r.busy_time, r._last = float(moved[j]), float(busy[j]), float(last[j])
        r.reserved = float(reserved[j])
    return start, end
