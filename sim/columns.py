"""A table held as numpy columns, with its pandas DataFrame built only when asked for.

A run's op, transfer and resource tables are computed from arrays, and its metrics and
invariants read those arrays: a ``run --json`` never imports pandas. :meth:`Columns.frame`
builds the DataFrame (importing pandas there) for the report writer, notebooks and tests, from
exactly the columns the tables were always built from, so its values and dtypes are unchanged.

:func:`column` and :func:`text_codes` read a column of either kind of table (a :class:`Columns`
or a DataFrame), so checks written on them accept both.
"""

from __future__ import annotations

import _thread  # builtin, loaded at start-up (``threading`` is not, on a default run)
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class Text:
    """A text column as ``labels[codes[i]]`` per row. ``build`` makes the DataFrame's column
    (called with labels and codes); without it the column is ``values`` (a list of str)."""

    __slots__ = ("labels", "codes", "build", "values")

    def __init__(self, labels: list[str], codes: np.ndarray,
                 build: Callable[[list[str], np.ndarray], Any] | None = None,
                 values: list[str] | None = None):
        self.labels, self.codes, self.build, self.values = labels, codes, build, values

    @classmethod
    def of(cls, values: list[str]) -> Text:
        """The column of a list of str (the DataFrame gets the list itself): labels in the
        order they first occur, codes by one dict lookup per row (``dict.fromkeys`` and
        ``map`` run in C; the labels and codes a ``setdefault`` per row gives)."""
        labels = list(dict.fromkeys(values))
        slot = dict(zip(labels, range(len(labels)), strict=True))
        codes = np.fromiter(map(slot.__getitem__, values), dtype=np.int64, count=len(values))
        return cls(labels, codes, values=values)

    @classmethod
    def of_codes(cls, labels: Sequence[str], codes: np.ndarray) -> Text:
        """The column :meth:`of` makes of ``labels[codes[i]]`` per row (labels once each, in
        the order they first occur; ``labels`` may repeat one), from the codes."""
        codes = np.asarray(codes, dtype=np.int64)
        slots: dict[str, int] = {}
        lut = np.zeros(len(labels), dtype=np.int64)
        for c in first_occurrences(codes, len(labels))[0].tolist():
            lut[c] = slots.setdefault(labels[c], len(slots))
        return cls(list(slots), lut[codes])

    def __len__(self) -> int:
        return len(self.codes)

    def column(self) -> Any:
        """The DataFrame's column."""
        if self.build is not None:
            return self.build(self.labels, self.codes)
        return self.values if self.values is not None else self.array()

    def distinct(self) -> tuple[list[str], np.ndarray]:
        """(labels, codes) with each label once, codes only of labels that occur (found by
        counting codes, one pass, where they are non-negative ints; else ``np.unique``)."""
        codes = np.asarray(self.codes)
        counted = codes.dtype.kind in "iu" and len(codes) and int(codes.min()) >= 0
        if counted:
            used = used_codes(codes, len(self.labels))
        else:
            used = np.unique(codes)
        slots: dict[str, int] = {}
        lut = np.zeros(len(self.labels), dtype=np.int64)
        for j in used.tolist():
            lut[j] = slots.setdefault(self.labels[j], len(slots))
        if counted and len(slots) == len(self.labels):
            return list(slots), codes    # every label occurs, each once: the codes themselves
        return list(slots), lut[self.codes]

    def eq(self, value: str) -> np.ndarray:
        """Mask of the rows equal to ``value``."""
        lut = np.array([label == value for label in self.labels] or [False], dtype=bool)
        return lut[self.codes]

    def array(self) -> np.ndarray:
        """One Python str per row (object array)."""
        return np.array(self.labels, dtype=object)[self.codes]


#: codes from which :func:`used_codes` marks them by a compiled pass
COMPILED_CODES_ROWS = 1 << 20
_CODE_WIDTHS = {np.dtype(np.int8): "i1", np.dtype(np.int32): "i4", np.dtype(np.int64): "i8"}


