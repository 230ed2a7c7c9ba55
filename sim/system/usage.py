"""Tables of what a system run moved: transfers, per-resource bytes and busy time, tier occupancy.

These are the inputs of the system invariants (:func:`check_system_invariants`) and of the
report's link / tier tables and timeline tracks. All times in s, sizes in bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.columns import Columns, Text, cell, column, text_codes
from sim.engine import Timeline
from sim.fold_run import folded
from sim.invariants import REL_TOL, InvariantError
from sim.system.grouped_loads import GroupedLoads, sums_in_order
from sim.system.plan import Plan
from sim.system.transfer_rows import as_rows

TRANSFER_COLUMNS = ("id", "name", "tensor", "stream", "src", "dst", "route", "bytes",
                    "replicas", "phase", "layer", "step", "start_s", "end_s", "latency_s",
                    "floor_s", "energy_J", "release_op")
RESOURCE_COLUMNS = ("resource", "bandwidth_Bps", "bytes", "routed_bytes", "busy_s",
                    "utilisation", "contended")


def transfer_table(timeline: Timeline) -> Columns:
    """One row per transfer (bytes per replica; ``floor_s`` = bytes / slowest link), as numpy
    columns (``.frame()``: the DataFrame)."""
    rows = as_rows(timeline.transfers)
    start, end = timeline.transfer_start, timeline.transfer_end

    def route_text(field: str, label=str) -> Text:
        labels, code = rows.route_column(field)
        return Text.of_codes([label(v) for v in labels], code)

    latency, route = rows.route_column("latency")
    replicas = rows.route_column("replicas")[0]
    return Columns({
        "id": rows.column("id"),
        "name": route_text("name"),
        "tensor": route_text("tensor"),
        "stream": route_text("stream"),
        "src": route_text("src"),
        "dst": route_text("dst"),
        "route": route_text("hops", " ".join),
        "bytes": rows.column("nbytes"),
        "replicas": np.array(replicas, dtype=np.int64)[route] if len(rows) else
        np.zeros(0, dtype=np.int64),
        "phase": Text.of_codes(rows.phases, rows.column("phase")),
        "layer": rows.column("layer"),
        "step": rows.column("step"),
        "start_s": start,
        "end_s": end,
        "latency_s": end - start,
        "floor_s": (np.array(latency, dtype=float)[route] if len(rows) else np.zeros(0)) +
        rows.column("floor"),
        "energy_J": rows.column("energy"),
        "release_op": rows.column("release"),
    }, TRANSFER_COLUMNS, len(rows))


def routed_bytes(plan: Plan) -> dict[str, float]:
    """Bytes each resource must carry, summed from the plan's tasks (independently of the run)."""
    out: dict[str, float] = {name: 0.0 for name in plan.resources}
    if isinstance(plan.op_loads, GroupedLoads):     # the same sums, in the same order
        out.update(sums_in_order(out, plan.op_loads.group, plan.op_loads.tuples))
    else:
        for loads in plan.op_loads.values():
            for ld in loads:
                out[ld.resource] += ld.nbytes
    rows = as_rows(plan.transfers)
    # each row's bytes on each resource, added in row order from the ops' sum
    out.update(sums_in_order(out, rows.column("loads"), rows.loads))
    return out


def resource_table(timeline: Timeline, plan: Plan, makespan: float,
                   memory_bytes: dict[str, float]) -> Columns:
    """Per contended resource: bytes the engine moved through it, bytes routed to it by the
    plan (plus op memory traffic for memories), busy time and utilisation (numpy columns;
    ``.frame()``: the DataFrame)."""
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
    return Columns.from_rows(rows, RESOURCE_COLUMNS)


