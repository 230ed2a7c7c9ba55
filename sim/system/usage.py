"""Tables of what a system run moved: transfers, per-resource bytes and busy time, tier occupancy.

These are the inputs of the system invariants (:func:`check_system_invariants`) and of the
report's link / tier tables and timeline tracks. All times in s, sizes in bytes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.engine import Timeline
from sim.invariants import REL_TOL, InvariantError
from sim.system.plan import Plan

TRANSFER_COLUMNS = ("id", "name", "tensor", "stream", "src", "dst", "route", "bytes",
                    "replicas", "phase", "layer", "step", "start_s", "end_s", "latency_s",
                    "floor_s", "energy_J", "release_op")


def transfer_table(timeline: Timeline) -> pd.DataFrame:
    """One row per transfer (bytes per replica; ``floor_s`` = bytes / slowest link)."""
    trs = timeline.transfers
    start, end = timeline.transfer_start, timeline.transfer_end
    return pd.DataFrame({
        "id": np.array([t.id for t in trs], dtype=np.int64),
        "name": [t.name for t in trs],
        "tensor": [t.tensor for t in trs],
        "stream": [t.stream for t in trs],
        "src": [t.src for t in trs],
        "dst": [t.dst for t in trs],
        "route": [" ".join(t.hops) for t in trs],
        "bytes": np.array([t.nbytes for t in trs], dtype=float),
        "replicas": np.array([t.replicas for t in trs], dtype=np.int64),
        "phase": [t.phase for t in trs],
        "layer": np.array([t.layer for t in trs], dtype=np.int64),
        "step": np.array([t.step for t in trs], dtype=np.int64),
        "start_s": start,
        "end_s": end,
        "latency_s": end - start,
        "floor_s": np.array([t.latency + t.floor for t in trs], dtype=float),
        "energy_J": np.array([t.energy_J for t in trs], dtype=float),
        "release_op": np.array([t.release for t in trs], dtype=np.int64),
    }, columns=list(TRANSFER_COLUMNS))


def routed_bytes(plan: Plan) -> dict[str, float]:
    """Bytes each resource must carry, summed from the plan's tasks (independently of the run)."""
    out: dict[str, float] = {name: 0.0 for name in plan.resources}
    for loads in plan.op_loads.values():
        for ld in loads:
            out[ld.resource] += ld.nbytes
    for tr in plan.transfers:
        for ld in tr.loads:
            out[ld.resource] += ld.nbytes
    return out


def resource_table(timeline: Timeline, plan: Plan, makespan: float,
                   memory_bytes: dict[str, float]) -> pd.DataFrame:
    """Per contended resource: bytes the engine moved through it, bytes routed to it by the
    plan (plus op memory traffic for memories), busy time and utilisation."""
    routed = routed_bytes(plan)
    rows = []
    for name, res in timeline.resources.items():
        expect = routed.get(name, 0.0) + memory_bytes.get(name, 0.0)
        rows.append({"resource": name, "bandwidth_Bps": res.bandwidth,
                     "bytes": res.bytes_moved, "routed_bytes": expect,
                     "busy_s": res.busy_time,
                     "utilisation": res.utilisation(makespan), "contended": True})
    for name, (bw, moved) in plan.quiet.items():   # one stream only: never shared
        busy = moved / bw
        rows.append({"resource": name, "bandwidth_Bps": bw, "bytes": moved,
                     "routed_bytes": moved, "busy_s": busy,
                     "utilisation": busy / makespan if makespan > 0 else 0.0,
                     "contended": False})
    return pd.DataFrame(rows, columns=["resource", "bandwidth_Bps", "bytes", "routed_bytes",
                                       "busy_s", "utilisation", "contended"])


def occupancy_peak(transfers: pd.DataFrame, op_end: np.ndarray) -> dict[str, float]:
    """Peak staging bytes per destination tier: a transfer holds its buffer from its start to
    the end of the op that releases it."""
    out: dict[str, float] = {}
    staged = transfers[transfers["release_op"] != -2]   # -2: lands in place, stages nothing
    if staged.empty:
        return out
    for dst, grp in staged.groupby("dst", sort=True):
        t0 = grp["start_s"].to_numpy()
        rel = grp["release_op"].to_numpy()
        t1 = np.where(rel >= 0, op_end[np.clip(rel, 0, None)], grp["end_s"].to_numpy())
        times = np.concatenate([t0, t1])
        delta = np.concatenate([grp["bytes"].to_numpy(), -grp["bytes"].to_numpy()])
        order = np.lexsort((delta, times))  # frees before allocations at the same instant
        out[str(dst)] = float(np.cumsum(delta[order]).max())
    return out


def check_system_invariants(ops: pd.DataFrame, transfers: pd.DataFrame,
                            resources: pd.DataFrame, capacity: dict[str, float],
                            resident: dict[str, float]) -> dict[str, str]:
    """Bytes per link = routed bytes; no tier over capacity at any moment; no transfer beats its
    route; the makespan covers the busiest resource and stream. Raises InvariantError."""
    out: dict[str, str] = {}
    for row in resources.itertuples(index=False):
        if not np.isclose(row.bytes, row.routed_bytes, rtol=1e-9, atol=1e-3):
            raise InvariantError(f"resource {row.resource} carried {row.bytes:.6g} B but "
                                 f"{row.routed_bytes:.6g} B were routed through it")
    out["bytes_per_link_match_routes"] = "passed"
    op_end = ops.sort_values("id")["end_s"].to_numpy()
    peak = occupancy_peak(transfers, op_end)
    for tier, cap in capacity.items():
        used = resident.get(tier, 0.0) + peak.get(tier, 0.0)
        if used > cap * (1 + REL_TOL):
            raise InvariantError(f"tier {tier} holds {used:.6g} B at its peak, over its "
                                 f"capacity {cap:.6g} B")
    out["tiers_within_capacity"] = "passed"
    if not transfers.empty:
        slack = transfers["latency_s"].to_numpy() - transfers["floor_s"].to_numpy() * \
            (1 - REL_TOL) + 4 * np.spacing(np.abs(transfers["end_s"].to_numpy()))
        if (slack < 0).any():
            i = int(np.argmin(slack))
            row = transfers.iloc[i]
            raise InvariantError(f"transfer {row['name']} took {row['latency_s']:.6g} s, "
                                 f"faster than its route allows ({row['floor_s']:.6g} s)")
    out["transfers_ge_route_bound"] = "passed"
    makespan = max(float(ops["end_s"].max()) if len(ops) else 0.0,
                   float(transfers["end_s"].max()) if len(transfers) else 0.0)
    busiest = float(resources["busy_s"].max()) if len(resources) else 0.0
    per_stream = ops.groupby("stream")["latency_s"].sum() if "stream" in ops else []
    busiest = max([busiest, *list(per_stream)])
    if busiest > makespan * (1 + REL_TOL) + 1e-15:
        raise InvariantError(f"a resource or stream was busy {busiest:.6g} s, longer than the "
                             f"makespan {makespan:.6g} s")
    out["makespan_ge_busiest_resource"] = "passed"
    return out
