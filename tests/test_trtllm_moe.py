"""The TensorRT-LLM v0.9 stacks price Mixtral's expert GEMMs as the CUTLASS SM80 grouped GEMM
(``software.moe_gemm: cutlass-sm80``, sim/gpu/moe.py) in the engine a user runs (issue 17)."""

from pathlib import Path

import pytest

from arch.software import load_arch_with_software
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario
from xpusim.validation import PROJECT_DATA

STACK = str(PROJECT_DATA / "trtllm" / "gptsession-v0.9.yaml")
#: Mixtral-8x7B prefill of 2048 tokens at TP2, all tokens to experts 0 and 1 (the suite's rows)
SC = Scenario(batch=1, prompt_len=2048, gen_len=1, tp=2, attention="flash",
              expert_counts=(1, 1, 0, 0, 0, 0, 0, 0))


def _stack(tmp_path, moe_gemm):
    """The v0.9 stack with ``software.moe_gemm`` set to ``moe_gemm``."""
    text = Path(STACK).read_text()
    assert text.count("moe_gemm: {value: cutlass-sm80") == 1
    path = tmp_path / f"stack-{moe_gemm}.yaml"
    path.write_text(text.replace("moe_gemm: {value: cutlass-sm80",
                                 f"moe_gemm: {{value: {moe_gemm}"))
    return str(path)


def _expert_seconds(arch, stack):
    """Expert and dense GEMM seconds at the boost clock (power limit off: a kernel family that
    draws more power would otherwise slow the dense layers too)."""
    from sim.gpu.power_cap import with_power_limit

    a = with_power_limit(load_arch_with_software(arch, stack), 0.0)
    ops = simulate(a, get_model("mixtral-8x7b"), SC).ops
    experts = ops[ops["op"].str.match(r"expert\d+_(up|down)")]
    dense = ops[ops["op"].isin(["qkv_proj", "o_proj"])]
    return experts["alone_s"].sum(), dense["alone_s"].sum()


def test_stack_sets_the_sm80_moe_gemm():
    assert load_arch_with_software("h100", STACK).sections["software"].moe_gemm == "cutlass-sm80"
    assert load_arch_with_software("h100").sections.get("software") is None or \
        load_arch_with_software("h100").sections["software"].moe_gemm == "cublas"


def test_h100_expert_gemms_at_the_mma_sync_rate(tmp_path):
    """2048-row expert GEMMs are compute-bound: the SM80 kernel takes ~1.5x (1 / (2/3)) the
    cuBLAS-modelled time on H100; the dense layers' GEMMs do not move."""
    sm80, dense_sm80 = _expert_seconds("dgx-h100", STACK)
    native, dense_native = _expert_seconds("dgx-h100", _stack(tmp_path, "cublas"))
    assert sm80 / native == pytest.approx(1.5, rel=0.06)
    assert dense_sm80 == dense_native


def test_a100_expert_gemms_barely_move(tmp_path):
    """On A100 the SM80 kernel is the native family: only the tile set differs (<5%)."""
    sm80, _ = _expert_seconds("dgx-a100", STACK)
    native, _ = _expert_seconds("dgx-a100", _stack(tmp_path, "cublas"))
    assert sm80 / native == pytest.approx(1.0, abs=0.05)
