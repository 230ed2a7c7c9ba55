"""The event engine's several-stream run of a trace held as arrays (no object per op).

A plan from :mod:`sim.system.array_plan` puts a compact trace's ops on several streams
(``CompactOps.stream``). :func:`run_streams` runs it as :meth:`sim.engine.Engine.run` does op
by op, with the same SimPy processes, events and resources, but each stream walks positions
in arrays: a coarsened run (module docstring of :mod:`sim.engine`; ``plain_run`` on a stream
without a shared memory) is found by jumping between the positions that may end it (ops
another stream waits for, ops with a dependency another stream signals) and stamped by a
running sum from the run's start (the sequential additions the per-op loop makes, so every
start and end is equal bit for bit; a compiled loop, :func:`sim.span_kernel.stamp_span`); it
takes the ops with link loads on its way where each is alone on its links (below), and ends
where the per-op loop's would (at an op another stream waits for, before an op whose
dependency has not yet been signalled when the run starts) or before a loaded op that is not
alone. Costs are one per op kind
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
the run stops before any op that would end when another user could start moving bytes
through the resource. That time is bounded from the other user's state: its next op starts
no earlier than its current op's end (or what it waits for), and its next op on this
resource no earlier than that plus the durations alone of the ops between (ops on a stream
run one after the other, and contention only lengthens them), nor before what that op waits
for can have ended (:mod:`sim.bound_kernel`, one wait deep). Such a run's ops
end at ``start + duration alone`` (the longest of its latency and each transfer's time at
full rate; rounding is monotone, so the latest of the timers is that sum), added by one
``np.cumsum``. A waiting stream bounds a run by the earliest its op could start: the end of
what it waits for where that is stamped, else the earliest that op's stream can end it. A
stream whose loaded ops are seldom alone (under 1 in 10 after :data:`FUTILE` tries) stops
trying them.

Under ``--overlap`` a compute stream's run also stamps the comm stream's collectives
(:mod:`sim.stream_chains`), while the comm stream sleeps on: a collective it *takes turns*
with (it waits for the compute op before it and the next compute op waits for it) goes into
the run's chain of ops; a collective of one micro-batch that overlaps the next micro-batch's
compute ops runs *beside* them, the memory's sharing replayed op by op as the per-op
engine's events would share it (:class:`~sim.resources.PairReplay`; the run ends instead where
two changes would fall at one time, so that the order of events could matter). Where a
run may end and which collectives it takes is scanned by a compiled loop
(:func:`sim.scan_kernel.scan_run`). The comm
stream then sleeps on its next op, waking no earlier than the collective ended. Where neither
the run nor the collectives beside it load a link, the loop over those windows is compiled
(:func:`sim.beside_kernel.stamp_beside`, built ahead of time by :mod:`sim.engine_aot`): the
same floats, ~25 us of interpretation less per window.

A run in which no two transfers ever share a resource needs none of this: it is timed as one
longest path over the trace (:mod:`sim.engine_dag`; no event at all), and only where that
pass finds a shared resource do the streams run otherwise: where the contention ends early,
the event loop above runs the ops before it and the rest are again one longest path
(:mod:`sim.engine_split`); else one compiled event loop replays each resource's sharing
(:mod:`sim.engine_shared`; no SimPy event at all); only where that cannot be sure of SimPy's
order does the event loop above run every op.

The times, tables and resource figures equal the per-op engine's (tests/test_array_plan.py);
only the number of events waited on falls.
"""

from __future__ import annotations

import math
from collections.abc import Generator

import numpy as np
import simpy

import sim.engine as engine_module
from sim.columns import distinct_ints, first_occurrences, flat_rows
from sim.devices.base import Cost, Device
from sim.engine import CostList, Timeline, known_kind_costs
from sim.engine_aot import (
    BUSY,
    NOT_MOVED,
    NOT_STARTED,
    STEP_BESIDE,
    STEP_GROW,
    STEP_NONE,
    STEP_WANT,
    UNKNOWN,
    WAITING,
    WANT_MEMORY,
    kernels,
    step_addresses,
)
from sim.engine_dag import contention_free
from sim.engine_shared import shared_run
from sim.engine_split import split_run
from sim.load_index import LoadIndex, loads_alone
from sim.resources import occupy
from sim.stream_chains import handoffs
from sim.stream_order import stream_layout, stream_positions
from sim.system.plan import Plan
from workloads.ragged import slice_indices
from workloads.trace import Trace, ops_at

#: quiet-run tries at a stream's loaded ops before their success rate may stop them
FUTILE = 64
#: ops of other streams one quiet run may run beside its own (the run ends at the next); a
#: stream starts at MIN_BESIDE and doubles while its runs take every op they collected, and
#: falls back to twice what a run took when one stops early, never above MAX_BESIDE (each
#: run's scan for them then stays near what it uses; ending a run sooner changes no time,
#: only the events)
MAX_BESIDE = 1024
MIN_BESIDE = 8
#: per-(op kind, stream) tables of each op's bytes and duration alone (_per_op_alone) are
#: formed up to this many entries, or one per op where there are more ops (memory, not
#: speed: the per-op path gives the same arrays)
PAIR_TABLE_MIN = 1 << 16
#: a quiet run's links are filled in before its compiled stamp where its stream's runs may
#: load at most this many (:func:`_run_links`); else each when the stamp first meets it
#: (speed only: the same floats either way)
PREFILL_LINKS = 4
#: stamp windows without link loads by the compiled loop (sim/beside_kernel.py); False: the
#: Python loop, which gives the same floats (tests compare the two)
COMPILED_BESIDE = True
#: a stream whose run ends before anything else is scheduled moves the clock on itself instead
#: of waiting on an event (:func:`clock_ahead`); False: it always waits, which gives the same times
FAST_FORWARD = True
#: time a run in which no transfer ever shares a resource as one longest path
#: (sim/engine_dag.py); False: the event loop, which gives the same floats
CONTENTION_FREE = True
#: where the contention-free check fails, run the event loop only for the ops before the
#: contention ends, where it ends early (sim/engine_split.py); False: the event loop for
#: every op, which gives the same floats
SPLIT_RUNS = True
#: where the contention-free check and the split fail, replay each resource's sharing in one
#: compiled pass (sim/engine_shared.py); False: the event loop, which gives the same floats
SHARED_RUNS = True
#: where an op ends a run and signals an op of another stream that its stream may adopt
#: (``adopt_after``) and that stream sleeps on, the next run adopts it first instead of
#: waking that stream (:func:`lead_of`); False: that stream wakes and runs it, which gives
#: the same floats with more events
LEAD_ADOPTION = True


_NONE = np.zeros(0, dtype=np.int64)   # no adoptions in a run
#: relative slack on a stream's running sum of op durations (s) when it bounds when the
#: stream's next op on a resource may start: far above the rounding of a long running sum
SUM_SLACK = 1e-9


def runs_on_arrays(trace: Trace, plan: Plan | None) -> bool:
    """Whether :func:`run_streams` runs this trace: held as arrays, placed on several
    streams by a plan without transfers or extra waits, every stream served by one plain
    device object whose estimate is one per op kind (``Device.estimates_by_kind``)."""
    if plan is None or not trace.is_compact or plan.transfers or plan.extra_deps:
        return False
    arrays = trace.compact
    if arrays.stream is None:
        return False
    devices = {id(plan.streams.get(name)) for name in arrays.stream_names}
    dev = plan.streams.get(arrays.stream_names[0]) if arrays.stream_names else None
    return len(devices) == 1 and dev is not None and \
        dev.estimates_by_kind() and dev.holds_for_latency()


#: ops from which :func:`run_streams` lays the streams out on a second thread
THREADED_LAYOUT = 1 << 20
def _kind_costs(dev: Device, arrays, at: np.ndarray | None = None) -> list[Cost | None]:
    """One cost per op kind (None for kinds no op has), estimated in the order they first
    occur, each on a representative op placed on its stream, or the device's own where it
    has them (``Device.kind_costs``); ``at``: only the ops with these ids (ascending), e.g.
    those one of several models prices."""
    n_kinds = len(arrays.kinds)
    if at is None:
        used, first = first_occurrences(arrays.kind, n_kinds)
    else:
        used, first = first_occurrences(arrays.kind[at], n_kinds)
        first = at[first]
    table: list[Cost | None] = [None] * n_kinds
    used, first = known_kind_costs(dev, arrays, used, first, table)
    ops = ops_at(arrays, first, "")
    for op, i in zip(ops, first.tolist(), strict=True):
        op.device = arrays.stream_of(i)
    if hasattr(dev, "prefetch"):   # a device that prices shape families at once (the same
        dev.prefetch(ops)          # costs: e.g. GpuDevice's GEMMs of every KV length)
    for k, op in zip(used.tolist(), ops, strict=True):
        table[k] = dev.estimate(op)
    return table


