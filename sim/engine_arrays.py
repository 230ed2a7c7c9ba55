"""The event engine's several-stream run of a trace held as arrays (no object per op).

A plan from :mod:`sim.system.array_plan` puts a compact trace's ops on several streams
(``CompactOps.stream``). :func:`run_streams` runs it as :meth:`sim.engine.Engine.run` does op
by op, with the same SimPy processes, events and resources, but each stream walks positions
in arrays: a coarsened run of ops that only hold the device (module docstring of
:mod:`sim.engine`) is found by jumping between the stream's *special* ops (those another
stream waits for, those with a dependency another stream signals, those with link loads) and
stamped by one ``np.cumsum`` from the run's start (the sequential additions the per-op loop
makes, so every start and end is equal bit for bit); it ends where the per-op loop's would
(at an op another stream waits for, before an op with link loads, before an op whose
dependency has not yet been signalled when the run starts). Costs are one per op kind
(estimated once, in the order kinds first occur), so the timeline's costs are a
:class:`~sim.engine.CostList` indexed by the ops' kinds and the op table is read from the
arrays. Ops with link loads, and every op of a stream whose memory is contended, run one
event each as in the per-op engine.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import simpy

import sim.engine as engine_module
from sim.devices.base import Cost, Device
from sim.engine import CostList, Timeline, _ops_at, first_seen
from sim.resources import hold
from sim.system.plan import Plan
from workloads.trace import Trace

#: runs of fewer ops than this are stamped in a Python loop (a ``cumsum`` call costs more)
SHORT = 16


def runs_on_arrays(trace: Trace, plan: Plan | None) -> bool:
    """Whether :func:`run_streams` runs this trace: held as arrays, placed on several
    streams by a plan without transfers or extra waits, every stream served by one plain
    device object whose estimate is the memoised base one (costs shared by op kind)."""
    if plan is None or not trace.is_compact or plan.transfers or plan.extra_deps:
        return False
    arrays = trace.compact
    if arrays.stream is None:
        return False
    devices = {id(plan.streams.get(name)) for name in arrays.stream_names}
    dev = plan.streams.get(arrays.stream_names[0]) if arrays.stream_names else None
    return len(devices) == 1 and dev is not None and \
        type(dev).estimate is Device.estimate and dev.holds_for_latency()


def _kind_costs(dev: Device, arrays) -> list[Cost | None]:
    """One cost per op kind (None for kinds no op has), estimated in the order they first
    occur, each on a representative op placed on its stream."""
    n_kinds = len(arrays.kinds)
    used, first = first_seen(arrays.kind, n_kinds)
    ops = _ops_at(arrays, first, "")
    for op, i in zip(ops, first.tolist(), strict=True):
        op.device = arrays.stream_of(i)
    table: list[Cost | None] = [None] * n_kinds
    for k, op in zip(used.tolist(), ops, strict=True):
        table[k] = dev.estimate(op)
    return table


def _waited(arrays, stream: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ops another stream depends on, sorted; per op whether a dependency of it is one of
    those; the dependency list's owner per entry)."""
    n = len(arrays)
    ptr, idx = arrays.dep_ptr, arrays.dep_idx.astype(np.int64, copy=False)
    owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr))
    waited = np.unique(idx[stream[idx] != stream[owner]])
    flag = np.zeros(n, dtype=bool)
    flag[waited] = True
    cand = np.zeros(n, dtype=bool)
    cand[owner[flag[idx]]] = True
    return waited, cand, owner


