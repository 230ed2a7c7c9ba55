"""Collectives between GPUs: ring and tree algorithms under NCCL-style protocols.

A protocol (NCCL's LL, LL128, Simple) has a fixed cost per call (``base_latency``), a cost per
algorithm step (``hop_latency``, plus the link's own per-hop latency) and a wire efficiency
(``bandwidth_fraction`` of the link's achievable bandwidth; LL sends a flag with every 8 bytes,
LL128 one per 128). The library picks, per call, the fastest (algorithm, protocol):

* ring all-reduce: ``2 (p-1)`` steps, each rank sends ``2 (p-1)/p`` of the buffer;
* tree all-reduce between nodes (double binary tree): ``2 ceil(log2 p)`` steps, twice the
  buffer per rank (NCCL's tree model; inside a node NCCL's tree is a chain, no better than the
  ring);
* all-gather / reduce-scatter: ``p-1`` ring steps, ``(p-1)/p`` of the gathered buffer;
* all-to-all: ``p-1`` steps through the switch; send: one hop.

Groups larger than one node are hierarchical: reduce-scatter inside the node, all-reduce of the
shard between nodes (one NIC per GPU, the inter-node link), all-gather inside the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class LinkHw:
    """A link as collectives see it: per-direction bandwidth (B/s), efficiency, per-hop latency."""

    bandwidth: float
    efficiency: float
    latency: float

    @property
    def achievable(self) -> float:
        return self.bandwidth * self.efficiency


@dataclass(frozen=True)
class ProtocolHw:
    name: str
    base: float
    hop: float
    fraction: float
    max_bw: float = 0.0


SIMPLE_ONLY = (ProtocolHw("simple", 0.0, 0.0, 1.0),)


def _bus_bw(link: LinkHw, proto: ProtocolHw) -> float:
    bw = link.achievable * proto.fraction
    return min(bw, proto.max_bw) if proto.max_bw > 0 else bw


def _flat(kind: str, nbytes: float, p: int, link: LinkHw, protocols: tuple[ProtocolHw, ...],
          tree: bool = False) -> tuple[float, str, str, int]:
    """Best (time, algorithm, protocol, steps) of one collective among ``p`` ranks of one link.

    ``tree``: ranks are nodes, so a double binary tree is possible; inside a node NCCL's tree is
    a chain with as many hops as the ring, so only the ring is considered.
    """
    best: tuple[float, str, str, int] | None = None
    for proto in protocols:
        bus = _bus_bw(link, proto)
        hop = proto.hop + link.latency
        cands: list[tuple[str, int, float]] = []
        if kind == "allreduce":
            cands.append(("ring", 2 * (p - 1), 2.0 * (p - 1) / p * nbytes))
            if tree and p > 2:
                cands.append(("tree", 2 * math.ceil(math.log2(p)), 2.0 * nbytes))
        elif kind == "allgather":
            cands.append(("ring", p - 1, (p - 1) * nbytes))
        elif kind in ("reducescatter", "alltoall"):
            cands.append(("ring", p - 1, (p - 1) / p * nbytes))
        else:  # send / recv
            cands.append(("p2p", 1, nbytes))
        for algo, steps, wire in cands:
            t = proto.base + steps * hop + wire / bus
            if best is None or t < best[0]:
                best = (t, algo, proto.name, steps)
    assert best is not None
    return best


@lru_cache(maxsize=16384)
def collective_time(kind: str, bytes_per_rank: float, group: int, intra: LinkHw,
                    protocols: tuple[ProtocolHw, ...], per_node: int,
                    inter: LinkHw | None = None) -> dict:
    """Seconds for one collective; ``bytes_per_rank`` is each rank's buffer (B)."""
    if group <= 1 or bytes_per_rank <= 0:
        return {"time": 0.0, "algorithm": "none", "protocol": "none", "steps": 0}
    protocols = protocols or SIMPLE_ONLY
    if group <= per_node or inter is None:
        t, algo, proto, steps = _flat(kind, bytes_per_rank, group, intra, protocols)
        return {"time": t, "algorithm": algo, "protocol": proto, "steps": steps}
    local = per_node
    nodes = math.ceil(group / local)
    if kind == "allreduce":
        t1 = _flat("reducescatter", bytes_per_rank, local, intra, protocols)
        t2 = _flat("allreduce", bytes_per_rank / local, nodes, inter, protocols, tree=True)
        t3 = _flat("allgather", bytes_per_rank / local, local, intra, protocols)
        t = t1[0] + t2[0] + t3[0]
        return {"time": t, "algorithm": f"hierarchical({t2[1]})", "protocol": t2[2],
                "steps": t1[3] + t2[3] + t3[3]}
    t, algo, proto, steps = _flat(kind, bytes_per_rank, group, inter, protocols)
    return {"time": t, "algorithm": algo, "protocol": proto, "steps": steps}
