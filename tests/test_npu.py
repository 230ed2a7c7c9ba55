"""The NPU device: presets, the public interface for composite devices, a whole-model run."""

from __future__ import annotations

import pytest

from arch import load_arch
from sim.devices.base import device_for
from sim.devices.npu import NpuDevice
from workloads.cascades import attention_1pass
from workloads.einsum import TensorRef, contraction
from workloads.trace import ATTENTION, MATMUL, VECTOR, Op


def _gemm_op(m: int, n: int, k: int) -> Op:
    e = contraction("g", TensorRef("C", ("m", "n")), TensorRef("A", ("m", "k")),
                    TensorRef("B", ("k", "n"), role="weight"), {"m": m, "n": n, "k": k})
    return Op(0, "g", MATMUL, "prefill", 0, 0, e)


@pytest.mark.parametrize("name", ["neupims-npu", "fusemax", "flat"])
def test_presets_load_with_sources(name):
    arch = load_arch(name)
    assert arch.type == "npu"
    for leaf in ("npu.clock", "npu.array_rows", "memory.dram.bandwidth"):
        assert arch.provenance.get(leaf), leaf


def test_neupims_setup():
    n = load_arch("neupims-npu").npu
    assert (n.arrays, n.array_rows, n.array_cols, n.dataflow) == (8, 128, 128, "ws")
    assert (n.vector_units, n.vector_lanes, n.clock, n.dtype) == (8, 128, 1e9, "fp16")


def test_interface_costs_respect_roofline():
    dev = device_for(load_arch("neupims-npu"), "tile")
    assert isinstance(dev, NpuDevice)
    for shape in [(1, 4096, 4096), (512, 4096, 4096), (2048, 11008, 4096), (7, 100, 33)]:
        op = _gemm_op(*shape)
        c = dev.matmul_cost(op)
        assert c.latency >= dev.roofline(op) * (1 - 1e-12)
        assert c.dram_bytes >= op.compute.min_bytes * (1 - 1e-9)
        assert c.detail["cycles"] > 0 and 0 < c.detail["utilization"] <= 1
    big = dev.matmul_cost(_gemm_op(4096, 4096, 4096))
    d = big.detail
    # double-buffered: the slower of compute and DRAM, plus the first tile and one latency
    assert big.latency >= max(d["t_compute"], d["t_dram"])
    assert big.latency <= max(d["t_compute"], d["t_dram"]) * 1.05 + 1e-6
    assert d["utilization"] > 0.9   # the arrays themselves are busy 90%+ of their cycles


def test_vector_and_attention_costs():
    dev = device_for(load_arch("neupims-npu"), "tile")
    casc = attention_1pass(1, 8, 256, 1024, 64, tile=128)
    att = Op(1, "attention", ATTENTION, "prefill", 0, 0, casc)
    c = dev.attention_cost(att)
    assert c.latency >= dev.roofline(att) * (1 - 1e-12)
    assert c.detail["t_array"] > 0 and c.detail["t_vector"] > 0
    vec = Op(2, "softmax", VECTOR, "prefill", 0, 0, casc.einsums[3])
    assert dev.vector_cost(vec).latency > 0
    assert dev._estimate(vec).latency == dev.vector_cost(vec).latency


def test_dram_unlimited_is_faster():
    arch = load_arch("neupims-npu")
    lim = NpuDevice(arch).gemm_cost(1, 64, 4096, 4096, "fp16", 64 * 4096 * 2, 4096 * 4096 * 2,
                                    64 * 4096 * 2)
    free = NpuDevice(arch.replace(npu=type(arch.npu)(**{**arch.npu.__dict__,
                                                         "dram_unlimited": True})))
    unl = free.gemm_cost(1, 64, 4096, 4096, "fp16", 64 * 4096 * 2, 4096 * 4096 * 2,
                         64 * 4096 * 2)
    assert unl.latency < lim.latency and unl.dram_bytes == lim.dram_bytes


def test_whole_model_run():
    from sim.run import simulate
    from workloads.models import get_model
    from workloads.scenario import Scenario

    res = simulate(load_arch("neupims-npu"), get_model("gpt3-7b"),
                   Scenario(batch=4, prompt_len=64, gen_len=3), "tile", 0)
    assert res.metrics["tpot_s"] > 0
    # decode is weight-streaming bound: ~13 GB of weights at ~1 TB/s
    assert 0.008 < res.metrics["tpot_s"] < 0.05
