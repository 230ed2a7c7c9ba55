"""A quiet run's ops with the ops it adopts, and what it took of them (numba).

A quiet run (:func:`sim.engine_arrays.run_streams`, ``quiet_run``) stamps positions ``k..e``
of a stream and, after each position that adopts another stream's op (``adopt_after``), that
op. Forming that array was ~8 numpy calls per run (two searches, gathers and an insert), and
counting the adoptions a run took and flagging them signalled ~5 more: ~10 us per run on a
four-stage ``--overlap`` run's ~80,000 runs. Here one call each.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def adopted_run(ids, k, e, upto, adopt_at, adopt_after, lead, out):
    """Write into ``out`` the run of positions ``k..e`` of a stream whose ops are ``ids``: the
    op ``lead`` first where ``lead >= 0``, then each position's op, each followed by the op it
    adopts where the position is one of ``adopt_at`` (sorted) no later than ``upto``. (length
    written, the adopting positions' index range ``lo, hi`` in ``adopt_at``). ``out`` holds
    at least ``2 * (e - k + 1) + 1``."""
    lo = np.searchsorted(adopt_at, k)
    hi = max(lo, np.searchsorted(adopt_at, upto, "right"))
    j = 0
    if lead >= 0:
        out[0] = lead
        j = 1
    a = lo
    for p in range(k, e + 1):
        x = ids[p]
        out[j] = x
        j += 1
        if a < hi and adopt_at[a] == p:
            out[j] = adopt_after[x]
            j += 1
            a += 1
    return j, lo, hi


@njit(cache=True, error_model="numpy")
def adopted_taken(f, k, lo, hi, adopt_at, adopt_after, ids, flagged):
    """Of the adoptions ``lo..hi-1`` of a run from position ``k`` (:func:`adopted_run`), those
    among its first ``f`` stamped entries (the lead not counted): each adopting op and the op
    it adopts flagged signalled. (how many, the last op adopted; -1: none)."""
    took = 0
    y = -1
    for j in range(lo, hi):
        if adopt_at[j] - k + 1 + (j - lo) >= f:
            break
        x = ids[adopt_at[j]]
        y = adopt_after[x]
        flagged[x] = 1
        flagged[y] = 1
        took += 1
    return took, y
