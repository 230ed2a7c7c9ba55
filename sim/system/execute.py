"""Run a planned trace on a system and check it: the part every system simulation shares."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sim.engine import Engine, Timeline
from sim.invariants import check_invariants
from sim.result import op_table
from sim.system.budget import tier_budget
from sim.system.placement import Placement
from sim.system.plan import Plan
from sim.system.topology import System
from sim.system.usage import check_system_invariants, resource_table, transfer_table
from workloads.trace import Trace


@dataclass
class Executed:
    """Tables of one engine run of a plan, with every invariant checked."""

    timeline: Timeline
    ops: pd.DataFrame
    transfers: pd.DataFrame
    resources: pd.DataFrame
    invariants: dict[str, str]
    makespan: float
    op_links: dict[int, tuple[str, ...]]


def memory_traffic(table: pd.DataFrame, plan: Plan, costs: list | None = None) -> dict[str, float]:
    """DRAM bytes the ops of each contended memory moved through it (per representative);
    with ``costs``, ops of a unit inside the memory (a ``memory_share`` in their cost: PIM)
    move none."""
    out: dict[str, float] = {}
    if not plan.memory_of:
        return out
    per_shard = table["dram_bytes"] / table["shards"]
    if costs is not None:
        per_shard = per_shard.where([c.detail.get("memory_share") is None for c in costs], 0.0)
    for stream, res in plan.memory_of.items():
        sel = table["stream"] == stream
        out[res] = out.get(res, 0.0) + float(per_shard[sel].sum())
    return out


def execute(system: System, trace: Trace, plan: Plan, placed: Placement | None,
            need: dict[str, float], coarsen: bool = True) -> Executed:
    """Engine run of ``plan``; op, transfer and resource tables; op and system invariants.
    ``coarsen``: the engine's coarsened events (same times; ``False``: one event per op)."""
    timeline = Engine(plan.streams, coarsen).run(trace, plan)
    table = op_table(trace, timeline, plan.stream_device)
    invariants = check_invariants(trace, table)
    transfers = transfer_table(timeline)
    makespan = max(float(table["end_s"].max()),
                   float(transfers["end_s"].max()) if len(transfers) else 0.0)
    resources = resource_table(timeline, plan, makespan,
                               memory_traffic(table, plan, timeline.costs))
    capacity, resident = tier_budget(system, placed, need, plan)
    invariants.update(check_system_invariants(table, transfers, resources, capacity, resident))
    op_links = {i: tuple(ld.resource for ld in loads) for i, loads in plan.op_loads.items()}
    return Executed(timeline, table, transfers, resources, invariants, makespan, op_links)
