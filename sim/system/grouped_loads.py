"""A run's link loads per op held as arrays: which ops load links, and which of a few shared
tuples of loads each one's is.

A plan built from a trace's arrays (:mod:`sim.system.array_plan`) gives every loaded
collective of one (op kind, stage) the same tuple of loads, and a 2,048-token run of a 70B
model on four pipeline stages has a million of them: a dict from op id to tuple, the engine's
second dict of resolved loads and the index read from that took 1.2 s of profiled CPU (0.69 s
+ 0.50 s for the last two) and ~100 B an op per dict. :class:`GroupedLoads`
is that mapping as ``ids`` (the ops, ascending), ``group`` (per op, its tuple's index) and
``tuples``; it reads as a dict does where a caller looks one op up, and whole-run readers
(:class:`~sim.load_index.LoadIndex`, :func:`~sim.system.usage.routed_bytes`) use the arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

#: op lookups answered by a binary search in ``ids`` before the per-op-id table is built (a
#: report reads a few thousand ops; the table costs ~0.09 s at 10M ops, a search ~1 us)
SEARCHES_BEFORE_TABLE = 4096
#: ``having`` searches ``ids`` for an array of ids under 1/SEARCH_SHARE of their length (its
#: ~log2(n) steps an id then cost less than the table's pass over every op id)
SEARCH_SHARE = 64


class GroupedLoads(Mapping):
    """Op id -> its loads, for ops ``ids`` (ascending op ids) whose loads are
    ``tuples[group[j]]`` (module docstring)."""

    def __init__(self, ids: np.ndarray, group: np.ndarray, tuples: list):
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.group = np.ascontiguousarray(group, dtype=np.int64)
        self.tuples = list(tuples)
        self._of: memoryview | None = None    # per op id its group (-1: none), when read
        self._searches = 0                     # lookups answered by a search so far

    def with_tuples(self, convert: Callable[[Any], Any]) -> GroupedLoads:
        """The same ops, each tuple replaced by ``convert(tuple)`` (once per tuple: ops that
        shared one share its conversion)."""
        done: dict[int, Any] = {}
        for t in self.tuples:
            if id(t) not in done:
                done[id(t)] = convert(t)
        return GroupedLoads(self.ids, self.group, [done[id(t)] for t in self.tuples])

    def counts(self) -> np.ndarray:
        """How many ops load each tuple (by index in ``tuples``)."""
        return np.bincount(self.group, minlength=len(self.tuples))

    def _lookup(self) -> memoryview:
        if self._of is None:
            size = int(self.ids[-1]) + 1 if len(self.ids) else 0
            of = np.full(size, -1, dtype=np.int64)
            of[self.ids] = self.group
            self._of = memoryview(of)
        return self._of

    def _group_of(self, op_id: int) -> int:
        """Op ``op_id``'s group (-1: none): by a search in ``ids`` for the first
        :data:`SEARCHES_BEFORE_TABLE` lookups, then from the table."""
        of = self._of
        if of is None and self._searches < SEARCHES_BEFORE_TABLE:
            self._searches += 1
            j = int(self.ids.searchsorted(op_id))
            return int(self.group[j]) if j < len(self.ids) and self.ids[j] == op_id else -1
        of = self._lookup()
        return of[op_id] if 0 <= op_id < len(of) else -1

    def get(self, op_id: int, default: Any = None) -> Any:
        g = self._group_of(op_id)
        return self.tuples[g] if g >= 0 else default

    def __getitem__(self, op_id: int) -> Any:
        got = self.get(op_id, self)
        if got is self:
            raise KeyError(op_id)
        return got

    def values_of(self, op_ids: np.ndarray, default: Any = None) -> list:
        """Each op id's loads in ``op_ids`` (``default`` where it has none): ``get`` for an
        array of ids, by one search in ``ids`` for them all (or from the table where it is
        built) - asked id by id, the table of every op id (8 bytes an op) is built after
        :data:`SEARCHES_BEFORE_TABLE` of them."""
        ids = np.asarray(op_ids, dtype=np.int64)
        if self._of is not None:
            of = np.asarray(self._of)
            inside = (ids >= 0) & (ids < len(of))
            groups = np.where(inside, of[np.where(inside, ids, 0)], -1) if len(of) else \
                np.full(len(ids), -1)
        elif len(self.ids):
            at = np.minimum(self.ids.searchsorted(ids), len(self.ids) - 1)
            groups = np.where(self.ids[at] == ids, self.group[at], -1)
        else:
            groups = np.full(len(ids), -1)
        tuples = self.tuples
        return [tuples[g] if g >= 0 else default for g in groups.tolist()]

    def having(self, op_ids: np.ndarray) -> np.ndarray:
        """Whether each op id in ``op_ids`` has loads (``in``, for an array of ids): by a
        search in ``ids`` for a few ids, from the table for many."""
        ids = np.asarray(op_ids, dtype=np.int64)
        if self._of is None and len(ids) * SEARCH_SHARE < len(self.ids):
            at = np.minimum(self.ids.searchsorted(ids), max(len(self.ids) - 1, 0))
            return self.ids[at] == ids if len(self.ids) else np.zeros(len(ids), dtype=bool)
        of = np.asarray(self._lookup())
        inside = (ids >= 0) & (ids < len(of))
        out = np.zeros(len(ids), dtype=bool)
        out[inside] = of[ids[inside]] >= 0
        return out

    def __contains__(self, op_id: object) -> bool:
        return isinstance(op_id, (int, np.integer)) and self.get(int(op_id), self) is not self

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids.tolist())

    def __len__(self) -> int:
        return len(self.ids)


def sums_in_order(start: dict[str, float], code: np.ndarray, tuples: list,
                  names: Iterable[str] | None = None) -> dict[str, float]:
    """Each resource's ``start[r]`` plus the bytes of every row's loads on it (row ``i``'s:
    ``tuples[code[i]]``, of :class:`~sim.system.plan.Load`), added row by row in order and
    each tuple's in its order: the float a ``+=`` loop over the rows gives (one compiled
    pass over the rows for all resources, :func:`sim.sum_kernel.load_sums`). For the
    resources the tuples name (``names``: those among them), each read from ``start``."""
    from sim.engine_aot import kernels

    resources = list(dict.fromkeys(ld.resource for t in tuples for ld in t))
    index = {r: j for j, r in enumerate(resources)}
    ptr = np.zeros(len(tuples) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in tuples], out=ptr[1:])
    res = np.array([index[ld.resource] for t in tuples for ld in t], dtype=np.int64)
    nb = np.array([ld.nbytes for t in tuples for ld in t], dtype=np.float64)
    wanted = resources if names is None else [r for r in names if r in index]
    sums = np.zeros(len(resources))
    for r in wanted:
        sums[index[r]] = start[r]
    kernels().load_sums(np.ascontiguousarray(code, dtype=np.int64), ptr, res, nb, sums)
    return {r: float(sums[index[r]]) for r in wanted}
