"""The plan of a trace held as arrays whose ops run on several streams, built from the arrays.

Pipeline stages, micro-batches with overlapped collectives and expert-parallel ranks put a
trace's ops on several streams. :func:`sim.system.schedule.build_plan` decides each op's stream
and its collective's link loads op by op; :func:`streams_plan` makes the same decisions once per
(op kind, stage) and spreads them over the ops as arrays: the op -> stream map becomes
``CompactOps.stream`` (codes into ``stream_names``), so no :class:`~workloads.trace.Op` is made.
Streams, resources and loads are registered in the order the op-by-op walk registers them (the
order the first op of each occurs), so the plan equals the op-by-op one entry for entry
(tests/test_array_plan.py). A device with units beside its compute engine (a PIM unit:
``Device.unit_of``) is asked once per (op kind, phase), what ``unit_of`` may read, and each
such unit's ops of a stage go to that stage's ``<device>.<unit>`` stream. A placement's
transfers are built from the runs of (step, layer) found in the arrays; ops tagged to run on
another component (``CompactOps.hosted``) are planned by
:func:`sim.system.hosted_plan.host_arrays` as ``host_ops`` plans them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.columns import first_occurrences, in_first_order
from sim.devices.base import Device, SimError, collective_min_bytes
from sim.engine_aot import kernels
from sim.system.grouped_loads import GroupedLoads, sums_in_order
from sim.system.plan import Load, Plan
from sim.system.schedule import (
    Policies,
    Stage,
    _transfers,
    collective_ports,
    contended_memories,
    home_tier,
    hop_resource,
    stage_of_layers,
)
from sim.system.topology import System
from sim.system.transfer_rows import transfer_users
from workloads.trace import COLLECTIVE, Trace, ops_at

if TYPE_CHECKING:
    from sim.system.placement import Placement

#: stream categories of an op on its stage: the compute stream, the communication stream,
#: then expert rank ``r`` at ``RANK + r``
COMPUTE, COMM, RANK = 0, 1, 2


def streams_plan(trace: Trace, system: System, device: Device, policies: Policies,
                 stages: list[Stage], placement: Placement | None = None) -> Plan | None:
    """:func:`~sim.system.schedule.build_plan` of a compact trace, from its arrays (None
    where the op-by-op walk is needed: ops tagged to run elsewhere by hand or none hosted
    under ``attention_on``, hosted ops beside a device's units). With a ``placement``, the
    transfers of the tensors it keeps off the device (``schedule._transfers``, over the
    runs :func:`~sim.system.layer_runs.array_runs` finds in the arrays)."""
    arrays = trace.compact
    hosted = arrays.hosted if arrays.hosted is not None and arrays.hosted[0].any() else None
    has_units = type(device).unit_of is not Device.unit_of
    if not len(arrays) or (policies.attention_on and hosted is None) or \
            (hosted is not None and has_units):
        return None
    kinds = arrays.kinds
    stage_at = np.array(stage_of_layers(trace.model.n_layers, trace.scenario.pp),
                        dtype=np.int32)
    # per kind: a collective, a pipeline send, an expert rank, a collective of a group
    is_coll = np.array([k.kind == COLLECTIVE for k in kinds], dtype=bool)
    is_send = is_send_kind = np.array([k.kind == COLLECTIVE and k.collective is not None and
                                       k.collective.kind == "send" for k in kinds], dtype=bool)
    rank = np.array([k.rank for k in kinds], dtype=np.int64)
    grouped = np.array([k.kind == COLLECTIVE and k.collective is not None and
                        k.collective.group > 1 for k in kinds], dtype=bool)
    category = np.where(is_coll & policies.overlap, COMM,
                        np.where(rank >= 0, RANK + rank, COMPUTE)).astype(np.int64)
    # a device's units (PIM): each (kind, phase) whose op would run on the compute stream is
    # asked for its unit; the kernel below then keys those pairs, not the kinds
    code, units = arrays.kind, []
    if has_units:
        code, of_code, category, units = _unit_categories(arrays, device, category)
        is_send, grouped = is_send[of_code], grouped[of_code]
    width = int(category.max()) + 1
    unit_base = width - len(units)
    comm_loads = collective_ports(system, stages)
    ported = np.array([bool(comm_loads.get(st.index)) for st in stages], dtype=bool)
    # per op (one compiled pass, sim/plan_kernel.py): its stage (a send runs on the stage
    # before the boundary: stage_at[layer] is layer - 1's stage), its layer's stage, the
    # code of its (stage, category) key by first appearance, whether its collective loads
    # links
    n = len(arrays)
    stage, here, key_of = (np.empty(n, dtype=np.int32) for _ in range(3))
    loaded = np.empty(n, dtype=bool)
    key_table, first_table = (np.empty(len(stages) * width, dtype=np.int64) for _ in range(2))
    n_keys = kernels().stream_keys(
        np.ascontiguousarray(code, dtype=np.int32),
        np.ascontiguousarray(arrays.layer, dtype=np.int32), stage_at, is_send, category,
        grouped, ported, width, stage, here, key_of, loaded, key_table, first_table)
    keys, key_first = key_table[:n_keys], first_table[:n_keys]

    plan = Plan(streams={}, first_transfer_id=len(arrays))
    used_memory: dict[str, set[str]] = {}
    for st in stages:
        plan.streams[st.compute] = device
        plan.stream_device[st.compute] = st.rep
        plan.devices_of[st.compute] = st.devices
        used_memory.setdefault(st.rep, set()).add(st.compute)
    names: list[str] = []
    for key, at in zip(keys.tolist(), key_first.tolist(), strict=True):
        st, cat = stages[key // width], key % width
        if cat == COMPUTE:
            names.append(st.compute)
        elif cat == COMM:
            names.append(st.comm)
            if st.comm not in plan.streams:
                plan.streams[st.comm] = device
                plan.stream_device[st.comm] = st.rep
                plan.devices_of[st.comm] = st.devices
                used_memory[st.rep].add(st.comm)
        elif cat >= unit_base:   # a unit beside the compute engine: a stream of its own
            stream = f"{st.rep}.{units[cat - unit_base]}"
            names.append(stream)
            if stream not in plan.streams:
                plan.streams[stream] = device
                plan.stream_device[stream] = st.rep
                plan.devices_of[stream] = st.devices
                used_memory[st.rep].add(stream)
        else:
            r = cat - RANK
            if r >= len(st.devices):
                name = kinds[int(arrays.kind[at])].name
                raise SimError(f"--ep: op {name} belongs to rank {r} but the stage has "
                               f"{len(st.devices)} device(s)")
            dev_name = st.devices[r]
            stream = f"{dev_name}.compute"
            names.append(stream)
            if stream not in plan.streams:
                plan.streams[stream] = device
                plan.stream_device[stream] = dev_name
                plan.devices_of[stream] = (dev_name,)
                used_memory.setdefault(dev_name, set()).add(stream)
    # stream codes by the order each stream's first op occurs (the engine's process order)
    slots: dict[str, int] = {}
    if hosted is not None:   # hosted ops on their component's stream, one more code
        from sim.system.hosted_plan import hosted_stream

        key_of = key_of.copy()
        key_of[hosted[0]] = len(names)
        names.append(hosted_stream(system, arrays))
        for c in first_occurrences(key_of, len(names))[0].tolist():
            slots.setdefault(names[c], len(slots))
    lut = np.array([slots.setdefault(nm, len(slots)) for nm in names], dtype=np.int32)
    arrays.stream = lut[key_of]
    arrays.stream_names = tuple(slots)
    if len(slots) == 1:
        arrays.device = names[0]
    loads = _collective_loads(arrays, plan, system, stages, stage, here,
                              np.flatnonzero(loaded), is_send_kind, comm_loads, policies)
    if placement is not None:   # after the collectives' links, as the op-by-op walk
        _transfers(trace, system, stages, stage_at.tolist(), placement, policies, plan,
                   used_memory)
    if hosted is not None:
        _host(plan, system, arrays, device, placement, policies, stages, used_memory, loads)
        return plan
    contended_memories(plan, system, device, used_memory)
    _prune_uncontended(plan, *loads)
    return plan


def _host(plan: Plan, system: System, arrays, device: Device, placement: Placement | None,
          policies: Policies, stages: list[Stage], used_memory: dict[str, set[str]],
          loads: tuple[np.ndarray, np.ndarray, list[tuple], list[str]]) -> None:
    """The hosted ops of ``arrays`` planned as the op-by-op walk plans them after its
    transfers (:func:`~sim.system.hosted_plan.host_arrays`), the copy streams' memories, and
    the loads pruned as that walk prunes them: the collectives' (``loads``:
    :func:`_collective_loads`') and the hosted ops', whose loads are their memory time and
    are never pruned. Both in op order: hosted attention runs on one device (``--tp 1
    --pp 1``), with no loaded collective, so that is the walk's order."""
    from sim.system.hosted_plan import host_arrays, hosted_stream

    at, group, tuples, user_of = loads
    ids, kind, per_kind = host_arrays(plan, system, arrays, placement, home_tier(system),
                                      device.fidelity, stages[0].devices,
                                      (policies.storage_request, policies.storage_queue_depth))
    for stream in plan.copy_streams:
        used_memory.setdefault(plan.stream_device[stream], set()).add(stream)
    plan.keep_loads.update(ids.tolist())
    contended_memories(plan, system, device, used_memory)
    both = np.concatenate((at, ids))
    order = np.argsort(both, kind="stable")
    hosted = len(tuples) + np.arange(len(per_kind))
    _prune_uncontended(plan, both[order], np.concatenate((group, hosted[kind]))[order],
                       tuples + per_kind,
                       user_of + [hosted_stream(system, arrays)] * len(per_kind),
                       kept=set(hosted.tolist()))


def _unit_categories(arrays, device: Device, category: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The ops keyed by (kind, phase) for a device with units: (each op's code, each code's
    kind, each code's stream category, the units' names). A code whose kind runs on the
    compute stream (``category`` COMPUTE: not a collective under ``--overlap``, not an expert
    rank's op) and whose op ``device.unit_of`` gives a unit gets that unit's category, one
    past the others' in the order the units are first met; the rest keep their kind's."""
    n_phases = max(len(arrays.phases), 1)
    pair = arrays.kind.astype(np.int64) * n_phases + arrays.phase
    values, first, code = in_first_order(pair)
    of_code = (values // n_phases).astype(np.int64)
    cats = category[of_code].copy()
    base = max(int(category.max()) + 1, RANK)   # past the compute, comm and ranks' categories
    units: list[str] = []
    asked = np.flatnonzero(cats == COMPUTE)
    for j, op in zip(asked.tolist(), ops_at(arrays, first[asked], ""), strict=True):
        unit = device.unit_of(op)
        if unit:
            if unit not in units:
                units.append(unit)
            cats[j] = base + units.index(unit)
    return code, of_code, cats, units


def _collective_loads(arrays, plan: Plan, system: System, stages: list[Stage],
                      stage: np.ndarray, here: np.ndarray, at: np.ndarray,
                      is_send: np.ndarray, comm_loads: dict, policies: Policies
                      ) -> tuple[np.ndarray, np.ndarray, list[tuple], list[str]]:
    """The loaded collectives ``at`` (op ids, ascending: sends, and collectives of a group on
    a stage with ports, ``comm_loads``): (``at``, the group of each, per group its tuple of
    link loads - one per (stage[, receiving stage], collective), shared as the op-by-op walk
    shares them - and per group the stream its ops count as a user of those resources).
    ``is_send``: per kind. Registers the resources in the order the op-by-op walk does."""
    if not len(at):
        return at, at, [], []
    n_stages = len(stages)
    combo = (arrays.kind[at].astype(np.int64) * n_stages + stage[at]) * n_stages + here[at]
    _, combo_first, combo_of = in_first_order(combo)
    shared: dict[tuple, tuple] = {}
    per_combo = []
    user_of = []
    for c_at in combo_first.tolist():
        i = int(at[c_at])
        c = arrays.kinds[int(arrays.kind[i])].collective
        st = stages[int(stage[i])]
        if is_send[int(arrays.kind[i])]:
            to = stages[int(here[i])]
            hit = shared.get((st.index, to.index, id(c)))
            if hit is None or hit[0] is not c:
                route = system.route(st.rep, to.rep)
                hit = shared[st.index, to.index, id(c)] = (c, tuple(
                    Load(hop_resource(plan, system, h), c.bytes_per_rank) for h in route.hops))
        else:
            hit = shared.get((st.index, id(c)))
            if hit is None or hit[0] is not c:
                sent = collective_min_bytes(c.kind, c.bytes_per_rank, c.group)
                hit = shared[st.index, id(c)] = (c, tuple(
                    Load(hop_resource(plan, system, h), sent) for h in comm_loads[st.index]))
        per_combo.append(hit[1])
        user_of.append(st.comm if policies.overlap else st.compute)
    return at, combo_of, per_combo, user_of


def _prune_uncontended(plan: Plan, at: np.ndarray, group: np.ndarray, loads: list[tuple],
                       user_of: list[str], kept: set[int] = frozenset()) -> None:
    """Put the loaded ops ``at`` (ascending; each group ``group`` of ``loads``, loading for
    stream ``user_of[group]``) in ``plan.op_loads`` (as
    :class:`~sim.system.grouped_loads.GroupedLoads`) and drop the resources
    only one stream loads, as :meth:`~sim.system.plan.Plan.prune_uncontended` does op by op:
    the users are found once per group of ops sharing a tuple of loads, and each dropped
    resource's bytes are summed over the ops in op order (``quiet``, entered in the order
    the ops first load them). The groups ``kept`` are loads that are their ops' whole
    memory time (``Plan.keep_loads``): a resource they load is never dropped."""
    users: dict[str, set[str]] = {}
    for g, (tup, who) in enumerate(zip(loads, user_of, strict=True)):
        for ld in tup:
            users.setdefault(ld.resource, set()).update((who, "kept") if g in kept else (who,))
    for stream, res in plan.memory_of.items():
        users.setdefault(res, set()).add(stream)
    # a transfer's resources are never pruned (transfers share their tuples of loads)
    for stream, loads_of in transfer_users(plan.transfers):
        for ld in loads_of:
            users.setdefault(ld.resource, set()).update((stream, "transfer"))
    lone = {r for r, who in users.items() if len(who) == 1}
    if not lone:
        plan.op_loads = GroupedLoads(at, group, loads)
        return
    summed: list[tuple[int, int, str, float]] = []   # (first op, place in tuple, name, bw)
    before: dict[str, float] = {}
    for r in sorted(lone):
        on = np.array([any(ld.resource == r for ld in tup) for tup in loads])
        ops = np.flatnonzero(on[group])
        if not len(ops):
            continue
        bw, before[r] = plan.quiet.get(r, (plan.resources[r], 0.0))
        place = next(j for j, ld in enumerate(loads[int(group[ops[0]])]) if ld.resource == r)
        summed.append((int(ops[0]), place, r, bw))
    # each op's loads on each dropped resource, added in op and tuple order
    moved = sums_in_order(before, group, loads, before)
    for *_, r, bw in sorted(summed):   # entered as the op-by-op pruning enters them
        plan.quiet[r] = (bw, moved[r])
    kept = [tuple(ld for ld in tup if ld.resource not in lone) for tup in loads]
    keep = np.array([bool(k) for k in kept], dtype=bool)[group]
    plan.op_loads = GroupedLoads(at[keep], group[keep], kept)
    for r in lone:
        plan.resources.pop(r, None)
