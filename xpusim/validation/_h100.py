"""Shared helpers of the suites over our own H100 measurements (``validation/h100/*.csv``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from xpusim.validation import SuiteSkipped, ValidationContext
from xpusim.validation._table import read_rows

MISSING = ("no H100 measurements yet: run validation/h100/measure_h100.py on an H100 "
           "(blocked on hardware so far)")


def rows(ctx: ValidationContext, name: str) -> list[dict[str, str]]:
    path: Path = ctx.project_data / "h100" / name
    if not path.is_file():
        raise SuiteSkipped(MISSING)
    return read_rows(path)


@lru_cache(maxsize=4)
def device(arch: str = "h100", software: str | None = None):
    """The tile-fidelity device of ``--arch arch [--software software]`` (a stack preset, e.g.
    ``ideal`` for CUDA-graph rows, ``eager`` for eager-PyTorch rows)."""
    from arch.software import load_arch_with_software
    from sim.devices.base import device_for

    return device_for(load_arch_with_software(arch, software), "tile")
