"""What the engine runs on a system: streams, contended resources, transfers and extra waits.

A :class:`Plan` is built by :mod:`sim.system.schedule` from a trace, a :class:`System`, a
placement and the run's policies; the engine (:mod:`sim.engine`) only executes it. Resources are
bandwidths shared by processor sharing (:class:`sim.resources.SharedBandwidth`): each memory tier
and each link direction is one. A link direction's resource is named ``<link>>`` (from ``a`` to
``b``) or ``<link><`` (from ``b`` to ``a``).
"""

from __future__ import annotations

from dataclasses import field

import numpy as np

from sim.devices.base import Device
from sim.system.grouped_loads import GroupedLoads
from sim.system.wait_table import WaitTable
from workloads.ragged import sum_in_order
from workloads.records import record


def direction(link: str, forward: bool) -> str:
    """Resource name of one direction of ``link``."""
    return f"{link}>" if forward else f"{link}<"


@record(frozen=True)
class Load:
    """Bytes one task moves through one contended resource."""

    resource: str
    nbytes: float


@record
class Transfer:
    """A tensor moved between memory tiers over a route, as one task on a copy stream.

    ``nbytes`` is per replica: a tensor-parallel group moves ``replicas`` identical shards, each
    over its own device's route; only the representative route is simulated, and shared
    resources carry the bytes of every replica (see ``loads``). ``latency`` (s) is the route's
    and the source tier's; ``floor`` (s) is ``nbytes`` over the route's slowest link, below which
    no transfer may finish. The staging buffer it fills is released when op ``release`` ends.
    ``anchor`` places it in the trace (an op id, +-0.5 for just after / before that op): a copy
    stream issues its transfers in anchor order, as the software enqueues them while it walks
    the ops, so an in-order queue never waits behind a transfer needed later.
    """

    id: int
    name: str
    tensor: str
    stream: str
    src: str
    dst: str
    nbytes: float
    replicas: int
    hops: tuple[str, ...]
    loads: tuple[Load, ...]
    latency: float
    floor: float
    deps: tuple[int, ...] = ()
    phase: str = ""
    layer: int = -1
    step: int = 0
    release: int = -1
    energy_J: float = 0.0
    anchor: float = -1.0


def add_wait(extra, op_id: int, transfer: int) -> None:
    """Append to op ``op_id``'s extra dependencies (``extra``: ``Plan.extra_deps``, a
    :class:`~sim.system.wait_table.WaitTable` or a dict) the transfer ``transfer``."""
    if isinstance(extra, WaitTable):
        extra.add(op_id, transfer)
    else:
        extra[op_id] = extra.get(op_id, ()) + (transfer,)


def add_waits(extra, waiter: np.ndarray, waited: np.ndarray) -> None:
    """Append to each op's extra dependencies (``extra``: ``Plan.extra_deps``, a
    :class:`~sim.system.wait_table.WaitTable` or a dict) the transfers it waits for: pair
    ``j`` is op ``waiter[j]`` waiting for transfer ``waited[j]``, pairs in the order each op's
    waits are to be kept (a transfer's id order)."""
    if isinstance(extra, WaitTable):
        extra.add_pairs(waiter, waited)
        return
    for w, ids in WaitTable.of_pairs(waiter, waited).items():
        got = extra.get(w)
        extra[w] = ids if got is None else got + ids


def _transfer_rows():
    """An empty :class:`~sim.system.transfer_rows.TransferRows` (imported where made: it
    imports this module)."""
    from sim.system.transfer_rows import TransferRows

    return TransferRows()


