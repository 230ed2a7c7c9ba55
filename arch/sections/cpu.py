"""The CPU section: a host processor's cores, SIMD and matrix-engine rates, and per-core memory
parallelism (``cpu``). Its DDR lives in the ``memory`` section (level ``dram``), energy per
action in ``energy``.

Peaks are per core per clock, as the vendors publish them: AVX-512 fp32 is 2 FMA ports x 16
lanes x 2 = 64 FLOP per cycle per core; Intel AMX is 1024 bf16 or 2048 int8 operations per
cycle per core. Whole-chip peaks are ``sockets x cores x clock x rate``.

A core keeps at most ``outstanding_misses`` cache lines of ``line_size`` bytes in flight, so by
Little's law one core streams at most ``outstanding_misses x line_size / memory.dram.latency``
bytes/s; a memory-bound kernel on ``n`` cores moves at most ``min(DDR sustained, n x that)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from arch.schema import param
from arch.spec import register_device_type, register_section


@register_section("cpu")
@dataclass(kw_only=True)
class CpuSpec:
    """Compute side of a host CPU (one or more sockets of identical cores)."""

    sockets: int = param(gt=0, default=1, doc="sockets")
    cores: int = param(gt=0, doc="cores per socket")
    clock: float = param("Hz", gt=0, doc="all-core clock in Hz under sustained SIMD / matrix "
                                         "load")
    vector_flops_per_cycle: dict[str, float] = param(
        gt=0, doc="SIMD (AVX-512 / AVX2) FLOP (or integer op) per cycle per core, by dtype")
    matrix_flops_per_cycle: dict[str, float] = param(
        gt=0, default_factory=dict,
        doc="matrix-engine (Intel AMX tile) FLOP or op per cycle per core, by dtype; "
            "empty: no matrix engine")
    matrix_efficiency: float = param(gt=0, le=1, default=1.0,
                                     doc="sustained fraction of the matrix-engine peak in a "
                                         "large GEMM (tile loads, clock, threading)")
    vector_efficiency: float = param(gt=0, le=1, default=1.0,
                                     doc="sustained fraction of the SIMD peak in a vectorised "
                                         "loop that is not memory-bound")
    outstanding_misses: int = param(gt=0, doc="cache-line misses one core keeps in flight "
                                              "(L1D fill buffers)")
    line_size: float = param("B", gt=0, default=64.0, doc="cache-line size in bytes")
    fork_join: float = param("s", ge=0, default=0.0,
                             doc="fixed cost of one parallel op: waking the thread pool, "
                                 "splitting the work and the closing barrier, in seconds")

    def check_arch(self, arch) -> tuple[str, str] | None:
        memory = arch.sections.get("memory", {})
        if "dram" not in memory:
            return ("memory.dram", "missing required memory level for a cpu arch (the "
                                   "socket's DDR: capacity, bandwidth, latency)")
        if memory["dram"].latency <= 0:
            return ("memory.dram.latency", "a cpu arch needs the DRAM load-to-use latency "
                                           "(> 0 s) for its per-core bandwidth limit")
        return None


register_device_type("cpu", required=("cpu", "memory", "energy"),
                     optional=("interconnect", "system"))
