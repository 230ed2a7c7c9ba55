"""The multi-stream run path's fast forms equal the per-op forms they replace, bit for bit.

A run with several streams per device (pipeline stages, micro-batches, expert ranks)
materialises its compact trace for the schedule and the engine; its op table is then read from
the arrays (all but the streams, which the schedule sets on the ops). Each fast form is compared
with the per-op reference written out here (``Op(...)`` per op, ``setdefault`` per row, the
op table of a trace built as a plain list of the same ops).
"""

import sys

import numpy as np
import pandas as pd
import pytest

from arch import load_arch
from sim.columns import Columns, Text
from sim.devices.base import collective_min_bytes, device_for
from sim.engine import Engine
from sim.result import _distinct, op_columns
from sim.system.plan import direction
from sim.system.schedule import Policies, build_plan, stage_of_layers, stages_for
from sim.system.topology import build_system
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import Op, OpKind, Trace, _sums_as_python
from workloads.tracer import trace_model


def _old_text_of(values: list[str]) -> tuple[list[str], np.ndarray]:
    """The labels and codes ``Text.of`` gave before (a ``setdefault`` per row)."""
    slots: dict[str, int] = {}
    codes = np.fromiter((slots.setdefault(v, len(slots)) for v in values), dtype=np.int64,
                        count=len(values))
    return list(slots), codes


def test_text_of_matches_per_row_form():
    values = ["b", "a", "b", "c", "a", "a", "d", "b"]
    t = Text.of(values)
    labels, codes = _old_text_of(values)
    assert t.labels == labels == ["b", "a", "c", "d"]
    assert t.codes.dtype == np.int64 and t.codes.tolist() == codes.tolist() == \
        [0, 1, 0, 2, 1, 1, 3, 0]
    assert t.values is values
    empty = Text.of([])
    assert empty.labels == [] and len(empty.codes) == 0 and empty.codes.dtype == np.int64


def test_distinct_costs_first_met_order():
    a, b, c = object(), object(), object()
    costs = [b, a, b, None, c, a, None]
    uniq, idx = _distinct(costs, len(costs))
    assert uniq == [b, a, None, c]      # by identity, in the order first met
    assert idx.tolist() == [0, 1, 0, 2, 3, 1, 2]


SCENARIO = {"batch": 4, "prompt_len": 64, "gen_len": 6, "pp": 2, "microbatches": 2}
#: (6 tokens: decode steps past the first two are stamped, so the tracer gives arrays)


def _compact(**over) -> Trace:
    sc = Scenario(**{**SCENARIO, **over})
    return trace_model(get_model("llama2-7b"), sc, compact=True)


def test_materialise_equals_op_constructor():
    arrays = _compact().compact
    fast, ref = arrays.materialise(), arrays._constructed()
    assert len(fast) == len(ref) > 100
    assert fast == ref                              # every field of every op
    assert all(type(o) is Op for o in fast)
    assert [o.deps for o in fast[:50]] == [o.deps for o in ref[:50]]
    # one op's dependency off by one is seen
    wrong = arrays._constructed()
    wrong[37].deps = tuple(d + 1 for d in wrong[37].deps) or (0,)
    assert fast != wrong


def test_materialise_derives_what_post_init_derives():
    """A kind without figures (flops < 0) or op_class gets them as ``Op.__post_init__`` would."""
    arrays = _compact().compact
    k = next(i for i, t in enumerate(arrays.kinds) if t.compute is not None and t.flops > 0)
    t = arrays.kinds[k]
    arrays.kinds[k] = OpKind.of(t.name, t.kind, "", t.compute, t.collective, t.rank,
                                t.shards, -1.0, -1.0)
    fast, ref = arrays.materialise(), arrays._constructed()
    assert fast == ref
    op = fast[int(np.flatnonzero(arrays.kind == k)[0])]
    assert op.op_class == t.name and op.flops == pytest.approx(t.flops)
    assert op.bytes == pytest.approx(t.bytes) and op.bytes > 0


def _planned(arch: str = "dgx-h100", model: str = "llama2-7b", edit=None, **over):
    """(trace, plan, timeline) of a system run, as ``sim.run.simulate`` makes them
    (``edit(arrays)`` first changes the traced arrays)."""
    arch_ = load_arch(arch)
    sc = Scenario(**{**SCENARIO, **over})
    device = device_for(arch_, "tile")
    trace = trace_model(get_model(model), sc, compact=True)
    if edit is not None:
        edit(trace.compact)
    assert len(trace.ops)   # materialised: planned op by op (test_array_plan: from arrays)
    plan = build_plan(trace, build_system(arch_), device, None, Policies())
    return trace, plan, Engine(plan.streams).run(trace, plan)


def _per_op_table(trace: Trace, timeline, where) -> pd.DataFrame:
    """The op table of the same ops held as a plain list (the per-op reading)."""
    plain = Trace(trace.ops, trace.model, trace.scenario, dict(trace.meta))
    assert plain.arrays is None and not plain.is_compact
    return op_columns(plain, timeline, where).frame()


