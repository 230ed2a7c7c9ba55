"""The GPU sections: SMs, tensor cores, clocks, GEMM tiling (``gpu``) and the software stack that
drives the kernels (``software``: framework dispatch cost, kernel-library quality, collectives)."""

from __future__ import annotations

from dataclasses import dataclass, field

from arch.schema import param
from arch.spec import register_device_type, register_section


@register_section("gpu")
@dataclass(kw_only=True)
class GpuSpec:
    """A GPU's compute side; its memories live in the ``memory`` section (``hbm``, ``l2``)."""

    sm_count: int = param(gt=0, doc="streaming multiprocessors (compute units)")
    clock: float = param("Hz", gt=0, doc="boost clock in Hz")
    tensor_flops: dict[str, float] = param("FLOP/s", gt=0,
                                           doc="dense tensor-core peak by dtype, whole chip")
    vector_flops: dict[str, float] = param("FLOP/s", gt=0,
                                           doc="non-tensor (CUDA-core) peak by dtype, whole chip")
    smem_per_sm: float = param("B", gt=0, doc="shared memory per SM usable by one CTA, bytes")
    gemm_tiles: list[list[int]] = param(default_factory=lambda: [[128, 256, 64], [128, 128, 64],
                                                                 [64, 128, 64], [64, 64, 64]],
                                        doc="candidate CTA tiles [m, n, k] of the GEMM library "
                                            "for 16-bit operands (k scales with 2/bytes per "
                                            "element for other dtypes)")
    ctas_per_sm: int = param(gt=0, default=1, doc="most concurrent GEMM CTAs per SM (fewer "
                                                  "when shared memory does not hold them)")
    launch_overhead: float = param("s", ge=0, doc="GPU-side cost of one kernel in a stream: "
                                                  "launch, ramp-up and drain, in seconds")
    tensor_efficiency: float = param(gt=0, le=1, default=1.0,
                                     doc="sustained fraction of tensor peak in a GEMM main loop "
                                         "(issue overheads; and the clock under the power "
                                         "limit where power_limit is 0)")
    tensor_efficiency_by_dtype: dict[str, float] = param(
        gt=0, le=1, default_factory=dict,
        doc="sustained fraction of a dtype's tensor peak where it differs from "
            "tensor_efficiency (that dtype's matrix pipeline runs at another clock under the "
            "power limit); dtypes not listed use tensor_efficiency")
    gemm_stages: int = param(gt=1, default=3, doc="software-pipeline stages of the GEMM main "
                                                  "loop (shared-memory buffers per operand)")
    smem_bytes_per_clock: float = param(gt=0, default=128.0,
                                        doc="shared-memory bandwidth per SM in bytes per clock")
    persistent_gemm: bool = param(default=False, doc="GEMM CTAs are persistent and overlap a "
                                                     "tile's epilogue with the next main loop")
    warp_size: int = param(gt=0, default=32, doc="threads per warp (wavefront)")
    gemm_fixed: float = param("s", ge=0, default=0.0,
                              doc="per GEMM kernel, beyond launch_overhead and the tile model's "
                                  "prologue/epilogue: library setup, pipeline fill of the "
                                  "first wave and drain of the last (seconds)")
    gemm_overlap_p: float = param(ge=0, default=0.0,
                                  doc="imperfect overlap of a GEMM's main loop (compute) and "
                                      "its DRAM stream: the kernel takes the p-norm "
                                      "(c^p + m^p)^(1/p) of the two times instead of their "
                                      "maximum (0: perfect overlap, the maximum)")
    power_limit: float = param("W", ge=0, default=0.0,
                               doc="board power limit in W: where a run's average power at "
                                   "the boost clock exceeds it, the SM clock drops until it "
                                   "does not (sim/gpu/power_cap.py; 0: no limit modelled)")
    power_reaction: float = param("s", ge=0, default=0.13,
                                  doc="how long a load lasts before the power limiter has "
                                      "lowered the clock (s): a run's phases longer than this "
                                      "are each held to the limit on their own, and so is one "
                                      "op call longer than this (`xpusim op` without --duty); "
                                      "default: NVIDIA's, measured on our H200 "
                                      "(validation/h200/h200_power_trace.csv)")
    dvfs_energy_exponent: float = param(ge=0, default=0.0,
                                        doc="the energy per FLOP goes as speed^x when the "
                                            "power limiter lowers the SM clock (and voltage); "
                                            "speed: the fraction of the boost clock")
    gemm_cluster: int = param(gt=0, default=1,
                              doc="CTAs of a thread-block cluster that share the A operand "
                                  "panel through TMA multicast, reading it from L2 once "
                                  "(Hopper; 1: no multicast)")
    gemm_stream_k: bool = param(default=False,
                                doc="the GEMM library also has stream-K kernels: where the "
                                    "output tiles leave the last wave partly empty, the "
                                    "main-loop iterations of all tiles are shared evenly "
                                    "over the SMs and split tiles are fixed up through L2 "
                                    "(sim/gpu/gemm.py)")
    attention_overlap: bool = param(default=False,
                                    doc="the prefill attention kernel is warp-specialised "
                                        "(FlashAttention-3 / cuDNN on Hopper): one warpgroup's "
                                        "softmax overlaps another's MMAs, so a KV block takes "
                                        "the larger of the two, not their sum (FA-2)")
    attention_overlap_p: float = param(ge=0, default=0.0,
                                       doc="where attention_overlap holds: the softmax and the "
                                           "MMAs of a block overlap imperfectly, the block "
                                           "takes the p-norm (m^p + s^p)^(1/p) of the two "
                                           "times instead of their maximum (0: the maximum)")

    def check(self) -> tuple[str, str] | None:
        for dtype in self.tensor_efficiency_by_dtype:
            if dtype not in self.tensor_flops:
                return (f"tensor_efficiency_by_dtype.{dtype}",
                        f"expected a dtype of tensor_flops ({', '.join(self.tensor_flops)}), "
                        f"got '{dtype}'")
        for i, tile in enumerate(self.gemm_tiles):
            if len(tile) != 3 or any((not isinstance(x, int)) or x <= 0 for x in tile):
                return (f"gemm_tiles[{i}]",
                        f"expected three positive integers [m, n, k], got {tile}")
        for name in ("gemm_overlap_p", "attention_overlap_p"):
            p = getattr(self, name)
            if 0 < p < 1:   # a p-norm below 1 exceeds the sum: not an overlap
                return (name, f"expected 0 (perfect overlap) or at least 1 (1: none), got {p:g}")
        return None

    def check_arch(self, arch) -> tuple[str, str] | None:
        memory = arch.sections.get("memory", {})
        for level in ("hbm", "l2"):
            if level not in memory:
                return (f"memory.{level}", "missing required memory level for a gpu arch "
                                            "(capacity, bandwidth)")
        energy = arch.sections.get("energy")
        if self.power_limit > 0 and energy is not None and \
                energy.static_power >= self.power_limit:
            return ("gpu.power_limit", f"expected more than the static power "
                                       f"({energy.static_power:g} W), got {self.power_limit:g} W")
        return None


