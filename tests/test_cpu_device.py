"""The host-CPU device: peaks from the presets by hand, Little's-law per-core bandwidth, the
Adam/AdamW optimizer step's bytes and FLOPs from the Einsum IR, and its time on spr-8480."""

import pytest

from arch import arch_from_dict, deep_merge, load_arch, load_arch_data
from sim.devices.base import SimError, device_for
from sim.devices.cpu import CpuDevice
from workloads.einsum import Cascade, TensorRef, contraction, elementwise
from workloads.optimizer import adam_bytes_per_param, adam_step
from workloads.trace import COLLECTIVE, MATMUL, VECTOR, Collective, Op

GHZ = 1e9


def _op(compute, kind: str = VECTOR, name: str = "op") -> Op:
    return Op(0, name, kind, "optimizer", 0, 0, compute)


def _cpu(name: str = "spr-8480", fidelity: str = "tile", **cpu_overrides) -> CpuDevice:
    data, label = load_arch_data(name)
    if cpu_overrides:
        data = deep_merge(data, {"cpu": {k: {"value": v, "source": "test"}
                                         for k, v in cpu_overrides.items()}})
    dev = device_for(arch_from_dict(data, file=label), fidelity)
    assert isinstance(dev, CpuDevice)
    return dev


def _triad(n: int) -> Cascade:
    """STREAM triad a = b + s * c in fp32 (the scalar s is an immediate): 12 bytes/element."""
    b, c = TensorRef("b", ("i",), "fp32"), TensorRef("c", ("i",), "fp32")
    sc = elementwise("sc", TensorRef("sc", ("i",), "fp32", "intermediate"), (c,), {"i": n},
                     unary="mul")
    a = elementwise("a", TensorRef("a", ("i",), "fp32"), (b, sc.output), {"i": n}, "add")
    return Cascade("triad", (sc, a))


# --- presets ------------------------------------------------------------------------------------
def test_spr_8480_preset_values():
    arch = load_arch("spr-8480")
    assert arch.type == "cpu"
    assert (arch.cpu.sockets, arch.cpu.cores, arch.cpu.clock) == (1, 56, 2.0 * GHZ)
    assert arch.cpu.vector_flops_per_cycle["fp32"] == 64  # 2 FMA ports x 16 lanes x 2
    assert arch.cpu.matrix_flops_per_cycle == {"bf16": 1024, "int8": 2048}
    assert arch.memory["dram"].bandwidth == pytest.approx(8 * 4800e6 * 8)  # 8 x DDR5-4800


def test_desktop_has_two_ddr5_channels():
    arch = load_arch("desktop-ddr5")
    assert arch.memory["dram"].bandwidth == pytest.approx(2 * 5200e6 * 8)  # 2 x DDR5-5200
    assert arch.cpu.matrix_flops_per_cycle == {}


# --- peaks --------------------------------------------------------------------------------------
def test_peaks_by_hand():
    dev = _cpu()
    n = 1024
    x, w = TensorRef("x", ("m", "k"), "bf16"), TensorRef("w", ("k", "n"), "bf16")
    gemm_bf16 = contraction("g", TensorRef("y", ("m", "n"), "bf16"), x, w,
                            {"m": n, "n": n, "k": n})
    assert dev.peak_flops(_op(gemm_bf16, MATMUL)) == pytest.approx(56 * 2e9 * 1024)  # AMX
    xf, wf = TensorRef("x", ("m", "k"), "fp16"), TensorRef("w", ("k", "n"), "fp16")
    gemm_fp16 = contraction("g", TensorRef("y", ("m", "n"), "fp16"), xf, wf,
                            {"m": n, "n": n, "k": n})
    # Sapphire Rapids AMX has no fp16: the GEMM runs on AVX512-FP16 (128 FLOP/cycle/core)
    assert dev.peak_flops(_op(gemm_fp16, MATMUL)) == pytest.approx(56 * 2e9 * 128)
    assert dev.peak_flops(_op(_triad(n))) == pytest.approx(56 * 2e9 * 64)  # AVX-512 fp32
    desk = _cpu("desktop-ddr5")
    # no matrix engine, no fp16 SIMD: the fp32 rate (16 cores x 4.5 GHz x 32)
    assert desk.peak_flops(_op(gemm_fp16, MATMUL)) == pytest.approx(16 * 4.5e9 * 32)
    assert desk.roof_lines("bf16") == {"vector bf16": pytest.approx(16 * 4.5e9 * 64)}
    assert dev.roof_lines("bf16")["matrix bf16"] == pytest.approx(56 * 2e9 * 1024)


def test_per_core_bandwidth_is_littles_law():
    dev = _cpu()
    assert dev.per_core_bandwidth() == pytest.approx(16 * 64 / 100e-9)  # 10.24 GB/s
    assert dev.peak_bandwidth() == pytest.approx(307.2e9)
    assert dev.memory_capacity() == 512 * 2**30
    assert dev.static_power() == 100.0