def _cross_deps(arrays, stream: np.ndarray) -> tuple[np.ndarray, ...]:
    """The dependencies between streams (``stream``: int64 code per op): per op whether
    another stream depends on it (``signal``) and whether a dependency of it is signalled
    (``cand``); the (waiter, signalled dependency) pairs in op and dependency order with
    each op's offsets into them; the same pairs by dependency, stably, with each op's
    offsets (:mod:`sim.deps_kernel`)."""
    n = len(stream)
    ptr, idx = arrays.dep_ptr, arrays.dep_idx
    k = kernels()
    if ptr.dtype == np.int32 and idx.dtype == np.int32:
        counts, pairs = k.cross_counts_i4, k.cross_pairs_i4
        ptr, idx = np.ascontiguousarray(ptr), np.ascontiguousarray(idx)
    else:
        counts, pairs = k.cross_counts_i8, k.cross_pairs_i8
        ptr, idx = (np.ascontiguousarray(a, dtype=np.int64) for a in (ptr, idx))
    signal, cand = np.empty(n, dtype=bool), np.empty(n, dtype=bool)
    wait_at, waiter_at = np.empty(n + 1, dtype=np.int64), np.empty(n + 1, dtype=np.int64)
    total = counts(ptr, idx, stream, signal, cand, wait_at)
    waiter, waited, waited_sorted, waiter_by_waited = (np.empty(total, dtype=np.int64)
                                                       for _ in range(4))
    pairs(ptr, idx, signal, waiter, waited, waiter_at, waited_sorted, waiter_by_waited)
    return signal, cand, wait_at, waiter, waited, waiter_at, waited_sorted, waiter_by_waited


