"""Keep long runs' per-op outputs small: a sampled timeline and the ops file's format.

A 2,048-token Llama-2-7B run has ~860k ops; written whole they are ~165 MB of CSV and of Chrome
trace JSON, and building the trace's events holds over a gigabyte. The timeline of such a run
keeps every prefill op (and any other non-decode op) and one decode step in ``every``, chosen
so that at most :data:`SAMPLED_OPS` ops remain; the summary and ``ops.parquet`` keep the
whole run.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np

from sim.columns import Columns, column, distinct_ints

#: above this many ops the timeline is sampled by default (``--timeline sampled``)
SAMPLE_ABOVE = 200_000
#: ops a sampled timeline keeps at most (about 8 MB of trace JSON at ~180 B per event)
SAMPLED_OPS = 40_000
TIMELINE_MODES = ("auto", "full", "sampled", "none")
OPS_FORMATS = ("auto", "parquet", "csv")


def timeline_mode(mode: str, n_ops: int) -> str:
    """``full``, ``sampled`` or ``none``; ``auto`` samples above :data:`SAMPLE_ABOVE` ops."""
    if mode not in TIMELINE_MODES:
        raise ValueError(f"timeline mode {mode!r} not in {TIMELINE_MODES}")
    if mode == "auto":
        return "sampled" if n_ops > SAMPLE_ABOVE else "full"
    return mode


def ops_format(fmt: str) -> str:
    """``parquet`` or ``csv``; ``auto`` is parquet when pyarrow is importable."""
    if fmt not in OPS_FORMATS:
        raise ValueError(f"ops format {fmt!r} not in {OPS_FORMATS}")
    if fmt == "auto":
        return "parquet" if importlib.util.find_spec("pyarrow") is not None else "csv"
    return fmt


def _decode(ops, decode: np.ndarray | None) -> np.ndarray:
    return np.asarray(column(ops, "phase") == "decode", dtype=bool) if decode is None \
        else decode


def take_rows(ops, rows: np.ndarray):
    """The rows at positions ``rows`` of a DataFrame (``iloc``) or of
    :class:`sim.columns.Columns` (:meth:`~sim.columns.Columns.subset`: Columns of those rows,
    no pandas)."""
    return ops.subset(rows) if isinstance(ops, Columns) else ops.iloc[rows]


def decode_stride(ops, budget: int | None = None,
                  decode: np.ndarray | None = None, steps: np.ndarray | None = None) -> int:
    """Keep one decode step in this many so that about ``budget`` ops remain (1: keep all;
    default :data:`SAMPLED_OPS`). ``decode``: the rows of decode ops, ``steps``: the sorted
    distinct decode steps (:func:`sim.report.rollups.rollups` gives both), when known."""
    budget = SAMPLED_OPS if budget is None else budget
    decode = _decode(ops, decode)
    n_decode = int(np.count_nonzero(decode))
    other = len(ops) - n_decode
    if n_decode == 0 or len(ops) <= budget:
        return 1
    steps = len(distinct_ints(column(ops, "step")[decode]) if steps is None else steps)
    per_step = n_decode / steps
    room = max(budget - other, per_step)
    return max(1, math.ceil(steps / max(1.0, room / per_step)))


def sample_ops(ops, every: int, decode: np.ndarray | None = None,
               steps: np.ndarray | None = None):
    """Every non-decode op, and the decode ops of steps 1, 1 + every, ... and the last step
    (``ops``: a DataFrame or :class:`sim.columns.Columns`; the same kind comes back).
    ``steps``: the sorted distinct decode steps, when known."""
    if every <= 1:
        return ops
    decode = _decode(ops, decode)
    step = column(ops, "step")
    if steps is None or not len(steps) or not len(step) or int(step.min()) < 0:
        first, last = step[decode].min(), step[decode].max()
        keep = ~decode | ((step - first) % every == 0) | (step == last)
        return take_rows(ops, np.flatnonzero(keep))
    first, last = int(steps[0]), int(steps[-1])
    kept = np.zeros(max(last, int(step.max())) + 1, dtype=bool)   # per step: kept or not
    kept[first::every] = True
    kept[last] = True
    kept[last + 1:] = False
    return take_rows(ops, np.flatnonzero(~decode | kept[step]))


def sample_transfers(transfers, steps: set[int], every: int):
    """Transfers of the kept steps (all of them when ``every`` is 1)."""
    if transfers is None or every <= 1 or not len(transfers) or "step" not in transfers:
        return transfers
    keep = np.isin(np.asarray(column(transfers, "step")), np.array(sorted(steps))) | \
        (np.asarray(column(transfers, "phase")) != "decode")
    return take_rows(transfers, np.flatnonzero(keep))
