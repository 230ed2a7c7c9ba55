"""Hosted attention of a trace held as arrays equals the op-by-op path, without an op object.

Decode attention on the host CPU (FlexGen's ``--cpu``) or on the computational drive that
holds the KV cache (InstInfer) runs on another component: ``host_attention`` tags those ops
on the arrays (``CompactOps.hosted``), ``sim.system.hosted_plan.host_arrays`` plans them and
``sim.engine_planned.run_planned_arrays`` times the run from the arrays. With
``sim.system.schedule.PLAN_FROM_ARRAYS = False`` the same run is planned op by op
(``host_ops``) and timed over op objects: plans, tables and metrics must be equal exactly.
"""

import numpy as np
import pytest
from conftest import arrays_run_and_op_by_op

from arch import load_arch
from sim.devices.base import device_for
from sim.run import memory_per_device, simulate
from sim.system.budget import place_on_system
from sim.system.hosted import host_attention
from sim.system.placement import parse_placement
from sim.system.schedule import Policies, build_plan, stages_for
from sim.system.topology import build_system
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.tracer import trace_model

CASES = {
    # InstInfer: attention on the drive holding the KV cache, its query and output crossing
    "csd": ("a6000-storage", "llama2-7b", {"batch": 8, "prompt_len": 256, "gen_len": 10},
            {"attention_on": "csd"}, "kv_cache=csd0.flash"),
    # FlexGen --cpu: attention on the host CPU, its KV cache in host DDR
    "cpu": ("spr-a100", "llama2-7b", {"batch": 8, "prompt_len": 256, "gen_len": 10},
            {"attention_on": "cpu"}, ""),
    # ... with half the weights in host DDR too (transfers of weights beside the hosted ops)
    "cpu-offload": ("spr-a100", "llama2-13b", {"batch": 8, "prompt_len": 128, "gen_len": 8},
                    {"attention_on": "cpu", "prefetch": 1},
                    "weights=gpu.hbm:0.5,host_ddr:0.5;kv_cache=host_ddr"),
}


def _simulate(name):
    arch, model, scenario, policies, placement = CASES[name]
    return simulate(load_arch(arch), get_model(model), Scenario(**scenario),
                    placement=parse_placement(placement) if placement else None,
                    policies=Policies(**policies))


@pytest.mark.parametrize("name", list(CASES))
def test_hosted_from_arrays_equals_op_by_op(name, monkeypatch):
    new, _ = arrays_run_and_op_by_op(lambda: _simulate(name), monkeypatch)
    streams = set(new.ops["stream"])
    assert any(not s.startswith("gpu") for s in streams) and len(new.transfers) > 0


def _second_users(trace, system, component):
    """``trace`` with each hosted op of decode step 3 waited for by a second op on the
    device: the op after its user (attention's output feeds one projection in a real
    trace; the plan must wait every user of a hosted op on the transfer back)."""
    arrays = trace.compact
    probe = trace_model(trace.model, trace.scenario, compact=True)
    host_attention(probe, system, 1, component)
    mask = probe.compact.hosted[0]
    ptr, idx = arrays.dep_ptr.astype(np.int64), arrays.dep_idx.astype(np.int64)
    owner = np.repeat(np.arange(len(mask)), np.diff(ptr))
    added: dict[int, int] = {}     # second user -> the hosted op it waits for
    for h in np.flatnonzero(mask & (arrays.step == 3)).tolist():
        users = owner[(idx == h) & ~mask[owner]]
        if len(users) == 1 and not mask[users[0] + 1]:
            added[int(users[0]) + 1] = h
    rows = [idx[ptr[i]:ptr[i + 1]].tolist() + ([added[i]] if i in added else [])
            for i in range(len(mask))]
    arrays.dep_ptr = np.concatenate(([0], np.cumsum([len(r) for r in rows]))).astype(
        arrays.dep_ptr.dtype)
    arrays.dep_idx = np.array([d for r in rows for d in r], dtype=arrays.dep_idx.dtype)
    return len(added)


def _weights_written_from_step(monkeypatch, step: int) -> None:
    """Hosted ops of decode step ``step`` on write 2 KiB of weights (as an optimizer step
    on the host does): from that kind on, transfers move around each such op (``_around``),
    and the arrays planner goes op by op from there."""
    import sim.system.hosted as hosted
    import sim.system.hosted_plan as hosted_plan

    real = hosted._op_loads

    def loads(plan, system, op, *args):
        traffic, ld, bound = real(plan, system, op, *args)
        if op.step >= step:
            traffic = {**traffic, "weights": (0.0, 2048.0)}
        return traffic, ld, bound

    for module in (hosted, hosted_plan):
        monkeypatch.setattr(module, "_op_loads", loads)


@pytest.mark.parametrize("name", ["csd", "cpu-offload", "csd-two-users", "cpu-around-6",
                                  "cpu-around-0"])
def test_hosted_plan_from_arrays_equals_op_by_op_plan(name, monkeypatch):
    two_users, around = name.endswith("-two-users"), name.startswith("cpu-around")
    if around:   # weights written from a step on: from its first op, or from the start
        _weights_written_from_step(monkeypatch, int(name.rsplit("-", 1)[1]))
        name = "cpu"
    arch_name, model, scenario, policies, placement = CASES[name.removesuffix("-two-users")]
    arch = load_arch(arch_name)
    sc, pol, m = Scenario(**scenario), Policies(**policies), get_model(model)
    plans, traces = [], []
    for compact in (True, False):
        system, device = build_system(arch), device_for(arch, "tile")
        stages_for(system, 1, 1)
        placed = place_on_system(system, parse_placement(placement), memory_per_device(m, sc),
                                 1) if placement else None
        trace = trace_model(m, sc, compact=True)
        if two_users:
            assert _second_users(trace, system, pol.attention_on) >= 16
        if not compact:
            assert len(trace.ops)      # materialised: planned op by op
        host_attention(trace, system, 1, pol.attention_on)
        plans.append(build_plan(trace, system, device, placed, pol))
        traces.append(trace)
    new, old = plans
    assert traces[0].is_compact and not traces[1].is_compact
    if around:   # (the "cpu" case places no weights off the GPU: these are _around's)
        assert sum(t.tensor == "weights" for t in new.transfers) >= 32
    for field in ("stream_device", "devices_of", "memory_of", "resources", "quiet",
                  "extra_deps", "transfers", "copy_streams", "keep_loads",
                  "first_transfer_id"):
        a, b = getattr(new, field), getattr(old, field)
        assert a == b, field
        if isinstance(a, dict):
            assert list(a) == list(b), field      # registered in the same order
    assert list(new.streams) == list(old.streams)
    assert dict(new.op_loads) == dict(old.op_loads) and list(new.op_loads) == list(old.op_loads)
    hosted = [s for s, dev in new.streams.items() if type(dev).__name__ == "HostedDevice"]
    assert len(hosted) == 1
    assert new.streams[hosted[0]].bounds == old.streams[hosted[0]].bounds
    # each op on the stream the op-by-op walk put it on
    arrays = traces[0].compact
    got = [arrays.stream_names[c] for c in arrays.stream.tolist()]
    assert got == [op.device for op in traces[1].ops]
    mask = arrays.hosted[0]
    assert mask.any() and {got[i] for i in np.flatnonzero(mask)} == set(hosted)
    assert [(op.where, op.tensors) for op in arrays.materialise()] == \
        [(op.where, op.tensors) for op in traces[1].ops]
