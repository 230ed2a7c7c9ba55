"""Lay a trace onto a system: which stream runs each op, what contends, what must be moved.

* **Streams.** Pipeline stage ``k`` runs on devices ``k*tp .. k*tp+tp-1`` of the system's
  primary component; its first device represents the tensor-parallel group (the shards are
  identical). Each stage has a compute stream, a communication stream when the software stack
  overlaps collectives with compute (``overlap``), and a copy stream (one DMA engine) when
  tensors must be moved.
* **Contention.** A device's memory becomes a shared resource when more than one of its streams
  or any transfer uses it; links are shared per direction. Collectives load the ports of the
  representative device (bytes each rank sends and receives); pipeline sends load every link of
  their route.
* **Transfers.** Tensor classes placed away from the device (weights, KV cache) are moved per
  layer and step, into a staging buffer, before the layer's first op runs; with prefetch depth
  ``N`` the transfer for a layer may start once the layer ``N + 1`` places earlier has ended
  (``N = 0``: just in time, no overlap). The buffer is released when the layer ends.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sim.devices.base import Device, SimError, collective_min_bytes
from sim.system.layer_runs import array_runs, op_runs
from sim.system.plan import Load, Plan, add_wait, direction
from sim.system.route_transfers import IN_PLACE, RouteTransfers
from sim.system.stage_transfers import add_stage_transfers, run_bytes
from sim.system.topology import Route, System
from workloads.fold import FoldedOps
from workloads.ragged import sum_in_order
from workloads.records import record
from workloads.trace import COLLECTIVE, Op, Trace
from workloads.tracer import kv_bytes_per_token, pipeline_boundaries

if TYPE_CHECKING:  # loaded where a run places tensors
    from sim.system.placement import Placement
    from workloads.scenario import Scenario

MOVABLE = ("weights", "kv_cache", "activations")  # classes a run moves per layer
#: plan a compact trace on several streams from its arrays (sim.system.array_plan); False:
#: op by op (the reference the tests compare it with)
PLAN_FROM_ARRAYS = True
#: make a stage's placement transfers for all its runs at once where none is relayed
#: (sim.system.stage_transfers); False: run by run (the reference the tests compare it with)
STAGE_ARRAYS = True


@record(frozen=True)
class Policies:
    """How the software runs on the system.

    ``overlap``: collectives run on their own stream and overlap compute of other micro-batches;
    ``prefetch``: layers ahead a transfer may start (0 = none); ``attention_on``: the device
    component that runs decode attention next to the KV cache instead of the GPU (``cpu``:
    FlexGen's ``--cpu`` over host-resident KV; ``csd``: InstInfer's in-storage attention), only
    queries and attention outputs crossing PCIe; ``relay_storage``: tensors on a flash tier
    move through host DDR (the page cache and a pinned relay buffer, as FlexGen reads its disk)
    rather than peer to peer; ``storage_request`` (B) and ``storage_queue_depth``: the pattern
    flash tiers are read with (``sim.system.storage``; depth 0: an in-storage engine keeping
    every plane busy).
    """

    overlap: bool = False
    prefetch: int = 1
    attention_on: str = ""
    relay_storage: bool = False
    storage_request: float = 131072.0
    storage_queue_depth: int = 32


@record
class Stage:
    """One pipeline stage: its devices (first = representative) and streams."""

    index: int
    devices: tuple[str, ...]
    compute: str
    comm: str
    copy: str

    @property
    def rep(self) -> str:
        return self.devices[0]


def stages_for(system: System, tp: int, pp: int) -> list[Stage]:
    """Pipeline stages over the primary component's devices, ``tp`` devices each."""
    devs = [d.name for d in system.compute_devices()]
    if tp > len(devs):
        raise SimError(f"--tp: {tp} exceeds the {len(devs)} device(s) of arch '{system.name}' "
                       "(use a multi-GPU arch such as dgx-a100 or dgx-h100)")
    if tp * pp > len(devs):
        raise SimError(f"--pp: {tp} x {pp} (tp x pp) devices exceed the {len(devs)} "
                       f"device(s) of arch '{system.name}' (lower --pp or --tp)")
    out = []
    for k in range(pp):
        group = tuple(devs[k * tp:(k + 1) * tp])
        rep = group[0]
        out.append(Stage(k, group, f"{rep}.compute", f"{rep}.comm", f"{rep}.copy"))
    return out


