"""Run a planned trace on a system and check it: the part every system simulation shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.columns import Columns, column, gathered_sum, text_codes
from sim.engine import CostList, Engine, Timeline
from sim.fold_run import FoldedTable
from sim.invariants import check_invariants
from sim.result import run_columns
from sim.system.budget import tier_budget
from sim.system.plan import Plan
from sim.system.topology import System
from sim.system.usage import (
    check_system_invariants,
    resource_table,
    transfer_table,
)
from workloads.records import record
from workloads.trace import Trace

#: op tables from this many rows check their op invariants in a second thread, beside the
#: system tables (speed only: the same checks, the same results)
THREADED_CHECKS = 1 << 20

if TYPE_CHECKING:
    import pandas as pd

    from sim.system.placement import Placement


class OpLinks(Mapping):
    """Per op id with link loads: the names of the links it loads, in load order (a mapping
    read where a report draws an op's links; each distinct list of loads, which many ops
    share, is named once, when first read - not a tuple per op)."""

    def __init__(self, op_loads: Mapping):
        self._loads = op_loads
        self._names: dict[int, tuple[str, ...]] = {}

    def __getitem__(self, op_id: int) -> tuple[str, ...]:
        return self._named(self._loads[op_id])

    def names_of(self, op_ids: np.ndarray) -> list[tuple[str, ...]]:
        """Each op id's link names in ``op_ids`` (``()`` where it loads none): ``get`` for
        an array of ids (the loads' own ``values_of`` where they have one: one search)."""
        many = getattr(self._loads, "values_of", None)
        loads = many(op_ids) if many is not None else \
            [self._loads.get(i) for i in np.asarray(op_ids).tolist()]
        return [() if got is None else self._named(got) for got in loads]

    def _named(self, loads) -> tuple[str, ...]:
        got = self._names.get(id(loads))
        if got is None:
            got = self._names[id(loads)] = tuple(ld.resource for ld in loads)
        return got

    def having(self, op_ids: np.ndarray) -> np.ndarray:
        """Whether each op id in ``op_ids`` loads a link (the loads' own ``having`` where
        they have one)."""
        having = getattr(self._loads, "having", None)
        if having is not None:
            return having(op_ids)
        return np.fromiter((i in self._loads for i in np.asarray(op_ids).tolist()),
                           dtype=bool, count=len(op_ids))

    def __iter__(self):
        return iter(self._loads)

    def __len__(self) -> int:
        return len(self._loads)


@record
class Executed:
    """Tables of one engine run of a plan, with every invariant checked: numpy columns
    (``op_columns`` ...), and as DataFrames built on first access (``ops`` ...)."""

    timeline: Timeline
    op_columns: Columns | FoldedTable   # (a folded one-stream run's: sim/fold_run.py)
    transfer_columns: Columns
    resource_columns: Columns
    invariants: dict[str, str]
    makespan: float
    op_links: Mapping[int, tuple[str, ...]]

    @property
    def ops(self) -> pd.DataFrame:
        return self.op_columns.frame()

    @property
    def transfers(self) -> pd.DataFrame:
        return self.transfer_columns.frame()

    @property
    def resources(self) -> pd.DataFrame:
        return self.resource_columns.frame()


def memory_traffic(table: Any, plan: Plan, costs: list | None = None,
                   order: tuple | None = None) -> dict[str, float]:
    """DRAM bytes the ops of each contended memory moved through it (per representative);
    with ``costs``, ops of a unit inside the memory (a ``memory_share`` in their cost: PIM)
    move none. ``table``: the op table, a DataFrame or numpy columns. ``order``: the
    engine's ops by stream (``Timeline.stream_order``), whose segments are a stream's rows
    in row order where the table's rows are the op ids: each stream's bytes gathered from
    its segment (the same values in the same order, so the same sum) instead of a mask over
    the whole table per stream."""
    out: dict[str, float] = {}
    if not plan.memory_of:
        return out
    rows_of = _stream_rows(table, order)
    per_kind = _per_kind_shard_bytes(table, costs) if rows_of is not None else None
    if per_kind is not None:     # one value per op kind, gathered per stream
        values, by = per_kind
        for stream, res in plan.memory_of.items():   # (the sum of the gathered values)
            out[res] = out.get(res, 0.0) + gathered_sum(values, by[rows_of(stream)])
        return out
    per_shard = column(table, "dram_bytes") / column(table, "shards")
    if costs is not None:
        per_shard = np.where(_outside_memory(costs), per_shard, 0.0)
    if rows_of is None:
        labels, codes = text_codes(table, "stream")
    for stream, res in plan.memory_of.items():
        if rows_of is not None:
            got = per_shard[rows_of(stream)]
        else:
            got = per_shard[codes == (labels.index(stream) if stream in labels else -1)]
        out[res] = out.get(res, 0.0) + float(got.sum())
    return out


def _per_kind_shard_bytes(table: Any, costs: list | None
                          ) -> tuple[np.ndarray, np.ndarray] | None:
    """``(values, by)`` with ``values[by]`` the per-op DRAM bytes per shard of
    :func:`memory_traffic` (0 for ops inside the memory), where the table's DRAM bytes and
    shards are per-kind values gathered by one code array ``by`` that also indexes the costs
    (a :class:`CostList`, or none): the same division per op, done once per kind, so the
    table-long columns are not formed (a later reader gathers them through their kinds);
    else None."""
    if not isinstance(table, Columns):
        return None
    dram, shards = table.gathered("dram_bytes"), table.gathered("shards")
    if dram is None or shards is None or dram.by is not shards.by or \
            (costs is not None and not (isinstance(costs, CostList) and costs.index is dram.by)):
        return None
    per_shard = dram.values / shards.values
    if costs is not None:
        flags = _outside_flags(costs.table)
        if len(flags) != len(per_shard):
            return None
        per_shard = np.where(flags, per_shard, 0.0)
    return per_shard, dram.by


def _stream_rows(table: Any, order: tuple | None):
    """``rows(stream)``: the rows of ``stream``'s ops in row order, from the engine's
    ``order`` where the table's rows are the op ids 0..n-1 (else None)."""
    if order is None or not isinstance(table, Columns) or not table.is_range("id"):
        return None
    by_stream, bounds, names = order
    if len(by_stream) != len(table):
        return None
    code_of = {name: c for c, name in enumerate(names)}

    def rows(stream: str) -> np.ndarray:
        c = code_of.get(stream)
        return by_stream[bounds[c]:bounds[c + 1]] if c is not None else by_stream[:0]
    return rows


def _outside_memory(costs: list) -> np.ndarray:
    """Per op: whether its cost has no ``memory_share`` (it is not run inside the memory)."""
    if isinstance(costs, CostList):   # one flag per distinct cost
        return _outside_flags(costs.table)[costs.index]
    return np.array([c.detail.get("memory_share") is None for c in costs], dtype=bool)


def _outside_flags(table: list) -> np.ndarray:
    """Per distinct cost of ``table``: whether it has no ``memory_share`` (one True for an
    empty table)."""
    return np.array([c.detail.get("memory_share") is None for c in table] or [True])


def _system_tables(system: System, timeline: Timeline, table: Any, plan: Plan,
                   placed: Placement | None, need: dict[str, float]
                   ) -> tuple[Any, Any, float, dict[str, str]]:
    """The transfer and resource tables of a run, its makespan (s) and its system
    invariants (:func:`execute`)."""
    transfers = transfer_table(timeline)
    ops_end = table.makespan if isinstance(table, FoldedTable) else float(table["end_s"].max())
    makespan = max(ops_end, float(transfers["end_s"].max()) if len(transfers) else 0.0)
    resources = resource_table(timeline, plan, makespan,
                               memory_traffic(table, plan, timeline.costs,
                                              timeline.stream_order))
    capacity, resident = tier_budget(system, placed, need, plan)
    return transfers, resources, makespan, check_system_invariants(
        table, transfers, resources, capacity, resident)


def execute(system: System, trace: Trace, plan: Plan, placed: Placement | None,
            need: dict[str, float], coarsen: bool = True,
            totals: tuple[str, ...] = ()) -> Executed:
    """Engine run of ``plan``; op, transfer and resource tables; op and system invariants.
    ``coarsen``: the engine's coarsened events (same times; ``False``: one event per op).
    ``totals``: op-table columns whose whole-column sums the caller will ask for
    (:meth:`Columns.total`, kept by the table): where the op checks run in a second thread,
    this one sums them meanwhile (numpy's gathers and sums release the GIL) instead of
    waiting for the checks and then summing (the same sums: 17.2M ops, seven columns,
    ~0.35 s)."""
    timeline = Engine(plan.streams, coarsen).run(trace, plan)
    table = run_columns(trace, timeline, plan.stream_device)
    if isinstance(table, Columns) and len(table) >= THREADED_CHECKS:
        # the op invariants in a second thread while this one forms the other tables
        # (numpy's passes over the columns release the GIL; each lazy column is formed
        # once, under its lock); their error raised first, as when they ran first (threads
        # load here: a short run does not import them)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="xpusim-invariants") as pool:
            op_checks = pool.submit(check_invariants, trace, table)
            try:
                transfers, resources, makespan, system_checks = _system_tables(
                    system, timeline, table, plan, placed, need)
                for name in totals:
                    table.total(name)
            except BaseException:
                op_checks.result()
                raise
            invariants = op_checks.result()
    else:
        invariants = check_invariants(trace, table)
        transfers, resources, makespan, system_checks = _system_tables(
            system, timeline, table, plan, placed, need)
    invariants.update(system_checks)
    op_links = OpLinks(plan.op_loads)
    return Executed(timeline, table, transfers, resources, invariants, makespan, op_links)
