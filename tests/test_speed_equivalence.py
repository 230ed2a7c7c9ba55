"""Speed without loss of fidelity: coarsened engine events and memoised decode-step templates
give the same schedule, energy and per-op-class totals as the one-event-per-op engine."""

from __future__ import annotations

import numpy as np
import pytest

import workloads.tracer as tracer
from arch import load_arch
from sim.run import simulate
from sim.system.placement import parse_placement
from sim.system.schedule import Policies
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.tracer import trace_model

CASES = {
    # one device, one stream: the whole run may become one event
    "h100": ("h100", "llama2-7b", {"batch": 2, "prompt_len": 32, "gen_len": 5}, None, None),
    # a system preset at TP8: all-reduces on the compute stream, their ports uncontended
    "dgx-h100-tp8": ("dgx-h100", "llama2-70b", {"batch": 2, "prompt_len": 32, "gen_len": 6,
                                                "tp": 8}, None, None),
    # pipeline stages wait on each other: runs stop at cross-stream waits
    "dgx-h100-pp2": ("dgx-h100", "llama2-7b", {"batch": 4, "prompt_len": 32, "gen_len": 4,
                                               "tp": 2, "pp": 2, "microbatches": 2},
                     None, None),
    # collectives on their own stream, contended memory: nothing may be coarsened
    "dgx-h100-overlap": ("dgx-h100", "llama2-7b", {"batch": 4, "prompt_len": 32,
                                                   "gen_len": 4, "tp": 2, "microbatches": 2},
                         None, Policies(overlap=True)),
    # the same with decode steps long enough to coarsen: each all-reduce is stamped beside
    # the other micro-batch's compute ops, their HBM shared (sim/resources.py PairReplay)
    "dgx-h100-overlap-beside": ("dgx-h100", "llama2-7b", {"batch": 32, "prompt_len": 512,
                                                          "gen_len": 16, "tp": 8,
                                                          "microbatches": 2},
                                None, Policies(overlap=True)),
    # weights streamed over PCIe: copy streams contend for the device memory
    "a6000-offload": ("a6000-offload", "opt-30b", {"batch": 1, "prompt_len": 32, "gen_len": 4},
                      "weights=gpu.hbm:0.5,host_ddr:0.5", Policies(prefetch=1)),
    # two micro-batch chains interleaved on one stream, fused attention, sparse KV reads
    "h100-microbatches": ("h100", "llama2-7b", {"batch": 4, "prompt_len": 32, "gen_len": 6,
                                                "microbatches": 2, "attention": "flash",
                                                "sparse_kv": 0.5}, None, None),
    # a skewed MoE router (per-layer expert GEMMs) at TP2; expert parallelism (ranks on
    # their own streams) at TP2 x EP2
    "dgx-h100-moe-skew": ("dgx-h100", "mixtral-8x7b", {"batch": 4, "prompt_len": 32,
                                                       "gen_len": 6, "tp": 2,
                                                       "expert_skew": 1.0}, None, None),
    "dgx-h100-moe-ep": ("dgx-h100", "mixtral-8x7b", {"batch": 4, "prompt_len": 32,
                                                     "gen_len": 6, "tp": 2, "ep": 2},
                        None, None),
    # a PIM unit stream beside the compute stream
    "neupims": ("neupims", "llama2-7b", {"batch": 4, "prompt_len": 32, "gen_len": 4,
                                         "microbatches": 2}, None, None),
}


@pytest.fixture(autouse=True)
def _unfolded(monkeypatch):
    """These tests compare the engines bit for bit on the per-op arrays: decode steps are
    stamped, not folded (a folded run's metrics agree with them to float rounding and its op
    table exactly: tests/test_fold.py)."""
    monkeypatch.setattr(tracer, "FOLD", False)


def _pair(name: str):
    arch, model, kw, placement, policies = CASES[name]
    args = (load_arch(arch), get_model(model), Scenario(**kw))
    extra = {"placement": parse_placement(placement) if placement else None,
             "policies": policies}
    return (simulate(*args, coarsen=False, **extra), simulate(*args, coarsen=True, **extra))


@pytest.mark.parametrize("name", sorted(CASES))
def test_coarsened_run_equals_one_event_per_op(name):
    fine, coarse = _pair(name)
    for col in ("start_s", "end_s", "latency_s", "energy_J", "dram_bytes"):
        np.testing.assert_array_equal(coarse.ops[col].to_numpy(), fine.ops[col].to_numpy(),
                                      err_msg=f"{name}: column {col}")
    assert coarse.ops.dtypes.equals(fine.ops.dtypes)
    assert coarse.ops.equals(fine.ops)            # every column of every op
    assert coarse.resources.equals(fine.resources)
    for key in ("latency_s", "ttft_s", "tpot_s", "energy_J", "flops", "bytes", "events"):
        assert coarse.metrics[key] == fine.metrics[key], key
    by_class = [r.ops.groupby("op_class")[["latency_s", "energy_J"]].sum() for r in
                (fine, coarse)]
    assert by_class[0].equals(by_class[1])
    assert coarse.transfers.equals(fine.transfers)
    assert coarse.energy_by_component == fine.energy_by_component
    assert set(coarse.invariants.values()) == {"passed"}
    # the fine engine waits at least once per task (and for cross-stream dependencies); the
    # coarse one never more often
    assert fine.metrics["engine_events"] >= fine.metrics["events"]
    assert coarse.metrics["engine_events"] <= fine.metrics["engine_events"]
    if name == "dgx-h100-overlap-beside":     # the windows beside were taken, not per-op events
        assert coarse.metrics["engine_events"] * 20 < fine.metrics["engine_events"]


