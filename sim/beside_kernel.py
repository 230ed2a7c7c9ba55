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


@njit(cache=True, error_model="numpy")
def _advance(now, last, rate, y_in, y_left, op_in, op_left, busy):
    """:meth:`PairReplay._advance`: (y_left, op_left, busy, last)."""
    n = (1 if y_in else 0) + (1 if op_in else 0)
    if n and now > last:
        share = (now - last) * rate / n
        if y_in:
            y_left = y_left - share
        if op_in:
            op_left = op_left - share
        busy += now - last
    return y_left, op_left, busy, now


@njit(cache=True, error_model="numpy")
def _timer(now, rate, y_in, y_left, op_in, op_left):
    """:meth:`PairReplay._reschedule`: when the next transfer may finish (s)."""
    if not y_in and not op_in:
        return _INF
    if not y_in or not op_in:
        left = y_left if y_in else op_left
        return now + max(0.0, left / (rate / 1))
    return now + max(0.0, min(y_left, op_left) / (rate / 2))


@njit(cache=True, error_model="numpy")
def _window(run, j, cut, t_before, y_start, t, y, lat, size, stream, rate, limit,
            moved, busy, last, buf_s, buf_e):
    """``beside_window``: op ``y`` (another stream's) from ``y_start`` beside ``run[j:cut]``
    from ``t``. (ok, where the run goes on, when, when ``y`` ends, moved, busy, last); the
    run's stamps are left in ``buf_s`` / ``buf_e`` from position ``j`` on."""
    y_bytes = size[y]
    if not y_bytes > 0:
        return False, j, t, 0.0, moved, busy, last
    timer = _INF
    y_due = y_start
    y_in = False
    y_left = 0.0
    y_fin = False
    y_done = 0.0
    op_in = False
    op_left = 0.0
    first_stream = stream[run[0]]
    j0 = j
    while (not y_fin) or y_in or op_in:
        if j >= cut:
            return False, j0, t, 0.0, moved, busy, last
        i = run[j]
        if stream[i] != first_stream:
            return False, j0, t, 0.0, moved, busy, last
        s = t
        nbytes = size[i]
        # upto(s, y_start == t_before)
        y_after = y_start == t_before
        while True:
            if min(timer, y_due) >= s:
                if not (timer != s and (y_due != s or y_after)):
                    return False, j0, t, 0.0, moved, busy, last
                break
            if timer == y_due:      # a tie (both finite here)
                return False, j0, t, 0.0, moved, busy, last
            if y_due < timer:
                at = y_due
                y_left, op_left, busy, last = _advance(at, last, rate, y_in, y_left, op_in,
                                                       op_left, busy)
                y_left, y_in, y_due = y_bytes, True, _INF
                moved += y_bytes
            else:
                at = timer
                y_fin_now, op_end, y_left, op_left, busy, last = _fire(
                    at, last, rate, y_in, y_left, op_in, op_left, busy)
                if y_fin_now:
                    y_in, y_fin, y_done = False, True, at
                if op_end:
                    op_in = False
            timer = _timer(at, rate, y_in, y_left, op_in, op_left)
        if nbytes > 0:
            y_left, op_left, busy, last = _advance(s, last, rate, y_in, y_left, op_in,
                                                   op_left, busy)
            op_left, op_in = nbytes, True
            moved += nbytes
            timer = _timer(s, rate, y_in, y_left, op_in, op_left)
        if y_due == s:              # the run's op first, then y's
            y_left, op_left, busy, last = _advance(s, last, rate, y_in, y_left, op_in,
                                                   op_left, busy)
            y_left, y_in, y_due = y_bytes, True, _INF
            moved += y_bytes
            timer = _timer(s, rate, y_in, y_left, op_in, op_left)
        finish = s
        while op_in:
            # step()
            if timer == y_due:
                return False, j0, t, 0.0, moved, busy, last   # a tie, or nothing left
            if y_due < timer:
                at = y_due
                y_left, op_left, busy, last = _advance(at, last, rate, y_in, y_left, op_in,
                                                       op_left, busy)
                y_left, y_in, y_due = y_bytes, True, _INF
                moved += y_bytes
            else:
                at = timer
                y_fin_now, op_end, y_left, op_left, busy, last = _fire(
                    at, last, rate, y_in, y_left, op_in, op_left, busy)
                if y_fin_now:
                    y_in, y_fin, y_done = False, True, at
                if op_end:
                    op_in = False
            timer = _timer(at, rate, y_in, y_left, op_in, op_left)
            if not op_in:
                finish = at
        done_at = max(s + lat[i], finish)
        # upto(done_at, False)
        while True:
            if min(timer, y_due) >= done_at:
                if not (timer != done_at and y_due != done_at):
                    return False, j0, t, 0.0, moved, busy, last
                break
            if timer == y_due:
                return False, j0, t, 0.0, moved, busy, last
            if y_due < timer:
                at = y_due
                y_left, op_left, busy, last = _advance(at, last, rate, y_in, y_left, op_in,
                                                       op_left, busy)
                y_left, y_in, y_due = y_bytes, True, _INF
                moved += y_bytes
            else:
                at = timer
                y_fin_now, op_end, y_left, op_left, busy, last = _fire(
                    at, last, rate, y_in, y_left, op_in, op_left, busy)
                if y_fin_now:
                    y_in, y_fin, y_done = False, True, at
                if op_end:
                    op_in = False
            timer = _timer(at, rate, y_in, y_left, op_in, op_left)
        if not done_at < limit:
            return False, j0, t, 0.0, moved, busy, last
        buf_s[j] = s
        buf_e[j] = done_at
        t = done_at
        j += 1
    y_end = max(y_start + lat[y], y_done)
    if not y_done < limit:
        return False, j0, t, 0.0, moved, busy, last
    return True, j, t, y_end, moved, busy, last


@njit(cache=True, error_model="numpy")
def _fire(now, last, rate, y_in, y_left, op_in, op_left, busy):
    """:meth:`PairReplay._fire` (before its reschedule): (y ends, the op's transfer ends,
    y_left, op_left, busy, last)."""
    stalled = now == last
    y_left, op_left, busy, last = _advance(now, last, rate, y_in, y_left, op_in, op_left,
                                           busy)
    tol = rate / ((1 if y_in else 0) + (1 if op_in else 0)) * FINISH_TOL
    y_end = y_in and y_left <= tol
    op_end = op_in and op_left <= tol
    if not (y_end or op_end) and stalled:
        if y_in and op_in:
            first = min(y_left, op_left)
        elif y_in:
            first = y_left
        else:
            first = op_left
        y_end = y_in and y_left == first
        op_end = op_in and op_left == first
    return y_end, op_end, y_left, op_left, busy, last


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
            ok, j2, t2, ye, moved2, busy2, last2 = _window(
                run, j, cut, t_before, max(t_before, f), t, y, lat, size, stream, rate,
                limit_of[stream[y]], moved, busy, last, buf_s, buf_e)
            if not ok:
                break
            moved, busy, last = moved2, busy2, last2
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
