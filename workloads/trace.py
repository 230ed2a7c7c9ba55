"""The trace: a workload as ops in dependency order, each computing an Einsum or a cascade."""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:   # numpy is imported where arrays are built (start-up stays light)
    import numpy as np

from workloads.einsum import Cascade, Einsum, dtype_bytes
from workloads.records import record

Compute = Union[Einsum, Cascade]  # noqa: UP007  (a runtime alias; `|` needs 3.10 objects)

# Op kinds the device models dispatch on.
MATMUL = "matmul"        # a contraction (GEMM / batched GEMM / GEMV)
VECTOR = "vector"        # element-wise or reduction cascades (norms, softmax, activations)
ATTENTION = "attention"  # a fused attention cascade (FlashAttention-style)
COLLECTIVE = "collective"  # communication between devices (all-reduce ...)
MEMORY = "memory"        # pure data movement (embedding gather, KV copy)
KINDS = (MATMUL, VECTOR, ATTENTION, COLLECTIVE, MEMORY)

#: the rank over an MoE layer's experts of a GEMM batched over them (the tracer's ``ffn_up`` /
#: ``ffn_down`` of a uniformly routed layer, ``LayerBuilder._linear(experts=...)``)
EXPERT_RANK = "x"
#: the names the tracer gives one routed expert's GEMMs (``LayerBuilder._routed_experts``)
EXPERT_GEMM_NAME = "expert{e}_{part}"


def is_expert_gemm(op) -> bool:
    """True for an MoE expert's GEMM as the tracer names it: ``expert<e>_up`` / ``_down`` of a
    routed layer, or ``ffn_up`` / ``ffn_down`` batched over :data:`EXPERT_RANK` of a uniform
    one (the router's GEMM is a plain linear layer)."""
    name = op.name
    if name.startswith("expert"):
        return name.endswith(("_up", "_down"))
    sizes = getattr(op.compute, "sizes", ())
    return name in ("ffn_up", "ffn_down") and any(r == EXPERT_RANK for r, _ in sizes)


@record(frozen=True)
class Collective:
    """A collective among ``group`` devices: each contributes ``bytes_per_rank`` bytes."""

    kind: str  # allreduce | allgather | reducescatter | alltoall | send
    bytes_per_rank: float
    group: int
    dtype: str = "fp16"

    @property
    def reduce_flops(self) -> float:
        """Additions an all-reduce performs in total over the group."""
        if self.kind not in ("allreduce", "reducescatter"):
            return 0.0
        elements = self.bytes_per_rank / dtype_bytes(self.dtype)
        return elements * (self.group - 1)


def op_work(compute: Compute | None, collective: Collective | None,
            shards: int) -> tuple[float, float]:
    """(FLOPs, minimum bytes) of an op: ``shards`` times its compute, or its collective's."""
    if compute is not None:
        return compute.flops * shards, compute.min_bytes * shards
    if collective is not None:
        return collective.reduce_flops, collective.bytes_per_rank * collective.group
    return 0.0, 0.0


@record(slots=True)
class Op:
    """One operation of the trace.

    ``compute`` is the per-shard Einsum or cascade; the op runs as ``shards`` identical pieces on
    as many devices (tensor parallelism), so its FLOPs and bytes are ``shards`` times the
    shard's. ``deps`` are ids of ops that must finish first. ``tokens`` is how many tokens the op
    processes (for reports); ``requests`` how many requests it serves; ``microbatch`` which
    micro-batch (dependency chain) it belongs to; ``rank`` the one expert-parallel device that runs
    it (-1: each of the ``shards`` devices runs a piece). ``where`` names the system component
    that runs it when it is not the primary compute device (e.g. ``"cpu"`` for an offloaded
    optimizer step); ``tensors`` the placed tensor classes it streams from wherever the
    placement put them (e.g. ``("optimizer",)``), so its memory traffic loads those tiers.
    """

    id: int
    name: str
    kind: str
    phase: str
    layer: int
    step: int
    compute: Compute | None
    shards: int = 1
    deps: tuple[int, ...] = ()
    collective: Collective | None = None
    tokens: int = 0
    requests: int = 0
    device: str = ""
    op_class: str = ""
    flops: float = -1.0  # derived in __post_init__ unless a caller passes the derived value
    bytes: float = -1.0
    microbatch: int = 0
    rank: int = -1
    where: str = ""
    tensors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.flops < 0 or self.bytes < 0:
            self.flops, self.bytes = op_work(self.compute, self.collective, self.shards)
        if not self.op_class:
            self.op_class = self.name


