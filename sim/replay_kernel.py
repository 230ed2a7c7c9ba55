"""The rest of a several-stream run timed as a longest path, its sharing replayed (numba).

:func:`sim.shared_kernel.shared_times` finds each op's start by one event loop over every
stream and resource, ~100 ns an op. But in most runs whose transfers share a memory the
sharing moves no op's end once the prefill is over: a decode op's few bytes finish long
before its timeout even at half the bandwidth (a 70B TP2 x PP4 x 4 ``--overlap`` run: 3 of
9.9M ops end on a transfer, all in the prefill; its last stage's memory is shared every
decode step). Then the decode's times are a longest path over the trace, and each
resource's arrivals are known before its sharing is replayed. So
(:func:`sim.engine_shared._timed`), once the pass has stopped after the prefill with
nothing in flight (:data:`~sim.shared_kernel.PAUSED`):

1. :func:`sim.dag_kernel.dag_times` times the ops it did not start as a longest path from
   the others' times: an op starts when its stream's op before it and every op it waits
   for have ended, and ends at ``max(start + latency, floor)`` - what the event loop gives
   it (``floor``: where its transfers finish; none at first);
2. :func:`replay_shared` replays each resource's transfers of those ops at their starts so
   timed, from the resources' state where the pass stopped, with the event loop's arithmetic
   (:class:`sim.resources.SharedBandwidth`: arrivals, timers, the slack) and its checks of
   events at one time, and gives each op the time its last transfer finishes (a set of
   resources at a time where asked: ``mine``, over the streams ``walk`` - each resource's
   state follows from its own arrivals, so two such parts run at once);
3. :func:`settled` checks each op's end is ``max(start + latency, that time)``. Where one
   is not, that time becomes its floor and 1 runs again (a second round at most; then the
   pass runs over the whole run); where every op's is, the times and the resources' bytes,
   busy times and last changes are the event loop's, bit for bit. The replay stops at the
   first transfer that finishes after its op's end as timed (:data:`LATE`: that op's
   finish its floor for the next round), so a run whose sharing moves ends every step
   (Duplex's decode: 13% of its ops) costs little more than the longest path before the pass
   runs it all.

Why 3 is the event loop's run: an op's start is the latest end of what it waits for, its
end the later of its timeout and its transfers' finish, and a transfer's finish depends on
the arrivals on its resource before it (a timer fires before an arrival at its time). Times
that satisfy all three, event by event in time order, are the run's. The replay walks the
streams' ops by start (its order of two ops that start together on a resource may differ
from the event loop's: each check below is symmetric in the two, and the bytes moved are
added in SimPy's order either way), and a resource's timer fires before its next arrival
or at the end, as it does in the loop. The pass stopped where the next event comes after
every resource's last change, so no replayed arrival meets one of its events.

Its timer and arrival blocks are :func:`~sim.shared_kernel.shared_times`' lines, written
out as that pass's are (numba helpers taking arrays cost more per call than the work they
do, even small ones shared by both: measured in sim/shared_kernel.py's docstring);
tests/test_replay_kernel.py holds both to SimPy's figures.

:func:`replay_shared` gives up (a code other than :data:`~sim.shared_kernel.DONE`) where the
event loop would (two events at one time in an order not known, too many transfers in
flight), or where an arrival comes no later than a resource's last change before it; then
the pass runs over the whole run.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.resources import FINISH_TOL
from sim.shared_kernel import (
    CROWDED,
    DONE,
    EV_ARRIVE,
    EV_FIRE,
    EV_NONE,
    MAX_IN_FLIGHT,
    REVERSED,
    TIE,
    UNKNOWN,
    _resumed_order,
)

#: a resource's last event before the replay where a part of the run timed apart made it
EV_UNKNOWN = -1
#: what :func:`replay_shared` returns where an op arrives on a resource no later than the
#: last event there of the part timed apart (the two parts meet: it cannot be timed apart)
MEETS = 6
#: what it returns where a transfer finishes after its op's end as timed (``where[0]``: the
#: op; ``finish`` holds that time): the times are not the run's
LATE = 7


@njit(cache=True, error_model="numpy")
def replay_shared(dep_ptr, dep_idx, prev, start, end, op_list, list_ptr, list_res, list_nb,
                  op_mem, op_size, bw, by_stream, bounds, first, walk, mine, after, finish,
                  moved, busy, last, where):
    """Replay the transfers on each resource ``r`` with ``mine[r]`` of the ops at and after
    position ``first[k]`` of each stream ``k`` with ``walk[k]`` (every stream with an op
    that moves bytes through such a resource) at their ops' ``start`` (s), each op's ``end``
    (s) taken as known: ``finish[i]`` of each op walked becomes the time its last transfer
    on those resources finishes (-inf: none; the others' entries are not read), and each
    such resource's ``moved`` (B), ``busy`` (s) and ``last`` (s) - in: its state before them
    - what the event loop leaves (the other resources' entries are not touched: a resource's
    state follows from its own arrivals alone, so two calls with other resources and their
    own ``finish`` and state arrays may run at once, :mod:`sim.engine_shared`). ``after``:
    those ops follow a part of the run timed apart (whose last events are not known here:
    an arrival at a resource's ``last`` gives up); ``bw``: each resource's B/s (none
    reserved); the other arrays as :func:`sim.shared_kernel.shared_times` takes them.
    :data:`DONE`, :data:`LATE` (at the
    first transfer that finishes after its op's ``end``), or why not; ``where``: the op and
    the resource where it stopped."""
    n_res = len(bw)
    n_streams = len(bounds) - 1
    cnt = np.zeros(n_res, dtype=np.int64)
    fl_op = np.zeros((n_res, MAX_IN_FLIGHT), dtype=np.int64)
    fl_left = np.zeros((n_res, MAX_IN_FLIGHT))
    timer = np.full(n_res, np.inf)
    ev_kind = np.full(n_res, EV_UNKNOWN if after else EV_NONE, dtype=np.int64)
    ev_ops = np.zeros((n_res, MAX_IN_FLIGHT), dtype=np.int64)
    ev_n = np.zeros(n_res, dtype=np.int64)
    arrived = np.zeros(n_res, dtype=np.int64)
    moved_before = np.zeros(n_res)
    same_nb = np.zeros(n_res)           # the bytes each arrival of that time moves (nan: not one)
    pos = first.copy()
    while True:
        # the next op to start: the earliest head of a stream (its transfers arrive then)
        ks, s = -1, np.inf
        for k in range(n_streams):
            if walk[k] and pos[k] < bounds[k + 1]:
                t = start[by_stream[pos[k]]]
                if t < s:
                    ks, s = k, t
        if ks < 0:   # no op left to start: the timers left fire, resource by resource
            s = np.inf
            i = -1
            lo = hi = total = 0
            m = -1
        else:
            i = by_stream[pos[ks]]
            pos[ks] += 1
            finish[i] = -np.inf
            c = op_list[i]
            lo = list_ptr[c] if c >= 0 else 0
            hi = list_ptr[c + 1] if c >= 0 else 0
            m = op_mem[i]
            total = hi - lo + (1 if m >= 0 and op_size[i] > 0 else 0)
        for j in range(total if ks >= 0 else n_res):
            if ks < 0:
                r, nb = j, 0.0
            elif lo + j < hi:
                r, nb = list_res[lo + j], list_nb[lo + j]
            else:
                r, nb = m, op_size[i]
            if not mine[r] or (ks >= 0 and nb <= 0):
                continue
            while timer[r] <= s and timer[r] < np.inf:
                # r's timer fires (SharedBandwidth._on_timer, as shared_times replays it)
                now = timer[r]
                stalled = now == last[r]
                n_in = cnt[r]
                if now > last[r]:
                    part = (now - last[r]) * bw[r] / n_in
                    for k in range(n_in):
                        fl_left[r, k] -= part
                    busy[r] += now - last[r]
                last[r] = now
                tol = bw[r] / n_in * FINISH_TOL
                least = fl_left[r, 0]
                for k in range(1, n_in):
                    if fl_left[r, k] < least:
                        least = fl_left[r, k]
                cut = least if (stalled and not least <= tol) else tol
                ev_kind[r] = EV_FIRE
                kept = 0
                for k in range(n_in):
                    op = fl_op[r, k]
                    if fl_left[r, k] <= cut:
                        if now > finish[op]:
                            finish[op] = now
                        if now > end[op]:   # it would end later than timed: stop here
                            where[0], where[1] = op, r
                            return LATE
                    else:
                        fl_op[r, kept] = op
                        fl_left[r, kept] = fl_left[r, k]
                        kept += 1
                cnt[r] = kept
                if kept:
                    least = fl_left[r, 0]
                    for k in range(1, kept):
                        if fl_left[r, k] < least:
                            least = fl_left[r, k]
                    timer[r] = now + max(0.0, least / (bw[r] / kept))
                else:
                    timer[r] = np.inf
            if ks < 0:
                continue
            # op i's transfer arrives (SharedBandwidth.transfer, as shared_times replays it)
            if s < last[r] or (s == last[r] and ev_kind[r] == EV_UNKNOWN):
                where[0], where[1] = i, r
                return MEETS
            # (a timer that fired at s went first, as in SimPy, where timers are URGENT)
            other = -1.0
            first_i = False
            if s == last[r] and ev_kind[r] == EV_ARRIVE:
                if ev_n[r] == 1 and ev_ops[r, 0] == i:
                    pass
                elif ev_n[r] != 1 or arrived[r] != 1:   # a third: known where all move nb
                    if not nb == same_nb[r]:
                        where[0], where[1] = i, r
                        return TIE
                    ev_n[r] = 2
                else:
                    j2 = ev_ops[r, 0]
                    for q in range(cnt[r]):
                        if fl_op[r, q] == j2:
                            other = fl_left[r, q]
                    order = _resumed_order(j2, i, s, prev, dep_ptr, dep_idx, end)
                    if order == REVERSED:
                        first_i = True
                    elif order == UNKNOWN and \
                            (moved_before[r] + nb) + other != (moved_before[r] + other) + nb:
                        where[0], where[1] = i, r
                        return TIE
                    ev_ops[r, 1] = i
                    ev_n[r] = 2
                if not nb == same_nb[r]:
                    same_nb[r] = np.nan
            else:
                ev_kind[r] = EV_ARRIVE
                ev_ops[r, 0] = i
                ev_n[r] = 1
                arrived[r] = 0
                moved_before[r] = moved[r]
                same_nb[r] = nb
            k = cnt[r]
            if k == MAX_IN_FLIGHT:
                where[0], where[1] = i, r
                return CROWDED
            if k and s > last[r]:
                part = (s - last[r]) * bw[r] / k
                for q in range(k):
                    fl_left[r, q] -= part
                busy[r] += s - last[r]
            if first_i:
                moved[r] = (moved_before[r] + nb) + other
            else:
                moved[r] += nb
            arrived[r] += 1
            fl_op[r, k] = i
            fl_left[r, k] = nb
            last[r] = s
            cnt[r] = k + 1
            least = fl_left[r, 0]
            for q in range(1, k + 1):
                if fl_left[r, q] < least:
                    least = fl_left[r, q]
            timer[r] = s + max(0.0, least / (bw[r] / (k + 1)))
        if ks < 0:
            break
    return DONE


@njit(cache=True, error_model="numpy")
def settled(first, fixed, start, end, lat, finish, finish2, floor):
    """How many ops from op ``first`` on, but those ``fixed``, do not end where the event
    loop would end them on these times (``end[i]`` is not ``max(start[i] + lat[i], f)``, ``f``
    the time op ``i``'s transfers finish: ``finish[i]``, or the later of it and
    ``finish2[i]`` where a second part of the replay gave that - ``finish2`` not empty);
    ``floor[i]`` becomes ``f`` where it is past the timeout (-inf: it is not)."""
    off = 0
    two = len(finish2) > 0
    for i in range(first, len(lat)):
        if fixed[i]:
            continue
        f = finish[i]
        if two and finish2[i] > f:
            f = finish2[i]
        e = start[i] + lat[i]
        floor[i] = f if f > e else -np.inf
        if f > e:
            e = f
        if e != end[i]:
            off += 1
    return off
