"""GPU functional execution: GEMMs as the GPU model maps them (CTA tile and split-K read from
its cost detail), tensor-core accumulation, fp32 CUDA-core vector kernels, FlashAttention-2.

Numerics (declared; the check's tolerance is derived from them):

* fp16 / bf16 / tf32 tensor-core MMA — products exact, a block of 8 products added to the fp32
  accumulator in one fused step and the result truncated (round toward zero). Source: Fasi,
  Higham, Mikaitis, Pranesh, "Numerical behavior of NVIDIA tensor cores", PeerJ Comput. Sci.
  7:e330 (2021) — exact products, no normalisation inside the block, truncation, 8-term blocks
  on A100 (4 on V100/T4). Assumed the same on Hopper (not measured there by that paper).
* fp8 (e4m3/e5m2) on Hopper — accumulation keeps about 14 bits (DeepSeek-V3 technical report,
  arXiv 2412.19437, §3.3.2); modelled as an e8m13 accumulator truncated, 32-product blocks
  (assumption: one k32 WGMMA step).
* int8 / int4 — exact int32 accumulation (PTX ISA, ``mma`` with ``.s32`` accumulators).
* fp32 without tensor cores — one FFMA per product, fp32 round-to-nearest-even.
* Split-K — each slice writes fp32 partials, a reduction kernel adds them in slice order in
  fp32 (the GPU model's "second kernel").
* Vector kernels — fp32 compute (inputs converted exactly), rows reduced by 128 threads
  (strided per-thread sums, then a tree). Assumption: one 128-thread block per row, as in
  Apex/FasterTransformer layer-norm and softmax kernels.
* FlashAttention-2 — 64-key blocks (assumption: FA2's forward tile for head dim 128), P
  rounded to the input datatype before the P·V MMA, running max/denominator in fp32.
"""

from __future__ import annotations

from typing import Any

from arch import Arch
from sim.devices.base import device_for
from sim.functional.base import (
    FunctionalDevice,
    MatmulNumerics,
    MatmulPlan,
    VectorNumerics,
    register_functional,
)
from sim.functional.formats import Rounder
from sim.functional.plans import tiled_plan

FASI = ("Fasi et al., PeerJ Comput. Sci. 7:e330 (2021): exact products, 8-product fused blocks "
        "(A100), result truncated to fp32")
_TENSOR = {
    "fp16": MatmulNumerics("fp16", Rounder("fp32", "rz"), 8, Rounder("fp32"), FASI),
    "bf16": MatmulNumerics("bf16", Rounder("fp32", "rz"), 8, Rounder("fp32"), FASI),
    "tf32": MatmulNumerics("tf32", Rounder("fp32", "rz"), 8, Rounder("fp32"), FASI),
    "fp8_e4m3": MatmulNumerics("fp8_e4m3", Rounder("fp22_e8m13", "rz"), 32, Rounder("fp32"),
                               "DeepSeek-V3 report §3.3.2: ~14-bit FP8 accumulation on Hopper"),
    "fp8_e5m2": MatmulNumerics("fp8_e5m2", Rounder("fp22_e8m13", "rz"), 32, Rounder("fp32"),
                               "DeepSeek-V3 report §3.3.2: ~14-bit FP8 accumulation on Hopper"),
    "int8": MatmulNumerics("int8", Rounder("int32"), 16, Rounder("int32"),
                           "PTX ISA: integer mma accumulates exactly in .s32"),
    "int4": MatmulNumerics("int4", Rounder("int32"), 32, Rounder("int32"),
                           "PTX ISA: integer mma accumulates exactly in .s32"),
}
_FFMA = MatmulNumerics("fp32", Rounder("fp32"), 1, Rounder("fp32"),
                       "CUDA-core FFMA: one round-to-nearest-even per multiply-add")
DEFAULT_TILE = (128, 128, 8)  # CUDA-core SGEMM fallback tile (assumption)
TENSOR_TILE = (128, 128, 64)  # tensor-core tile when the model gives none (assumption)


@register_functional
class GpuFunctional(FunctionalDevice):
    """Functional executor for arches of type ``gpu`` (bound to :class:`GpuDevice`)."""

    arch_type = "gpu"

    def __init__(self, arch: Arch):
        super().__init__(arch)
        self.model = device_for(arch, "tile")

    def matmul_numerics(self, dtype: str) -> MatmulNumerics:
        key = "fp8_e4m3" if dtype == "fp8" else dtype
        peak_key = "fp8" if key.startswith("fp8") else key  # presets list one fp8 rate
        if key in _TENSOR and (self.model.tensor_peak(key) or self.model.tensor_peak(peak_key)):
            return _TENSOR[key]
        return _FFMA

    def vector_numerics(self) -> VectorNumerics:
        return VectorNumerics("fp32", 128, "fp32 CUDA-core kernels, 128 threads per row "
                                           "(assumption, Apex/FasterTransformer style)")

    def attention_numerics(self, dtype: str) -> dict[str, Any]:
        mm = self.matmul_numerics(dtype)
        return {"block": 64, "qk": mm, "pv": mm, "p_dtype": mm.inputs,
                "source": "FlashAttention-2 forward: 64-key blocks (assumption), P in the input "
                          "datatype for the second MMA, fp32 running statistics"}

    def plan_matmul(self, op: Any, dtype: str, shape: tuple[int, int, int, int]) -> MatmulPlan:
        num = self.matmul_numerics(dtype)
        detail = self.model.estimate(op).detail if op is not None else {}
        tile_txt = detail.get("tile")
        if tile_txt and num is not _FFMA:
            tile = tuple(int(v) for v in str(tile_txt).split("x"))
            split = int(detail.get("split_k", 1))
            source = "GpuDevice cost detail (tile, split_k)"
            if detail.get("stream_k"):
                source += "; stream-K: the tiles split between two SMs sum their two fp32 " \
                          "partials in the fix-up, which this plan does not model"
        elif num is not _FFMA:  # the model streamed this GEMM: one tile shape, no split
            tile, split, source = TENSOR_TILE, 1, "no tile in the GPU model's detail (assumption)"
        else:
            tile, split, source = DEFAULT_TILE, 1, "CUDA-core SGEMM tile (assumption)"
        return tiled_plan(shape, tile, split, num, {"mapping_source": source})

    def unit_for(self, op: Any) -> str:
        return "gpu"
