"""A trace's runs of one (step, layer) per pipeline stage: what a placement's transfers wrap.

A *run* is a maximal stretch of a stage's ops of one step, layer and phase (collectives and
ops outside the layers left out), in op order. A placement moves the tensors a run reads
before it and what it writes after it (:func:`sim.system.schedule._transfers`). A stage's
runs are held as columns (:class:`StageRuns`): each run's step, layer, phase, ``first`` (each
micro-batch's first op id, in the order the micro-batches first occur), ``last`` (its last op
id), ``tokens`` (the tokens of those first ops, summed), and ``weights`` and ``kv``: the weight
bytes of each distinct computation and the KV-cache bytes of each (micro-batch, computation),
summed left to right in the order first met. :func:`op_runs` walks op objects;
:func:`array_runs` finds the same runs in a trace held as arrays, with the same sums
(tests/test_placement_arrays.py).
"""

from __future__ import annotations

import numpy as np

from workloads.einsum import Cascade, Einsum
from workloads.ragged import RaggedInts
from workloads.records import record
from workloads.trace import COLLECTIVE, CompactOps, Op

_ROLE_BYTES: dict[int, tuple[object, float, float]] = {}


@record
class StageRuns:
    """One stage's runs in op order, a column per field (entry ``r``: run ``r``; module
    docstring); bytes per shard."""

    step: list[int]
    layer: list[int]
    phase: list[str]
    first: list[tuple[int, ...]]   # or RaggedInts (runs found from arrays)
    last: list[int]
    tokens: list[int]
    weights: list[float]
    kv: list[float]


def role_bytes(op: Op) -> tuple[float, float]:
    """(weight bytes, KV-cache bytes) one shard of ``op`` reads, from its Einsum operands."""
    return compute_role_bytes(op.compute)


def compute_role_bytes(comp) -> tuple[float, float]:
    """:func:`role_bytes` of an op computing ``comp`` (an Einsum, a cascade or None)."""
    if comp is None:
        return 0.0, 0.0
    hit = _ROLE_BYTES.get(id(comp))
    if hit is not None and hit[0] is comp:
        return hit[1], hit[2]
    einsums = comp.einsums if isinstance(comp, Cascade) else (comp,)
    seen: set[str] = set()
    w = kv = 0.0
    for e in einsums:
        assert isinstance(e, Einsum)
        for t in e.inputs:
            if t.name in seen or t.role not in ("weight", "kv_cache"):
                continue
            seen.add(t.name)
            if t.role == "weight":
                w += t.nbytes(e.size)
            else:
                kv += t.nbytes(e.size)
    _ROLE_BYTES[id(comp)] = (comp, w, kv)
    return w, kv


def op_runs(ops: list[Op], stage_at: list[int], n_layers: int) -> dict[int, StageRuns]:
    """The runs of ``ops`` per stage (``stage_at[layer + 1]``), stages in the order their
    first run starts (module docstring)."""
    runs: dict[int, list[dict]] = {}
    current: dict[int, dict] = {}    # stage -> its run being built
    for op in ops:
        layer = op.layer
        if layer < 0 or layer >= n_layers or op.kind == COLLECTIVE or op.where:
            continue
        stage = stage_at[layer + 1]
        rec = current.get(stage)
        if rec is None or rec["step"] != op.step or rec["layer"] != layer or \
                rec["phase"] != op.phase:
            rec = current[stage] = {"key": (op.step, layer), "step": op.step, "layer": layer,
                                    "first": {}, "last": op.id, "w": {}, "kv": {},
                                    "phase": op.phase, "tokens": 0}
            runs.setdefault(stage, []).append(rec)
        w, kv = role_bytes(op)   # an op split in shares (Duplex) shares one compute object
        # (an op reading neither adds nothing to the sums: skipped, the same floats)
        if w:
            rec["w"][id(op.compute)] = w
        if kv:
            rec["kv"][op.microbatch, id(op.compute)] = kv
        first = rec["first"]
        if op.microbatch not in first:
            first[op.microbatch] = op.id
            rec["tokens"] += op.tokens
        rec["last"] = op.id
    return {stage: StageRuns([r["step"] for r in recs], [r["layer"] for r in recs],
                             [r["phase"] for r in recs],
                             [tuple(r["first"].values()) for r in recs],
                             [r["last"] for r in recs], [r["tokens"] for r in recs],
                             [float(sum(r["w"].values())) for r in recs],
                             [float(sum(r["kv"].values())) for r in recs])
            for stage, recs in runs.items()}


