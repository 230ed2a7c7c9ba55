"""The fpga device class: U280 presets, HBM port/channel rates, engines sized from DSPs, 2:4
sparsity, on-chip decode activations and per-op control overhead, all by hand; the low-bit
workload options (packed weight bytes, sink + window attention); the CLI commands."""

import json
import math

import pytest

from arch import arch_from_dict, deep_merge, load_arch, load_arch_data
from arch.schema import SpecError
from sim.devices.base import device_for
from sim.devices.fpga import FpgaDevice, engine_dtype
from workloads.einsum import TensorRef, contraction, dtype_bytes, packed_format
from workloads.errors import WorkloadError
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import MATMUL, Op
from workloads.tracer import kv_cache_bytes, trace_model
from xpusim.cli import main

GB = 1e9
CLOCK = 225e6


def _fpga(name: str = "accllm-u280", fidelity: str = "tile", design=None, hbm=None) -> FpgaDevice:
    data, label = load_arch_data(name)
    over = {}
    if design:
        over["fpga_design"] = {k: {"value": v, "source": "test"} for k, v in design.items()
                               if not isinstance(v, dict)}
    if hbm:
        over["fpga"] = {"hbm": {k: {"value": v, "source": "test"} for k, v in hbm.items()}}
    if over:
        data = deep_merge(data, over)
    for k, v in (design or {}).items():
        if isinstance(v, dict):   # a table replaces the preset's whole
            data["fpga_design"][k] = v
    dev = device_for(arch_from_dict(data, file=label), fidelity)
    assert isinstance(dev, FpgaDevice)
    return dev


def _gemm(m: int, n: int, k: int, act: str = "int8", weights: str = "int8",
          phase: str = "prefill") -> Op:
    e = contraction("gemm", TensorRef("C", ("m", "n"), act), TensorRef("A", ("m", "k"), act),
                    TensorRef("W", ("k", "n"), weights, "weight"), {"m": m, "n": n, "k": k})
    return Op(0, "gemm", MATMUL, phase, 0, 0, e, flops=e.flops, bytes=e.min_bytes)


# --- presets and schema -----------------------------------------------------------------------
def test_u280_preset_values_from_the_datasheet():
    a = load_arch("u280")
    f = a.fpga
    assert (f.dsps, f.bram36, f.uram, f.hbm.channels) == (9024, 2016, 960, 32)
    assert f.hbm.channel_bandwidth * f.hbm.channels == pytest.approx(460 * GB)
    assert a.memory["hbm"].bandwidth == pytest.approx(460 * GB)
    assert a.fpga_design.clock == pytest.approx(CLOCK)
    # BRAM36 36 Kib + URAM 288 Kib, by hand
    assert f.onchip_bytes == pytest.approx((2016 * 36 + 960 * 288) * 1024 / 8)
    for name in ("flightllm-u280", "accllm-u280"):
        d = load_arch(name).fpga_design
        assert (d.clock, d.sparsity) == (CLOCK, "2:4")
        assert "fpga_design.dsps" in load_arch(name).provenance


def test_design_over_the_dsp_budget_is_a_one_line_error():
    data, label = load_arch_data("accllm-u280")
    data = deep_merge(data, {"fpga_design": {"dsps": {"value": 9000, "source": "test"}}})
    with pytest.raises(SpecError) as err:
        arch_from_dict(data, file=label)
    assert "fpga_design.dsps" in str(err.value) and "9024" in str(err.value)
    data = deep_merge(load_arch_data("u280")[0],
                      {"fpga_design": {"macs_per_dsp": {"int3": 2}}})
    with pytest.raises(SpecError, match="macs_per_dsp.int3"):
        arch_from_dict(data, file="x.yaml")


