"""The op table reduced to what the run report draws, in one pass over its columns.

A 2,048-token Llama-2-7B run has ~860k ops; its figures and tables need a few thousand rows:

* **summed rows** (:data:`SUMMED_KEYS` -> :data:`SUMMED_VALUES` summed, ``n`` ops each): the
  breakdowns, energy bars, utilisation, bounds and the top-ops table;
* **roofline points** (one per distinct :data:`POINT_KEYS` among ops with FLOPs, bytes and
  time > 0, ``n`` ops each);
* the **decode steps** (sorted, distinct) and rows, for the timeline and its sampling.

Each key column is factorised once (the op, class and phase codes serve both groupings), the
codes are combined into one integer key per grouping and the values summed with
``np.bincount``; no copy of the table is made. Groups come in order of first appearance, as
``DataFrame.groupby(sort=False)`` gives them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: what every summing view of the report reads (plots, utilisation, bounds, the top ops)
SUMMED_KEYS = ("phase", "op", "op_class", "layer", "bound")
SUMMED_VALUES = ("latency_s", "energy_J", "energy_compute_J", "energy_memory_J",
                 "energy_link_J", "flops", "bytes", "dram_bytes")
#: what a roofline point is: ops with equal values of these share one point
POINT_KEYS = ("op", "op_class", "phase", "flops", "bytes", "shards", "latency_s")
_KEY_LIMIT = 1 << 40   # mixed-radix keys stay well inside int64


@dataclass
class Rollups:
    """The summed rows, roofline points and decode steps of one op table."""

    summed: pd.DataFrame
    points: pd.DataFrame
    decode_steps: np.ndarray
    #: which rows are decode ops
    decode: np.ndarray
    #: ``column -> (code per row, distinct values)`` of the factorised key columns
    factorised: dict


def codes(col: pd.Series, keep: dict | None = None) -> tuple[np.ndarray, int]:
    """``(code per row, number of codes)``: small integer ranges are offset, not hashed;
    other columns are factorised, and ``keep[col.name]`` gets ``(codes, distinct values)``."""
    values = col.to_numpy() if col.dtype.kind in "iub" else None
    if values is not None and len(values):
        lo, hi = int(values.min()), int(values.max())
        if hi - lo < 1 << 20:
            return values.astype(np.int64) - lo, hi - lo + 1
    c, uniques = pd.factorize(col, use_na_sentinel=False)
    if keep is not None:   # the smallest signed type (as dictionary indices), 1 B for most
        small = next(t for t in (np.int8, np.int16, np.int32, np.int64)
                     if len(uniques) <= np.iinfo(t).max)
        keep[col.name] = (c.astype(small), uniques)
    return c.astype(np.int64, copy=False), max(len(uniques), 1)


def _combine(key: np.ndarray, card: int, c: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """The mixed-radix key of ``key`` (``card`` values) and codes ``c`` (``n`` values)."""
    if card * n > _KEY_LIMIT:
        key, seen = pd.factorize(key)
        key, card = key.astype(np.int64, copy=False), max(len(seen), 1)
    return key * n + c, card * n


def _groups(key: np.ndarray, card: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Group id per row (numbered in order of first appearance) and each group's first row.
    ``card``: keys lie in ``range(card)`` (a lookup table then replaces hashing)."""
    n = len(key)
    if card is not None and card <= 1 << 22:
        first_of = np.full(card, n, dtype=np.int64)
        np.minimum.at(first_of, key, np.arange(n, dtype=np.int64))
        present = np.flatnonzero(first_of < n)
        order = np.argsort(first_of[present], kind="stable")
        lut = np.empty(card, dtype=np.int64)
        lut[present[order]] = np.arange(len(present), dtype=np.int64)
        return lut[key], np.sort(first_of[present])
    ids, _ = pd.factorize(key)
    ids = ids.astype(np.int64, copy=False)
    if not n:
        return ids, ids
    # ids appear in increasing order: a group starts where the running maximum steps up
    running = np.maximum.accumulate(ids)
    steps = np.flatnonzero(running[1:] != running[:-1]) + 1
    return ids, np.concatenate(([0], steps)).astype(np.int64)


