"""The result of a run: the per-op table, metrics, invariants and the inputs that produced it."""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.columns import Columns, Lazy, Text, first_occurrences, frame_of, in_first_order
from sim.engine import CostList, Timeline
from sim.fold_run import FoldedTable, FoldedTimeline
from workloads.trace import CompactOps, Trace

if TYPE_CHECKING:
    import pandas as pd

OP_COLUMNS = ("id", "op", "op_class", "kind", "phase", "layer", "step", "microbatch", "device",
              "stream", "shards", "start_s", "end_s", "latency_s", "alone_s", "roofline_s",
              "flops", "bytes", "dram_bytes", "bound", "energy_J", "energy_compute_J",
              "energy_memory_J", "energy_link_J")

#: dtype of the op table's integer columns (id, layer, step, microbatch, shards): exact for
#: every run (ids < 2**31) at half the memory of int64 (a 2,048-token 7B run: 17 MB less)
INDEX = np.int32


class Result:
    """Tables and metrics of one run. ``ops`` has one row per op (see :data:`OP_COLUMNS`);
    ``transfers`` one per tensor transfer (:mod:`sim.system.usage`), ``resources`` one per
    contended memory tier or link direction (bytes, busy time, utilisation).

    The tables may be given as :class:`sim.columns.Columns`: ``ops``, ``transfers`` and
    ``resources`` then build their pandas DataFrames on first access (pandas is imported
    there); :meth:`columns` reads them as numpy arrays without pandas."""

    def __init__(self, ops: Any, metrics: dict[str, float], invariants: dict[str, str],
                 inputs: dict[str, Any], energy_by_component: dict[str, float] | None = None,
                 device_info: dict[str, Any] | None = None, transfers: Any = None,
                 resources: Any = None, op_links: Mapping[int, tuple[str, ...]] | None = None):
        self._tables: dict[str, Any] = {"ops": ops, "transfers": transfers,
                                        "resources": resources}
        self.metrics = metrics
        self.invariants = invariants
        self.inputs = inputs
        self.energy_by_component = energy_by_component if energy_by_component is not None \
            else {}
        self.device_info = device_info if device_info is not None else {}
        self.op_links = op_links if op_links is not None else {}

    def _frame(self, name: str) -> pd.DataFrame:
        table = self._tables[name]
        if table is None:
            import pandas as pd

            table = self._tables[name] = pd.DataFrame()
        return frame_of(table.full() if isinstance(table, FoldedTable) else table)

    def columns(self, name: str) -> Any:
        """Table ``name`` (ops, transfers, resources) as given: a :class:`Columns` (numpy
        columns, no pandas) or a DataFrame; a folded run's op table is built here, on the
        first call (:meth:`folded_ops` reads its totals without building it)."""
        table = self._tables[name]
        if isinstance(table, FoldedTable):
            return table.full()
        return table if table is not None else self._frame(name)

    def folded_ops(self) -> FoldedTable | None:
        """The op table of a folded one-stream run (:mod:`sim.fold_run`: totals per phase
        and end times without the per-op rows), else None."""
        table = self._tables["ops"]
        return table if isinstance(table, FoldedTable) else None

    @property
    def ops(self) -> pd.DataFrame:
        return self._frame("ops")

    @ops.setter
    def ops(self, value: Any) -> None:
        self._tables["ops"] = value

    @property
    def transfers(self) -> pd.DataFrame:
        return self._frame("transfers")

    @transfers.setter
    def transfers(self, value: Any) -> None:
        self._tables["transfers"] = value

    @property
    def resources(self) -> pd.DataFrame:
        return self._frame("resources")

    @resources.setter
    def resources(self, value: Any) -> None:
        self._tables["resources"] = value

    def summary(self) -> dict[str, Any]:
        """Everything but the per-op table, JSON-serialisable."""
        return {"metrics": self.metrics, "energy_by_component_J": self.energy_by_component,
                "invariants": self.invariants, "inputs": self.inputs, "device": self.device_info}


