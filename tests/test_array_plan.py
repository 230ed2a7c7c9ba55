"""Several-stream runs planned and run from a compact trace's arrays equal the op-by-op path.

Pipeline stages, micro-batches, overlapped collectives and expert ranks put ops on several
streams. ``sim.system.array_plan`` plans them from the arrays and ``sim.engine_arrays`` runs
them without an object per op; ``sim.system.schedule.PLAN_FROM_ARRAYS = False`` gives the
op-by-op plan and engine they replace. Plans, op tables, resource tables, metrics and event
counts must be equal exactly.
"""

import math

import numpy as np
import pytest

import sim.engine_arrays as engine_arrays
import sim.engine_planned as engine_planned
import sim.system.schedule as schedule
from arch import load_arch
from sim.devices.base import device_for
from sim.run import simulate
from sim.system.array_plan import streams_plan
from sim.system.plan import Load, Plan
from sim.system.schedule import Policies, build_plan, stages_for
from sim.system.topology import build_system
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.tracer import trace_model

CASES = {
    "pp2-mb2": ("dgx-h100", "llama2-7b",
                {"batch": 8, "prompt_len": 64, "gen_len": 12, "pp": 2, "microbatches": 2}, False),
    "tp2-pp4-mb4": ("dgx-h100", "llama2-7b", {"batch": 8, "prompt_len": 64, "gen_len": 8,
                                              "tp": 2, "pp": 4, "microbatches": 4}, False),
    "pp2-overlap": ("dgx-h100", "llama2-7b", {"batch": 4, "prompt_len": 64, "gen_len": 8,
                                              "pp": 2, "microbatches": 2}, True),
    # four micro-batches overlapping collectives: compute and comm streams contend for HBM
    "tp2-pp2-mb4-overlap": ("dgx-h100", "llama2-7b", {"batch": 8, "prompt_len": 64,
                                                      "gen_len": 8, "tp": 2, "pp": 2,
                                                      "microbatches": 4}, True),
    # four stages: a stage's send waits on the stage before's send through two streams
    # (sim/bound_kernel.py follows that wait)
    "tp2-pp4-mb4-overlap": ("dgx-h100", "llama2-7b", {"batch": 8, "prompt_len": 64,
                                                      "gen_len": 8, "tp": 2, "pp": 4,
                                                      "microbatches": 4}, True),
    # 70B, 512-token prompts: a quiet run's collectives load NVLink ports whose bound (when
    # another stream may start on them) is not the memory's
    "70b-tp4-pp2-mb4-overlap": ("dgx-h100", "llama2-70b", {"batch": 8, "prompt_len": 512,
                                                          "gen_len": 8, "tp": 4, "pp": 2,
                                                          "microbatches": 4}, True),
    "tp4-overlap": ("dgx-h100", "llama2-7b",
                    {"batch": 4, "prompt_len": 32, "gen_len": 6, "tp": 4}, True),
    # two micro-batches in one stage: each collective overlaps the other's compute ops
    "tp8-mb2-overlap": ("dgx-h100", "llama2-70b", {"batch": 8, "prompt_len": 32,
                                                   "gen_len": 8, "tp": 8,
                                                   "microbatches": 2}, True),
    "moe-ep4": ("dgx-h100", "mixtral-8x7b",
                {"batch": 8, "prompt_len": 32, "gen_len": 6, "tp": 4, "ep": 4}, False),
    "a100-tp4-pp2": ("dgx-a100", "llama2-70b", {"batch": 4, "prompt_len": 32, "gen_len": 5,
                                                "tp": 4, "pp": 2, "microbatches": 2}, False),
    # a stage's all-reduces and the pipeline sends into it load the same NVLink ports: the
    # event loop runs it, and plain runs take the loaded ops alone on their links
    # (256-token prompts: with 64 the all-reduces, as DGX H100 measures them, end before the
    # sends arrive and the contention-free check settles the run)
    "tp4-pp2-mb2-links": ("dgx-h100", "llama2-7b", {"batch": 8, "prompt_len": 256,
                                                    "gen_len": 8, "tp": 4, "pp": 2,
                                                    "microbatches": 2}, False),
    "tp2-pp2-mb4-links": ("dgx-h100", "llama2-7b", {"batch": 8, "prompt_len": 256,
                                                    "gen_len": 8, "tp": 2, "pp": 2,
                                                    "microbatches": 4}, False),
    # NeuPIMs: decode attention on the PIM unit's stream (a (kind, phase) asked once), each
    # reserving a share of the memory the NPU's ops move their bytes through
    "neupims": ("neupims", "gpt3-7b", {"batch": 8, "prompt_len": 128, "gen_len": 6}, False),
    "neupims-mb2-overlap": ("neupims", "gpt3-7b", {"batch": 16, "prompt_len": 128,
                                                   "gen_len": 6, "microbatches": 2}, True),
    # Duplex: each co-processed decode op split on the arrays into the xPU's share and its
    # PIM twin (workloads/twins.py), the twins on the PIM unit's stream, both shares reading
    # the stacks' internal bandwidth
    "duplex": ("duplex", "llama2-7b", {"batch": 16, "prompt_len": 128, "gen_len": 6}, False),
}


