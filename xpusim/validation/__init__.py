"""Validation suites, one module each, run by ``xpusim validate``.

A suite module defines::

    NAME = "a100-gemm"                 # unique, shown in the table and in validation.csv
    DESCRIPTION = "one line: what is compared with what"
    THRESHOLD = 0.05                   # the suite passes when its MAPE <= THRESHOLD
    def run(ctx: ValidationContext) -> list[Point]

``run`` returns one :class:`Point` per measured case (the prediction next to the measurement,
both in the same unit) and raises :class:`SuiteSkipped` with a reason when its data is absent
(the suite is then reported as skipped, which does not fail ``xpusim validate``). Points may be
tagged ``split="train"`` or ``"test"`` when a parameter was fitted on part of the data; the
table reports the MAPE of each split next to the whole. Modules whose name starts with ``_``
are helpers and are not run. Discovery is :func:`xpusim.plugins.discover`, as for commands and
reproductions: adding a suite is adding a module here, nothing else changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = Path(__file__).resolve().parent / "harness"
# our own measurements (validation/ in the checkout; from an installed copy, ./validation)
PROJECT_DATA = next((p for p in (PROJECT_ROOT / "validation", Path.cwd() / "validation")
                     if p.is_dir()), PROJECT_ROOT / "validation")


class SuiteSkipped(Exception):
    """Raised by a suite whose measured data is not available; the message says why."""


@dataclass
class Point:
    """One measured case and the model's prediction for it (same unit)."""

    case: str
    measured: float
    predicted: float
    split: str = ""          # "train", "test" or "" (no fitted parameter uses this point)
    unit: str = "s"
    note: str = ""

    @property
    def error(self) -> float:
        """Signed relative error, predicted / measured - 1."""
        return self.predicted / self.measured - 1.0 if self.measured else math.nan


@dataclass
class ValidationContext:
    """Where the data lives, plus a cache suites may share (devices, traces)."""

    reference_dir: Path
    project_data: Path = PROJECT_DATA
    cache: dict[str, Any] = field(default_factory=dict)

    def ref(self, *parts: str) -> Path:
        """A file under the reference folder; :class:`SuiteSkipped` when it is absent."""
        path = self.reference_dir.joinpath(*parts)
        if not path.is_file():
            raise SuiteSkipped(f"{path} not found (reference data absent; pass "
                               "--reference-dir or set XPUSIM_REFERENCE_DIR)")
        return path


def estimates(device, ops: list) -> list:
    """The cost (:class:`sim.devices.base.Cost`: s, J) of each op of ``ops`` on ``device``, in
    order. A device that prices shapes at once (``prefetch``: a GPU's GEMMs from arrays,
    :func:`sim.gpu.gemm.best_gemm_many`, the scalar path's floats bit for bit) prices them
    first, as the engine does, where a grid of GEMMs priced one by one tries every (tile,
    split-K) candidate in Python. ``ops`` stay referenced until their costs are read (the
    estimate memo is keyed by their compute objects)."""
    if hasattr(device, "prefetch"):
        device.prefetch(ops)
    return [device.estimate(op) for op in ops]


def parsed_once(name_or_path: str | Path):
    """Arch ``name_or_path`` (a preset or an arch file) read and parsed now, once, as a
    function of overrides (a mapping, or None) that returns the arch of a fresh copy of its
    data with them deep-merged: a fit builds a device per objective evaluation, and parsing
    the LLMCompass harness YAML each time was ~70% of that fit (a sweep does the same: its
    arch parsed once, copied per point, ``dse.evaluate``). A fit calls it anew, so a file
    edited between two fits is read again."""
    import copy

    from arch import arch_from_dict, deep_merge, load_arch_data

    data, label = load_arch_data(name_or_path)

    def arch(overrides: dict | None = None):
        return arch_from_dict(deep_merge(copy.deepcopy(data), overrides or {}), label)

    return arch


def mape(points: list[Point]) -> float:
    """Mean absolute percentage error as a fraction (nan when there are no points)."""
    errs = [abs(p.error) for p in points if math.isfinite(p.error)]
    return sum(errs) / len(errs) if errs else math.nan


def bias(points: list[Point]) -> float:
    """Mean signed relative error (predicted / measured - 1) as a fraction (nan when empty)."""
    errs = [p.error for p in points if math.isfinite(p.error)]
    return sum(errs) / len(errs) if errs else math.nan


def alternate_split(n: int) -> list[str]:
    """The documented train/test split of a fitted suite: even rows train, odd rows test."""
    return ["train" if i % 2 == 0 else "test" for i in range(n)]