def used_codes(codes: np.ndarray, n: int, compiled_from: int | None = None) -> np.ndarray:
    """The codes (ints) some entry of ``codes`` is, ascending: ``np.flatnonzero(np.bincount(
    codes, minlength=n))`` (a negative code raises, a code past ``n`` is counted as numpy
    counts it); from ``compiled_from`` codes (default :data:`COMPILED_CODES_ROWS`) of 8-, 32-
    or 64-bit ints all in ``0..n-1``, one compiled pass that marks them
    (:func:`sim.group_kernel.used_labels`: ``np.bincount`` casts 32-bit codes to 64 bits,
    then counts)."""
    width = _CODE_WIDTHS.get(codes.dtype)
    lo = COMPILED_CODES_ROWS if compiled_from is None else compiled_from
    if width is not None and len(codes) >= max(lo, 1) and codes.flags.c_contiguous and \
            0 <= int(codes.min()) and int(codes.max()) < n:
        from sim.engine_aot import kernels

        used = np.empty(n, dtype=bool)
        getattr(kernels(), f"used_labels_{width}")(codes, used)
        return np.flatnonzero(used)
    return np.flatnonzero(np.bincount(codes, minlength=n))


class Lazy:
    """A column computed on first use: ``fn()`` returns its array or :class:`Text` (a run's op
    table computes only the columns its metrics, checks and outputs read). ``by``: a code
    per row that determines the column's value (rows of equal code hold equal values: a
    per-kind figure gathered by the ops' kind), known without forming the column.
    ``values``: the column is ``values[by]`` (``fn`` forms exactly that), so its sums and row
    blocks are read from ``values`` and ``by`` without forming it (:meth:`Columns.total`,
    :meth:`Columns.block`). ``arange``: the column is ``0, 1, ..., n - 1``."""

    __slots__ = ("fn", "by", "values", "arange")

    def __init__(self, fn: Callable[[], Any], by: np.ndarray | None = None,
                 values: np.ndarray | None = None, arange: bool = False):
        self.fn, self.by, self.values, self.arange = fn, by, values, arange
        if values is not None and by is None:
            raise ValueError("Lazy: values need the codes (by) that gather them")


#: rows per leaf of :func:`gathered_sum` (a leaf is gathered into one reused buffer)
LEAF = 1 << 16


def _pairwise(values: np.ndarray, by: np.ndarray, lo: int, n: int, buf: np.ndarray,
              leaf: int = LEAF) -> Any:
    """``np.add.reduce(values[by[lo:lo + n]])`` in numpy's own pairwise order: split as
    numpy's ``pairwise_sum`` splits (halves rounded down to a multiple of 8) down to leaves of
    at most ``leaf`` rows, each leaf gathered into ``buf`` and reduced by numpy."""
    if n <= leaf:
        part = buf[:n]
        np.take(values, by[lo:lo + n], out=part)
        return np.add.reduce(part)
    half = n // 2
    half -= half % 8
    return _pairwise(values, by, lo, half, buf, leaf) + \
        _pairwise(values, by, lo + half, n - half, buf, leaf)


#: rows from which :func:`gathered_sum` sums by the compiled kernel
#: (:func:`sim.sum_kernel.gathered_pairwise`); shorter ranges do not load the extension
COMPILED_SUM_ROWS = 1 << 20
_SUMS_CHECKED: dict[str, bool] = {}


def _sums_as_numpy(name: str, fn: Callable[..., Any]) -> bool:
    """Whether ``fn(values, by, lo, n, leaf)`` gives ``np.sum``'s result of
    ``values[by[lo:lo + n]]`` bit for bit with this numpy (checked once per process per
    ``name`` on values of widely spread magnitudes and signs, at several lengths and offsets,
    with 32- and 64-bit codes and leaves of 256 rows: the split rule is the same at every
    node; if not, :func:`gathered_sum` does not use ``fn``)."""
    if name not in _SUMS_CHECKED:
        # (no numpy.random: its import alone costs a run's start-up ~20 ms)
        x = np.arange(509.0)
        values = np.sin(x * 12.9898) * np.exp(40.0 * np.sin(x * 78.233))
        ok, leaf = True, 256
        for n, lo in ((13 * leaf + 123, 0), (2 * leaf + 8, 3), (leaf + 1, 17),
                      (37 * leaf - 7, 1), (5, 2)):
            by = (np.arange(n + lo, dtype=np.int64) * 7919 + lo) % len(values)
            want = values[by][lo:].sum()     # a view into the formed column, as a slice sums
            for codes in (by, by.astype(np.int32)):
                got = fn(values, codes, lo, n, leaf)
                ok = ok and bool(got == want) and np.asarray(got).dtype == want.dtype
        _SUMS_CHECKED[name] = ok
    return _SUMS_CHECKED[name]


def _pairwise_matches() -> bool:
    """Whether :func:`_pairwise` gives ``np.sum``'s result bit for bit with this numpy."""
    return _sums_as_numpy("leaves", lambda values, by, lo, n, leaf:
                          _pairwise(values, by, lo, n, np.empty(leaf), leaf))


