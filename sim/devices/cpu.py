"""Host-CPU device model (arch type ``cpu``): roofline, or tile level.

Peaks (FLOP/s) are ``sockets x cores x clock x rate per cycle per core``: a matmul (or fused
attention) in a dtype the matrix engine takes (Intel AMX: bf16, int8) runs on it, everything
else on the SIMD units (AVX-512), falling back to the fp32 rate for a dtype the SIMD units lack.

Tile fidelity, per op (the work spread over every core, one parallel region)::

    t_compute = FLOPs / (peak x efficiency of the engine)
    t_memory  = bytes / min(DDR peak x efficiency, cores x outstanding_misses x line / latency)
    latency   = fork_join + max(t_compute, t_memory)

The second term of the memory bound is Little's law per core (a core keeps
``outstanding_misses`` lines in flight for one DRAM latency), so few cores cannot saturate the
DDR. ``Cost.detail`` carries ``t_compute_s``, ``t_memory_s`` and ``fork_join_s`` (seconds), so
the system engine can keep the compute part and charge the memory part to the tiers where an
op's data lives (host DDR, CXL). Energy: FLOPs x J/FLOP of the dtype, DRAM bits x J/bit.
Units: seconds, bytes, bytes/s, FLOP/s, joules.
"""

from __future__ import annotations

from arch import Arch
from sim.devices.base import Cost, Device, SimError, op_dtype, register_device
from workloads.trace import ATTENTION, COLLECTIVE, MATMUL, Op


@register_device
class CpuDevice(Device):
    """A host CPU described by an arch of type ``cpu`` (its DDR in ``memory.dram``)."""

    arch_type = "cpu"

    def __init__(self, arch: Arch, fidelity: str = "tile"):
        super().__init__(arch, fidelity)
        self.c = arch.cpu
        self.dram = arch.memory["dram"]
        self.energy_table = arch.energy
        self._engines: dict[tuple[str, str], tuple[bool, float]] = {}   # _engine

    # --- peaks -------------------------------------------------------------------------------
    @property
    def total_cores(self) -> int:
        """Cores over all sockets."""
        return self.c.sockets * self.c.cores

    def _chip(self, per_cycle: float) -> float:
        return self.total_cores * self.c.clock * per_cycle

    def vector_peak(self, dtype: str) -> float:
        """SIMD peak in FLOP/s for ``dtype`` (the fp32 rate for a dtype the SIMD units lack)."""
        rates = self.c.vector_flops_per_cycle
        rate = rates.get(dtype) or rates.get("fp32")
        if not rate:
            raise SimError(f"{self.arch.name}: cpu.vector_flops_per_cycle has neither {dtype} "
                           "nor fp32")
        return self._chip(rate)

    def matrix_peak(self, dtype: str) -> float | None:
        """Matrix-engine (AMX) peak in FLOP/s for ``dtype``; None when it does not take it."""
        rate = self.c.matrix_flops_per_cycle.get(dtype)
        return self._chip(rate) if rate else None

    def on_matrix_engine(self, op: Op) -> bool:
        """Whether ``op`` runs on the matrix engine (a matmul or attention in one of its
        dtypes)."""
        return self._engine(op.kind, op_dtype(op))[0]

    def peak_flops(self, op: Op) -> float:
        return self._engine(op.kind, op_dtype(op))[1]

    def _engine(self, kind: str, dtype: str) -> tuple[bool, float]:
        """(on the matrix engine, peak FLOP/s) of an op of ``kind`` in ``dtype``, once per
        pair (a hosted decode prices three attention ops a step)."""
        key = (kind, dtype)
        got = self._engines.get(key)
        if got is None:
            matrix = kind in (MATMUL, ATTENTION) and self.matrix_peak(dtype) is not None
            got = self._engines[key] = (matrix, (self.matrix_peak(dtype) or 0.0) if matrix
                                        else self.vector_peak(dtype))
        return got

    def peak_bandwidth(self) -> float:
        return self.dram.bandwidth

    def per_core_bandwidth(self) -> float:
        """Bytes/s one core can stream: outstanding misses x line size / DRAM latency."""
        return self.c.outstanding_misses * self.c.line_size / self.dram.latency

    def stream_bandwidth(self, cores: int | None = None) -> float:
        """Bytes/s a streaming op on ``cores`` cores (default all) reaches from local DDR:
        min(DDR peak x efficiency, cores x per-core limit)."""
        n = self.total_cores if cores is None else cores
        return min(self.dram.bandwidth * self.dram.efficiency, n * self.per_core_bandwidth())

    def sustained_bandwidth(self) -> float:
        return self.stream_bandwidth()

    def memory_capacity(self) -> float:
        return self.dram.capacity

    def static_power(self) -> float:
        return self.energy_table.static_power

    def roof_lines(self, dtype: str) -> dict[str, float]:
        roofs = {f"vector {dtype}": self.vector_peak(dtype)}
        matrix = self.matrix_peak(dtype)
        if matrix:
            roofs[f"matrix {dtype}"] = matrix
        return roofs

    # --- estimates ---------------------------------------------------------------------------
    def _energy(self, flops: float, dtype: str, dram_bytes: float) -> dict[str, float]:
        table = self.energy_table
        per_flop = table.compute.get(dtype) or table.compute.get("fp32", 0.0)
        return {"compute": flops * per_flop,
                "dram": dram_bytes * 8 * table.memory.get("dram", 0.0)}

    def _estimate(self, op: Op) -> Cost:
        if op.kind == COLLECTIVE:
            raise SimError(f"op {op.name}: the cpu model runs no collectives (a host CPU "
                           "takes part in them through its links, not as a compute op)")
        shards = max(op.shards, 1)
        flops, nbytes, dtype = op.flops / shards, op.bytes / shards, op_dtype(op)
        roof = self.roofline(op)
        energy = self._energy(flops, dtype, nbytes)
        matrix = self.on_matrix_engine(op)
        engine = "matrix" if matrix else "vector"
        peak = self.peak_flops(op)
        if self.fidelity == "roofline":
            bound = "compute" if flops / peak >= nbytes / self.peak_bandwidth() else "memory"
            detail = {"engine": engine, "t_compute_s": flops / peak,
                      "t_memory_s": nbytes / self.peak_bandwidth(), "fork_join_s": 0.0}
            return Cost(roof, roof, bound, energy, nbytes, detail)
        eff = self.c.matrix_efficiency if matrix else self.c.vector_efficiency
        t_compute = flops / (peak * eff)
        bandwidth = self.stream_bandwidth()
        t_memory = nbytes / bandwidth
        latency = self.c.fork_join + max(t_compute, t_memory)
        if t_compute >= t_memory:
            bound = "compute"
        elif bandwidth < self.dram.bandwidth * self.dram.efficiency:
            bound = "memory (per-core)"
        else:
            bound = "memory"
        detail = {"engine": engine, "t_compute_s": t_compute, "t_memory_s": t_memory,
                  "fork_join_s": self.c.fork_join, "bandwidth_Bps": bandwidth,
                  "cores": self.total_cores}
        return Cost(max(latency, roof), roof, bound, energy, nbytes, detail)
