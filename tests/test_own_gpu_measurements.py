"""Our H200 measurements (validation/h200, measured with validation/measure_gpu.py) against the
h200 preset, and the mechanisms they brought in: FA-3's overlapped prefill softmax on Hopper,
K/V tiles a head's query blocks share through L2, and the H200's own fitted GEMM values."""

import importlib.util
import math
from pathlib import Path

import pytest

from xpusim.validation import PROJECT_DATA, ValidationContext, bias, mape

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    if not (PROJECT_DATA / "h200" / "h200_gemm.csv").is_file():
        pytest.skip("validation/h200 measurements absent")
    return ValidationContext(tmp_path_factory.mktemp("ref"), project_data=PROJECT_DATA)


def test_h200_gemm_test_rows_hold_the_fit(ctx):
    """The odd rows of the burst grid (boost clock) were not fitted on: MAPE within the suite's
    8% and unbiased. The 40 GEMMs of the sustained and power files, each run back to back for
    1.5-2 s, are held out too: the model runs them at the clock its 700 W limit allows (only
    the bf16 8192^3 GEMM of the duty-cycle file fitted the limiter): 2.7% MAPE, all within
    11%."""
    from xpusim.validation import h200_gemm

    test = [p for p in h200_gemm.run(ctx) if p.split == "test"]
    assert len(test) == 182
    assert mape(test) < 0.065 and abs(bias(test)) < 0.02
    sustained = [p for p in test if p.case.startswith("sustained")]
    assert len(sustained) == 40 and all(abs(p.error) < 0.11 for p in sustained)
    assert mape(sustained) < 0.04 and abs(bias(sustained)) < 0.02


def test_h200_decode_steps_and_long_prefills_are_held_out_matches(ctx):
    """Nothing was fitted on attention or decode steps: the engine's Llama decode steps are
    within 5% of the CUDA-graph measurement, and the 12 non-causal d128 prefill attention rows
    of 2k-16k tokens (both attention files, timed for less than the power limiter's reaction:
    at the boost clock) are within 2.5% on average, with FA-3's imperfect overlap fitted on three
    other prefill rows (h200_attention_duty.csv at 25% duty). The largest, 64 heads x 16k
    (12.7 ms a call, ~0.1 s of calls), ran into the limiter: 14.41 ms, where the duty rows give
    12.72 ms at 25% and 14.57 ms at 100%; the model's boost time is 11% under it."""
    from xpusim.validation._own_gpu import attention_points, decode_step_points

    steps = decode_step_points(ctx, "h200", "h200")
    assert len(steps) == 6 and all(abs(p.error) < 0.05 for p in steps)
    long_prefill = [p for p in attention_points(ctx, "h200", "h200")
                    if p.case.startswith("prefill") and p.case.endswith("d128")
                    and int(p.case.split(" q")[1].split()[0]) >= 2048]
    assert len(long_prefill) == 12
    assert mape(long_prefill) < 0.025 and all(abs(p.error) < 0.12 for p in long_prefill)


def test_h200_prefill_steps_are_held_out_matches(ctx):
    """Causal prefills of 512-8192 tokens (second run of the script) within 7% of the engine."""
    from xpusim.validation._own_gpu import prefill_step_points

    steps = prefill_step_points(ctx, "h200", "h200")
    assert len(steps) == 6 and all(abs(p.error) < 0.07 for p in steps)


def test_h100_main_loop_efficiency_transfers_to_the_h200_at_boost(ctx):
    """The h100 preset's values (fitted on Vidur's per-kernel H100 timings) on our H200's burst
    grid: its tensor_efficiency (0.781 against the H200's own 0.810) transfers to the GEMMs of
    4096+ rows (bias within 1%): both are boost-clock measurements of the same GH100 SMs. Its
    gemm_fixed and overlap exponent do not: the GEMVs of 1-16 rows come out 9% slow."""
    from arch import load_arch
    from xpusim.validation._fit_gpu import _device
    from xpusim.validation._own_gpu import gemm_points

    g = load_arch("h100").gpu     # the preset's values, not copies typed in here
    h100_values = _device("h200", {"tensor_efficiency": g.tensor_efficiency,
                                   "gemm_fixed": g.gemm_fixed,
                                   "gemm_overlap_p": g.gemm_overlap_p,
                                   "tensor_efficiency_by_dtype": {"fp8": g.tensor_efficiency}})
    points = gemm_points(ctx, "h200", "h200", model=h100_values)
    rows = [int(p.case.split()[1].split("x")[0]) for p in points]
    big = [p for p, m in zip(points, rows, strict=True) if m >= 4096]
    thin = [p for p, m in zip(points, rows, strict=True) if m <= 16]
    assert abs(bias(big)) < 0.01 and mape(big) < 0.05
    assert bias(thin) > 0.06