def op_table(trace: Trace, timeline: Timeline,
             stream_device: dict[str, str] | None = None) -> pd.DataFrame:
    """Assemble the per-op table from the trace and the engine's timeline; ``stream_device``
    maps a stream to the device instance it runs on (default: the stream's own name)."""
    return op_columns(trace, timeline, stream_device).frame()


def run_columns(trace: Trace, timeline: Timeline,
                stream_device: dict[str, str] | None = None) -> Columns | FoldedTable:
    """:func:`op_columns`, but a folded one-stream run's table as a
    :class:`~sim.fold_run.FoldedTable` (its totals and end times per op kind, for the run's
    own metrics and checks; ``full()``: the columns)."""
    if isinstance(timeline, FoldedTimeline):
        compact, costs, where = trace.compact, timeline.costs, stream_device or {}
        fig = kind_figures(compact, costs)
        return FoldedTable(compact, timeline,
                           lambda: _kind_columns(compact, costs, timeline, where, fig), fig)
    return op_columns(trace, timeline, stream_device)


def op_columns(trace: Trace, timeline: Timeline,
               stream_device: dict[str, str] | None = None) -> Columns:
    """The per-op table of :func:`op_table` as numpy columns (its DataFrame built on demand)."""
    where = stream_device or {}
    compact = trace.compact if trace.is_compact else None
    n = len(trace)
    costs = timeline.costs
    if isinstance(timeline, FoldedTimeline):   # a folded one-stream run: its rows, now
        return _kind_columns(compact, costs, timeline, where)
    if compact is not None and isinstance(costs, CostList) and costs.index is compact.kind:
        return _kind_columns(compact, costs, timeline, where)   # (forms no Cost)
    if isinstance(costs, CostList):     # a run on arrays: one cost per distinct op
        uniq, idx = costs.table, costs.index
    else:
        # costs are shared by ops of one shape: derive each distinct cost's figures once
        uniq, idx = _distinct(costs, n)

    def per_cost(get) -> np.ndarray:
        values = [get(c) if c is not None else 0.0 for c in uniq]
        return np.array(values, dtype=float)[idx] if n else np.zeros(0)

    arrays = trace.arrays if compact is None else None
    if compact is not None:
        ops_column = _compact_columns(compact)
    elif arrays is not None:   # ops materialised from arrays: all but their streams from those
        ops_column = _listed_columns(arrays)
    else:
        ops = trace.ops

        def ops_column(attr: str, dtype=None):
            values = list(map(attrgetter(attr), ops))
            return np.array(values, dtype=dtype) if dtype is not None else Text.of(values)

    column = ops_column
    shards = np.maximum(column("shards", np.int64), 1).astype(float)
    held = compact if compact is not None else arrays   # devices paying each op's cost
    ranks = _per_kind_ranks(held.kinds)[held.kind] if held is not None else \
        np.array([cost_ranks(op.collective, op.shards) for op in trace.ops], dtype=float)
    e_compute = per_cost(lambda c: c.energy.get("compute", 0.0)) * ranks
    e_link = per_cost(lambda c: c.energy.get("link", 0.0)) * ranks
    e_total = per_cost(lambda c: c.energy_total) * ranks
    if compact is not None:
        streams, devices = (f() for f in _stream_columns(compact, where))
    else:   # the ops' streams as the schedule set them (a label per distinct stream)
        streams = _mapped(Text.of(list(map(attrgetter("device"), trace.ops))),
                          lambda d: d or "device0")
        devices = _mapped(streams, lambda s: where.get(s, s))
    bounds = [c.bound if c is not None else "" for c in uniq] or [""]
    return _op_columns(column, devices, streams, shards, timeline,
                       per_cost(attrgetter("latency")), per_cost(attrgetter("roofline")),
                       column("flops", float), column("bytes", float),
                       per_cost(attrgetter("dram_bytes")) * shards,
                       Text(bounds, np.asarray(idx), _text) if n else Text.of([]),
                       e_total, e_compute, e_link, n)