def home_tier(system: System) -> str:
    """The per-device name (``gpu.hbm``) of the primary devices' own memory tier."""
    dev = system.compute_devices()[0]
    return f"{dev.component}.{dev.memory.split('.', 1)[1]}"


def stage_of_layers(n_layers: int, pp: int) -> list[int]:
    """Stage index of layer ``i`` for i in -1 (embedding) .. n_layers (head), offset by one."""
    bounds = sorted(pipeline_boundaries(n_layers, pp))
    out = []
    for layer in range(-1, n_layers + 1):
        out.append(sum(1 for b in bounds if layer >= b))
    return out


def build_plan(trace: Trace, system: System, device: Device, placement: Placement | None,
               policies: Policies) -> Plan:
    """Assign streams to ``trace``'s ops (in place: ``op.device``) and build the plan."""
    sc = trace.scenario
    tp, pp = sc.tp, sc.pp
    stages = stages_for(system, tp, pp)
    if trace.is_compact and placement is None:
        plan = _one_stream_plan(trace, system, device, policies, stages)
        if plan is None and PLAN_FROM_ARRAYS:
            from sim.system.array_plan import streams_plan

            plan = streams_plan(trace, system, device, policies, stages)
        if plan is not None:
            return plan
    elif trace.is_compact and PLAN_FROM_ARRAYS:   # tensors placed off the device
        from sim.system.array_plan import streams_plan

        plan = streams_plan(trace, system, device, policies, stages, placement)
        if plan is not None:
            return plan
    n_layers = trace.model.n_layers
    stage_at = stage_of_layers(n_layers, pp)
    plan = Plan(streams={})
    used_memory: dict[str, set[str]] = {}   # device instance -> streams that touch its memory
    for st in stages:
        plan.streams[st.compute] = device
        plan.stream_device[st.compute] = st.rep
        plan.devices_of[st.compute] = st.devices
        used_memory.setdefault(st.rep, set()).add(st.compute)
    comm_loads = collective_ports(system, stages)
    loaded: dict[int, str] = {}
    plan.first_transfer_id = len(trace.ops)
    hosted: list[Op] = []
    units = type(device).unit_of is not Device.unit_of   # else "" for every op
    unit_memo: dict[tuple, tuple] = {}   # op shape -> (its computation, its unit)
    # (stage[, receiving stage], collective) -> (collective, its loads): ops of one collective
    # on one stage load the same resources with the same bytes (one tuple of Loads, shared)
    shared: dict[tuple, tuple] = {}
    # 1. streams and collective loads
    for op in trace.ops:
        if op.where:           # runs on another component (the host CPU ...)
            hosted.append(op)
            continue
        st = stages[stage_at[op.layer + 1]]
        if op.kind == COLLECTIVE:
            c = op.collective
            if c is not None and c.kind == "send":
                st = stages[stage_at[op.layer]]      # sent by the stage before the boundary
                to = stages[stage_at[op.layer + 1]]
                hit = shared.get((st.index, to.index, id(c)))
                if hit is None or hit[0] is not c:
                    route = system.route(st.rep, to.rep)
                    hit = shared[st.index, to.index, id(c)] = (c, tuple(
                        Load(hop_resource(plan, system, h), c.bytes_per_rank) for h in route.hops))
                plan.op_loads[op.id] = hit[1]
            elif c is not None and c.group > 1 and comm_loads.get(st.index):
                hit = shared.get((st.index, id(c)))
                if hit is None or hit[0] is not c:
                    sent = collective_min_bytes(c.kind, c.bytes_per_rank, c.group)
                    hit = shared[st.index, id(c)] = (c, tuple(
                        Load(hop_resource(plan, system, h), sent) for h in comm_loads[st.index]))
                plan.op_loads[op.id] = hit[1]
            if op.id in plan.op_loads:
                loaded[op.id] = st.comm if policies.overlap else st.compute
            if policies.overlap:
                op.device = st.comm
                if st.comm not in plan.streams:
                    plan.streams[st.comm] = device
                    plan.stream_device[st.comm] = st.rep
                    plan.devices_of[st.comm] = st.devices
                    used_memory[st.rep].add(st.comm)
                continue
        if op.rank >= 0:   # an expert-parallel rank's own op runs on its device alone
            if op.rank >= len(st.devices):
                raise SimError(f"--ep: op {op.name} belongs to rank {op.rank} but the stage has "
                               f"{len(st.devices)} device(s)")
            dev_name = st.devices[op.rank]
            stream = f"{dev_name}.compute"
            if stream not in plan.streams:
                plan.streams[stream] = device
                plan.stream_device[stream] = dev_name
                plan.devices_of[stream] = (dev_name,)
                used_memory.setdefault(dev_name, set()).add(stream)
            op.device = stream
            continue
        unit = ""
        if units:   # asked once per shape: what unit_of reads
            key = (id(op.compute), op.name, op.kind, op.op_class, op.phase)
            hit = unit_memo.get(key)
            if hit is None or hit[0] is not op.compute:
                hit = unit_memo[key] = (op.compute, device.unit_of(op))
            unit = hit[1]
        if unit:
            stream = f"{st.rep}.{unit}"
            if stream not in plan.streams:
                plan.streams[stream] = device
                plan.stream_device[stream] = st.rep
                plan.devices_of[stream] = st.devices
                used_memory[st.rep].add(stream)
            op.device = stream
            continue
        op.device = st.compute
    # 2. transfers of tensors placed away from the device
    if placement is not None:
        _transfers(trace, system, stages, stage_at, placement, policies, plan, used_memory)
    if hosted:
        from sim.system.hosted import host_ops  # loaded where ops run off the device

        host_ops(plan, system, hosted, placement, home_tier(system), device.fidelity,
                 stages[0].devices, trace.ops,
                 (policies.storage_request, policies.storage_queue_depth))
        for stream in plan.copy_streams:
            used_memory.setdefault(plan.stream_device[stream], set()).add(stream)
        for op in hosted:     # their loads are their memory time: never pruned
            if op.id in plan.op_loads:
                loaded[op.id] = op.device
                plan.keep_loads.add(op.id)
    # 3. memories that something contends for
    contended_memories(plan, system, device, used_memory)
    plan.prune_uncontended(loaded)
    return plan


