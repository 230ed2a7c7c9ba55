"""Cycle fidelity of a bank-level PIM GEMV: the whole command schedule, not a fit.

:func:`sim.micro.dram_pim.gemv_cost` (tile fidelity) maps a GEMV onto tiles and chunks, runs
two short schedules (2R and 6R tiles of one chunk) and extends them linearly to the GEMV's
size. :func:`gemv_cycle_cost` uses the same mapping and runs the GEMV's *entire* command stream
(every chunk's GWRITE, every tile's GACTs, MACs, RDRES and PRE, across chunks, under the
channel's command and data buses) through :func:`sim.micro.dram_pim.sweep`; the energy is that
schedule's own command mix. Memoised per distinct shape, so a model pays once per shape.
"""

from __future__ import annotations

import math
from functools import lru_cache

from sim.micro.dram_config import DramConfig
from sim.micro.dram_pim import GemvCost, PimConfig, sweep


def gemv_mapping(cfg: DramConfig, pim: PimConfig, outputs: int, length: int,
                 inputs: int = 1) -> dict:
    """The tile/chunk mapping of :func:`sim.micro.dram_pim.gemv_cost` (same rules)."""
    row_elems = cfg.page_bytes // pim.elem_bytes
    seg = min(length, row_elems)
    per_row = max(1, row_elems // seg)
    outputs_per_input = math.ceil(outputs / inputs)
    banks = cfg.banks
    tiles_per_chunk = math.ceil(outputs_per_input / (banks * per_row))
    elems_per_tile_bank = seg * min(per_row, math.ceil(outputs_per_input / banks))
    return {"chunks": inputs * math.ceil(length / row_elems),
            "tiles_per_chunk": tiles_per_chunk,
            "macs_per_tile": max(1, math.ceil(elems_per_tile_bank * pim.banks_per_unit
                                              / pim.lanes)),
            "rdres": max(1, min(per_row, math.ceil(outputs_per_input / banks)))}


#: schedules above this many commands are refused (~0.5 M commands per CPU second: ~40 s)
MAX_COMMANDS = 20_000_000


def schedule_commands(cfg: DramConfig, pim: PimConfig, mp: dict) -> int:
    """Commands the full schedule of mapping ``mp`` issues on one channel."""
    groups = max(1, cfg.banks // pim.act_group)
    per_tile = groups + mp["macs_per_tile"] + mp["rdres"] + 1
    return mp["chunks"] * (1 + mp["tiles_per_chunk"] * per_tile)


class ScheduleTooLong(ValueError):
    """A GEMV whose full command schedule exceeds :data:`MAX_COMMANDS`."""


@lru_cache(maxsize=65536)
def gemv_cycle_cost(cfg: DramConfig, pim: PimConfig, outputs: int, length: int,
                    inputs: int = 1) -> GemvCost:
    """Cycles and energy of ``outputs`` dot products of ``length`` on one channel, from the
    full command schedule (see the module docstring)."""
    mp = gemv_mapping(cfg, pim, outputs, length, inputs)
    n_cmd = schedule_commands(cfg, pim, mp)
    if n_cmd > MAX_COMMANDS:
        raise ScheduleTooLong(f"a PIM GEMV of {outputs} x {length} ({inputs} input vectors) "
                              f"issues {n_cmd:,} commands per channel, above the cycle "
                              f"level's {MAX_COMMANDS:,}")
    res = sweep(cfg, pim, mp["chunks"], mp["tiles_per_chunk"], mp["macs_per_tile"],
                mp["rdres"])
    units = cfg.banks // pim.banks_per_unit
    macs = res.tiles * mp["macs_per_tile"] * units * pim.lanes   # a unit's commands cover its banks
    return GemvCost(cycles=float(res.cycles), seconds=res.cycles * cfg.tCK * 1e-9,
                    energy_J=cfg.joules(res.energy_pJ(cfg, pim)), tiles=res.tiles, macs=int(macs),
                    useful_macs=int(outputs * length), gwrites=res.gwrites,
                    bus_busy=min(1.0, res.bus_commands / max(res.cycles, 1)),
                    data_busy=min(1.0, res.data_bus_cycles / max(res.cycles, 1)))
