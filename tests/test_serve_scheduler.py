"""Schedulers, KV preemption, prefix caching, timeouts, roles and routing, counted by hand.

The scheduler tests use a cost double with a hand-countable iteration time (1 s + 0.1 s per
new token), so every finishing time below is a sum written out in the test; the iteration
model itself is tested against ``xpusim run`` in test_serve_costs.py.
"""

from __future__ import annotations

import math

import pytest

from sim.serve import EngineConfig, Replica, Simulation, finish
from sim.serve.costs import Iteration
from sim.serve.metrics import check_invariants
from workloads.models import get_model
from workloads.requests import Requests


class LinearCost:
    """Iteration time = ``base`` + ``per_token`` x new tokens (s); KV 1 kB per token."""

    def __init__(self, base: float = 1.0, per_token: float = 0.1, kv_token_bytes: float = 1e3,
                 link_bw: float = 1e6):
        self.base, self.per_token = base, per_token
        self.model = get_model("llama2-7b")
        self.arch = None
        self.tp = self.pp = self.devices = 1
        self.kv_token_bytes = kv_token_bytes
        self.link_bw = link_bw
        self.calls: list[tuple] = []

    def kv_bytes_per_token(self) -> float:
        return self.kv_token_bytes

    def host_link(self) -> tuple[str, float]:
        return "pcie", self.link_bw

    def static_power(self) -> float:
        return 0.0

    def iteration(self, n_decode, decode_ctx, prefills, n_logits) -> Iteration:
        self.calls.append((n_decode, decode_ctx, tuple(prefills), n_logits))
        tokens = n_decode + sum(s for s, _ in prefills)
        t = self.base + self.per_token * tokens
        return Iteration(t, 0.0, t, 0.0)

    def prefill_alone(self, prompt: int) -> float:
        return self.base + self.per_token * prompt

    def decode_alone(self, ctx: int) -> float:
        return self.base + self.per_token


def run(reqs, cfg: EngineConfig, cost=None, replicas=1, roles=None, timeout=math.inf,
        router="round_robin"):
    cost = cost or LinearCost()
    roles = roles or ["mixed"] * replicas
    reps = [Replica(i, cost, cfg, role) for i, role in enumerate(roles)]
    arr, prompt, out = zip(*[(a, p, o) for a, p, o, *_ in reqs], strict=True)
    groups = [r[3] if len(r) > 3 else -1 for r in reqs]
    prefix = [r[4] if len(r) > 4 else 0 for r in reqs]
    sim = Simulation(reps, Requests.build(arr, prompt, out, "", groups, prefix), router,
                     timeout, record_tokens=True)
    return sim, reps


def times(sim, i):
    return [round(t, 9) for t in sim.reqs[i].tokens]


THREE = [(0.0, 10, 3), (0.0, 10, 1), (0.0, 10, 2)]


def test_static_batching_hand_count():
    sim, _ = run(THREE, EngineConfig("static", max_num_seqs=2, kv_blocks=100))
    sim.run()
    # batch {0, 1}: prefill 20 tokens (3.0 s); 0 decodes alone 1.1 s twice; then batch {2}
    assert times(sim, 0) == [3.0, 4.1, 5.2]
    assert times(sim, 1) == [3.0]
    assert times(sim, 2) == [7.2, 8.3]
    check_invariants(sim)


def test_continuous_batching_hand_count():
    sim, _ = run(THREE, EngineConfig("continuous", max_num_seqs=2, kv_blocks=100))
    sim.run()
    # 0,1 prefill (3.0); 1 leaves, 2 joins with a prefill-only iteration (2.0 s) -> 5.0;
    # 0 and 2 decode together (1.2 s) -> 6.2, 2 done; 0 alone (1.1 s) -> 7.3
    assert times(sim, 0) == [3.0, 6.2, 7.3]
    assert times(sim, 1) == [3.0]
    assert times(sim, 2) == [5.0, 6.2]
    check_invariants(sim)


