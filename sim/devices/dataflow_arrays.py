"""A dataflow chip's fused kernels found in a trace held as arrays (no op object per op).

:meth:`sim.devices.dataflow.DataflowDevice.split_trace` groups a trace's ops per (phase,
step, layer, micro-batch, rank), cuts each group at its collectives into segments and prices
each distinct segment once (its ops' computations and shards, and whether it starts its
kernel) as one spatial pipeline, spreading the segment's cost over its ops. :func:`fused_kinds`
finds the same groups and segments in the arrays and prices the same segments, in the same
order; each op's cost then depends on its segment and its place there, so the ops get kinds
of their own per (op kind, segment, place) (the same fields as their kind: the trace's ops
are unchanged) and the costs are attributed per kind (:class:`KindCosts`), so the engine
prices one op per kind.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.columns import in_first_order, run_codes
from sim.devices.base import Cost
from workloads.trace import COLLECTIVE, CompactOps, OpKind


class KindCosts:
    """The attribution of a split trace held as arrays: ``get(op_id)`` gives the (computation,
    fused cost) of the op's kind (None for an op priced alone: a collective), as the per-op
    dict of an op-by-op split does."""

    def __init__(self, kind: np.ndarray, per_kind: list[tuple | None],
                 arrays: CompactOps | None = None):
        self._kind, self._per_kind = kind, per_kind
        self.arrays = arrays   # the split trace's arrays these kinds are of

    def costs(self) -> list[Cost | None]:
        """Each kind's fused cost (None for a kind priced alone)."""
        return [None if got is None else got[1] for got in self._per_kind]

    def get(self, op_id: int, default=None):
        if 0 <= op_id < len(self._kind):
            got = self._per_kind[self._kind[op_id]]
            return default if got is None else got
        return default

    def clear(self) -> None:
        self._per_kind = []
        self._kind = self._kind[:0]
        self.arrays = None


def fused_kinds(arrays: CompactOps, segment_cost: Callable[[list[OpKind], bool], tuple],
                memo: dict[tuple, tuple]) -> tuple[CompactOps, KindCosts, int]:
    """(the arrays with each op's kind split per segment and place, the attribution of the
    segments' costs to those kinds, the number of groups: the kernels). ``segment_cost(ops,
    first)`` prices a segment (``first``: it starts its group's kernel): its placement and
    each op's cost; ``memo``: the device's segment costs by ``(computations' ids, shards,
    first)``, read and filled as the op-by-op split fills it."""
    n = len(arrays)
    kinds = arrays.kinds
    kind = arrays.kind.astype(np.int64)
    if not n:
        return arrays, KindCosts(kind, []), 0
    collective = np.array([k.kind == COLLECTIVE for k in kinds])[kind]
    # the group of each op: (phase, step, layer, micro-batch, rank), in first-op order
    rank = np.array([k.rank for k in kinds], dtype=np.int64)[kind] + 1
    parts = (arrays.phase.astype(np.int64), arrays.step.astype(np.int64),
             arrays.layer.astype(np.int64) + 1, arrays.microbatch.astype(np.int64), rank)
    key = np.zeros(n, dtype=np.int64)
    for p in parts:
        key = key * (int(p.max()) + 1) + p
    _, _, group = in_first_order(key)
    order = np.argsort(group, kind="stable")           # groups in turn, each in op order
    g, c = group[order], collective[order]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = g[1:] != g[:-1]
    after_coll = np.zeros(n, dtype=bool)
    after_coll[1:] = c[:-1]
    # segments: runs of a group's ops between its collectives, in the order they are priced
    inside = np.flatnonzero(~c)
    starts = (new_group | after_coll)[inside]
    seg_first = np.flatnonzero(starts)                # each segment's first, in ``inside``
    seg_code = np.cumsum(starts) - 1                  # each op's segment
    seg_group = g[inside[seg_first]]
    first_of_group = np.ones(len(seg_first), dtype=bool)   # it starts its group's kernel
    first_of_group[1:] = seg_group[1:] != seg_group[:-1]
    bounds = np.append(seg_first, len(inside))
    # per kind: its computation and shards, as the segment signature reads them
    shape_of: dict[tuple, int] = {}
    shape = np.array([shape_of.setdefault((id(k.compute), k.shards), len(shape_of))
                      for k in kinds], dtype=np.int64)[kind]
    ops_sorted = order[inside]
    # each segment's signature (its ops' shapes in order, whether it starts its kernel),
    # numbered as they first occur: the order in which the distinct segments are priced
    same_ops = run_codes(shape[ops_sorted], bounds)
    _, sig_first, seg_sig = in_first_order(same_ops * 2 + first_of_group)
    sig_costs: list[list[Cost]] = []
    computes = [k.compute for k in kinds]
    for s in sig_first.tolist():
        a, b = int(bounds[s]), int(bounds[s + 1])
        starts_kernel = bool(first_of_group[s])
        # the segment's ops as their kinds: all that pricing it reads of an op
        ops = [kinds[k] for k in kind[np.sort(ops_sorted[a:b])].tolist()]
        full = (tuple(id(op.compute) for op in ops), tuple(op.shards for op in ops),
                starts_kernel)
        hit = memo.get(full)
        if hit is None:
            hit = memo[full] = segment_cost(ops, starts_kernel)
        sig_costs.append(hit[1])
    # each op's new kind: (its kind, its segment's signature, its place there)
    place = np.arange(len(inside)) - seg_first[seg_code]
    width = int(place.max()) + 1 if len(place) else 1
    n_kinds = len(kinds)
    new_key = kind.copy()                     # a collective keeps its kind (priced alone)
    new_key[ops_sorted] = ((seg_sig[seg_code] + 1) * width + place) * n_kinds + \
        kind[ops_sorted]
    values, _, new_kind = in_first_order(new_key)
    per_kind: list[tuple | None] = []
    for v in values.tolist():
        if v < n_kinds:
            per_kind.append(None)
            continue
        k, rest = v % n_kinds, v // n_kinds
        sig, pos = rest // width - 1, rest % width
        per_kind.append((computes[k], sig_costs[sig][pos]))
    split = CompactOps([kinds[v % n_kinds] for v in values.tolist()],
                       new_kind.astype(arrays.kind.dtype), arrays.phases, arrays.phase,
                       arrays.layer, arrays.step, arrays.tokens, arrays.requests,
                       arrays.microbatch, arrays.dep_ptr, arrays.dep_idx)
    return split, KindCosts(new_kind, per_kind, split), int(g.max()) + 1
