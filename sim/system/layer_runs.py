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

from sim.columns import first_rows, in_first_order
from workloads.einsum import Cascade, Einsum
from workloads.ragged import RaggedInts, ordered_sums
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
    """:func:`op_runs` of the ops ``arrays`` materialises, from the arrays: runs found where
    (step, layer, phase) changes along a stage's ops, the first op of each (run,
    micro-batch) and the first of each (run, computation) by one first-occurrence pass each;
    ``weights`` and ``kv`` are each run's sums, added in the order :func:`op_runs` adds
    them."""
    kinds = arrays.kinds
    layer = arrays.layer.astype(np.int64)
    kind = arrays.kind.astype(np.int64)
    collective = np.array([k.kind == COLLECTIVE for k in kinds] or [False])
    inside = (layer >= 0) & (layer < n_layers) & ~collective[kind]
    if arrays.hosted is not None:   # ops on another component (``Op.where``) are not runs'
        inside &= ~arrays.hosted[0]
    inside = np.flatnonzero(inside)
    if not len(inside):
        return {}
    stage_of = np.asarray(stage_at, dtype=np.int64)[layer[inside] + 1]
    # per kind: its weight and KV bytes, its computation's code (by identity: the shares of
    # a split op are kinds of one computation)
    comp_code: dict[int, int] = {}
    per_kind = [(*compute_role_bytes(k.compute), comp_code.setdefault(id(k.compute),
                                                                      len(comp_code)))
                for k in kinds]
    w_k, kv_k, c_k = (np.array(v) for v in zip(*per_kind, strict=True))
    n_comp = len(comp_code)
    phases = arrays.phases
    runs: dict[int, StageRuns] = {}
    for stage in in_first_order(stage_of)[0].tolist():
        ids = inside[stage_of == stage]
        step, lay, ph = arrays.step[ids], layer[ids], arrays.phase[ids]
        mb = arrays.microbatch[ids].astype(np.int64)
        new = np.ones(len(ids), dtype=bool)
        new[1:] = (step[1:] != step[:-1]) | (lay[1:] != lay[:-1]) | (ph[1:] != ph[:-1])
        run = np.cumsum(new) - 1
        starts = np.flatnonzero(new)
        n_runs = len(starts)
        last = ids[np.append(starts[1:], len(ids)) - 1]
        n_mb = int(mb.max()) + 1
        # each (run, micro-batch)'s first op: the runs' first dicts and tokens
        _, at, _ = in_first_order(run * n_mb + mb)
        first_run = run[at]
        tokens = np.zeros(n_runs, dtype=np.int64)
        np.add.at(tokens, first_run, arrays.tokens[ids[at]].astype(np.int64))
        firsts = RaggedInts(np.bincount(first_run, minlength=n_runs), ids[at])
        k = kind[ids]
        w = _first_sums(run * n_comp + c_k[k], w_k[k], run, n_runs)
        kv = _first_sums((run * n_mb + mb) * n_comp + c_k[k], kv_k[k], run, n_runs)
        runs[stage] = StageRuns(step[starts].tolist(), lay[starts].tolist(),
                                [phases[p] for p in ph[starts].tolist()], firsts,
                                last.tolist(), tokens.tolist(), w.tolist(), kv.tolist())
    return runs


def _first_sums(key: np.ndarray, value: np.ndarray, run: np.ndarray, n_runs: int
                ) -> np.ndarray:
    """Per run, the sum of the nonzero ``value`` at each distinct ``key``'s first
    occurrence, added left to right from 0 as Python's ``sum`` adds a dict's values (0 for a
    run without one)."""
    keep = np.flatnonzero(value != 0)
    if not len(keep):
        return np.zeros(n_runs)
    at = keep[first_rows(key[keep])]   # first occurrences, in op order (runs ascending)
    return ordered_sums(run[at], value[at], n_runs)   # each run's, in order