#: :class:`Op`'s fields in order (``Op.__match_args__``), as :meth:`CompactOps.materialise`
#: stores them
_OP_FIELDS = ("id", "name", "kind", "phase", "layer", "step", "compute", "shards", "deps",
              "collective", "tokens", "requests", "device", "op_class", "flops", "bytes",
              "microbatch", "rank", "where", "tensors")


def op_share(op: Op, op_id: int, deps: tuple[int, ...], flops: float, nbytes: float,
             name: str | None = None) -> Op:
    """``dataclasses.replace(op, id=op_id, deps=deps, flops=flops, bytes=nbytes[,
    name=name])`` for ``flops``, ``nbytes`` >= 0 (nothing left for ``__post_init__`` to
    derive), its slots stored directly: ~1.5 instead of ~19 us an op (``replace`` reads every
    field and runs ``__init__``), as :meth:`CompactOps.materialise` makes ops."""
    if Op.__match_args__ != _OP_FIELDS or not (flops >= 0 and nbytes >= 0):
        return dataclasses.replace(op, id=op_id, deps=deps, flops=flops, bytes=nbytes,
                                   **({"name": name} if name is not None else {}))
    new = Op.__new__(Op)
    new.id = op_id
    new.name = op.name if name is None else name
    new.kind = op.kind
    new.phase = op.phase
    new.layer = op.layer
    new.step = op.step
    new.compute = op.compute
    new.shards = op.shards
    new.deps = deps
    new.collective = op.collective
    new.tokens = op.tokens
    new.requests = op.requests
    new.device = op.device
    new.op_class = op.op_class
    new.flops = flops
    new.bytes = nbytes
    new.microbatch = op.microbatch
    new.rank = op.rank
    new.where = op.where
    new.tensors = op.tensors
    return new


@record(frozen=True)
class OpKind:
    """What every op stamped from one template shares (see :class:`CompactOps`)."""

    name: str
    kind: str
    op_class: str
    compute: Compute | None
    collective: Collective | None
    rank: int
    shards: int
    flops: float
    bytes: float

    @classmethod
    def of(cls, name: str, kind: str, op_class: str, compute: Compute | None,
           collective: Collective | None, rank: int, shards: int, flops: float,
           nbytes: float) -> OpKind:
        """``OpKind(...)`` (equal field by field) without the frozen dataclass's per-field
        ``object.__setattr__``: decode steps make one per changed template and step."""
        out = object.__new__(cls)
        out.__dict__.update(name=name, kind=kind, op_class=op_class, compute=compute,
                            collective=collective, rank=rank, shards=shards, flops=flops,
                            bytes=nbytes)
        return out

    @classmethod
    def many(cls, name: str, kind: str, op_class: str, computes: list[Compute | None],
             collective: Collective | None, rank: int, shards: int, flops: list[float],
             nbytes: list[float]) -> list[OpKind]:
        """``[OpKind.of(name, ..., computes[i], ..., flops[i], nbytes[i]) ...]`` in one pass
        (a long decode run makes one per changed template and step)."""
        from workloads.einsum import _clones

        return _clones(cls, {"name": name, "kind": kind, "op_class": op_class, "compute": None,
                             "collective": collective, "rank": rank, "shards": shards,
                             "flops": 0.0, "bytes": 0.0},
                       "compute", computes, ("flops", flops), ("bytes", nbytes))


