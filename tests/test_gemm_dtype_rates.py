"""GEMM rates per dtype on the H100 (issue 17): bf16 at fp16's rate, FP8 against a public
cuBLASLt figure, and no GPU without its own fitted per-dtype rate inheriting one."""

import pytest

from arch import list_presets, load_arch
from sim.devices.base import device_for
from xpusim.commands.op import gemm_op

#: Vidur-style layer shapes (tokens x out x in) and squares
SHAPES = [(1, 4096, 4096), (128, 12288, 4096), (1024, 4096, 11008), (4096, 4096, 4096),
          (8192, 8192, 8192), (333, 5120, 13824)]


@pytest.mark.parametrize("arch", ["h100", "a100", "mi210"])
def test_bf16_runs_at_the_fp16_rate(arch):
    """Same dense tensor peak (datasheets) and one sustained rate for both 16-bit types: every
    shape takes the same time (the held-out H100 bf16 GEMMs are priced as the fp16 ones)."""
    dev = device_for(load_arch(arch), "tile")
    g = dev.arch.gpu
    assert g.tensor_flops["bf16"] == g.tensor_flops["fp16"]
    for m, n, k in SHAPES:
        t16 = dev.estimate(gemm_op(m, n, k, 1, "fp16")).latency
        assert dev.estimate(gemm_op(m, n, k, 1, "bf16")).latency == t16


def test_h100_fp8_large_gemm_near_the_same_dies_measured_rate():
    """Our H200 (the H100's GH100 die at the same 1980 MHz boost clock) ran the 8192^3 fp8 GEMM
    in 0.768 ms at the boost clock, 1,431 TFLOP/s (validation/h200/h200_dvfs.csv, duty <= 0.2),
    and the bf16 one at 783. The h100 model, with its own bf16 rate fitted on Vidur's H100 rows
    and the h200's fp8 / bf16 ratio, gives ~1,365 and ~745: both ~5% below the same die's
    figures, their ratio the die's. (A public cuBLASLt FP8 8192^3 micro-benchmark on an
    unnamed "H100-class" part measured 1599-1630 TFLOP/s, gitea.d-robotics.cc
    han.zhao/test_gpu_scripts; the model is 15% below it, our H200 11% below it.)"""
    from xpusim.validation import PROJECT_DATA
    from xpusim.validation._table import read_rows

    path = PROJECT_DATA / "h200" / "h200_dvfs.csv"
    if not path.is_file():
        pytest.skip("validation/h200 measurements absent")
    burst = [float(r["time_per_call_s"]) for r in read_rows(path)
             if r["dtype"] == "fp8" and float(r["duty"] or 0) <= 0.2]
    measured = 2 * 8192 ** 3 / (sum(burst) / len(burst))
    dev = device_for(load_arch("h100"), "tile")
    t = dev.estimate(gemm_op(8192, 8192, 8192, 1, "fp8")).latency
    rate = 2 * 8192 ** 3 / t
    assert 0.92 * measured < rate < 1.0 * measured
    # the fp8 / fp16 time ratio is the tensor peaks' (1978.9 vs 989.4 TFLOP/s) times the
    # main loops' efficiency ratio
    g = dev.arch.gpu
    t16 = dev.estimate(gemm_op(8192, 8192, 8192, 1, "fp16")).latency
    eff = g.tensor_efficiency_by_dtype["fp8"] / g.tensor_efficiency
    assert t16 / t == pytest.approx(2.0 * eff, rel=0.02)