def _bits(values: np.ndarray) -> np.ndarray:
    """The 64 bits of each value (int or float) as uint64."""
    v = np.ascontiguousarray(values)
    if v.dtype.kind == "f":
        return v.astype(np.float64, copy=False).view(np.uint64)
    return v.astype(np.int64, copy=False).view(np.uint64)


def _hashed_groups(columns: list[np.ndarray], rows: np.ndarray) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """Groups of equal ``rows`` over several columns by one 64-bit hash per row, verified:
    every row is compared with its group's first row, and a collision (two distinct rows,
    one hash) falls back to exact mixed-radix keys. No column is copied whole."""
    h = np.zeros(len(columns[0]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in columns:
            h ^= _bits(c)
            h *= np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(29)
    h = h[rows]
    ids, first = _groups(h)
    del h
    starts = rows[first]   # each group's first row
    if all(_same(_bits(c), rows, starts, ids) for c in columns):
        return ids, first
    key, card = np.zeros(len(rows), dtype=np.int64), 1
    for c in columns:
        key, card = _combine(key, card, *codes(pd.Series(c[rows])))
    return _groups(key)


def _same(bits: np.ndarray, rows: np.ndarray, starts: np.ndarray, ids: np.ndarray,
          chunk: int = 1 << 16) -> bool:
    """Whether every row in ``rows`` has the bits of its group's first row (in chunks)."""
    for lo in range(0, len(rows), chunk):
        if not np.array_equal(bits[rows[lo:lo + chunk]], bits[starts[ids[lo:lo + chunk]]]):
            return False
    return True


def _frame(ops: pd.DataFrame, keys: tuple[str, ...], rows: np.ndarray | None,
           ids: np.ndarray, first: np.ndarray, values: tuple[str, ...]) -> pd.DataFrame:
    """One row per group: its key values (from its first row), the values summed, ``n``."""
    take = rows[first] if rows is not None else first
    out = {k: ops[k].iloc[take].reset_index(drop=True) for k in keys}
    size = len(first)
    for v in values:
        col = ops[v].to_numpy(dtype=np.float64)
        out[v] = np.bincount(ids, weights=col if rows is None else col[rows], minlength=size)
    out["n"] = np.bincount(ids, minlength=size).astype(np.int64)
    return pd.DataFrame(out)


def _base(ops: pd.DataFrame, keep: dict | None = None) -> tuple[np.ndarray, int]:
    """The mixed-radix key of (op, op_class, phase): shared by both groupings."""
    key, card = np.zeros(len(ops), dtype=np.int64), 1
    for k in ("op", "op_class", "phase"):
        key, card = _combine(key, card, *codes(ops[k], keep))
    return key, card


def _summed(ops: pd.DataFrame, base: np.ndarray, card: int,
            keep: dict | None = None) -> pd.DataFrame:
    key = base
    for k in ("layer", "bound"):
        key, card = _combine(key, card, *codes(ops[k], keep))
    ids, first = _groups(key, card if card <= _KEY_LIMIT else None)
    return _frame(ops, SUMMED_KEYS, None, ids, first, SUMMED_VALUES)


def _points(ops: pd.DataFrame, base: np.ndarray) -> pd.DataFrame:
    f, b, t = (ops[c].to_numpy() for c in ("flops", "bytes", "latency_s"))
    rows = np.flatnonzero((f > 0) & (b > 0) & (t > 0))
    if len(rows):
        ids, first = _hashed_groups([base, f, b, ops["shards"].to_numpy(), t], rows)
    else:
        ids = first = np.zeros(0, dtype=np.int64)
    return _frame(ops, POINT_KEYS, rows, ids, first, ())


def rollups(ops: pd.DataFrame) -> Rollups:
    """The summed rows, roofline points and decode steps of ``ops`` (see module doc)."""
    keep: dict = {}
    base, card = _base(ops, keep)
    summed = _summed(ops, base, card, keep)
    points = _points(ops, base)
    if "phase" in keep:    # from the phase codes: no second pass over the strings
        phase_codes, phases = keep["phase"]
        at = [i for i, p in enumerate(phases) if p == "decode"]
        decode = phase_codes == at[0] if at else np.zeros(len(ops), dtype=bool)
    else:
        decode = (ops["phase"] == "decode").to_numpy()
    steps = ops["step"].to_numpy()[decode] if "step" in ops else np.zeros(0, dtype=np.int64)
    return Rollups(summed, points, distinct_ints(steps), decode, keep)


def distinct_ints(values: np.ndarray) -> np.ndarray:
    """Sorted distinct integers (a bincount over their range when it is small)."""
    if not len(values):
        return values.astype(np.int64)
    lo, hi = int(values.min()), int(values.max())
    if hi - lo < 1 << 22:
        return np.flatnonzero(np.bincount(values.astype(np.int64) - lo)) + lo
    return np.unique(values)


def summed_ops(ops: pd.DataFrame) -> pd.DataFrame:
    """``ops`` reduced to one row per distinct :data:`SUMMED_KEYS`, the values summed and
    ``n`` the ops each row stands for: all that the report's bar charts, utilisation, bounds
    and top-ops table need (a 2,048-token run's 860k ops become a few thousand rows)."""
    return _summed(ops, *_base(ops))


def roofline_points(ops: pd.DataFrame) -> pd.DataFrame:
    """The ops a roofline draws (FLOPs, bytes and time > 0) reduced to one row per distinct
    :data:`POINT_KEYS`, with ``n``, how many ops it stands for."""
    return _points(ops, _base(ops)[0])


def intensity_points(ops: pd.DataFrame) -> pd.DataFrame:
    """One point per distinct (op, phase, shape, time): intensity, achieved FLOP/s per device
    and the op's summed time over the run (for labels). ``ops`` may be the op table or its
    :func:`roofline_points`."""
    df = ops if "n" in ops.columns else roofline_points(ops)
    if not len(df):
        return df.assign(intensity=[], achieved=[], total_s=[])
    time_s = df["latency_s"] * df["n"]
    total = time_s.groupby([df["op"], df["phase"], df["flops"], df["bytes"]],
                           sort=False, observed=True).transform("sum")
    df = df.assign(intensity=df["flops"] / df["bytes"],
                   achieved=df["flops"] / df["shards"] / df["latency_s"], total_s=total)
    return df.drop_duplicates(subset=["op", "phase", "flops", "bytes", "latency_s"])


def sum_table(df: pd.DataFrame, index: str, columns: str, values: str) -> pd.DataFrame:
    """``values`` summed per (``index``, ``columns``) pair, one row per ``index`` value and one
    column per ``columns`` value (both sorted), 0.0 where a pair is absent: what
    ``pivot_table(aggfunc="sum", fill_value=0.0)`` gives, without its ~20 ms of overhead
    on the few hundred summed rows."""
    ri, rows = pd.factorize(df[index], sort=True)
    ci, cols = pd.factorize(df[columns], sort=True)
    table = np.zeros((len(rows), len(cols)))
    known = (ri >= 0) & (ci >= 0)   # rows with a missing key are left out, as pivot_table does
    np.add.at(table, (ri[known], ci[known]), df[values].to_numpy(dtype=np.float64)[known])
    return pd.DataFrame(table, index=pd.Index(rows, name=index),
                        columns=pd.Index(cols, name=columns))


def decode_step(ops: pd.DataFrame | np.ndarray) -> int | None:
    """The decode step a timeline shows: the middle one (None without decode). ``ops``: the
    op table or its sorted distinct decode steps."""
    if isinstance(ops, pd.DataFrame):
        steps = distinct_ints(ops.loc[ops["phase"] == "decode", "step"].to_numpy())
    else:
        steps = ops
    return int(steps[len(steps) // 2]) if len(steps) else None
