"""Parquet files merged from files written apart (sim/report/parquet_footer.py): the bytes one
writer writes with the same row groups, a row group joined from columns written apart, and
refusals where a merge would be wrong."""

from __future__ import annotations

import io

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from sim.report.parquet_footer import (  # noqa: E402
    MergedWriter,
    Struct,
    column_chunks,
    joined_group,
    read_struct,
    split_file,
    write_struct,
)


def _table(lo: int, hi: int, wide: int = 18):
    """Rows lo..hi-1 of a table with integers, floats, strings, dictionary strings and
    booleans (``wide`` float columns: a schema list longer than 15, the long list header)."""
    rows = np.arange(lo, hi)
    cols = {"id": pa.array(rows.astype(np.int64)),
            "name": pa.array([f"op{r % 7}" for r in rows]),
            "kind": pa.DictionaryArray.from_arrays(pa.array((rows % 3).astype(np.int32)),
                                                   pa.array(["a", "bb", "ccc"])),
            "flag": pa.array(rows % 2 == 0)}
    for c in range(wide):
        cols[f"x{c}"] = pa.array(np.sin(rows * (c + 1.0)))
    return pa.table(cols)


OPTIONS = [{}, {"compression": "zstd", "use_dictionary": ["name"], "data_page_version": "2.0",
                "write_statistics": ["id", "x0"], "store_schema": False}]