def test_only_fitted_gpus_carry_a_per_dtype_rate():
    """A per-dtype sustained rate is FITTED data of one GPU (mi210's fp32, h200's fp8, mi300x's
    fp8 on AMD's MI300X rows): presets that extend the mi210 set their own (mi250x: its assumed
    0.85; mi300x: fitted on its own data), none inherits the mi210's fp32 value, and no other
    preset carries the h200's fp8 one. The mi325x (the MI300X's dies) inherits the mi300x's,
    which suite amd-maf tests on MI325X rows; the h100 carries the h200's fp8 / bf16 ratio,
    which suite trtllm-e2e's H100 FP8 rows test; the gh200 (the same die, no power limit)
    carries the h200's own boost-clock values, which suite mamf's GH200 rows test."""
    fitted = load_arch("mi210").gpu.tensor_efficiency_by_dtype["fp32"]
    fp8 = load_arch("h200").gpu.tensor_efficiency_by_dtype["fp8"]
    for name in list_presets():
        arch = load_arch(name)
        g = arch.sections.get("gpu")
        if g is None or not g.tensor_efficiency_by_dtype:
            continue
        sources = [arch.provenance.get(f"gpu.tensor_efficiency_by_dtype.{d}", "")
                   for d in g.tensor_efficiency_by_dtype]
        if name in ("mi210", "h200"):
            assert all("FITTED" in s for s in sources)
        elif name == "gh200":
            src = arch.provenance["gpu.tensor_efficiency_by_dtype.fp8"]
            assert src.startswith("derived, transfer tested") and "mamf" in src
            assert g.tensor_efficiency_by_dtype["fp8"] == fp8
        elif arch.provenance.get("gpu.tensor_efficiency_by_dtype.fp8", "").startswith(
                "derived, transfer tested"):   # h100 and the presets that extend it
            src = arch.provenance["gpu.tensor_efficiency_by_dtype.fp8"]
            assert "trtllm-e2e" in src and "h200" in src, name
        elif name in ("mi300x", "mi325x"):
            own = arch.provenance["gpu.tensor_efficiency_by_dtype.fp8"]
            assert own.startswith("FITTED") and "amd-maf" in own
            assert g.tensor_efficiency_by_dtype["fp8"] != fp8
            assert g.tensor_efficiency_by_dtype["fp32"] != fitted
        else:
            assert g.tensor_efficiency_by_dtype.get("fp8") != fp8, name
            assert g.tensor_efficiency_by_dtype.get("fp32") != fitted, name
            assert all("FITTED" not in s or "not copied" in s for s in sources), name


def test_fp8_weight_gemms_run_at_the_fp8_rate_under_the_trtllm_stack():
    """``software.gemm_dtype: fp8`` (TensorRT-LLM's FP8Linear: activation quantised for an
    FP8 x FP8 GEMM, output fp16): a GEMM with fp16 activations and FP8 weights computes at the
    FP8 tensor rate, twice the fp16 one on a compute-bound shape; without the setting it is a
    weight-only GEMM at the fp16 rate, and fp16 weights stay fp16 under the stack."""
    from arch.software import load_arch_with_software
    from xpusim.validation import PROJECT_DATA

    stack = str(PROJECT_DATA / "trtllm" / "gptsession-v0.9.yaml")
    trt = device_for(load_arch_with_software("h100", stack), "tile")
    plain = device_for(load_arch("h100"), "tile")
    w8a8 = gemm_op(8192, 8192, 8192, 1, "fp16", weights="fp8")
    fp16 = gemm_op(8192, 8192, 8192, 1, "fp16")
    assert trt.compute_dtype(w8a8) == "fp8" and plain.compute_dtype(w8a8) == "fp16"
    assert trt.compute_dtype(fp16) == "fp16"
    t_trt, t_plain = trt.estimate(w8a8).latency, plain.estimate(w8a8).latency
    g = plain.arch.gpu
    eff = g.tensor_efficiency_by_dtype["fp8"] / g.tensor_efficiency   # fp8's main loop
    assert t_plain / t_trt == pytest.approx(2.0 * eff, rel=0.03)
    t_fp8 = plain.estimate(gemm_op(8192, 8192, 8192, 1, "fp8")).latency
    assert t_trt == pytest.approx(t_fp8, rel=0.03)   # the 16-bit A read hides under compute


@pytest.mark.parametrize("arch", ["a100", "mi210", "t4"])
def test_fp8_gemm_recipe_falls_back_to_weight_only_without_fp8_tensor_cores(arch):
    """The `trtllm` stack asks for FP8 GEMMs; a GPU with no FP8 tensor rate (A100, MI210, T4)
    keeps FP8 weights weight-only: the same time as the plain arch (it once priced them at no
    tensor rate at all: a 7B first token of 37 s on A100)."""
    from arch.software import load_arch_with_software

    trt = device_for(load_arch_with_software(arch, "trtllm"), "tile")
    plain = device_for(load_arch(arch), "tile")
    w8 = gemm_op(4096, 4096, 4096, 1, "fp16", weights="fp8")
    assert trt.compute_dtype(w8) == "fp16"
    assert trt.estimate(w8).latency == plain.estimate(w8).latency
    h100 = device_for(load_arch_with_software("h100", "trtllm"), "tile")
    assert h100.compute_dtype(w8) == "fp8"


def test_h100_fp8_rate_is_the_h200_ratio_on_its_own_bf16_rate():
    """The h100's fp8 main-loop efficiency is its fitted bf16 one times the h200's fitted fp8 /
    bf16 ratio (the same GH100 die), to the preset's printed digits."""
    h100, h200 = load_arch("h100").gpu, load_arch("h200").gpu
    ratio = h200.tensor_efficiency_by_dtype["fp8"] / h200.tensor_efficiency
    assert h100.tensor_efficiency_by_dtype["fp8"] == pytest.approx(
        h100.tensor_efficiency * ratio, abs=6e-4)
