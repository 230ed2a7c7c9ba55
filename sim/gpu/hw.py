"""A hashable snapshot of one GPU's parameters (SI units) for the memoised micro-models."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from arch import Arch


@dataclass(frozen=True)
class GpuHw:
    """What the GEMM, vector and attention models read; built once per device from its arch.

    Bandwidths in B/s, times in s, capacities in B, peaks in FLOP/s for the whole chip.
    """

    sms: int
    clock: float
    smem_per_sm: float
    smem_bw_per_sm: float
    tensor_efficiency: float
    gemm_stages: int
    ctas_per_sm: int
    persistent_gemm: bool
    warp_size: int
    launch: float
    hbm_bw: float           # peak
    hbm_eff: float          # achievable fraction for streaming access
    hbm_latency: float
    l2_bw: float
    l2_eff: float
    l2_capacity: float
    l2_latency: float
    gemm_tiles: tuple[tuple[int, int, int], ...]
    gemm_fixed: float = 0.0          # s per GEMM kernel (setup, first-wave fill, drain)
    gemm_overlap_p: float = 0.0      # smooth-max exponent of compute and DRAM (0: max)
    gemm_cluster: int = 1            # CTAs sharing an A panel by TMA multicast (Hopper)
    gemm_stream_k: bool = False      # the library also has stream-K kernels (sim/gpu/gemm.py)
    attention_overlap: bool = False  # prefill softmax overlaps the MMAs (FA-3, Hopper)
    attention_overlap_p: float = 0.0  # p-norm of MMA and softmax times where they overlap
    #: (dtype, sustained fraction of that dtype's tensor peak) where it differs from
    #: ``tensor_efficiency`` (``gpu.tensor_efficiency_by_dtype``)
    dtype_efficiency: tuple[tuple[str, float], ...] = ()
    #: whether a weight-only GEMM also tries Marlin's 16-row tiles (sim/gpu/gemm.py
    #: ``MIXED_INPUT_TILES``); False for a kernel with its own tile list (sim/gpu/moe.py)
    mixed_input_tiles: bool = True

    def for_dtype(self, dtype: str) -> GpuHw:
        """This GPU as a kernel computing in ``dtype`` sees it: ``tensor_efficiency`` is that
        dtype's own where the arch gives one (an equal GpuHw otherwise)."""
        return _for_dtype(self, dtype) if self.dtype_efficiency else self

    @property
    def hbm_achievable(self) -> float:
        """Streaming bandwidth a well-fed kernel reaches (B/s)."""
        return self.hbm_bw * self.hbm_eff

    @property
    def l2_achievable(self) -> float:
        return self.l2_bw * self.l2_eff


def gpu_hw(arch: Arch) -> GpuHw:
    """Build the snapshot from an arch of type ``gpu``."""
    g, hbm, l2 = arch.gpu, arch.memory["hbm"], arch.memory["l2"]
    return GpuHw(
        sms=g.sm_count, clock=g.clock, smem_per_sm=g.smem_per_sm,
        smem_bw_per_sm=g.smem_bytes_per_clock * g.clock, tensor_efficiency=g.tensor_efficiency,
        gemm_stages=g.gemm_stages, ctas_per_sm=g.ctas_per_sm, persistent_gemm=g.persistent_gemm,
        warp_size=g.warp_size, launch=g.launch_overhead, hbm_bw=hbm.bandwidth,
        hbm_eff=hbm.efficiency, hbm_latency=hbm.latency, l2_bw=l2.bandwidth, l2_eff=l2.efficiency,
        l2_capacity=l2.capacity, l2_latency=l2.latency,
        gemm_tiles=tuple(tuple(int(x) for x in t) for t in g.gemm_tiles),
        gemm_fixed=g.gemm_fixed, gemm_overlap_p=g.gemm_overlap_p,
        gemm_cluster=g.gemm_cluster, gemm_stream_k=g.gemm_stream_k,
        attention_overlap=g.attention_overlap,
        attention_overlap_p=g.attention_overlap_p,
        dtype_efficiency=tuple(sorted(g.tensor_efficiency_by_dtype.items())))


@lru_cache(maxsize=256)
def _for_dtype(hw: GpuHw, dtype: str) -> GpuHw:
    eff = dict(hw.dtype_efficiency).get(dtype)
    if eff is None:
        return hw
    return replace(hw, tensor_efficiency=eff, dtype_efficiency=())
