"""Splitwise pools on the serving engine (sim/serve/pools.py), provisioning (dse/provision.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dse.provision import best_mix, max_rate, mixes
from sim.devices.base import SimError
from sim.serve.pools import (
    MACHINES,
    Cluster,
    Pool,
    cluster_cost,
    cluster_power,
    infiniband,
    kv_transfer_delay,
    run_cluster,
)
from sim.serve.replica import EngineConfig
from workloads.requests import Requests

#: Llama-2-70B KV bytes per token, whole model: 80 layers x (K, V) x 8 KV heads x 128 x 2 B
LLAMA70_KV = 80 * 2 * 8 * 128 * 2


def _layerwise(kv: float, pass_s: float, layers: int, bw: float) -> float:
    """Per-layer recurrence: layer i ready at (i+1) pass/L, sent in order over one link."""
    done = 0.0
    for i in range(layers):
        done = max(done, (i + 1) * pass_s / layers) + kv / layers / bw
    return done - pass_s


@pytest.mark.parametrize("kv,pass_s", [(2e8, 0.5), (2e8, 1e-4), (5e9, 0.2), (1e6, 0.05)])
def test_layerwise_kv_transfer_matches_the_per_layer_recurrence(kv, pass_s):
    bw, layers = 180e9, 80
    got = kv_transfer_delay(kv, pass_s, layers, bw, latency=2.1e-6)
    assert got == pytest.approx(_layerwise(kv, pass_s, layers, bw) + 2.1e-6, rel=1e-9)
    serial = kv_transfer_delay(kv, pass_s, layers, bw, latency=2.1e-6, serialized=True)
    assert serial == pytest.approx(kv / bw + 2.1e-6, rel=1e-12)
    assert got <= serial + 1e-15


def test_machine_infiniband_from_the_presets():
    from arch import load_arch

    # DGX datasheets: 8 NICs, HDR 200 Gb/s (A100) / NDR 400 Gb/s (H100), 0.9 RDMA efficiency
    bw, lat = infiniband(load_arch("dgx-a100"), 8)
    assert bw == pytest.approx(8 * 25e9 * 0.9) and lat == pytest.approx(2.1e-6)
    bw, _ = infiniband(load_arch("dgx-h100"), 8)
    assert bw == pytest.approx(8 * 50e9 * 0.9)


def test_costs_and_power_hand_counts():
    # splitwise-sim's iso-cost hybrid cluster (51 A100 + 16 H100) costs within 1% of 40 H100
    hybrid = [Pool("dgx-a100", 51, "token"), Pool("dgx-h100", 16, "prompt")]
    assert cluster_cost(hybrid) == pytest.approx(17.6 * 51 + 38 * 16)
    assert cluster_cost(hybrid) / cluster_cost([Pool("dgx-h100", 40, "mixed")]) == \
        pytest.approx(1.0, abs=0.01)
    assert cluster_power([Pool("dgx-h100-pcap", 2, "token")]) == pytest.approx(2 * 0.7 * 10200)
    assert MACHINES["dgx-a100"].power_W == 6500.0


def test_pool_errors():
    cfg = EngineConfig()
    with pytest.raises(SimError, match="role expected"):
        Cluster([Pool("dgx-a100", 1, "decode")], "llama2-70b", cfg)
    with pytest.raises(SimError, match="needs a token pool"):
        Cluster([Pool("dgx-a100", 1, "prompt")], "llama2-70b", cfg)
    with pytest.raises(SimError, match="unknown machine"):
        Cluster([Pool("dgx-b200", 1, "mixed")], "llama2-70b", cfg)


@pytest.fixture(scope="module")
def models():
    return {}


def _reqs(n: int, gap: float, prompt: int, output: int) -> Requests:
    return Requests.build(np.arange(n) * gap, np.full(n, prompt), np.full(n, output))


@pytest.mark.parametrize("serialized", [False, True])
def test_one_request_hand_off_times(models, serialized):
    """One request alone: the prompt machine's pass gives the first token; the KV lands
    ``delay`` later; the token machine's first decode step gives the second token."""
    cl = Cluster([Pool("dgx-h100", 1, "prompt"), Pool("dgx-a100", 1, "token")], "llama2-70b",
                 EngineConfig(), models=models, serialized=serialized)
    res = run_cluster(cl, _reqs(1, 1.0, 2000, 3))
    r = res.sim.reqs[0]
    h100, a100 = cl.replicas[0].model, cl.replicas[1].model
    pass_s = h100.iteration(0, 0, [(2000, 2000)], 1).seconds
    assert r.first_token_s == pytest.approx(pass_s, rel=1e-9)
    [(rid, kv, delay)] = cl.transfers
    assert kv == pytest.approx(2000 * LLAMA70_KV)
    assert delay == pytest.approx(kv_transfer_delay(kv, pass_s, 80, 360e9, 2.1e-6, serialized))
    step = a100.iteration(1, 2001, [], 1).seconds
    second = r.first_token_s + delay + step
    third = second + a100.iteration(1, 2002, [], 1).seconds
    assert r.finish_s == pytest.approx(third, rel=1e-9)
    assert r.events.count("handoff") == 1 and r.events.count("accept") == 1
    assert res.invariants and all(res.invariants.values())


