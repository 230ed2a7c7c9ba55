"""The times of a several-stream run whose transfers share resources, in one pass (numba).

:func:`sim.dag_kernel.dag_times` times a run in which every transfer is alone. Here the
transfers may share a memory or a link, as :class:`sim.resources.SharedBandwidth` shares it
(processor sharing: ``n`` transfers in flight each move at ``rate / n``), and each
resource's transfers are replayed with its arithmetic, float for float:

* an arrival charges the transfers in flight their share since the last change
  (``(t - last) * rate / n``), adds its bytes to the bytes moved and reschedules the
  resource's timer at ``t + max(0, min(left) / (rate / n))``;
* the timer finishes the transfers within ``rate / n * FINISH_TOL`` bytes of done (where it
  fires at the time of the last change and none is, those with the least left), charges the
  busy time and reschedules;
* an op of a unit inside the memory (PIM) moves no bytes: it reserves its share of the memory
  from its start to its timeout (``reserve`` / ``release``: the transfers in flight are
  charged at the rate so far, then share ``bandwidth * (1 - reserved)``, and the timer is
  rescheduled); its release is an event of the pass, at its end.

The pass is a discrete-event loop over the streams and resources, in time order. The next
event is the earliest of each stream's next op's start (once every op it waits for has a
known end: the latest of those ends) and each resource's timer; a timer goes first at a tie,
as in SimPy, where a resource's timer is an URGENT event (:mod:`sim.resources`): it fires
before the op steps, arrivals, reservations and releases of its time, whenever they were
scheduled.
An op's transfers arrive at its start (its link loads in their order, then its memory bytes,
as :func:`sim.resources.occupy` starts them), and it ends at the latest of its timeout
(``start + latency``) and its transfers' finishing timers.

That is the event engine's run, bit for bit (tests/test_engine_shared.py). The pass gives up
(returns a code other than :data:`DONE`) where it cannot be sure of SimPy's order:

* two events at one time on a resource in an order not known here (a timer and any other
  event are known: the timer first). Known are also: two arrivals whose ops are both
  resumed by one op's end, one as its stream's next op (it starts at once, in the same
  process step) and one waiting for it on another stream (resumed after); an op's own
  transfers, in its order.
  Two arrivals in an order not known whose bytes add up to the same float either way leave
  the same state (nothing moves in that instant, the timer reads the same bytes left), and
  so do three or more that each move the same bytes (a run's first weight fetches on its
  stages);
  a reservation changed at the time of arrivals (nothing moves in that instant and the last
  reschedule reads the same state: the same floats in either order); a share reserved by an
  op that waits for the op whose release came first at that time; two shares reserved by ops
  both resumed by one op's end (as two arrivals); two changes of one kind and share. A third
  change at one time is not known;
* more than :data:`MAX_IN_FLIGHT` transfers (or reservations) on a resource at once;
* a reservation SimPy's resource refuses (the shares reach 1): the event loop raises it.

Its hot loop is written out by hand: numba's call (or ``inline="always"``) of a helper that
takes a dozen arrays cost 0.1-0.3 us a call here, more than the work it does. So the check of
when a stream's next op may start stands four times: as ``_ready_at(j, prev, dep_ptr,
dep_idx, fin, end)`` with ``inline="always"``, the pass over a 9.9M-op TP2 x PP4 x 4
``--overlap`` run took 1.86-2.13 s instead of 1.09-1.10 s (2026-12-06). Even two small
helpers shared with :mod:`sim.replay_kernel` (a resource's least bytes left and next timer,
its charge and cut at a timer; 2-7 arrays each, ``inline="always"``) took this pass over a
4.9M-op run from 0.45-0.49 to 0.65-0.72 s and the replay from 0.16-0.21 to 0.42-0.47 s, the
same floats (JIT builds alternated in one process, 2026-12-07). A PIM reservation's
release, seldom, calls :func:`_wake` for it instead. The earliest stream start and the
earliest timer are kept as entries change and looked for again (a scan of the streams or
of the resources) only where the entry that held them moved: a scan of the timers per fire
and of the streams per op start, where every event scanned both (the 9.9M-op run with half
its KV cache in host DDR: the pass 1.41-1.48 -> 1.22-1.27 s, 2026-12-07). The timers are
looked for among the resources with transfers in flight only (kept as a list as transfers
arrive and leave; the lowest index first at a tie, as in a scan of them all): that run's
16 resources hold one or two such at a time, and the scan of all 16 was ~17% of the pass
(sampled); the pass 1.07-1.09 -> 0.99-1.03 s (2026-12-07).

Its caller (:mod:`sim.engine_shared`) then leaves the run to the event engine.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.resources import FINISH_TOL

#: what the pass returns
DONE = 0
PAUSED = 1           # every op below ``head`` started and nothing in flight: stopped there
TIE = 2              # two events at one time in an order not known here
CROWDED = 3          # more transfers in flight on a resource than the pass holds
BAD_ORDER = 4        # an op waits for one that can never end before it
BAD_SHARE = 5        # a reservation SimPy's resource refuses (it raises its error)
#: transfers one resource may hold in flight at once
MAX_IN_FLIGHT = 8
#: what a resource's last event was (EV_NONE: only reservations changed it at that time)
EV_NONE, EV_ARRIVE, EV_FIRE = 0, 1, 2
#: a resource's last reservation change: a share reserved or released
RESERVE, RELEASE = 1, -1


@njit(cache=True, error_model="numpy", inline="always")
def _waits_for(i, a, prev, dep_ptr, dep_idx):
    """Whether op ``i`` follows op ``a`` on its stream or depends on it."""
    if prev[i] == a:
        return True
    for q in range(dep_ptr[i], dep_ptr[i + 1]):
        if dep_idx[q] == a:
            return True
    return False


@njit(cache=True, error_model="numpy", inline="always")
def _trigger(i, t, prev, dep_ptr, dep_idx, end):
    """The one op among ``i``'s stream's op before it and its dependencies that ends at
    ``t`` (its start); -1 where none or several do."""
    got = -1
    p = prev[i]
    if p >= 0 and end[p] == t:
        got = p
    for q in range(dep_ptr[i], dep_ptr[i + 1]):
        d = dep_idx[q]
        if end[d] == t and d != got:
            if got >= 0:
                return -1
            got = d
    return got


#: the order of two ops that start at one time (:func:`_resumed_order`), or of two
#: reservation changes (:func:`_change_order`)
UNKNOWN, IN_ORDER, REVERSED = 0, 1, 2


@njit(cache=True, error_model="numpy", inline="always")
def _resumed_order(a, i, t, prev, dep_ptr, dep_idx, end):
    """Of ops ``a`` (met first by the pass) and ``i`` starting at ``t``: IN_ORDER where SimPy
    starts ``a`` first too, REVERSED where it starts ``i`` first, UNKNOWN where the trace
    does not say. Known: both resumed by one op's end, its stream's next op first (the same
    process step), the waiter on another stream after."""
    x = _trigger(i, t, prev, dep_ptr, dep_idx, end)
    if x < 0 or x != _trigger(a, t, prev, dep_ptr, dep_idx, end):
        return UNKNOWN
    if prev[a] == x and prev[i] != x:
        return IN_ORDER
    if prev[i] == x and prev[a] != x:
        return REVERSED
    return UNKNOWN


@njit(cache=True, error_model="numpy", inline="never")
def _wake(op, woken, sid, at, pos, bounds, by_stream, prev, dep_ptr, dep_idx, fin, end):
    """Op ``op`` has ended: the next op's start of its stream and of those that wait on it,
    where every op it waits for has ended (``at``, per stream; inf: not yet). A call, not
    inlined: a reservation's release, seldom, takes it; the hot loop's own ends keep the
    same lines written out (module docstring)."""
    n_streams = len(at)
    bits = -1 if not len(woken) else woken[op] | (1 << (sid[op] & 63))
    for w in range(n_streams):
        if (bits >> (w & 63)) & 1 and at[w] == np.inf and pos[w] < bounds[w + 1]:
            j = by_stream[pos[w]]
            t = 0.0
            p = prev[j]
            ok = True
            if p >= 0:
                if not fin[p]:
                    ok = False
                else:
                    t = end[p]
            if ok:
                for q in range(dep_ptr[j], dep_ptr[j + 1]):
                    d = dep_idx[q]
                    if not fin[d]:
                        ok = False
                        break
                    if end[d] > t:
                        t = end[d]
            at[w] = t if ok else np.inf


@njit(cache=True, error_model="numpy", inline="always")
def _change_order(r, i, t, kind, share, reserved, chg_t, chg_n, chg_kind, chg_op, chg_share,
                  chg_before, prev, dep_ptr, dep_idx, end):
    """Count op ``i``'s reservation change (``kind``: RESERVE or RELEASE of ``share``) on
    resource ``r`` at ``t``: IN_ORDER where it is the first there at ``t`` or comes after
    the one before in SimPy's order too, REVERSED where SimPy made it first (the reserved
    share is then worked out again in that order), UNKNOWN where the order matters and is
    not known. Known: a share reserved by an op that waits for the op whose release came
    first (its end resumes it); two shares reserved by ops both resumed by one op's end, its
    stream's next op first (the same process step), the waiter on another stream after; two
    changes of one kind and share (either order gives the same float). A third is not."""
    if chg_t[r] != t:
        chg_t[r], chg_n[r], chg_kind[r], chg_op[r], chg_share[r] = t, 1, kind, i, share
        chg_before[r] = reserved[r]
        return IN_ORDER
    if chg_n[r] >= 2:
        return UNKNOWN
    chg_n[r] += 1
    if chg_kind[r] == kind and chg_share[r] == share:
        return IN_ORDER
    if kind != RESERVE:
        return UNKNOWN
    a = chg_op[r]
    if chg_kind[r] == RELEASE:
        return IN_ORDER if _waits_for(i, a, prev, dep_ptr, dep_idx) else UNKNOWN
    return _resumed_order(a, i, t, prev, dep_ptr, dep_idx, end)


@njit(cache=True, error_model="numpy")
def shared_times(dep_ptr, dep_idx, prev, lat, op_list, list_ptr, list_res, list_nb,
                 op_mem, op_size, share, bw, reserved, by_stream, bounds, start, end, moved,
                 busy, last, head, paused, where):
    """Fill ``start`` / ``end`` (s) of every op and each resource's ``moved`` (B), ``busy``
    (s), ``last`` (its last change, s) and ``reserved`` (the share of it reserved) - in: its
    state before the run - as the event engine would (module docstring); :data:`DONE`, or
    why not (the other codes). ``lat``: each op's latency (s); its link loads: list
    ``op_list[i]`` (-1: none) of ``list_res`` / ``list_nb`` at ``list_ptr[c]:list_ptr[c +
    1]``; its memory bytes ``op_size[i]`` through resource ``op_mem[i]`` (-1: none);
    ``share[i]`` > 0: the op moves nothing and reserves that share of ``op_mem[i]`` while it
    runs (a PIM unit; ``share`` empty: no op does); ``bw``: each resource's B/s;
    ``by_stream`` / ``bounds``: the ops of stream ``k`` in order at ``bounds[k]:bounds[k +
    1]``. ``head``: where every op with a lower id has started, no transfer or reservation is
    in flight and the next event comes after every resource's last change, the pass stops
    (:data:`PAUSED`; a ``head`` above the ops' count: never), each stream's next op's position
    in ``paused``: the ops before it have their times, the others none
    (:mod:`sim.engine_shared` times them apart). ``where``: the op and the resource at which
    it gave up (-1: none)."""
    n = len(lat)
    n_res = len(bw)
    rate = np.empty(n_res)      # what the transfers in flight share: SharedBandwidth.rate
    for r in range(n_res):
        rate[r] = bw[r] * (1.0 - reserved[r])
    any_share = False     # (``share`` empty: none)
    for i in range(len(share)):
        if share[i] > 0.0:
            any_share = True
            break
    rl_t = np.full((n_res, MAX_IN_FLIGHT), np.inf)    # each reservation's release (s)
    rl_op = np.zeros((n_res, MAX_IN_FLIGHT), dtype=np.int64)   # its op
    rl_n = np.zeros(n_res, dtype=np.int64)
    rl_next = np.full(n_res, np.inf)                 # the earliest release, per resource
    chg_t = np.full(n_res, -np.inf)                  # the time of the last changes counted
    chg_n = np.zeros(n_res, dtype=np.int64)          # how many changes then
    chg_kind = np.zeros(n_res, dtype=np.int64)       # the first one's kind, op and share
    chg_op = np.zeros(n_res, dtype=np.int64)
    chg_share = np.zeros(n_res)
    chg_before = np.zeros(n_res)                     # the share reserved before them
    n_streams = len(bounds) - 1
    cnt = np.zeros(n_res, dtype=np.int64)
    fl_op = np.zeros((n_res, MAX_IN_FLIGHT), dtype=np.int64)
    fl_left = np.zeros((n_res, MAX_IN_FLIGHT))
    timer = np.full(n_res, np.inf)
    # the resources with transfers in flight (a finite timer), in no order, and each
    # one's place there (-1: none in flight): the earliest timer is looked for among them
    busy_res = np.empty(n_res, dtype=np.int64)
    busy_at = np.full(n_res, -1, dtype=np.int64)
    n_busy = 0
    ev_kind = np.zeros(n_res, dtype=np.int64)        # the resource's last event
    ev_ops = np.zeros((n_res, MAX_IN_FLIGHT), dtype=np.int64)   # its ops
    ev_n = np.zeros(n_res, dtype=np.int64)
    arrived = np.zeros(n_res, dtype=np.int64)        # arrivals at the last event's time
    moved_before = np.zeros(n_res)                  # bytes moved before those arrivals
    same_nb = np.zeros(n_res)                       # the bytes each of them moves (nan: not one)
    pend = np.empty(n, dtype=np.int64)              # transfers not yet finished, per op
    mx = np.empty(n)                                # latest finishing timer, per op
    # (both set when the op starts)
    fin = np.zeros(n, dtype=np.bool_)               # whether the op's end is known
    pos = bounds[:-1].copy()                        # each stream's next op (position)
    sid = np.empty(n, dtype=np.int64)               # each op's stream (set when it starts)
    # per op: streams that wait on it (bits); where the pass may stop early (``head``), not
    # worked out over every op: an op's end then looks at every stream (-1)
    every = n_streams > 64 or head <= n
    woken = np.zeros(0 if every else n, dtype=np.int64)
    if not every:
        for k in range(n_streams):
            for q in range(bounds[k], bounds[k + 1]):
                sid[by_stream[q]] = k
        for j in range(n):
            for q in range(dep_ptr[j], dep_ptr[j + 1]):
                woken[dep_idx[q]] |= 1 << (sid[j] & 63)
    at = np.full(n_streams, np.inf)                 # each stream's next op's start, once known
    below = 0                                       # ops below ``head`` started
    for k in range(n_streams):
        if pos[k] < bounds[k + 1]:
            j = by_stream[pos[k]]
            t = 0.0
            p = prev[j]
            ok = True
            if p >= 0:
                if not fin[p]:
                    ok = False
                else:
                    t = end[p]
            if ok:
                for q in range(dep_ptr[j], dep_ptr[j + 1]):
                    d = dep_idx[q]
                    if not fin[d]:
                        ok = False
                        break
                    if end[d] > t:
                        t = end[d]
            at[k] = t if ok else np.inf
    # the earliest stream start (ks, s) and timer (rf, tf), lowest index first at a tie: kept
    # as entries change, each looked for again only where its own entry changed (dirty)
    ks, s, rf, tf = -1, np.inf, -1, np.inf
    s_dirty = t_dirty = True
    while True:
        # the next event: the earliest start of a stream's next op whose waits have all
        # ended (kept per stream, worked out again where an op it may wait for ends), or
        # resource timer (a timer first at a tie)
        if s_dirty:
            ks, s = -1, np.inf
            for k in range(n_streams):
                if at[k] < s:
                    ks, s = k, at[k]
            s_dirty = False
        if t_dirty:
            rf, tf = -1, np.inf
            for a in range(n_busy):
                r = busy_res[a]
                if timer[r] < tf or (timer[r] == tf and r < rf):
                    rf, tf = r, timer[r]
            t_dirty = False
        rr, tr = -1, np.inf
        if any_share:
            for r in range(n_res):
                if rl_next[r] < tr:
                    rr, tr = r, rl_next[r]
        if ks < 0 and rf < 0 and rr < 0:
            break
        if below >= head:   # stop where nothing is in flight, before the next event
            nxt = min(s, tf, tr)
            quiet = True
            for r in range(n_res):
                if cnt[r] or rl_n[r] or not last[r] < nxt:
                    quiet = False
                    break
            if quiet:
                for k in range(n_streams):
                    paused[k] = pos[k]
                return PAUSED
        if rr >= 0 and tr < tf and tr <= s:
            # the release of a reservation (occupy's ``memory.release`` when the op's
            # timeout fires): its resource's transfers are charged at the rate so far, then
            # share what is left; the op ends
            r = rr
            now = tr
            k = 0
            for q in range(1, rl_n[r]):
                if rl_t[r, q] < rl_t[r, k]:
                    k = q
            op = rl_op[r, k]
            if _change_order(r, op, now, RELEASE, share[op], reserved, chg_t, chg_n,
                             chg_kind, chg_op, chg_share, chg_before, prev, dep_ptr, dep_idx,
                             end) != IN_ORDER:
                where[0], where[1] = op, r
                return TIE
            n_in = cnt[r]
            if now > last[r]:
                if n_in:
                    part = (now - last[r]) * rate[r] / n_in
                    for q in range(n_in):
                        fl_left[r, q] -= part
                    busy[r] += now - last[r]
                ev_kind[r] = EV_NONE
                ev_n[r] = 0
            last[r] = now
            reserved[r] = max(0.0, reserved[r] - share[op])
            rate[r] = bw[r] * (1.0 - reserved[r])
            if n_in:
                least = fl_left[r, 0]
                for q in range(1, n_in):
                    if fl_left[r, q] < least:
                        least = fl_left[r, q]
                timer[r] = now + max(0.0, least / (rate[r] / n_in))
                if r == rf:
                    t_dirty = True
                elif timer[r] < tf or (timer[r] == tf and r < rf):
                    rf, tf = r, timer[r]
            rl_n[r] -= 1
            rl_t[r, k], rl_op[r, k] = rl_t[r, rl_n[r]], rl_op[r, rl_n[r]]
            rl_t[r, rl_n[r]] = np.inf
            rl_next[r] = np.inf
            for q in range(rl_n[r]):
                if rl_t[r, q] < rl_next[r]:
                    rl_next[r] = rl_t[r, q]
            pend[op] = 0
            fin[op] = True
            _wake(op, woken, sid, at, pos, bounds, by_stream, prev, dep_ptr, dep_idx, fin, end)
            s_dirty = True
            continue
        if rf >= 0 and tf <= s:
            # resource rf's timer fires (SharedBandwidth._on_timer, inlined by hand): the
            # transfers in flight are charged, those done leave and their ops may end
            r = rf
            now = tf
            t_dirty = True      # r's timer moves
            stalled = now == last[r]
            n_in = cnt[r]
            if now > last[r]:
                part = (now - last[r]) * rate[r] / n_in
                for k in range(n_in):
                    fl_left[r, k] -= part
                busy[r] += now - last[r]
            last[r] = now
            tol = rate[r] / n_in * FINISH_TOL
            least = fl_left[r, 0]
            for k in range(1, n_in):
                if fl_left[r, k] < least:
                    least = fl_left[r, k]
            # done: within the slack; or, where none is and the timer fired at the last
            # change, those with the least left
            cut = least if (stalled and not least <= tol) else tol
            ev_kind[r] = EV_FIRE
            kept = 0
            for k in range(n_in):
                op = fl_op[r, k]
                if fl_left[r, k] <= cut:
                    pend[op] -= 1
                    if now > mx[op]:
                        mx[op] = now
                    if pend[op] == 0:      # its last transfer: it ends
                        if mx[op] > end[op]:
                            end[op] = mx[op]
                        fin[op] = True
                        # its stream and those that wait on it: their next op's start
                        # (w, not k: k counts this resource's transfers)
                        bits = -1 if every else woken[op] | (1 << (sid[op] & 63))
                        for w in range(n_streams):
                            if (bits >> (w & 63)) & 1 and at[w] == np.inf and \
                                    pos[w] < bounds[w + 1]:
                                j = by_stream[pos[w]]
                                t = 0.0
                                p = prev[j]
                                ok = True
                                if p >= 0:
                                    if not fin[p]:
                                        ok = False
                                    else:
                                        t = end[p]
                                if ok:
                                    for q in range(dep_ptr[j], dep_ptr[j + 1]):
                                        d = dep_idx[q]
                                        if not fin[d]:
                                            ok = False
                                            break
                                        if end[d] > t:
                                            t = end[d]
                                at[w] = t if ok else np.inf
                                if ok and not s_dirty:
                                    if w == ks:
                                        s_dirty = True
                                    elif t < s or (t == s and w < ks):
                                        ks, s = w, t

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
                timer[r] = now + max(0.0, least / (rate[r] / kept))
            else:
                timer[r] = np.inf
                # none in flight: out of the busy resources (the last one takes its place)
                n_busy -= 1
                a = busy_at[r]
                busy_res[a] = busy_res[n_busy]
                busy_at[busy_res[a]] = a
                busy_at[r] = -1
            continue
        i = by_stream[pos[ks]]
        start[i] = s
        end[i] = s + lat[i]           # the timeout; the transfers' timers may end it later
        sid[i] = ks
        pend[i] = 0
        mx[i] = -np.inf
        if i < head:
            below += 1
        c = op_list[i]
        lo = list_ptr[c] if c >= 0 else 0
        hi = list_ptr[c + 1] if c >= 0 else 0
        m = op_mem[i]
        total = hi - lo + (1 if m >= 0 and op_size[i] > 0 else 0)
        if any_share and share[i] > 0.0:
            # a PIM unit's op reserves its share of the memory until its timeout
            # (SharedBandwidth.reserve, inlined): what is in flight is charged at the rate so
            # far and shares the rest from now; it moves no bytes
            total = 0
            r = m
            if s < last[r]:
                where[0], where[1] = i, r
                return TIE
            # (a timer that fired at s went first: SimPy fires timers, URGENT, before the
            # op steps of their time)
            order = _change_order(r, i, s, RESERVE, share[i], reserved, chg_t, chg_n,
                                  chg_kind, chg_op, chg_share, chg_before, prev, dep_ptr,
                                  dep_idx, end)
            if order == UNKNOWN:
                where[0], where[1] = i, r
                return TIE
            held = reserved[r] + share[i]   # what reserve checks: below the whole
            if order == REVERSED:
                held = max(chg_before[r] + share[i], (chg_before[r] + share[i]) + chg_share[r])
            if not share[i] < 1.0 or held >= 1.0 - 1e-12:
                where[0], where[1] = i, r
                return BAD_SHARE
            if rl_n[r] == MAX_IN_FLIGHT:
                where[0], where[1] = i, r
                return CROWDED
            n_in = cnt[r]
            if s > last[r]:
                if n_in:
                    part = (s - last[r]) * rate[r] / n_in
                    for q in range(n_in):
                        fl_left[r, q] -= part
                    busy[r] += s - last[r]
                ev_kind[r] = EV_NONE
                ev_n[r] = 0
            last[r] = s
            if order == REVERSED:   # SimPy reserved this share first, the other after
                reserved[r] = (chg_before[r] + share[i]) + chg_share[r]
            else:
                reserved[r] += share[i]
            rate[r] = bw[r] * (1.0 - reserved[r])
            if n_in:
                least = fl_left[r, 0]
                for q in range(1, n_in):
                    if fl_left[r, q] < least:
                        least = fl_left[r, q]
                timer[r] = s + max(0.0, least / (rate[r] / n_in))
                if r == rf:
                    t_dirty = True
                elif timer[r] < tf or (timer[r] == tf and r < rf):
                    rf, tf = r, timer[r]
            rl_t[r, rl_n[r]] = end[i]
            rl_op[r, rl_n[r]] = i
            rl_n[r] += 1
            if end[i] < rl_next[r]:
                rl_next[r] = end[i]
            pend[i] = 1
        for j in range(total):
            if lo + j < hi:
                r, nb = list_res[lo + j], list_nb[lo + j]
            else:
                r, nb = m, op_size[i]
            if nb <= 0:
                continue
            # SharedBandwidth.transfer, inlined by hand (numba's inlining of a function of
            # this many arrays cost ~0.3 us per call)
            if s < last[r]:
                where[0], where[1] = i, r
                return TIE
            # (a timer that fired at s went first: SimPy fires timers, URGENT, before the
            # op steps of their time)
            other = -1.0          # bytes of another op's transfer that arrived at s first
            first_i = False       # whether op i arrived before it in the engine
            if s == last[r] and ev_kind[r] == EV_ARRIVE:
                if ev_n[r] == 1 and ev_ops[r, 0] == i:
                    pass             # the op's own transfers, in its order
                elif ev_n[r] != 1 or arrived[r] != 1:
                    # a third op at this time (or a second after an op's two transfers): known
                    # where every arrival then moves the same bytes (any order adds the same
                    # floats and leaves the same bytes in flight)
                    if not nb == same_nb[r]:
                        where[0], where[1] = i, r
                        return TIE
                    ev_n[r] = 2
                else:
                    # two ops arriving at once: both resumed by one op's end, the stream's
                    # next op first (the same process step), the waiter on another stream
                    # after it
                    j2 = ev_ops[r, 0]
                    for q in range(cnt[r]):     # its bytes (nothing charged since it came)
                        if fl_op[r, q] == j2:
                            other = fl_left[r, q]
                    order = _resumed_order(j2, i, s, prev, dep_ptr, dep_idx, end)
                    if order == REVERSED:
                        first_i = True
                    elif order == UNKNOWN and \
                            (moved_before[r] + nb) + other != (moved_before[r] + other) + nb:
                        # an order not known, and the bytes moved would differ by it (else
                        # nothing the two arrivals leave depends on their order)
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
            # charge the transfers in flight, add, reschedule
            if k and s > last[r]:
                part = (s - last[r]) * rate[r] / k
                for q in range(k):
                    fl_left[r, q] -= part
                busy[r] += s - last[r]
            if first_i:   # i's bytes were added before the other op's
                moved[r] = (moved_before[r] + nb) + other
            else:
                moved[r] += nb
            arrived[r] += 1
            fl_op[r, k] = i
            fl_left[r, k] = nb
            last[r] = s
            cnt[r] = k + 1
            if not k:     # its first transfer in flight: a busy resource
                busy_res[n_busy] = r
                busy_at[r] = n_busy
                n_busy += 1
            least = fl_left[r, 0]
            for q in range(1, k + 1):
                if fl_left[r, q] < least:
                    least = fl_left[r, q]
            timer[r] = s + max(0.0, least / (rate[r] / (k + 1)))
            if r == rf:
                t_dirty = True
            elif timer[r] < tf or (timer[r] == tf and r < rf):
                rf, tf = r, timer[r]
            pend[i] += 1
        pos[ks] += 1
        at[ks] = np.inf
        s_dirty = True      # ks's entry moves
        if pend[i] == 0:
            fin[i] = True
            # its stream and those that wait on it: their next op's start
            bits = -1 if every else woken[i] | (1 << (sid[i] & 63))
            for k in range(n_streams):
                if (bits >> (k & 63)) & 1 and at[k] == np.inf and pos[k] < bounds[k + 1]:
                    j = by_stream[pos[k]]
                    t = 0.0
                    p = prev[j]
                    ok = True
                    if p >= 0:
                        if not fin[p]:
                            ok = False
                        else:
                            t = end[p]
                    if ok:
                        for q in range(dep_ptr[j], dep_ptr[j + 1]):
                            d = dep_idx[q]
                            if not fin[d]:
                                ok = False
                                break
                            if end[d] > t:
                                t = end[d]
                    at[k] = t if ok else np.inf

        else:
            k = ks
            if pos[k] < bounds[k + 1]:
                j = by_stream[pos[k]]
                t = 0.0
                p = prev[j]
                ok = True
                if p >= 0:
                    if not fin[p]:
                        ok = False
                    else:
                        t = end[p]
                if ok:
                    for q in range(dep_ptr[j], dep_ptr[j + 1]):
                        d = dep_idx[q]
                        if not fin[d]:
                            ok = False
                            break
                        if end[d] > t:
                            t = end[d]
                at[k] = t if ok else np.inf

    for i in range(n):
        if not fin[i]:
            return BAD_ORDER     # an op never started: a wait that cannot end
    return DONE