@pytest.fixture
def op_by_op(monkeypatch):
    """Run a case with the op-by-op plan and the event engine (``planned``: the compiled
    pass over its op objects, sim/engine_planned.py, where it finishes)."""
    def run(name, planned: bool = False):
        real = engine_planned.run_planned
        monkeypatch.setattr(schedule, "PLAN_FROM_ARRAYS", False)
        if not planned:
            monkeypatch.setattr(engine_planned, "run_planned", lambda *a: None)
        try:
            return _simulate(name)
        finally:
            monkeypatch.setattr(schedule, "PLAN_FROM_ARRAYS", True)
            monkeypatch.setattr(engine_planned, "run_planned", real)
    return run


def _simulate(name):
    arch, model, scenario, overlap = CASES[name]
    return simulate(load_arch(arch), get_model(model), Scenario(**scenario),
                    policies=Policies(overlap=overlap))


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("name", list(CASES))
def test_run_from_arrays_equals_op_by_op(name, shared, op_by_op, monkeypatch):
    # shared: contended runs as the compiled pass that replays sharing (sim/engine_shared.py);
    # else the SimPy loop's coarsened streams
    monkeypatch.setattr(engine_arrays, "SHARED_RUNS", shared)
    calls, paths = [], []
    real, longest = engine_arrays.run_streams, engine_arrays.contention_free
    monkeypatch.setattr(engine_arrays, "run_streams",
                        lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(engine_arrays, "contention_free",
                        lambda *a: paths.append(longest(*a)) or paths[-1])
    new = _simulate(name)
    assert calls == [1]                       # the arrays path ran
    old = op_by_op(name)
    fo, fn = old.ops, new.ops
    assert list(fo.columns) == list(fn.columns)
    for col in fo.columns:
        assert fo[col].dtype == fn[col].dtype, col
        assert fo[col].equals(fn[col]), col   # every time, cost and stream, bit for bit
    assert old.resources.equals(new.resources)
    assert old.transfers.equals(new.transfers)
    assert old.invariants == new.invariants
    assert old.op_links == new.op_links
    for key, value in old.metrics.items():
        if key == "engine_events":
            continue
        got = new.metrics[key]
        assert value == got or (math.isnan(value) and math.isnan(got)), key
    # a run in which no transfer shares a resource is one longest path, no event at all
    # (sim/engine_dag.py); else a contended memory's quiet stretches, and a stream's ops
    # alone on their links, run as one event each (sim/engine_arrays.py)
    assert new.metrics["engine_events"] <= old.metrics["engine_events"]
    if paths[-1] is not None or shared:
        assert new.metrics["engine_events"] == 0 < old.metrics["engine_events"]
    else:
        assert new.metrics["engine_events"] < old.metrics["engine_events"]
    assert len(set(fn["stream"])) > 1
    if shared:   # the op objects through the compiled pass: the same run again
        planned = op_by_op(name, planned=True)
        assert planned.ops.equals(old.ops) and planned.resources.equals(old.resources)
        assert planned.metrics == {**old.metrics, "engine_events": 0}


@pytest.mark.parametrize("name", ["tp4-overlap", "tp2-pp2-mb4-overlap", "tp8-mb2-overlap"])
def test_compute_stream_stamps_the_collectives_it_takes_turns_with(name):
    # one stage's compute and comm streams take turns (each collective waits for the
    # compute op before it, the next compute op waits for it) or a collective runs beside
    # the other micro-batch's compute ops: the compute stream stamps the collectives in its
    # own runs (sim/stream_chains.py), the memory's sharing replayed where they overlap,
    # so far fewer events than collectives are waited on; without that, each collective
    # costs two or more
    res = _simulate(name)
    collectives = int(res.ops["stream"].str.endswith(".comm").sum())
    assert collectives > 100
    assert 2 * res.metrics["engine_events"] < collectives


def test_a_run_adopts_first_the_collective_its_last_op_signalled(monkeypatch):
    # a compute run that ends at the op a collective waits for (a bound cut it there), when
    # the comm stream sleeps on that collective and the next compute op waits for it: the
    # compute stream's next run stamps the collective first, without waking the comm stream
    # (engine_arrays.LEAD_ADOPTION). The same floats as waking it; each such run saves at
    # least the comm stream's wake-up and the end of its one-op run
    monkeypatch.setattr(engine_arrays, "SHARED_RUNS", False)   # the SimPy loop's machinery
    got = []
    real = engine_arrays.run_streams
    monkeypatch.setattr(engine_arrays, "run_streams", lambda *a: got.append(real(*a)) or got[-1])
    runs = {}
    for lead in (False, True):
        monkeypatch.setattr(engine_arrays, "LEAD_ADOPTION", lead)
        runs[lead] = (_simulate("tp2-pp2-mb4-overlap"), got[-1])
    (off, tl_off), (on, tl_on) = runs[False], runs[True]
    for col in off.ops.columns:
        assert off.ops[col].equals(on.ops[col]), col
    assert off.resources.equals(on.resources)
    assert tl_off.lead_runs == 0 < tl_on.lead_runs
    assert tl_off.engine_events - tl_on.engine_events >= 2 * tl_on.lead_runs


@pytest.mark.parametrize("name", ["tp2-pp2-mb4-overlap", "tp8-mb2-overlap"])
def test_memory_traffic_from_the_stream_order_is_the_masks(name, monkeypatch):
    """Each contended memory's DRAM bytes summed from the engine's ops by stream (a stream's
    rows gathered from its segment, each op's bytes per shard worked out once per op kind)
    equal the per-stream masks over the whole table's per-op column, bit for bit; the
    segments are the rows the masks pick."""
    from sim.columns import text_codes
    from sim.system import execute

    seen = []
    real = execute.memory_traffic

    def both(table, plan, costs=None, order=None):
        per_kind = execute._per_kind_shard_bytes(table, costs)
        fast = real(table, plan, costs, order)
        formed = [c for c in ("dram_bytes", "shards") if table.gathered(c) is None]
        seen.append((fast, real(table, plan, costs, None), table, plan, order))
        assert per_kind is not None and not formed    # per kind: the columns not formed
        return fast
    monkeypatch.setattr(execute, "memory_traffic", both)
    _simulate(name)
    (fast, masked, table, plan, order), = seen
    assert order is not None and execute._stream_rows(table, order) is not None
    assert fast == masked and len(fast) >= 1 and all(v > 0 for v in fast.values())
    labels, codes = text_codes(table, "stream")
    rows = execute._stream_rows(table, order)
    for stream in plan.memory_of:
        assert np.array_equal(rows(stream), np.flatnonzero(codes == labels.index(stream)))


def _plans(name):
    arch_name, model, scenario, overlap = CASES[name]
    arch = load_arch(arch_name)
    system, device = build_system(arch), device_for(arch, "tile")
    sc = Scenario(**scenario)
    policies = Policies(overlap=overlap)
    stages = stages_for(system, sc.tp, sc.pp)
    units = device.unit_ops()   # (a PIM unit's ops: the tracer cuts layers there)
    compact = trace_model(get_model(model), sc, units=units, compact=True)
    ref_trace = trace_model(get_model(model), sc, units=units, compact=True)
    assert len(ref_trace.ops)   # materialised: planned op by op
    new = streams_plan(compact, system, device, policies, stages)
    old = build_plan(ref_trace, system, device, None, policies)
    return compact, ref_trace, new, old


@pytest.mark.parametrize("name", ["tp2-pp4-mb4", "pp2-overlap", "moe-ep4", "neupims",
                                  "neupims-mb2-overlap"])
def test_plan_from_arrays_equals_op_by_op_plan(name):
    compact, ref_trace, new, old = _plans(name)
    assert new is not None
    for field in ("streams", "stream_device", "devices_of", "memory_of", "resources",
                  "op_loads", "quiet"):
        a, b = getattr(new, field), getattr(old, field)
        assert a == b, field
        assert list(a) == list(b), field      # registered in the same order
    assert new.first_transfer_id == old.first_transfer_id == len(compact.compact)
    # the stream of every op, and of the ops the arrays materialise into
    arrays = compact.compact
    streams = [arrays.stream_names[c] for c in arrays.stream.tolist()]
    assert streams == [op.device for op in ref_trace.ops]
    assert [op.device for op in arrays.materialise()] == streams


def test_a_unit_is_asked_per_kind_and_phase_as_op_by_op():
    # the head's ops form one kind over the prefill and the decode; a unit that runs them in
    # the decode only splits that kind's ops over two streams, as the op-by-op walk does
    arch = load_arch("neupims")
    system, device = build_system(arch), device_for(arch, "tile")

    class DecodeHeadUnit(type(device)):
        def unit_of(self, op):
            if op.name == "lm_head" and op.phase == "decode":
                return "head"
            return super().unit_of(op)

    device.__class__ = DecodeHeadUnit
    sc = Scenario(batch=8, prompt_len=128, gen_len=6)
    compact = trace_model(get_model("gpt3-7b"), sc, units=device.unit_ops(), compact=True)
    ref_trace = trace_model(get_model("gpt3-7b"), sc, units=device.unit_ops(), compact=True)
    new = streams_plan(compact, system, device, Policies(), stages_for(system, 1, 1))
    old = build_plan(ref_trace, system, device, None, Policies())
    assert list(new.streams) == list(old.streams) == ["npu_pim0.compute", "npu_pim0.pim",
                                                      "npu_pim0.head"]
    assert new.memory_of == old.memory_of and new.resources == old.resources
    arrays = compact.compact
    streams = [arrays.stream_names[c] for c in arrays.stream.tolist()]
    assert streams == [op.device for op in ref_trace.ops]
    head = {(op.phase, op.device) for op in ref_trace.ops if op.name == "lm_head"}
    assert head == {("prefill", "npu_pim0.compute"), ("decode", "npu_pim0.head")}


def test_ep_rank_beyond_stage_is_refused_as_op_by_op():
    arch = load_arch("dgx-h100")
    system, device = build_system(arch), device_for(arch, "tile")
    sc = Scenario(batch=4, prompt_len=16, gen_len=6, tp=4, ep=4)   # planned on 2 devices
    trace = trace_model(get_model("mixtral-8x7b"), sc, compact=True)
    with pytest.raises(Exception, match="--ep: op .* belongs to rank 2 but the stage has 2"):
        streams_plan(trace, system, device, Policies(), stages_for(system, 2, 1))


def _old_prune(plan: Plan, stream_of_op: dict[int, str]) -> None:
    """The pruning of uncontended resources as it was written op by op (the reference)."""
    users: dict[str, set[str]] = {}
    for op_id, loads in plan.op_loads.items():
        for ld in loads:
            who = (stream_of_op[op_id], "kept") if op_id in plan.keep_loads else \
                (stream_of_op[op_id],)
            users.setdefault(ld.resource, set()).update(who)
    for stream, res in plan.memory_of.items():
        users.setdefault(res, set()).add(stream)
    lone = {r for r, who in users.items() if len(who) == 1}
    for op_id, loads in list(plan.op_loads.items()):
        for ld in loads:
            if ld.resource in lone:
                bw, moved = plan.quiet.get(ld.resource, (plan.resources[ld.resource], 0.0))
                plan.quiet[ld.resource] = (bw, moved + ld.nbytes)
        kept = tuple(ld for ld in loads if ld.resource not in lone)
        if kept:
            plan.op_loads[op_id] = kept
        else:
            del plan.op_loads[op_id]
    for r in lone:
        plan.resources.pop(r, None)


def _toy_plan() -> tuple[Plan, dict[int, str]]:
    """Streams a and b: link x loaded by a alone (0.1 + 0.2 + 0.3 bytes, a sum whose order
    shows in the last bit), y by a and b, z by b alone but one op's loads are kept."""
    x = (Load("x", 0.1), Load("y", 5.0))
    x2 = (Load("x", 0.2),)
    y = (Load("y", 7.0), Load("z", 3.0))
    plan = Plan(streams={}, resources={"x": 10.0, "y": 20.0, "z": 30.0})
    plan.op_loads = {4: x, 9: x2, 11: y, 12: (Load("x", 0.3),), 15: x, 20: y}
    plan.keep_loads = {20}
    return plan, {4: "a", 9: "a", 11: "b", 12: "a", 15: "a", 20: "b"}


def test_prune_uncontended_equals_op_by_op_pruning():
    new, who = _toy_plan()
    old, _ = _toy_plan()
    new.prune_uncontended(who)
    _old_prune(old, who)
    assert new.quiet == old.quiet and list(new.quiet) == list(old.quiet)
    assert new.op_loads == old.op_loads and list(new.op_loads) == list(old.op_loads)
    assert new.resources == old.resources
    # by hand: x is a's alone (0.1 + 0.2 + 0.3 + 0.1 in op order), y shared, z kept
    assert new.quiet == {"x": (10.0, ((0.1 + 0.2) + 0.3) + 0.1)}
    assert new.op_loads[4] == (Load("y", 5.0),) and 9 not in new.op_loads and \
        12 not in new.op_loads
    assert new.op_loads[20] == (Load("y", 7.0), Load("z", 3.0))
    assert set(new.resources) == {"y", "z"}


def test_prune_drops_a_lone_memory_no_op_loads_and_keeps_the_op_loads():
    # memory m is stream a's alone and no op loads it; link y is loaded by a and b: m goes,
    # y stays, each op keeps its own tuple of loads, nothing is quiet (the one-by-one pruning)
    y, y2 = (Load("y", 5.0),), (Load("y", 7.0),)
    plans = [Plan(streams={}, resources={"y": 20.0, "m": 30.0}, memory_of={"a": "m"})
             for _ in range(2)]
    who = {4: "a", 9: "b", 11: "a"}
    for plan in plans:
        plan.op_loads = {4: y, 9: y2, 11: y}
    new, old = plans
    new.prune_uncontended(who)
    _old_prune(old, who)
    assert new.resources == old.resources == {"y": 20.0}
    assert new.op_loads == old.op_loads == {4: y, 9: y2, 11: y} and new.op_loads[4] is y
    assert new.quiet == old.quiet == {}


def _case_plan(name: str):
    """(compact trace, its array plan) of case ``name``, for a test to edit the plan."""
    arch_name, model, scenario, _ = CASES[name]
    arch = load_arch(arch_name)
    system, device = build_system(arch), device_for(arch, "tile")
    sc = Scenario(**scenario)
    trace = trace_model(get_model(model), sc, compact=True)
    return trace, streams_plan(trace, system, device, Policies(),
                               stages_for(system, sc.tp, sc.pp))


def _runs_equal(trace, plan):
    """Run ``plan`` with the arrays engine and the op-by-op one (the same ops on the same
    streams, as objects): the same times, bytes and busy times. (new, reference)"""
    from sim.engine import Engine
    from workloads.trace import Trace

    ops = trace.compact.materialise()
    ref = Engine(plan.streams).run(Trace(ops, trace.model, trace.scenario), plan)
    new = Engine(plan.streams).run(trace, plan)
    assert (new.start == ref.start).all() and (new.end == ref.end).all()
    for name, res in ref.resources.items():
        assert new.resources[name].bytes_moved == res.bytes_moved
        assert new.resources[name].busy_time == res.busy_time
    return new, ref


def test_two_loads_on_one_resource_share_it(monkeypatch):
    """An op loading one resource twice is never stamped as alone on it: the arrays engine
    and the op-by-op engine run the same hand-edited plan to the same times and bytes. The
    compiled sharing pass times it (its two transfers arrive in the op's order and share
    the link, as SimPy's do)."""
    trace, plan = _case_plan("tp2-pp4-mb4")
    assert len(plan.op_loads) and all(plan.op_loads.values())
    # every loaded op moves its first load's bytes twice
    plan.op_loads = plan.op_loads.with_tuples(lambda loads: (*loads[:1], *loads))
    got = []
    real = engine_arrays.shared_run
    monkeypatch.setattr(engine_arrays, "shared_run", lambda *a: got.append(real(*a)) or got[-1])
    _runs_equal(trace, plan)
    assert len(got) == 1 and got[0] is not None


def test_one_stream_plan_drops_stale_stream_codes():
    """A trace whose arrays still carry several-stream codes from an earlier plan, planned
    again on one stream, reports that one stream on every row (not the stale codes)."""
    import numpy as np

    from sim.engine import Engine
    from sim.result import op_columns

    arch = load_arch("h100")
    system, device = build_system(arch), device_for(arch, "tile")
    sc = Scenario(batch=4, prompt_len=32, gen_len=6)
    trace = trace_model(get_model("llama2-7b"), sc, compact=True)
    arrays = trace.compact
    arrays.stream = np.arange(len(arrays), dtype=np.int64) % 2   # as if planned on two
    arrays.stream_names = ("gpu0.compute", "gpu0.comm")
    plan = build_plan(trace, system, device, None, Policies())
    assert arrays.stream is None and arrays.stream_names == ()
    table = op_columns(trace, Engine(plan.streams).run(trace, plan), plan.stream_device)
    assert table.text("stream").labels == [arrays.device] == list(plan.streams)


@pytest.mark.parametrize("scale", [30.0, 300.0])
def test_long_link_transfers_that_overlap_equal_op_by_op(scale):
    """Link loads made ``scale`` times larger, so that a stage's all-reduces and the sends
    into it overlap across streams: where a stream's plain run may take a loaded op as alone
    depends on when the other streams' next ops on that link may start (their running sums
    of durations alone); the arrays engine and the op-by-op engine give the same times and
    link figures."""
    trace, plan = _case_plan("tp4-pp2-mb2-links")
    # (ops sharing a list keep sharing one)
    plan.op_loads = plan.op_loads.with_tuples(
        lambda loads: tuple(Load(ld.resource, ld.nbytes * scale) for ld in loads))
    new, ref = _runs_equal(trace, plan)
    assert new.engine_events < ref.engine_events


def test_op_links_name_each_list_of_loads_once():
    """A run's op -> link names mapping: each op's links in load order, ops that share a
    list of loads sharing one tuple (formed when read)."""
    from sim.system.execute import OpLinks

    loads = (Load("nvlink0", 1.0), Load("nvlink1", 2.0))
    links = OpLinks({3: loads, 7: loads, 9: (Load("pcie", 0.0),)})
    assert dict(links) == {3: ("nvlink0", "nvlink1"), 7: ("nvlink0", "nvlink1"), 9: ("pcie",)}
    assert links[3] is links[7] and len(links) == 3 and list(links) == [3, 7, 9]
    assert links.get(4, ()) == ()


def test_cross_stream_dependencies_on_their_own_thread(monkeypatch):
    """Where a stream has a contended memory, the dependencies between streams are worked
    out on a thread of their own while the run prices its op kinds (the run itself equals
    the op-by-op engine's, above); an error there is the run's error, raised where the run
    reads them. Without one they are worked out on the run's thread, past the
    contention-free check: not at all for a run that check settles."""
    monkeypatch.setattr(engine_arrays, "SHARED_RUNS", False)   # the SimPy loop's machinery
    import threading

    real = engine_arrays._cross_deps
    where = []

    def recorded(*args):
        where.append("main" if threading.current_thread() is threading.main_thread()
                     else "thread")
        return real(*args)
    monkeypatch.setattr(engine_arrays, "_cross_deps", recorded)
    _simulate("tp2-pp2-mb4-overlap")
    assert where == ["thread"]
    where.clear()
    _simulate("tp4-pp2-mb2-links")   # no contended memory, links contended: the event loop
    assert where == ["main"]
    where.clear()
    _simulate("pp2-mb2")            # settled by the contention-free check
    assert where == []

    def failing(*args):
        raise ValueError("dependency arrays out of range")
    monkeypatch.setattr(engine_arrays, "_cross_deps", failing)
    with pytest.raises(ValueError, match="dependency arrays out of range"):
        _simulate("tp2-pp2-mb4-overlap")
