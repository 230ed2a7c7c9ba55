"""System runs: streams overlap, resources contend, transfers move tensors, invariants hold.

Each expectation is computed independently of the engine: a list-scheduling replay of the
op table, the two-stage pipeline closed form, transfer time from bytes over the PCIe rate.
"""

import json

import numpy as np
import pandas as pd
import pytest

from arch import load_arch
from sim.devices.base import SimError
from sim.invariants import InvariantError
from sim.run import simulate
from sim.system.placement import parse_placement
from sim.system.schedule import Policies
from sim.system.topology import build_system
from sim.system.usage import check_system_invariants
from workloads.models import get_model
from workloads.scenario import Scenario


def _replay(ops: pd.DataFrame, extra: dict[int, float] | None = None) -> np.ndarray:
    """Start times of an in-order list schedule: each op starts when its stream's previous op
    and its dependencies (the previous op of its micro-batch) have ended."""
    ops = ops.sort_values("id")
    end = ops["end_s"].to_numpy()
    alone = ops["alone_s"].to_numpy()
    start = np.zeros(len(ops))
    fin = np.zeros(len(ops))
    stream_free: dict[str, float] = {}
    last_of_chain: dict[int, int] = {}
    for i, (stream, mb) in enumerate(zip(ops["stream"], ops["microbatch"], strict=True)):
        dep = last_of_chain.get(mb)
        ready = max(stream_free.get(stream, 0.0), fin[dep] if dep is not None else 0.0,
                    (extra or {}).get(i, 0.0))
        start[i] = ready
        fin[i] = ready + alone[i]
        stream_free[stream] = fin[i]
        last_of_chain[mb] = i
    assert np.allclose(fin, end, rtol=1e-12, atol=1e-12)
    return start


@pytest.fixture(scope="module")
def pp_run():
    sc = Scenario(batch=8, prompt_len=128, gen_len=1, tp=1, pp=2, microbatches=4)
    return simulate(load_arch("dgx-h100"), get_model("llama2-7b"), sc)


def test_pipeline_stages_run_concurrently(pp_run):
    ops = pp_run.ops
    assert set(ops["stream"]) == {"gpu0.compute", "gpu1.compute"}
    start = _replay(ops)
    assert np.allclose(start, ops.sort_values("id")["start_s"], rtol=1e-12, atol=1e-12)
    makespan = pp_run.metrics["latency_s"]
    assert makespan < 0.75 * ops["latency_s"].sum()          # real overlap
    assert makespan >= ops.groupby("stream")["latency_s"].sum().max()


def test_pipeline_bubble_matches_two_stage_closed_form(pp_run):
    # two stages, m micro-batches of equal size, in order: T0 + T1 + (m - 1) max(T0, T1)
    ops = pp_run.ops
    mb0 = ops[ops["microbatch"] == 0]
    t0 = mb0[mb0["stream"] == "gpu0.compute"]["latency_s"].sum()
    t1 = mb0[mb0["stream"] == "gpu1.compute"]["latency_s"].sum()
    expect = t0 + t1 + 3 * max(t0, t1)
    assert pp_run.metrics["latency_s"] == pytest.approx(expect, rel=1e-9)


@pytest.fixture(scope="module")
def tp_overlap():
    sc = Scenario(batch=16, prompt_len=128, gen_len=3, tp=8, microbatches=2)
    return simulate(load_arch("dgx-h100"), get_model("llama2-70b"), sc,
                    policies=Policies(overlap=True))


