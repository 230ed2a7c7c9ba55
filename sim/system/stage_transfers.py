"""A stage's placement transfers made for all its runs at once, as rows of the plan's
:class:`~sim.system.transfer_rows.TransferRows`.

:func:`sim.system.schedule._transfers` walks a stage's runs and, per run and moved (tensor
class, tier), fetches what the run reads before it and saves what it writes after it. Where no
transfer is relayed through host memory, every run's transfers follow from the run's columns
alone, so :func:`add_stage_transfers` makes them as arrays: the same transfers, ids, bytes,
dependencies, anchors and ops' waits, in the order the walk makes them (run by run; per
run, per move, the fetch then the save), and each route's figures made in that order
(tests/test_stage_transfers.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.columns import in_first_order
from sim.system.layer_runs import StageRuns
from sim.system.plan import Plan, add_waits
from sim.system.route_transfers import IN_PLACE, RouteTransfers
from workloads.ragged import int_rows, slice_indices


def run_bytes(runs: StageRuns, act: float, kv_token: float, recomputed: set[tuple[int, int]]
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per run, the bytes per shard each tensor class needs on the device before it
    (``need``) and writes back after it (``save``): weights and, outside prefill, the KV
    cache read; activations fetched back for a recompute, or for a backward nothing
    recomputes; a prefill's KV cache and each decode step's new K and V (``kv_token`` per
    token) saved; a forward's activations saved (``act`` per layer)."""
    phase = np.array(runs.phase, dtype=object)
    prefill, decode = phase == "prefill", phase == "decode"
    backward = phase == "backward"
    plain_backward = np.array([b and (s, ly) not in recomputed for b, s, ly in zip(
        backward.tolist(), runs.step, runs.layer, strict=True)], dtype=bool) \
        if backward.any() else backward
    fetch_act = (phase == "recompute") | plain_backward
    kv = np.array(runs.kv, dtype=np.float64)
    tokens = np.array(runs.tokens, dtype=np.int64)
    none = np.zeros(len(kv))
    need = {"weights": np.array(runs.weights, dtype=np.float64),
            "kv_cache": np.where(prefill, 0.0, kv),
            "activations": np.where(fetch_act, act, 0.0)}
    save = {"weights": none, "activations": np.where(phase == "forward", act, 0.0),
            "kv_cache": np.where(prefill, kv, np.where(decode, kv_token * tokens, 0.0))}
    return need, save


def add_stage_transfers(plan: Plan, runs: StageRuns, moves: list[tuple[str, str, float]],
                        need: dict[str, np.ndarray], save: dict[str, np.ndarray], depth: int,
                        route: Callable[[str, str, bool], RouteTransfers]) -> None:
    """Append one stage's transfers to ``plan`` (``moves``: (class, tier, fraction) each;
    ``route(cls, tier, out)`` the maker of a class's transfers from a tier, or back to it):
    per run ``g`` and move, a fetch of ``fraction * need`` bytes that waits for the end of
    run ``g - 1 - depth`` (prefetch depth) and that the run's first ops wait for, released
    when the run ends, anchored just before its first op; then a save of ``fraction *
    save`` bytes after the run's last op, landing in place."""
    n_runs = len(runs.last)
    if not n_runs or not moves:
        return
    last = np.array(runs.last, dtype=np.int64)
    n_first, first_ops = int_rows(runs.first)        # each run's first ops (one per micro-batch)
    first_at = np.cumsum(n_first) - n_first
    first = np.minimum.reduceat(first_ops, first_at)
    nbytes = np.empty((n_runs, 2 * len(moves)))
    for m, (cls, _, frac) in enumerate(moves):
        nbytes[:, 2 * m] = frac * need[cls]
        nbytes[:, 2 * m + 1] = frac * save[cls]
    run, slot = np.nonzero(nbytes > 0)       # row-major: the walk's order
    if not len(run):
        return
    nb = nbytes[run, slot]
    out = slot % 2 == 1
    rows = plan.transfers
    ids = plan.first_transfer_id + len(rows) + np.arange(len(run), dtype=np.int64)
    # each (route, bytes)'s figures, made in the order the walk first meets them
    makers: dict[int, RouteTransfers] = {}
    distinct_bytes, byte_code = np.unique(nb, return_inverse=True)
    _, at, pair = in_first_order(slot * len(distinct_bytes) + byte_code.reshape(-1))
    made = []
    for s, b in zip(slot[at].tolist(), nb[at].tolist(), strict=True):
        maker = makers.get(s)
        if maker is None:
            cls, tier, _ = moves[s // 2]
            maker = makers[s] = route(cls, tier, bool(s % 2))
        made.append((maker.code, *maker.figures(b)))
    # (route code, loads code, floor s, energy J) per row
    made_a = np.array(made, dtype=np.float64)[pair]
    # dependencies: a fetch waits for the run ``depth + 1`` back (none before it), a save
    # for its run's last op
    wait_run = run - 1 - depth
    has_dep = out | (wait_run >= 0)
    dep_idx = np.where(out, last[run], last[np.maximum(wait_run, 0)])[has_dep]
    codes = {p: rows.phase_code(p) for p in dict.fromkeys(runs.phase)}
    phases = np.fromiter(map(codes.__getitem__, runs.phase), dtype=np.int64, count=n_runs)
    rows.extend({"id": ids, "route": made_a[:, 0].astype(np.int64),
                 "loads": made_a[:, 1].astype(np.int64), "phase": phases[run],
                 "layer": np.asarray(runs.layer, dtype=np.int64)[run],
                 "step": np.asarray(runs.step, dtype=np.int64)[run],
                 "release": np.where(out, IN_PLACE, last[run]), "nbytes": nb,
                 "floor": made_a[:, 2], "energy": made_a[:, 3],
                 "anchor": np.where(out, last[run] + 0.5, first[run] - 0.5)},
                has_dep.astype(np.int64), dep_idx)
    # the run's first ops wait for its fetches, in id order
    fetch = np.flatnonzero(~out)
    if not len(fetch):
        return
    fetch_run = run[fetch]
    add_waits(plan.extra_deps,
              first_ops[slice_indices(first_at[fetch_run], n_first[fetch_run])],
              np.repeat(ids[fetch], n_first[fetch_run]))
