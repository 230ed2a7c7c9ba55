"""Shared helpers of the suites over Vidur's profiling data (``gpu/*_vidur.csv``).

Vidur (microsoft/vidur, data/profiling) timed cuBLAS fp16 GEMMs of model layers and NCCL
all-reduces on DGX-A100 / DGX-H100 with the PyTorch profiler: a row's time is the **sum of the
CUDA kernel durations** of the op (median of 20 steps), so the gap between back-to-back kernel
launches is not in it. The model's ``gpu.launch_overhead`` includes that gap (the a100/h100
presets' source: ~1 us launch gap + ~1 us ramp-up and drain), so the suites compare the model's
kernel time minus :data:`LAUNCH_GAP` per kernel.

Train/test split (documented; fits use only ``train`` rows):

* GEMM file: **by model** — Llama-2-7B rows train (96 of 216 per GPU, 44%), CodeLlama-34B and
  Phi-2 rows test (other hidden sizes 8192 and 2560, other shapes). The A40 file
  (validation/a40) likewise: Llama-2-7B trains (96 of 504), the five other models test.
* all-reduce file: **by size** — inside each (GPUs, GPUs per node) configuration, sizes at odd
  positions train (42 of 91 rows), even positions test.
"""

from __future__ import annotations

from functools import lru_cache

from xpusim.validation import Point, ValidationContext
from xpusim.validation._table import read_rows

GEMM_FILE = ("gpu", "a100_h100_gemm_vidur.csv")
ALLREDUCE_FILE = ("gpu", "dgx_a100_allreduce_vidur.csv")
TRAIN_MODEL = "meta-llama/Llama-2-7b-hf"
# NVIDIA Technical Blog 'Getting Started with CUDA Graphs' (2019): 2.9 us kernels issued back to
# back take 3.8 us each, i.e. ~1 us between kernels that a kernel-duration profile does not count
LAUNCH_GAP = 1e-6


def gemm_split(model: str) -> str:
    """The documented split of the GEMM file: Llama-2-7B trains, the other models test."""
    return "train" if model == TRAIN_MODEL else "test"


#: the A40 rows of the same profiling, extracted into the project (validation/a40/README.md)
A40_FILE = ("a40", "a40_gemm_vidur.csv")


def gemm_rows(ctx: ValidationContext, gpu: str) -> list:
    """Rows of one GPU (``a100``, ``h100``: the reference GEMM file; ``a40``: the project's A40
    file, the suite skipped without it) as checked rows
    (:class:`~xpusim.validation._own_gpu.Row`: a bad value is a one-line error naming the
    file, the row and the column)."""
    from xpusim.validation._own_gpu import Row, rows

    if gpu == "a40":
        path = ctx.project_data.joinpath(*A40_FILE)
        got = rows(ctx, A40_FILE[1], A40_FILE[0],
                   absent=f"{path} not found (project validation data absent)")
    else:
        path = ctx.ref(*GEMM_FILE)
        got = [Row(r, str(path), i + 2) for i, r in enumerate(read_rows(path))]
    return [r for r in got if r["gpu"] == gpu]


@lru_cache(maxsize=8)
def device(arch: str):
    """The preset's device model at tile fidelity (built once per process)."""
    from arch import load_arch
    from sim.devices.base import device_for

    return device_for(load_arch(arch), "tile")


def kernel_time(cost) -> float:
    """Model time (s) of an op whose cost is ``cost`` as a kernel-duration profile sees it
    (no launch gaps)."""
    kernels = 2 if cost.detail.get("split_k", 1) > 1 else 1
    return cost.latency - kernels * LAUNCH_GAP


def gemm_points(ctx: ValidationContext, gpu: str, dev=None,
                only: str | None = None) -> list[Point]:
    """One point per row: C[m,n] = A[m,k] B[k,n] in fp16 (m tokens, n x k weights);
    ``only``: the rows of that split alone (a fit's objective: ``"train"``)."""
    from xpusim.validation import estimates

    dev = dev or device(gpu)
    grid = [g for g in gemm_grid(ctx, gpu) if only is None or g[3] == only]
    return [Point(case, measured, kernel_time(cost), split, note=note)
            for (case, measured, _, split, note), cost
            in zip(grid, estimates(dev, [g[2] for g in grid]), strict=True)]


def gemm_grid(ctx: ValidationContext, gpu: str) -> list[tuple]:
    """``(case, measured s, op, split, m x n x k)`` of each row of :func:`gemm_rows`, read once
    per context (``ctx.cache``: a fit prices the same ops on each device it tries)."""
    from xpusim.commands.op import gemm_op

    key = ("vidur_gemm_grid", gpu)
    if key not in ctx.cache:
        grid = []
        for r in gemm_rows(ctx, gpu):
            m, n, k = r.int("m"), r.int("n"), r.int("k")
            grid.append((f"{r['model'].split('/')[-1]} tp{r['tp']} {r['num_tokens']}tok "
                         f"{r['op']}", r.num("median_ms") * 1e-3, gemm_op(m, n, k, 1, "fp16"),
                         gemm_split(r["model"]), f"{m}x{n}x{k}"))
        ctx.cache[key] = grid
    return ctx.cache[key]


def allreduce_rows(ctx: ValidationContext) -> list[tuple[dict[str, str], str]]:
    """(row, split) of the all-reduce file: odd size positions of each configuration train."""
    out, pos, last = [], 0, None
    for r in read_rows(ctx.ref(*ALLREDUCE_FILE)):
        cfg = (r["num_workers"], r["devices_per_node"])
        pos = pos + 1 if cfg == last else 0
        last = cfg
        out.append((r, "train" if pos % 2 == 1 else "test"))
    return out