def _op_columns(column, devices, streams, shards, timeline: Timeline, alone, roofline, flops,
                nbytes, dram, bound, e_total, e_compute, e_link, n: int) -> Columns:
    """The op table from its per-row pieces (``column(name, dtype)`` reads the trace's own
    fields; times in s, energies in J)."""
    return Columns({
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
        "alone_s": alone,
        "roofline_s": roofline,
        "flops": flops,
        "bytes": nbytes,
        "dram_bytes": dram,
        "bound": bound,
        "energy_J": e_total,
        "energy_compute_J": e_compute,
        "energy_memory_J": e_total - e_compute - e_link,
        "energy_link_J": e_link,
    }, OP_COLUMNS, n, copy=False)   # no consolidation copy of a long run's columns


def _kind_columns(arrays: CompactOps, costs: CostList, timeline: Timeline,
                  where: dict[str, str], fig: dict[str, Any] | None = None) -> Columns:
    """:func:`op_columns` of a one-stream run on arrays, whose costs are indexed by the ops'
    kinds (``costs.index is arrays.kind``): every figure is formed once per kind (one pass
    over the cost table) and gathered per column when that column is first read
    (:class:`sim.columns.Lazy`: a run's metrics and checks never form ``alone_s``, the
    shards, text or index columns; the report forms what it writes). The per-op table's
    products are the same float operations on the same values, so equal bit for bit."""
    n, kinds = len(arrays), arrays.kinds
    kind = arrays.kind.astype(np.intp)   # gathers by native ints are ~2x faster than by int32
    fig = fig if fig is not None else kind_figures(arrays, costs)   # (a folded run's, kept)
    shards, bounds = fig["shards"], fig["bound"]

    def gather(values: np.ndarray) -> Lazy:
        # ``values[by]`` is what fn forms: sums and blocks need not form it (Columns.total)
        return Lazy(lambda: values[kind], by=arrays.kind, values=values)

    def text(attr: str) -> Lazy:
        return Lazy(lambda: Text([getattr(k, attr) for k in kinds], arrays.kind, _text),
                    by=arrays.kind)

    def index(values: np.ndarray) -> Lazy:
        return Lazy(lambda: values.astype(INDEX, copy=False))

    streams, devices = _stream_columns(arrays, where)
    return Columns({
        "id": Lazy(lambda: np.arange(n, dtype=INDEX), arange=True),
        "op": text("name"),
        "op_class": text("op_class"),
        "kind": text("kind"),
        "phase": Lazy(lambda: Text(list(arrays.phases), arrays.phase, _text)),
        "layer": index(arrays.layer),
        "step": index(arrays.step),
        "microbatch": index(arrays.microbatch),
        "device": Lazy(devices),
        "stream": Lazy(streams),
        "shards": gather(shards.astype(INDEX)),
        "start_s": timeline.start,
        "end_s": timeline.end,
        "latency_s": Lazy(lambda: timeline.end - timeline.start),
        **{name: gather(fig[name]) for name in KIND_FIGURES},
        "bound": Lazy(lambda: Text(bounds or [""], arrays.kind, _text) if n else Text.of([]),
                      by=arrays.kind),
    }, OP_COLUMNS, n, copy=False)


#: the op table's columns that are one figure per op kind (:func:`kind_figures`)
KIND_FIGURES = ("alone_s", "roofline_s", "flops", "bytes", "dram_bytes", "energy_J",
                "energy_compute_J", "energy_memory_J", "energy_link_J")


