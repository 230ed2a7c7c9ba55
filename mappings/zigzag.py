"""ZigZag-comparable analytical mode: the same hardware ZigZag is given, the mapper, ZigZag's
latency convention (compute + stall + on-load + off-load) and per-access energies.

Two setups of the shared reference cases (``accel/README.md``):

* :func:`scalesim_matched_arch` (R4): the SCALE-Sim config's array and SRAMs as ZigZag sees them
  — per-PE 1 B weight register and 2 B partial-sum register, separate ifmap/filter/ofmap SRAMs
  (single-buffered), one DRAM port shared by all operands at the config's words/cycle; energies
  are ZigZag's placeholder costs: MAC 0.04 pJ, RF 0.095 (W) / 0.021 (O) pJ per access, SRAM
  26.0 / 23.6 pJ per read / write of the port width, DRAM 700 / 750 pJ per access of the port
  width. The SRAM port width is not in the reference notes: ASSUMED 64 B, the width with which
  ZigZag itself comes closest to its reference run on ``validation/zigzag/hardware/
  r4_scalesim_matched.yaml`` (32 B ports halve its throughput); DRAM: the port's words/cycle.
* :func:`tpu_like_arch` (R5): ZigZag's shipped ``tpu_like`` hardware (KULeuven-MICAS/zigzag,
  ``zigzag/inputs/hardware/tpu_like.yaml``): 32x32 MACs at 0.04 pJ, a 128 B weight RF per PE
  (0.095 pJ), a 2 B output RF per PE (0.021 pJ), a 2 MB SRAM for inputs and outputs (2048-bit
  ports, 416.16 / 378.4 pJ per access), DRAM with one 64-bit port (700 / 750 pJ per access);
  spatial unrolling K (output channels, our ``n``) 32 x C (input channels, our ``k``) 32.
"""

from __future__ import annotations

import math
import time

from mappings.cost import MappingCost
from mappings.mapper import MapperResult, search
from mappings.mapping import Mapping, gemm_problem
from mappings.spec import Level, SpatialArch

PJ = 1e-12


def scalesim_matched_arch(rows: int, cols: int, ifmap_kb: float, filter_kb: float,
                          ofmap_kb: float, dram_bytes_per_cycle: float,
                          sram_port_bytes: float = 64.0) -> SpatialArch:
    """R4: the SCALE-Sim config's hardware in ZigZag's terms (see the module docstring)."""
    sram_port = float(sram_port_bytes)  # bytes per SRAM access (ASSUMED, module docstring)
    dram_port = float(dram_bytes_per_cycle)
    caps = (("I", ifmap_kb * 1024.0), ("W", filter_kb * 1024.0), ("O", ofmap_kb * 1024.0))
    levels = (
        Level("dram", ("I", "W", "O"), math.inf, dram_port, 700 * PJ / dram_port,
              750 * PJ / dram_port),
        Level("sram", ("I", "W", "O"), sum(c for _, c in caps), math.inf, 26.0 * PJ / sram_port,
              23.6 * PJ / sram_port, operand_capacity=caps),
        Level("rf", ("W", "O"), 1.0 + 2.0, math.inf, 0.095 * PJ, 0.095 * PJ, per_pe=True,
              operand_capacity=(("W", 1.0), ("O", 2.0)),
              operand_energy=(("W", 0.095 * PJ, 0.095 * PJ), ("O", 0.021 * PJ / 2,
                                                               0.021 * PJ / 2))),
    )
    return SpatialArch("scalesim-matched", levels, rows, cols, 0.04 * PJ, 1.0,
                       (("I", 1.0), ("W", 1.0), ("O", 1.0)), psum_bytes=2.0)


def tpu_like_arch() -> SpatialArch:
    """R5: ZigZag's shipped ``tpu_like`` hardware (see the module docstring)."""
    levels = (
        Level("dram", ("I", "W", "O"), math.inf, 8.0, 700 * PJ / 8, 750 * PJ / 8),
        Level("sram", ("I", "O"), 2 * 1024 * 1024.0, 256.0, 416.16 * PJ / 256,
              378.4 * PJ / 256),
        Level("rf", ("W", "O"), 128.0 + 2.0, math.inf, 0.095 * PJ, 0.095 * PJ, per_pe=True,
              operand_capacity=(("W", 128.0), ("O", 2.0)),
              operand_energy=(("W", 0.095 * PJ, 0.095 * PJ), ("O", 0.021 * PJ / 2,
                                                               0.021 * PJ / 2))),
    )
    return SpatialArch("tpu_like", levels, 32, 32, 0.04 * PJ, 1.0,
                       (("I", 1.0), ("W", 1.0), ("O", 1.0)), psum_bytes=2.0)


