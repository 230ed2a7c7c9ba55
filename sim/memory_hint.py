"""Room asked for before a run makes many bytes of tables at once (a process may make it).

A planned run's pass (:mod:`sim.engine_planned`) makes ten tables of one entry per task at
once (:data:`sim.engine_planned.PLANNED_BYTES_PER_TASK`). The command-line process faults its
heap in on another core (:mod:`xpusim.heap`), and grows it by a pad past each request where
the run outgrows that; told the bytes first (:func:`expect`), it grows the heap by them alone,
in one step, before the tables are made (the 70B run with half its KV cache in host DDR: 2.87
-> 2.57 GB resident, 0.70 -> 0.63-0.65 M page faults). A library registers nothing: nothing is
done.
"""

from __future__ import annotations

from collections.abc import Callable

_HOOK: list[Callable[[int], object]] = []


def on_expect(hook: Callable[[int], object] | None) -> None:
    """Have ``hook(nbytes)`` called where a run is about to hold ``nbytes`` (B) more (None:
    nothing called)."""
    _HOOK[:] = [hook] if hook is not None else []


def expect(nbytes: int) -> None:
    """Tell the registered hook (:func:`on_expect`, if any) that ``nbytes`` (B) more are about
    to be held."""
    for hook in _HOOK:
        hook(int(nbytes))
