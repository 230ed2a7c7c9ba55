"""Invariants asserted on every run: nothing lost, nothing counted twice, nothing too fast."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from workloads.trace import Trace

REL_TOL = 1e-9


class InvariantError(AssertionError):
    """A simulation result broke a conservation law or a lower bound: a bug, never bad input."""


def check_invariants(trace: Trace, table: pd.DataFrame) -> dict[str, str]:
    """Check the per-op table against the trace; return ``{name: "passed"}`` or raise."""
    results: dict[str, str] = {}
    compact = getattr(trace, "is_compact", False)   # ops held as arrays (workloads.trace)
    n = len(trace.compact) if compact else len(trace.ops)
    ids = table["id"].to_numpy()
    once = len(ids) == n and (n == 0 or (ids.min() >= 0 and ids.max() < n and
                                         (np.bincount(ids, minlength=n) == 1).all()))
    finite = np.isfinite(table["end_s"]).all()
    if once and not finite:  # overflow from the input's magnitudes, not a scheduling bug
        from sim.devices.base import SimError

        row = table.iloc[int(np.argmin(np.isfinite(table["end_s"].to_numpy())))]
        raise SimError(f"op {row['id']} ({row['op']}) ends at a non-finite time: a rate, "
                       "latency or size of the arch or workload is too extreme")
    if not once or not finite:
        missing = n - int(np.isfinite(table["end_s"]).sum())
        raise InvariantError(f"ops lost or duplicated: trace has {n}, result has {len(ids)} "
                             f"({missing} never finished)")
    results["every_op_ran_once"] = "passed"

    latency = table["latency_s"].to_numpy()
    bound = table["roofline_s"].to_numpy()
    # latency is end - start of absolute times: allow a few ulps of the clock at that time
    ulps = 4 * np.spacing(np.abs(table["end_s"].to_numpy()))
    slack = latency - bound * (1 - REL_TOL) + ulps
    if (slack < 0).any():
        i = int(np.argmin(slack))
        row = table.iloc[i]
        raise InvariantError(f"op {row['id']} ({row['op']}) took {latency[i]:.6g} s, below its "
                             f"roofline bound {bound[i]:.6g} s")
    results["time_ge_roofline"] = "passed"

    for col, total in (("flops", trace.total_flops), ("bytes", trace.total_bytes)):
        got = float(table[col].sum())
        if not math.isclose(got, total, rel_tol=1e-12, abs_tol=1e-6):
            raise InvariantError(f"{col} not conserved: trace {total:.6g}, result {got:.6g}")
        results[f"{col}_conserved"] = "passed"

    start = table["start_s"].to_numpy()
    end = table["end_s"].to_numpy()
    if compact:   # check every (op, dependency) pair at once
        arrays = trace.compact
        who = np.repeat(np.arange(n), np.diff(arrays.dep_ptr))
        late = start[who] < end[arrays.dep_idx] - 1e-15
        if late.any():
            i = int(np.argmax(late))
            raise InvariantError(f"op {who[i]} ({table['op'].iloc[who[i]]}) started before its "
                                 f"dependency {arrays.dep_idx[i]}")
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
