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
arrays.

A stream whose device memory another stream shares (compute and communication streams under
``--overlap``) moves each op's DRAM bytes through that memory, and a collective or pipeline
send whose link another stream also loads moves its bytes through the link: one event per
op while the resource may be contended. While every resource an op moves bytes through is
*quiet* - nothing in flight on it, and every other user busy until a known time or waiting
for this stream's own ops - ops are stamped at once (``quiet_run``): each ends where the
per-op engine would end it alone on its resources (the latest of its timeout and each
transfer's timer), each resource's bytes and busy time are added as its timer adds them, and
the run stops before any op that would end when another user could start. A stream whose
loaded ops are seldom alone (under 1 in 10 after :data:`FUTILE` tries) stops trying them.
The times, tables and resource figures equal the per-op engine's (tests/test_array_plan.py);
only the number of events waited on falls.
"""

from __future__ import annotations

import math
from collections.abc import Generator

import numpy as np
import simpy

import sim.engine as engine_module
from sim.devices.base import Cost, Device
from sim.engine import CostList, Timeline, _ops_at, first_seen
from sim.resources import occupy
from sim.system.plan import Plan
from workloads.trace import Trace

#: runs of fewer ops than this are stamped in a Python loop (a ``cumsum`` call costs more)
SHORT = 16
#: quiet-run tries at a stream's loaded ops before their success rate may stop them
FUTILE = 64


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


def _waited(arrays, stream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ops another stream depends on, sorted; per op whether a dependency of it is one of
    those)."""
    n = len(arrays)
    ptr, idx = arrays.dep_ptr, arrays.dep_idx.astype(np.int64, copy=False)
    owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr))
    waited = np.unique(idx[stream[idx] != stream[owner]])
    flag = np.zeros(n, dtype=bool)
    flag[waited] = True
    cand = np.zeros(n, dtype=bool)
    cand[owner[flag[idx]]] = True
    return waited, cand


