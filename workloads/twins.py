"""Ops of a trace held as arrays split into two shares, each share an op (no object per op).

A co-processed op (Duplex: an xPU and a logic-PIM run parts of one GEMV) becomes two ops, the
op itself with the first share of its FLOPs and bytes and a *twin* after it with the rest; an
op that depends on a split op waits for both. :func:`twinned` does this on the arrays of a
:class:`~workloads.trace.CompactOps`, keyed by (op kind, whether in the prefill): the ops it
materialises equal, field by field, those of splitting the materialised ops one by one
(``sim.devices.xpu_pim.XpuPimDevice.split_trace`` on op objects; tests/test_duplex.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from workloads.fold import first_seen
from workloads.ragged import slice_indices
from workloads.trace import CompactOps, Op, OpKind, ops_at


def twinned(arrays: CompactOps, share_of: Callable[[Op], float], suffix: str,
            prepare: Callable[[list[Op]], object] | None = None) -> CompactOps:
    """``arrays`` with each op whose first share ``share_of(op) < 1`` followed by its twin,
    named ``<name><suffix>``, carrying ``1 - share`` of its FLOPs and bytes (the op keeps
    ``share`` of them). ``share_of`` is asked once per (op kind, in the prefill or not), on
    that pair's first op (``prepare`` is handed those ops first, e.g. to price them at
    once). Ids are renumbered in order; each dependency on a split op becomes a dependency
    on the op and its twin."""
    n = len(arrays)
    kind = arrays.kind.astype(np.int64)
    prefill = arrays.phases.index("prefill") if "prefill" in arrays.phases else -1
    pair = 2 * kind + (arrays.phase == prefill)
    values, first = first_seen(pair, 2 * len(arrays.kinds))   # pairs in order of first op
    rank = np.empty(2 * len(arrays.kinds), dtype=np.int64)
    rank[values] = np.arange(len(values))
    pair_of = rank[pair]
    derived = arrays.derived()
    kinds: list[OpKind] = []
    own = np.empty(len(values), dtype=np.int64)     # per pair: its ops' kind code
    twin = np.full(len(values), -1, dtype=np.int64)  # and its twins' (-1: not split)
    firsts = ops_at(arrays, first, "")
    if prepare is not None:
        prepare(firsts)
    for j, op in enumerate(firsts):
        t = arrays.kinds[int(values[j]) // 2]
        op_class, flops, nbytes = derived[int(values[j]) // 2]
        share = share_of(op)
        own[j] = len(kinds)
        kinds.append(OpKind.of(t.name, t.kind, op_class, t.compute, t.collective, t.rank,
                               t.shards, flops * share, nbytes * share))
        if share < 1.0:
            twin[j] = len(kinds)
            kinds.append(OpKind.of(t.name + suffix, t.kind, op_class, t.compute, t.collective,
                                   t.rank, t.shards, flops * (1.0 - share),
                                   nbytes * (1.0 - share)))
    split = twin[pair_of] >= 0
    rows = 1 + split.astype(np.int64)                 # per op: 1, or 2 with its twin
    new_id = np.cumsum(rows) - rows
    src = np.repeat(np.arange(n, dtype=np.int64), rows)
    is_twin = np.zeros(len(src), dtype=bool)
    is_twin[new_id[split] + 1] = True
    new_kind = np.where(is_twin, twin[pair_of[src]], own[pair_of[src]])
    # each dependency d becomes new_id[d] (and new_id[d] + 1 where d was split)
    ptr = arrays.dep_ptr.astype(np.int64)
    idx = arrays.dep_idx.astype(np.int64)
    per_dep = rows[idx]
    mapped = np.repeat(new_id[idx], per_dep) + slice_indices(np.zeros_like(per_dep), per_dep)
    at = np.concatenate(([0], np.cumsum(per_dep)))[ptr]   # op i's in mapped[at[i]:at[i+1]]
    count = (at[1:] - at[:-1])[src]
    new_ptr = np.concatenate(([0], np.cumsum(count)))
    new_idx = mapped[slice_indices(at[:-1][src], count)]
    small = len(src) < 1 << 31 and int(new_ptr[-1]) < 1 << 31
    return CompactOps(kinds, new_kind.astype(arrays.kind.dtype), arrays.phases,
                      arrays.phase[src], arrays.layer[src], arrays.step[src],
                      arrays.tokens[src], arrays.requests[src], arrays.microbatch[src],
                      new_ptr.astype(arrays.dep_ptr.dtype if small else np.int64),
                      new_idx.astype(arrays.dep_idx.dtype if small else np.int64))

