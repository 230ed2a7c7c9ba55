"""The event engine: device streams as SimPy processes, memories and links as contended resources.

Ops are grouped into streams (``op.device`` names the stream); a stream runs its ops in trace
order, one at a time, each as a timeout of its estimated latency. An op that depends on a task of
another stream waits for that task's completion event. Without a :class:`~sim.system.plan.Plan`
(one device, or streams given by hand) streams served by one device object share its memory as
a :class:`SharedBandwidth`, and collectives hold one shared link.

With a plan (a system run, :mod:`sim.system.schedule`) every memory tier and link direction is a
:class:`SharedBandwidth`: an op moves its DRAM bytes through its device's memory when something
else contends for it, a collective moves the bytes each rank sends through its ports, and a
:class:`~sim.system.plan.Transfer` moves a tensor through both tiers and every link of its route
on a copy stream. A task ends when its own latency and all its loads under contention are done.
A task whose cost names a ``memory_share`` (``Cost.detail``; a PIM program issuing commands to
the banks) moves no bytes through its memory but reserves that share of its bandwidth while it
runs.
Events are per op / transfer, never per byte.

**Coarsened events** (``coarsen=True``, the default): consecutive ops of a stream that hold its
device for their latency alone (no memory or link load, no shared link) and that no other
stream waits on in between run as one event: their start and end times are stamped in the
same sequential float additions SimPy would make (``end = start + latency``, op by op) and the
stream sleeps once until the last end, an absolute time. A run stops at an op another stream
waits for (its completion is signalled at its own end) and before an op that must wait for
another stream, so every op's start and end, and so makespan and energy, are those of the
one-event-per-op run (``coarsen=False``), bit for bit on one stream. A trace held as arrays
(``Trace.is_compact``) whose plan is one uncontended stream of a plain device runs without the
event loop at all: the same sums as ``np.cumsum`` of per-op latencies (under an async host
stack, ``sim.gpu.host.async_ends``: the per-op run's times to float rounding). ``Timeline.events``
counts tasks (ops and transfers) as before; ``Timeline.engine_events`` the SimPy events the
stream processes actually waited on.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from heapq import heappush

import numpy as np

from sim.columns import first_occurrences
from sim.devices.base import Cost, Device
from sim.lazy_module import LazyModule
from sim.resources import SharedBandwidth, occupy
from sim.system.grouped_loads import GroupedLoads
from sim.system.plan import Plan, Transfer
from workloads.fold import FoldedOps
from workloads.trace import COLLECTIVE, CompactOps, Op, Trace, ops_at

#: SimPy loads on first use: a run on the one-stream path (``_run_one_stream``) never needs it
simpy = LazyModule("simpy", globals())


def _Until(env: simpy.Environment, t: float):  # noqa: N802 - rebound to the class on first use
    """An event that fires at the absolute simulated time ``t`` (s): a coarsened run of ops
    ends exactly where the per-op timeouts' sequential additions would have ended, not at
    ``now + (t - now)``, which may round differently. The class subclasses SimPy's ``Event``,
    so it is made (and ``_Until`` rebound to it) on the first call."""
    global _Until
    _Until = _until_class()
    return _Until(env, t)


def _until_class() -> type:
    class _Until(simpy.events.Event):
        """The event of :func:`_Until` (s: absolute simulated time)."""

        def __init__(self, env: simpy.Environment, t: float):
            self.env = env
            self.callbacks = []
            self._value = None
            self._ok = True
            try:
                heappush(env._queue, (t, simpy.events.NORMAL, next(env._eid), self))
            except AttributeError:   # a SimPy without these internals: schedule by delay
                env.schedule(self, simpy.events.NORMAL, max(0.0, t - env.now))

    return _Until


@dataclass
class Timeline:
    """Start and end time (s) of each op, indexed by op id, plus each op's cost; the same for
    transfers (indexed by position in ``transfers``) and what each resource carried."""

    start: np.ndarray
    end: np.ndarray
    costs: list[Cost]
    events: int
    transfers: list[Transfer] = field(default_factory=list)
    transfer_start: np.ndarray = field(default_factory=lambda: np.zeros(0))
    transfer_end: np.ndarray = field(default_factory=lambda: np.zeros(0))
    resources: dict[str, SharedBandwidth] = field(default_factory=dict)
    engine_events: int = 0
    #: runs of the several-stream engine that began by adopting another stream's op instead
    #: of waking that stream (sim/engine_arrays.py, ``LEAD_ADOPTION``)
    lead_runs: int = 0
    #: the several-stream engine's ops by stream: (op ids in stream, then op-id order; where
    #: each stream's begin, ``n_streams + 1`` offsets; the stream names), else None
    stream_order: tuple | None = None


class CostList(Sequence):
    """Per-op costs of a run on arrays: ``table[index[i]]`` is op ``i``'s (no list per op).
    ``lazy``: (table positions, :class:`~sim.devices.base.CostBlock`) pairs, costs priced
    from arrays whose ``table`` entries are formed on the first read of ``table`` (or of a
    cost); :meth:`figures` reads their columns without forming them."""

    def __init__(self, table: list[Cost], index: np.ndarray, lazy: list | None = None):
        self._table = table
        self.index = index
        self._lazy = lazy or []

    @property
    def table(self) -> list[Cost]:
        """One cost per distinct op (the lazy ones formed now, once)."""
        if self._lazy:
            table = self._table
            for where, block in self._lazy:
                for k, j in zip(where.tolist(), range(len(block)), strict=True):
                    table[k] = block.cost(j)
            self._lazy = []
        return self._table

    def figures(self) -> tuple[list | np.ndarray, ...]:
        """Per table entry: (latency, roofline, DRAM bytes, compute energy, link energy,
        total energy, bound) - the costs' ``latency``, ``roofline``, ``dram_bytes``,
        ``energy["compute"]``, ``energy["link"]``, ``energy_total`` and ``bound`` (0.0 and
        "" for an entry without a cost), lazy entries read from their blocks' columns."""
        lazy = [(where, block.figures()) for where, block in self._lazy]
        if any(f is None for _, f in lazy):   # a block that cannot: form its costs
            lazy = []
        table = self.table if not lazy else self._table
        none = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, "")
        rows = [none if c is None else
                (c.latency, c.roofline, c.dram_bytes, c.energy.get("compute", 0.0),
                 c.energy.get("link", 0.0), c.energy_total, c.bound) for c in table]
        if not rows:
            return [], [], [], [], [], [], []
        lat, roof, dram, e_comp, e_link, e_all, bounds = (list(v) for v in zip(*rows,
                                                                                strict=True))
        if lazy:
            lat, roof, dram, e_comp, e_all = (np.array(v, dtype=float)
                                              for v in (lat, roof, dram, e_comp, e_all))
            for where, (b_lat, b_roof, b_dram, b_comp, b_all, b_bound) in lazy:
                lat[where], roof[where], dram[where] = b_lat, b_roof, b_dram
                e_comp[where], e_all[where] = b_comp, b_all
                for k, bound in zip(where.tolist(), b_bound, strict=True):
                    bounds[k] = bound
        return lat, roof, dram, e_comp, e_link, e_all, bounds

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.table[j] for j in self.index[i].tolist()]
        return self.table[int(self.index[i])]

    def __iter__(self):
        table = self.table
        return (table[j] for j in self.index.tolist())


