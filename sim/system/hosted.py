"""Ops that run on another component of the system (``Op.where``, e.g. the host CPU) and the
tensors they stream from the tiers the placement chose (``Op.tensors``).

* The op runs on the first instance of its component, on that device's compute stream, with
  that component's device model.
* Its memory traffic by tensor class comes from the Einsum IR (inputs read, outputs written,
  each tensor's role naming its class). Each class's bytes load the tiers holding it, in the
  placement's fractions, and every link on the way between tier and device; a tier whose
  achievable bandwidth depends on the read/write mix (``Tier.efficiency_at``) is occupied
  longer by a write-heavy stream. The op ends when its own (compute-side) latency and all
  these loads are done.
* Gradients the op reads that were produced on the primary device move there first (a
  device-to-host transfer after the op's first dependency, the one that completes them), and
  fp16 weights it writes for the device move back after it (ZeRO-Offload's upload).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.devices.base import Cost, Device, SimError, WrappedDevice, device_for
from sim.system.plan import Load, Plan, add_wait, direction
from sim.system.route_transfers import IN_PLACE, RouteTransfers
from sim.system.storage import flash_scale
from sim.system.topology import System
from workloads.einsum import Cascade
from workloads.trace import Op, Trace

if TYPE_CHECKING:  # loaded where a run places tensors
    from sim.system.placement import Placement

# tensor role -> placement class; in a hosted op, "state" tensors are optimizer states
ROLE_CLASS = {"weight": "weights", "gradient": "gradients", "state": "optimizer",
              "optimizer": "optimizer", "kv_cache": "kv_cache", "activation": "activations"}


def host_attention(trace: Trace, system: System, tp: int, component: str,
                   pp: int = 1) -> None:
    """Decode attention next to the KV cache: tag the decode ops of class ``attention`` to run
    on ``component`` (``cpu``: FlexGen's ``--cpu``; ``csd``: InstInfer), streaming the KV cache
    from wherever the placement put it. A trace held as arrays is tagged on its arrays
    (``CompactOps.hosted``: no op object made)."""
    comps = sorted({d.component for d in system.devices.values()})
    if component not in comps or component == system.primary:
        raise SimError(f"--attention-on: system '{system.name}' has no device component "
                       f"'{component}' besides the primary '{system.primary}' (components: "
                       f"{', '.join(comps)})")
    if tp > 1 or pp > 1:
        raise SimError("--attention-on: attention off the GPU runs one device's attention "
                       "(use --tp 1 --pp 1)")
    tensors = ("kv_cache",)
    if trace.is_compact:
        import numpy as np

        arrays = trace.compact
        attention = np.array([(k.op_class or k.name) == "attention" for k in arrays.kinds]
                             or [False])
        decode = arrays.phases.index("decode") if "decode" in arrays.phases else -1
        arrays.hosted = (attention[arrays.kind] & (arrays.phase == decode), component, tensors)
        return
    for op in trace.ops:
        if op.phase == "decode" and op.op_class == "attention":
            op.where = component
            op.tensors = tensors


def tensor_traffic(op: Op) -> dict[str, tuple[float, float]]:
    """(read, write) bytes of one shard of ``op`` per tensor class, from the roles of the
    tensors it reads (external inputs) and writes (final outputs)."""
    comp = op.compute
    if comp is None:
        return {}
    if isinstance(comp, Cascade):
        reads, sizes = comp.external_inputs, comp.size
        writes = tuple({e.output.name: e.output for e in comp.einsums
                        if e.output.name in comp.final_outputs}.values())
    else:
        reads, writes, sizes = comp.inputs, (comp.output,), comp.size
    out: dict[str, list[float]] = {}
    for t, k in [(t, 0) for t in reads] + [(t, 1) for t in writes]:
        cls = ROLE_CLASS.get(t.role)
        if cls is None:
            continue
        out.setdefault(cls, [0.0, 0.0])[k] += t.nbytes(sizes)
    return {cls: (rw[0], rw[1]) for cls, rw in out.items()}


class HostedDevice(WrappedDevice):
    """A device model whose ops' memory time comes from tier loads in the engine: latency =
    the model's compute time (``detail['t_compute_s']``) plus its fixed per-op cost
    (``detail['fork_join_s']``), and the
    roofline = its FLOP bound and each tier's bytes over that tier's peak (tiers in parallel)."""

    def __init__(self, inner: Device, bounds: dict[int, float]):
        super().__init__(inner)
        self.bounds = bounds   # op id -> memory lower bound (s) over its tiers

    def estimates_by_kind(self) -> bool:
        """True: an op's memory bound is its computation's (the plan works it out once per
        computation, ``host_ops``), so the ops of one kind price alike."""
        return True

    def estimate(self, op: Op) -> Cost:
        """The cost of ``op``, memoised by its shape (as :meth:`Device.estimate` keys it) and
        its memory bound: the ops of one compute object (a step's layers) price once."""
        bound = self.bounds.get(op.id, 0.0)
        compute, collective = op.compute, op.collective
        key = (id(compute), id(collective), op.shards, op.kind, bound)
        hit = self._memo.get(key)
        # the entry keeps its objects alive, so an id cannot be reused while it is cached
        if hit is not None and hit[0] is compute and hit[1] is collective:
            return hit[2]
        cost = self.inner.estimate(op)
        flops = op.flops / max(op.shards, 1)
        t_compute = cost.detail.get("t_compute_s", flops / self.inner.peak_flops(op))
        fixed = cost.detail.get("fork_join_s", 0.0)
        roof = max(flops / self.inner.peak_flops(op), bound)
        latency = max(t_compute + fixed, roof)
        cost = Cost(latency, roof, cost.bound, cost.energy, cost.dram_bytes,
                    {**cost.detail, "hosted": True})
        self._memo[key] = (compute, collective, cost)
        return cost


def host_ops(plan: Plan, system: System, ops: list[Op], placement: Placement | None,
             home: str, fidelity: str, group: tuple[str, ...], trace_ops: list[Op],
             io: tuple[float, int] = (131072.0, 32)) -> None:
    """Put ``ops`` (each with ``op.where``) on their components' streams with their tier loads
    and the transfers around them; ``group`` are the primary devices they exchange tensors with
    (each sends and receives its own shard; the first represents them)."""
    models: dict[str, HostedDevice] = {}
    bounds: dict[int, float] = {}
    hosted = {op.id for op in ops}
    users: dict[int, list[Op]] = {}
    for other in trace_ops:
        if other.id not in hosted:
            for d in other.deps:
                if d in hosted:
                    users.setdefault(d, []).append(other)
    insts: dict[str, tuple] = {}   # component -> (its instance, own tier, stream)
    terms: dict[tuple[str, str], tuple] = {}   # (tier, instance) -> _tier_terms
    shapes: dict[tuple, tuple] = {}   # (component, tensors, compute) -> _op_loads
    activations: dict[str, Activations] = {}   # own tier -> its ops' activations
    for op in ops:
        where = insts.get(op.where)
        if where is None:
            inst = system.compute_devices(op.where)[0]
            where = insts[op.where] = (inst, _own_tier(system, inst.name, inst.memory),
                                       f"{inst.name}.compute")
        inst, own, stream = where
        dev = models.get(op.where)
        if dev is None:
            dev = HostedDevice(device_for(inst.arch, fidelity), bounds)
            models[op.where] = dev
        plan.streams.setdefault(stream, dev)
        plan.stream_device[stream] = inst.name
        plan.devices_of[stream] = (inst.name,)
        op.device = stream
        key = (op.where, op.tensors, id(op.compute))
        hit = shapes.get(key)
        if hit is None:   # the ops of one compute object (one per layer of a step) share it
            hit = shapes[key] = _op_loads(plan, system, op, placement, own, home, inst.name,
                                          io, terms)
        traffic, loads, bound = hit
        if loads:
            plan.op_loads[op.id] = loads
        bounds[op.id] = bound
        _around(plan, system, op, placement, home, group, traffic)
        from_device = [d for d in op.deps if d not in hosted and trace_ops[d].where == ""]
        moves = activations.get(own)
        if moves is None:
            moves = activations[own] = Activations(plan, system, group, own)
        moves.move(op.id, op.phase, op.layer, op.step, from_device,
                   [user.id for user in users.get(op.id, [])], traffic)


def _op_loads(plan: Plan, system: System, op: Op, placement: Placement | None, own: str,
              home: str, inst: str, io: tuple[float, int], terms: dict) -> tuple:
    """(``tensor_traffic(op)``, its tier and link loads, its memory time bound in s) for a
    hosted op on instance ``inst``, registering the resources it loads; ``terms``: the
    :func:`_tier_terms` worked out so far, by (tier, instance)."""
    loads: list[Load] = []
    bound = 0.0
    traffic = tensor_traffic(op)
    for cls, (rd, wr) in traffic.items():
        tiers = _tiers_of(placement, cls, op, own, home, system)
        for tier_name, frac in tiers.items():
            total = (rd + wr) * frac
            if total <= 0:
                continue
            term = terms.get((tier_name, inst))
            if term is None:
                term = terms[tier_name, inst] = _tier_terms(system, tier_name, inst, io)
            tier, default, pattern, hops = term
            # a tier is a resource at its default sustained bandwidth; a mix it serves less
            # well occupies it longer (bytes scaled by default / mix efficiency)
            mix = tier.efficiency_at(rd / (rd + wr)) if hasattr(tier, "efficiency_at") \
                else default
            plan.resources.setdefault(tier_name, tier.bandwidth)
            loads.append(Load(tier_name, total * default / mix * pattern))
            bound = max(bound, total / tier.peak_bandwidth)
            for name, fwd, sustained, bandwidth in hops:   # reads tier -> device, writes
                nbytes = rd * frac if fwd else wr * frac  # back
                if nbytes > 0:
                    plan.resources.setdefault(name, sustained)
                    loads.append(Load(name, nbytes))
                    bound = max(bound, nbytes / bandwidth)
    return traffic, tuple(loads), bound


def _tier_terms(system: System, tier_name: str, inst: str, io: tuple[float, int]) -> tuple:
    """What a hosted op's loads on ``tier_name`` from instance ``inst`` take from the system
    (the same for every op there): the tier, its default efficiency, its access-pattern scale
    (flash: in-storage engines read with every plane busy) and each hop of the route, as
    (resource, whether reads cross it, its sustained and its peak bandwidth, B/s) in the
    order the loads go: reads tier -> device, writes back."""
    tier = system.tiers[tier_name]
    default = tier.bandwidth / tier.peak_bandwidth
    qd = 0 if tier.device == inst else io[1]
    pattern = flash_scale(system, tier_name, io[0], qd)
    hops = []
    for hop in system.route(tier_name, inst).hops:
        link = system.links[hop.link]
        for fwd, reads in ((hop.forward, True), (not hop.forward, False)):
            hops.append((direction(hop.link, fwd), reads, link.sustained, link.bandwidth))
    return tier, default, pattern, tuple(hops)


def _own_tier(system: System, inst: str, fallback: str) -> str:
    """The memory a hosted device works in: the standalone tier one hop away (a CPU socket's
    DIMMs, when the system lists them as a tier) or else the device's own tier."""
    near = [t.name for t in system.tiers.values()
            if not t.device and len(system.route(t.name, inst).hops) == 1]
    return near[0] if near else fallback


def _tiers_of(placement: Placement | None, cls: str, op: Op, own: str, home: str,
              system: System) -> dict[str, float]:
    """System tier names holding ``cls`` for a hosted op, with fractions."""
    if cls not in op.tensors or placement is None:
        return {own: 1.0}
    out = {}
    for tier in placement.bytes.get(cls, {}):
        frac = placement.fraction(cls, tier)
        if frac <= 0:
            continue
        if tier == home:
            raise SimError(f"placement: {cls} is on {home}, but op {op.name} runs on "
                           f"'{op.where}'; place {cls} on a tier that component reaches")
        if tier not in system.tiers:
            raise SimError(f"placement: {cls} on tier '{tier}', which op {op.name} on "
                           f"'{op.where}' cannot stream from")
        out[tier] = frac
    return out or {own: 1.0}


def _around(plan: Plan, system: System, op: Op, placement: Placement | None, home: str,
            group: tuple[str, ...], traffic: dict[str, tuple[float, float]]) -> None:
    """Gradients to the host before ``op``; written fp16 weights back to the devices after
    (one shard per device of ``group``); ``traffic``: ``tensor_traffic(op)``."""
    rep, k = group[0], len(group)
    if "gradients" in traffic and "gradients" in op.tensors and placement is not None:
        for tier, frac in placement.bytes.get("gradients", {}).items():
            if tier == home or frac <= 0:
                continue
            nbytes = traffic["gradients"][0] * placement.fraction("gradients", tier) / k
            tr = transfer_between(plan, system, f"gradients {rep}->{tier}", "gradients",
                                  system.tier_of_device(rep).name, rep, tier, tier, nbytes,
                                  f"{rep}.copy_out", op.deps[:1], op, k)
            add_wait(plan.extra_deps, op.id, tr)
    if "weights" in traffic and traffic["weights"][1] > 0 and op.where:
        src = system.compute_devices(op.where)[0]
        own = _own_tier(system, src.name, src.memory)
        nbytes = traffic["weights"][1] / k
        transfer_between(plan, system, f"weights {own}->{rep}", "weights", own, own,
                         system.tier_of_device(rep).name, rep, nbytes, f"{rep}.copy", (op.id,),
                         op, k)


class Activations:
    """The activations hosted ops exchange with the device's ops (``group``: the devices,
    the first representing them; ``own``: the hosted component's tier): the ones an op reads
    from an op on the device move to the host first, the ones it writes for an op on the
    device move back before that op starts (e.g. the query and the output of CPU
    attention). Each direction's route is looked up once. With ``defer``, the transfers of
    ops whose routes are made are recorded and made as one block (:meth:`flush`, which the
    caller runs before anything else adds transfers to the plan, and at the end)."""

    __slots__ = ("plan", "system", "k", "_ends", "_routes", "defer", "_records")

    def __init__(self, plan: Plan, system: System, group: tuple[str, ...], own: str,
                 defer: bool = False):
        self.defer, self._records = defer, []
        rep = group[0]
        hbm = system.tier_of_device(rep).name
        self.plan, self.system, self.k = plan, system, len(group)
        self._ends = ((f"activations {rep}->{own}", "activations", hbm, rep, own, own,
                       f"{rep}.copy_out", self.k),
                      (f"activations {own}->{rep}", "activations", own, own, hbm, rep,
                       f"{rep}.copy", self.k))
        self._routes: list[RouteTransfers | None] = [None, None]

    def move(self, op_id: int, phase: str, layer: int, step: int, from_device: list[int],
             users: list[int], traffic: dict[str, tuple[float, float]]) -> None:
        """The transfers around hosted op ``op_id``: ``from_device`` are its dependencies on
        the device, ``users`` the ids of its users there (in op order), ``traffic`` its
        ``tensor_traffic``."""
        traffic = traffic.get("activations")
        if traffic is None:
            return
        if self.defer:
            into = from_device if from_device and traffic[0] > 0 else ()
            out = users if users and traffic[1] > 0 else ()
            if not (into or out):
                return
            if (self._routes[0] is not None or not into) and \
                    (self._routes[1] is not None or not out):
                self._records.append((op_id, phase, layer, step, into, out, *traffic))
                return
            self.flush()     # a route made here: in order, alone
        extra = self.plan.extra_deps
        if from_device and traffic[0] > 0:
            tr = self._route(0).add(traffic[0] / self.k, tuple(from_device), phase, layer,
                                    step, IN_PLACE, max(from_device) + 0.5)
            add_wait(extra, op_id, tr)
        if users and traffic[1] > 0:
            tr = self._route(1).add(traffic[1] / self.k, (op_id,), phase, layer, step,
                                    IN_PLACE, op_id + 0.5)
            for user in users:
                add_wait(extra, user, tr)

    def routes_pending(self) -> bool:
        """Whether a route is still to be made (by the first op that moves that way)."""
        return self._routes[0] is None or self._routes[1] is None

    def flush(self, more=None) -> None:
        """Make the recorded ops' transfers (with ``more``, an
        :class:`~sim.system.activation_block.ActivationMoves` of other ops, in op order)."""
        if self._records or (more is not None and len(more)):
            from sim.system.activation_block import ActivationMoves, add_activation_moves

            records, self._records = self._records, []
            moves = ActivationMoves.of_records(records) if records else None
            if more is not None and len(more):
                moves = more if moves is None else moves.in_op_order(more)
            add_activation_moves(self.plan, tuple(self._routes), self.k, moves)

    def _route(self, back: int) -> RouteTransfers:
        route = self._routes[back]
        if route is None:
            route = self._routes[back] = route_between(self.plan, self.system,
                                                       *self._ends[back])
        return route


def transfer_between(plan: Plan, system: System, name: str, cls: str, src_tier: str,
                     src_node: str, dst_tier: str, dst_node: str, nbytes: float, stream: str,
                     deps: tuple[int, ...], op: Op, replicas: int = 1,
                     io: tuple[float, int] = (131072.0, 32),
                     anchor: float | None = None) -> int:
    """``replicas`` transfers of ``nbytes`` between two tiers, one per device of a
    tensor-parallel group (the id of the one transfer that stands for them); the
    representative's route is simulated, and resources it shares with the others (a
    standalone tier, a link not ending at a group device) carry them all. ``op`` gives its
    phase, layer and step and, without ``anchor``, its place in the trace."""
    route = route_between(plan, system, name, cls, src_tier, src_node, dst_tier, dst_node,
                          stream, replicas, io)
    return route.add(nbytes, deps, op.phase, op.layer, op.step, IN_PLACE,
                     anchor if anchor is not None else
                     (op.id + 0.5 if op.id in deps else max(deps, default=op.id) + 0.5))


def route_between(plan: Plan, system: System, name: str, cls: str, src_tier: str,
                  src_node: str, dst_tier: str, dst_node: str, stream: str,
                  replicas: int = 1, io: tuple[float, int] = (131072.0, 32)
                  ) -> RouteTransfers:
    """The maker of :func:`transfer_between`'s transfers, ``stream`` registered (as a copy
    stream of the device at one end) where the plan has none of that name."""
    key = ("transfer_between", src_tier, src_node, dst_tier, dst_node, replicas, io)
    route = plan.routes.get((key, name, cls, stream))
    if route is None:
        shape = system.derived.get(key)
        if shape is None:
            shape = system.derived[key] = _transfer_shape(system, src_tier, src_node,
                                                          dst_tier, dst_node, replicas, io)
        route = plan.routes[key, name, cls, stream] = RouteTransfers(
            plan, key, name, cls, stream, src_tier, dst_tier, replicas, *shape)
    if stream not in plan.streams:
        owner = dst_node if dst_node in system.devices else src_node
        plan.streams[stream] = next(iter(plan.streams.values()))
        plan.stream_device[stream] = owner
        plan.devices_of[stream] = (owner,)
        plan.copy_streams += (stream,)
    return route


def _transfer_shape(system: System, src_tier: str, src_node: str, dst_tier: str,
                    dst_node: str, replicas: int, io: tuple[float, int]) -> tuple:
    """What :func:`transfer_between` takes from the system for one route, whatever the
    bytes: the route's resources, each load as (resource, copies of the bytes it carries,
    access-pattern scale, bandwidth B/s), the latency (s), the bottleneck (B/s) and the
    energy per bit (J)."""
    route = system.route(src_node, dst_node)
    src, dst = system.tiers[src_tier], system.tiers[dst_tier]
    ends = {src_node, dst_node} & set(system.devices)
    # a resource private to the representative carries one copy; a shared one every replica's
    terms = [(src_tier, 1 if src.device else replicas, flash_scale(system, src_tier, *io),
              src.bandwidth)]
    energy_bit = src.energy_per_bit + dst.energy_per_bit
    for hop in route.hops:
        link = system.links[hop.link]
        private = bool(ends & {link.a, link.b}) and \
            any(e in system.devices and system.devices[e].component == system.primary
                for e in (link.a, link.b))
        terms.append((direction(hop.link, hop.forward), 1 if private else replicas, 1.0,
                      link.sustained))
        energy_bit += link.energy_per_bit
    terms.append((dst_tier, 1 if dst.device else replicas, 1.0, dst.bandwidth))
    return (tuple(direction(h.link, h.forward) for h in route.hops), tuple(terms),
            route.latency + src.latency, route.bottleneck, energy_bit)