def _compiled_sum(values: np.ndarray, by: np.ndarray, lo: int, n: int, leaf: int) -> float:
    """:func:`_pairwise`'s sum by :func:`sim.sum_kernel.gathered_pairwise`."""
    from sim.engine_aot import kernels

    k = kernels()
    fn = k.gathered_pairwise_i4 if by.dtype == np.int32 else k.gathered_pairwise_i8
    return fn(np.ascontiguousarray(values), np.ascontiguousarray(by), lo, n, leaf)


def gathered_sum(values: np.ndarray, by: np.ndarray, lo: int = 0, hi: int | None = None) -> float:
    """``float(values[by[lo:hi]].sum())``, equal bit for bit, without a table-long gathered
    array: the same pairwise additions over leaves of :data:`LEAF` rows, read in place by a
    compiled pass (:data:`COMPILED_SUM_ROWS` rows or more, 32- or 64-bit codes) or gathered
    leaf by leaf into one buffer (float64 ``values``; others, short ranges, or a numpy whose
    sum is not :func:`_pairwise`'s, form the gathered rows)."""
    hi = len(by) if hi is None else hi
    n = hi - lo
    if n <= LEAF or values.dtype != np.float64 or values.ndim != 1 or \
            not _pairwise_matches():
        return float(values[by[lo:hi]].sum())
    if n >= COMPILED_SUM_ROWS and by.dtype in (np.int32, np.int64) and \
            _sums_as_numpy("compiled", _compiled_sum):
        return float(_compiled_sum(values, by, lo, n, LEAF))
    return float(_pairwise(values, by, lo, n, np.empty(LEAF)))


class _ColumnLocks:
    """A lock per column name, made on first use."""

    def __init__(self) -> None:
        self._locks: dict[str, Any] = {}
        self._making = _thread.allocate_lock()

    def __getitem__(self, name: str) -> Any:
        got = self._locks.get(name)
        if got is None:
            with self._making:
                got = self._locks.setdefault(name, _thread.allocate_lock())
        return got


