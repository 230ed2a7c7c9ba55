"""H200 GEMMs at duty cycles of 5-100% (our measurements): the time per call the power limiter
allows vs the h200 preset's power-limit model (sim/gpu/power_cap.py)."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._own_gpu import dvfs_points

NAME = "h200-dvfs"
DESCRIPTION = ("H200 8192^3 bf16/fp8 GEMMs in bursts at 5-100% duty, validation/h200/"
               "h200_dvfs.csv; the bf16 100% row fits gpu.dvfs_energy_exponent")
THRESHOLD = 0.05


def run(ctx: ValidationContext) -> list[Point]:
    return dvfs_points(ctx, "h200", "h200")
