"""Serving models whose layers attend through a window: the KV blocks vLLM v1's hybrid KV
cache manager holds (groups of one attention type and one size; windowed groups free the
blocks wholly before their window), counted by hand."""

from __future__ import annotations

import math

import pytest
from test_serve_scheduler import LinearCost, run, times

from sim.serve import EngineConfig
from sim.serve.kv_layout import KVLayout
from workloads.models import ModelConfig, get_model


def _tiny(**kw) -> ModelConfig:
    base = dict(name="tiny", family="llama", n_layers=2, d_model=64, n_heads=4, n_kv_heads=2,
                d_ff=128, vocab_size=100, max_positions=4096, norm="rmsnorm",
                activation="swiglu", position="rope", tied_embeddings=False, bias=False,
                sliding_window=8, global_every=2)
    return ModelConfig(**{**base, **kw})


def test_groups_as_vllm_forms_them():
    """vLLM's hybrid KV cache manager design (docs/design/hybrid_kv_cache_manager.md): groups
    of the smallest layer count among the types: gpt-oss 18 + 18 -> 1 full and 1 windowed
    group of 18; Gemma-3-27B 10 full + 52 windowed -> groups of 10, 1 + ceil(52 / 10) = 6;
    every layer windowed (Mistral-7B-v0.1) -> one windowed group; no window -> one group of
    every layer; Llama 4's chunked layers: 12 full + 36 chunked -> 1 + 3 groups of 12."""
    assert KVLayout.of(get_model("gpt-oss-120b")) == KVLayout(18, 1, 1, 128)
    gemma3 = _tiny(n_layers=62, global_every=6, sliding_window=1024)
    assert gemma3.windowed_layers() == 52
    assert KVLayout.of(gemma3) == KVLayout(10, 1, 6, 1024)
    assert KVLayout.of(get_model("mistral-7b")) == KVLayout(32, 0, 1, 4096)
    assert KVLayout.of(get_model("llama2-7b")) == KVLayout(32)
    assert KVLayout.of(get_model("llama4-scout")) == KVLayout(12, 1, 3, 8192, True)
    assert KVLayout.of(get_model("gpt-oss-120b"), prefix_caching=True) == KVLayout(36)


def test_the_design_docs_example():
    """The design doc's example: 10 full and 20 windowed layers (3 groups of 10), block 16,
    window 32, a request of 112 tokens holds 11 blocks: 7 for the full group, 2 for each
    windowed one (tokens 80-111; the first 81 skipped: computed - window + 1)."""
    layout = KVLayout(10, 1, 2, 32)
    assert layout.blocks(112, 111, 16) == 7 + 2 + 2
    # chunked (Llama 4): the blocks before the current chunk's start go
    chunked = KVLayout(12, 1, 3, 8192, True)
    assert chunked.blocks(9000, 8999, 16) == math.ceil(9000 / 16) + 3 * (
        math.ceil(9000 / 16) - 8192 // 16)


def test_a_request_frees_blocks_behind_its_window():
    """Block 4, window 8, one full and one windowed layer (a block each): prompt 8, 6 tokens.
    Held after each step: prefill 2 + 2; decodes to 9, 10, 11 tokens: 3 + 3 (computed 8..10
    skip 1..3 tokens, under a block); to 12: 3 + 2 (4 skipped: a block freed); to 13: 4 + 3.
    The most is 7 blocks; every layer kept whole would hold 4 + 4."""
    cost = LinearCost()
    cost.model = _tiny()
    cfg = EngineConfig("continuous", block_size=4, kv_blocks=100)
    sim, reps = run([(0.0, 8, 6)], cfg, cost)
    kv = reps[0].kv
    assert [kv.blocks_for(t, t - 1) for t in (9, 10, 11, 12, 13)] == [6, 6, 6, 5, 7]
    assert kv.blocks_for(8, 0) == 4
    assert kv.peak_blocks(8, 13, reps[0].budget) == 7
    sim.run()
    assert kv.peak == 7 and kv.used == 0
    assert times(sim, 0) == [1.8, 2.9, 4.0, 5.1, 6.2, 7.3]
    # held after each iteration (the last one's blocks freed as the request finishes)
    assert [row[5] for row in reps[0].log] == [4, 6, 6, 6, 5, 0]


@pytest.mark.parametrize("blocks,preempted", [(14, 0), (13, 1)])
def test_two_requests_fit_in_their_windows(blocks, preempted):
    """Two such requests hold 7 blocks each at their last token: 14 blocks serve both
    without preemption; 13 preempt one (vLLM frees, and we free, the blocks behind each
    request's window)."""
    cost = LinearCost()
    cost.model = _tiny()
    cfg = EngineConfig("continuous", block_size=4, kv_blocks=blocks)
    sim, reps = run([(0.0, 8, 6), (0.0, 8, 6)], cfg, cost)
    sim.run()
    assert sum(r.preemptions for r in sim.reqs) == preempted
    assert reps[0].kv.peak <= blocks and reps[0].kv.used == 0


def test_capacity_of_gpt_oss_on_a_dgx_h100():
    """gpt-oss-120b at TP 8: a block holds 16 tokens of 18 layers (one group), so the same
    memory holds twice the blocks of a 36-layer block; a 100,000-token request holds 6,250
    full-group blocks and 8 windowed ones (its step from 99,999 computed skips 99,872 tokens,
    6,242 whole blocks) where every layer kept whole would take the memory of 12,500."""
    from arch import load_arch
    from sim.serve.costs import IterationModel
    from sim.serve.replica import Replica

    arch = load_arch("dgx-h100")
    windowed = Replica(0, IterationModel(arch, get_model("gpt-oss-120b"), tp=8),
                       EngineConfig("continuous"))
    whole = Replica(0, IterationModel(arch, get_model("gpt-oss-120b"), tp=8),
                    EngineConfig("continuous", enable_prefix_caching=True))
    assert windowed.block_bytes * 2 == pytest.approx(whole.block_bytes, rel=1e-15)
    assert windowed.kv.capacity in (2 * whole.kv.capacity, 2 * whole.kv.capacity + 1)
    assert windowed.kv.blocks_for(100_000) == 6250 + 8
    assert whole.kv.blocks_for(100_000) == 6250
    # the report's replica table says how many layers a block holds
    from types import SimpleNamespace

    from sim.serve.report import replica_table

    table = replica_table(SimpleNamespace(replicas=[windowed, whole]), 1.0)
    assert table["kv_block_layers"].tolist() == [18, 36]
    assert table["kv_blocks"].tolist() == [windowed.kv.capacity, whole.kv.capacity]
