"""A long run's op events of the Chrome trace written by compiled loops
(:func:`sim.report.text_kernel.trace_events`, built ahead of time with the CSV writer's): the
text :func:`sim.report.timeline._op_events` writes, op by op and link by link, from the texts it
forms once per distinct value (heads, durations, tails) and each op's start, layer and step."""

from __future__ import annotations

import json

import numpy as np

from sim.report.text_fields import OTHER

#: ops from which a trace's op events are written by the compiled loops; below it, loading
#: them would cost a short report more than they save
COMPILED_EVENTS = 1 << 15


def _table(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, bytes)`` of ``texts`` (UTF-8) for the loops: text ``j`` is
    ``bytes[offsets[j]:offsets[j + 1]]``."""
    encoded = [t.encode() for t in texts]
    ptr = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=ptr[1:])
    return ptr, np.frombuffer(bytearray(b"".join(encoded) or b"\0"), dtype=np.uint8)


def op_events_text(head_c, head_text: list[str], start_us: np.ndarray, dur_c, dur_text: list[str],
                   dur_num: list[str], layer: np.ndarray, step: np.ndarray, tail_c,
                   tail_text: list[str], linked: list[int], names: list[tuple[str, ...]],
                   link_tid, name_prefix: list[str]) -> str:
    """The ops' events joined by commas: per op ``head_text[head_c[i]]``, its start (``'%.4f'``
    of ``start_us`` with trailing zeros dropped: finite and below ``_FAST_US``, the caller's
    check), ``dur_text[dur_c[i]]``, layer, ``,"step":``, step, ``tail_text[tail_c[i]]``; each
    op of ``linked`` followed by its events on the links ``names`` (a new link's track named
    first: ``link_tid(name, metas)`` appends its metadata event to ``metas``), each
    ``name_prefix[head_c[i]]``, the link's track, the op's start and ``dur_num[dur_c[i]]``."""
    from sim.report import text_aot

    k = text_aot.kernels()
    n = len(start_us)
    values = np.ascontiguousarray(start_us, dtype=np.float64)
    digits, status = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    other = [b""]
    if k.fixed4_digits(values, digits, status):   # left to '%.4f', trailing zeros dropped
        other = [(b"%.4f" % v).rstrip(b"0") for v in values[status == OTHER].tolist()]
        other = [t + b"0" if t.endswith(b".") else t for t in other]
    other_ptr = np.zeros(len(other) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in other], out=other_ptr[1:])
    other_bytes = np.frombuffer(bytearray(b"".join(other) or b"\0"), dtype=np.uint8)
    tids, meta_of, metas = [], [], []
    link_ptr = [0]
    for tracks in names:
        for name in tracks:
            before = len(metas)
            tids.append(link_tid(name, metas))
            meta_of.append(len(metas) - 1 if len(metas) > before else -1)
        link_ptr.append(len(tids))
    meta_text = [json.dumps(m, separators=(",", ":")) for m in metas]
    tables = [_table(t) for t in (head_text, dur_text, dur_num, tail_text, meta_text,
                                  name_prefix)]
    longest = [int(np.diff(t[0]).max(initial=0)) for t in tables]
    ts_max = max(30, max(len(t) for t in other))   # a start below 1e11 us: 16 digits or fewer
    # per op: head, start, duration, tail, two ints and a key; per link event: its track's
    # metadata, the name's prefix, the track, start, duration and keys
    bound = (n * (longest[0] + longest[1] + longest[3] + ts_max + 64)
             + len(tids) * (longest[4] + longest[5] + longest[2] + ts_max + 64))
    out = np.empty(bound, dtype=np.uint8)
    i8 = np.int64
    end = k.trace_events(np.asarray(head_c, dtype=i8), *tables[0], digits, status, other_ptr,
                         other_bytes, np.asarray(dur_c, dtype=i8), *tables[1], *tables[2],
                         np.ascontiguousarray(layer, dtype=i8),
                         np.ascontiguousarray(step, dtype=i8), np.asarray(tail_c, dtype=i8),
                         *tables[3], np.asarray(linked, dtype=i8), np.asarray(link_ptr, dtype=i8),
                         np.asarray(tids, dtype=i8), np.asarray(meta_of, dtype=i8), *tables[4],
                         *tables[5], out)
    return out[:end].tobytes().decode()
