"""NCCL all-reduce fidelity on A100 (issue 17): the per-call costs, checked on data not fitted.

Independent expectation: nccl-tests on 4x A100 NVLink as published by LLMCompass
(PrincetonUniversity/LLMCompass ae/figure5/h/test_allreduce.py, ``gpu_latency_list``, us per
back-to-back all-reduce of ``size`` bytes). Of its rows, 8 B (NVLink latency) and 16 GiB (NVLink
efficiency) set dgx-a100 preset values; the others are held out. The LL128/Simple costs of
dgx-a100 are FITTED on the train rows of Vidur's profiles (suite a100-allreduce-vidur).
"""

from __future__ import annotations

import pytest

from arch import load_arch
from arch.topology_view import device_view
from xpusim.validation.vidur_allreduce_a100 import allreduce_op, node_device

US = 1e-6
# LLMCompass ae/figure5/h: size (B) -> us, 4x A100 NVLink (NVLinkV3_FC_4), nccl-tests
LLMCOMPASS_4XA100 = {
    16: 13.92, 32: 12.39, 64: 13.22, 128: 12.35, 256: 12.45, 512: 13.12, 1024: 13.02,
    2048: 15.12, 4096: 15.23,
    2 << 20: 66.40, 4 << 20: 84.75, 8 << 20: 128.8, 16 << 20: 195.7, 32 << 20: 279.7,
    64 << 20: 532.3, 128 << 20: 961.7,
}


def _model(system: str, nbytes: int, group: int) -> float:
    """Seconds per back-to-back all-reduce call (kernel + launch overhead), as nccl-tests times."""
    return node_device(8, system).estimate(allreduce_op(nbytes, group)).latency


def _mape(rows: dict[int, float], system: str = "dgx-a100", group: int = 4) -> float:
    errs = [abs(_model(system, n, group) / (t * US) - 1) for n, t in rows.items()]
    return sum(errs) / len(errs)


def test_launch_overhead_counted_once():
    """8-byte all-reduce, 4 GPUs: launch 2 us + NCCL LL base 6.6 us + 6 steps x (0.6 us NCCL hop
    + 0.053 us NVLink) (+ 1.5 x 8 B on the wire) = 12.52 us, the nccl-tests figure (was
    14.54 us: the 0.39 us link latency had been derived without the launch overhead the model
    adds to every kernel). 8 B run on one of the node's 24 NCCL channels (enqueue.cc channel
    tuning): the wire term uses 1/24 of the LL bandwidth."""
    hand = (2 + 6.6 + 6 * (0.6 + 0.053)) * US + 1.5 * 8 / (0.25 * 0.78 * 300e9 / 24)
    assert _model("dgx-a100", 8, 4) == pytest.approx(hand, rel=1e-6)
    assert hand == pytest.approx(12.52 * US, rel=0.002)


def test_held_out_nccl_tests_small_sizes():
    """16 B-4 KB (LL, latency-bound): MAPE 3.7% (6.7% without NCCL's channel tuning, 11% with
    the double-counted launch). 2 and 4 KB run on one of the 24 channels (enqueue.cc): -8.9% and
    -1.3% (-16.9% and -17.1% at full bandwidth)."""
    small = {n: t for n, t in LLMCOMPASS_4XA100.items() if n <= 4096}
    assert _mape(small) < 0.05
    for n in (2048, 4096):
        assert _model("dgx-a100", n, 4) == pytest.approx(LLMCOMPASS_4XA100[n] * US, rel=0.10)


def test_held_out_nccl_tests_megabytes():
    """2-128 MB: MAPE 4.8% with the A100 LL128/Simple costs fitted on Vidur's rows (2.9% with
    the earlier fit 30 us / 0.65 / 50 us; 22% with NCCL's tuning-model costs: 14 us / 0.92 /
    8.4 us), every row within 12% (2 MB: -11.7%; was within 10% with the earlier fit)."""
    big = {n: t for n, t in LLMCOMPASS_4XA100.items() if n >= 2 << 20}
    assert _mape(big) < 0.06
    for n, t in big.items():
        assert _model("dgx-a100", n, 4) == pytest.approx(t * US, rel=0.12), n


