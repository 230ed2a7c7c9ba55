"""A one-line progress bar with rate and ETA for a terminal (stderr, only when it is a TTY)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """Call with (done, total, evaluated_now, elapsed_s); redraws at most ``hz`` times a second.

    The ETA uses the rate of points evaluated in this run (resumed points are free).
    """

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None,
                 width: int = 28, hz: float = 8.0, label: str = "sweep"):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.width = width
        self.period = 1.0 / hz
        self.label = label
        self._last = 0.0
        self._drawn = False

    def line(self, done: int, total: int, evaluated: int, elapsed: float) -> str:
        """The text of the bar (no carriage return)."""
        frac = min(done / total, 1.0) if total else 1.0
        fill = int(frac * self.width)
        rate = evaluated / elapsed * 60 if elapsed > 0 and evaluated else 0.0
        left = total - done
        eta = _clock(left / (evaluated / elapsed)) if evaluated and elapsed > 0 else "?"
        return (f"{self.label} [{'#' * fill}{'.' * (self.width - fill)}] {done}/{total} "
                f"{frac:4.0%}  {rate:,.0f} pts/min  ETA {eta}")

    def __call__(self, done: int, total: int, evaluated: int, elapsed: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.period and done < total:
            return
        self._last = now
        self.stream.write("\r" + self.line(done, total, evaluated, elapsed) + "\033[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