def test_tp_overlap_hides_collectives(tp_overlap):
    ops = tp_overlap.ops
    comm = ops[ops["stream"] == "gpu0.comm"]
    comp = ops[ops["stream"] == "gpu0.compute"]
    assert len(comm) and len(comp)
    assert tp_overlap.metrics["latency_s"] < ops["latency_s"].sum()
    # some all-reduce runs while the other micro-batch computes
    s, e = comp["start_s"].to_numpy(), comp["end_s"].to_numpy()
    overlapping = [((s < ce) & (e > cs)).any() for cs, ce in zip(comm["start_s"],
                                                                  comm["end_s"], strict=True)]
    assert np.mean(overlapping) > 0.5
    sc = Scenario(batch=16, prompt_len=128, gen_len=3, tp=8, microbatches=2)
    serial = simulate(load_arch("dgx-h100"), get_model("llama2-70b"), sc)
    assert tp_overlap.metrics["latency_s"] < serial.metrics["latency_s"]
    assert serial.metrics["latency_s"] == pytest.approx(serial.ops["latency_s"].sum(), rel=1e-9)


def test_memory_bound_streams_slow_each_other(tp_overlap):
    """Compute and all-reduce stream through one HBM: an op that shares it takes longer than
    alone, never shorter, and the HBM carried exactly the bytes routed to it."""
    ops = tp_overlap.ops
    stretch = ops["latency_s"] / ops["alone_s"]
    assert (stretch >= 1 - 1e-9).all()
    assert (stretch > 1.05).sum() > 10
    res = tp_overlap.resources.set_index("resource")
    assert res.loc["gpu0.hbm", "contended"]
    assert res.loc["gpu0.hbm", "bytes"] == pytest.approx(res.loc["gpu0.hbm", "routed_bytes"])
    shared = ops[ops["stream"].isin(["gpu0.compute", "gpu0.comm"])]
    per_shard = (shared["dram_bytes"] / shared["shards"]).sum()
    assert res.loc["gpu0.hbm", "bytes"] == pytest.approx(per_shard, rel=1e-9)
    # the HBM never moves more than its sustained bandwidth allows
    hbm = build_system(load_arch("dgx-h100")).tiers["gpu0.hbm"]
    assert res.loc["gpu0.hbm", "busy_s"] >= res.loc["gpu0.hbm", "bytes"] / hbm.bandwidth * (
        1 - 1e-9)


OFFLOAD = "weights=gpu.hbm:0.5,host_ddr:0.5"


@pytest.fixture(scope="module")
def offload_runs():
    sc = Scenario(batch=1, prompt_len=64, gen_len=4)
    model = get_model("opt-30b")
    arch = load_arch("a6000-offload")
    return {pf: simulate(arch, model, sc, placement=parse_placement(OFFLOAD),
                         policies=Policies(prefetch=pf)) for pf in (0, 1)}


def _step_figures(result, step: int) -> tuple[float, float, float]:
    ops, trs = result.ops, result.transfers
    dec = ops[ops["step"] == step]
    compute = dec["latency_s"].sum()
    moved = trs[trs["step"] == step]
    pcie = build_system(load_arch("a6000-offload")).links["pcie"]
    transfer = (moved["bytes"] / pcie.sustained).sum() + len(moved) * (pcie.latency + 100e-9)
    span = dec["end_s"].max() - ops[ops["step"] == step - 1]["end_s"].max()
    return compute, transfer, span


def test_offloaded_decode_is_transfer_bound(offload_runs):
    run = offload_runs[1]
    trs = run.transfers
    # half of OPT-30B's layer weights cross PCIe every decode step
    per_step = trs[trs["step"] == 2]["bytes"].sum()
    layers = get_model("opt-30b").n_layers
    per_layer_weights = (run.metrics["weights_bytes_per_device_bytes"]
                         if "weights_bytes_per_device_bytes" in run.metrics else None)
    assert per_layer_weights is None or per_step < per_layer_weights
    assert len(trs[trs["step"] == 2]) == layers
    compute, transfer, span = _step_figures(run, 2)
    assert transfer > 5 * compute
    # prefetch one layer ahead: the step takes max(transfer, compute) - transfer-bound
    assert span == pytest.approx(max(transfer, compute), rel=0.02)


def test_no_prefetch_serialises_transfer_and_compute(offload_runs):
    compute, transfer, span = _step_figures(offload_runs[0], 2)
    assert span == pytest.approx(transfer + compute, rel=0.02)
    assert offload_runs[0].metrics["tpot_s"] > offload_runs[1].metrics["tpot_s"]