def _on_thread(fn, *args):
    """``fn(*args)`` started on a thread of its own: a Future of its result (its error
    raised by ``result()``; the pool is shut down at once, the call running on). Threads
    load here: a one-stream run does not import them."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="xpusim-deps")
    got = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return got


def run_streams(engine, trace: Trace, plan: Plan, dag: bool = True) -> Timeline:
    """:meth:`Engine.run` of a trace :func:`runs_on_arrays` accepts: the same times, costs
    and resource traffic, fewer events waited on (see the module docstring). ``dag``: try
    the longest path, the split and the compiled sharing pass (:mod:`sim.engine_dag`,
    :mod:`sim.engine_split`, :mod:`sim.engine_shared`) before the SimPy loop."""
    arrays = trace.compact
    names = arrays.stream_names
    dev = plan.streams[names[0]]
    kind = arrays.kind
    n = len(kind)
    stream = arrays.stream
    # each op's stream code as int64, for the event loop and the dependencies between streams
    # only (a run the longest path, the split or the sharing pass settles never reads it:
    # 158 MB less at the peak of a 19.8M-op run)
    stream64 = None
    env = simpy.Environment()
    streams = {name: [] for name in names}
    resources, memory_of, op_loads = engine.build_resources(env, plan, streams)
    # where a stream has a contended memory and the SimPy loop is the only way past the
    # contention-free check (SHARED_RUNS off), the dependencies between streams on a thread
    # of their own (compiled passes without the GIL) while this one prices the op kinds and
    # lays out the streams; else they are worked out only where the SimPy loop runs (a run
    # the longest path, the split or the compiled sharing pass settles needs none)
    deps = None
    if memory_of and not SHARED_RUNS:
        kernels()    # loaded here, not first by the thread
        stream64 = arrays.stream.astype(np.int64)
        deps = _on_thread(_cross_deps, arrays, stream64)
    # the ops by stream, where each stream's begin in them, each op's op before and after it
    # on its stream (-1: none); its position there only where the event loop runs. A long
    # run lays them out on a thread (a compiled pass without the GIL) while this one prices
    # the op kinds (Python: 9.9M ops, ~0.1 s of layout beside ~0.3 s of pricing)
    layout = None
    if n >= THREADED_LAYOUT:
        kernels()    # loaded here, not first by the thread
        layout = _on_thread(stream_layout, stream, len(names), False)
    table = _kind_costs(dev, arrays)
    per_kind = np.array([c.latency if c is not None else 0.0 for c in table] or [0.0])
    by_stream, bounds, prev_op, next_op, _ = layout.result() if layout is not None else \
        stream_layout(stream, len(names), positions=False)
    dram = np.array([c.dram_bytes if c is not None else 0.0 for c in table] or [0.0])
    shares = np.array([c is not None and c.detail.get("memory_share") is not None
                       for c in table] or [False])
    # per op: bytes through its stream's contended memory, how long it takes alone on its
    # resources (s) - the longest of its latency and each transfer's time at the resource's
    # full rate, so that the latest of its timeout and each transfer's timer is ``start +
    # duration`` (rounding is monotone) - and whether a quiet run must stop before it (it
    # reserves a share of the memory, or moves bytes twice through one resource: two loads
    # on one resource share it even when nothing else is in flight)
    rate_of = np.array([memory_of[nm].rate if nm in memory_of else math.inf for nm in names])
    # (and each op's latency, s)
    size_all, dur_all, stop_all, lat_all = _per_op_alone(kind, stream, per_kind, dram, shares,
                                                         rate_of)
    code_of = {nm: c for c, nm in enumerate(names)}
    loads = LoadIndex(op_loads or {}, n)
    list_of_op, load_lists = _items(loads.of_op), loads.lists

    def loads_of(i: int, absent=()):
        """Op ``i``'s link loads (its list in ``op_loads``; ``absent`` where it has none):
        read from the index's per-op codes, not the mapping (a :class:`GroupedLoads` lookup
        builds a table per op id on its first call, ~0.09 s at 10M ops)."""
        c = list_of_op[i]
        return load_lists[c] if c >= 0 else absent
    if op_loads:
        loaded_ids = loads.ids
        longest, twice = loads_alone(loads.lists)
        longest, twice = longest[loads.code], twice[loads.code]
        dur_all[loaded_ids] = np.maximum(dur_all[loaded_ids], longest)
        # two loads on one link share it even with nothing else in flight (the memory is
        # never one of the links)
        stop_all[loaded_ids] |= twice
    if CONTENTION_FREE and dag:
        times = contention_free(arrays, stream, prev_op, names, dur_all, size_all, stop_all,
                                memory_of, loads)
        prefix = None
        if times is None and SPLIT_RUNS:    # contention that ends early: the event loop
            times = split_run(                # for the ops before it only
                lambda t, p: _prefix_run(engine, t, p), trace, plan, stream, prev_op, names,
                dur_all, size_all, stop_all, memory_of, loads, resources)
            if times is not None:
                times, prefix = times[:2], times[2]
        if times is None and SHARED_RUNS:   # sharing replayed resource by resource
            share_of = np.array([c.detail["memory_share"] if c is not None and
                                 c.detail.get("memory_share") is not None else -1.0
                                 for c in table] or [-1.0])
            times = shared_run(arrays, stream, prev_op, names, lat_all, size_all,
                               share_of[kind] if (share_of >= 0).any() else None,
                               memory_of, loads, by_stream, bounds)
        if times is not None:     # timed without the SimPy loop (or it for a prefix only)
            if deps is not None:
                deps.result()
            tl = Timeline(times[0], times[1], CostList(table, kind), n)
            if prefix is not None:
                tl.engine_events, tl.lead_runs = prefix.engine_events, prefix.lead_runs
            tl.resources = resources
            tl.stream_order = (by_stream, bounds, list(names))
            return tl
    del prev_op
    if stream64 is None:
        stream64 = arrays.stream.astype(np.int64)
    position = stream_positions(by_stream, bounds)   # each op's position on its stream
    start = np.full(n, np.nan)
    end = np.full(n, np.nan)
    counter = [0, 0, 0]   # tasks completed, events waited on, runs led by an adoption
    single = np.zeros(n, dtype=bool)
    single[loads.ids] = True
    # signal: ops another stream depends on; cand: ops with a dependency signalled; per
    # such op those dependencies (waiter, waited_op: in op then dep order), per signalled op
    # the ops that wait for it (waited_sorted, waiter_by_waited: in op order), both as
    # offsets over all ops into one array (memoryviews read an element at a time): op i's
    # are [at[i], at[i + 1]) (dicts of lists took ~80 B an op). Compiled:
    # sim/deps_kernel.py
    signal, cand, wait_at_arr, waiter, waited_op, waiter_at_arr, waited_sorted, \
        waiter_by_waited = deps.result() if deps is not None else _cross_deps(arrays, stream64)
    wait_at, wait_on = _items(wait_at_arr), _items(waited_op)
    waiter_at, waiter_of = _items(waiter_at_arr), _items(waiter_by_waited)

    def waits(i: int) -> memoryview:
        """The ops of other streams op ``i`` waits for (in its dependency order)."""
        return wait_on[wait_at[i]:wait_at[i + 1]]

    # whether each op another stream waits for has been signalled (its end stamped or
    # reached), and each stream's op it sleeps on (-1: none), read by the compiled scan
    # (sim/scan_kernel.py) too; a flag per op, not a set (a set of millions of ids cost
    # ~0.7 s of growth on a 10M-op run)
    flagged_bytes = bytearray(n)        # set an element at a time (faster than numpy's)
    flagged = np.frombuffer(flagged_bytes, dtype=np.uint8)
    sleep_on = np.full(len(names), -1, dtype=np.int64)
    owner_code = _items(stream64)        # each op's stream code, read an element at a time

    def waits_yet(i: int) -> bool:
        """Whether op ``i`` still waits for an op of another stream not signalled yet."""
        for d in wait_on[wait_at[i]:wait_at[i + 1]]:
            if not flagged_bytes[d]:
                return True
        return False

    # what each stream is doing, for the other users of a resource it loads (quiet runs):
    # BUSY: no new op before st_t, then op st_op (-1: none); WAITING: waiting on op st_op's
    # dependencies; NOT_STARTED
    st_kind = np.full(len(names), NOT_STARTED, dtype=np.int64)
    st_t = np.zeros(len(names))
    st_op = np.full(len(names), -1, dtype=np.int64)
    # the same and ``sleep_on``, written an element at a time from Python (memoryviews)
    st_kind_mv, st_t_mv, st_op_mv, sleep_on_mv = (memoryview(a) for a in (st_kind, st_t, st_op,
                                                                         sleep_on))
    # a waiting stream: (the event that wakes it, the op it waits to start); where an
    # adopting stream moved it on, the position it resumes at
    sleeping: dict[str, tuple] = {}
    resume_at: dict[str, int] = {}
    load_res = loads.resources     # the links ops load, by code
    # the contended memory of each stream
    codes = {id(mem): c for c, mem in enumerate(dict.fromkeys(memory_of.values()))}
    memory_code = np.array([codes.get(id(memory_of.get(nm)), -1) for nm in names])
    # the collective each op's stream may stamp after it, or beside its next ops, and per
    # op its one dependency on another stream (sim/stream_chains.py); read by quiet runs
    # only, so not formed where no stream has a contended memory
    adopt_after = beside = only_wait = _NONE
    has_beside = np.zeros(len(names), dtype=bool)   # per stream: an op another's run may go beside
    if memory_of:
        adopt_after, beside, only_wait = handoffs(stream64, position, next_op, waiter,
                                                  waited_op, memory_code, stop_all,
                                                  wait_at_arr)
        has_beside[stream64[np.flatnonzero(beside >= 0)]] = True
    # the compiled bound's arrays (sim/bound_kernel.py): per contended resource (by code) the
    # streams that move bytes through it; per (resource, stream) the positions of the
    # stream's ops that do; per stream the running sum of its ops' durations alone (with the
    # collective each takes turns with, ``adopt_after``), by position
    # what a stream with a contended memory reads per position in its quiet runs (lane_of)
    quiet_arrays = _quiet_arrays(names, memory_of, stream, bounds, stop_all, signal, cand,
                                 single, adopt_after, only_wait, next_op)
    users = _users(names, stream, memory_of, loads)
    run_links = _run_links(stream, len(names), adopt_after, loads) if memory_of else []
    res_code = {key: rc for rc, key in enumerate(users)}
    use = _use_positions(names, stream, position, by_stream, bounds, memory_of, loads,
                         size_all, stop_all)
    bound_tables = _bound_tables(names, users, use, by_stream, bounds, dur_all, adopt_after)
    bound_arrays = (*bound_tables, st_kind, st_t, st_op, wait_at_arr, waited_op, flagged,
                    stream64, position, end, SUM_SLACK)
    checked_bound = kernels().quiet_until
    if users:        # the arrays checked once, then called unchecked
        checked_bound(0, 0, -1, 0.0, *bound_arrays)
    bound_k = getattr(checked_bound, "unchecked", checked_bound)
    kind_cost = table

    def signal_done(d: int) -> None:
        """Op ``d``, which another stream waits for, has ended now: wake a stream whose
        op has nothing else left to wait for."""
        flagged_bytes[d] = 1
        for y in waiter_of[waiter_at[d]:waiter_at[d + 1]]:
            other = names[owner_code[y]]
            sl = sleeping.get(other)
            if sl is not None and sl[1] == y and not waits_yet(y):
                del sleeping[other]
                sleep_on_mv[code_of[other]] = -1
                sl[0].succeed()

    def quiet_until(res, busy: tuple[str, ...]) -> float:
        """The earliest time a user of ``res`` other than streams ``busy`` (one or two) may
        start an op that moves bytes through ``res`` (inf: none can before ``busy[0]``
        signals one of its own ops, or none has such an op left). A stream's ops run one
        after the other, each for at least its duration alone (``dur_all``: contention only
        lengthens it), so its next op on ``res`` starts no earlier than its next op may start
        plus the durations of the ops between (less a slack for the rounding of their
        running sums). Compiled: :func:`sim.bound_kernel.quiet_until`."""
        return bound_k(res_code[id(res)], code_of[busy[0]],
                       code_of[busy[1]] if len(busy) > 1 else -1, env.now, *bound_arrays)

    def moved_on(code: int, w: int, resume: int | None) -> None:
        """Stream ``code``, asleep, now sleeps on op ``w`` (waiting for what it waits for) and
        resumes at position ``resume`` (None: where it fell asleep): another stream's run
        stamped its ops before ``w`` (adopted, beside, or a lead)."""
        other = names[code]
        sleeping[other] = (sleeping[other][0], w)
        sleep_on_mv[code] = w
        st_kind_mv[code], st_op_mv[code] = WAITING, w
        if resume is None:
            resume_at.pop(other, None)
        else:
            resume_at[other] = resume

    busy_until: dict[str, float] = {}   # a sleeping stream whose op another stream ran

    def links_alone(i: int, s: float, done_at: float, busy: tuple[str, ...],
                    bound: dict) -> bool:
        """Whether op ``i``'s link loads, started at ``s`` (s), are alone on their links
        until it ends at ``done_at``: nothing in flight, and no other user able to start
        before (``bound``: :func:`quiet_until` per resource, kept across a run)."""
        for res, nb in loads_of(i):
            if nb > 0 and (res.solo_end(nb, s) is None or
                           not done_at < bound_of(bound, res, busy)):
                return False
        return True

    def claim_links(i: int, s: float, done_at: float, busy: tuple[str, ...],
                    bound: dict) -> bool:
        """:func:`links_alone`, and where it holds :func:`count_links` (each timer computed
        once)."""
        timers = []
        for res, nb in loads_of(i):
            if nb > 0:
                timer = res.solo_end(nb, s)
                if timer is None or not done_at < bound_of(bound, res, busy):
                    return False
                timers.append((res, nb, timer))
        for res, nb, timer in timers:
            res.add_solo(nb, s, timer)
        return True

    def count_links(i: int, s: float) -> None:
        """Count op ``i``'s link loads, alone from ``s`` (s), as their timers count them."""
        for res, nb in loads_of(i):
            if nb > 0:
                res.add_solo(nb, s, res.solo_end(nb, s))

    def plain_run(name: str, k: int, lane: dict, try_loaded: bool) -> tuple[int, float]:
        """A coarsened run on a stream without a contended memory, from position ``k``: ops
        that only hold the device, stamped back to back, and ops with link loads, each
        where it is alone on its links until it ends (:func:`links_alone`; ``try_loaded``:
        else the run ends before one). It ends at an op another stream waits for, before
        an op still waiting for another stream's, and before a loaded op that is not alone
        or loads one link twice (``stops``). Between the positions that may end it for
        other reasons (``next_hard``) the ops are stamped by arrays (:func:`span_run`).
        (last position stamped, when it ends); last < k: none."""
        id_list, sig, wait, one, stops, dur, hard = lane["id_list"], lane["sig"], \
            lane["wait"], lane["one"], lane["stops"], lane["dur_items"], lane["next_hard"]
        t, p, e, m = env.now, k, k - 1, len(id_list)
        bound: dict = {}
        while p < m:
            h = hard[p]
            if h > p:   # positions p..h-1: plain ops, and loaded ops that may be alone
                f, t = span_run(name, lane, p, h, t, try_loaded, bound)
                e = p + f - 1
                if p + f < h:
                    break
                p = h
                continue
            # an op another stream waits for, one that waits, or one loading a link twice
            if p > k and wait[p] and waits_yet(id_list[p]):
                break
            i = id_list[p]
            done_at = t + dur[p]
            if one[p]:
                if not try_loaded or stops[p]:
                    break
                tries[name] += 1
                if not claim_links(i, t, done_at, (name,), bound):
                    break
                wins[name] += 1
            start[i], end[i] = t, done_at
            t, e = done_at, p
            if sig[p]:
                break
            p += 1
        return e, t

    def span_run(name: str, lane: dict, a: int, b: int, t0: float, try_loaded: bool,
                 bound: dict) -> tuple[int, float]:
        """Stamp positions ``a..b-1`` of a stream without a contended memory (none of them
        waits, signals or loads a link twice) back to back from ``t0`` (s): the running sum
        of their durations alone, each loaded op's links checked alone until it ends and
        counted as :func:`claim_links` counts them (compiled:
        :func:`sim.span_kernel.stamp_span`, which asks for each link's bound as it needs
        one). The span stops before the first loaded op that is not alone. (how many
        stamped, when the last ends)."""
        codes = lane["link_codes"] if lane["next_loaded"][a] < b else ()
        for c in codes:         # the links' state now, and the bounds this run knows
            res = load_res[c]
            link_ok[c] = not (res._left or res.reserved)
            link_rate[c] = res.rate
            got = bound.get((id(res), (name,)))
            link_bound[c] = math.nan if got is None else got
            link_moved[c], link_busy[c], link_last[c] = res.bytes_moved, res.busy_time, \
                res._last
        while True:
            f, t, want, tried, won = stamp_span(a, b, t0, *lane["span_lane"], try_loaded,
                                                *span_links, *lane["span_scratch"])
            if want < 0:
                break
            link_bound[want] = bound_of(bound, load_res[want], (name,))
        for c in codes:
            res = load_res[c]
            res.bytes_moved, res.busy_time, res._last = float(link_moved[c]), \
                float(link_busy[c]), float(link_last[c])
        tries[name] += tried
        wins[name] += won
        return f, t

    def bound_of(bound: dict, res, busy: tuple[str, ...]) -> float:
        """:func:`quiet_until` of ``res`` for streams ``busy``, kept in ``bound`` for the
        rest of a run (the other streams' states do not change while it is stamped)."""
        got = bound.get((id(res), busy))
        if got is None:
            got = bound[(id(res), busy)] = quiet_until(res, busy)
        return got

    def stamp_alone(run: np.ndarray, memory, busy: tuple[str, ...], t0: float,
                    bound: dict) -> tuple[int, float]:
        """Stamp the ops ``run`` back to back from ``t0`` (s), as long as each is alone on
        its memory and links (:func:`quiet_run`; compiled: :func:`sim.quiet_kernel.
        stamp_quiet`, which asks for the memory's bound, each link's state and bound as it
        needs them; ``bound``: :func:`quiet_until` per resource, kept across a run). (how
        many were alone, when the last of them ends)."""
        # the memory's bound: nearly every run asks
        if load_memory(memory, len(run)):
            mem_state[2] = bound_of(bound, memory, busy)
        filled = []
        while True:
            f, t, want = stamp_quiet(run, t0, *quiet_args, quiet_times)
            if want == -1:
                break
            if want == WANT_MEMORY:
                mem_state[2] = bound_of(bound, memory, busy)
                continue
            if q_ok[want] == UNKNOWN:
                fill_link(want)
                filled.append(want)
            q_bound[want] = bound_of(bound, load_res[want], busy) if q_ok[want] == 1 \
                else math.nan
        put_back(memory, filled)
        return f, t

    def load_memory(memory, n_run: int) -> bool:
        """The compiled stamps' view of ``memory`` (alone or not, its rate, no bound yet, its
        counters), and room in their time buffer for a run of ``n_run`` ops. Whether the
        memory is alone (nothing in flight, nothing reserved)."""
        nonlocal quiet_times
        ok = not (memory._left or memory.reserved)
        mem_mv[0], mem_mv[1], mem_mv[2] = 1.0 if ok else 0.0, memory.rate, math.nan
        mem_mv[3], mem_mv[4], mem_mv[5] = memory.bytes_moved, memory.busy_time, memory._last
        if n_run + 1 > len(quiet_times):
            quiet_times = np.empty(2 * n_run + 1)
            step_cache.clear()
        return ok

    def fill_link(c: int) -> None:
        """The compiled stamps' view of link ``c``: alone or not, its rate and counters."""
        res = load_res[c]
        q_ok_mv[c] = 0 if res._left or res.reserved else 1
        q_rate_mv[c] = res.rate
        q_moved_mv[c], q_busy_mv[c], q_last_mv[c] = res.bytes_moved, res.busy_time, res._last

    def put_back(memory, filled: list[int]) -> None:
        """The memory's and the links ``filled``'s counters back from the compiled stamps'
        view, and those links' state forgotten (it may change before the next run)."""
        memory.bytes_moved, memory.busy_time, memory._last = mem_mv[3], mem_mv[4], mem_mv[5]
        for c in filled:
            res = load_res[c]
            res.bytes_moved, res.busy_time, res._last = q_moved_mv[c], q_busy_mv[c], \
                q_last_mv[c]
            q_ok_mv[c] = UNKNOWN
            q_bound_mv[c] = math.nan

    def with_ops_beside(run: np.ndarray, after: list[int], ys_arr: np.ndarray, name: str,
                        memory) -> tuple[int, float]:
        """Stamp ``run`` from now while another stream's ops ``ys_arr`` (int64) run beside it:
        ``ys_arr[j]``
        starts where ``run[after[j]]`` ends, its memory traffic shared with the run's ops
        until it is done (:func:`beside_window`), and an op of the run that waits for it
        starts once it ends. The rest of the run is stamped alone (:func:`stamp_alone`).
        (how many of ``run`` were stamped, when the last ends); an op beside is kept only
        when the run reaches past its window. Where neither the run nor the ops beside load
        a link, the compiled loop (:func:`sim.beside_kernel.stamp_beside`) stamps it."""
        # the run's ops that wait for ops beside: (position in the run, index in ys)
        z_pos, z_of, wanted = _waiting_positions(run, ys_arr, waited_sorted, waiter_by_waited)
        if not COMPILED_BESIDE or (op_loads and (single[run].any() or single[ys_arr].any())):
            j, t, taken = python_beside(run, after, ys_arr.tolist(), name, memory, z_pos,
                                        z_of)
        else:
            j, t, taken = compiled_beside(run, after, ys_arr, name, memory, z_pos, z_of)
        beside_taken[0] = taken
        if not taken:
            return j, t
        counter[0] += taken
        done = ys_arr[:taken]
        ends = y_end_buf[:taken].tolist()
        waited_on = only_wait[done]
        waited_on = waited_on[waited_on >= 0]
        flagged[waited_on] = 1
        # an op beside whose waiters the run stamped is signalled now; the others as they end
        ran = np.ones(len(ys_arr), dtype=bool)
        ran[z_of[z_pos >= j]] = False
        # ... and one with a waiter outside the run as it ends
        ran[np.bincount(z_of, minlength=len(ys_arr)) < wanted] = False
        late = np.flatnonzero(~ran[:taken]).tolist()
        flagged[done[ran[:taken]]] = 1
        for q in late:
            y = int(done[q])
            engine_module._Until(env, ends[q]).callbacks.append(
                lambda _e, y=y: signal_done(y))
        codes = stream[done].tolist()
        last_of = {code: q for q, code in enumerate(codes)}
        for code, q in last_of.items():   # each stream sleeps on after its last op beside
            y = int(done[q])
            moved_on(code, int(next_op[y]), int(position[y]) + 1)
            busy_until[names[code]] = ends[q]
        return j, t

    y_end_buf = np.empty(0)
    beside_taken = [0]                        # ops beside the last run took
    beside_cap = dict.fromkeys(names, MIN_BESIDE)   # ops beside a stream's next run may collect
    # the compiled scan's scratch and its output: the positions and ops beside of a run
    moved_scratch = np.full(len(names), NOT_MOVED, dtype=np.int64)
    beside_pos = np.empty(MAX_BESIDE, dtype=np.int64)
    beside_ys = np.empty(MAX_BESIDE, dtype=np.int64)
    # the compiled scan's arguments after a stream's own: per op, then per stream and output
    scan_ops = (wait_at_arr, waited_op, flagged, beside)
    scan_streams = (next_op, stream64, sleep_on, moved_scratch, beside_pos, beside_ys)
    checked_scan = kernels().scan_run if memory_of else None
    # per link (code): the compiled spans' view of its state and counters (span_run)
    n_links = max(1, len(load_res))
    link_ok = np.zeros(n_links, dtype=np.uint8)
    link_rate, link_bound = np.ones(n_links), np.full(n_links, math.nan)
    link_moved, link_busy, link_last = np.zeros(n_links), np.zeros(n_links), np.zeros(n_links)
    span_links = (link_ok, link_rate, link_bound, link_moved, link_busy, link_last, start,
                  end)
    # its arrays are checked once per stream (lane_of), then called unchecked
    checked_span = kernels().stamp_span
    stamp_span = getattr(checked_span, "unchecked", checked_span)
    # the compiled quiet runs' view of the memory (ok, rate, bound, moved, busy, last) and of
    # each link (filled in as a run asks: UNKNOWN until then; stamp_alone)
    mem_state = np.zeros(6)
    q_ok = np.full(n_links, UNKNOWN, dtype=np.uint8)
    q_rate, q_bound = np.ones(n_links), np.full(n_links, math.nan)
    q_moved, q_busy, q_last = np.zeros(n_links), np.zeros(n_links), np.zeros(n_links)
    # the same, read and written an element at a time from Python (memoryviews: Python
    # floats and ints, a third of the time of a numpy element access)
    mem_mv, q_ok_mv, q_rate_mv, q_bound_mv, q_moved_mv, q_busy_mv, q_last_mv = (
        memoryview(a) for a in (mem_state, q_ok, q_rate, q_bound, q_moved, q_busy, q_last))
    # stamp_quiet's arguments after the run and its start, before its scratch
    quiet_args = (dur_all, size_all, loads.of_op, loads.ptr, loads.res, loads.nb, mem_state,
                  q_ok, q_rate, q_bound, q_moved, q_busy, q_last, start, end)
    quiet_times = np.empty(1024)
    run_buf = np.empty(1024, dtype=np.int64)      # a quiet run's ops and adoptions
    checked_quiet = kernels().stamp_quiet
    if memory_of:     # the arrays checked once, then called unchecked
        checked_quiet(np.empty(0, dtype=np.int64), 0.0, *quiet_args, quiet_times)
    stamp_quiet = getattr(checked_quiet, "unchecked", checked_quiet)
    # a quiet run in one compiled call (sim/step_kernel.py; its arrays checked once per
    # stream, lane_of): after the stream's own arrays, the scan's per op and per stream, then
    # the stamp's, per link code its resource code for the bounds, and the bounds' arrays
    # after ``now`` but the op ends, their durations, waits, flags and streams (the stamp's)
    link_rc = np.array([res_code.get(id(res), -1) for res in load_res] or [-1], dtype=np.int64)
    # (the bound's tables but the durations alone, which quiet_step reads as the stamp's)
    step_tail = (*bound_tables[:-1], st_kind, st_t, st_op, position, SUM_SLACK)
    checked_step = kernels().quiet_step if memory_of else None
    checked_step_at = kernels().quiet_step_at if memory_of else None
    quiet_step_at = getattr(checked_step_at, "unchecked", checked_step_at)

    def step_args(lane: dict) -> tuple:
        """quiet_step's arrays from a stream's own to the stamp's times (module docstring of
        sim/step_kernel.py), with the run's buffers as they are now (kept per stream in
        ``step_cache`` until a buffer grows)."""
        return (*lane["step_lane"], *scan_streams, adopt_after, run_buf, *quiet_args,
                quiet_times, link_rc, *step_tail)

    def step_packed(lane: dict) -> tuple:
        """(:func:`step_args`, quiet_step_at's arguments after the nine scalars: its arrays
        by address, engine_aot.step_addresses); the first keeps the arrays alive."""
        tail = step_args(lane)
        return tail, step_addresses(tail)

    step_cache: dict[int, tuple] = {}

    def compiled_beside(run: np.ndarray, after: list[int], ys: np.ndarray, name: str,
                        memory, z_pos: np.ndarray, z_of: np.ndarray) -> tuple[int, float, int]:
        """:func:`python_beside` by :func:`sim.beside_kernel.stamp_beside` (no link loads).
        (positions stamped, when the last ends, ops beside taken; their ends in
        ``y_end_buf``)."""
        nonlocal y_end_buf
        from sim.engine_aot import kernels

        stamp_beside = kernels().stamp_beside

        place_pos = np.array(after, dtype=np.int64) + 1
        order = np.lexsort((z_of, z_pos))
        z_sorted = z_pos[order]
        new_pos = np.ones(len(z_sorted), dtype=bool)
        new_pos[1:] = z_sorted[1:] != z_sorted[:-1]
        first = np.flatnonzero(new_pos)
        wait_pos = z_sorted[first]
        wait_ptr = np.append(first, len(order)).astype(np.int64)
        cuts = distinct_ints(np.concatenate((place_pos, wait_pos, [len(run)])))
        free = np.full(len(names), -math.inf)
        for other, until in busy_until.items():
            free[code_of[other]] = until
        bound: dict = {}
        limit_of = np.full(len(names), math.inf)
        for code in set(stream[ys].tolist()):
            limit_of[code] = bound_of(bound, memory, (name, names[code]))
        quiet = bound_of(bound, memory, (name,))
        rate_ok = not memory._left and not memory.reserved
        y_end_buf = np.empty(len(ys))
        j, t, taken, moved, busy, last = stamp_beside(
            run.astype(np.int64, copy=False), cuts, place_pos, ys, wait_pos, wait_ptr,
            z_of[order], env.now, lat_all, dur_all, size_all, stream64, free, rate_ok,
            memory.rate, quiet, limit_of, memory.bytes_moved, memory.busy_time, memory._last,
            start, end, y_end_buf)
        memory.bytes_moved, memory.busy_time, memory._last = moved, busy, last
        return j, t, taken

    def python_beside(run: np.ndarray, after: list[int], ys: list[int], name: str, memory,
                      z_pos: np.ndarray, z_of: np.ndarray) -> tuple[int, float, int]:
        """The loop of :func:`with_ops_beside` over the run's cut positions, in Python (ops
        with link loads). (positions stamped, when the last ends, ops beside taken; their
        ends in ``y_end_buf``)."""
        nonlocal y_end_buf
        busy = (name,)
        places = {a + 1: y for a, y in zip(after, ys, strict=True)}
        waiting: dict[int, list[int]] = {}   # run index -> the ops beside it waits for
        for p, q in sorted(zip(z_pos.tolist(), z_of.tolist(), strict=True)):
            waiting.setdefault(p, []).append(ys[q])
        cuts = sorted(set(places) | set(waiting) | {len(run)})
        t, j, y_end = env.now, 0, {}
        taken: list[float] = []
        stream_free = dict(busy_until)     # when a sleeping stream ends what it runs
        bound: dict = {}
        for cut in cuts:
            t_before = t          # where the op before ends: an op beside starts there
            if j in waiting:      # an op that waits for ops beside: not before they end
                if any(y not in y_end for y in waiting[j]):
                    break
                t = max(t, *(y_end[y] for y in waiting[j]))
            if j in places:
                y = places[j]
                # its stream must have ended what it ran before
                free = stream_free.get(names[stream[y]], -math.inf)
                got = None if free == t_before else \
                    beside_window(run, j, cut, t_before, max(t_before, free), t, y, name,
                                  memory, bound)
                if got is None:
                    break
                j, t, y_end[y] = got
                taken.append(y_end[y])
                stream_free[names[stream[y]]] = y_end[y]
            if j < cut:
                c, t = stamp_alone(run[j:cut], memory, busy, t, bound)
                j += c
                if j < cut:
                    break
        y_end_buf = np.array(taken, dtype=float)
        return j, t, len(taken)

    def beside_window(run: np.ndarray, j: int, cut: int, t_before: float, y_start: float,
                      t: float, y: int, name: str, memory,
                      bound: dict) -> tuple[int, float, float] | None:
        """Op ``y`` of another stream starts at ``y_start`` (s), beside ``run[j:cut]``
        which start at ``t`` (no earlier) one after the other: replay the memory's sharing
        (:class:`~sim.resources.PairReplay`) as the per-op engine's events would, op by op,
        until ``y``'s bytes and the current op are done; where both start at once, the
        run's op arrives first (its stream goes on as it signals ``y``'s). ``y``'s links
        must be alone until it ends. (where the run goes on, when, when ``y`` ends), or
        None where the per-op engine's order of events could differ (two changes at one
        time) or another user could start meanwhile."""
        y_bytes = float(size_all[y])
        replay = memory.pair_replay(y_bytes, y_start) if y_bytes > 0 else None
        if replay is None:
            return None
        busy = (name, names[stream[y]])
        limit = bound_of(bound, memory, busy)
        stamped: list[tuple[int, float, float]] = []
        first_stream = stream[run[0]]
        while replay.y_done is None or replay.in_flight:
            if j >= cut:
                return None
            i = int(run[j])
            if single[i] or stream[i] != first_stream:
                return None
            s, nbytes = t, float(size_all[i])
            if not replay.upto(s, y_start == t_before):
                return None
            if nbytes > 0:
                replay.arrive_op(nbytes, s)
            if replay.y_due == s:       # the run's op first, then y's
                replay.arrive_y(s)
            finish = s
            while replay.op_left is not None:
                at = replay.step()
                if at != at or at == math.inf:
                    return None
                if replay.op_left is None:
                    finish = at
            done_at = max(s + float(per_kind[kind[i]]), finish)
            if not replay.upto(done_at, False) or not done_at < limit:
                return None
            stamped.append((i, s, done_at))
            t = done_at
            j += 1
        y_done = replay.y_done
        y_end = max(y_start + float(per_kind[kind[y]]), y_done)
        for res, nb in loads_of(y):
            if nb > 0:
                timer = res.solo_end(nb, y_start)
                if timer is None:
                    return None
                y_end = max(y_end, timer)
        if not y_done < limit or (loads_of(y) and
                                  not links_alone(y, y_start, y_end, busy, bound)):
            return None
        replay.commit()
        for i, s, done_at in stamped:
            start[i], end[i] = s, done_at
        start[y], end[y] = y_start, y_end
        if loads_of(y):
            count_links(y, y_start)
        return j, t, y_end

    def quiet_run(name: str, k: int, memory, lane: dict, lead: int = -1) -> tuple[int, float]:
        """Stamp a run of ops from position ``k`` of stream ``name`` whose transfers (its
        memory's, its link loads) find every resource quiet: nothing in flight on it, and
        no other user able to start an op before the run's op ends (:func:`quiet_until`).
        Each op ends where the per-op engine ends it alone on its resources - the latest
        of its timeout and each transfer's timer, ``start + duration`` (``dur_all``),
        added in order by one ``np.cumsum`` - and each resource's bytes, busy time and
        last change are set as its timer sets them. The run ends as a coarsened run does
        (at an op another stream waits for, unless the run may stamp that stream's op:
        ``adopt_after`` in its chain, ``beside`` next to it, :func:`with_ops_beside`), and
        before an op that would not be alone or that reserves a share of the memory.
        ``lead``: an op of another stream adopted first, before position ``k`` (the op
        adopted after the one before ``k``, which ended now: :func:`lead_of`); then the run
        may be that op alone, and it is not taken when that op is not alone.
        (last position stamped, the time it and what it adopted end); last < k: none of the
        stream's own (with ``lead``: last < k - 1 when the lead was not taken either)."""
        nonlocal run_buf, quiet_times
        id_list, m = lane["id_list"], len(lane["id_list"])
        at_adoption = lane["next_adoption"]
        # the first op the run would adopt: its stream must sleep on it now (or, after a
        # lead of its stream, on the op after the lead), else the run ends where it would
        # adopt it
        if lead >= 0:   # adopted for now: its stream sleeps on, on the op after it
            lead_code = int(stream[lead])
            resumed = resume_at.get(names[lead_code])   # where an earlier adoption moved it
            moved_on(lead_code, int(next_op[lead]), int(position[lead]) + 1)
        first, cut = at_adoption[k], m
        if first < m:
            y = int(adopt_after[id_list[first]])
            sl = sleeping.get(names[stream[y]])
            if sl is None or sl[1] != y or names[stream[y]] in busy_until:
                cut = first
        # the ops the run may take, by the checks that do not depend on time (jumping
        # between the positions that may end it: sim/stream_chains.py, the rest are plain,
        # or adoptions after the run's first, or waits for what it adopts), its ops with
        # their adoptions, their stamp (each alone on its memory and links, its bounds
        # computed as :func:`bound_of` gives them) and the adoptions it took: one compiled
        # call (sim/step_kernel.py), which returns early for ops beside (stamped here), a
        # buffer to grow or a link's state
        load_memory(memory, 0)
        filled = list(lane["quiet_links"])
        for c in filled:
            fill_link(c)
        mem_rc, own, now = res_code[id(memory)], code_of[name], env.now
        packed = step_cache.get(id(lane))
        if packed is None:
            packed = step_cache[id(lane)] = step_packed(lane)
        while True:
            status, e, last_adopts, count, f, t, took, y, extra = quiet_step_at(
                k, m, cut, first, lead, beside_cap[name], now, mem_rc, own, *packed[1])
            if status == STEP_WANT:
                fill_link(extra)
                filled.append(extra)
            elif status == STEP_GROW:
                run_buf, quiet_times = np.empty(extra, dtype=np.int64), np.empty(extra)
                step_cache.clear()     # (their arrays kept until here: the old buffers)
                packed = step_cache[id(lane)] = step_packed(lane)
            else:
                break
        put_back(memory, filled)
        if status == STEP_NONE:
            return e, now
        if status == STEP_BESIDE:
            return with_beside(name, k, e, last_adopts, count, first, lane, memory)
        if f == 0:
            if lead < 0:
                return k - 1, now
            moved_on(lead_code, lead, resumed)   # not taken: its stream sleeps on it again
            return k - 2, now
        if lead >= 0:   # taken: signalled (flagged by the call)
            f -= 1
            counter[0] += 1
        if took:     # what it adopted: signalled; their stream sleeps on, after the last
            counter[0] += took
            moved_on(int(stream[y]), int(next_op[y]), int(position[y]) + 1)
        return k + f - took - 1, t

    def with_beside(name: str, k: int, e: int, last_adopts: int, count: int, first: int,
                    lane: dict, memory) -> tuple[int, float]:
        """The rest of :func:`quiet_run` where its run from position ``k`` to ``e`` goes
        beside ``count`` ops of other streams (``beside_pos``/``beside_ys``;
        ``last_adopts``: whether the run adopts at ``e``; ``first``: its first adoption's
        position), by :func:`with_ops_beside`. A run after a lead has no ops beside."""
        ids, adopt_at = lane["ids"], lane["adoption_at"]
        upto = e if last_adopts else e - 1     # the last position whose adoption it may take
        run = ids[k:e + 1]
        if first <= upto:
            lo = int(adopt_at.searchsorted(k))
            hi = int(adopt_at.searchsorted(upto, "right"))
            at = adopt_at[lo:hi] - k + 1
            xs = run[at - 1]
            ys = adopt_after[xs]
            run = _inserted(run, at, ys)
        else:
            at = xs = ys = _NONE
        # where each op run beside goes: after its op's place in the run
        beside_at, beside_of = beside_pos[:count] - k, beside_ys[:count].copy()
        after = (beside_at + at.searchsorted(beside_at, "right")).tolist()
        f, t = with_ops_beside(run, after, beside_of, name, memory)
        got, wanted = beside_taken[0], count
        beside_cap[name] = min(MAX_BESIDE, 2 * wanted if got == wanted else
                               max(MIN_BESIDE, 2 * got))
        if f == 0:
            return k - 1, env.now
        took = int(np.count_nonzero(at + np.arange(len(at)) < f)) if len(at) else 0
        if took:    # what it adopted: signalled; their stream sleeps on, after the last
            flagged[xs[:took]] = 1
            flagged[ys[:took]] = 1
            y = int(ys[took - 1])
            counter[0] += took
            moved_on(int(stream[y]), int(next_op[y]), int(position[y]) + 1)
        return k + f - took - 1, t

    def lane_of(ids: np.ndarray, with_memory: bool) -> dict:
        """What a stream's process reads of its ops: ids and flags. Without a memory, for
        :func:`plain_run`: durations alone, ``next_hard`` (per position ``p`` the first
        position ``>= p`` that signals, waits or loads a link twice; the length where none
        is left) and the ops' link loads as arrays
        (:meth:`~sim.load_index.LoadIndex.table`). With a memory, for
        :func:`quiet_run`: the positions of ops after which it may adopt another stream's
        op (``adoption_at``), the first of them and the first position that may end a run
        from each position (``next_adoption``, ``next_block``), and per position whether
        the run must stop before it (``stops``), end at it (``ends_run``: another stream
        waits for it, and the run cannot adopt that op unless it is its first adoption)
        or check what it waits for (``waits_left``: not only what the run adopted just
        before it)."""
        m = len(ids)
        if not with_memory:     # plain runs: spans between the positions that may end them
            stops, sig, one = stop_all[ids], signal[ids], single[ids]
            hard = np.flatnonzero(sig | cand[ids] | (one & stops))
            dur = dur_all[ids]
            lane = {"ids": ids, "id_list": _items(ids), "sig": _items(sig),
                    "wait": _items(cand[ids]), "one": _items(one), "stops": _items(stops),
                    "dur": dur, "dur_items": _items(dur),
                    "next_hard": _items(_next_at(hard, m))}
            lane.update(loads.table(ids, one))
            # what the compiled spans read: the links the stream loads, the next loaded
            # position from each, the stream's arrays
            lane["link_codes"] = distinct_ints(lane["load_res"]).tolist()
            lane["next_loaded"] = _items(_next_at(lane["loaded_at"], m))
            lane["span_lane"] = (dur, ids, lane["loaded_at"], lane["load_ptr"],
                                 lane["load_pos"], lane["load_res"], lane["load_nb"])
            # scratch: a span's running sum and its loads' timers
            lane["span_scratch"] = (np.empty(m + 1), np.empty(len(lane["load_res"]) + 1))
            checked_span(0, 0, 0.0, *lane["span_lane"], False, *span_links,
                         *lane["span_scratch"])    # an empty span: the arrays checked
            return lane
        # arrays: a quiet run reads only the positions that may end it (an adoption that
        # does not follow on from the one before it, the op after that one on the same
        # stream, needs its stream asleep on it: a run ends there); compiled:
        # sim/lane_kernel.py
        # sim/lane_kernel.py, for every such stream at once (``quiet_arrays``)
        ids = np.ascontiguousarray(ids, dtype=np.int64)   # as the compiled loops read them
        code = int(stream[ids[0]]) if m else 0
        lo, hi = int(bounds[code]), int(bounds[code + 1])
        per_op = {key: quiet_arrays[key][lo:hi] for key in (
            "stops", "sig", "wait", "one", "ends_run", "waits_left")}
        lane = {"ids": ids, "id_list": ids, **per_op,
                "adoption_at": quiet_arrays["adopt_at"][lo:lo + quiet_arrays["n_adopt"][code]],
                "next_block": quiet_arrays["next_block"][lo + code:hi + code + 1],
                "next_adoption": quiet_arrays["next_adoption"][lo + code:hi + code + 1],
                "quiet_links": run_links[code] if m else []}
        # what the compiled scan reads (flags as bytes), checked once here
        lane["scan_lane"] = (lane["next_block"], *(
            np.ascontiguousarray(lane[key]).view(np.uint8)
            for key in ("stops", "waits_left", "ends_run")), ids, *scan_ops)
        checked_scan(m, m, m, m, *lane["scan_lane"], 0, *scan_streams)   # from the end
        lane["step_lane"] = (*lane["scan_lane"][:5], lane["adoption_at"], *scan_ops)
        checked_step(m, m, m, m, -1, 0, 0.0, 0, 0, *step_args(lane))   # from the end: none
        if m and has_beside[stream[ids[0]]]:    # runs read a position per op run beside
            lane.update({key: _items(lane[key]) for key in (
                "id_list", "sig", "wait", "one", "stops", "ends_run", "waits_left",
                "next_block", "next_adoption")})
        return lane

    def lead_of(name: str, e: int, lane: dict) -> int:
        """Whether the op at position ``e`` of stream ``name`` (with a memory), which ended
        now, signals an op ``y`` of another stream that the stream may adopt before its next
        op (``adopt_after``): ``y``'s stream sleeps on it, and the next op waits for nothing
        else not yet signalled. Then the op is signalled without waking ``y``'s stream
        (nothing else waits for it) and ``y`` is the lead of the stream's next quiet run
        (:func:`quiet_run`, which wakes that stream when it does not take ``y``). 1 where it
        may, else -1 (the caller signals the op as usual)."""
        id_list = lane["id_list"]
        x = id_list[e]
        y = int(adopt_after[x])
        if y < 0 or e + 1 >= len(id_list) or not LEAD_ADOPTION:
            return -1
        other = names[stream[y]]
        sl = sleeping.get(other)
        if sl is None or sl[1] != y or other in busy_until:
            return -1
        if any(d != y and not flagged_bytes[d] for d in waits(id_list[e + 1])):
            return -1
        flagged_bytes[x] = 1
        return 1

    def op_stream(name: str, ids: np.ndarray) -> Generator:
        memory = memory_of.get(name)
        m = len(ids)
        lane = lane_of(ids, memory is not None)
        id_list, sig, wait, one = lane["id_list"], lane["sig"], lane["wait"], lane["one"]
        batch = memory is None
        own = code_of[name]
        k, lead = 0, -1
        while k < m:
            i = id_list[k]
            if lead >= 0:   # the op before k signalled an op its stream sleeps on: adopt it
                x, lead = id_list[k - 1], -1
                e, t = quiet_run(name, k, memory, lane, int(adopt_after[x]))
                if e >= k - 1:      # taken, and positions k..e after it
                    counter[1] += 1
                    counter[2] += 1
                    st_kind_mv[own], st_t_mv[own], st_op_mv[own] = \
                        BUSY, t, id_list[e + 1] if e + 1 < m else -1
                    if not clock_ahead(env, t):
                        yield engine_module._Until(env, t)
                    counter[0] += e - k + 1
                    if e >= k and sig[e]:
                        lead = lead_of(name, e, lane)
                        if lead < 0:
                            signal_done(id_list[e])
                    k = e + 1
                    continue
                signal_done(x)
            if wait[k] and waits_yet(i):
                counter[1] += 1
                st_kind_mv[own], st_op_mv[own] = WAITING, i
                sleeping[name] = (env.event(), i)
                sleep_on_mv[own] = i
                yield sleeping[name][0]
                k = resume_at.pop(name, k)    # a stream that adopted ops moved it on
                until = busy_until.pop(name, None)
                if until is not None and until > env.now:   # still running one of them
                    counter[1] += 1
                    yield engine_module._Until(env, until)
                continue
            e, loaded = -1, one[k]
            try_loaded = tries[name] < FUTILE or wins[name] * 10 >= tries[name]
            if batch:   # ops that only hold the device, and loaded ops alone on their links
                e, t = plain_run(name, k, lane, try_loaded)
            elif not loaded or try_loaded:
                tries[name] += loaded
                e, t = quiet_run(name, k, memory, lane)
                wins[name] += loaded and e >= k
            if e >= k:   # positions k..e stamped: one event until the last one ends
                counter[1] += 1
                st_kind_mv[own], st_t_mv[own], st_op_mv[own] = \
                    BUSY, t, id_list[e + 1] if e + 1 < m else -1
                if not clock_ahead(env, t):
                    yield engine_module._Until(env, t)
                counter[0] += e - k + 1
                if sig[e]:
                    lead = lead_of(name, e, lane) if not batch else -1
                    if lead < 0:
                        signal_done(id_list[e])
                k = e + 1
                continue
            cost = kind_cost[kind[i]]
            loads = loads_of(i, None)
            share = cost.detail.get("memory_share") if memory is not None else None
            start[i] = env.now
            st_kind_mv[own], st_t_mv[own], st_op_mv[own] = \
                BUSY, env.now + cost.latency, id_list[k + 1] if k + 1 < m else -1
            yield from occupy(env, cost.latency, loads, memory, cost.dram_bytes, share)
            end[i] = env.now
            counter[0] += 1
            counter[1] += 1
            if sig[k]:
                signal_done(i)
            k += 1
        st_kind_mv[own], st_t_mv[own], st_op_mv[own] = BUSY, math.inf, -1

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
    tl.lead_runs = counter[2]
    tl.resources = resources
    tl.stream_order = (by_stream, bounds, list(names))
    return tl