def test_chunked_prefill_hand_count():
    cfg = EngineConfig("chunked", max_num_seqs=3, max_num_batched_tokens=16, kv_blocks=100)
    sim, _ = run(THREE, cfg)
    sim.run()
    # it1: 0 all 10 + 1's first 6 (16 tokens, 2.6 s); it2: 0 decodes, 1 its last 4, 2 all 10
    # (15 tokens, 2.5 s) -> 5.1; it3: 0 and 2 decode (1.2 s) -> 6.3
    assert times(sim, 0) == [2.6, 5.1, 6.3]
    assert times(sim, 1) == [5.1]
    assert times(sim, 2) == [5.1, 6.3]
    assert sim.reqs[1].prefill_tokens == 10
    check_invariants(sim)


def test_recompute_preemption_hand_count():
    # 4-token blocks, 5 blocks: both 8-token prompts fit (2 + 2), the first decode step
    # needs a third block each: the later request is preempted and re-prefills 8 + 1 tokens
    cfg = EngineConfig("continuous", block_size=4, kv_blocks=5)
    sim, reps = run([(0.0, 8, 6), (0.0, 8, 6)], cfg)
    sim.run()
    assert times(sim, 0) == [2.6, 3.7, 4.8, 5.9, 7.0, 8.1]
    assert times(sim, 1) == [2.6, 10.0, 11.1, 12.2, 13.3, 14.4]
    assert sim.reqs[1].preemptions == 1
    assert sim.reqs[1].prefill_tokens == 8 + 9
    assert reps[0].kv.peak == 5
    check_invariants(sim)


def test_swap_preemption_costs_the_pcie_copy():
    # as above, but request 1's two blocks (2 x 4 tokens x 1 kB) go to the host at 1 MB/s
    # (8 ms) in iteration 2 and come back (8 ms) when request 0 has left
    cfg = EngineConfig("continuous", block_size=4, kv_blocks=5, preemption="swap")
    sim, _ = run([(0.0, 8, 6), (0.0, 8, 6)], cfg)
    sim.run()
    assert times(sim, 0) == [2.6, 3.708, 4.808, 5.908, 7.008, 8.108]
    assert times(sim, 1) == [2.6, 9.216, 10.316, 11.416, 12.516, 13.616]
    assert sim.reqs[1].prefill_tokens == 8  # nothing recomputed
    check_invariants(sim)


def test_prefix_cache_saves_exactly_the_shared_prefix():
    reqs = [(0.0, 40, 2, 0, 32), (100.0, 40, 2, 0, 32), (200.0, 40, 2, 1, 32)]
    on = EngineConfig("continuous", block_size=16, kv_blocks=100, enable_prefix_caching=True)
    sim, _ = run(reqs, on)
    sim.run()
    assert [r.prefill_tokens for r in sim.reqs] == [40, 8, 40]   # group 1 is not cached
    assert [r.cached_tokens for r in sim.reqs] == [0, 32, 0]
    assert times(sim, 1) == [100.0 + 1.0 + 0.1 * 8, round(100.0 + 1.8 + 1.1, 9)]
    off = EngineConfig("continuous", block_size=16, kv_blocks=100)
    sim2, _ = run(reqs, off)
    sim2.run()
    assert [r.prefill_tokens for r in sim2.reqs] == [40, 40, 40]
    check_invariants(sim)


def test_prefix_blocks_are_shared_in_capacity():
    # two concurrent requests of one group: 32 shared tokens held once (2 blocks), each
    # request's own 8 prompt tokens + 1 decode token in one private block: 2 + 1 + 1;
    # without prefix caching each holds ceil(41 / 16) = 3 blocks
    reqs = [(0.0, 40, 2, 0, 32), (3.0, 40, 2, 0, 32)]
    for caching, peak in ((True, 4), (False, 6)):
        cfg = EngineConfig("continuous", block_size=16, kv_blocks=100, max_num_seqs=2,
                           enable_prefix_caching=caching)
        sim, reps = run(reqs, cfg)
        sim.run()
        assert reps[0].kv.peak == peak


