"""FPGA accelerator model (arch type ``fpga``; sections in ``arch/sections/fpga.py``).

The card (``fpga``) gives resources and HBM; the design (``fpga_design``) the engines built from
them. Per op, at tile fidelity (docs/fpga.md)::

    matrix peak  = design.dsps x macs_per_dsp[engine dtype] x 2 x clock x (M/N if the weight is
                   stored N:M sparse and the engine skips that pattern)
    vector rate  = vector_lanes x clock / op_cycles[operator]
    HBM rate     = hbm_channels x 1 / ((1 - x) / same + x / cross), where
                   same  = min(channel_bandwidth x same_channel_efficiency, port),
                   cross = min(channel_bandwidth x cross_channel_efficiency, port),
                   port  = port_bits / 8 x hbm_port_clock, x = cross_channel_fraction
    HBM bytes    = the op's bytes; with activations_on_chip, in decode only its weights and KV
                   cache (activations stay in BRAM/URAM when they fit fpga.onchip_bytes)
    latency      = op_overhead_cycles / clock + max(t_matrix + t_vector, HBM bytes / HBM rate)

The engine dtype of a contraction is the narrower of its two operands' base datatypes when
both are integers (int8 activations x int2 weights -> ``int2``), else the floating one; a
datatype the design does not list falls back to the next wider one it lists. FLOPs stay the
trace's dense count; a 2:4 sparse engine does half the MACs (time and energy). Energy: MACs x
J/FLOP of the engine dtype, vector ops at the fp16 rate, HBM bits, on-chip bits of the
activations kept on chip; static power x time is added by the run. Units: s, B, B/s, FLOP/s, J.
"""

from __future__ import annotations

from typing import Any

from arch import Arch
from sim.devices.base import Cost, Device, SimError, register_device
from workloads.einsum import DTYPE_BYTES, Cascade, Einsum, TensorRef, packed_format
from workloads.trace import ATTENTION, COLLECTIVE, MATMUL, Op

#: engine datatypes from narrow to wide: a missing rate falls back to the next wider one
WIDENING = ("int2", "int4", "int8", "fp16", "bf16", "fp32")
OFFCHIP_ROLES = ("weight", "kv_cache")


def base_dtype(dtype: str) -> str:
    """The element datatype of ``dtype`` (``int2`` for the packed ``int2/g128/2:4``)."""
    packed = packed_format(dtype)
    return packed[0] if packed else dtype


def sparsity_of(dtype: str) -> tuple[int, int]:
    """(N, M) of a packed N:M format, (1, 1) for a dense one."""
    packed = packed_format(dtype)
    return packed[2] if packed else (1, 1)


def _is_int(dtype: str) -> bool:
    return dtype.startswith("int") or dtype.startswith("uint")


def engine_dtype(a: str, b: str) -> str:
    """The matrix engine's datatype for operands ``a`` x ``b`` (base datatypes)."""
    a, b = base_dtype(a), base_dtype(b)
    if _is_int(a) and _is_int(b):
        return a if DTYPE_BYTES.get(a, 4) <= DTYPE_BYTES.get(b, 4) else b
    floats = [x for x in (a, b) if not _is_int(x)]
    return max(floats, key=lambda x: DTYPE_BYTES.get(x, 4))


def _tensors(compute: Any) -> list[tuple[TensorRef, float]]:
    """(tensor, bytes) of the tensors an op moves across its boundary (as ``min_bytes``)."""
    if isinstance(compute, Einsum):
        seen: dict[str, TensorRef] = {}
        for t in compute.inputs:
            seen.setdefault(t.name, t)
        out = [(t, t.nbytes(compute.size)) for t in seen.values()]
        return out + [(compute.output, compute.output.nbytes(compute.size))]
    if isinstance(compute, Cascade):
        sizes = compute.size
        outs = {e.output.name: e.output for e in compute.einsums
                if e.output.name in compute.final_outputs}
        return [(t, t.nbytes(sizes)) for t in (*compute.external_inputs, *outs.values())]
    return []


def _contractions(compute: Any) -> list[Einsum]:
    if isinstance(compute, Einsum):
        return [compute] if compute.is_contraction else []
    if isinstance(compute, Cascade):
        return [e for e in compute.einsums if e.is_contraction]
    return []


