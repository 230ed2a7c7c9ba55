"""Compiled stamping of a quiet run with another stream's ops beside it (numba).

:func:`stamp_beside` is ``with_ops_beside`` of :mod:`sim.engine_arrays` for a run whose
ops and whose ops beside load no link (their bytes move through the shared memory alone):
the same loop over the run's cut positions, the same per-op checks and the same float
operations in the same order - :class:`~sim.resources.PairReplay`'s arithmetic of two
transfers sharing the memory, and the solo transfers of ops alone
(:meth:`~sim.resources.SharedBandwidth.solo_end` and ``add_solo``) - so every start, end
and resource figure equals the Python path's, bit for bit (tests/test_beside_kernel.py).
Under ``--overlap`` with interleaved micro-batches each collective is such a window: tens
of thousands per run, where the Python path spends ~25 us of interpretation on each.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.resources import FINISH_TOL

_INF = math.inf


# a replay's state (PairReplay's fields) in one float array: when the next timer fires and when
# ``y`` arrives (s), the bytes ``y`` and the run's transfer have left, the memory's busy time,
# last change and bytes moved, when ``y`` finished, whether each is in flight / ``y`` done
TIMER, DUE, Y_LEFT, OP_LEFT, BUSY, LAST, MOVED, Y_DONE, Y_IN, OP_IN, Y_FIN = range(11)
STATE = 11


@njit(cache=True, error_model="numpy")
def _advance(st, now, rate):
    """:meth:`PairReplay._advance`."""
    n = st[Y_IN] + st[OP_IN]
    if n and now > st[LAST]:
        share = (now - st[LAST]) * rate / int(n)
        if st[Y_IN]:
            st[Y_LEFT] = st[Y_LEFT] - share
        if st[OP_IN]:
            st[OP_LEFT] = st[OP_LEFT] - share
        st[BUSY] += now - st[LAST]
    st[LAST] = now


@njit(cache=True, error_model="numpy")
def _reschedule(st, now, rate):
    """:meth:`PairReplay._reschedule`."""
    if not st[Y_IN] and not st[OP_IN]:
        st[TIMER] = _INF
    elif not st[Y_IN] or not st[OP_IN]:
        left = st[Y_LEFT] if st[Y_IN] else st[OP_LEFT]
        st[TIMER] = now + max(0.0, left / (rate / 1))
    else:
        st[TIMER] = now + max(0.0, min(st[Y_LEFT], st[OP_LEFT]) / (rate / 2))


@njit(cache=True, error_model="numpy")
def _arrive(st, left, flag, nbytes, now, rate):
    """A transfer of ``nbytes`` starts at ``now``: ``st[left]`` bytes left, ``st[flag]`` in
    flight (:meth:`PairReplay.arrive_op` with ``OP_LEFT, OP_IN``; ``arrive_y`` with ``Y_LEFT,
    Y_IN``, which also clears ``y``'s due time)."""
    _advance(st, now, rate)
    st[left] = nbytes
    st[flag] = 1.0
    st[MOVED] += nbytes
    if left == Y_LEFT:
        st[DUE] = _INF
    _reschedule(st, now, rate)


@njit(cache=True, error_model="numpy")
def _fire(st, now, rate):
    """:meth:`PairReplay._fire`."""
    stalled = now == st[LAST]
    _advance(st, now, rate)
    y_in, op_in = st[Y_IN] > 0, st[OP_IN] > 0
    tol = rate / ((1 if y_in else 0) + (1 if op_in else 0)) * FINISH_TOL
    y_end = y_in and st[Y_LEFT] <= tol
    op_end = op_in and st[OP_LEFT] <= tol
    if not (y_end or op_end) and stalled:
        if y_in and op_in:
            first = min(st[Y_LEFT], st[OP_LEFT])
        elif y_in:
            first = st[Y_LEFT]
        else:
            first = st[OP_LEFT]
        y_end = y_in and st[Y_LEFT] == first
        op_end = op_in and st[OP_LEFT] == first
    if y_end:
        st[Y_IN], st[Y_FIN], st[Y_DONE] = 0.0, 1.0, now
    if op_end:
        st[OP_IN] = 0.0
    _reschedule(st, now, rate)


@njit(cache=True, error_model="numpy")
def _step(st, rate, y_bytes):
    """:meth:`PairReplay.step`: the next change; when (inf: none left; NaN: two at once)."""
    timer, due = st[TIMER], st[DUE]
    if timer == due:
        return math.nan if timer < _INF else timer
    if due < timer:
        _arrive(st, Y_LEFT, Y_IN, y_bytes, due, rate)
        return due
    _fire(st, timer, rate)
    return timer


@njit(cache=True, error_model="numpy")
def _upto(st, t_end, y_after, rate, y_bytes):
    """:meth:`PairReplay.upto`."""
    while True:
        timer, due = st[TIMER], st[DUE]
        if min(timer, due) >= t_end:
            return timer != t_end and (due != t_end or y_after)
        at = _step(st, rate, y_bytes)
        if at != at:
            return False


@njit(cache=True, error_model="numpy")
def _window(run, j, cut, t_before, y_start, t, y, lat, size, stream, rate, limit, st,
            buf_s, buf_e):
    """``beside_window``: op ``y`` (another stream's) from ``y_start`` beside ``run[j:cut]``
    from ``t``, the memory's state in ``st`` (``MOVED``, ``BUSY``, ``LAST`` set by the
    caller). (ok, where the run goes on, when, when ``y`` ends); the run's stamps are left in
    ``buf_s`` / ``buf_e`` from position ``j`` on. As ``beside_window``, it checks that the
    run's ops are of the stream of ``run[0]``."""
    y_bytes = size[y]
    if not y_bytes > 0:
        return False, j, t, 0.0
    st[TIMER], st[DUE] = _INF, y_start
    st[Y_LEFT] = st[OP_LEFT] = st[Y_DONE] = 0.0
    st[Y_IN] = st[OP_IN] = st[Y_FIN] = 0.0
    first_stream = stream[run[0]]
    j0 = j
    while not st[Y_FIN] or st[Y_IN] or st[OP_IN]:
        if j >= cut:
            return False, j0, t, 0.0
        i = run[j]
        if stream[i] != first_stream:
            return False, j0, t, 0.0
        s = t
        if not _upto(st, s, y_start == t_before, rate, y_bytes):
            return False, j0, t, 0.0
        if size[i] > 0:
            _arrive(st, OP_LEFT, OP_IN, size[i], s, rate)
        if st[DUE] == s:            # the run's op first, then y's
            _arrive(st, Y_LEFT, Y_IN, y_bytes, s, rate)
        finish = s
        while st[OP_IN]:
            at = _step(st, rate, y_bytes)
            if at != at or at == _INF:
                return False, j0, t, 0.0
            if not st[OP_IN]:
                finish = at
        done_at = max(s + lat[i], finish)
        if not _upto(st, done_at, False, rate, y_bytes) or not done_at < limit:
            return False, j0, t, 0.0
        buf_s[j] = s
        buf_e[j] = done_at
        t = done_at
        j += 1
    y_end = max(y_start + lat[y], st[Y_DONE])
    if not st[Y_DONE] < limit:
        return False, j0, t, 0.0
    return True, j, t, y_end


@njit(cache=True, error_model="numpy")
def stamp_beside(run, cuts, place_pos, place_y, wait_pos, wait_ptr, wait_y, t, lat, dur,
                 size, stream, free, rate_ok, rate, quiet, limit_of, moved, busy, last,
                 start, end, y_end):
    """Stamp ``run`` (op ids) from ``t`` (s) with the ops ``place_y[k]`` of other streams
    starting where ``run[place_pos[k] - 1]`` ends (``with_ops_beside``). ``wait_pos[w]``:
    a position whose op waits for the ops ``place_y[wait_y[wait_ptr[w]:wait_ptr[w + 1]]]``;
    ``cuts``: every such position and ``len(run)``, sorted. Per op: ``lat`` latency,
    ``dur`` duration alone, ``size`` bytes through the memory, ``stream`` code; per stream
    code: ``free``, when it ends what it runs (-inf: nothing), ``limit_of``, the time a
    user of the memory other than this stream and that one may start. The memory's
    ``rate`` (usable when ``rate_ok``) and its ``quiet`` time for this stream alone; its
    ``moved`` bytes, ``busy`` time and ``last`` change. Writes ``start`` / ``end`` and
    ``y_end[k]`` of each op beside it took. (positions stamped, when the last ends, ops
    beside taken, moved, busy, last)."""
    m = len(run)
    buf_s = np.empty(m)
    buf_e = np.empty(m)
    st = np.zeros(STATE)
    slack = rate * FINISH_TOL
    j = 0
    pk = 0
    wk = 0
    taken = 0
    for cut in cuts:
        t_before = t
        while wk < len(wait_pos) and wait_pos[wk] < j:
            wk += 1
        if wk < len(wait_pos) and wait_pos[wk] == j:
            ready = True
            for q in range(wait_ptr[wk], wait_ptr[wk + 1]):
                if wait_y[q] >= taken:
                    ready = False
            if not ready:
                break
            for q in range(wait_ptr[wk], wait_ptr[wk + 1]):
                t = max(t, y_end[wait_y[q]])
        while pk < len(place_pos) and place_pos[pk] < j:
            pk += 1
        if pk < len(place_pos) and place_pos[pk] == j:
            y = place_y[pk]
            f = free[stream[y]]
            if f == t_before or not rate_ok:
                break
            st[MOVED], st[BUSY], st[LAST] = moved, busy, last
            ok, j2, t2, ye = _window(run, j, cut, t_before, max(t_before, f), t, y, lat, size,
                                     stream, rate, limit_of[stream[y]], st, buf_s, buf_e)
            if not ok:
                break
            moved, busy, last = st[MOVED], st[BUSY], st[LAST]
            for q in range(j, j2):
                start[run[q]] = buf_s[q]
                end[run[q]] = buf_e[q]
            start[y] = max(t_before, f)
            end[y] = ye
            y_end[pk] = ye
            free[stream[y]] = ye
            taken = pk + 1
            j, t = j2, t2
        while j < cut:
            i = run[j]
            done_at = t + dur[i]
            nb = size[i]
            timer = 0.0
            if nb > 0:
                if not rate_ok:
                    break
                timer = t + nb / rate
                if nb - (timer - t) * rate > slack or not done_at < quiet:
                    break
            start[i] = t
            end[i] = done_at
            if nb > 0:
                moved += nb
                busy += timer - t
                last = timer
            t = done_at
            j += 1
        if j < cut:
            break
    return j, t, taken, moved, busy, last