def _attn(preset: str, **overrides):
    import dataclasses

    from arch.software import load_arch_with_software
    from sim.devices.base import device_for

    dev = device_for(load_arch_with_software(preset, None), "tile")
    ahw = dev._attn_hw("bf16")
    return dataclasses.replace(ahw, gpu=dataclasses.replace(ahw.gpu, **overrides))


def test_fa3_tiles_are_the_published_ones():
    """FlashAttention-3 hopper/tile_size.h, non-causal: (Br, Bc) by head dim and element size."""
    from sim.gpu.attention import fa3_blocks

    assert [fa3_blocks(d) for d in (64, 96, 128, 192, 256)] == \
        [(192, 192), (192, 144), (128, 176), (128, 128), (128, 80)]
    assert [fa3_blocks(d, 1) for d in (64, 96, 128, 192, 256)] == \
        [(192, 160), (192, 128), (128, 224), (128, 160), (128, 128)]


def test_overlapped_block_is_the_larger_of_mma_and_softmax():
    from sim.gpu.attention import SOFTMAX_ALU_OPS, block_compute

    ahw = _attn("h100")
    t_mma = 4.0 * 128 * 128 * 128 / ahw.sm_tensor
    scores = 128 * 128
    t_soft = scores * SOFTMAX_ALU_OPS / ahw.sm_alu + scores / ahw.sm_sfu
    assert block_compute(ahw, 128, 128, 128) == pytest.approx(t_mma + t_soft)
    perfect = _attn("h100", attention_overlap_p=0.0)
    assert block_compute(perfect, 128, 128, 128, overlap=True) == \
        pytest.approx(max(t_mma, t_soft))
    p = ahw.gpu.attention_overlap_p
    assert p == pytest.approx(2.241)     # the preset's imperfect overlap: the p-norm
    assert block_compute(ahw, 128, 128, 128, overlap=True) == \
        pytest.approx((t_mma ** p + t_soft ** p) ** (1 / p))


def test_hopper_prefill_is_fa3_tiles_by_hand():
    """b8 x 32 heads x 2048 tokens, d128 bf16 on the h100 preset: FA-3's 128 x 176 tiles, 4096
    CTAs of 128 rows in 32 waves of 132, 12 KV blocks of 176 each at the overlapped block time
    (compute-bound: the tiles come from L2), plus one DRAM latency per wave, the pipeline's
    fill and drain once (min(t_mma, t_softmax): FA-3's Algorithm 2) and the launch; FA-2's
    kernel (softmax after the MMAs) takes a third longer."""
    from sim.gpu.attention import SOFTMAX_ALU_OPS, AttentionShape, block_compute, flash2

    ahw = _attn("h100")
    hw = ahw.gpu
    assert hw.attention_overlap
    res = flash2(ahw, AttentionShape(8, 32, 32, 2048, 2048, 128))
    waves = math.ceil(8 * 32 * 16 / hw.sms)
    t_mma = 4.0 * 128 * 176 * 128 / ahw.sm_tensor
    t_soft = 128 * 176 * SOFTMAX_ALU_OPS / ahw.sm_alu + 128 * 176 / ahw.sm_sfu
    assert t_soft < t_mma           # the MMAs bound a block; the softmax is the fill
    expect = waves * (12 * block_compute(ahw, 128, 176, 128, overlap=True) + hw.hbm_latency) \
        + t_soft + hw.launch
    assert res["waves"] == waves == 32 and res["block"] == "128x176"
    assert res["time"] == pytest.approx(expect, rel=1e-12)
    fa2 = flash2(_attn("h100", attention_overlap=False), AttentionShape(8, 32, 32, 2048, 2048,
                                                                       128))
    assert fa2["block"] == "128x64" and fa2["time"] > 1.3 * res["time"]