@record
class CompactOps:
    """The ops of a trace as arrays, one entry per op (id = position), without an object per op.

    ``kinds[kind[i]]`` holds what op ``i`` computes; ``phases[phase[i]]`` its phase; the ids
    op ``i`` depends on are ``dep_idx[dep_ptr[i]:dep_ptr[i + 1]]``. Decode steps are stamped
    from the first steps' arrays (:func:`workloads.tracer.trace_model` with ``compact=True``),
    so a long run costs arrays, not objects. :meth:`materialise` gives the :class:`Op` list
    (what ``Trace.ops`` returns on first use)."""

    kinds: list[OpKind]
    kind: np.ndarray
    phases: tuple[str, ...]
    phase: np.ndarray
    layer: np.ndarray
    step: np.ndarray
    tokens: np.ndarray
    requests: np.ndarray
    microbatch: np.ndarray
    dep_ptr: np.ndarray
    dep_idx: np.ndarray
    device: str = ""   # the stream every op runs on, once a plan has placed them all on one
    #: once a plan has placed the ops on several streams: op ``i`` runs on
    #: ``stream_names[stream[i]]`` (names in the order their first op occurs)
    stream: np.ndarray | None = None
    stream_names: tuple[str, ...] = ()
    #: ops that run on another component (``Op.where``, e.g. decode attention on the host
    #: CPU): (per op whether it is one, that component, the tensor classes they stream,
    #: ``Op.tensors``); None: every op runs on the device
    hosted: tuple[np.ndarray, str, tuple[str, ...]] | None = None

    def stream_of(self, i: int) -> str:
        """The stream op ``i`` runs on (``device`` unless the ops are on several)."""
        return self.stream_names[int(self.stream[i])] if self.stream is not None else \
            self.device

    def __len__(self) -> int:
        return len(self.kind)

    def column(self, attr: str) -> np.ndarray:
        """A per-op array of an :class:`OpKind` attribute (object dtype for text)."""
        import numpy as np

        values = [getattr(k, attr) for k in self.kinds]
        arr = np.array(values, dtype=object if isinstance(values[0], str) else None) \
            if values else np.zeros(0)
        return arr[self.kind]

    def materialise(self) -> list[Op]:
        """One :class:`Op` per entry, equal field by field to what the per-op tracer makes.

        Each op's slots are stored directly (no ``__init__`` / ``__post_init__`` call per op:
        ~40% less CPU); what ``__post_init__`` would derive is derived once per kind. When
        :class:`Op`'s fields are not the ones this knows, the ops are made by ``Op(...)``."""
        if Op.__match_args__ != _OP_FIELDS:
            return self._constructed()
        kinds, phases, device = self.kinds, self.phases, self.device
        names = self.stream_names
        streams = self.stream.tolist() if self.stream is not None else None
        per_kind = [(t.name, t.kind, t.compute, t.shards, t.collective, t.rank, *d)
                    for t, d in zip(kinds, self.derived(), strict=True)]
        ptr, idx = self.dep_ptr.tolist(), self.dep_idx.tolist()
        ones = list(zip(idx))   # each dep as a 1-tuple: the deps of an op with one (most)
        new = Op.__new__
        out: list[Op] = []
        append = out.append
        for i, k, ph, layer, step, tokens, requests, mb, a, b in zip(
                range(len(self.kind)), self.kind.tolist(), self.phase.tolist(),
                self.layer.tolist(), self.step.tolist(), self.tokens.tolist(),
                self.requests.tolist(), self.microbatch.tolist(), ptr[:-1], ptr[1:],
                strict=True):
            name, kind, compute, shards, collective, rank, op_class, flops, nbytes = per_kind[k]
            op = new(Op)
            op.id = i
            op.name = name
            op.kind = kind
            op.phase = phases[ph]
            op.layer = layer
            op.step = step
            op.compute = compute
            op.shards = shards
            op.deps = ones[a] if b - a == 1 else tuple(idx[a:b])
            op.collective = collective
            op.tokens = tokens
            op.requests = requests
            op.device = device if streams is None else names[streams[i]]
            op.op_class = op_class
            op.flops = flops
            op.bytes = nbytes
            op.microbatch = mb
            op.rank = rank
            op.where = ""
            op.tensors = ()
            append(op)
        self._mark_hosted(out)
        return out

    def _mark_hosted(self, ops: list[Op], ids: list[int] | None = None) -> None:
        """Set ``where`` and ``tensors`` of the hosted ones of ``ops``: all the ops, or op
        ``ids[j]`` as ``ops[j]``."""
        if self.hosted is None:
            return
        import numpy as np

        mask, where, tensors = self.hosted
        at = np.flatnonzero(mask if ids is None else mask[ids]).tolist()
        for j in at:
            ops[j].where, ops[j].tensors = where, tensors

    def derived(self) -> list[tuple[str, float, float]]:
        """Per kind: the (op_class, flops, bytes) its ops hold, as ``Op.__post_init__``
        sets them (figures derived when a kind's are negative, op_class its name if empty)."""
        out = []
        for t in self.kinds:
            flops, nbytes = (t.flops, t.bytes) if t.flops >= 0 and t.bytes >= 0 else \
                op_work(t.compute, t.collective, t.shards)
            out.append((t.op_class or t.name, flops, nbytes))
        return out

    def _constructed(self) -> list[Op]:
        """:meth:`materialise` by calling ``Op(...)`` per entry (the reference form)."""
        kinds, phases = self.kinds, self.phases
        ptr, idx = self.dep_ptr.tolist(), self.dep_idx.tolist()
        out: list[Op] = []
        append = out.append
        for i, (k, ph, layer, step, tokens, requests, mb) in enumerate(zip(
                self.kind.tolist(), self.phase.tolist(), self.layer.tolist(),
                self.step.tolist(), self.tokens.tolist(), self.requests.tolist(),
                self.microbatch.tolist(), strict=True)):
            t = kinds[k]
            append(Op(i, t.name, t.kind, phases[ph], layer, step, t.compute, t.shards,
                      tuple(idx[ptr[i]:ptr[i + 1]]), t.collective, tokens, requests,
                      self.stream_of(i), t.op_class, t.flops, t.bytes, mb, t.rank))
        self._mark_hosted(out)
        return out


