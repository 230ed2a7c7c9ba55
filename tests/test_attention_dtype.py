"""``software.attention_dtype``: fused attention kernels at their own precision (FP8 engines
whose attention plugin runs FP16, e.g. TensorRT-LLM v0.9 ``--gpt_attention_plugin float16``)."""

from __future__ import annotations

import pytest

from arch import SpecError, load_arch
from arch.sections.gpu import SoftwareSpec
from arch.software import load_arch_with_software, load_stack
from sim.devices.base import device_for
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import ATTENTION
from workloads.tracer import trace_model

# H100 SXM dense tensor peaks (NVIDIA H100 datasheet) and the preset's other rates
P_FP16, P_FP8 = 989.4e12, 1978.9e12
SMS, CLOCK, TENSOR_EFF = 132, 1.83e9, 0.781
TENSOR_EFF_FP8 = 0.714   # h100 preset: gpu.tensor_efficiency_by_dtype.fp8 (fp8's main loop)
FP32_VECTOR = 66.9e12
OVERLAP_P = 2.241      # h100 preset: gpu.attention_overlap_p


def _stack(tmp_path, **fields) -> str:
    path = tmp_path / "stack.yaml"
    body = "".join(f"  {k}: {{value: {v}, source: test}}\n" for k, v in fields.items())
    path.write_text(f"name: t\nsoftware:\n{body}")
    return str(path)


def _attention_op(model: str, dtype: str, phase: str, batch: int = 1, prompt: int = 2048):
    sc = Scenario(batch=batch, prompt_len=prompt, gen_len=2, dtype=dtype, kv_dtype=dtype,
                  attention="flash")
    trace = trace_model(get_model(model), sc, phases=(phase,))
    return next(op for op in trace.ops if op.kind == ATTENTION)


def test_default_is_the_models_dtype():
    assert SoftwareSpec().attention_dtype == "model"
    assert device_for(load_arch("h100"), "tile").attention_dtype == ""
    vllm = device_for(load_arch_with_software("dgx-h100", "vllm"), "tile")
    assert vllm.attention_dtype == ""


def test_fp16_attention_of_an_fp8_prefill_on_h100_by_hand(tmp_path):
    """Llama-2-7B, one 2,048-token prompt, FP8 run, on Hopper's overlapped kernel with FA-3's
    non-causal tiles at d = 128 (hopper/tile_size.h): 128 x 176 for 16-bit Q/K, 128 x 224 for FP8.
    32 heads x 16 query blocks = 512 CTAs; 32 KB of Q and the double-buffered FP8 K/V tiles leave
    one CTA per SM: 4 waves (132, 132, 132, 116). Per KV block the two MMAs (4 x 128 x Bc x 128
    FLOPs at the SM's share of 0.781 x peak, 0.714 x the FP8 peak) and the online softmax (4
    fp32 ops per score on 256 FMA lanes, 1 exp on 16 SFUs) overlap imperfectly: the block takes
    their p-norm (p = 2.241, gpu.attention_overlap_p). In FP16 the MMAs dominate (12 blocks of
    176); in FP8 they take about half as long and the exponentials dominate (10 blocks of 224),
    as FA-3 (Shah et al. 2024) reports for FP8. The kernel adds its pipeline's fill and drain
    once (FA-3's Algorithm
    2: the first block's QK^T and softmax and the last block's PV run alone), the smaller of the
    two. Compute-bound at both (the K/V tiles come from L2)."""
    op = _attention_op("llama2-7b", "fp8", "prefill")
    fp8_dev = device_for(load_arch("h100"), "tile")
    fp16_dev = device_for(load_arch_with_software("h100", _stack(tmp_path, attention_dtype="fp16")),
                          "tile")
    assert fp8_dev.g.tensor_flops["fp16"] == P_FP16 and fp8_dev.g.tensor_flops["fp8"] == P_FP8
    # the hand count's rates are the preset's (a refit shows up here, not as a float mismatch)
    g = fp8_dev.g
    assert (g.tensor_efficiency, g.tensor_efficiency_by_dtype["fp8"], g.attention_overlap_p,
            g.sm_count) == (TENSOR_EFF, TENSOR_EFF_FP8, OVERLAP_P, SMS)

    def t_soft(bc: int) -> float:
        return 128 * bc * 4 / (FP32_VECTOR / 2 / SMS) + 128 * bc / (16 * CLOCK)

    def t_mma(bc: int, peak: float) -> float:
        eff = TENSOR_EFF_FP8 if peak == P_FP8 else TENSOR_EFF
        return 4 * 128 * bc * 128 / (peak * eff / SMS)

    def block(bc: int, peak: float) -> float:
        return (t_mma(bc, peak) ** OVERLAP_P + t_soft(bc) ** OVERLAP_P) ** (1 / OVERLAP_P)

    assert t_soft(176) < t_mma(176, P_FP16) and t_mma(224, P_FP8) < t_soft(224)
    # launch; per wave the blocks and a memory latency; the fill and drain once
    fp16_by_hand = 2e-6 + 4 * (12 * block(176, P_FP16) + 0.5e-6) + t_soft(176)
    fp8_by_hand = 2e-6 + 4 * (10 * block(224, P_FP8) + 0.5e-6) + t_mma(224, P_FP8)
    assert fp16_by_hand == pytest.approx(110.89e-6, rel=1e-3)
    assert fp8_by_hand == pytest.approx(81.78e-6, rel=1e-3)
    fp16, fp8 = fp16_dev.estimate(op), fp8_dev.estimate(op)
    assert fp16.latency == pytest.approx(fp16_by_hand, rel=1e-9)
    assert fp8.latency == pytest.approx(fp8_by_hand, rel=1e-9)
    assert fp16.detail["policy"] == "flash3" and fp16.detail["block"] == "128x176"
    assert fp8.detail["block"] == "128x224"


def test_decode_reads_the_fp8_cache_and_fp16_queries(tmp_path):
    """Mistral-7B decode, batch 64 at 2,049 cached tokens, masked MHA: the cache stays FP8 (the
    run's --kv-dtype), Q and O move at FP16: DRAM bytes = K+V x 1 B + Q+O x 2 B."""
    op = _attention_op("mistral-7b", "fp8", "decode", batch=64)
    dev = device_for(load_arch_with_software(
        "h100", _stack(tmp_path, attention_dtype="fp16", decode_attention="mmha")), "tile")
    kv = 2 * 64 * 8 * 2049 * 128 * 1
    qo = 2 * 64 * 32 * 1 * 128 * 2
    assert dev.estimate(op).dram_bytes == pytest.approx(kv + qo)


def test_fp16_model_unchanged_by_an_fp16_attention_stack(tmp_path):
    """The A100/H100 FP16 rows of the TensorRT-LLM suite: the key changes nothing there."""
    op = _attention_op("llama2-7b", "fp16", "prefill")
    plain = device_for(load_arch("h100"), "tile").estimate(op)
    keyed = device_for(load_arch_with_software("h100", _stack(tmp_path, attention_dtype="fp16")),
                       "tile").estimate(op)
    assert keyed.latency == plain.latency and keyed.dram_bytes == plain.dram_bytes


def test_bad_attention_dtype_is_a_one_line_error(tmp_path, capsys):
    from xpusim.cli import main

    bad = _stack(tmp_path, attention_dtype="fp7")
    with pytest.raises(SpecError, match=r"software.attention_dtype: expected one of .*'fp8'"):
        load_stack(bad)
    rc = main(["run", "--arch", "h100", "--software", bad, "--model", "gpt2-small",
               "--json", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "software.attention_dtype" in err
    assert "Traceback" not in err
