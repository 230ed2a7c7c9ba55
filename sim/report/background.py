"""Run one slow call that releases the GIL (Arrow writing a parquet file) in a second thread
while the caller goes on; its error, if any, is raised where the block ends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any


class Background:
    """A context manager: :meth:`run` starts ``fn(*args)`` in a thread; leaving the block
    waits for it (also when the block raised, so nothing writes into a folder being removed)
    and raises the thread's exception where the block itself did not raise one."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def run(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start ``fn(*args)`` in a new thread."""
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
        for thread in self._threads:
            thread.join()
        if kind is None and self._errors:
            raise self._errors[0]
