"""PyTorch's own (ATen) vector kernels, as a stack with ``software.vector_kernels: aten`` runs them.

PyTorch does not stream a norm or a softmax at the memory's bandwidth: it gives each row to one
CTA whose threads walk the row in a dependent chain (load, wait, reduce, write), so a few rows
take as long as one, and many rows run in waves of as many CTAs as the SMs hold at once
(validation/h200/README.md, "PyTorch's norms and softmax are latency-bound per row"). A kernel
takes

    software.kernel_gap + ((waves x t_row)^p + (DRAM bytes / bandwidth)^p)^(1/p)

    t_row = (row cycles + n x cycles per step) / gpu.clock + one memory round trip per load step

with ``p`` = ``software.kernel_overlap_p`` and the cycles from ``software.kernel_cycles``
(clock-scaled, so they carry to another GPU of the same SM generation). The memory round trip
is the HBM latency (the L2's where the caller's arch says the operands live there). The kernel
PyTorch picks, its CTA shape and its occupancy:

* LayerNorm / RMSNorm: ``vectorized_layer_norm_kernel`` (aten/src/ATen/native/cuda/
  layer_norm_kernel.cu): one CTA of 128 threads (32 x 4) per row, 4-element vector loads, so a
  row of W takes ceil(W / 512) steps of the statistics loop, each waiting for its load
  (LayerNorm's Welford update adds its division chain: more cycles per step than RMSNorm's sum of
  squares); 32 / 25 registers and 24 B of shared memory (PyTorch profiler on an H200,
  validation/h200/h200_kernels.csv). The normalise pass reads the row again: from the L2 while
  the rows in flight and their outputs (write-allocated) fit it, else from DRAM (an
  assumption; it moved the suite's test rows from 7.9% to 6.8%).
* softmax: ``softmax_warp_forward`` (aten/src/ATen/native/cuda/PersistentSoftmax.cuh) for rows
  of up to 1024 elements (and 4096 bytes): a warp per row (two rows when the row is 128 or less),
  4 warps per 128-thread CTA, each thread holding next_pow2(W) / 32 elements, loaded at once;
  48 registers. ``cunn_SoftMaxForwardReg`` (aten/src/ATen/native/cuda/SoftMax.cu) up to
  1024 x ILP elements (ILP = 16 bytes / element size: 8192 fp16): one 1024-thread CTA per row,
  the row in registers, W / 1024 elements per thread; 30 registers at 4 elements per thread, 37
  at 8 (so one CTA per SM). ``cunn_SoftMaxForwardSmem`` beyond, while the row fits the 48 KiB
  of shared memory a CTA gets without opt-in (W x element size + the reduction's buffer): one
  1024-thread CTA per row, 32 registers, the row staged in shared memory. Wider rows fall to
  ``cunn_SoftMaxForward``, which re-reads the row from L2 twice (max, sum, write); no row of
  ours measures it: the Smem kernel's chain with two L2 re-reads (assumption).
* element-wise (copy, activations): the vectorised elementwise kernel streams its operands once;
  fixed cycles per kernel plus the grid's ramp-up and drain in proportion to how much of the
  GPU it fills, one round trip for its loads, then the stream (sim/gpu/memory.stream_time).

CTAs per SM: the fewest allowed by 2048 threads, 65,536 registers (allocated per warp in units of
256), 32 CTAs and the shared memory (1 KiB reserved per CTA) of an SM (CUDA C++ Programming
Guide, compute capabilities 8.0 and 9.0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.gpu.hw import GpuHw
from sim.gpu.memory import stream_time
from sim.gpu.vector import CTA_INFLIGHT, ELEMWISE_PER_CTA, VectorShape

THREADS_PER_SM = 2048          # CUDA C++ Programming Guide, cc 8.0 / 9.0
REGS_PER_SM = 65536            # idem: 64K 32-bit registers per SM
CTAS_PER_SM = 32               # idem: resident blocks per SM (cc 9.0; 32 on cc 8.0)
REG_UNIT = 256                 # registers are allocated per warp in units of 256
SMEM_RESERVED = 1024           # bytes of shared memory the system reserves per CTA (cc 8.x/9.0)
SMEM_PER_BLOCK = 48 * 1024     # shared memory a CTA gets without opt-in (sharedMemPerBlock)
NORM_THREADS, NORM_VEC = 128, 4    # layer_norm_kernel.cu: 32 x 4 threads, vec_size 4
WARP_SOFTMAX_MAX = 1024        # PersistentSoftmax.cuh: dispatch_softmax_forward's limit
WARP_SOFTMAX_BYTES = 4096      # ... and its row-size limit in bytes
BLOCK_THREADS = 1024           # cunn_SoftMaxForwardReg / Smem: 1024 threads per row (profiler)


@dataclass(frozen=True)
class RowKernel:
    """One ATen row kernel as PyTorch launches it for a row width."""

    name: str          # kernel (the key of its cycles)
    threads: int       # per CTA
    rows_per_cta: int
    registers: int     # per thread
    smem: int          # bytes per CTA
    steps: int         # load steps along a row (each waits one memory round trip)
    per_row: float     # cycles of the row's chain: row + steps (or elements) x cycles
    rereads: int = 0   # re-reads of the row from L2 (cunn_SoftMaxForward)


def ctas_per_sm(hw: GpuHw, threads: int, registers: int, smem: int) -> int:
    """Resident CTAs per SM by threads, registers, CTA slots and shared memory."""
    warps = math.ceil(threads / hw.warp_size)
    regs = math.ceil(registers * hw.warp_size / REG_UNIT) * REG_UNIT * warps
    fit = [THREADS_PER_SM // threads, CTAS_PER_SM]
    if regs:
        fit.append(REGS_PER_SM // regs)
    if smem:
        fit.append(int(hw.smem_per_sm // (smem + SMEM_RESERVED)))
    return max(1, min(fit))


def row_kernel(kind: str, width: int, elem_bytes: float, cycles: dict[str, float]) -> RowKernel:
    """The kernel PyTorch runs for a row op ``kind`` (layernorm, rmsnorm, softmax) of ``width``
    elements of ``elem_bytes`` each, with its chain's cycles from ``cycles``."""
    if kind in ("layernorm", "rmsnorm"):
        steps = math.ceil(width / (NORM_THREADS * NORM_VEC))
        return RowKernel(kind, NORM_THREADS, 1, 32 if kind == "layernorm" else 25, 24, steps,
                         cycles[f"{kind}.row"] + steps * cycles[f"{kind}.iter"])
    if kind != "softmax":
        raise ValueError(f"no ATen row kernel for '{kind}'")
    if width <= WARP_SOFTMAX_MAX and width * elem_bytes <= WARP_SOFTMAX_BYTES:
        pow2 = 1 << max(0, math.ceil(math.log2(width)))
        per_thread = max(1, pow2 // 32)            # WARP_ITERATIONS
        batch = 2 if pow2 <= 128 else 1            # WARP_BATCH
        return RowKernel("softmax_warp", 128, 4 * batch, 48, 0, 1,
                         per_thread * cycles["softmax_warp.elem"])
    ilp = max(1, int(16 // elem_bytes))            # one float4 of elements
    if width <= BLOCK_THREADS * ilp:
        per_thread = math.ceil(width / BLOCK_THREADS)
        return RowKernel("softmax_reg", BLOCK_THREADS, 1, 30 if per_thread <= 4 else 37, 128, 1,
                         cycles["softmax_reg.row"] + per_thread * cycles["softmax_reg.elem"])
    smem = int(width * elem_bytes) + 4 * (BLOCK_THREADS // 32)
    if smem <= SMEM_PER_BLOCK:
        return RowKernel("softmax_smem", BLOCK_THREADS, 1, 32, smem, 1,
                         cycles["softmax_smem.row"])
    return RowKernel("softmax_global", BLOCK_THREADS, 1, 32, 128, 1,
                     cycles["softmax_smem.row"], rereads=2)


def aten_row_time(hw: GpuHw, shape: VectorShape, kind: str, cycles: dict[str, float],
                  gap: float, overlap_p: float) -> dict:
    """Seconds and traffic of the ATen kernel of row op ``kind`` over ``shape``."""
    elem = shape.input_bytes / max(shape.rows * shape.width, 1) or 2.0
    k = row_kernel(kind, shape.width, elem, cycles)
    concurrent = ctas_per_sm(hw, k.threads, k.registers, k.smem) * hw.sms * k.rows_per_cta
    waves = math.ceil(shape.rows / concurrent)
    t_row = k.per_row / hw.clock + k.steps * hw.hbm_latency
    t_chain = waves * t_row
    dram_bytes = shape.dram_bytes
    if k.name in ("layernorm", "rmsnorm") and \
            2 * min(shape.rows, concurrent) * shape.width * elem > hw.l2_capacity:
        dram_bytes += shape.input_bytes     # the normalise pass's re-read misses the L2
    t_dram = dram_bytes / hw.hbm_achievable if dram_bytes > 0 else 0.0
    l2_bytes = k.rereads * shape.input_bytes
    t_l2 = l2_bytes / hw.l2_achievable if l2_bytes else 0.0
    p = overlap_p
    stream = max(t_dram, t_l2)
    body = (t_chain ** p + stream ** p) ** (1.0 / p) if stream > 0 else t_chain
    bound = "latency" if t_chain >= stream else ("memory" if t_dram >= t_l2 else "l2")
    return {"time": gap + body, "bound": bound, "dram_bytes": dram_bytes,
            "l2_bytes": l2_bytes, "ctas": math.ceil(shape.rows / k.rows_per_cta),
            "passes": 1 + k.rereads, "t_dram": t_dram, "t_compute": 0.0, "kernel": k.name,
            "waves": waves, "t_row": t_row, "t_chain": t_chain}


def aten_elementwise_time(hw: GpuHw, shape: VectorShape, cycles: dict[str, float], gap: float,
                          peak: float, activation: bool = False) -> dict:
    """Seconds and traffic of ATen's element-wise kernel over ``shape`` (width 1); an
    ``activation`` (GELU, SiLU) issues ``activation.elem`` SM cycles of instructions per element
    (PyTorch computes it in fp32: tanh-GELU's tanhf is a libdevice instruction sequence), which
    caps its rate below the DRAM stream on an H200."""
    ctas = max(1, math.ceil(shape.rows / ELEMWISE_PER_CTA))
    slots = hw.sms * 8          # 256-thread CTAs: eight per SM
    fill = min(1.0, ctas / slots)
    fixed = (cycles["elementwise.cta"] + fill * cycles["elementwise.fill"]) / hw.clock
    t_dram = hw.hbm_latency + stream_time(hw, shape.dram_bytes, ctas, slots, CTA_INFLIGHT / 4)
    t_compute = shape.flops / peak if peak > 0 else 0.0
    if activation:
        t_compute = max(t_compute, shape.rows * cycles["activation.elem"] / (hw.sms * hw.clock))
    body = fixed + max(t_dram, t_compute)
    return {"time": gap + body, "bound": "memory" if t_dram >= t_compute else "compute",
            "dram_bytes": shape.dram_bytes, "l2_bytes": 0.0, "ctas": ctas, "passes": 1,
            "t_dram": t_dram, "t_compute": t_compute, "kernel": "elementwise"}


def aten_time(hw: GpuHw, shape: VectorShape, kind: str, cycles: dict[str, float], gap: float,
              overlap_p: float, peak: float) -> dict:
    """:func:`aten_row_time` of a row op ``kind`` (layernorm, rmsnorm, softmax), else
    :func:`aten_elementwise_time` (``kind`` 'activation' or '')."""
    if kind in ("layernorm", "rmsnorm", "softmax"):
        return aten_row_time(hw, shape, kind, cycles, gap, overlap_p)
    return aten_elementwise_time(hw, shape, cycles, gap, peak, kind == "activation")
