"""The serving iteration model against ``xpusim run`` and the decode harness, and its memo."""

from __future__ import annotations

import dataclasses

import pytest

from arch import load_arch
from sim.devices.base import SimError, device_for
from sim.run import simulate
from sim.serve import EngineConfig, IterationModel, Replica, Simulation, finish
from sim.serving.layer_costs import LayerCosts
from workloads.models import get_model
from workloads.requests import Requests
from workloads.scenario import Scenario


@pytest.fixture(scope="module")
def h100():
    return load_arch("h100")


@pytest.fixture(scope="module")
def l7b():
    return get_model("llama2-7b")


@pytest.mark.parametrize("attention", ["flash", "unfused"])
def test_one_request_matches_xpusim_run(h100, l7b, attention):
    """A lone request's prefill and decode steps take what ``xpusim run`` says (one engine)."""
    im = IterationModel(h100, l7b, attention=attention)
    res = simulate(h100, l7b, Scenario(batch=1, prompt_len=200, gen_len=3,
                                       attention=attention))
    assert im.prefill_alone(200) == pytest.approx(res.metrics["ttft_s"], rel=1e-9)
    steps = im.iteration(1, 201, [], 1).seconds + im.iteration(1, 202, [], 1).seconds
    assert steps / 2 == pytest.approx(res.metrics["tpot_s"], rel=1e-5)


def test_static_batch_prefill_matches_xpusim_run(h100, l7b):
    im = IterationModel(h100, l7b, attention="flash")
    res = simulate(h100, l7b, Scenario(batch=4, prompt_len=128, gen_len=2, attention="flash"))
    assert im.iteration(0, 0, [(128, 128)] * 4, 4).seconds == \
        pytest.approx(res.metrics["ttft_s"], rel=1e-9)


def test_decode_iteration_is_the_sum_of_layer_costs(h100, l7b):
    """tp = 1 (no collectives): a decode iteration = L x the decode harness's layer stages +
    its LM head + the embedding, op by op from the same device model."""
    im = IterationModel(h100, l7b, attention="unfused")
    lc = LayerCosts(im.device, l7b, 1)
    st = lc.stages(8, 200)
    layer = sum(st[k].seconds for k in ("pre", "attn", "post"))
    emb = im._ops_cost(im.builder.embedding(8), "decode").seconds
    want = l7b.n_layers * layer + st["head"].seconds + emb
    assert im.iteration(8, 8 * 200, [], 8).seconds == pytest.approx(want, rel=1e-9)


def test_tensor_parallel_adds_allreduces(l7b):
    dgx = load_arch("dgx-h100")
    im1 = IterationModel(dgx, l7b, tp=1)
    im2 = IterationModel(dgx, l7b, tp=2)
    t1 = im1.linear(64).seconds
    t2 = im2.linear(64).seconds
    ar = im2._ops_cost([t for t in im2.builder.layer(1, 64, 1) if t.kind == "collective"],
                       "prefill").seconds
    assert ar > 0
    assert t2 < t1                                    # half the GEMM work per device ...
    assert t2 > l7b.n_layers * ar                     # ... plus two all-reduces per layer


def test_interpolation_is_exact_on_the_grid_and_between_neighbours(h100, l7b):
    im = IterationModel(h100, l7b, exact_tokens=64, per_octave=8)
    exact = IterationModel(h100, l7b, exact_tokens=10**9)
    # above 64 the grid step is 2^(floor(log2 x) - 3): 16 for 128..255
    for x in (128, 144, 160):
        assert im.linear(x).seconds == pytest.approx(exact.linear(x).seconds, rel=1e-12)
    a, b, mid = exact.linear(144).seconds, exact.linear(160).seconds, im.linear(150).seconds
    assert mid == pytest.approx(a + (b - a) * 6 / 16, rel=1e-12)
    assert abs(mid / exact.linear(150).seconds - 1) < 0.03


def test_async_software_adds_per_step_and_request_cost(h100, l7b):
    sw = dataclasses.replace(h100.sections["software"], mode="async", per_step=1e-3,
                             per_request=1e-4, dispatch={"default": 0.0})
    arch = dataclasses.replace(h100, sections={**h100.sections, "software": sw})
    ideal = IterationModel(h100, l7b).iteration(4, 4 * 100, [], 4).seconds
    slow = IterationModel(arch, l7b).iteration(4, 4 * 100, [], 4).seconds
    assert slow - ideal == pytest.approx(1e-3 + 4 * 1e-4, rel=1e-9)
    # a prefill chunk is one more sequence the host prepares: 2 decodes + 1 prefill
    mixed_ideal = IterationModel(h100, l7b).iteration(2, 2 * 100, [(64, 64)], 3).seconds
    mixed = IterationModel(arch, l7b).iteration(2, 2 * 100, [(64, 64)], 3).seconds
    assert mixed - mixed_ideal == pytest.approx(1e-3 + 3 * 1e-4, rel=1e-9)


