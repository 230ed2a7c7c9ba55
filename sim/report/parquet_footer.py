"""One Parquet file from Parquet files of the same schema written apart (row groups encoded in
parallel): their row groups' bytes one after the other and one footer.

A Parquet file is ``PAR1``, its row groups' pages, the footer (a ``FileMetaData`` struct in
Thrift's compact protocol), the footer's length (4 bytes, little-endian) and ``PAR1``
(https://parquet.apache.org/docs/file-format/). Pages hold no file positions; the footer
does: per column chunk where its pages begin (``ColumnChunk.file_offset``,
``ColumnMetaData.data_page_offset``, ``index_page_offset``, ``dictionary_page_offset``) and
per row group where it begins (``RowGroup.file_offset``) and its place (``ordinal``). So the
parts' page bytes are copied as they are and the footer is the first part's with every
part's row groups, those positions moved to where the part's pages now lie, the ordinals
renumbered and ``num_rows`` summed: the file one writer writes with the same row groups.

The compact protocol (https://github.com/apache/thrift/blob/master/doc/specs/
thrift-compact-protocol.md) is read into :class:`Struct` values that keep each field's id,
type and order, so that writing one back gives the bytes read. Files with page indexes or
Bloom filters (written after all row groups) are not merged: :class:`MergedWriter` raises.

A column chunk's pages likewise hold no file position and depend on its column alone, so one
row group's file is also its columns' chunks taken from several such files, each as it lies
there (:func:`column_chunks`, :func:`joined_group`): what the report's writer does with the
chunk of a column whose rows repeat those of a group already encoded."""

from __future__ import annotations

import struct as _struct
from dataclasses import dataclass, field
from typing import BinaryIO

MAGIC = b"PAR1"
# compact-protocol types (the low nibble of a field header)
STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)
# field ids (parquet.thrift)
FILE_SCHEMA, FILE_NUM_ROWS, FILE_ROW_GROUPS, FILE_KEY_VALUE, FILE_COLUMN_ORDERS = 2, 3, 4, 5, 7
GROUP_COLUMNS, GROUP_BYTES, GROUP_FILE_OFFSET, GROUP_COMPRESSED, GROUP_ORDINAL = 1, 2, 5, 6, 7
CHUNK_FILE_OFFSET, CHUNK_META = 2, 3
CHUNK_INDEX_FIELDS = (4, 5, 6, 7)        # offset / column index: written after the row groups
META_UNCOMPRESSED, META_COMPRESSED = 6, 7
META_DATA, META_DICTIONARY = 9, 11
META_OFFSETS = (9, 10, 11)               # data, index and dictionary page offsets
SCHEMA_NAME, SCHEMA_CHILDREN = 4, 5
META_BLOOM = (14, 15)                    # Bloom filter: written after the row groups


@dataclass
class Struct:
    """A Thrift struct as read: ``fields`` in their order, each ``[id, type, value]``
    (booleans: type TRUE or FALSE, value the bool; lists and sets: ``(element type,
    items)``; maps: ``(key type, value type, pairs)``)."""

    fields: list[list] = field(default_factory=list)

    def get(self, fid: int, default=None):
        for f in self.fields:
            if f[0] == fid:
                return f[2]
        return default

    def set(self, fid: int, value) -> None:
        """Set field ``fid``, which the struct has."""
        for f in self.fields:
            if f[0] == fid:
                f[2] = value
                return
        raise KeyError(fid)

    def has(self, fid: int) -> bool:
        return any(f[0] == fid for f in self.fields)

    def copy(self) -> Struct:
        """A copy sharing nothing that may change: every struct, field and list copied, the
        values themselves (ints, bytes, bools) kept (``copy.deepcopy``'s result, ~5x faster:
        a merged row group copies 24 column chunks and a footer)."""
        return Struct([[f[0], f[1], _copied(f[2])] for f in self.fields])


