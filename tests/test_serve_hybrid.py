"""Serving hybrid models (Mamba / attention: Jamba, Mamba-Codestral, Falcon-H1): the iteration
model prices what ``xpusim run`` prices op for op, attention only in the layers that have it,
and each running request holds its recurrent state's blocks whatever its length."""

from __future__ import annotations

import math

import pytest
from test_mamba_families import CODESTRAL, FALCON_H1_05B, JAMBA, LFM2_700M
from test_serve_scheduler import LinearCost, run

from sim.serve import EngineConfig
from workloads.hf_config import model_from_hf_dict
from workloads.scenario import Scenario
from workloads.tracer import trace_model


def _model(config: dict, layers: int):
    return model_from_hf_dict(config, "m/config.json").with_layers(layers)


@pytest.mark.parametrize("config,layers", [(JAMBA, 8), (CODESTRAL, 4), (FALCON_H1_05B, 3),
                                           (LFM2_700M, 4)])
def test_iterations_price_the_runs_ops(config, layers):
    """One prompt of 128 tokens, two of 64, and a decode step of 3 requests at one KV length: the
    serving iteration's GPU time is the sum of the device's estimates of the ops ``xpusim
    run`` traces for that prefill, that step (TP 2, flash attention), to float rounding:
    recurrent layers' scans, convolutions and state updates per request, attention in the
    attention layers only."""
    im, run_sum = iteration_and_run(_model(config, layers))
    assert im.iteration(0, 0, [(128, 128)], 1).gpu_s == pytest.approx(
        run_sum(1, 128, "prefill"), rel=1e-12)
    assert im.iteration(3, 3 * 133, [], 3).gpu_s == pytest.approx(
        run_sum(3, 132, "decode"), rel=1e-12)
    assert im.iteration(0, 0, [(64, 64)] * 2, 2).gpu_s == pytest.approx(
        run_sum(2, 64, "prefill"), rel=1e-12)


def iteration_and_run(m, exact_tokens: int = 256):
    """A TP-2 dgx-h100 serving iteration model of ``m`` and ``run_sum(batch, prompt, phase)``:
    the device's latencies summed over the ops ``xpusim run`` traces for that phase (flash
    attention, TP 2)."""
    from arch import load_arch
    from sim.serve.costs import IterationModel

    im = IterationModel(load_arch("dgx-h100"), m, tp=2, exact_tokens=exact_tokens)

    def run_sum(batch: int, prompt: int, phase: str) -> float:
        trace = trace_model(m, Scenario(batch=batch, prompt_len=prompt, gen_len=2, tp=2,
                                        attention="flash"))
        return sum(im.device.estimate(op).latency for op in trace.ops if op.phase == phase)

    return im, run_sum


def test_attention_grows_in_its_layers_only():
    """A decode step's time grows with the KV length through the attention layers alone:
    Jamba's 1 in 8 grows 1/8 as fast as the same model with attention in all 8 layers would
    grow from its attention (the same kernel a layer); Mamba-Codestral's not at all."""
    from arch import load_arch
    from sim.serve.costs import IterationModel

    arch = load_arch("dgx-h100")
    jamba = IterationModel(arch, _model(JAMBA, 8), tp=2)
    slope = jamba.decode_alone(8192) - jamba.decode_alone(1024)
    per_layer = jamba.decode_attention(1, 8192).seconds - jamba.decode_attention(1, 1024).seconds
    assert jamba.attn_layers == 1 and slope == pytest.approx(per_layer, rel=1e-9)
    assert per_layer == pytest.approx(
        (jamba._ops_cost(jamba.builder.attention(1, 1, 8192), "decode").seconds
         - jamba._ops_cost(jamba.builder.attention(1, 1, 1024), "decode").seconds), rel=1e-12)
    codestral = IterationModel(arch, _model(CODESTRAL, 4), tp=2)
    assert codestral.decode_alone(100_000) == codestral.decode_alone(10)


