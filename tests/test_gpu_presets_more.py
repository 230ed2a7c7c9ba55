"""New GPU presets (H200, GH200, A100 PCIe, A40, L40S, MI250X, MI300X) against their spec sheets,
and tensor parallelism across two DGX H100 nodes (dgx-h100x2)."""

import pytest

from arch import load_arch
from sim.devices.base import device_for
from xpusim.commands.op import collective_op

NEW = ("h200", "gh200", "a100-pcie", "a40", "l40s", "mi250x", "mi300x", "mi325x", "dgx-h100x2")


@pytest.mark.parametrize("name", NEW)
def test_every_value_has_a_source(name):
    a = load_arch(name)
    assert a.type == "gpu"
    # fitted values copied from another GPU say so (the rule for untested transfers)
    src = a.provenance["gpu.tensor_efficiency"]
    if name == "h200":   # fitted on our own H200 rows, tested on the others
        assert src.startswith("FITTED") and "validation/h200/h200_gemm.csv" in src
    elif name in ("mi300x", "mi325x"):   # fitted on AMD's MI300X rows, tested on the MI325X's
        assert src.startswith("FITTED") and "amd-maf" in src and "MI325X" in src
    elif name == "a40":   # fitted on Vidur's A40 Llama-2-7B rows, tested on five other models
        assert src.startswith("FITTED") and "a40-gemm-vidur" in src and "tested" in src
    elif name == "gh200":   # the h200's boost-clock value, tested on suite mamf's GH200 rows
        assert src.startswith("derived, transfer tested") and "h200" in src and "mamf" in src
        assert a.gpu.tensor_efficiency == load_arch("h200").gpu.tensor_efficiency
    elif name == "l40s":   # a copied value that public data shows does not transfer says so
        assert src.startswith("assumption, a transfer that misses") and "-7%" in src
    elif name == "a100-pcie":   # a copied value tested on the one public row there is
        assert src.startswith("transfer, tested on one row") and "mamf" in src and \
            "5.4% slow" in src
    elif name not in ("dgx-h100x2",):
        assert "UNTESTED" in src


def test_spec_sheet_figures():
    h200, gh200, mi300x = load_arch("h200"), load_arch("gh200"), load_arch("mi300x")
    assert h200.memory["hbm"].bandwidth == pytest.approx(4.8e12)
    assert h200.memory["hbm"].capacity == pytest.approx(141e9)
    assert h200.gpu.tensor_flops["fp16"] == load_arch("h100").gpu.tensor_flops["fp16"]
    assert gh200.memory["hbm"].bandwidth == pytest.approx(4.0e12)
    assert gh200.sections["interconnect"]["nvlink_c2c"].bandwidth == pytest.approx(450e9)
    assert mi300x.gpu.tensor_flops["fp16"] == pytest.approx(1307.4e12)
    assert mi300x.memory["hbm"].capacity == pytest.approx(192e9)
    assert mi300x.gpu.power_limit == 750.0
    mi325x = load_arch("mi325x")
    assert mi325x.memory["hbm"].capacity == pytest.approx(256e9)
    assert mi325x.memory["hbm"].bandwidth == pytest.approx(6.0e12)
    assert mi325x.gpu.power_limit == 1000.0
    assert mi325x.gpu.tensor_flops == mi300x.gpu.tensor_flops
    assert load_arch("mi250x").gpu.sm_count == 220
    assert load_arch("a100-pcie").memory["hbm"].bandwidth == pytest.approx(1935e9)


@pytest.mark.parametrize("name,lanes,flop_per_clk", [("l40s", 128, 2), ("a40", 128, 2)])
def test_fp32_peak_is_sms_x_lanes_x_clock(name, lanes, flop_per_clk):
    g = load_arch(name).gpu
    assert g.vector_flops["fp32"] == pytest.approx(g.sm_count * lanes * flop_per_clk * g.clock,
                                                   rel=0.005)


