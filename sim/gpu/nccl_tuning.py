"""NCCL's own cost model of all-reduce (src/graph/tuning.cc of NVIDIA/nccl, tag v2.18.3-1).

NCCL picks an (algorithm, protocol) per call by minimising ``lat + bytes / algBw`` with the
constants below; xpusim uses the same tables for the algorithms its ring model lacks: the
tree across nodes, NVLS (NVLink SHARP, Hopper NVSwitch) inside a node, and the per-step
network latencies of rings that cross nodes. Times in seconds, bandwidths in B/s. Every table
is copied from tuning.cc v2.18.3-1 (the NCCL of PyTorch 2.1, the era of the Vidur profiles);
values that changed by v2.30.7 are noted.
"""

from __future__ import annotations

import math

US = 1e-6
GBS = 1e9
PROTOS = ("ll", "ll128", "simple")

# tuning.cc v2.18.3-1 baseLat[algo][proto] (us); NVLS: 23 us (v2.30.7: 0 base + 25 hwLat)
BASE_LAT = {"tree": (6.8, 14.0, 0.0), "ring": (6.6, 14.0, 8.4), "nvls": (0.0, 0.0, 23.0)}
# tuning.cc v2.18.3-1 hwLat[hw][algo][proto] (us) per step: NVLink, network
HW_LAT = {
    "nvlink": {"tree": (0.6, 1.25, 4.0), "ring": (0.6, 1.9, 3.4), "nvls": (0.0, 0.0, 0.0)},
    "net": {"tree": (5.0, 8.5, 14.0), "ring": (2.7, 4.0, 14.0), "nvls": (0.0, 0.0, 18.0)},
}
# tuning.cc v2.18.3-1 llMaxBws (GB/s): one node by GPU, 2 / >2 nodes by CPU vendor
LL_MAX_BW_MULTI = {"intel": (39.0, 20.4), "amd": (22.5, 19.0)}
# tuning.cc v2.18.3-1 getNetOverhead: host cost per network step (us), x3 for Simple
NET_OVERHEAD = {"intel": 1.0, "amd": 2.0}
# tuning.cc v2.18.3-1 treeCorrectionFactor[proto][log2(bytes/64)]: trees miss the model at
# medium sizes, NCCL scales their bandwidth by these (powers of two, 64 B to 256 MB)
TREE_CORRECTION = {
    "ll": (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0,
           1.0, 1.0, 1.0),
    "ll128": (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9,
              .9, .9, 1.0, 1.0),
    "simple": (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7,
               .8, .9, .9),
}
RING_PLATEAU = 1.4      # tuning.cc v2.18.3-1: Simple ring latency x1.4 across nodes (sm80+)
# tuning.cc v2.18.3-1 perChMaxTreeBws (GB/s) on 2 nodes (N2), by GPU generation: the tree's bus
# bandwidth per channel is capped at this
PER_CH_MAX_TREE_BW_N2 = {"volta": 18.5, "ampere": 23.6, "hopper": 41.4}
# search.cc v2.18.3-1 speedArrayInter (GB/s per channel; sm80 and older). Hopper searches
# sm90SpeedArrayInter and caps at 41.4; tree_graph_bw is called with the A100 values (``gen``
# is not wired to the presets: no Hopper two-node data to check it)
SPEED_ARRAY_INTER = (48.0, 30.0, 28.0, 24.0, 20.0, 18.0, 15.0, 12.0, 10.0, 9.0, 7.0, 6.0, 5.0,
                     4.0, 3.0, 2.4, 1.2, 0.24, 0.12)
NVLS_RATIO = 5.0 / 6.0  # tuning.cc v2.18.3-1: NVLS bus to algorithm bandwidth
# nvls.cc of recent NCCL releases (ncclNvlsInit: "gpuCount <= 2" returns before NVLS is set up;
# 2.17-2.18's ncclNvlsSetup needed only two local ranks): two GPUs reduce by ring
NVLS_MIN_RANKS = 2
# comm.h v2.18.3-1 NCCL_{LL,LL128,SIMPLE}_THREAD_THRESHOLD: bytes of a call per thread before
# enqueue.cc gives it more threads and channels (tuning.cc: x nRanks for ring LL)
THREAD_THRESHOLD = {"ll": 8, "ll128": 8, "simple": 64}
# devcomm.h v2.18.3-1 NCCL_{LL,LL128,SIMPLE}_MAX_NTHREADS: threads of a channel's CTA
MAX_THREADS = {"ll": 512, "ll128": 640, "simple": 512}


