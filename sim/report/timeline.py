"""Chrome trace / Perfetto JSON of a run: one track per device stream and per link direction.

Each device instance is a process whose threads are its streams (compute, communication,
copy); every op is a complete ("X") event on its stream. A "links" process has one thread per
contended link direction or memory tier: transfers appear on every resource of their route,
collectives on the ports they load, so contention is visible as overlapping bars.
"""

from __future__ import annotations

import functools
import itertools
import json
import math

import numpy as np

from sim.columns import Columns, Text, as_columns
from sim.report import trace_text
from sim.report.tables import factorize


def _meta(pid: int, name: str, tid: int | None = None, thread: str = "") -> dict:
    if tid is None:
        return {"name": "process_name", "ph": "M", "pid": pid, "args": {"name": name}}
    return {"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": thread}}


def _col(ops, name: str):
    """Column ``name`` of a DataFrame (numpy) or :class:`Columns` (a :class:`Text` for text:
    its codes, no str per row)."""
    if isinstance(ops, Columns):
        return ops.text(name) if ops.is_text(name) else np.asarray(ops[name])
    return ops[name].to_numpy()


def _list(col) -> list:
    """The column's values as Python objects."""
    return col.array().tolist() if isinstance(col, Text) else col.tolist()


def chrome_trace(ops, title: str, transfers=None,
                 op_links: dict[int, tuple[str, ...]] | None = None) -> str:
    """Serialise the run as a Chrome trace (times in microseconds). ``ops``: a DataFrame or
    :class:`sim.columns.Columns` (then without pandas); ``transfers``: a DataFrame, Columns
    or None."""
    events: list[dict] = []
    pids: dict[str, int] = {}
    tids: dict[str, tuple[int, int]] = {}
    stream_col = _col(ops, "stream") if "stream" in ops else _col(ops, "device")
    device_col = _col(ops, "device") if "device" in ops else stream_col
    if transfers is not None and not len(transfers):
        transfers = None
    elif transfers is not None:
        transfers = as_columns(transfers)
    for stream, device in _stream_devices(stream_col, device_col):
        if device not in pids:
            pids[device] = len(pids)
            events.append(_meta(pids[device], f"{device} - {title}"))
        pid = pids[device]
        tid = sum(1 for p, _ in tids.values() if p == pid)
        tids[stream] = (pid, tid)
        events.append(_meta(pid, "", tid, str(stream).rsplit(".", 1)[-1]))
    link_tids: dict[str, int] = {}
    link_pid = len(pids)

    def link_tid(name: str, metas: list | None = None) -> int:
        """The track of link ``name``; a new one is named by a metadata event, appended to
        the events (or to ``metas``)."""
        if name not in link_tids:
            link_tids[name] = len(link_tids)
            (events if metas is None else metas).append(_meta(link_pid, "", link_tids[name],
                                                              name))
        return link_tids[name]

    if op_links or (transfers is not None and len(transfers)):
        events.append(_meta(link_pid, "links and memory tiers"))
    _op_events(ops, stream_col, tids, events, op_links or {}, link_pid, link_tid)
    text = functools.lru_cache(maxsize=None)(json.dumps)
    if transfers is not None and len(transfers) >= trace_text.COMPILED_EVENTS:
        blob = trace_text.transfer_events_text(transfers, title, pids, tids, link_pid,
                                               link_tid, _meta, _num, text, _FAST_US)
        if blob is not None:
            events.append(_Raw(blob))
            transfers = None
    if transfers is not None:
        for row in _rows(transfers, ("name", "tensor", "stream", "src", "dst", "route",
                                     "bytes", "replicas", "layer", "step", "start_s",
                                     "latency_s")):
            ts, d = round(row.start_s * 1e6, 4), round(row.latency_s * 1e6, 4)
            # the event's times and args as json.dumps writes them, formatted once for its
            # events on the copy stream and on each resource it crosses
            tail = (f',"ts":{_num(ts)},"dur":{_num(d)},"args":{{"bytes":{_num(float(row.bytes))},'
                    f'"replicas":{int(row.replicas)},"layer":{int(row.layer)},'
                    f'"step":{int(row.step)}}}}}')
            pid, tid = tids.get(row.stream, (None, None))
            if pid is None:
                dev = row.stream.rsplit(".", 1)[0]
                if dev not in pids:
                    pids[dev] = link_pid + 1 + len(pids)
                    events.append(_meta(pids[dev], f"{dev} - {title}"))
                pid = pids[dev]
                tid = 100 + sum(1 for p, _ in tids.values() if p == pid)
                tids[row.stream] = (pid, tid)
                events.append(_meta(pid, "", tid, "copy"))
            name = text(row.name)
            events.append(_Raw(f'{{"name":{name},"cat":{text(f"transfer,{row.tensor}")},'
                               f'"ph":"X","pid":{pid},"tid":{tid}{tail}'))
            for res in (row.src, *row.route.split(), row.dst):
                if res:
                    events.append(_Raw(f'{{"name":{name},"cat":"transfer","ph":"X",'
                                       f'"pid":{link_pid},"tid":{link_tid(res)}{tail}'))
    parts = [e if isinstance(e, _Raw) else json.dumps(e, separators=(",", ":")) for e in events]
    return '{"traceEvents":[' + ",".join(parts) + '],"displayTimeUnit":"ms"}'


