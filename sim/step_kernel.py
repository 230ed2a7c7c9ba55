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
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

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


@intrinsic
def _pointer(typingctx, address):
    """``address`` (an int64) as a void pointer (for ``numba.carray``)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(address), codegen


@njit(cache=True)
def _i8(addr, lens, j):
    """Array ``j`` of :func:`quiet_step_at`'s, as int64."""
    return carray(_pointer(addr[j]), (lens[j],), np.int64)


@njit(cache=True)
def _u1(addr, lens, j):
    """Array ``j`` of :func:`quiet_step_at`'s, as uint8."""
    return carray(_pointer(addr[j]), (lens[j],), np.uint8)


@njit(cache=True)
def _f8(addr, lens, j):
    """Array ``j`` of :func:`quiet_step_at`'s, as float64."""
    return carray(_pointer(addr[j]), (lens[j],), np.float64)


@njit(cache=True, error_model="numpy")
def quiet_step_at(k, m, cut, first, lead, cap, now, mem_rc, own, n_streams, slack, addr, lens):
    """:func:`quiet_step` with its arrays given by address: ``addr[j]`` and ``lens[j]`` are
    the data address and length of its ``j``-th array parameter
    (:data:`sim.engine_aot.STEP_ARRAYS` order; their dtypes as declared there). A call
    unboxes two arrays instead of 46 (~0.2 instead of ~3 us); the caller keeps the arrays
    alive and checked (:func:`sim.engine_aot.step_addresses`)."""
    return quiet_step(
        k, m, cut, first, lead, cap, now, mem_rc, own,
        blocked=_i8(addr, lens, 0), stops=_u1(addr, lens, 1), waits_left=_u1(addr, lens, 2),
        ends_run=_u1(addr, lens, 3), ids=_i8(addr, lens, 4), adopt_at=_i8(addr, lens, 5),
        wait_at=_i8(addr, lens, 6), wait_on=_i8(addr, lens, 7), done=_u1(addr, lens, 8),
        beside=_i8(addr, lens, 9), next_op=_i8(addr, lens, 10), stream=_i8(addr, lens, 11),
        sleep_on=_i8(addr, lens, 12), moved=_i8(addr, lens, 13), out_pos=_i8(addr, lens, 14),
        out_y=_i8(addr, lens, 15), adopt_after=_i8(addr, lens, 16), run_buf=_i8(addr, lens, 17),
        dur=_f8(addr, lens, 18), size=_f8(addr, lens, 19), of_op=_i8(addr, lens, 20),
        ptr=_i8(addr, lens, 21), res=_i8(addr, lens, 22), nb=_f8(addr, lens, 23),
        memory=_f8(addr, lens, 24), ok=_u1(addr, lens, 25), rate=_f8(addr, lens, 26),
        bound=_f8(addr, lens, 27), link_moved=_f8(addr, lens, 28),
        link_busy=_f8(addr, lens, 29), link_last=_f8(addr, lens, 30), start=_f8(addr, lens, 31),
        end=_f8(addr, lens, 32), times=_f8(addr, lens, 33), link_rc=_i8(addr, lens, 34),
        users_ptr=_i8(addr, lens, 35), users=_i8(addr, lens, 36), use_ptr=_i8(addr, lens, 37),
        use_pos=_i8(addr, lens, 38), n_streams=n_streams, cum_ptr=_i8(addr, lens, 39),
        cum=_f8(addr, lens, 40), stream_ops=_i8(addr, lens, 41), st_kind=_i8(addr, lens, 42),
        st_t=_f8(addr, lens, 43), st_op=_i8(addr, lens, 44), position=_i8(addr, lens, 45),
        slack=slack)
