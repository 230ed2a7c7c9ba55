"""Where one stream of a several-stream run may stamp another stream's op in its own run.

Under ``--overlap`` a compute stream and a comm stream share a device and its memory, and
mostly take turns: a collective waits for the compute op before it, and the next compute op
waits for the collective. While they take turns, no two of their ops are in flight together,
so the compute stream can stamp the collective in its own run (:mod:`sim.engine_arrays`)
while the comm stream sleeps on. :func:`adoptions` finds, from the trace's arrays alone,
every op ``x`` whose collective ``y`` may be adopted that way; the engine checks at run time
only that the other stream sleeps on ``y`` when a run adopts its first op.
"""

from __future__ import annotations

import numpy as np


def adoptions(stream: np.ndarray, position: np.ndarray, next_op: np.ndarray,
              waiter: np.ndarray, waited: np.ndarray, memory_code: np.ndarray,
              stops: np.ndarray) -> np.ndarray:
    """Per op ``x``: the op ``y`` its stream may adopt after it, or -1.

    ``stream``, ``position``, ``next_op`` per op: its stream code, its position on the
    stream, the next op on the stream (-1: none). ``waiter[j]`` waits for ``waited[j]``
    (op ids, ``waiter`` ascending): the dependencies of an op on another stream. Per stream
    code, ``memory_code``: which contended memory it moves bytes through (-1: none).
    ``stops``: ops no run may stamp (sim.engine_arrays). ``y`` is adopted after ``x`` when

    * ``y`` alone waits for ``x``, on another stream sharing ``x``'s memory, and waits for
      nothing else on another stream;
    * nothing but the op after ``x`` on its stream waits for ``y`` (so it starts where
      ``y`` ends, and nothing of ``x``'s stream runs beside ``y``);
    * the op after ``y`` on its stream waits for an op of ``x``'s stream later than the
      one after ``x`` (so ``y``'s stream sleeps on while ``x``'s stream goes on).
    """
    n = len(stream)
    adopt = np.full(n, -1, dtype=np.int64)
    if not len(waiter):
        return adopt
    waiters_of = np.bincount(waited, minlength=n)
    waits_of = np.bincount(waiter, minlength=n)
    only_waiter = np.full(n, -1, dtype=np.int64)
    one = waiters_of[waited] == 1
    only_waiter[waited[one]] = waiter[one]
    only_wait = np.full(n, -1, dtype=np.int64)
    one = waits_of[waiter] == 1
    only_wait[waiter[one]] = waited[one]
    x = np.flatnonzero(only_waiter >= 0)
    y = only_waiter[x]
    sx, sy = stream[x], stream[y]
    ok = (sx != sy) & (memory_code[sx] >= 0) & (memory_code[sx] == memory_code[sy]) & \
        (next_op[x] >= 0) & (only_waiter[y] == next_op[x]) & (only_wait[y] == x) & \
        ~stops[y] & (next_op[y] >= 0)
    x, y = x[ok], y[ok]
    # the op after y waits for an op of x's stream after the one after x
    w = next_op[y]
    lo = np.searchsorted(waiter, w, "left")
    count = np.searchsorted(waiter, w, "right") - lo
    owner = np.repeat(np.arange(len(w)), count)
    pair = np.repeat(lo - np.concatenate(([0], np.cumsum(count)[:-1])), count) + \
        np.arange(int(count.sum()))
    d = waited[pair]
    later = (stream[d] == sx[ok][owner]) & (position[d] > position[x][owner] + 1)
    held = np.zeros(len(w), dtype=bool)
    held[owner[later]] = True
    adopt[x[held]] = y[held]
    return adopt
