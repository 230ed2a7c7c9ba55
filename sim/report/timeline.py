"""Chrome trace / Perfetto JSON of a run: one track per device stream and per link direction.

Each device instance is a process whose threads are its streams (compute, communication,
copy); every op is a complete ("X") event on its stream. A "links" process has one thread per
contended link direction or memory tier: transfers appear on every resource of their route,
collectives on the ports they load, so contention is visible as overlapping bars.
"""

from __future__ import annotations

import functools
import json
import math

import pandas as pd


def _meta(pid: int, name: str, tid: int | None = None, thread: str = "") -> dict:
    if tid is None:
        return {"name": "process_name", "ph": "M", "pid": pid, "args": {"name": name}}
    return {"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": thread}}


def chrome_trace(ops: pd.DataFrame, title: str, transfers: pd.DataFrame | None = None,
                 op_links: dict[int, tuple[str, ...]] | None = None) -> str:
    """Serialise the run as a Chrome trace (times in microseconds)."""
    events: list[dict] = []
    pids: dict[str, int] = {}
    tids: dict[str, tuple[int, int]] = {}
    stream_col = ops["stream"] if "stream" in ops else ops["device"]
    device_col = ops["device"] if "device" in ops else stream_col
    for stream, device in dict(zip(stream_col, device_col, strict=True)).items():
        if device not in pids:
            pids[device] = len(pids)
            events.append(_meta(pids[device], f"{device} - {title}"))
        pid = pids[device]
        tid = sum(1 for p, _ in tids.values() if p == pid)
        tids[stream] = (pid, tid)
        events.append(_meta(pid, "", tid, str(stream).rsplit(".", 1)[-1]))
    cols = zip(*(c.tolist() for c in (ops["id"], ops["op"], ops["op_class"], ops["phase"],
                                       ops["layer"], ops["step"], stream_col, ops["start_s"],
                                       ops["latency_s"], ops["flops"], ops["bytes"],
                                       ops["bound"])), strict=True)
    link_tids: dict[str, int] = {}
    link_pid = len(pids)

    def link_tid(name: str) -> int:
        if name not in link_tids:
            link_tids[name] = len(link_tids)
            events.append(_meta(link_pid, "", link_tids[name], name))
        return link_tids[name]

    if op_links or (transfers is not None and len(transfers)):
        events.append(_meta(link_pid, "links and memory tiers"))
    text = functools.lru_cache(maxsize=None)(json.dumps)   # a JSON string per distinct name
    num = functools.lru_cache(maxsize=None)(_num)   # op shapes and durations repeat
    dur_us = functools.lru_cache(maxsize=None)(_us)
    for oid, name, cls, phase, layer, step, stream, start, dur, flops, nbytes, bound in cols:
        pid, tid = tids[stream]
        ts, d = round(start * 1e6, 4), dur_us(dur)
        # the op's event as json.dumps writes it (one per op: the bulk of a long trace)
        events.append(_Raw(
            f'{{"name":{text(name)},"cat":{text(f"{cls},{phase}")},"ph":"X","pid":{pid},'
            f'"tid":{tid},"ts":{_num(ts)},"dur":{num(d)},"args":{{"layer":{int(layer)},'
            f'"step":{int(step)},"phase":{text(phase)},"flops":{num(float(flops))},'
            f'"bytes":{num(float(nbytes))},"bound":{text(bound)}}}}}'))
        for res in (op_links or {}).get(int(oid), ()):
            events.append({"name": name, "cat": "collective", "ph": "X", "pid": link_pid,
                           "tid": link_tid(res), "ts": ts, "dur": d})
    if transfers is not None:
        for row in transfers.itertuples(index=False):
            ts, d = round(row.start_s * 1e6, 4), round(row.latency_s * 1e6, 4)
            args = {"bytes": float(row.bytes), "replicas": int(row.replicas),
                    "layer": int(row.layer), "step": int(row.step)}
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
            events.append({"name": row.name, "cat": f"transfer,{row.tensor}", "ph": "X",
                           "pid": pid, "tid": tid, "ts": ts, "dur": d, "args": args})
            for res in (row.src, *row.route.split(), row.dst):
                if res:
                    events.append({"name": row.name, "cat": "transfer", "ph": "X",
                                   "pid": link_pid, "tid": link_tid(res), "ts": ts, "dur": d,
                                   "args": args})
    parts = [e if isinstance(e, _Raw) else json.dumps(e, separators=(",", ":")) for e in events]
    return '{"traceEvents":[' + ",".join(parts) + '],"displayTimeUnit":"ms"}'


class _Raw(str):
    """An event already serialised as JSON."""


def _us(seconds: float) -> float:
    """Seconds as microseconds rounded to 4 decimals (the trace's time unit)."""
    return round(seconds * 1e6, 4)


def _num(x: float) -> str:
    """A float as ``json.dumps`` writes it."""
    return float.__repr__(x) if math.isfinite(x) else json.dumps(x)
