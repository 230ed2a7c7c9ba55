"""A planned run of op objects (its tensors moved between tiers, units beside the device,
shared memories and links), timed without SimPy's event loop where it can be.

A placement that keeps weights or the KV cache on another tier (host DDR, a CXL card) has its
plan move them on copy streams (:class:`~sim.system.plan.Transfer`), the ops waiting for the
transfers they read (``extra_deps``) while the compute stream's ops and the transfers share
the device's memory; an NPU+PIM device runs its PIM unit's ops on a stream of their own, each
reserving a share of the memory the NPU's ops move their bytes through.
:func:`sim.shared_kernel.shared_times` replays such sharing bit for bit (each resource's
:class:`~sim.resources.SharedBandwidth` arithmetic, in time order); here the run is put in its
terms:

* each op is a task on its stream, with its latency, its link loads and its DRAM bytes
  through its stream's memory (what the event engine's ``op_stream`` does with it), or the
  share of that memory it reserves while it runs (a PIM unit's ``memory_share``);
* each transfer is two tasks on its copy stream, in the order the stream issues them
  (anchor, then id): its latency alone, then its loads, which arrive together once the
  latency has passed (the event engine's ``copy_stream``: a timeout, then the loads' events);
* an op waits for its dependencies and for the transfers the plan names (their loads' task),
  a transfer for its dependencies.

Where the pass finishes, every start and end and each resource's bytes, busy time, last
change and reserved share are the event engine's (tests/test_engine_planned.py); where it
gives up (an order of events at one time it cannot be sure of, more transfers in flight on a
resource than it holds) the caller runs the event engine. A device that does not hold for its
latency (an async host) is left to it too. Ops hosted on another component (attention on the
host CPU or a computational drive) are tasks of that component's stream, priced by its model.
:func:`run_planned_arrays` runs a trace held as arrays the same way (its plan from the arrays:
placements, hosted ops), each stream's model pricing one op per kind, no op object made.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import simpy

from sim.columns import first_occurrences
from sim.devices.base import Device
from sim.engine import CostList, Timeline
from sim.engine_shared import shared_run
from sim.load_index import LoadIndex
from sim.memory_hint import expect
from sim.system.grouped_loads import GroupedLoads
from sim.system.transfer_rows import TransferRows, as_rows
from sim.system.wait_table import WaitTable

#: bytes per task (ops, then each transfer's two) of the tables a planned run's pass holds at
#: once, counted from the code below and sim/engine_shared.py: the latency, bytes, tasks by
#: stream, task before, memory and link-load index per task and the start and end (8 B
#: each), the stream code and dependency offset (4 B each); asked for before they are made
#: (:func:`sim.memory_hint.expect`)
PLANNED_BYTES_PER_TASK = 10 * 8 - 2 * 4

if TYPE_CHECKING:
    from sim.engine import Engine
    from sim.system.plan import Plan
    from workloads.trace import Trace


def run_planned(engine: Engine, trace: Trace, plan: Plan) -> Timeline | None:
    """The :class:`Timeline` of ``trace`` under ``plan`` from one pass of
    :func:`~sim.shared_kernel.shared_times`, or None where the event engine must run it."""
    ops = trace.ops
    n, transfers = len(ops), as_rows(plan.transfers)
    m = len(transfers)
    if not n or not transfers.positional(n):
        return None
    devices = plan.streams
    stream_of = [op.device or engine.default for op in ops]
    ids = [op.id for op in ops]
    streams: dict[str, list[int]] = {}
    for name, i in zip(stream_of, ids, strict=True):
        got = streams.get(name)
        if got is None:
            if name not in devices:
                return None   # the event engine raises its error
            got = streams[name] = []
        got.append(i)
    names = list(streams)
    code = {name: k for k, name in enumerate(names)}
    for name in names:   # each stream's model: one that holds for its latency
        if not devices[name].holds_for_latency():
            return None
    # task ids: ops 0..n-1; transfer j: its latency n + 2j, its loads n + 2j + 1
    for name, tasks in copy_tasks(transfers, n).items():
        if name not in code:
            code[name] = len(names)
            names.append(name)
            streams[name] = []
        streams[name] += tasks.tolist()
    env_resources, memory_of, op_loads = engine.build_resources(simpy.Environment(), plan, streams)
    if not isinstance(op_loads, dict):
        return None
    size = np.zeros(n + 2 * m)
    lat = np.zeros(n + 2 * m)
    share = np.full(n + 2 * m, -1.0)
    arrays = trace.arrays
    costs = _costs(devices, stream_of, ops, arrays.kind if arrays is not None else None)
    at = np.array(ids, dtype=np.int64)
    lat[at] = np.fromiter((c.latency for c in costs), dtype=np.float64, count=n)
    size[at] = np.fromiter((c.dram_bytes for c in costs), dtype=np.float64, count=n)
    # a unit inside the memory (PIM) reserves a share of it
    share[at] = np.fromiter((-1.0 if (x := c.detail.get("memory_share")) is None else x
                             for c in costs), dtype=np.float64, count=n)
    loads = _transfer_tasks(transfers, n, lat, op_loads, env_resources)
    ptr, idx = _dependencies(ops, arrays, transfers, plan.extra_deps, n)
    by_stream = np.fromiter((i for s in streams.values() for i in s), dtype=np.int64,
                            count=n + 2 * m)
    bounds = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum([len(streams[name]) for name in names], out=bounds[1:])
    return _timed(names, by_stream, bounds, ptr, idx, lat, size, share, memory_of, loads,
                  costs, transfers, env_resources)


def run_planned_arrays(engine: Engine, trace: Trace, plan: Plan) -> Timeline | None:
    """:func:`run_planned` of a trace held as arrays (its ops' streams ``arrays.stream``, a
    plan from :func:`sim.system.array_plan.streams_plan`): the same tasks, dependencies,
    loads and pass, with the ops' latencies, bytes and shares gathered per op kind, so no op
    object is made; None where the caller must run the ops as objects (a stream's model that
    prices op by op, or the pass gives up)."""
    from sim.stream_order import stream_layout

    arrays = trace.compact
    n, transfers = len(arrays), as_rows(plan.transfers)
    m = len(transfers)
    names = list(arrays.stream_names)
    devices = plan.streams
    if not n or arrays.stream is None or not transfers.positional(n) \
            or any(nm not in devices for nm in names):
        return None
    if not all(devices[nm].estimates_by_kind() for nm in names):
        return None
    copies = copy_tasks(transfers, n)
    names += [nm for nm in copies if nm not in names]
    if not all(devices[nm].holds_for_latency() for nm in names):
        return None
    expect((n + 2 * m) * PLANNED_BYTES_PER_TASK)
    empty = np.zeros(0, dtype=np.int64)
    streams = {nm: copies.get(nm, empty) for nm in names}
    # the tasks by stream: the ops by stream (op order), then each copy stream's transfers'
    # two tasks; each task's task before on its stream, the ops' first. The ops' parts are
    # written in place (no op-long copy of either: 158 MB less at the peak of a 9.9M-op run)
    n_ops_streams = len(arrays.stream_names)
    rest = np.concatenate([empty] + [streams[nm] for nm in names[n_ops_streams:]])
    by_stream = np.empty(n + len(rest), dtype=np.int64)
    by_stream[n:] = rest
    del rest
    prev = np.empty(n + 2 * m, dtype=np.int64)
    _, op_bounds, _, _, _ = stream_layout(arrays.stream, n_ops_streams, positions=False,
                                          by_stream=by_stream[:n], prev=prev[:n])
    env_resources, memory_of, op_loads = engine.build_resources(simpy.Environment(), plan,
                                                                streams)
    table, kind = _model_costs(devices, arrays)
    lat = np.zeros(n + 2 * m)
    size = np.zeros(n + 2 * m)
    # per kind, gathered into the task columns in place (no op-long temporaries but one
    # copy of the kind codes as native ints, which np.take would make per column)
    at = kind.astype(np.intp, copy=False)
    np.take(np.array([c.latency if c is not None else 0.0 for c in table]), at, out=lat[:n])
    np.take(np.array([c.dram_bytes if c is not None else 0.0 for c in table]), at,
            out=size[:n])
    per_kind = np.array([-1.0 if c is None or c.detail.get("memory_share") is None
                         else c.detail["memory_share"] for c in table])
    share = None   # (no kind reserves a share: none, as the pass reads it)
    if (per_kind >= 0).any():
        share = np.full(n + 2 * m, -1.0)
        np.take(per_kind, at, out=share[:n])
    del at
    loads = _transfer_tasks(transfers, n, lat, op_loads, env_resources)
    ptr, idx = _dependencies(None, arrays, transfers, plan.extra_deps, n)
    bounds = np.concatenate((op_bounds.astype(np.int64), op_bounds[-1] + np.cumsum(
        [len(streams[nm]) for nm in names[n_ops_streams:]], dtype=np.int64)))
    tl = _timed(names, by_stream, bounds, ptr, idx, lat, size, share, memory_of, loads,
                CostList(table, kind), transfers, env_resources,
                (arrays.stream, prev, n_ops_streams))
    if tl is not None:
        tl.stream_order = (by_stream[:n], op_bounds, list(arrays.stream_names))
    return tl


def copy_tasks(transfers: TransferRows, n: int) -> dict[str, np.ndarray]:
    """Each copy stream's tasks in the order it issues its transfers (anchor, then id),
    streams in the order they first occur there: transfer ``j`` (id ``n + j``) is its
    latency task ``n + 2j`` then its loads task ``n + 2j + 1``."""
    if not len(transfers):
        return {}
    ids = transfers.column("id")
    order = np.lexsort((ids, transfers.column("anchor")))
    labels, route = transfers.route_column("stream")
    distinct = list(dict.fromkeys(labels))
    of_route = np.array([distinct.index(label) for label in labels], dtype=np.int64)
    code = of_route[route][order]
    out = {}
    for c in first_occurrences(code, len(distinct))[0].tolist():
        j = ids[order[code == c]] - n
        tasks = np.empty(2 * len(j), dtype=np.int64)
        tasks[0::2] = n + 2 * j
        tasks[1::2] = n + 2 * j + 1
        out[distinct[c]] = tasks
    return out


def _transfer_tasks(transfers: TransferRows, n: int, lat: np.ndarray, op_loads: Mapping,
                    env_resources: dict) -> Mapping:
    """Each transfer ``j``'s two tasks: its latency alone (``lat[n + 2j]``, s) and its loads;
    returns every task's loads, resolved to resources as (resource, bytes) pairs: the ops'
    (``op_loads``), then each transfer's loads task ``n + 2j + 1`` (one list per tuple of
    loads, which transfers of equal bytes over one route share). A
    :class:`~sim.system.grouped_loads.GroupedLoads` where ``op_loads`` is one, else a dict."""
    m = len(transfers)
    per_route, route = transfers.route_column("latency")
    latency = np.array(per_route, dtype=np.float64)[route] if m else np.zeros(0)
    lat[n:n + 2 * m:2] = np.where(latency > 0, latency, 0.0)
    lists = [[(env_resources[ld.resource], ld.nbytes) for ld in loads]
             for loads in transfers.loads]
    code = transfers.column("loads")
    task = n + 2 * np.arange(m, dtype=np.int64) + 1
    if isinstance(op_loads, GroupedLoads):
        return GroupedLoads(np.concatenate((op_loads.ids, task)),
                            np.concatenate((op_loads.group, len(op_loads.tuples) + code)),
                            op_loads.tuples + lists)
    loads = dict(op_loads)
    loads.update(zip(task.tolist(), [lists[c] for c in code.tolist()], strict=True))
    return loads


def _timed(names: list[str], by_stream: np.ndarray, bounds: np.ndarray, ptr: np.ndarray,
           idx: np.ndarray, lat: np.ndarray, size: np.ndarray, share: np.ndarray | None,
           memory_of: dict, loads: Mapping, costs, transfers: list,
           env_resources: dict, of_ops: tuple | None = None) -> Timeline | None:
    """The pass over the tasks (ops ``0..n-1``, then each transfer's two), laid out by
    stream (``by_stream``, ``bounds``: each stream's in order), and its :class:`Timeline`
    (``costs``: the ops'); None where it gives up. ``of_ops``: the ops' stream codes, the
    tasks' table of the task before each on its stream (int64, one per task; the ops' filled
    in, -1: none; the rest is filled here) and how many streams are the ops' (the first
    names), where the caller has them (a trace's arrays and their
    :func:`~sim.stream_order.stream_layout`): only the transfers' tasks, on the streams
    after those, are laid out here."""
    n_tasks = len(lat)
    n = n_tasks - 2 * len(transfers)
    stream = np.empty(n_tasks, dtype=np.int32)     # (stream codes: 32-bit, as a trace's)
    first = 0
    if of_ops is None:
        prev = np.full(n_tasks, -1, dtype=np.int64)
    else:
        stream[:n], prev, first = of_ops
        prev[n:] = -1
    for k in range(first, len(names)):
        tasks = by_stream[bounds[k]:bounds[k + 1]]
        stream[tasks] = k
        prev[tasks[1:]] = tasks[:-1]
    times = shared_run(SimpleNamespace(dep_ptr=ptr, dep_idx=idx), stream, prev, names, lat,
                       size, share, memory_of, LoadIndex(loads, n_tasks), by_stream, bounds)
    if times is None:
        return None
    start, end = times
    tl = Timeline(start[:n].copy(), end[:n].copy(), costs, n + len(transfers))
    tl.engine_events = 0
    tl.transfers = transfers
    tl.transfer_start = start[n::2].copy()
    tl.transfer_end = end[n + 1::2].copy()
    tl.resources = env_resources
    return tl


def _model_costs(devices: dict[str, Device], arrays) -> tuple[list, np.ndarray]:
    """(costs, each op's index into them) of a trace held as arrays whose streams' models
    price one op per kind: one model, its costs by op kind (``_kind_costs``); several (the
    device and a hosted component's), one table per model, each priced on its own ops'
    kinds (in the order they first occur there), the tables one after the other."""
    from sim.engine_arrays import _kind_costs

    models = [devices[nm] for nm in arrays.stream_names]
    if all(dev is models[0] for dev in models):
        return _kind_costs(models[0], arrays), arrays.kind
    order: list[Device] = []       # the distinct models, and each stream's among them
    code = []
    for dev in models:
        g = next((g for g, d in enumerate(order) if d is dev), len(order))
        if g == len(order):
            order.append(dev)
        code.append(g)
    of_op = np.array(code, dtype=np.int64)[arrays.stream]
    n_kinds = len(arrays.kinds)
    table: list = []
    index = np.empty(len(of_op), dtype=np.int64)
    for g in first_occurrences(of_op, len(order))[0].tolist():   # models in the order ops meet them
        at = np.flatnonzero(of_op == g)
        per_kind = _kind_costs(order[g], arrays, at)
        used = first_occurrences(arrays.kind[at], n_kinds)[0]
        slot = np.full(n_kinds, -1, dtype=np.int64)
        slot[used] = np.arange(len(table), len(table) + len(used))
        table += [per_kind[k] for k in used.tolist()]
        index[at] = slot[arrays.kind[at]]
    return table, index


def _costs(devices: dict[str, Device], stream_of: list[str], ops: list,
           kind: np.ndarray | None) -> list:
    """Each op's cost: ``estimate`` of its op by its stream's model (``stream_of``: per op),
    as the event engine's streams read them: once per (stream, op kind) where the ops were made
    from arrays (``kind``) and the model's estimate is the memoised base one (ops of one kind
    share what it keys on), else op by op (a hosted component's model prices each op)."""
    by_kind = {s: type(dev).estimate is Device.estimate for s, dev in devices.items()}
    if kind is None:
        return [devices[s].estimate(op) for s, op in zip(stream_of, ops, strict=True)]
    memo: dict[tuple[str, int], object] = {}
    out = []
    for s, op, k in zip(stream_of, ops, kind.tolist(), strict=True):
        if not by_kind[s]:
            out.append(devices[s].estimate(op))
            continue
        cost = memo.get((s, k))
        if cost is None:
            cost = memo[s, k] = devices[s].estimate(op)
        out.append(cost)
    return out


def _dependencies(ops: list, arrays, transfers: list, extra: dict[int, tuple[int, ...]],
                  n: int) -> tuple[np.ndarray, np.ndarray]:
    """(dep_ptr, dep_idx) of the tasks (ops, then each transfer's two): an op's dependencies,
    then the transfers it waits for; a transfer's latency task its dependencies, its loads
    task none (it follows its latency task on the stream); a transfer named by id
    (``n + j``) is waited for as its loads task. ``arrays``: the arrays the ops were made
    from (their dependency arrays read as they are), or None. One compiled pass
    (:func:`sim.deps_kernel.task_deps`); both int32 where ``arrays``' are and every task id
    and entry fits (else int64)."""
    from sim.engine_aot import kernels

    if arrays is None:
        base_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(op.deps) for op in ops], out=base_ptr[1:])
        base = np.fromiter((d for op in ops for d in op.deps), dtype=np.int64,
                           count=int(base_ptr[-1]))
    else:
        base_ptr = np.ascontiguousarray(arrays.dep_ptr)
        base = np.asarray(arrays.dep_idx)
        if base.dtype not in (np.int32, np.int64):
            base = base.astype(np.int64)
        base = np.ascontiguousarray(base)
    # the transfers each op waits for, ops ascending, and each transfer's dependencies, flat
    waiting, waits, waited = (extra if isinstance(extra, WaitTable) else WaitTable(extra)).flat()
    tr_ptr, tr_waited = as_rows(transfers).deps()
    n_tasks = n + 2 * (len(tr_ptr) - 1)
    n_idx = len(base) + len(waited) + len(tr_waited)
    k = kernels()
    # a 32-bit table from a trace's 32-bit arrays where every task id and entry fits (half
    # the memory; the pass is compiled for it too: shared_times_i4), else 64-bit
    narrow = base_ptr.dtype == base.dtype == np.int32 and max(n_tasks, n_idx) < 2**31
    width = np.int32 if narrow else np.int64
    ptr, idx = np.empty(n_tasks + 1, dtype=width), np.empty(n_idx, dtype=width)
    if not narrow:
        base_ptr = np.ascontiguousarray(base_ptr, dtype=np.int64)
    (k.task_deps_narrow if narrow else k.task_deps_i4 if base.dtype == np.int32
     else k.task_deps_i8)(
        base_ptr, base, np.ascontiguousarray(waiting, dtype=np.int64),
        np.ascontiguousarray(waits, dtype=np.int64), np.ascontiguousarray(waited, np.int64),
        np.ascontiguousarray(tr_ptr, dtype=np.int64),
        np.ascontiguousarray(tr_waited, dtype=np.int64), n, ptr, idx)
    if int(ptr[n]) != int(base_ptr[n]) + len(waited):   # a waiter outside ops 0..n-1
        raise ValueError(f"a planned run's waits name ops outside its {n} ops "
                         f"({int(ptr[n]) - int(base_ptr[n])} of {len(waited)} placed)")
    return ptr, idx