def test_ll128_time_by_hand():
    """8 MiB on 4 GPUs runs LL128 on all 24 channels: 2 + 22.5 + 6 x (1.9 + 0.053) us + 1.5 x
    8 MiB / (0.6 x 234 GB/s) (the FITTED 22.5 us and 0.6)."""
    n = 8 << 20
    hand = (2 + 22.5 + 6 * 1.953) * US + 1.5 * n / (0.6 * 300e9 * 0.78)
    cost = node_device(8, "dgx-a100").estimate(allreduce_op(n, 4))
    assert cost.detail["protocol"] == "ll128"
    assert cost.latency == pytest.approx(hand, rel=1e-6)


def test_hopper_presets_keep_nccl_protocol_costs():
    """The A100-FITTED protocol costs are not copied to Hopper (LL128 and Simple keep NCCL's);
    the DGX-H100 LL values are its own (fitted on its nccl-tests log). 8 GPUs, 8 KB: ring LL
    2 + 6.6 + 14 x (0.46 + 0.053) us + 1.75 x 8 KB / 17 GB/s: NCCL runs 8 KB on one of 24
    channels (the ring LL threshold 8 B x 8 ranks x 512 threads is 32 KB per channel), at one
    channel's own rate."""
    h = device_view(load_arch("dgx-h100"), "gpu")
    ll128 = h.sections["software"].collective_protocols["ll128"]
    assert ll128.base_latency == pytest.approx(14 * US) and ll128.bandwidth_fraction == 0.92
    assert "FITTED" not in h.provenance.get("software.collective_protocols.ll128.base_latency", "")
    hand = (2 + 6.6 + 14 * 0.513) * US + 1.75 * 8192 / 17e9
    assert _model("dgx-h100", 8192, 8) == pytest.approx(hand, rel=1e-6)


def test_fitted_values_are_the_train_fit(vidur_ctx):
    """fit_nccl on the train rows gives the presets' FITTED LL128 values; its Simple base is a
    flat direction: the presets' 60 us sits within 0.1 point of train MAPE of the grid optimum
    (70 us; a wider grid keeps lowering it by ~0.03 points per 10 us up to ~120 us, far above
    NCCL's 8.4 us: it absorbs what the model lacks, so the preset keeps 60 us).
    fit_network gives the preset's network bandwidth and latency exactly."""
    from xpusim.validation.vidur_allreduce_a100 import fit_nccl, fit_network

    a = device_view(load_arch("dgx-a100"), "gpu")
    protos = a.sections["software"].collective_protocols
    multi = load_arch("dgx-a100x2-vidur")
    ib = multi.interconnect["infiniband"]
    values, train = fit_nccl(vidur_ctx, latencies=(ib.latency,))
    assert values["ll128_base"] == pytest.approx(protos["ll128"].base_latency)
    assert values["ll128_fraction"] == pytest.approx(protos["ll128"].bandwidth_fraction)
    held, held_train = fit_nccl(vidur_ctx, bandwidths=(ib.bandwidth,), latencies=(ib.latency,),
                                grid={"ll128_base": (protos["ll128"].base_latency,),
                                      "ll128_fraction": (protos["ll128"].bandwidth_fraction,),
                                      "simple_base": (protos["simple"].base_latency,)})
    assert held_train - train < 0.001
    net, _ = fit_network(vidur_ctx)
    assert net["bandwidth"] == pytest.approx(ib.bandwidth)
    assert net["latency"] == pytest.approx(ib.latency)
    assert multi.sections["software"].collective_protocols == protos
    for leaf in ("ll128.base_latency", "ll128.bandwidth_fraction", "simple.base_latency"):
        assert "FITTED" in a.provenance[f"software.collective_protocols.{leaf}"]
    assert held_train < 0.24


def test_suite_test_rows(vidur_ctx):
    """Held-out rows of a100-allreduce-vidur: MAPE 23.9% (25.0% before NCCL's channel tuning
    and 2 (nNodes-1) ring network steps, 31.3% before the 2-node tree and the network latency,
    36.6% before the protocol fit); the single-node rows of 2 MB and more, where the kernels
    are GPU-bound, within 10% (bias within 5%)."""
    from xpusim.validation import bias, mape
    from xpusim.validation.vidur_allreduce_a100 import run

    pts = [p for p in run(vidur_ctx) if p.split == "test"]
    assert mape(pts) < 0.245
    big = [p for p in pts if "(1 node)" in p.case and int(p.case.split()[-2]) >= 2_000_000]
    assert len(big) == 9
    assert mape(big) < 0.10 and abs(bias(big)) < 0.05
