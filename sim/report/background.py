"""Run one slow call that releases the GIL (Arrow writing a parquet file) in a second thread
while the caller goes on; its error, if any, is raised where the block ends. The call may wait
on futures the caller fills in the block; those still empty where it ends are failed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any


class Background:
    """A context manager: :meth:`run` starts ``fn(*args)`` in a thread; leaving the block
    waits for it (also when the block raised, so nothing writes into a folder being removed)
    and raises the thread's exception where the block itself did not raise one.

    ``handed``: futures the thread may wait on, which the block fills; leaving the block
    fails those still empty (the thread then ends with that error instead of waiting).

    :attr:`inline` (a class attribute, off): each call runs instead in the caller's thread
    where the block ends without an error, after what it may wait on was given (timing the
    report's parts apart: ``benchmarks/bench_run.py --output-parts``; a one-thread run)."""

    inline = False

    def __init__(self, *handed: Future) -> None:
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._handed = handed
        self._deferred: list[tuple[Callable[..., Any], tuple]] = []

    def run(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start ``fn(*args)`` in a new thread (:attr:`inline`: keep it for the block's end)."""
        if self.inline:
            self._deferred.append((fn, args))
            return
        def call() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # handed to the caller's thread on exit
                self._errors.append(exc)

        thread = threading.Thread(target=call, name="xpusim-background", daemon=True)
        self._threads.append(thread)
        thread.start()

    def __enter__(self) -> Background:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for future in self._handed:
            if not future.done():
                future.set_exception(RuntimeError("the report stopped before this was given"))
        if kind is None:
            for fn, args in self._deferred:
                fn(*args)
        for thread in self._threads:
            thread.join()
        if kind is None and self._errors:
            raise self._errors[0]