def _i(proto: str) -> int:
    return PROTOS.index(proto) if proto in PROTOS else 2


def tree_correction(proto: str, nbytes: float) -> float:
    """NCCL's medium-size correction of the tree bandwidth (1 outside its table)."""
    log = int(math.log2(max(nbytes, 1) / 64)) if nbytes >= 64 else -1
    table = TREE_CORRECTION.get(proto, TREE_CORRECTION["simple"])
    return table[log] if 0 <= log < len(table) else 1.0


def ring_inter_steps(nodes: int) -> int:
    """Network steps of a ring all-reduce over ``nodes`` nodes: ``2 (nNodes - 1)``.

    tuning.cc v2.18.3-1 counts ``2 nNodes``, which exceeds the ring's ``2 (p - 1)`` steps at
    one GPU per node (2 ranks on 2 nodes: 4 network steps of 2, i.e. -2 in-node steps); NCCL
    v2.23.4-1 counts ``2 (nNodes - 1)`` (the ring enters each node but the first once per
    reduce-scatter and once per all-gather), never more than the ring's steps.
    """
    return 2 * (nodes - 1) if nodes > 1 else 0


def ring_latency(proto: str, p: int, nodes: int, intra_step: float, base: float,
                 cpu: str = "intel", net_latency: float = 0.0) -> float:
    """Seconds of fixed cost of a ring all-reduce over ``nodes`` nodes (``p`` ranks).

    ``intra_step``: seconds per NVLink step (the preset's hop plus link latency); steps that
    cross nodes cost NCCL's network hwLat plus ``net_latency`` (the network link's own latency,
    NCCL's ``latencyInter``), the others at least the host's network overhead.
    """
    steps = 2 * (p - 1)
    if nodes <= 1:
        return base + steps * intra_step
    inter_steps = ring_inter_steps(nodes)
    over = NET_OVERHEAD.get(cpu, 1.0) * (3 if proto == "simple" else 1) * US
    ppn = p / nodes
    # tuning.cc v2.23.4-1: "with ppn=1 latencies are fully exposed, use the Tree network latency"
    net = HW_LAT["net"]["tree" if ppn == 1 else "ring"][_i(proto)] * US + _inter(proto, net_latency)
    return base + (steps - inter_steps) * max(intra_step, over) + inter_steps * net


# the network's per-step latency above NVLink's that NCCL's hwLat NET table already holds (ring
# LL 2.7 us vs NVLink 0.6 us): presets give a network link this latency when it adds nothing
NET_HWLAT_EXTRA = 2.1 * US


def latency_inter(link_latency: float) -> float:
    """NCCL's ``latencyInter`` (s): the part of a network link's per-step latency above NVLink's
    (``link_latency``, the preset's link latency) that the hwLat NET table does not hold."""
    return max(0.0, link_latency - NET_HWLAT_EXTRA)


def _inter(proto: str, net_latency: float) -> float:
    """tuning.cc: a network step adds the graph's network latency (``latencyInter``, the NIC's
    own latency; s), twice for Simple (the flush)."""
    return net_latency * (2 if proto == "simple" else 1)