# --- streaming ops ------------------------------------------------------------------------------
def test_stream_triad_hits_ddr_bound_with_all_cores():
    dev = _cpu()
    n = 10**8
    cost = dev.estimate(_op(_triad(n)))
    bw = min(307.2e9 * 0.7, 56 * 16 * 64 / 100e-9)  # 215.04 GB/s: the DDR binds
    assert bw == pytest.approx(215.04e9)
    assert cost.dram_bytes == 12 * n
    assert cost.detail["t_memory_s"] == pytest.approx(12 * n / bw)
    assert cost.detail["t_compute_s"] == pytest.approx(2 * n / (56 * 2e9 * 64))
    assert cost.latency == pytest.approx(5e-6 + 12 * n / bw)
    assert cost.bound == "memory"


def test_stream_triad_few_cores_hit_per_core_bound():
    dev = _cpu(cores=4)
    n = 10**8
    cost = dev.estimate(_op(_triad(n)))
    bw = 4 * 16 * 64 / 100e-9  # 40.96 GB/s < 215.04 GB/s of DDR
    assert dev.stream_bandwidth() == pytest.approx(bw)
    assert cost.detail["t_memory_s"] == pytest.approx(12 * n / bw)
    assert cost.bound == "memory (per-core)"


def test_amx_gemm_is_compute_bound_at_peak():
    dev = _cpu()
    n = 8192
    x, w = TensorRef("x", ("m", "k"), "bf16"), TensorRef("w", ("k", "n"), "bf16")
    gemm = contraction("g", TensorRef("y", ("m", "n"), "bf16"), x, w, {"m": n, "n": n, "k": n})
    cost = dev.estimate(_op(gemm, MATMUL))
    t = 2 * n**3 / (56 * 2e9 * 1024)  # matrix_efficiency 1.0 in the preset
    assert cost.bound == "compute" and cost.detail["engine"] == "matrix"
    assert cost.latency == pytest.approx(5e-6 + t)
    assert cost.energy["compute"] == pytest.approx(2 * n**3 * 2.18e-12)


def test_roofline_is_a_lower_bound():
    n = 10**7
    op = _op(adam_step("adam", n, "fp32", True))
    roof = _cpu(fidelity="roofline").estimate(op)
    tile = _cpu().estimate(op)
    assert roof.latency == pytest.approx(30 * n / 307.2e9)  # bytes / peak DDR
    assert tile.latency >= roof.latency
    assert tile.roofline == pytest.approx(roof.latency)


def test_collective_is_rejected():
    dev = _cpu()
    op = Op(0, "ar", COLLECTIVE, "decode", 0, 0, None,
            collective=Collective("allreduce", 1e6, 2, "fp16"))
    with pytest.raises(SimError, match="no collectives"):
        dev.estimate(op)


# --- the optimizer step -------------------------------------------------------------------------
@pytest.mark.parametrize(("grad", "copy", "per_param"), [
    ("fp32", False, 4 * 4 + 3 * 4),        # read w, m, v, g (fp32); write w, m, v
    ("fp32", True, 4 * 4 + 3 * 4 + 2),     # ... plus the fp16 weight copy
    ("fp16", False, 3 * 4 + 2 + 3 * 4),    # fp16 gradients
    ("fp16", True, 3 * 4 + 2 + 3 * 4 + 2),
])
def test_adam_bytes_per_param(grad, copy, per_param):
    n = 1000
    step = adam_step("adam", n, grad, copy)
    assert step.min_bytes == per_param * n
    assert adam_bytes_per_param(grad, copy) == per_param
    names = {t.name for t in step.external_inputs}
    assert names == {"w", "m", "v", "g"}


def test_adam_flops_per_param_from_op_cost():
    # m: b1*m, (1-b1)*g, add = 3; v: g*g, b2*v, (1-b2)*g^2, add = 4; m/bc1, v/bc2, sqrt, +eps,
    # ratio, *lr = 6; AdamW decay: lr*wd*w, subtract = 2; final subtract = 1; fp16 copy = 0
    assert adam_step("adamw", 10, "fp32").flops == 16 * 10
    assert adam_step("adam", 10, "fp32", weight_decay=False).flops == 14 * 10


def test_adam_rejects_bad_input():
    with pytest.raises(ValueError, match="grad_dtype"):
        adam_step("a", 10, "int8")
    with pytest.raises(ValueError, match="n_params"):
        adam_step("a", 0)


def test_adam_step_of_1e9_params_on_spr_8480():
    dev = _cpu()
    n = 10**9
    for copy, per_param in ((False, 28), (True, 30)):
        cost = dev.estimate(_op(adam_step("adam", n, "fp32", copy)))
        ddr = 8 * 38.4e9 * 0.7  # sustained DDR: 215.04 GB/s, below 56 cores x 10.24 GB/s
        assert cost.latency == pytest.approx(5e-6 + per_param * n / ddr)
        assert cost.bound == "memory" and cost.detail["engine"] == "vector"
        assert cost.detail["t_compute_s"] == pytest.approx(16 * n / (56 * 2e9 * 64))
        assert cost.energy["dram"] == pytest.approx(per_param * n * 8 * 20e-12)
