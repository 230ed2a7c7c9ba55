"""Compiled stamping of a quiet run on a stream with a contended memory: ops back to back,
each alone on the memory and on its links (numba).

:func:`stamp_quiet` is ``alone_at_once`` of :mod:`sim.engine_arrays` (and its few-op loop):
the run's ops stamped from ``t0`` by the running sum of their durations alone, as long as
each op's memory transfer and link loads are alone until it ends - nothing in flight on the
resource (``ok``), the finish tolerance of :meth:`~sim.resources.SharedBandwidth.solo_end`
met, and the op ending before any other stream may start a transfer there (``bound``) -
then each resource's bytes, busy time and last change counted as ``add_solo`` counts them.
The same float operations in the same order as the numpy version it replaces (running sums
are sequential additions), so every time and resource figure is the same
(tests/test_quiet_kernel.py by hand, tests/test_array_plan.py against the op-by-op engine).
A four-stage 2,048-token 70B ``--overlap`` run has ~200,000 such runs: ~40 numpy calls each
in Python, one call here.
"""

from __future__ import annotations

from numba import njit

from sim.bound_kernel import quiet_until
from sim.engine_aot import UNKNOWN, WANT_MEMORY
from sim.resources import FINISH_TOL


@njit(cache=True, error_model="numpy")
def stamp_quiet(run, t0, dur, size, of_op, ptr, res, nb, memory, ok, rate, bound, moved, busy,
                last, start, end, times):
    """Stamp ops ``run`` from ``t0`` (s) while each is alone: (how many stamped, when the last
    ends, what is wanted first: -1 nothing, :data:`WANT_MEMORY` the memory's bound, else a
    link code whose state or bound the caller fills in before calling again; a call that
    wants something changes nothing).

    Per op: ``dur`` (s, alone), ``size`` (B through the memory), ``of_op`` (its list of link
    loads, -1: none; loads with bytes at ``ptr[c]:ptr[c + 1]`` of ``res`` (link codes) and
    ``nb`` (B)). ``memory``: [ok (1.0: nothing in flight, no share reserved), rate (B/s),
    bound (s; NaN: not known), moved (B), busy (s), last (s)], counters updated in place. Per
    link code: ``ok`` (1, 0, or :data:`UNKNOWN`), ``rate`` (B/s), ``bound`` (s; NaN: not
    known) and its ``moved``, ``busy`` and ``last`` counters, updated in place.
    ``start``/``end``: every op's times (s); ``times``: scratch of at least
    ``len(run) + 1``."""
    n = len(run)
    mem_ok = memory[0] == 1.0
    mem_rate = memory[1]
    mem_bound = memory[2]
    for j in range(n):      # what the checks need, before anything changes
        i = run[j]
        if size[i] > 0 and mem_ok and mem_bound != mem_bound:
            return 0, t0, WANT_MEMORY
        c0 = of_op[i]
        if c0 >= 0:
            for q in range(ptr[c0], ptr[c0 + 1]):
                c = res[q]
                if ok[c] == UNKNOWN or (ok[c] == 1 and bound[c] != bound[c]):
                    return 0, t0, c
    times[0] = t0
    acc = t0
    for j in range(n):
        acc += dur[run[j]]
        times[j + 1] = acc
    f = n
    for j in range(n):      # the memory: up to the first transfer that is not alone
        s = size[run[j]]
        if s > 0:
            if not mem_ok:
                f = j
                break
            timer = times[j] + max(0.0, s / mem_rate)
            if s - (timer - times[j]) * mem_rate > mem_rate * FINISH_TOL or \
                    not times[j + 1] < mem_bound:
                f = j
                break
    for j in range(f):      # the links of the ops before it: up to the first not alone
        c0 = of_op[run[j]]
        if c0 < 0:
            continue
        alone = True
        for q in range(ptr[c0], ptr[c0 + 1]):
            c = res[q]
            if ok[c] != 1:
                alone = False
                break
            r, b, s = rate[c], nb[q], times[j]
            timer = s + max(0.0, b / r)
            if b - (timer - s) * r > r * FINISH_TOL or not times[j + 1] < bound[c]:
                alone = False
                break
        if not alone:
            f = j
            break
    if f == 0:
        return 0, t0, -1
    m_moved, m_busy, m_last = memory[3], memory[4], memory[5]
    for j in range(f):
        i = run[j]
        s = size[i]
        if s > 0:
            timer = times[j] + max(0.0, s / mem_rate)
            m_moved += s
            m_busy += timer - times[j]
            m_last = timer
        c0 = of_op[i]
        if c0 >= 0:
            for q in range(ptr[c0], ptr[c0 + 1]):
                c = res[q]
                r, b, t = rate[c], nb[q], times[j]
                timer = t + max(0.0, b / r)
                moved[c] += b
                busy[c] += timer - t
                last[c] = timer
        start[i] = times[j]
        end[i] = times[j + 1]
    memory[3], memory[4], memory[5] = m_moved, m_busy, m_last
    return f, times[f], -1


@njit(cache=True, error_model="numpy")
def stamp_bounded(run, t0, dur, size, of_op, ptr, res, nb, memory, ok, rate, bound, moved,
                  busy, last, start, end, times, mem_rc, link_rc, busy0, now, users_ptr, users,
                  use_ptr, use_pos, n_streams, cum_ptr, cum, stream_ops, op_dur, st_kind,
                  st_t, st_op, wait_at, wait_on, done, owner, position, slack):
    """:func:`stamp_quiet` that fills in the bounds it needs itself: the memory's (resource
    code ``mem_rc``) and each link's whose state is known (``link_rc``: per link code its
    resource code), by :func:`sim.bound_kernel.quiet_until` for stream ``busy0`` at ``now``
    (s) - the rest of its arguments, the op ends being ``end`` - before anything is stamped,
    as the caller would (the same values: nothing they read changes meanwhile). It returns
    to the caller only for a link whose state is not filled in yet (``ok`` UNKNOWN)."""
    mem_ok = memory[0] == 1.0
    for j in range(len(run)):
        i = run[j]
        if size[i] > 0 and mem_ok and memory[2] != memory[2]:
            memory[2] = quiet_until(mem_rc, busy0, -1, now, users_ptr, users, use_ptr,
                                    use_pos, n_streams, cum_ptr, cum, stream_ops, op_dur,
                                    st_kind, st_t, st_op, wait_at, wait_on, done, owner,
                                    position, end, slack)
        c0 = of_op[i]
        if c0 >= 0:
            for q in range(ptr[c0], ptr[c0 + 1]):
                c = res[q]
                if ok[c] == UNKNOWN:
                    return 0, t0, c
                if ok[c] == 1 and bound[c] != bound[c]:
                    bound[c] = quiet_until(link_rc[c], busy0, -1, now, users_ptr, users,
                                           use_ptr, use_pos, n_streams, cum_ptr, cum,
                                           stream_ops, op_dur, st_kind, st_t, st_op, wait_at,
                                           wait_on, done, owner, position, end, slack)
    return stamp_quiet(run, t0, dur, size, of_op, ptr, res, nb, memory, ok, rate, bound, moved,
                       busy, last, start, end, times)
