"""The dataflow device class: SN40L presets, spatial pipeline placement, fused and unfused runs."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest

from arch import load_arch
from arch.schema import SpecError
from mappings.dataflow import Stage, allocate, place, stage_seconds
from sim.devices.base import device_for
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.tracer import trace_model, weight_bytes_per_device


@pytest.fixture(scope="module")
def socket():
    return load_arch("sn40l")


@pytest.fixture(scope="module")
def node():
    return load_arch("sn40l-node")


def with_fusion(arch, fusion: str, **kw):
    from xpusim.reproductions.sn40l import with_fusion as wf

    out = wf(arch, fusion)
    if kw:
        if out.type == "system":
            comp = out.sections["components"]["rdu"]
            comp.device = comp.device.replace(dataflow=dataclasses.replace(comp.device.dataflow,
                                                                           **kw))
        else:
            out = out.replace(dataflow=dataclasses.replace(out.dataflow, **kw))
    return out


def test_sn40l_preset_matches_table_ii(socket):
    d = socket.dataflow
    # MICRO'24 Table II: 638 BF16 TFLOPS, 1,040 PCU + 1,040 PMU, 520 MiB SRAM, 64 GiB HBM
    assert d.peak_flops() == pytest.approx(638e12, rel=0.005)
    assert (d.pcus, d.pmus) == (1040, 1040)
    assert d.pmus * d.pmu_capacity == socket.memory["sram"].capacity == 520 * 2**20
    assert socket.memory["hbm"].capacity == 64 * 2**30
    assert 1.8e12 <= socket.memory["hbm"].bandwidth * socket.memory["hbm"].efficiency <= 2e12
    assert socket.memory["ddr"].capacity == 1.5 * 2**40
    assert socket.memory["ddr"].bandwidth == 200e9
    for key in ("dataflow.clock", "dataflow.pcus", "memory.hbm.bandwidth", "memory.ddr.capacity",
                "dataflow.program_load", "energy.static_power"):
        assert socket.provenance.get(key), key


def test_node_has_eight_sockets_and_ddr_path(node):
    from sim.system.topology import build_system

    system = build_system(node)
    assert len(system.compute_devices()) == 8
    route = system.route("ddr3", "rdu3")
    # DDR -> HBM over 1 TB/s per node (MICRO'24), eight sockets
    assert route.bottleneck * 8 == pytest.approx(1e12)


def test_pmu_total_must_match_sram(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: sn40l\nname: bad\ndataflow:\n  pmus: 1000\n")
    with pytest.raises(SpecError, match="pmu_capacity"):
        load_arch(str(bad))
    proc = subprocess.run([sys.executable, "-m", "xpusim", "run", "--arch", str(bad), "--model",
                           "llama2-7b"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "pmu_capacity" in proc.stderr
    assert "Traceback" not in proc.stderr


def _gemm(name, n_tiles, arch, k=512, hbm=0.0):
    d = arch.dataflow
    return Stage(name, "gemm", 2.0 * d.stages * n_tiles * d.lanes * k, hbm, 0.0, 1, d.stages,
                 n_tiles * d.lanes, k)


def test_allocation_balances_stages_in_proportion_to_work(socket):
    d = socket.dataflow
    stages = [_gemm("big", 300, socket), _gemm("small", 100, socket)]
    alloc = allocate(stages, socket, pcus=40)
    assert alloc == [30, 10]      # work 3:1 -> PCUs 3:1, every stage 10 tiles
    t = [stage_seconds(s, socket, p) for s, p in zip(stages, alloc, strict=True)]
    per_tile = (512 + d.stages + d.lanes - 1) / d.clock
    assert t == pytest.approx([10 * per_tile, 10 * per_tile])
    # a fixed even split would leave the big stage 1.5x slower
    assert stage_seconds(stages[0], socket, 20) == pytest.approx(1.5 * t[0])


def _greedy(stages, arch, pcus, scale):
    """The allocation by its definition: one PCU at a time to the stage whose scaled fold time
    is the longest (the lowest index at a tie), until none is left or that stage has a PCU
    per tile."""
    scale = scale or [1.0] * len(stages)
    alloc = [0 if s.kind == "link" else 1 for s in stages]
    left = pcus - sum(alloc)
    tiles = [math.prod((s.batch, math.ceil(s.m / arch.dataflow.stages),
                        math.ceil(s.n / arch.dataflow.lanes), math.ceil(s.k / min(s.k, 512))))
             for s in stages]
    while left > 0:
        i = min((i for i, s in enumerate(stages) if s.kind != "link"),
                key=lambda i: (-stage_seconds(stages[i], arch, alloc[i]) * scale[i], i))
        if alloc[i] >= tiles[i]:
            break
        alloc[i] += 1
        left -= 1
    return alloc


def test_allocation_is_the_greedy_one_pcu_at_a_time(socket, monkeypatch):
    """``allocate`` grants whole runs of PCUs at once (a time level, then a stage while it stays
    the bottleneck): on 300 seeded sets of GEMM stages (copies among them: exact ties, broken
    by index; mapper scales; 40 to 1,040 PCUs; stages with a few tiles that run out) it gives
    the allocation of the one-PCU-at-a-time greedy, every count."""
    import random

    import mappings.dataflow as dataflow

    rng = random.Random(7)
    levels = []
    real = dataflow._grant_below_level
    monkeypatch.setattr(dataflow, "_grant_below_level",
                        lambda *a: levels.append(real(*a)) or levels[-1])
    for _ in range(300):
        stages = [_gemm(f"g{j}", rng.choice([1, 3, 10, 64, 300, 2000]), socket,
                        k=rng.choice([128, 512, 4096]))
                  for j in range(rng.randint(1, 10))]
        stages += stages[:rng.randint(0, len(stages))]   # equal stages: ties
        scale = [rng.choice([1.0, 1.25, 2.0]) for _ in stages] if rng.random() < 0.5 else None
        pcus = rng.choice([40, 100, 1040])
        assert allocate(stages, socket, pcus, scale) == _greedy(stages, socket, pcus, scale)
    assert sum(g > 0 for g in levels) >= 50    # the level's grants were exercised


def test_a_kept_allocation_is_returned_only_where_it_is_the_greedys(socket, monkeypatch):
    """``is_greedy`` accepts the one-PCU-at-a-time greedy's allocation and refuses it with one
    PCU moved between two stages (on 120 seeded sets of stages, ties and scales among them),
    and ``allocate`` returns a kept allocation for a like pipeline (a decode step's layer
    whose attention grew by a token) without the greedy only where that holds."""
    import random

    import mappings.dataflow as dataflow
    from mappings.dataflow import _fold_terms, is_greedy

    rng = random.Random(11)
    refused = 0
    for _ in range(120):
        stages = [_gemm(f"g{j}", rng.choice([1, 3, 10, 64, 300, 2000]), socket,
                        k=rng.choice([128, 512, 4096]))
                  for j in range(rng.randint(2, 8))]
        stages += stages[:rng.randint(0, 2)]   # equal stages: ties
        scale = [rng.choice([1.0, 1.25, 2.0]) for _ in stages]
        pcus = rng.choice([40, 100, 1040])
        terms = {i: _fold_terms(s, socket) for i, s in enumerate(stages)}
        want = _greedy(stages, socket, pcus, scale)
        assert is_greedy(want, terms, scale, pcus - len(stages))
        a, b = rng.sample(range(len(stages)), 2)
        moved = list(want)
        moved[a] -= 1
        moved[b] += 1
        if moved != want:
            assert not is_greedy(moved, terms, scale, pcus - len(stages))
            refused += 1
    assert refused >= 100
    # a layer's stages, step after step: the attention's KV length grows by one token
    calls = []
    real = dataflow._grant_below_level
    monkeypatch.setattr(dataflow, "_grant_below_level", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(dataflow, "_RECENT", {})
    for kv in range(512, 560):
        stages = [_gemm("qkv", 96, socket), _gemm("attn", kv // 16, socket, k=kv),
                  _gemm("o", 32, socket), _gemm("mlp", 344, socket, k=4096)]
        assert allocate(stages, socket, 1040) == _greedy(stages, socket, 1040, None)
    assert len(calls) < 48 // 2    # most steps took the last step's allocation


def test_placements_kept_per_stage_equal_placements_worked_out_afresh(socket, monkeypatch):
    """``place`` keeps each stage's fold terms and placements (by PCUs, PMUs and whether
    the mapper maps it) for the next pipeline holding that stage object: 60 seeded pipelines
    drawn from one pool of stages, with and without the mapper, place as they do with every
    memo emptied first."""
    import random
    from dataclasses import replace

    import mappings.dataflow as dataflow

    rng = random.Random(5)
    pool = [replace(_gemm(f"g{j}", rng.choice([3, 10, 64, 300]), socket,
                          k=rng.choice([128, 512])), mappable=j % 2 == 0) for j in range(6)]
    pool.append(Stage("act", "simd", 2e6, elements=1e6, regular=2e6, tail=1e6))
    runs = [(rng.sample(pool, rng.randint(2, 6)), rng.random() < 0.7) for _ in range(60)]
    monkeypatch.setattr(dataflow, "_BY_STAGE", {})
    kept = [place(stages, socket, use_mapper=mapped) for stages, mapped in runs]
    assert len(dataflow._BY_STAGE) == len(pool)
    for (stages, mapped), got in zip(runs, kept, strict=True):
        dataflow._BY_STAGE.clear()
        dataflow._RECENT.clear()
        assert got == place(stages, socket, use_mapper=mapped)


def test_counts_below_a_level_are_the_greedys_own(socket):
    """The level's binary search counts the PCU counts whose scaled key lies strictly below
    the level, as the greedy's order of keys has them: against a count one by one, at levels
    that equal a stage's own time at some PCU count (the boundary: equal keys are not below)
    and between them."""
    import random

    from mappings.dataflow import _above, _fold_terms, _seconds_on

    rng = random.Random(3)
    for _ in range(200):
        stage = _gemm("g", rng.choice([2, 7, 64, 300]), socket, k=rng.choice([128, 512, 4096]))
        terms, scale = _fold_terms(stage, socket), rng.choice([1.0, 1.25, 3.0])
        tiles = terms[0]
        at = rng.randint(1, tiles)
        for level in (_seconds_on(terms, at) * scale, _seconds_on(terms, at) * scale * 1.001):
            want = 0
            for p in range(1, tiles):
                if -_seconds_on(terms, p) * scale < -level:
                    want = p
            assert _above(terms, scale, level) == want


def test_pipeline_is_hbm_bound_when_weights_dominate(socket):
    hbm = socket.memory["hbm"]
    stages = [_gemm("a", 8, socket, hbm=200e6), _gemm("b", 8, socket, hbm=100e6)]
    pl = place(stages, socket, use_mapper=False)
    t_hbm = 300e6 / (hbm.bandwidth * hbm.efficiency)
    assert pl.bottleneck == "hbm"
    assert pl.t_hbm == pytest.approx(t_hbm)
    # plus the fill: one tile through each stage
    assert pl.seconds == pytest.approx(t_hbm + pl.t_fill)
    assert 0 < pl.t_fill < 0.01 * t_hbm


def test_pipeline_throughput_set_by_slowest_stage(socket):
    stages = [_gemm("a", 2000, socket), _gemm("b", 10, socket)]
    pl = place(stages, socket, use_mapper=False)
    assert pl.bottleneck == "stage:a"
    slow = max(sp.seconds for sp in pl.stages)
    assert pl.seconds == pytest.approx(slow + pl.t_fill)
    assert pl.stages[0].pcus > 50 * pl.stages[1].pcus


def _decode_trace(model="llama2-7b", gen=2, batch=8, tp=8):
    return trace_model(get_model(model), Scenario(batch=batch, prompt_len=128, gen_len=gen,
                                                   tp=tp))


def test_fused_kernels_move_only_weights_kv_and_boundaries(node):
    dev = device_for(node, "tile")
    trace = _decode_trace()
    dev.split_trace(trace)
    step = [op for op in trace.ops if op.phase == "decode" and op.layer == 0]
    fused = sum(dev.estimate(op).dram_bytes for op in step)
    shard = {op.name: op for op in step}
    # hand count per socket: the four weight matrices, the K and V caches read, and the
    # activations entering (ln_attn, residual_attn) and leaving (o_proj, residual_ffn)
    weights = sum(shard[n].compute.inputs[1].nbytes(shard[n].compute.size)
                  for n in ("qkv_proj", "o_proj", "ffn_up", "ffn_down"))
    kv = sum(shard[n].compute.inputs[1].nbytes(shard[n].compute.size) for n in ("qk", "av"))
    # Llama-2-7B layer: QKV 4096x12288, O 4096x4096, gate+up 4096x22016, down 11008x4096,
    # BF16, one of eight tensor-parallel shards
    assert weights == 4096 * (12288 + 4096 + 22016 + 11008) * 2 // 8
    state = sum(t.nbytes(e.size) for e in shard["rope"].compute.einsums for t in e.inputs
                if t.role == "state")
    # three segments (cut at the two all-reduces): x in / o_proj out; residual in (2) /
    # ffn_down out; residual in (2) / out -> 8 activation tensors of 8 tokens x 4096 x 2 B
    act = 8 * 4096 * 2
    norms = 2 * 4096 * 2            # the two RMSNorm gains (weights, replicated per shard)
    assert fused == pytest.approx(weights + norms + kv + state + 8 * act)
    unfused = device_for(with_fusion(node, "none"), "tile")
    unfused.split_trace(trace)
    assert sum(unfused.estimate(op).dram_bytes for op in step) == pytest.approx(
        sum(op.bytes / op.shards for op in step if op.kind != "collective"))


def test_fused_and_unfused_runs_keep_the_invariants(node):
    model = get_model("llama2-7b")
    sc = Scenario(batch=8, prompt_len=128, gen_len=3, tp=8)
    fused = simulate(node, model, sc)
    unfused = simulate(with_fusion(node, "none"), model, sc)
    for r in (fused, unfused):
        assert all(v == "passed" for v in r.invariants.values())
    # decode on the fused pipeline: at least the weight stream at sustained HBM bandwidth
    hbm = node.sections["components"]["rdu"].device.memory["hbm"]
    floor = weight_bytes_per_device(model, "fp16", 8) / (hbm.bandwidth * hbm.efficiency)
    assert fused.metrics["tpot_s"] > floor
    assert unfused.metrics["tpot_s"] > 2 * fused.metrics["tpot_s"]


def test_call_overhead_is_per_kernel(node):
    model = get_model("llama2-7b")
    sc = Scenario(batch=8, prompt_len=128, gen_len=3, tp=8)
    trace = trace_model(model, sc)
    per_step = sum(1 for op in trace.ops if op.phase == "decode" and op.step == 1)
    base_u = simulate(with_fusion(node, "none"), model, sc).metrics["tpot_s"]
    more_u = simulate(with_fusion(node, "none", program_load=20e-6), model, sc)
    # every op of a decode step is one call: +10 us of program load each
    assert more_u.metrics["tpot_s"] - base_u == pytest.approx(per_step * 10e-6, rel=0.02)
    base_f = simulate(node, model, sc).metrics["tpot_s"]
    more_f = simulate(with_fusion(node, "decoder", program_load=20e-6), model, sc)
    layers_plus = model.n_layers + 2        # decoder layers, embedding, final norm + LM head
    assert more_f.metrics["tpot_s"] - base_f == pytest.approx(layers_plus * 10e-6, rel=0.02)


def test_kernel_calls_counted_per_fused_layer(node):
    trace = _decode_trace(gen=2)
    dev = device_for(node, "tile")
    dev.split_trace(trace)
    layers = get_model("llama2-7b").n_layers
    assert dev.calls["kernels"] == 2 * (layers + 2)     # prefill and one decode step
    assert dev.calls["ops"] == len(trace.ops)


def test_roofline_fidelity_is_a_lower_bound(node):
    model = get_model("llama2-7b")
    sc = Scenario(batch=8, prompt_len=64, gen_len=2, tp=8)
    roof = simulate(node, model, sc, fidelity="roofline")
    tile = simulate(node, model, sc)
    assert roof.metrics["latency_s"] <= tile.metrics["latency_s"]
    assert math.isfinite(roof.metrics["latency_s"]) and roof.metrics["latency_s"] > 0


def test_op_command_on_sn40l():
    proc = subprocess.run([sys.executable, "-m", "xpusim", "op", "gemm", "--arch", "sn40l",
                           "--m", "8", "--n", "4096", "--k", "4096", "--dtype", "bf16",
                           "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout)
    # 32 MiB of weights at sustained HBM bandwidth + the call overheads
    t_hbm = 4096 * 4096 * 2 / (2e12 * 0.92)
    assert out["latency_s"] >= t_hbm + 11e-6
    assert out["latency_s"] <= 2 * t_hbm + 11e-6


# --- numerics: the fused pipeline's reduction order -------------------------------------------
def test_pcu_plan_is_chunked_output_stationary(socket):
    from sim.functional.base import functional_for

    fx = functional_for(socket)
    plan = fx.plan_matmul(None, "bf16", (1, 8, 64, 1536))
    # 6x32 output-stationary folds: ceil(8/6) x ceil(64/32) = 4, times three 512-wide K chunks
    assert len(plan.items) == 12
    assert sorted({(int(r[5]), int(r[6])) for r in plan.items}) == [(0, 512), (512, 1024),
                                                                   (1024, 1536)]
    assert plan.declared.inputs == "bf16"
    assert plan.acc.dtype == "fp32" and plan.declared.partial.dtype == "fp32"


def test_check_passes_on_sn40l_and_catches_wrong_accumulation(socket):
    from sim.functional.formats import Rounder
    from sim.functional.layer import CheckSpec, check_layer

    model = get_model("llama2-7b")
    spec = CheckSpec(prompt=16, phases=("prefill",), max_width=256, dtype="bf16",
                     ops=("qkv_proj", "o_proj", "ffn_down"))
    assert check_layer(socket, model, spec).passed

    def narrow(op, plan):        # the PCUs accumulate in bf16 while fp32 is declared
        return plan.mutated(acc=Rounder("bf16"))

    assert not any(r.passed for r in check_layer(socket, model, spec, plan_hook=narrow).rows)

    def drop_chunk(op, plan):    # one reduction chunk never reaches the PMU buffer
        return plan.mutated(items=plan.items[:-1]) if op.name == "ffn_down" else plan

    rep = check_layer(socket, model, spec, plan_hook=drop_chunk)
    assert [r.op for r in rep.rows if not r.passed] == ["ffn_down"]


def test_sweep_example_validates(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xpusim", "sweep", "examples/sweep_sn40l.yaml",
                           "--dry-run", "--out", str(tmp_path / "s"), "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "18" in proc.stdout


def test_fewer_pmus_per_pcu_never_speed_up_a_fused_layer(socket):
    """The PMU read ports feed the PCUs: halving the PMUs (and the SRAM) cannot make the
    pipeline faster, and it must show up in a compute-bound prefill layer."""
    model = get_model("llama2-7b")
    sc = Scenario(batch=1, prompt_len=256, gen_len=2, tp=1)
    from dataclasses import replace as dreplace

    def variant(pmus):
        a = socket.replace(dataflow=dreplace(socket.dataflow, pmus=pmus))
        mem = dict(a.memory)
        mem["sram"] = dreplace(mem["sram"], capacity=pmus * socket.dataflow.pmu_capacity)
        return a.replace(memory=mem)

    one = dreplace(model, n_layers=1)
    full = simulate(socket, one, sc).metrics["ttft_s"]
    half = simulate(variant(260), one, sc).metrics["ttft_s"]
    assert half > 1.05 * full


def test_ring_allreduce_cost_by_hand(node):
    """An all-reduce of 1 MiB per rank over the node's 8 sockets on its p2p links (1 us,
    100 GB/s at 85%): a ring takes 2 (8 - 1) = 14 link latencies and each rank sends
    2 x 7/8 of its bytes."""
    from workloads.trace import COLLECTIVE, Collective, Op

    dev = device_for(node, "tile")
    assert (dev.link.latency, dev.link.bandwidth, dev.link.efficiency) == (1e-6, 100e9, 0.85)
    op = Op(0, "ar", COLLECTIVE, "decode", 0, 0, None,
            collective=Collective("allreduce", 2.0**20, 8, "bf16"))
    want = 14 * 1e-6 + 2 * 7 / 8 * 2.0**20 / (100e9 * 0.85)
    assert dev.estimate(op).latency == pytest.approx(want, rel=1e-12)


def test_unfused_call_pays_program_argument_and_hbm_latency(socket):
    """One op as its own kernel (fusion none): the one-stage placement's time plus the program
    load (10 us), the argument load (1 us) and one HBM access latency (0.5 us)."""
    from workloads.einsum import TensorRef, contraction
    from workloads.trace import MATMUL, Op

    a = TensorRef("A", ("m", "k"), "bf16", "activation")
    b = TensorRef("B", ("k", "n"), "bf16", "weight")
    c = TensorRef("C", ("m", "n"), "bf16", "activation")
    e = contraction("g", c, a, b, {"m": 16, "n": 4096, "k": 4096})
    op = Op(0, "g", MATMUL, "decode", 0, 0, e, flops=e.flops, bytes=e.min_bytes)
    dev = device_for(with_fusion(socket, "none"), "tile")
    d = dev.d
    assert (d.program_load, d.argument_load, dev.hbm.latency) == (10e-6, 1e-6, 0.5e-6)
    pl = place([dev.stage_of(op, fused=False)], dev.arch)
    cost = dev.estimate(op)
    assert cost.latency == pytest.approx(pl.seconds + 10e-6 + 1e-6 + 0.5e-6, rel=1e-12)


def test_a_tile_more_than_the_pcus_takes_a_second_wave(socket):
    # 11 GEMM tiles on 10 PCUs: two waves of (k + stages + lanes - 1) cycles each
    d = socket.dataflow
    per_tile = (512 + d.stages + d.lanes - 1) / d.clock
    assert stage_seconds(_gemm("g", 11, socket), socket, 10) == pytest.approx(2 * per_tile)
    assert stage_seconds(_gemm("g", 10, socket), socket, 10) == pytest.approx(per_tile)


@pytest.mark.parametrize("arch, model, scenario", [
    ("sn40l", "llama2-7b", {"batch": 16, "prompt_len": 64, "gen_len": 8, "microbatches": 2}),
    ("sn40l-node", "mixtral-8x7b", {"batch": 8, "prompt_len": 64, "gen_len": 8, "tp": 8}),
    ("sn40l-node", "llama2-13b", {"batch": 8, "prompt_len": 64, "gen_len": 8, "tp": 4,
                                  "pp": 2, "microbatches": 2}),
])
def test_split_of_arrays_attributes_the_op_by_op_costs(arch, model, scenario):
    """A trace held as arrays is split into the same fused segments on its arrays
    (sim/devices/dataflow_arrays.py): each op, priced through its new kind, costs what the
    op-by-op split attributes to it (collectives priced alone in both), the kernels counted
    alike, the ops themselves unchanged."""
    from workloads.trace import Trace

    m, sc = get_model(model), Scenario(**scenario)
    on_arrays, on_ops = device_for(load_arch(arch), "tile"), device_for(load_arch(arch), "tile")
    split = on_arrays.split_trace(trace_model(m, sc, compact=True))
    ops = trace_model(m, sc, compact=True).ops
    on_ops.split_trace(Trace(ops, m, sc))
    assert split.is_compact and on_arrays.calls == on_ops.calls
    assert len(split.compact.kinds) > len({id(k) for k in split.compact.kinds})  # kinds split
    got = split.ops
    assert len(got) == len(ops)
    fused = 0
    for a, b in zip(got, ops, strict=True):
        assert [getattr(a, f.name) for f in dataclasses.fields(a)] == \
            [getattr(b, f.name) for f in dataclasses.fields(b)]
        assert on_arrays.estimate(a) == on_ops.estimate(b)
        fused += bool(on_ops.estimate(b).detail.get("fused"))
    assert fused > len(ops) // 2


@pytest.mark.parametrize("arch, scenario, engine_module", [
    ("sn40l", {"batch": 8, "prompt_len": 64, "gen_len": 16}, "sim.engine"),
    ("sn40l-node", {"batch": 8, "prompt_len": 64, "gen_len": 8, "tp": 4, "pp": 2,
                    "microbatches": 2}, "sim.engine_arrays")])
def test_the_engine_takes_a_split_traces_costs_per_kind(arch, scenario, engine_module,
                                                        monkeypatch):
    """A run of a trace split on its arrays takes each kind's fused cost from the device
    (``DataflowDevice.kind_costs``) instead of building an op per kind to price (one stream:
    sim/engine.py; several: sim/engine_arrays.py): ops are built only for the kinds priced
    alone (the collectives: none on one socket), and the op table, metrics and energy are
    those of the run with the costs withheld (one op built per kind and estimated)."""
    import importlib

    from sim.devices.dataflow import DataflowDevice

    engine = importlib.import_module(engine_module)
    m, sc = get_model("llama2-7b"), Scenario(**scenario)
    built: list[int] = []
    real = engine.ops_at
    monkeypatch.setattr(engine, "ops_at", lambda a, at, s: built.append(len(at)) or
                        real(a, at, s))
    got = simulate(load_arch(arch), m, sc)
    with_costs = sum(built)       # the collectives' kinds (7 on the node), none on a socket
    assert with_costs == 0 if arch == "sn40l" else with_costs > 0
    monkeypatch.setattr(DataflowDevice, "kind_costs", lambda self, arrays: None)
    ref = simulate(load_arch(arch), m, sc)
    assert sum(built) - with_costs > 10 * max(with_costs, 1)   # every kind (79 on the node)
    assert got.ops.equals(ref.ops)
    assert got.metrics == ref.metrics and got.energy_by_component == ref.energy_by_component


def test_pmus_by_hand_and_kept_per_pcu_count(socket):
    """A stage's PMUs: its double-buffered tiles' need on its PCUs, then the spare by PCU
    share. SN40L: 6 x 32 PCU, 512 KiB PMUs, 1,040 of them. A bf16 GEMM stage (m = 6, K = 512)
    needs ceil(2 x (6 x 512 + 512 x 32) x 2 B x p / 512 KiB) = ceil(0.1484375 p) PMUs, an
    element-wise one ceil(2 x 32 x 2 B x 2 x p / 512 KiB) = 1 below 2,048 PCUs. The needs are
    kept per stage and PCU count (``memos``) and give the same PMUs as worked out afresh."""
    import mappings.dataflow as dataflow

    gemm, simd = _gemm("g", 300, socket), Stage("act", "simd", 2e6, elements=1e6)
    memos = {0: dataflow._memo_of(gemm, socket), 1: dataflow._memo_of(simd, socket)}
    # p = 100: needs 15 and 1, spare 1,024 over 120 PCUs: 15 + 853, 1 + 170
    assert dataflow.allocate_pmus([gemm, simd], socket, [100, 20], memos) == [868, 171]
    # p = 10 after it, the same memos: needs 2 and 1, spare 1,037 over 30: 2 + 345, 1 + 691
    assert dataflow.allocate_pmus([gemm, simd], socket, [10, 20], memos) == [347, 692]
    assert dataflow.allocate_pmus([gemm, simd], socket, [10, 20]) == [347, 692]
    # p = 6 and 7 straddle a second PMU of need: 1 + floor(1,038 x 6 / 26) and
    # 2 + floor(1,037 x 7 / 27)
    assert dataflow.allocate_pmus([gemm, simd], socket, [6, 20], memos)[0] == 1 + 239
    assert dataflow.allocate_pmus([gemm, simd], socket, [7, 20], memos)[0] == 2 + 268


def test_kept_pmus_follow_the_chip(socket, monkeypatch):
    """A pipeline's PMUs kept per (stages' tile bytes, PCUs, the chip's PMUs and their
    capacity) (``_pmus_of``): the same stages on the same PCUs on a chip whose PMUs hold half
    as much get that chip's PMUs, not the kept ones. By hand (the GEMM stage needs
    ceil(0.1484375 p) PMUs of 512 KiB, test above): 100 + 20 PCUs on 512 KiB PMUs need 15 and
    1, the spare 1,024 shared 853 / 170; on 256 KiB PMUs they need 30 and 1, the spare 1,009
    shared floor(1,009 x 100 / 120) = 840 and floor(1,009 x 20 / 120) = 168."""
    import mappings.dataflow as dataflow

    monkeypatch.setattr(dataflow, "_PMUS", {})
    half = socket.replace(dataflow=dataclasses.replace(
        socket.dataflow, pmu_capacity=socket.dataflow.pmu_capacity / 2))
    for arch, want in ((socket, [868, 171]), (half, [870, 169]), (socket, [868, 171])):
        gemm, simd = _gemm("g", 300, arch), Stage("act", "simd", 2e6, elements=1e6)
        memos = {0: dataflow._memo_of(gemm, arch), 1: dataflow._memo_of(simd, arch)}
        assert dataflow._pmus_of([gemm, simd], arch, [100, 20], memos) == want
        assert dataflow.allocate_pmus([gemm, simd], arch, [100, 20]) == want
    assert len(dataflow._PMUS) == 2