def _prefix_run(engine, trace: Trace, plan: Plan) -> Timeline:
    """The event loop's timeline of a trace's first ops (:mod:`sim.engine_split`), the
    engine's memories left as the whole run set them."""
    memories = engine.memories
    try:
        return run_streams(engine, trace, plan, dag=False)
    finally:
        engine.memories = memories


def _waiting_positions(run: np.ndarray, ys: np.ndarray, keys: np.ndarray, values: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run's ops that wait for ops ``ys`` beside it: (their positions in ``run``, the
    index in ``ys`` of the op each waits for, one pair per such wait; per op of ``ys``, how
    many ops wait for it in all). ``values[j]`` waits for ``keys[j]`` (``keys`` sorted)."""
    lo = np.searchsorted(keys, ys, "left")
    count = np.searchsorted(keys, ys, "right") - lo
    total = int(count.sum())
    if not total or not len(run):
        return _NONE, _NONE, count
    of = np.repeat(np.arange(len(ys), dtype=np.int64), count)
    z = values[slice_indices(lo, count)]
    order = np.argsort(run, kind="stable")
    at = np.minimum(np.searchsorted(run[order], z), len(run) - 1)
    found = run[order][at] == z
    return order[at[found]].astype(np.int64), of[found], count


def _items(values: np.ndarray) -> memoryview:
    """A 1-d int, bool or float array read an element at a time as Python ints / bools /
    floats: a memoryview of it (no copy; half the time of a numpy element read, 8 B or 1 B
    an element where ``tolist`` keeps a Python object per element)."""
    return memoryview(np.ascontiguousarray(values))


def _inserted(run: np.ndarray, at: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.insert(run, at, values)`` for increasing, distinct ``at`` (a few numpy calls, not
    ``np.insert``'s argument handling: runs are short and many)."""
    out = np.empty(len(run) + len(at), dtype=run.dtype)
    pos = at + np.arange(len(at))
    keep = np.ones(len(out), dtype=bool)
    keep[pos] = False
    out[pos] = values
    out[keep] = run
    return out


