"""Compiled bound of a quiet run: the earliest time another stream may start moving bytes
through a contended resource (numba).

:func:`quiet_until` is ``quiet_until`` of :mod:`sim.engine_arrays`, over arrays: each other
user of the resource (a stream that moves bytes through it) in its state - busy until a
time with its next op known, waiting on an op, or not started - bounds when its next op on
the resource may start: no earlier than its next op may start, plus the durations alone of
its ops between (its running sum of durations, less a slack for the sum's rounding), and no
earlier than what the op on the resource waits for can have ended; unless the next op waits
only for the asking stream's own ops. What an op waits for on another stream ends no earlier
than its stamped end, or, not stamped, than where that stream can reach it
(:func:`_end_after`): its next op no earlier than the stream's state allows (busy until a
time; waiting: now and what that op waits for), then the ops between and the op itself,
each for at least its duration alone - one wait deep, so a stage's pipeline send waiting on
the stage before's send, which waits on that stage's last compute op, is bounded by that
op's end (a four-stage ``--overlap`` run's sends then run quiet). Every figure is a time
the op cannot beat (contention only lengthens an op), so a run stamped before it ends as
the per-op engine ends it (tests/test_bound_kernel.py by hand, tests/test_array_plan.py
against the op-by-op engine). A four-stage 512-token 70B
``--overlap`` run asked it 95,000 times (70,000 since runs led by an adoption): 9.5 us each
in Python under cProfile, 1.0 us here.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.engine_aot import BUSY, NOT_STARTED


@njit(cache=True, error_model="numpy")
def _gap(o, p0, p1, cum_ptr, cum, slack):
    """The durations alone (s) of stream ``o``'s positions ``p0 .. p1 - 1`` together, less
    the slack on their running sum (0 where ``p1 <= p0``)."""
    if p1 <= p0:
        return 0.0
    base = cum_ptr[o]
    return max(0.0, cum[base + p1] - cum[base + p0] - slack * (1.0 + cum[base + p1]))


@njit(cache=True, error_model="numpy")
def _settled_end(e, now, st_kind, st_t, st_op, position, owner, end):
    """What op ``e``, not signalled, ends no earlier than where no walk along its stream is
    needed (NaN where one is): its end where stamped; now where its stream has not started;
    where ``e`` lies before its stream's next op (or the stream has none left), the op the
    stream runs now on the per-op path (busy until at least ``st_t``) or one being stamped in
    this instant (now)."""
    t = end[e]
    if t == t:
        return t
    o = owner[e]
    kind = st_kind[o]
    p = st_op[o]
    if kind == NOT_STARTED:
        return now
    if p < 0:
        return max(st_t[o], now) if kind == BUSY else now
    pe, pp = position[e], position[p]
    if pe < pp:
        return max(st_t[o], now) if kind == BUSY and pe == pp - 1 else now
    return math.nan


@njit(cache=True, error_model="numpy")
def _end_near(e, now, cum_ptr, cum, dur, st_kind, st_t, st_op, position, owner, end, slack):
    """A time (s) op ``e``, not signalled, ends no earlier than (:func:`_settled_end`, else):
    its stream's next op starts no earlier than the stream's state allows (busy until
    ``st_t``; waiting: now), then the ops between and ``e`` itself each take at least their
    durations alone."""
    t = _settled_end(e, now, st_kind, st_t, st_op, position, owner, end)
    if t == t:
        return t
    o = owner[e]
    pe, pp = position[e], position[st_op[o]]
    t = st_t[o] if st_kind[o] == BUSY else now
    return max(t + _gap(o, pp, pe, cum_ptr, cum, slack), now) + dur[e]


@njit(cache=True, error_model="numpy")
def _waits_end(i, t, now, cum_ptr, cum, dur, st_kind, st_t, st_op, wait_at, wait_on, done,
               owner, position, end, slack):
    """The latest of ``t`` and :func:`_end_near` of each op that op ``i`` waits for, not yet
    signalled (s)."""
    for q in range(wait_at[i], wait_at[i + 1]):
        d = wait_on[q]
        if done[d] == 0:
            t = max(t, _end_near(d, now, cum_ptr, cum, dur, st_kind, st_t, st_op, position,
                                 owner, end, slack))
    return t


@njit(cache=True, error_model="numpy")
def _end_after(e, now, cum_ptr, cum, dur, st_kind, st_t, st_op, wait_at, wait_on, done,
               owner, position, end, slack):
    """:func:`_end_near` of op ``e`` one wait deeper: a waiting stream's next op starts no
    earlier than what it waits for ends, and ``e`` itself no earlier than what it waits for
    ends (each by :func:`_end_near`)."""
    t = _settled_end(e, now, st_kind, st_t, st_op, position, owner, end)
    if t == t:
        return t
    o = owner[e]
    kind, p = st_kind[o], st_op[o]
    pe, pp = position[e], position[p]
    if kind == BUSY:
        t = st_t[o]
    else:
        t = _waits_end(p, now, now, cum_ptr, cum, dur, st_kind, st_t, st_op, wait_at,
                       wait_on, done, owner, position, end, slack)
    t += _gap(o, pp, pe, cum_ptr, cum, slack)
    if pe > pp or kind == BUSY:
        t = _waits_end(e, t, now, cum_ptr, cum, dur, st_kind, st_t, st_op, wait_at, wait_on,
                       done, owner, position, end, slack)
    return max(t, now) + dur[e]


@njit(cache=True, error_model="numpy")
def quiet_until(rc, busy0, busy1, now, users_ptr, users, use_ptr, use_pos, n_streams, cum_ptr,
                cum, stream_ops, dur, st_kind, st_t, st_op, wait_at, wait_on, done, owner,
                position, end, slack):
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
                    ready = max(ready, _end_after(d, now, cum_ptr, cum, dur, st_kind, st_t,
                                                  st_op, wait_at, wait_on, done, owner,
                                                  position, end, slack))
            start_at = max(when, ready)
        q = use_pos[at]
        if q > p0:
            start_at += _gap(other, p0, q, cum_ptr, cum, slack)
            # and not before what the op there waits for can have ended
            j = stream_ops[cum_ptr[other] - other + q]
            start_at = _waits_end(j, start_at, now, cum_ptr, cum, dur, st_kind, st_t, st_op,
                                  wait_at, wait_on, done, owner, position, end, slack)
        soonest = min(soonest, start_at)
        if soonest <= now:
            return now
    return soonest


@njit(cache=True, error_model="numpy")
def stream_sums(by_stream, bounds, dur, adopt_after, cum):
    """The running sums :func:`quiet_until` reads (``cum``, ``len(by_stream) + streams``
    long): per stream ``c`` from ``bounds[c] + c`` a 0, then the running sum, in position
    order (``by_stream[bounds[c]:bounds[c + 1]]``), of each op's duration ``dur`` plus that
    of the collective it takes turns with (``adopt_after``, -1: none; empty: none at all):
    the sequential additions of ``np.cumsum``, so the same floats."""
    turns = len(adopt_after) > 0
    for c in range(len(bounds) - 1):
        at = bounds[c] + c
        cum[at] = 0.0
        acc = 0.0
        for p in range(bounds[c], bounds[c + 1]):
            o = by_stream[p]
            v = dur[o]
            if turns and adopt_after[o] >= 0:
                v += dur[adopt_after[o]]
            acc = v if p == bounds[c] else acc + v
            cum[at + 1 + p - bounds[c]] = acc
