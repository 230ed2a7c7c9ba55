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

from sim.stream_order import offsets


def handoffs(stream: np.ndarray, position: np.ndarray, next_op: np.ndarray,
             waiter: np.ndarray, waited: np.ndarray, memory_code: np.ndarray,
             stops: np.ndarray, wait_at: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per op ``x``: the op ``y`` of another stream its stream may adopt after it (-1:
    none), the op ``y`` it may run beside its own next ops (-1: none), and the one op ``x``
    waits for on another stream (-1: none or several).

    ``stream``, ``position``, ``next_op`` per op: its stream code, its position on the
    stream, the next op on the stream (-1: none). ``waiter[j]`` waits for ``waited[j]``
    (op ids, ``waiter`` ascending): the dependencies of an op on another stream. Per stream
    code, ``memory_code``: which contended memory it moves bytes through (-1: none).
    ``stops``: ops no run may stamp (sim.engine_arrays). ``wait_at``: where each op's entries
    begin in ``waiter`` (:func:`sim.stream_order.offsets`; computed when not given). In
    both cases

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

    One compiled pass over the dependencies (:func:`sim.handoff_kernel.handoff_pairs`).
    """
    from sim.engine_aot import kernels

    n = len(stream)
    only_waiter, only_wait, adopt, beside = (np.empty(n, dtype=np.int64) for _ in range(4))
    if wait_at is None:
        wait_at = offsets(np.asarray(waiter, dtype=np.int64), n)
    ints = (np.ascontiguousarray(a, dtype=np.int64)
            for a in (stream, position, next_op, waiter, waited, wait_at, memory_code))
    kernels().handoff_pairs(*ints, np.ascontiguousarray(stops, dtype=bool), only_waiter,
                            only_wait, adopt, beside)
    return adopt, beside, only_wait
