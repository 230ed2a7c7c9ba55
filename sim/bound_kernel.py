"""Compiled bound of a quiet run: the earliest time another stream may start moving bytes
through a contended resource (numba).

:func:`quiet_until` is ``quiet_until`` of :mod:`sim.engine_arrays`, over arrays: each other
user of the resource (a stream that moves bytes through it) in its state - busy until a
time with its next op known, waiting on an op, or not started - bounds when its next op on
the resource may start: no earlier than its next op may start (where that op waits for other
streams' ops: the ends of those already stamped, the busy-until time of those not yet), plus
the durations alone of its ops between (its running sum of durations, less a slack for the
sum's rounding), unless that op waits only for the asking stream's own ops. The same float
operations as the Python version it replaced (tests/test_bound_kernel.py by hand,
tests/test_array_plan.py against the op-by-op engine). A four-stage 512-token 70B
``--overlap`` run asked it 95,000 times (70,000 since runs led by an adoption): 9.5 us each
in Python under cProfile, 1.0 us here.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.engine_aot import BUSY, NOT_STARTED


@njit(cache=True, error_model="numpy")
def quiet_until(rc, busy0, busy1, now, users_ptr, users, use_ptr, use_pos, n_streams, cum_ptr,
                cum, st_kind, st_t, st_op, wait_at, wait_on, done, owner, position, end,
                slack):
    """The earliest time (s) a user of resource ``rc`` other than streams ``busy0`` and
    ``busy1`` (-1: none) may start an op moving bytes through it (``now`` where one may start
    at once; inf where none can before ``busy0`` signals its ops, or none has such an op
    left).

    ``users[users_ptr[rc]:users_ptr[rc + 1]]``: the streams that move bytes through it; per
    (resource, stream) ``use_ptr[rc * n_streams + s]``: where that stream's positions using it
    start in ``use_pos`` (sorted); per stream ``cum[cum_ptr[s]:]``: the running sum of its
    ops' durations alone by position (s); per stream its state (``st_kind``: busy until
    ``st_t`` (s) then op ``st_op``, waiting on op ``st_op``, or not started), per op the ops
    of other streams it waits for (``wait_on[wait_at[i]:wait_at[i + 1]]``), ``done`` (1:
    signalled), ``owner`` (its stream), ``position`` (on its stream) and ``end`` (s; NaN:
    not stamped yet); ``slack``: relative slack of a running sum."""
    soonest = math.inf
    for u in range(users_ptr[rc], users_ptr[rc + 1]):
        other = users[u]
        if other == busy0 or other == busy1:
            continue
        kind = st_kind[other]
        if kind == NOT_STARTED:
            return now
        nxt = st_op[other]
        when = st_t[other] if kind == BUSY else now
        if nxt < 0:              # nothing left to run
            continue
        w0, w1 = wait_at[nxt], wait_at[nxt + 1]
        left, only_busy0 = False, True      # unless it waits only for busy0's ops
        for q in range(w0, w1):
            d = wait_on[q]
            if done[d] == 0:
                left = True
                if owner[d] != busy0:
                    only_busy0 = False
        if left and only_busy0:
            continue
        key = rc * n_streams + other
        lo, hi = use_ptr[key], use_ptr[key + 1]
        p0 = position[nxt]
        at = lo + np.searchsorted(use_pos[lo:hi], p0)
        if at == hi:             # it moves nothing through the resource any more
            continue
        start_at = when
        if w1 > w0:              # not before what it waits for can have ended
            ready = now
            for q in range(w0, w1):
                d = wait_on[q]
                if done[d] == 0:
                    t = end[d]
                    if t != t:   # not stamped yet: not before its stream's current op ends
                        o = owner[d]
                        t = st_t[o] if st_kind[o] == BUSY else ready
                    ready = max(ready, t)
            start_at = max(when, ready)
        q = use_pos[at]
        if q > p0:
            base = cum_ptr[other]
            gap = cum[base + q] - cum[base + p0]
            start_at += max(0.0, gap - slack * (1.0 + cum[base + q]))
        soonest = min(soonest, start_at)
        if soonest <= now:
            return now
    return soonest
