"""Bank-level PIM command timing: all-bank GEMV sweeps on one channel, cycle by cycle.

A bank-level PIM channel (Newton / NeuPIMs / Samsung HBM-PIM / SK hynix AiM style) computes a
GEMV tile by tile. A *tile* is one row in every bank of a rank: the row holds a slice of the matrix
(weights, or a token's K/V), the channel's global buffer holds the matching slice of the input
vector. Per tile the controller issues:

* ``GACT`` — activate ``act_group`` banks at once; a rank takes ``banks/act_group`` of them,
  spaced by tFAW (each counts as four activations) and by tRP after the rank's last precharge;
* ``MAC`` — every bank reads one column and its unit multiplies ``lanes`` elements with the global
  buffer and accumulates; one every ``max(burst_cycle, tCCD_S, unit period)`` cycles, the first
  tRCD after the last GACT;
* ``RDRES`` — read one partial sum per bank out over the data bus (a burst), one per output held
  in the row;
* ``PRE`` — close the rank's rows after tRAS (from the last GACT) and tRTP (from the last column
  command); the next tile of the rank waits tRP.

``GWRITE`` fills the global buffer with the next input slice over the data bus (NewtonSim takes
``(tCCD_S + tCCD_L)`` per 32 B written). With ``double_buffered_gb`` the next slice is written
while the current one is used. Ranks (pseudo-channels) work in parallel; all commands share the
channel's command bus (one per cycle) and the data bus.

Timing rules follow the NeuPIMs artifact's NewtonSim (``extern/NewtonSim/src/timing.cc``):
G_ACT->G_ACT tFAW, G_ACT->COMP tRCDRD, COMP->COMP max(burst, tCCD_S). Command energy follows
its scaling of DRAMsim3's IDD energies (GACT = act_group x ACT, MAC = 4 x READ per the Newton
paper, RDRES and GWRITE = bytes moved / burst x READ).

:func:`sweep` runs one command stream; :func:`gemv_cost` maps a GEMV of ``outputs`` dot
products of length ``length`` onto tiles and returns cycles and energy, memoised by shape with a
linear-in-tiles fit (steady state) so thousands of requests cost a few dictionary lookups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from sim.micro.dram_config import DramConfig


@dataclass(frozen=True)
class PimConfig:
    """PIM units of a bank-level PIM DRAM (see ``arch/sections/pim.py`` for sources)."""

    lanes: int = 16                 # multipliers per unit (elements per MAC command)
    banks_per_unit: int = 1         # banks sharing one unit (HBM-PIM: 2)
    unit_period_ns: float = 0.0     # unit cycle time; 0: paced by the DRAM column timing
    elem_bytes: int = 2             # fp16 / bf16
    act_group: int = 4              # banks one GACT opens (tFAW-limited)
    row_buffers: int = 2            # 2: NeuPIMs dual row buffers (PIM and reads overlap)
    double_buffered_gb: bool = True
    gwrite_cycles_per_32B: int = 3  # NewtonSim: tCCD_S + tCCD_L per 32 B

    def mac_interval(self, cfg: DramConfig) -> int:
        dram = max(cfg.burst_cycle, cfg.tCCD_S, 1)
        unit = math.ceil(self.unit_period_ns / cfg.tCK - 1e-9) if self.unit_period_ns else 0
        return max(dram, unit)


@dataclass(frozen=True)
class SweepResult:
    """One command stream on one channel."""

    cycles: int
    tiles: int
    gacts: int
    macs: int
    rdres: int
    gwrites: int
    pres: int
    bus_commands: int
    data_bus_cycles: int

    def energy_pJ(self, cfg: DramConfig, pim: PimConfig) -> float:
        """Command energy by DRAMsim3's IDD method with NewtonSim's PIM scaling, in
        :meth:`~sim.micro.dram_config.DramConfig.energies_pJ`'s units (``cfg.joules``
        converts)."""
        e = cfg.energies_pJ()
        burst_bytes = cfg.request_bytes
        rdres_bytes = cfg.banks * cfg.ranks * pim.elem_bytes
        return (self.gacts * pim.act_group * e["act"]
                + self.macs * 4.0 * e["read"]
                + self.rdres * max(1.0, rdres_bytes / burst_bytes) * e["read"]
                + self.gwrites * (cfg.page_bytes / burst_bytes) * e["write"])


def sweep(cfg: DramConfig, pim: PimConfig, chunks: int, tiles_per_chunk: int,
          macs_per_tile: int, rdres_per_tile: int) -> SweepResult:
    """Cycle-level schedule of ``chunks`` input slices, each used by ``tiles_per_chunk`` tiles
    (tiles alternate over the channel's ranks, which proceed in parallel); the command bus takes
    the earliest-ready command each cycle. Returns when the last command completes. The loop
    is compiled (:mod:`sim.micro.pim_sweep_kernel`)."""
    import numpy as np

    from sim.micro import pim_sweep_kernel as K
    from sim.micro.dram_aot import kernels

    rdres = max(0, rdres_per_tile)
    per_out = [macs_per_tile // max(1, rdres)] * max(1, rdres)
    per_out[-1] += macs_per_tile - sum(per_out)
    prm = [0] * K.K_N
    prm[K.K_RANKS] = cfg.ranks
    prm[K.K_GROUPS] = max(1, cfg.banks // pim.act_group)
    prm[K.K_MAC_IV] = pim.mac_interval(cfg)
    prm[K.K_COL_IV] = max(cfg.burst_cycle, cfg.tCCD_S)
    prm[K.K_GW_CYCLES] = pim.gwrite_cycles_per_32B * max(1, cfg.page_bytes // 32)
    prm[K.K_RDRES] = rdres
    prm[K.K_CHUNKS] = chunks
    prm[K.K_TILES_PER_CHUNK] = tiles_per_chunk
    prm[K.K_HALVES] = 2 if pim.double_buffered_gb else 1
    prm[K.K_TFAW], prm[K.K_TRCDRD], prm[K.K_RL] = cfg.tFAW, cfg.tRCDRD, cfg.RL
    prm[K.K_TRAS], prm[K.K_AL], prm[K.K_TRTP] = cfg.tRAS, cfg.AL, cfg.tRTP
    prm[K.K_BURST], prm[K.K_READ_DELAY], prm[K.K_TRP] = cfg.burst_cycle, cfg.read_delay, cfg.tRP
    got = kernels().pim_sweep(np.array(prm, np.int64), np.array(per_out, np.int64)).tolist()
    counts = got[K.R_GACT:K.R_PRE + 1]
    return SweepResult(cycles=got[K.R_CYCLES], tiles=chunks * tiles_per_chunk,
                       gacts=got[K.R_GACT], macs=got[K.R_MAC], rdres=got[K.R_RDRES],
                       gwrites=got[K.R_GW], pres=got[K.R_PRE], bus_commands=sum(counts),
                       data_bus_cycles=got[K.R_DATA])


@lru_cache(maxsize=4096)
def tile_fit(cfg: DramConfig, pim: PimConfig, macs_per_tile: int,
             rdres_per_tile: int) -> tuple[float, float, SweepResult]:
    """``(fixed, per_tile)`` cycles of one chunk as ``fixed + per_tile * tiles`` (steady state,
    from schedules of 2R and 6R tiles) and the larger schedule (for command mixes)."""
    n1, n2 = 2 * cfg.ranks, 6 * cfg.ranks
    a = sweep(cfg, pim, 1, n1, macs_per_tile, rdres_per_tile)
    b = sweep(cfg, pim, 1, n2, macs_per_tile, rdres_per_tile)
    per_tile = (b.cycles - a.cycles) / (n2 - n1)
    fixed = a.cycles - per_tile * n1
    return fixed, per_tile, b


@dataclass(frozen=True)
class GemvCost:
    """One GEMV on one channel: cycles, energy and the command mix."""

    cycles: float
    seconds: float
    energy_J: float
    tiles: int
    macs: int
    useful_macs: int
    gwrites: int
    bus_busy: float        # fraction of command-bus cycles PIM takes
    data_busy: float       # fraction of data-bus cycles PIM takes

    @property
    def mac_utilization(self) -> float:
        return self.useful_macs / max(self.macs, 1)


@lru_cache(maxsize=65536)
def gemv_cost(cfg: DramConfig, pim: PimConfig, outputs: int, length: int,
              inputs: int = 1) -> GemvCost:
    """Cost of ``outputs`` dot products of ``length`` elements on one channel.

    Mapping: a bank row holds ``row_elems`` elements; a dot product longer than a row is split
    into ``ceil(length / row_elems)`` chunks (one GWRITE each, partial sums accumulate in the
    unit); shorter ones pack ``row_elems // length`` outputs per row (one RDRES each). Each tile
    covers one row of every bank of a rank. ``inputs`` distinct input vectors (e.g. one per
    attention head) each need their own chunks.
    """
    row_elems = cfg.page_bytes // pim.elem_bytes
    seg = min(length, row_elems)
    per_row = max(1, row_elems // seg)
    chunks_per_input = math.ceil(length / row_elems)
    outputs_per_input = math.ceil(outputs / inputs)
    banks = cfg.banks
    units = banks // pim.banks_per_unit
    tiles_per_chunk = math.ceil(outputs_per_input / (banks * per_row))
    elems_per_tile_bank = seg * min(per_row, math.ceil(outputs_per_input / banks))
    macs_per_tile = math.ceil(elems_per_tile_bank * pim.banks_per_unit / pim.lanes)
    rdres = min(per_row, math.ceil(outputs_per_input / banks))
    fixed, per_tile, mix = tile_fit(cfg, pim, max(1, macs_per_tile), max(1, rdres))
    chunks = inputs * chunks_per_input
    cycles = chunks * (fixed + per_tile * tiles_per_chunk)
    tiles = chunks * tiles_per_chunk
    macs = tiles * macs_per_tile * units * pim.lanes   # a unit's commands cover its banks
    useful = outputs * length
    e = cfg.energies_pJ()
    gw_pJ = (cfg.page_bytes / cfg.request_bytes) * e["write"]
    per_tile_pJ = (mix.energy_pJ(cfg, pim) - mix.gwrites * gw_pJ) / max(mix.tiles, 1)
    e_pJ = tiles * per_tile_pJ + chunks * gw_pJ
    return GemvCost(cycles=cycles, seconds=cycles * cfg.tCK * 1e-9, energy_J=cfg.joules(e_pJ),
                    tiles=tiles, macs=int(macs), useful_macs=int(useful), gwrites=chunks,
                    bus_busy=min(1.0, mix.bus_commands / max(mix.cycles, 1)),
                    data_busy=min(1.0, mix.data_bus_cycles / max(mix.cycles, 1)))


def peak_macs_per_s(cfg: DramConfig, pim: PimConfig, channels: int) -> float:
    """Peak multiply-accumulates per second of all units of ``channels`` channels."""
    units = cfg.banks * cfg.ranks // pim.banks_per_unit
    return channels * units * pim.lanes / (pim.mac_interval(cfg) * cfg.tCK * 1e-9)
