"""The result of a run: the per-op table, metrics, invariants and the inputs that produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd

from sim.engine import CostList, Timeline
from workloads.trace import CompactOps, Trace

OP_COLUMNS = ("id", "op", "op_class", "kind", "phase", "layer", "step", "microbatch", "device",
              "stream", "shards", "start_s", "end_s", "latency_s", "alone_s", "roofline_s",
              "flops", "bytes", "dram_bytes", "bound", "energy_J", "energy_compute_J",
              "energy_memory_J", "energy_link_J")

#: dtype of the op table's integer columns (id, layer, step, microbatch, shards): exact for
#: every run (ids < 2**31) at half the memory of int64 (a 2,048-token 7B run: 17 MB less)
INDEX = np.int32


@dataclass
class Result:
    """Tables and metrics of one run. ``ops`` has one row per op (see :data:`OP_COLUMNS`);
    ``transfers`` one per tensor transfer (:mod:`sim.system.usage`), ``resources`` one per
    contended memory tier or link direction (bytes, busy time, utilisation)."""

    ops: pd.DataFrame
    metrics: dict[str, float]
    invariants: dict[str, str]
    inputs: dict[str, Any]
    energy_by_component: dict[str, float] = field(default_factory=dict)
    device_info: dict[str, Any] = field(default_factory=dict)
    transfers: pd.DataFrame = field(default_factory=pd.DataFrame)
    resources: pd.DataFrame = field(default_factory=pd.DataFrame)
    op_links: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Everything but the per-op table, JSON-serialisable."""
        return {"metrics": self.metrics, "energy_by_component_J": self.energy_by_component,
                "invariants": self.invariants, "inputs": self.inputs, "device": self.device_info}


def op_table(trace: Trace, timeline: Timeline,
             stream_device: dict[str, str] | None = None) -> pd.DataFrame:
    """Assemble the per-op table from the trace and the engine's timeline; ``stream_device``
    maps a stream to the device instance it runs on (default: the stream's own name)."""
    where = stream_device or {}
    compact = trace.compact if trace.is_compact else None
    n = len(trace)
    costs = timeline.costs
    if isinstance(costs, CostList):     # a run on arrays: one cost per distinct op
        uniq, idx = costs.table, costs.index
    else:
        # costs are shared by ops of one shape: derive each distinct cost's figures once
        slots: dict[int, int] = {}
        uniq = []

        def slot(cost) -> int:
            j = slots.get(id(cost))
            if j is None:
                j = slots[id(cost)] = len(uniq)
                uniq.append(cost)
            return j

        idx = np.fromiter(map(slot, costs), dtype=np.int64, count=n)

    def per_cost(get) -> np.ndarray:
        values = [get(c) if c is not None else 0.0 for c in uniq]
        return np.array(values, dtype=float)[idx] if n else np.zeros(0)

    if compact is not None:
        ops_column = _compact_columns(compact)
    else:
        ops = trace.ops

        def ops_column(attr: str, dtype=None):
            values = list(map(attrgetter(attr), ops))
            return np.array(values, dtype=dtype) if dtype is not None else values

    column = ops_column
    shards = np.maximum(column("shards", np.int64), 1).astype(float)
    e_compute = per_cost(lambda c: c.energy.get("compute", 0.0)) * shards
    e_link = per_cost(lambda c: c.energy.get("link", 0.0)) * shards
    e_total = per_cost(lambda c: c.energy_total) * shards
    if compact is not None:
        stream = compact.device or "device0"
        streams, devices = _repeated(stream, n), _repeated(where.get(stream, stream), n)
    else:
        streams = [d or "device0" for d in column("device")]
        names = {s: where.get(s, s) for s in set(streams)}
        devices = [names[s] for s in streams]
    bounds = [c.bound if c is not None else "" for c in uniq] or [""]
    return pd.DataFrame({
        "id": column("id", INDEX),
        "op": column("name"),
        "op_class": column("op_class"),
        "kind": column("kind"),
        "phase": column("phase"),
        "layer": column("layer", INDEX),
        "step": column("step", INDEX),
        "microbatch": column("microbatch", INDEX),
        "device": devices,
        "stream": streams,
        "shards": shards.astype(INDEX),
        "start_s": timeline.start,
        "end_s": timeline.end,
        "latency_s": timeline.end - timeline.start,
        "alone_s": per_cost(attrgetter("latency")),
        "roofline_s": per_cost(attrgetter("roofline")),
        "flops": column("flops", float),
        "bytes": column("bytes", float),
        "dram_bytes": per_cost(attrgetter("dram_bytes")) * shards,
        "bound": _text(bounds, idx) if n else [],
        "energy_J": e_total,
        "energy_compute_J": e_compute,
        "energy_memory_J": e_total - e_compute - e_link,
        "energy_link_J": e_link,
    }, columns=list(OP_COLUMNS), copy=False)   # no consolidation copy of a long run's columns


def _text(labels: list[str], codes: np.ndarray):
    """A text column: ``labels[codes[i]]`` per row, without a Python string per row (an Arrow
    take when pyarrow is installed; the same ``str`` column pandas builds from a list)."""
    try:
        import pyarrow as pa
    except ImportError:
        return np.array(labels, dtype=object)[codes]
    return pd.array(pa.array(labels, type=pa.large_string()).take(pa.array(codes)), dtype="str")


def _repeated(label: str, n: int):
    """``_text([label], zeros(n))`` built straight from Arrow buffers (no gather)."""
    try:
        import pyarrow as pa
    except ImportError:
        return _text([label], np.zeros(n, dtype=np.int64))
    data = label.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(data)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))
    return pd.array(arr, dtype="str")


def _compact_columns(arrays: CompactOps):
    """``column(attr, dtype)`` of a trace held as arrays (the op table's view of its ops)."""
    text = ("name", "op_class", "kind")
    per_op = {"id": lambda: np.arange(len(arrays), dtype=INDEX),
              "phase": lambda: _text(list(arrays.phases), arrays.phase),
              "layer": lambda: arrays.layer, "step": lambda: arrays.step,
              "microbatch": lambda: arrays.microbatch}

    def column(attr: str, dtype=None):
        attr = {"op": "name"}.get(attr, attr)
        if attr in text:
            return _text([getattr(k, attr) for k in arrays.kinds], arrays.kind)
        values = per_op[attr]() if attr in per_op else arrays.column(attr)
        return values.astype(dtype, copy=False) if dtype is not None else values

    return column