#: ops per block of :func:`_cumulative` (its gathers stay in cache, no run-long temporary)
BLOCK = 1 << 16


def _cumulative(per_kind: np.ndarray, kind: np.ndarray, times: np.ndarray) -> None:
    """``times[1:] = np.cumsum(per_kind[kind])`` (``times[0]`` given, 0) a block at a time:
    each block's sums start from the last time of the block before, so every addition is the
    one the whole-array ``cumsum`` makes, in the same order (equal bit for bit)."""
    n = len(kind)
    for lo in range(0, n, BLOCK):
        hi = min(n, lo + BLOCK)
        part = np.empty(hi - lo + 1)
        part[0] = times[lo]
        np.take(per_kind, kind[lo:hi], out=part[1:])
        np.cumsum(part, out=times[lo:hi + 1])


def known_kind_costs(dev: Device, arrays: CompactOps, used: np.ndarray, first: np.ndarray,
                     table: list) -> tuple[np.ndarray, np.ndarray]:
    """Fill ``table`` (a cost per kind) with the costs ``dev`` already has for the kinds
    ``used`` of ``arrays`` (:meth:`~sim.devices.base.Device.kind_costs`); the kinds left to
    price and their first ops (an op is built only for those)."""
    known = dev.kind_costs(arrays)
    if known is None:
        return used, first
    for k in used.tolist():
        table[k] = known[k]
    unknown = np.array([table[k] is None for k in used.tolist()], dtype=bool)
    return used[unknown], first[unknown]


