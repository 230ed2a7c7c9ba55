"""GPU device model: roofline, or tile level (mechanisms in ``sim/gpu/``).

Tile fidelity, per kernel:

* **GEMM** (``sim.gpu.gemm``) — CTA tiles and split-K chosen fastest-first, tile and wave
  quantisation, tensor-core vs shared-memory main loop, per-tile prologue/epilogue, L2 panel
  reuse, HBM at the achievable bandwidth capped by Little's law.
* **Vector ops** (``sim.gpu.vector``) — rows per CTA, re-reads of rows too wide for registers,
  grids too small to fill the memory system.
* **Fused attention** (``sim.gpu.attention``) — FlashAttention-2 blocks on tensor cores plus the
  online softmax; decode partitioned as FA-2, FlashDecoding or LeanAttention
  (``software.decode_attention``); GQA packs a group's queries; at the precision
  ``software.attention_dtype`` names (default: the op's dtype; the KV cache keeps its own).
* **Collectives** (``sim.gpu.collectives``) — ring/tree algorithms under the software stack's
  protocols over the intra-node link, hierarchical across nodes.
* **Host** (``sim.gpu.host``) — the software stack: ideal (CUDA graphs), host-timed isolated ops,
  or an async host thread that issues ops ahead of the GPU.

Every kernel pays ``gpu.launch_overhead``. Energy: FLOPs x pJ/FLOP of the dtype, HBM and L2 bits
x pJ/bit, link bits x pJ/bit (static power is charged by the engine over the makespan).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import replace

from arch import Arch
from sim.devices.base import (
    Cost,
    MainTierDevice,
    SimError,
    collective_min_bytes,
    op_dtype,
    register_device,
)
from sim.gpu.attention import DECODE_POLICIES, AttentionShape, AttnHw, attention_time
from sim.gpu.collectives import DEFAULT_NCCL, LinkHw, NcclHw, ProtocolHw, collective_time
from sim.gpu.gemm import best_gemm, prefill_best_gemm
from sim.gpu.host import AsyncIssue, lookup, op_family, timed_latency
from sim.gpu.hw import gpu_hw
from sim.gpu.vector import VectorShape, vector_shape, vector_time
from workloads.einsum import Cascade, Einsum, dtype_bytes
from workloads.trace import ATTENTION, COLLECTIVE, MATMUL, MEMORY, Op

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
                                          p.bandwidth_fraction, p.max_bandwidth)
                               for k, p in protos.items())
        sw = self.software
        self.nccl = (NcclHw(sw.collective_host_cpu, sw.collective_nvls,
                            sw.collective_nics_per_node) if sw else DEFAULT_NCCL)
        self.decode_policy = (self.software.decode_attention if self.software
                              else "flashdecoding")
        #: precision of the fused attention kernels ('' : each op's own dtype)
        adt = self.software.attention_dtype if self.software else "model"
        self.attention_dtype = "" if adt == "model" else adt
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
        attention op when the stack sets one, else the op's own (:func:`op_dtype`)."""
        if op.kind == ATTENTION and self.attention_dtype:
            return self.attention_dtype
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
        GEMM arguments and vector-kernel shapes from one integer array. An op whose arguments
        fail here is left for ``estimate`` to price (and report) in its turn."""
        if self.fidelity == "roofline":
            return 0
        ops = list(ops)
        memo = self._memo
        self._prefetched = kept = {}
        # contractions of one structure (a decode run's attention GEMMs resized to every KV
        # length share their tensors) get their arguments from arrays, the rest one by one
        families: dict[tuple, list[Einsum]] = {}
        for op in ops:
            comp = op.compute
            if op.kind != MATMUL or not isinstance(comp, Einsum) or id(comp) in kept or \
                    (id(comp), id(op.collective), op.shards, op.kind) in memo:
                continue
            try:
                dtype = op_dtype(op)
                if comp.is_contraction and self.tensor_peak(dtype):
                    kept[id(comp)] = (comp, dtype, None)
                    families.setdefault((id(comp.inputs), id(comp.output), dtype,
                                         tuple(r for r, _ in comp.sizes)), []).append(comp)
            except Exception:   # estimate raises it again, in its turn, with the op's context
                continue
        for (*_, dtype, _), comps in families.items():
            many = _gemm_args_family(comps, dtype, self.tensor_peak(dtype)) \
                if len(comps) >= FAMILY_MIN else None
            for i, comp in enumerate(comps):
                try:
                    args = many[i] if many is not None else self._gemm_args(comp, dtype)
                except Exception:   # estimate raises it again with the op's context
                    del kept[id(comp)]
                    continue
                kept[id(comp)] = (comp, dtype, args)
        self._vshapes = _vector_shapes(ops, memo)
        calls = [v[2] for v in kept.values()]
        if not calls:
            return 0
        results: dict[tuple, dict] = {}
        priced = prefill_best_gemm(self.hw, calls, results=results)
        for key, (comp, dtype, args) in kept.items():   # what best_gemm(*args) returns now
            kept[key] = (comp, dtype, args, results.get(args))
        return priced

    def _gemm_cost(self, op: Op, comp: Einsum, flops: float, dtype: str, roof: float) -> Cost:
        kept = self._prefetched.pop(id(comp), None)   # what prefetch formed and priced
        if kept is not None and kept[0] is comp and kept[1] == dtype:
            args, best = kept[2], kept[3]
        else:
            args, best = self._gemm_args(comp, dtype), None
        if best is None:
            try:
                best = best_gemm(self.hw, *args)
            except ValueError as exc:
                raise SimError(f"{self.arch.origin or self.arch.name}: {exc}") from None
        energy = self._energy(flops, dtype, best["dram_bytes"], best["l2_bytes"])
        detail = {k_: v for k_, v in best.items() if k_ != "time"}
        return self._finish(op, best["time"], roof, best["bound"], energy, best["dram_bytes"],
                            detail)

    def _attn_hw(self, dtype: str) -> AttnHw:
        g = self.g
        sm_tensor = self.tensor_peak(dtype) * self.hw.tensor_efficiency / g.sm_count
        sm_alu = self.vector_peak("fp32") / 2.0 / g.sm_count  # FMA lanes: one op per clock
        return AttnHw(self.hw, sm_tensor, sm_alu, SFU_PER_CLOCK * g.clock)

    def _attention_cost(self, op: Op, shape: AttentionShape, flops: float, nbytes: float,
                        dtype: str, roof: float) -> Cost:
        res = attention_time(self._attn_hw(dtype), shape, self.decode_policy)
        dram = max(res["dram_bytes"], nbytes)
        energy = self._energy(flops, dtype, dram)
        detail = {k_: v for k_, v in res.items() if k_ != "time"}
        detail["policy"] = "flash2" if shape.q_len > 1 else self.decode_policy
        bound = "compute" if shape.q_len > 1 else "memory"
        return self._finish(op, res["time"], roof, bound, energy, dram, detail)

    def _vector_cost(self, op: Op, comp, flops: float, nbytes: float, dtype: str,
                     roof: float) -> Cost:
        family = op_family(op)
        kept = self._vshapes.pop(id(comp), None)    # what prefetch formed from arrays
        shape = kept[1] if kept is not None and kept[0] is comp else vector_shape(comp)
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

    def _link_hw(self, link) -> LinkHw:
        return LinkHw(link.bandwidth, link.efficiency, link.latency)

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


def _vector_shapes(ops: Iterable[Op], memo: dict) -> dict[int, tuple]:
    """``id(compute) -> (compute, vector_shape(compute))`` for the vector ops of ``ops`` not
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
        shapes = _vector_shape_family(comps)
        if shapes is not None:
            out.update((id(c), (c, sh)) for c, sh in zip(comps, shapes, strict=True))
    return out


