"""The few table operations the run report needs, on numpy arrays, giving pandas' results.

The report is written without importing pandas (~0.5 s CPU of a CLI run): its summed rows,
points and tables are :class:`sim.columns.Columns` of numpy arrays, and these helpers do what
the DataFrame calls they replace did, to the bit: :func:`factorize` is ``pd.factorize``
(first-appearance order; ``sort=True``: sorted, NaN -> -1; pandas' own hash table when
pandas is already loaded, else Arrow's for a long numeric array when pyarrow is, a sort
otherwise: the same codes), :func:`group_sum` is
``groupby(...).sum()`` (pandas' Kahan-compensated sums, not ``np.bincount``'s plain ones) and
:func:`nargsort` is the argsort behind ``sort_values`` (``quicksort``, NaN last).
"""

from __future__ import annotations

import re
import sys

import numpy as np

from sim.columns import Columns
from sim.compensated import compensated_sums


def factorize(values: np.ndarray, sort: bool = False, na_sentinel: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(code per value, distinct values)``, as ``pd.factorize``: distinct values in order of
    first appearance (``sort``: ascending); NaN (and None) one value of its own, or code -1
    with ``na_sentinel`` (what ``pd.factorize(sort=True)`` does by default)."""
    values = np.asarray(values)
    pd = sys.modules.get("pandas")
    if pd is not None:   # already loaded (a DataFrame given, a notebook): its hash table
        c, uniques = pd.factorize(values, sort=sort, use_na_sentinel=na_sentinel)
        return c.astype(np.int64, copy=False), np.asarray(uniques)
    if not sort and values.dtype.kind in "iufb" and _arrow_worth(len(values)):
        got = arrow_factorize(values, na_sentinel)
        if got is not None:
            return got
    return numpy_factorize(values, sort, na_sentinel)


#: below this many values a sort is as fast as a hash table
_HASH_MIN = 1 << 12


def _arrow_worth(n: int) -> bool:
    """Whether to factorise ``n`` numbers with Arrow's hash table (pyarrow loaded)."""
    return n > _HASH_MIN and "pyarrow" in sys.modules


def _call_function():
    """Arrow's ``call_function`` (from its compiled module: ``pyarrow.compute`` itself
    builds a wrapper per kernel on import, ~0.08 s CPU)."""
    try:
        from pyarrow._compute import call_function
    except ImportError:   # a pyarrow laid out otherwise: the public module
        from pyarrow.compute import call_function
    return call_function


def hashing() -> bool:
    """Whether a hash table is at hand (pandas' or Arrow's, when already loaded: the report
    of a parquet file loads pyarrow), so that grouping need not sort."""
    return "pandas" in sys.modules or "pyarrow" in sys.modules


def _bits64(values: np.ndarray) -> np.ndarray:
    """Numbers as int64 keys equal exactly where the numbers are equal: integers as
    themselves, floats as their bits with -0.0 made 0.0 and every NaN one NaN."""
    if values.dtype.kind != "f":
        return values.astype(np.int64, copy=False)
    v = values.astype(np.float64) + 0.0   # a copy; -0.0 + 0.0 is 0.0
    v[np.isnan(v)] = np.nan
    return v.view(np.int64)


def arrow_factorize(values: np.ndarray, na_sentinel: bool = False
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`factorize` of a numeric array (``sort=False``) by Arrow's hash table
    (``dictionary_encode``: codes in order of first appearance, as pandas numbers them), the
    distinct values as they first occur. None where NaN would need the sentinel (the caller
    sorts instead)."""
    import pyarrow as pa

    values = np.asarray(values)
    if values.dtype.kind == "u" and values.dtype.itemsize == 8:
        return None   # above 2**63 a uint64 is no int64
    if na_sentinel and values.dtype.kind == "f" and np.isnan(values).any():
        return None
    keys = np.ascontiguousarray(_bits64(values))
    # from the buffers: ``pa.array`` would import pandas (~0.5 s)
    idx = _call_function()("dictionary_encode", [pa.Array.from_buffers(
        pa.int64(), len(keys), [None, pa.py_buffer(keys)])]).indices
    width = idx.type.bit_width // 8
    codes = np.frombuffer(idx.buffers()[1], dtype=np.dtype(f"i{width}"), count=len(idx),
                          offset=idx.offset * width).astype(np.int64)
    return codes, values[first_appearances(codes)]


def first_appearances(codes: np.ndarray) -> np.ndarray:
    """The first row of each code, for codes numbered in order of first appearance (a group
    starts where the running maximum steps up)."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    running = np.maximum.accumulate(codes)
    return np.flatnonzero(np.concatenate(([True], running[1:] != running[:-1])))


def numpy_factorize(values: np.ndarray, sort: bool = False, na_sentinel: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`factorize` by sorting (``np.unique``), without pandas."""
    values = np.asarray(values)
    n = len(values)
    if values.dtype.kind == "O":
        return _factorize_objects(values, sort, na_sentinel)
    if not n:
        return np.zeros(0, dtype=np.int64), values[:0]
    uniq, first, inv = np.unique(values, return_index=True, return_inverse=True)
    inv = inv.reshape(-1).astype(np.int64, copy=False)
    if na_sentinel and uniq.dtype.kind == "f" and len(uniq) and np.isnan(uniq[-1]):
        # np.unique keeps the NaNs as one value, last (equal_nan)
        inv = np.where(inv == len(uniq) - 1, -1, inv)
        uniq, first = uniq[:-1], first[:-1]
    if sort:
        return inv, uniq
    uniq = values[first]   # each value as it first occurs (0.0 or -0.0, as pandas keeps it)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    ok = inv >= 0
    out = np.where(ok, rank[np.where(ok, inv, 0)], -1)
    return out, uniq[order]


def sorted_groups(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group id per row of equal ``key`` values (numbered in order of first appearance) and
    each group's first row, by one sort of the keys (no hash table, no pandas)."""
    n = len(key)
    if not n:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(key, kind="stable")   # stable: each run starts at its first row
    ks = key[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(ks[1:], ks[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    firsts = order[starts]                 # first row of each group (sorted-key order)
    by_first = np.argsort(firsts)          # groups in order of first appearance
    rank = np.empty(len(firsts), dtype=np.int64)
    rank[by_first] = np.arange(len(firsts), dtype=np.int64)
    ids = np.empty(n, dtype=np.int64)
    ids[order] = rank[np.cumsum(new) - 1]
    return ids, firsts[by_first].astype(np.int64)


def _isna(v: object) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _factorize_objects(values: np.ndarray, sort: bool, na_sentinel: bool
                       ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`factorize` of an object array (a dict of the distinct values, first seen first;
    the missing ones, None or NaN, merged into one value or code -1 afterwards)."""
    items = values.tolist()
    keys = list(dict.fromkeys(items))   # first seen first (equal as a dict's keys are)
    slots = {k: j for j, k in enumerate(keys)}
    codes = np.fromiter(map(slots.__getitem__, items), dtype=np.int64, count=len(items))
    missing = [j for j, k in enumerate(keys) if _isna(k)]
    if missing:
        lut = np.empty(len(keys), dtype=np.int64)
        kept: list = []
        na_code = -1
        for j, k in enumerate(keys):
            if j in missing:
                if not na_sentinel and na_code < 0:
                    na_code = len(kept)
                    kept.append(float("nan"))
                lut[j] = na_code
            else:
                lut[j] = len(kept)
                kept.append(k)
        codes, keys = lut[codes], kept
    uniq = np.empty(len(keys), dtype=object)
    uniq[:] = keys
    if sort and len(uniq):
        order = np.array(sorted(range(len(uniq)), key=lambda j: uniq[j]), dtype=np.int64)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        codes = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1)
        uniq = uniq[order]
    return codes, uniq


#: rows from which :func:`group_sum` adds by its compiled loop (below, the Python loop costs
#: less than loading the compiled one where nothing else has)
COMPILED_SUM_ROWS = 4096


def group_sum(ids: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """``values`` summed per group id (``0 <= id < n``; -1: left out), rows in order, each sum
    compensated (Kahan) as pandas' ``groupby(...).sum()`` does; NaN values skipped; integers
    summed exactly as int64. The loop is :func:`sim.compensated.compensated_sums`: run on
    Python lists, and compiled (``group_kernel.compensated_sums``) for a table of
    :data:`COMPILED_SUM_ROWS` rows or more (a system run's transfers)."""
    values = np.asarray(values)
    if values.dtype.kind in "iub":   # integers add exactly (pandas keeps their dtype)
        out = np.zeros(n, dtype=np.int64)
        ids = np.asarray(ids)
        ok = ids >= 0
        np.add.at(out, ids[ok], values[ok].astype(np.int64))
        return out
    if len(ids) >= COMPILED_SUM_ROWS:
        from sim.engine_aot import kernels

        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if int(ids.max()) >= n:   # (the compiled loop does not check its indices)
            raise IndexError(f"group id {int(ids.max())} out of range for {n} groups")
        sums, comp = np.zeros(n), np.zeros(n)
        kernels().compensated_sums(ids, np.ascontiguousarray(values, dtype=np.float64), sums,
                                   comp)
        return sums
    ids, values = np.asarray(ids).tolist(), np.asarray(values, dtype=np.float64).tolist()
    if len(ids) != len(values):
        raise ValueError(f"group_sum: {len(ids)} group ids for {len(values)} values")
    sums, comp = [0.0] * n, [0.0] * n
    compensated_sums(ids, values, sums, comp)   # the loop as it is, on Python floats
    return np.array(sums, dtype=np.float64)


def nargsort(values: np.ndarray, ascending: bool = True, kind: str = "quicksort"
             ) -> np.ndarray:
    """The row order ``sort_values`` gives (``pandas.core.sorting.nargsort``: NaN last)."""
    items = np.asarray(values)
    mask = np.isnan(items) if items.dtype.kind == "f" else np.zeros(len(items), dtype=bool)
    idx = np.arange(len(items))
    non_nans, non_nan_idx = items[~mask], idx[~mask]
    if not ascending:
        non_nans, non_nan_idx = non_nans[::-1], non_nan_idx[::-1]
    indexer = non_nan_idx[non_nans.argsort(kind=kind)]
    if not ascending:
        indexer = indexer[::-1]
    return np.concatenate([indexer, np.flatnonzero(mask)]).astype(np.intp)


def first_rows(codes: np.ndarray) -> np.ndarray:
    """Position of the first row of each code (codes numbered by first appearance)."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(codes, return_index=True)
    return first.astype(np.int64)


def run_table(result: object, name: str) -> object | None:
    """The run's table ``name`` (ops, transfers, resources) as the run gave it (Columns or a
    DataFrame), None when it has none: ``Result.columns`` would build an empty DataFrame,
    importing pandas, for a table the run never set."""
    tables = getattr(result, "_tables", None)
    if isinstance(tables, dict):
        return tables.get(name)
    return getattr(result, name, None)


#: a float column of this many rows or more whose first rows hold at most one distinct value
#: in eight is formatted a distinct value at a time (:func:`_float_texts`)
_FEW_ROWS = 4096
#: a float format :func:`_float_texts` formats in one call: one conversion, nothing else
_ONE_FLOAT = re.compile(r"%[-+ #0]*\d*(\.\d+)?[eEfFgG]")


def _csv_columns(columns: list[np.ndarray], lo: int, hi: int, float_format: str,
                 fields: list[dict[str, str]]) -> list[list] | None:
    """Rows ``lo:hi`` of each of ``columns`` as :func:`csv_text` writes them (None for a
    column of another kind); ``fields``: per column, each text value's field as written so
    far (:func:`_text_fields`)."""
    cols = []
    for whole, seen in zip(columns, fields, strict=True):
        if isinstance(whole, tuple):   # a text column's labels and codes: a field per label
            labels, codes = whole
            cols.append(list(map(_text_fields(labels, seen).__getitem__,
                                 codes[lo:hi].tolist())))
            continue
        values = whole[lo:hi]
        kind = values.dtype.kind
        if kind == "f":
            cols.append(_float_texts(values, float_format))
        elif kind in "iub":
            cols.append(list(map(str, values.tolist())))
        elif kind in "UO" and all(type(v) is str for v in values.tolist()):
            cols.append(_text_fields(values.tolist(), seen))
        else:
            return None
    return cols


def _text_column(table: object, name: str) -> tuple[list[str], np.ndarray] | None:
    """``(labels, codes)`` of text column ``name`` of a :class:`sim.columns.Columns` whose
    labels are all str (rows written from them, not from a str per row), else None."""
    if not isinstance(table, Columns) or not table.columnar or not table.is_text(name):
        return None
    text = table.text(name)
    labels = list(text.labels)
    codes = np.asarray(text.codes)
    if codes.dtype.kind not in "iu" or not all(type(v) is str for v in labels):
        return None
    return labels, codes


def _float_texts(values: np.ndarray, float_format: str) -> list[str]:
    """``float_format % v`` of each float, NaN as ``""``: one ``%`` call over them all where
    the format is one float conversion (as ``%.9g``), ~3x less CPU than one per value."""
    if not _ONE_FLOAT.fullmatch(float_format):
        return ["" if v != v else float_format % v for v in values.tolist()]
    if len(values) >= _FEW_ROWS and not np.signbit(values[values == 0]).any():
        # a column of a few values repeated (bytes, floors, energies per transfer size): each
        # distinct value formatted once (-0.0, which np.unique takes for 0.0, kept apart)
        head = values[:_FEW_ROWS]
        if len(np.unique(head)) * 8 <= len(head):
            uniq, inverse = np.unique(values, return_inverse=True)
            if len(uniq) * 8 <= len(values):
                texts = _float_texts(uniq, float_format)
                return list(map(texts.__getitem__, inverse.tolist()))
    texts = ((float_format + "\n") * len(values) % tuple(values.tolist())).split("\n")
    texts.pop()   # after the last newline
    if np.isnan(values).any():
        texts = ["" if t == "nan" else t for t in texts]
    return texts


def _text_fields(values: list[str], seen: dict[str, str]) -> list[str]:
    """Each text value as ``csv.writer`` (``QUOTE_MINIMAL``, this Python's rules) writes it
    as one field of a row of several, asked once per distinct value (``seen`` keeps them);
    the values themselves where none is quoted."""
    new = [v for v in dict.fromkeys(values) if v not in seen]
    if new:
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        for v in new:
            buf.seek(0)
            buf.truncate()
            writer.writerow((v, ""))
            seen[v] = buf.getvalue()[:-2]   # (the row's "," and line end)
    if all(seen[v] == v for v in dict.fromkeys(values)):
        return values
    return [seen[v] for v in values]


def csv_text(table: object, float_format: str = "%.9g") -> str | None:
    """``table`` (a :class:`sim.columns.Columns`) as ``DataFrame.to_csv(index=False,
    float_format=...)`` writes it: a header, then a row per row; floats through
    ``float_format`` (NaN empty), ints and bools as ``str``, text as is, quoted only where
    needed (``csv.QUOTE_MINIMAL``). None for a column of another kind (mixed objects): the
    caller then writes the DataFrame."""
    import io

    out = io.StringIO()
    return out.getvalue() if write_csv(table, out, float_format) else None


def write_csv(table: object, out, float_format: str = "%.9g", rows: int = 1 << 16) -> bool:
    """Write :func:`csv_text` of ``table`` to the text stream ``out`` ``rows`` rows at a time
    (the formatted strings of one block alive at once, not the table's); False, with
    ``out`` partly written, where a column is of another kind."""
    import csv

    from sim.report import csv_blocks

    columns = [_text_column(table, name) or np.asarray(table[name]) for name in table.order]
    n = len(table) if columns else 0
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(table.order)
    if n >= csv_blocks.COMPILED_CSV_ROWS and float_format == "%.9g":
        plan = csv_blocks.compiled_plan(columns, _text_fields)
        if plan is not None:
            csv_blocks.write_compiled(plan, n, out, min(rows, csv_blocks.COMPILED_BLOCK_ROWS))
            return True
    fields: list[dict[str, str]] = [{} for _ in columns]
    for lo in range(0, max(n, 1), rows):
        cols = _csv_columns(columns, lo, min(n, lo + rows), float_format, fields)
        if cols is None:
            return False
        if len(cols) < 2:   # (a row of one empty field is written quoted: the writer's rules)
            writer.writerows(zip(*cols, strict=True) if cols else ())
        elif len(cols[0]):   # fields as the writer writes them, joined without it
            out.write("\n".join(map(",".join, zip(*cols, strict=True))))
            out.write("\n")
    return True