def _op_counts(compute: Any, skip: list[Einsum]) -> dict[str, int]:
    """Operator applications of the einsums of ``compute`` not in ``skip``."""
    einsums = [compute] if isinstance(compute, Einsum) else list(getattr(compute, "einsums", ()))
    counts: dict[str, int] = {}
    for e in einsums:
        if any(e is s for s in skip):
            continue
        for op, n in e.op_counts.items():
            counts[op] = counts.get(op, 0) + n
    return counts


@register_device
class FpgaDevice(Device):
    """An accelerator design on an FPGA card (arch type ``fpga``)."""

    arch_type = "fpga"

    def __init__(self, arch: Arch, fidelity: str = "tile"):
        super().__init__(arch, fidelity)
        self.card = arch.fpga
        self.d = arch.fpga_design
        self.hbm = arch.memory["hbm"]
        self.energy_table = arch.energy

    # --- rates -------------------------------------------------------------------------------
    def port_bandwidth(self) -> float:
        """Bytes/s one AXI port moves at the design's port clock."""
        return self.card.hbm.port_bits / 8 * self.d.hbm_port_clock

    def hbm_bandwidth(self) -> float:
        """Bytes/s the design streams from HBM (channels, port clock, switch crossings)."""
        h, port = self.card.hbm, self.port_bandwidth()
        same = min(h.channel_bandwidth * h.same_channel_efficiency, port)
        cross = min(h.channel_bandwidth * h.cross_channel_efficiency, port)
        x = self.d.cross_channel_fraction
        return self.d.hbm_channels / ((1 - x) / same + x / cross)

    def macs_per_dsp(self, dtype: str) -> tuple[str, float]:
        """(datatype used, MACs per DSP per cycle) for engine datatype ``dtype``."""
        rates = self.d.macs_per_dsp
        start = WIDENING.index(dtype) if dtype in WIDENING else 0
        for dt in WIDENING[start:]:
            if rates.get(dt):
                return dt, rates[dt]
        raise SimError(f"{self.arch.name}: fpga_design.macs_per_dsp lists no datatype as wide "
                       f"as {dtype} (lists {', '.join(rates)})")

    def matrix_peak(self, dtype: str, sparse: tuple[int, int] = (1, 1)) -> float:
        """Dense-equivalent FLOP/s of the matrix engine for ``dtype`` operands; a weight stored
        ``sparse`` = (N, M) runs M/N times faster when the engine skips that pattern."""
        _, rate = self.macs_per_dsp(dtype)
        return self.d.dsps * rate * 2 * self.d.clock * self.speedup(sparse)

    def speedup(self, sparse: tuple[int, int]) -> float:
        """M/N when the engine's structured sparsity is ``sparse`` = (N, M), else 1."""
        if sparse != (1, 1) and self.d.sparsity == f"{sparse[0]}:{sparse[1]}":
            return sparse[1] / sparse[0]
        return 1.0

    def vector_peak(self) -> float:
        """Single-cycle operations per second of the vector engine."""
        return self.d.vector_lanes * self.d.clock

    def _matmul_key(self, e: Einsum) -> tuple[str, tuple[int, int]]:
        a, b = e.inputs
        return engine_dtype(a.dtype, b.dtype), max(sparsity_of(a.dtype), sparsity_of(b.dtype),
                                                   key=lambda s: s[1] / s[0])

    def peak_flops(self, op: Op) -> float:
        if op.kind in (MATMUL, ATTENTION):
            cons = _contractions(op.compute)
            if cons:
                return max(self.matrix_peak(*self._matmul_key(e)) for e in cons)
        return self.vector_peak()

    def peak_bandwidth(self) -> float:
        return self.hbm.bandwidth

    def sustained_bandwidth(self) -> float:
        return self.hbm_bandwidth()

    def memory_capacity(self) -> float:
        return self.hbm.capacity

    def static_power(self) -> float:
        return self.energy_table.static_power

    def roof_lines(self, dtype: str) -> dict[str, float]:
        roofs = {}
        for dt in self.d.macs_per_dsp:
            roofs[f"matrix {dt}"] = self.matrix_peak(dt)
            if self.d.sparsity:
                n, _, m = self.d.sparsity.partition(":")
                roofs[f"matrix {dt} {self.d.sparsity}"] = self.matrix_peak(dt, (int(n), int(m)))
        roofs["vector"] = self.vector_peak()
        return roofs

    def describe(self, dtype: str) -> dict[str, Any]:
        info = super().describe(dtype)
        info.update(hbm_design_Bps=self.hbm_bandwidth(), port_Bps=self.port_bandwidth(),
                    onchip_B=self.card.onchip_bytes, dsps_used=self.d.dsps, dsps=self.card.dsps)
        return info

    # --- estimates ---------------------------------------------------------------------------
    def hbm_bytes(self, op: Op) -> float:
        """Bytes one shard moves over HBM: all of them, or with activations kept on chip in
        decode (when they fit the card's BRAM + URAM) only its weights and KV cache."""
        shards = max(op.shards, 1)
        if not (self.d.activations_on_chip and op.phase == "decode"):
            return op.bytes / shards
        tensors = _tensors(op.compute)
        offchip = float(sum(nb for t, nb in tensors if t.role in OFFCHIP_ROLES))
        if sum(nb for t, nb in tensors) - offchip > self.card.onchip_bytes:
            return op.bytes / shards
        return offchip

    def _compute(self, op: Op) -> tuple[float, float, float, float, str]:
        """(t_matrix, t_vector, matrix J, vector J, engine dtype) of one shard."""
        comp, d = op.compute, self.d
        per_flop = self.energy_table.compute
        t_matrix = e_matrix = 0.0
        engine = ""
        cons = _contractions(comp) if op.kind in (MATMUL, ATTENTION) else []
        for e in cons:
            key, sparse = self._matmul_key(e)
            used, _ = self.macs_per_dsp(key)
            t_matrix += e.flops / (self.matrix_peak(key, sparse) * d.efficiency)
            j = per_flop.get(used) or per_flop.get(key) or per_flop.get("int8", 0.0)
            e_matrix += e.flops / self.speedup(sparse) * j
            engine = f"{used}{' ' + d.sparsity if self.speedup(sparse) > 1 else ''}"
        cycles = sum(n * d.op_cycles.get(name, 1.0) for name, n in _op_counts(comp, cons).items()
                     if name not in ("copy", "select"))
        t_vector = cycles / (d.vector_lanes * d.clock)
        vec_flops = sum(n for name, n in _op_counts(comp, cons).items())
        e_vector = vec_flops * (per_flop.get("fp16") or 0.0)
        return t_matrix, t_vector, e_matrix, e_vector, engine or "vector"

    def _estimate(self, op: Op) -> Cost:
        if op.kind == COLLECTIVE:
            raise SimError(f"op {op.name}: the fpga model runs on one card (no links for "
                           "collectives); use --tp 1")
        shards = max(op.shards, 1)
        flops, nbytes = op.flops / shards, op.bytes / shards
        roof = self.roofline(op)
        hbm = self.hbm_bytes(op)
        t_matrix, t_vector, e_matrix, e_vector, engine = self._compute(op)
        mem = self.energy_table.memory
        energy = {"compute": e_matrix + e_vector,
                  "hbm": hbm * 8 * mem.get("hbm", 0.0),
                  "onchip": max(nbytes - hbm, 0.0) * 8 * mem.get("onchip", 0.0)}
        if self.fidelity == "roofline":
            bound = "compute" if flops / self.peak_flops(op) >= nbytes / self.hbm.bandwidth \
                else "memory"
            return Cost(roof, roof, bound, energy, nbytes, {"engine": engine})
        t_compute = t_matrix + t_vector
        t_memory = hbm / self.hbm_bandwidth()
        overhead = self.d.op_overhead_cycles / self.d.clock
        latency = overhead + max(t_compute, t_memory)
        if max(t_compute, t_memory) < overhead:
            bound = "control"
        else:
            bound = "compute" if t_compute >= t_memory else "memory"
        detail = {"engine": engine, "t_matrix_s": t_matrix, "t_vector_s": t_vector,
                  "t_memory_s": t_memory, "overhead_s": overhead, "hbm_bytes": hbm,
                  "hbm_Bps": self.hbm_bandwidth()}
        return Cost(max(latency, roof), roof, bound, energy, hbm, detail)
