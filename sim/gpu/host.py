"""The software stack between the model and the GPU: op families, host cost, async issue.

``ideal`` — kernels run back to back (as under CUDA graphs); only the GPU-side launch cost
(``gpu.launch_overhead``) separates them.

``timed`` — each op is timed alone from the host, as micro-benchmark harnesses do
(``t0 = clock(); op(); synchronize(); clock() - t0``). The host spends ``issue`` seconds
before the kernel starts and after it ends (framework dispatch up to the launch, then the
synchronisation returning), and ``dispatch`` seconds of CPU work in all, part of which overlaps
the kernel: time = ``max(dispatch, issue + kernel)``.

``async`` — a host thread issues ops ahead of the GPU: op ``i`` cannot start before the host
has spent ``dispatch`` on it and on every op before it; each forward pass (step) ends with a
synchronisation plus ``per_step + per_request x batch`` of CPU work before the next is issued.
:class:`AsyncIssue` keeps that host clock during an event run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workloads.trace import ATTENTION, COLLECTIVE, MATMUL, MEMORY, Op

if TYPE_CHECKING:   # numpy loads with the array forms only (``xpusim op`` needs none)
    import numpy as np

FAMILIES = ("matmul", "softmax", "norm", "activation", "elementwise", "attention",
            "collective", "memory")


def op_family(op: Op) -> str:
    """The op family a software stack's tables are keyed by."""
    if op.kind == MATMUL:
        return "matmul"
    if op.kind == ATTENTION:
        return "attention"
    if op.kind == COLLECTIVE:
        return "collective"
    if op.kind == MEMORY:
        return "memory"
    if "softmax" in op.name:
        return "softmax"
    if op.op_class == "norm":
        return "norm"
    if op.op_class == "activation":
        return "activation"
    return "elementwise"


def lookup(table: dict[str, float], family: str, default: float = 0.0) -> float:
    """``table[family]``, else ``table['default']``, else ``default``."""
    return table.get(family, table.get("default", default))


def timed_latency(software, family: str, kernel: float) -> float:
    """Host-timed latency of one isolated op whose kernel takes ``kernel`` seconds."""
    if software is None or software.mode != "timed":
        return kernel
    return max(lookup(software.dispatch, family), lookup(software.issue, family) + kernel)


class AsyncIssue:
    """Host clock of an ``async`` software stack during one event run (times in s)."""

    def __init__(self, software):
        self.sw = software
        self.env_id: int | None = None
        self.cpu = 0.0
        self.step: tuple | None = None

    def start_time(self, env, op: Op, now: float) -> float:
        """When the GPU may start ``op``: after the host has issued it."""
        if self.env_id != id(env):
            self.env_id, self.cpu, self.step = id(env), 0.0, None
        step = (op.phase, op.step)
        if self.step is not None and step != self.step:
            # the previous forward pass ended with a synchronisation and host-side work
            self.cpu = max(self.cpu, now) + self.sw.per_step + self.sw.per_request * op.requests
        elif self.step is None:
            self.cpu = now + self.sw.per_step + self.sw.per_request * op.requests
        self.step = step
        self.cpu += lookup(self.sw.dispatch, op_family(op))
        return max(now, self.cpu)

    def dispatch(self, op: Op) -> float:
        """Host seconds spent issuing ``op``."""
        return lookup(self.sw.dispatch, op_family(op))

    def pass_cost(self, requests: np.ndarray) -> np.ndarray:
        """Host seconds that open a forward pass of ``requests`` sequences (per_step +
        per_request x requests), elementwise."""
        import numpy as np

        return self.sw.per_step + self.sw.per_request * np.asarray(requests, dtype=np.float64)



def async_makespan(latencies: list[float], dispatch: list[float], new_step: list[bool],
                   step_cost: list[float]) -> float:
    """End time (s) of a single-stream trace under an async host, without the event engine.

    Op ``i`` costs the GPU ``latencies[i]`` and the host ``dispatch[i]``; where ``new_step[i]``
    a forward pass begins: the host first waits for the GPU (synchronisation; not before the
    first pass) and spends ``step_cost[i]`` (per_step + per_request x batch). Same semantics as
    :class:`AsyncIssue` driving the engine.
    """
    cpu = gpu = 0.0
    for i, (lat, disp) in enumerate(zip(latencies, dispatch, strict=True)):
        if i == 0:
            cpu = step_cost[0]
        elif new_step[i]:
            cpu = max(cpu, gpu) + step_cost[i]
        cpu += disp
        gpu = max(gpu, cpu) + lat
    return gpu