def test_shared_tiles_stream_from_l2():
    """A K/V tile that ``readers`` CTAs walk together comes from DRAM once: with two readers
    each CTA streams at twice its lone DRAM share (H200: 2 x 4.416 TB/s / 132, below the L2's
    9.37 TB/s / 132); with 16 readers the L2's share per CTA binds (A100: 7.22 TB/s / 108, above
    the lone DRAM share 1.794 TB/s / 108 more than 3x)."""
    from sim.gpu.attention import _tile_rate
    from sim.gpu.memory import cta_rate

    inflight = 64e3
    h200 = _attn("h200").gpu
    lone = cta_rate(h200, 132, inflight)
    assert lone == pytest.approx(4.416e12 / 132)
    assert _tile_rate(h200, 132, inflight, 1) == lone
    assert _tile_rate(h200, 132, inflight, 2) == pytest.approx(2 * lone)
    a100 = _attn("a100").gpu
    assert _tile_rate(a100, 108, inflight, 16) == pytest.approx(7.22e12 / 108)
    assert _tile_rate(a100, 108, inflight, 16) > 3 * cta_rate(a100, 108, inflight)


def test_operand_copies_cover_several_l2s():
    spec = importlib.util.spec_from_file_location("measure_gpu", ROOT / "validation" /
                                                  "measure_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod._copies(1 << 20) == 64             # capped
    assert mod._copies(100 << 20) == 3            # 300 MiB >= 256 MiB
    assert mod._copies(1 << 30) == 1
    assert mod._copies(4 << 20) * (4 << 20) >= mod.COLD_BYTES


def test_h200_preset_holds_the_documented_fit(ctx):
    """The FITTED values in arch/presets/h200.yaml are what fit_own_gemm gives on the train rows."""
    from arch import load_arch
    from xpusim.validation._fit_gpu import fit_own_gemm

    fit = fit_own_gemm(ctx, "h200")
    g = load_arch("h200").gpu
    assert g.tensor_efficiency == pytest.approx(fit["gpu.tensor_efficiency"], abs=0.002)
    assert g.gemm_fixed == pytest.approx(fit["gpu.gemm_fixed"], abs=0.02e-6)
    assert g.gemm_overlap_p == pytest.approx(fit["gpu.gemm_overlap_p"], abs=0.02)


def test_h200_energy_derivation_is_exact_on_its_rows_and_holds_on_the_others(ctx):
    """The derived energy values make the idle and GEMV rows exact (to the preset's rounding);
    the boost lines of the duty-cycle file set the GEMM energies. The held-out rows, each run
    back to back at the power-limited clock: Llama decode and prefill steps within 6%, the
    GEMMs within 8% (bf16 GEMMs of 1024+ rows of the power sweep within 5%); the 1 GiB copy
    (writes, and a copy kernel at 2.8 TB/s) is 28% short."""
    from xpusim.validation._own_gpu import energy_points

    pts = {p.case: p for p in energy_points(ctx, "h200", "h200")}
    train = ("idle", "gemv bf16 16x28672x8192")
    for name in train:
        assert pts[name].split == "train" and abs(pts[name].error) < 0.005
    assert abs(pts["decode-step bf16 llama2-7b b8 ctx1024"].error) < 0.06
    assert abs(pts["prefill-step bf16 llama2-7b b1 p2048"].error) < 0.06
    gemms = [p for k, p in pts.items() if k.startswith("gemm ")]
    assert len(gemms) == 12 and all(p.split == "test" and abs(p.error) < 0.08 for p in gemms)
    big = [p for k, p in pts.items() if k.startswith("gemm bf16")
           and int(k.split()[2].split("x")[0]) >= 1024]
    assert len(big) == 7 and all(abs(p.error) < 0.05 for p in big)
    copy = pts["copy fp16 536870912"]
    assert copy.split == "test" and -0.30 < copy.error < -0.25


def test_h200_energy_by_hand_for_the_gemv(ctx):
    """GEMV 16 x 28672 x 8192 bf16: the model's joules = FLOPs x 0.886 pJ + DRAM bits x 13.86 pJ
    + L2 bits x 0.47 pJ + 125.7 W x its time."""
    from xpusim.commands.op import gemm_op
    from xpusim.validation._own_gpu import device

    dev = device("h200")
    cost = dev.estimate(gemm_op(16, 28672, 8192, 1, "bf16"))
    flops = 2 * 16 * 28672 * 8192
    by_hand = flops * 0.886e-12 + cost.dram_bytes * 8 * 13.86e-12 \
        + cost.detail["l2_bytes"] * 8 * 0.47e-12
    assert sum(cost.energy.values()) == pytest.approx(by_hand, rel=1e-9)
    assert dev.static_power() == 125.7


def test_h200_energy_values_are_the_documented_derivation(ctx):
    from arch import load_arch
    from xpusim.validation._fit_gpu import derive_energy

    got = derive_energy(ctx, "h200")
    e = load_arch("h200").energy
    assert e.memory["hbm"] == pytest.approx(got["energy.memory.hbm"], rel=0.005)
    assert e.compute["bf16"] == pytest.approx(got["energy.compute.bf16"], rel=0.005)
    assert e.static_power == pytest.approx(got["energy.static_power"], abs=0.05)


def _stack_device(tmp_path, preset: str, prefill: str):
    from arch.software import load_arch_with_software
    from sim.devices.base import device_for

    path = tmp_path / "stack.yaml"
    path.write_text(f"name: t\nsoftware:\n  prefill_attention: {{value: {prefill}, "
                    "source: test}\n")
    return device_for(load_arch_with_software(preset, str(path)), "tile")


def test_a_stack_may_keep_flashattention2_on_hopper(tmp_path):
    """software.prefill_attention: flash2 on the h100 prices the FA-2 kernel (128x64 blocks,
    softmax after the MMAs), as the vllm stack does; 'auto' gives FA-3 there."""
    from xpusim.commands.op import attention_op

    op = attention_op(8, 32, 32, 2048, 2048, 128, "bf16")
    fa2 = _stack_device(tmp_path, "h100", "flash2").estimate(op)
    fa3 = _stack_device(tmp_path, "h100", "auto").estimate(op)
    assert fa2.detail["policy"] == "flash2" and fa2.detail["block"] == "128x64"
    assert fa3.detail["policy"] == "flash3" and fa3.detail["block"] == "128x176"
    assert fa2.latency > 1.3 * fa3.latency
    from arch.software import load_arch_with_software
    from sim.devices.base import device_for

    vllm = device_for(load_arch_with_software("h100", "vllm"), "tile")
    assert vllm.estimate(op).latency == fa2.latency


def test_flash3_on_a_gpu_without_it_is_refused(tmp_path):
    from sim.devices.base import SimError

    with pytest.raises(SimError, match="prefill_attention: flash3 needs gpu.attention_overlap"):
        _stack_device(tmp_path, "a100", "flash3")


def test_energy_derivation_refuses_rows_that_give_no_positive_energy(tmp_path):
    """Train rows whose joules are below the static power's give a one-line error naming the
    power file, not a division by zero or negative energies."""
    from workloads.errors import WorkloadError
    from xpusim.validation._fit_gpu import derive_energy

    (tmp_path / "h200").mkdir()
    (tmp_path / "h200" / "h200_power.csv").write_text(
        "workload,dtype,shape,power_w_median,time_per_call_s\n"
        "idle,,,900,\n"
        "gemv,bf16,16x28672x8192,690,1e-4\n"
        "gemm,bf16,8192x8192x8192,692,1.66e-3\n")
    (tmp_path / "h200" / "h200_dvfs.csv").write_text(
        "dtype,shape,duty,power_w_median,time_per_call_s,sm_clock_mhz_min,sm_clock_mhz_max\n"
        + "".join(f"{dt},8192x8192x8192,{d},{900 + 800 * d},{t},1980,1980\n"
                  for dt, t in (("bf16", 1.4e-3), ("fp8", 7.7e-4)) for d in (0.1, 0.5)))
    ctx = ValidationContext(tmp_path, project_data=tmp_path)
    with pytest.raises(WorkloadError, match="no positive energy per bit") as exc:
        derive_energy(ctx, "h200")
    assert "\n" not in str(exc.value)


def test_unknown_measurement_part_is_one_line_exit_2(capsys):
    spec = importlib.util.spec_from_file_location("measure_gpu", ROOT / "validation" /
                                                  "measure_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--tag", "x", "--only", "gemm,gemms"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gemms" in err and "power_sweep" in err


@pytest.mark.parametrize("name, text, where", [
    ("h200_gemm.csv", "dtype,M,N,latency_s\nbf16,1,2,1e-5\n", "row 2 K: the column is missing"),
    ("h200_gemm.csv", "dtype,M,N,K,latency_s\nbf16,1,x,2,1e-5\n", "row 2 N: expected a positive"),
    ("h200_gemm.csv", "dtype,M,N,K,latency_s\nbf16,1,2,2,-1\n", "row 2 latency_s: expected a pos"),
    ("h200_gemm.csv", "dtype,M,N,K,latency_s\nbf17,1,2,2,1e-5\n", "row 2 dtype: unknown dtype"),
    ("h200_vector.csv", "op,rows,width,dtype,latency_s\nfoo,1,2,fp16,1e-5\n", "row 2 op: expected"),
    ("h200_power.csv", "workload,dtype,shape,power_w_median,time_per_call_s\n"
                       "gemm,bf16,8x8,500,1e-3\n", "row 2 shape: expected 3 integers"),
    # a decode step names its context (ctxN), a prefill step its prompt (pN)
    ("h200_power.csv", "workload,dtype,shape,power_w_median,time_per_call_s\n"
                       "decode-step,bf16,llama2-7b b8 p1024,500,1e-3\n",
     "row 2 shape: expected 'MODEL bBATCH ctxN' for a decode step"),
    ("h200_power.csv", "workload,dtype,shape,power_w_median,time_per_call_s\n"
                       "prefill-step,bf16,llama2-7b b0 p1024,500,1e-3\n",
     "row 2 shape: expected 'MODEL bBATCH pN' for a prefill step"),
    ("h200_dvfs.csv", "dtype,shape,duty_target,duty,time_per_call_s\nbf16,8x8,1.0,0.99,1e-3\n",
     "row 2 shape: expected 3 integers"),
])
def test_a_bad_measurement_row_is_a_one_line_error_naming_it(tmp_path, name, text, where):
    from workloads.errors import WorkloadError
    from xpusim.validation import _own_gpu

    (tmp_path / "h200").mkdir()
    (tmp_path / "h200" / name).write_text(text)
    ctx = ValidationContext(tmp_path, project_data=tmp_path)
    run = {"h200_gemm.csv": _own_gpu.gemm_points, "h200_vector.csv": _own_gpu.vector_points,
           "h200_power.csv": _own_gpu.energy_points, "h200_dvfs.csv": _own_gpu.dvfs_points}[name]
    with pytest.raises(WorkloadError, match=where) as exc:
        run(ctx, "h200", "h200")
    assert str(exc.value).startswith(str(tmp_path / "h200" / name)) and "\n" not in str(exc.value)


def test_a_bad_attention_duty_shape_is_a_one_line_error_naming_it(tmp_path):
    from workloads.errors import WorkloadError
    from xpusim.validation import _own_gpu

    (tmp_path / "h200").mkdir()
    (tmp_path / "h200" / "h200_attention.csv").write_text("phase,causal,latency_s\n")
    path = tmp_path / "h200" / "h200_attention_duty.csv"
    path.write_text("dtype,shape,duty_target,duty,time_per_call_s\n"
                    "bf16,prefill b8 h32 s2048 d128,0.25,0.25,1e-3\n")
    ctx = ValidationContext(tmp_path, project_data=tmp_path)
    with pytest.raises(WorkloadError, match="row 2 shape: expected 'prefill bB hH/G sS dD'") \
            as exc:
        _own_gpu.attention_points(ctx, "h200", "h200")
    assert str(exc.value).startswith(str(path)) and "\n" not in str(exc.value)
