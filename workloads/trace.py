"""The trace: a workload as ops in dependency order, each computing an Einsum or a cascade."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from workloads.einsum import Cascade, Einsum, dtype_bytes

Compute = Union[Einsum, Cascade]  # noqa: UP007  (a runtime alias; `|` needs 3.10 objects)

# Op kinds the device models dispatch on.
MATMUL = "matmul"        # a contraction (GEMM / batched GEMM / GEMV)
VECTOR = "vector"        # element-wise or reduction cascades (norms, softmax, activations)
ATTENTION = "attention"  # a fused attention cascade (FlashAttention-style)
COLLECTIVE = "collective"  # communication between devices (all-reduce ...)
MEMORY = "memory"        # pure data movement (embedding gather, KV copy)
KINDS = (MATMUL, VECTOR, ATTENTION, COLLECTIVE, MEMORY)


@dataclass(frozen=True)
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


@dataclass(slots=True)
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


@dataclass
class Trace:
    """Ops in dependency order plus what produced them."""

    ops: list[Op]
    model: object = None
    scenario: object = None
    meta: dict = field(default_factory=dict)

    @property
    def total_flops(self) -> float:
        return float(sum(op.flops for op in self.ops))

    @property
    def total_bytes(self) -> float:
        return float(sum(op.bytes for op in self.ops))

    def phase_ops(self, phase: str) -> list[Op]:
        return [op for op in self.ops if op.phase == phase]