def test_transfers_contend_with_compute_for_gpu_memory(offload_runs):
    res = offload_runs[1].resources.set_index("resource")
    assert {"host_ddr", "pcie<", "gpu0.hbm"} <= set(res.index)
    for name in ("host_ddr", "pcie<", "gpu0.hbm"):
        assert res.loc[name, "bytes"] == pytest.approx(res.loc[name, "routed_bytes"], rel=1e-12)
    moved = offload_runs[1].transfers["bytes"].sum()
    assert res.loc["pcie<", "bytes"] == pytest.approx(moved, rel=1e-12)


def test_every_invariant_passes_on_system_runs(pp_run, tp_overlap, offload_runs):
    for r in (pp_run, tp_overlap, *offload_runs.values()):
        assert set(r.invariants.values()) == {"passed"}
        assert {"bytes_per_link_match_routes", "tiers_within_capacity",
                "transfers_ge_route_bound", "makespan_ge_busiest_resource"} <= set(r.invariants)


def test_system_run_is_deterministic(offload_runs):
    sc = Scenario(batch=1, prompt_len=64, gen_len=4)
    again = simulate(load_arch("a6000-offload"), get_model("opt-30b"), sc,
                     placement=parse_placement(OFFLOAD), policies=Policies(prefetch=1))
    assert again.ops.equals(offload_runs[1].ops)
    assert again.transfers.equals(offload_runs[1].transfers)
    assert again.metrics == offload_runs[1].metrics


def _tamper_inputs(run):
    ops, trs, res = run.ops.copy(), run.transfers.copy(), run.resources.copy()
    cap = {"gpu0.hbm": 48 * 2**30}
    resident = {"gpu0.hbm": run.inputs["placement"]["weights"]["gpu.hbm"]}
    return ops, trs, res, cap, resident


def test_system_invariants_catch_tampering(offload_runs):
    run = offload_runs[1]
    ops, trs, res, cap, resident = _tamper_inputs(run)
    assert check_system_invariants(ops, trs, res, cap, resident)
    bad = res.copy()
    bad.loc[bad["resource"] == "pcie<", "bytes"] *= 2
    with pytest.raises(InvariantError, match="routed"):
        check_system_invariants(ops, trs, bad, cap, resident)
    with pytest.raises(InvariantError, match="capacity"):
        check_system_invariants(ops, trs, res, {"gpu0.hbm": resident["gpu0.hbm"] * 1.001},
                                resident)
    fast = trs.copy()
    fast.loc[3, "latency_s"] = fast.loc[3, "floor_s"] * 0.5
    with pytest.raises(InvariantError, match="faster than its route"):
        check_system_invariants(ops, fast, res, cap, resident)
    busy = res.copy()
    busy.loc[0, "busy_s"] = run.metrics["latency_s"] * 2
    with pytest.raises(InvariantError, match="makespan"):
        check_system_invariants(ops, trs, busy, cap, resident)


def test_capacity_overflow_names_class_tier_and_bytes():
    sc = Scenario(batch=64, prompt_len=2048, gen_len=8)
    with pytest.raises(SimError, match=r"kv_cache needs [\d.]+ GiB more on gpu\.hbm"):
        simulate(load_arch("a6000-offload"), get_model("opt-30b"), sc,
                 placement=parse_placement("weights=gpu.hbm:0.5,host_ddr:0.5;"
                                           "kv_cache=gpu.hbm"))


def test_staging_that_does_not_fit_is_an_error():
    sc = Scenario(batch=1, prompt_len=64, gen_len=2)
    with pytest.raises(SimError, match="--prefetch"):
        simulate(load_arch("a6000-offload"), get_model("opt-30b"), sc,
                 placement=parse_placement("weights=gpu.hbm:0.75,host_ddr:0.25"),
                 policies=Policies(prefetch=40))