def kind_figures(arrays: CompactOps, costs: CostList) -> dict[str, Any]:
    """Per op kind of a run on arrays whose costs are indexed by kind: each of
    :data:`KIND_FIGURES` (s, FLOP, B, J; the op's figure, its DRAM bytes times its shards,
    its energies times the devices that pay them, :func:`cost_ranks`), ``shards`` (float)
    and ``bound`` (a label per cost table entry). Costs priced as columns are read without
    forming their Cost objects."""
    kinds = arrays.kinds
    lat, roof, dram, e_comp, e_link, e_all, bounds = costs.figures()

    def per_kind(values) -> np.ndarray:
        return np.array(values if len(values) else [0.0], dtype=float)

    def of_kind(attr: str) -> np.ndarray:
        return np.array([getattr(k, attr) for k in kinds] or [0])

    shards = np.maximum(of_kind("shards").astype(np.int64, copy=False), 1).astype(float)
    ranks = _per_kind_ranks(kinds) if kinds else shards
    e_compute, e_linked = per_kind(e_comp) * ranks, per_kind(e_link) * ranks
    e_total = per_kind(e_all) * ranks
    return {"alone_s": per_kind(lat), "roofline_s": per_kind(roof),
            "flops": of_kind("flops").astype(float, copy=False),
            "bytes": of_kind("bytes").astype(float, copy=False),
            "dram_bytes": per_kind(dram) * shards, "energy_J": e_total,
            "energy_compute_J": e_compute, "energy_memory_J": e_total - e_compute - e_linked,
            "energy_link_J": e_linked, "shards": shards, "bound": bounds}


def cost_ranks(collective, shards: int) -> int:
    """The devices that pay an op's energy (``Cost`` is one device's part): its shards, or a
    collective's ranks - its cost is one rank's part (the bytes that rank sends, its HBM
    traffic, its share of the reduction) while the op, its FLOPs and bytes, are the group's; a
    send's cost is its sender's. (The op table's DRAM bytes stay those its stream's memory
    carries: the op's shards times the cost's.)"""
    if collective is not None and collective.kind != "send" and collective.group > 1:
        return int(collective.group)
    return max(int(shards), 1)


def _per_kind_ranks(kinds) -> np.ndarray:
    """:func:`cost_ranks` per op kind (float)."""
    return np.array([cost_ranks(k.collective, k.shards) for k in kinds] or [1], dtype=float)


def _stream_columns(arrays: CompactOps, where: dict[str, str]):
    """(stream column, device column) of a trace held as arrays, each as a function forming
    its :class:`Text`: one label on every row when one stream runs every op, else the
    streams a plan placed the ops on (``arrays.stream``, labels in the order they first
    occur, as :meth:`Text.of` of the materialised ops' streams gives them)."""
    if arrays.stream is None:
        stream = arrays.device or "device0"
        device = where.get(stream, stream)
        n = len(arrays)
        return (lambda: Text([stream], _zero_codes(n), _repeated_column),
                lambda: Text([device], _zero_codes(n), _repeated_column))
    streams = _mapped(Text(list(arrays.stream_names), arrays.stream, _listed),
                      lambda d: d or "device0")
    return lambda: streams, lambda: _mapped(streams, lambda s: where.get(s, s))


def _zero_codes(n: int) -> np.ndarray:
    """Code 0 on each of ``n`` rows (one label on every row) as a read-only view of one int64
    (no memory per row: a run of one stream keeps its stream's codes)."""
    return np.broadcast_to(np.zeros(1, dtype=np.int64), (n,))


def _text(labels: list[str], codes: np.ndarray):
    """A text column: ``labels[codes[i]]`` per row, without a Python string per row (an Arrow
    take when pyarrow is installed; the same ``str`` column pandas builds from a list)."""
    try:
        import pyarrow as pa
    except ImportError:
        return np.array(labels, dtype=object)[codes]
    import pandas as pd

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
    import pandas as pd

    return pd.array(arr, dtype="str")


def _repeated_column(labels: list[str], codes: np.ndarray):
    """The DataFrame column of a :class:`Text` of one label on every row."""
    return _repeated(labels[0], len(codes))


