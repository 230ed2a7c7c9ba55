"""The result of a run: the per-op table, metrics, invariants and the inputs that produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sim.engine import Timeline
from workloads.trace import Trace

OP_COLUMNS = ("id", "op", "op_class", "kind", "phase", "layer", "step", "microbatch", "device",
              "stream", "shards", "start_s", "end_s", "latency_s", "alone_s", "roofline_s",
              "flops", "bytes", "dram_bytes", "bound", "energy_J", "energy_compute_J",
              "energy_memory_J", "energy_link_J")


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
    ops = trace.ops
    streams = [op.device or "device0" for op in ops]
    where = stream_device or {}
    costs = timeline.costs
    shards = np.array([max(op.shards, 1) for op in ops], dtype=float)
    e_compute = np.array([c.energy.get("compute", 0.0) for c in costs]) * shards
    e_link = np.array([c.energy.get("link", 0.0) for c in costs]) * shards
    e_total = np.array([c.energy_total for c in costs]) * shards
    return pd.DataFrame({
        "id": np.array([op.id for op in ops], dtype=np.int64),
        "op": [op.name for op in ops],
        "op_class": [op.op_class for op in ops],
        "kind": [op.kind for op in ops],
        "phase": [op.phase for op in ops],
        "layer": np.array([op.layer for op in ops], dtype=np.int64),
        "step": np.array([op.step for op in ops], dtype=np.int64),
        "microbatch": np.array([op.microbatch for op in ops], dtype=np.int64),
        "device": [where.get(s, s) for s in streams],
        "stream": streams,
        "shards": shards.astype(np.int64),
        "start_s": timeline.start,
        "end_s": timeline.end,
        "latency_s": timeline.end - timeline.start,
        "alone_s": np.array([c.latency for c in costs]),
        "roofline_s": np.array([c.roofline for c in costs]),
        "flops": np.array([op.flops for op in ops]),
        "bytes": np.array([op.bytes for op in ops]),
        "dram_bytes": np.array([c.dram_bytes for c in costs]) * shards,
        "bound": [c.bound for c in costs],
        "energy_J": e_total,
        "energy_compute_J": e_compute,
        "energy_memory_J": e_total - e_compute - e_link,
        "energy_link_J": e_link,
    }, columns=list(OP_COLUMNS))