def run_streams(engine, trace: Trace, plan: Plan) -> Timeline:
    """:meth:`Engine.run` of a trace :func:`runs_on_arrays` accepts: the same times, costs
    and resource traffic, fewer events waited on (see the module docstring)."""
    arrays = trace.compact
    names = arrays.stream_names
    dev = plan.streams[names[0]]
    kind = arrays.kind
    n = len(kind)
    table = _kind_costs(dev, arrays)
    per_kind = np.array([c.latency if c is not None else 0.0 for c in table] or [0.0])
    stream = arrays.stream
    waited, cand = _waited(arrays, stream)
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

    # what each stream is doing, for the other users of a resource it loads (quiet runs):
    # ("busy", t, i): no new op before t, then op i (-1: none); ("wait", i): waiting on op
    # i's dependencies
    state: dict[str, tuple] = {}
    users = _users(names, stream, memory_of, op_loads)
    by_stream = np.argsort(stream, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(stream, minlength=len(names)))))
    kind_cost = table
    dram = np.array([c.dram_bytes if c is not None else 0.0 for c in table] or [0.0])
    shares = np.array([c is not None and c.detail.get("memory_share") is not None
                       for c in table] or [False])

    def quiet_until(res, name: str) -> float:
        """The earliest time another user of ``res`` may start an op (inf: none can before
        stream ``name`` signals one of its own ops)."""
        now, soonest = env.now, math.inf
        for other in users[id(res)]:
            if other == name:
                continue
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

    def quiet_run(name: str, k: int, memory, lat: list, nbytes: list, reserving: list,
                  ids: list, sig: list, wait: list, one: list) -> tuple[int, float]:
        """Stamp a run of ops from position ``k`` of stream ``name`` whose transfers (its
        memory's, its link loads) find every resource quiet: nothing in flight on it, and
        no other user able to start an op before the run's op ends (:func:`quiet_until`).
        Each op ends where the per-op engine ends it alone on its resources - the latest
        of its timeout and each transfer's timer - and each resource's bytes, busy time and
        last change are set as its timer sets them. The run ends as a coarsened run does,
        and before an op that would not be alone or that reserves a share of the memory; on
        a stream without a contended memory it stops before the next op without link loads
        (the coarsened run takes those). (last position stamped, its end time); last < k:
        none."""
        t, p, e = env.now, k, k - 1
        starts, ends = start, end
        bound: dict[int, float] = {}
        m = len(ids)
        quiet_memory = _bound(bound, memory, name) if memory is not None else -math.inf
        while True:
            i = ids[p]
            if reserving[p]:
                break
            s = t
            if p > k and wait[p] and pending(i):
                break
            loads = op_loads[i] if one[p] else None
            size = nbytes[p] if memory is not None else 0.0
            done_at = s + lat[p]
            if loads is None:     # the memory's bytes at most (most ops)
                if size > 0:
                    timer = memory.solo_end(size, s)
                    if timer is None:
                        break
                    done_at = max(done_at, timer)
                    if not done_at < quiet_memory:
                        break
                    memory.add_solo(size, s, timer)
            else:
                moves = [*loads, (memory, size)] if size > 0 else loads
                # two loads on one resource share it even when nothing else is in flight
                alone = len({id(res) for res, _ in moves}) == len(moves)
                timed = []
                for res, nb in (moves if alone else ()):
                    if nb > 0:
                        timer = res.solo_end(nb, s)
                        if timer is None:
                            alone = False
                            break
                        done_at = max(done_at, timer)
                        timed.append((res, nb, timer))
                if not alone or not all(done_at < _bound(bound, res, name)
                                        for res, _, _ in timed):
                    break
                for res, nb, timer in timed:
                    res.add_solo(nb, s, timer)
            starts[i] = s
            ends[i] = done_at
            t, e = done_at, p
            if sig[p] or p + 1 >= m or (memory is None and not one[p + 1]):
                break
            p += 1
        return e, t

    def _bound(cache: dict, res, name: str) -> float:
        got = cache.get(id(res))
        if got is None:
            got = cache[id(res)] = quiet_until(res, name)
        return got

    def op_stream(name: str, ids: np.ndarray) -> Generator:
        memory = memory_of.get(name)
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
        if memory is not None:
            nbytes, reserving = dram[kind[ids]].tolist(), shares[kind[ids]].tolist()
        else:   # no memory traffic to stamp: nothing reserves it
            nbytes = reserving = _NOTHING
        k = 0
        while k < m:
            i = id_list[k]
            if wait[k]:
                events = pending(i)
                if events:
                    counter[1] += 1
                    state[name] = ("wait", i)
                    yield env.all_of(events)
            e, loaded = -1, one[k]
            if batch and not loaded:
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
                t = _stamp(env.now, k, e + 1, lat, lat_list, ids, id_list, start, end)
            elif (memory is not None and not loaded) or \
                    (loaded and (tries[name] < FUTILE or wins[name] * 10 >= tries[name])):
                tries[name] += loaded
                e, t = quiet_run(name, k, memory, lat_list, nbytes, reserving, id_list, sig,
                                 wait, one)
                wins[name] += loaded and e >= k
            if e >= k:   # positions k..e stamped: one event until the last one ends
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
            yield from occupy(env, cost.latency, loads, memory, cost.dram_bytes, share)
            end[i] = env.now
            counter[0] += 1
            counter[1] += 1
            if sig[k]:
                done[i].succeed()
            k += 1
        state[name] = ("busy", math.inf, -1)

    # quiet runs tried and stamped per stream: a stream of loaded ops that are seldom alone
    # (under 1 in 10 after FUTILE tries) stops trying them (the same times either way)
    tries = {name: 0 for name in names}
    wins = {name: 0 for name in names}
    for code, name in enumerate(names):
        ids = by_stream[bounds[code]:bounds[code + 1]]
        if len(ids):
            env.process(op_stream(name, ids))
    env.run()
    tl = Timeline(start, end, CostList(table, kind), counter[0])  # type: ignore[arg-type]
    tl.engine_events = counter[1]
    tl.resources = resources
    return tl


class _Nothing:
    """A zero at every position (the bytes and reservations of a stream without a
    contended memory)."""

    def __getitem__(self, p: int) -> int:
        return 0


_NOTHING = _Nothing()


def _stamp(t: float, a: int, b: int, lat: np.ndarray, lat_list: list, ids: np.ndarray,
           id_list: list, start: np.ndarray, end: np.ndarray) -> float:
    """Stamp positions ``a:b`` of a stream back to back from ``t`` (s): each op starts where
    the one before it ends, ``end = start + latency`` added in order (by ``np.cumsum`` for
    long pieces, the same sequential additions); the last end."""
    if b - a < SHORT:
        for p in range(a, b):
            j = id_list[p]
            start[j] = t
            t = t + lat_list[p]
            end[j] = t
        return t
    times = np.empty(b - a + 1)
    times[0] = t
    times[1:] = lat[a:b]
    np.cumsum(times, out=times)
    run = ids[a:b]
    start[run] = times[:-1]
    end[run] = times[1:]
    return float(times[-1])


def _users(names, stream: np.ndarray, memory_of: dict, op_loads: dict) -> dict[int, set[str]]:
    """Per contended resource (by ``id``): the streams whose ops move bytes through it (a
    memory's streams, the streams of the ops whose link loads name it)."""
    out: dict[int, set[str]] = {}
    for name, mem in memory_of.items():
        out.setdefault(id(mem), set()).add(name)
    if op_loads:
        ids = np.fromiter(op_loads, dtype=np.int64, count=len(op_loads))
        for i, code in zip(ids.tolist(), stream[ids].tolist(), strict=True):
            for res, _ in op_loads[i]:
                out.setdefault(id(res), set()).add(names[code])
    return out
