"""xPU + logic-die PIM device (arch type ``xpu_pim``): Duplex.

The xPU is the GPU model (:class:`sim.devices.gpu.GpuDevice`, reused). Compute units on the HBM
logic dies (``logic_pim``) read the DRAM through extra TSVs at ``bandwidth_multiplier`` times the
stacks' external bandwidth, at the streaming efficiency the cycle-level DRAM model measures for
the ``dram`` section, and compute at ``flops_per_stack`` per stack.

Placement follows the operation's Op/B (FLOPs per DRAM byte): low-Op/B work runs where bytes
are cheap. Candidates for PIM are decode attention (GEMV against the KV cache; GQA Op/B = group
size) and MoE expert GEMMs (Op/B ~ tokens per expert); dense GEMMs and vector ops stay on the
xPU. A candidate is co-processed (Duplex's expert and attention co-processing): split between
xPU and logic-PIM in the ratio of their rates (``xpu_fraction``: alone, both shares would
finish together) and run as two concurrent tasks: ``split_trace`` gives every candidate op a
twin, ``<name>@pim``, carrying the PIM share, which ``unit_of`` puts on the ``pim`` stream; the
op itself keeps the xPU share on the compute stream and successors wait for both. Both shares
read the same DRAM arrays: the engine shares the stacks' internal bandwidth
(``unit_memory_bandwidth``) between them by processor sharing, so a pair never finishes before
its bytes could be read at that bandwidth.

``mode='bank'`` evaluates the bank-level PIM comparison point instead (``bank_pim_*``: more
bandwidth, Op/B 1).
"""

from __future__ import annotations

import dataclasses

from arch import Arch
from sim.devices.base import Cost, Device, register_device
from sim.devices.gpu import GpuDevice
from sim.devices.pim import stream_timing
from sim.micro.dram_config import config_from_arch
from workloads.einsum import Cascade, Einsum
from workloads.trace import ATTENTION, COLLECTIVE, MATMUL, Op, Trace, op_share, op_work

PIM_SHARE = "@pim"  # suffix of the op carrying a co-processed op's PIM share


def pim_candidate(op: Op) -> str | None:
    """'attention' for decode GEMVs against the KV cache, 'expert' for MoE expert GEMMs."""
    if op.phase == "prefill" or op.kind == COLLECTIVE:
        return None
    comp = op.compute
    if op.kind == ATTENTION and isinstance(comp, Cascade):
        return "attention"
    if op.kind == MATMUL and isinstance(comp, Einsum) and comp.is_contraction:
        role = comp.inputs[1].role
        if role == "kv_cache":
            return "attention"
        if role == "weight" and "x" in comp.inputs[1].ranks and comp.gemm_shape[0] > 1:
            return "expert"
    return None


class LogicPim:
    """Rates of the logic-die (or bank-level) PIM of an ``xpu_pim`` arch."""

    def __init__(self, arch: Arch, mode: str = "logic"):
        lp = arch.logic_pim
        hbm = arch.memory["hbm"]
        eff = stream_timing(arch, config_from_arch(arch, channels=1)).efficiency
        per_stack = hbm.bandwidth / lp.stacks
        mult = lp.bandwidth_multiplier if mode == "logic" else lp.bank_pim_bandwidth_multiplier
        self.bandwidth = lp.stacks * per_stack * mult * eff
        self.flops = lp.stacks * lp.flops_per_stack if mode == "logic" else \
            self.bandwidth * lp.bank_pim_op_per_byte
        self.energy_per_bit = lp.energy_per_bit
        self.energy_per_flop = lp.energy_per_flop
        self.efficiency = eff
        self.multiplier = mult
        self.mode = mode

    def time(self, flops: float, nbytes: float) -> float:
        return max(flops / self.flops, nbytes / self.bandwidth)

    def cycle_time(self, cfg, flops: float, nbytes: float) -> float:
        """``time`` with the streaming efficiency measured on this op's own bytes: the DRAM
        model (``cfg``: the ``dram`` section, every channel) streams the share one set of
        TSVs carries, ``nbytes / multiplier``, and the achieved fraction of the
        configuration's peak applies to the logic die's bandwidth (docs/fidelity.md)."""
        from sim.micro.cycle_dram import run_segments, stream_segments

        if nbytes <= 0:
            return flops / self.flops
        share = nbytes / self.multiplier
        run = run_segments(cfg, stream_segments(share))
        eff = min(1.0, share / run.seconds / cfg.peak_bandwidth) if run.seconds > 0 else 1.0
        return max(flops / self.flops, nbytes / (self.bandwidth / self.efficiency * eff))


