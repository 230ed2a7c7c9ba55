"""The times of a run without contention: a longest path over the trace (numba).

Where no two transfers ever share a memory or a link, every op starts when its stream's op
before it ends and every op it depends on has ended, and ends its duration alone later - the
times the event engine gives it, one SimPy event per op (:mod:`sim.engine_dag` checks that
no transfer shared a resource, and falls back to the event engine where one did).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, error_model="numpy")
def dag_times(first, fixed, dep_ptr, dep_idx, prev, dur, floor, start, end):
    """``start[i]`` (s): the latest end of op ``prev[i]`` (the op before it on its stream;
    -1: none, time 0) and of its dependencies ``dep_idx[dep_ptr[i]:dep_ptr[i + 1]]``;
    ``end[i] = max(start[i] + dur[i], floor[i])`` (``floor`` empty: ``start[i] + dur[i]``;
    a floor: where the op's shared transfers finish, :mod:`sim.replay_kernel`), op by op in
    id order from op ``first``. The ops before it, and each op ``i < len(fixed)`` where
    ``fixed[i]``, keep the times ``start`` and ``end`` hold. False (times unfinished) when a
    dependency or a stream's op before it does not come earlier in that order."""
    n_fixed = len(fixed)
    floors = len(floor) > 0
    for i in range(first, len(dur)):
        if i < n_fixed and fixed[i]:
            continue
        s = 0.0
        p = prev[i]
        if p >= i:
            return False
        if p >= 0:
            s = end[p]
        for q in range(dep_ptr[i], dep_ptr[i + 1]):
            d = dep_idx[q]
            if d >= i:
                return False
            if end[d] > s:
                s = end[d]
        start[i] = s
        e = s + dur[i]
        if floors and floor[i] > e:
            e = floor[i]
        end[i] = e
    return True
