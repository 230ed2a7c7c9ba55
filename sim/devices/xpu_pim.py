"""xPU + logic-die PIM device (arch type ``xpu_pim``): Duplex.

The xPU is the GPU model (:class:`sim.devices.gpu.GpuDevice`, reused). Compute units on the HBM
logic dies (``logic_pim``) read the DRAM through extra TSVs at ``bandwidth_multiplier`` times the
stacks' external bandwidth, at the streaming efficiency the cycle-level DRAM model measures for
the ``dram`` section, and compute at ``flops_per_stack`` per stack.

Placement follows the operation's Op/B (FLOPs per DRAM byte): low-Op/B work runs where bytes
are cheap. Candidates for PIM are decode attention (GEMV against the KV cache; GQA Op/B = group
size) and MoE expert GEMMs (Op/B ~ tokens per expert); dense GEMMs and vector ops stay on the
xPU. A candidate is co-processed: split between xPU and logic-PIM in the ratio of their rates
so both finish together (Duplex's expert and attention co-processing), never faster than the
stacks' internal bandwidth allows for its bytes.

``mode='bank'`` evaluates the bank-level PIM comparison point instead (``bank_pim_*``: more
bandwidth, Op/B 1).
"""

from __future__ import annotations

from arch import Arch
from sim.devices.base import Cost, Device, register_device
from sim.devices.gpu import GpuDevice
from sim.micro.dram_config import config_from_arch
from sim.micro.dram_patterns import pattern_timing
from workloads.einsum import Cascade, Einsum
from workloads.trace import ATTENTION, COLLECTIVE, MATMUL, Op


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
        eff = pattern_timing(config_from_arch(arch, channels=1), "stream").efficiency
        per_stack = hbm.bandwidth / lp.stacks
        mult = lp.bandwidth_multiplier if mode == "logic" else lp.bank_pim_bandwidth_multiplier
        self.bandwidth = lp.stacks * per_stack * mult * eff
        self.flops = lp.stacks * lp.flops_per_stack if mode == "logic" else \
            self.bandwidth * lp.bank_pim_op_per_byte
        self.energy_per_bit = lp.energy_per_bit
        self.energy_per_flop = lp.energy_per_flop
        self.efficiency = eff
        self.mode = mode

    def time(self, flops: float, nbytes: float) -> float:
        return max(flops / self.flops, nbytes / self.bandwidth)


@register_device
class XpuPimDevice(Device):
    """A GPU-class xPU whose HBM stacks carry logic-die PIM (Duplex)."""

    arch_type = "xpu_pim"

    def __init__(self, arch: Arch, fidelity: str = "tile", mode: str = "logic"):
        super().__init__(arch, fidelity)
        self.xpu = GpuDevice(arch, fidelity)
        self.pim = LogicPim(arch, mode)

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

    def _estimate(self, op: Op) -> Cost:
        kind = pim_candidate(op)
        if kind is None or self.fidelity == "roofline":
            cost = self.xpu.estimate(op)
            if kind is not None:
                roof = self.roofline(op)
                return Cost(max(cost.latency, roof), roof, cost.bound, cost.energy,
                            cost.dram_bytes, cost.detail)
            return cost
        shards = max(op.shards, 1)
        flops, nbytes = op.flops / shards, op.bytes / shards
        x = self.xpu.estimate(op)
        t_x = x.latency
        t_p = self.pim.time(flops, nbytes)
        # co-processing: shares in proportion to rate, both finish together
        frac_x = (1.0 / t_x) / (1.0 / t_x + 1.0 / t_p) if t_x > 0 and t_p > 0 else 0.0
        # both read the same DRAM arrays: never faster than the stacks' internal bandwidth
        t = max(t_x * frac_x, t_p * (1.0 - frac_x), nbytes / self.pim.bandwidth)
        roof = self.roofline(op)
        latency = max(t, roof)
        e_x = {k: v * frac_x for k, v in x.energy.items()}
        e_p = (1.0 - frac_x) * (nbytes * 8 * self.pim.energy_per_bit
                                + flops * self.pim.energy_per_flop)
        energy = {**e_x, "pim": e_p}
        return Cost(latency, roof, "pim+xpu", energy, nbytes,
                    {"xpu_share": frac_x, "t_xpu_alone": t_x, "t_pim_alone": t_p,
                     "unit": f"{self.pim.mode}-pim", "candidate": kind})
