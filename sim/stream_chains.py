"""Where one stream of a several-stream run may stamp another stream's op in its own run.

Under ``--overlap`` a compute stream and a comm stream share a device and its memory. With
one micro-batch in flight they take turns: a collective waits for the compute op before it,
and the next compute op waits for the collective; no two of their ops are in flight
together, so the compute stream can stamp the collective in its own chain of ops
(*adopted*, :func:`handoffs`) while the comm stream sleeps on. With micro-batches interleaved, a
collective of one overlaps the other's compute ops: the compute stream can stamp it beside
them, their shared memory replayed (sim/engine_arrays.py). Both are found
from the trace's arrays alone; the engine checks at run time only that the other stream
sleeps on the op when a run takes it (and replays the sharing).
"""

from __future__ import annotations

import numpy as np

from sim.columns import slice_indices


def handoffs(stream: np.ndarray, position: np.ndarray, next_op: np.ndarray,
             waiter: np.ndarray, waited: np.ndarray, memory_code: np.ndarray,
             stops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per op ``x``: the op ``y`` of another stream its stream may adopt after it (-1:
    none), the op ``y`` it may run beside its own next ops (-1: none), and the one op ``x``
    waits for on another stream (-1: none or several).

    ``stream``, ``position``, ``next_op`` per op: its stream code, its position on the
    stream, the next op on the stream (-1: none). ``waiter[j]`` waits for ``waited[j]``
    (op ids, ``waiter`` ascending): the dependencies of an op on another stream. Per stream
    code, ``memory_code``: which contended memory it moves bytes through (-1: none).
    ``stops``: ops no run may stamp (sim.engine_arrays). In both cases

    * ``y`` alone waits for ``x``, on another stream sharing ``x``'s memory, and waits for
      nothing else on another stream; neither is its stream's last op.

    ``y`` is *adopted* (taking turns) when nothing but the op after ``x`` waits for ``y``
    (so that op starts where ``y`` ends, and nothing of ``x``'s stream runs beside ``y``),
    and the op after ``y`` waits for the op after ``x`` or a later op of ``x``'s stream (so
    ``y``'s stream sleeps on while ``x``'s goes on: an op another stream waits for ends a
    run unless the run adopts or runs beside that op's waiter, sim/engine_arrays.py).
    ``y`` runs *beside* ``x``'s next ops (a collective of one micro-batch overlapping the
    next micro-batch's compute ops) when something else waits for it and the op after ``y``
    waits for an op of ``x``'s stream after ``x``.
    """
    n = len(stream)
    only_waiter, only_wait = lone_pairs(waiter, waited, n)
    x, y = _one_for_one(stream, next_op, only_waiter, only_wait, memory_code, stops)
    turns = only_waiter[y] == next_op[x]
    adopt = _held(stream, position, next_op, waiter, waited, x[turns], y[turns], n)
    beside = _held(stream, position, next_op, waiter, waited, x[~turns], y[~turns], n)
    return adopt, beside, only_wait


def lone_pairs(waiter: np.ndarray, waited: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per op: the one op that waits for it (-1: none or several), and the one op it waits
    for (-1: none or several)."""
    only_waiter = np.full(n, -1, dtype=np.int64)
    only_wait = np.full(n, -1, dtype=np.int64)
    if len(waiter):
        one = np.bincount(waited, minlength=n)[waited] == 1
        only_waiter[waited[one]] = waiter[one]
        one = np.bincount(waiter, minlength=n)[waiter] == 1
        only_wait[waiter[one]] = waited[one]
    return only_waiter, only_wait


def _one_for_one(stream, next_op, only_waiter, only_wait, memory_code,
                 stops) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): ``y`` alone waits for ``x`` and for nothing else on another stream, on
    another stream sharing ``x``'s memory, may be stamped, and is not its stream's last
    op; ``x`` is not its stream's last op."""
    x = np.flatnonzero(only_waiter >= 0)
    y = only_waiter[x]
    sx, sy = stream[x], stream[y]
    ok = (sx != sy) & (memory_code[sx] >= 0) & (memory_code[sx] == memory_code[sy]) & \
        (next_op[x] >= 0) & (only_wait[y] == x) & ~stops[y] & (next_op[y] >= 0)
    return x[ok], y[ok]


def _held(stream, position, next_op, waiter, waited, x, y, n: int) -> np.ndarray:
    """Per op: ``y`` where the op after ``y`` on its stream waits for an op of ``x``'s
    stream after ``x``, else -1."""
    w = next_op[y]
    lo = np.searchsorted(waiter, w, "left")
    count = np.searchsorted(waiter, w, "right") - lo
    owner = np.repeat(np.arange(len(w)), count)
    pair = slice_indices(lo, count)
    d = waited[pair]
    later = (stream[d] == stream[x][owner]) & (position[d] > position[x][owner])
    held = np.zeros(len(w), dtype=bool)
    held[owner[later]] = True
    out = np.full(n, -1, dtype=np.int64)
    out[x[held]] = y[held]
    return out
