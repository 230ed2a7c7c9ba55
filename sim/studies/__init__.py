"""Study drivers and custom metrics that experiments name, each living with its device.

An experiment file (``xpusim/reproductions/experiments/*.yaml``, or a user's copy) names a
*study*: a function that runs the systems it is given over the workload parameters and returns
``{"points": [dict, ...], "values": {name: float}, "extra": {name: object}}``. Points carry one
column per system and metric (``<system>_<metric>``), so the experiment runner can form ratios
between systems without knowing the study. A *metric* is a named function ``(result, params) ->
float`` for claims that are not a plain ratio or value.

Register with :func:`study` / :func:`metric`; modules of this package are discovered on first
lookup (``sim/studies/<device>.py``). Drivers take system arch names (preset or YAML path), so a
user can swap the chip without touching code.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

StudyFn = Callable[[dict[str, str], dict[str, Any]], dict[str, Any]]
MetricFn = Callable[[dict[str, Any], dict[str, Any]], float]

STUDIES: dict[str, StudyFn] = {}
METRICS: dict[str, MetricFn] = {}
_loaded = False


def study(name: str) -> Callable[[StudyFn], StudyFn]:
    """Register a study driver under ``name``."""
    def deco(fn: StudyFn) -> StudyFn:
        STUDIES[name] = fn
        return fn
    return deco


def metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Register a custom claim metric under ``name``."""
    def deco(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        return fn
    return deco


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def get_study(name: str) -> StudyFn | None:
    """The study registered as ``name`` (None when unknown)."""
    _load()
    return STUDIES.get(name)


def get_metric(name: str) -> MetricFn | None:
    """The custom metric registered as ``name`` (None when unknown)."""
    _load()
    return METRICS.get(name)


def names() -> tuple[list[str], list[str]]:
    """(study names, metric names), sorted."""
    _load()
    return sorted(STUDIES), sorted(METRICS)
