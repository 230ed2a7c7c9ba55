"""Long CSV tables written by the compiled loops of :mod:`sim.report.text_kernel` (built ahead
of time by :mod:`sim.report.text_aot`): :func:`sim.report.tables.write_csv`'s bytes for a table
of ints, floats and text whose floats are written as ``%.9g``, in blocks formed on several
threads and written in order."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from sim.report.text_fields import (
    FLOAT,
    FLOAT_WIDTH,
    INT,
    INT_WIDTH,
    NO_VALUE,
    OTHER,
    SEEN,
    SLACK,
    TEXT,
)

#: a table of this many rows or more (its floats as ``%.9g``, its columns ints, floats and text)
#: is written by the compiled loops (sim/report/text_kernel.py): 9.9M op rows 4x faster; below
#: it loading them would cost a short report more than they save
COMPILED_CSV_ROWS = 1 << 15
#: rows of a block of the compiled path: the block's per-column arrays stay in cache (9.9M op
#: rows 1.7x less CPU than in blocks of 2**16)
COMPILED_BLOCK_ROWS = 1 << 14
#: threads that form a long CSV's blocks at once (at most the machine's cores)
CSV_THREADS = 4
_INT64 = np.iinfo(np.int64)


def compiled_plan(columns: list, text_fields) -> tuple | None:
    """``(kinds, slots, ints, floats, texts, fields)`` of ``columns`` for
    :func:`_write_compiled`: each column's kind and place among the ints, floats and text
    columns (codes) and each text column's fields as ``csv.writer`` writes them
    (``text_fields``: :func:`sim.report.tables._text_fields`); None where a column is of
    another kind (bools, objects) or out of the loops' range, or for a table of one column
    (``csv.writer`` quotes a row's only field when it is empty: ``""``)."""
    if len(columns) < 2:
        return None
    kinds, slots, ints, floats, texts, fields = [], [], [], [], [], []
    for whole in columns:
        if isinstance(whole, tuple):
            labels, codes = whole
            if len(codes) and (codes.min() < 0 or codes.max() >= len(labels)):
                return None
            kind, group, item = TEXT, texts, codes
            fields.append(text_fields(labels, {}))
        elif whole.dtype.kind == "f":
            kind, group, item = FLOAT, floats, whole
        elif whole.dtype.kind in "iu" and (not len(whole) or (
                int(whole.min()) > _INT64.min and int(whole.max()) <= _INT64.max)):
            kind, group, item = INT, ints, whole
        else:
            return None
        kinds.append(kind)
        slots.append(len(group))
        group.append(item)
    return kinds, slots, ints, floats, texts, fields


def write_compiled(plan: tuple, n: int, out, rows: int) -> None:
    """Write the ``n`` rows of :func:`compiled_plan`'s columns to ``out``, ``rows`` at a time:
    each float column's digits by ``float_digits``, the few it leaves (see
    :mod:`sim.report.text_kernel`) by ``%``, every row by ``write_rows``. Blocks are formed on
    up to :data:`CSV_THREADS` threads (the loops release the GIL) and written in order, at
    most one more than the threads waiting."""
    from sim.report import text_aot

    kinds, slots, ints, floats, texts, fields = plan
    k = text_aot.kernels()
    encoded = [[f.encode() for f in col] for col in fields]
    lengths = [len(b) for col in encoded for b in col]
    label_ptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=label_ptr[1:])
    label_bytes = np.frombuffer(bytearray(b"".join(b for col in encoded for b in col) or b"\0"),
                                dtype=np.uint8)
    label_base = np.cumsum([0] + [len(col) for col in encoded[:-1]], dtype=np.int64)
    text_width = sum(max(map(len, col), default=0) for col in encoded)
    kinds_a, slots_a = np.array(kinds, dtype=np.int64), np.array(slots, dtype=np.int64)

    def block(lo: int) -> bytes:
        hi = min(n, lo + rows)
        m = hi - lo
        int_block = np.empty((len(ints), m), dtype=np.int64)
        for j, col in enumerate(ints):
            int_block[j] = col[lo:hi]
        code_block = np.empty((len(texts), m), dtype=np.int64)
        for j, col in enumerate(texts):
            code_block[j] = col[lo:hi]
        digits, exps, status = (np.empty((len(floats), m), dtype=np.int64) for _ in range(3))
        bits = np.empty((len(floats), m), dtype=np.int64)
        values = bits.view(np.float64)
        for j, col in enumerate(floats):
            values[j] = col[lo:hi]
        kept = [np.full((len(floats), SEEN), NO_VALUE, dtype=np.int64),
                np.empty((len(floats), SEEN), dtype=np.int64),
                np.empty((len(floats), SEEN), dtype=np.int64)]
        others = sum(k.float_digits(values[j], bits[j], digits[j], exps[j], status[j],
                                    *(a[j] for a in kept))
                     for j in range(len(floats)))
        other = [b""]
        if others:   # row by row, column by column: the order write_rows takes them in
            at_row, at_col = np.nonzero(status.T == OTHER)
            other = [b"%.9g" % values[c][r] for r, c in zip(at_row.tolist(), at_col.tolist(),
                                                           strict=True)]
        other_ptr = np.zeros(len(other) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in other], out=other_ptr[1:])
        other_bytes = np.frombuffer(bytearray(b"".join(other) or b"\0"), dtype=np.uint8)
        width = (INT_WIDTH * len(ints) + max(FLOAT_WIDTH, max(map(len, other))) * len(floats)
                 + text_width + len(kinds))
        buf = np.empty(m * width + SLACK, dtype=np.uint8)
        seen = np.full((len(floats), SEEN), NO_VALUE, dtype=np.int64)
        seen_len = np.zeros((len(floats), SEEN), dtype=np.int64)
        seen_text = np.empty((len(floats), SEEN * FLOAT_WIDTH), dtype=np.uint8)
        end = k.write_rows(kinds_a, slots_a, int_block, digits, exps, status, bits, other_ptr,
                           other_bytes, code_block, label_base, label_ptr, label_bytes, seen,
                           seen_len, seen_text, buf)
        return buf[:end].tobytes()

    # a UTF-8 text file's own bytes (no decode, then encode) where lines end in "\n" anyway
    binary = getattr(out, "buffer", None)
    if (getattr(out, "encoding", "") or "").lower().replace("-", "") != "utf8" or \
            os.linesep != "\n":
        binary = None
    if binary is not None:
        out.flush()
    put = binary.write if binary is not None else (lambda b: out.write(b.decode()))
    threads = max(1, min(CSV_THREADS, os.cpu_count() or 1))
    with ThreadPoolExecutor(threads) as pool:
        waiting: deque = deque()
        for lo in range(0, n, rows):
            waiting.append(pool.submit(block, lo))
            if len(waiting) > threads:
                put(waiting.popleft().result())
        while waiting:
            put(waiting.popleft().result())