def contended_memories(plan: Plan, system: System, device: Device,
                       used_memory: dict[str, set[str]]) -> None:
    """Make each device memory that more than one stream uses a shared resource of ``plan``
    and name it the memory of those streams (``used_memory``: device -> its streams)."""
    for rep, users in used_memory.items():
        if len(users) > 1:
            tier = system.tier_of_device(rep)
            # a device whose units read inside the memory (logic-die PIM) contends for the
            # DRAM arrays' bandwidth rather than its external interface's
            plan.resources.setdefault(tier.name, device.unit_memory_bandwidth() or tier.bandwidth)
            for s in users:
                if s in plan.streams and s not in plan.copy_streams:
                    plan.memory_of[s] = tier.name


def one_stream_by_policy(scenario: Scenario, placement, policies: Policies) -> bool:
    """Whether a run meets the conditions of :func:`_one_stream_plan` known before its trace:
    one pipeline stage (``pp`` 1: no sends), no expert ranks (``ep`` 1), no placement,
    collectives on the compute stream (no ``overlap``) and attention on the device. Micro-
    batches alone keep one stream (they run in turn on it). The device (units) and the
    trace decide the rest, so True means "one stream unless the device has units"."""
    return (scenario.pp == 1 and scenario.ep == 1 and placement is None
            and not policies.overlap and not policies.attention_on)