def test_run_cli_writes_link_tracks(tmp_path, capsys):
    from xpusim.cli import main

    out = tmp_path / "rep"
    code = main(["run", "--arch", "a6000-offload", "--model", "opt-30b", "--batch", "1",
                 "--prompt", "32", "--gen", "3", "--placement", OFFLOAD, "--out", str(out),
                 "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["transfers"] == 2 * get_model("opt-30b").n_layers + \
        get_model("opt-30b").n_layers
    trace = json.loads((out / "timeline.json").read_text())["traceEvents"]
    names = {e["args"]["name"] for e in trace if e.get("ph") == "M"}
    assert {"compute", "copy", "pcie<", "host_ddr", "gpu0.hbm"} <= names
    assert (out / "resources.csv").is_file() and not (out / "transfers.csv").exists()
    # the transfer table as Parquet (as the op table), and as CSV on request: the same rows
    table = pd.read_parquet(out / "transfers.parquet")
    assert len(table) == summary["transfers"]
    assert main(["run", "--arch", "a6000-offload", "--model", "opt-30b", "--batch", "1",
                 "--prompt", "32", "--gen", "3", "--placement", OFFLOAD, "--out",
                 str(tmp_path / "csv"), "--format", "csv", "--quiet"]) == 0
    assert not (tmp_path / "csv" / "transfers.parquet").exists()
    csv = pd.read_csv(tmp_path / "csv" / "transfers.csv")
    assert list(csv.columns) == list(table.columns) and len(csv) == len(table)
    for name in table.columns:   # the CSV's floats written as %.9g
        if table[name].dtype.kind == "f":
            np.testing.assert_allclose(csv[name], table[name], rtol=1e-8, atol=0)
        else:
            assert csv[name].tolist() == table[name].tolist(), name


def test_bad_placement_is_one_line_exit_2(capsys):
    from xpusim.cli import main

    code = main(["run", "--arch", "a6000-offload", "--model", "opt-30b", "--placement",
                 "weights=gpu.hbm:0.5,nowhere:0.5", "--json"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nowhere" in err


SINGLE = ("a100", "a100-40gb", "a6000", "h100", "mi210", "t4", "flat", "fusemax", "neupims-npu",
          "neupims-naive", "pim-gddr6-aim")  # neupims, duplex: a PIM stream beside the compute


@pytest.mark.parametrize("name", SINGLE)
def test_single_device_presets_run_unchanged_as_one_device_systems(name):
    """A one-device system run gives exactly the one-stream engine's schedule: the plan adds
    no stream, no resource and no event for a lone device."""
    from sim.devices.base import device_for
    from sim.engine import Engine
    from workloads.tracer import trace_model

    arch = load_arch(name)
    system = build_system(arch)
    assert len(system.compute_devices()) == 1 and not system.links
    sc = Scenario(batch=2, prompt_len=16, gen_len=3)
    model = get_model("gpt2-small")
    res = simulate(arch, model, sc)
    legacy = Engine({"device0": device_for(arch, "tile")}).run(trace_model(model, sc))
    assert res.metrics["latency_s"] == float(legacy.end.max())
    assert res.metrics["events"] == legacy.events
    assert res.resources.empty and res.transfers.empty


def test_cpu_attention_moves_queries_not_the_kv_cache():
    """FlexGen's --cpu: with the KV cache in host DDR, decode attention on the host CPU moves
    only each layer's query (to the host) and attention output (back), never the KV cache."""
    model = get_model("opt-13b")
    sc = Scenario(batch=32, prompt_len=512, gen_len=4)
    spec = parse_placement("kv_cache=host_ddr")
    arch = load_arch("a6000-offload")
    gpu_attn = simulate(arch, model, sc, placement=spec)
    cpu_attn = simulate(arch, model, sc, placement=spec, policies=Policies(attention_on="cpu"))
    trs = cpu_attn.transfers
    dec = trs[trs["phase"] == "decode"]
    # q and the attention output: batch x heads x head_dim fp16 values per layer and step
    per = 32 * model.n_heads * model.head_dim * 2
    act = dec[dec["tensor"] == "activations"]
    assert (act["bytes"] == per).all() and len(act) == 2 * model.n_layers * 3
    # the only KV traffic: each step appends the new token's K and V (2 x per) to host DDR
    kv = dec[dec["tensor"] == "kv_cache"]
    assert set(zip(kv["src"], kv["dst"], strict=True)) == {("gpu0.hbm", "host_ddr")}
    assert (kv["bytes"] == 2 * per).all() and len(kv) == model.n_layers * 3
    ops = cpu_attn.ops
    attn = ops[(ops["phase"] == "decode") & (ops["op_class"] == "attention")]
    assert set(attn["stream"]) == {"cpu0.compute"}
    # the GPU run fetches the whole KV cache every step instead
    fetched = gpu_attn.transfers
    assert fetched[fetched["phase"] == "decode"]["bytes"].sum() > 100 * dec["bytes"].sum()
    assert cpu_attn.metrics["tpot_s"] < gpu_attn.metrics["tpot_s"]
    assert set(cpu_attn.invariants.values()) == {"passed"}


def test_a_lone_transfer_takes_its_route_time_and_energy(offload_runs):
    """Without prefetch each layer's weights cross PCIe alone: a transfer takes the PCIe
    link's latency plus host DDR's, plus its bytes at the link's sustained rate (peak x
    efficiency); its energy is 8 bits per byte at host DDR + PCIe + GPU HBM pJ/bit."""
    system = build_system(load_arch("a6000-offload"))
    pcie, ddr, hbm = system.links["pcie"], system.tiers["host_ddr"], system.tiers["gpu0.hbm"]
    trs = offload_runs[0].transfers
    assert set(trs["route"]) == {"pcie<"} and (trs["replicas"] == 1).all()
    # half of an OPT-30B layer's 12 d^2 fp16 weights (d = 7168), biases aside
    assert trs["bytes"].iloc[0] == pytest.approx(12 * 7168**2 * 2 / 2, rel=1e-3)
    route_time = pcie.latency + ddr.latency + trs["bytes"] / (pcie.bandwidth * pcie.efficiency)
    assert np.allclose(trs["floor_s"], route_time, rtol=1e-12, atol=0)
    assert np.allclose(trs["latency_s"], route_time, rtol=1e-9, atol=0)
    per_bit = ddr.energy_per_bit + pcie.energy_per_bit + hbm.energy_per_bit
    assert np.allclose(trs["energy_J"], trs["bytes"] * 8 * per_bit, rtol=1e-12, atol=0)


def test_pipeline_stage_starts_at_its_boundary_layer(pp_run):
    from sim.system.schedule import stage_of_layers

    # 4 layers on 2 stages: embedding (-1), layers 0, 1 on stage 0; layers 2, 3, head on 1
    assert stage_of_layers(4, 2) == [0, 0, 0, 1, 1, 1]
    # llama2-7b's 32 layers on 2 stages: layer 15 is the last of gpu0, 16 the first of gpu1;
    # the activations into layer 16 are sent by gpu0
    ops = pp_run.ops
    send = ops["op"] == "pp_send"
    assert set(ops[ops["layer"] == 15]["stream"]) == {"gpu0.compute"}
    assert set(ops[(ops["layer"] == 16) & ~send]["stream"]) == {"gpu1.compute"}
    assert set(ops[send]["layer"]) == {16} and set(ops[send]["stream"]) == {"gpu0.compute"}


# two GPUs behind one PCIe switch whose uplink reaches host DDR; CXL memory behind host DDR
SHARED_UPLINK = """\
name: box2
type: system
components:
  gpu: {kind: device, arch: h100, count: 2}
  nvswitch: {kind: switch}
  pswitch: {kind: switch}
  host_ddr: {kind: memory, memory: ddr5, capacity: 512 GiB, bandwidth: 300 GB/s}
  cxl_mem: {kind: memory, memory: cxl, capacity: 256 GiB, bandwidth: 64 GB/s}
links:
  nvlink: {between: [gpu, nvswitch], kind: nvlink, bandwidth: 450 GB/s}
  pcie: {between: [gpu, pswitch], kind: pcie, bandwidth: 64 GB/s}
  uplink: {between: [pswitch, host_ddr], kind: pcie, bandwidth: 64 GB/s}
  cxl: {between: [host_ddr, cxl_mem], kind: cxl, bandwidth: 64 GB/s}
"""


@pytest.fixture(scope="module")
def shared_uplink(tmp_path_factory):
    path = tmp_path_factory.mktemp("box2") / "box2.yaml"
    path.write_text(SHARED_UPLINK)
    return load_arch(path)


def test_tensor_parallel_shards_share_the_uplink_not_the_private_port(shared_uplink):
    """At tp 2 each GPU fetches its own half of a layer: the representative's transfer is
    simulated, its own PCIe port carries its shard, the switch's uplink and host DDR carry
    both shards."""
    model = get_model("gpt2-small")
    sc = Scenario(batch=1, prompt_len=16, gen_len=2, tp=2)
    run = simulate(shared_uplink, model, sc, placement=parse_placement("weights=host_ddr"))
    trs = run.transfers
    # 12 layers x 2 steps, each half of a layer's 12 d^2 fp16 weights (d = 768), biases aside
    assert len(trs) == 24 and (trs["replicas"] == 2).all()
    shard = trs["bytes"].sum()
    assert shard == pytest.approx(24 * 12 * 768**2 * 2 / 2, rel=1e-3)
    res = run.resources.set_index("resource")["bytes"]
    assert res["pcie.gpu0<"] == pytest.approx(shard, rel=1e-12)
    assert res["uplink<"] == pytest.approx(2 * shard, rel=1e-12)
    assert res["host_ddr"] == pytest.approx(2 * shard, rel=1e-12)


def test_a_shared_tier_offers_each_device_in_use_its_share(shared_uplink):
    from sim.system.budget import place_on_system

    # host DDR (512 GiB) is reached by both GPUs: at tp 1 one device may put 300 GiB there,
    # at tp 2 each device only gets 256 GiB of it
    system = build_system(shared_uplink)
    spec = parse_placement("weights=host_ddr")
    need = {"weights": 300 * 2**30}
    assert place_on_system(system, spec, need, 1).on_tier("host_ddr") == 300 * 2**30
    with pytest.raises(SimError, match="host_ddr"):
        place_on_system(system, spec, need, 2)


def test_staging_needs_prefetch_plus_one_consecutive_layers():
    from types import SimpleNamespace

    from sim.system.budget import check_staging
    from sim.system.plan import Plan, Transfer

    system = build_system(load_arch("a6000-offload"))
    cap = system.tiers["gpu0.hbm"].capacity
    # half the GPU memory resident; four runs of 0.15 of it staged: prefetch p holds p + 1
    # runs at once (0.65, 0.8, 0.95 of the memory for p = 0, 1, 2; 1.1 for p = 3)
    plan = Plan(streams={}, transfers=[
        Transfer(i, "w", "weights", "gpu0.copy", "host_ddr", "gpu0.hbm", 0.15 * cap, 1, (),
                 (), 0.0, 0.0, release=10 * (i + 1)) for i in range(4)])
    placed = SimpleNamespace(on_tier=lambda tier: 0.5 * cap)
    for p in (0, 1, 2):
        check_staging(system, plan, placed, Policies(prefetch=p))
    with pytest.raises(SimError, match="staging 4 layer"):
        check_staging(system, plan, placed, Policies(prefetch=3))


def test_a_buffer_freed_when_another_is_filled_is_not_counted_twice():
    from sim.system.usage import occupancy_peak

    # A (10 B) is released by op 0, which ends at 1 s, the instant B (10 B) starts: at most
    # 10 B are staged at once; C lands in place (release -2) and stages nothing
    trs = pd.DataFrame({"release_op": [0, 1, -2], "dst": ["hbm", "hbm", "hbm"],
                        "start_s": [0.0, 1.0, 0.5], "end_s": [0.5, 1.5, 0.7],
                        "bytes": [10.0, 10.0, 99.0]})
    assert occupancy_peak(trs, np.array([1.0, 2.0])) == {"hbm": 10.0}
    trs.loc[1, "start_s"] = 0.9      # B starts before A is freed: both held
    assert occupancy_peak(trs, np.array([1.0, 2.0])) == {"hbm": 20.0}


def test_uncontended_resource_is_busy_for_its_bytes_at_its_bandwidth():
    from types import SimpleNamespace

    from sim.system.plan import Plan
    from sim.system.usage import resource_table

    # a link only one stream loads (pruned from the engine): 50 B at 100 B/s is 0.5 s busy,
    # a quarter of a 2 s run
    plan = Plan(streams={}, quiet={"nvlink>": (100.0, 50.0)})
    table = resource_table(SimpleNamespace(resources={}), plan, 2.0, {}).frame()
    row = table.set_index("resource").loc["nvlink>"]
    assert row["busy_s"] == pytest.approx(0.5) and row["utilisation"] == pytest.approx(0.25)
    assert row["bytes"] == 50.0 and not row["contended"]


def test_capacity_invariant_catches_a_tier_one_ppm_over():
    ops = pd.DataFrame({"id": [0], "end_s": [1.0], "latency_s": [1.0], "stream": ["s"]})
    empty_trs = pd.DataFrame({c: [] for c in ("start_s", "end_s", "latency_s", "floor_s")})
    empty_res = pd.DataFrame({c: [] for c in ("resource", "bytes", "routed_bytes", "busy_s")})
    cap = {"gpu0.hbm": 80e9}
    assert check_system_invariants(ops, empty_trs, empty_res, cap, {"gpu0.hbm": 80e9})
    with pytest.raises(InvariantError, match="over its capacity"):
        check_system_invariants(ops, empty_trs, empty_res, cap, {"gpu0.hbm": 80e9 * 1.000001})


def test_pipeline_sends_load_the_route_with_each_micro_batch_activations(pp_run):
    # 4 micro-batches of 2 sequences x 128 tokens x 4096 fp16 cross from gpu0 to gpu1 once
    # (one stage boundary): 4 x 2 MiB out of gpu0's NVLink port and into gpu1's
    res = pp_run.resources.set_index("resource")["bytes"]
    sent = 4 * 2 * 128 * 4096 * 2
    assert res["nvlink.gpu0>"] == sent and res["nvlink.gpu1<"] == sent


def test_collectives_load_the_port_with_ring_algorithm_bytes():
    """tp 4: a ring all-reduce sends 2 (g - 1) / g of the buffer from each rank, an
    all-gather (g - 1) / g of the gathered result. llama2-7b, 2 sequences of 64 tokens then
    one decode step: 130 tokens x 32 layers x 2 all-reduces of 4096 fp16; the logits (32,000
    fp16, 8,000 per rank) of the 4 sampled tokens are gathered."""
    sc = Scenario(batch=2, prompt_len=64, gen_len=2, tp=4, microbatches=2)
    run = simulate(load_arch("dgx-h100"), get_model("llama2-7b"), sc,
                   policies=Policies(overlap=True))
    allreduce = 130 * 32 * 2 * 4096 * 2 * (2 * 3 / 4)
    allgather = 4 * 32000 * 2 * (3 / 4)
    res = run.resources.set_index("resource")["bytes"]
    assert res["nvlink.gpu0>"] == pytest.approx(allreduce + allgather, rel=1e-12)
    assert res["nvlink.gpu0<"] == pytest.approx(allreduce + allgather, rel=1e-12)
