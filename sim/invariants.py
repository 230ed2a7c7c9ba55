"""Invariants asserted on every run: nothing lost, nothing counted twice, nothing too fast."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.columns import Columns, cell, column, column_once
from sim.fold_run import FoldedTable, check_folded
from workloads.trace import Trace

REL_TOL = 1e-9
#: an op may start this much (s) before a dependency's end and still count as after it: the
#: two times are separate running sums of the same durations, whose roundings may differ
DEPENDENCY_SLACK = 1e-15
#: rows per block of the per-row checks (blocks stay in cache; no table-long temporaries)
BLOCK = 1 << 16
#: ops from which the dependencies are checked by one compiled pass (the engine's extension,
#: :mod:`sim.engine_aot`, which a run this long has loaded); shorter traces: numpy's blocks
COMPILED_OPS = 1 << 20
#: lm_head kinds up to which the lost-request check finds their ops by one comparison per
#: kind over the kind codes (~5 ms each at 10M ops) instead of a lookup gathered per op (~40)
FEW_KINDS = 4


class InvariantError(AssertionError):
    """A simulation result broke a conservation law or a lower bound: a bug, never bad input."""


def check_invariants(trace: Trace, table: Any) -> dict[str, str]:
    """Check the per-op table (a DataFrame or :class:`sim.columns.Columns`) against the trace;
    return ``{name: "passed"}`` or raise."""
    if isinstance(table, FoldedTable):   # a folded one-stream run: per op kind
        return check_folded(trace, table, REL_TOL)
    results: dict[str, str] = {}
    compact = getattr(trace, "is_compact", False)   # ops held as arrays (workloads.trace)
    n = len(trace.compact) if compact else len(trace.ops)
    end = column(table, "end_s")
    # ids in order 0..n-1 (a one-stream run's table) need no count; a table whose id column
    # is given as that range (Columns.is_range) needs no pass over it either
    if isinstance(table, Columns) and table.is_range("id"):
        once = len(table) == n
    else:
        ids = column_once(table, "id")
        once = len(ids) == n and (n == 0 or _is_range(ids) or
                                  (ids.min() >= 0 and ids.max() < n and
                                   (np.bincount(ids, minlength=n) == 1).all()))
    finite = np.isfinite(end).all()
    if once and not finite:  # overflow from the input's magnitudes, not a scheduling bug
        from sim.devices.base import SimError

        i = int(np.argmin(np.isfinite(end)))
        raise SimError(f"op {cell(table, 'id', i)} ({cell(table, 'op', i)}) ends at a "
                       "non-finite time: a rate, latency or size of the arch or workload is "
                       "too extreme")
    if not once or not finite:
        missing = n - int(np.isfinite(end).sum())
        raise InvariantError(f"ops lost or duplicated: trace has {n}, result has "
                             f"{len(table)} ({missing} never finished)")
    results["every_op_ran_once"] = "passed"

    latency = column(table, "latency_s")
    bound = _blocks(table, "roofline_s")
    # latency is end - start of absolute times: allow a few ulps of the clock at that time
    # (the ulps, >= 0, only where the op is below its bound without them); block by block
    worst, i = 0.0, -1
    for lo in range(0, len(latency), BLOCK):
        hi = lo + BLOCK
        slack = latency[lo:hi] - bound(lo, hi) * (1 - REL_TOL)
        below = np.flatnonzero(slack < 0)
        if len(below):
            slack = slack[below] + 4 * np.spacing(np.abs(end[lo:hi][below]))
            j = int(np.argmin(slack))
            if slack[j] < worst:
                worst, i = float(slack[j]), lo + int(below[j])
    if i >= 0:
        raise InvariantError(f"op {cell(table, 'id', i)} ({cell(table, 'op', i)}) took "
                             f"{latency[i]:.6g} s, below its roofline bound "
                             f"{bound(i, i + 1)[0]:.6g} s")
    results["time_ge_roofline"] = "passed"

    for col, total in zip(("flops", "bytes"), _trace_totals(trace), strict=True):
        got = table.total(col) if isinstance(table, Columns) else \
            float(column_once(table, col).sum())
        if not math.isclose(got, total, rel_tol=1e-12, abs_tol=1e-6):
            raise InvariantError(f"{col} not conserved: trace {total:.6g}, result {got:.6g}")
        results[f"{col}_conserved"] = "passed"

    start = column(table, "start_s")
    # the arrays the ops are held as or were materialised from (their deps and requests are
    # the ops'; a run reassigns only streams and hosting: workloads.trace.Trace.arrays)
    arrays = trace.compact if compact else getattr(trace, "arrays", None)
    if arrays is not None:   # check every (op, dependency) pair, a block of ops at a time
        ptr, idx = arrays.dep_ptr, arrays.dep_idx
        j = _late_dependency(ptr, idx, start, end) if n >= COMPILED_OPS else None
        if j is not None and j >= 0:
            o = int(np.searchsorted(ptr, j, side="right")) - 1
            raise InvariantError(f"op {o} ({cell(table, 'op', o)}) started before its "
                                 f"dependency {idx[j]}")
        for lo in range(0, n if j is None else 0, BLOCK):
            hi = min(n, lo + BLOCK)
            p0 = int(ptr[lo])
            per_op = np.diff(ptr[lo:hi + 1])
            late = np.repeat(start[lo:hi], per_op) < end[idx[p0:int(ptr[hi])]] - \
                DEPENDENCY_SLACK
            if late.any():
                who = lo + np.repeat(np.arange(hi - lo), per_op)
                i = int(np.argmax(late))
                raise InvariantError(f"op {who[i]} ({cell(table, 'op', who[i])}) started "
                                     f"before its dependency {idx[p0 + i]}")
    else:
        for op in trace.ops:
            for d in op.deps:
                if start[op.id] < end[d] - DEPENDENCY_SLACK:
                    raise InvariantError(f"op {op.id} ({op.name}) started before its "
                                         f"dependency {d}")
    results["dependencies_respected"] = "passed"

    sc = trace.scenario
    if sc is not None and hasattr(sc, "gen_len") and "training" not in trace.meta:
        phases = trace.meta.get("phases", ("prefill", "decode"))
        steps = ("prefill" in phases) + (sc.gen_len - 1) * ("decode" in phases)
        if arrays is not None:
            heads = [j for j, k in enumerate(arrays.kinds) if k.name == "lm_head"]
            if len(heads) <= FEW_KINDS:   # the lm_head ops kind by kind (no gather)
                head = np.zeros(len(arrays), dtype=bool)
                for j in heads:
                    head |= arrays.kind == j
            else:
                is_head = np.zeros(max(len(arrays.kinds), 1), dtype=bool)
                is_head[heads] = True
                head = is_head[arrays.kind]
            generated = int(arrays.requests[head].sum())
        else:
            generated = sum(op.requests for op in trace.ops if op.name == "lm_head")
        if generated != sc.batch * steps:
            raise InvariantError(f"requests lost: {generated} tokens generated, expected "
                                 f"{sc.batch} requests x {steps} steps")
    elif sc is not None and "training" in trace.meta:
        scored = sum(op.tokens for op in trace.ops if op.name == "lm_head")
        if scored != sc.batch * sc.prompt_len:
            raise InvariantError(f"tokens lost: the loss saw {scored} tokens, expected "
                                 f"{sc.batch} sequences x {sc.prompt_len}")
    results["no_request_lost"] = "passed"
    return results


def _late_dependency(ptr: np.ndarray, idx: np.ndarray, start: np.ndarray,
                     end: np.ndarray) -> int | None:
    """:func:`sim.deps_kernel.late_dependency` of the dependency arrays and op times (the
    first late pair's position, -1: none), or None where their types do not fit it."""
    width = {np.dtype(np.int32): "i4", np.dtype(np.int64): "i8"}.get(ptr.dtype)
    if width is None or idx.dtype != ptr.dtype or len(ptr) != len(start) + 1 or \
            any(a.dtype != np.float64 for a in (start, end)):
        return None
    from sim.engine_aot import kernels

    late = getattr(kernels(), f"late_dependency_{width}")
    return int(late(*(np.ascontiguousarray(a) for a in (ptr, idx, start, end)),
                    DEPENDENCY_SLACK))


def _blocks(table: Any, name: str):
    """``rows(lo, hi)``: rows ``lo:hi`` of column ``name`` (a :class:`Columns` column gathered
    per op kind is read a block at a time, not formed; others formed once, not kept)."""
    if isinstance(table, Columns) and table.gathered(name) is not None:
        return lambda lo, hi: table.block(name, lo, hi)
    values = column_once(table, name)
    return lambda lo, hi: values[lo:hi]


def _is_range(ids: np.ndarray) -> bool:
    """Whether ``ids`` is 0, 1, ..., len - 1 (compared a block at a time)."""
    for lo in range(0, len(ids), BLOCK):
        part = ids[lo:lo + BLOCK]
        if not np.array_equal(part, np.arange(lo, lo + len(part))):
            return False
    return True


def _trace_totals(trace: Trace) -> tuple[float, float]:
    """The trace's total FLOPs and bytes. A trace held as arrays sums each op kind's figure
    times its count (``math.fsum``: within an ulp of the exact sum, not a pass over the ops
    per figure); else :attr:`Trace.total_flops` and ``total_bytes``."""
    if not getattr(trace, "is_compact", False):
        return trace.total_flops, trace.total_bytes
    arrays = trace.compact
    if not len(arrays):
        return 0.0, 0.0
    kinds = arrays.kinds
    counts = np.bincount(arrays.kind, minlength=len(kinds))[:len(kinds)]
    per_kind = np.array([(k.flops, k.bytes) for k in kinds], dtype=float)
    flops, nbytes = (per_kind * counts[:, None]).T.tolist()
    return math.fsum(flops), math.fsum(nbytes)