def tree_latency(proto: str, p: int, nodes: int, net_latency: float = 0.0) -> float:
    """Seconds of fixed cost of NCCL's tree all-reduce (chain in the node, tree between);
    ``net_latency``: the network's own latency per step (s), as in :func:`ring_latency`."""
    i = _i(proto)
    intra = HW_LAT["nvlink"]["tree"][i] * US
    net = HW_LAT["net"]["tree"][i] * US + _inter(proto, net_latency)
    log_nodes = int(math.log2(nodes)) if nodes > 1 else 0
    return BASE_LAT["tree"][i] * US + 2 * ((p // nodes - 1) * intra + log_nodes * net)


def tree_bus_bw(proto: str, bw: float, nodes: int, cpu: str = "intel") -> float:
    """NCCL's tree bus bandwidth (B/s) from the graph bandwidth ``bw`` (B/s)."""
    bus = bw * 0.92
    if proto == "ll":
        cap = LL_MAX_BW_MULTI.get(cpu, LL_MAX_BW_MULTI["intel"])[0 if nodes <= 2 else 1] * GBS
        bus = min(bus / 3.8, cap)
    elif proto == "ll128":
        bus *= 7.0 / 9.0 if nodes == 1 else 120.0 / 128.0
    return bus


def ll_max_bw_multi(nodes: int, cpu: str = "intel") -> float:
    """NCCL's LL bus-bandwidth cap (B/s) for rings across ``nodes`` > 1 nodes."""
    return LL_MAX_BW_MULTI.get(cpu, LL_MAX_BW_MULTI["intel"])[0 if nodes <= 2 else 1] * GBS


def nvls_time(nbytes: float, bus_bw: float, nodes: int = 1,
              latency: float = BASE_LAT["nvls"][2] * US) -> float:
    """Seconds of an NVLS (NVSwitch SHARP) all-reduce in one node as NCCL's tuning rates it:
    ``latency`` (s; v2.18.3-1's 23 us by default) + bytes / algBw."""
    lat = latency + (HW_LAT["net"]["nvls"][2] * US if nodes > 1 else 0.0)
    return lat + nbytes / (bus_bw * NVLS_RATIO)


# enqueue.cc of NCCL 2.2x releases (NVLS branch of the chunk-size choice): an NVLS call's chunk,
# from the 128 KB default (NCCL_NVLS_CHUNKSIZE), shrinks to 64, 32 and 16 KB while the call's
# bytes are under 64, 8 and 2 times (concurrent ops x chunk; an earlier release shrinks to 64 KB
# under 32 times); concurrent ops = channels x NVLS heads (one head per GPU in a node)
NVLS_CHUNK = 128 * 1024
NVLS_CHUNK_STEPS = ((64, 65536), (8, 32768), (2, 16384))


def nvls_chunk(nbytes: float, concurrent: int, chunk: int = NVLS_CHUNK) -> int:
    """Bytes of the chunk NCCL's enqueue gives an NVLS call of ``nbytes`` with ``concurrent``
    (channels x heads) chunks in flight (:data:`NVLS_CHUNK_STEPS`)."""
    for times, smaller in NVLS_CHUNK_STEPS:
        if nbytes < times * concurrent * chunk and chunk > smaller:
            chunk = smaller
    return chunk


#: chunks beyond a lane's share that an NVLS call takes to fill its pipeline. FITTED with
#: software.collective_nvls_chunk_cost on the train rows of h100-allreduce-nccltests (the fit in
#: xpusim/validation/h100_allreduce_nccltests.py tries 0-3, the chunk cost refitted for each:
#: train MAPE 6.0%, 5.0%, 7.2%, 8.9%)
NVLS_FILL_CHUNKS = 1


def nvls_chunked_time(nbytes: float, bus_bw: float, ranks: int, channels: int,
                      chunk_cost: float, latency: float, fill: int = NVLS_FILL_CHUNKS) -> float:
    """Seconds of a one-node NVLS all-reduce run in chunks: each of ``channels`` x ``ranks``
    (NVLS heads) lanes takes its share of the call a chunk (:func:`nvls_chunk`) at a time, each
    chunk ``chunk_cost`` (s) plus its bytes at the lane's share of the algorithm bandwidth
    (``bus_bw`` x NVLS_RATIO), and ``fill`` more (:data:`NVLS_FILL_CHUNKS`) fill the
    pipeline; plus ``latency`` (s).
    At large calls this tends to NCCL's ``latency + bytes / algBw``; at small ones the 16-32 KB
    chunks' fixed cost dominates."""
    lanes = channels * ranks
    chunk = nvls_chunk(nbytes, lanes)
    lane_bw = bus_bw * NVLS_RATIO / lanes
    return latency + (nbytes / (lanes * chunk) + fill) * (chunk_cost + chunk / lane_bw)


def tree_graph_bw(bw: float, intra_bw: float, nodes: int, channels: int,
                  gen: str = "ampere") -> float:
    """NCCL's tree graph bandwidth (B/s) in its tuning of a job of ``nodes`` nodes whose ring
    graph runs at ``bw`` (B/s, ``channels`` channels over the network; ``intra_bw``: NVLink).

    On two nodes tuning.cc rates every algorithm by the graph's intra-node speed (``bwIntra``),
    and search.cc (pass 2, "increase bwIntra for trees (2 nodes or collnet)") raises a tree's
    intra-node speed up to twice its network speed: a 2-node tree moves the buffer once per
    direction over the network, the ring ``2 (p-1)/p`` times. The per-channel speed steps
    through search.cc's speedArrayInter from the ring's one; tuning.cc then caps the tree's bus
    bandwidth at ``perChMaxTreeBw`` per channel (its 0.92 comes in :func:`tree_bus_bw`,
    so the cap is divided by 0.92); the raise never lowers the tree below ``bw``. Fast
    networks (e.g. one 200 Gb/s NIC per channel) hit the cap: the tree stays at ``bw``. More
    than two nodes: the network speed, ``bw``.
    """
    if nodes != 2 or channels < 1:
        return bw
    per_ch = bw / channels / GBS
    speeds = [s for s in SPEED_ARRAY_INTER if s <= per_ch + 1e-9]
    ring_speed = speeds[0] if speeds else per_ch
    # search.cc steps bwIntra up while it is below 2x bwInter: the first speed >= 2x (or the top)
    higher = [s for s in SPEED_ARRAY_INTER if s >= 2 * ring_speed - 1e-9]
    tree = bw * (min(higher) if higher else SPEED_ARRAY_INTER[0]) / ring_speed
    cap = channels * PER_CH_MAX_TREE_BW_N2.get(gen, PER_CH_MAX_TREE_BW_N2["ampere"]) * GBS / 0.92
    return max(bw, min(tree, intra_bw, cap))


def tuned_channels(algo: str, proto: str, nbytes: float, nranks: int,
                   channels: int) -> tuple[int, int]:
    """(channels, threads per channel) NCCL runs a ring or tree call of ``nbytes`` on.

    enqueue.cc v2.18.3-1 (getAlgoInfo, "Ring/Tree channel tuning"): starting from the
    communicator's ``channels`` and the protocol's thread count, while ``nbytes < nc x nt x
    threshold`` it drops a channel, and at one channel halves the threads while they are a
    multiple of 128. The threshold is THREAD_THRESHOLD per thread, times ``nranks`` for ring LL.
    """
    p = proto if proto in MAX_THREADS else "simple"
    nt = MAX_THREADS[p]
    threshold = THREAD_THRESHOLD[p] * (nranks if algo == "ring" and p == "ll" else 1)
    nc = channels
    while nbytes < nc * nt * threshold:
        if nc >= 2:
            nc -= 1
        elif nt % 128 == 0:
            nt //= 2
        else:
            break
    return nc, nt


def channel_bus(algo: str, proto: str, nbytes: float, nranks: int, channels: int,
                bus_bw: float, channel_rate: float) -> float:
    """Bus bandwidth (B/s) a call of ``nbytes`` runs at on the channels :func:`tuned_channels`
    leaves it: where ``channel_rate`` (B/s, what one channel moves alone) is known, the lower
    of ``bus_bw`` (the protocol's full rate) and that many channels at that rate; else
    :func:`channel_share` of ``bus_bw`` (NCCL's rating: each channel an equal share)."""
    if channels <= 0:
        return bus_bw
    if channel_rate <= 0:
        return bus_bw * channel_share(algo, proto, nbytes, nranks, channels)
    nc, _ = tuned_channels(algo, proto if proto in MAX_THREADS else "simple", nbytes, nranks,
                           channels)
    return min(bus_bw, nc * channel_rate)


def channel_share(algo: str, proto: str, nbytes: float, nranks: int, channels: int) -> float:
    """Fraction of the full bus bandwidth a call of ``nbytes`` gets: the channels
    :func:`tuned_channels` leaves it over all ``channels`` (1 when ``channels`` is 0: no
    channel model; fewer threads per channel are not charged). A channel is one CTA moving
    its share of the buffer; NCCL's tuning rates the bus bandwidth as ``nChannels x`` a
    per-channel speed."""
    if channels <= 0:
        return 1.0
    p = proto if proto in MAX_THREADS else "simple"
    nc, nt = tuned_channels(algo, p, nbytes, nranks, channels)
    return nc / channels
