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
arrays. Ops with link loads run one event each as in the per-op engine.

A stream whose device memory another stream shares (compute and communication streams under
``--overlap``) moves each op's DRAM bytes through that memory, one event per op, while it may
be contended. While it is *quiet* - nothing in flight on it, and every other stream of it busy
until a known time or waiting for this stream's own ops - a run of ops is stamped at once
(:func:`_memory_run`): each op ends where ``hold`` would end it alone on the memory, the
memory's bytes and busy time are added as its timer would add them, and the run stops before
any op that would end when another stream could start a transfer. The times, tables and
resource figures equal the per-op engine's (tests/test_array_plan.py); only the number of
events waited on falls.
"""

from __future__ import annotations

import math
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
        waits[i] = [(d, done[d]) for d in idx[ptr[i]:ptr[i + 1]].tolist() if d in done]
    owner = {d: names[c] for d, c in zip(waited.tolist(), stream[waited].tolist(), strict=True)}

    def pending(i: int) -> list:
        return [e for _, e in waits[i] if not e.triggered]

    # what each stream is doing, for the streams that share its memory (memory runs):
    # ("busy", t, i): no new transfer before t, then op i (-1: none); ("wait", i): waiting
    # on op i's dependencies
    state: dict[str, tuple] = {}
    sharers = _sharers(names, memory_of, op_loads)
    by_stream = np.argsort(stream, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(stream, minlength=len(names)))))
    kind_cost = table
    dram = np.array([c.dram_bytes if c is not None else 0.0 for c in table] or [0.0])
    shares = np.array([c is not None and c.detail.get("memory_share") is not None
                       for c in table] or [False])

    def quiet_until(name: str) -> float:
        """The earliest time a stream sharing ``name``'s memory may start a transfer on it
        (inf: none can before ``name`` signals one of its own ops)."""
        now, soonest = env.now, math.inf
        for other in sharers[name]:
            what = state.get(other)
            if what is None:
                return now
            if what[0] == "busy":
                # unless its next op will wait for one of this stream's ops
                if not _held_by(what[2], name):
                    soonest = min(soonest, what[1])
            elif not _held_by(what[1], name):
                return now
        return soonest

    def _held_by(i: int, name: str) -> bool:
        """Whether op ``i`` (-1: none) waits for an unsignalled op of stream ``name`` and of
        no other stream (it cannot start before ``name`` signals it)."""
        if i not in waits:
            return False
        left = [d for d, e in waits[i] if not e.triggered]
        return bool(left) and all(owner[d] == name for d in left)

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
        if memory is not None and sharers[name] is not None:
            nbytes, reserving = dram[kind[ids]].tolist(), shares[kind[ids]].tolist()
        k = 0
        while k < m:
            i = id_list[k]
            if wait[k]:
                events = pending(i)
                if events:
                    counter[1] += 1
                    state[name] = ("wait", i)
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
                state[name] = ("busy", t, id_list[e + 1] if e + 1 < m else -1)
                yield engine_module._Until(env, t)
                counter[0] += e - k + 1
                if sig[e]:
                    done[id_list[e]].succeed()
                k = e + 1
                continue
            if memory is not None and not one[k] and sharers[name] is not None and \
                    not memory._left and not memory.reserved:
                e, t = _memory_run(k, m, env.now, quiet_until(name), memory, lat_list, nbytes,
                                   reserving, id_list, sig, wait, one, pending,
                                   start, end)
                if e >= k:
                    counter[1] += 1
                    state[name] = ("busy", t, id_list[e + 1] if e + 1 < m else -1)
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
            state[name] = ("busy", env.now + cost.latency, id_list[k + 1] if k + 1 < m else -1)
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
        state[name] = ("busy", math.inf, -1)

    for code, name in enumerate(names):
        ids = by_stream[bounds[code]:bounds[code + 1]]
        if len(ids):
            env.process(op_stream(name, ids))
    env.run()
    tl = Timeline(start, end, CostList(table, kind), counter[0])  # type: ignore[arg-type]
    tl.engine_events = counter[1]
    tl.resources = resources
    return tl


def _sharers(names, memory_of: dict, op_loads: dict) -> dict[str, list[str] | None]:
    """Per stream with a contended memory: the other streams of that memory (None where a
    link load also names the memory: its runs are then never coarsened)."""
    loaded = {res.name for loads in op_loads.values() for res, _ in loads} if op_loads \
        else set()
    out: dict[str, list[str] | None] = {}
    for name in names:
        mem = memory_of.get(name)
        if mem is None:
            out[name] = []
        elif mem.name in loaded:
            out[name] = None
        else:
            out[name] = [o for o in names if o != name and memory_of.get(o) is mem]
    return out


def _memory_run(k: int, m: int, now: float, quiet: float, memory, lat: list, nbytes: list,
                reserving: list, ids: list, sig: list, wait: list, one: list, pending,
                start: np.ndarray, end: np.ndarray) -> tuple[int, float]:
    """Stamp a run of ops from position ``k`` of a stream whose memory is contended but
    quiet: nothing else in flight on it, and no other stream may start a transfer on it
    before ``quiet`` (s). Each op ends where the per-op engine's ``hold`` would end it alone
    on the memory - at ``max(start + latency, start + bytes / rate)``, the times of its
    timeout and of the memory's timer - and the memory's bytes and busy time are added as
    its timer would add them. The run ends as a coarsened run does (at an op another stream
    waits for, before a loaded op or one still waiting) and before any op that would end at
    or after ``quiet``, reserve a share of the memory, or leave bytes the timer would not
    finish. (last position stamped, its end time); last < k when no op qualifies."""
    rate = memory.rate
    tol = rate * 1e-12
    t, p, e = now, k, k - 1
    moved, busy, last = memory.bytes_moved, memory.busy_time, memory._last
    while True:
        if reserving[p]:
            break
        done_at = t + lat[p]
        size = nbytes[p]
        if size > 0:
            timer = t + max(0.0, size / rate)
            if size - (timer - t) * rate > tol:
                break
            done_at = max(done_at, timer)
        if not done_at < quiet:
            break
        start[ids[p]] = t
        end[ids[p]] = done_at
        if size > 0:
            moved += size
            busy += timer - t
            last = timer
        t, e = done_at, p
        if sig[p] or p + 1 >= m:
            break
        q = p + 1
        if one[q] or (wait[q] and pending(ids[q])):
            break
        p = q
    memory.bytes_moved, memory.busy_time, memory._last = moved, busy, last
    return e, t