def _next_at(at: np.ndarray, m: int) -> np.ndarray:
    """Per position ``p`` in ``0..m``, the first of the sorted positions ``at`` that is
    ``>= p`` (``m`` where none is): each of them (and ``m``) repeated over the positions
    since the one before it (no search; 1.2x a running minimum's speed where half the
    positions are marked, 15x where 1% are)."""
    ends = np.append(at, m).astype(np.int64, copy=False)
    return np.repeat(ends, np.diff(ends, prepend=-1))


def clock_ahead(env: simpy.Environment, t: float) -> bool:
    """Move ``env``'s clock to ``t`` (s) at once where nothing is scheduled before or at
    ``t`` (SimPy's queue: the event the process would wait on would be the next one popped,
    so it would resume at ``t`` with nothing run between; at a tie the events queued first
    run first, so a tie waits). Whether it did; the caller waits on an event otherwise (a
    SimPy without these internals, or FAST_FORWARD off: always)."""
    queue = getattr(env, "_queue", None)
    if queue is None or (queue and queue[0][0] <= t) or not FAST_FORWARD:
        return False
    env._now = t
    return True


def _quiet_arrays(names, memory_of: dict, stream: np.ndarray, bounds: np.ndarray,
                  stop_all: np.ndarray, signal: np.ndarray,
                  cand: np.ndarray, single: np.ndarray, adopt_after: np.ndarray,
                  only_wait: np.ndarray, next_op: np.ndarray) -> dict[str, np.ndarray]:
    """The quiet-run arrays of every stream with a contended memory (``memory_of``), each
    stream's at its ops' range of the stream order (``bounds``; the ``m + 1`` long ones at
    ``bounds[s] + s``), from one compiled pass (:func:`sim.lane_kernel.quiet_lanes`, which
    documents them); empty where no stream has one."""
    if not memory_of:
        return {}
    n = len(stream)
    with_memory = np.array([nm in memory_of for nm in names], dtype=bool)
    out = {key: np.empty(n, dtype=bool)
           for key in ("stops", "sig", "wait", "one", "ends_run", "waits_left")}
    out.update(next_block=np.empty(n + len(names), dtype=np.int64),
               next_adoption=np.empty(n + len(names), dtype=np.int64),
               adopt_at=np.empty(n, dtype=np.int64),
               n_adopt=np.empty(len(names), dtype=np.int64))
    kernels().quiet_lanes(np.ascontiguousarray(stream, dtype=np.int32), bounds, with_memory,
                          stop_all, signal, cand, single, adopt_after, only_wait, next_op,
                          *(out[key] for key in ("stops", "sig", "wait", "one", "ends_run",
                                                 "waits_left", "next_block", "next_adoption",
                                                 "adopt_at", "n_adopt")))
    return out


