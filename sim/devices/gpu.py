"""GPU device model: roofline, or tile level (mechanisms in ``sim/gpu/``).

Tile fidelity, per kernel:

* **GEMM** (``sim.gpu.gemm``) — CTA tiles and split-K chosen fastest-first, tile and wave
  quantisation, tensor-core vs shared-memory main loop, per-tile prologue/epilogue, L2 panel
  reuse, HBM at the achievable bandwidth capped by Little's law.
* **Vector ops** (``sim.gpu.vector``) — rows per CTA, re-reads of rows too wide for registers,
  grids too small to fill the memory system; on a stack with ``vector_kernels: aten``
  (``sim.gpu.aten``) PyTorch's own row kernels: a latency chain per row, rows in waves by
  occupancy, the softmax kernel by width, the graph's ``kernel_gap`` per kernel.
* **Fused attention** (``sim.gpu.attention``) — FlashAttention-2 blocks on tensor cores plus the
  online softmax; decode partitioned as FA-2, FlashDecoding or LeanAttention
  (``software.decode_attention``); GQA packs a group's queries; at the precision
  ``software.attention_dtype`` names (default: the op's dtype; the KV cache keeps its own).
* **Collectives** (``sim.gpu.collectives``) — ring/tree algorithms under the software stack's
  protocols over the intra-node link, hierarchical across nodes.
* **Host** (``sim.gpu.host``) — the software stack: ideal (CUDA graphs), host-timed isolated ops,
  or an async host thread that issues ops ahead of the GPU.

Every kernel pays ``gpu.launch_overhead`` (an aten stack's vector kernels: its ``kernel_gap``).
Energy: FLOPs x pJ/FLOP of the dtype, HBM and L2 bits x pJ/bit, link bits x pJ/bit (static
power is charged by the engine over the makespan).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import replace
from itertools import repeat
from operator import itemgetter
from typing import Any

from arch import Arch
from sim.devices.base import (
    Cost,
    CostBlock,
    Device,
    MainTierDevice,
    SimError,
    collective_min_bytes,
    op_dtype,
    register_device,
)
from sim.gpu.aten import aten_time
from sim.gpu.attention import (
    DECODE_POLICIES,
    SOFTMAX_OPS,
    AttentionShape,
    AttnHw,
    attention_time,
    attention_time_many,
)
from sim.gpu.collectives import DEFAULT_NCCL, LinkHw, NcclHw, ProtocolHw, collective_time
from sim.gpu.gemm import best_gemm, prefill_best_gemm
from sim.gpu.host import AsyncIssue, lookup, op_family, timed_latency
from sim.gpu.hw import gpu_hw
from sim.gpu.moe import moe_gemm_view
from sim.gpu.nccl_tuning import NVLS_MIN_RANKS
from sim.gpu.vector import VectorShape, vector_shape, vector_time, vector_time_columns
from workloads.einsum import Cascade, Einsum, dtype_bytes, epilogue_gemm
from workloads.trace import ATTENTION, COLLECTIVE, MATMUL, MEMORY, Op, is_expert_gemm

SFU_PER_CLOCK = 16  # exp/rcp results per SM per clock (CUDA Programming Guide, cc 8.x/9.0)


@register_device
class GpuDevice(MainTierDevice):
    """An NVIDIA-style GPU described by an arch of type ``gpu``."""

    arch_type = "gpu"

    def __init__(self, arch: Arch, fidelity: str = "tile"):
        super().__init__(arch, fidelity)
        self.g = arch.gpu
        self.hbm = arch.memory["hbm"]
        self.main_tier = self.hbm
        self.l2 = arch.memory["l2"]
        self.energy_table = arch.energy
        self.hw = gpu_hw(arch)
        self.software = arch.sections.get("software")
        system = arch.sections.get("system")
        self.link_name, self.link = self.system_link("intra_node_link")
        self.inter_name, self.inter_link = self.system_link("inter_node_link")
        self.per_node = system.devices if system else 1
        protos = self.software.collective_protocols if self.software else {}
        self.protocols = tuple(ProtocolHw(k, p.base_latency, p.hop_latency,
                                          p.bandwidth_fraction, p.max_bandwidth, p.channel_rate)
                               for k, p in protos.items())
        sw = self.software
        self.nccl = (NcclHw(sw.collective_host_cpu, sw.collective_nvls,
                            sw.collective_nics_per_node, sw.collective_channels,
                            sw.collective_nvls_latency, sw.collective_nvls_channels,
                            sw.collective_nvls_chunk_cost)
                     if sw else DEFAULT_NCCL)
        self.decode_policy = (self.software.decode_attention if self.software
                              else "flashdecoding")
        #: the prefill attention kernel: the stack's, or FA-3 where the GPU has it ('auto')
        pre = self.software.prefill_attention if self.software else "auto"
        if pre == "auto":
            pre = "flash3" if self.hw.attention_overlap else "flash2"
        if pre == "flash3" and not self.hw.attention_overlap:
            raise SimError(f"{arch.origin or arch.name}: software.prefill_attention: flash3 needs "
                           "gpu.attention_overlap (a warp-specialised, Hopper-class GPU)")
        self.prefill_policy = pre
        #: the GPU as the attention kernels see it: without the overlap where the stack runs FA-2
        self._attn_gpu = replace(self.hw, attention_overlap=False) \
            if self.hw.attention_overlap and pre != "flash3" else self.hw
        self._attn_hws: dict[str, AttnHw] = {}    # dtype -> the per-SM rates, built once
        #: precision of the fused attention kernels ('' : each op's own dtype)
        adt = self.software.attention_dtype if self.software else "model"
        self.attention_dtype = "" if adt == "model" else adt
        #: precision of GEMMs with weights stored in it ('' : each op's own dtype); only where
        #: the GPU has tensor cores for it (TensorRT-LLM's FP8 recipe needs Ada / Hopper: on an
        #: A100 FP8 weights stay weight-only, dequantised to the activations' dtype)
        gdt = self.software.gemm_dtype if self.software else "model"
        self.gemm_dtype = "" if gdt == "model" or not self.g.tensor_flops.get(gdt) else gdt
        #: the experts' GEMMs run TensorRT-LLM v0.9's CUTLASS SM80 grouped GEMM (sim/gpu/moe.py)
        self.moe_sm80 = bool(self.software) and self.software.moe_gemm == "cutlass-sm80"
        self._issue = AsyncIssue(self.software) if self.software and \
            self.software.mode == "async" else None
        # id(einsum) -> (einsum, dtype, best_gemm args, best_gemm result or None): prefetch
        self._prefetched: dict[int, tuple] = {}
        # id(compute) -> (compute, VectorShape): the vector ops' shapes formed by prefetch
        self._vshapes: dict[int, tuple] = {}

    # --- peaks -------------------------------------------------------------------------------
    def tensor_peak(self, dtype: str) -> float | None:
        return self.g.tensor_flops.get(dtype)

    def vector_peak(self, dtype: str) -> float:
        peak = self.g.vector_flops.get(dtype) or self.g.vector_flops.get("fp32")
        if not peak:
            raise SimError(f"{self.arch.origin or self.arch.name}: gpu.vector_flops has no entry "
                           f"for '{dtype}' or fp32")
        return peak

    def compute_dtype(self, op: Op) -> str:
        """The dtype an op's kernel computes in: ``software.attention_dtype`` for a fused
        attention op when the stack sets one; ``software.gemm_dtype`` for a GEMM whose weight
        operand is stored in that dtype (FP8 weights with 16-bit activations: an FP8 GEMM, as
        TensorRT-LLM's FP8Linear quantises the activation for it); else the op's own
        (:func:`op_dtype`)."""
        if op.kind == ATTENTION and self.attention_dtype:
            return self.attention_dtype
        if op.kind == MATMUL and self.gemm_dtype and isinstance(op.compute, Einsum):
            ins = op.compute.inputs
            if len(ins) == 2 and ins[1].role == "weight" and ins[1].dtype == self.gemm_dtype:
                return self.gemm_dtype
        return op_dtype(op)

    def peak_flops(self, op: Op) -> float:
        dtype = self.compute_dtype(op)
        if op.kind in (MATMUL, ATTENTION):
            return self.tensor_peak(dtype) or self.vector_peak(dtype)
        return self.vector_peak(dtype)

    def roof_lines(self, dtype: str) -> dict[str, float]:
        roofs = {f"vector {dtype}": self.vector_peak(dtype)}
        if self.tensor_peak(dtype):
            roofs[f"tensor {dtype}"] = self.tensor_peak(dtype)
        return roofs

    # --- energy ------------------------------------------------------------------------------
    def _energy(self, flops: float, dtype: str, dram_bytes: float, l2_bytes: float = 0.0,
                link_bytes: float = 0.0, link_name: str = "") -> dict[str, float]:
        table = self.energy_table
        per_flop = table.compute.get(dtype) or table.compute.get("fp32", 0.0)
        out = {"compute": flops * per_flop,
               "hbm": dram_bytes * 8 * table.memory.get("hbm", 0.0)}
        if l2_bytes:
            out["l2"] = l2_bytes * 8 * table.memory.get("l2", 0.0)
        if link_bytes:
            out["link"] = link_bytes * 8 * table.link.get(link_name or self.link_name, 0.0)
        return out

    # --- estimates ---------------------------------------------------------------------------
    def _bw_efficiency(self, family: str) -> float:
        if self.software is None:
            return 1.0
        return lookup(self.software.bandwidth_efficiency, family, 1.0)

    def _finish(self, op: Op, kernel: float, roof: float, bound: str, energy: dict,
                dram: float, detail: dict) -> Cost:
        family = op_family(op)
        latency = timed_latency(self.software, family, kernel)
        if latency > kernel:
            detail = {**detail, "kernel_s": kernel, "host_s": latency - kernel}
            if bound != "launch" and latency - kernel > kernel:
                bound = "host"
        return Cost(max(latency, roof), roof, bound, energy, dram, detail)

    def _estimate(self, op: Op) -> Cost:
        if op.kind == COLLECTIVE:
            return self._collective(op)
        roof = self.roofline(op)
        shards = max(op.shards, 1)
        flops, nbytes, dtype = op.flops / shards, op.bytes / shards, self.compute_dtype(op)
        if self.fidelity == "roofline":
            bound = "compute" if flops / self.peak_flops(op) >= nbytes / self.peak_bandwidth() \
                else "memory"
            return Cost(roof, roof, bound, self._energy(flops, dtype, nbytes), nbytes)
        comp = op.compute
        if op.kind == MATMUL and isinstance(comp, Einsum) and comp.is_contraction \
                and self.tensor_peak(dtype):
            return self._gemm_cost(op, comp, flops, dtype, roof)
        if op.kind == MATMUL and isinstance(comp, Cascade) and self.tensor_peak(dtype) \
                and epilogue_gemm(comp):
            return self._gemm_cost(op, comp.einsums[0], flops, dtype, roof,
                                   self._epilogue_args(comp, dtype))
        if op.kind == ATTENTION and isinstance(comp, Cascade) and self.tensor_peak(dtype):
            shape = attention_shape(comp)
            if shape is not None and self.attention_dtype:   # Q and O at the kernel's dtype
                shape = replace(shape, q_elem=dtype_bytes(dtype))
            if shape is not None:
                return self._attention_cost(op, shape, flops, nbytes, dtype, roof)
        if comp is not None and op.kind != MEMORY:
            return self._vector_cost(op, comp, flops, nbytes, dtype, roof)
        return self._streaming(op, flops, nbytes, dtype, roof)

    def _gemm_args(self, comp: Einsum, dtype: str) -> tuple:
        """``best_gemm``'s arguments after ``hw`` for the contraction ``comp`` in ``dtype``."""
        b, m, n, k = comp.gemm_shape
        a_t, b_t = comp.inputs
        return (b, m, n, k, dtype_bytes(dtype), a_t.nbytes(comp.size), b_t.nbytes(comp.size),
                comp.output.nbytes(comp.size), self.tensor_peak(dtype))

    def prefetch(self, ops: Iterable[Op]) -> int:
        """Price the tile-level GEMMs of ``ops`` not yet estimated all at once, ahead of
        ``estimate`` (:func:`sim.gpu.gemm.prefill_best_gemm`: the same results from arrays, e.g.
        a decode run's attention GEMMs over every KV length); how many it priced. A family of
        computes resized along one rank (e.g. those GEMMs, a decode run's softmax) gets its
        GEMM arguments and vector-kernel shapes from one integer array, and the costs of the
        ops priced or shaped here go straight into the estimate memo
        (:meth:`_settle_prefetched`; the array results are not handed to ``best_gemm``'s
        cache). An op whose arguments fail here is left for ``estimate`` to price (and
        report) in its turn."""
        self.settled = []
        if self.fidelity == "roofline":
            return 0
        ops = list(ops)
        memo = self._memo
        self._prefetched = kept = {}
        # contractions of one structure (a decode run's attention GEMMs resized to every KV
        # length share their tensors) get their arguments from arrays, the rest one by one
        families: dict[tuple, list[Einsum]] = {}
        # a GEMM's compute dtype and peak depend on its tensors only: once per tensor tuple
        by_tensors: dict[int, tuple] = {}
        own_dtype = type(self).compute_dtype is GpuDevice.compute_dtype
        for op in ops:
            comp = op.compute
            if op.kind != MATMUL or not isinstance(comp, Einsum) or id(comp) in kept or \
                    (id(comp), id(op.collective), op.shards, op.kind) in memo or \
                    (self.moe_sm80 and is_expert_gemm(op)):   # priced by _gemm_cost
                continue
            try:
                ins, out = comp.inputs, comp.output
                hit = by_tensors.get(id(ins))
                if hit is not None and hit[0] is ins and hit[1] is out:
                    dtype, peak = hit[2], hit[3]
                else:
                    dtype = self.compute_dtype(op)
                    peak = self.tensor_peak(dtype)
                    if own_dtype:
                        by_tensors[id(ins)] = (ins, out, dtype, peak)
                if comp.is_contraction and peak:
                    kept[id(comp)] = (comp, dtype, None)
                    families.setdefault((id(ins), id(out), dtype,
                                         tuple(map(_first, comp.sizes))), []).append(comp)
            except Exception:   # estimate raises it again, in its turn, with the op's context
                continue
        by_dtype: dict[str, list[tuple]] = {}   # a dtype may have its own sustained rate
        for (*_, dtype, _), comps in families.items():
            many = _gemm_args_family(comps, dtype, self.tensor_peak(dtype)) \
                if len(comps) >= FAMILY_MIN else None
            calls = by_dtype.setdefault(dtype, [])
            for i, comp in enumerate(comps):
                try:
                    args = many[i] if many is not None else self._gemm_args(comp, dtype)
                except Exception:   # estimate raises it again with the op's context
                    del kept[id(comp)]
                    continue
                kept[id(comp)] = (comp, dtype, args)
                calls.append(args)
        self._vshapes = _vector_shape_table(ops, memo)
        priced, results = 0, {}
        for dtype, calls in by_dtype.items():
            results[dtype] = {}
            if calls:
                priced += prefill_best_gemm(self.hw.for_dtype(dtype), calls,
                                            results=results[dtype], cache=False)
        for key, (comp, dtype, args) in kept.items():   # what best_gemm(*args) returns now
            kept[key] = (comp, dtype, args, results[dtype].get(args))
        self._settle_prefetched(ops)
        return priced

    def _settle_prefetched(self, ops: list[Op]) -> None:
        """The costs of the ops whose kernels :meth:`prefetch` priced (GEMM results) or shaped
        (vector kernels: :func:`sim.gpu.vector.vector_time_many`) from arrays: the float
        operations of ``_estimate`` -> ``_gemm_cost`` / ``_vector_cost`` -> ``_energy`` ->
        ``_finish`` in their order, the roofline, energies and latency over float64 arrays
        (the same IEEE operations on the same values), kept as one :class:`CostBlock` whose
        rows go into the estimate memo and ``self.settled`` ((positions in ``ops``, block):
        the engine reads their latencies as an array); each row's :class:`Cost`, formed when
        read, equals the one ``estimate`` would form, types included
        (tests/test_speed_pricing_family.py, tests/test_speed_settle.py). Ops whose inputs
        might not convert exactly (a non-float FLOP or byte count, an int of 2**53 or more),
        a host-timed stack and kernels that fail here are left to ``estimate`` (which prices
        them, or raises with the op's context). On a stack with ``vector_kernels: aten`` the
        vector kernels are left to ``estimate`` (its GEMMs and attention are settled here)."""
        kept, vshapes, memo = self._prefetched, self._vshapes, self._memo
        if type(self).roofline is not Device.roofline or any(
                getattr(type(self), m) is not getattr(GpuDevice, m) for m in _SETTLED) or \
                (self.software is not None and self.software.mode == "timed"):
            return
        if self.software is not None and self.software.vector_kernels == "aten":
            vshapes = {}     # PyTorch's own kernels (sim/gpu/aten.py): estimate prices them
        self._settle_attention(ops)
        if not (kept or vshapes):
            return
        import numpy as np

        bw = self.peak_bandwidth()
        table = self.energy_table
        # dtype -> (peak FLOP/s, energy per FLOP) of GEMMs and of vector kernels (None: the
        # op is left to estimate, which raises or prices it)
        of_gemm: dict[str, tuple | None] = {}
        of_vector: dict[str, tuple | None] = {}
        # (position in ops, compute, collective, memo key, FLOPs, bytes, shards, peak,
        # energy/FLOP)
        rows: list[tuple] = []
        kernels: list = []       # kernel results (vector: (compute, columns, row) to price)
        vector: dict[tuple, list[int]] = {}   # (family, dtype) -> rows to price
        keys: set[tuple] = set()   # one row per memo key (a repeat reads the memo)
        # (id(shape columns), name, class, kind) -> (op_dtype, op_family) of a vector op: a
        # family's computes share their first Einsum's tensors (_vector_shape_columns checks)
        # so its ops' dtypes are one; the family name is of the op's name, class and kind
        of_shape: dict[tuple, tuple] = {}
        for at, op in enumerate(ops):
            comp, kind = op.compute, op.kind
            if kind == MATMUL:
                got = kept.get(id(comp))
                if got is None or got[0] is not comp or got[3] is None:
                    continue
                dtype, known = got[1], of_gemm
            else:
                got = vshapes.get(id(comp))
                if got is None or got[0] is not comp:
                    continue
                shape = (id(got[1]), op.name, op.op_class, kind)
                named = of_shape.get(shape)
                if named is None:
                    named = of_shape[shape] = (op_dtype(op), op_family(op))
                dtype, known = named[0], of_vector
            f, b, coll, shards = op.flops, op.bytes, op.collective, op.shards
            if type(f) is not float or type(b) is not float:
                continue
            key = (id(comp), id(coll), shards, kind)
            if key in memo or key in keys:
                continue
            pe = known.get(dtype, False)
            if pe is False:
                pe = known[dtype] = self._peak_energy(op, dtype)
            if pe is None:
                continue
            if kind != MATMUL:
                vector.setdefault((named[1], dtype), []).append(len(rows))
                kernels.append(got)
            else:
                kernels.append(got[3])
            keys.add(key)
            rows.append((at, comp, coll, key, f, b, shards, *pe))
        for (family, dtype), at in vector.items():   # each family's kernels from arrays
            try:
                fields = [[kernels[r][1][f][kernels[r][2]] for r in at] for f in range(5)]
                priced = vector_time_columns(self.hw, *fields, family, self.vector_peak(dtype),
                                             self._bw_efficiency(family))
            except Exception:   # estimate prices them (and raises) in their turn
                priced = [None] * len(at)
            for r, res in zip(at, priced, strict=True):
                kernels[r] = res
        if not rows or not bw > 0 or any(res is None for res in kernels):
            return   # (a vector family that failed: estimate prices every op in its turn)
        dram = [res["dram_bytes"] for res in kernels]
        l2 = [res["l2_bytes"] for res in kernels]
        kernel = [res["time"] for res in kernels]
        for col in (dram, l2):
            types = set(map(type, col))
            if not types <= {int, float} or int in types and \
                    max(abs(v) for v in col if type(v) is int) >= 2 ** 53:
                return   # not exactly convertible: estimate prices them one by one
        if set(map(type, kernel)) != {float}:
            return
        at_, comp_, coll_, key_, flops, nbytes, shards, peak, pf = zip(*rows, strict=True)
        f64 = np.float64
        try:
            sh = np.maximum(np.array(shards, dtype=np.int64), 1)
        except (TypeError, ValueError, OverflowError):
            return
        fl = np.array(flops, dtype=f64) / sh
        by = np.array(nbytes, dtype=f64) / sh
        roof = np.maximum(fl / np.array(peak, dtype=f64), by / bw)
        latency = np.maximum(np.array(kernel, dtype=f64), roof)
        e_compute = fl * np.array(pf, dtype=f64)
        e_hbm = np.array(dram, dtype=f64) * 8 * table.memory.get("hbm", 0.0)
        e_l2 = np.array(l2, dtype=f64) * 8 * table.memory.get("l2", 0.0)
        # the costs stay columns: a row's Cost is formed when something reads it (the
        # engine reads the latency column; the op table the others, CostList.figures)
        block = CostBlock(latency, roof, e_compute, e_hbm, e_l2, kernels)
        memo.update(zip(key_, zip(comp_, coll_, repeat(block), range(len(rows)), strict=False),
                        strict=True))
        self.settled.append((np.array(at_, dtype=np.int64), block))

    def _settle_attention(self, ops: list[Op]) -> None:
        """The costs of the fused attention ops of ``ops`` not yet estimated that come in
        families (one template resized along a rank, e.g. a decode run's attention over every
        KV length: resized cascades share their template's ``external_inputs``; groups of
        :data:`FAMILY_MIN` or more of one shape but the KV length), formed straight into the
        estimate memo: each group's kernels from :func:`sim.gpu.attention.attention_time_many`,
        then the float operations of ``_estimate`` -> ``_attention_cost`` -> ``_energy`` ->
        ``_finish`` in their order over float64 arrays, so each :class:`Cost` equals the one
        ``estimate`` would form (tests/test_speed_pricing_attention.py). Called by
        :meth:`_settle_prefetched` under its conditions; ops whose inputs might not convert
        exactly (a non-float FLOP or byte count) and groups that fail here are left to
        ``estimate``."""
        if any(getattr(type(self), m) is not getattr(GpuDevice, m) for m in _SETTLED_ATTENTION):
            return
        import numpy as np

        memo = self._memo
        of_dtype: dict[str, tuple | None] = {}   # dtype -> (peak, energy/FLOP) or None
        elems: dict[int, tuple] = {}   # id(first einsum's inputs) -> (inputs, kv, q bytes)
        groups: dict[tuple, list[tuple]] = {}
        seen: set[tuple] = set()
        at_of: dict[tuple, Any] = {}   # last Einsum's rank names -> getter of b..e or None
        for op in ops:
            comp = op.compute
            if op.kind != ATTENTION or not isinstance(comp, Cascade):
                continue
            key = (id(comp), id(op.collective), op.shards, op.kind)
            f, b = op.flops, op.bytes
            if key in memo or key in seen or type(f) is not float or type(b) is not float or \
                    type(op.shards) is not int:
                continue
            try:
                first = comp.einsums[0]
                ins = first.inputs
                got = elems.get(id(ins))
                if got is None or got[0] is not ins:
                    q = ins[0]
                    k = ins[1] if len(ins) > 1 else q
                    got = elems[id(ins)] = (ins, dtype_bytes(k.dtype), dtype_bytes(q.dtype),
                                            q.dtype)
                dtype = self.attention_dtype or got[3]
                pe = of_dtype.get(dtype, False)
                if pe is False:
                    pe = of_dtype[dtype] = self._peak_energy(op, dtype) \
                        if self.tensor_peak(dtype) else None
                if pe is None:
                    continue
                # comp.size's extents of b, g, r, s, n, e: a later Einsum's win, so when the
                # last Einsum holds all six (the tracer's attention: its P.V), they are its own
                last = comp.einsums[-1].sizes
                names = tuple(map(_first, last))
                pick = at_of.get(names, False)
                if pick is False:
                    pick = at_of[names] = itemgetter(*(names.index(r) for r in "bgrsne")) \
                        if all(r in names for r in "bgrsne") and \
                        len(set(names)) == len(names) else None
                if pick is not None:
                    (_, b_), (_, g), (_, r), (_, s), (_, kv), (_, e) = pick(last)
                else:
                    size = comp.size
                    b_, g, r, s, kv, e = (size[x] for x in "bgrsne")
                q_elem = dtype_bytes(dtype) if self.attention_dtype else got[2]
                shape = (b_, g * r, g, s, e, got[1], q_elem)
            except Exception:   # estimate raises it again, in its turn, with the op's context
                continue
            seen.add(key)
            groups.setdefault((shape, dtype), []).append((op, key, kv, f, b, op.shards, pe))
        bw = self.peak_bandwidth()
        if not bw > 0:
            return
        hbm_pj = self.energy_table.memory.get("hbm", 0.0)
        f64 = np.float64
        for ((b_, qh, kvh, s, e, kv_elem, q_elem), dtype), rows in groups.items():
            if len(rows) < FAMILY_MIN:
                continue
            op_, key_, kvs, flops, nbytes, shards, pe = zip(*rows, strict=True)
            try:
                shape = AttentionShape(batch=b_, q_heads=qh, kv_heads=kvh, q_len=s,
                                       kv_len=kvs[0], head_dim=e, kv_elem=kv_elem,
                                       q_elem=q_elem)
                kernels = attention_time_many(self._attn_hw(dtype), shape, kvs,
                                              self.decode_policy)
                kernel = [res["time"] for res in kernels]
                res_dram = [res["dram_bytes"] for res in kernels]
                if set(map(type, kernel)) != {float} or set(map(type, res_dram)) != {float}:
                    continue
                sh = np.maximum(np.array(shards, dtype=np.int64), 1)
                fl = np.array(flops, dtype=f64) / sh
                by = np.array(nbytes, dtype=f64) / sh
                peak, per_flop = pe[0]
                roof = np.maximum(fl / peak, by / bw)
                dram = np.maximum(np.array(res_dram, dtype=f64), by)
                latency = np.maximum(np.array(kernel, dtype=f64), roof)
                scores = np.array(kvs, dtype=np.int64) * (b_ * qh * s)
                softmax = np.minimum(scores * SOFTMAX_OPS, fl)   # the shard's scores
                e_compute = (fl - softmax) * per_flop + softmax * \
                    self._attention_energies(dtype)[1]
                e_hbm = dram * 8 * hbm_pj
            except Exception:   # estimate prices them (and raises) in their turn
                continue
            bound = "compute" if s > 1 else "memory"
            policy = self.prefill_policy if s > 1 else self.decode_policy
            for op, key, res, lat, rf, ec, eh, dr in zip(
                    op_, key_, kernels, latency.tolist(), roof.tolist(), e_compute.tolist(),
                    e_hbm.tolist(), dram.tolist(), strict=True):
                del res["time"]
                res["policy"] = policy
                memo[key] = (op.compute, op.collective,
                             Cost(lat, rf, bound, {"compute": ec, "hbm": eh}, dr, res))

    def _attention_energies(self, dtype: str) -> tuple[float, float]:
        """(J per MMA FLOP, J per softmax operation) of fused attention computing in ``dtype``:
        the MMAs at the dtype's tensor energy, the online softmax's operations on the CUDA
        cores at the fp32 entry (the dtype's where the table has none)."""
        table = self.energy_table
        per_flop = table.compute.get(dtype) or table.compute.get("fp32", 0.0)
        return per_flop, table.compute.get("fp32") or per_flop

    def _peak_energy(self, op: Op, dtype: str) -> tuple[float, float] | None:
        """(peak FLOP/s, J per FLOP) ``estimate`` prices ``op`` computing in ``dtype`` with
        (:meth:`peak_flops`, :meth:`_energy`); None when the peak is missing or not a positive
        number (``estimate`` then raises or prices it as it does)."""
        try:
            peak = self.peak_flops(op)
        except Exception:
            return None
        table = self.energy_table
        per_flop = table.compute.get(dtype) or table.compute.get("fp32", 0.0)
        if type(peak) not in (int, float) or not peak > 0 or \
                type(per_flop) not in (int, float):
            return None
        return peak, per_flop

    def _epilogue_args(self, casc: Cascade, dtype: str) -> tuple:
        """``best_gemm``'s arguments for a GEMM whose epilogue reduces its output in registers
        (:func:`epilogue_gemm`): the contraction's shape and operands, the cascade's final
        outputs as what it writes (DeepSeek-V3.2's indexer: DeepGEMM's ``fp8_mqa_logits``
        writes one score per query and key, not one per head)."""
        args = self._gemm_args(casc.einsums[0], dtype)
        sizes = casc.size
        out = sum(e.output.nbytes(sizes) for e in casc.einsums
                  if e.output.name in casc.final_outputs)
        return (*args[:7], float(out), args[8])

    def _gemm_cost(self, op: Op, comp: Einsum, flops: float, dtype: str, roof: float,
                   args: tuple | None = None) -> Cost:
        kept = self._prefetched.pop(id(comp), None)   # what prefetch formed and priced
        hw = self.hw.for_dtype(dtype)
        if args is not None:
            best = None
        elif kept is not None and kept[0] is comp and kept[1] == dtype:
            args, best = kept[2], kept[3]
        else:
            args, best = self._gemm_args(comp, dtype), None
            if self.moe_sm80 and is_expert_gemm(op):
                hw, peak = moe_gemm_view(hw, args[-1])
                args = (*args[:-1], peak)
        if best is None:
            try:
                best = best_gemm(hw, *args)
            except ValueError as exc:
                raise SimError(f"{self.arch.origin or self.arch.name}: {exc}") from None
        energy = self._energy(flops, dtype, best["dram_bytes"], best["l2_bytes"])
        detail = {k_: v for k_, v in best.items() if k_ != "time"}
        return self._finish(op, best["time"], roof, best["bound"], energy, best["dram_bytes"],
                            detail)

    def _attn_hw(self, dtype: str) -> AttnHw:
        hit = self._attn_hws.get(dtype)
        if hit is None:
            g = self.g
            sm_tensor = self.tensor_peak(dtype) * self.hw.for_dtype(dtype).tensor_efficiency \
                / g.sm_count
            sm_alu = self.vector_peak("fp32") / 2.0 / g.sm_count  # FMA lanes: one op per clock
            hit = self._attn_hws[dtype] = AttnHw(self._attn_gpu, sm_tensor, sm_alu,
                                                 SFU_PER_CLOCK * g.clock)
        return hit

    def _attention_cost(self, op: Op, shape: AttentionShape, flops: float, nbytes: float,
                        dtype: str, roof: float) -> Cost:
        res = attention_time(self._attn_hw(dtype), shape, self.decode_policy)
        dram = max(res["dram_bytes"], nbytes)
        energy = self._energy(flops, dtype, dram)
        # the shape is the shard's (its heads), as ``flops`` is
        scores = shape.batch * shape.q_heads * shape.q_len * shape.kv_len
        softmax = min(scores * SOFTMAX_OPS, flops)
        per_flop, per_op = self._attention_energies(dtype)
        energy["compute"] = (flops - softmax) * per_flop + softmax * per_op
        detail = {k_: v for k_, v in res.items() if k_ != "time"}
        detail["policy"] = self.prefill_policy if shape.q_len > 1 else self.decode_policy
        bound = "compute" if shape.q_len > 1 else "memory"
        return self._finish(op, res["time"], roof, bound, energy, dram, detail)

    def _vector_cost(self, op: Op, comp, flops: float, nbytes: float, dtype: str,
                     roof: float) -> Cost:
        family = op_family(op)
        kept = self._vshapes.pop(id(comp), None)    # what prefetch formed from arrays
        shape = _shape_at(kept[1], kept[2]) if kept is not None and kept[0] is comp \
            else vector_shape(comp)
        sw = self.software
        if sw is not None and sw.vector_kernels == "aten":
            res = aten_time(self.hw, shape, row_kind(comp, family, shape), sw.kernel_cycles,
                            sw.kernel_gap, sw.kernel_overlap_p, self.vector_peak(dtype))
        else:
            res = vector_time(self.hw, shape, family, self.vector_peak(dtype),
                              self._bw_efficiency(family))
        energy = self._energy(flops, dtype, res["dram_bytes"], res["l2_bytes"])
        detail = {k_: v for k_, v in res.items() if k_ != "time"}
        return self._finish(op, res["time"], roof, res["bound"], energy, res["dram_bytes"],
                            detail)

    def _streaming(self, op: Op, flops: float, nbytes: float, dtype: str, roof: float) -> Cost:
        """A kernel that streams its operands once (memory ops, fallbacks)."""
        peak = self.peak_flops(op)
        t_compute = flops / peak
        t_memory = nbytes / (self.hw.hbm_achievable * self._bw_efficiency(op_family(op)))
        t_latency = self.hbm.latency
        body = max(t_compute, t_memory, t_latency)
        bound = "compute" if body == t_compute else ("memory" if body == t_memory else "latency")
        kernel = self.g.launch_overhead + body
        if self.g.launch_overhead > body:
            bound = "launch"
        return self._finish(op, kernel, roof, bound, self._energy(flops, dtype, nbytes), nbytes,
                            {"t_compute": t_compute, "t_memory": t_memory})

    def _collective_roofline(self, op: Op) -> float:
        """:meth:`Device.roofline` of a collective, except an all-reduce the NVSwitch reduces
        (NVLS, in one node): each GPU then sends and receives (p-1)/p of the buffer, half a
        ring's 2 (p-1)/p (NVIDIA's 8x H100 log reaches 480 GB/s of ring-equivalent bus
        bandwidth over 450 GB/s links). Not :meth:`roofline` itself: the settled cost columns
        of GEMMs and vector kernels rely on the base class's."""
        c = op.collective
        if c is not None and c.kind == "allreduce" and self.nccl.nvls \
                and NVLS_MIN_RANKS < c.group <= self.per_node and self.link_bandwidth() > 0:
            return (c.group - 1) / c.group * c.bytes_per_rank / self.link_bandwidth()
        return self.roofline(op)

    def _link_hw(self, link) -> LinkHw:
        return LinkHw(link.bandwidth, link.efficiency, link.latency)

    def _collective(self, op: Op) -> Cost:
        c = op.collective
        if c is None or c.group <= 1:
            return Cost(0.0, 0.0, "none")
        if self.link is None:
            raise SimError(f"{self.arch.origin or self.arch.name}: tensor parallelism needs "
                           "system.intra_node_link naming a link in interconnect")
        roof = self._collective_roofline(op)
        sent = collective_min_bytes(c.kind, c.bytes_per_rank, c.group)
        if self.fidelity == "roofline":
            return Cost(roof, roof, "link", self._energy(0, c.dtype, 0, link_bytes=sent), 0.0)
        inter = self._link_hw(self.inter_link) if self.inter_link else None
        res = collective_time(c.kind, float(c.bytes_per_rank), c.group,
                              self._link_hw(self.link), self.protocols, self.per_node, inter,
                              self.nccl)
        kernel = self.g.launch_overhead + res["time"]
        # the reduction reads and writes the buffer in HBM on every step
        hbm_bytes = 3 * sent if c.kind in ("allreduce", "reducescatter") else sent
        energy = self._energy(c.reduce_flops / c.group, c.dtype, hbm_bytes, link_bytes=sent)
        detail = {k_: v for k_, v in res.items() if k_ != "time"}
        return self._finish(op, kernel, roof, "link", energy, hbm_bytes, detail)

    # --- event run ---------------------------------------------------------------------------
    def holds_for_latency(self) -> bool:
        return self._issue is None

    def host_issue(self) -> AsyncIssue | None:
        """The async host that issues this GPU's ops (None unless ``software.mode`` is
        ``async``); the engine's one-stream path reads its costs to time a run on arrays."""
        return self._issue

    def process(self, env, op: Op, cost: Cost) -> Generator:
        """Hold the GPU for the op; an async host may make it wait for its issue first."""
        if self._issue is None:
            yield env.timeout(cost.latency)
            return
        start = self._issue.start_time(env, op, env.now)
        yield env.timeout(start - env.now + cost.latency)


#: contractions of one structure priced from arrays in ``prefetch`` from this many on
FAMILY_MIN = 8
_first = itemgetter(0)
#: the methods whose operations ``_settle_attention`` performs over arrays, besides
#: :data:`_SETTLED` (a subclass that overrides one has its attention priced op by op)
_SETTLED_ATTENTION = ("_attention_cost", "_attn_hw", "tensor_peak", "peak_bandwidth")
#: the methods whose operations ``_settle_prefetched`` performs over arrays (a subclass that
#: overrides one is priced op by op)
_SETTLED = ("_estimate", "_gemm_cost", "_vector_cost", "_energy", "_finish", "peak_flops",
            "compute_dtype", "vector_peak", "_bw_efficiency")


def _gemm_args_family(comps: list[Einsum], dtype: str, peak: float | None) -> list[tuple] | None:
    """:meth:`GpuDevice._gemm_args` of every Einsum of ``comps`` (contractions of the same
    tensors whose sizes name the same ranks in the same order) from one integer array of their
    sizes: the same integer products and the same ``elements x bytes`` product per tensor, so
    each tuple equals the scalar one, types included. None when it cannot (the caller then
    forms them one by one)."""
    import numpy as np

    first = comps[0]
    try:
        col = {r: i for i, (r, _) in enumerate(first.sizes)}
        sizes = np.array([[v for _, v in c.sizes] for c in comps], dtype=np.int64)
        if sizes.shape != (len(comps), len(col)) or (sizes <= 0).any() or \
                np.log2(sizes.astype(np.float64)).sum(axis=1).max() > 58:
            return None      # not positive ints, or products that might overflow int64
        a, b = first.inputs
        out, red = first.output.ranks, first.reduced_ranks
        elem = dtype_bytes(dtype)

        def prod(ranks) -> list:
            return np.prod(sizes[:, [col[r] for r in ranks]], axis=1).tolist() if ranks \
                else [1] * len(comps)

        def nbytes(t) -> list:
            per = dtype_bytes(t.dtype)
            if type(per) is not int and type(per) is not float:
                return [None] * len(comps)
            n = np.prod(sizes[:, [col[r] for r in t.ranks]], axis=1) if t.ranks \
                else np.ones(len(comps), dtype=np.int64)
            return (n * per).tolist()

        cols = (prod([r for r in out if r in a.ranks and r in b.ranks]),
                prod([r for r in out if r in a.ranks and r not in b.ranks]),
                prod([r for r in out if r in b.ranks and r not in a.ranks]),
                prod([r for r in red if r in a.ranks and r in b.ranks]),
                nbytes(a), nbytes(b), nbytes(first.output))
    except (KeyError, ValueError, TypeError):
        return None
    if any(v is None for v in cols[4]) or any(v is None for v in cols[5]) or \
            any(v is None for v in cols[6]):
        return None
    return [(bi, mi, ni, ki, elem, ab, bb, cb, peak)
            for bi, mi, ni, ki, ab, bb, cb in zip(*cols, strict=True)]


def row_kind(comp, family: str, shape: VectorShape) -> str:
    """The ATen row kernel of a vector op's compute: ``softmax``, ``layernorm``, ``rmsnorm``
    (a norm whose first reduction sums squares, x times x: two operands; LayerNorm's first
    sums x for the mean), ``activation`` (an element-wise activation) or '' (another
    element-wise op)."""
    if shape.width <= 1:
        return "activation" if family == "activation" else ""
    if family == "softmax":
        return "softmax"
    if family != "norm":
        return ""
    einsums = comp.einsums if isinstance(comp, Cascade) else (comp,)
    first = next((e for e in einsums if e.reduce_op and e.reduced_ranks), None)
    if first is None:
        return ""
    return "rmsnorm" if len(first.inputs) == 2 else "layernorm"


def _vector_shape_table(ops: Iterable[Op], memo: dict) -> dict[int, tuple]:
    """``id(compute) -> (compute, columns, row)`` (the fields of ``vector_shape(compute)`` are
    row ``row`` of :func:`_vector_shape_columns`' ``columns``) for the vector ops of ``ops`` not
    yet estimated whose computes come in families (one template resized along a rank, e.g. a
    decode run's softmax over every KV length: resized cascades share their template's
    ``external_inputs``, resized Einsums its tensors), each family's shapes from arrays
    (:func:`_vector_shape_family`); ops of small families are left out (priced one by one)."""
    families: dict[tuple, list] = {}
    seen: set[int] = set()
    skip = (MATMUL, ATTENTION, MEMORY, COLLECTIVE)
    for op in ops:
        comp = op.compute
        if op.kind in skip or comp is None or id(comp) in seen or \
                (id(comp), id(op.collective), op.shards, op.kind) in memo:
            continue
        seen.add(id(comp))
        if isinstance(comp, Cascade):
            shared = comp.__dict__.get("external_inputs")
            key = (Cascade, id(shared) if shared is not None else id(comp), len(comp.einsums))
        elif isinstance(comp, Einsum):
            key = (Einsum, id(comp.inputs), id(comp.output))
        else:
            continue
        families.setdefault(key, []).append(comp)
    out: dict[int, tuple] = {}
    for comps in families.values():
        if len(comps) < FAMILY_MIN:
            continue
        cols = _vector_shape_columns(comps)
        if cols is not None:
            out.update((id(c), (c, cols, i)) for i, c in enumerate(comps))
    return out


def _vector_shapes(ops: Iterable[Op], memo: dict) -> dict[int, tuple]:
    """``id(compute) -> (compute, vector_shape(compute))`` of :func:`_vector_shape_table`."""
    return {k: (c, _shape_at(cols, i))
            for k, (c, cols, i) in _vector_shape_table(ops, memo).items()}


def _shape_at(cols: tuple, i: int) -> VectorShape:
    """Row ``i`` of :func:`_vector_shape_columns`' columns as a :class:`VectorShape`."""
    return VectorShape(rows=cols[0][i], width=cols[1][i], input_bytes=cols[2][i],
                       dram_bytes=cols[3][i], flops=cols[4][i])


def _vector_shape_family(comps: list) -> list[VectorShape] | None:
    """:func:`_vector_shape_columns` as one :class:`VectorShape` per compute."""
    cols = _vector_shape_columns(comps)
    return None if cols is None else [_shape_at(cols, i) for i in range(len(comps))]


def _vector_shape_columns(comps: list) -> tuple[list, ...] | None:
    """The fields (rows, width, input_bytes, dram_bytes, flops: lists, row ``i`` for
    ``comps[i]``) of :func:`sim.gpu.vector.vector_shape` of each compute of ``comps`` (Einsums
    or cascades of one structure: the same tensor objects and operators up to the first
    reducing Einsum, its sizes naming the same ranks in the same order) from one integer array
    of that Einsum's sizes: the same integer products, the same ``elements x bytes`` and each
    compute's own ``min_bytes`` and ``flops``, so each shape equals the scalar one. None when
    the family is not of that form (no reducing Einsum, another structure, sizes an int64
    might not hold)."""
    import numpy as np

    def chain(c) -> tuple:
        return c.einsums if isinstance(c, Cascade) else (c,)

    ref = chain(comps[0])
    j = next((j for j, e in enumerate(ref) if e.reduce_op and e.reduced_ranks), None)
    if j is None:
        return None
    e0 = ref[j]
    names = tuple(r for r, _ in e0.sizes)
    head = [(e.inputs, e.output, e.reduce_op) for e in ref[:j + 1]]
    rows = []
    second = itemgetter(1)
    for c in comps:
        es = chain(c)
        if len(es) != len(ref):
            return None
        for e, (i, o, r) in zip(es[:j + 1], head, strict=True):
            if e.inputs is not i or e.output is not o or e.reduce_op != r:
                return None
        sizes = es[j].sizes
        if tuple(map(_first, sizes)) != names:
            return None
        rows.append(list(map(second, sizes)))
    try:
        sizes = np.array(rows, dtype=np.int64)
        if sizes.shape != (len(comps), len(names)) or (sizes <= 0).any() or \
                np.log2(sizes.astype(np.float64)).sum(axis=1).max() > 58:
            return None
        col = {r: i for i, r in enumerate(names)}

        def prod(ranks) -> np.ndarray:
            return np.prod(sizes[:, [col[r] for r in ranks]], axis=1) if ranks \
                else np.ones(len(comps), dtype=np.int64)

        width = prod(e0.reduced_ranks)
        points = prod(e0.ranks)
        t = e0.inputs[0]
        in_bytes = (prod(t.ranks) * dtype_bytes(t.dtype)).astype(np.float64)
        rows_ = np.maximum(1, points // width)
        dram = [float(c.min_bytes) for c in comps]
        flops = [float(c.flops) for c in comps]
    except (KeyError, ValueError, TypeError, OverflowError):
        return None
    return rows_.tolist(), width.tolist(), in_bytes.tolist(), dram, flops


def attention_shape(comp: Cascade) -> AttentionShape | None:
    """The attention call a tracer ``attention`` cascade computes (ranks b, g, r, s, n, e; and
    f, the value width, where it differs: latent attention, whose values are its keys'
    tensor, ``kv_shared``)."""
    size = comp.size
    if not all(r in size for r in "bgrsne"):
        return None
    first = comp.einsums[0]
    q = first.inputs[0]
    k = first.inputs[1] if len(first.inputs) > 1 else q
    g, r = size["g"], size["r"]
    v_dim, shared = 0, False
    if "f" in size:
        last = comp.einsums[-1]
        v = last.inputs[-1]
        v_dim, shared = size["f"], v.name == k.name
    return AttentionShape(batch=size["b"], q_heads=g * r, kv_heads=g, q_len=size["s"],
                          kv_len=size["n"], head_dim=size["e"], kv_elem=dtype_bytes(k.dtype),
                          q_elem=dtype_bytes(q.dtype), v_dim=v_dim, kv_shared=shared)


__all__ = ["GpuDevice", "attention_shape", "DECODE_POLICIES"]
