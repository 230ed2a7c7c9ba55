"""NPU+PIM and xPU+PIM co-processing as concurrent engine streams sharing the memory: hand
counts of the contention, the sub-batch interleaving order, and system runs that overlap."""

from __future__ import annotations

import numpy as np
import pytest

from arch import load_arch
from sim.devices.base import Cost
from sim.engine import Engine
from sim.run import simulate
from sim.serving.interleave import ProgramCosts, StageTimes, run_iteration
from sim.system.plan import Plan
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import Op, Trace
from workloads.tracer import trace_model


def _run(tasks: list[tuple[str, Cost, tuple[int, ...]]], bandwidth: float) -> np.ndarray:
    """End times of ``(stream, cost, deps)`` tasks on streams sharing one memory."""
    ops = [Op(i, f"t{i}", "program", "decode", 0, 1, None, 1, deps, device=stream,
              flops=0.0, bytes=0.0) for i, (stream, _, deps) in enumerate(tasks)]
    dev = ProgramCosts([c for _, c, _ in tasks])
    streams = {op.device: dev for op in ops}
    plan = Plan(streams=streams, resources={"mem": bandwidth},
                memory_of={s: "mem" for s in streams})
    return Engine(streams).run(Trace(ops), plan).end


@pytest.mark.parametrize("pim_s, npu_end", [(2.0, 4.0), (7.0, 6.0)])
def test_npu_op_under_pim_takes_the_contended_closed_form(pim_s, npu_end):
    # NPU op: 3 s alone, 300 B at 100 B/s (S = 3 s; Sc = 6 s with half the bandwidth);
    # PIM op of P s reserves half the bandwidth: P < Sc gives P + (1 - P/Sc) S, else Sc
    end = _run([("npu", Cost(3.0, 0.0, "npu", dram_bytes=300.0), ()),
                ("pim", Cost(pim_s, 0.0, "pim", detail={"memory_share": 0.5}), ())], 100.0)
    s, sc = 3.0, 6.0
    closed = pim_s + (1 - pim_s / sc) * s if pim_s < sc else sc
    assert end[0] == pytest.approx(closed) == pytest.approx(npu_end)
    assert end[1] == pytest.approx(pim_s)           # PIM's own bytes stay in the banks


def test_coprocessed_pair_ends_when_the_arrays_have_delivered_both_shares():
    # xPU share 1 s with 100 B, PIM share 1 s with 300 B, arrays 200 B/s: processor sharing
    # is work-conserving, so the pair ends at max(1, 1, 400 / 200) = 2 s; the next op after
    end = _run([("xpu", Cost(1.0, 0.0, "xpu", dram_bytes=100.0), ()),
                ("pim", Cost(1.0, 0.0, "pim", dram_bytes=300.0), ()),
                ("xpu", Cost(0.5, 0.0, "xpu"), (0, 1))], 200.0)
    assert end[0] == pytest.approx(1.0) and end[1] == pytest.approx(2.0)
    assert end[2] == pytest.approx(2.5)


def test_two_sub_batches_match_the_stage_program_by_hand():
    # per sub-batch and layer: QKV 1 s (100 B), MHA 2 s taking half the 100 B/s, Proj/FFN 2 s
    # (200 B). Stages (artifact): A QKV#1 = 1; B QKV#2 under MHA#1: 2 (100 B at 50 B/s);
    # E Proj/FFN#1 under MHA#2: 2 s at half + 100 B at full = 3; F Proj/FFN#2 = 2. Total 8.
    w = StageTimes(pre=1.0, logit=1.0, softmax=0.0, attend=1.0, post=2.0, pre_bytes=100.0,
                   post_bytes=200.0, pim_share=0.5)
    res = run_iteration(1, [w, w], blocked=False, bandwidth=100.0)
    assert res.seconds == pytest.approx(8.0)
    assert res.pim_busy == pytest.approx(4.0) and res.npu_busy == pytest.approx(1 + 2 + 3 + 2)
    # without the command-bus share: B = max(1, 2) = 2, E = 2, F = 2 -> 7
    free = run_iteration(1, [StageTimes(1.0, 1.0, 0.0, 1.0, 2.0, 100.0, 200.0, 0.0)] * 2,
                         blocked=False, bandwidth=100.0)
    assert free.seconds == pytest.approx(7.0)
    # single row buffers: everything in turn, 2 x (1 + 2 + 2)
    assert run_iteration(1, [w, w], blocked=True).seconds == pytest.approx(10.0)


def test_unit_cuts_interleave_sub_batches_across_layers():
    sc = Scenario(batch=4, prompt_len=8, gen_len=2, microbatches=2)
    trace = trace_model(get_model("gpt2-small"), sc, phases=("decode",),
                        units=("qk", "softmax", "av"))
    seq = [(op.name, op.layer, op.microbatch) for op in trace.ops if op.layer in (0, 1)]
    pre = ["ln_attn", "qkv_proj"]
    attn = ["qk", "softmax", "av"]
    post = ["o_proj", "residual_attn", "ln_ffn", "ffn_up", "ffn_act", "ffn_down",
            "residual_ffn"]
    want = [(n, 0, k) for k in (0, 1) for n in pre] + [(n, 0, k) for k in (0, 1) for n in attn]
    for k in (0, 1):  # layer 0's projections run on into layer 1's QKV, per sub-batch
        want += [(n, 0, k) for n in post] + [(n, 1, k) for n in pre]
    want += [(n, 1, k) for k in (0, 1) for n in attn]
    assert seq[:len(want)] == want
    # each sub-batch stays one dependency chain
    for op in trace.ops:
        assert all(trace.ops[d].microbatch == op.microbatch for d in op.deps)


