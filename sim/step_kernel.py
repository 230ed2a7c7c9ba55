"""One quiet run of a stream with a contended memory in one compiled call (numba).

``quiet_run`` of :mod:`sim.engine_arrays` made four compiled calls a run - the scan of where
it may end (:func:`sim.scan_kernel.scan_run`), its ops with the ops it adopts
(:func:`sim.run_kernel.adopted_run`), their stamp (:func:`sim.quiet_kernel.stamp_bounded`)
and what it took of the adoptions (:func:`sim.run_kernel.adopted_taken`) - with Python
between them; each call unboxes its arrays again (~55 ns an array: the four took 76). A
four-stage 2,048-token 70B ``--overlap`` run has ~82,000 such runs. :func:`quiet_step` makes
the same calls in the same order from one call, so every time is the same; it returns to
Python where a run goes beside another stream's ops (that path is Python's), where a buffer
is too short or where a link's state is wanted (then nothing has changed: the caller fills
it in and calls again).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine_aot import STEP_BESIDE, STEP_GROW, STEP_NONE, STEP_STAMPED, STEP_WANT
from sim.quiet_kernel import stamp_bounded
from sim.run_kernel import adopted_run, adopted_taken
from sim.scan_kernel import scan_run


@njit(cache=True, error_model="numpy")
def quiet_step(k, m, cut, first, lead, cap, now, mem_rc, own, blocked, stops, waits_left,
               ends_run, ids, adopt_at, wait_at, wait_on, done, beside, next_op, stream,
               sleep_on, moved, out_pos, out_y, adopt_after, run_buf, dur, size, of_op, ptr,
               res, nb, memory, ok, rate, bound, link_moved, link_busy, link_last, start,
               end, times, link_rc, users_ptr, users, use_ptr, use_pos, n_streams, cum_ptr,
               cum, stream_ops, st_kind, st_t, st_op, position, slack):
    """The compiled part of a quiet run from position ``k`` of a stream of ``m`` ops
    (``ids``), after a ``lead`` (-1: none), at ``now`` (s): (status, e, last_adopts, count,
    f, t, took, y, extra).

    * :data:`STEP_NONE`: the scan took no position (``e < k``, no lead);
    * :data:`STEP_BESIDE`: ``count`` ops beside (in ``out_pos``/``out_y``), the run to
      ``e`` (``last_adopts``: whether it adopts there) - Python stamps it;
    * :data:`STEP_GROW`: ``run_buf`` or ``times`` holds fewer than ``extra``;
    * :data:`STEP_WANT`: link ``extra``'s state is wanted (nothing changed);
    * :data:`STEP_STAMPED`: ``f`` entries stamped (0: none; with a lead, the lead is one of
      them and flagged in ``done``), the last ending at ``t`` (s); ``took`` adoptions taken
      (flagged), the last ``y``.

    The arguments are those of the four kernels it calls (module docstring), each array
    once: the scan's (``cut``, ``first``, ``blocked``, ``stops``, ``waits_left``,
    ``ends_run``, ``wait_at``, ``wait_on``, ``done``, ``beside``, ``cap``, ``next_op``,
    ``stream``, ``sleep_on``, ``moved``, ``out_pos``, ``out_y``), the adoptions'
    (``adopt_at``, ``adopt_after``, ``run_buf``), the stamp's (``dur`` .. ``times``, the
    links' ``moved``/``busy``/``last`` as ``link_*``) and its bounds' (``mem_rc``,
    ``link_rc``, ``own``, ``users_ptr`` .. ``position``, ``slack``; the ops' durations,
    waits, flags and streams are ``dur``, ``wait_at``, ``wait_on``, ``done``, ``stream``)."""
    e, last_adopts, count = scan_run(k, m, cut, first, blocked, stops, waits_left, ends_run,
                                     ids, wait_at, wait_on, done, beside, cap, next_op,
                                     stream, sleep_on, moved, out_pos, out_y)
    if e < k and lead < 0:
        return STEP_NONE, e, 0, 0, 0, now, 0, -1, -1
    if lead >= 0 and count:   # no ops beside after a lead: the run ends where the first
        e, last_adopts, count = out_pos[0], False, 0   # would go (as with none)
    if count:     # dropping those at or after the run's end
        count = np.searchsorted(out_pos[:count], e)
    if count:
        return STEP_BESIDE, e, 1 if last_adopts else 0, count, 0, now, 0, -1, -1
    if 2 * (e - k) + 3 > len(run_buf) or 2 * (e - k) + 4 > len(times):
        return STEP_GROW, e, 0, 0, 0, now, 0, -1, 4 * (e - k) + 6
    upto = e if last_adopts else e - 1     # the last position whose adoption it may take
    n_run, lo, hi = adopted_run(ids, k, e, upto, adopt_at, adopt_after, lead, run_buf)
    f, t, want = stamp_bounded(run_buf[:n_run], now, dur, size, of_op, ptr, res, nb, memory,
                               ok, rate, bound, link_moved, link_busy, link_last, start, end,
                               times, mem_rc, link_rc, own, now, users_ptr, users, use_ptr,
                               use_pos, n_streams, cum_ptr, cum, stream_ops, dur, st_kind,
                               st_t, st_op, wait_at, wait_on, done, stream, position, slack)
    if want != -1:
        return STEP_WANT, e, 0, 0, 0, now, 0, -1, want
    if f == 0:
        return STEP_STAMPED, e, 0, 0, 0, t, 0, -1, -1
    if lead >= 0:   # taken: signalled
        done[lead] = 1
    took, y = adopted_taken(f - 1 if lead >= 0 else f, k, lo, hi, adopt_at, adopt_after, ids,
                            done)
    return STEP_STAMPED, e, 0, 0, f, t, took, y, -1