@pytest.mark.parametrize("case", [
    {},                                                     # 2 stages x 2 micro-batches
    {"model": "mixtral-8x7b", "pp": 1, "microbatches": 1, "tp": 4, "ep": 4},   # expert ranks
])
def test_op_table_from_arrays_equals_per_op_table(case):
    trace, plan, tl = _planned(**case)
    assert not trace.is_compact and trace.arrays is trace.compact   # materialised for the plan
    fast = op_columns(trace, tl, plan.stream_device)
    ref = _per_op_table(trace, tl, plan.stream_device)
    pd.testing.assert_frame_equal(fast.frame(), ref, check_exact=True)
    assert len(set(ref["stream"])) > 1                  # several streams: the case tested
    # the text columns' labels and codes too (the report's parquet is written from them)
    plain = Trace(trace.ops, trace.model, trace.scenario, dict(trace.meta))
    slow = op_columns(plain, tl, plan.stream_device)
    for name in ("op", "op_class", "kind", "phase", "device", "stream", "bound"):
        a, b = fast.text(name), slow.text(name)
        assert a.labels == b.labels, name
        assert np.array_equal(a.codes, b.codes), name


def _underived(arrays) -> None:
    """Every GEMM kind without op_class or figures: its ops derive them (Op.__post_init__)."""
    for i, t in enumerate(arrays.kinds):
        if t.kind == "matmul":
            arrays.kinds[i] = OpKind.of(t.name, t.kind, "", t.compute, t.collective, t.rank,
                                        t.shards, -1.0, -1.0)


def test_op_table_from_arrays_derives_what_ops_derive():
    trace, plan, tl = _planned(edit=_underived)
    fast = op_columns(trace, tl, plan.stream_device).frame()
    pd.testing.assert_frame_equal(fast, _per_op_table(trace, tl, plan.stream_device),
                                  check_exact=True)
    gemm = fast["kind"] == "matmul"
    assert (fast["op_class"][gemm] == fast["op"][gemm]).all() and (fast["flops"][gemm] > 0).all()


def test_device_column_follows_the_ops():
    """The stream and device columns come from the ops the schedule placed: one op moved to
    another stream shows in exactly that row."""
    trace, plan, tl = _planned()
    before = op_columns(trace, tl, plan.stream_device).frame()
    streams = sorted(set(before["stream"]))
    i = 123
    other = next(s for s in streams if s != trace.ops[i].device)
    trace.ops[i].device = other
    after = op_columns(trace, tl, plan.stream_device).frame()
    ref = _per_op_table(trace, tl, plan.stream_device)
    pd.testing.assert_frame_equal(after, ref, check_exact=True)
    changed = np.flatnonzero(after["stream"].to_numpy() != before["stream"].to_numpy())
    assert changed.tolist() == [i] and after["stream"][i] == other
    assert after["device"][i] == plan.stream_device[other]


def test_arrays_dropped_when_ops_no_longer_match():
    trace = _compact()
    n = len(trace.compact)
    assert trace.arrays is trace.compact and trace.is_compact
    ops = trace.ops
    assert trace.arrays is trace.compact and not trace.is_compact
    ops.append(Op(n, "extra", "vector", "decode", 0, 0, None))
    assert trace.arrays is None                 # one op more: read the ops themselves
    trace.ops = ops[:-1]
    assert trace.arrays is None and trace.compact is None


def _added(values) -> float:
    """``values`` added left to right from int 0 (Python <= 3.11's ``sum``)."""
    total = 0
    for v in values:
        total = total + v
    return float(total)


def test_totals_from_arrays_equal_python_sum():
    trace = _compact()
    ops = trace.ops
    assert trace.total_flops == _added(op.flops for op in ops)
    assert trace.total_bytes == _added(op.bytes for op in ops)
    py311 = sys.version_info < (3, 12)   # 3.12's sum compensates: the ops are summed
    assert _sums_as_python(trace.compact, "bytes") == py311   # the arrays' sum was taken
    # kinds holding ints: exact ones are summed from the arrays, one past 2**53 by the ops
    # (Python adds it as float(int), numpy too, but the test must not depend on luck)
    kinds = trace.compact.kinds
    for big in (12345, 2 ** 60 + 1):
        k = next(i for i, t in enumerate(kinds) if t.flops > 0 and i > 0)
        t = kinds[k]
        kinds[k] = OpKind.of(t.name, t.kind, t.op_class, t.compute, t.collective, t.rank,
                             t.shards, big, t.bytes)
        ops = trace.compact.materialise()
        trace._ops = ops
        assert _sums_as_python(trace.compact, "flops") == (py311 and big < 2 ** 53)
        assert trace.total_flops == _added(op.flops for op in ops)
        kinds[k] = t