def _overlap(table, a: str, b: str) -> float:
    """Seconds during which an op of stream ``a`` and one of stream ``b`` both run."""
    x = table[table["stream"] == a]
    y = table[table["stream"] == b]
    s0, e0 = x["start_s"].to_numpy()[:, None], x["end_s"].to_numpy()[:, None]
    s1, e1 = y["start_s"].to_numpy()[None, :], y["end_s"].to_numpy()[None, :]
    return float(np.clip(np.minimum(e0, e1) - np.maximum(s0, s1), 0, None).sum())


def test_neupims_run_overlaps_pim_attention_with_npu_projections():
    model = get_model("gpt2-small")
    two = simulate(load_arch("neupims"), model,
                   Scenario(batch=8, prompt_len=32, gen_len=3, microbatches=2)).ops
    assert set(two["stream"]) == {"npu_pim0.compute", "npu_pim0.pim"}
    pim = two[two["stream"] == "npu_pim0.pim"]
    assert set(pim["op"]) == {"qk", "softmax", "av"} and set(pim["phase"]) == {"decode"}
    assert _overlap(two, "npu_pim0.compute", "npu_pim0.pim") > 0
    assert two["end_s"].max() < two["latency_s"].sum()
    # one sub-batch is one chain: nothing can overlap, so dual row buffers time as blocked
    sc = Scenario(batch=8, prompt_len=32, gen_len=3)
    one = simulate(load_arch("neupims"), model, sc)
    naive = simulate(load_arch("neupims-naive"), model, sc)
    assert set(naive.ops["stream"]) == {"npu_pim0.compute"}
    assert one.metrics["latency_s"] == pytest.approx(naive.metrics["latency_s"], rel=1e-12)


def test_duplex_run_coprocesses_on_concurrent_streams():
    model = get_model("gpt2-small")
    sc = Scenario(batch=8, prompt_len=32, gen_len=3)
    res = simulate(load_arch("duplex"), model, sc)
    t = res.ops.set_index("id")
    twins = t[t["op"].str.endswith("@pim")]
    assert len(twins) == 2 * model.n_layers * (sc.gen_len - 1)   # qk and av of every step
    assert set(twins["stream"]) == {"xpu_pim0.pim"}
    for i, row in twins.iterrows():
        x = t.loc[i - 1]                                # the xPU share precedes its twin
        assert x["op"] + "@pim" == row["op"] and x["stream"] == "xpu_pim0.compute"
        assert x["start_s"] == row["start_s"]          # both shares start together
    # the shares split the op's work: totals equal the unsplit trace's
    whole = trace_model(model, sc)
    assert res.ops["flops"].sum() == pytest.approx(whole.total_flops, rel=1e-12)
    assert res.ops["bytes"].sum() == pytest.approx(whole.total_bytes, rel=1e-12)


def test_duplex_layer_is_the_sum_of_its_ops_and_pairs_by_hand():
    from sim.devices.xpu_pim import XpuPimDevice
    from sim.serving.layer_costs import LayerCosts

    dev = XpuPimDevice(load_arch("duplex"), "tile")
    layer = LayerCosts(dev, get_model("mixtral-8x7b"), 4).layer(32, 384)
    bw = dev.unit_memory_bandwidth()
    expect = 0.0
    for name, c in layer.ops.items():
        if name.endswith("@pim"):
            x = layer.ops[name[:-4]]
            # both shares start together and share the arrays by processor sharing
            expect += max(x.latency, c.latency, (x.dram_bytes + c.dram_bytes) / bw)
        elif name + "@pim" not in layer.ops:
            expect += c.latency
    assert {"qk@pim", "av@pim", "ffn_up@pim", "ffn_down@pim"} <= set(layer.ops)
    assert layer.seconds == pytest.approx(expect, rel=1e-9)


def test_one_program_trace_serves_every_iteration_of_a_shape():
    """The programs of an iteration depend on its layers, sub-batches and buffering only: one
    trace per shape (2 x (1 + 2 x 3) = 14 programs for 3 layers and 2 sub-batches, by hand),
    reused without carrying anything from one iteration into the next."""
    from sim.serving.interleave import program_trace

    w = StageTimes(pre=1.0, logit=1.0, softmax=0.0, attend=1.0, post=2.0, pre_bytes=100.0,
                   post_bytes=200.0, pim_share=0.5)
    v = StageTimes(pre=0.5, logit=2.0, softmax=0.25, attend=0.5, post=1.0, pre_bytes=50.0,
                   post_bytes=300.0, pim_share=0.25)
    program_trace.cache_clear()
    first = run_iteration(3, [w, v], blocked=False, bandwidth=100.0)
    again = run_iteration(3, [v, w], blocked=False, bandwidth=100.0)   # the same trace
    trace, pim = program_trace(3, 2, False)
    assert program_trace.cache_info().hits >= 2 and len(trace.ops) == 14 and pim.sum() == 6
    program_trace.cache_clear()
    fresh = run_iteration(3, [v, w], blocked=False, bandwidth=100.0)
    assert again == fresh and first != fresh