def test_timeout_fails_requests_and_frees_blocks():
    cfg = EngineConfig("continuous", max_num_seqs=1, kv_blocks=100)
    sim, reps = run([(0.0, 10, 5), (0.0, 10, 5)], cfg, timeout=4.0)
    sim.run()
    res = finish(sim)
    # one sequence at a time: request 0's tokens would come at 2.0, 3.1, 4.2 (> 4 s): it
    # fails at its deadline; request 1, still waiting at 4.2, has timed out too
    assert res.metrics["requests_failed"] == 2
    assert res.metrics["requests_completed"] == 0
    assert all(r.finish_s == 4.0 for r in sim.reqs)
    assert reps[0].kv.used == 0


def test_token_replica_takes_handoffs():
    cost = LinearCost()
    cfg = EngineConfig("continuous", kv_blocks=100)
    reps = [Replica(0, cost, cfg, "prompt"), Replica(1, cost, cfg, "token")]
    sim = Simulation(reps, Requests.build([0.0], [10], [3]), record_tokens=True)
    # the KV takes 0.5 s to arrive at the token replica
    reps[0].on_prefill_done = lambda r, rep, t: sim.at(t + 0.5, lambda t2, req:
                                                      reps[1].accept(req, t2), r)
    sim.run()
    assert times(sim, 0) == [2.0, 3.6, 4.7]   # prefill 2.0; arrives 2.5; two decodes of 1.1
    assert sim.reqs[0].events == ["arrive", "admit", "handoff", "accept", "finish"]
    check_invariants(sim)


def test_least_tokens_router_balances_work():
    reqs = [(0.0, 1000, 10), (0.1, 10, 10), (0.2, 10, 10), (0.3, 1000, 10)]
    sim, _ = run(reqs, EngineConfig("continuous", kv_blocks=1000), replicas=2,
                 router="least_tokens")
    sim.run()
    assert [r.replica for r in sim.reqs] == [0, 1, 1, 1]
    sim, _ = run(reqs, EngineConfig("continuous", kv_blocks=1000), replicas=2)
    sim.run()
    assert [r.replica for r in sim.reqs] == [0, 1, 0, 1]


def test_request_too_large_for_the_cache_is_rejected():
    sim, _ = run([(0.0, 100, 10), (0.0, 8, 2)], EngineConfig("continuous", block_size=4,
                                                             kv_blocks=10))
    sim.run()
    res = finish(sim)
    assert res.metrics["requests_rejected"] == 1 and res.metrics["requests_completed"] == 1


@pytest.mark.parametrize("sched", ["static", "continuous", "chunked"])
@pytest.mark.parametrize("mode", ["recompute", "swap"])
def test_invariants_hold_under_pressure(sched, mode):
    import numpy as np

    rng = np.random.default_rng(1)
    n = 60
    reqs = list(zip(np.sort(rng.uniform(0, 20, n)), rng.integers(1, 60, n),
                    rng.integers(1, 30, n), rng.integers(-1, 3, n), np.full(n, 16), strict=True))
    reqs = [(float(a), int(p) + 16 * (g >= 0), int(o), int(g), int(x) * (g >= 0))
            for a, p, o, g, x in reqs]
    cfg = EngineConfig(sched, block_size=8, kv_blocks=24, max_num_seqs=8,
                       max_num_batched_tokens=128, preemption=mode, max_model_len=128,
                       enable_prefix_caching=sched != "static")
    sim, reps = run(reqs, cfg, cost=LinearCost(0.01, 0.001, kv_token_bytes=100))
    sim.run()
    res = finish(sim)
    assert res.metrics["requests_completed"] + res.metrics["requests_rejected"] == n
    done = res.requests[res.requests["state"] == "done"]
    assert (done["generated_tokens"] == done["output_tokens"]).all()
    assert reps[0].kv.peak <= 24
    assert reps[0].kv.used == sum(e[0] for e in reps[0].kv.prefixes.values())


