"""NeuPIMs: batching with paged KV and placement, the interleaved iteration, the reproduction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sim.serving.batching import BatchingConfig, IterationBatcher
from sim.serving.decode import split_balanced, split_halves
from sim.serving.interleave import StageTimes, run_iteration
from sim.serving.lengths import DATASETS, sample


def test_lengths_have_published_means():
    ins, outs = sample(DATASETS["sharegpt"], 20000, seed=3)
    assert abs(ins.mean() - 80) / 80 < 0.03 and abs(outs.mean() - 296) / 296 < 0.03
    assert (ins + outs <= 1024).all() and ins.min() >= 1
    a, _ = sample(DATASETS["alpaca"], 1000, seed=3)
    b, _ = sample(DATASETS["alpaca"], 1000, seed=3)
    assert (a == b).all()


def _run(placement: str, seed: int = 0):
    ins, outs = sample(DATASETS["sharegpt"], 3000, seed=seed)
    cfg = BatchingConfig(batch=256, channels=32, page_tokens=16, kv_bytes_per_token=131072,
                         kv_capacity_bytes=20e9, placement=placement)
    b = IterationBatcher(cfg, ins, outs)
    worst = []
    for _ in range(400):
        b.admit()
        ctx, chan = b.snapshot()
        load = np.bincount(chan, weights=ctx, minlength=32)
        worst.append(load.max() / load.mean())
        b.step()
        b.invariant()
    return b, float(np.mean(worst[100:]))


def test_batcher_conserves_requests_and_greedy_balances():
    rr, imb_rr = _run("round_robin")
    gr, imb_gr = _run("greedy")
    assert rr.finished > 0 and gr.finished > 0
    assert rr.tokens == gr.tokens  # same lengths, same slots: same tokens either way
    assert imb_gr < imb_rr          # min-load placement flattens the slowest channel


def test_kv_capacity_limits_admission():
    ins = np.full(100, 900)
    outs = np.full(100, 100)
    cfg = BatchingConfig(batch=64, channels=4, page_tokens=16, kv_bytes_per_token=1e5,
                         kv_capacity_bytes=4 * 16 * 1e5 * 200, placement="greedy")
    b = IterationBatcher(cfg, ins, outs)
    b.admit()
    assert len(b.active()) < 64 and b.blocked > 0
    assert (b.chan_pages <= cfg.pages_per_channel).all()


def test_split_balanced_halves_each_channel():
    rng = np.random.default_rng(0)
    ctx = rng.integers(10, 1000, 512)
    chan = rng.integers(0, 32, 512)
    lab = split_balanced(ctx, chan)
    for c in range(32):
        a = ctx[(chan == c) & (lab == 0)].sum()
        b = ctx[(chan == c) & (lab == 1)].sum()
        assert abs(a - b) <= ctx[chan == c].max()


def test_split_halves_follows_channel_order():
    chan = np.array([0, 1, 0, 0, 1, 2, 0, 2, 2])
    lab = split_halves(chan)
    # channel 0 (4 requests): first two in batch order -> 0; channel 1 (2): one each;
    # channel 2 (3, odd, first odd channel rounds up): two -> 0
    assert lab.tolist() == [0, 0, 0, 1, 1, 0, 1, 0, 1]
    # two odd channels: the first rounds up (2 of 3 -> 0), the next down (1 of 3 -> 0)
    assert split_halves(np.array([0, 0, 0, 1, 1, 1])).tolist() == [0, 0, 1, 0, 1, 1]


def test_a_request_takes_pages_for_its_prompt_and_the_next_token():
    """A request with a ``ctx``-token prompt holds ceil((ctx + 1) / page_tokens) pages from
    admission (the token it decodes next needs a slot) and a new page each time its context
    plus that token passes a page boundary."""
    cfg = BatchingConfig(batch=2, channels=1, page_tokens=16, kv_bytes_per_token=1.0,
                         kv_capacity_bytes=1e6, placement="round_robin")
    b = IterationBatcher(cfg, np.array([16, 14]), np.array([5, 5]))
    b.admit()
    assert b.pages.tolist() == [2, 1]            # 17 / 16 -> 2 pages; 15 / 16 -> 1
    b.step()                                     # contexts 17 and 15: 18 and 16 slots
    assert b.pages.tolist() == [2, 1]
    b.step()                                     # contexts 18 and 16: 19 and 17 slots
    assert b.pages.tolist() == [2, 2]
    assert b.chan_pages.tolist() == [4]


def test_stages_are_barriers_and_softmax_stays_off_the_arrays():
    # NPU program 3 s per sub-batch and layer, PIM program 1 s: interleaving is NPU-bound and
    # every steady-state stage takes max(NPU, PIM) = the NPU work
    w = StageTimes(pre=1.0, logit=0.25, softmax=0.5, attend=0.25, post=2.0)
    two = run_iteration(3, [w, w], blocked=False)
    assert two.npu_busy == pytest.approx(2 * 3 * 3.0)          # softmax is not NPU time
    assert two.pim_busy == pytest.approx(2 * 3 * 1.0)          # it belongs to the PIM program
    assert two.seconds == pytest.approx(two.npu_busy)          # PIM always hidden
    # PIM-bound: each stage waits for the slower side
    p = StageTimes(pre=0.5, logit=1.0, softmax=0.0, attend=1.0, post=0.5)
    slow = run_iteration(2, [p, p], blocked=False)
    assert slow.seconds == pytest.approx(0.5 + 2.0 + 2.0 + 2.0 + 2.0 + 0.5)


def test_interleaving_overlaps_npu_and_pim():
    w = StageTimes(pre=1.0, logit=1.0, softmax=0.0, attend=1.0, post=1.0)
    one = run_iteration(4, [w], blocked=False)
    assert one.seconds == pytest.approx(4 * 4.0)
    two = run_iteration(4, [w, w], blocked=False)
    assert two.seconds < 2 * one.seconds * 0.8          # NPU and PIM work at the same time
    assert two.seconds >= max(two.npu_busy, two.pim_busy)
    blocked = run_iteration(4, [w, w], blocked=True)
    assert blocked.seconds == pytest.approx(2 * one.seconds)  # single row buffer: no overlap


def test_tail_runs_once_after_the_last_layer():
    """One sub-batch, 2 layers, every stage 1 s (MHA: logit + attend = 2 s), an LM head of
    3 s: QKV 1, MHA 2, Proj/FFN + next QKV 2, MHA 2, Proj/FFN 1 + head 3 = 11 s."""
    w = StageTimes(pre=1.0, logit=1.0, softmax=0.0, attend=1.0, post=1.0)
    assert run_iteration(2, [w], blocked=True, tail_npu=3.0).seconds == pytest.approx(11.0)
    assert run_iteration(2, [w], blocked=True).seconds == pytest.approx(8.0)


def test_neupims_interleaves_from_interleave_min_batch_requests():
    """NeuPIMs splits a batch into two interleaved sub-batches from ``interleave_min_batch``
    requests on: each sub-batch is a chain of 1 + 2 x 32 programs of GPT-3 7B (QKV, then MHA
    and Proj/FFN per layer), so a batch of 8 at a threshold of 8 runs 130 programs, at 9 65."""
    import dataclasses

    from sim.serving.decode import run_decode
    from sim.studies.npu_pim import decode_systems
    from workloads.models import get_model

    neupims = decode_systems("a100", "neupims", "neupims-naive")["neupims"]
    model = get_model("gpt3-7b")
    ins, outs = np.full(16, 64), np.full(16, 100)
    events = {}
    for threshold in (8, 9):
        system = dataclasses.replace(neupims, interleave_min_batch=threshold)
        events[threshold] = run_decode(system, model, 1, 1, ins, outs, batch=8, iterations=1,
                                       warmup=0).events
    assert model.n_layers == 32
    assert events == {8: 2 * (1 + 2 * 32), 9: 1 + 2 * 32}


def test_layer_stage_flops_are_per_device():
    """LayerCosts' stage FLOPs are one device's share: Llama-2 7B, 4 decode tokens, tensor
    parallel 2: QKV 2 x 4 x 3 d^2 / 2, O + SwiGLU FFN 2 x 4 x (d^2 + 3 d ff) / 2 (d 4096,
    ff 11008), plus the norms' and element-wise ops' few FLOPs (< 0.1%)."""
    from arch import load_arch
    from sim.devices.base import device_for
    from sim.serving.layer_costs import LayerCosts
    from workloads.models import get_model

    d, ff = 4096, 11008
    st = LayerCosts(device_for(load_arch("a100"), "tile"), get_model("llama2-7b"), 2).stages(
        4, 128)
    assert st["pre"].flops == pytest.approx(2 * 4 * 3 * d * d / 2, rel=1e-3)
    assert st["post"].flops == pytest.approx(2 * 4 * (d * d + 3 * d * ff) / 2, rel=1e-3)


def test_reproduce_neupims_quick(capsys):
    from xpusim.cli import main

    assert main(["reproduce", "neupims", "--quick", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "neupims" and len(out["results"]) == 4
    assert {"claim", "measured", "target", "rel_error"} <= set(out["results"][0])
    by = {r["claim"].split(" (")[0]: r["measured"] for r in out["results"]}
    # mechanisms that must hold whatever the ratios: PIM attention beats the NPU's
    assert by["NeuPIMs / NPU-only throughput"] > 1.0
    assert by["naive NPU+PIM / NPU-only throughput"] > 1.0
    for p in out["points"]:
        assert 0 < p["neupims_pim_util"] < 1 and 0 < p["neupims_npu_util"] <= 1
        assert p["neupims_J_per_token"] < p["gpu_J_per_token"]


def test_pages_per_channel_hand_count():
    """16-token pages of 100 B per token (1600 B) in 1 MB over 4 channels: 625 pages, 156 per
    channel."""
    cfg = BatchingConfig(batch=1, channels=4, page_tokens=16, kv_bytes_per_token=100.0,
                         kv_capacity_bytes=1e6)
    assert cfg.pages_per_channel == 156


@pytest.fixture(scope="module")
def pim_attention():
    from arch import load_arch
    from sim.devices.pim import PimModel
    from sim.serving.decode import PimAttention

    pim = PimModel(load_arch("neupims"))
    return pim, PimAttention(pim, 8, 128, 8)


def test_pim_stage_is_the_slowest_channels_sum(pim_attention):
    """A PIM stage lasts as long as its busiest channel: requests of 100 and 300 tokens on
    channel 0, one of 500 on channel 1 -> max(c(100) + c(300), c(500)) for the logits and the
    attend GEMVs alike."""
    _, attn = pim_attention
    c = {n: attn.cost(n) for n in (100, 300, 500)}
    lo, at, energy, _, _ = attn.stage(np.array([100, 300, 500]), np.array([0, 0, 1]), 4)
    assert lo == pytest.approx(max(c[100][0] + c[300][0], c[500][0]))
    assert at == pytest.approx(max(c[100][1] + c[300][1], c[500][1]))
    assert energy == pytest.approx(c[100][2] + c[300][2] + c[500][2])


def test_pim_costs_of_many_lengths_are_each_lengths_cost():
    """The costs of a batch's lengths, row by row, equal each length's own cost, lengths
    seen before or not, the table grown past its end (1 then 9,000 tokens)."""
    from arch import load_arch
    from sim.devices.pim import PimModel
    from sim.serving.decode import PimAttention

    attn = PimAttention(PimModel(load_arch("neupims")), 8, 128, 8)
    for ctx in ([5, 1, 5, 300], [300, 9000, 2, 1], [7]):
        got = attn.costs(np.array(ctx))
        assert got.tolist() == [list(attn.cost(n)) for n in ctx]


def test_pim_attention_of_kv_groups_adds_up(pim_attention):
    """A request's KV groups are independent GEMVs: 8 heads in 2 groups of 4 cost twice one
    group of 4 heads (time and energy)."""
    from sim.serving.decode import PimAttention

    pim, _ = pim_attention
    two = PimAttention(pim, 8, 128, 2).cost(256)
    one = PimAttention(pim, 4, 128, 1).cost(256)
    assert two[0] == pytest.approx(2 * one[0]) and two[1] == pytest.approx(2 * one[1])
    assert two[2] == pytest.approx(2 * one[2])


def test_decode_energy_adds_static_power_over_the_measured_time():
    """Energy per token = (device + PIM dynamic + static power x measured seconds) / tokens."""
    from sim.serving.decode import run_decode
    from sim.studies.npu_pim import decode_systems
    from workloads.models import get_model

    gpu = decode_systems("a100", "neupims", "neupims-naive")["gpu"]
    ins, outs = np.full(16, 64), np.full(16, 100)
    r = run_decode(gpu, get_model("gpt3-7b"), 1, 1, ins, outs, batch=8, iterations=2, warmup=1)
    seconds = r.iteration_s * r.iterations
    assert r.energy_breakdown_J["static"] == pytest.approx(gpu.static_power_W * seconds)
    assert gpu.static_power_W > 0
    total = sum(r.energy_breakdown_J.values())
    assert r.energy_per_token_J == pytest.approx(total / (r.mean_batch * r.iterations))


def test_stages_group_the_layer_and_decode_rounds_the_context_up():
    """The NPU's pre-attention program is the norm, QKV projection and RoPE (NeuPIMs' QKV
    generation); a GPU decode iteration is layers x (pre + attention + post) + LM head, its
    attention at the batch's mean context rounded up to 8 tokens: 8 requests of 64 prompt
    tokens decode their first token over 65 cached tokens -> KV length 72."""
    import math

    from sim.serving.decode import run_decode
    from sim.serving.layer_costs import LayerCosts
    from sim.studies.npu_pim import decode_systems
    from workloads.models import get_model

    gpu = decode_systems("a100", "neupims", "neupims-naive")["gpu"]
    model = get_model("llama2-7b")
    costs = LayerCosts(gpu.device, model, 1)
    st = costs.stages(8, 72)
    assert list(st["pre"].ops) == ["ln_attn", "qkv_proj", "rope"]
    assert list(st["attn"].ops) == ["qk", "softmax", "av"]
    ins, outs = np.full(8, 64), np.full(8, 100)
    r = run_decode(gpu, model, 1, 1, ins, outs, batch=8, iterations=1, warmup=0)
    assert math.ceil(65 / 8) * 8 == 72
    per_layer = st["pre"].seconds + st["attn"].seconds + st["post"].seconds
    assert r.iteration_s == pytest.approx(32 * per_layer + st["head"].seconds, rel=1e-12)
