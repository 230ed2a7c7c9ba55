"""Compiled scan of where a quiet run of a stream's ops may end (numba).

:func:`scan_run` is the loop at the head of ``quiet_run`` in :mod:`sim.engine_arrays`: from
position ``k`` of a stream it jumps between the positions that may end the run (``blocked``:
per position the next such one) and decides, without looking at time, the last position the
run may take and which other streams' ops it may run beside its own. The checks and their
order are those of the Python loop it replaced, so the runs and every time stamped are the
same (tests/test_array_plan.py compares them with the op-by-op engine). Under ``--overlap``
a run's scan visits one position per collective (~10^6 in a 2,048-token 70B run), ~2 us each
in Python.
"""

from __future__ import annotations

from numba import njit

from sim.engine_aot import NOT_MOVED


@njit(cache=True, error_model="numpy")
def scan_run(k, m, cut, first, blocked, stops, waits_left, ends_run, ids, wait_at, wait_on,
             done, beside, cap, next_op, stream, sleep_on, moved, out_pos, out_y):
    """From position ``k`` of a stream of ``m`` ops (ids ``ids``): (the last position the run
    may take, whether a run reaching it adopts that position's op, how many ops beside were
    collected: their positions in ``out_pos`` and ids in ``out_y``).

    ``cut``: the run ends by it (an adoption whose stream is not asleep on it), ``first``:
    the first adoption's position (``m``: none); per position ``blocked`` (the next that may
    end the run), ``stops`` (stop before it), ``waits_left`` (check what it waits for),
    ``ends_run`` (another stream waits for it); per op its waits (``wait_on[wait_at[i]:
    wait_at[i + 1]]``), whether it was signalled (``done``), the op it may run beside its
    next ops (``beside``, -1: none), its next op on its stream and its stream; per stream the
    op it sleeps on (``sleep_on``, -1: none) and scratch ``moved`` (all
    :data:`NOT_MOVED`, and left so); at most ``cap`` ops beside (and no more than the
    outputs hold)."""
    p, e, last_adopts, count = k, m - 1, True, 0
    cap = min(cap, len(out_pos))
    while True:
        b = blocked[p]
        if b > cut:
            e, last_adopts = cut, False
            break
        if b >= m:
            break
        if stops[b]:
            e = b - 1
            break
        if waits_left[b] and b > k:
            i = ids[b]
            left = False
            for q in range(wait_at[i], wait_at[i + 1]):
                d = wait_on[q]
                if not done[d]:
                    left = True
                    for c in range(count):
                        if out_y[c] == d:
                            left = False
                            break
                    if left:
                        break
            if left:
                e = b - 1
                break
        if b == cut or (ends_run[b] and b != first):
            y = -1
            if b != cut and b + 1 < m and count < cap:
                y = beside[ids[b]]
            if y < 0:
                e, last_adopts = b, False
                break
            other = stream[y]
            on = moved[other] if moved[other] != NOT_MOVED else sleep_on[other]
            if on != y:
                e, last_adopts = b, False
                break
            out_pos[count] = b
            out_y[count] = y
            count += 1
            moved[other] = next_op[y]
        p = b + 1
        if p >= m:
            break
    for c in range(count):
        moved[stream[out_y[c]]] = NOT_MOVED
    return e, last_adopts, count
