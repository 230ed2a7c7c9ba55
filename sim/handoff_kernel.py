"""Which op of another stream a stream may stamp in its own run, in one pass (numba).

The rules are :func:`sim.stream_chains.handoffs`'s; this loop applies them op by op over the
trace's cross-stream dependencies (~1 s of numpy passes on a 10M-op four-stage run, ~0.1 s
here).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, error_model="numpy")
def _lone(owner, other, out):
    """``out[o]``: the one ``other[j]`` with ``owner[j] == o`` (-1: none or several)."""
    out[:] = -1
    for j in range(len(owner)):
        o = owner[j]
        out[o] = other[j] if out[o] == -1 else -2
    for o in range(len(out)):
        if out[o] == -2:
            out[o] = -1


@njit(cache=True, error_model="numpy")
def _waits_later(w, x, stream, position, wait_at, waited):
    """Whether op ``w`` waits for an op of ``x``'s stream after ``x`` (``w``'s dependencies
    are ``waited[wait_at[w]:wait_at[w + 1]]``)."""
    for j in range(wait_at[w], wait_at[w + 1]):
        d = waited[j]
        if stream[d] == stream[x] and position[d] > position[x]:
            return True
    return False


@njit(cache=True, error_model="numpy")
def handoff_pairs(stream, position, next_op, waiter, waited, wait_at, memory_code, stops,
                  only_waiter, only_wait, adopt, beside):
    """Fill ``adopt``, ``beside`` and ``only_wait`` (per op, -1: none) as
    :func:`sim.stream_chains.handoffs` defines them; ``only_waiter`` is scratch (per op, the
    one op that waits for it). All int64 of one entry per op but ``waiter`` / ``waited``
    (the cross-stream dependencies, ``waiter`` ascending), ``wait_at`` (``n + 1`` offsets of
    each op's entries in them), ``memory_code`` (per stream) and ``stops`` (bool per op)."""
    _lone(waited, waiter, only_waiter)
    _lone(waiter, waited, only_wait)
    adopt[:] = -1
    beside[:] = -1
    for x in range(len(stream)):
        y = only_waiter[x]
        if y < 0:
            continue
        sx, sy = stream[x], stream[y]
        if sx == sy or memory_code[sx] < 0 or memory_code[sx] != memory_code[sy] or \
                next_op[x] < 0 or only_wait[y] != x or stops[y] or next_op[y] < 0:
            continue
        if _waits_later(next_op[y], x, stream, position, wait_at, waited):
            if only_waiter[y] == next_op[x]:
                adopt[x] = y
            else:
                beside[x] = y
