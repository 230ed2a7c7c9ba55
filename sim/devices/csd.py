"""Computational SSD (arch type ``csd``): an in-storage engine next to the flash (InstInfer).

The engine runs attention (and GEMV) over data in the drive's own flash: in a system run those
ops are hosted on the CSD (``Op.where``), their KV-cache traffic loads the drive's flash tier at
its internal bandwidth (``flash.read_bandwidth``), and their latency here is the engine's compute
time at the measured fraction of its designed FLOP/s plus a fixed cost per kernel call
(``engine.launch``). The ``ssd`` type (no engine) has no model: nothing runs on it.

At ``--fidelity cycle`` the op's bytes are read as whole flash pages through the flash
micro-model (:mod:`sim.micro.cycle_flash`) instead of at ``flash.read_bandwidth``.
"""

from __future__ import annotations

import math

from arch import Arch
from sim.devices.base import Cost, Device, SimError, op_dtype, register_device
from workloads.trace import COLLECTIVE, Op


@register_device
class CsdDevice(Device):
    """A computational SSD's engine."""

    arch_type = "csd"

    def __init__(self, arch: Arch, fidelity: str = "tile"):
        super().__init__(arch, fidelity)
        self.engine = arch.engine
        self.flash = arch.flash
        self._flash_cfg = None
        if fidelity == "cycle":
            from sim.micro.cycle_flash import engine_config
            from sim.micro.flash import FlashConfigError

            try:
                self._flash_cfg = engine_config(self.flash)
            except FlashConfigError as exc:
                raise SimError(f"{arch.origin or arch.name}: {exc}") from None

    @classmethod
    def fidelities(cls) -> tuple[str, ...]:
        return ("roofline", "tile", "cycle")

    def peak_flops(self, op: Op) -> float:
        dtype = op_dtype(op)
        peak = self.engine.flops.get(dtype) or self.engine.flops.get("fp16")
        if not peak:
            raise SimError(f"{self.arch.origin or self.arch.name}: engine.flops has no entry "
                           f"for '{dtype}' or fp16")
        return peak

    def peak_bandwidth(self) -> float:
        return self.flash.read_bandwidth

    def memory_capacity(self) -> float:
        return self.flash.capacity

    def _estimate(self, op: Op) -> Cost:
        if op.kind == COLLECTIVE:
            raise SimError(f"{self.arch.name}: a computational SSD runs no collectives")
        shards = max(op.shards, 1)
        flops, nbytes = op.flops / shards, op.bytes / shards
        roof = self.roofline(op)
        peak = self.peak_flops(op)
        if self.fidelity == "roofline":
            return Cost(roof, roof, "compute" if flops / peak >= nbytes / self.peak_bandwidth()
                        else "memory", {}, nbytes, {"t_compute_s": flops / peak})
        t_compute = flops / (peak * self.engine.efficiency)
        t_memory = nbytes / self.flash.read_bandwidth
        if self._flash_cfg is not None:
            from sim.micro.cycle_flash import read_seconds

            t_memory = read_seconds(self._flash_cfg, int(math.ceil(nbytes)))[0]
        latency = self.engine.launch + max(t_compute, t_memory)
        bound = "compute" if t_compute >= t_memory else "memory"
        return Cost(max(latency, roof), roof, bound, {}, nbytes,
                    {"t_compute_s": t_compute, "t_memory_s": t_memory,
                     "fork_join_s": self.engine.launch})