def mapping_from_zigzag(allocation: dict[str, list[list[tuple[str, int]]]],
                        memories: dict[str, list[str]], arch: SpatialArch,
                        spatial_rows: tuple = (), spatial_cols: tuple = ()) -> Mapping:
    """Our :class:`Mapping` (with per-operand cuts) of a ZigZag temporal mapping: per operand
    (``I``/``W``/``O``) its loops per memory level, innermost level and loop first, and the
    names of those memories; a memory maps onto our level whose name starts its name (``dram``,
    ``sram``, ``rf``). Ranks are lower-cased (ZigZag ``M``/``N``/``K`` are our m/n/k)."""
    any_op = next(iter(allocation))
    inner_first = [(r.lower(), int(f)) for lv in allocation[any_op] for r, f in lv]
    nest = tuple(reversed(inner_first))
    n = len(nest)
    names = [lev.name for lev in arch.levels]
    cuts = []
    for op in ("I", "W", "O"):
        starts = [n] * len(names)
        starts[0] = 0
        end = n
        for loops, mem in zip(allocation[op], memories[op], strict=True):
            level = next(i for i, nm in enumerate(names) if mem.startswith(nm))
            end -= len(loops)
            starts[level] = end if level else 0
        for i in range(len(starts) - 2, 0, -1):   # levels the operand skips: empty segments
            starts[i] = min(starts[i], starts[i + 1])
        cuts.append((op, tuple(starts)))
    per_pe_at = min(s for _, st in cuts for s in st[arch.fanout_index:]) \
        if arch.fanout_index < len(names) else n
    shared_at = min(s for _, st in cuts for s in st[1:arch.fanout_index] or (per_pe_at,))
    shared_at = min(shared_at, per_pe_at)
    bounds = [0, shared_at, per_pe_at] if len(names) == 3 else [0] * len(names)
    temporal = tuple(nest[bounds[i]:(bounds[i + 1] if i + 1 < len(bounds) else n)]
                     for i in range(len(names)))
    return Mapping(temporal, tuple(spatial_rows), tuple(spatial_cols), cuts=tuple(cuts))


def analyse(m: int, n: int, k: int, arch: SpatialArch, dataflow: str = "ws", budget: int = 20000,
            seed: int = 0) -> tuple[MapperResult, float]:
    """Best-latency mapping of an (M, N, K) GEMM under the ZigZag convention; returns the
    mapper result and the wall time of the search in s."""
    t0 = time.perf_counter()
    res = search(gemm_problem(m, n, k), arch, budget=budget, seed=seed, objective="latency",
                 convention="zigzag", dataflow=dataflow)
    return res, time.perf_counter() - t0


def report(res: MapperResult, arch: SpatialArch) -> dict:
    """The numbers ZigZag prints, from a mapper result."""
    c: MappingCost = res.cost
    m: Mapping = res.mapping
    dram = c.accesses[arch.levels[0].name]
    return {"latency_cycles": c.latency_cycles, "compute_cycles": c.compute_cycles,
            "stall_cycles": c.stall_cycles, "onload_cycles": c.onload_cycles,
            "offload_cycles": c.offload_cycles, "utilization": c.utilization,
            "energy_pJ": c.energy_total / PJ,
            "energy_breakdown_pJ": {k_: v / PJ for k_, v in c.energy.items()},
            "dram_ifmap_reads": dram["I"]["reads"], "dram_filter_reads": dram["W"]["reads"],
            "dram_ofmap_writes": dram["O"]["writes"], "dram_ofmap_reads": dram["O"]["reads"],
            "io_ratio": c.io_ratio, "mapping": m.describe(arch),
            "mappings_evaluated": res.evaluated, "space": res.space}


def analyse_scalesim_setup(m: int, n: int, k: int, cfg: dict) -> dict:
    """ZigZag-comparable estimate for one layer of a SCALE-Sim config (``xpusim import scalesim
    --analytical``)."""
    bw = cfg["ifmap_bank_bw"] if cfg.get("user_bandwidth") else cfg["bandwidth"]
    arch = scalesim_matched_arch(cfg["rows"], cfg["cols"], cfg["ifmap_kb"], cfg["filter_kb"],
                                 cfg["ofmap_kb"], bw)
    res, wall = analyse(m, n, k, arch, cfg["dataflow"])
    out = report(res, arch)
    out["mapper_wall_s"] = wall
    return out
