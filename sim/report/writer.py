"""Write every file of a run report into a directory, all or nothing.

The ops table is ``ops.parquet`` when pyarrow is importable (``ops.csv`` otherwise or on
request), and so is a system run's transfer table (``transfers.parquet``: a 70B TP2 x PP4
decode of 2,048 tokens with half its KV cache in host DDR moves 1.3M transfers, 237 MB and
~0.6 CPU s as CSV, 19 MB and ~0.15 CPU s as Parquet); the Perfetto timeline is full,
sampled (long runs, see :mod:`sim.report.sampling`) or left out.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from sim.columns import Columns, column
from sim.report.atomic import staged_directory
from sim.report.background import Background
from sim.report.figures import breakdown_svg, energy_svg, roofline_svg, timeline_svg
from sim.report.html import run_report_html
from sim.report.parquet_footer import ColumnChunk, MergedWriter, column_chunks, joined_group
from sim.report.rollups import (
    SUMMED_KEYS,
    SUMMED_VALUES,
    RowCodes,
    decode_step,
    rollups,
    summed_ops,
    text_codes,
    text_keys,
)
from sim.report.roofs import bandwidth_roofs
from sim.report.sampling import decode_stride, ops_format, sample_ops, sample_transfers, take_rows
from sim.report.sampling import timeline_mode as _timeline_mode
from sim.report.tables import run_table, write_csv
from sim.report.timeline import chrome_trace
from sim.report.utilisation import bound_rows, mfu, utilisation_records, utilisation_rows
from sim.result import Result

RUN_FILES = ("summary.json", "ops.parquet", "timeline.json", "roofline.svg", "energy.svg",
             "breakdown.svg", "timeline.svg", "report.html")
# ops.csv (and a system run's transfers.csv) without pyarrow or with ops_as="csv";
# timeline.svg only with a decode step
#: every file a run report may write: those of an earlier report in the same directory that
#: this one does not write are not kept beside it (sim.report.atomic.staged_directory)
REPORT_FILES = (*RUN_FILES, "ops.csv", "transfers.parquet", "transfers.csv", "resources.csv")

DISTINCT_COLUMNS = ("start_s", "end_s")   # every op's own times: Zstandard, not LZ4
#: Zstandard's level for the op times of a table written in row groups by several encoders
#: (over :data:`ROW_GROUP_ROWS` rows, :func:`_write_chunked`): -5, a fast level, where
#: pyarrow's default is 1 (shorter tables keep it: their files are written in well under a
#: second). On a 2**20-row group of a 70B TP2 x PP4 run's start times, byte-stream-split:
#: 12.6 instead of 27.3 ms for 3.47 instead of 2.71 MB (its 9.9M-op file 73 instead of 59
#: MB); -10 saves 3 ms more for 0.65 MB more, LZ4 takes 13.8 ms for 3.18 MB
TIMES_LEVEL = -5
RUNNING_COLUMNS = ("id", "step", "start_s", "end_s")   # rise with the rows: with statistics
DICTIONARY_INTS = ("shards",)   # the one integer column that is smaller dictionary-encoded
#: rows per row group: pyarrow's default (1024 * 1024), given explicitly so that a table
#: written a row group at a time (:func:`_write_chunked`) is the table written whole
ROW_GROUP_ROWS = 1 << 20
#: threads that encode a long table's row groups at once (:func:`_write_chunked`): the
#: cores this process may run on, at most four - a bound on memory, not a fitted figure:
#: each group being encoded holds its gathered columns and Arrow's buffers (~0.1 GB per
#: 2**20 rows of the op table)
ENCODERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))
#: row groups handed to the encoders ahead of the one being written out: encoded groups wait
#: as their Parquet bytes (~6 MB per 2**20 rows) while the writing thread waits for the GIL
#: (the report's main thread formats the timeline meanwhile, pure Python), so the encoders
#: go on instead of idling. A bound on memory (~6 MB a group: ~50 MB at two encoders, ~100
#: MB at four), not a fitted figure: 4 was the first multiple tried (PP8 x 8's report 1.68-1.72
#: -> 1.62-1.65 s against ENCODERS + 1)
AHEAD = 4 * ENCODERS

__all__ = ["RUN_FILES", "SUMMED_KEYS", "SUMMED_VALUES", "summed_ops", "write_run_report"]


def _write_parquet(ops, path: Path, factorised: dict | Future | None = None) -> None:
    """Parquet: the op times (:data:`DISTINCT_COLUMNS`, nearly all distinct: 30 of the 40 MB
    of a 4.9M-op run) Zstandard, every other column LZ4 (they repeat step after step: LZ4
    writes them in about half the time, for 7 MB more in all: that run's file in 0.72 instead
    of 0.89 CPU s; the LZ4_RAW codec, read by pyarrow, DuckDB, polars, Spark 3.5+); float
    columns not dictionary-encoded (times and energies are nearly all distinct: ~7 MB instead
    of 15 MB for 860k ops), the op times byte-stream-split, the other floats plain (one value
    per op kind, repeated step after step, which LZ4 finds in the plain bytes: that run's file
    37.8 MB instead of 40.2, written in 0.65 instead of 0.70 CPU s); integer columns plain (a
    few values, as small after LZ4, in less time) except ``shards`` (plain, 3 MB instead of
    0.03); the running op id delta-encoded (a few bytes instead of 1-3 MB); data pages of format 2.0
    (~25% less CPU to write than 1.0 pages, the same size);
    min/max statistics for the columns in running order only (:data:`RUNNING_COLUMNS`: each
    row group holds a range of them, so a reader filtering on them skips row groups; every
    row group holds every layer, kind and size, so the others' statistics skip nothing and
    cost ~8% of the writing CPU, the strings' ~20%).

    ``ops``: a DataFrame, or the run's :class:`sim.columns.Columns`, whose arrays go to Arrow
    as they are and whose text columns become dictionary arrays of their codes (no DataFrame,
    no string hashed: the same pages, read back as the same table; see
    :func:`_columns_table`). ``factorised``: ``column -> (codes, distinct values)`` already
    computed (by :func:`sim.report.rollups.rollups`): those string columns are handed to the
    writer as dictionary arrays, so it does not hash their values again (the same pages; the
    file keeps no Arrow schema, so they read back as the strings they were). A
    :class:`Columns` table over :data:`ROW_GROUP_ROWS` rows is written a row group at a time
    (:func:`_write_chunked`: the same file, without forming its per-kind columns)."""
    if isinstance(ops, Columns) and ops.columnar and len(ops) > ROW_GROUP_ROWS:
        _write_chunked(ops, path, factorised)
        return
    _write_table(*_parquet_table(ops, factorised), path)


def _write_chunked(ops: Columns, path: Path, factorised: dict | Future | None) -> None:
    """:func:`_write_parquet` of a long :class:`Columns` table one row group at a time, the
    row groups encoded in parallel (:data:`ENCODERS` threads: Arrow encodes without the GIL,
    one file's writer on one thread) each as a Parquet file of its own, merged into one
    file by :class:`~sim.report.parquet_footer.MergedWriter` (the groups' pages as they are
    and one footer: the bytes one writer writes with these row groups, :func:`_row_bounds`).
    Each group's rows of a column gathered from per-kind values (``Lazy(values=...,
    by=...)``) are gathered for that group alone (by one native-int index per code array),
    where the whole table would first touch ~80 MB per such column per 10M ops; text
    columns are their codes' slices. A column of :func:`_repeating` whose rows equal those of
    a group already encoded (a run's decode steps repeat their op names, kinds, streams and
    layers step after step) is not encoded again: that group's chunk of it is taken as it is
    (:func:`~sim.report.parquet_footer.joined_group`: the same bytes; in a 2**20-row group
    of a 70B TP2 x PP4 run those columns cost ~30 of the ~85 ms its columns take to encode
    one by one, the op times ~35)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts: Future = Future()   # text column -> (RowCodes, Arrow labels), once they are in
    repeating = _repeating(ops)
    done: dict[str, tuple[np.ndarray, ColumnChunk]] = {}   # column -> (rows, their chunk)
    together = _taken_together(ops)
    local = threading.local()   # per encoder: its buffers of rows taken together

    def rows_of(name: str, lo: int, hi: int, index: dict) -> np.ndarray:
        """Rows ``lo..hi-1`` of numeric column ``name`` (or a text column's codes)."""
        if ops.is_text(name):
            return texts.result()[name][0].rows(lo, hi)
        lazy = ops.gathered(name)
        if lazy is None:
            return ops.block(name, lo, hi)
        if name in together:
            j, shared = together[name]
            rows = index.get(id(shared))
            if rows is None:
                rows = index[id(shared)] = _taken_rows(shared, lo, hi, local)
            return rows[j]
        at = index.get(id(lazy.by))
        if at is None:
            at = index[id(lazy.by)] = lazy.by[lo:hi].astype(np.intp)
        return np.take(lazy.values, at)

    def encoded(lo: int, hi: int) -> bytes:
        """Rows ``lo..hi-1`` as a Parquet file of one row group."""
        index: dict[int, np.ndarray] = {}
        taken: dict[str, ColumnChunk] = {}
        fresh: dict[str, np.ndarray] = {}
        for name in repeating:
            values = rows_of(name, lo, hi, index)
            seen = done.get(name)
            if seen is not None and len(seen[0]) == len(values) and \
                    np.array_equal(seen[0], values):
                taken[name] = seen[1]
            else:
                fresh[name] = values
        names = [name for name in ops.order if name not in taken]
        arrays = []
        for name in names:
            values = fresh[name] if name in fresh else rows_of(name, lo, hi, index)
            arrays.append(pa.DictionaryArray.from_arrays(_arrow(values), texts.result()[name][1])
                          if ops.is_text(name) else _arrow(values))
        chunk = _required_table(arrays, names)
        sink = pa.BufferOutputStream()
        pq.write_table(chunk, sink, row_group_size=ROW_GROUP_ROWS,
                       **_writer_options(chunk, True, TIMES_LEVEL))
        part = sink.getvalue()
        if not fresh and not taken:
            return part
        chunks = column_chunks(part)
        for name, values in fresh.items():
            done[name] = (values, replace(chunks[name], pages=bytes(chunks[name].pages)))
        if not taken:
            return part
        return joined_group([taken.get(name) or chunks[name] for name in ops.order],
                            chunks[names[0]].footer)   # this group's own footer

    bounds = _row_bounds(ops)
    with ThreadPoolExecutor(ENCODERS) as pool:
        pending = deque(pool.submit(encoded, *b) for b in bounds[:AHEAD + 1])
        try:   # the codes, once (the first groups' numbers gathered meanwhile)
            given = _given(factorised)
            out = {}
            for name in ops.order:
                if ops.is_text(name):
                    c = RowCodes.of(given.get(name) or text_codes(ops.text(name)))
                    out[name] = (c, _arrow_text(c.labels))
            texts.set_result(out)
        except BaseException as exc:
            texts.set_exception(exc)
            raise
        with open(path, "wb") as sink:
            merged = MergedWriter(sink)
            for j in range(len(bounds)):
                part = pending.popleft().result()
                if j + AHEAD + 1 < len(bounds):
                    pending.append(pool.submit(encoded, *bounds[j + AHEAD + 1]))
                merged.add(part)
            merged.close()