def _one_stream_plan(trace: Trace, system: System, device: Device, policies: Policies,
                     stages: list[Stage]) -> Plan | None:
    """The plan of a trace held as arrays whose every op runs on one compute stream (one
    stage, collectives on the compute stream, no expert ranks, units, hosted ops or moved
    tensors), built from the arrays: what :func:`build_plan` gives such a trace op by op.
    None when the trace needs more than one stream (the caller then plans op by op).
    Collective port loads have the compute stream as their only user, so they are pruned to
    ``plan.quiet`` (their bytes summed in op order, as pruning sums them)."""
    import numpy as np

    from sim.devices.base import Device as BaseDevice

    arrays = trace.compact
    if len(stages) != 1 or policies.overlap or policies.attention_on or \
            type(device).unit_of is not BaseDevice.unit_of or \
            any(k.rank >= 0 or (k.collective is not None and k.collective.kind == "send")
                for k in arrays.kinds):
        return None
    st = stages[0]
    arrays.device = st.compute
    arrays.stream, arrays.stream_names = None, ()   # (a trace planned before on several)
    plan = Plan(streams={st.compute: device}, stream_device={st.compute: st.rep},
                devices_of={st.compute: st.devices}, first_transfer_id=len(arrays))
    ports = collective_ports(system, stages).get(st.index)
    if ports:
        sent = np.array([collective_min_bytes(k.collective.kind, k.collective.bytes_per_rank,
                                              k.collective.group)
                         if k.kind == COLLECTIVE and k.collective is not None and
                         k.collective.group > 1 else np.nan for k in arrays.kinds])
        if isinstance(arrays, FoldedOps) and arrays.folded:   # per kind x its count
            counts = arrays.fold.counts(len(arrays.kinds))
            has = ~np.isnan(sent) & (counts > 0)
            per_op = np.array([math.fsum((sent[has] * counts[has]).tolist())]) \
                if has.any() else np.zeros(0)
        else:
            per_op = sent[arrays.kind]
            per_op = per_op[~np.isnan(per_op)]
        if len(per_op):
            for hop in ports:
                name = hop_resource(plan, system, hop)
                bw = plan.resources.pop(name)
                moved = plan.quiet.get(name, (bw, 0.0))[1]
                plan.quiet[name] = (bw, sum_in_order(moved, per_op))
    return plan


def hop_resource(plan: Plan, system: System, hop) -> str:
    """Register and name the resource of one hop's link direction."""
    link = system.links[hop.link]
    name = direction(hop.link, hop.forward)
    plan.resources.setdefault(name, link.sustained)
    return name


def collective_ports(system: System, stages: list[Stage]) -> dict[int, tuple]:
    """Per stage: the hops (both directions) of the representative's port into its group."""
    out = {}
    for st in stages:
        if len(st.devices) < 2:
            continue
        route = system.route(st.rep, st.devices[1])
        if not route.hops:
            continue
        first = route.hops[0]
        back = type(first)(first.link, not first.forward)
        out[st.index] = (first, back)
    return out


