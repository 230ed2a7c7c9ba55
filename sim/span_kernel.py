"""Compiled stamping of a span of a plain run: ops back to back, loaded ops alone on their
links (numba).

:func:`stamp_span` is ``span_run`` of :mod:`sim.engine_arrays` for a stream without a
contended memory: positions ``a..b-1`` (none waits, signals or loads a link twice) stamped
from ``t0`` by the running sum of their durations alone, each loaded op's link transfers
checked alone until it ends (:meth:`~sim.resources.SharedBandwidth.solo_end`, and the other
streams' bound on the link) and counted as ``add_solo`` counts them. The same float
operations in the same order as the numpy version it replaced (a running sum is sequential
additions: ``np.cumsum``), so every time and link figure is the same (tests/test_array_plan.py
compares them with the op-by-op engine). A four-stage 2,048-token 70B run has ~41,000 spans:
~70 us each as ~30 numpy calls, a few us compiled.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.resources import FINISH_TOL


@njit(cache=True, error_model="numpy")
def stamp_span(a, b, t0, dur, ids, loaded_at, load_ptr, load_pos, load_res, load_nb,
               try_loaded, ok, rate, bound, moved, busy, last, start, end, times, timers):
    """Stamp positions ``a..b-1`` from ``t0`` (s): (how many stamped, when the last ends, the
    link code whose bound is wanted first (-1: none wanted), loaded ops tried, taken).

    Per position ``dur`` (s, alone) and ``ids``; the stream's loaded positions
    ``loaded_at`` with their loads at ``load_ptr[j]:load_ptr[j + 1]`` of ``load_pos``,
    ``load_res`` (link codes) and ``load_nb`` (B); ``try_loaded``: else the span ends before
    its first loaded op. Per link code: ``ok`` (nothing in flight and no share reserved),
    ``rate`` (B/s), ``bound`` (s: no other stream's transfer starts on it before; NaN: not
    known yet - the call then returns that code and changes nothing, to be called again
    with it), and its ``moved`` (B), ``busy`` (s) and ``last`` (s) counters, updated in
    place. ``start``/``end``: every op's times (s); ``times`` and ``timers``: scratch of at
    least ``b - a + 1`` and the loads' count."""
    n = b - a
    times[0] = t0
    acc = t0
    for j in range(n):
        acc += dur[a + j]
        times[j + 1] = acc
    f = n
    lo = np.searchsorted(loaded_at, a)
    hi = np.searchsorted(loaded_at, b)
    tried = 0
    won = 0
    if hi > lo:
        if not try_loaded:
            f = loaded_at[lo] - a
        else:
            q0, q1 = load_ptr[lo], load_ptr[hi]
            for q in range(q0, q1):
                c = load_res[q]
                if ok[c] and bound[c] != bound[c]:
                    return 0, t0, c, 0, 0
            first_op = n
            for q in range(q0, q1):         # loads in op order: up to the first not alone
                c = load_res[q]
                off = load_pos[q] - a
                fail = True
                if ok[c]:
                    r, nb, s = rate[c], load_nb[q], times[off]
                    timer = s + max(0.0, nb / r)
                    timers[q - q0] = timer
                    fail = nb - (timer - s) * r > r * FINISH_TOL or \
                        not times[off + 1] < bound[c]
                if fail:
                    first_op = off
                    break
            f = min(f, first_op)
            # loaded ops tried: up to the first that is not alone; taken: those before it
            tried = np.searchsorted(loaded_at, a + first_op, "right") - lo
            won = np.searchsorted(loaded_at, a + first_op, "left") - lo
            for q in range(q0, q1):
                off = load_pos[q] - a
                if off >= f:
                    break
                c = load_res[q]
                moved[c] += load_nb[q]
                busy[c] += timers[q - q0] - times[off]
                last[c] = timers[q - q0]
    for j in range(f):
        i = ids[a + j]
        start[i] = times[j]
        end[i] = times[j + 1]
    return f, times[f], -1, tried, won