def occupancy_peak(transfers: Any, op_end: np.ndarray) -> dict[str, float]:
    """Peak staging bytes per destination tier: a transfer holds its buffer from its start to
    the end of the op that releases it (``transfers``: a DataFrame or numpy columns)."""
    out: dict[str, float] = {}
    if not len(transfers):
        return out
    release = column(transfers, "release_op")
    staged = release != -2   # -2: lands in place, stages nothing
    if not staged.any():
        return out
    labels, codes = text_codes(transfers, "dst")
    start, end, nbytes = (column(transfers, c) for c in ("start_s", "end_s", "bytes"))
    for j in sorted(range(len(labels)), key=lambda j: labels[j]):
        sel = staged & (codes == j)
        if not sel.any():
            continue
        dst = labels[j]
        t0 = start[sel]
        rel = release[sel]
        t1 = np.where(rel >= 0, op_end[np.clip(rel, 0, None)], end[sel])
        times = np.concatenate([t0, t1])
        delta = np.concatenate([nbytes[sel], -nbytes[sel]])
        order = np.lexsort((delta, times))  # frees before allocations at the same instant
        out[str(dst)] = float(np.cumsum(delta[order]).max())
    return out


def _in_id_order(ids: np.ndarray) -> bool:
    """Whether row ``i`` holds op ``i`` for every row (a run's own table: no sort needed)."""
    return not len(ids) or (int(ids[0]) == 0 and bool((ids[1:] == ids[:-1] + 1).all()))


def check_system_invariants(ops: Any, transfers: Any, resources: Any,
                            capacity: dict[str, float],
                            resident: dict[str, float]) -> dict[str, str]:
    """Bytes per link = routed bytes; no tier over capacity at any moment; no transfer beats its
    route; the makespan covers the busiest resource and stream. Raises InvariantError. The
    tables are DataFrames or :class:`sim.columns.Columns`."""
    out: dict[str, str] = {}
    if len(resources):
        moved, routed = column(resources, "bytes"), column(resources, "routed_bytes")
        for i in range(len(resources)):
            if not np.isclose(moved[i], routed[i], rtol=1e-9, atol=1e-3):
                raise InvariantError(f"resource {cell(resources, 'resource', i)} carried "
                                     f"{moved[i]:.6g} B but {routed[i]:.6g} B were routed "
                                     "through it")
    out["bytes_per_link_match_routes"] = "passed"
    peak: dict[str, float] = {}
    if len(transfers):   # staging buffers are released at an op's end (by op id)
        ids, op_end = column(ops, "id"), column(ops, "end_s")
        if not _in_id_order(ids):
            op_end = op_end[np.argsort(ids, kind="stable")]
        peak = occupancy_peak(transfers, op_end)
    for tier, cap in capacity.items():
        used = resident.get(tier, 0.0) + peak.get(tier, 0.0)
        if used > cap * (1 + REL_TOL):
            raise InvariantError(f"tier {tier} holds {used:.6g} B at its peak, over its "
                                 f"capacity {cap:.6g} B")
    out["tiers_within_capacity"] = "passed"
    if len(transfers):
        latency, floor = column(transfers, "latency_s"), column(transfers, "floor_s")
        slack = latency - floor * (1 - REL_TOL) + \
            4 * np.spacing(np.abs(column(transfers, "end_s")))
        if (slack < 0).any():
            i = int(np.argmin(slack))
            raise InvariantError(f"transfer {cell(transfers, 'name', i)} took "
                                 f"{latency[i]:.6g} s, faster than its route allows "
                                 f"({floor[i]:.6g} s)")
    out["transfers_ge_route_bound"] = "passed"
    fold = folded(ops)   # a folded one-stream run: its end and busy time per op kind
    ops_end = fold.makespan if fold is not None else \
        float(column(ops, "end_s").max()) if len(ops) else 0.0
    makespan = max(ops_end, float(column(transfers, "end_s").max()) if len(transfers) else 0.0)
    busiest = float(column(resources, "busy_s").max()) if len(resources) else 0.0
    if fold is not None:
        busiest = max(busiest, fold.total("latency_s"))
    elif "stream" in ops and len(ops):
        labels, codes = text_codes(ops, "stream")
        per_stream = np.bincount(codes, weights=column(ops, "latency_s"),
                                 minlength=len(labels))
        busiest = max(busiest, float(per_stream.max()))
    if busiest > makespan * (1 + REL_TOL) + 1e-15:
        raise InvariantError(f"a resource or stream was busy {busiest:.6g} s, longer than the "
                             f"makespan {makespan:.6g} s")
    out["makespan_ge_busiest_resource"] = "passed"
    return out