def run_streams(engine, trace: Trace, plan: Plan) -> Timeline:
    """:meth:`Engine.run` of a trace :func:`runs_on_arrays` accepts (same times, events and
    resource traffic; see the module docstring)."""
    arrays = trace.compact
    names = arrays.stream_names
    dev = plan.streams[names[0]]
    kind = arrays.kind
    n = len(kind)
    table = _kind_costs(dev, arrays)
    per_kind = np.array([c.latency if c is not None else 0.0 for c in table] or [0.0])
    stream = arrays.stream
    waited, cand, _ = _waited(arrays, stream)
    env = simpy.Environment()
    start = np.full(n, np.nan)
    end = np.full(n, np.nan)
    done = {i: env.event() for i in waited.tolist()}
    counter = [0, 0]   # tasks completed, events waited on
    streams = {name: [] for name in names}
    resources, memory_of, op_loads = engine._resources(env, plan, streams)
    single = np.zeros(n, dtype=bool)
    if op_loads:
        single[np.fromiter(op_loads, dtype=np.int64, count=len(op_loads))] = True
    signal = np.zeros(n, dtype=bool)
    signal[waited] = True
    ptr, idx = arrays.dep_ptr, arrays.dep_idx
    # the dependencies with a completion event, per op that has one (in the op's dep order)
    waits: dict[int, list] = {}
    for i in np.flatnonzero(cand).tolist():
        waits[i] = [done[d] for d in idx[ptr[i]:ptr[i + 1]].tolist() if d in done]

    def pending(i: int) -> list:
        return [e for e in waits[i] if not e.triggered]

    by_stream = np.argsort(stream, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(stream, minlength=len(names)))))
    kind_cost = table

    def op_stream(name: str, ids: np.ndarray) -> Generator:
        memory = memory_of.get(name)
        timeout = env.timeout
        m = len(ids)
        lat = per_kind[kind[ids]]
        lat_list = lat.tolist()
        special = signal[ids] | cand[ids] | single[ids]
        at = np.flatnonzero(special)
        # next[p]: the first special position >= p (m where none is left)
        nxt = np.append(at, m)[np.searchsorted(at, np.arange(m + 1))].tolist()
        id_list, sig, wait, one = ids.tolist(), signal[ids].tolist(), cand[ids].tolist(), \
            single[ids].tolist()
        batch = memory is None
        k = 0
        while k < m:
            i = id_list[k]
            if wait[k]:
                events = pending(i)
                if events:
                    counter[1] += 1
                    yield env.all_of(events)
            if batch and not one[k]:
                # a run of ops that only hold the device, from here to the op that ends it
                e = k
                while not sig[e]:
                    q = nxt[e + 1]
                    if q >= m:
                        e = m - 1
                        break
                    if one[q] or (wait[q] and pending(id_list[q])):
                        e = q - 1
                        break
                    e = q
                if e - k < SHORT:   # a few ops: the same additions in Python floats
                    t = env.now
                    for p in range(k, e + 1):
                        j = id_list[p]
                        start[j] = t
                        t = t + lat_list[p]
                        end[j] = t
                else:
                    times = np.empty(e - k + 2)
                    times[0] = env.now
                    times[1:] = lat[k:e + 1]
                    np.cumsum(times, out=times)
                    run = ids[k:e + 1]
                    start[run] = times[:-1]
                    end[run] = times[1:]
                    t = float(times[-1])
                counter[1] += 1
                yield engine_module._Until(env, t)
                counter[0] += e - k + 1
                if sig[e]:
                    done[id_list[e]].succeed()
                k = e + 1
                continue
            cost = kind_cost[kind[i]]
            loads = op_loads.get(i) if op_loads else None
            share = cost.detail.get("memory_share") if memory is not None else None
            start[i] = env.now
            if share is not None and loads is None:
                # a unit inside the memory (PIM): it reserves ``share`` of the bandwidth
                if share > 0.0:
                    memory.reserve(share)
                yield timeout(cost.latency)
                if share > 0.0:
                    memory.release(share)
            elif loads is not None:
                events = [res.transfer(x) for res, x in loads]
                if memory is not None and cost.dram_bytes > 0:
                    events.append(memory.transfer(cost.dram_bytes))
                events.append(timeout(cost.latency))
                yield env.all_of(events)
            elif memory is not None:
                yield hold(env, cost.latency, memory, cost.dram_bytes)
            else:
                yield timeout(cost.latency)
            end[i] = env.now
            counter[0] += 1
            counter[1] += 1
            if sig[k]:
                done[i].succeed()
            k += 1

    for code, name in enumerate(names):
        ids = by_stream[bounds[code]:bounds[code + 1]]
        if len(ids):
            env.process(op_stream(name, ids))
    env.run()
    tl = Timeline(start, end, CostList(table, kind), counter[0])  # type: ignore[arg-type]
    tl.engine_events = counter[1]
    tl.resources = resources
    return tl
