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

The table may be a DataFrame or the run's :class:`sim.columns.Columns`: its text columns are
then already codes and labels (no string is hashed) and only the few rows the rollups keep
become DataFrame rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.columns import Columns, Text, column, distinct_ints, used_codes
from sim.report.tables import (
    factorize,
    first_appearances,
    group_sum,
    hashing,
    sorted_groups,
)

if TYPE_CHECKING:
    import pandas as pd

#: what every summing view of the report reads (plots, utilisation, bounds, the top ops)
SUMMED_KEYS = ("phase", "op", "op_class", "layer", "bound")
SUMMED_VALUES = ("latency_s", "energy_J", "energy_compute_J", "energy_memory_J",
                 "energy_link_J", "flops", "bytes", "dram_bytes")
#: what a roofline point is: ops with equal values of these share one point
POINT_KEYS = ("op", "op_class", "phase", "flops", "bytes", "shards", "latency_s")
_KEY_LIMIT = 1 << 40   # mixed-radix keys stay well inside int64
#: rows from which the used labels, the summed rows and the roofline points are found by
#: compiled passes (below, numpy's: the passes load the engine's extension, built on first
#: use, ~0.05 CPU s where the run has not loaded it). 2**17, not a fitted figure: a 7B decode
#: of 2,048 tokens (858k ops) on an H100 or an SN40L reports in 0.29-0.30 instead of 0.33-0.35
#: CPU s, its loading included; at 512 tokens (221k ops) 0.142-0.150 instead of 0.146-0.157;
#: at 256 (110k) the two within 0.01 s (2 rounds each, one process per report)
COMPILED_ROWS = 1 << 17


@dataclass
class Rollups:
    """The summed rows, roofline points (:class:`Columns`, no pandas; ``summed`` and
    ``points`` give them as DataFrames) and decode steps of one op table."""

    summed_rows: Columns
    point_rows: Columns
    decode_steps: np.ndarray
    #: which rows are decode ops
    decode: np.ndarray
    #: ``column -> (code per row, distinct values)`` of the factorised key columns (of a
    #: :class:`Columns` table's text columns, their :class:`RowCodes`)
    factorised: dict

    @property
    def summed(self) -> pd.DataFrame:
        return self.summed_rows.frame()

    @property
    def points(self) -> pd.DataFrame:
        return self.point_rows.frame()


def _small(n: int) -> type:
    """The smallest signed integer type holding codes below ``n`` (dictionary indices)."""
    return next(t for t in (np.int8, np.int16, np.int32, np.int64) if n <= np.iinfo(t).max)


def codes(col: pd.Series, keep: dict | None = None) -> tuple[np.ndarray, int]:
    """``(code per row, number of codes)``: small integer ranges are offset, not hashed;
    other columns are factorised, and ``keep[col.name]`` gets ``(codes, distinct values)``
    (``col``: a Series, factorised as it is, with no array of str objects made of it)."""
    import pandas as pd

    if col.dtype.kind in "iub":
        return array_codes(col.to_numpy(), col.name, keep)
    c, uniques = pd.factorize(col, use_na_sentinel=False)
    if keep is not None:   # the smallest signed type (as dictionary indices), 1 B for most
        keep[col.name] = (c.astype(_small(len(uniques))), uniques)
    return c.astype(np.int64, copy=False), max(len(uniques), 1)


def array_codes(values: np.ndarray, name: str | None = None, keep: dict | None = None
                ) -> tuple[np.ndarray, int]:
    """:func:`codes` of a column given as a numpy array named ``name``."""
    if values.dtype.kind in "iub" and len(values):
        lo, hi = int(values.min()), int(values.max())
        if hi - lo < 1 << 20:
            return values.astype(np.int64) - lo, hi - lo + 1
    c, uniques = factorize(values)
    if keep is not None:   # the smallest signed type (as dictionary indices), 1 B for most
        keep[name] = (c.astype(_small(len(uniques))), uniques)
    return c.astype(np.int64, copy=False), max(len(uniques), 1)


def text_codes(text: Text) -> tuple[np.ndarray, np.ndarray]:
    """``(code per row, distinct labels)`` of a :class:`Text` column without hashing a string
    per row: the labels that occur (a ``bincount`` of the codes), equal labels merged, codes in
    the smallest signed type. Labels come in the order of their first label slot."""
    lut, distinct = _label_codes(text, _used(text))
    return lut[text.codes], distinct


def _used(text: Text) -> np.ndarray:
    """The label slots some row of ``text`` points at (of a long column, by one compiled
    pass: :func:`sim.group_kernel.used_labels`)."""
    if not len(text):
        return np.zeros(0, dtype=np.int64)
    if len(text.labels) == 1:   # one label: every row points at it (no pass over the rows)
        return np.zeros(1, dtype=np.int64)
    # (codes outside the labels take numpy's pass, which raises on negative ones)
    return used_codes(np.asarray(text.codes), len(text.labels), COMPILED_ROWS)


