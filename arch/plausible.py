"""Plausibility bounds of arch parameters, by canonical unit, each with its source.

A value outside these bounds is not a design a simulator of real hardware can say anything
useful about (a 1 nHz clock gives a 10^16 s latency; 10^308 J/FLOP an infinite energy), so
:mod:`arch.schema` rejects it with a one-line error naming the field. Each bound sits one to
several orders of magnitude beyond the most extreme shipping part quoted in its source, so
exploratory designs stay well inside. Zero stays allowed where the field allows it (``ge=0``):
the bounds apply to the magnitude of non-zero values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bound:
    """``lo <= |value| <= hi`` for non-zero values of a field in ``unit``; ``source`` justifies
    the range."""

    lo: float
    hi: float
    source: str


#: bounds by canonical SI unit of the schema (``param(unit)``)
BOUNDS: dict[str, Bound] = {
    "Hz": Bound(1e6, 1e11, "fastest shipping processor clock 6.2 GHz (Intel Core i9-14900KS, "
                           "2024); slowest accelerator clocks ~100 MHz (edge NPUs, FPGA "
                           "engines): 1 MHz .. 100 GHz"),
    "B/s": Bound(1e6, 1e18, "largest on-chip bandwidth of a shipping chip 21 PB/s (Cerebras "
                            "WSE-3 SRAM, 2024); slowest link modelled, PCIe 1.0 x1 250 MB/s: "
                            "1 MB/s .. 1 EB/s"),
    "FLOP/s": Bound(1e6, 1e18, "largest single-chip peak 125 PFLOP/s (Cerebras WSE-3, 2024): "
                               "1 MFLOP/s .. 1 EFLOP/s"),
    "J/FLOP": Bound(1e-16, 1e-9, "Horowitz, 'Computing's energy problem', ISSCC 2014: 8-bit add "
                                 "0.03 pJ .. 32-bit FP multiply 3.7 pJ at 45 nm: 0.1 fJ .. 1 nJ"),
    "J": Bound(1e-16, 1e-6, "per-operation energies (Horowitz ISSCC 2014, 0.03-3.7 pJ per "
                            "arithmetic op at 45 nm), with room for multi-cycle operators: "
                            "0.1 fJ .. 1 uJ"),
    "J/bit": Bound(1e-16, 1e-9, "Horowitz ISSCC 2014: 8 kB SRAM read 0.16 pJ/bit .. DRAM "
                                "20-40 pJ/bit; off-board links tens of pJ/bit: 0.1 fJ .. 1 nJ "
                                "per bit"),
    "W": Bound(1e-6, 1e6, "DGX H100 system maximum 10.2 kW (NVIDIA DGX H100 datasheet); "
                          "Cerebras CS-3 23 kW: 1 uW .. 1 MW"),
    "B": Bound(1.0, 2.0**60, "largest memory behind one system: DGX GH200 144 TB (NVIDIA, "
                             "2023): 1 B .. 1 EiB"),
    "s": Bound(1e-15, 10.0, "shortest: 1 fs (the period of a 1 PHz clock); longest access "
                            "modelled: storage, HDD seek ~10 ms, NAND read ~100 us: up to 10 s"),
}

#: largest integer a count, size or cycle field may hold unless its field says less: an
#: integer the analytic models multiply by another such count still fits 64 bits
INT_MAX = 2**31 - 1
INT_SOURCE = "products of two such counts fit a signed 64-bit integer (numba int64)"

#: JEDEC timing fields, cycles: the longest is tREFI, 7.8 us = 12,480 cycles of DDR4-3200
#: (JESD79-4C Table 132); 2^20 cycles keeps every sum of timings far inside int64
DRAM_TIMING_MAX = 2**20
#: entries of a DRAM command queue or transaction queue (DRAMsim3's configs use 8-32; the
#: cycle kernel allocates every queue whole)
DRAM_QUEUE_MAX = 4096


def check(value: float, unit: str) -> str | None:
    """A one-line complaint when non-zero ``value`` (in ``unit``) leaves its bound, else None."""
    bound = BOUNDS.get(unit)
    if bound is None or value == 0:
        return None
    if not bound.lo <= abs(value) <= bound.hi:
        return (f"implausible value: expected {bound.lo:g} .. {bound.hi:g} {unit} "
                "(plausibility bound, arch/plausible.py)")
    return None