class _Raw(str):
    """An event already serialised as JSON."""


class _Row:
    """One row of a small table, its columns as attributes (what ``itertuples`` gives)."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


def _rows(table: Columns, names: tuple[str, ...]):
    """The rows of ``table`` (Columns) with the columns ``names`` as Python values."""
    cols = [np.asarray(table[c]).tolist() for c in names]
    for values in zip(*cols, strict=True):
        yield _Row(dict(zip(names, values, strict=True)))


def _stream_devices(stream_col, device_col) -> list[tuple]:
    """``(stream, device)`` per distinct stream in order of first appearance, with the device
    of its last row (what ``dict(zip(streams, devices))`` gives, without a loop over rows)."""
    codes, streams = _codes(stream_col)
    if not streams:
        return []
    _, last_rev = np.unique(codes[::-1], return_index=True)
    last = len(codes) - 1 - last_rev
    devices = np.array(_list(device_col), dtype=object)[last] \
        if device_col is not stream_col else None
    return [(s, devices[i] if devices is not None else s) for i, s in enumerate(streams)]


def _codes(col) -> tuple[np.ndarray, list]:
    """``(codes, distinct values)`` of a column, in order of first appearance."""
    if isinstance(col, Text):   # from the codes: distinct labels, first seen first
        labels, c = col.distinct()
        if not len(c):
            return c.astype(np.int64), []
        _, first = np.unique(c, return_index=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return rank[c], [labels[j] for j in order.tolist()]
    codes, uniques = factorize(col)
    return codes.astype(np.int64, copy=False), uniques.tolist()


def _combined(*codes: tuple[np.ndarray, list]) -> tuple[list[int], list[tuple]]:
    """One code per row for the tuple of several columns' values (in order of first
    appearance), and each distinct tuple."""
    key, card = np.zeros(len(codes[0][0]), dtype=np.int64), 1
    for c, uniq in codes:
        key, card = key * max(len(uniq), 1) + c, card * max(len(uniq), 1)
        if card > 2**40:   # keep the mixed-radix key well inside int64
            key, seen = factorize(key)
            key, card = key.astype(np.int64, copy=False), len(seen)
    rows, _ = factorize(key)
    _, first = np.unique(rows, return_index=True)   # first row of each distinct tuple
    return rows.tolist(), [tuple(uniq[int(c[i])] for c, uniq in codes) for i in first]


def _op_events(ops, stream_col, tids: dict, events: list, op_links: dict,
               link_pid: int, link_tid) -> None:
    """Append one complete event per op, as ``json.dumps`` writes it, each followed by its
    events on the links it loads. Text that repeats (an op's name, category and track; the
    args of its shape) is serialised once per distinct value instead of once per op."""
    text = functools.lru_cache(maxsize=None)(json.dumps)
    num = functools.lru_cache(maxsize=None)(_num)
    head_c, heads = _combined(*(_codes(c) for c in (_col(ops, "op"), _col(ops, "op_class"),
                                                    _col(ops, "phase"), stream_col)))
    head_text = []
    for name, cls, phase, stream in heads:
        pid, tid = tids[stream]
        head_text.append(f'{{"name":{text(name)},"cat":{text(f"{cls},{phase}")},"ph":"X",'
                         f'"pid":{pid},"tid":{tid},"ts":')
    tail_c, tails = _combined(*(_codes(_col(ops, c)) for c in ("phase", "flops", "bytes",
                                                                "bound")))
    tail_text = [f',"phase":{text(phase)},"flops":{num(float(flops))},'
                 f'"bytes":{num(float(nbytes))},"bound":{text(bound)}}}}}'
                 for phase, flops, nbytes, bound in tails]
    dur_c, durs = _codes(_col(ops, "latency_s"))
    dur_text = [f',"dur":{_num(_us(d))},"args":{{"layer":' for d in durs]
    start_us = np.asarray(_col(ops, "start_s"), dtype=np.float64) * 1e6   # start * 1e6 per op
    if not len(ops):
        return
    layer_a, step_a = _col(ops, "layer"), _col(ops, "step")
    ids = np.asarray(_col(ops, "id"))
    if len(ops) >= trace_text.COMPILED_EVENTS and all(
            isinstance(a, np.ndarray) and a.dtype.kind in "iu" for a in (layer_a, step_a)) \
            and np.isfinite(start_us).all() and float(np.abs(start_us).max()) < _FAST_US:
        linked = np.flatnonzero(_linked(op_links, ids)).tolist() if op_links else []
        prefix = [f'{{"name":{text(h[0])},"cat":"collective","ph":"X","pid":{link_pid}'
                  for h in heads]
        events.append(_Raw(trace_text.op_events_text(
            head_c, head_text, start_us, dur_c, dur_text, [_num(_us(d)) for d in durs],
            layer_a, step_a, tail_c, tail_text, linked,
            link_names(op_links, ids[linked]) if linked else [], link_tid, prefix)))
        return
    layers, steps = _list(layer_a), _list(step_a)
    # the ops' events as chunks: one %-format of the six parts of every op in a run of ops
    # that load no link (~2x less CPU than joining them op by op); ``%d`` of a layer or step
    # is ``str(int(x))``; an op that loads links is followed by its events on them
    parts: list = [None] * (6 * len(ops))
    parts[0::6] = map(head_text.__getitem__, head_c)
    parts[1::6] = _us_texts(start_us)
    parts[2::6] = map(dur_text.__getitem__, dur_c.tolist())
    parts[3::6], parts[4::6] = layers, steps
    parts[5::6] = map(tail_text.__getitem__, tail_c)
    linked = np.flatnonzero(_linked(op_links, ids)).tolist() if op_links else []
    dur_s = np.asarray(_col(ops, "latency_s"))

    def chunk(lo: int, hi: int) -> _Raw:   # the events of ops lo..hi-1
        return _Raw(",".join(itertools.repeat(_OP_EVENT, hi - lo)) % tuple(parts[6 * lo:6 * hi]))

    lo = 0
    for i, names in zip(linked, link_names(op_links, ids[linked]), strict=True):
        events.append(chunk(lo, i + 1))
        lo = i + 1
        # its events on its links, as json.dumps writes {"name", "cat": "collective", "ph":
        # "X", "pid", "tid", "ts", "dur"} (a new link's track named first, by link_tid)
        head = f'{{"name":{text(heads[head_c[i]][0])},"cat":"collective","ph":"X","pid":{link_pid}'
        tail = f',"ts":{_num(round(float(start_us[i]), 4))},"dur":{_num(_us(float(dur_s[i])))}}}'
        for res in names:
            events.append(_Raw(f'{head},"tid":{link_tid(res)}{tail}'))
    if lo < len(ops):
        events.append(chunk(lo, len(ops)))


#: one op's complete event from its six parts (:func:`_op_events`)
_OP_EVENT = '%s%s%s%d,"step":%d%s'


def _linked(op_links, ids: np.ndarray) -> np.ndarray:
    """Whether each op id in ``ids`` loads a link (``op_links``' own vectorised ``having``
    where it has one)."""
    having = getattr(op_links, "having", None)
    if having is not None:
        return having(ids)
    return np.fromiter((i in op_links for i in ids.tolist()), dtype=bool, count=len(ids))


def link_names(op_links, ids: np.ndarray) -> list[tuple[str, ...]]:
    """The names of the links each op id in ``ids`` loads (``()`` for none): ``op_links``'
    own vectorised ``names_of`` where it has one (one search for them all)."""
    names_of = getattr(op_links, "names_of", None)
    if names_of is not None:
        return names_of(ids)
    return [tuple(op_links.get(i, ())) for i in np.asarray(ids).tolist()]


#: below this many microseconds a time's 4-decimal text is its ``repr`` after rounding
#: (distinct 4-decimal values are distinct doubles: 1e-4 > 2 ulp up to ~4.5e11)
_FAST_US = 1e11


def _us_texts(us: np.ndarray) -> list[str]:
    """``_num(round(t, 4))`` of each time in microseconds: ``'%.4f'`` stripped of trailing
    zeros where that is the same text (the same correctly rounded digits; finite and below
    :data:`_FAST_US`), formatted in one ``%`` call (~3x less CPU than rounding and ``repr``
    per time)."""
    if len(us) and np.isfinite(us).all() and float(np.abs(us).max()) < _FAST_US:
        values = us.tolist()
        texts = ("%.4f\n" * len(values) % tuple(values)).split("\n")
        texts.pop()   # after the last newline
        return [t + "0" if t[-1] == "." else t
                for t in map(str.rstrip, texts, itertools.repeat("0"))]
    return list(map(_num, map(round, us.tolist(), itertools.repeat(4))))


def _us(seconds: float) -> float:
    """Seconds as microseconds rounded to 4 decimals (the trace's time unit)."""
    return round(seconds * 1e6, 4)


def _num(x: float) -> str:
    """A float as ``json.dumps`` writes it."""
    return float.__repr__(x) if math.isfinite(x) else json.dumps(x)
