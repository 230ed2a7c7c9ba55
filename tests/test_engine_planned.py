"""Planned runs of op objects timed by one compiled pass (sim/engine_planned.py): tensors
moved between tiers, PIM units reserving their memory; every figure is the event engine's,
bit for bit."""

import numpy as np
import pytest

import sim.engine_planned as engine_planned
import sim.system.schedule as schedule
from arch import load_arch
from sim.run import simulate
from sim.system.placement import parse_placement
from sim.system.schedule import Policies
from workloads.models import get_model
from workloads.scenario import Scenario

CASES = {
    # the KV cache on a CXL card: fetched before each decode layer, each step's K and V saved
    "cxl-kv": ("spr-a100-cxl1", "llama2-7b", "kv_cache=cxl0", {}, {}),
    # half the weights in host DDR, fetched over PCIe before each layer, two layers ahead
    "offload-weights": ("a6000-offload", "llama2-13b", "weights=gpu.hbm:0.5,host_ddr:0.5",
                        {"prefetch": 2}, {}),
    # four-way tensor parallel stages of two: each stage's copy streams beside its compute
    "tp4-pp2-kv-host": ("dgx-h100", "llama2-70b", "kv_cache=host_ddr", {},
                        {"tp": 4, "pp": 2, "microbatches": 2}),
    # eight micro-batches of one sequence over four TP2 stages, half the KV cache in host
    # DDR: a transfer arrives on a memory the moment its timer fires, its op resumed by a
    # timeout scheduled after that timer (SimPy fires the timer first)
    "tp2-pp4-mb8-kv-host": ("dgx-h100", "llama2-70b", "kv_cache=gpu.hbm:0.5,host_ddr:0.5",
                            {}, {"tp": 2, "pp": 4, "microbatches": 8, "prompt_len": 512,
                                 "gen_len": 16}),
    # the same stages with a third of the weights in host DDR: each stage's first fetches
    # arrive on host DDR at one time, each of the same bytes (any order, the same floats)
    "tp2-pp4-mb8-weights-host": ("dgx-h100", "llama2-70b", "weights=gpu.hbm:0.7,host_ddr:0.3",
                                 {}, {"tp": 2, "pp": 4, "microbatches": 8}),
    # weights on a disk (FlexGen's setting)
    "flexgen-disk": ("t4-flexgen", "opt-6.7b", "weights=gpu.hbm:0.3,disk:0.7", {}, {}),
    # the KV cache on an SSD, relayed through host DDR (two transfers a fetch on two copy
    # streams, whose loads arrive at one time in an order the trace does not give: their
    # bytes add up the same either way)
    "relay-storage": ("a6000-storage", "llama2-7b", "kv_cache=ssd0.flash",
                      {"relay_storage": True}, {}),
    # decode attention on the computational drive that holds the KV cache (InstInfer)
    "csd-attention": ("a6000-storage", "llama2-7b", "kv_cache=csd0.flash",
                      {"attention_on": "csd"}, {}),
    # decode attention on the host CPU, its KV cache in host DDR (a hosted model per op)
    "cpu-attention": ("spr-a100", "llama2-7b", "", {"attention_on": "cpu"}, {}),
}


def _run(case, monkeypatch, compiled: bool):
    arch, model, placement, policies, scenario = CASES[case]
    taken = []
    real = engine_planned.run_planned

    def spy(*args):
        got = real(*args) if compiled else None
        taken.append(got is not None)
        return got

    monkeypatch.setattr(engine_planned, "run_planned", spy)
    # planned op by op: a placement run's compact trace is otherwise planned and run from
    # its arrays (tests/test_placement_arrays.py compares the two)
    monkeypatch.setattr(schedule, "PLAN_FROM_ARRAYS", False)
    res = simulate(load_arch(arch), get_model(model),
                   Scenario(**{"batch": 8, "prompt_len": 256, "gen_len": 12, **scenario}),
                   placement=parse_placement(placement) if placement else None,
                   policies=Policies(**policies))
    return res, taken