def _vector_shape_family(comps: list) -> list[VectorShape] | None:
    """:func:`sim.gpu.vector.vector_shape` of each compute of ``comps`` (Einsums or cascades of
    one structure: the same tensor objects and operators up to the first reducing Einsum, its
    sizes naming the same ranks in the same order) from one integer array of that Einsum's
    sizes: the same integer products, the same ``elements x bytes`` and each compute's own
    ``min_bytes`` and ``flops``, so each shape equals the scalar one. None when the family is
    not of that form (no reducing Einsum, another structure, sizes an int64 might not hold)."""
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
    for c in comps:
        es = chain(c)
        if len(es) != len(ref) or any(
                e.inputs is not i or e.output is not o or e.reduce_op != r
                for e, (i, o, r) in zip(es[:j + 1], head, strict=True)) or \
                tuple(r for r, _ in es[j].sizes) != names:
            return None
        rows.append([v for _, v in es[j].sizes])
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
    return [VectorShape(rows=r, width=w, input_bytes=b, dram_bytes=d, flops=f)
            for r, w, b, d, f in zip(rows_.tolist(), width.tolist(), in_bytes.tolist(), dram,
                                     flops, strict=True)]


def attention_shape(comp: Cascade) -> AttentionShape | None:
    """The attention call a tracer ``attention`` cascade computes (ranks b, g, r, s, n, e)."""
    size = comp.size
    if not all(r in size for r in "bgrsne"):
        return None
    first = comp.einsums[0]
    q = first.inputs[0]
    k = first.inputs[1] if len(first.inputs) > 1 else q
    g, r = size["g"], size["r"]
    return AttentionShape(batch=size["b"], q_heads=g * r, kv_heads=g, q_len=size["s"],
                          kv_len=size["n"], head_dim=size["e"], kv_elem=dtype_bytes(k.dtype),
                          q_elem=dtype_bytes(q.dtype))


__all__ = ["GpuDevice", "attention_shape", "DECODE_POLICIES"]
