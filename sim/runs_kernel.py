"""A stage's placement runs found in one pass over its ops (numba).

:func:`sim.system.layer_runs.array_runs` finds, per pipeline stage, the runs of one (step,
layer, phase) along the stage's ops, each run's first op per micro-batch and its tokens, and
the bytes of weights and KV cache it reads (each computation's once, each micro-batch's KV
once). As numpy passes that took ~0.9 s of a 9.9M-op run; here each op is read once.
:func:`stage_members` first sorts the ops that belong to runs by stage, in two passes (the
numpy masks, gathers and searches it replaces took ~0.2 s of that run).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def stage_runs(ids, step, layer, phase, mb, mb_lo, kind, tokens, w_k, kv_k, c_k, n_comp,
               starts, last, run_tokens, w_sum, kv_sum, n_first, first_ids,
               seen_mb, seen_w, seen_kv):
    """Runs of the ops ``ids`` (one stage's, in op order; ``step``, ``layer``, ``phase``,
    ``mb``, ``kind``, ``tokens``: every op's, read at ``ids``; micro-batch numbers from
    ``mb_lo``): a run starts where (step, layer, phase) changes. Per run ``r``: ``starts[r]``
    its first position in ``ids``, ``last[r]`` its last op, ``n_first[r]`` its
    micro-batches, whose first ops are appended to ``first_ids`` in the order they come and
    whose tokens ``run_tokens[r]`` adds; ``w_sum[r]``: the nonzero weight bytes ``w_k[kind]``
    of each computation ``c_k[kind]`` where it first occurs in the run, added left to right
    from 0.0; ``kv_sum[r]``: the same of ``kv_k`` per (micro-batch, computation).
    ``seen_mb`` (micro-batches), ``seen_w`` (``n_comp``) and ``seen_kv`` (micro-batches x
    ``n_comp``): scratch, filled with -1. (number of runs, first ops)."""
    n_runs = 0
    n_f = 0
    r = -1
    prev = -1
    for i in range(len(ids)):
        o = ids[i]
        if i == 0 or step[o] != step[prev] or layer[o] != layer[prev] or \
                phase[o] != phase[prev]:
            r = n_runs
            n_runs += 1
            starts[r] = i
            run_tokens[r] = 0
            w_sum[r] = 0.0
            kv_sum[r] = 0.0
            n_first[r] = 0
        m = mb[o] - mb_lo
        k = kind[o]
        c = c_k[k]
        if seen_mb[m] != r:
            seen_mb[m] = r
            first_ids[n_f] = o
            n_f += 1
            n_first[r] += 1
            run_tokens[r] += tokens[o]
        w = w_k[k]
        if w != 0.0 and seen_w[c] != r:
            seen_w[c] = r
            w_sum[r] += w
        kv = kv_k[k]
        at = m * n_comp + c
        if kv != 0.0 and seen_kv[at] != r:
            seen_kv[at] = r
            kv_sum[r] += kv
        last[r] = o
        prev = o
    return n_runs, n_f


@njit(cache=True, error_model="numpy")
def stage_members(layer, kind, off_kind, hosted, stage_at, n_layers, ids, bounds, order):
    """The ops that belong to runs - a layer in ``0..n_layers-1``, a kind with
    ``off_kind[kind]`` 0 (not a collective), and ``hosted[op]`` 0 (``hosted`` empty: none
    hosted) - by stage (``stage_at[layer + 1]``, ``0..len(bounds)-2``): ``ids[bounds[s]:
    bounds[s + 1]]`` stage ``s``'s in op order; ``order``: the stages in the order their
    first op comes (as many as return)."""
    n_stages = len(bounds) - 1
    count = np.zeros(n_stages, dtype=np.int64)
    n_order = 0
    check_hosted = len(hosted) > 0
    for i in range(len(layer)):
        y = layer[i]
        if y < 0 or y >= n_layers or off_kind[kind[i]] or (check_hosted and hosted[i]):
            continue
        s = stage_at[y + 1]
        if count[s] == 0:
            order[n_order] = s
            n_order += 1
        count[s] += 1
    bounds[0] = 0
    for s in range(n_stages):
        bounds[s + 1] = bounds[s] + count[s]
    at = bounds[:-1].copy()
    for i in range(len(layer)):
        y = layer[i]
        if y < 0 or y >= n_layers or off_kind[kind[i]] or (check_hosted and hosted[i]):
            continue
        s = stage_at[y + 1]
        ids[at[s]] = i
        at[s] += 1
    return n_order
