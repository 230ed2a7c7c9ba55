"""Foundation checks of the GPU model: bounds, quantisation, and error against measured A100."""

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arch import arch_from_dict, load_arch, load_arch_data
from sim.devices.base import device_for
from xpusim.commands.op import gemm_op


@pytest.fixture(scope="module")
def a100():
    return device_for(load_arch("a100"), "tile")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20000), st.integers(1, 20000), st.integers(1, 20000),
       st.sampled_from(["fp16", "bf16", "int8"]))
def test_tile_gemm_never_beats_roofline(m, n, k, dtype):
    dev = device_for(load_arch("h100"), "tile")
    op = gemm_op(m, n, k, 1, dtype)
    cost = dev.estimate(op)
    assert cost.latency >= cost.roofline > 0
    assert cost.dram_bytes >= op.bytes * (1 - 1e-12)
    assert cost.energy_total > 0


def test_wave_quantisation():
    """With one CTA tile shape, one more output tile than the SMs hold costs a second wave."""
    data, label = load_arch_data("a100")
    data["gpu"]["gemm_tiles"] = [[128, 128, 64]]
    dev = device_for(arch_from_dict(data, label), "tile")
    two = dev.estimate(gemm_op(128 * 27, 128 * 8, 4096, 1, "fp16"))  # 216 tiles
    three = dev.estimate(gemm_op(128 * 31, 128 * 7, 4096, 1, "fp16"))  # 217 tiles, +0.5% FLOPs
    assert two.detail["waves"] == 2 and three.detail["waves"] == 3
    assert three.detail["t_compute"] == pytest.approx(1.5 * two.detail["t_compute"])
    assert three.latency > 1.3 * two.latency


def test_small_gemm_pays_launch_overhead(a100):
    cost = a100.estimate(gemm_op(8, 8, 8, 1, "fp16"))
    assert cost.latency >= load_arch("a100").gpu.launch_overhead


def test_decode_gemv_is_memory_bound(a100):
    cost = a100.estimate(gemm_op(1, 12288, 12288, 1, "fp16"))
    assert cost.bound == "memory"


def test_gemm_mape_against_measured_a100(ref_dir, capsys):
    """xpusim op gemm vs LLMCompass's measured A100 fp16 GEMMs (foundation bound: 25%)."""
    df = pd.read_csv(ref_dir / "gpu" / "a100_matmul_llmcompass.csv")
    dev = device_for(load_arch("a100"), "tile")
    errors = []
    for row in df.itertuples():
        latency = dev.estimate(gemm_op(row.M, row.N, row.K, 1, "fp16")).latency
        errors.append(abs(latency * 1e3 - row.latency_ms) / row.latency_ms)
    mape = sum(errors) / len(errors)
    with capsys.disabled():
        print(f"\n[gpu reference] A100 GEMM MAPE vs LLMCompass measurements: {mape:.1%} "
              f"over {len(errors)} shapes (max {max(errors):.1%})")
    assert math.isfinite(mape) and mape < 0.25