@record
class Plan:
    """Streams (name → device model), resources (name → B/s) and the tasks' extra loads.

    ``memory_of`` names the memory resource a stream's ops move their DRAM bytes through (only
    for memories that something else contends for); ``op_loads`` are the link loads of
    collectives (a dict filled op by op, or from a trace's arrays a
    :class:`~sim.system.grouped_loads.GroupedLoads`, read the same way); ``extra_deps`` the
    transfers an op waits for; ``stream_device`` the device instance a stream belongs to (for
    reports); ``devices_of`` the instances its ops span.
    """

    streams: dict[str, Device]
    stream_device: dict[str, str] = field(default_factory=dict)
    devices_of: dict[str, tuple[str, ...]] = field(default_factory=dict)
    memory_of: dict[str, str] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)
    op_loads: dict[int, tuple[Load, ...]] | GroupedLoads = field(default_factory=dict)
    #: a :class:`~sim.system.wait_table.WaitTable` (a dict is read the same way)
    extra_deps: WaitTable | dict[int, tuple[int, ...]] = field(default_factory=WaitTable)
    #: a :class:`~sim.system.transfer_rows.TransferRows` as planners make them (a list of
    #: :class:`Transfer` is read the same way)
    transfers: list[Transfer] = field(default_factory=_transfer_rows)
    copy_streams: tuple[str, ...] = ()
    first_transfer_id: int = 0
    keep_loads: set[int] = field(default_factory=set)
    quiet: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: the transfers' tuples of loads made so far, by route and bytes: transfers of equal
    #: bytes over one route share one (their resources registered with the first)
    loads_made: dict[tuple, tuple[Load, ...]] = field(default_factory=dict, compare=False,
                                                      repr=False)
    #: the makers of transfers over each route so far
    #: (:class:`~sim.system.route_transfers.RouteTransfers`, by route, name and stream)
    routes: dict[tuple, object] = field(default_factory=dict, compare=False, repr=False)

    def prune_uncontended(self, stream_of_op: dict[int, str]) -> None:
        """Drop resources that only one stream's ops load (those run one at a time, so nothing
        can contend; each op's own latency already covers its bytes): the engine then spends no
        events on them. Their (bandwidth, bytes) stay in ``quiet`` for the link tables (each
        resource's bytes summed in op order). Ops share their tuple of loads (one per
        collective and stage), so users and pruned tuples are worked out once per tuple."""
        users: dict[str, set[str]] = {}
        keep = self.keep_loads
        # (tuple of loads, user) pairs: ops whose loads are their whole memory time count
        # as shared ("kept")
        pairs = {(id(loads), stream_of_op[op_id], op_id in keep): loads
                 for op_id, loads in self.op_loads.items()}
        for (_, who, kept), loads in pairs.items():
            for ld in loads:
                users.setdefault(ld.resource, set()).update((who, "kept") if kept else (who,))
        for stream, res in self.memory_of.items():
            users.setdefault(res, set()).add(stream)
        from sim.system.transfer_rows import transfer_users

        for stream, loads in transfer_users(self.transfers):
            for ld in loads:
                users.setdefault(ld.resource, set()).update((stream, "transfer"))
        lone = {r for r, who in users.items() if len(who) == 1}
        if not lone:
            return
        if all(loads and not any(ld.resource in lone for ld in loads)
               for loads in pairs.values()):   # no op's loads change (a lone memory)
            for r in lone:
                self.resources.pop(r, None)
            return
        pruned: dict[int, tuple] = {}   # id(loads) -> (kept loads, loads on lone resources)
        moved: dict[str, list[float]] = {}
        op_loads: dict[int, tuple[Load, ...]] = {}
        for op_id, loads in self.op_loads.items():
            hit = pruned.get(id(loads))
            if hit is None:
                hit = pruned[id(loads)] = (
                    tuple(ld for ld in loads if ld.resource not in lone),
                    tuple((ld.resource, ld.nbytes) for ld in loads if ld.resource in lone))
            for res, nbytes in hit[1]:
                moved.setdefault(res, []).append(nbytes)
            if hit[0]:
                op_loads[op_id] = hit[0]
        self.op_loads = op_loads
        for res, parts in moved.items():
            bw, before = self.quiet.get(res, (self.resources[res], 0.0))
            # the running sum the ops' loads make, added left to right (accumulate)
            self.quiet[res] = (bw, sum_in_order(before, parts))
        for r in lone:
            self.resources.pop(r, None)