def _transfers(trace: Trace, system: System, stages: list[Stage], stage_at: list[int],
               placement: Placement, policies: Policies, plan: Plan,
               used_memory: dict[str, set[str]]) -> None:
    """Per (step, layer) run of ops and class placed off the device: weights are fetched before
    the run; the KV cache is saved after a prefill run, fetched before a decode run that reads
    it on the device, and each decode run's new K and V are appended after it;
    activations (training) are saved after a forward run and fetched back before the layer's
    recompute, or before its backward when nothing recomputes it."""
    home = home_tier(system)
    sources = {cls: {t: placement.fraction(cls, t) for t in placement.bytes.get(cls, {})
                     if t != home} for cls in MOVABLE}
    sources = {cls: {t: f for t, f in tiers.items() if f > 0} for cls, tiers in sources.items()}
    if not any(sources.values()):
        return
    # runs: maximal stretches of one (step, layer) on a stage's compute stream, in order;
    # weights are shared by the micro-batches of a run, each reads its own KV cache
    n_layers = trace.model.n_layers
    runs = array_runs(trace.compact, stage_at, n_layers) if trace.is_compact else \
        op_runs(trace.ops, stage_at, n_layers)
    act = placement.demand("activations") / n_layers if "activations" in sources else 0.0
    sc = trace.scenario
    kv_token = kv_bytes_per_token(trace.model, sc.kv_dtype, sc.tp) / n_layers  # per layer
    recomputed = {(step, layer) for st_runs in runs.values() if "recompute" in st_runs.phase
                  for step, layer, phase in zip(st_runs.step, st_runs.layer, st_runs.phase,
                                                strict=True) if phase == "recompute"}
    depth = max(0, policies.prefetch)
    io = (policies.storage_request, policies.storage_queue_depth)
    scales: dict[str, float] = {}   # per tier: flash_scale of this run's access pattern
    # per tier: the host memory its transfers are relayed through ("": none)
    relays = {tier: _relay_tier(system, tier) if policies.relay_storage else ""
              for tiers in sources.values() for tier in tiers}
    moves = [(cls, tier, frac, relays[tier]) for cls, tiers in sources.items()
             for tier, frac in tiers.items()]
    extra = plan.extra_deps
    for s_idx, st_runs in runs.items():
        st = stages[s_idx]
        for stream in (st.copy, f"{st.rep}.copy_out"):
            plan.streams.setdefault(stream, plan.streams[st.compute])
            plan.stream_device[stream] = st.rep
            plan.devices_of[stream] = st.devices
        if STAGE_ARRAYS and not any(relay for *_, relay in moves):   # all runs as arrays
            need, save = run_bytes(st_runs, act, kv_token, recomputed)
            add_stage_transfers(
                plan, st_runs, [(cls, tier, frac) for cls, tier, frac, _ in moves], need, save,
                depth, lambda cls, tier, out, st=st: _route_of(plan, system, cls, tier, st,
                                                               out, io, scales))
            _keep_copy_streams(plan, st, used_memory)
            continue
        lasts = st_runs.last
        for g, (step, layer, phase, firsts, last, tokens, w, kv) in enumerate(zip(
                st_runs.step, st_runs.layer, st_runs.phase, st_runs.first, lasts,
                st_runs.tokens, st_runs.weights, st_runs.kv, strict=True)):
            wait = (lasts[g - 1 - depth],) if g - 1 - depth >= 0 else ()
            fetch_act = phase == "recompute" or (phase == "backward" and
                                                  (step, layer) not in recomputed)
            # the prompt's KV cache is written during prefill (saved to its tier after the
            # layer), read back in decode
            need = {"weights": w, "kv_cache": kv if phase != "prefill" else 0.0,
                    "activations": act if fetch_act else 0.0}
            # ... and each decode step appends the new tokens' K and V
            save = {"activations": act if phase == "forward" else 0.0,
                    "kv_cache": kv if phase == "prefill" else
                    kv_token * tokens if phase == "decode" else 0.0}
            at = (phase, layer, step, last, min(firsts))
            for cls, tier, frac, relay in moves:
                nbytes = frac * need[cls]
                if nbytes > 0:
                    first = wait
                    if relay:    # storage -> host page cache / pinned buffer first
                        first = (_between(plan, system, cls, tier, relay, st, nbytes,
                                          f"{st.rep}.io", wait, at, io),)
                    tr = _route_of(plan, system, cls, relay or tier, st, False, io,
                                   scales).add(nbytes, first, phase, layer, step, last,
                                               at[4] - 0.5)
                    for op_id in firsts:
                        add_wait(extra, op_id, tr)
                nbytes = frac * save.get(cls, 0.0)
                if nbytes > 0:
                    out = _route_of(plan, system, cls, relay or tier, st, True, io,
                                    scales).add(nbytes, (last,), phase, layer, step, IN_PLACE,
                                                last + 0.5)
                    if relay:    # then the host writes it to storage
                        _between(plan, system, cls, relay, tier, st, nbytes, f"{st.rep}.io",
                                 (out,), at, io)
        _keep_copy_streams(plan, st, used_memory)


def _keep_copy_streams(plan: Plan, st: Stage, used_memory: dict[str, set[str]]) -> None:
    """Keep the stage's copy streams that some transfer is on (as copy streams using its
    device's memory); drop the others from the plan's tables."""
    used = plan.transfers.streams()
    for stream in (st.copy, f"{st.rep}.copy_out"):
        if stream in used:
            plan.copy_streams += (stream,)
            used_memory[st.rep].add(stream)
        elif stream not in plan.copy_streams:
            for table in (plan.streams, plan.stream_device, plan.devices_of):
                table.pop(stream, None)