def test_split_pools_serve_every_request_once(models):
    cl = Cluster([Pool("dgx-a100", 1, "prompt"), Pool("dgx-a100", 2, "token")], "llama2-70b",
                 EngineConfig(), models=models)
    res = run_cluster(cl, _reqs(40, 0.05, 700, 20))
    m = res.metrics
    assert m["requests_completed"] == 40 and len(cl.transfers) == 40
    # every token after the first is made on a token machine: output tokens are conserved
    assert int(res.requests["output_tokens"].sum()) == 40 * 20
    token_busy = [rep.busy_s for rep in cl.replicas if rep.role == "token"]
    assert min(token_busy) > 0        # least-outstanding routing uses both token machines


def test_mixes_are_maximal_and_within_budget():
    assert mixes([38.0, 17.6], 0.8 * 4 * 38) == [(1, 4), (2, 2)]
    assert mixes([6500.0, 6500.0], 4 * 6500.0) == [(1, 3), (2, 2), (3, 1)]
    assert mixes([3.0], 10.0) == [(3,)]
    with pytest.raises(ValueError):
        best_mix([], lambda m: 0.0)
    best, val, table = best_mix([(1, 3), (2, 2)], lambda m: m[0] * 10 + m[1])
    assert best == (2, 2) and val == 22 and len(table) == 2


def test_max_rate_bisection_brackets_the_threshold():
    calls = []

    def passes(r):
        calls.append(r)
        return r <= 3.7

    got = max_rate(passes, 0.1, 40.0, steps=12)
    ratio = (40.0 / 0.1) ** (0.5 ** 12)
    assert got <= 3.7 and got * ratio >= 3.7 * (1 - 1e-12)
    assert max_rate(lambda r: False, 0.1, 4) == 0.0
    assert max_rate(lambda r: True, 0.1, 4, grow=3) == 32       # 4 doubled three times
    assert math.isfinite(got) and len(calls) == 14
    # a threshold above hi: the bracket grows (4 -> 8 -> 16) and bisection continues there
    got = max_rate(lambda r: r <= 11.0, 0.1, 4.0, steps=10)
    assert got <= 11.0 and got * 2 ** (0.5 ** 10) >= 11.0 * (1 - 1e-12)


def test_reproduce_splitwise_small(monkeypatch):
    """The reproduction's figures are the search's own: ratios of the designs' rates at SLO,
    the chosen mix's cost by hand, and every rate at SLO passes while the next probe fails."""
    import argparse

    from xpusim.reproductions import splitwise

    args = argparse.Namespace(machines=2, requests=60, steps=3, json=True)
    out = splitwise.reproduce(args)
    res, d = out["results"], out["designs"]
    assert [r["target"] for r in res] == [1.4, 0.8, 2.15]
    [[(hp, ht), ha_rate]] = d["ha_table"]          # 0.8 x 2 x $38 fits only 1 H100 + 1 A100
    assert (hp, ht) == (1, 1)
    assert res[0]["measured"] == pytest.approx(ha_rate / d["baseline_h100_rate"])
    assert res[1]["measured"] == pytest.approx((38 + 17.6) / (2 * 38))
    assert res[2]["measured"] == pytest.approx(d["aa_table"][0][1] / d["baseline_a100_rate"])
    by_design: dict[str, list] = {}
    for p in out["points"]:
        by_design.setdefault(p["design"], []).append((p["rate_req_s"], p["slo_met"]))
    base = by_design["2xdgx-h100:mixed"]
    assert (d["baseline_h100_rate"], True) in base
    assert all(ok for rate, ok in base if rate <= d["baseline_h100_rate"])
    assert any(not ok for rate, ok in base if rate > d["baseline_h100_rate"])


