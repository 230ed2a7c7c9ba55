"""A long run's op and transfer events of the Chrome trace written by compiled loops
(:func:`sim.report.text_kernel.trace_events` and ``transfer_events``, built ahead of time with
the CSV writer's): the text :func:`sim.report.timeline._op_events` and
:func:`~sim.report.timeline.chrome_trace`'s transfer loop write, event by event, from texts
formed once per distinct value (heads, durations, tails, names, routes, byte counts) and each
event's times and integers."""

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
    from sim.report import text_aot, timeline

    k = text_aot.kernels()
    n = len(start_us)
    values = np.ascontiguousarray(start_us, dtype=np.float64)
    digits, status = _fixed4(k, values)
    other = [t.encode() for t in timeline._us_texts(values[status == OTHER])] or [b""]
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


def _fixed4(k, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fixed4_digits` of ``values``: (digits, status)."""
    digits, status = np.empty(len(values), dtype=np.int64), np.empty(len(values), dtype=np.int64)
    k.fixed4_digits(np.ascontiguousarray(values, dtype=np.float64), digits, status)
    return digits, status


def transfer_events_text(transfers, title: str, pids: dict, tids: dict, link_pid: int,
                         link_tid, meta, num, text, fast_us: float) -> str | None:
    """The transfers' events joined by commas, as :func:`sim.report.timeline.chrome_trace`'s
    loop writes them: per transfer a new copy stream's (and device's) metadata events, its
    event on its copy stream, then one on each resource of its route (a new track named
    first: ``link_tid(name, metas)``), each ending in the same times and args. ``pids``,
    ``tids`` and the link tracks are updated as the loop updates them (``meta``: a metadata
    event, ``num``: a float as ``json.dumps`` writes it, ``text``: ``json.dumps``). None,
    with nothing updated, where a time is not finite or not below ``fast_us`` microseconds,
    or a count is not an integer (the loop then runs)."""
    from sim.report import text_aot, timeline

    start = np.asarray(transfers["start_s"], dtype=np.float64) * 1e6
    dur = np.asarray(transfers["latency_s"], dtype=np.float64) * 1e6
    ints = [np.asarray(transfers[c]) for c in ("replicas", "layer", "step")]
    times = np.concatenate((start, dur))
    nbytes = np.asarray(transfers["bytes"], dtype=np.float64)
    if not (np.isfinite(times).all() and float(np.abs(times).max(initial=0)) < fast_us) or \
            any(a.dtype.kind not in "iu" for a in ints) or not np.isfinite(nbytes).all() or \
            np.signbit(nbytes[nbytes == 0]).any():   # (-0.0 and 0.0 would be one value)
        return None
    k = text_aot.kernels()
    n = len(start)
    # each column's codes and values in order of first appearance, as the loop meets them
    cols = {c: timeline._codes(timeline._col(transfers, c))
            for c in ("name", "tensor", "stream", "src", "dst", "route")}
    metas: list[dict] = []
    pre_at, pre_meta = [], []
    stream_c, streams = cols["stream"]
    _, first_of_stream = np.unique(stream_c, return_index=True)
    for stream, at in zip(streams, first_of_stream.tolist(), strict=True):
        if stream in tids:
            continue
        dev = stream.rsplit(".", 1)[0]
        if dev not in pids:
            pids[dev] = link_pid + 1 + len(pids)
            metas.append(meta(pids[dev], f"{dev} - {title}"))
            pre_at.append(at)
            pre_meta.append(len(metas) - 1)
        pid = pids[dev]
        tid = 100 + sum(1 for p, _ in tids.values() if p == pid)
        tids[stream] = (pid, tid)
        metas.append(meta(pid, "", tid, "copy"))
        pre_at.append(at)
        pre_meta.append(len(metas) - 1)
    head_c, heads = timeline._combined(cols["name"], cols["tensor"], cols["stream"])
    head_text = [f'{{"name":{text(name)},"cat":{text(f"transfer,{tensor}")},"ph":"X",'
                 f'"pid":{tids[stream][0]},"tid":{tids[stream][1]}'
                 for name, tensor, stream in heads]
    combo_c, routes = timeline._combined(cols["src"], cols["route"], cols["dst"])
    _, combo_first = np.unique(combo_c, return_index=True)
    res_tid, res_meta, res_ptr = [], [], [0]
    for src, route, dst in routes:   # as first met: a new track's metadata where it is
        for res in (src, *route.split(), dst):
            if res:
                before = len(metas)
                res_tid.append(link_tid(res, metas))
                res_meta.append(len(metas) - 1 if len(metas) > before else -1)
        res_ptr.append(len(res_tid))
    names = cols["name"][1]
    name_c = cols["name"][0]
    prefix = [f'{{"name":{text(nm)},"cat":"transfer","ph":"X","pid":{link_pid},"tid":'
              for nm in names]
    bytes_c, byte_values = timeline._codes(nbytes)
    ts_digits, ts_status = _fixed4(k, start)
    dur_digits, dur_status = _fixed4(k, dur)
    at_row, at_col = np.nonzero(np.stack((ts_status, dur_status), axis=1) == OTHER)
    other = [t.encode() for t in timeline._us_texts(np.stack((start, dur), axis=1)[
        at_row, at_col])] or [b""]
    other_ptr = np.zeros(len(other) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in other], out=other_ptr[1:])
    other_bytes = np.frombuffer(bytearray(b"".join(other) or b"\0"), dtype=np.uint8)
    meta_text = [json.dumps(m, separators=(",", ":")) for m in metas]
    tables = [_table(t) for t in (head_text, prefix, [num(float(v)) for v in byte_values],
                                  meta_text)]
    longest = [int(np.diff(t[0]).max(initial=0)) for t in tables]
    tail = max(30, max(map(len, other))) * 2 + longest[2] + 3 * 20 + 64
    bound = (n * (longest[0] + tail) + len(pre_at) * (longest[3] + 1)
             + len(res_tid) * (longest[3] + 1)
             + n * int(np.diff(res_ptr).max(initial=0)) * (longest[1] + 21 + tail))
    out = np.empty(bound, dtype=np.uint8)
    i8 = np.int64
    end = k.transfer_events(np.asarray(head_c, dtype=i8), *tables[0],
                            np.asarray(combo_c, dtype=i8), combo_first.astype(i8),
                            np.asarray(res_ptr, dtype=i8), np.asarray(res_tid, dtype=i8),
                            np.asarray(res_meta, dtype=i8), name_c, *tables[1], ts_digits,
                            ts_status, dur_digits, dur_status, other_ptr, other_bytes, bytes_c,
                            *tables[2], *(np.ascontiguousarray(a, dtype=i8) for a in ints),
                            np.asarray(pre_at, dtype=i8), np.asarray(pre_meta, dtype=i8),
                            *tables[3], out)
    return out[:end].tobytes().decode()

