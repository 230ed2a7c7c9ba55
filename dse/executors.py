"""Executors: evaluate batches of design points in parallel and stream the records back.

* ``local`` (default) — a process pool of ``workers`` processes (``workers=1`` evaluates in the
  calling process). Each worker receives the spec once and keeps its memoised micro-model
  results (GEMM tile choices per shape) across the points it evaluates.
* ``ray`` — Ray tasks on a local Ray instance (started for the sweep with ``workers`` CPUs and
  no dashboard) or on the cluster at ``address``. Install with ``pip install 'xpusim[ray]'``.

Both send chunks of points (a few per task, so that cheap points do not drown in messaging),
keep at most ``2 x workers`` chunks in flight, and yield records as chunks finish. A point's
record does not depend on where it ran, so both executors give identical results.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from dse.evaluate import evaluate_chunk
from dse.spec import SweepSpec
from sim.devices.base import SimError

EXECUTORS = ("local", "ray")
#: with this set to 0 before ``import ray``, a local Ray instance binds 127.0.0.1 (as it does on
#: macOS and Windows) instead of the machine's network address
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
Item = tuple[int, dict[str, Any]]


def chunk_size(n_items: int, workers: int) -> int:
    """Points per task: ~8 tasks per worker, between 1 and 16 points each."""
    return max(1, min(16, n_items // max(workers * 8, 1)))


def _chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# --- local process pool -------------------------------------------------------------------------
_WORKER_SPEC: SweepSpec | None = None


def _parent_alive(parent: int, direct: bool) -> bool:
    if direct:  # a forked child is re-parented when its parent dies
        return os.getppid() == parent
    try:  # spawn / forkserver workers: ask whether the sweep process still exists
        os.kill(parent, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _watch_parent(parent: int) -> None:
    """End this worker when the sweep process is gone (e.g. killed with SIGKILL)."""
    direct = os.getppid() == parent
    while _parent_alive(parent, direct):
        time.sleep(0.5)
    os._exit(1)


def _init_worker(spec: SweepSpec, parent: int) -> None:
    global _WORKER_SPEC
    _WORKER_SPEC = spec
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _run_chunk(items: list[Item]) -> list[dict]:
    assert _WORKER_SPEC is not None, "worker not initialised"
    return evaluate_chunk(_WORKER_SPEC, items)


class LocalExecutor:
    """A process pool (or the calling process when ``workers == 1``)."""

    name = "local"

    def __init__(self, spec: SweepSpec, workers: int = 1, context: str | None = None):
        self.spec = spec
        self.workers = max(1, int(workers))
        self.context = context  # multiprocessing start method; None: the platform's default
        self.pool: ProcessPoolExecutor | None = None

    def run(self, items: list[Item]) -> Iterator[dict]:
        if self.workers == 1:
            for item in items:
                yield from evaluate_chunk(self.spec, [item])
            return
        if self.pool is None:
            ctx = multiprocessing.get_context(self.context) if self.context else None
            self.pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                            initializer=_init_worker,
                                            initargs=(self.spec, os.getpid()))
        size = chunk_size(len(items), self.workers)
        pending = _chunks(items, size)
        in_flight: set = set()
        while True:
            while len(in_flight) < 2 * self.workers:
                chunk = next(pending, None)
                if chunk is None:
                    break
                in_flight.add(self.pool.submit(_run_chunk, chunk))
            if not in_flight:
                return
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in done:
                yield from fut.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


# --- Ray ------------------------------------------------------------------------------------------
class RayExecutor:
    """Ray tasks; starts a local Ray instance unless one is running or ``address`` is given."""

    name = "ray"

    def __init__(self, spec: SweepSpec, workers: int = 1, address: str | None = None):
        if not address:  # a local instance: keep every Ray socket on the loopback interface
            os.environ.setdefault(LOOPBACK_ENV, "0")
        try:
            import ray
        except ImportError:
            raise SimError("--executor: ray is not installed (pip install 'xpusim[ray]')") \
                from None
        self.ray = ray
        self.workers = max(1, int(workers))
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs.update(num_cpus=self.workers, object_store_memory=128 * 2**20)
            try:
                ray.init(**kwargs)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = address or "a new local instance"
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise SimError(f"--address: cannot start or reach Ray at {where}: {first}") \
                    from None
            self.started = True
        self.spec_ref = ray.put(spec)
        self.task = ray.remote(num_cpus=1, max_retries=2)(evaluate_chunk)
        if address or not self.started:
            self.workers = max(self.workers, int(ray.available_resources().get("CPU", 1)))

    def run(self, items: list[Item]) -> Iterator[dict]:
        size = chunk_size(len(items), self.workers)
        pending = _chunks(items, size)
        in_flight: list = []
        while True:
            while len(in_flight) < 2 * self.workers:
                chunk = next(pending, None)
                if chunk is None:
                    break
                in_flight.append(self.task.remote(self.spec_ref, chunk))
            if not in_flight:
                return
            done, in_flight = self.ray.wait(in_flight, num_returns=1)
            for ref in done:
                yield from self.ray.get(ref)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def make_executor(kind: str, spec: SweepSpec, workers: int = 1, address: str | None = None):
    """``local`` or ``ray``; raise :class:`SimError` for an unknown kind."""
    if kind == "local":
        if address:
            raise SimError("--address: only the ray executor connects to an address")
        return LocalExecutor(spec, workers)
    if kind == "ray":
        return RayExecutor(spec, workers, address)
    raise SimError(f"--executor: expected one of {', '.join(EXECUTORS)}, got '{kind}'")
