"""The dependencies between streams of a several-stream run, in two passes (numba).

:func:`sim.engine_arrays.run_streams` signals an op's end to other streams only where an op
of another stream depends on it, and keeps, per op, the signalled ops it waits for and, per
signalled op, the ops waiting for it. Those tables were a dozen numpy passes over every
dependency (a repeat of op ids, masks, a stable sort, two offset tables: ~0.5 s at 10M ops);
here two loops: count, then fill (a counting sort, which keeps each op's waiters in op
order, as the stable sort did).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, error_model="numpy")
def cross_counts(dep_ptr, dep_idx, stream, signal, cand, wait_at):
    """``signal[d]``: an op of another stream than ``d``'s depends on ``d``; ``cand[o]``: a
    dependency of ``o`` is signalled; ``wait_at`` (``n + 1``): where op ``o``'s signalled
    dependencies begin in the tables :func:`cross_pairs` fills. Op ``o``'s dependencies
    are ``dep_idx[dep_ptr[o]:dep_ptr[o + 1]]``. The number of (op, signalled dependency)
    pairs."""
    n = len(stream)
    signal[:] = False
    for o in range(n):
        for j in range(dep_ptr[o], dep_ptr[o + 1]):
            d = dep_idx[j]
            if stream[d] != stream[o]:
                signal[d] = True
    total = 0
    wait_at[0] = 0
    for o in range(n):
        for j in range(dep_ptr[o], dep_ptr[o + 1]):
            if signal[dep_idx[j]]:
                total += 1
        cand[o] = total > wait_at[o]
        wait_at[o + 1] = total
    return total


@njit(cache=True, error_model="numpy")
def cross_pairs(dep_ptr, dep_idx, signal, waiter, waited, waiter_at, waited_sorted,
                waiter_by_waited):
    """The pairs :func:`cross_counts` counted: ``waiter[k]`` depends on ``waited[k]``, in op
    then dependency order; the same pairs ordered by the op waited for, stably
    (``waited_sorted``, ``waiter_by_waited``), ``waiter_at`` (``n + 1``) where each op's
    waiters begin in them."""
    n = len(dep_ptr) - 1
    waiter_at[:] = 0
    k = 0
    for o in range(n):
        for j in range(dep_ptr[o], dep_ptr[o + 1]):
            d = dep_idx[j]
            if signal[d]:
                waiter[k] = o
                waited[k] = d
                waiter_at[d + 1] += 1
                k += 1
    for i in range(n):
        waiter_at[i + 1] += waiter_at[i]
    fill = waiter_at[:n].copy()
    for q in range(k):
        d = waited[q]
        p = fill[d]
        waited_sorted[p] = d
        waiter_by_waited[p] = waiter[q]
        fill[d] = p + 1


@njit(cache=True, error_model="numpy")
def late_dependency(dep_ptr, dep_idx, start, end, slack):
    """The first position ``j`` of ``dep_idx`` (in op order, then each op's dependency order)
    whose op starts before that dependency ends (``start[o] < end[dep_idx[j]] - slack``,
    the invariant check's test, :data:`sim.invariants.DEPENDENCY_SLACK`), or -1: one pass,
    no per-pair arrays."""
    for o in range(len(dep_ptr) - 1):
        s = start[o]
        for j in range(dep_ptr[o], dep_ptr[o + 1]):
            if s < end[dep_idx[j]] - slack:
                return j
    return -1
