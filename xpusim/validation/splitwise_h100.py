"""Splitwise DGX-H100 prompt and token times under the stack fitted on A100 (nothing fitted here).

The published characterisation (Mutinifni/splitwise-sim ``data/perf_model.csv``) also holds
DGX-H100 rows; only its A100 rows are in the reference set, so this suite skips unless a user
puts the H100 rows in ``serving/splitwise_perf_model_h100.csv`` (or in the A100 file) with the
same columns and ``hardware`` = ``h100-80gb``. The prediction is ``--arch dgx-h100 --software
vllm``: the H100 preset and the vLLM-like stack whose host costs were fitted on the A100 train
rows, unchanged (the transfer test of issue 14).
"""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._splitwise import H100_ARCH, points

NAME = "splitwise-h100"
DESCRIPTION = ("DGX-H100 prompt and token time (Splitwise characterisation, H100 rows) under the "
               "vllm stack fitted on A100")
THRESHOLD = 0.10


def run(ctx: ValidationContext) -> list[Point]:
    return points(ctx, arch=H100_ARCH)
