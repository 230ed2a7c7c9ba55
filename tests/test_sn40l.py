"""SN40L Composition of Experts: expert cache, model switching, the reproduction's shape."""

from __future__ import annotations

import argparse

import pytest

from arch import load_arch
from workloads.coe import CoE, ExpertCache, misses, routing_stream
from workloads.errors import WorkloadError
from workloads.models import get_model
from xpusim.reproductions import sn40l


def test_lru_and_fifo_evict_differently():
    stream = [1, 2, 1, 3, 2, 1]
    # LRU, 2 slots: 1m 2m 1h 3m(evict 2) 2m(evict 1) 1m(evict 3)
    assert misses(stream, 2, "lru") == [True, True, False, True, True, True]
    # FIFO, 2 slots: 1m 2m 1h 3m(evict 1) 2h 1m(evict 2)
    assert misses(stream, 2, "fifo") == [True, True, False, True, False, True]
    cache = ExpertCache(0)
    assert not cache.request(5) and not cache.request(5)
    with pytest.raises(WorkloadError, match="eviction"):
        ExpertCache(2, "random")


def test_resident_experts_and_routing_stream():
    coe = CoE(150, expert_bytes=13.5e9, router_bytes=13.5e9)
    # 8 x 64 GiB HBM less the router and a 10 GB reserve, in 13.5 GB experts
    assert coe.resident_experts(8 * 64 * 2**30, 10e9) == int((8 * 64 * 2**30 - 23.5e9) // 13.5e9)
    assert CoE(3, 1.0, 0.0).resident_experts(100.0) == 3
    a = routing_stream(1000, 150, seed=1)
    assert a == routing_stream(1000, 150, seed=1) and min(a) >= 0 and max(a) < 150
    # uniform over 150 experts with 50 slots: the steady-state miss rate is 1 - 50/150
    rate = sum(misses(routing_stream(20000, 150, seed=2), 50)[2000:]) / 18000
    assert rate == pytest.approx(1 - 50 / 150, abs=0.02)


def test_switching_from_link_specs():
    expert = get_model("llama2-7b").param_count() * 2
    sw = sn40l.switching(expert)
    # SN40L: each socket reads its eighth over its DDR -> HBM path (1 TB/s per node / 8)
    assert sw["sn40l_s"] == pytest.approx(expert / 8 / 125e9)
    # paper build: the whole expert over one PCIe x16 link (Gen4 31.5, Gen5 63 GB/s)
    assert sw["dgx-a100_paper_s"] == pytest.approx(expert / (16e9 * 16 * 128 / 130 / 8))
    assert sw["dgx-a100_paper_s"] / sw["sn40l_s"] == pytest.approx(31.7, abs=0.1)
    assert sw["dgx-h100_paper_s"] / sw["sn40l_s"] == pytest.approx(15.9, abs=0.1)
    # engine build: eight shards at once, each over its own PCIe link (85% of peak), all
    # sharing the host DDR (16 channels x 25.6 GB/s x 0.7 on DGX A100)
    link = 31.5077e9 * 0.85
    tier = 16 * 25.6e9 * 0.7
    assert sw["dgx-a100_engine_s"] == pytest.approx(max(expert / 8 / link, expert / tier),
                                                    rel=1e-3)


def test_with_fusion_keeps_the_preset_untouched():
    node = load_arch("sn40l-node")
    unf = sn40l.with_fusion(node, "none")
    assert unf.sections["components"]["rdu"].device.dataflow.fusion == "none"
    assert node.sections["components"]["rdu"].device.dataflow.fusion == "decoder"


def test_reproduction_quick_shape_and_mechanism():
    out = sn40l.reproduce(argparse.Namespace(quick=True))
    assert out["name"] == "sn40l"
    by = {r["claim"]: r for r in out["results"]}
    assert len(by) == len(out["results"]) >= 10
    for r in out["results"]:
        assert r["rel_error"] == pytest.approx(r["measured"] / r["target"] - 1)
    table = out["fusion_table"]
    assert {r["kernel"] for r in table} == {"llama2-7b decoder, decode",
                                            "llama2-7b decoder, prefill"}
    for r in table:
        assert r["speedup"] > 1.0                     # fusion never slower
        # one call per layer, embedding and LM head group vs one per op
        assert r["decoder_calls"] == 32 + 2
        assert r["none_calls"] == 32 * 15 + 4
    # SN40L switches faster and runs the CoE faster than both DGX builds
    for row in out["coe"]:
        assert row["speedup_all_switch"] > 1.0
    assert out["wall_s"] > 0 and out["cpu_s"] > 0