class Engine:
    """Runs a trace on device models; ``devices`` maps stream name to the device serving it.
    ``coarsen``: run stretches of independent ops as one event (see the module docstring)."""

    def __init__(self, devices: dict[str, Device], coarsen: bool = True):
        if not devices:
            raise ValueError("engine needs at least one device")
        self.devices = devices
        self.default = next(iter(devices))
        self.memories: dict[str, SharedBandwidth] = {}
        self.coarsen = coarsen

    def run(self, trace: Trace, plan: Plan | None = None) -> Timeline:
        if self.coarsen and trace.is_compact:
            tl = self._run_one_stream(trace, plan)
            if tl is not None:
                return tl
            from sim.engine_arrays import run_streams, runs_on_arrays  # several streams

            if runs_on_arrays(trace, plan):
                return run_streams(self, trace, plan)
            if plan is not None:   # tensors moved, hosted ops: no op object either
                from sim.engine_planned import run_planned_arrays

                tl = run_planned_arrays(self, trace, plan)
                if tl is not None:
                    return tl
        if self.coarsen and plan is not None and (plan.transfers or len(plan.streams) > 1):
            from sim.engine_planned import run_planned  # tensors moved, units, shared memories

            tl = run_planned(self, trace, plan)
            if tl is not None:
                return tl
        env = simpy.Environment()
        ops = trace.ops
        n = len(ops)
        transfers = plan.transfers if plan else []
        start = np.full(n + len(transfers), np.nan)
        end = np.full(n + len(transfers), np.nan)
        costs: list[Cost | None] = [None] * n
        streams: dict[str, list] = {}
        stream_of: list[str] = [""] * (n + len(transfers))
        devices = plan.streams if plan else self.devices
        for op in ops:
            name = op.device or self.default
            if name not in devices:
                raise ValueError(f"op {op.id} ({op.name}) is placed on unknown stream '{name}'")
            streams.setdefault(name, []).append(op)
            stream_of[op.id] = name
        for tr in sorted(transfers, key=lambda t: (t.anchor, t.id)):  # in enqueue order
            streams.setdefault(tr.stream, []).append(tr)
            stream_of[tr.id] = tr.stream
        extra = plan.extra_deps if plan else {}
        # completion events only where a task waits on another stream
        waited: set[int] = set()
        for op in ops:
            me = stream_of[op.id]
            for d in op.deps:
                if stream_of[d] != me:
                    waited.add(d)
            for d in extra.get(op.id, ()):
                waited.add(d)
        for tr in transfers:
            waited.update(tr.deps)
        done = {i: env.event() for i in waited}
        counter = [0, 0]   # tasks completed, events waited on
        resources, memory_of, op_loads = self.build_resources(env, plan, streams)
        coarsen = self.coarsen

        get_done = done.get
        none_done = done.keys().isdisjoint   # no dep has a completion event (one C call)

        def wait_for(deps) -> list:
            """The completion events of ``deps`` still to fire (one dict lookup per dep)."""
            return [e for e in map(get_done, deps) if e is not None and not e.triggered]

        link = simpy.Resource(env, capacity=1)
        shared_link = plan is None and len(streams) > 1
        # ops materialised from arrays: ops of one kind share the compute, collective, shards
        # and kind the estimate memo keys on, so a stream looks its costs up by kind
        arrays = getattr(trace, "arrays", None)
        kind_of = arrays.kind.tolist() if arrays is not None else None

        def op_stream(name: str, items: list[Op]) -> Generator:
            dev = devices[name]
            plain = dev.holds_for_latency()  # one timeout per op: skip the generator
            memory = memory_of.get(name)
            estimate = dev.estimate
            if kind_of is not None and type(dev).estimate is Device.estimate:
                by_kind: dict[int, Cost] = {}
                memo_get, memoised = dev.estimate, by_kind.get

                def estimate(op: Op) -> Cost:   # Device.estimate's memo, keyed by op kind
                    cost = memoised(kind_of[op.id])
                    if cost is None:
                        cost = by_kind[kind_of[op.id]] = memo_get(op)
                    return cost
            batch = coarsen and plain and memory is None
            k, n_items = 0, len(items)
            while k < n_items:
                op = items[k]
                k += 1
                if done and (op.deps or extra):
                    pending = wait_for(op.deps)
                    more = extra.get(op.id)
                    if more:
                        pending += wait_for(more)
                    if pending:
                        counter[1] += 1
                        yield env.all_of(pending)
                if batch and not (op_loads and op.id in op_loads) and \
                        not (shared_link and op.kind == COLLECTIVE):
                    # a run of ops that only hold this device: stamp, then one event
                    t, first = env.now, k
                    while True:
                        cost = estimate(op)
                        costs[op.id] = cost
                        start[op.id] = t
                        t = t + cost.latency
                        end[op.id] = t
                        if k == n_items or op.id in done:
                            break
                        nxt = items[k]
                        if (op_loads and nxt.id in op_loads) or \
                                (shared_link and nxt.kind == COLLECTIVE) or \
                                (done and ((not none_done(nxt.deps) and
                                            wait_for(nxt.deps)) or
                                           (extra and wait_for(extra.get(nxt.id, ()))))):
                            break
                        op = nxt
                        k += 1
                    counter[1] += 1
                    yield _Until(env, t)
                    counter[0] += k - first + 1
                    if op.id in done:
                        done[op.id].succeed()
                    continue
                cost = estimate(op)
                costs[op.id] = cost
                loads = op_loads.get(op.id) if op_loads else None
                share = cost.detail.get("memory_share") if memory is not None else None
                pim = share is not None and loads is None
                if plain and (pim or not (shared_link and op.kind == COLLECTIVE)):
                    # a device that holds for its latency (PIM units and loads included)
                    start[op.id] = env.now
                    yield from occupy(env, cost.latency, loads, memory, cost.dram_bytes,
                                      share)
                elif pim:
                    # a unit inside the memory (PIM): its bytes stay in the banks; it takes
                    # ``share`` of the memory's bandwidth from the other streams while it runs
                    start[op.id] = env.now
                    if share > 0.0:
                        memory.reserve(share)
                    yield from dev.process(env, op, cost)
                    if share > 0.0:
                        memory.release(share)
                elif shared_link and op.kind == COLLECTIVE:
                    with link.request() as req:
                        yield req
                        start[op.id] = env.now
                        yield from dev.process(env, op, cost)
                elif loads is not None or memory is not None:
                    start[op.id] = env.now
                    events = [res.transfer(x) for res, x in loads] if loads else []
                    if memory is not None and cost.dram_bytes > 0:
                        events.append(memory.transfer(cost.dram_bytes))
                    yield from dev.process(env, op, cost)
                    if events:
                        yield env.all_of(events)
                else:
                    start[op.id] = env.now
                    yield from dev.process(env, op, cost)
                end[op.id] = env.now
                counter[0] += 1
                counter[1] += 1
                if op.id in done:
                    done[op.id].succeed()

        def copy_stream(items: list[Transfer]) -> Generator:
            for tr in items:
                pending = wait_for(tr.deps)
                if pending:
                    yield env.all_of(pending)
                start[tr.id] = env.now
                if tr.latency > 0:
                    yield env.timeout(tr.latency)
                events = [resources[ld.resource].transfer(ld.nbytes) for ld in tr.loads]
                if events:
                    yield env.all_of(events)
                end[tr.id] = env.now
                counter[0] += 1
                counter[1] += 1
                if tr.id in done:
                    done[tr.id].succeed()

        for name, items in streams.items():
            if items and isinstance(items[0], Transfer):
                env.process(copy_stream(items))
            else:
                env.process(op_stream(name, items))
        env.run()
        tl = Timeline(start[:n], end[:n], costs, counter[0])  # type: ignore[arg-type]
        tl.engine_events = counter[1]
        if transfers:
            tl.transfers = transfers
            tl.transfer_start = start[n:]
            tl.transfer_end = end[n:]
        tl.resources = resources
        return tl

    def _run_one_stream(self, trace: Trace, plan: Plan | None) -> Timeline | None:
        """A trace held as arrays on one stream of a plain device, with nothing to contend
        for or wait on: every op starts when the one before it ends, so the stream is one
        coarsened run (module docstring) - start and end times are the sequential sums of
        latencies SimPy would form (``np.cumsum`` adds in order), one event. Costs are
        estimated once per distinct op, in the order the ops first appear (the order the
        per-op run would estimate them in). None when the trace needs the event loop.

        A device with an async host (``host_issue()``, sim/gpu/host.py) is timed the same
        way with the host clock in closed form (:func:`sim.gpu.host.async_ends`: a pass opens
        where (phase, step) changes, as :class:`~sim.gpu.host.AsyncIssue` decides). As in
        the per-op run, an op starts where the one before it ended (its wait for the host is
        inside it); ends differ from the per-op run's by float rounding only (the same sums
        in another order; equal to rtol 1e-12, tests/test_async_one_stream.py)."""
        streams = plan.streams if plan is not None else self.devices
        arrays = trace.compact
        if len(streams) != 1 or (plan is not None and (plan.transfers or plan.extra_deps or
                                                       plan.op_loads or plan.memory_of)):
            return None
        name, dev = next(iter(streams.items()))
        # the base estimate is memoised per op shape: one call per distinct op is the same
        issue = None
        if not dev.holds_for_latency():
            issue = getattr(dev, "host_issue", lambda: None)()
            if issue is None:
                return None
        if not dev.estimates_by_kind() or (arrays.device or name) != name:
            return None
        fold = arrays.fold if isinstance(arrays, FoldedOps) and arrays.folded else None
        n_kinds = len(arrays.kinds)
        table: list[Cost | None] = [None] * n_kinds
        if fold is not None:
            used, first = fold.first_seen(n_kinds)
        else:
            used, first = first_occurrences(arrays.kind, n_kinds)
        if issue is None:   # (an async host's dispatch reads every kind's op)
            used, first = known_kind_costs(dev, arrays, used, first, table)
        if fold is not None:
            ops = fold.ops_at(arrays.kinds, arrays.phases, first, name)
        else:
            ops = ops_at(arrays, first, name)
        dispatch = np.zeros(n_kinds)
        settled: list = []   # (positions in ops, CostBlock): costs priced as columns
        if hasattr(dev, "prefetch"):   # a device that prices shape families at once
            dev.prefetch(ops)          # (the same costs, e.g. GpuDevice's GEMMs)
            settled = getattr(dev, "settled", None) or []
        rest = range(len(ops))
        if settled:   # their costs are formed when read (the same objects estimate returns)
            todo = np.ones(len(ops), dtype=bool)
            for at, _ in settled:
                todo[at] = False
            rest = np.flatnonzero(todo).tolist()
        where = used.tolist()
        estimate = dev.estimate
        for p in rest:
            table[where[p]] = estimate(ops[p])
        if issue is not None:
            for i, op in zip(where, ops, strict=True):
                dispatch[i] = issue.dispatch(op)
        per_kind = np.array([c.latency if c is not None else 0.0 for c in table] or [0.0])
        lazy = [(used[at], block) for at, block in settled]
        for kinds, block in lazy:
            per_kind[kinds] = block.latency
        if fold is not None:
            # (sim.fold_run imports this module)
            from sim.fold_run import FoldedTimeline

            return FoldedTimeline.of(arrays, per_kind, table, lazy,
                                     (dispatch, issue) if issue is not None else None)
        kind = arrays.kind
        # start and end are views of one array of n + 1 times: op i starts where i - 1 ends
        times = np.empty(len(kind) + 1)
        times[0] = 0.0
        if issue is None:
            _cumulative(per_kind, kind, times)
        else:
            times[1:] = self._async_ends(arrays, per_kind[kind], dispatch[kind], issue)
        start, end = times[:-1], times[1:]
        tl = Timeline(start, end, CostList(table, kind, lazy),  # type: ignore[arg-type]
                      len(kind))
        tl.engine_events = 1 if len(kind) else 0
        return tl

    @staticmethod
    def _async_ends(arrays, latency: np.ndarray, dispatch: np.ndarray, issue) -> np.ndarray:
        """End times (s) of a one-stream run under an async host: a forward pass opens where
        the op's (phase, step) differs from the one before it."""
        from sim.gpu.host import async_ends

        phase, step = arrays.phase, arrays.step
        new = np.ones(len(phase), dtype=bool)
        new[1:] = (phase[1:] != phase[:-1]) | (step[1:] != step[:-1])
        return async_ends(latency, dispatch, new, issue.pass_cost(arrays.requests))

    def build_resources(self, env: simpy.Environment, plan: Plan | None,
                   streams: dict[str, list]) -> tuple[dict, dict, dict]:
        """(resources by name, memory resource by stream, resolved loads by op id)."""
        if plan is None:
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
            return dict(memories), memories, {}
        resources = {name: SharedBandwidth(env, bw, name) for name, bw in plan.resources.items()}
        memory_of = {s: resources[r] for s, r in plan.memory_of.items()}
        resolved: dict[int, list] = {}    # ops sharing a list of loads share its resolution

        def resolve(loads: list) -> list:
            got = resolved.get(id(loads))
            if got is None:
                got = resolved[id(loads)] = [(resources[ld.resource], ld.nbytes)
                                             for ld in loads]
            return got

        if isinstance(plan.op_loads, GroupedLoads):    # arrays: each tuple resolved once
            op_loads = plan.op_loads.with_tuples(resolve)
        else:
            op_loads = {i: resolve(loads) for i, loads in plan.op_loads.items()}
        self.memories = memory_of
        return resources, memory_of, op_loads