def test_one_stream_run_is_one_event_and_pipeline_runs_stop_at_waits(monkeypatch):
    import sim.engine_planned as engine_planned

    fine, coarse = _pair("h100")
    assert coarse.metrics["engine_events"] == 1     # nothing else to wait for
    assert fine.metrics["engine_events"] == len(fine.ops)
    fine, piped = _pair("dgx-h100-pp2")
    # its op objects on two stages' streams: one compiled pass (sim/engine_planned.py)
    assert piped.metrics["engine_events"] == 0 < fine.metrics["engine_events"]
    # contended memory and transfers between tiers: one compiled pass, no event waited on
    # (sim/engine_planned.py; its figures are the per-op engine's, the pairs' test above)
    fine, coarse = _pair("a6000-offload")
    assert coarse.metrics["engine_events"] == 0 < fine.metrics["engine_events"]
    # where the event loop runs them (the pass off), each micro-batch crosses the stage
    # boundary in each of the 4 steps (prefill + 3 decode) and comes back for the next
    # step: fewer events than ops, more than the handful of runs
    monkeypatch.setattr(engine_planned, "run_planned", lambda *a: None)
    fine, looped = _pair("dgx-h100-pp2")
    assert looped.ops.equals(piped.ops)
    assert 2 * 4 <= looped.metrics["engine_events"] < fine.metrics["engine_events"] / 4


def test_decode_steps_share_templates_except_attention():
    """Decode steps differ only in KV length: every op but attention reuses one Einsum object
    across steps (so its FLOPs, bytes and cost are derived once), attention gets a new one
    per step whose KV rank grows by one."""
    sc = Scenario(batch=2, prompt_len=16, gen_len=4)
    ops = trace_model(get_model("llama2-7b"), sc).ops
    by_step: dict[int, dict[str, object]] = {}
    for op in ops:
        if op.phase == "decode" and op.layer == 0:
            by_step.setdefault(op.step, {})[op.name] = op.compute
    s1, s2 = by_step[1], by_step[2]
    assert s1.keys() == s2.keys()
    for name in s1:
        if name in ("qk", "softmax", "av"):
            assert s1[name] is not s2[name]
            assert s2[name].flops > s1[name].flops
        else:
            assert s1[name] is s2[name], name
    qk1, qk2 = s1["qk"], s2["qk"]
    assert dict(qk2.sizes)["n"] == dict(qk1.sizes)["n"] + 1 == 16 + 2


def test_long_decode_runs_on_arrays_without_an_op_object_per_step():
    """A one-stream run of a trace held as arrays (decode steps stamped from the second one)
    never materialises its ops, yet gives the per-op engine's times and costs exactly."""
    from sim.devices.base import device_for
    from sim.engine import Engine

    arch, model = load_arch("h100"), get_model("llama2-7b")
    sc = Scenario(batch=2, prompt_len=16, gen_len=7)
    compact = trace_model(model, sc, compact=True)
    full = trace_model(model, sc)
    assert compact.is_compact and len(compact) == len(full.ops)
    dev = device_for(arch, "tile")
    fast = Engine({"gpu": dev}).run(compact)
    slow = Engine({"gpu": dev}, coarsen=False).run(full)
    assert compact.is_compact                      # the engine read the arrays only
    np.testing.assert_array_equal(fast.start, slow.start)
    np.testing.assert_array_equal(fast.end, slow.end)
    assert [c.latency for c in fast.costs] == [c.latency for c in slow.costs]
    assert fast.engine_events == 1 and slow.engine_events == len(full.ops)
    # the arrays materialise into the same ops, field by field
    for a, b in zip(compact.ops, full.ops, strict=True):
        assert (a.id, a.name, a.phase, a.layer, a.step, a.deps, a.flops, a.bytes, a.tokens,
                a.requests, a.microbatch) == (b.id, b.name, b.phase, b.layer, b.step, b.deps,
                                              b.flops, b.bytes, b.tokens, b.requests,
                                              b.microbatch)
        assert a.compute is b.compute or a.compute == b.compute


@pytest.mark.parametrize("seed", [0, 2])
def test_coarsened_run_equals_one_event_per_op_under_scrambled_costs(seed, monkeypatch):
    """Every op kind's latency stretched by a factor of 1-4 drawn from its name (CRC32 with the
    seed; never below its roofline): stages, micro-batches and the comm stream now take turns
    in other orders, so where a quiet run must end depends on when a third user of a resource
    can start (the bound from what another stream's next op waits for, and whether only the
    run's own stream holds it). The coarsened engine still starts and ends every op where one
    event per op does (a bound twice too late, or one that ignores whose op is awaited, ends
    runs late on these seeds)."""
    import dataclasses
    import zlib

    from sim.devices.base import Device

    estimate = Device.estimate

    def scrambled(self, op):
        cost = estimate(self, op)
        draw = zlib.crc32(f"{seed}:{op.name}".encode()) / 2 ** 32
        return dataclasses.replace(cost, latency=cost.latency * (1.0 + 3.0 * draw))

    monkeypatch.setattr(Device, "estimate", scrambled)   # both engines price through it
    args = (load_arch("dgx-h100"), get_model("llama2-13b"),
            Scenario(batch=8, prompt_len=512, gen_len=16, tp=2, pp=2, microbatches=4))
    fine = simulate(*args, policies=Policies(overlap=True), coarsen=False)
    coarse = simulate(*args, policies=Policies(overlap=True))
    assert coarse.metrics["engine_events"] * 20 < fine.metrics["engine_events"]
    for col in ("start_s", "end_s"):
        np.testing.assert_array_equal(coarse.ops[col].to_numpy(), fine.ops[col].to_numpy())
    assert coarse.ops.equals(fine.ops) and coarse.resources.equals(fine.resources)