def test_invariant_check_catches_a_double_finish():
    sim, _ = run(THREE[:1], EngineConfig("continuous", kv_blocks=100))
    sim.run()
    sim.reqs[0].events.append("finish")
    with pytest.raises(AssertionError, match="ended 2 times"):
        check_invariants(sim)


def test_splitwise_slowdown_slo_hand_count():
    from sim.serve.metrics import SLO

    # alone, a request's slowdowns are exactly 1
    sim, _ = run([(0.0, 10, 3)], EngineConfig("continuous", kv_blocks=100))
    sim.run()
    res = finish(sim, SLO.splitwise())
    assert res.metrics["slowdown_ttft_p50"] == pytest.approx(1.0)
    assert res.metrics["slowdown_tbt_p99"] == pytest.approx(1.0)
    assert res.metrics["slowdown_e2e_p99"] == pytest.approx(1.0)
    assert res.metrics["slo_met"] and res.metrics["requests_within_slo"] == 1
    # 10 prompts of 100 tokens at once, one at a time: the last waits 9 x 11 s and its TTFT
    # is 110 s against 11 s alone (10x > 6x); TTFTs 11, 22, ... 110 s: P50 = 60.5 s (5.5x)
    reqs = [(0.0, 100, 1)] * 10
    sim, _ = run(reqs, EngineConfig("continuous", kv_blocks=1000, max_num_seqs=1))
    sim.run()
    res = finish(sim, SLO.splitwise())
    assert res.metrics["slowdown_ttft_p50"] == pytest.approx(5.5)
    assert not res.metrics["slo_met"]
    # one-token requests: E2E = TTFT, so the E2E bound (5x) binds before TTFT's (6x): the
    # first five requests (E2E <= 55 s) are within the SLO
    assert res.metrics["requests_within_slo"] == 5
    assert res.metrics["goodput_req_s"] == pytest.approx(5 / 110.0)


def test_absolute_slo_goodput():
    from sim.serve.metrics import parse_slo

    sim, _ = run([(0.0, 10, 3), (0.0, 10, 3)], EngineConfig("continuous", kv_blocks=100,
                                                              max_num_seqs=1))
    sim.run()
    # request 0: TTFT 2.0, tokens 3.1, 4.2; request 1 starts at 4.2: TTFT 6.2, E2E 8.4
    res = finish(sim, parse_slo("ttft=3s,tbt=2s"))
    assert res.metrics["requests_within_slo"] == 1
    assert res.metrics["goodput_req_s"] == pytest.approx(1 / 8.4)
    assert res.metrics["e2e_p50_s"] == pytest.approx((4.2 + 8.4) / 2)


def test_token_replica_rejects_a_request_its_cache_cannot_hold():
    cost = LinearCost()
    reps = [Replica(0, cost, EngineConfig("continuous", kv_blocks=100), "prompt"),
            Replica(1, cost, EngineConfig("continuous", block_size=4, kv_blocks=2), "token")]
    sim = Simulation(reps, Requests.build([0.0, 0.0], [10, 4], [3, 2]), record_tokens=True)
    reps[0].on_prefill_done = lambda r, rep, t: reps[1].accept(r, t)
    sim.run()
    res = finish(sim)
    # 10 + 3 - 1 = 12 tokens need 3 blocks of 4 > 2: rejected; 4 + 2 - 1 = 5 tokens fit
    assert [r.state for r in sim.reqs] == ["rejected", "done"]
    assert res.metrics["requests_rejected"] == 1