def _compact_columns(arrays: CompactOps):
    """``column(attr, dtype)`` of a trace held as arrays (the op table's view of its ops)."""
    text = ("name", "op_class", "kind")
    per_op = {"id": lambda: np.arange(len(arrays), dtype=INDEX),
              "phase": lambda: Text(list(arrays.phases), arrays.phase, _text),
              "layer": lambda: arrays.layer, "step": lambda: arrays.step,
              "microbatch": lambda: arrays.microbatch}

    def column(attr: str, dtype=None):
        attr = {"op": "name"}.get(attr, attr)
        if attr in text:
            return Text([getattr(k, attr) for k in arrays.kinds], arrays.kind, _text)
        values = per_op[attr]() if attr in per_op else arrays.column(attr)
        return values.astype(dtype, copy=False) if dtype is not None else values

    return column


def _distinct(costs: list, n: int) -> tuple[list, np.ndarray]:
    """(each distinct cost object once, in the order first met; its position per op): costs
    are shared by ops of one shape, so their figures are derived once each."""
    ids = np.fromiter(map(id, costs), dtype=np.uintp, count=n)   # (the objects live)
    _, first, index = in_first_order(ids)        # distinct costs in the order first met
    return [costs[i] for i in first.tolist()], index


def _listed(labels: list[str], codes: np.ndarray) -> list[str]:
    """The list of str ``labels[codes[i]]`` (the DataFrame column :meth:`Text.of` gives)."""
    return np.array(labels, dtype=object)[codes].tolist()


def _mapped(text: Text, fn) -> Text:
    """``Text.of([fn(v) for v in values])`` of a :class:`Text` whose labels are distinct in
    the order they first occur (as :meth:`Text.of` gives them): ``fn`` once per label, the
    list per row built only for a DataFrame (:func:`_listed`)."""
    slots: dict[str, int] = {}
    lut = np.array([slots.setdefault(fn(label), len(slots)) for label in text.labels] or [0],
                   dtype=np.int64)
    if len(slots) == len(text.labels) and \
            np.array_equal(lut, np.arange(len(lut))):   # each label its own: the same codes
        return Text(list(slots), text.codes, _listed)
    return Text(list(slots), lut[text.codes], _listed)


def _first_seen(labels: list[str], codes: np.ndarray) -> Text:
    """``Text.of([labels[c] for c in codes])`` without a str per row: the distinct labels in
    the order they first occur among the rows (labels may repeat, codes index them)."""
    used, _ = first_occurrences(codes, len(labels))
    slots: dict[str, int] = {}
    lut = np.zeros(max(1, len(labels)), dtype=np.int64)
    for k in used.tolist():
        lut[k] = slots.setdefault(labels[k], len(slots))
    return Text(list(slots), lut[codes], _listed)


def _listed_columns(arrays: CompactOps):
    """``column(attr, dtype)`` of ops materialised from ``arrays`` (:attr:`Trace.arrays`):
    the columns the per-op reading gives (text as :meth:`Text.of` makes it, numbers as
    ``np.array`` of the fields), read from the arrays (op ``i`` has id ``i``)."""
    kinds = arrays.kinds
    derived = arrays.derived()   # per kind: (op_class, flops, bytes) as its ops hold them
    per_kind = {"name": lambda: [k.name for k in kinds], "kind": lambda: [k.kind for k in kinds],
                "op_class": lambda: [d[0] for d in derived],
                "flops": lambda: [d[1] for d in derived], "bytes": lambda: [d[2] for d in derived],
                "shards": lambda: [k.shards for k in kinds]}
    per_op = {"id": lambda: np.arange(len(arrays)), "layer": lambda: arrays.layer,
              "step": lambda: arrays.step, "microbatch": lambda: arrays.microbatch}

    def column(attr: str, dtype=None):
        if attr == "phase":
            return _first_seen(list(arrays.phases), arrays.phase)
        if attr in per_op:
            return np.array(per_op[attr](), dtype=dtype)
        values = per_kind[attr]()
        if dtype is None:   # text
            return _first_seen(values, arrays.kind)
        return np.array(values or [0], dtype=dtype)[arrays.kind]

    return column
