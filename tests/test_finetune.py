"""Fine-tuning steps: the training trace's work by hand, ZeRO-Offload on a system, CXL tiers."""

import pytest

from arch import load_arch
from sim.devices.base import SimError
from sim.finetune import simulate_training
from sim.system.placement import parse_placement
from sim.system.topology import build_system
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.training import Training, trace_training, training_memory

GPT2 = get_model("gpt2-small")
SC = Scenario(batch=2, prompt_len=128, gen_len=1)


def _gemm_flops(trace, phase, suffixes=("",)):
    return sum(op.flops for op in trace.ops if op.phase == phase and op.kind == "matmul"
               and op.name.endswith(suffixes))


def test_backward_gemms_are_twice_the_forward():
    tr = trace_training(GPT2, SC, Training(offload="none"))
    fwd = _gemm_flops(tr, "forward")
    bwd = _gemm_flops(tr, "backward")
    assert bwd == pytest.approx(2 * fwd, rel=1e-12)        # dX and dW (or dA, dB) per GEMM
    rec = trace_training(GPT2, SC, Training(offload="none", recompute=True))
    assert _gemm_flops(rec, "recompute") == pytest.approx(fwd - _head_gemm(tr), rel=1e-12)


def _head_gemm(tr):
    return sum(op.flops for op in tr.ops if op.phase == "forward" and op.name == "lm_head")


def test_optimizer_steps_cover_every_parameter_once():
    tr = trace_training(GPT2, SC, Training(offload="optimizer"))
    steps = [op for op in tr.ops if op.name == "optimizer_step"]
    assert all(op.where == "cpu" and op.tensors == ("optimizer", "gradients") for op in steps)
    params = sum(op.compute.size["n"] for op in steps)
    # gpt2 ties the LM head to the embedding; the trace counts both matrices (head + table)
    tied = GPT2.vocab_size * GPT2.d_model if GPT2.param_count() < params else 0
    assert params - tied == pytest.approx(GPT2.param_count(), rel=0.01)
    # by default every step waits for the whole backward pass
    last_bwd = max(op.id for op in tr.ops if op.phase == "backward")
    assert all(last_bwd in op.deps for op in steps)


def test_training_memory_by_hand():
    need = training_memory(GPT2, SC, Training())
    p = GPT2.param_count()
    assert need["weights"] == 2 * p and need["gradients"] == 2 * p
    assert need["optimizer"] == 12 * p          # fp32 master weights, momentum, variance


@pytest.fixture(scope="module")
def offload():
    arch = load_arch("spr-a100")
    sc = Scenario(batch=1, prompt_len=512, gen_len=1)
    return simulate_training(arch, get_model("llama2-7b"), sc, Training(offload="optimizer"))


def test_zero_offload_moves_gradients_and_weights(offload):
    trs = offload.transfers
    p = get_model("llama2-7b").param_count()
    grads = trs[trs["tensor"] == "gradients"]
    ups = trs[trs["tensor"] == "weights"]
    assert grads["bytes"].sum() == pytest.approx(2 * p, rel=0.01)     # fp16 gradients D2H
    assert ups["bytes"].sum() == pytest.approx(2 * p, rel=0.01)       # fp16 weights H2D
    assert set(grads["dst"]) == {"host_ddr"} and set(ups["dst"]) == {"gpu0.hbm"}
    assert set(offload.invariants.values()) == {"passed"}


def test_cpu_adam_is_bound_by_the_tier_holding_its_states(offload):
    ops = offload.ops
    opt = ops[ops["op"] == "optimizer_step"]
    assert set(opt["stream"]) == {"cpu0.compute"}
    ddr = build_system(load_arch("spr-a100")).tiers["host_ddr"]
    # 28 B per parameter (fp32 w, m, v read and written, fp16 gradient read, fp16 copy written)
    n = sum(int(c) for c in opt["bytes"] / 28)
    assert opt["latency_s"].sum() >= 28 * n / ddr.bandwidth * (1 - 1e-9)
    # bandwidth-bound: at most the host-DDR share that concurrent traffic takes from it — the
    # fp16-weight uploads and late gradient writes, 2 + 2 of the 28 B per parameter
    assert opt["latency_s"].sum() <= (28 + 2 + 2) * n / ddr.bandwidth * (1 + 1e-9)
    # waits for the whole backward pass, then runs layer after layer on the host
    bwd_end = ops[ops["phase"] == "backward"]["end_s"].max()
    assert opt["start_s"].min() >= bwd_end
    assert offload.metrics["step_s"] >= bwd_end + opt["latency_s"].sum() * (1 - 1e-9)


