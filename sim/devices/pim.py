"""Bank-level PIM device (arch type ``pim``): GEMVs in the DRAM banks, the rest on a host ASIC.

* **Contractions** whose second operand is a weight or a KV-cache tensor run as GEMVs in the
  banks (:func:`sim.micro.dram_pim.gemv_cost`, a cycle-level all-bank command schedule:
  GWRITE, grouped ACT under tFAW, MAC every column slot, RDRES, PRE). A batch of independent
  matrices (attention heads, requests) spreads over the channels; a single weight matrix splits
  its output rows over all channels. Each input row of the op (tokens) is one input vector.
* **Everything else** (norms, softmax, activations, residuals, embedding gathers) runs on the
  ``pim_host`` ASIC: ``vector_lanes`` operator applications per cycle, operands streamed over its
  link to the DRAM chips.

Energy: PIM command energy by the IDD method with NewtonSim's PIM scaling, ASIC FLOPs x
``energy.compute``, link bytes at the DRAM's streaming energy per byte (from the memoised
pattern model), and DRAM background power (IDD3N of every rank) plus ``energy.static_power`` as
the device's static power.
"""

from __future__ import annotations

import math

from arch import Arch
from sim.devices.base import Cost, Device, SimError, op_dtype, register_device
from sim.micro.dram_config import DramConfigError, config_from_arch
from sim.micro.dram_patterns import pattern_timing
from sim.micro.dram_pim import PimConfig, gemv_cost, peak_macs_per_s
from workloads.einsum import Einsum, dtype_bytes
from workloads.trace import COLLECTIVE, MATMUL, Op

PIM_ROLES = ("weight", "kv_cache")


def pim_config(arch: Arch) -> PimConfig:
    """The :class:`PimConfig` of an arch's ``pim`` section."""
    p = arch.pim
    return PimConfig(lanes=p.lanes, banks_per_unit=p.banks_per_unit,
                     unit_period_ns=1e9 / p.unit_clock, elem_bytes=int(dtype_bytes(p.dtype)),
                     act_group=p.act_group, row_buffers=p.row_buffers,
                     double_buffered_gb=p.double_buffered_gb,
                     gwrite_cycles_per_32B=p.gwrite_cycles_per_32B)


def pim_gemv_op(op: Op) -> tuple[int, int, int, int] | None:
    """(instances, outputs, length, vectors) when ``op`` is a GEMV-able contraction: its second
    operand is a weight or KV-cache matrix; else None."""
    e = op.compute
    if op.kind != MATMUL or not isinstance(e, Einsum) or not e.is_contraction:
        return None
    if e.inputs[1].role not in PIM_ROLES:
        return None
    batch, m, n, k = e.gemm_shape
    return batch, n, k, m


def stream_timing(arch: Arch, cfg):
    """:func:`~sim.micro.dram_patterns.pattern_timing` of a streaming pattern on ``cfg`` (one
    channel of ``arch``'s ``dram`` section): a :class:`SimError` naming the arch where the
    timings complete no request in the cycle model's window (extreme timing values), whose
    streaming efficiency of 0 every bandwidth derived from it would divide by."""
    t = pattern_timing(cfg, "stream")
    if not t.efficiency > 0:
        raise SimError(f"{arch.origin or arch.name}: dram: its timings complete no request of a "
                       f"streaming pattern within {t.cycles} cycles of the cycle-level DRAM "
                       f"model (expected timings and burst_cycles of a real device)")
    return t


