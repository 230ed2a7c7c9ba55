"""Analytical cost of a mapping: accesses per operand per level, cycles, stalls, energy, I/O bound.

Reuse follows the usual loop-nest analysis (Timeloop, Parashar et al. ISPASS 2019): the tile of an
operand at a level spans the loops at that level and inside it; it is refilled once per iteration
of the loops above, except that loops irrelevant to the operand that sit inside the innermost
relevant loop above do not refill it (stationarity). Per-PE levels get one tile per PE; data for
PEs that differ only in a rank irrelevant to the operand is multicast (read once from the parent).
Partial sums go back up and are read again when an output tile is revisited; across such a
boundary they move at the accumulation precision (``psum_bytes``), as ZigZag counts them. An
input whose innermost tile fits one read of its level (``Level.port_bytes``) stays on the port for
the trailing loops irrelevant to it (ZigZag's ``access_same_data_considered_as_no_access``).
Per-operand level boundaries (``Mapping.cuts``) give each operand its own tiles and refills.

Latency, two conventions:

* ``overlap`` (double-buffered levels): ``max(compute, port time of every level) + on-load``;
* ``zigzag`` (as ZigZag reports it, Mei et al. 2021 and ZigZag v3): ``compute + stall + on-load
  + off-load``; on-load is the first tiles the on-chip levels need before compute starts,
  off-load the last output tile written back, stall the DRAM transfers during compute that do
  not fit under it at the DRAM port bandwidth, or, if more, the refills of single-buffered
  levels (input tiles after the first, partial sums read back), which cannot overlap compute.

Energy: bytes read/written at every level times its J/B, plus MACs times the MAC energy.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from mappings.bounds import gemm_io_lower_bound
from mappings.mapping import Mapping, Problem, holds, validate
from mappings.spec import OPERANDS, SpatialArch


@dataclass
class MappingCost:
    """What a mapping costs. Cycles are array clock cycles; accesses in elements."""

    compute_cycles: float
    latency_cycles: float
    stall_cycles: float
    onload_cycles: float
    offload_cycles: float
    utilization: float
    accesses: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    energy: dict[str, float] = field(default_factory=dict)
    dram_bytes: float = 0.0
    io_lower_bound_bytes: float = 0.0

    @property
    def energy_total(self) -> float:
        return float(sum(self.energy.values()))

    @property
    def io_ratio(self) -> float:
        """DRAM traffic over the I/O lower bound (>= 1 for every valid mapping)."""
        return self.dram_bytes / self.io_lower_bound_bytes if self.io_lower_bound_bytes else \
            math.inf


def fills(problem: Problem, mapping: Mapping, level: int, operand: str) -> int:
    """How many times one instance of ``level`` receives a new ``operand`` tile (the operand's
    own level boundaries when the mapping has per-operand cuts)."""
    loops = mapping.nest()[:mapping.starts_for(operand)[level]]
    return fills_from(list(loops), frozenset(problem.ranks_of(operand)))


@dataclass(frozen=True)
class _Context:
    """Per (problem, arch, bypass) constants of :func:`evaluate`."""

    chains: dict
    words: tuple
    energies: tuple
    rels: dict
    fan: int
    macs: int
    out_elems: int
    word: tuple          # bytes of I, W, O (final)
    psum: float
    ports: tuple         # per level: width of one read in B (0: one word)
    double: tuple        # per level: double-buffered
    lower_bound: float   # I/O lower bound, B


@lru_cache(maxsize=1024)
def _context(problem: Problem, arch: SpatialArch, bypass: frozenset) -> _Context:
    """Per (problem, arch, bypass): operand chains of holding levels and per-level constants."""
    probe = Mapping(tuple(() for _ in arch.levels), bypass=bypass)
    chains = {}
    for op in OPERANDS:
        chain = [i for i in range(len(arch.levels)) if holds(arch, probe, i, op)]
        if not chain or chain[0] != 0:
            chain = [0] + chain
        chains[op] = tuple(chain)
    words = tuple(tuple(arch.psum_bytes if (op == "O" and lev.per_pe) else arch.bytes_of(op)
                        for op in OPERANDS) for lev in arch.levels)
    energies = tuple(tuple(lev.energy_for(op) for op in OPERANDS) for lev in arch.levels)
    rel = {op: frozenset(problem.ranks_of(op)) for op in OPERANDS}
    fan = arch.fanout_index
    smallest = min(arch.bytes_of(o) for o in OPERANDS)
    onchip = sum(lev.capacity / smallest for lev in arch.levels[1:fan]
                 if not math.isinf(lev.capacity))
    size = problem.size
    if set(size) == {"m", "n", "k"} and onchip > 0:
        lb_words = gemm_io_lower_bound(size["m"], size["n"], size["k"], onchip)
    else:
        lb_words = float(sum(problem.elements(op) for op in OPERANDS))
    return _Context(chains, words, energies, rel, fan, problem.macs, problem.elements("O"),
                    tuple(arch.bytes_of(o) for o in OPERANDS), arch.psum_bytes,
                    tuple(lev.port_bytes for lev in arch.levels),
                    tuple(lev.double_buffered for lev in arch.levels), lb_words * smallest)


def fills_from(loops_above: list[tuple[str, int]], rel: frozenset) -> int:
    """Refills given the loops above a level (outer first): product up to the innermost loop
    relevant to the operand (stationarity under trailing irrelevant loops)."""
    f = 1
    pending = 1
    for r, x in loops_above:
        pending *= x
        if r in rel and x > 1:
            f *= pending
            pending = 1
    return f


def _port_reuse(port: float, word: float, tile: float, nest: tuple, rel: frozenset) -> float:
    """How many MACs in a row use the value an input's innermost level last read: the trailing
    loops irrelevant to the operand, when its tile there is no wider than one read (``port``
    B, 0: one word; ZigZag's ``mac_level_data_stationary_cycle`` under
    ``access_same_data_considered_as_no_access``)."""
    if tile * word > (port or word) + 1e-9:
        return 1.0
    reuse = 1
    for r, x in reversed(nest):
        if r in rel and x > 1:
            break
        reuse *= x
    return float(reuse)


class Score(NamedTuple):
    """Just the two figures a search ranks by (``evaluate(..., detail=False)``)."""

    latency_cycles: float
    energy_total: float


def evaluate(problem: Problem, arch: SpatialArch, mapping: Mapping, convention: str = "overlap",
             check: bool = True, detail: bool = True) -> MappingCost:
    """Cost of ``mapping`` (validated first unless ``check`` is false). With ``detail`` false
    only a :class:`Score` (latency, total energy) comes back, for searches."""
    if check:
        validate(problem, arch, mapping)
    c = _counts(problem, arch, mapping)
    latency, stall, onload, offload = _latency(c, arch, convention)
    if not detail:
        return Score(latency, c.energy_total)  # type: ignore[return-value]
    reads, writes = c.reads, c.writes
    acc = {lev.name: {op: {"reads": reads[i][oi], "writes": writes[i][oi]}
                      for oi, op in enumerate(OPERANDS)} for i, lev in enumerate(arch.levels)}
    lb = _context(problem, arch, mapping.bypass).lower_bound
    return MappingCost(compute_cycles=c.compute, latency_cycles=latency, stall_cycles=stall,
                       onload_cycles=onload, offload_cycles=offload,
                       utilization=c.macs / (latency * arch.pes), accesses=acc,
                       energy=c.energy, dram_bytes=c.dram_bytes, io_lower_bound_bytes=lb)


def score_kept(problem: Problem, arch: SpatialArch, mapping: Mapping,
               convention: str = "overlap") -> Score:
    """``evaluate(..., check=False, detail=False)``, its counts kept per (problem, arch up to
    its levels' bandwidths and capacities, mapping) (:data:`_COUNTS`): a search that maps one
    problem again on levels of other bandwidths (a dataflow chip's PCU share with another
    PMU share) scores the same refined mappings again."""
    shape = unsized(arch)
    key = (problem, id(shape), mapping)
    hit = _COUNTS.get(key)
    if hit is not None and hit[0] is shape:
        c = hit[1]
    else:
        c = _counts(problem, arch, mapping)
        if len(_COUNTS) >= COUNTS_MEMO_SIZE:
            _COUNTS.clear()
        _COUNTS[key] = (shape, c)   # keeps the shape alive: its id stays its own
    return Score(_latency(c, arch, convention)[0], c.energy_total)


def _latency(c: _Counts, arch: SpatialArch, convention: str
             ) -> tuple[float, float, float, float]:
    """(latency, stall, on-load, off-load) cycles of counts ``c`` on ``arch``'s bandwidths
    (module doc's conventions)."""
    port_time = 0.0
    for i, moved in c.moved:
        bw_i = arch.levels[i].bandwidth
        if not math.isinf(bw_i):
            port_time = max(port_time, moved / bw_i)
    compute, dram_bytes = c.compute, c.dram_bytes
    bw = arch.levels[0].bandwidth
    onload = c.onload_bytes / bw if not math.isinf(bw) else 0.0
    offload = c.out_tile / bw if not math.isinf(bw) else 0.0
    dram_time = dram_bytes / bw if not math.isinf(bw) else 0.0
    if convention == "zigzag":
        # a single-buffered level cannot take a new input tile, or the partial sums of the next
        # output tile, while the old one is in use: every refill after the first waits for its
        # transfer; outputs (final or partial) drain in the background
        # and everything else must fit under compute at the DRAM port
        during = max(0.0, dram_time - onload - offload)
        refill = c.refill_bytes / bw if not math.isinf(bw) else 0.0
        stall = max(refill, during - compute)
        return compute + stall + onload + offload, stall, onload, offload
    body = max(compute, dram_time, port_time)
    return body + min(onload, dram_time), body - compute, onload, 0.0


class _Counts(NamedTuple):
    """What :func:`evaluate` works out of a mapping before it reads any bandwidth (the same on
    an arch whose levels differ only in bandwidths and capacities): per level and operand, the
    reads and writes; energy per level, J, and its total; per level between DRAM and the
    fan-out, bytes through its port; DRAM bytes; the first input and weight tiles' bytes, the
    first output tile's, the refilled bytes; compute cycles; MACs."""

    reads: list
    writes: list
    energy: dict
    energy_total: float
    moved: tuple
    dram_bytes: float
    onload_bytes: float
    out_tile: float
    refill_bytes: float
    compute: float
    macs: int


#: :func:`score_kept`'s counts by (problem, :func:`unsized` arch's id, mapping) (cleared when
#: full: a bound on memory; a dataflow chip's PCU share mapped again with another PMU share
#: scores the same refined mappings on PMUs of another bandwidth)
COUNTS_MEMO_SIZE = 8192
_COUNTS: dict[tuple, tuple[SpatialArch, _Counts]] = {}


def unsized(arch: SpatialArch) -> SpatialArch:
    """``arch`` with its levels' capacities and bandwidths zeroed: all that the counts of a
    mapping (:func:`_counts`, :func:`batch_counts`) read of it. One object per distinct
    result (archs that differ only in bandwidths and capacities get the same one, so memos
    may key by its identity), found by the arch's identity."""
    hit = _UNSIZED.get(id(arch))
    if hit is not None and hit[0] is arch:
        return hit[1]
    levels = tuple(dataclasses.replace(lev, capacity=0.0, bandwidth=0.0, operand_capacity=())
                   for lev in arch.levels)
    shape = dataclasses.replace(arch, levels=levels)
    if len(_UNSIZED) >= UNSIZED_MEMO_SIZE:
        _UNSIZED.clear()
        _SHAPES.clear()
    shape = _SHAPES.setdefault(shape, shape)
    _UNSIZED[id(arch)] = (arch, shape)   # keeps the arch alive: its id stays its own
    return shape


#: :func:`unsized` by the arch's id, and each distinct result once (cleared when full: a bound
#: on memory; a memo keyed by a result's id holds the result, so no id is reused under it)
UNSIZED_MEMO_SIZE = 1024
_UNSIZED: dict[int, tuple[SpatialArch, SpatialArch]] = {}
_SHAPES: dict[SpatialArch, SpatialArch] = {}


def clear_memos() -> None:
    """Forget every memo of this module: the contexts (:func:`_context`), the kept counts and
    the arch shapes (:func:`unsized`)."""
    _context.cache_clear()
    for memo in (_COUNTS, _UNSIZED, _SHAPES):
        memo.clear()


def _counts(problem: Problem, arch: SpatialArch, mapping: Mapping) -> _Counts:
    """:func:`evaluate`'s figures of ``mapping`` up to the bandwidths (:class:`_Counts`)."""
    ctx = _context(problem, arch, mapping.bypass)
    chains, words, energies, rels, fan = ctx.chains, ctx.words, ctx.energies, ctx.rels, ctx.fan
    nlev = len(arch.levels)
    macs = ctx.macs
    spatial = (*mapping.spatial_rows, *mapping.spatial_cols)
    sp_all = math.prod(x for _, x in spatial)
    compute = macs / sp_all
    nest = mapping.nest()
    nloops = len(nest)
    shared_starts = mapping.level_starts()
    reads = [[0.0, 0.0, 0.0] for _ in range(nlev)]
    writes = [[0.0, 0.0, 0.0] for _ in range(nlev)]
    rbytes = [[0.0, 0.0, 0.0] for _ in range(nlev)]
    wbytes = [[0.0, 0.0, 0.0] for _ in range(nlev)]
    first_tile = [0.0, 0.0, 0.0]
    refill_bytes = 0.0   # input tiles re-fetched into single-buffered shared levels
    out_elems = ctx.out_elems
    out_word, psum_word = ctx.word[2], ctx.psum
    double = ctx.double
    for oi, op in enumerate(OPERANDS):
        rel = rels[op]
        starts = mapping.starts_for(op) if mapping.cuts else shared_starts
        sp_rel = 1
        for r, x in spatial:
            if r in rel:
                sp_rel *= x
        # per loop t (outer first): product of relevant factors from t inwards, and the refills
        # of a tile starting at t (loops above up to the innermost relevant one)
        suffix = [1] * (nloops + 1)
        for t in range(nloops - 1, -1, -1):
            r, x = nest[t]
            suffix[t] = suffix[t + 1] * x if r in rel else suffix[t + 1]
        refills = [1] * (nloops + 1)
        f = pending = 1
        for t, (r, x) in enumerate(nest):
            pending *= x
            if r in rel and x > 1:
                f *= pending
                pending = 1
            refills[t + 1] = f
        chain = chains[op]
        is_out = oi == 2
        for ci in range(1, len(chain)):
            parent, child = chain[ci - 1], chain[ci]
            per_pe = child >= fan
            start = starts[child]
            tile = suffix[start] if per_pe else suffix[start] * sp_rel
            nf = refills[start]
            if per_pe:
                distinct = tile * nf * sp_rel
                into_child = tile * nf * sp_all
            else:
                distinct = into_child = tile * nf
            if is_out:
                # partial sums travel at the accumulation precision whenever an output tile is
                # revisited across this boundary (ZigZag's psum flag), final outputs at their own
                back = distinct - out_elems if distinct > out_elems else 0.0
                pw = psum_word if back > 0 else out_word
                cw = words[child][2] if per_pe else pw
                child_back = into_child - out_elems * (sp_all / sp_rel if per_pe else 1)
                if child_back < 0:
                    child_back = 0.0
                writes[parent][2] += distinct
                reads[parent][2] += back
                reads[child][2] += into_child
                writes[child][2] += child_back
                wbytes[parent][2] += distinct * pw
                rbytes[parent][2] += back * pw
                rbytes[child][2] += into_child * cw
                wbytes[child][2] += child_back * cw
            else:
                reads[parent][oi] += distinct
                writes[child][oi] += into_child
                rbytes[parent][oi] += distinct * words[parent][oi]
                wbytes[child][oi] += into_child * words[child][oi]
            if parent == 0 and 0 < child < fan:
                if tile > first_tile[oi]:
                    first_tile[oi] = float(tile)
                if not double[child]:
                    # inputs re-fetched, and partial sums read back, into the buffer in use
                    refill_bytes += (back * pw if is_out else
                                     (distinct - tile) * words[child][oi])
        innermost = chain[-1]
        if innermost >= fan:
            uses = float(macs)
        else:
            uses = macs / (sp_all / sp_rel)
        if not is_out:
            uses /= _port_reuse(ctx.ports[innermost], words[innermost][oi],
                                suffix[starts[innermost]] * (1 if innermost >= fan else sp_rel),
                                nest, rel)
            reads[innermost][oi] += uses
            rbytes[innermost][oi] += uses * words[innermost][oi]
        else:
            w = words[innermost][2] if innermost >= fan else (
                psum_word if macs > out_elems else out_word)
            reads[innermost][oi] += uses
            writes[innermost][oi] += uses
            rbytes[innermost][oi] += uses * w
            wbytes[innermost][oi] += uses * w
    energy: dict[str, float] = {"mac": macs * arch.mac_energy}
    dram_bytes = 0.0
    moved_by_level = []
    for i, lev in enumerate(arch.levels):
        e = 0.0
        moved = 0.0
        for oi in range(3):
            rb, wb = rbytes[i][oi], wbytes[i][oi]
            er, ew = energies[i][oi]
            e += rb * er + wb * ew
            if i == 0:
                dram_bytes += rb + wb
            elif i < fan:
                moved += rb + wb
        energy[lev.name] = e
        if 0 < i < fan:
            moved_by_level.append((i, moved))
    onload_bytes = first_tile[0] * ctx.word[0] + first_tile[1] * ctx.word[1]
    out_tile = first_tile[2] * ctx.word[2]
    return _Counts(reads, writes, energy, sum(energy.values()), tuple(moved_by_level),
                   dram_bytes, onload_bytes, out_tile, refill_bytes, compute, macs)


def evaluate_batch(problem: Problem, arch: SpatialArch, spatial: tuple, bypass: frozenset,
                   ranks: np.ndarray, factors: np.ndarray, slots: int,
                   convention: str = "overlap") -> tuple[np.ndarray, np.ndarray]:
    """Latency (cycles) and total energy (J) of many mappings at once: exactly what
    ``evaluate(..., check=False, detail=False)`` gives each (same operations in the same order,
    vectorised over candidates), for mappings without per-operand cuts that share ``spatial``
    (rows, cols) and ``bypass``. ``ranks``/``factors`` (candidates x levels*slots): each level's
    loops, outer first, padded with unit loops to ``slots`` (rank index -1, factor 1); unit
    loops change no refill, tile or reuse, so level ``l`` starts at ``l * slots``."""
    counts = batch_counts(problem, arch, spatial, bypass, ranks, factors, slots)
    return batch_latency(counts, arch, convention), counts.energy


class BatchCounts(NamedTuple):
    """What :func:`evaluate_batch` works out of many mappings before it reads any bandwidth
    (so the same for an arch whose levels differ only in bandwidth or capacity): compute
    cycles; per level between DRAM and the fan-out, bytes through its port; DRAM bytes; the
    first input and weight tiles' bytes, the first output tile's, the refilled bytes
    (:func:`evaluate`'s terms, per candidate); total energy, J."""

    compute: float
    moved: tuple          # (level index, bytes per candidate) for 0 < level < fan-out
    dram_bytes: np.ndarray
    onload_bytes: np.ndarray
    out_tile: np.ndarray
    refill_bytes: np.ndarray
    energy: np.ndarray


def batch_latency(counts: BatchCounts, arch: SpatialArch, convention: str) -> np.ndarray:
    """Latency (cycles) per candidate of :func:`batch_counts` on ``arch``'s bandwidths."""
    zeros = np.zeros(len(counts.energy))
    port_time = zeros
    for i, moved in counts.moved:
        bw_i = arch.levels[i].bandwidth
        if not math.isinf(bw_i):
            port_time = np.maximum(port_time, moved / bw_i)
    compute = counts.compute
    bw = arch.levels[0].bandwidth
    onload = counts.onload_bytes / bw if not math.isinf(bw) else zeros
    offload = counts.out_tile / bw if not math.isinf(bw) else zeros
    dram_time = counts.dram_bytes / bw if not math.isinf(bw) else zeros
    if convention == "zigzag":
        during = np.maximum(0.0, dram_time - onload - offload)
        refill = counts.refill_bytes / bw if not math.isinf(bw) else zeros
        stall = np.maximum(refill, during - compute)
        return compute + stall + onload + offload
    body = np.maximum(np.maximum(compute, dram_time), port_time)
    return body + np.minimum(onload, dram_time)


def batch_counts(problem: Problem, arch: SpatialArch, spatial: tuple, bypass: frozenset,
                 ranks: np.ndarray, factors: np.ndarray, slots: int) -> BatchCounts:
    """:func:`evaluate_batch`'s figures of the candidates up to their bandwidths
    (:class:`BatchCounts`)."""
    ctx = _context(problem, arch, bypass)
    chains, words, energies, rels, fan = ctx.chains, ctx.words, ctx.energies, ctx.rels, ctx.fan
    nlev = len(arch.levels)
    ncand, nloops = factors.shape
    macs = ctx.macs
    sp_list = (*spatial[0], *spatial[1])
    sp_all = math.prod(x for _, x in sp_list)
    compute = macs / sp_all
    x = factors.astype(np.int64)
    zeros = np.zeros(ncand)
    reads = [[zeros, zeros, zeros] for _ in range(nlev)]
    writes = [[zeros, zeros, zeros] for _ in range(nlev)]
    rbytes = [[zeros, zeros, zeros] for _ in range(nlev)]
    wbytes = [[zeros, zeros, zeros] for _ in range(nlev)]
    first_tile = [zeros, zeros, zeros]
    refill_bytes = zeros
    out_elems = ctx.out_elems
    out_word, psum_word = ctx.word[2], ctx.psum
    double = ctx.double
    names = problem.ranks
    pos = np.arange(nloops)
    prefix = np.cumprod(x, axis=1)                     # product of loops 0..t
    for oi, op in enumerate(OPERANDS):
        rel = rels[op]
        relmask = np.isin(ranks, [i for i, r in enumerate(names) if r in rel])
        sp_rel = 1
        for r, f in sp_list:
            if r in rel:
                sp_rel *= f
        xr = np.where(relmask, x, 1)
        suffix = np.ones((ncand, nloops + 1), dtype=np.int64)
        suffix[:, :nloops] = np.flip(np.cumprod(np.flip(xr, axis=1), axis=1), axis=1)
        key = relmask & (x > 1)                        # loops that end a refill run
        last_key = np.where(key, pos, -1)
        last_before = np.maximum.accumulate(last_key, axis=1)  # last key at or before t
        chain = chains[op]
        is_out = oi == 2

        def at(start: int, _suffix=suffix, _last=last_before) -> tuple[np.ndarray, np.ndarray]:
            if start == 0:
                return _suffix[:, 0], np.ones(ncand, dtype=np.int64)
            lk = _last[:, start - 1]
            nf = np.where(lk >= 0, np.take_along_axis(prefix, np.maximum(lk, 0)[:, None],
                                                      axis=1)[:, 0], 1)
            return _suffix[:, start], nf

        for ci in range(1, len(chain)):
            parent, child = chain[ci - 1], chain[ci]
            per_pe = child >= fan
            tile, nf = at(child * slots)
            if not per_pe:
                tile = tile * sp_rel
            if per_pe:
                distinct = tile * nf * sp_rel
                into_child = tile * nf * sp_all
            else:
                distinct = into_child = tile * nf
            if is_out:
                back = np.where(distinct > out_elems, distinct - out_elems, 0.0)
                pw = np.where(back > 0, psum_word, out_word)
                cw = words[child][2] if per_pe else pw
                child_back = into_child - out_elems * (sp_all / sp_rel if per_pe else 1)
                child_back = np.where(child_back < 0, 0.0, child_back)
                writes[parent][2] = writes[parent][2] + distinct
                reads[parent][2] = reads[parent][2] + back
                reads[child][2] = reads[child][2] + into_child
                writes[child][2] = writes[child][2] + child_back
                wbytes[parent][2] = wbytes[parent][2] + distinct * pw
                rbytes[parent][2] = rbytes[parent][2] + back * pw
                rbytes[child][2] = rbytes[child][2] + into_child * cw
                wbytes[child][2] = wbytes[child][2] + child_back * cw
            else:
                reads[parent][oi] = reads[parent][oi] + distinct
                writes[child][oi] = writes[child][oi] + into_child
                rbytes[parent][oi] = rbytes[parent][oi] + distinct * words[parent][oi]
                wbytes[child][oi] = wbytes[child][oi] + into_child * words[child][oi]
            if parent == 0 and 0 < child < fan:
                first_tile[oi] = np.maximum(first_tile[oi], tile.astype(np.float64))
                if not double[child]:
                    refill_bytes = refill_bytes + (back * pw if is_out else
                                                   (distinct - tile) * words[child][oi])
        innermost = chain[-1]
        uses = float(macs) if innermost >= fan else macs / (sp_all / sp_rel)
        if not is_out:
            word = words[innermost][oi]
            port = ctx.ports[innermost]
            tile_in = suffix[:, innermost * slots] * (1 if innermost >= fan else sp_rel)
            # trailing loops after the innermost key loop of the whole nest
            lk = last_before[:, -1]
            tail = np.ones((ncand, nloops + 1), dtype=np.int64)
            tail[:, :nloops] = np.flip(np.cumprod(np.flip(x, axis=1), axis=1), axis=1)
            reuse = np.take_along_axis(tail, (lk + 1)[:, None], axis=1)[:, 0]
            reuse = np.where(tile_in * word > (port or word) + 1e-9, 1.0,
                             reuse.astype(np.float64))
            u = uses / reuse
            reads[innermost][oi] = reads[innermost][oi] + u
            rbytes[innermost][oi] = rbytes[innermost][oi] + u * word
        else:
            w = words[innermost][2] if innermost >= fan else (
                psum_word if macs > out_elems else out_word)
            reads[innermost][oi] = reads[innermost][oi] + uses
            writes[innermost][oi] = writes[innermost][oi] + uses
            rbytes[innermost][oi] = rbytes[innermost][oi] + uses * w
            wbytes[innermost][oi] = wbytes[innermost][oi] + uses * w
    total = 0 + macs * arch.mac_energy
    dram_bytes = zeros
    moved_by_level = []
    for i in range(nlev):
        e = zeros
        moved = zeros
        for oi in range(3):
            rb, wb = rbytes[i][oi], wbytes[i][oi]
            er, ew = energies[i][oi]
            e = e + (rb * er + wb * ew)
            if i == 0:
                dram_bytes = dram_bytes + (rb + wb)
            elif i < fan:
                moved = moved + (rb + wb)
        total = total + e
        if 0 < i < fan:
            moved_by_level.append((i, moved))
    onload_bytes = first_tile[0] * ctx.word[0] + first_tile[1] * ctx.word[1]
    out_tile = first_tile[2] * ctx.word[2]
    return BatchCounts(compute, tuple(moved_by_level), dram_bytes, onload_bytes, out_tile,
                       refill_bytes, total)
