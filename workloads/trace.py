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


@dataclass(slots=True)
class Op:
    """One operation of the trace.

    ``compute`` is the per-shard Einsum or cascade; the op runs as ``shards`` identical pieces on
    as many devices (tensor parallelism), so its FLOPs and bytes are ``shards`` times the
    shard's. ``deps`` are ids of ops that must finish first. ``tokens`` is how many tokens the op
    processes (for reports); ``requests`` how many requests it serves.
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
    flops: float = field(init=False, default=0.0)
    bytes: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if self.compute is not None:
            self.flops = self.compute.flops * self.shards
            self.bytes = self.compute.min_bytes * self.shards
        elif self.collective is not None:
            c = self.collective
            self.flops = c.reduce_flops
            self.bytes = c.bytes_per_rank * c.group
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
