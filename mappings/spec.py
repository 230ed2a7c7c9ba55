"""What a mapping maps onto: a spatial architecture as storage levels around a PE array.

Levels are listed outermost (DRAM) first. A level stores some operands (the others bypass it),
has a capacity in bytes per instance, a read/write port bandwidth in bytes per cycle, the width of
one read in bytes (``port_bytes``: an operand tile no wider than one read stays on the port's
output and feeds the MACs without being read again, as ZigZag assumes), energy per byte read and
written, and a number of instances (per-PE register files have one per PE, below the
spatial fan-out). The PE array is ``rows x cols`` MAC units; a MAC costs ``mac_energy`` J.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from arch import Arch

OPERANDS = ("I", "W", "O")  # input (ifmap), weight (filter), output (ofmap / partial sums)


@dataclass(frozen=True)
class Level:
    """One storage level. ``capacity`` in B per instance (``math.inf``: unbounded);
    ``bandwidth`` in B/cycle over all its operands (``math.inf``: unbounded); energies in J/B."""

    name: str
    operands: tuple[str, ...]
    capacity: float
    bandwidth: float
    read_energy: float
    write_energy: float
    per_pe: bool = False
    double_buffered: bool = False
    operand_capacity: tuple[tuple[str, float], ...] = ()  # separate per-operand buffers
    operand_energy: tuple[tuple[str, float, float], ...] = ()  # (operand, read J/B, write J/B)
    port_bytes: float = 0.0  # width of one read in B (0: one word of the operand)

    def holds(self, operand: str) -> bool:
        return operand in self.operands

    def energy_for(self, operand: str) -> tuple[float, float]:
        """(read, write) J/B for ``operand`` (per-operand override or the level's)."""
        for op, r, w in self.operand_energy:
            if op == operand:
                return r, w
        return self.read_energy, self.write_energy

    def capacity_for(self, operand: str) -> float | None:
        """Bytes reserved for ``operand`` when the level is split per operand, else None."""
        for op, cap in self.operand_capacity:
            if op == operand:
                return cap
        return None


@dataclass(frozen=True)
class SpatialArch:
    """Storage levels (outermost first) around a ``rows x cols`` MAC array."""

    name: str
    levels: tuple[Level, ...]
    rows: int
    cols: int
    mac_energy: float
    clock: float = 1e9
    word_bytes: tuple[tuple[str, float], ...] = (("I", 1.0), ("W", 1.0), ("O", 1.0))
    psum_bytes: float = 4.0

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    def bytes_of(self, operand: str) -> float:
        return dict(self.word_bytes)[operand]

    def level_index(self, name: str) -> int:
        for i, lev in enumerate(self.levels):
            if lev.name == name:
                return i
        raise KeyError(f"no level '{name}' in {self.name} "
                       f"({', '.join(lev.name for lev in self.levels)})")

    @property
    def fanout_index(self) -> int:
        """Index of the first per-PE level (the spatial fan-out sits just above it)."""
        for i, lev in enumerate(self.levels):
            if lev.per_pe:
                return i
        return len(self.levels)


def from_npu_arch(arch: Arch, array: int = 0) -> SpatialArch:
    """A three-level view (DRAM, SRAM split per operand, per-PE registers) of an ``npu`` arch:
    one array's PEs, the SRAM split by ``npu.sram_split``, energies from the arch's table."""
    npu = arch.npu
    dram, sram = arch.memory["dram"], arch.memory["sram"]
    e = arch.energy
    elem = 2.0 if npu.dtype in ("fp16", "bf16") else (1.0 if npu.dtype in ("int8", "fp8")
                                                       else 4.0)
    per_flop = e.compute.get(npu.dtype) or next(iter(e.compute.values()))
    dram_j = e.memory.get("dram", 0.0) * 8
    sram_j = e.memory.get("sram", 0.0) * 8
    frac = 0.5 if npu.double_buffered else 1.0
    s_if, s_f, s_of = npu.sram_split
    cap = sram.capacity / max(npu.arrays, 1)
    per_op = (("I", cap * s_if * frac), ("W", cap * s_f * frac), ("O", cap * s_of * frac))
    dram_bw = math.inf if npu.dram_unlimited else dram.bandwidth / npu.clock / max(npu.arrays, 1)
    levels = (
        Level("dram", OPERANDS, math.inf, dram_bw, dram_j, dram_j),
        Level("sram", OPERANDS, sum(c for _, c in per_op), sram.bandwidth / npu.clock /
              max(npu.arrays, 1), sram_j, sram_j, double_buffered=npu.double_buffered,
              operand_capacity=per_op),
        Level("pe", ("W", "O") if npu.dataflow == "ws" else
              (("I", "O") if npu.dataflow == "is" else ("O",)), elem + 4.0, math.inf,
              sram_j / 16, sram_j / 16, per_pe=True),
    )
    return SpatialArch(arch.name, levels, npu.array_rows, npu.array_cols, 2 * per_flop,
                       npu.clock, (("I", elem), ("W", elem), ("O", elem)), 4.0)