def ops_at(arrays: CompactOps, at: np.ndarray, stream: str) -> list[Op]:
    """The ops with ids ``at`` (int array) of a trace held as arrays (what ``trace.ops[i]``
    would be, on ``stream``), their per-op fields gathered from the arrays at once."""
    import numpy as np

    from workloads.ragged import slice_indices

    kinds, phases, ptr, idx = arrays.kinds, arrays.phases, arrays.dep_ptr, arrays.dep_idx
    # every op's deps gathered at once: op j's are flat[lo[j]:hi[j]]
    first, count = ptr[at].astype(np.int64), (ptr[at + 1] - ptr[at]).astype(np.int64)
    hi = np.cumsum(count)
    lo = hi - count
    flat = idx[slice_indices(first, count)]
    flat = flat.tolist()
    out = []
    for i, k, ph, layer, step, tokens, requests, mb, a, b in zip(
            at.tolist(), arrays.kind[at].tolist(), arrays.phase[at].tolist(),
            arrays.layer[at].tolist(), arrays.step[at].tolist(), arrays.tokens[at].tolist(),
            arrays.requests[at].tolist(), arrays.microbatch[at].tolist(), lo.tolist(),
            hi.tolist(), strict=True):
        t = kinds[k]
        out.append(Op(i, t.name, t.kind, phases[ph], layer, step, t.compute, t.shards,
                      tuple(flat[a:b]), t.collective, tokens, requests, stream,
                      t.op_class, t.flops, t.bytes, mb, t.rank))
    if getattr(arrays, "hosted", None) is not None:
        arrays._mark_hosted(out, at.tolist())
    return out