@register_device
class XpuPimDevice(Device):
    """A GPU-class xPU whose HBM stacks carry logic-die PIM (Duplex)."""

    arch_type = "xpu_pim"

    def __init__(self, arch: Arch, fidelity: str = "tile", mode: str = "logic"):
        super().__init__(arch, fidelity)
        # the GPU model has no cycle level: at cycle fidelity the xPU share stays at tile
        self.xpu = GpuDevice(arch, "tile" if fidelity == "cycle" else fidelity)
        self.pim = LogicPim(arch, mode)
        self._pim_memo: dict[tuple, tuple] = {}
        self._fraction_memo: dict[tuple, tuple] = {}   # xpu_fraction, by what it reads
        self._cycle_cfg = config_from_arch(arch) if fidelity == "cycle" else None

    @classmethod
    def fidelities(cls) -> tuple[str, ...]:
        return ("roofline", "tile", "cycle")

    def _pim_time(self, flops: float, nbytes: float) -> float:
        if self._cycle_cfg is not None:
            return self.pim.cycle_time(self._cycle_cfg, flops, nbytes)
        return self.pim.time(flops, nbytes)

    def peak_flops(self, op: Op) -> float:
        base = self.xpu.peak_flops(op)
        return base + self.pim.flops if pim_candidate(op) else base

    def peak_bandwidth(self) -> float:
        return self.xpu.peak_bandwidth()

    def memory_capacity(self) -> float:
        return self.xpu.memory_capacity()

    def static_power(self) -> float:
        return self.xpu.static_power()

    def link_bandwidth(self) -> float:
        return self.xpu.link_bandwidth()

    def roof_lines(self, dtype: str) -> dict[str, float]:
        return {**self.xpu.roof_lines(dtype), "logic PIM": self.pim.flops}

    def roofline(self, op: Op) -> float:
        if pim_candidate(op) is None:
            return self.xpu.roofline(op)
        shards = max(op.shards, 1)
        flops, nbytes = op.flops / shards, op.bytes / shards
        return max(flops / (self.xpu.peak_flops(op) + self.pim.flops),
                   nbytes / max(self.pim.bandwidth, self.xpu.peak_bandwidth()))

    def unit_memory_bandwidth(self) -> float:
        """B/s of the DRAM arrays that the xPU and the logic-PIM share (the stacks' internal
        bandwidth): what concurrent xPU and PIM shares contend for."""
        return self.pim.bandwidth

    def unit_of(self, op: Op) -> str:
        return "pim" if op.name.endswith(PIM_SHARE) else ""

    def _whole(self, op: Op) -> Op:
        """``op`` with the FLOPs and bytes of its whole computation (a share carries part)."""
        flops, nbytes = op_work(op.compute, op.collective, op.shards)
        if flops == op.flops and nbytes == op.bytes:
            return op
        return dataclasses.replace(op, flops=flops, bytes=nbytes)

    def _alone(self, op: Op) -> tuple[Cost, float, float, float]:
        """(xPU cost, FLOPs, bytes, PIM s) of the whole of ``op``'s shard, alone."""
        whole = self._whole(op)
        shards = max(op.shards, 1)
        flops, nbytes = whole.flops / shards, whole.bytes / shards
        x = self.xpu.estimate(whole)
        return x, flops, nbytes, self._pim_time(flops, nbytes)

    def xpu_fraction(self, op: Op) -> float:
        """Share of ``op`` the xPU runs: 1 for ops that are not co-processed, else in proportion
        to the rates (both shares alone finish together). Memoised by what it reads of the
        op: its computation, collective, shards, kind and whether it is in the prefill."""
        compute, collective = op.compute, op.collective
        key = (id(compute), id(collective), op.shards, op.kind, op.phase == "prefill")
        hit = self._fraction_memo.get(key)
        # the entry keeps its objects alive, so an id cannot be reused while it is cached
        if hit is not None and hit[0] is compute and hit[1] is collective:
            return hit[2]
        frac = 1.0
        if pim_candidate(op) is not None and self.fidelity != "roofline":
            x, _, _, t_p = self._alone(op)
            t_x = x.latency
            frac = (1.0 / t_x) / (1.0 / t_x + 1.0 / t_p) if t_x > 0 and t_p > 0 else 1.0
        self._fraction_memo[key] = (compute, collective, frac)
        return frac

    def split_trace(self, trace: Trace) -> Trace:
        """``trace`` with each co-processed op followed by its PIM-share twin (same deps; the
        op's successors wait for both); FLOPs and bytes split by the shares. A trace held as
        arrays stays so (:func:`workloads.twins.twinned`: the same ops, no object per op)."""
        if trace.is_compact:
            from workloads.twins import twinned

            def share(op: Op) -> float:
                return self.xpu_fraction(op) if not op.name.endswith(PIM_SHARE) else 1.0

            def prepare(ops: list[Op]) -> None:
                """The xPU's costs of the co-processed ops, whole, priced at once where it
                can (a GPU's GEMMs of every KV length from arrays: the same costs)."""
                if hasattr(self.xpu, "prefetch") and self.fidelity != "roofline":
                    self.xpu.prefetch([self._whole(op) for op in ops
                                       if pim_candidate(op) is not None and
                                       not op.name.endswith(PIM_SHARE)])

            return Trace(None, trace.model, trace.scenario, dict(trace.meta),
                         compact=twinned(trace.compact, share, PIM_SHARE, prepare))
        out: list[Op] = []
        ids: dict[int, tuple[int, ...]] = {}
        # ops made from arrays: those of one kind share what the fraction reads but the phase
        arrays = getattr(trace, "arrays", None)
        kind_of = arrays.kind.tolist() if arrays is not None else None
        by_kind: dict[int, float] = {}
        for i, op in enumerate(trace.ops):
            key = 2 * kind_of[i] + (op.phase == "prefill") if kind_of is not None else -1
            frac = by_kind.get(key)
            if frac is None:
                frac = self.xpu_fraction(op) if not op.name.endswith(PIM_SHARE) else 1.0
                if key >= 0:
                    by_kind[key] = frac
            deps = op.deps
            # (an op with one dependency, most, waits for what that one became: a tuple)
            deps = ids[deps[0]] if len(deps) == 1 else tuple(n for d in deps for n in ids[d])
            me = op_share(op, len(out), deps, op.flops * frac, op.bytes * frac)
            out.append(me)
            if frac >= 1.0:
                ids[op.id] = (me.id,)
                continue
            twin = op_share(op, len(out), deps, op.flops * (1.0 - frac),
                            op.bytes * (1.0 - frac), op.name + PIM_SHARE)
            out.append(twin)
            ids[op.id] = (me.id, twin.id)
        return Trace(out, trace.model, trace.scenario, dict(trace.meta))

    def estimates_by_kind(self) -> bool:
        """True: a share's cost reads what its kind holds (name, computation, collective,
        shards, kind), memoised as the base estimate is."""
        return True

    def estimate(self, op: Op) -> Cost:
        if not op.name.endswith(PIM_SHARE):
            return super().estimate(op)
        key = (id(op.compute), op.shards, op.kind)
        hit = self._pim_memo.get(key)
        if hit is not None and hit[0] is op.compute:
            return hit[1]
        cost = self._pim_share(op)
        self._pim_memo[key] = (op.compute, cost)
        return cost

    def _pim_share(self, op: Op) -> Cost:
        """The logic-PIM's share of a co-processed op (the twin ``<name>@pim``)."""
        frac = self.xpu_fraction(op)
        _, flops, nbytes, t_p = self._alone(op)
        share = 1.0 - frac
        energy = share * (nbytes * 8 * self.pim.energy_per_bit + flops * self.pim.energy_per_flop)
        return Cost(share * t_p, share * t_p, "pim", {"pim": energy}, share * nbytes,
                    {"xpu_share": frac, "t_pim_alone": t_p, "unit": f"{self.pim.mode}-pim",
                     "candidate": pim_candidate(op)})

    def _estimate(self, op: Op) -> Cost:
        kind = pim_candidate(op)
        if kind is None or self.fidelity == "roofline":
            cost = self.xpu.estimate(op)
            if kind is not None:
                roof = self.roofline(op)
                return Cost(max(cost.latency, roof), roof, cost.bound, cost.energy,
                            cost.dram_bytes, cost.detail)
            return cost
        # a co-processed op: this is the xPU's share (the PIM's is its twin, ``_pim_share``)
        frac = self.xpu_fraction(op)
        x, _, _, t_p = self._alone(op)
        return Cost(frac * x.latency, frac * self.xpu.roofline(self._whole(op)), x.bound,
                    {k: v * frac for k, v in x.energy.items()}, frac * x.dram_bytes,
                    {**x.detail, "xpu_share": frac, "t_xpu_alone": x.latency,
                     "t_pim_alone": t_p, "unit": "xpu", "candidate": kind})