def _file(tables, **options) -> bytes:
    sink = io.BytesIO()
    writer = pq.ParquetWriter(sink, tables[0].schema, **options)
    for t in tables:
        writer.write_table(t, row_group_size=len(t))
    writer.close()
    return sink.getvalue()


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("wide", [10, 11, 18])
def test_footer_read_and_written_back_is_the_same_bytes(options, wide):
    """Schemas of 15 elements (a root and 14 columns: a list's short header holds 14 at
    most), 16 and 23."""
    data = _file([_table(0, 500, wide), _table(500, 900, wide)], **options)
    size = int.from_bytes(data[-8:-4], "little")
    footer = data[len(data) - 8 - size:-8]
    s = read_struct(footer)
    assert write_struct(s) == footer
    assert s.get(3) == 900 and len(s.get(4)[1]) == 2      # num_rows, row groups


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("cuts", [(0, 300, 301, 1000), (0, 1000), (0, 17, 34, 51, 900)])
def test_merged_parts_are_the_file_one_writer_writes(options, cuts):
    """Each part a file of one row group: merged, they are the whole file, byte for byte,
    and read back as the same table."""
    tables = [_table(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
    whole = _file(tables, **options)
    sink = io.BytesIO()
    merged = MergedWriter(sink)
    for t in tables:
        merged.add(_file([t], **options))
    merged.close()
    assert sink.getvalue() == whole
    back = pq.read_table(io.BytesIO(sink.getvalue()))
    assert back.num_rows == cuts[-1] and back.column("id").to_pylist() == list(range(cuts[-1]))


def test_parts_of_several_row_groups_merge_in_order():
    tables = [_table(0, 200), _table(200, 450), _table(450, 460)]
    whole = _file(tables)
    sink = io.BytesIO()
    merged = MergedWriter(sink)
    merged.add(_file(tables[:2]))
    merged.add(_file(tables[2:]))
    merged.close()
    assert sink.getvalue() == whole
    meta = pq.ParquetFile(io.BytesIO(sink.getvalue())).metadata
    assert [meta.row_group(i).num_rows for i in range(3)] == [200, 250, 10]


def test_refuses_parts_it_cannot_merge():
    with pytest.raises(ValueError, match="not a Parquet file"):
        MergedWriter(io.BytesIO()).add(b"PAR1 something else")
    merged = MergedWriter(io.BytesIO())
    merged.add(_file([_table(0, 10)]))
    with pytest.raises(ValueError, match="different schemas"):
        merged.add(_file([_table(10, 20, wide=3)]))
    with pytest.raises(ValueError, match="page indexes"):
        MergedWriter(io.BytesIO()).add(_file([_table(0, 10)], write_page_index=True))
    with pytest.raises(ValueError, match="no Parquet part"):
        MergedWriter(io.BytesIO()).close()


def test_a_moved_row_group_has_its_positions_moved_and_its_ordinal_renumbered():
    """A row group of a part whose pages now lie 10 B later: its pages' positions and its
    own (RowGroup.file_offset, 5) move by 10, its ordinal (7) is its place in the merged
    file; a column chunk's deprecated file_offset (2) of 0, as Arrow writes it, stays 0."""
    from sim.report.parquet_footer import I16, I32, I64, LIST, STRUCT, _moved_group

    meta = Struct([[1, I32, 5], [9, I64, 40], [11, I64, 4]])   # data, dictionary pages
    chunk = Struct([[2, I64, 0], [3, STRUCT, meta]])
    group = Struct([[1, LIST, (STRUCT, [chunk])], [5, I64, 4], [7, I16, 0]])
    moved = _moved_group(group, 10, 3)
    assert moved.get(5) == 14 and moved.get(7) == 3
    assert meta.get(9) == 50 and meta.get(11) == 14 and meta.get(1) == 5
    assert chunk.get(2) == 0


def test_compact_protocol_values_by_hand():
    """Bytes of the compact protocol written by hand from its specification: field 1 i32 -3
    (zigzag 5), field 3 (delta 2) binary "ab", field 20 (long form) a true boolean, stop."""
    data = bytes([0x15, 0x05, 0x28, 0x02]) + b"ab" + bytes([0x01, 0x28, 0x00])
    s = read_struct(data)
    assert s.fields == [[1, 5, -3], [3, 8, b"ab"], [20, 1, True]]
    assert write_struct(s) == data
    assert write_struct(Struct([[2, 6, 2 ** 40]])) == bytes([0x26, 0x80, 0x80, 0x80, 0x80,
                                                           0x80, 0x40, 0x00])
    # field id deltas up to 15 fit the header's high nibble; 16 takes the long form
    assert write_struct(Struct([[15, 5, 1]])) == bytes([0xF5, 0x02, 0x00])
    assert write_struct(Struct([[16, 5, 1]])) == bytes([0x05, 0x20, 0x02, 0x00])
    assert read_struct(bytes([0x05, 0x20, 0x02, 0x00])).fields == [[16, 5, 1]]
    with pytest.raises(ValueError, match="after the struct"):
        read_struct(data + b"\x00")
    pages, footer = split_file(_file([_table(0, 5)]))
    assert footer.get(3) == 5 and len(pages) > 0


def _options_for(table, options: dict) -> dict:
    """``options`` with their per-column lists cut to ``table``'s columns."""
    out = dict(options)
    for key in ("use_dictionary", "write_statistics"):
        if isinstance(out.get(key), list):
            out[key] = [c for c in out[key] if c in table.column_names]
    return out


@pytest.mark.parametrize("options", OPTIONS)
def test_a_row_group_joined_from_columns_written_apart_is_one_writers(options):
    """The columns of one row group written as three files (some columns each, in another
    order) and joined in the table's order: the bytes one writer writes with all of them;
    with another file's footer as the template, the same bytes (same rows and writer); in
    another order, a file of those columns in that order. Files with a stored Arrow schema
    (pyarrow's default: each describes its own columns) are refused."""
    whole = _table(0, 900, wide=12)
    names = whole.column_names
    parts = [names[5:], names[:2][::-1], names[2:5]]
    chunks = {}
    for cols in parts:
        t = whole.select(cols)
        chunks.update(column_chunks(_file([t], **_options_for(t, options))))
    if options.get("store_schema", True):   # each file's Arrow schema: its own columns
        with pytest.raises(ValueError, match="key-value metadata"):
            joined_group([chunks[n] for n in names])
        return
    want = _file([whole], **options)
    assert joined_group([chunks[n] for n in names]) == want
    assert joined_group([chunks[n] for n in names], chunks[names[-1]].footer) == want
    assert joined_group([chunks[n] for n in names[::-1]]) != want   # another order
    got = pq.read_table(pa.BufferReader(joined_group([chunks[n] for n in names[::-1]])))
    assert got.column_names == names[::-1] and got.num_rows == 900


def test_column_chunks_refuses_files_it_cannot_split():
    """Two row groups: refused (a chunk per column and group would be ambiguous)."""
    data = _file([_table(0, 50), _table(50, 90)])
    with pytest.raises(ValueError, match="one row group"):
        column_chunks(data)
    with pytest.raises(ValueError, match="no column"):
        joined_group([])


@pytest.mark.parametrize("options", OPTIONS)
def test_struct_copy_is_a_deep_copy(options):
    """A footer's copy writes the same bytes, equals ``copy.deepcopy``'s, and shares no
    struct, field or list with the original: changing the copy anywhere leaves it alone."""
    import copy

    _, footer = split_file(_file([_table(0, 50)], **options))
    before = write_struct(footer)
    got = footer.copy()
    assert got == copy.deepcopy(footer) and write_struct(got) == before
    groups = got.get(4)[1]          # FileMetaData.row_groups: (element type, [RowGroup])
    chunk = groups[0].get(1)[1][0]  # RowGroup.columns[0]: a ColumnChunk
    chunk.get(3).set(9, 12345)      # its ColumnMetaData.data_page_offset
    groups[0].fields[0][2] = ((1, 2),)   # a list replaced
    got.get(2)[1].append(None)      # FileMetaData.schema's list grown
    got.fields.pop()
    assert write_struct(footer) == before
