"""Suite mamf (validation/mamf): the published best-of-search GEMM rates of seven GPUs against
each preset, run the way mamf-finder.py runs them (a 256 MiB cache flush and a C reset before
every call, the three kernels back to back under the power limit)."""

import pytest

from arch import load_arch
from sim.devices.base import device_for
from sim.gpu.power_cap import at_speed
from sim.sustained import at_limit, op_work
from xpusim.validation import PROJECT_DATA

DATA = PROJECT_DATA / "mamf" / "mamf_public.csv"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from conftest import project_ctx

    return project_ctx(tmp_path_factory, "mamf", "mamf_public.csv")


@pytest.fixture(scope="module")
def rows(ctx):
    from xpusim.validation.mamf import rows as mamf_rows

    return {(r["gpu"], r["dtype"]): r for r in mamf_rows(ctx)}


def test_iteration_is_the_finders_three_kernels(rows):
    """Hand counts of one timed call: the GEMM's 2MNK FLOPs, a write-only fill of 256 MiB (no
    read, no FLOP) and a read + write of the M x N output in the row's dtype (fp8: 1 byte)."""
    from xpusim.validation.mamf import iteration

    for key, size in ((("H100 SXM", "bf16"), 2), (("H200 SXM", "fp8"), 1)):
        r = rows[key]
        m, n, k = int(r["M"]), int(r["N"]), int(r["K"])
        gemm, flush, reset = iteration(r)
        assert gemm.flops == 2 * m * n * k
        assert flush.flops == 0 and flush.bytes == 256 * 2**20
        assert reset.bytes == 2 * m * n * size


def test_limiter_settles_on_the_mix_not_the_gemm_alone(rows):
    """The H100 bf16 row: the flush and the copy draw less power per second than the GEMM, so
    the 700 W limiter keeps a higher clock than for the GEMM run back to back alone; the
    point's time is the GEMM's own at that clock, and the board then draws its limit
    (static + joules / seconds of the iteration)."""
    from sim.sustained import ops_work
    from xpusim.validation.mamf import iteration

    arch = load_arch("h100")
    ops = iteration(rows[("H100 SXM", "bf16")])
    (seconds, compute, other, costs), state = at_limit(arch, ops_work(ops))
    gemm_s = costs[0].latency
    _, alone = at_limit(arch, op_work(ops[0]))
    assert alone.speed < state.speed < 1.0
    at = device_for(at_speed(arch, state.speed), "tile")
    assert gemm_s == at.estimate(ops[0]).latency
    assert seconds == pytest.approx(sum(at.estimate(op).latency for op in ops), rel=1e-12)
    board = arch.energy.static_power + (compute + other) / seconds
    assert board == pytest.approx(arch.gpu.power_limit, rel=0.01)


def test_amd_rows_land_within_six_percent(ctx):
    """The MI300X and MI325X (power-limited to 750 / 1000 W, values fitted on AMD's own
    hipBLASLt rows, suite amd-maf) reproduce these PyTorch rows within 6% (-5.1% and +0.2%)."""
    from xpusim.validation.mamf import points

    amd = {p.case.split()[0]: p.error for p in points(ctx) if p.case.startswith("MI3")}
    assert set(amd) == {"MI300X", "MI325X"}
    assert all(abs(e) < 0.06 for e in amd.values()), amd


def test_every_row_is_test_and_within_thirty_percent(ctx):
    """Nothing is fitted on the file (every row ``test``); every row within 30% of its
    measurement (the NVIDIA rows' 5-26% are the suite's known miss, docs/validation.md: a
    GEMM model off by a factor of two fails here)."""
    from xpusim.validation.mamf import points

    got = points(ctx)
    assert len(got) == 9 and {p.split for p in got} == {"test"}
    assert all(abs(p.error) < 0.30 for p in got), [(p.case, p.error) for p in got]


def test_bad_table_value_is_a_one_line_error_naming_row_and_column(tmp_path):
    """A rate that is not a positive number, a preset that does not exist or a shape that is
    not a positive integer stops the suite with the file, the row and the column."""
    from conftest import assert_bad_rows_fail

    from xpusim.validation.mamf import points

    assert_bad_rows_fail(tmp_path, DATA, points, [
        (",271.2,", ",fast,", r"row 2 tflops.*positive number, got 'fast'"),
        (",a100,", ",a1000,", r"row 2 preset.*arch preset, got 'a1000'"),
        (",1024,", ",-1,", r"row 2 M.*positive integer")])
