"""GPU device model: roofline, or tile level (CTA tiles, waves over SMs, L2 reuse, split-K).

Tile fidelity, per kernel:

* **GEMM** — for each candidate CTA tile (``gpu.gemm_tiles``) that fits shared memory and each
  split-K factor, the output is cut into tiles, the tiles run in waves of
  ``sm_count * ctas_per_sm``; a wave takes the longest of its tensor-core time (every tile
  computes its full, padded shape: wave and tile quantisation), its HBM traffic at the
  achievable bandwidth and its L2 traffic at L2 bandwidth. HBM traffic assumes L2 holds the
  A and B panels one wave touches (whole operands when they fit). The library is assumed to pick
  the fastest candidate, as cuBLAS heuristics aim to. Split-K adds a reduction pass.
* **Vector ops** (norms, softmax, activations) — one kernel streaming its minimum bytes at the
  achievable HBM bandwidth, or its FLOPs on the CUDA cores, whichever is slower, and never
  faster than one memory latency.
* **Collectives** — ring algorithms over the intra-node link: per-step latency plus bytes over
  link bandwidth.

Every kernel adds ``gpu.launch_overhead``. Energy: FLOPs × pJ/FLOP of the dtype, HBM and L2
bits × pJ/bit, link bits × pJ/bit (static power is charged by the engine over the makespan).
"""

from __future__ import annotations

import math
from functools import lru_cache

from arch import Arch
from sim.devices.base import (
    Cost,
    Device,
    SimError,
    collective_min_bytes,
    op_dtype,
    register_device,
)
from workloads.einsum import dtype_bytes
from workloads.trace import ATTENTION, COLLECTIVE, MATMUL, Op

SPLIT_K_FACTORS = (1, 2, 3, 4, 6, 8, 12, 16)


