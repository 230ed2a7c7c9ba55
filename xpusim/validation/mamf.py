"""Maximum achievable matmul FLOPS (MAMF) of seven GPUs, published, vs each preset at its limit.

Data: ``validation/mamf/mamf_public.csv`` (source and method in its README): the best TFLOP/s
that ``mamf-finder.py`` (Stas Bekman, ml-engineering) found over a brute-force search of GEMM
shapes on an A100 SXM / PCIe, H100, H200, GH200, MI300X and MI325X, bf16 and fp8, each the
mean of 100 calls after 50 warm-up calls, with the shape it was found at.

What the prediction runs is what the finder runs: before every timed call it zeroes a 256 MiB
buffer (so the call starts with a cold cache) and copies a random C into the output; only the
``torch.mm`` is timed. The three kernels run back to back on the GPU for as long as the search
lasts (minutes, after a 30 s warm-up), so the power limiter sees them together: the model
prices the iteration (fill, copy, GEMM) on the preset at the clock its power limit allows for
that mix (:func:`sim.sustained.at_limit` over :func:`sim.sustained.ops_work`), and the point is
the GEMM's own time there.

Every row is ``test``: nothing is fitted on this file. A maximum over many shapes and noisy
means sits above what a typical shape reaches (selection), so the model is expected to fall a
few percent short on it; the note of each point gives the model's clock.
"""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext

NAME = "mamf"
DESCRIPTION = ("best-of-search GEMM TFLOP/s of A100, H100, H200, GH200, MI300X and MI325X "
               "(ml-engineering mamf-finder, validation/mamf); nothing fitted")
THRESHOLD = 0.10
TAG, FILE = "mamf", "mamf_public.csv"
#: the finder's cache flush before every call: ``torch.empty(256 MiB / 4, dtype=int).zero_()``
FLUSH_BYTES = 256 * 2**20


def rows(ctx: ValidationContext) -> list:
    """The table's rows (:class:`~xpusim.validation._own_gpu.Row`: a bad value is a one-line
    error naming the file, row and column); the suite is skipped without the file."""
    from arch import list_presets
    from xpusim.validation._own_gpu import rows as own_rows

    path = ctx.project_data / TAG / FILE
    out = own_rows(ctx, FILE, TAG, absent=f"{path} not found (project validation data absent)")
    known = set(list_presets())
    for r in out:
        if r["preset"] not in known:
            raise r.fail("preset", f"expected an arch preset, got '{r['preset'][:30]}'")
    return out


def fill_op(nbytes: int):
    """A write-only kernel over ``nbytes`` (``Tensor.zero_`` of int32): no input read."""
    from workloads.einsum import TensorRef, elementwise
    from workloads.trace import VECTOR, Op

    e = elementwise("fill", TensorRef("y", ("t",), "fp32"), (), {"t": nbytes // 4}, "copy")
    return Op(0, "fill", VECTOR, "prefill", 0, 0, e, op_class="elementwise")


def iteration(r) -> tuple:
    """(GEMM, cache flush, C reset) of one timed call of the row."""
    from xpusim.commands.op import gemm_op, vector_op

    m, n, k = r.int("M"), r.int("N"), r.int("K")
    gemm = r.built("dtype", gemm_op, m, n, k, 1, r["dtype"])
    # C is M x N of the inputs' dtype (the finder's fp8 calls write an fp8 C too)
    return gemm, fill_op(FLUSH_BYTES), vector_op("copy", m, n, r["dtype"])


def measured_s(r) -> float:
    """Seconds per GEMM call from the row's TFLOP/s (2MNK / time)."""
    return 2.0 * r.int("M") * r.int("N") * r.int("K") / (r.num("tflops") * 1e12)


def points(ctx: ValidationContext) -> list[Point]:
    """One point per row: measured vs predicted seconds per GEMM call."""
    from sim.sustained import at_limit, ops_work
    from xpusim.validation._own_gpu import _arch

    out = []
    for r in rows(ctx):
        arch = _arch(r["preset"], None)
        (*_, costs), state = at_limit(arch, ops_work(iteration(r)))
        mhz = (state.speed if state is not None else 1.0) * arch.gpu.clock / 1e6
        note = f"{r['software']}; model clock {mhz:.0f} MHz"
        out.append(Point(f"{r['gpu']} {r['dtype']} {r['M']}x{r['N']}x{r['K']}", measured_s(r),
                         costs[0].latency, "test", note=note))
    return out


def run(ctx: ValidationContext) -> list[Point]:
    return points(ctx)
