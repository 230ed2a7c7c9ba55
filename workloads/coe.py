"""Composition of Experts (CoE): a router model picks one expert model per batch of prompts.

Samba-CoE (Prabhakar et al., MICRO'24) serves many independent expert models (Llama-2-7B
fine-tunes) behind a router. The experts do not all fit the accelerators' HBM: the rest live in a
capacity tier (SN40L: the sockets' DDR; a DGX: host DRAM), and the expert a batch needs is copied
into HBM before it runs; HBM keeps as many experts as fit and evicts by a policy.

This module is the workload side: the routing stream (which expert each batch needs) and the
HBM expert cache (:class:`ExpertCache`, policies ``lru``, ``fifo``). Times come from the device
models (the reproduction ``xpusim reproduce sn40l`` composes them).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from workloads.errors import WorkloadError

POLICIES = ("lru", "fifo")


@dataclass(frozen=True)
class CoE:
    """``n_experts`` expert models of one shape plus a router; ``expert_bytes`` in B each."""

    n_experts: int
    expert_bytes: float
    router_bytes: float

    def __post_init__(self) -> None:
        if self.n_experts < 1:
            raise WorkloadError("", "--experts", f"expected at least 1 expert, got "
                                                 f"{self.n_experts}")
        if self.expert_bytes <= 0:
            raise WorkloadError("", "expert_bytes", "expected a positive size in bytes")

    def resident_experts(self, hbm_bytes: float, reserve_bytes: float = 0.0) -> int:
        """Experts HBM can hold beside the router and ``reserve_bytes`` (KV cache, buffers)."""
        room = hbm_bytes - self.router_bytes - reserve_bytes
        return max(0, min(self.n_experts, int(room // self.expert_bytes)))


def routing_stream(n_batches: int, n_experts: int, seed: int = 0,
                   zipf: float = 0.0) -> list[int]:
    """The expert each of ``n_batches`` batches is routed to: uniform (``zipf`` 0) or Zipf with
    exponent ``zipf`` over the experts; seeded numpy ``default_rng``."""
    if n_batches < 0 or n_experts < 1:
        raise WorkloadError("", "routing_stream", "expected n_batches >= 0 and n_experts >= 1")
    rng = np.random.default_rng(seed)
    if zipf <= 0:
        return rng.integers(0, n_experts, size=n_batches).tolist()
    w = 1.0 / np.arange(1, n_experts + 1) ** zipf
    return rng.choice(n_experts, size=n_batches, p=w / w.sum()).tolist()


class ExpertCache:
    """Experts resident in HBM: ``capacity`` slots, evicting by ``policy`` (``lru``: least
    recently used; ``fifo``: oldest loaded)."""

    def __init__(self, capacity: int, policy: str = "lru"):
        if policy not in POLICIES:
            raise WorkloadError("", "--eviction", f"expected one of {', '.join(POLICIES)}, "
                                                   f"got '{policy}'")
        self.capacity = capacity
        self.policy = policy
        self._slots: OrderedDict[int, None] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def request(self, expert: int) -> bool:
        """Use ``expert``; True on a hit, False when it had to be copied into HBM."""
        if expert in self._slots:
            self.hits += 1
            if self.policy == "lru":
                self._slots.move_to_end(expert)
            return True
        self.misses += 1
        if self.capacity <= 0:
            return False
        if len(self._slots) >= self.capacity:
            self._slots.popitem(last=False)
            self.evictions += 1
        self._slots[expert] = None
        return False

    @property
    def resident(self) -> list[int]:
        return list(self._slots)


def misses(stream: list[int], capacity: int, policy: str = "lru") -> list[bool]:
    """Per batch of ``stream``: True when its expert had to be copied into HBM."""
    cache = ExpertCache(capacity, policy)
    return [not cache.request(e) for e in stream]