def test_chunked_prefill_schedules_decodes_before_unfinished_prefills():
    """Sarathi-Serve: under a token budget a decode is never stalled by a long prefill. A
    request whose KV arrives (prefilled elsewhere) joins behind a 30-token prompt that
    prefills in chunks of the 8-token budget; its decodes take 1 token of each iteration."""
    from sim.serve.request import Req

    cfg = EngineConfig("chunked", max_num_seqs=4, max_num_batched_tokens=8, kv_blocks=100)
    sim, reps = run([(0.0, 30, 2)], cfg)
    remote = Req(99, 0.5, 10, 3, record_tokens=True)
    remote.generated, remote.computed, remote.last_token_s = 1, 10, 0.5
    sim.at(0.5, lambda t, r: reps[0].accept(r, t), remote)
    sim.run()
    # it1 [0, 1.8]: A 8 tokens; it2 [1.8, 3.6]: R 1 + A 7; it3 [3.6, 5.4]: R 1 + A 7;
    # it4 [5.4, 7.2]: A its last 8 (first token); it5: A decodes (1.1 s)
    assert list(remote.tokens) == [3.6, 5.4]
    assert times(sim, 0) == [7.2, 8.3]


def test_kv_cache_evicts_unreferenced_prefixes_least_recently_used_first():
    from sim.serve.kvcache import KVCache

    kv = KVCache(10, 16, prefix_caching=True)
    kv.allocate(3)
    assert kv.publish(0, 3)           # group 0: 3 blocks, one reference
    kv.allocate(2)
    assert kv.publish(1, 2)           # group 1: 2 blocks
    kv.detach(0)
    kv.detach(1)                      # both cached, unreferenced: 5 evictable
    kv.attach(0)
    kv.detach(0)                      # group 0 used more recently than group 1
    assert kv.free == 5 and kv.can_allocate(10) and not kv.can_allocate(11)
    kv.allocate(6)                    # needs 1 more block: evicts group 1 (LRU) only
    assert kv.lookup(1) == 0 and kv.lookup(0) == 3 and kv.used == 9 and kv.evictions == 1
    with pytest.raises(AssertionError, match="over capacity"):
        kv.attach(0)
        kv.allocate(2)                # group 0 is referenced now: nothing to evict


def test_prompt_over_the_token_budget_is_rejected_not_stuck():
    cfg = EngineConfig("continuous", kv_blocks=100, max_model_len=16,
                       max_num_batched_tokens=16)
    sim, _ = run([(0.0, 40, 2), (0.0, 8, 2)], cfg)
    sim.run()
    assert [r.state for r in sim.reqs] == ["rejected", "done"]


def test_swapped_request_comes_back_when_room_frees():
    # 4-token blocks, 4 blocks: request 0 (8 + 8 - 1 = 15 tokens) needs all four; at its first
    # decode step it needs a third block and request 1 (7 tokens, 2 blocks) is swapped out;
    # it returns once request 0 is done
    cfg = EngineConfig("continuous", block_size=4, kv_blocks=4, preemption="swap")
    sim, _ = run([(0.0, 8, 8), (0.0, 7, 2)], cfg)
    sim.run()
    assert [r.state for r in sim.reqs] == ["done", "done"]
    assert sim.reqs[1].preemptions == 1 and sim.reqs[1].first_token_s < sim.reqs[0].finish_s
    assert sim.reqs[1].finish_s > sim.reqs[0].finish_s
    check_invariants(sim)


def test_request_whose_kv_fills_the_cache_exactly_is_served():
    # the KV holds prompt + output - 1 tokens (the last sampled token is never fed back):
    # 10 + 3 - 1 = 12 tokens = 3 blocks of 4, exactly the cache: served, not rejected
    cfg = EngineConfig("continuous", block_size=4, kv_blocks=3)
    sim, reps = run([(0.0, 10, 3)], cfg)
    sim.run()
    assert [r.state for r in sim.reqs] == ["done"]
    assert times(sim, 0) == [2.0, 3.1, 4.2]   # prefill 1 + 0.1 x 10, then two decodes of 1.1
    assert reps[0].kv.peak == 3