def _run_links(stream: np.ndarray, n_streams: int, adopt_after: np.ndarray,
               loads: LoadIndex) -> list[list[int]]:
    """Per stream code: the link codes (in ``loads.resources``) its quiet runs may load - its
    ops' loads and those of the streams whose ops it adopts (``adopt_after``, -1: none; per
    op, as long as ``stream``) - or none where more than :data:`PREFILL_LINKS` (then each
    is filled when a run meets it)."""
    links: list[set[int]] = [set() for _ in range(n_streams)]
    for c, code, _ in loads.by_list(stream):
        links[code].update(loads.res[loads.ptr[c]:loads.ptr[c + 1]].tolist())
    if len(adopt_after) == len(stream):
        xs = np.flatnonzero(adopt_after >= 0)
        pairs = distinct_ints(stream[xs].astype(np.int64) * n_streams
                              + stream[adopt_after[xs]])
        own = [set(x) for x in links]
        for pair in pairs.tolist():
            links[pair // n_streams] |= own[pair % n_streams]
    return [sorted(x) if len(x) <= PREFILL_LINKS else [] for x in links]


def _per_op_alone(kind: np.ndarray, stream: np.ndarray, per_kind: np.ndarray,
                  dram: np.ndarray, shares: np.ndarray, rate_of: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per op: its bytes through its stream's contended memory (0 where the stream has none:
    ``rate_of`` inf), its duration alone (s; the longest of its latency ``per_kind`` and
    its bytes at the memory's rate ``rate_of``, B/s), whether it reserves a share of the
    memory (``shares``) and its latency (s). The first three are a function of (kind,
    stream), so they are worked out once per pair and gathered per op, with the latency,
    by one compiled pass over the ops (:func:`sim.pair_kernel.gather_pairs`; numpy's
    gathers where the codes are not 32-bit)."""
    n_streams = len(rate_of)
    if len(per_kind) * n_streams > max(len(kind), PAIR_TABLE_MIN):   # few ops a pair: per op
        with_memory = np.isfinite(rate_of)[stream]
        size = np.where(with_memory, dram[kind], 0.0)
        dur = per_kind[kind]
        moving = size > 0
        dur[moving] = np.maximum(dur[moving], size[moving] / rate_of[stream[moving]])
        return size, dur, shares[kind] & with_memory, per_kind[kind]
    with_memory = np.isfinite(rate_of)[None, :]
    size_tab = np.where(with_memory, dram[:, None], 0.0)
    lat_tab = np.broadcast_to(per_kind[:, None], size_tab.shape)
    dur_tab = np.where(size_tab > 0, np.maximum(lat_tab, size_tab / rate_of[None, :]),
                       lat_tab)
    stop_tab = shares[:, None] & with_memory
    if kind.dtype == stream.dtype == np.int32 and kind.flags.c_contiguous and \
            stream.flags.c_contiguous:
        from sim.engine_aot import kernels

        n = len(kind)
        size, dur, lat = np.empty(n), np.empty(n), np.empty(n)
        stop = np.empty(n, dtype=bool)
        kernels().gather_pairs(kind, stream, n_streams, size_tab.ravel(), dur_tab.ravel(),
                               np.ascontiguousarray(stop_tab).ravel(),
                               np.ascontiguousarray(per_kind, dtype=np.float64), size, dur,
                               stop, lat)
        return size, dur, stop, lat
    pair = kind.astype(np.int64) * n_streams + stream
    return size_tab.ravel()[pair], dur_tab.ravel()[pair], stop_tab.ravel()[pair], \
        per_kind[kind]


def _use_positions(names, stream: np.ndarray, position: np.ndarray, by_stream: np.ndarray,
                   bounds: np.ndarray, memory_of: dict, loads: LoadIndex,
                   size_all: np.ndarray, stop_all: np.ndarray
                   ) -> dict[tuple[int, str], np.ndarray]:
    """Per (contended resource by ``id``, stream name): the sorted positions on that stream of
    its ops that move bytes through the resource (a memory's: those with DRAM bytes, and
    those a quiet run must stop before, ``stop_all``; a link's: those whose loads name it
    with bytes). ``by_stream``, ``bounds``: the ops in stream and position order, where each
    stream's begin (:mod:`sim.stream_order`)."""
    out: dict[tuple[int, str], np.ndarray] = {}
    if memory_of:   # (and those that reserve a share of it: they slow what is in flight)
        # by position on each stream: ``by_stream`` lists a stream's ops in position order
        moving = ((size_all > 0) | stop_all)[by_stream]
    for code, name in enumerate(names):
        mem = memory_of.get(name)
        if mem is not None:
            out[(id(mem), name)] = np.flatnonzero(moving[bounds[code]:bounds[code + 1]])
    found: dict[tuple[int, str], list[np.ndarray]] = {}
    for c, code, ids in loads.by_list(stream):
        for link in {id(res) for res, nb in loads.lists[c] if nb > 0}:
            found.setdefault((link, names[code]), []).append(position[ids])
    for key, parts in found.items():
        if key in out:
            parts.append(out[key])
        out[key] = distinct_ints(np.concatenate(parts))
    return out


def _users(names, stream: np.ndarray, memory_of: dict, loads: LoadIndex
           ) -> dict[int, set[str]]:
    """Per contended resource (by ``id``): the streams whose ops move bytes through it (a
    memory's streams, the streams of the ops whose link loads name it)."""
    out: dict[int, set[str]] = {}
    for name, mem in memory_of.items():
        out.setdefault(id(mem), set()).add(name)
    for c, code, _ in loads.by_list(stream):
        for res, _ in loads.lists[c]:
            out.setdefault(id(res), set()).add(names[code])
    return out


def _bound_tables(names, users: dict[int, set[str]], use: dict[tuple[int, str], np.ndarray],
                  by_stream: np.ndarray, bounds: np.ndarray, dur_all: np.ndarray,
                  adopt_after: np.ndarray) -> tuple:
    """The resource and stream tables :func:`sim.bound_kernel.quiet_until` reads: per
    resource (codes in ``users``' order) its users' stream codes (``users_ptr``,
    ``users``), per (resource, stream) its positions using the resource (``use_ptr`` into
    ``use_pos``; ``use``: :func:`_use_positions`), the number of streams, per stream the
    running sum by position, from 0 (``cum_ptr`` into ``cum``), of its ops' durations alone
    and of the collective each takes turns with (``adopt_after``, where formed: that
    collective waits for the op and the stream's next op waits for it, so the next op starts
    no earlier than both have run; compiled, :func:`sim.bound_kernel.stream_sums`), the ops
    by stream (``by_stream``: stream ``s``'s op at
    position ``p`` is ``by_stream[cum_ptr[s] - s + p]``, its sums being one longer than its
    ops) and each op's duration alone (``dur_all``)."""
    code_of = {nm: c for c, nm in enumerate(names)}
    users_ptr, flat_users = flat_rows([sorted(code_of[nm] for nm in streams)
                                       for streams in users.values()])
    use_ptr, use_pos = flat_rows([use.get((key, nm), _NONE) for key in users for nm in names])
    by_stream = np.ascontiguousarray(by_stream, dtype=np.int64)
    dur_all = np.ascontiguousarray(dur_all, dtype=np.float64)
    bounds = np.ascontiguousarray(bounds, dtype=np.int64)
    cum = np.empty(len(by_stream) + len(names))
    kernels().stream_sums(by_stream, bounds, dur_all,
                          np.ascontiguousarray(adopt_after, dtype=np.int64), cum)
    cum_ptr = bounds[:-1] + np.arange(len(names), dtype=np.int64)
    return users_ptr, flat_users, use_ptr, use_pos, len(names), cum_ptr, cum, by_stream, \
        dur_all
