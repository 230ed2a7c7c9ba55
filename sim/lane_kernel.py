"""The arrays the streams with a contended memory read in their quiet runs, in one pass over
the ops (numba).

:func:`sim.engine_arrays.run_streams` (``lane_of``) gives each such stream, per position on
it, flags and the next position that may end a run or adopt another stream's op. Those were
~15 numpy gathers and scans per stream (~0.8 s on a 10M-op four-stage ``--overlap`` run),
then one compiled loop per stream over its ops (~0.2-0.4 s there: each stream's ops read
the per-op arrays far apart); here one pass over all ops in id order, each stream's
positions met in order, and one backward pass per stream.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def quiet_lanes(stream, bounds, with_memory, stop_all, signal, cand, single,
                adopt_after, only_wait, next_op, stops, sig, wait, one, ends_run, waits_left,
                next_block, next_adoption, adopt_at, n_adopt):
    """For every stream ``s`` with ``with_memory[s]``, per position ``p`` of its ops (op ``o``
    at ``bounds[s] + p`` of the per-op outputs, ``bounds[s] + s + p`` of the ``m + 1`` long
    ones; ``stream``: each op's stream, its ops in id order): ``stops``,
    ``sig``, ``wait``, ``one`` - ``stop_all``, ``signal``, ``cand``, ``single`` of its op;
    ``ends_run``: another stream waits for the op and it adopts nothing (``adopt_after``
    -1), or it adopts an op that does not follow on from the op adopted before (the op after
    it on that stream, ``next_op``); ``waits_left``: the op waits for an op of another
    stream (``cand``) other than the one the op before it adopts where that is its only one
    (``only_wait``); ``next_block``, ``next_adoption``: the first position ``>= p`` that
    stops, ends a run or has a wait left / adopts (``m``: none). ``adopt_at`` (from
    ``bounds[s]``): the positions that adopt, ``n_adopt[s]`` of them. A stream code outside
    ``0..len(bounds)-2`` raises ``ValueError``."""
    n_streams = len(bounds) - 1
    prev_y = np.full(n_streams, -1, dtype=np.int64)   # the op the position before adopts
    last_y = np.full(n_streams, -1, dtype=np.int64)   # the op the last adoption adopts
    fill = bounds[:-1].copy()     # per stream: where its next op goes (its position + lo)
    n_adopt[:] = 0
    for o in range(len(stream)):
        s = stream[o]
        if s < 0 or s >= n_streams:   # (unchecked, it would write outside the arrays)
            raise ValueError("quiet_lanes: a stream code outside 0..len(bounds)-2")
        if not with_memory[s]:
            continue
        q = fill[s]
        fill[s] = q + 1
        y = adopt_after[o]
        stops[q] = stop_all[o]
        sig[q] = signal[o]
        wait[q] = cand[o]
        one[q] = single[o]
        end = signal[o] and y < 0
        if y >= 0:
            if n_adopt[s] == 0 or y != next_op[last_y[s]]:
                end = True
            adopt_at[bounds[s] + n_adopt[s]] = q - bounds[s]
            n_adopt[s] += 1
            last_y[s] = y
        ends_run[q] = end
        waits_left[q] = cand[o] and not (prev_y[s] >= 0 and only_wait[o] == prev_y[s])
        prev_y[s] = y
    for s in range(n_streams):
        if not with_memory[s]:
            continue
        lo, m, base = bounds[s], bounds[s + 1] - bounds[s], bounds[s] + s
        block, adoption, j = m, m, n_adopt[s] - 1
        next_block[base + m] = m
        next_adoption[base + m] = m
        for p in range(m - 1, -1, -1):
            if stops[lo + p] or ends_run[lo + p] or waits_left[lo + p]:
                block = p
            if j >= 0 and adopt_at[lo + j] == p:
                adoption = p
                j -= 1
            next_block[base + p] = block
            next_adoption[base + p] = adoption