class Columns:
    """Named columns of equal length ``n``: numpy arrays, :class:`Text`, :class:`Lazy` (made
    on first use), or (``rows``) a list of row dicts. ``frame_kwargs`` go to ``pd.DataFrame``
    (e.g. ``copy=False``)."""

    def __init__(self, data: dict[str, Any] | None, order: Sequence[str], n: int,
                 rows: list[dict[str, Any]] | None = None, **frame_kwargs: Any):
        self._cols = data
        self._rows = rows
        self.order = list(order)
        self.n = n
        self._kwargs = frame_kwargs
        self._frame = None
        self._arrays: dict[str, np.ndarray] = {}
        self._by = {k: v.by for k, v in (data or {}).items()
                    if isinstance(v, Lazy) and v.by is not None}
        self._totals: dict[str, float] = {}
        self._distinct: dict[str, tuple[list[str], np.ndarray]] = {}
        # a Lazy column is formed by one thread (the report's parquet thread and its caller
        # read one table: each column formed once, one object kept), other columns meanwhile
        self._forming = _ColumnLocks()

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]], order: Sequence[str]) -> Columns:
        """A small table given row by row (the DataFrame is built from the rows)."""
        return cls(None, order, len(rows), rows=rows)

    def __len__(self) -> int:
        return self.n

    @property
    def _data(self) -> dict[str, Any] | None:
        """Every column as given, :class:`Lazy` ones computed now."""
        if self._cols is not None:
            for name in list(self._cols):
                self._value(name)
        return self._cols

    def __getstate__(self) -> dict[str, Any]:
        """Pickled and copied with every :class:`Lazy` column formed (closures do not pickle)."""
        _ = self._data
        return {k: v for k, v in self.__dict__.items() if k != "_forming"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_distinct", {})
        self._forming = _ColumnLocks()

    def _value(self, name: str) -> Any:
        """Column ``name`` as given (a :class:`Lazy` one computed and kept)."""
        value = self._cols[name]
        if isinstance(value, Lazy):
            with self._forming[name]:      # formed by another thread meanwhile: that one
                value = self._cols[name]
                if isinstance(value, Lazy):
                    value = self._cols[name] = value.fn()
        return value

    @property
    def empty(self) -> bool:
        return self.n == 0

    def __contains__(self, name: object) -> bool:
        return name in self.order

    def __getitem__(self, name: str) -> np.ndarray:
        """The column as a numpy array (text: one str per row, object dtype)."""
        got = self._arrays.get(name)
        if got is not None:
            return got
        if name not in self.order:
            raise KeyError(name)
        if self._rows is not None:
            got = np.array([r[name] for r in self._rows]) if self._rows else np.zeros(0)
        else:
            value = self._value(name)
            got = value.array() if isinstance(value, Text) else np.asarray(value)
        self._arrays[name] = got
        return got

    def keyed_by(self, name: str) -> np.ndarray | None:
        """The code per row that determines column ``name`` (:attr:`Lazy.by`), or None."""
        return getattr(self, "_by", {}).get(name)   # (a table pickled before it had one)

    def once(self, name: str) -> np.ndarray:
        """Column ``name`` as ``self[name]`` gives it, but a :class:`Lazy` column not yet
        formed is formed without being kept (for one pass over it: a sum, a check), so a
        long run's table does not hold, nor first touch, memory for it."""
        got = self._arrays.get(name)
        if got is None and self._cols is not None and isinstance(self._cols.get(name), Lazy):
            value = self._cols[name].fn()
            return value.array() if isinstance(value, Text) else np.asarray(value)
        return self[name]

    def gathered(self, name: str) -> Lazy | None:
        """Column ``name``'s :class:`Lazy` when it is ``values[by]`` and not yet formed."""
        if name in self._arrays or self._cols is None:
            return None
        value = self._cols.get(name)
        return value if isinstance(value, Lazy) and value.values is not None else None

    def total(self, name: str, rows: slice | np.ndarray | None = None) -> float:
        """``float(self[name][rows].sum())`` (all rows when ``rows`` is None), bit for bit; a
        column gathered from per-code values (:attr:`Lazy.values`) and not yet formed is
        summed without forming it (a contiguous slice of rows too: :func:`gathered_sum`).
        Whole-column totals are kept (the run's metrics and checks sum a column each)."""
        if rows is None:
            got = self._totals.get(name) if hasattr(self, "_totals") else None
            if got is None:
                lazy = self.gathered(name)
                got = gathered_sum(lazy.values, lazy.by) if lazy is not None \
                    else float(self.once(name).sum())
                if not hasattr(self, "_totals"):   # (a table pickled before it had one)
                    self._totals = {}
                self._totals[name] = got
            return got
        lazy = self.gathered(name)
        if lazy is not None and isinstance(rows, slice) and rows.step in (None, 1):
            lo, hi, _ = rows.indices(self.n)
            return gathered_sum(lazy.values, lazy.by, lo, max(lo, hi))
        return float(self.once(name)[rows].sum())

    def block(self, name: str, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` of column ``name`` (numeric), without forming a column gathered
        from per-code values (:attr:`Lazy.values`)."""
        lazy = self.gathered(name)
        if lazy is not None:
            return lazy.values[lazy.by[lo:hi]]
        return self[name][lo:hi]

    def is_range(self, name: str) -> bool:
        """Whether column ``name`` is given as ``0, 1, ..., n - 1`` (:attr:`Lazy.arange`)."""
        value = self._cols.get(name) if self._cols is not None else None
        return isinstance(value, Lazy) and value.arange and name not in self._arrays

    def text(self, name: str) -> Text:
        """A text column as labels and codes."""
        value = self._value(name) if self._cols is not None else None
        if isinstance(value, Text):
            return value
        return Text.of([str(v) for v in self[name].tolist()])

    def distinct(self, name: str) -> tuple[list[str], np.ndarray]:
        """:meth:`Text.distinct` of text column ``name``, computed once per table (the system
        checks, metrics and memory traffic of a run each ask for the streams')."""
        got = self._distinct.get(name)
        if got is None:
            got = self._distinct[name] = self.text(name).distinct()
        return got

    @property
    def columnar(self) -> bool:
        """Whether the columns were given as arrays (not row dicts)."""
        return self._cols is not None

    def is_text(self, name: str) -> bool:
        """Whether column ``name`` was given as a :class:`Text` (labels and codes); a
        :class:`Lazy` column gathered from numbers or counting rows is known not to be without
        being formed."""
        if self._cols is None or name not in self._cols:
            return False
        value = self._cols[name]
        if isinstance(value, Lazy) and (value.arange or (
                value.values is not None and value.values.dtype.kind in "iufb")):
            return False
        return isinstance(self._value(name), Text)

    def take(self, rows: np.ndarray):
        """The DataFrame of the rows at positions ``rows`` (indexed by those positions): what
        ``frame().iloc[rows]`` gives, without building the whole frame first."""
        if self._frame is not None or self._rows is not None:
            return self.frame().iloc[rows]
        import pandas as pd

        rows = np.asarray(rows, dtype=np.int64)
        data = {k: _taken(v, rows) for k, v in self._data.items()}
        return pd.DataFrame(data, columns=self.order, index=pd.Index(rows))

    def subset(self, rows: np.ndarray) -> Columns:
        """The rows at positions ``rows`` as :class:`Columns` (no pandas; text columns keep
        their labels, with the codes of those rows; a column gathered from per-code values
        and not formed yet is gathered for those rows alone). Its frame is ``take(rows)``
        re-indexed from 0."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._cols is None:
            return Columns.from_rows([self._rows[i] for i in rows.tolist()], self.order)
        data = {}
        for k in list(self._cols):
            v = self._cols[k]
            if isinstance(v, Lazy) and v.values is not None:   # values[by]: those rows only
                data[k] = v.values[v.by[rows]]
                continue
            v = self._value(k)
            if isinstance(v, Text):
                values = None if v.values is None else [v.values[i] for i in rows.tolist()]
                data[k] = Text(v.labels, v.codes[rows], v.build, values)
            elif isinstance(v, list):
                data[k] = [v[i] for i in rows.tolist()]
            else:
                data[k] = np.asarray(v)[rows]
        return Columns(data, self.order, len(rows), **self._kwargs)

    def frame(self):
        """The pandas DataFrame (built once, then cached)."""
        if self._frame is None:
            import pandas as pd

            if self._rows is not None:
                self._frame = pd.DataFrame(self._rows, columns=self.order)
            else:
                data = {k: (v.column() if isinstance(v, Text) else v)
                        for k, v in self._data.items()}
                self._frame = pd.DataFrame(data, columns=self.order, **self._kwargs)
        return self._frame


def _taken(value: Any, rows: np.ndarray) -> Any:
    """The DataFrame column of ``value`` (an array or :class:`Text`) at positions ``rows``."""
    if not isinstance(value, Text):
        if isinstance(value, list):   # as the DataFrame infers it from the list
            return [value[i] for i in rows.tolist()]
        return np.asarray(value)[rows]
    if value.build is not None:
        return value.build(value.labels, value.codes[rows])
    if value.values is None:
        return np.array(value.labels, dtype=object)[value.codes[rows]]
    return [value.values[i] for i in rows.tolist()]


def frame_of(table: Any):
    """``table`` as a DataFrame (a :class:`Columns` builds its own; a DataFrame is itself)."""
    return table.frame() if isinstance(table, Columns) else table


def column(table: Any, name: str) -> np.ndarray:
    """Column ``name`` of a :class:`Columns` or a DataFrame as a numpy array."""
    if isinstance(table, Columns):
        return table[name]
    return table[name].to_numpy()


def column_once(table: Any, name: str) -> np.ndarray:
    """:func:`column`, not keeping a column a :class:`Columns` forms for it
    (:meth:`Columns.once`)."""
    if isinstance(table, Columns):
        return table.once(name)
    return table[name].to_numpy()


def text_codes(table: Any, name: str) -> tuple[list[str], np.ndarray]:
    """A text column of a :class:`Columns` or a DataFrame as (distinct labels, code per row)."""
    if isinstance(table, Columns):
        return table.distinct(name)
    t = Text.of([str(v) for v in table[name].tolist()])
    return t.labels, t.codes


def cell(table: Any, name: str, i: int) -> Any:
    """Row ``i`` (position) of column ``name`` (for messages)."""
    value = column(table, name)[i]
    return value.item() if isinstance(value, np.generic) else value


def as_columns(table: Any) -> Columns:
    """``table`` as :class:`Columns`: itself, or a DataFrame's columns as numpy arrays (the
    report's small tables, so that one numpy code path draws both)."""
    if isinstance(table, Columns):
        return table
    names = [str(c) for c in table.columns]
    return Columns({c: table[c].to_numpy() for c in names}, names, len(table))


#: codes from which :func:`first_occurrences` finds them by a compiled pass
COMPILED_FIRST_ROWS = 1 << 20


def first_occurrences(codes: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`workloads.fold.first_seen` of ``codes`` (in ``range(n_codes)``): for
    :data:`COMPILED_FIRST_ROWS` codes or more, 32- or 64-bit, by one compiled pass
    (:func:`sim.group_kernel.first_groups`, no ids written: ~8 ms for 10M ops, where numpy's
    running maximum takes ~33 and, where the codes are not numbered as they first occur,
    ``np.minimum.at`` ~75 - a run's 1.3M transfers' route codes, once per text column of
    the transfer table: that table 0.044 -> 0.023 s, 2026-12-07). Codes outside
    ``range(n_codes)`` raise ValueError there (the pass writes a table they index)."""
    if len(codes) < COMPILED_FIRST_ROWS or codes.dtype not in (np.int32, np.int64) or \
            not codes.flags.c_contiguous:
        from workloads.fold import first_seen

        return first_seen(codes, n_codes)
    if len(codes) and (int(codes.min()) < 0 or int(codes.max()) >= n_codes):   # (the pass would
        # write outside its table; numpy's path raises IndexError)
        raise ValueError(f"first_occurrences: codes outside 0..{n_codes - 1}")
    import sim.engine_aot as aot

    at = np.empty(n_codes, dtype=np.int64)
    k = aot.kernels()
    m = (k.first_groups_i4 if codes.dtype == np.int32 else k.first_groups)(
        codes, np.empty(n_codes, dtype=np.int64), np.empty(0, dtype=np.int64), at)
    return codes[at[:m]].astype(np.int64), at[:m]


def in_first_order(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the distinct values of ``codes`` in the order they first occur, the position of each
    one's first occurrence, each element's index into the former): ``np.unique`` renumbered
    by first occurrence. Where the values span under 2**22, by a first-occurrence scan over
    them as codes (:func:`first_occurrences`; no sort of all of them)."""
    if len(codes):
        lo, hi = int(codes.min()), int(codes.max())
        if hi - lo < 1 << 22:
            shifted = codes.astype(np.int64).reshape(-1) - lo
            used, first = first_occurrences(shifted, hi - lo + 1)
            rank = np.empty(hi - lo + 1, dtype=np.int64)
            rank[used] = np.arange(len(used))
            return (used + lo).astype(codes.dtype), first, rank[shifted]
    uniq, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return uniq[order], first[order], rank[inverse.reshape(-1)]


def run_codes(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """A code per run ``values[bounds[i]:bounds[i + 1]]`` of integers: two runs get one code
    exactly when they are equal (as long, the same values in the same order). Runs of one
    length are read column by column as mixed-radix numbers (renumbered densely before they
    could pass 2**62), so the Python work is a few numpy calls per column of each length."""
    bounds = np.asarray(bounds, dtype=np.int64)
    lengths = np.diff(bounds)
    out = np.empty(len(lengths), dtype=np.int64)
    if not len(lengths):
        return out
    vals = np.asarray(values, dtype=np.int64)
    if len(vals):
        vals = vals - int(vals.min())
    base = int(vals.max()) + 1 if len(vals) else 1
    offset = 0
    for length in np.unique(lengths).tolist():
        runs = np.flatnonzero(lengths == length)
        starts = bounds[runs]
        code = np.zeros(len(runs), dtype=np.int64)
        for c in range(length):
            if int(code.max()) >= ((1 << 62) - base) // base:
                code = np.unique(code, return_inverse=True)[1].reshape(-1)
            code = code * base + vals[starts + c]
        dense = np.unique(code, return_inverse=True)[1].reshape(-1)
        out[runs] = dense + offset
        offset += int(dense.max()) + 1 if len(dense) else 0
    return out


def flat_rows(rows: Sequence, dtype: Any = np.int64) -> tuple[np.ndarray, np.ndarray]:
    """Ragged ``rows`` (sequences or arrays) as one CSR table: (``ptr``, int64, ``len(rows) +
    1`` offsets; ``flat``, of ``dtype``): row ``j`` is ``flat[ptr[j]:ptr[j + 1]]``."""
    ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=ptr[1:])
    flat = np.concatenate([np.asarray(r, dtype=dtype) for r in rows]) if len(rows) else \
        np.zeros(0, dtype=dtype)
    return ptr, flat.astype(dtype, copy=False)


def distinct_ints(values: np.ndarray) -> np.ndarray:
    """Sorted distinct integers: a bincount over their range where it is under 2**22 wide, else
    by sorting (numpy 2.x's hash-based ``np.unique`` of a few million ints takes ~1 s)."""
    if not len(values):
        return values.astype(np.int64)
    lo, hi = int(values.min()), int(values.max())
    if hi - lo < 1 << 22:
        return np.flatnonzero(np.bincount(values.astype(np.int64) - lo)) + lo
    ordered = np.sort(values)
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]