def _relay_tier(system: System, tier: str) -> str:
    """The host memory a flash tier's transfers go through when storage is not peer to peer:
    the first standalone DRAM tier ("" when ``tier`` is not flash or there is none)."""
    if system.tiers[tier].kind not in ("flash", "ssd", "nvme"):
        return ""
    hosts = [t.name for t in system.tiers.values()
             if not t.device and t.kind not in ("flash", "ssd", "nvme")]
    return hosts[0] if hosts else ""


def _between(plan: Plan, system: System, cls: str, src: str, dst: str, st: Stage,
             nbytes: float, stream: str, deps: tuple[int, ...],
             at: tuple[str, int, int, int, int], io: tuple[float, int]) -> int:
    """One leg of a relayed transfer between two tiers (not the device), ``replicas`` shards,
    for the run ``at``: (phase, layer, step, last op id, first op id); returns its id."""
    from sim.system.hosted import transfer_between
    k = len(st.devices)
    phase, layer, step, last, first = at
    marker = Op(last, "", "", phase, layer, step, None)
    anchor = (last + 0.75) if deps and deps[0] >= plan.first_transfer_id else first - 0.75
    return transfer_between(plan, system, f"{cls} {src}->{dst}", cls, src,
                            system.node_of(src), dst, system.node_of(dst), nbytes, stream,
                            deps, marker, k, io, anchor)


def _route_of(plan: Plan, system: System, cls: str, tier: str, st: Stage, out: bool,
              io: tuple[float, int] = (131072.0, 32),
              scales: dict[str, float] | None = None) -> RouteTransfers:
    """The maker of shards of ``cls`` moved from ``tier`` to the stage's devices (``out``: the
    other way, on the device-to-host copy stream, landing in place). ``scales``: each tier's
    ``flash_scale`` for ``io``, kept across the calls of one plan (one figure per tier and
    access pattern: the pattern's model keys its own memo on the flash's whole
    description)."""
    replicas = len(st.devices)
    key = ("_route_of", tier, st.rep, replicas, out, io)
    made = plan.routes.get((key, cls))
    if made is not None:
        return made
    shape = system.derived.get(key)
    if shape is None:
        shape = system.derived[key] = _transfer_shape(tier, st.rep, replicas, system, out, io,
                                                      scales)
    hops, terms, latency, bottleneck, energy_bit, src, dst = shape
    made = plan.routes[key, cls] = RouteTransfers(
        plan, key, f"{cls} {src}->{dst}", cls, f"{st.rep}.copy_out" if out else st.copy, src,
        dst, replicas, hops, terms, latency, bottleneck, energy_bit)
    return made


def _transfer_shape(tier: str, rep: str, replicas: int, system: System, out: bool,
                    io: tuple[float, int], scales: dict[str, float] | None) -> tuple:
    """What :func:`_route_of` takes from the system for one route, whatever the bytes:
    its hops, each load as (resource, copies of the bytes it carries, access-pattern scale,
    bandwidth B/s), the latency (s), the bottleneck (B/s), the energy per bit (J) and the
    source and destination tiers' names."""
    from sim.system.storage import flash_scale

    route: Route = system.route(rep, tier) if out else system.route(tier, rep)
    far = system.tiers[tier]
    near = system.tier_of_device(rep)
    if out:
        scale = 1.0
    elif scales is not None and tier in scales:
        scale = scales[tier]
    else:
        scale = flash_scale(system, tier, *io)
        if scales is not None:
            scales[tier] = scale
    terms = [(tier, replicas if not far.device else 1, scale, far.bandwidth)]
    energy_bit = far.energy_per_bit + near.energy_per_bit
    for hop in route.hops:
        link = system.links[hop.link]
        private = rep in (link.a, link.b)
        terms.append((direction(hop.link, hop.forward), 1 if private else replicas, 1.0,
                      link.sustained))
        energy_bit += link.energy_per_bit
    terms.append((near.name, 1, 1.0, near.bandwidth))
    src, dst = (near, far) if out else (far, near)
    return (tuple(direction(h.link, h.forward) for h in route.hops), tuple(terms),
            route.latency + src.latency, route.bottleneck, energy_bit, src.name, dst.name)