@pytest.mark.parametrize("case", [
    {},
    # skewed experts: the combine waits, inside a coarsened run, for the slowest rank
    {"model": "mixtral-8x7b", "pp": 1, "microbatches": 1, "tp": 4, "ep": 4, "expert_skew": 1.5},
])
def test_coarsened_streams_wait_where_one_event_per_op_does(case):
    """The engine's stream loop checks a next op's dependencies for completion events with one
    set test before listing them: every op still starts where the one-event-per-op run starts
    it (a skipped wait would start an op before its other-stream dependency ends)."""
    trace, plan, fast = _planned(**case)
    slow = Engine(plan.streams, coarsen=False).run(trace, plan)
    np.testing.assert_array_equal(fast.start, slow.start)
    np.testing.assert_array_equal(fast.end, slow.end)
    assert fast.engine_events < slow.engine_events    # coarsened, yet stopped at the waits
    ends = {op.id: fast.end[op.id] for op in trace.ops}
    crossing = [(op, d) for op in trace.ops for d in op.deps
                if trace.ops[d].device != op.device]
    assert crossing and all(fast.start[op.id] >= ends[d] for op, d in crossing)


def test_collective_loads_per_stage_equal_per_op_sums():
    """Ops of one collective on one stage share one tuple of loads (built once): the bytes each
    link direction carries still equal the per-op sum, stage by stage (2 stages x TP2)."""
    trace, plan, _ = _planned(tp=2)
    system = build_system(load_arch("dgx-h100"))
    stages = stages_for(system, 2, 2)
    stage_at = stage_of_layers(trace.model.n_layers, 2)
    expect: dict[str, float] = {}
    for op in trace.ops:
        c = op.collective
        if op.kind != "collective" or c is None:
            continue
        if c.kind == "send":
            st, to = stages[stage_at[op.layer]], stages[stage_at[op.layer + 1]]
            hops, nbytes = system.route(st.rep, to.rep).hops, c.bytes_per_rank
        elif c.group > 1:
            st = stages[stage_at[op.layer + 1]]
            first = system.route(st.rep, st.devices[1]).hops[0]
            hops = (first, type(first)(first.link, not first.forward))
            nbytes = collective_min_bytes(c.kind, c.bytes_per_rank, c.group)
        else:
            continue
        for h in hops:
            name = direction(h.link, h.forward)
            expect[name] = expect.get(name, 0.0) + nbytes
    got = {name: moved for name, (_, moved) in plan.quiet.items()}
    for loads in plan.op_loads.values():
        for ld in loads:
            got[ld.resource] = got.get(ld.resource, 0.0) + ld.nbytes
    assert len(expect) >= 4                          # both stages' ports and the send route
    assert got.keys() == expect.keys()
    for name, total in expect.items():
        assert got[name] == pytest.approx(total, rel=1e-12), name


def test_invariants_from_arrays_catch_a_late_start_and_a_lost_request(monkeypatch):
    """``check_invariants`` reads a materialised trace's deps and requests from its arrays:
    an op started before its dependency ends, or a generated token dropped, still fails
    (the lm_head ops found kind by kind, and through a lookup per op where there are
    many lm_head kinds)."""
    import sim.invariants as invariants
    from sim.invariants import InvariantError, check_invariants

    trace, plan, tl = _planned()
    assert not trace.is_compact and trace.arrays is not None
    table = op_columns(trace, tl, plan.stream_device)
    assert check_invariants(trace, table)["dependencies_respected"] == "passed"
    op = next(o for o in trace.ops if o.deps)
    start = table["start_s"].copy()
    start[op.id] = tl.end[op.deps[0]] - 1e-9      # one ns before its dependency ends
    late = Columns({**{c: table[c] for c in table.order}, "start_s": start}, table.order,
                   len(table))
    with pytest.raises(InvariantError, match=f"op {op.id} .* before its dependency"):
        check_invariants(trace, late)
    head = next(i for i, k in enumerate(trace.arrays.kinds) if k.name == "lm_head")
    at = int(np.flatnonzero(trace.arrays.kind == head)[0])
    assert check_invariants(trace, table)["no_request_lost"] == "passed"
    trace.arrays.requests[at] -= 1
    for few in (invariants.FEW_KINDS, 0):
        monkeypatch.setattr(invariants, "FEW_KINDS", few)
        with pytest.raises(InvariantError, match="requests lost"):
            check_invariants(trace, table)


@pytest.mark.parametrize("case", [
    {},
    {"model": "mixtral-8x7b", "pp": 1, "microbatches": 1, "tp": 4, "ep": 4, "expert_skew": 1.5},
])
def test_costs_by_kind_equal_the_estimate_per_op(case):
    """The engine's streams look a materialised trace's costs up by op kind: the same times
    and cost figures as the same ops run as a plain list (``Device.estimate`` per op)."""
    trace, plan, tl = _planned(**case)
    assert trace.arrays is not None
    plain = Trace(trace.ops, trace.model, trace.scenario, dict(trace.meta))
    ref = Engine(plan.streams).run(plain, plan)
    assert np.array_equal(tl.start, ref.start) and np.array_equal(tl.end, ref.end)
    assert [c.latency for c in tl.costs] == [c.latency for c in ref.costs]
    assert [c.energy_total for c in tl.costs] == [c.energy_total for c in ref.costs]
