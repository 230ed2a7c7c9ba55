"""Chrome trace / Perfetto JSON of a run: one complete ("X") event per op."""

from __future__ import annotations

import json

import pandas as pd


def chrome_trace(ops: pd.DataFrame, title: str) -> str:
    """Serialise the per-op table as a Chrome trace (times in microseconds)."""
    events: list[dict] = [
        {"name": "process_name", "ph": "M", "pid": 0, "args": {"name": title}},
        {"name": "thread_name", "ph": "M", "pid": 0, "tid": 0, "args": {"name": "prefill"}},
        {"name": "thread_name", "ph": "M", "pid": 0, "tid": 1, "args": {"name": "decode"}},
    ]
    cols = zip(ops["op"], ops["op_class"], ops["phase"], ops["layer"], ops["step"],
               ops["start_s"], ops["latency_s"], ops["flops"], ops["bytes"], ops["bound"],
               strict=True)
    for name, cls, phase, layer, step, start, dur, flops, nbytes, bound in cols:
        events.append({
            "name": name, "cat": cls, "ph": "X", "pid": 0, "tid": 0 if phase == "prefill" else 1,
            "ts": round(start * 1e6, 4), "dur": round(dur * 1e6, 4),
            "args": {"layer": int(layer), "step": int(step), "flops": float(flops),
                     "bytes": float(nbytes), "bound": bound},
        })
    return json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}, separators=(",", ":"))