def array_runs(arrays: CompactOps, stage_at: list[int], n_layers: int
               ) -> dict[int, StageRuns]:
    """:func:`op_runs` of the ops ``arrays`` materialises, from the arrays: the ops of runs
    sorted by stage in two compiled passes (:func:`sim.runs_kernel.stage_members`), then per
    stage, one over its ops (:func:`sim.runs_kernel.stage_runs`) finds the runs where
    (step, layer, phase) changes, the first op of each (run, micro-batch) and each run's
    ``weights`` and ``kv``, added in the order :func:`op_runs` adds them."""
    from sim.engine_aot import kernels

    kinds = arrays.kinds
    # the columns as the kernel reads them (the tracer's own: no copy)
    layer, kind, step, mb, tokens = (np.ascontiguousarray(a, dtype=np.int32) for a in (
        arrays.layer, arrays.kind, arrays.step, arrays.microbatch, arrays.tokens))
    phase = np.ascontiguousarray(arrays.phase, dtype=np.int8)
    collective = np.array([k.kind == COLLECTIVE for k in kinds] or [False], dtype=np.uint8)
    # ops on another component (``Op.where``) are not runs'
    hosted = np.ascontiguousarray(arrays.hosted[0], dtype=np.uint8) \
        if arrays.hosted is not None else np.zeros(0, dtype=np.uint8)
    stage_at = np.asarray(stage_at, dtype=np.int64)
    members = np.empty(len(layer), dtype=np.int64)
    bounds = np.empty(int(stage_at.max()) + 2, dtype=np.int64)
    order = np.empty(len(bounds) - 1, dtype=np.int64)
    loops = kernels()
    n_stages = loops.stage_members(layer, kind, collective, hosted, stage_at, n_layers, members,
                               bounds, order)
    if not n_stages:
        return {}
    # per kind: its weight and KV bytes, its computation's code (by identity: the shares of
    # a split op are kinds of one computation)
    comp_code: dict[int, int] = {}
    per_kind = [(*compute_role_bytes(k.compute), comp_code.setdefault(id(k.compute),
                                                                      len(comp_code)))
                for k in kinds]
    w_k, kv_k = (np.array(v, dtype=np.float64) for v in list(zip(*per_kind, strict=True))[:2])
    c_k = np.array([c for *_, c in per_kind], dtype=np.int64)
    n_comp = len(comp_code)
    # micro-batch numbers from the smallest (only which are equal matters)
    mb_lo = int(mb.min())
    n_mb = int(mb.max()) - mb_lo + 1
    phase_names = np.array(arrays.phases, dtype=object)
    runs: dict[int, StageRuns] = {}
    for stage in order[:n_stages].tolist():
        ids = members[bounds[stage]:bounds[stage + 1]]
        n = len(ids)
        starts, last, run_tokens, n_first, first_ids = (np.empty(n, dtype=np.int64)
                                                        for _ in range(5))
        w, kv = np.empty(n), np.empty(n)
        n_runs, n_f = loops.stage_runs(
            ids, step, layer, phase, mb, mb_lo, kind, tokens, w_k, kv_k, c_k, n_comp, starts,
            last, run_tokens, w, kv, n_first, first_ids, np.full(n_mb, -1, dtype=np.int64),
            np.full(n_comp, -1, dtype=np.int64), np.full(n_mb * n_comp, -1, dtype=np.int64))
        at = ids[starts[:n_runs]]
        runs[stage] = StageRuns(step[at].tolist(), layer[at].tolist(),
                                phase_names[phase[at]].tolist(),
                                RaggedInts(n_first[:n_runs], first_ids[:n_f]),
                                last[:n_runs].tolist(), run_tokens[:n_runs].tolist(),
                                w[:n_runs].tolist(), kv[:n_runs].tolist())
    return runs