class Trace:
    """Ops in dependency order plus what produced them.

    Built from a list of :class:`Op` or from :class:`CompactOps` (``compact``); in the latter
    case ``ops`` is materialised on first use, and code that can work on arrays (the engine's
    one-stream path, the op table, the invariants) reads ``compact`` instead."""

    def __init__(self, ops: list[Op] | None = None, model: object = None,
                 scenario: object = None, meta: dict | None = None,
                 compact: CompactOps | None = None):
        self._ops = ops
        self.model = model
        self.scenario = scenario
        self.meta = meta if meta is not None else {}
        self.compact = compact

    @property
    def ops(self) -> list[Op]:
        if self._ops is None:
            self._ops = self.compact.materialise() if self.compact is not None else []
        return self._ops

    @ops.setter
    def ops(self, value: list[Op]) -> None:
        self._ops = value
        self.compact = None

    @property
    def arrays(self) -> CompactOps | None:
        """The arrays the ops are held as, or were materialised from while ``ops`` is still
        the list they gave (as many ops; the ``ops`` setter drops the arrays). Materialised
        ops keep every field the arrays hold: runs reassign only ``device`` (the stream,
        ``sim.system.schedule``), ``where`` and ``tensors`` (hosted ops) in place, so the op
        table reads its other columns from here (tests/test_speed_streams.py)."""
        arrays = self.compact
        if arrays is not None and self._ops is not None and len(self._ops) != len(arrays):
            return None
        return arrays

    @property
    def is_compact(self) -> bool:
        """True while the ops exist only as arrays (nothing has asked for ``ops`` yet)."""
        return self._ops is None and self.compact is not None

    def __len__(self) -> int:
        return len(self.compact) if self.is_compact else len(self.ops)

    @property
    def total_flops(self) -> float:
        return self._total("flops")

    @property
    def total_bytes(self) -> float:
        return self._total("bytes")

    def _total(self, attr: str) -> float:
        """The ops' ``flops`` or ``bytes`` summed in op order. Ops materialised from arrays
        are summed from the arrays when that makes the float additions Python's ``sum`` over
        the ops makes (:func:`_sums_as_python`; ``sum`` up to Python 3.11, 3.12's compensates
        rounding); else over the ops. (The totals feed the conservation checks only.)"""
        if self.is_compact:
            return _ordered_sum(self.compact.column(attr))
        arrays = self.arrays
        if arrays is not None and _sums_as_python(arrays, attr):
            return _ordered_sum(arrays.column(attr))
        return float(sum(getattr(op, attr) for op in self.ops))

    def phase_ops(self, phase: str) -> list[Op]:
        return [op for op in self.ops if op.phase == phase]


def _sums_as_python(arrays: CompactOps, attr: str) -> bool:
    """Whether :func:`_ordered_sum` of ``arrays.column(attr)`` is Python's ``sum`` of the
    materialised ops' ``attr``, bit for bit: each kind holds its op's value (both figures
    >= 0, so ``Op.__post_init__`` derives none), a float or an int below 2**53 (converted
    to float exactly, as ``sum`` adds it to a float), and the first op's is a float (``sum``
    then adds in floats from the start, not ints exactly)."""
    if not len(arrays) or sys.version_info >= (3, 12):   # 3.12's sum compensates rounding
        return False
    for k in arrays.kinds:
        v = getattr(k, attr)
        if not (k.flops >= 0 and k.bytes >= 0 and
                (type(v) is float or (type(v) is int and v <= 2 ** 53))):
            return False
    return type(getattr(arrays.kinds[int(arrays.kind[0])], attr)) is float


def _ordered_sum(values: np.ndarray) -> float:
    """``sum(values)`` added left to right as Python's ``sum`` does (``accumulate`` is
    sequential, unlike numpy's pairwise ``sum``), so the total is the same float."""
    import numpy as np

    return float(np.add.accumulate(values.astype(float, copy=False))[-1]) if len(values) \
        else 0.0
