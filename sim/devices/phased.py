"""A device whose ops of each phase are priced by their own model: one GPU at a per-phase clock.

A power limiter holds each long phase of a run to the limit on its own: a prefill of seconds
runs at a lower SM clock than the memory-bound decode after it (sim/gpu/power_cap.py,
:func:`sim.run.simulate`). :class:`PhaseDevice` prices an op of phase ``p`` on ``by_phase[p]``
(the same GPU's model at that phase's speed) and every other op, and everything that is not an
op's cost (memory, static power, the host that issues the ops), on ``default``
(:class:`~sim.devices.base.WrappedDevice`).

It is built for GPU models, whose units are the base device's (none): it keeps the base's
``unit_of`` / ``split_trace``, so a planner that finds them not overridden keeps the trace as
arrays.

An op whose compute object both phases share (the tracer's final norm and LM head have one
shape in prefill and decode) is priced once, by the first phase that meets it: the base
estimate memo keys on that object. Both are a few microseconds a step.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

from sim.devices.base import Cost, Device, WrappedDevice
from workloads.trace import Op


class PhaseDevice(WrappedDevice):
    """``default``'s device, with the ops of each phase in ``by_phase`` priced by that model."""

    def __init__(self, by_phase: dict[str, Device], default: Device):
        super().__init__(default)
        self.by_phase = by_phase

    def _of(self, op: Op) -> Device:
        return self.by_phase.get(op.phase, self.inner)

    def _estimate(self, op: Op) -> Cost:
        return self._of(op).estimate(op)

    def prefetch(self, ops: Iterable[Op]) -> int:
        """Each phase's ops handed to its own model's ``prefetch`` where it has one (a GPU
        prices a decode run's attention GEMMs of every KV length from arrays: the same costs,
        into that model's estimate memo); how many were priced. The engine then reads every
        cost through :meth:`estimate` (``settled`` is empty), so an op whose compute object
        both phases share keeps the cost of the first phase that meets it, as before. Without
        this, a power-limited run's reruns priced those GEMMs one by one: a 2,048-token 7B
        decode on an MI300X took 1.3 instead of 0.2 CPU s."""
        by_device: dict[int, tuple[Device, list[Op]]] = {}
        for op in ops:
            dev = self._of(op)
            by_device.setdefault(id(dev), (dev, []))[1].append(op)
        priced = 0
        for dev, mine in by_device.values():
            if hasattr(dev, "prefetch"):
                priced += dev.prefetch(mine) or 0
        self.settled: list = []
        return priced

    def peak_flops(self, op: Op) -> float:
        return self._of(op).peak_flops(op)

    def roofline(self, op: Op) -> float:
        return self._of(op).roofline(op)

    def sustained_bandwidth(self) -> float:
        return self.inner.sustained_bandwidth()

    def link_bandwidth(self) -> float:
        return self.inner.link_bandwidth()

    def roof_lines(self, dtype: str) -> dict[str, float]:
        return self.inner.roof_lines(dtype)

    def describe(self, dtype: str) -> dict[str, Any]:
        return self.inner.describe(dtype)

    def process(self, env: Any, op: Op, cost: Cost) -> Generator:
        """The default device's process (one host issues every phase's ops) with the cost its
        phase priced."""
        return self.inner.process(env, op, cost)

    def holds_for_latency(self) -> bool:
        return self.inner.holds_for_latency()

    def host_issue(self) -> Any:
        return getattr(self.inner, "host_issue", lambda: None)()
