"""The GPU section: SMs, tensor cores, clocks, GEMM tiling, launch overhead."""

from __future__ import annotations

from dataclasses import dataclass

from arch.schema import param
from arch.spec import register_device_type, register_section


@register_section("gpu")
@dataclass(kw_only=True)
class GpuSpec:
    """A GPU's compute side; its memories live in the ``memory`` section (``hbm``, ``l2``)."""

    sm_count: int = param(gt=0, doc="streaming multiprocessors")
    clock: float = param("Hz", gt=0, doc="boost clock in Hz")
    tensor_flops: dict[str, float] = param("FLOP/s", gt=0,
                                           doc="dense tensor-core peak by dtype, whole chip")
    vector_flops: dict[str, float] = param("FLOP/s", gt=0,
                                           doc="non-tensor (CUDA-core) peak by dtype, whole chip")
    smem_per_sm: float = param("B", gt=0, doc="shared memory per SM usable by one CTA, bytes")
    gemm_tiles: list[list[int]] = param(default_factory=lambda: [[128, 256, 64], [128, 128, 64],
                                                                 [64, 128, 64], [64, 64, 64]],
                                        doc="candidate CTA tiles [m, n, k] of the GEMM library")
    ctas_per_sm: int = param(gt=0, default=1, doc="concurrent GEMM CTAs per SM")
    launch_overhead: float = param("s", ge=0, doc="kernel launch-to-start overhead in seconds")
    tensor_efficiency: float = param(gt=0, le=1, default=1.0,
                                     doc="sustained fraction of tensor peak in a GEMM main loop")

    def check(self) -> tuple[str, str] | None:
        for i, tile in enumerate(self.gemm_tiles):
            if len(tile) != 3 or any((not isinstance(x, int)) or x <= 0 for x in tile):
                return (f"gemm_tiles[{i}]",
                        f"expected three positive integers [m, n, k], got {tile}")
        return None

    def check_arch(self, arch) -> tuple[str, str] | None:
        memory = arch.sections.get("memory", {})
        for level in ("hbm", "l2"):
            if level not in memory:
                return (f"memory.{level}", "missing required memory level for a gpu arch "
                                            "(capacity, bandwidth)")
        return None


register_device_type("gpu", required=("gpu", "memory", "energy"),
                     optional=("interconnect", "system"))
