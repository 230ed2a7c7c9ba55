"""Invariants asserted on every run: nothing lost, nothing counted twice, nothing too fast."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.columns import cell, column
from workloads.trace import Trace

REL_TOL = 1e-9


class InvariantError(AssertionError):
    """A simulation result broke a conservation law or a lower bound: a bug, never bad input."""


def check_invariants(trace: Trace, table: Any) -> dict[str, str]:
    """Check the per-op table (a DataFrame or :class:`sim.columns.Columns`) against the trace;
    return ``{name: "passed"}`` or raise."""
    results: dict[str, str] = {}
    compact = getattr(trace, "is_compact", False)   # ops held as arrays (workloads.trace)
    n = len(trace.compact) if compact else len(trace.ops)
    ids = column(table, "id")
    end = column(table, "end_s")
    # ids in order 0..n-1 (a one-stream run's table) need no count
    once = len(ids) == n and (n == 0 or np.array_equal(ids, np.arange(n)) or
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
        raise InvariantError(f"ops lost or duplicated: trace has {n}, result has {len(ids)} "
                             f"({missing} never finished)")
    results["every_op_ran_once"] = "passed"

    latency = column(table, "latency_s")
    bound = column(table, "roofline_s")
    # latency is end - start of absolute times: allow a few ulps of the clock at that time
    # (the ulps, >= 0, only where the op is below its bound without them)
    slack = latency - bound * (1 - REL_TOL)
    below = np.flatnonzero(slack < 0)
    if len(below):
        slack = slack[below] + 4 * np.spacing(np.abs(end[below]))
    if (slack < 0).any():
        i = int(below[np.argmin(slack)])
        raise InvariantError(f"op {cell(table, 'id', i)} ({cell(table, 'op', i)}) took "
                             f"{latency[i]:.6g} s, below its roofline bound {bound[i]:.6g} s")
    results["time_ge_roofline"] = "passed"

    for col, total in (("flops", trace.total_flops), ("bytes", trace.total_bytes)):
        got = float(column(table, col).sum())
        if not math.isclose(got, total, rel_tol=1e-12, abs_tol=1e-6):
            raise InvariantError(f"{col} not conserved: trace {total:.6g}, result {got:.6g}")
        results[f"{col}_conserved"] = "passed"

    start = column(table, "start_s")
    if compact:   # check every (op, dependency) pair at once
        arrays = trace.compact
        per_op = np.diff(arrays.dep_ptr)
        late = np.repeat(start, per_op) < end[arrays.dep_idx] - 1e-15
        if late.any():
            who = np.repeat(np.arange(n), per_op)
            i = int(np.argmax(late))
            raise InvariantError(f"op {who[i]} ({cell(table, 'op', who[i])}) started before "
                                 f"its dependency {arrays.dep_idx[i]}")
    else:
        for op in trace.ops:
            for d in op.deps:
                if start[op.id] < end[d] - 1e-15:
                    raise InvariantError(f"op {op.id} ({op.name}) started before its "
                                         f"dependency {d}")
    results["dependencies_respected"] = "passed"

    sc = trace.scenario
    if sc is not None and hasattr(sc, "gen_len") and "training" not in trace.meta:
        phases = trace.meta.get("phases", ("prefill", "decode"))
        steps = ("prefill" in phases) + (sc.gen_len - 1) * ("decode" in phases)
        if compact:
            arrays = trace.compact
            head = np.array([k.name == "lm_head" for k in arrays.kinds] or [False])
            generated = int(arrays.requests[head[arrays.kind]].sum())
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