def async_ends(latency: np.ndarray, dispatch: np.ndarray, new_pass: np.ndarray,
               pass_cost: np.ndarray) -> np.ndarray:
    """End time (s) of every op of a single-stream trace under an async host, on arrays.

    The semantics of :func:`async_makespan` (and of :class:`AsyncIssue` driving the engine):
    op ``i`` costs the GPU ``latency[i]`` and the host ``dispatch[i]``; where ``new_pass[i]``
    (true at op 0) a forward pass begins and the host, after waiting for the GPU, spends
    ``pass_cost[i]``; the GPU starts op ``i`` at ``max(end[i-1], host clock)``.

    Closed form instead of the loop: with ``Lam`` the cumulative GPU time, ``end[i] = Lam[i] +
    W[i]`` where ``W[i] = max(W[i-1], cpu[i] - Lam[i-1])`` is the GPU time lost waiting for the
    host so far (a max-plus prefix, ``np.maximum.accumulate``). A pass opens when the GPU is
    done (``end >= cpu`` always), so within pass ``p`` (first op ``s``) ``cpu[i] - Lam[i-1] =
    W[s-1] + v[i]`` with ``v[i] = pass_cost[s] + (dispatch summed over the pass up to i) -
    (latency summed over the pass before i)``; ``W`` grows over pass ``p`` by ``max(0, max v)``,
    so every pass's ``W[s-1]`` is a cumulative sum and ``W`` one accumulate over ``W[s-1] +
    max(v, 0)``. Differs from the loop by float rounding only (sums formed in another order).
    """
    return AsyncReplay(latency, new_pass).ends(dispatch, pass_cost)


class AsyncReplay:
    """:func:`async_ends` of one trace's GPU latencies (s) and pass openings, its parts that
    do not depend on the host costs formed once: a fit that replays one trace under many
    host costs (``xpusim validate --fit``'s TensorRT-LLM dispatch grid, 401 values) pays for
    the cumulative GPU time and the passes once. :meth:`ends` performs :func:`async_ends`'
    operations on the same values: the same floats."""

    def __init__(self, latency: np.ndarray, new_pass: np.ndarray):
        import numpy as np

        self.lat = lat = np.asarray(latency, dtype=np.float64)
        if not len(lat):
            return
        new = np.asarray(new_pass, dtype=bool).copy()
        new[0] = True
        self.starts = starts = np.flatnonzero(new)
        self.pid = pid = np.cumsum(new) - 1
        self.lam = lam = np.cumsum(lat)
        lam_prev = np.concatenate(([0.0], lam[:-1]))
        self.gpu_in_pass = lam_prev - lam_prev[starts][pid]   # before each op, in its pass

    def ends(self, dispatch: np.ndarray, pass_cost: np.ndarray) -> np.ndarray:
        """End time (s) of every op under host costs ``dispatch`` (per op, s) and
        ``pass_cost`` (per op, read where a pass opens; s)."""
        import numpy as np

        if not len(self.lat):
            return np.zeros(0)
        v, grow = self._growths(dispatch, pass_cost)
        w_open = np.concatenate(([0.0], np.cumsum(grow)[:-1]))
        wait = np.maximum.accumulate(w_open[self.pid] + np.maximum(v, 0.0))
        return self.lam + wait

    def _growths(self, dispatch: np.ndarray, pass_cost: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(``v``: per op, how far the host runs ahead of the GPU's work in its pass, s;
        ``grow``: per pass, how much it adds to the wait, >= 0, s) under the host costs
        (:func:`async_ends`' ``v`` and ``grow``)."""
        import numpy as np

        starts, pid = self.starts, self.pid
        dsum = np.cumsum(np.asarray(dispatch, dtype=np.float64))
        d_before = np.concatenate(([0.0], dsum[:-1]))[starts]   # dispatch before each pass
        v = np.asarray(pass_cost, dtype=np.float64)[starts][pid] + (dsum - d_before[pid]) \
            - self.gpu_in_pass
        return v, np.maximum(np.maximum.reduceat(v, starts), 0.0)

    def last_end(self, dispatch: np.ndarray, pass_cost: np.ndarray) -> float:
        """``ends(dispatch, pass_cost)[-1]`` (s) without the per-op waits: the last wait is
        the running sum of the passes' growths at the last pass. Within pass ``p`` every
        ``w_open[p] + max(v, 0)`` rounds to at most ``w_open[p] + grow[p]`` (rounding is
        monotone), which is the running sum there, and the running sum of growths >= 0 never
        falls: the same float, in 7 passes over the ops instead of 12 (a fit replays a trace
        under hundreds of host costs and reads its end only)."""
        import numpy as np

        if not len(self.lat):
            return self.ends(dispatch, pass_cost)[-1]   # (none: raises as ends' [-1])
        return float(self.lam[-1] + np.cumsum(self._growths(dispatch, pass_cost)[1])[-1])