def _taken_together(ops: Columns) -> dict[str, tuple[int, tuple]]:
    """Per float64 column of ``ops`` that is ``values[by]`` (not yet formed) with 32- or
    64-bit codes ``by`` that another such column shares: its row in the shared ``(values
    of them all, one row per column; by)``, whose rows a group takes at once
    (:func:`_taken_rows`)."""
    shared: dict[int, list] = {}
    for name in ops.order:
        lazy = None if ops.is_text(name) else ops.gathered(name)
        if lazy is not None and lazy.values.dtype == np.float64 and lazy.values.ndim == 1 \
                and lazy.by.dtype in (np.int32, np.int64) and lazy.by.flags.c_contiguous:
            shared.setdefault(id(lazy.by), []).append((name, lazy))
    out: dict[str, tuple[int, tuple]] = {}
    for members in shared.values():
        if len(members) > 1:
            block = (np.ascontiguousarray(np.stack([lz.values for _, lz in members])),
                     members[0][1].by)
            out.update((name, (j, block)) for j, (name, _) in enumerate(members))
    return out


def _taken_rows(shared: tuple, lo: int, hi: int, local: threading.local) -> np.ndarray:
    """Rows ``lo..hi-1`` of every column of ``shared`` (:func:`_taken_together`), one row
    each, by one compiled pass over the codes (:func:`sim.take_kernel.take_rows`: a group's
    ten per-kind columns of a 9.9M-op run in ~15-30 instead of ~40-47 ms of ``np.take``),
    into this encoder's buffer for them (reused group after group: the rows are read only
    while the group is encoded, and a fresh 80 MB a group costs its page faults)."""
    from sim.engine_aot import kernels

    values, by = shared
    k, m = values.shape[0], hi - lo
    buffers = local.__dict__.setdefault("buffers", {})
    buffer = buffers.get(id(values))
    if buffer is None or len(buffer) < k * m:
        buffer = buffers[id(values)] = np.empty(k * max(m, ROW_GROUP_ROWS))
    out = buffer[:k * m].reshape(k, m)
    compiled = kernels()
    (compiled.take_rows_i4 if by.dtype == np.int32 else compiled.take_rows_i8)(values, by, lo,
                                                                               out)
    return out


