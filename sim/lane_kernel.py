"""The arrays a stream with a contended memory reads in its quiet runs, in one pass (numba).

:func:`sim.engine_arrays.run_streams` (``lane_of``) gives each such stream, per position on
it, flags and the next position that may end a run or adopt another stream's op. Those were
~15 numpy gathers and scans per stream (~0.8 s on a 10M-op four-stage ``--overlap`` run);
here one loop each way.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, error_model="numpy")
def quiet_lane(ids, stop_all, signal, cand, single, adopt_after, only_wait, next_op,
               stops, sig, wait, one, ends_run, waits_left, next_block, next_adoption,
               adopt_at):
    """Per position ``p`` of a stream's ops ``ids`` (position order; the per-op arrays
    indexed by op): ``stops``, ``sig``, ``wait``, ``one`` - ``stop_all``, ``signal``,
    ``cand``, ``single`` of its op; ``ends_run``: another stream waits for the op and it
    adopts nothing (``adopt_after`` -1), or it adopts an op that does not follow on from the
    op adopted before (the op after it on that stream, ``next_op``); ``waits_left``: the op
    waits for an op of another stream (``cand``) other than the one the op before it adopts
    where that is its only one (``only_wait``); ``next_block``, ``next_adoption`` (``m + 1``
    long): the first position ``>= p`` that stops, ends a run or has a wait left / adopts
    (``m``: none). ``adopt_at``: the positions that adopt (capacity ``m``); their number."""
    m = len(ids)
    n_adopt = 0
    prev_y = -1     # the op the position before adopts (-1: none)
    last_y = -1     # the op the last adopting position adopts
    for p in range(m):
        o = ids[p]
        y = adopt_after[o]
        stops[p] = stop_all[o]
        sig[p] = signal[o]
        wait[p] = cand[o]
        one[p] = single[o]
        end = signal[o] and y < 0
        if y >= 0:
            if n_adopt == 0 or y != next_op[last_y]:
                end = True
            adopt_at[n_adopt] = p
            n_adopt += 1
            last_y = y
        ends_run[p] = end
        waits_left[p] = cand[o] and not (prev_y >= 0 and only_wait[o] == prev_y)
        prev_y = y
    block, adoption = m, m
    next_block[m] = m
    next_adoption[m] = m
    for p in range(m - 1, -1, -1):
        if stops[p] or ends_run[p] or waits_left[p]:
            block = p
        if adopt_after[ids[p]] >= 0:
            adoption = p
        next_block[p] = block
        next_adoption[p] = adoption
    return n_adopt