def _label_codes(text: Text, used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(code per label slot, distinct labels)``: equal labels of the ``used`` slots share a
    code (unused slots get 0), in the smallest signed type."""
    labels = np.array(text.labels, dtype=object)
    slot, distinct = factorize(labels[used])
    lut = np.zeros(max(len(labels), 1), dtype=_small(len(distinct)))
    lut[used] = slot
    return lut, np.asarray(distinct, dtype=object)


#: the compiled gathers of a text column's codes through its lookup table, by the table's and
#: the codes' types (:meth:`RowCodes.rows`)
_TAKE_CODES = {(np.dtype(t), np.dtype(w)): f"take_codes_{tn}_{wn}"
               for t, tn in ((np.int8, "i1"), (np.int16, "i2"))
               for w, wn in ((np.int32, "i4"), (np.int64, "i8"))}


class RowCodes:
    """A text column's code per row, formed on demand (:meth:`rows`, for all rows or a block
    of them): ``lut[codes]``, ``codes`` themselves where ``lut`` is None, or zeros of
    ``dtype`` where ``codes`` is None (one label). ``labels``: the distinct labels the codes
    index. The parquet writer forms each row group's codes on its own thread."""

    def __init__(self, codes: np.ndarray | None, lut: np.ndarray | None, labels: np.ndarray,
                 dtype: np.dtype, n: int):
        self.codes, self.lut, self.labels, self.dtype, self.n = codes, lut, labels, dtype, n

    def rows(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """The codes of rows ``lo..hi-1`` (all rows by default): from :data:`COMPILED_ROWS`
        rows through an 8- or 16-bit ``lut``, one compiled pass
        (:func:`sim.take_kernel.take_codes`; ``np.take`` copies the codes to 64 bits first:
        60 row groups of a 9.9M-op table's text columns 0.15 s). Every code indexes ``lut``
        (checked where the lookup tables are made: :func:`_used`)."""
        hi = self.n if hi is None else hi
        if self.codes is None:
            return np.zeros(hi - lo, dtype=self.dtype)
        part = self.codes[lo:hi]
        if self.lut is None:
            return part
        name = _TAKE_CODES.get((self.lut.dtype, self.codes.dtype))
        if name is None or hi - lo < COMPILED_ROWS or not self.codes.flags.c_contiguous:
            return np.take(self.lut, part)
        from sim.engine_aot import kernels

        out = np.empty(hi - lo, dtype=self.lut.dtype)
        getattr(kernels(), name)(self.lut, self.codes, lo, out)
        return out

    @classmethod
    def of(cls, entry) -> RowCodes:
        """``entry`` itself, or a ``(code per row, distinct labels)`` pair as one."""
        if isinstance(entry, RowCodes):
            return entry
        c, labels = entry
        return cls(c, None, labels, c.dtype, len(c))


class _TextKeys:
    """Keys of a :class:`Columns` table's text columns from their codes, per row only once
    per code array: columns that share one (an op's name, class, kind and bound are all
    indexed by its kind's slot) are combined over their few label slots and gathered once.
    ``recoded`` holds every text column's :class:`RowCodes` (the parquet writer's dictionary
    arrays, formed a row group at a time); :meth:`per_row` forms one column's."""

    def __init__(self, ops: Columns):
        self.ops = ops
        self._used: dict[int, np.ndarray] = {}
        self._index: dict[int, np.ndarray] = {}
        self._luts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.recoded: dict[str, RowCodes] = {}
        for name in ops.order:
            if ops.is_text(name):
                lut, labels = self.lut(name)
                self.recoded[name] = self._recode(ops.text(name).codes, lut, labels)

    def _recode(self, codes: np.ndarray, lut: np.ndarray, labels: np.ndarray) -> RowCodes:
        """``lut[codes]`` on demand: zeros for one label, ``codes`` themselves where ``lut``
        maps every used slot to itself in their dtype."""
        if len(labels) <= 1:
            return RowCodes(None, None, labels, lut.dtype, len(codes))
        used = self._used[id(codes)]
        if codes.dtype == lut.dtype and np.array_equal(lut[used], used):
            return RowCodes(codes, None, labels, codes.dtype, len(codes))
        return RowCodes(codes, lut, labels, lut.dtype, len(codes))

    def per_row(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(code per row, distinct labels)`` of text column ``name``."""
        got = self.recoded[name]
        return got.rows(), got.labels

    def index(self, codes: np.ndarray) -> np.ndarray:
        """``codes`` as native ints (once per code array)."""
        got = self._index.get(id(codes))
        if got is None:
            got = self._index[id(codes)] = codes.astype(np.intp, copy=False)
        return got

    def lut(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._luts:
            text = self.ops.text(name)
            used = self._used.get(id(text.codes))
            if used is None:
                used = self._used[id(text.codes)] = _used(text)
            self._luts[name] = _label_codes(text, used)
        return self._luts[name]

    def key(self, names: tuple[str, ...], rows: np.ndarray | None = None
            ) -> tuple[np.ndarray, int]:
        """The mixed-radix key of the text columns ``names``, one code per row (of the rows
        at positions ``rows`` only, when given: the same codes)."""
        by_codes: dict[int, list[str]] = {}
        for name in names:
            by_codes.setdefault(id(self.ops.text(name).codes), []).append(name)
        key, card = None, 1
        for group in by_codes.values():
            slot_key, slot_card = np.zeros(1, dtype=np.int64), 1
            for name in group:
                lut, labels = self.lut(name)
                slot_key, slot_card = _combine(slot_key, slot_card, lut.astype(np.int64),
                                               max(len(labels), 1))
            codes = self.ops.text(group[0]).codes
            grow = _compiled_pass("lut_key", codes) if rows is None and \
                (key is None or card * slot_card <= _KEY_LIMIT) else None
            if grow is not None:   # one compiled pass: key * slot_card + slot_key[codes]
                out = np.empty(len(codes), dtype=np.int64) if key is None else key
                grow(_EMPTY if key is None else key, slot_card, codes, slot_key, out)
                key, card = out, slot_card if key is None else card * slot_card
                continue
            per_row = slot_key[self.index(codes) if rows is None else codes[rows]]
            key, card = (per_row, slot_card) if key is None else \
                _combine(key, card, per_row, slot_card)
        if key is None:
            key = np.zeros(len(self.ops) if rows is None else len(rows), dtype=np.int64)
        return key, card


_EMPTY = np.zeros(0, dtype=np.int64)
_WIDTHS = {np.dtype(np.int8): "i1", np.dtype(np.int32): "i4", np.dtype(np.int64): "i8"}


def _compiled_pass(name: str, values: np.ndarray):
    """The compiled pass ``name`` (:mod:`sim.group_kernel`) for ``values``' integer width, or
    None where ``values`` is short (under :data:`COMPILED_ROWS`: numpy's passes, no
    extension loaded), not contiguous or of another type."""
    width = _WIDTHS.get(values.dtype)
    if width is None or len(values) < COMPILED_ROWS or not values.flags.c_contiguous:
        return None
    from sim.engine_aot import kernels

    return getattr(kernels(), f"{name}_{width}", None)


def _layer_key(ops, key: np.ndarray, card: int, in_place: bool = False
               ) -> tuple[np.ndarray, int]:
    """``_combine(key, card, *_codes_of(ops, "layer"))``; of a long table's narrow integer
    layers, in one compiled pass (:func:`sim.group_kernel.offset_key`; ``in_place``: into
    ``key`` itself, which the caller no longer needs)."""
    values = np.asarray(column(ops, "layer"))
    grow = _compiled_pass("offset_key", values)
    if grow is not None:
        lo, hi = int(values.min()), int(values.max())
        if hi - lo < 1 << 20 and card * (hi - lo + 1) <= _KEY_LIMIT:
            key = np.ascontiguousarray(key, dtype=np.int64)
            out = key if in_place else np.empty(len(values), dtype=np.int64)
            grow(key, hi - lo + 1, values, lo, out)
            return out, card * (hi - lo + 1)
    return _combine(key, card, *_codes_of(ops, "layer"))


def _codes_of(ops, name: str, keep: dict | None = None) -> tuple[np.ndarray, int]:
    """:func:`codes` of column ``name`` of a DataFrame or :class:`Columns` (text columns of
    the latter from their codes, kept in ``keep`` as :func:`codes` keeps factorised ones)."""
    if not isinstance(ops, Columns):
        return codes(ops[name], keep)
    if ops.is_text(name):
        c, labels = text_codes(ops.text(name))
        if keep is not None:
            keep[name] = (c, labels)
        return c.astype(np.int64), max(len(labels), 1)
    return array_codes(np.asarray(ops[name]), name, keep)


def _taken(ops, name: str, take: np.ndarray) -> np.ndarray:
    """Column ``name`` at positions ``take`` (text: one str per row, object dtype)."""
    if isinstance(ops, Columns):
        if ops.is_text(name):
            t = ops.text(name)
            return np.array(t.labels, dtype=object)[t.codes[take]]
        lazy = ops.gathered(name)   # values[by], not formed: read through the codes
        if lazy is not None:
            return lazy.values[lazy.by[take]]
        return np.asarray(ops[name])[take]
    col = ops[name].iloc[take]
    if col.dtype.kind in "iufb":
        return col.to_numpy()
    import pandas as pd  # a DataFrame given: pandas is loaded

    c, uniques = pd.factorize(col, use_na_sentinel=False)   # one str object per label
    return np.asarray(uniques, dtype=object)[c]


def _combine(key: np.ndarray, card: int, c: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """The mixed-radix key of ``key`` (``card`` values) and codes ``c`` (``n`` values)."""
    if card * n > _KEY_LIMIT:
        key, seen = factorize(key)
        key, card = key.astype(np.int64, copy=False), max(len(seen), 1)
    return key * n + c, card * n


def _groups(key: np.ndarray, card: int | None = None, in_place: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Group id per row (numbered in order of first appearance) and each group's first row.
    ``card``: keys lie in ``range(card)`` (a lookup table then replaces hashing; from
    :data:`COMPILED_ROWS` rows, one compiled pass, :func:`sim.group_kernel.first_groups`,
    writing the ids over ``key`` itself where ``in_place``)."""
    n = len(key)
    if card is not None and card <= 1 << 22 and n >= COMPILED_ROWS and key.dtype == np.int64 \
            and key.flags.c_contiguous:
        from sim.engine_aot import kernels

        ids = key if in_place else np.empty(n, dtype=np.int64)
        first = np.empty(min(n, card), dtype=np.int64)
        n_groups = kernels().first_groups(key, np.empty(card, np.int64), ids, first)
        return ids, first[:n_groups]
    if card is not None and card <= 1 << 22:
        first_of = np.full(card, n, dtype=np.int64)
        np.minimum.at(first_of, key, np.arange(n, dtype=np.int64))
        present = np.flatnonzero(first_of < n)
        order = np.argsort(first_of[present], kind="stable")
        lut = np.empty(card, dtype=np.int64)
        lut[present[order]] = np.arange(len(present), dtype=np.int64)
        return lut[key], np.sort(first_of[present])
    if not hashing():   # one sort instead of a hash table
        return sorted_groups(key)
    ids, _ = factorize(key)
    ids = ids.astype(np.int64, copy=False)
    # ids appear in increasing order: a group starts where the running maximum steps up
    return ids, first_appearances(ids).astype(np.int64)


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
        key, card = _combine(key, card, *array_codes(c[rows]))
    return _groups(key)


def _same(bits: np.ndarray, rows: np.ndarray, starts: np.ndarray, ids: np.ndarray,
          chunk: int = 1 << 16) -> bool:
    """Whether every row in ``rows`` has the bits of its group's first row (in chunks)."""
    for lo in range(0, len(rows), chunk):
        if not np.array_equal(bits[rows[lo:lo + chunk]], bits[starts[ids[lo:lo + chunk]]]):
            return False
    return True


def _frame(ops, keys: tuple[str, ...], rows: np.ndarray | None,
           ids: np.ndarray, first: np.ndarray, values: tuple[str, ...]) -> Columns:
    """One row per group: its key values (from its first row), the values summed, ``n``."""
    take = rows[first] if rows is not None else first
    out = {k: _taken(ops, k, take) for k in keys}
    size = len(first)
    sums = _gathered_sums(ops, values, ids, size) if rows is None else {}
    rest = [v for v in values if v not in sums]
    counted = _row_sums(ops, rest, ids, size) if rows is None else None
    if counted is not None:
        sums.update(counted[0])
    for v in values:
        if v in sums:
            out[v] = sums[v]
            continue
        col = column(ops, v).astype(np.float64, copy=False)
        out[v] = np.bincount(ids, weights=col if rows is None else col[rows], minlength=size)
    out["n"] = counted[1] if counted is not None else \
        np.bincount(ids, minlength=size).astype(np.int64)
    return Columns(out, list(out), size)


def _row_sums(ops, names: list[str], ids: np.ndarray, size: int
              ) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """``({name: np.bincount(ids, weights=ops[name], minlength=size)}, np.bincount(ids,
    minlength=size))`` of a long table's per-row columns ``names``, by compiled passes of up
    to four columns each (:func:`sim.group_kernel.row_sums`: the same additions in the same
    order, ``ids`` read once per pass instead of twice per column), or None (a short table:
    numpy's)."""
    if len(ops) < COMPILED_ROWS or ids.dtype != np.int64 or not ids.flags.c_contiguous:
        return None
    from sim.engine_aot import kernels

    sums: dict[str, np.ndarray] = {}
    count = np.zeros(size, dtype=np.int64)
    for lo in range(0, max(len(names), 1), 4):
        part = names[lo:lo + 4]
        cols = [np.ascontiguousarray(column(ops, v), dtype=np.float64) for v in part]
        out = np.zeros((len(part), size))
        kernels().row_sums(ids, *(cols + [_NO_ROWS] * (4 - len(cols))), len(cols), out,
                           count if lo == 0 else np.zeros(size, dtype=np.int64))
        sums.update((v, out[j]) for j, v in enumerate(part))
    return sums, count


_NO_ROWS = np.zeros(0)   # a column row_sums does not read


def _base(ops, keep: dict | None = None) -> tuple[np.ndarray, int]:
    """The mixed-radix key of (op, op_class, phase): shared by both groupings."""
    key, card = np.zeros(len(ops), dtype=np.int64), 1
    for k in ("op", "op_class", "phase"):
        key, card = _combine(key, card, *_codes_of(ops, k, keep))
    return key, card


def _summed(ops, base: np.ndarray, card: int, keep: dict | None = None) -> Columns:
    key = base
    for k in ("layer", "bound"):
        key, card = _combine(key, card, *_codes_of(ops, k, keep))
    ids, first = _groups(key, card if card <= _KEY_LIMIT else None)
    return _frame(ops, SUMMED_KEYS, None, ids, first, SUMMED_VALUES)


def _points(ops, base: np.ndarray) -> Columns:
    f, b, t = (column(ops, c) for c in ("flops", "bytes", "latency_s"))
    rows = np.flatnonzero((f > 0) & (b > 0) & (t > 0))
    if len(rows):
        ids, first = _hashed_groups([base, f, b, column(ops, "shards"), t], rows)
    else:
        ids = first = np.zeros(0, dtype=np.int64)
    return _frame(ops, POINT_KEYS, rows, ids, first, ())


def _gathered(ops, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(values, by)`` of a long :class:`Columns` table's column ``name`` that is
    ``values[by]`` and not yet formed (float or integer values, 32- or 64-bit codes), else
    None: a compiled pass reads it through ``by`` without the table-long column."""
    if not isinstance(ops, Columns) or len(ops) < COMPILED_ROWS:
        return None
    lazy = ops.gathered(name)
    if lazy is None or lazy.by.dtype not in (np.int32, np.int64) or \
            not lazy.by.flags.c_contiguous or lazy.values.ndim != 1:
        return None
    return lazy.values, lazy.by


def _gathered_sums(ops, names: tuple[str, ...], ids: np.ndarray, size: int
                   ) -> dict[str, np.ndarray]:
    """``np.bincount(ids, weights=ops[name], minlength=size)`` of each column ``name`` that is
    ``values[by]`` and not yet formed, by one compiled pass per code array ``by``
    (:func:`sim.group_kernel.group_sums`: every such column's sums at once, the same
    additions in the same order); the other columns are left out."""
    if ids.dtype != np.int64 or not ids.flags.c_contiguous:
        return {}
    by_codes: dict[int, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for name in names:
        got = _gathered(ops, name)
        if got is not None:
            by_codes.setdefault(id(got[1]), []).append((name, *got))
    if not by_codes:
        return {}
    from sim.engine_aot import kernels

    sums = {}
    for group in by_codes.values():
        by = group[0][2]
        width = -(-len(group) // 8) * 8   # a code's values in whole cache lines (zeros after)
        values = np.zeros((len(group[0][1]), width))
        for j, (_, v, _) in enumerate(group):
            values[:, j] = v
        out = np.zeros((size, width))
        getattr(kernels(), "group_sums_i4" if by.dtype == np.int32 else "group_sums_i8")(
            ids, values, by, out)
        sums.update((name, np.ascontiguousarray(out[:, j]))
                    for j, (name, _, _) in enumerate(group))
    return sums


def _compiled_points(ops, key: np.ndarray, base_at) -> Columns:
    """:func:`_points` by one compiled pass (:func:`sim.group_kernel.point_groups`) over rows
    grouped by a finer ``key`` (any per-row key that determines the points' text keys: the
    summed rows' key), whose groups are then merged by their first rows' ``base_at(rows)``
    (the (op, class, phase) key of those rows), FLOPs, bytes, shards and time: the same
    points, counts and order of first appearance."""
    from sim.engine_aot import kernels

    t = column(ops, "latency_s").astype(np.float64, copy=False)
    per_code = [_gathered(ops, c) for c in ("flops", "bytes", "shards")]
    by = per_code[0][1] if per_code[0] is not None else None
    if by is not None and all(g is not None and g[1] is by for g in per_code):
        # FLOPs, bytes and shards per kind, read through the kinds (no table-long columns)
        fv, bv, sv = (g[0] for g in per_code)
    else:   # per-row columns, read through the row numbers
        fv, bv, sv = (column(ops, c) for c in ("flops", "bytes", "shards"))
        by = np.arange(len(t), dtype=np.int64)
    fv, bv = (np.ascontiguousarray(v, dtype=np.float64) for v in (fv, bv))
    sv = np.ascontiguousarray(sv, dtype=np.int64)
    group = getattr(kernels(), "point_groups_i4" if by.dtype == np.int32 else
                    "point_groups_i8")
    args = [_bits(key), _bits(fv), _bits(bv), sv, by, _bits(t)]

    def at(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        return fv[by[rows]], bv[by[rows]], sv[by[rows]], t[rows]
    size = 1 << 16
    while True:
        table = np.full(2 * size, -1, dtype=np.int64)
        first, count = np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64)
        n_groups = group(*args, table, first, count)
        if n_groups >= 0:
            break
        size *= 4
    first, count = first[:n_groups], count[:n_groups]
    if not n_groups:
        return _frame(ops, POINT_KEYS, first, first, first, ())
    merged, head = _hashed_groups([base_at(first), *at(first)],
                                  np.arange(n_groups, dtype=np.int64))
    out = {k: _taken(ops, k, first[head]) for k in POINT_KEYS}
    out["n"] = np.bincount(merged, weights=count, minlength=len(head)).astype(np.int64)
    return Columns(out, list(out), len(head))


def _slot_points(ops: Columns, texts: _TextKeys) -> Columns | None:
    """:func:`_points` of a :class:`Columns` table from its op slots: ops of one slot share
    name and class, so rows are first grouped exactly by (slot, phase, time), each group
    checked to hold one FLOPs, bytes and shards value (None, the generic path, where one
    does not), then groups with equal values merged.

    The (slot, phase, time) groups without hashing every row: each (slot, phase) takes one
    of its rows' times as its own; the rows with that time (most rows) are grouped by their
    (slot, phase) code alone (a lookup table) and only the others by (slot, phase, time)
    (:func:`_exact_groups`). One FLOPs, bytes and shards value per (slot, phase), the usual case,
    needs no check per group."""
    f, b, t = (column(ops, c) for c in ("flops", "bytes", "latency_s"))
    rows = np.flatnonzero((f > 0) & (b > 0) & (t > 0))
    slots = ops.text("op").codes
    if not len(rows) or slots is not ops.text("op_class").codes:
        return None
    phase, phases = texts.per_row("phase")
    nphase = max(len(phases), 1)
    nsp = (int(slots.max()) + 1) * nphase
    sp = slots[rows].astype(np.int64) * nphase + phase[rows]   # (slot, phase) per kept row
    rep = np.zeros(nsp, dtype=np.int64)
    rep[sp] = rows   # one kept row of each (slot, phase) (any: the last written)
    tr = t[rows]
    other = np.flatnonzero(tr != t[rep][sp])   # times > 0: equal values, equal bits
    key = sp
    card = nsp
    if len(other):
        ids, n_ids = _exact_groups(sp[other], nsp, tr[other])
        key = sp.copy()
        key[other] = nsp + ids
        card = nsp + n_ids
    del tr, other
    sub, sub_first = _groups(key, card if card <= _KEY_LIMIT else None)
    del key
    # one FLOPs, bytes and shards value per slot (over every row): then per group too; known
    # where the table says those columns are per-slot figures (Columns.keyed_by)
    checked = all(ops.keyed_by(c) is slots for c in ("flops", "bytes", "shards"))
    if not checked:
        at = texts.index(slots)
        one = np.zeros(int(slots.max()) + 1, dtype=np.intp)
        one[at] = np.arange(len(at), dtype=np.intp)   # one row of each slot
        checked = all(np.array_equal(c, c[one][at]) for c in (f, b, column(ops, "shards")))
    return _merged_points(ops, texts, rows, sub, sub_first, f, b, t, checked)


#: slots per round of :func:`_probe_slots` (its tables stay in cache) and its odd multipliers
_PROBE_BITS = 16
_PROBE_MULTIPLIERS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                      0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53)


def _probe_slots(columns: list[np.ndarray]) -> tuple[np.ndarray, int] | None:
    """``(slot per row, number of slots)``: two rows share a slot exactly where they are equal
    in every column (their 64 bits), or None where the rows hold too many distinct values.

    Each round hashes the rows still without a slot into a table of ``2**_PROBE_BITS`` slots;
    each slot is owned by one of its rows (the last written), the rows equal to their slot's
    owner take the slot, the others (other values that hashed there) try again in the next
    round, with another multiplier. Equal rows hash alike, so each slot holds one value and
    each value one slot: a few passes over the rows, no hash table of Python or Arrow (whose
    ``dictionary_encode`` costs ~50 ns a row). A round that fills over half the table gives
    up (None: many distinct values, the caller's hash table is the faster way)."""
    keys = [_bits(c) for c in columns]
    n, size = len(keys[0]), 1 << _PROBE_BITS
    slot = np.empty(n, dtype=np.int64)
    todo: np.ndarray | None = None   # rows without a slot (None: all)
    owner = np.empty(size, dtype=np.intp)
    for r, mult in enumerate(_PROBE_MULTIPLIERS):
        owner.fill(-1)
        ks = keys if todo is None else [k[todo] for k in keys]
        m = len(ks[0])
        h = np.zeros(m, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in ks:
                h ^= k
                h *= np.uint64(mult)
                h ^= h >> np.uint64(29)
            h *= np.uint64(mult)
        at = (h >> np.uint64(64 - _PROBE_BITS)).astype(np.intp)
        del h
        owner[at] = np.arange(m, dtype=np.intp)
        if np.count_nonzero(owner >= 0) > size // 2:
            return None
        first = owner[at]
        ok = np.ones(m, dtype=bool)
        for k in ks:
            ok &= k[first] == k
        taken = at[ok] + r * size
        if todo is None:
            slot[ok] = taken
            todo = np.flatnonzero(~ok)
        else:
            slot[todo[ok]] = taken
            todo = todo[~ok]
        if not len(todo):
            return slot, (r + 1) * size
    return None


def _exact_groups(code: np.ndarray, card: int, values: np.ndarray) -> tuple[np.ndarray, int]:
    """Group id per row of equal (``code`` in ``range(card)``, ``values``), numbered in order
    of first appearance, and the number of groups: slots of a few probing passes
    (:func:`_probe_slots`) numbered by first appearance where the values are few; else two
    hash-table passes (values, then the combined key) where a hash table is at hand, else a
    verified hash and one sort."""
    probed = _probe_slots([code, values]) if len(code) > 1 << 12 else None
    if probed is not None:
        ids, first = _groups(*probed)
        return ids, len(first)
    if not hashing():
        ids, first = _hashed_groups([code, values], np.arange(len(code), dtype=np.int64))
        return ids, len(first)
    vc, seen = factorize(values)
    if card * max(len(seen), 1) > _KEY_LIMIT:
        ids, first = _hashed_groups([code, values], np.arange(len(code), dtype=np.int64))
        return ids, len(first)
    ids, distinct = factorize(code * max(len(seen), 1) + vc)
    return ids.astype(np.int64, copy=False), len(distinct)


def _merged_points(ops: Columns, texts: _TextKeys, rows: np.ndarray, sub: np.ndarray,
                   sub_first: np.ndarray, f: np.ndarray, b: np.ndarray, t: np.ndarray,
                   checked: bool = False) -> Columns | None:
    """The points of rows grouped by (slot, phase, time) (``sub``: group per row of ``rows``,
    ``sub_first``: each group's first), or None where a group holds two shapes (``checked``:
    known not to)."""
    starts = rows[sub_first]
    shards = column(ops, "shards")
    if not checked and not all(_same(_bits(c), rows, starts, sub) for c in (f, b, shards)):
        return None
    base = texts.key(("op", "op_class", "phase"), starts)[0]   # of each group's first row
    merged, first = _hashed_groups([base, *(c[starts] for c in (f, b, shards, t))],
                                   np.arange(len(starts), dtype=np.int64))
    return _frame(ops, POINT_KEYS, rows, merged[sub], sub_first[first], ())


def text_keys(ops) -> _TextKeys | None:
    """The keys of ``ops``'s text columns from their codes (:class:`_TextKeys`; its
    ``recoded`` holds each text column's :class:`RowCodes`, what the parquet writer needs),
    or None where ``ops`` is not a :class:`Columns` table with text key columns."""
    if isinstance(ops, Columns) and ops.columnar and \
            all(ops.is_text(k) for k in ("op", "op_class", "phase", "bound")):
        return _TextKeys(ops)
    return None


def rollups(ops, texts: _TextKeys | None = None) -> Rollups:
    """The summed rows, roofline points and decode steps of ``ops`` (a DataFrame or
    :class:`sim.columns.Columns`; see module doc). ``texts``: :func:`text_keys` of ``ops``
    already computed (else computed here)."""
    texts = texts if texts is not None else text_keys(ops)
    keep: dict = dict(texts.recoded) if texts is not None else {}
    if texts is not None:
        named = texts.key(("op", "op_class", "phase", "bound"))
        long = len(ops) >= COMPILED_ROWS
        if long:   # before the key grows in place (the same array: no fresh pages)
            points = _compiled_points(ops, named[0], lambda rows: texts.key(
                ("op", "op_class", "phase"), rows)[0])
        key, card = _layer_key(ops, *named, in_place=long)
        ids, first = _groups(key, card if card <= _KEY_LIMIT else None, in_place=long)
        del key
        summed = _frame(ops, SUMMED_KEYS, None, ids, first, SUMMED_VALUES)
        if not long:
            points = _slot_points(ops, texts)
            if points is None:
                points = _points(ops, texts.key(("op", "op_class", "phase"))[0])
    else:
        base, card = _base(ops, keep)
        summed = _summed(ops, base, card, keep)
        points = _compiled_points(ops, base, lambda rows: base[rows]) \
            if len(ops) >= COMPILED_ROWS else _points(ops, base)
    if "phase" in keep:    # from the phase codes: no second pass over the strings
        phase_codes, phases = texts.per_row("phase") if texts is not None else keep["phase"]
        at = [i for i, p in enumerate(phases) if p == "decode"]
        decode = phase_codes == at[0] if at else np.zeros(len(ops), dtype=bool)
    else:
        decode = np.asarray(column(ops, "phase") == "decode", dtype=bool)
    if "step" not in ops:
        return Rollups(summed, points, np.zeros(0, dtype=np.int64), decode, keep)
    return Rollups(summed, points, _decode_steps(np.asarray(column(ops, "step")), decode),
                   decode, keep)


def _decode_steps(step: np.ndarray, decode: np.ndarray) -> np.ndarray:
    """The sorted distinct steps of the decode rows: of a long table's narrow steps, one
    compiled pass marks them (:func:`sim.group_kernel.distinct_marked`, no gather)."""
    mark = _compiled_pass("distinct_marked", step)
    if mark is None or not len(step) or decode.dtype != bool or not decode.flags.c_contiguous:
        return distinct_ints(step[decode])
    lo, hi = int(step.min()), int(step.max())
    if hi - lo >= 1 << 22:
        return distinct_ints(step[decode])
    seen = np.empty(hi - lo + 1, dtype=bool)
    mark(step, decode, lo, seen)
    return np.flatnonzero(seen) + lo


def summed_ops(ops) -> pd.DataFrame:
    """``ops`` reduced to one row per distinct :data:`SUMMED_KEYS`, the values summed and
    ``n`` the ops each row stands for: all that the report's bar charts, utilisation, bounds
    and top-ops table need (a 2,048-token run's 860k ops become a few thousand rows)."""
    return _summed(ops, *_base(ops)).frame()


def roofline_points(ops) -> pd.DataFrame:
    """The ops a roofline draws (FLOPs, bytes and time > 0) reduced to one row per distinct
    :data:`POINT_KEYS`, with ``n``, how many ops it stands for."""
    return _points(ops, _base(ops)[0]).frame()


def roofline_rows(ops) -> Columns:
    """:func:`roofline_points` as :class:`Columns` (no pandas)."""
    return _points(ops, _base(ops)[0])


def group_ids(table, keys: list[str]) -> tuple[np.ndarray, int]:
    """Group id per row of ``table`` (a :class:`Columns`) over ``keys``, numbered in order of
    first appearance (``groupby(keys, sort=False)``'s groups), and the number of groups."""
    key, card = np.zeros(len(table), dtype=np.int64), 1
    for k in keys:
        key, card = _combine(key, card, *array_codes(np.asarray(table[k])))
    ids, first = _groups(key, card if card <= _KEY_LIMIT else None)
    return ids, len(first)


def intensity_rows(df: Columns) -> Columns:
    """:func:`intensity_points` of roofline point rows given as :class:`Columns` (no pandas):
    the rows with ``intensity``, ``achieved`` and ``total_s`` added, one per distinct (op,
    phase, flops, bytes, latency)."""
    names = [*df.order, "intensity", "achieved", "total_s"]
    if not len(df):
        return Columns({c: (np.asarray(df[c]) if c in df else np.zeros(0)) for c in names},
                       names, 0)
    lat, n, flops, nbytes = (np.asarray(df[c]) for c in ("latency_s", "n", "flops", "bytes"))
    ids, count = group_ids(df, ["op", "phase", "flops", "bytes"])
    total = group_sum(ids, lat * n, count)[ids]
    out = {c: np.asarray(df[c]) for c in df.order}
    out.update(intensity=flops / nbytes, achieved=flops / np.asarray(df["shards"]) / lat,
               total_s=total)
    dup, _ = group_ids(df, ["op", "phase", "flops", "bytes", "latency_s"])
    keep = np.sort(_first_of(dup))
    return Columns({c: v[keep] for c, v in out.items()}, names, len(keep))


def _first_of(ids: np.ndarray) -> np.ndarray:
    """The first row of each group id."""
    _, first = np.unique(ids, return_index=True)
    return first


def intensity_points(ops: pd.DataFrame) -> pd.DataFrame:
    """One point per distinct (op, phase, shape, time): intensity, achieved FLOP/s per device
    and the op's summed time over the run (for labels). ``ops`` may be the op table or its
    :func:`roofline_points`."""
    from sim.columns import as_columns

    df = ops if "n" in ops.columns else roofline_points(ops)
    return intensity_rows(as_columns(df)).frame()


def sum_matrix(df, index: str, columns: str, values: str
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(index values, column values, sums)`` of :func:`sum_table` (``df``: a DataFrame or
    :class:`Columns`; no pandas)."""
    ri, rows = factorize(column(df, index), sort=True, na_sentinel=True)
    ci, cols = factorize(column(df, columns), sort=True, na_sentinel=True)
    table = np.zeros((len(rows), len(cols)))
    known = (ri >= 0) & (ci >= 0)   # rows with a missing key are left out, as pivot_table does
    np.add.at(table, (ri[known], ci[known]),
              np.asarray(column(df, values), dtype=np.float64)[known])
    return rows, cols, table


def sum_table(df: pd.DataFrame, index: str, columns: str, values: str) -> pd.DataFrame:
    """``values`` summed per (``index``, ``columns``) pair, one row per ``index`` value and one
    column per ``columns`` value (both sorted), 0.0 where a pair is absent: what
    ``pivot_table(aggfunc="sum", fill_value=0.0)`` gives, without its ~20 ms of overhead
    on the few hundred summed rows."""
    import pandas as pd

    rows, cols, table = sum_matrix(df, index, columns, values)
    return pd.DataFrame(table, index=pd.Index(rows, name=index),
                        columns=pd.Index(cols, name=columns))


def decode_step(ops) -> int | None:
    """The decode step a timeline shows: the middle one (None without decode). ``ops``: the
    op table or its sorted distinct decode steps."""
    if isinstance(ops, np.ndarray):
        steps = ops
    else:
        decode = np.asarray(column(ops, "phase") == "decode", dtype=bool)
        steps = distinct_ints(column(ops, "step")[decode])
    return int(steps[len(steps) // 2]) if len(steps) else None
