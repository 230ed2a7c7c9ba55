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

An all-reduce may also use NVLS (NVLink SHARP: the NVSwitch reduces) inside a node when the
stack enables it (Hopper), with NCCL's cost model (sim/gpu/nccl_tuning.py).

Inside a node NCCL picks the (algorithm, protocol) at full bandwidth, then runs a small call on
fewer of the node's channels (``NcclHw.channels``; enqueue.cc's channel tuning): the call's bus
bandwidth is the protocol's times the share of channels it gets
(:func:`nccl_tuning.channel_share`).

All-reduces across nodes follow NCCL: one flat ring over every rank (the steps that cross nodes
pay NCCL's network latency) or the tree (chain in the node, double binary tree between nodes),
at the node's network bandwidth (its NICs together, or the NVLink bandwidth if lower); NCCL's
tables (tuning.cc v2.18.3) give the tree and network latencies, LL caps and the tree's
medium-size correction. On two nodes the tree's graph runs at up to twice the ring's speed
(search.cc raises a 2-node tree's intra-node speed; the tree crosses the network once per
direction where the ring crosses it ``2 (p-1)/p`` times), capped per channel as in tuning.cc
(:func:`nccl_tuning.tree_graph_bw`; fast multi-NIC networks hit the cap and keep the ring's
speed). A network link's latency above NCCL's hwLat NET is NCCL's ``latencyInter``, paid per
network step (twice for Simple). Other collectives across nodes run as one ring on the network
link.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from sim.gpu import nccl_tuning as nt


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
    """A protocol's per-call cost (s), per-step cost (s), wire efficiency, bus-bandwidth cap
    (B/s, 0: none) and the bus bandwidth one channel moves alone (B/s, 0: NCCL's rating, an
    equal share of the full rate per channel)."""

    name: str
    base: float
    hop: float
    fraction: float
    max_bw: float = 0.0
    channel_rate: float = 0.0


SIMPLE_ONLY = (ProtocolHw("simple", 0.0, 0.0, 1.0),)


@dataclass(frozen=True)
class NcclHw:
    """What NCCL's tuning needs beyond the links: host CPU vendor (network overhead and LL
    caps), NVLS available (NVSwitch with SHARP, Hopper), NICs per node (0: one per GPU),
    collective channels in a node (0: no channel model); NVLS's per-call latency as NCCL rates
    it (s), and where its chunks are modelled, NVLS channels and the fixed cost of a chunk (s;
    0 channels: an NVLS call takes NCCL's rating) and the chunks that fill its pipeline."""

    cpu: str = "intel"
    nvls: bool = False
    nics_per_node: int = 0
    channels: int = 0
    nvls_latency: float = nt.BASE_LAT["nvls"][2] * nt.US
    nvls_channels: int = 0
    nvls_chunk_cost: float = 0.0
    nvls_fill_chunks: int = nt.NVLS_FILL_CHUNKS


DEFAULT_NCCL = NcclHw()


def _bus_bw(link: LinkHw, proto: ProtocolHw) -> float:
    bw = link.achievable * proto.fraction
    return min(bw, proto.max_bw) if proto.max_bw > 0 else bw


def _flat(kind: str, nbytes: float, p: int, link: LinkHw, protocols: tuple[ProtocolHw, ...],
          channels: int = 0) -> tuple[float, str, str, int]:
    """Best (time, algorithm, protocol, steps) of one collective among ``p`` ranks of one link
    (:func:`_flat_choice` without the time it was picked by)."""
    return _flat_choice(kind, nbytes, p, link, protocols, channels)[1]


def _flat_choice(kind: str, nbytes: float, p: int, link: LinkHw,
                 protocols: tuple[ProtocolHw, ...], channels: int = 0
                 ) -> tuple[float, tuple[float, str, str, int]]:
    """(time at full bandwidth, best (time, algorithm, protocol, steps)) of one collective
    among ``p`` ranks of one link: the ring (inside a node NCCL's tree is a chain with as many
    hops as the ring; all-reduces across nodes are :func:`_multinode_allreduce`'s).
    ``channels``: NCCL's channels in the node (0: none modelled); the call is picked at full
    bandwidth, as NCCL's tuning does, then runs on the channels NCCL's enqueue gives its size
    (:func:`nccl_tuning.channel_share`).
    """
    best: tuple[float, str, str, int] | None = None
    pick = float("inf")
    # NCCL's nBytes, which its channel tuning compares: the call's count x type size (a
    # reduce-scatter's count is the output per rank); p2p calls are not tuned that way
    counted = {"allreduce": nbytes, "allgather": nbytes, "reducescatter": nbytes / p}
    if kind not in counted:
        channels = 0
    for proto in protocols:
        bus = _bus_bw(link, proto)
        hop = proto.hop + link.latency
        cands: list[tuple[str, int, float]] = []
        if kind == "allreduce":
            cands.append(("ring", 2 * (p - 1), 2.0 * (p - 1) / p * nbytes))
        elif kind == "allgather":
            cands.append(("ring", p - 1, (p - 1) * nbytes))
        elif kind in ("reducescatter", "alltoall"):
            cands.append(("ring", p - 1, (p - 1) / p * nbytes))
        else:  # send / recv
            cands.append(("p2p", 1, nbytes))
        for algo, steps, wire in cands:
            t = proto.base + steps * hop + wire / bus
            if t < pick:
                run_bus = nt.channel_bus(algo, proto.name, counted.get(kind, nbytes), p,
                                         channels, bus, proto.channel_rate)
                pick, best = t, (proto.base + steps * hop + wire / run_bus, algo, proto.name,
                                 steps)
    assert best is not None
    return pick, best


def _nvls(kind: str, nbytes: float, p: int, link: LinkHw, nccl: NcclHw,
          best: tuple[float, str, str, int], pick: float | None = None
          ) -> tuple[float, str, str, int]:
    """NVLS all-reduce in one node when the stack has it and NCCL's rating of it beats
    ``best`` (compared with ``pick``, the time ``best`` was picked by at full bandwidth, when
    given: NCCL chooses by its model before it tunes the channels); it then runs in chunks
    where ``nccl`` models them (:func:`nccl_tuning.nvls_chunked_time`)."""
    if kind != "allreduce" or not nccl.nvls or p <= nt.NVLS_MIN_RANKS:
        return best
    t = nt.nvls_time(nbytes, link.achievable, latency=nccl.nvls_latency)
    if t >= (best[0] if pick is None else pick):
        return best
    if nccl.nvls_channels > 0:
        t = nt.nvls_chunked_time(nbytes, link.achievable, p, nccl.nvls_channels,
                                 nccl.nvls_chunk_cost, nccl.nvls_latency,
                                 nccl.nvls_fill_chunks)
    return (t, "nvls", "simple", 2)


def _multinode_allreduce(nbytes: float, p: int, nodes: int, intra: LinkHw, inter: LinkHw,
                         protocols: tuple[ProtocolHw, ...], nccl: NcclHw
                         ) -> tuple[float, str, str, int]:
    """NCCL's flat ring or tree all-reduce over ``nodes`` nodes; best (time, algo, proto, steps).

    The graph bandwidth is the lower of NVLink and the node's NICs together (NCCL's search
    caps each ring's speed by the network); LL and LL128 scale it as in tuning.cc.
    """
    ppn = p / nodes
    nics = nccl.nics_per_node or math.ceil(ppn)
    bw = min(intra.achievable, inter.achievable * nics)
    tree_bw = nt.tree_graph_bw(bw, intra.achievable, nodes, nics)
    net_lat = nt.latency_inter(inter.latency)
    best: tuple[float, str, str, int] | None = None
    for proto in protocols:
        # ring
        bus = bw * proto.fraction
        if proto.name == "ll":
            bus = min(bus, nt.ll_max_bw_multi(nodes, nccl.cpu))
        elif proto.name == "ll128" and ppn < 2:
            bus = bw * 0.7          # tuning.cc v2.18.3: LL128 rings with one GPU per node
        lat = nt.ring_latency(proto.name, p, nodes, proto.hop + intra.latency, proto.base,
                              nccl.cpu, net_lat)
        if proto.name == "simple" and nbytes / p >= 64 * 16:
            lat *= nt.RING_PLATEAU  # tuning.cc: plateau of Simple rings across nodes
        cands = [(lat + 2.0 * (p - 1) / p * nbytes / bus, "ring", 2 * (p - 1))]
        # tree (NCCL: bus bandwidth x 0.5 is the algorithm bandwidth); on two nodes the tree
        # graph runs up to twice the ring's speed (it crosses the network half as often)
        tbus = nt.tree_bus_bw(proto.name, tree_bw, nodes, nccl.cpu)
        alg = 0.5 * tbus * nt.tree_correction(proto.name, nbytes)
        steps = 2 * (int(ppn) - 1 + int(math.log2(nodes)))
        cands.append((nt.tree_latency(proto.name, p, nodes, net_lat) + nbytes / alg, "tree", steps))
        for t, algo, n_steps in cands:
            if best is None or t < best[0]:
                best = (t, algo, proto.name, n_steps)
    assert best is not None
    return best


@lru_cache(maxsize=16384)
def collective_time(kind: str, bytes_per_rank: float, group: int, intra: LinkHw,
                    protocols: tuple[ProtocolHw, ...], per_node: int,
                    inter: LinkHw | None = None, nccl: NcclHw = DEFAULT_NCCL) -> dict:
    """Seconds for one collective; ``bytes_per_rank`` is each rank's buffer (B)."""
    if group <= 1 or bytes_per_rank <= 0:
        return {"time": 0.0, "algorithm": "none", "protocol": "none", "steps": 0}
    protocols = protocols or SIMPLE_ONLY
    if group <= per_node or inter is None:
        pick, best = _flat_choice(kind, bytes_per_rank, group, intra, protocols,
                                  channels=nccl.channels)
        t, algo, proto, steps = _nvls(kind, bytes_per_rank, group, intra, nccl, best, pick)
        return {"time": t, "algorithm": algo, "protocol": proto, "steps": steps}
    nodes = math.ceil(group / per_node)
    if kind == "allreduce":
        t, algo, proto, steps = _multinode_allreduce(bytes_per_rank, group, nodes, intra, inter,
                                                     protocols, nccl)
        return {"time": t, "algorithm": algo, "protocol": proto, "steps": steps}
    t, algo, proto, steps = _flat(kind, bytes_per_rank, group, inter, protocols)
    return {"time": t, "algorithm": algo, "protocol": proto, "steps": steps}