def test_power_capped_h100_slows_prompts_not_decode(models):
    """70% power cap: the sustained tensor clock scales by 0.7^(1/3) = 0.888 (P ~ f^3); a
    GEMM-bound prompt pass slows by at most 1/0.888, a memory-bound decode step barely."""
    cfg = EngineConfig()
    cl = Cluster([Pool("dgx-h100", 1, "mixed"), Pool("dgx-h100-pcap", 1, "mixed")],
                 "llama2-70b", cfg, models=models)
    full, capped = cl.replicas[0].model, cl.replicas[1].model
    eff = [m.device.arch.sections["gpu"].tensor_efficiency for m in (full, capped)]
    assert eff[1] / eff[0] == pytest.approx(0.7 ** (1 / 3), rel=1e-9)
    pre = [m.iteration(0, 0, [(4096, 4096)], 1).gpu_s for m in (full, capped)]
    assert 1.03 < pre[1] / pre[0] <= 1 / 0.7 ** (1 / 3) + 1e-9
    dec = [m.iteration(8, 8 * 1500, [], 8).gpu_s for m in (full, capped)]
    assert dec[1] / dec[0] < 1.02
    assert cl.power_W() == pytest.approx(10200 + 7140)


def test_mixed_pool_beside_split_pools(models):
    """A mixed machine serves whole requests beside a prompt/token pair: requests routed to it
    are never handed off, the others always are."""
    cl = Cluster([Pool("dgx-h100", 1, "prompt"), Pool("dgx-a100", 1, "token"),
                  Pool("dgx-a100", 1, "mixed")], "llama2-70b", EngineConfig(), models=models)
    res = run_cluster(cl, _reqs(30, 0.1, 600, 10), router="round_robin")
    reqs = res.sim.reqs
    assert res.metrics["requests_completed"] == 30
    handed = [r for r in reqs if "handoff" in r.events]
    assert len(handed) == len(cl.transfers) == 15      # round robin over the two entry machines
    assert all(r.replica == 1 for r in handed)          # finished on the token machine
    assert all(r.replica == 2 for r in reqs if "handoff" not in r.events)


def test_power_cap_scales_every_dtype_rate(tmp_path):
    """A power cap lowers the sustained clock of every matrix pipeline: a GPU with its own fp8
    rate (``tensor_efficiency_by_dtype``) gets both rates scaled by 0.7^(1/3)."""
    from sim.serve.pools import MachineType
    yaml_file = tmp_path / "capped.yaml"
    yaml_file.write_text(
        "extends: dgx-h100\nname: dgx-h100-fp8\ncomponents:\n  gpu:\n    overrides:\n"
        "      gpu:\n        tensor_efficiency_by_dtype:\n"
        "          fp8: {value: 0.8, source: test}\n")
    full = MachineType("full", str(yaml_file), 1.0, 1.0, "test").load_arch("ideal")
    capped = MachineType("cap", str(yaml_file), 1.0, 1.0, "test", power_cap=0.7).load_arch("ideal")

    def gpu(a):
        return a.sections["components"]["gpu"].device.sections["gpu"]
    scale = 0.7 ** (1 / 3)
    assert gpu(full).tensor_efficiency_by_dtype["fp8"] == pytest.approx(0.8)
    assert gpu(capped).tensor_efficiency_by_dtype["fp8"] == pytest.approx(0.8 * scale, rel=1e-12)
    assert gpu(capped).tensor_efficiency == pytest.approx(gpu(full).tensor_efficiency * scale,
                                                          rel=1e-12)


def test_windowed_layers_hand_off_their_window(models):
    """gpt-oss-20b (12 of 24 layers windowed to 128 tokens): a 2,000-token prompt hands off
    the global layers' 2,000 tokens and the windowed layers' last 128, per device 2 x 8 KV
    heads / TP 8 x 64 x 2 B a token and layer on each of the 8 GPUs."""
    cl = Cluster([Pool("dgx-h100", 1, "prompt"), Pool("dgx-h100", 1, "token")], "gpt-oss-20b",
                 EngineConfig(), models=models)
    run_cluster(cl, _reqs(1, 1.0, 2000, 3))
    [(_, kv, _)] = cl.transfers
    per_layer_token = 2 * 1 * 64 * 2 * 8
    assert kv == pytest.approx(per_layer_token * (12 * 2000 + 12 * 128), rel=1e-12)
