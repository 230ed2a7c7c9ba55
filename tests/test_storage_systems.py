"""SSD and CSD devices in a system: flash access patterns, FlexGen's relayed disk reads,
InstInfer's in-storage attention."""

import pytest

from arch import load_arch
from sim.run import simulate
from sim.system.placement import parse_placement
from sim.system.schedule import Policies
from sim.system.storage import closed_form_bandwidth, pattern_bandwidth
from sim.system.topology import build_system
from workloads.models import get_model
from workloads.scenario import Scenario


def test_flash_pattern_bandwidth_by_hand():
    f = load_arch("samsung-980pro").flash
    assert f.read_bandwidth == pytest.approx(min(8 * 1e9, 64 * 16384 / 45e-6))
    # first order: one 4 KiB read = firmware 5 us + tR 45 us + 4096 B over one 1 GB/s channel
    t = 5e-6 + 45e-6 + 4096 / 1e9
    assert closed_form_bandwidth(f, 4096, 1) == pytest.approx(4096 / t)
    assert closed_form_bandwidth(f, 131072, 32) == pytest.approx(8e9)
    # the event model adds NVMe / PCIe / command overheads: a little slower, never faster
    qd1 = pattern_bandwidth(f, 4096, 1, random=True)
    assert 0.9 * 4096 / t < qd1 <= 4096 / t
    # more requests in flight and larger requests never read slower
    assert pattern_bandwidth(f, 4096, 32, random=True) > 10 * qd1
    assert pattern_bandwidth(f, 131072, 32) > pattern_bandwidth(f, 4096, 32, random=True)
    assert pattern_bandwidth(f, 131072, 32) <= f.read_bandwidth


def test_storage_tiers_in_the_system():
    s = build_system(load_arch("a6000-storage"))
    assert s.tiers["csd0.flash"].bandwidth == pytest.approx(8 * 1.4e9)
    assert [h.link for h in s.route("csd0", "gpu0").hops] == ["pcie_csd", "pcie"]
    assert [h.link for h in s.route("ssd0.flash", "host_ddr").hops] == ["pcie_ssd", "pcie_host",
                                                                         "ddr"]


@pytest.fixture(scope="module")
def runs():
    arch, model = load_arch("a6000-storage"), get_model("opt-13b")
    sc = dict(batch=16, prompt_len=256, gen_len=3)
    flex = simulate(arch, model, Scenario(**sc), placement=parse_placement("kv_cache=ssd0.flash"),
                    policies=Policies(relay_storage=True, storage_queue_depth=4))
    inst = simulate(arch, model, Scenario(**sc), placement=parse_placement("kv_cache=csd0.flash"),
                    policies=Policies(attention_on="csd"))
    sparse = simulate(arch, model, Scenario(**sc, sparse_kv=0.125),
                      placement=parse_placement("kv_cache=csd0.flash"),
                      policies=Policies(attention_on="csd", storage_request=4096))
    return flex, inst, sparse


def test_flexgen_relays_the_kv_cache_through_host_ddr(runs):
    flex = runs[0]
    trs = flex.transfers
    dec = trs[trs["phase"] == "decode"]
    legs = set(zip(dec["src"], dec["dst"], strict=True))
    # reads: disk -> host DDR -> GPU; new tokens' K and V: GPU -> host DDR -> disk
    assert legs == {("ssd0.flash", "host_ddr"), ("host_ddr", "gpu0.hbm"),
                    ("gpu0.hbm", "host_ddr"), ("host_ddr", "ssd0.flash")}
    by_leg = dec.groupby(["src", "dst"])["bytes"].sum()
    assert by_leg["ssd0.flash", "host_ddr"] == pytest.approx(by_leg["host_ddr", "gpu0.hbm"])
    assert by_leg["gpu0.hbm", "host_ddr"] == pytest.approx(by_leg["host_ddr", "ssd0.flash"])
    assert set(flex.invariants.values()) == {"passed"}


def test_instinfer_attention_runs_in_the_drive(runs):
    inst = runs[1]
    ops = inst.ops
    attn = ops[(ops["phase"] == "decode") & (ops["op_class"] == "attention")]
    assert set(attn["stream"]) == {"csd0.compute"}
    res = inst.resources.set_index("resource")
    # the KV cache streams from the drive's own flash, never over the PCIe links
    assert res.loc["csd0.flash", "bytes"] > 0
    dec = inst.transfers[inst.transfers["phase"] == "decode"]
    # besides queries and outputs, only each step's new K and V go to the drive, peer to peer:
    # batch 16 x 2 (K, V) x 40 heads x 128 x 2 B per layer
    kv = dec[dec["tensor"] == "kv_cache"]
    assert set(dec["tensor"]) == {"activations", "kv_cache"}
    assert set(zip(kv["src"], kv["dst"], strict=True)) == {("gpu0.hbm", "csd0.flash")}
    assert (kv["bytes"] == 16 * 2 * 40 * 128 * 2).all()
    assert set(kv["route"]) == {"pcie> pcie_csd<"}
    # the engine is compute-bound at its measured 13 GFLOPS: each attention op takes at least
    # FLOPs / (650 GFLOP/s x 0.02)
    assert (attn["latency_s"] >= attn["flops"] / 13e9 * (1 - 1e-9)).all()
    # ... and no slower than the larger of that (plus the 10 us kernel call) and streaming all
    # the op's bytes from the 11.2 GB/s flash: a factor two anywhere would leave this band
    upper = (attn["flops"] / 13e9 + 10e-6).combine(attn["bytes"] / 11.2e9, max)
    assert (attn["latency_s"] <= upper * 1.02).all()
    assert set(inst.invariants.values()) == {"passed"}


def test_sparse_kv_reads_an_eighth(runs):
    inst, sparse = runs[1], runs[2]

    def kv_flops(r):
        ops = r.ops
        return ops[(ops["phase"] == "decode") & (ops["op_class"] == "attention")]["flops"].sum()

    # ceil(n / 8) of the KV entries at every decode step: KV lengths 257 and 258 -> 33 and 33
    assert kv_flops(sparse) / kv_flops(inst) == pytest.approx((33 + 33) / (257 + 258), rel=1e-12)
    assert sparse.metrics["tpot_s"] < inst.metrics["tpot_s"]


def test_instinfer_reproduction_quick():
    from argparse import Namespace

    from xpusim.reproductions.instinfer import reproduce

    out = reproduce(Namespace(quick=True))
    rows = {p["batch"]: p for p in out["points"]}
    assert rows[64]["instinfer_tokens_per_s"] > rows[64]["flexgen_tokens_per_s"]
    assert rows[64]["instinfer_sparse_tokens_per_s"] > rows[64]["instinfer_tokens_per_s"]
    assert {r["claim"][:6] for r in out["results"]} == {"sparse", "dense "}