def test_host_link_is_the_pcie_at_its_efficiency(h100, l7b):
    """KV swapping uses the PCIe link at its achievable rate: 64 GB/s per direction (H100
    datasheet) x 0.85."""
    name, rate = IterationModel(h100, l7b).host_link()
    assert name == "pcie" and rate == pytest.approx(64e9 * 0.85)


def test_kv_capacity_from_memory_left_after_weights(h100, l7b):
    im = IterationModel(h100, l7b)
    cfg = EngineConfig(gpu_memory_utilization=0.9, block_size=16)
    rep = Replica(0, im, cfg)
    # Llama-2-7B fp16: 32 layers x 2 (K, V) x 4096 x 2 B = 512 KiB per token
    assert im.kv_bytes_per_token() == 2 * 32 * 4096 * 2
    room = 0.9 * 80 * 2**30 - l7b.param_count() * 2 - im.activation_bytes(4096)
    assert rep.kv.capacity == int(room // (16 * 2 * 32 * 4096 * 2))


def test_model_too_large_is_a_one_line_error(h100):
    im = IterationModel(h100, get_model("llama2-70b"))
    with pytest.raises(SimError, match="no room for a KV cache"):
        Replica(0, im, EngineConfig())


def test_one_request_end_to_end_on_the_device_model(h100, l7b):
    """TTFT = the prefill iteration; each later token one decode iteration at its context."""
    im = IterationModel(h100, l7b)
    rep = Replica(0, im, EngineConfig(kv_blocks=1000))
    sim = Simulation([rep], Requests.build([0.5], [300], [4]), record_tokens=True).run()
    res = finish(sim)
    ttft = im.prefill_alone(300)
    steps = [im.decode_alone(300 + k) for k in (1, 2, 3)]
    assert res.metrics["ttft_p50_s"] == pytest.approx(ttft, rel=1e-12)
    assert res.metrics["e2e_p50_s"] == pytest.approx(ttft + sum(steps), rel=1e-12)
    assert res.metrics["tbt_mean_s"] == pytest.approx(sum(steps) / 3, rel=1e-12)
    want_J = sum(im.iteration(1, 300 + k, [], 1).energy_J for k in (1, 2, 3)) + \
        im.iteration(0, 0, [(300, 300)], 1).energy_J
    assert res.metrics["dynamic_energy_J"] == pytest.approx(want_J, rel=1e-12)
    assert res.metrics["static_energy_J"] == pytest.approx(
        im.static_power() * (0.5 + ttft + sum(steps)), rel=1e-12)


def test_pipeline_stages_add_their_activation_sends(l7b):
    dgx = load_arch("dgx-h100")
    one = IterationModel(dgx, l7b, tp=1, pp=1)
    four = IterationModel(dgx, l7b, tp=1, pp=4)
    send = four._ops_cost(four.builder.stage_send(64), "prefill").seconds
    assert send > 0
    assert four.linear(64).seconds - one.linear(64).seconds == pytest.approx(3 * send,
                                                                            rel=1e-9)
    # each device holds a quarter of the layers' KV
    assert four.kv_bytes_per_token() == pytest.approx(one.kv_bytes_per_token() / 4)


def test_iteration_energy_counts_every_device_of_the_replica(l7b):
    """A tp 2 prompt pass costs the energy of both devices: every shard of each op and each
    rank's part of each collective, as ``xpusim run``'s op table counts them (a collective
    row holds both ranks' parts: twice one rank's cost, though its shards are 1), and takes
    the run's time."""
    dgx = load_arch("dgx-h100")
    res = simulate(dgx, l7b, Scenario(batch=1, prompt_len=200, gen_len=1, tp=2,
                                      attention="flash"))
    ops = res.ops
    coll = ops["op_class"] == "communication"
    assert set(ops[coll]["shards"]) == {1} and set(ops[~coll]["shards"]) == {2}
    ar = ops[coll & (ops["op"] == "allreduce_attn")].iloc[0]
    dev = device_for(dgx, "tile")
    from workloads.trace import COLLECTIVE, Collective, Op

    one = dev.estimate(Op(0, "ar", COLLECTIVE, "prefill", 0, 0, None, collective=Collective(
        "allreduce", ar["bytes"] / 2, 2, "fp16")))
    assert ar["energy_J"] == pytest.approx(2 * one.energy_total, rel=1e-12)
    want = ops["energy_J"].sum()
    it = IterationModel(dgx, l7b, tp=2, attention="flash").iteration(0, 0, [(200, 200)], 1)
    assert it.seconds == pytest.approx(res.metrics["ttft_s"], rel=1e-9)
    assert it.energy_J == pytest.approx(want, rel=1e-9)


def test_decode_attention_runs_at_the_mean_kv_length_rounded_up(h100, l7b):
    # two requests with 513 tokens of KV in all: the batched kernel runs at 257 each (rounded
    # up, never reading less KV than the batch holds): as 514 tokens, not as 512 (which
    # reads less KV and here runs faster)
    im = IterationModel(h100, l7b, exact_tokens=10**6)
    odd, up, down = (im.iteration(2, ctx, [], 2) for ctx in (513, 514, 512))
    assert (odd.seconds, odd.energy_J) == (up.seconds, up.energy_J)
    assert odd.seconds > down.seconds and odd.energy_J > down.energy_J


def test_async_software_charges_prefilling_sequences_too(h100, l7b):
    # 2 decodes + 1 prefill chunk: per_step once, per_request for each of the 3 sequences
    sw = dataclasses.replace(h100.sections["software"], mode="async", per_step=1e-3,
                             per_request=1e-4, dispatch={"default": 0.0})
    arch = dataclasses.replace(h100, sections={**h100.sections, "software": sw})
    batch = (2, 2 * 100, [(50, 50)], 3)
    ideal = IterationModel(h100, l7b).iteration(*batch).seconds
    slow = IterationModel(arch, l7b).iteration(*batch).seconds
    assert slow - ideal == pytest.approx(1e-3 + 3 * 1e-4, rel=1e-9)


def test_swap_link_is_pcie_at_its_achievable_rate(h100, l7b):
    # the H100 preset's PCIe: 64 GB/s peak at 85 % efficiency
    name, bw = IterationModel(h100, l7b).host_link()
    pcie = h100.sections["interconnect"]["pcie"]
    assert name == "pcie" and (pcie.bandwidth, pcie.efficiency) == (64e9, 0.85)
    assert bw == pytest.approx(64e9 * 0.85, rel=1e-12)


def test_a_collectives_energy_is_its_group_times_one_ranks_and_a_sends_its_senders(l7b):
    """xpusim run's op table: an all-reduce over 4 ranks holds 4 x one rank's cost (each rank
    sends its bytes, moves its HBM traffic and does its share of the reduction); a pipeline
    send holds its sender's cost once (the bytes cross the link once)."""
    from workloads.trace import COLLECTIVE, Collective, Op

    dgx = load_arch("dgx-h100")
    dev = device_for(dgx, "tile")
    res = simulate(dgx, l7b, Scenario(batch=1, prompt_len=64, gen_len=1, tp=4, pp=2))
    ops = res.ops
    ar = ops[ops["op"] == "allreduce_attn"].iloc[0]
    one = dev.estimate(Op(0, "ar", COLLECTIVE, "prefill", 0, 0, None, collective=Collective(
        "allreduce", ar["bytes"] / 4, 4, "fp16")))
    assert ar["shards"] == 1
    assert ar["energy_J"] == pytest.approx(4 * one.energy_total, rel=1e-12)
    send = ops[ops["op"] == "pp_send"].iloc[0]
    sent = dev.estimate(Op(0, "s", COLLECTIVE, "prefill", 0, 0, None, collective=Collective(
        "send", send["bytes"] / 2, 2, "fp16")))
    assert sent.energy_total > 0
    assert send["energy_J"] == pytest.approx(sent.energy_total, rel=1e-12)


def test_iterations_of_equal_mean_kv_length_are_one(h100, l7b, monkeypatch):
    """Decodes enter an iteration through their mean KV length (rounded up) only: 4 decodes
    over 11,997..12,000 tokens in all have mean 3,000 and cost what one worked out from
    12,000 does; 12,001 (mean 3,001, interpolated on the grid) takes more energy. The memo
    returns the figures worked out afresh, and still does when it is cleared on filling."""
    import sim.serve.costs as costs

    im = IterationModel(h100, l7b)
    fresh = IterationModel(h100, l7b)
    for ctx in (11997, 11998, 11999, 12000):
        assert im.iteration(4, ctx, [], 4) == fresh._iteration(4, 12000, [], 4)
    assert im.iteration(4, 12001, [], 4).energy_J > im.iteration(4, 12000, [], 4).energy_J
    mixed = [(64, 300), (32, 32)]
    assert im.iteration(2, 500, mixed, 3) == fresh._iteration(2, 500, mixed, 3)
    assert im.iteration(2, 500, mixed[:1], 3) != im.iteration(2, 500, mixed, 3)
    monkeypatch.setattr(costs, "ITERATION_MEMO_SIZE", 2)
    for n in range(1, 6):
        assert im.iteration(n, 900 * n, [], n) == fresh._iteration(n, 900 * n, [], n)
    assert len(im._iterations) <= 2
