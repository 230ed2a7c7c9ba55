"""The design space: axes (discrete value lists or continuous ranges), the unit-cube encoding the
search strategies work in, and the stable id of a design point.

A point is a mapping ``{axis path: canonical value}`` (SI floats for quantities, ints for
integer fields, text for choices). Its ``point_id`` is the first 16 hex digits of the SHA-256 of
that mapping as canonical JSON, so ``2 TB/s`` and ``2000 GB/s`` name the same point and the id
does not depend on the order of the axes in the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

AXIS_KINDS = ("arch", "scenario", "model")


@dataclass(frozen=True)
class Axis:
    """One swept parameter.

    ``kind`` says where it lands: ``arch`` (a path into the arch YAML), ``scenario`` (a
    :class:`workloads.scenario.Scenario` field of every workload) or ``model`` (a
    :class:`workloads.models.ModelConfig` field of every workload). Either ``values`` (discrete,
    canonical) or a range ``low``..``high`` (``log`` spacing, ``integer`` rounding, ``steps``
    values on a grid) is set.
    """

    path: str
    kind: str
    values: tuple[Any, ...] | None = None
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    integer: bool = False
    steps: int = 0
    unit: str = ""

    @property
    def is_discrete(self) -> bool:
        return self.values is not None

    def grid_values(self) -> tuple[Any, ...]:
        """Values on a grid: the list, or ``steps`` points spanning the range."""
        if self.values is not None:
            return self.values
        return tuple(self.from_unit(i / (self.steps - 1)) if self.steps > 1
                     else self.from_unit(0.0) for i in range(self.steps))

    def from_unit(self, u: float) -> Any:
        """Map ``u`` in [0, 1] to a value (discrete: equal-width bins over the list)."""
        u = min(max(float(u), 0.0), 1.0)
        if self.values is not None:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        if self.log:
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        value = min(max(value, self.low), self.high)
        return int(round(value)) if self.integer else float(value)

    def to_unit(self, value: Any) -> float:
        """The unit-cube coordinate of ``value`` (discrete: the centre of its bin)."""
        if self.values is not None:
            return (self.values.index(value) + 0.5) / len(self.values)
        if self.high == self.low:
            return 0.5
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) -
                                                             math.log(self.low))
        return (float(value) - self.low) / (self.high - self.low)

    def size(self) -> int | None:
        """Number of distinct values, or None for a continuous range without steps."""
        if self.values is not None:
            return len(self.values)
        if self.integer:
            return int(self.high) - int(self.low) + 1
        return None


def point_id(params: Mapping[str, Any]) -> str:
    """Stable id of a design point from its axis values (order-independent)."""
    text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def decode(axes: Sequence[Axis], unit: Sequence[float]) -> dict[str, Any]:
    """A point from a unit-cube vector."""
    return {a.path: a.from_unit(u) for a, u in zip(axes, unit, strict=True)}


def encode(axes: Sequence[Axis], params: Mapping[str, Any]) -> list[float]:
    """The unit-cube vector of a point."""
    return [a.to_unit(params[a.path]) for a in axes]


def grid_size(axes: Sequence[Axis]) -> int:
    """Number of grid points (product of the axis value counts)."""
    return math.prod(len(a.grid_values()) for a in axes)


def space_size(axes: Sequence[Axis]) -> int | None:
    """Distinct points in the space, or None when an axis is continuous."""
    sizes = [a.size() for a in axes]
    return None if any(s is None for s in sizes) else math.prod(sizes)  # type: ignore[misc]
