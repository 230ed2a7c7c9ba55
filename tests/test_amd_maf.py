"""The MI300X's clock under dense matrix work (power_limit 750 W, sim/gpu/power_cap.py) against
AMD's published max-achievable FLOPs and median clocks (validation/mi300x, suite amd-maf): the
fitted values are what the fit derives, the limiter settles on the measured MI300X clocks, the
board draws its limit there, light work keeps the boost clock, and the 1000 W MI325X (nothing
refitted) lands within 10% of AMD's figures."""

import pytest

from arch import load_arch
from sim.devices.base import device_for
from sim.gpu.power_cap import at_speed
from sim.sustained import at_limit, op_work
from xpusim.commands.op import gemm_op
from xpusim.validation import PROJECT_DATA, ValidationContext, mape

DATA = PROJECT_DATA / "mi300x" / "amd_maf_public.csv"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    if not DATA.is_file():
        pytest.skip("validation/mi300x/amd_maf_public.csv absent")
    return ValidationContext(tmp_path_factory.mktemp("ref"), project_data=PROJECT_DATA)


@pytest.fixture(scope="module")
def rows(ctx):
    from xpusim.validation.amd_maf import rows as maf_rows

    return maf_rows(ctx)


def test_preset_holds_what_the_fit_derives(ctx):
    """Every fitted mi300x value is the fit's own result (to the preset's printed digits)."""
    from xpusim.validation._fit_gpu import fit_amd_maf

    arch = load_arch("mi300x")
    got = fit_amd_maf(ctx)
    assert arch.gpu.tensor_efficiency == pytest.approx(got["gpu.tensor_efficiency"], abs=6e-4)
    assert arch.gpu.tensor_efficiency_by_dtype["fp8"] == pytest.approx(
        got["gpu.tensor_efficiency_by_dtype.fp8"], abs=6e-4)
    for dtype in ("fp16", "bf16", "fp8"):
        assert arch.energy.compute[dtype] == pytest.approx(got[f"energy.compute.{dtype}"],
                                                           rel=2e-4)


def test_limiter_settles_on_amds_mi300x_clocks(rows):
    """Each MI300X GEMM back to back: the clock AMD measured (within 2 MHz) and its TFLOP/s
    (within 0.5%)."""
    arch = load_arch("mi300x")
    for r in (r for r in rows if r["gpu"] == "MI300X"):
        op = gemm_op(int(r["M"]), int(r["N"]), int(r["K"]), 1, r["dtype"])
        (seconds, *_), state = at_limit(arch, op_work(op))
        assert state.speed * 2100 == pytest.approx(float(r["median_mhz"]), abs=2.0), r["dtype"]
        tflops = 2 * int(r["M"]) * int(r["N"]) * int(r["K"]) / seconds / 1e12
        assert tflops == pytest.approx(float(r["tflops"]), rel=5e-3), r["dtype"]


def test_board_draws_its_limit_at_the_measured_clock(rows):
    """Hand count at AMD's fp16 clock: static 90 W + (compute J + memory J) / s = 750 W, the
    compute joules being FLOPs x pJ/FLOP x speed^2 (dvfs_energy_exponent 2)."""
    arch = load_arch("mi300x")
    r = next(r for r in rows if r["gpu"] == "MI300X" and r["dtype"] == "fp16")
    speed = float(r["median_mhz"]) / 2100
    op = gemm_op(int(r["M"]), int(r["N"]), int(r["K"]), 1, "fp16")
    cost = device_for(at_speed(arch, speed), "tile").estimate(op)
    flops = 2.0 * int(r["M"]) * int(r["N"]) * int(r["K"])
    assert cost.energy["compute"] == pytest.approx(
        flops * arch.energy.compute["fp16"] * speed ** 2, rel=1e-6)
    watts = arch.energy.static_power + sum(cost.energy.values()) / cost.latency
    assert watts == pytest.approx(750.0, abs=0.5)


def test_weight_streaming_keeps_the_boost_clock():
    """A decode-like GEMV (one token, 8192x8192 fp16 weights) draws far below 750 W: the boost
    clock; the 8192^3 GEMM beside it runs at ~55% of it (AMD's bf16 clock is 57%)."""
    arch = load_arch("mi300x")
    _, light = at_limit(arch, op_work(gemm_op(1, 8192, 8192, 1, "fp16")))
    _, heavy = at_limit(arch, op_work(gemm_op(8192, 8192, 8192, 1, "bf16")))
    assert light.speed == 1.0 and light.power < 400
    assert 0.5 < heavy.speed < 0.62


def test_mi325x_rows_transfer_within_ten_percent(ctx):
    """The 1000 W MI325X with the MI300X's fitted values: each row within 10% of AMD's time (the
    model is 6-9% slow: its clock 1246-1381 MHz where AMD measured 1354-1464)."""
    from xpusim.validation.amd_maf import points

    test = [p for p in points(ctx) if p.split == "test"]
    assert len(test) == 3 and all(p.case.startswith("MI325X") for p in test)
    assert all(0.0 < p.error < 0.10 for p in test), [(p.case, p.error) for p in test]
    assert mape(test) < 0.08
