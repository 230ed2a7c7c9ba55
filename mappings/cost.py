"""Analytical cost of a mapping: accesses per operand per level, cycles, stalls, energy, I/O bound.

Reuse follows the usual loop-nest analysis (Timeloop, Parashar et al. ISPASS 2019): the tile of an
operand at a level spans the loops at that level and inside it; it is refilled once per iteration
of the loops above, except that loops irrelevant to the operand that sit inside the innermost
relevant loop above do not refill it (stationarity). Per-PE levels get one tile per PE; data for
PEs that differ only in a rank irrelevant to the operand is multicast (read once from the parent).
Partial sums go back up and are read again when an output tile is revisited.

Latency, two conventions:

* ``overlap`` (double-buffered levels): ``max(compute, port time of every level) + on-load``;
* ``zigzag`` (as ZigZag reports it, Mei et al. 2021 and ZigZag v3): ``compute + stall + on-load
  + off-load``; on-load is the first tiles the on-chip levels need before compute starts,
  off-load the last output tile written back, stall the DRAM transfers during compute that do
  not fit under it at the DRAM port bandwidth.

Energy: bytes read/written at every level times its J/B, plus MACs times the MAC energy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

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
    """How many times one instance of ``level`` receives a new ``operand`` tile."""
    loops: list[tuple[str, int]] = []
    for j in range(level):
        loops += list(mapping.temporal[j])
    return fills_from(loops, frozenset(problem.ranks_of(operand)))


@lru_cache(maxsize=1024)
def _context(problem: Problem, arch: SpatialArch, bypass: frozenset) -> tuple:
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
    return chains, words, energies, rel, arch.fanout_index


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


def evaluate(problem: Problem, arch: SpatialArch, mapping: Mapping, convention: str = "overlap",
             check: bool = True) -> MappingCost:
    """Cost of ``mapping`` (validated first unless ``check`` is false)."""
    if check:
        validate(problem, arch, mapping)
    chains, words, energies, rels, fan = _context(problem, arch, mapping.bypass)
    nlev = len(arch.levels)
    macs = problem.macs
    spatial = (*mapping.spatial_rows, *mapping.spatial_cols)
    sp_all = math.prod(x for _, x in spatial)
    compute = macs / sp_all
    temporal = mapping.temporal
    above: list[list[tuple[str, int]]] = [[]]
    for j in range(nlev - 1):
        above.append(above[-1] + list(temporal[j]))
    reads = [[0.0, 0.0, 0.0] for _ in range(nlev)]
    writes = [[0.0, 0.0, 0.0] for _ in range(nlev)]
    first_tile = [0.0, 0.0, 0.0]
    refill_bytes = 0.0   # input tiles re-fetched into single-buffered shared levels
    out_elems = problem.elements("O")
    for oi, op in enumerate(OPERANDS):
        rel = rels[op]
        sp_rel = math.prod(x for r, x in spatial if r in rel)
        inner = [1] * (nlev + 1)
        for j in range(nlev - 1, -1, -1):
            f = inner[j + 1]
            for r, x in temporal[j]:
                if r in rel:
                    f *= x
            inner[j] = f
        chain = chains[op]
        for ci in range(1, len(chain)):
            parent, child = chain[ci - 1], chain[ci]
            per_pe = child >= fan
            tile = inner[child] * (1 if per_pe else sp_rel)
            nf = fills_from(above[child], rel)
            distinct = tile * nf * (sp_rel if per_pe else 1)
            into_child = tile * nf * (sp_all if per_pe else 1)
            if op == "O":
                writes[parent][2] += distinct
                reads[parent][2] += max(0.0, distinct - out_elems)
                reads[child][2] += into_child
                writes[child][2] += max(0.0, into_child - out_elems *
                                        (sp_all / sp_rel if per_pe else 1))
            else:
                reads[parent][oi] += distinct
                writes[child][oi] += into_child
            if parent == 0 and 0 < child < fan:
                first_tile[oi] = max(first_tile[oi], float(tile))
                if op != "O" and not arch.levels[child].double_buffered:
                    refill_bytes += (distinct - tile) * words[child][oi]
        innermost = chain[-1]
        if innermost >= fan:
            uses = float(macs)
        else:
            uses = macs / (sp_all / sp_rel)
        reads[innermost][oi] += uses
        if op == "O":
            writes[innermost][oi] += uses
    acc = {lev.name: {op: {"reads": reads[i][oi], "writes": writes[i][oi]}
                      for oi, op in enumerate(OPERANDS)} for i, lev in enumerate(arch.levels)}
    energy: dict[str, float] = {"mac": macs * arch.mac_energy}
    port_time = 0.0
    dram_bytes = 0.0
    for i, lev in enumerate(arch.levels):
        e = 0.0
        moved = 0.0
        for oi in range(3):
            word = words[i][oi]
            r, w = reads[i][oi], writes[i][oi]
            er, ew = energies[i][oi]
            e += (r * er + w * ew) * word
            if i == 0:
                dram_bytes += (r + w) * word
            elif i < fan:
                moved += (r + w) * word
        energy[lev.name] = e
        if 0 < i < fan and not math.isinf(lev.bandwidth):
            port_time = max(port_time, moved / lev.bandwidth)
    first_tile = dict(zip(OPERANDS, first_tile, strict=True))
    bw = arch.levels[0].bandwidth
    onload_bytes = sum(first_tile[op] * arch.bytes_of(op) for op in ("I", "W"))
    out_tile = first_tile["O"] * arch.bytes_of("O")
    onload = onload_bytes / bw if not math.isinf(bw) else 0.0
    offload = out_tile / bw if not math.isinf(bw) else 0.0
    dram_time = dram_bytes / bw if not math.isinf(bw) else 0.0
    if convention == "zigzag":
        # a single-buffered level cannot take a new input tile while the old one is in use:
        # every refill after the first waits for its transfer; outputs drain in the background
        # and everything else must fit under compute at the DRAM port
        during = max(0.0, dram_time - onload - offload)
        refill = refill_bytes / bw if not math.isinf(bw) else 0.0
        stall = max(refill, during - compute)
        latency = compute + stall + onload + offload
    else:
        body = max(compute, dram_time, port_time)
        stall = body - compute
        latency = body + min(onload, dram_time)
        offload = 0.0
    onchip = sum(lev.capacity / min(arch.bytes_of(o) for o in OPERANDS)
                 for lev in arch.levels[1:fan] if not math.isinf(lev.capacity))
    size = problem.size
    if set(size) == {"m", "n", "k"} and onchip > 0:
        lb_words = gemm_io_lower_bound(size["m"], size["n"], size["k"], onchip)
    else:
        lb_words = float(sum(problem.elements(op) for op in OPERANDS))
    lb = lb_words * min(arch.bytes_of(o) for o in OPERANDS)
    return MappingCost(compute_cycles=compute, latency_cycles=latency, stall_cycles=stall,
                       onload_cycles=onload, offload_cycles=offload,
                       utilization=macs / (latency * arch.pes), accesses=acc, energy=energy,
                       dram_bytes=dram_bytes, io_lower_bound_bytes=lb)
