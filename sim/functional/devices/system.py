"""Functional execution on a ``system`` arch: the primary device component runs the layer, and
decode attention runs on the component that hosts it, as a system run with ``--attention-on``
tags it (``sim/system/hosted.py`` ``host_attention``: decode ops of class ``attention``).

Which component hosts decode attention: the one named by ``--attention-on`` (the primary's
name keeps it on the primary); by default the system's computational SSD, when it has exactly
one ``csd`` component (InstInfer's placement), else none. Each component runs with its own
executor (``functional_for`` of its device view) and declared numerics.
"""

from __future__ import annotations

from typing import Any

from arch import Arch
from arch.topology_view import device_view, primary_component
from sim.devices.base import SimError
from sim.functional.base import (
    FunctionalDevice,
    MatmulNumerics,
    MatmulPlan,
    VectorNumerics,
    functional_for,
    register_functional,
)


def hosts_attention(op: Any) -> bool:
    """Whether ``op`` is one ``--attention-on`` moves (decode, class ``attention``)."""
    return op is not None and op.phase == "decode" and op.op_class == "attention"


@register_functional
class SystemFunctional(FunctionalDevice):
    """Functional executor for arches of type ``system`` (see the module doc)."""

    arch_type = "system"

    def __init__(self, arch: Arch, attention_on: str | None = None):
        super().__init__(arch)
        comps = {n: c for n, c in arch.sections["components"].items() if c.kind == "device"}
        self.primary_name = primary_component(arch)
        self.primary = functional_for(device_view(arch, self.primary_name))
        if attention_on is None:
            csds = [n for n, c in comps.items() if c.device.type == "csd"]
            attention_on = csds[0] if len(csds) == 1 else ""
        if attention_on and attention_on not in comps:
            raise SimError(f"--attention-on: system '{arch.name}' has no device component "
                           f"'{attention_on}' (device components: {', '.join(comps)})")
        self.host_name = "" if attention_on == self.primary_name else attention_on
        self.host: FunctionalDevice | None = None
        if self.host_name:
            view = device_view(arch, self.host_name)
            try:
                self.host = functional_for(view)
            except SimError as exc:
                raise SimError(f"--attention-on: component '{self.host_name}' is a "
                               f"'{view.type}' device, which has no functional model") from exc

    def with_attention_on(self, component: str) -> FunctionalDevice:
        return SystemFunctional(self.arch, component)

    def for_op(self, op: Any) -> FunctionalDevice:
        if self.host is not None and hosts_attention(op):
            return self.host
        return self.primary

    def _name(self, op: Any) -> str:
        return self.host_name if self.for_op(op) is self.host else self.primary_name

    def matmul_numerics(self, dtype: str) -> MatmulNumerics:
        return self.primary.matmul_numerics(dtype)

    def vector_numerics(self) -> VectorNumerics:
        return self.primary.vector_numerics()

    def attention_numerics(self, dtype: str) -> dict[str, Any]:
        return self.primary.attention_numerics(dtype)

    def plan_matmul(self, op: Any, dtype: str, shape: tuple[int, int, int, int]) -> MatmulPlan:
        return self.for_op(op).plan_matmul(op, dtype, shape)

    def replay(self, op: Any, dtype: str, shape: tuple[int, int, int, int], a: Any,
               b: Any) -> Any:
        return self.for_op(op).replay(op, dtype, shape, a, b)

    def unit_for(self, op: Any) -> str:
        inner = self.for_op(op)
        unit = inner.unit_for(op)
        name = self._name(op)
        return name if unit in (name, inner.arch.type) else f"{name}.{unit}"

    def describe(self) -> str:
        hosted = f", decode attention on {self.host_name}" if self.host_name else ""
        return f"{self.arch.name} (system: {self.primary_name}{hosted})"