@dataclass(kw_only=True)
class CollectiveProtocol:
    """One collective-library protocol (NCCL's LL, LL128, Simple): latencies and bandwidth."""

    base_latency: float = param("s", ge=0, doc="fixed cost of one collective call, seconds")
    hop_latency: float = param("s", ge=0, doc="added per ring step (or tree level), seconds")
    bandwidth_fraction: float = param(gt=0, le=1, doc="fraction of the link bandwidth the "
                                                      "protocol's wire format carries as data")
    max_bandwidth: float = param("B/s", ge=0, default=0.0,
                                 doc="cap on the bus bandwidth of this protocol (0: none)")
    channel_rate: float = param("B/s", ge=0, default=0.0,
                                doc="bus bandwidth one collective channel (one CTA) moves "
                                    "alone: a small call on few channels runs at that many "
                                    "times it, up to the full rate (0: NCCL's rating, an "
                                    "equal share of the full rate per channel)")


@dataclass(kw_only=True)
class SoftwareSpec:
    """The software stack around the kernels (framework, kernel libraries, collectives).

    ``mode`` ``ideal``: kernels back to back (CUDA graphs), no host cost. ``async``: a host
    thread issues each op after ``dispatch`` seconds of CPU work and runs ahead of the GPU;
    every forward pass ends with a synchronisation plus ``per_step`` + ``per_request`` x batch
    of CPU work (sampling, scheduling). ``timed``: each op is timed alone from the host, as
    micro-benchmark harnesses do (call, synchronise, read the clock): the time is the larger of
    the CPU cost ``dispatch`` and ``issue`` + the kernel (+ synchronisation latency).
    Keys of ``dispatch``, ``issue`` and ``bandwidth_efficiency`` are op families
    (``matmul``, ``softmax``, ``norm``, ``activation``, ``elementwise``, ``attention``,
    ``collective``, ``memory``) or ``default``.
    """

    name: str = param(default="", doc="what the stack is, e.g. 'PyTorch 2.x eager'")
    mode: str = param(default="ideal", choices=("ideal", "async", "timed"),
                      doc="how ops reach the GPU (see class doc)")
    dispatch: dict[str, float] = param("s", ge=0, default_factory=dict,
                                       doc="CPU time per op call by op family, seconds")
    issue: dict[str, float] = param("s", ge=0, default_factory=dict,
                                    doc="timed mode: call-to-launch plus sync-return time "
                                        "around the kernel, by op family, seconds")
    per_step: float = param("s", ge=0, default=0.0, doc="async mode: CPU time per forward pass")
    per_request: float = param("s", ge=0, default=0.0,
                               doc="async mode: CPU time per request per forward pass")
    bandwidth_efficiency: dict[str, float] = param(
        gt=0, le=1, default_factory=dict,
        doc="fraction of the achievable HBM bandwidth the stack's kernels of an op family reach")
    decode_attention: str = param(default="flashdecoding",
                                  choices=("flash2", "flashdecoding", "lean", "paged", "mmha"),
                                  doc="how fused decode attention splits the KV sequence over SMs")
    prefill_attention: str = param(default="auto", choices=("auto", "flash2", "flash3"),
                                   doc="the fused prefill attention kernel: 'flash2' "
                                       "(FlashAttention-2, softmax after the MMAs), 'flash3' "
                                       "(warp-specialised, softmax under the MMAs; needs "
                                       "gpu.attention_overlap), 'auto': flash3 where the GPU "
                                       "has it, else flash2")
    attention_dtype: str = param(default="model",
                                 choices=("model", "fp32", "tf32", "bf16", "fp16", "fp8"),
                                 doc="precision fused attention kernels compute in (tensor-core "
                                     "rate, Q/O element size); 'model': the op's own dtype. "
                                     "The KV cache keeps the run's --kv-dtype")
    gemm_dtype: str = param(default="model", choices=("model", "fp8"),
                            doc="precision of the linear-layer GEMMs whose weights are stored in "
                                "it: 'fp8' runs a GEMM with FP8 weights as an FP8 x FP8 "
                                "tensor-core GEMM (activation quantised per tensor on the fly, "
                                "output in the activations' dtype); 'model': the op's own dtype "
                                "(weight-only formats are dequantised to it)")
    moe_gemm: str = param(default="cublas", choices=("cublas", "cutlass-sm80"),
                          doc="kernel of the MoE experts' GEMMs: 'cublas' (the GPU's own GEMM "
                              "model) or 'cutlass-sm80' (TensorRT-LLM v0.9's CUTLASS 2.x grouped "
                              "GEMM: its three tile shapes, and on Hopper the Ampere mma.sync "
                              "path; sim/gpu/moe.py)")
    vector_kernels: str = param(default="generic", choices=("generic", "aten"),
                                doc="the vector kernels' model: 'generic' (sim/gpu/vector.py: "
                                    "rows streamed at a bandwidth fraction, gpu.launch_overhead "
                                    "per kernel) or 'aten' (sim/gpu/aten.py: PyTorch's own "
                                    "norm / softmax kernels, one CTA per row with a latency "
                                    "chain, rows in waves by occupancy; kernel_gap per kernel)")
    kernel_gap: float = param("s", ge=0, default=0.0,
                              doc="aten vector kernels: GPU time between kernels replayed back "
                                  "to back from a CUDA graph, in place of gpu.launch_overhead "
                                  "(GEMM and attention kernels keep gpu.launch_overhead, which "
                                  "their fitted fixed costs are counted beyond), seconds")
    kernel_cycles: dict[str, float] = param(
        ge=0, default_factory=dict,
        doc="aten vector kernels: SM cycles of their per-row chains (at gpu.clock), keyed "
            "'<kernel>.<term>' (sim/gpu/aten.py CYCLE_KEYS)")
    kernel_overlap_p: float = param(ge=1, default=1.0,
                                    doc="aten row kernels: p-norm of the rows' latency chains "
                                        "(in waves) and the DRAM stream (1: their sum)")
    collective_protocols: dict[str, CollectiveProtocol] = field(
        default_factory=dict, metadata={"unit": "", "doc": "collective protocols (NCCL LL, "
                                        "LL128, Simple); the fastest is picked per call"})
    collective_host_cpu: str = param(default="intel", choices=("intel", "amd"),
                                     doc="host CPU vendor as NCCL's tuning sees it: network "
                                         "step overhead (1 us Intel, 2 us AMD) and LL caps "
                                         "across nodes")
    collective_nvls: bool = param(default=False,
                                  doc="NVLS all-reduce (NVSwitch SHARP reduction, Hopper "
                                      "NVSwitch systems) is available to the collectives")
    collective_nics_per_node: int = param(ge=0, default=0,
                                          doc="network NICs a node's collectives share "
                                              "(0: one per GPU, as DGX nodes)")
    collective_channels: int = param(ge=0, default=0,
                                     doc="NCCL's collective channels in a node (comm->nChannels;"
                                         " small calls run on fewer, as NCCL's enqueue.cc "
                                         "tunes them; 0: every call at full bandwidth)")
    collective_nvls_latency: float = param("s", ge=0, default=23e-6,
                                           doc="per-call latency of an NVLS all-reduce as "
                                               "NCCL's tuning rates it (v2.18.3: 23 us)")
    collective_nvls_channels: int = param(ge=0, default=0,
                                          doc="NCCL's NVLS channels in a node: an NVLS call "
                                              "runs in chunks on channels x GPUs lanes "
                                              "(0: at NCCL's rating, latency + bytes / "
                                              "algorithm bandwidth)")
    collective_nvls_chunk_cost: float = param("s", ge=0, default=0.0,
                                              doc="fixed cost of one NVLS chunk on a lane "
                                                  "(with collective_nvls_channels), seconds")

    def check(self) -> tuple[str, str] | None:
        for key in self.kernel_cycles:
            if key not in ATEN_CYCLE_KEYS:
                return (f"kernel_cycles.{key}",
                        f"expected one of {', '.join(ATEN_CYCLE_KEYS)}, got '{key}'")
        if self.vector_kernels == "aten":
            missing = [k for k in ATEN_CYCLE_KEYS if k not in self.kernel_cycles]
            if missing:
                return ("kernel_cycles", "vector_kernels 'aten' needs the cycles of "
                                         f"{', '.join(missing)}")
        return None


#: the terms of ``software.kernel_cycles`` (sim/gpu/aten.py): per row (``row``), per iteration
#: of a CTA's loop over the row (``iter``) or per element a thread holds (``elem``); the
#: element-wise kernel's fixed cycles (``cta``) and its grid's ramp at full occupancy (``fill``);
#: an activation's issue cycles per element on one SM (``activation.elem``)
ATEN_CYCLE_KEYS = ("layernorm.row", "layernorm.iter", "rmsnorm.row", "rmsnorm.iter",
                   "softmax_warp.elem", "softmax_reg.row", "softmax_reg.elem",
                   "softmax_smem.row", "elementwise.cta", "elementwise.fill",
                   "activation.elem")


register_section("software")(SoftwareSpec)

register_device_type("gpu", required=("gpu", "memory", "energy"),
                     optional=("interconnect", "system", "software"))
