"""Functional execution on ``xpu_pim`` (Duplex): a GPU-class xPU with logic-die PIM.

Ops the timing model co-processes (``sim/devices/xpu_pim.py`` ``pim_candidate``: decode
attention against the KV cache, MoE expert GEMMs) are split between the xPU and the logic-die
units in the model's ratio (``xpu_share`` of its cost detail): whole batch items (experts,
attention heads) when there are several, else output columns. The xPU part runs as the GPU
runs it (``gpu.py``); the logic-die part runs on ``logic_pim.stacks`` units, outputs spread over
the stacks, fp16 products accumulated in fp32 one product at a time (assumption: Duplex states
FP16 FLOPs, not the accumulator). The fused attention cascade, when used, runs with the xPU's
numerics. Everything else runs on the xPU.
"""

from __future__ import annotations

import math
from typing import Any

from arch import Arch
from sim.functional.base import MatmulNumerics, MatmulPlan, SplitPlan, register_functional
from sim.functional.devices.gpu import GpuFunctional
from sim.functional.formats import Rounder
from sim.functional.plans import pim_plan

LOGIC = MatmulNumerics("fp16", Rounder("fp32"), 1, Rounder("fp32"),
                       "logic-die FP16 units, fp32 accumulation (assumption)")


@register_functional
class XpuPimFunctional(GpuFunctional):
    """Functional executor for arches of type ``xpu_pim``."""

    arch_type = "xpu_pim"

    def __init__(self, arch: Arch):
        super().__init__(arch)
        from sim.devices.xpu_pim import pim_candidate

        self.system = self.model
        self.model = self.system.xpu  # the GPU model (tiles, split-K)
        self._candidate = pim_candidate

    def plan_matmul(self, op: Any, dtype: str, shape: tuple[int, int, int, int]):
        xpu_plan = super().plan_matmul(op, dtype, shape)
        if op is None or self._candidate(op) is None:
            return xpu_plan
        share = float(self.system.estimate(op).detail.get("xpu_share", 1.0))
        xs, m, n, k = shape
        axis, full = ("x", xs) if xs > 1 else ("n", n)
        cut = min(full, max(0, round(share * full)))
        part = (cut, m, n, k) if axis == "x" else (xs, m, cut, k)
        rest = (xs - cut, m, n, k) if axis == "x" else (xs, m, n - cut, k)
        plans: list[MatmulPlan] = []
        if cut:
            plans.append(super().plan_matmul(op, dtype, part))
        else:
            plans.append(xpu_plan)
        stacks = self.arch.logic_pim.stacks
        plans.append(pim_plan(rest if full - cut else part, stacks, 1, 1, LOGIC,
                              detail={"unit": "logic-pim"}))
        return SplitPlan(shape, axis, [0, cut, full], plans, ["xpu", "logic-pim"],
                         {"mapping": f"split {axis}: xpu {cut}/{full}, logic-pim "
                                     f"{full - cut}/{full}",
                          "xpu_share": round(share, 3), "stacks": stacks,
                          "logic_k_steps": math.ceil(k)})

    def unit_for(self, op: Any) -> str:
        return "xpu+pim" if op is not None and self._candidate(op) is not None else "xpu"
