"""Dataflow device model (arch type ``dataflow``): PCUs, PMUs, on-chip network, HBM (SN40L).

Two ways to run an op graph (``dataflow.fusion``):

* ``decoder`` — the compiler fuses a decoder layer into one kernel. :meth:`split_trace` sees the
  whole trace, groups each layer's ops per (phase, step, layer, micro-batch) and cuts the group
  at its collectives into segments; each segment is placed as a spatial pipeline over the PCUs
  and PMUs by :func:`mappings.dataflow.place` (PCUs shared out to balance the stage times,
  intermediates streamed PMU -> PCU, only weights, KV cache and boundary tensors through HBM).
  The segment's time (slowest stage, HBM or NoC, plus the pipeline fill; the kernel's program
  and argument load once per layer) is spread over its ops in proportion to their stage times;
  so are its HBM bytes and its roofline bound (the segment's FLOPs at peak or its HBM bytes at
  peak bandwidth), because a fused kernel's lower bound exists only for the kernel as a whole.
* ``none`` — one kernel per op: all PCUs/PMUs on that op, every input and output through HBM,
  a program and argument load per call.

Collectives run over ``system.intra_node_link`` (ring all-reduce: ``2 (g-1)`` steps of link
latency plus the bytes each rank must send at the link's sustained rate). ``xpusim op`` (no
trace) runs an op as its own fused kernel. Energy: FLOPs x ``energy.compute[dtype]``, HBM bytes x
``energy.memory.hbm``, PMU bytes x ``energy.memory.sram``, link bytes x ``energy.link``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from arch import Arch
from mappings.dataflow import FREE_OPS, TRANSCENDENTAL, Placement, Stage, place
from mappings.mapping import MappingError
from sim.devices.base import (
    Cost,
    MainTierDevice,
    SimError,
    collective_min_bytes,
    op_dtype,
    register_device,
)
from workloads.einsum import Cascade, Einsum, dtype_bytes
from workloads.trace import ATTENTION, COLLECTIVE, MATMUL, MEMORY, Op, OpKind

RESIDENT_ROLES = ("weight", "kv_cache", "state")


def _tensor_bytes(comp: Einsum | Cascade | None) -> tuple[float, float, float]:
    """(weight/KV/state bytes, activation bytes in, activation bytes out) of one shard."""
    if comp is None:
        return 0.0, 0.0, 0.0
    einsums = comp.einsums if isinstance(comp, Cascade) else [comp]
    produced = {e.output.name for e in einsums}
    seen: set[str] = set()
    res = act_in = 0.0
    for e in einsums:
        for t in e.inputs:
            if t.name in seen or (t.name in produced and isinstance(comp, Cascade)):
                continue
            seen.add(t.name)
            b = t.nbytes(e.size)
            if t.role in RESIDENT_ROLES:
                res += b
            else:
                act_in += b
    if isinstance(comp, Cascade):
        outs = [e for e in einsums if e.output.name in comp.outputs] or [einsums[-1]]
    else:
        outs = [comp]
    act_out = 0.0
    for e in outs:
        b = e.output.nbytes(e.size)
        if e.output.role in RESIDENT_ROLES:
            res += b
        else:
            act_out += b
    return res, act_in, act_out


@register_device
class DataflowDevice(MainTierDevice):
    """A reconfigurable dataflow chip described by an arch of type ``dataflow``."""

    arch_type = "dataflow"

    def __init__(self, arch: Arch, fidelity: str = "tile", fusion: str | None = None):
        super().__init__(arch, fidelity)
        self.d = arch.dataflow
        self.fusion = fusion or self.d.fusion
        self.hbm = arch.memory["hbm"]
        self.main_tier = self.hbm
        self.sram = arch.memory["sram"]
        self.energy_table = arch.energy
        self.link_name, self.link = self.system_link("intra_node_link")
        # op id -> (its compute, cost): a dict, or by op kind (a trace held as arrays)
        self._attributed: Any = {}
        self._segments: dict[tuple, tuple[Placement, list[Cost]]] = {}
        self._stages: dict[tuple, tuple[Any, Any, Stage]] = {}   # stage_of, by op shape
        # a segment's end stage with its boundary bytes, by (id(stage), HBM bytes): the same
        # object every step (the placement keeps its figures per stage object)
        self._ends: dict[tuple[int, float], tuple[Stage, Stage]] = {}
        self._tensors: dict[int, tuple[Any, tuple[float, float, float]]] = {}
        self._kind_stages: dict[tuple[int, bool], tuple[OpKind, Stage]] = {}
        self._factors: dict[str, tuple[float, float, float]] = {}   # _energy_factors
        self._peaks: dict[str, float] = {}                           # _peak_of
        self.calls = {"kernels": 0, "ops": 0}

    # --- peaks -------------------------------------------------------------------------------
    def peak_flops(self, op: Op) -> float:
        if op.kind in (MATMUL, ATTENTION):
            return self.d.peak_flops()
        return self.d.simd_ops_per_s()

    def roof_lines(self, dtype: str) -> dict[str, float]:
        return {"PCU systolic": self.d.peak_flops(), "PCU SIMD": self.d.simd_ops_per_s(),
                "PCU tail": self.d.tail_ops_per_s()}

    def describe(self, dtype: str) -> dict[str, Any]:
        out = super().describe(dtype)
        out.update(fusion=self.fusion, kernel_calls=self.calls["kernels"],
                   sram_capacity_B=self.sram.capacity,
                   ddr_capacity_B=(self.arch.memory["ddr"].capacity
                                   if "ddr" in self.arch.memory else 0.0))
        return out

    # --- stages ------------------------------------------------------------------------------
    def stage_of(self, op: Op | OpKind, fused: bool) -> Stage:
        """``op`` (one shard) as a pipeline stage. ``fused``: only weights, KV cache and state
        go to HBM (boundary tensors are added by the caller); else every byte does. Memoised
        by what it reads of the op (a decode step's segments repeat all but its attention),
        and an op's kind (a trace held as arrays) by its identity as well."""
        if type(op) is OpKind:
            hit = self._kind_stages.get((id(op), fused))
            if hit is not None and hit[0] is op:
                return hit[1]
            stage = self._stage_by_fields(op, fused)
            self._kind_stages[id(op), fused] = (op, stage)   # keeps the kind: its id stays
            return stage
        return self._stage_by_fields(op, fused)

    def _stage_by_fields(self, op: Op | OpKind, fused: bool) -> Stage:
        """:meth:`stage_of`, memoised by the fields it reads."""
        compute, collective = op.compute, op.collective
        key = (id(compute), id(collective), op.shards, op.flops, op.bytes, op.kind, op.name,
               fused)
        hit = self._stages.get(key)
        # the entry keeps its objects alive, so an id cannot be reused while it is cached
        if hit is not None and hit[0] is compute and hit[1] is collective:
            return hit[2]
        stage = self._stage_of(op, fused)
        self._stages[key] = (compute, collective, stage)
        return stage

    def _stage_of(self, op: Op, fused: bool) -> Stage:
        """:meth:`stage_of`, worked out."""
        comp = op.compute
        shards = max(op.shards, 1)
        flops = op.flops / shards
        nbytes = op.bytes / shards
        res, a_in, a_out = _tensor_bytes(comp)
        hbm = res if fused else nbytes
        stream = (a_in + a_out) if fused else 0.0
        elem = dtype_bytes(op_dtype(op)) if comp is not None else 2.0
        if op.kind == MATMUL and isinstance(comp, Einsum) and comp.is_contraction:
            b, m, n, k = comp.gemm_shape
            plain = b == 1 and any(t.role == "weight" for t in comp.inputs)
            return Stage(op.name, "gemm", flops, hbm, stream, b, m, n, k, elem_bytes=elem,
                         mappable=plain)
        if op.kind == ATTENTION and isinstance(comp, Cascade):
            con = [e for e in comp.einsums if e.is_contraction]
            if con:
                b, m, n, k = max((e.gemm_shape for e in con), key=lambda s: s[0] * s[1] * s[2]
                                 * s[3])
                return Stage(op.name, "gemm", flops, hbm, stream, b * len(con), m, n, k,
                             elem_bytes=elem)
        if op.kind == MEMORY or comp is None:
            return Stage(op.name, "simd", flops, nbytes if not fused else max(hbm, a_in),
                         stream, elem_bytes=elem)
        einsums = comp.einsums if isinstance(comp, Cascade) else [comp]
        regular = tail = 0.0
        for name, cnt in comp.op_counts.items():
            if name in FREE_OPS:
                continue
            if name in TRANSCENDENTAL:
                tail += cnt
            else:
                regular += cnt
        elements = float(max(e.output.elements(e.size) for e in einsums))
        return Stage(op.name, "simd", flops, hbm, stream, elements=elements, regular=regular,
                     tail=tail, elem_bytes=elem)

    # --- fused kernels -----------------------------------------------------------------------
    def split_trace(self, trace: Any) -> Any:
        """Group the trace into fused kernels and cost each (module doc). The ops are
        returned unchanged: fusion changes how ops are timed, not what they compute (a trace
        held as arrays comes back with its kinds split per segment and place, the same ops:
        :func:`~sim.devices.dataflow_arrays.fused_kinds`)."""
        self._attributed = {}
        self.calls = {"kernels": 0, "ops": len(trace)}
        if self.fusion == "none":
            self.calls["kernels"] = len(trace)
            return trace
        if trace.is_compact:   # the same segments, found in the arrays
            from sim.devices.dataflow_arrays import fused_kinds
            from workloads.trace import Trace

            split, self._attributed, self.calls["kernels"] = fused_kinds(
                trace.compact, self._segment_cost, self._segments)
            return Trace(None, trace.model, trace.scenario, dict(trace.meta), compact=split)
        groups: dict[tuple, list[Op]] = defaultdict(list)
        for op in trace.ops:
            key = (op.phase, op.step, op.layer, op.microbatch, op.rank, op.where)
            groups[key].append(op)
        for ops in groups.values():
            self.calls["kernels"] += 1
            segment: list[Op] = []
            first = True
            for op in ops + [None]:  # type: ignore[list-item]
                if op is None or op.kind == COLLECTIVE:
                    if segment:
                        self._fuse(segment, first)
                        first = False
                    segment = []
                    continue
                segment.append(op)
        return trace

    def _fuse(self, ops: list[Op], first: bool) -> None:
        sig = (tuple(id(o.compute) for o in ops), tuple(o.shards for o in ops), first)
        hit = self._segments.get(sig)
        if hit is None:
            hit = self._segment_cost(ops, first)
            self._segments[sig] = hit
        for op, cost in zip(ops, hit[1], strict=True):
            self._attributed[op.id] = (op.compute, cost)

    def _tensor_bytes_of(self, comp: Einsum | Cascade | None) -> tuple[float, float, float]:
        """:func:`_tensor_bytes` of ``comp``, once per computation (a decode step's segments
        start and end with the same ones)."""
        hit = self._tensors.get(id(comp))
        if hit is not None and hit[0] is comp:
            return hit[1]
        out = _tensor_bytes(comp)
        self._tensors[id(comp)] = (comp, out)   # keeps comp alive: its id is not reused
        return out

    def _with_hbm(self, stage: Stage, hbm_bytes: float) -> Stage:
        """``stage`` moving ``hbm_bytes`` to and from HBM (one object per stage and bytes)."""
        hit = self._ends.get((id(stage), hbm_bytes))
        if hit is not None and hit[0] is stage:
            return hit[1]
        import dataclasses

        out = dataclasses.replace(stage, hbm_bytes=hbm_bytes)
        self._ends[id(stage), hbm_bytes] = (stage, out)
        return out

    def _segment_cost(self, ops: list[Op] | list[OpKind],
                      first: bool) -> tuple[Placement, list[Cost]]:
        """The placement of a segment's ops (or of their kinds: what pricing reads of an op is
        the fields it shares with its kind) and each op's cost; ``first``: the segment starts
        its kernel (the program and argument load)."""
        stages = [self.stage_of(op, fused=True) for op in ops]
        # the kernel's boundary tensors: the first op's inputs, the last op's outputs
        _, a_in, _ = self._tensor_bytes_of(ops[0].compute)
        _, _, a_out = self._tensor_bytes_of(ops[-1].compute)
        stages[0] = self._with_hbm(stages[0], stages[0].hbm_bytes + a_in)
        stages[-1] = self._with_hbm(stages[-1], stages[-1].hbm_bytes + a_out)
        try:
            pl = place(stages, self.arch, use_mapper=self.fidelity != "roofline")
        except MappingError as exc:
            raise SimError(f"{self.arch.origin or self.arch.name}: {exc}") from None
        overhead = (self.d.program_load + self.d.argument_load) if first else 0.0
        hbm_bytes = pl.hbm_bytes
        roof = max(sum(s.flops / self._peak_of(op) for s, op in zip(stages, ops, strict=True)),
                   hbm_bytes / self.hbm.bandwidth)
        total = pl.seconds + overhead
        if self.fidelity == "roofline":
            total = roof
        weights = [sp.seconds for sp in pl.stages]
        wsum = sum(weights)
        shares = [w / wsum for w in weights] if wsum > 0 else [1.0 / len(ops)] * len(ops)
        costs = []
        dtype = op_dtype(ops[0])
        bound = pl.bottleneck if not pl.bottleneck.startswith("stage:") else "compute"
        bound = "memory" if bound == "hbm" else bound
        for j, (s, sp, share) in enumerate(zip(stages, pl.stages, shares, strict=True)):
            dram = hbm_bytes * share
            energy = self._energy(s.flops, dtype, dram, sp.pmu_bytes)
            detail = {"fused": True, "pcus": sp.pcus, "pmus": sp.pmus,
                      "stage_s": sp.seconds, "segment_s": total, "segment_bottleneck":
                      pl.bottleneck, "t_hbm": pl.t_hbm, "t_fill": pl.t_fill,
                      "utilization": sp.utilization, "kernel_start": first and j == 0}
            costs.append(Cost(total * share, roof * share, bound, energy, dram, detail))
        return pl, costs

    def _peak_of(self, op: Op | OpKind) -> float:
        """:meth:`peak_flops` of ``op``, once per op kind (it reads the kind alone)."""
        got = self._peaks.get(op.kind)
        if got is None:
            got = self._peaks[op.kind] = self.peak_flops(op)
        return got

    def estimates_by_kind(self) -> bool:
        """True: a trace held as arrays is split into kinds per fused segment and place
        (:func:`~sim.devices.dataflow_arrays.fused_kinds`), its costs attributed by kind."""
        return True

    def kind_costs(self, arrays: Any) -> list[Cost | None] | None:
        """The fused costs of the kinds of the trace last split, when ``arrays`` are its."""
        from sim.devices.dataflow_arrays import KindCosts

        got = self._attributed
        if isinstance(got, KindCosts) and got.arrays is arrays:
            return got.costs()
        return None

    def estimate(self, op: Op) -> Cost:
        hit = self._attributed.get(op.id)
        if hit is not None and hit[0] is op.compute:   # an op of the trace last split
            return hit[1]
        return super().estimate(op)

    # --- single kernels ----------------------------------------------------------------------
    def _estimate(self, op: Op) -> Cost:
        if op.kind == COLLECTIVE:
            return self.collective_cost(op)
        roof = self.roofline(op)
        shards = max(op.shards, 1)
        nbytes = op.bytes / shards
        if self.fidelity == "roofline":
            return Cost(roof, roof, "roofline",
                        self._energy(op.flops / shards, op_dtype(op), nbytes, nbytes), nbytes)
        stage = self.stage_of(op, fused=False)
        try:
            pl = place([stage], self.arch)
        except MappingError as exc:
            raise SimError(f"{self.arch.origin or self.arch.name}: {exc}") from None
        t = pl.seconds + self.d.program_load + self.d.argument_load + \
            (self.hbm.latency if nbytes else 0.0)
        latency = max(t, roof)
        sp = pl.stages[0]
        bound = "memory" if pl.bottleneck == "hbm" else ("noc" if pl.bottleneck == "noc"
                                                         else "compute")
        return Cost(latency, roof, bound,
                    self._energy(stage.flops, op_dtype(op), nbytes, sp.pmu_bytes + 2 * nbytes),
                    nbytes, {"fused": False, "pcus": sp.pcus, "pmus": sp.pmus,
                             "t_hbm": pl.t_hbm, "stage_s": sp.seconds,
                             "utilization": sp.utilization, "kernel_start": True})

    def collective_cost(self, op: Op) -> Cost:
        c = op.collective
        if c is None or c.group <= 1:
            return Cost(0.0, 0.0, "none")
        if self.link is None:
            raise SimError(f"{self.arch.origin or self.arch.name}: tensor parallelism needs "
                           "system.intra_node_link naming a link in interconnect (use a node "
                           "system such as sn40l-node)")
        sent = collective_min_bytes(c.kind, c.bytes_per_rank, c.group)
        roof = self.roofline(op)
        steps = 2 * (c.group - 1) if c.kind == "allreduce" else (c.group - 1)
        t = steps * self.link.latency + sent / (self.link.bandwidth * self.link.efficiency)
        if self.fusion == "none":
            t += self.d.program_load + self.d.argument_load
        return Cost(max(t, roof), roof, "link",
                    self._energy(c.reduce_flops / c.group, c.dtype, 0.0, sent, sent), 0.0,
                    {"kernel_start": self.fusion == "none"})

    def _energy(self, flops: float, dtype: str, hbm_bytes: float, sram_bytes: float,
                link_bytes: float = 0.0) -> dict[str, float]:
        per_flop, hbm_j, sram_j = self._energy_factors(dtype)
        out = {"compute": flops * per_flop, "hbm": hbm_bytes * 8 * hbm_j,
               "sram": sram_bytes * 8 * sram_j}
        if link_bytes:
            out["link"] = link_bytes * 8 * self.energy_table.link.get(self.link_name, 0.0)
        return out

    def _energy_factors(self, dtype: str) -> tuple[float, float, float]:
        """(J per FLOP in ``dtype``, J per HBM bit, J per SRAM bit), once per dtype."""
        got = self._factors.get(dtype)
        if got is None:
            t = self.energy_table
            per_flop = t.compute.get(dtype) or t.compute.get(self.d.dtype) or \
                next(iter(t.compute.values()))
            got = self._factors[dtype] = (per_flop, t.memory.get("hbm", 0.0),
                                          t.memory.get("sram", 0.0))
        return got