def test_prompt_that_is_all_cached_prefix_recomputes_its_last_token():
    # a 32-token prompt that is entirely a cached 32-token prefix (2 blocks of 16): vLLM
    # still computes the last prompt token to sample from, so 31 tokens are reused, 1 computed
    reqs = [(0.0, 32, 2, 0, 32), (100.0, 32, 2, 0, 32)]
    cfg = EngineConfig("continuous", block_size=16, kv_blocks=100, enable_prefix_caching=True)
    sim, _ = run(reqs, cfg)
    sim.run()
    assert [r.cached_tokens for r in sim.reqs] == [0, 31]
    assert [r.prefill_tokens for r in sim.reqs] == [32, 1]
    assert times(sim, 1) == [101.1, 102.2]    # 1 + 0.1 x 1 token, then a decode of 1.1
    check_invariants(sim)


def test_decode_context_counts_the_new_token():
    # a decode step at position p attends to the p cached tokens and itself: p + 1
    cost = LinearCost()
    sim, _ = run([(0.0, 10, 3)], EngineConfig("continuous", kv_blocks=100), cost=cost)
    sim.run()
    assert cost.calls == [(0, 0, ((10, 10),), 1), (1, 11, (), 1), (1, 12, (), 1)]


def test_only_full_blocks_of_a_prefix_are_shared():
    from sim.serve.kvcache import KVCache

    # 40 prefix tokens in 16-token blocks: 2 full blocks are shared, the 8-token tail is not
    assert KVCache(10, 16, prefix_caching=True).prefix_blocks(40) == 2
    assert KVCache(10, 16, prefix_caching=True).prefix_blocks(32) == 2
    assert KVCache(10, 16, prefix_caching=False).prefix_blocks(40) == 0


def test_goodput_counts_the_mean_time_between_tokens_against_its_slo():
    from sim.serve.metrics import parse_slo

    sim, _ = run(THREE, EngineConfig("continuous", max_num_seqs=2, kv_blocks=100))
    sim.run()
    # tokens (test_continuous_batching_hand_count): request 0 at 3.0, 6.2, 7.3 (mean TBT
    # (3.2 + 1.1) / 2 = 2.15 s > 1.5 s: missed); request 1 one token (no TBT); request 2 at
    # 5.0, 6.2 (1.2 s): 2 of 3 within the SLO over the 7.3 s run
    res = finish(sim, parse_slo("tbt=1.5s"))
    assert res.metrics["requests_within_slo"] == 2
    assert res.metrics["goodput_req_s"] == pytest.approx(2 / 7.3)
    # request 2 waits in the queue until request 1 leaves at 3.0 s; its first token is at 5.0
    assert res.requests["queue_s"].tolist() == [0.0, 0.0, 3.0]
    assert res.requests["ttft_s"].tolist() == [3.0, 3.0, 5.0]


def test_static_energy_counts_every_device_of_every_replica():
    class TwoDevices(LinearCost):
        def static_power(self) -> float:
            return 100.0

    cost = TwoDevices()
    cost.devices = 2
    sim, _ = run([(0.0, 10, 3)], EngineConfig("continuous", kv_blocks=100), cost=cost,
                 replicas=2)
    sim.run()
    # 4.2 s (2.0 + 1.1 + 1.1) x 2 replicas x 2 devices x 100 W
    res = finish(sim, price_per_hour=36.0)
    assert res.metrics["static_energy_J"] == pytest.approx(4.2 * 2 * 2 * 100.0)
    assert res.metrics["cost_usd"] == pytest.approx(36.0 * 2 * 4.2 / 3600)


def test_kv_swap_moves_blocks_between_the_cache_and_the_host_pool():
    from sim.serve.kvcache import KVCache

    kv = KVCache(8, 16, swap_capacity=6)
    kv.allocate(5)
    kv.swap_out(4)                     # 4 of the 5 blocks go to the host: 1 left here
    assert (kv.used, kv.swap_used) == (1, 4)
    assert kv.can_swap_out(2) and not kv.can_swap_out(3)
    kv.swap_in(4)                      # and come back
    assert (kv.used, kv.swap_used) == (5, 0)
    assert kv.can_swap_out(6)