def _repeating(ops: Columns) -> list[str]:
    """The columns of ``ops`` whose rows may repeat from row group to row group: text and
    integer columns but the running ones (:data:`RUNNING_COLUMNS`: the op id, the step)."""
    out = []
    for name in ops.order:
        if name in RUNNING_COLUMNS:
            continue
        if ops.is_text(name) or ops.block(name, 0, 1).dtype.kind in "iu":
            out.append(name)
    return out


def _row_bounds(ops: Columns) -> list[tuple[int, int]]:
    """``(first row, end row)`` of each row group of a long op table: :data:`ROW_GROUP_ROWS`
    rows each; but where its ``step`` never falls and the steps after the first hold P rows
    each (a run's decode steps; P from the middle row's step, at most ROW_GROUP_ROWS), groups
    of as many whole steps as fit in ROW_GROUP_ROWS after a first group of the first step and
    the whole steps that fit beside it (the first step's rows in groups of their own where
    not even one fits), so that those groups hold the same ops row for row and repeat each
    other's names, kinds and layers (:func:`_write_chunked`). No group is over
    ROW_GROUP_ROWS rows."""
    n = len(ops)
    fixed = [(lo, min(n, lo + ROW_GROUP_ROWS)) for lo in range(0, n, ROW_GROUP_ROWS)]
    if "step" not in ops.order or n < 2:
        return fixed
    step = ops.block("step", 0, n)
    if not bool((step[1:] >= step[:-1]).all()):
        return fixed
    first = int(np.searchsorted(step, step[0], side="right"))
    if first >= n:
        return fixed
    mid = step[(first + n) // 2]
    period = int(np.searchsorted(step, mid, side="right") - np.searchsorted(step, mid))
    if period > ROW_GROUP_ROWS:
        return fixed
    size = period * (ROW_GROUP_ROWS // period)
    if first + period > ROW_GROUP_ROWS:   # the first step's rows alone, then whole steps
        cuts = [*range(0, first, ROW_GROUP_ROWS), *range(first, n, size)]
    else:   # the first step with the whole steps that fit beside it, then whole steps
        cuts = [0, *range(first + (ROW_GROUP_ROWS - first) // period * period, n, size)]
    return list(zip(cuts, [*cuts[1:], n], strict=True))


def _parquet_table(ops, factorised: dict | Future | None = None) -> tuple[object, bool]:
    """``(Arrow table, recoded)`` of :func:`_write_parquet`: every column formed, so writing
    it reads nothing of ``ops`` (a second thread may write it); ``recoded``: some string
    columns are dictionary arrays."""
    import pyarrow as pa

    if isinstance(ops, Columns) and ops.columnar:
        return _columns_table(ops, factorised), True
    import pandas as pd

    table = pa.Table.from_pandas(ops, preserve_index=False, nthreads=1)   # no pool to wait on
    recoded = False
    for name, (c, uniques) in _given(factorised).items():
        i = table.schema.get_field_index(name)
        kind = table.schema.field(i).type if i >= 0 else None
        if kind is None or not (pa.types.is_string(kind) or pa.types.is_large_string(kind)) \
                or pd.isna(uniques).any():   # a null in the dictionary: hashed as usual
            continue
        values = pa.array(np.asarray(uniques, dtype=object), type=kind)
        table = table.set_column(i, name, pa.DictionaryArray.from_arrays(
            pa.array(c), values))
        recoded = True
    return _required_table(table.columns, table.column_names, table.schema.metadata), recoded


def _given(factorised: dict | Future | None) -> dict:
    """``factorised``, or what the :class:`Future` it is gives (waiting for it)."""
    return (factorised.result() if isinstance(factorised, Future) else factorised) or {}


def _columns_table(ops: Columns, factorised: dict | Future | None):
    """The Arrow table of a :class:`Columns` op table: numeric arrays as they are (zero
    copy), text columns as dictionary arrays of (``factorised`` or their own) codes and
    distinct labels. The numeric columns are formed first: ``factorised`` may be a
    :class:`Future` another thread fills meanwhile. Written without a stored schema (as a
    recoded DataFrame is), the file holds no pandas metadata either way:
    ``pandas.read_parquet`` gives the same DataFrame."""
    import pyarrow as pa

    arrays = {name: _arrow(np.asarray(ops[name])) for name in ops.order if not ops.is_text(name)}
    given = _given(factorised)
    for name in ops.order:
        if ops.is_text(name):
            c = RowCodes.of(given.get(name) or text_codes(ops.text(name)))
            arrays[name] = pa.DictionaryArray.from_arrays(_arrow(c.rows()), _arrow_text(c.labels))
    return _required_table([arrays[name] for name in ops.order], ops.order)


def _required_table(arrays: list, names: list[str], metadata: dict | None = None):
    """An Arrow table of ``arrays`` whose columns without a null are declared non-nullable,
    so Parquet writes them ``REQUIRED``: no definition level per value (a column of
    ``OPTIONAL`` values carries one even where every value is present). A 2**20-row group of
    the 24-column op table encodes in 88 instead of 125 ms; the values, and the DataFrame
    ``pandas.read_parquet`` gives, are the same. A dictionary column is nullable where its
    labels hold a null (its codes never do), so each row group of a table decides as the
    whole table does. ``metadata``: the schema's (pandas' description of a DataFrame)."""
    import pyarrow as pa

    def nullable(values) -> bool:
        if values.null_count:
            return True
        return pa.types.is_dictionary(values.type) and _dictionary(values).null_count > 0

    fields = [pa.field(name, values.type, nullable=nullable(values))
              for name, values in zip(names, arrays, strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))


def _dictionary(values):
    """The labels of a dictionary array or of a chunked column of them (its first chunk's:
    the op table's chunks share them)."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        return values.chunk(0).dictionary if values.num_chunks else pa.array([], pa.string())
    return values.dictionary


def _arrow(values: np.ndarray):
    """A numpy column as an Arrow array from its buffers (what ``pa.array`` gives for a
    numeric or bool array without nulls; ``pa.array`` itself imports pandas, ~0.5 s)."""
    import pyarrow as pa

    if values.dtype.kind not in "iufb" or values.dtype.byteorder == ">":
        return pa.array(values)   # not a plain machine number: the general path
    v = np.ascontiguousarray(values)
    if v.dtype.kind == "b":   # Arrow packs booleans one bit each, first row lowest
        data = np.packbits(v.view(np.uint8), bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(v), [None, pa.py_buffer(data)])
    return pa.Array.from_buffers(pa.from_numpy_dtype(v.dtype), len(v),
                                 [None, pa.py_buffer(v)])


def _arrow_text(labels) -> object:
    """Distinct labels (str) as an Arrow ``large_string`` array from its buffers."""
    import pyarrow as pa

    values = np.asarray(labels, dtype=object).tolist()
    if not all(type(x) is str for x in values):   # nulls, other types: the general path
        return pa.array(values, type=pa.large_string())
    encoded = [x.encode("utf-8") for x in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.large_string(), len(encoded),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def _write_table(table, recoded: bool, path: Path) -> None:
    """Write an Arrow table of the op table with the encodings of :func:`_write_parquet`;
    ``recoded``: some string columns are dictionary arrays (then no Arrow schema is stored)."""
    import pyarrow.parquet as pq

    pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS,
                   **_writer_options(table, recoded))


def _writer_options(table, recoded: bool, times_level: int | None = None) -> dict:
    """The Parquet writer's options for the op table ``table`` (an Arrow table: its
    schema decides them; :func:`_write_parquet`); ``times_level``: Zstandard's level for the
    op times (None: pyarrow's default; :data:`TIMES_LEVEL`)."""
    import pyarrow as pa

    types = {f.name: f.type for f in table.schema}
    floats = [c for c, t in types.items() if pa.types.is_floating(t)]
    delta = [c for c in ("id",) if c in types and pa.types.is_integer(types[c])]
    ints = [c for c, t in types.items() if pa.types.is_integer(t) and c not in delta]
    dictionary = [c for c in types if c not in floats and c not in delta and c not in ints] + \
        [c for c in DICTIONARY_INTS if c in ints]
    encoding = {**{c: "BYTE_STREAM_SPLIT" if c in DISTINCT_COLUMNS else "PLAIN"
                   for c in floats},
                **{c: "DELTA_BINARY_PACKED" for c in delta}}
    compression = {c: "zstd" if c in DISTINCT_COLUMNS else "lz4" for c in types}
    level = {c: times_level for c in DISTINCT_COLUMNS if c in types} \
        if times_level is not None else {}
    return {"compression": compression, "compression_level": level or None,
            "use_dictionary": dictionary,
            "column_encoding": encoding, "data_page_version": "2.0",
            "store_schema": not recoded,
            "write_statistics": [c for c in RUNNING_COLUMNS if c in types],
            # no page index (pyarrow's default, said here: a long table's row groups are
            # merged from files of their own, sim/report/parquet_footer.py, which has none)
            "write_page_index": False}


def _write_csv(result: Result, name: str, table, path: Path) -> None:
    """The run's table ``name`` as CSV, as ``DataFrame.to_csv(index=False,
    float_format="%.9g")`` writes it (from its columns a block of rows at a time when they are
    numbers and text: no pandas; else through the DataFrame, over what was written)."""
    if isinstance(table, Columns):
        with path.open("w", newline="") as out:
            if write_csv(table, out):
                return
    getattr(result, name).to_csv(path, index=False, float_format="%.9g")


def write_run_report(result: Result, out_dir: str | Path, ops_as: str = "auto",
                     timeline: str = "auto") -> list[Path]:
    """Write the run report files into ``out_dir``; return their paths.

    ``ops_as``: ``auto`` (parquet when pyarrow is importable), ``parquet`` or ``csv``: the
    op table's format and a system run's transfer table's (``resources.csv``, a few rows,
    stays CSV);
    ``timeline``: ``auto`` (sampled above 200k ops), ``full``, ``sampled`` or ``none``.

    ``ops.parquet`` is encoded and written by Arrow in a second thread (without the GIL)
    while this one reduces the table for the figures, the timeline and the page: the same
    files, in about the wall time of the parquet file alone on two cores. A system run's
    ``transfers.parquet`` is written in a third thread from the start (its 1.3M rows in a
    70B TP2 x PP4 x 4 run with half its KV cache in host DDR: the report 0.96 / 1.04 ->
    0.88 / 0.82 s wall, alternated, where this thread wrote it after the timeline)."""
    summary = result.summary()
    inputs = result.inputs
    title = f"{inputs['model']} on {inputs['arch']}"
    fmt = ops_format(ops_as)
    if fmt == "parquet":   # loaded now, its hash table groups the rollups (tables.hashing)
        import pyarrow  # noqa: F401
    # the op table as the run gave it (numpy columns: the whole DataFrame is only built for a
    # full timeline or a CSV); plots and tables read pre-aggregated rows, never a copy of it
    table = result.columns("ops")
    mode = _timeline_mode(timeline, len(table))
    ops_file = f"ops.{fmt}"
    codes: Future = Future()   # the text columns' codes, for the parquet writer
    with staged_directory(out_dir, REPORT_FILES) as stage, Background(codes) as background:
        if fmt == "parquet":   # the thread forms the numeric columns it writes, and keeps
            # them: the rollups read those it formed (or form one themselves, equal, first);
            # then it waits for the text columns' codes
            background.run(_write_parquet, table, stage / ops_file, codes)
        # the text columns' codes, for the parquet file and the rollups (of a DataFrame: the
        # strings the rollups factorise)
        texts = text_keys(table)
        roll = rollups(table) if texts is None else None
        codes.set_result(texts.recoded if texts is not None else roll.factorised)
        if roll is None:
            roll = rollups(table, texts)
        every = decode_stride(table, decode=roll.decode, steps=roll.decode_steps) \
            if mode == "sampled" else 1
        summary["outputs"] = {"ops_format": fmt, "timeline": mode,
                              "timeline_decode_step_every": every, "ops": len(table)}
        summed = roll.summed_rows
        transfers = run_table(result, "transfers")
        transfers = transfers if transfers is not None and len(transfers) else None
        if transfers is not None and fmt == "parquet":   # a system run's: its own thread
            background.run(_write_parquet, transfers, stage / "transfers.parquet")
        resources = run_table(result, "resources")
        resources = resources if resources is not None and len(resources) else None
        figures = {"roofline": roofline_svg(roll.point_rows, bandwidth_roofs(result),
                                            result.device_info.get("roofs", {}), title),
                   "energy": energy_svg(summed, result.energy_by_component.get("static", 0.0),
                                        title),
                   "breakdown": breakdown_svg(summed, title)}
        step = decode_step(roll.decode_steps)
        if step is not None:
            rows = np.flatnonzero((column(table, "step") == step) & roll.decode)
            figures["timeline"] = timeline_svg(take_rows(table, rows), step, title,
                                               transfers, result.op_links)
        util = utilisation_rows(summary, summed, resources)
        summary["utilisation"] = {"mfu": mfu(summary, summed),
                                  "rows": utilisation_records(util)}
        files = ["summary.json", ops_file] + (["timeline.json"] if mode != "none" else []) + \
            [f"{name}.svg" for name in figures] + ["report.html"] + \
            ([f"transfers.{fmt}"] if transfers is not None else []) + \
            (["resources.csv"] if resources is not None else [])
        shown = {**summary, "metrics": {**summary["metrics"],
                                        "mfu": summary["utilisation"]["mfu"]}}
        page = run_report_html(shown, summed, figures, files, resources, transfers,
                               summary["utilisation"]["rows"], bound_rows(summed))
        (stage / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        if fmt != "parquet":
            _write_csv(result, "ops", table, stage / ops_file)
        if mode != "none":
            ops = sample_ops(table, every, roll.decode, roll.decode_steps)
            kept = sample_transfers(transfers, set(column(ops, "step").tolist()),
                                    every) if transfers is not None else None
            note = "" if every == 1 else f" (sampled: one decode step in {every})"
            (stage / "timeline.json").write_text(chrome_trace(ops, title + note, kept,
                                                              result.op_links))
        if transfers is not None and fmt != "parquet":   # a system run's: as its ops
            _write_csv(result, "transfers", transfers, stage / "transfers.csv")
        if resources is not None:
            _write_csv(result, "resources", resources, stage / "resources.csv")
        for name, text in figures.items():
            (stage / f"{name}.svg").write_text(text, encoding="utf-8")
        (stage / "report.html").write_text(page, encoding="utf-8")
    return [Path(out_dir) / f for f in files]
