"""Memory budgets of a system run: placement on the system's tiers, staging room for transfers,
what each tier holds, and the run's system-level metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sim.columns import Text, column, text_codes
from sim.devices.base import SimError
from sim.fold_run import folded
from sim.system.plan import Plan
from sim.system.schedule import Policies, home_tier
from sim.system.topology import System
from sim.system.transfer_rows import as_rows
from workloads.ragged import ordered_sums

if TYPE_CHECKING:  # placement loads where a run places tensors (start-up, issue 18)
    from sim.system.placement import Placement, PlacementSpec


def _gib(x: float) -> str:
    return f"{x / 2**30:.1f} GiB"


def used_devices(system: System, count: int) -> list[str]:
    """The first ``count`` devices of the primary component (the ones a run uses)."""
    return [d.name for d in system.compute_devices()[:count]]


def place_on_system(system: System, spec: PlacementSpec, need: dict[str, float],
                    count: int) -> Placement:
    """Place the per-device demands (class -> bytes; ``total`` ignored) on the system's tiers:
    the device's
    own memory (``gpu.hbm``) and every standalone tier, shared by the devices in use."""
    from sim.system.placement import TierRoom, place

    home = home_tier(system)
    dev = system.compute_devices()[0]
    users = set(used_devices(system, count))
    tiers = {home: TierRoom(home, system.tiers[dev.memory].capacity, 1)}
    primary = {d.name for d in system.compute_devices()}
    for tier in system.tiers.values():
        if tier.device in primary:
            continue
        if tier.device:   # another device's own memory (a CSD's flash): by its full name
            tiers[tier.name] = TierRoom(tier.name, tier.capacity, max(1, len(users)))
            continue
        sharers = max(1, len(users & set(tier.shared_by)))
        tiers[tier.name] = TierRoom(tier.name, tier.capacity, sharers)
    demands = {k: v for k, v in need.items() if k != "total"}
    return place(spec, demands, tiers, home)


def _runs_bytes(plan: Plan) -> dict[str, np.ndarray]:
    """Per destination tier (in the order transfers first stage to it): bytes staged per run
    of ops, runs by release op (transfers sharing a release op summed in id order)."""
    rows = as_rows(plan.transfers)
    release = rows.column("release")
    staged = np.flatnonzero(release >= 0)
    if not len(staged):
        return {}
    labels, route = rows.route_column("dst")
    text = Text.of_codes(labels, route[staged])
    dst, rel, nbytes = text.codes, release[staged], rows.column("nbytes")[staged]
    order = np.lexsort((rel, dst))               # by tier, then release; stable: id order
    dst, rel, nbytes = dst[order], rel[order], nbytes[order]
    new = np.ones(len(dst), dtype=bool)
    new[1:] = (dst[1:] != dst[:-1]) | (rel[1:] != rel[:-1])
    group = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    total = ordered_sums(group, nbytes, len(first))   # left to right from 0.0, as += does
    tier_of = dst[first]
    return {label: total[tier_of == t] for t, label in enumerate(text.labels)}


def window_peak(runs: np.ndarray, window: int) -> float:
    """The largest sum of ``window`` consecutive runs (fewer at the end), each added left to
    right from 0 as Python's ``sum`` adds them."""
    total = np.zeros(len(runs))
    for k in range(min(window, len(runs))):
        total[:len(runs) - k] = total[:len(runs) - k] + runs[k:]
    return float(total.max())


def check_staging(system: System, plan: Plan, placed: Placement, policies: Policies) -> None:
    """Raise SimError when the resident tensors plus the staging buffers prefetching needs
    (``prefetch + 1`` layers in flight) exceed a device's memory."""
    home = home_tier(system)
    resident = placed.on_tier(home)
    window = max(0, policies.prefetch) + 1
    for dst, runs in _runs_bytes(plan).items():
        if dst not in system.tiers or system.tiers[dst].device not in {
                d.name for d in system.compute_devices()}:
            continue
        cap = system.tiers[dst].capacity
        peak = window_peak(runs, window)
        if resident + peak > cap:
            raise SimError(f"--prefetch: staging {window} layer(s) of offloaded tensors needs "
                           f"{_gib(peak)} on {dst} next to {_gib(resident)} resident, but it "
                           f"has {_gib(cap)}; prefetch fewer layers or offload more")


def tier_budget(system: System, placed: Placement | None, need: dict[str, float],
                plan: Plan) -> tuple[dict[str, float], dict[str, float]]:
    """(capacity, resident bytes) per tier of the system that the run uses."""
    home = home_tier(system)
    count = len({d for devs in plan.devices_of.values() for d in devs})
    capacity: dict[str, float] = {}
    resident: dict[str, float] = {}
    for name in used_devices(system, count):
        tier = system.tier_of_device(name)
        capacity[tier.name] = tier.capacity
        resident[tier.name] = placed.on_tier(home) if placed is not None else need["total"]
    if placed is not None:
        primary = {d.name for d in system.compute_devices()}
        for tier in system.tiers.values():
            if tier.device not in primary and placed.on_tier(tier.name) > 0:
                capacity[tier.name] = tier.capacity
                resident[tier.name] = placed.total(tier.name)
    return capacity, resident


def system_metrics(table: Any, transfers: Any, resources: Any,
                   placed: Placement | None) -> dict[str, float]:
    """Metrics a system run adds: op time summed over streams, transfers, busiest resource.
    The tables are DataFrames or :class:`sim.columns.Columns`."""
    fold = folded(table)   # a folded one-stream run: one stream, busy time per op kind
    out = {"op_time_sum_s": fold.total("latency_s"), "streams": 1.0} if fold is not None else \
        {"op_time_sum_s": float(column(table, "latency_s").sum()),
         "streams": float(len(text_codes(table, "stream")[0]))}
    if len(transfers):
        out["transfers"] = float(len(transfers))
        out["transfer_bytes"] = float((column(transfers, "bytes") *
                                       column(transfers, "replicas")).sum())
        out["transfer_time_sum_s"] = float(column(transfers, "latency_s").sum())
    if len(resources):
        utilisation = column(resources, "utilisation")
        out["busiest_resource_utilisation"] = float(utilisation[int(utilisation.argmax())])
    if placed is not None:
        for cls, tiers in placed.bytes.items():
            for tier, nbytes in tiers.items():
                out[f"placed_{cls}@{tier}_bytes"] = float(nbytes)
    return out
