"""Search strategies: which design points to evaluate, in which order.

A strategy proposes points in batches (``ask``) and hears their records back (``tell``), so
adaptive searches (NSGA-II, Bayesian) and fixed designs (grid, random, Latin hypercube) share one
loop. Every strategy is deterministic for the spec's ``seed``: the same spec proposes the same
points in the same order, which is what lets ``--resume`` replay a search from the store.

Register a strategy by subclassing :class:`Strategy` with a ``name`` and ``OPTIONS``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import Any, ClassVar

from dse.space import Axis

STRATEGIES: dict[str, type[Strategy]] = {}


class Strategy:
    """Base class. ``OPTIONS`` maps option name to (default, minimum) for positive integers."""

    name: ClassVar[str] = ""
    OPTIONS: ClassVar[dict[str, tuple[Any, float]]] = {}
    adaptive: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            STRATEGIES[cls.name] = cls

    def __init__(self, axes: tuple[Axis, ...], objectives, seed: int, options: dict[str, Any]):
        self.axes = axes
        self.objectives = objectives
        self.seed = seed
        self.options = options

    @classmethod
    def check(cls, axes: tuple[Axis, ...], options: dict[str, Any]) -> tuple[str, str] | None:
        """(option, message) when the options do not suit these axes; None when fine."""
        return None

    def planned(self) -> int:
        """Points this strategy proposes (an upper bound for adaptive ones)."""
        raise NotImplementedError

    def ask(self) -> list[dict[str, Any]]:
        """The next batch of points (axis values); an empty list when the search is done."""
        raise NotImplementedError

    def tell(self, records: list[dict]) -> None:
        """Records of the last batch, in the order it was proposed."""


#: most design points a sweep may plan, and largest numeric strategy option
MAX_POINTS = 1_000_000
MAX_OPTION = 1_000_000


def validate_strategy(raw: Any, axes: list[Axis], err: Callable[[str, str], Exception]):
    """Check ``strategy:`` of a sweep spec; return a :class:`dse.spec.StrategySpec`."""
    from dse.spec import StrategySpec

    _load_all()
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise err("strategy", f"expected a strategy name ({', '.join(STRATEGIES)}) or a mapping "
                              f"with 'name', got {raw!r}")
    name = raw["name"]
    if name not in STRATEGIES:
        close = difflib.get_close_matches(name, list(STRATEGIES), n=1)
        more = f" (did you mean '{close[0]}'?)" if close else ""
        raise err("strategy.name", f"unknown strategy '{name}'{more}; expected one of "
                                   f"{', '.join(STRATEGIES)}")
    cls = STRATEGIES[name]
    options: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "name":
            continue
        if key not in cls.OPTIONS:
            close = difflib.get_close_matches(str(key), list(cls.OPTIONS), n=1)
            more = f" (did you mean '{close[0]}'?)" if close else \
                f" (options of {name}: {', '.join(cls.OPTIONS) or 'none'})"
            raise err(f"strategy.{key}", f"unknown option{more}")
        default, minimum = cls.OPTIONS[key]
        kind = type(default)
        ok = (isinstance(value, int) and not isinstance(value, bool)) if kind is int else \
            (isinstance(value, (int, float)) and not isinstance(value, bool))
        if not ok or not minimum <= value <= MAX_OPTION:
            what = "an integer" if kind is int else "a number"
            raise err(f"strategy.{key}", f"expected {what} >= {minimum:g} (at most "
                                         f"{MAX_OPTION:,}), got {value!r:.40}")
        options[key] = kind(value)
    for key, (default, _) in cls.OPTIONS.items():
        options.setdefault(key, default)
    problem = cls.check(tuple(axes), options)
    if problem:
        raise err(f"strategy.{problem[0]}" if problem[0] else "strategy", problem[1])
    if name == "grid":
        size = math.prod(len(a.grid_values()) if a.values is not None else a.steps
                         for a in axes)
        if size > MAX_POINTS:
            raise err("axes", f"a grid of {size:.3g} points (limit {MAX_POINTS:,}); use fewer "
                              "values or steps, or a sampling strategy")
    return StrategySpec(name, options)


def make_strategy(spec) -> Strategy:
    """The strategy object a :class:`dse.spec.SweepSpec` asks for."""
    _load_all()
    cls = STRATEGIES[spec.strategy.name]
    return cls(spec.axes, spec.objectives, spec.seed, dict(spec.strategy.options))


def _load_all() -> None:
    from dse.strategies import bayes, grid, nsga2, sampling  # noqa: F401  (registers them)