def _copied(value):
    """``value`` of a :class:`Struct` field with its structs and lists copied."""
    kind = type(value)
    if kind is Struct:
        return value.copy()
    if kind is tuple or kind is list:
        return kind(map(_copied, value))
    return value


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def byte(self) -> int:
        b = self.data[self.at]
        self.at += 1
        return b

    def varint(self) -> int:
        out = shift = 0
        while True:
            b = self.byte()
            out |= (b & 0x7F) << shift
            if b < 0x80:
                return out
            shift += 7

    def zigzag(self) -> int:
        v = self.varint()
        return (v >> 1) ^ -(v & 1)

    def value(self, kind: int):
        if kind in (I16, I32, I64):
            return self.zigzag()
        if kind == BYTE:
            return _struct.unpack("<b", bytes((self.byte(),)))[0]
        if kind == DOUBLE:
            self.at += 8
            return _struct.unpack("<d", self.data[self.at - 8:self.at])[0]
        if kind == BINARY:
            n = self.varint()
            self.at += n
            return self.data[self.at - n:self.at]
        if kind in (LIST, SET):
            head = self.byte()
            n, elem = head >> 4, head & 0x0F
            if n == 15:
                n = self.varint()
            if elem in (TRUE, FALSE):
                return elem, [self.byte() == TRUE for _ in range(n)]
            return elem, [self.value(elem) for _ in range(n)]
        if kind == MAP:
            n = self.varint()
            if n == 0:
                return 0, 0, []
            types = self.byte()
            kt, vt = types >> 4, types & 0x0F
            return kt, vt, [(self.value(kt), self.value(vt)) for _ in range(n)]
        if kind == STRUCT:
            return self.struct()
        raise ValueError(f"compact protocol: unknown type {kind} at byte {self.at}")

    def struct(self) -> Struct:
        out, last = Struct(), 0
        while True:
            head = self.byte()
            kind = head & 0x0F
            if kind == STOP:
                return out
            delta = head >> 4
            fid = last + delta if delta else self.zigzag()
            last = fid
            value = kind == TRUE if kind in (TRUE, FALSE) else self.value(kind)
            out.fields.append([fid, kind, value])


def _varint(v: int, out: bytearray) -> None:
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _zigzag(v: int, out: bytearray) -> None:
    _varint((v << 1) ^ (v >> 63), out)


def _write_value(kind: int, value, out: bytearray) -> None:
    if kind in (I16, I32, I64):
        _zigzag(value, out)
    elif kind == BYTE:
        out += _struct.pack("<b", value)
    elif kind == DOUBLE:
        out += _struct.pack("<d", value)
    elif kind == BINARY:
        _varint(len(value), out)
        out += value
    elif kind in (LIST, SET):
        elem, items = value
        if len(items) < 15:
            out.append(len(items) << 4 | elem)
        else:
            out.append(0xF0 | elem)
            _varint(len(items), out)
        for item in items:
            if elem in (TRUE, FALSE):
                out.append(TRUE if item else FALSE)
            else:
                _write_value(elem, item, out)
    elif kind == MAP:
        kt, vt, pairs = value
        _varint(len(pairs), out)
        if pairs:
            out.append(kt << 4 | vt)
            for k, v in pairs:
                _write_value(kt, k, out)
                _write_value(vt, v, out)
    elif kind == STRUCT:
        _write_struct(value, out)
    else:
        raise ValueError(f"compact protocol: unknown type {kind}")


def _write_struct(s: Struct, out: bytearray) -> None:
    last = 0
    for fid, kind, value in s.fields:
        if kind in (TRUE, FALSE):
            kind = TRUE if value else FALSE
        if 0 < fid - last <= 15:
            out.append((fid - last) << 4 | kind)
        else:
            out.append(kind)
            _zigzag(fid, out)
        last = fid
        if kind not in (TRUE, FALSE):
            _write_value(kind, value, out)
    out.append(STOP)


def read_struct(data: bytes) -> Struct:
    """The compact-protocol struct ``data`` holds (all of it)."""
    r = _Reader(data)
    s = r.struct()
    if r.at != len(data):
        raise ValueError(f"compact protocol: {len(data) - r.at} bytes after the struct")
    return s


def write_struct(s: Struct) -> bytes:
    """``s`` in the compact protocol (:func:`read_struct`'s bytes for a struct it read)."""
    out = bytearray()
    _write_struct(s, out)
    return bytes(out)