def test_a40_tensor_peak_from_clock():
    g = load_arch("a40").gpu  # GA102: 1024 dense FP16 FLOP per clock per SM
    assert g.tensor_flops["fp16"] == pytest.approx(1024 * g.sm_count * g.clock, rel=0.005)


def test_h200_streams_weights_faster_by_the_bandwidth_ratio():
    """A weight-streaming GEMV (512 MiB of weights) is memory-bound: without the fixed costs
    and the overlap term (same on both), the H100/H200 time ratio is the HBM ratio 4.8 / 3.35."""
    import dataclasses

    from sim.gpu.gemm import best_gemm

    times = []
    for name in ("h100", "h200"):
        hw = dataclasses.replace(device_for(load_arch(name), "tile").hw, gemm_overlap_p=0.0)
        n = k = 16384
        g = best_gemm(hw, 1, 1, n, k, 2.0, 2.0 * k, 2.0 * k * n, 2.0 * n, 989.4e12)
        times.append(g["time"] - hw.launch - hw.gemm_fixed - hw.hbm_latency)
    assert times[0] / times[1] == pytest.approx(4.8 / 3.35, rel=0.01)


def test_two_node_allreduce_is_one_ring_over_infiniband():
    """1 GiB per rank among 16 GPUs on 2 nodes: NCCL runs one flat ring over all 16 ranks
    (2 x 15/16 of the buffer per rank) at the lower of NVLink (450 GB/s x 0.78) and the node's
    eight NDR NICs together (8 x 50 GB/s x 0.9), plus NCCL's Simple ring latency: 8.4 us + 28
    NVLink steps of 3.79 us + 2 network steps of 14 us, x1.4 across nodes (nccl_tuning.py)."""
    a = load_arch("dgx-h100x2")
    dev = device_for(a, "tile")
    s = float(1 << 30)
    cost = dev.estimate(collective_op("allreduce", int(s), 16))
    nv, ib = 450e9 * 0.78, 50e9 * 0.9
    hand = 2 * (15 / 16) * s / min(nv, 8 * ib) + (8.4 + 28 * 3.79 + 2 * 14) * 1.4e-6
    assert cost.detail["algorithm"] == "ring"
    assert cost.latency == pytest.approx(hand, rel=0.02)
    one_node = device_for(load_arch("dgx-h100"), "tile").estimate(
        collective_op("allreduce", int(s), 8)).latency
    assert cost.latency > one_node


def test_tp16_run_on_two_nodes(capsys):
    import json

    from xpusim.cli import main

    assert main(["run", "--arch", "dgx-h100x2", "--model", "llama2-70b", "--tp", "16",
                 "--batch", "2", "--prompt", "64", "--gen", "2", "--json", "--quiet"]) == 0
    data = json.loads(capsys.readouterr().out)
    # one dependency chain over 16 shards: TTFT is the sum of the prefill ops' latencies, and
    # each layer's all-reduces cross InfiniBand, so they cost more than on one node's NVSwitch
    from sim.run import simulate
    from workloads.models import get_model
    from workloads.scenario import Scenario

    sc16 = Scenario(batch=2, prompt_len=64, gen_len=2, tp=16)
    res = simulate(load_arch("dgx-h100x2"), get_model("llama2-70b"), sc16)
    pre = res.ops[res.ops.phase == "prefill"]
    assert data["ttft_s"] == pytest.approx(pre.latency_s.sum(), rel=1e-9)
    assert res.metrics["ttft_s"] == pytest.approx(data["ttft_s"], rel=1e-12)
    one = simulate(load_arch("dgx-h100"), get_model("llama2-70b"),
                   Scenario(batch=2, prompt_len=64, gen_len=2, tp=8))
    one_pre = one.ops[one.ops.phase == "prefill"]
    assert pre[pre.kind == "collective"].latency_s.sum() > \
        one_pre[one_pre.kind == "collective"].latency_s.sum()
    assert main(["run", "--arch", "dgx-h100", "--model", "llama2-70b", "--tp", "16",
                 "--batch", "2", "--prompt", "64", "--gen", "2", "--json", "--quiet"]) == 2
