"""The event engine: devices as SimPy processes, memories and links as contended resources.

Ops are grouped into streams (one per device group, from ``op.device``); a stream runs its ops
in trace order, one at a time, each as a timeout of its estimated latency. An op that depends on
an op of another stream waits for that op's completion event; collectives also hold the shared
link. Streams served by one device object (e.g. a compute and a communication stream) share its
memory: each op then also moves its DRAM bytes through a :class:`SharedBandwidth` and ends when
both its own latency and that transfer are done, so concurrent memory-bound ops slow each other.
Events are per op (kernel / command group), never per element: a decode step of a 70B model is
a few thousand events.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import simpy

from sim.devices.base import Cost, Device
from sim.resources import SharedBandwidth, hold
from workloads.trace import COLLECTIVE, Op, Trace


@dataclass
class Timeline:
    """Start and end time (s) of each op, indexed by op id, plus each op's cost."""

    start: np.ndarray
    end: np.ndarray
    costs: list[Cost]
    events: int


class Engine:
    """Runs a trace on a device model; ``devices`` maps stream name to the device serving it."""

    def __init__(self, devices: dict[str, Device]):
        if not devices:
            raise ValueError("engine needs at least one device")
        self.devices = devices
        self.default = next(iter(devices))

    def run(self, trace: Trace) -> Timeline:
        env = simpy.Environment()
        n = len(trace.ops)
        start = np.full(n, np.nan)
        end = np.full(n, np.nan)
        costs: list[Cost | None] = [None] * n
        streams: dict[str, list[Op]] = {}
        stream_of = {}
        for op in trace.ops:
            name = op.device or self.default
            if name not in self.devices:
                raise ValueError(f"op {op.id} ({op.name}) is placed on unknown device '{name}'")
            streams.setdefault(name, []).append(op)
            stream_of[op.id] = name
        # completion events only where an op waits on another stream
        waited: set[int] = set()
        for op in trace.ops:
            for d in op.deps:
                if stream_of[d] != stream_of[op.id]:
                    waited.add(d)
        done = {i: env.event() for i in waited}
        link = simpy.Resource(env, capacity=1)
        counter = [0]
        # streams served by the same device object share its memory bandwidth
        sharing: dict[int, list[str]] = {}
        for name in streams:
            sharing.setdefault(id(self.devices[name]), []).append(name)
        memories: dict[str, SharedBandwidth] = {}
        for names in sharing.values():
            if len(names) > 1:
                dev = self.devices[names[0]]
                mem = SharedBandwidth(env, dev.sustained_bandwidth(), f"memory of {names[0]}")
                memories.update({n: mem for n in names})
        self.memories = memories

        def stream_proc(name: str, ops: list[Op]) -> Generator:
            dev = self.devices[name]
            plain = dev.holds_for_latency()  # one timeout per op: skip the generator
            timeout = env.timeout
            memory = memories.get(name)
            for op in ops:
                if done and op.deps:
                    pending = [done[d] for d in op.deps if d in done and not done[d].triggered]
                    if pending:
                        yield env.all_of(pending)
                cost = dev.estimate(op)
                costs[op.id] = cost
                if op.kind == COLLECTIVE and len(streams) > 1:
                    with link.request() as req:
                        yield req
                        start[op.id] = env.now
                        yield from dev.process(env, op, cost)
                elif plain and memory is not None:
                    start[op.id] = env.now
                    yield hold(env, cost.latency, memory, cost.dram_bytes)
                elif plain:
                    start[op.id] = env.now
                    yield timeout(cost.latency)
                else:
                    start[op.id] = env.now
                    yield from dev.process(env, op, cost)
                end[op.id] = env.now
                counter[0] += 1
                if op.id in done:
                    done[op.id].succeed()

        for name, ops in streams.items():
            env.process(stream_proc(name, ops))
        env.run()
        return Timeline(start, end, costs, counter[0])  # type: ignore[arg-type]