def test_optimizer_on_cxl_is_slower_by_the_bandwidth_ratio():
    from xpusim.reproductions.cxl_finetune import _arch, _optimizer_step

    arch = _arch("spr-a100-cxl1", 128)
    n = 50_000_000
    t_ddr, t_cxl = _optimizer_step(arch, n, "host_ddr"), _optimizer_step(arch, n, "cxl0")
    tiers = build_system(arch).tiers
    # DDR: all 28 B/param on host_ddr. CXL: the 24 B/param of states (read fraction 1/2) on the
    # card at its mix efficiency (interpolated from the measured table), the rest on DDR
    eff = tiers["cxl0"].efficiency_at(0.5)
    assert t_ddr == pytest.approx(28 * n / tiers["host_ddr"].bandwidth, rel=1e-9)
    assert t_cxl == pytest.approx(24 * n / (tiers["cxl0"].peak_bandwidth * eff), rel=1e-9)


def test_offload_needs_a_host_cpu():
    with pytest.raises(SimError, match="no host CPU"):
        simulate_training(load_arch("dgx-a100"), GPT2, SC, Training(offload="optimizer"))


def test_priority_placement_spills_to_cxl_in_order():
    from xpusim.reproductions.cxl_finetune import _arch

    arch = _arch("spr-a100-cxl2", 64)
    sc = Scenario(batch=1, prompt_len=512, gen_len=1)
    r = simulate_training(arch, get_model("llama2-7b"), sc, Training(offload="full"),
                          placement=parse_placement(
                              "priority:optimizer,weights,activations,gradients>host_ddr,"
                              "cxl0|cxl1"))
    placed = r.inputs["placement"]
    assert placed["optimizer"]["host_ddr"] == pytest.approx(64 * 2**30, rel=1e-6)
    rest = placed["optimizer"]["cxl0"] + placed["optimizer"]["cxl1"]
    assert placed["optimizer"]["cxl0"] == pytest.approx(rest / 2, rel=1e-3)
    assert set(r.invariants.values()) == {"passed"}


def test_finetune_cli(capsys):
    import json

    from xpusim.cli import main

    code = main(["run", "--mode", "finetune", "--arch", "spr-a100-cxl1", "--model",
                 "gpt2-small", "--seq", "256", "--batch", "2", "--recompute", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens_per_s"] == pytest.approx(512 / out["step_s"])
    assert out["recompute_s"] > 0 and out["optimizer_s"] > 0


def test_recompute_keeps_only_each_layer_input():
    # with recompute only each layer's input (b x s x d_model, fp16) is kept for backward:
    # gpt2-small, 12 layers of d_model 768, batch 2 x 128 tokens
    need = training_memory(GPT2, SC, Training(recompute=True))
    assert need["activations"] == 12 * 2 * 128 * 768 * 2


def test_gradients_take_the_gradient_dtype():
    # fp32 gradients of fp16 weights: 4 B per parameter (ZeRO-Offload keeps fp16: 2 B)
    p = GPT2.param_count()
    assert training_memory(GPT2, SC, Training(grad_dtype="fp32"))["gradients"] == 4 * p
    assert training_memory(GPT2, SC, Training(grad_dtype="fp16"))["gradients"] == 2 * p


def test_tensor_parallel_splits_the_model_state_per_device():
    # at tp 2 each device holds half of every parameter's weight, gradient and Adam state
    p = GPT2.param_count()
    sc = Scenario(batch=2, prompt_len=128, gen_len=1, tp=2)
    need = training_memory(GPT2, sc, Training())
    assert (need["weights"], need["gradients"], need["optimizer"]) == (p, p, 6 * p)


def test_without_recompute_every_op_output_of_a_layer_is_kept():
    # gpt2-small (h = 768, a = 12 heads), b = 2, s = 128, fp16. Kept per layer, in b s h
    # units: ln 1, qkv 3, attention output 1, o_proj 1, residual 1, ln 1, ffn up 4, GELU 4,
    # ffn down 1, residual 1 = 18; plus the scores and their softmax, a b s^2 each. A
    # layer norm's or softmax's inner steps (mean, variance, max, exp, sum) are not kept.
    b, s, h, a = 2, 128, 768, 12
    need = training_memory(GPT2, SC, Training())
    assert need["activations"] == 12 * 2 * (18 * b * s * h + 2 * a * b * s * s)