class PimModel:
    """The bank-level PIM of an arch (``dram`` + ``pim`` sections), per-op GEMV costs."""

    def __init__(self, arch: Arch):
        try:
            self.cfg1 = config_from_arch(arch, channels=1)
        except DramConfigError as exc:
            raise SimError(f"{arch.origin or arch.name}: {exc}") from None
        self.channels = arch.dram.channels
        self.pim = pim_config(arch)
        self.arch = arch

    def peak_macs(self) -> float:
        return peak_macs_per_s(self.cfg1, self.pim, self.channels)

    def internal_bandwidth(self) -> float:
        """Bytes/s all units can read from their banks at the MAC rate."""
        return self.peak_macs() * self.pim.elem_bytes

    def gemv(self, instances: int, outputs: int, length: int, vectors: int,
             cycle: bool = False) -> dict:
        """Seconds and joules of ``instances`` independent GEMVs (``outputs`` x ``length``
        matrices, ``vectors`` input vectors each) spread over the channels. ``cycle``: each
        channel's whole command schedule is simulated (:mod:`sim.micro.cycle_pim`) instead of
        extended from a short one."""
        C = self.channels
        if cycle:
            from sim.micro.cycle_pim import ScheduleTooLong, gemv_cycle_cost

            def cost_of(*args):
                try:
                    return gemv_cycle_cost(*args)
                except ScheduleTooLong as exc:
                    raise SimError(f"--fidelity cycle: {exc}; use --fidelity tile") from None
        else:
            cost_of = gemv_cost
        if instances >= C:
            per_ch = math.ceil(instances / C)
            # every input vector needs all ``outputs`` dot products (gemv_cost splits its
            # ``outputs`` among its inputs, as per-head matrices do)
            one = cost_of(self.cfg1, self.pim, outputs * vectors, length, vectors)
            seconds = per_ch * one.seconds
            energy = instances * one.energy_J
            util = one.mac_utilization
            bus = one.bus_busy
        else:
            split = max(1, C // max(instances, 1))
            one = cost_of(self.cfg1, self.pim, math.ceil(outputs / split) * vectors, length,
                          vectors)
            seconds = one.seconds
            energy = one.energy_J * split * instances
            util = one.mac_utilization
            bus = one.bus_busy
        return {"seconds": seconds, "energy_J": energy, "mac_utilization": util,
                "bus_busy": bus}

    def background_power(self) -> float:
        """Watts of DRAM active-standby current over every rank of every channel."""
        e = self.cfg1.energies_pJ()     # per cycle of tCK: VDD x IDD3N x devices (mW)
        return e["act_standby"] * 1e-3 * self.cfg1.ranks * self.channels


@register_device
class PimDevice(Device):
    """A PIM memory with a host ASIC (PIM-GPT style) described by an arch of type ``pim``."""

    arch_type = "pim"

    def __init__(self, arch: Arch, fidelity: str = "tile"):
        super().__init__(arch, fidelity)
        self.model = PimModel(arch)
        self.host = arch.pim_host
        self.energy_table = arch.energy
        self._stream = stream_timing(arch, self.model.cfg1)

    @classmethod
    def fidelities(cls) -> tuple[str, ...]:
        return ("roofline", "tile", "cycle")

    # --- peaks -------------------------------------------------------------------------------
    def peak_flops(self, op: Op) -> float:
        if pim_gemv_op(op) is not None:
            return 2.0 * self.model.peak_macs()
        return self.host.vector_lanes * self.host.clock

    def peak_bandwidth(self) -> float:
        return self.host.link_bandwidth

    def memory_capacity(self) -> float:
        return self.arch.dram.capacity

    def static_power(self) -> float:
        return self.energy_table.static_power + self.model.background_power()

    def roofline(self, op: Op) -> float:
        if op.kind == COLLECTIVE:
            return 0.0
        shards = max(op.shards, 1)
        flops, nbytes = op.flops / shards, op.bytes / shards
        if pim_gemv_op(op) is not None:
            return max(flops / (2.0 * self.model.peak_macs()),
                       nbytes / self.model.internal_bandwidth())
        # the host's lanes apply an operator per cycle (a GELU, an exp: not one FLOP each)
        work = self._lane_cycles(op) if op.compute is not None and op.compute.op_counts \
            else flops
        return max(work / self.peak_flops(op), nbytes / self.host.link_bandwidth)

    def _lane_cycles(self, op: Op) -> float:
        """Lane cycles of a host op: each operator application times its ``op_cycles`` (1
        unlisted), data movement (copy, select) none."""
        return sum(c * self.host.op_cycles.get(name, 1.0)
                   for name, c in op.compute.op_counts.items() if name not in ("copy", "select"))

    def roof_lines(self, dtype: str) -> dict[str, float]:
        return {"PIM MACs": 2.0 * self.model.peak_macs(),
                "host vector": self.host.vector_lanes * self.host.clock}

    # --- costs -------------------------------------------------------------------------------
    def _flop_energy(self, flops: float, dtype: str) -> float:
        table = self.energy_table.compute
        return flops * (table.get(dtype) or next(iter(table.values())))

    def host_cost(self, op: Op) -> Cost:
        """A non-GEMV op on the host ASIC, its operands streamed over the link."""
        shards = max(op.shards, 1)
        roof = self.roofline(op)
        comp = op.compute
        nbytes = op.bytes / shards
        lane_cycles = self._lane_cycles(op) if comp is not None else 0.0
        t_compute = math.ceil(lane_cycles / self.host.vector_lanes) / self.host.clock
        t_link = nbytes / (self.host.link_bandwidth * self._stream.efficiency)
        latency = max(max(t_compute, t_link) + self.host.link_latency, roof)
        energy = {"compute": self._flop_energy(op.flops / shards, op_dtype(op)),
                  "dram": nbytes * self._stream.energy_pJ_per_byte * 1e-12}
        bound = "compute" if t_compute >= t_link else "memory"
        return Cost(latency, roof, bound, energy, nbytes,
                    {"t_compute": t_compute, "t_link": t_link, "unit": "host"})

    def pim_cost(self, op: Op) -> Cost:
        """A GEMV-able contraction in the banks."""
        inst, outputs, length, vectors = pim_gemv_op(op)  # type: ignore[misc]
        r = self.model.gemv(inst, outputs, length, vectors, cycle=self.fidelity == "cycle")
        roof = self.roofline(op)
        shards = max(op.shards, 1)
        latency = max(r["seconds"], roof)
        energy = {"pim": r["energy_J"]}
        return Cost(latency, roof, "pim", energy, op.bytes / shards,
                    {"mac_utilization": r["mac_utilization"], "unit": "pim"})

    def _estimate(self, op: Op) -> Cost:
        if op.kind == COLLECTIVE:
            if op.collective is None or op.collective.group <= 1:
                return Cost(0.0, 0.0, "none")
            raise SimError(f"{self.arch.origin or self.arch.name}: a single PIM device has no "
                           "link for tensor parallelism (use --tp 1)")
        if self.fidelity == "roofline":
            roof = self.roofline(op)
            return Cost(roof, roof, "roofline", {}, op.bytes / max(op.shards, 1))
        if pim_gemv_op(op) is not None:
            return self.pim_cost(op)
        return self.host_cost(op)
