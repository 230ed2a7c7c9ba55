"""The GPU as TensorRT-LLM v0.9's MoE grouped GEMM sees it (CUTLASS 2.x SM80 kernels).

TensorRT-LLM's MoE plugin runs each expert layer's FC1/FC2 as one CUTLASS 2.x grouped GEMM
(``MoeFCGemm`` in ``cutlass::gemm::device::GemmGrouped``: ``min(2, occupancy)`` CTAs per SM
that loop over all experts' tiles, ``GroupScheduleMode::kDeviceOnly``,
``genericMoeGemmKernelLauncher``; the GEMM model's per-expert tile waves approximate that
schedule). In the v0.9-era source
(``cpp/tensorrt_llm/kernels/cutlass_kernels/moe_gemm/moe_gemm_kernels_template.h``,
``MoeGemmRunner::dispatchToArch``) an SM90 GPU is dispatched to the SM80 instantiation: "TODO
Update the arch to Sm90 once CUTLASS hopper specialisations are available" — so on Hopper the
kernel issues Ampere ``mma.sync`` instructions with ``cp.async`` loads: no warpgroup MMA
(``wgmma``), no TMA multicast across a cluster, no persistent warp-specialised schedule. Its
tile shapes are the three of ``dispatchMoeGemmToCutlass`` for a
16-bit same-type GEMM: CTA 32x128x64, 64x128x64, 128x128x64 (2-4 stages).

:func:`moe_gemm_view` returns the :class:`~sim.gpu.hw.GpuHw` and tensor peak that kernel runs
at, for the ordinary tile GEMM model (:func:`sim.gpu.gemm.best_gemm`) to price:

* the tile shapes :data:`MOE_TILES` (instead of the GPU's own list, cuBLAS's);
* on a GPU whose GEMM model is Hopper's (``gemm_cluster`` > 1: TMA multicast, SM90 only), no
  cluster sharing, no persistent overlap, and the tensor peak times
  :data:`MMA_SYNC_FRACTION_SM90`.

Peaks in FLOP/s.
"""

from __future__ import annotations

from dataclasses import replace

from sim.gpu.hw import GpuHw

#: CTA tiles (m, n, k) of TensorRT-LLM v0.9's MoE grouped GEMM (moe_gemm_kernels_template.h
#: dispatchMoeGemmToCutlass: the same three for 16-bit weights and for weight-only int8/int4
#: ones, whose overload differs in warp shapes only; so no Marlin tiles for the experts)
MOE_TILES: tuple[tuple[int, int, int], ...] = ((32, 128, 64), (64, 128, 64), (128, 128, 64))

#: fraction of Hopper's dense tensor peak the Ampere-style ``mma.sync`` path reaches: "the older
#: mma.sync instruction can only reach about 2/3 the peak throughput of the Hopper GPU Tensor
#: Cores" (Shah et al., FlashAttention-3, 2024, §2.2). Corroborated by CUTLASS issue #1280
#: (Dec 2023): CUTLASS's SM80 grouped GEMM ran ~30% slower than cuBLAS GEMMs on H100.
MMA_SYNC_FRACTION_SM90 = 2.0 / 3.0


def is_sm90_gemm(hw: GpuHw) -> bool:
    """True where the GPU's GEMM model is Hopper's (CTA clusters sharing panels by TMA)."""
    return hw.gemm_cluster > 1


def moe_gemm_view(hw: GpuHw, peak: float) -> tuple[GpuHw, float]:
    """(GpuHw, tensor peak FLOP/s) of the SM80 CUTLASS MoE grouped GEMM on this GPU."""
    if not is_sm90_gemm(hw):
        return replace(hw, gemm_tiles=MOE_TILES, mixed_input_tiles=False,
                       gemm_stream_k=False), peak
    return (replace(hw, gemm_tiles=MOE_TILES, mixed_input_tiles=False, gemm_cluster=1,
                    persistent_gemm=False, gemm_stream_k=False), peak * MMA_SYNC_FRACTION_SM90)

