"""MI300X / MI325X sustained GEMM rates and clocks published by AMD vs the power-limited model.

Data: ``validation/mi300x/amd_maf_public.csv`` (source and method in its README): AMD's
"max-achievable FLOPs" of one large hipBLASLt GEMM per dtype (fp16, bf16, fp8), run back to
back on random operands, and the median clock it ran at: 53-59% of the 2100 MHz peak on the
750 W MI300X, 64-70% on the 1000 W MI325X. The prediction is the GEMM's time per call on the
preset at the clock its power limit allows at 100% duty (:func:`sim.sustained.at_limit`); each
point's note gives the model's clock next to the measured one.

Split: the MI300X rows train (``xpusim.validation._fit_gpu.fit_amd_maf``: the mi300x preset's
``gpu.tensor_efficiency``, ``tensor_efficiency_by_dtype.fp8`` and ``energy.compute`` per dtype);
the MI325X rows test them on another power budget (preset ``mi325x`` extends ``mi300x``).
"""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext

NAME = "amd-maf"
DESCRIPTION = ("MI300X / MI325X hipBLASLt GEMMs at their sustained clocks (AMD's "
               "max-achievable FLOPs, validation/mi300x)")
THRESHOLD = 0.10
TAG, FILE = "mi300x", "amd_maf_public.csv"
PRESETS = {"MI300X": "mi300x", "MI325X": "mi325x"}


def rows(ctx: ValidationContext) -> list:
    """The table's rows (:class:`~xpusim.validation._own_gpu.Row`: a bad value is a one-line
    error naming the file, row and column); the suite is skipped without the file."""
    from xpusim.validation._own_gpu import rows as own_rows

    path = ctx.project_data / TAG / FILE
    out = own_rows(ctx, FILE, TAG, absent=f"{path} not found (project validation data absent)")
    for r in out:
        if r["gpu"] not in PRESETS:
            raise r.fail("gpu", f"expected one of {', '.join(PRESETS)}, got '{r['gpu'][:30]}'")
        if r["split"] not in ("train", "test"):
            raise r.fail("split", f"expected train or test, got '{r['split'][:30]}'")
    return out


def row_op(r):
    """The row's GEMM as a one-op trace entry."""
    from xpusim.commands.op import gemm_op

    return r.built("dtype", gemm_op, r.int("M"), r.int("N"), r.int("K"), 1, r["dtype"])


def measured_s(r) -> float:
    """Seconds per GEMM call from the row's TFLOP/s (2MNK / time)."""
    return 2.0 * r.int("M") * r.int("N") * r.int("K") / (r.num("tflops") * 1e12)


def points(ctx: ValidationContext, arch_of=None) -> list[Point]:
    """One point per row: measured vs predicted seconds per GEMM, back to back at the power
    limit. ``arch_of(gpu)``: the arch to run a row's GPU on (default its preset)."""
    from sim.sustained import at_limit, op_work
    from xpusim.validation._own_gpu import _arch

    out = []
    for r in rows(ctx):
        arch = arch_of(r["gpu"]) if arch_of else _arch(PRESETS[r["gpu"]], None)
        (seconds, *_), state = at_limit(arch, op_work(row_op(r)))
        mhz = (state.speed if state is not None else 1.0) * arch.gpu.clock / 1e6
        note = f"clock {mhz:.0f} MHz (measured {r.num('median_mhz'):.0f})"
        out.append(Point(f"{r['gpu']} {r['dtype']} {r['M']}x{r['N']}x{r['K']}", measured_s(r),
                         seconds, r["split"], note=note))
    return out


def run(ctx: ValidationContext) -> list[Point]:
    return points(ctx)
