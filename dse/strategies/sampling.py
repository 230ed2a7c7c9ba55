"""Space-filling designs: uniform random sampling and Latin hypercube (``scipy.stats.qmc``).

Both draw points in the unit cube from a generator seeded with the spec's ``seed`` and map them
onto the axes (a list axis splits [0, 1) into equal bins). Points that coincide on discrete axes
are proposed once; random sampling draws again until it has ``samples`` distinct points (or the
space is exhausted), a Latin hypercube keeps its design and may propose fewer.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from scipy.stats import qmc

from dse.space import Axis, decode, point_id, space_size
from dse.strategies import Strategy


def unique_points(units: np.ndarray, axes: tuple[Axis, ...], limit: int,
                  seen: set[str] | None = None) -> list[dict[str, Any]]:
    """Decode unit-cube rows into at most ``limit`` distinct points, in row order."""
    seen = set() if seen is None else seen
    out = []
    for row in units:
        point = decode(axes, row)
        pid = point_id(point)
        if pid not in seen:
            seen.add(pid)
            out.append(point)
            if len(out) >= limit:
                break
    return out


def latin_hypercube(d: int, n: int, seed: int) -> np.ndarray:
    """``n`` x ``d`` scrambled Latin hypercube in [0, 1), reproducible for ``seed``."""
    params = inspect.signature(qmc.LatinHypercube).parameters
    kw = {"rng": seed} if "rng" in params else {"seed": seed}
    return qmc.LatinHypercube(d=d, **kw).random(n)


class _Fixed(Strategy):
    """A design computed once and proposed as one batch."""

    OPTIONS = {"samples": (100, 1)}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._points = self._design()
        self._asked = False

    def _design(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def planned(self) -> int:
        return len(self._points)

    def ask(self) -> list[dict[str, Any]]:
        if self._asked:
            return []
        self._asked = True
        return list(self._points)


class RandomSearch(_Fixed):
    """Uniform random points (distinct), ``samples`` of them."""

    name = "random"

    def _design(self) -> list[dict[str, Any]]:
        n = int(self.options["samples"])
        size = space_size(self.axes)
        if size is not None:
            n = min(n, size)
        rng = np.random.default_rng(self.seed)
        seen: set[str] = set()
        points: list[dict[str, Any]] = []
        for _ in range(200):
            points += unique_points(rng.random((max(n - len(points), 1) * 2, len(self.axes))),
                                    self.axes, n - len(points), seen)
            if len(points) >= n:
                break
        return points


class LatinHypercube(_Fixed):
    """A scrambled Latin hypercube of ``samples`` points (fewer when discrete points coincide)."""

    name = "lhs"

    def _design(self) -> list[dict[str, Any]]:
        n = int(self.options["samples"])
        return unique_points(latin_hypercube(len(self.axes), n, self.seed), self.axes, n)