def split_file(data) -> tuple[memoryview, Struct]:
    """(the pages of Parquet file ``data`` (any bytes-like object): its bytes between the
    leading magic and the footer, the footer read)."""
    view = memoryview(data).cast("B")
    if len(view) < 12 or bytes(view[:4]) != MAGIC or bytes(view[-4:]) != MAGIC:
        raise ValueError("not a Parquet file (no PAR1 at both ends)")
    size = int.from_bytes(view[-8:-4], "little")
    end = len(view) - 8 - size
    return view[4:end], read_struct(bytes(view[end:-8]))


def _moved_group(group: Struct, shift: int, ordinal: int) -> Struct:
    """Row group ``group`` of a part whose pages now lie ``shift`` bytes later."""
    for chunk in group.get(GROUP_COLUMNS)[1]:
        if any(chunk.has(f) for f in CHUNK_INDEX_FIELDS):
            raise ValueError("Parquet parts with page indexes are not merged")
        meta = chunk.get(CHUNK_META)
        if any(meta.has(f) for f in META_BLOOM):
            raise ValueError("Parquet parts with Bloom filters are not merged")
        if chunk.get(CHUNK_FILE_OFFSET):      # (deprecated: Arrow writes 0)
            chunk.set(CHUNK_FILE_OFFSET, chunk.get(CHUNK_FILE_OFFSET) + shift)
        for f in META_OFFSETS:
            if meta.has(f):
                meta.set(f, meta.get(f) + shift)
    if group.has(GROUP_FILE_OFFSET):
        group.set(GROUP_FILE_OFFSET, group.get(GROUP_FILE_OFFSET) + shift)
    if group.has(GROUP_ORDINAL):
        group.set(GROUP_ORDINAL, ordinal)
    return group


class MergedWriter:
    """Write one Parquet file to ``sink`` from whole Parquet files (:meth:`add`, in row-group
    order) of one schema; :meth:`close` writes the footer."""

    def __init__(self, sink: BinaryIO):
        self.sink, self.at = sink, len(MAGIC)
        self.footer: Struct | None = None
        self.same: bytes = b""     # the footer but its rows and row groups, of every part
        self.groups: list = []
        self.rows = 0
        sink.write(MAGIC)

    def add(self, data: bytes) -> None:
        """Append Parquet file ``data``'s row groups."""
        pages, footer = split_file(data)
        same = write_struct(Struct([f for f in footer.fields
                                    if f[0] not in (FILE_NUM_ROWS, FILE_ROW_GROUPS)]))
        if self.footer is not None and same != self.same:
            raise ValueError("Parquet parts of different schemas or writers are not merged")
        shift = self.at - len(MAGIC)
        for group in footer.get(FILE_ROW_GROUPS)[1]:
            self.groups.append(_moved_group(group, shift, len(self.groups)))
        self.rows += footer.get(FILE_NUM_ROWS)
        if self.footer is None:
            self.footer, self.same = footer, same
        self.sink.write(pages)
        self.at += len(pages)

    def close(self) -> None:
        if self.footer is None:
            raise ValueError("no Parquet part to merge")
        self.footer.set(FILE_NUM_ROWS, self.rows)
        elem = self.footer.get(FILE_ROW_GROUPS)[0]
        self.footer.set(FILE_ROW_GROUPS, (elem, self.groups))
        body = write_struct(self.footer)
        self.sink.write(body)
        self.sink.write(len(body).to_bytes(4, "little"))
        self.sink.write(MAGIC)


@dataclass(frozen=True)
class ColumnChunk:
    """One column of a Parquet file of one row group and a flat schema: its chunk's bytes
    (``pages``, from its first page: a view of that file's bytes as read, or a copy), where
    they began in that file (``at``), its footer
    entries (``chunk``: the ColumnChunk struct; ``leaf``: its schema element; ``order``: its
    column order), and that file's footer (``footer``: the file one writer writes is built from
    it, :func:`joined_group`). Never changed once read (:func:`joined_group` copies)."""

    pages: bytes | memoryview
    at: int
    chunk: Struct
    leaf: Struct
    order: Struct
    footer: Struct


