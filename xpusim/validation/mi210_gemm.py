"""MI210 (CDNA 2) GEMM throughput from public measurements vs the mi210 preset.

Data: ``validation/mi210/mi210_gemm_public.csv`` (sources in its README): square GEMMs timed
back to back — PyTorch ``torch.mm`` on ``torch.randn`` operands (fp16, bf16, fp32), rocBLAS's
``rocblas-bench`` (fp32, fp64) and hipBLASLt on one 104-CU GCD of an MI250 (fp16; the same CU
count and clock as the MI210). Back-to-back timing includes the gap between kernels, so the
prediction is the device model's latency with its launch overhead.

PyTorch rows run on harness ``harness/mi210-pytorch-loop.yaml`` (the mi210 preset plus the
async host of a Python loop: a call costs max(host dispatch, kernel)); benchmark-tool rows on
the preset alone. Split: the preset's ``gpu.tensor_efficiency`` (sustained fp16/bf16 matrix rate
under the 300 W cap with random operands) and the harness's ``software.dispatch.matmul`` are
fitted on the fp16/bf16 ``train`` rows (PyTorch fp16 at 1024, 4096, 10240 and bf16 at 2048,
8192), ``gpu.tensor_efficiency_by_dtype.fp32`` on the fp32 ones (1024, 4096, 10240;
``xpusim.validation._fit_gpu.fit_mi210_gemm``); the other 14 rows test them. The
benchmark-initialised rows (``data`` = ``bench-init``) draw less power than random operands
(validation/mi210/README.md) and are reported, not fitted.
LLMCompass's MI210 measurements are not used (held out by the issue's reviewers).
"""

from __future__ import annotations

from xpusim.validation import HARNESS_DIR, Point, ValidationContext
from xpusim.validation._own_gpu import device
from xpusim.validation._table import read_rows

NAME = "mi210-gemm"
DESCRIPTION = ("MI210 / MI250-GCD square GEMMs 1K-10K (PyTorch randn fp16/bf16/fp32, "
               "rocblas-bench, hipBLASLt; public figures, validation/mi210)")
THRESHOLD = 0.10
FILE = ("mi210", "mi210_gemm_public.csv")
HARNESS = HARNESS_DIR / "mi210-pytorch-loop.yaml"


def rows(ctx: ValidationContext) -> list[dict[str, str]]:
    from xpusim.validation import SuiteSkipped

    path = ctx.project_data.joinpath(*FILE)
    if not path.is_file():
        raise SuiteSkipped(f"{path} not found (project validation data absent)")
    return read_rows(path)


def loop_time(dev, op, calls: int = 100) -> float:
    """Seconds per call of ``calls`` back-to-back calls under the device's async host."""
    from sim.gpu.host import async_makespan, lookup, op_family

    lat = dev.estimate(op).latency
    disp = lookup(dev.arch.software.dispatch, op_family(op))
    return async_makespan([lat] * calls, [disp] * calls, [False] * calls, [0.0] * calls) / calls


def points(ctx: ValidationContext, dev=None, loop_dev=None) -> list[Point]:
    """One point per row: the measured time of one GEMM (s) from its TFLOP/s. PyTorch rows run
    on the harness (``loop_dev``: host dispatch + the same GPU), benchmark-tool rows (C++ loops,
    host cost below the kernel times here) on the GPU preset alone (``dev``)."""
    from xpusim.commands.op import gemm_op

    dev = dev or device("mi210")
    loop_dev = loop_dev or device(str(HARNESS))
    out = []
    for r in rows(ctx):
        m, n, k = int(r["M"]), int(r["N"]), int(r["K"])
        measured = 2.0 * m * n * k / (float(r["tflops"]) * 1e12)
        case = f"{r['library']} {r['data']} {r['dtype']} {m}x{n}x{k}"
        op = gemm_op(m, n, k, 1, r["dtype"])
        pred = (loop_time(loop_dev, op) if r["library"].startswith("pytorch")
                else dev.estimate(op).latency)
        out.append(Point(case, measured, pred, r["split"], note=f"{r['gpu']} {r['source']}"))
    return out


def run(ctx: ValidationContext) -> list[Point]:
    return points(ctx)
