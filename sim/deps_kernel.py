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


@njit(cache=True, error_model="numpy")
def task_deps(base_ptr, base, wait_op, wait_len, waited, tr_ptr, tr_waited, n, ptr, idx):
    """The dependency table (``ptr``, ``idx``) of a planned run's tasks: ``n`` ops, then two
    per transfer (its latency task, whose dependencies are the transfer's, and its loads
    task, none). Op ``i``: its own dependencies ``base[base_ptr[i]:base_ptr[i + 1]]``, then
    the transfers it waits for (``wait_op``: the ops that wait, ascending; ``wait_len``: how
    many each; ``waited``: their ids one op after the other); transfer ``j``:
    ``tr_waited[tr_ptr[j]:tr_ptr[j + 1]]``. A waited id ``t`` is an op's (``t < n``) or the
    loads task ``2 t - n + 1`` of transfer ``t - n``."""
    at = 0
    w = 0
    src = 0
    ptr[0] = 0
    for i in range(n):
        for d in range(base_ptr[i], base_ptr[i + 1]):
            idx[at] = base[d]
            at += 1
        if w < len(wait_op) and wait_op[w] == i:
            for q in range(src, src + wait_len[w]):
                t = waited[q]
                idx[at] = t if t < n else 2 * t - n + 1
                at += 1
            src += wait_len[w]
            w += 1
        ptr[i + 1] = at
    for j in range(len(tr_ptr) - 1):
        for q in range(tr_ptr[j], tr_ptr[j + 1]):
            t = tr_waited[q]
            idx[at] = t if t < n else 2 * t - n + 1
            at += 1
        ptr[n + 2 * j + 1] = at
        ptr[n + 2 * j + 2] = at