@register_device
class GpuDevice(Device):
    """An NVIDIA-style GPU described by an arch of type ``gpu``."""

    arch_type = "gpu"

    def __init__(self, arch: Arch, fidelity: str = "tile"):
        super().__init__(arch, fidelity)
        self.g = arch.gpu
        self.hbm = arch.memory["hbm"]
        self.l2 = arch.memory["l2"]
        self.energy_table = arch.energy
        links = arch.sections.get("interconnect", {})
        system = arch.sections.get("system")
        link_name = system.intra_node_link if system and system.intra_node_link else ""
        self.link = links.get(link_name) if link_name else None
        self.link_name = link_name

    # --- peaks -------------------------------------------------------------------------------
    def tensor_peak(self, dtype: str) -> float | None:
        return self.g.tensor_flops.get(dtype)

    def vector_peak(self, dtype: str) -> float:
        peak = self.g.vector_flops.get(dtype) or self.g.vector_flops.get("fp32")
        if not peak:
            raise SimError(f"{self.arch.origin or self.arch.name}: gpu.vector_flops has no entry "
                           f"for '{dtype}' or fp32")
        return peak

    def peak_flops(self, op: Op) -> float:
        dtype = op_dtype(op)
        if op.kind in (MATMUL, ATTENTION):
            return self.tensor_peak(dtype) or self.vector_peak(dtype)
        return self.vector_peak(dtype)

    def peak_bandwidth(self) -> float:
        return self.hbm.bandwidth

    def link_bandwidth(self) -> float:
        return self.link.bandwidth if self.link else 0.0

    def memory_capacity(self) -> float:
        return self.hbm.capacity

    def static_power(self) -> float:
        return self.energy_table.static_power

    def roof_lines(self, dtype: str) -> dict[str, float]:
        roofs = {f"vector {dtype}": self.vector_peak(dtype)}
        if self.tensor_peak(dtype):
            roofs[f"tensor {dtype}"] = self.tensor_peak(dtype)
        return roofs

    # --- energy ------------------------------------------------------------------------------
    def _energy(self, flops: float, dtype: str, dram_bytes: float, l2_bytes: float = 0.0,
                link_bytes: float = 0.0) -> dict[str, float]:
        table = self.energy_table
        per_flop = table.compute.get(dtype) or table.compute.get("fp32", 0.0)
        out = {"compute": flops * per_flop,
               "hbm": dram_bytes * 8 * table.memory.get("hbm", 0.0)}
        if l2_bytes:
            out["l2"] = l2_bytes * 8 * table.memory.get("l2", 0.0)
        if link_bytes:
            out["link"] = link_bytes * 8 * table.link.get(self.link_name, 0.0)
        return out

    # --- estimates ---------------------------------------------------------------------------
    def _estimate(self, op: Op) -> Cost:
        if op.kind == COLLECTIVE:
            return self._collective(op)
        roof = self.roofline(op)
        shards = max(op.shards, 1)
        flops, nbytes, dtype = op.flops / shards, op.bytes / shards, op_dtype(op)
        if self.fidelity == "roofline":
            bound = "compute" if flops / self.peak_flops(op) >= nbytes / self.peak_bandwidth() \
                else "memory"
            return Cost(roof, roof, bound, self._energy(flops, dtype, nbytes), nbytes)
        if op.kind == MATMUL and op.compute is not None and op.compute.is_contraction \
                and self.tensor_peak(dtype):
            b, m, n, k = op.compute.gemm_shape
            a_b, b_b, c_b = _operand_bytes(op)
            best = self._gemm(b, m, n, k, dtype, a_b, b_b, c_b)
            latency = max(best["time"], roof)
            energy = self._energy(flops, dtype, best["dram_bytes"], best["l2_bytes"])
            return Cost(latency, roof, best["bound"], energy, best["dram_bytes"],
                        {k_: v for k_, v in best.items() if k_ not in ("time",)})
        return self._streaming(op, flops, nbytes, dtype, roof)

    def _streaming(self, op: Op, flops: float, nbytes: float, dtype: str, roof: float) -> Cost:
        """A kernel that streams its operands once (vector ops, fused attention, GEMV fallback)."""
        peak = self.peak_flops(op)
        t_compute = flops / peak
        t_memory = nbytes / (self.hbm.bandwidth * self.hbm.efficiency)
        t_latency = self.hbm.latency
        body = max(t_compute, t_memory, t_latency)
        bound = "compute" if body == t_compute else ("memory" if body == t_memory else "latency")
        latency = max(self.g.launch_overhead + body, roof)
        if self.g.launch_overhead > body:
            bound = "launch"
        return Cost(latency, roof, bound, self._energy(flops, dtype, nbytes), nbytes,
                    {"t_compute": t_compute, "t_memory": t_memory})

    def _gemm(self, batch: int, m: int, n: int, k: int, dtype: str, a_bytes: float,
              b_bytes: float, c_bytes: float) -> dict:
        g = self.g
        return _best_gemm(
            batch, m, n, k, dtype_bytes(dtype), a_bytes, b_bytes, c_bytes,
            tuple(tuple(t) for t in g.gemm_tiles), g.sm_count, g.ctas_per_sm,
            self.tensor_peak(dtype) * g.tensor_efficiency, self.hbm.bandwidth * self.hbm.efficiency,
            self.l2.bandwidth * self.l2.efficiency, self.l2.capacity, g.smem_per_sm,
            g.launch_overhead, self.hbm.latency)

    def _collective(self, op: Op) -> Cost:
        c = op.collective
        if c is None or c.group <= 1:
            return Cost(0.0, 0.0, "none")
        if self.link is None:
            raise SimError(f"{self.arch.origin or self.arch.name}: tensor parallelism needs "
                           "system.intra_node_link naming a link in interconnect")
        roof = self.roofline(op)
        sent = collective_min_bytes(c.kind, c.bytes_per_rank, c.group)
        if self.fidelity == "roofline":
            return Cost(roof, roof, "link", self._energy(0, c.dtype, 0, link_bytes=sent), 0.0)
        steps = 2 * (c.group - 1) if c.kind == "allreduce" else (c.group - 1)
        t = self.g.launch_overhead + steps * self.link.latency + \
            sent / (self.link.bandwidth * self.link.efficiency)
        # the reduction itself reads and writes the buffer in HBM on every step
        hbm_bytes = 3 * sent if c.kind in ("allreduce", "reducescatter") else sent
        energy = self._energy(c.reduce_flops / c.group, c.dtype, hbm_bytes, link_bytes=sent)
        return Cost(max(t, roof), roof, "link", energy, hbm_bytes, {"steps": steps})


def _operand_bytes(op: Op) -> tuple[float, float, float]:
    e = op.compute
    a, b = e.inputs
    return a.nbytes(e.size), b.nbytes(e.size), e.output.nbytes(e.size)


