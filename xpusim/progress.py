"""Progress bars for long commands (tqdm on stderr), silent where they would get in the way.

Every command that can take more than a couple of seconds takes ``--quiet``; a bar is drawn
only when neither ``--quiet`` nor ``--json`` is given and both stdout and stderr are terminals
(so pipes, CI logs and JSON consumers see nothing extra). Three shapes:

* :func:`bar` - a counted bar (sweep points, validation suites, run stages) with rate and ETA;
* :func:`timed` - a bar over an *estimated* number of seconds for one opaque call (a run, a
  layer check, a reproduction), advanced by a background thread and held below 100 % until
  done; the estimate is a model of the work or the last duration of the same call
  (remembered in ``$XDG_CACHE_HOME/xpusim/durations.json``);
* :class:`SweepProgress` - the ``(done, total, evaluated, elapsed_s)`` callback ``dse``
  sweeps call, drawn as a tqdm bar.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def add_quiet_arg(p: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bar."""
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar and no assumption count on stderr")


def enabled(args: argparse.Namespace | None = None, stream: Any = None) -> bool:
    """Whether to draw: not ``--quiet``, not ``--json``, stdout and stderr are terminals."""
    if args is not None and (getattr(args, "quiet", False) or getattr(args, "json", False)):
        return False
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty() and sys.stdout.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


class _Null:
    """Stands in for a bar that is not drawn."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_description_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def bar(total: float | None, desc: str, unit: str = "it", on: bool = True,
        stream: Any = None, initial: float = 0, bar_format: str | None = None) -> Any:
    """A tqdm bar of ``total`` ``unit`` on stderr (rate and ETA), or a silent stand-in;
    ``initial`` units count as done already (they do not enter the rate)."""
    if not on:
        return _Null()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency; run without bars if absent
        return _Null()
    return tqdm(total=total, desc=desc, unit=unit, file=stream or sys.stderr, leave=False,
                dynamic_ncols=True, mininterval=0.2, initial=initial, bar_format=bar_format)


@contextlib.contextmanager
def stages(names: list[str], desc: str, on: bool = True) -> Iterator[Any]:
    """A bar over named stages; the yielded callable marks a stage done (``step("engine")``)
    and shows the next name."""
    b = bar(len(names), desc, "stage", on)
    if names:
        b.set_description_str(f"{desc}: {names[0]}")

    def step(name: str = "") -> None:
        b.update(1)
        if b.n < len(names):
            b.set_description_str(f"{desc}: {names[b.n]}")

    try:
        yield step
    finally:
        b.close()


@contextlib.contextmanager
def timed(desc: str, estimate_s: float, on: bool = True, tick_s: float = 0.25,
          key: str = "") -> Iterator[None]:
    """A bar over ``estimate_s`` seconds for one call whose progress cannot be observed; a
    thread advances it with the wall clock and stops at 99 % until the call returns.

    With ``key``, the estimate is the last duration remembered under that key when there is
    one (:func:`remembered`), and the call's duration is remembered after it succeeds; with no
    estimate at all the bar shows the elapsed time only."""
    estimate_s = (remembered(key) or estimate_s) if key else estimate_s
    start = time.monotonic()
    if not on:
        yield
        if key:
            remember(key, time.monotonic() - start)
        return
    fmt = ("{desc}: {percentage:3.0f}%|{bar}| {elapsed} elapsed, about {remaining} left"
           if estimate_s > 0 else "{desc}: {elapsed} elapsed")
    b = bar(round(estimate_s, 1) if estimate_s > 0 else None, desc, "s", on, bar_format=fmt)
    import threading  # only where a bar is shown (start-up of quiet runs)

    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(tick_s):
            elapsed = time.monotonic() - start
            target = min(elapsed, 0.99 * estimate_s) if estimate_s > 0 else elapsed
            if target > b.n:
                b.update(round(target - b.n, 2))

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        b.close()
    if key:
        remember(key, time.monotonic() - start)


def _durations_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "xpusim" / "durations.json"


def remembered(key: str) -> float:
    """Seconds the last successful call under ``key`` took (0 if unknown)."""
    try:
        return float(json.loads(_durations_file().read_text()).get(key, 0.0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0.0


def remember(key: str, seconds: float) -> None:
    """Remember a duration for the next ETA; failures (read-only home) are ignored."""
    path = _durations_file()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict):
            data = {}
        data[key] = round(seconds, 3)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass


class SweepProgress:
    """The sweep runner's callback ``(done, total, evaluated, elapsed_s)`` as a tqdm bar of
    points; resumed points count as done without entering the rate."""

    def __init__(self, desc: str, on: bool = True):
        self.desc, self.on = desc, on
        self._bar: Any = None

    def __call__(self, done: int, total: int, evaluated: int, elapsed: float) -> None:
        if not self.on:
            return
        if self._bar is None:
            self._bar = bar(total, self.desc, "pt", True, initial=done - evaluated)
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
