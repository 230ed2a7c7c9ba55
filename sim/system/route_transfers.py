"""The transfers of one tensor over one route, made as a plan builder walks its runs or ops.

A route's figures (its hops, each resource's copies of the bytes and access-pattern scale,
latency, bottleneck, energy per bit) do not depend on the bytes moved, and a plan moves the
same bytes over one route many times (a layer's weights every step, a step's KV cache every
layer, an attention op's activations). :class:`RouteTransfers` holds the route's figures and,
per byte count, the transfer's tuple of loads (shared with every transfer of those bytes over
the route, through ``Plan.loads_made``), floor and energy, so making one more transfer is one
row of the plan's :class:`~sim.system.transfer_rows.TransferRows`.
"""

from __future__ import annotations

import math

from sim.system.plan import Load, Plan
from sim.system.transfer_rows import TransferRows, as_rows

IN_PLACE = -2   # Transfer.release of a transfer that lands in its tensor's own home: no staging


class RouteTransfers:
    """Makes the transfers named ``name`` (tensor class ``tensor``, tiers ``src`` -> ``dst``)
    on copy stream ``stream`` over one route. ``key`` names the route (and ``replicas``) in
    ``plan.loads_made``; ``terms``: each load as (resource, copies of the bytes it carries,
    access-pattern scale, bandwidth B/s); ``latency`` (s), ``bottleneck`` (B/s) and
    ``energy_bit`` (J per bit) are the route's."""

    __slots__ = ("plan", "key", "name", "tensor", "stream", "src", "dst", "replicas", "hops",
                 "terms", "latency", "bottleneck", "energy_bit", "code", "_by_bytes")

    def __init__(self, plan: Plan, key: tuple, name: str, tensor: str, stream: str, src: str,
                 dst: str, replicas: int, hops: tuple[str, ...],
                 terms: tuple[tuple[str, float, float, float], ...], latency: float,
                 bottleneck: float, energy_bit: float):
        self.plan, self.key, self.name, self.tensor, self.stream = plan, key, name, tensor, stream
        self.src, self.dst, self.replicas, self.hops, self.terms = src, dst, replicas, hops, terms
        self.latency, self.bottleneck, self.energy_bit = latency, bottleneck, energy_bit
        self._by_bytes: dict[float, tuple[int, float, float]] = {}
        if not isinstance(plan.transfers, TransferRows):
            plan.transfers = as_rows(plan.transfers)
        self.code = plan.transfers.route_code((name, tensor, stream, src, dst, replicas, hops,
                                               latency))

    def add(self, nbytes: float, deps: tuple[int, ...], phase: str, layer: int, step: int,
            release: int, anchor: float) -> int:
        """Append to the plan one transfer of ``nbytes`` per replica; returns its id (the
        plan's next)."""
        loads, floor, energy = self.figures(nbytes)
        rows = self.plan.transfers
        return rows.add(self.plan.first_transfer_id + len(rows), self.code, loads, nbytes,
                        floor, energy, deps, phase, layer, step, release, anchor)

    def figures(self, nbytes: float) -> tuple[int, float, float]:
        """(code of the tuple of loads in the plan's rows, floor s, energy J) of a transfer of
        ``nbytes``, made with the first transfer of those bytes over the route."""
        got = self._by_bytes.get(nbytes)
        if got is None:
            loads, floor, energy = self._figures(nbytes)
            got = self._by_bytes[nbytes] = (self.plan.transfers.loads_code(loads), floor,
                                            energy)
        return got

    def _figures(self, nbytes: float) -> tuple[tuple[Load, ...], float, float]:
        """(loads, floor s, energy J) of a transfer of ``nbytes``; the loads' resources
        registered with the first transfer over the route to make them."""
        plan = self.plan
        loads = plan.loads_made.get((self.key, nbytes))
        if loads is None:
            for res, _, _, rate in self.terms:
                plan.resources.setdefault(res, rate)
            loads = plan.loads_made[self.key, nbytes] = tuple(
                Load(res, nbytes * times * scale) for res, times, scale, _ in self.terms)
        floor = nbytes / self.bottleneck if math.isfinite(self.bottleneck) else 0.0
        return loads, floor, nbytes * self.replicas * 8 * self.energy_bit
