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

from workloads.trace import ATTENTION, COLLECTIVE, MATMUL, MEMORY, Op

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