@lru_cache(maxsize=65536)
def _best_gemm(batch: int, m: int, n: int, k: int, elem: float, a_bytes: float, b_bytes: float,
               c_bytes: float, tiles: tuple[tuple[int, int, int], ...], sms: int, ctas_per_sm: int,
               peak: float, hbm_bw: float, l2_bw: float, l2_cap: float, smem: float,
               launch: float, mem_latency: float) -> dict:
    """The fastest (tile, split-K) choice for a batched GEMM; times in s, bytes in B."""
    slots = sms * ctas_per_sm
    per_cta_peak = peak / slots
    best: dict | None = None
    for tm, tn, tk in tiles:
        stages = 2
        if stages * (tm * tk + tk * tn) * elem > smem:
            continue
        tiles_m, tiles_n = math.ceil(m / tm), math.ceil(n / tn)
        out_tiles = batch * tiles_m * tiles_n
        for split in SPLIT_K_FACTORS:
            if split > 1 and (out_tiles >= slots or k / split < 2 * tk):
                continue
            cand = _gemm_candidate(batch, m, n, k, elem, a_bytes, b_bytes, c_bytes, tm, tn, tk,
                                   split, tiles_m, tiles_n, slots, per_cta_peak, hbm_bw, l2_bw,
                                   l2_cap, launch, mem_latency)
            if best is None or cand["time"] < best["time"]:
                best = cand
    if best is None:
        raise SimError("no GEMM tile in gpu.gemm_tiles fits gpu.smem_per_sm")
    return best


def _gemm_candidate(batch, m, n, k, elem, a_bytes, b_bytes, c_bytes, tm, tn, tk, split, tiles_m,
                    tiles_n, slots, per_cta_peak, hbm_bw, l2_bw, l2_cap, launch,
                    mem_latency) -> dict:
    out_tiles = batch * tiles_m * tiles_n
    ctas = out_tiles * split
    waves = math.ceil(ctas / slots)
    k_per_cta = math.ceil(math.ceil(k / split) / tk) * tk
    # a tile's main loop, plus one exposed memory latency to fill its load pipeline
    t_tile = 2.0 * tm * tn * k_per_cta / per_cta_peak + mem_latency
    # HBM traffic: operands once when they fit in (half of) L2; otherwise L2 holds the A and B
    # panels of one wave, and each wave fetches its own panels
    per_wave = min(ctas, slots)
    tiles_per_slice = tiles_m * tiles_n * split
    slice_fits = (a_bytes + b_bytes) / batch <= 0.5 * l2_cap
    if a_bytes + b_bytes <= 0.5 * l2_cap or (per_wave >= tiles_per_slice and slice_fits):
        dram = a_bytes + b_bytes + c_bytes
    else:
        out_per_wave = max(1, per_wave // split)
        wr = min(tiles_m, max(1, round(math.sqrt(out_per_wave))))
        wc = min(tiles_n, math.ceil(out_per_wave / wr))
        wave_bytes = (min(wr * tm, m) + min(wc * tn, n)) * k * elem
        dram = max(a_bytes + b_bytes, waves * wave_bytes) + c_bytes
    # L2 traffic: every CTA reads its A and B panels
    l2 = ctas * (tm + tn) * k_per_cta * elem + c_bytes * (2 * split - 1)
    active = min(ctas, slots) / slots
    t_compute = waves * t_tile
    t_dram = dram / hbm_bw
    t_l2 = l2 / (l2_bw * max(active, 1e-9))
    body = max(t_compute, t_dram, t_l2)
    bound = "compute" if body == t_compute else ("memory" if body == t_dram else "l2")
    time = launch + body
    if split > 1:  # a second kernel sums the split partials: read split*C in fp32, write C
        red_bytes = c_bytes * (2 * split + 1)
        time += launch + red_bytes / hbm_bw
        dram += red_bytes
    return {"time": time, "bound": bound, "tile": f"{tm}x{tn}x{tk}", "split_k": split,
            "waves": waves, "ctas": ctas, "dram_bytes": dram, "l2_bytes": l2,
            "t_compute": t_compute, "t_dram": t_dram, "t_l2": t_l2,
            "utilization": (2.0 * batch * m * n * k / per_cta_peak / slots) / max(time, 1e-30)}
