"""Full factorial grid over the axes (ranges contribute their ``steps`` values)."""

from __future__ import annotations

import itertools
from typing import Any

from dse.space import Axis, grid_size
from dse.strategies import Strategy

CHUNK = 4096


class Grid(Strategy):
    """Every combination, first axis slowest, proposed in chunks of :data:`CHUNK` points."""

    name = "grid"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        lists = [a.grid_values() for a in self.axes]
        self._iter = itertools.product(*lists)

    @classmethod
    def check(cls, axes: tuple[Axis, ...], options: dict[str, Any]) -> tuple[str, str] | None:
        for a in axes:
            if a.values is None and a.steps < 1:
                return ("", f"axis '{a.path}' is a range without 'steps'; the grid needs steps "
                            "(or use strategy random, lhs, nsga2 or bayes)")
        return None

    def planned(self) -> int:
        return grid_size(self.axes)

    def ask(self) -> list[dict[str, Any]]:
        paths = [a.path for a in self.axes]
        return [dict(zip(paths, combo, strict=True))
                for combo in itertools.islice(self._iter, CHUNK)]