def test_bad_fpga_yaml_exits_2(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("name: bad\nextends: u280\ntype: fpga\nfpga_design:\n  hbm_channels: 40\n")
    assert main(["run", "--arch", str(p), "--batch", "1", "--prompt", "8", "--gen", "2",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hbm_channels" in err[0] and "32" in err[0]


# --- rates by hand ----------------------------------------------------------------------------
def test_hbm_rate_is_port_limited_at_the_kernel_clock():
    dev = _fpga("flightllm-u280")
    assert dev.port_bandwidth() == pytest.approx(256 / 8 * CLOCK)          # 7.2 GB/s
    assert dev.hbm_bandwidth() == pytest.approx(32 * 7.2 * GB)             # 230.4 GB/s
    fast = _fpga("flightllm-u280", design={"hbm_port_clock": "450 MHz"})
    assert fast.hbm_bandwidth() == pytest.approx(32 * 14.375 * 0.92 * GB)  # channel-limited
    half = _fpga("flightllm-u280", design={"hbm_port_clock": "450 MHz", "hbm_channels": 16})
    assert half.hbm_bandwidth() == pytest.approx(fast.hbm_bandwidth() / 2)


def test_cross_channel_traffic_blends_harmonically():
    dev = _fpga("flightllm-u280", design={"hbm_port_clock": "450 MHz",
                                          "cross_channel_fraction": 0.5})
    same, cross = 14.375 * 0.92, 14.375 * 0.5
    assert dev.hbm_bandwidth() == pytest.approx(32 / (0.5 / same + 0.5 / cross) * GB)


def test_matrix_peak_from_dsps_and_sparsity():
    dev = _fpga("accllm-u280")
    dense = 6144 * 4 * 2 * CLOCK                       # int2: 4 MACs per DSP per cycle
    assert dev.matrix_peak("int2") == pytest.approx(dense)
    assert dev.matrix_peak("int2", (2, 4)) == pytest.approx(2 * dense)
    assert dev.matrix_peak("int8") == pytest.approx(6144 * 2 * 2 * CLOCK)
    assert dev.matrix_peak("fp16") == pytest.approx(6144 * 0.5 * 2 * CLOCK)
    # a datatype the design does not list falls back to the next wider one
    narrow = _fpga("accllm-u280", design={"macs_per_dsp": {"int8": 2, "fp16": 0.5}})
    assert narrow.matrix_peak("int2") == pytest.approx(6144 * 2 * 2 * CLOCK)
    # a 2:4 weight on a dense engine runs at the dense rate
    dense_engine = _fpga("u280")
    assert dense_engine.matrix_peak("int2", (2, 4)) == pytest.approx(8000 * 4 * 2 * CLOCK)


def test_engine_dtype_is_the_narrower_integer_operand():
    assert engine_dtype("int8", "int2/g128/2:4") == "int2"
    assert engine_dtype("int8", "int8") == "int8"
    assert engine_dtype("fp16", "int4/g128") == "fp16"
    assert engine_dtype("int4", "fp16") == "fp16"


def test_decode_gemv_is_memory_bound_by_hand():
    dev = _fpga("flightllm-u280")
    op = _gemm(1, 4096, 4096, "int8", "int4/g128")
    cost = dev.estimate(op)
    w = 4096 * 4096 * (4 + 16 / 128) / 8
    nbytes = w + 4096 + 4096
    assert op.bytes == pytest.approx(nbytes)
    assert cost.latency == pytest.approx(200 / CLOCK + nbytes / (230.4 * GB), rel=1e-12)
    assert cost.bound == "memory"
    assert cost.energy["hbm"] == pytest.approx(nbytes * 8 * 3.9e-12)


def test_prefill_gemm_is_compute_bound_by_hand():
    dev = _fpga("accllm-u280")
    op = _gemm(512, 4096, 4096, "int8", "int2/g128/2:4")
    cost = dev.estimate(op)
    t = op.flops / (2 * 6144 * 4 * 2 * CLOCK * 0.9)        # 2:4 doubles the int2 rate
    assert cost.latency == pytest.approx(200 / CLOCK + t, rel=1e-12)
    assert cost.bound == "compute"
    # energy: only the kept half of the MACs, at the int2 energy per FLOP
    assert cost.energy["compute"] == pytest.approx(op.flops / 2 * 0.45e-12)
    roof = _fpga("accllm-u280", "roofline").estimate(op)
    assert roof.latency <= cost.latency
    assert roof.latency == pytest.approx(op.flops / (2 * 6144 * 4 * 2 * CLOCK))


def test_decode_activations_stay_on_chip():
    model = get_model("llama2-7b")
    sc = Scenario(batch=1, prompt_len=16, gen_len=2, dtype="int8", weights="int4",
                  weight_group=128)
    ops = [o for o in trace_model(model, sc).ops if o.phase == "decode" and o.layer == 0]
    on, off = _fpga("flightllm-u280"), _fpga("flightllm-u280",
                                            design={"activations_on_chip": False})
    by = {o.name: o for o in ops}
    up = by["ffn_up"]
    weights = 4096 * 2 * 11008 * (4 + 16 / 128) / 8
    assert on.estimate(up).dram_bytes == pytest.approx(weights)
    assert off.estimate(up).dram_bytes == pytest.approx(up.bytes)
    assert up.bytes - weights == pytest.approx(4096 + 2 * 11008)   # int8 in/out activations
    norm = by["ln_attn"]   # only its gain vector (a weight) comes from HBM
    assert on.estimate(norm).dram_bytes == pytest.approx(4096)
    assert off.estimate(norm).dram_bytes == pytest.approx(norm.bytes)
    assert on.estimate(by["residual_attn"]).dram_bytes == 0.0
    qk = by["qk"]   # K cache of 17 positions stays an HBM read
    assert on.estimate(qk).dram_bytes == pytest.approx(32 * 17 * 128)
    # activations beyond BRAM + URAM (44.7 MB) go through HBM after all
    fits = _gemm(1024, 22016, 4096, "int8", "int4/g128", phase="decode")
    spills = _gemm(2048, 22016, 4096, "int8", "int4/g128", phase="decode")
    w = 4096 * 22016 * (4 + 16 / 128) / 8
    assert 1024 * (4096 + 22016) < on.card.onchip_bytes < 2048 * (4096 + 22016)
    assert on.estimate(fits).dram_bytes == pytest.approx(w)
    assert on.estimate(spills).dram_bytes == pytest.approx(spills.bytes)


def test_control_overhead_counts_per_op():
    base = _fpga("accllm-u280")
    more = _fpga("accllm-u280", design={"op_overhead_cycles": 400})
    tiny = _gemm(1, 64, 64)
    assert more.estimate(tiny).latency - base.estimate(tiny).latency == pytest.approx(200 / CLOCK)
    assert base.estimate(tiny).bound == "control"


# --- workload options -------------------------------------------------------------------------
def test_packed_weight_bytes_by_hand():
    assert dtype_bytes("int4/g128") == pytest.approx((4 + 16 / 128) / 8)
    # 2:4: half the weights kept, each with a 2-bit position (NVIDIA's 2:4 metadata)
    assert dtype_bytes("int2/g128/2:4") == pytest.approx((0.5 * (2 + 2) + 16 / 128) / 8)
    assert dtype_bytes("int8/2:4") == pytest.approx(0.5 * (8 + 2) / 8)
    assert packed_format("int2/g0") is None and packed_format("fp99/g128") is None
    assert packed_format("int4/4:4") is None
    sc = Scenario(dtype="int8", weights="int2", weight_group=128, sparsity="2:4")
    assert sc.weight_format == "int2/g128/2:4"
    up = [o for o in trace_model(get_model("llama2-7b"), Scenario(
        batch=1, prompt_len=4, gen_len=1, dtype="int8", weights="int2", weight_group=128,
        sparsity="2:4")).ops if o.name == "ffn_up"][0]
    w = [t for t in up.compute.inputs if t.role == "weight"][0]
    assert w.dtype == "int2/g128/2:4"
    lm = [o for o in trace_model(get_model("llama2-7b"), sc).ops if o.name == "lm_head"][0]
    assert lm.compute.inputs[1].dtype == "int8"          # the LM head stays at --dtype


@pytest.mark.parametrize("kwargs,opt", [({"weights": "int3"}, "--weights"),
                                        ({"sparsity": "4:2"}, "--sparsity"),
                                        ({"weight_group": -1}, "--weight-group"),
                                        ({"attn_sink": 4}, "--attn-sink")])
def test_bad_lowbit_options(kwargs, opt):
    with pytest.raises(WorkloadError, match=opt):
        Scenario(**kwargs)


def test_sink_window_caps_the_kv_length():
    model = get_model("llama2-7b")
    sc = Scenario(batch=1, prompt_len=100, gen_len=40, attn_sink=4, attn_window=60)
    qk = [o for o in trace_model(model, sc).ops if o.name == "qk" and o.phase == "decode"]
    lengths = sorted({o.compute.size["n"] for o in qk})
    assert lengths == [64]                               # every decode step: 4 + 60 keys
    full = Scenario(batch=1, prompt_len=100, gen_len=40)
    assert kv_cache_bytes(model, sc) == pytest.approx(kv_cache_bytes(model, full) * 64 / 140)
    short = Scenario(batch=1, prompt_len=10, gen_len=3, attn_sink=4, attn_window=60)
    qk = [o for o in trace_model(model, short).ops if o.name == "qk" and o.phase == "decode"]
    assert sorted({o.compute.size["n"] for o in qk}) == [11, 12]   # shorter than the window


# --- CLI --------------------------------------------------------------------------------------
def test_run_and_op_cli(capsys):
    assert main(["run", "--arch", "accllm-u280", "--batch", "1", "--prompt", "32", "--gen", "4",
                 "--dtype", "int8", "--kv-dtype", "int4", "--weights", "int2",
                 "--weight-group", "128", "--sparsity", "2:4", "--attn-sink", "4",
                 "--attn-window", "28", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    sc = out["inputs"]["resolved"]["scenario"]
    assert (sc["weights"], sc["sparsity"], sc["attn_window"]) == ("int2", "2:4", 28)
    assert out["invariants"]["time_ge_roofline"] == "passed"
    # weights as stored: 32 layers x per-layer linears x 2.125 bits + the int8 LM head
    m = get_model("llama2-7b")
    layer = 4096 * (3 * 4096 + 4096 + 2 * 11008) + 11008 * 4096
    expect = m.n_layers * layer * (0.5 * 4 + 16 / 128) / 8
    assert out["weights_bytes_per_device"] < m.param_count() * 1.0
    assert out["weights_bytes_per_device"] > expect
    assert main(["op", "gemm", "--arch", "flightllm-u280", "--m", "1", "--n", "4096", "--k",
                 "4096", "--dtype", "int8", "--weights", "int4/g128", "--json"]) == 0
    op = json.loads(capsys.readouterr().out)
    assert op["latency_s"] == pytest.approx(200 / CLOCK + (4096 * 4096 * 0.515625 + 8192)
                                            / (230.4 * GB))
    assert main(["op", "gemm", "--arch", "u280", "--m", "1", "--n", "4", "--k", "4",
                 "--weights", "int2/g"]) == 2


def test_roofs_include_sparse_matrix_and_vector():
    roofs = _fpga("accllm-u280").roof_lines("int8")
    assert roofs["matrix int2 2:4"] == pytest.approx(2 * roofs["matrix int2"])
    assert roofs["vector"] == pytest.approx(128 * CLOCK)
    assert math.isfinite(_fpga("accllm-u280").describe("int8")["hbm_design_Bps"])


def test_dsp_budget_sweep_example(tmp_path, capsys):
    from pathlib import Path

    from dse.store import load_results

    example = Path(__file__).resolve().parents[1] / "examples" / "sweep_u280.yaml"
    assert main(["sweep", str(example), "--out", str(tmp_path / "s"), "--workers", "1",
                 "--quiet"]) == 0
    df = load_results(tmp_path / "s")
    assert len(df) == 10
    tpot = {(int(r["fpga_design.dsps"]), float(r["fpga_design.hbm_port_clock"])): r["tpot_s"]
            for _, r in df.iterrows()}
    slow, fast = 225e6, 450e6
    # 512 DSPs: decode is compute-bound, the port clock does not matter
    assert tpot[512, slow] == pytest.approx(tpot[512, fast], rel=1e-3)
    assert tpot[512, slow] > tpot[1024, slow]
    # from 1,024 DSPs on: HBM-bound, more DSPs do not help, faster ports do (230 -> 423 GB/s)
    assert tpot[1024, slow] == pytest.approx(tpot[8192, slow], rel=1e-3)
    assert 230.4 / 423.2 < tpot[8192, fast] / tpot[8192, slow] < 0.6