@pytest.mark.parametrize("case", list(CASES))
def test_transfers_pass_gives_the_event_engines_figures(case, monkeypatch):
    """The compiled pass and the event engine on the same run: every op's start and end,
    every transfer's, each resource's bytes and busy time, and every metric are equal (the
    pass waits on no SimPy event)."""
    fast, taken = _run(case, monkeypatch, True)
    slow, _ = _run(case, monkeypatch, False)
    assert taken == [True]
    assert fast.metrics["engine_events"] == 0 < slow.metrics["engine_events"]
    a, b = fast.columns("ops"), slow.columns("ops")
    for name in b.order:
        x = a.text(name).array() if a.is_text(name) else np.asarray(a[name])
        y = b.text(name).array() if b.is_text(name) else np.asarray(b[name])
        assert np.array_equal(x, y), name
    assert len(fast.transfers) > 0 and fast.transfers.equals(slow.transfers)
    assert fast.resources.equals(slow.resources)
    for key, value in slow.metrics.items():
        if key != "engine_events":
            assert fast.metrics[key] == value, key
    assert fast.invariants == slow.invariants


@pytest.mark.parametrize("training", [{"offload": "full"},
                                      {"offload": "optimizer", "recompute": True}])
def test_a_fine_tuning_steps_transfers_pass_gives_the_event_engines_figures(training,
                                                                           monkeypatch):
    """A fine-tuning step with ZeRO-Offload on a CXL system (weights, or optimizer states and
    gradients, on host tiers; activations saved and fetched back for the recompute): the
    pass's op, transfer and resource tables and metrics are the event engine's."""
    from sim.finetune import simulate_training
    from workloads.training import Training

    args = (load_arch("spr-a100-cxl1"), get_model("llama2-7b"),
            Scenario(batch=1, prompt_len=256, gen_len=1), Training(**training))
    taken = []
    real = engine_planned.run_planned

    def spy(*a):
        got = real(*a)
        taken.append(got is not None)
        return got

    monkeypatch.setattr(engine_planned, "run_planned", spy)
    fast = simulate_training(*args)
    monkeypatch.setattr(engine_planned, "run_planned", lambda *a: None)
    slow = simulate_training(*args)
    assert taken == [True]
    assert fast.ops.equals(slow.ops) and fast.transfers.equals(slow.transfers)
    assert len(fast.transfers) > 0 and fast.resources.equals(slow.resources)
    for key, value in slow.metrics.items():
        if key != "engine_events":
            assert fast.metrics[key] == value, key


PIM_CASES = {
    # NeuPIMs: decode attention's GEMVs on the PIM unit's stream, each reserving a share of
    # the HBM the NPU's ops move their bytes through
    "neupims": ("neupims", "gpt3-7b", {}, {}),
    # ... with two micro-batches and --overlap
    "neupims-mb2-overlap": ("neupims", "gpt3-7b", {"microbatches": 2}, {"overlap": True}),
    # Duplex: the PIM share of each decode op on the unit's stream beside the xPU's share
    "duplex": ("duplex", "llama2-7b", {}, {}),
}


@pytest.mark.parametrize("case", list(PIM_CASES))
def test_pim_units_pass_gives_the_event_engines_figures(case, monkeypatch):
    """NPU+PIM devices (no transfers): the pass replays the PIM units' reservations and the
    NPU's transfers; its op and resource tables and metrics are the event engine's. (Planned
    op by op: NeuPIMs' compact trace is otherwise planned and run from its arrays,
    tests/test_array_plan.py.)"""
    arch, model, scenario, policies = PIM_CASES[case]
    monkeypatch.setattr(schedule, "PLAN_FROM_ARRAYS", False)
    taken = []
    real = engine_planned.run_planned

    def run(compiled: bool):
        monkeypatch.setattr(engine_planned, "run_planned",
                            lambda *a: taken.append(real(*a)) or taken[-1] if compiled
                            else None)
        return simulate(load_arch(arch), get_model(model),
                        Scenario(**{"batch": 8, "prompt_len": 256, "gen_len": 12, **scenario}),
                        policies=Policies(**policies))

    fast, slow = run(True), run(False)
    assert len(taken) == 1 and taken[0] is not None
    assert fast.metrics["engine_events"] == 0 < slow.metrics["engine_events"]
    streams = set(fast.ops["stream"])
    assert any(s.endswith(".pim") for s in streams) and len(streams) >= 2
    assert fast.ops.equals(slow.ops) and fast.resources.equals(slow.resources)
    assert fast.metrics == {**slow.metrics, "engine_events": 0}