def column_chunks(data) -> dict[str, ColumnChunk]:
    """Name -> :class:`ColumnChunk` of each column of Parquet file ``data``, which holds one
    row group and a flat schema and no page index or Bloom filter (else ``ValueError``)."""
    view = memoryview(data).cast("B")
    _, footer = split_file(view)
    groups = footer.get(FILE_ROW_GROUPS)[1]
    schema = footer.get(FILE_SCHEMA)[1]
    if len(groups) != 1 or schema[0].get(SCHEMA_CHILDREN) != len(schema) - 1:
        raise ValueError("column_chunks: a Parquet file of one row group and a flat schema only")
    out = {}
    for leaf, chunk, order in zip(schema[1:], groups[0].get(GROUP_COLUMNS)[1],
                                  footer.get(FILE_COLUMN_ORDERS)[1], strict=True):
        meta = chunk.get(CHUNK_META)
        if any(chunk.has(f) for f in CHUNK_INDEX_FIELDS) or any(meta.has(f) for f in META_BLOOM):
            raise ValueError("Parquet files with page indexes or Bloom filters are not split")
        at = meta.get(META_DICTIONARY) if meta.has(META_DICTIONARY) else meta.get(META_DATA)
        out[leaf.get(SCHEMA_NAME).decode()] = ColumnChunk(
            view[at:at + meta.get(META_COMPRESSED)], at, chunk, leaf, order, footer)
    return out


def joined_group(columns: list[ColumnChunk], footer: Struct | None = None) -> bytes:
    """One Parquet file of one row group holding ``columns`` in that order (chunks of files
    of the same rows and writer): each chunk's bytes as they are, and ``footer`` (a footer
    of one of those files; default: the first column's file's) with every column's schema
    element, column order and chunk, their positions moved to where the bytes now lie, the
    row group's sizes their sums - the file one writer writes with those columns. Files
    whose key-value metadata differ (pyarrow's stored Arrow schema describes a file's own
    columns: ``store_schema=False``) are not joined (``ValueError``)."""
    if not columns:
        raise ValueError("joined_group: no column")
    footers = {id(c.footer): c.footer for c in columns}
    if footer is not None:
        footers[id(footer)] = footer
    metadata = {write_struct(Struct([f for f in x.fields if f[0] == FILE_KEY_VALUE]))
                for x in footers.values()}
    if len(metadata) > 1:
        raise ValueError("joined_group: the files' key-value metadata differ (a stored Arrow "
                         "schema describes its own file's columns)")
    out = bytearray(MAGIC)
    chunks = []
    for col in columns:
        chunk = col.chunk.copy()
        shift = len(out) - col.at
        meta = chunk.get(CHUNK_META)
        for f in META_OFFSETS:
            if meta.has(f):
                meta.set(f, meta.get(f) + shift)
        if chunk.get(CHUNK_FILE_OFFSET):      # (deprecated: Arrow writes 0)
            chunk.set(CHUNK_FILE_OFFSET, chunk.get(CHUNK_FILE_OFFSET) + shift)
        out += col.pages
        chunks.append(chunk)
    footer = (columns[0].footer if footer is None else footer).copy()
    group = footer.get(FILE_ROW_GROUPS)[1][0]
    root = footer.get(FILE_SCHEMA)[1][0]
    root.set(SCHEMA_CHILDREN, len(columns))
    metas = [c.get(CHUNK_META) for c in chunks]
    group.set(GROUP_COLUMNS, (group.get(GROUP_COLUMNS)[0], chunks))
    group.set(GROUP_BYTES, sum(m.get(META_UNCOMPRESSED) for m in metas))
    if group.has(GROUP_COMPRESSED):
        group.set(GROUP_COMPRESSED, sum(m.get(META_COMPRESSED) for m in metas))
    if group.has(GROUP_FILE_OFFSET):
        group.set(GROUP_FILE_OFFSET, len(MAGIC))
    footer.set(FILE_SCHEMA, (footer.get(FILE_SCHEMA)[0], [root, *(c.leaf for c in columns)]))
    footer.set(FILE_COLUMN_ORDERS, (footer.get(FILE_COLUMN_ORDERS)[0],
                                    [c.order for c in columns]))
    body = write_struct(footer)
    out += body
    out += len(body).to_bytes(4, "little")
    out += MAGIC
    return bytes(out)