def test_state_blocks_by_hand():
    """Jamba at TP 2 on a DGX-H100: a 16-token block of its 4 attention layers is 16 x 4 x 2 x
    4 KV heads x 128 x 2 B = 131,072 B; a request's 28 Mamba layers keep 28 x (4,096 x 16 x 4
    + 4,096 x 3 x 2) B = 8,028,160 B, 62 blocks, however long it is. Mamba-Codestral has no
    attention: a block is one request's state. Prefix caching of states is refused."""
    from arch import load_arch
    from sim.devices.base import SimError
    from sim.serve.costs import IterationModel
    from sim.serve.replica import Replica

    arch = load_arch("dgx-h100")
    jamba = Replica(0, IterationModel(arch, model_from_hf_dict(JAMBA, "j"), tp=2),
                    EngineConfig("continuous"))
    assert jamba.block_bytes == 16 * 4 * 2 * 4 * 128 * 2 == 131_072
    assert jamba.layout.state_blocks == math.ceil(28 * (4096 * 16 * 4 + 4096 * 3 * 2)
                                                  / 131_072) == 62
    assert [jamba.kv.blocks_for(t) for t in (1, 100, 100_000)] == [1 + 62, 7 + 62, 6250 + 62]
    codestral = Replica(0, IterationModel(arch, model_from_hf_dict(CODESTRAL, "c"), tp=2),
                        EngineConfig("continuous"))
    state = 64 * (64 * 64 * 128 * 4 + (64 * 64 + 2 * 4 * 128) * 3 * 2)
    assert codestral.block_bytes == state
    assert codestral.kv.blocks_for(1) == codestral.kv.blocks_for(200_000) == 1
    with pytest.raises(SimError, match="--enable-prefix-caching: .* keep a state"):
        Replica(0, IterationModel(arch, model_from_hf_dict(JAMBA, "j"), tp=2),
                EngineConfig("continuous", enable_prefix_caching=True))


class _StateCost(LinearCost):
    """:class:`LinearCost` of a hybrid: 1 kB of KV a token, 10 kB of state a request."""

    def __init__(self):
        super().__init__()
        self.model = model_from_hf_dict(JAMBA, "j")

    def state_bytes_per_request(self) -> float:
        return 1e4


@pytest.mark.parametrize("blocks,preempted", [(12, 0), (11, 1)])
def test_states_take_room_from_the_cache(blocks, preempted):
    """Block 4 (4 kB), state 10 kB = 3 blocks a request: two requests of prompt 8 growing to
    11 tokens hold 3 + 3 blocks each at their last token, 12 in all: 12 blocks serve both
    side by side, 11 preempt one (without the states 6 would do)."""
    cfg = EngineConfig("continuous", block_size=4, kv_blocks=blocks)
    sim, reps = run([(0.0, 8, 4), (0.0, 8, 4)], cfg, _StateCost())
    assert reps[0].layout.state_blocks == 3
    sim.run()
    assert sum(r.preemptions for r in sim.reqs) == preempted
    assert reps[0].kv.peak <= blocks and reps[0].kv.used == 0


def test_a_splitwise_handoff_sends_the_states(monkeypatch):
    """A Jamba prompt handed from a prompt to a token machine (DGX-H100s, TP 8) sends its 4
    attention layers' KV of 2,000 tokens (2 x 1 KV head x 128 x 2 B a token and layer on each
    of 8 GPUs) and its 28 Mamba layers' states (each GPU's 1,024 channels: 16 fp32 states and
    3 conv rows of 2 B), whatever its length."""
    import numpy as np

    import workloads.models
    from sim.serve.pools import Cluster, Pool, run_cluster
    from workloads.requests import Requests

    monkeypatch.setattr(workloads.models, "get_model",
                        lambda name: model_from_hf_dict(JAMBA, "j"))
    cl = Cluster([Pool("dgx-h100", 1, "prompt"), Pool("dgx-h100", 1, "token")], "jamba",
                 EngineConfig())
    run_cluster(cl, Requests.build(np.zeros(1), np.full(1, 2000), np.full(1, 3)))
    [(_, sent, _)] = cl.transfers
    kv = 4 * 2 * 1 * 128 * 2 * 2000
    state = 28 * (1024 * 16 * 4 + 1024 * 3 * 2)
    assert sent == pytest.approx(8 * (kv + state), rel=1e-12)


def test_models_without_decoder_layers_are_refused_in_one_line(capsys):
    """``xpusim serve`` of a Mamba-1 model (or an encoder-decoder) ends in one line naming the
    model, exit 2 (its cache was sized by attention layers it does not have: a division by
    zero, before)."""
    from xpusim.cli import main

    for model in ("mamba-130m", "t5-small"):
        assert main(["serve", "--arch", "h100", "--tp", "1", "--model", model, "--rate", "1",
                     "--requests", "2", "--prompt", "16", "--gen", "2", "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{model} is a" in err[0] and "serving need decoder" in err[0]

