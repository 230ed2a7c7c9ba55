"""COSMA-style scheduling: hand-counted DAGs, the ILP against the greedy baseline, the replay
checker, the NPU option and ``xpusim reproduce cosma``."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from mappings.dag import Dag, OpNode, ScheduleError, check_schedule
from mappings.schedule_greedy import schedule_greedy
from mappings.schedule_ilp import schedule, schedule_ilp


def _chain() -> Dag:
    # x(4) -> f1 -> a(8) -> f2 -> b(2) -> f3 -> c(6) -> f4 -> y(1)
    ops = (OpNode("f1", ("x",), "a"), OpNode("f2", ("a",), "b"), OpNode("f3", ("b",), "c"),
           OpNode("f4", ("c",), "y"))
    return Dag(ops, {"x": 4, "a": 8, "b": 2, "c": 6, "y": 1}, ("y",))


def _diamond() -> Dag:
    # x(1) feeds two branches p(10) -> pp(1) and q(10) -> qq(1), joined into y(1)
    ops = (OpNode("A", ("x",), "p"), OpNode("B", ("x",), "q"), OpNode("C", ("p",), "pp"),
           OpNode("D", ("q",), "qq"), OpNode("E", ("pp", "qq"), "y"))
    return Dag(ops, {"x": 1, "p": 10, "q": 10, "pp": 1, "qq": 1, "y": 1}, ("y",))


def _no_overlap(dag: Dag, sched) -> None:
    """Independent of check_schedule: intervals of each step are disjoint and inside."""
    for res in sched.resident:
        spans = sorted((a, a + dag.sizes[v]) for v, a in res.items())
        assert all(a >= 0 and b <= sched.budget + 1e-9 for a, b in spans)
        assert all(b1 <= a2 + 1e-9 for (_, b1), (a2, _) in zip(spans, spans[1:], strict=False))


def test_chain_min_peak_by_hand():
    dag = _chain()
    # live per step: {x,a}=12, {a,b}=10, {b,c}=8, {c,y}=7; one order only
    assert dag.live_bytes((0, 1, 2, 3)) == [12, 10, 8, 7]
    assert dag.min_peak_footprint() == (12, (0, 1, 2, 3))
    assert dag.compulsory_bytes() == 5           # x loaded once, y stored once
    for method in ("ilp", "greedy"):
        s = schedule(dag, 12, method)
        assert s.traffic_bytes == 5 and check_schedule(dag, s) == 5
        _no_overlap(dag, s)


def test_budget_below_largest_op_is_a_clear_error():
    for method in ("ilp", "greedy"):
        with pytest.raises(ScheduleError, match=r"11 B is below op 'f1' footprint 12 B"):
            schedule(_chain(), 11, method)


def test_diamond_order_matters():
    dag = _diamond()
    # program order A,B,C,D,E holds p and q together: 21 B; A,C,B,D,E peaks at 12 B
    assert dag.live_bytes((0, 1, 2, 3, 4)) == [11, 21, 21, 12, 3]
    peak, order = dag.min_peak_footprint()
    assert peak == 12 and max(dag.live_bytes(order)) == 12
    ilp = schedule_ilp(dag, 12)
    assert ilp.status == "optimal" and ilp.detail["source"] == "ilp"
    assert ilp.traffic_bytes == 2 and ilp.extra_bytes == 0
    assert max(dag.live_bytes(ilp.order)) <= 12
    # greedy keeps program order: spills p (10 B out + 10 in) for B and q (10 + 10) for C
    g = schedule_greedy(dag, 12)
    assert g.order == (0, 1, 2, 3, 4) and g.extra_bytes == 40
    for s in (ilp, g):
        assert check_schedule(dag, s) == s.traffic_bytes
        _no_overlap(dag, s)
    # with room for both branches nothing is spilled by either
    assert schedule_greedy(dag, 21).extra_bytes == 0 == schedule_ilp(dag, 21).extra_bytes


def test_checker_rejects_broken_schedules():
    dag = _diamond()
    s = schedule_ilp(dag, 12)
    bad = dataclasses.replace(s, resident=[dict(r) for r in s.resident])
    step = next(t for t, r in enumerate(bad.resident) if len(r) >= 2)
    first, second = list(bad.resident[step])[:2]
    bad.resident[step][first] = bad.resident[step][second] = 0.0    # two tensors, one place
    with pytest.raises(ScheduleError, match="overlap"):
        check_schedule(dag, bad)
    missing = dataclasses.replace(s, stores=[() for _ in s.stores])  # output never stored
    with pytest.raises(ScheduleError):
        check_schedule(dag, missing)
    with pytest.raises(ScheduleError, match="topological"):
        Dag((OpNode("a", ("t",), "u"), OpNode("b", ("x",), "t")), {"t": 1, "u": 1, "x": 1},
            ("u",))


def test_attention_fragmentation_by_hand():
    """FLAT 3-pass attention, 2 heads x 64 x 64, d=64: a chain, so the min peak is the largest
    op (SN: QK 32768 + GM 512 + SN 32768 = 66048 B). First fit puts GM right after QK, leaving
    no 32768 B hole for SN; the greedy stores QK and GM and reloads them packed: 2 x 33280 B.
    The ILP places GM at the top and spills nothing."""
    from xpusim.reproductions.cosma import attention_dag

    dag = attention_dag()
    assert dag.max_op_footprint() == (66048.0, "SN")
    assert dag.min_peak_footprint()[0] == 66048.0
    assert dag.compulsory_bytes() == 4 * 16384          # Q, K, V in; AV out
    g, s = schedule_greedy(dag, 66048.0), schedule_ilp(dag, 66048.0)
    assert g.extra_bytes == 2 * (32768 + 512)
    assert s.extra_bytes == 0 and s.status == "optimal"
    _no_overlap(dag, s)


@pytest.mark.parametrize("name", ["inception_block"])  # decoder: test_reproduce_cosma_figures
def test_ilp_never_worse_than_greedy_and_compulsory_at_min_peak(name):
    from xpusim.reproductions.cosma import DAGS, budgets

    dag = DAGS[name]()
    bs = budgets(dag)
    peak = dag.min_peak_footprint()[0]
    assert bs[0] == peak and bs[-1] == dag.max_op_footprint()[0]
    for b in (bs[0], bs[-1]):
        g, s = schedule_greedy(dag, b), schedule_ilp(dag, b)
        assert s.traffic_bytes <= g.traffic_bytes
        assert check_schedule(dag, s) == s.traffic_bytes
        _no_overlap(dag, s)
        if b == peak:
            assert s.traffic_bytes == dag.compulsory_bytes()
        else:
            assert s.extra_bytes < g.extra_bytes      # the ILP's own answer beats greedy here


def _random_dag(rng) -> Dag:
    sizes: dict[str, float] = {}
    ops, names = [], []
    for i in range(rng.randint(4, 7)):
        ins: set[str] = set()
        for j in range(rng.randint(1, min(3, len(names) + 1))):
            if names and rng.random() < 0.8:
                ins.add(rng.choice(names))
            else:
                sizes[f"w{i}_{j}"] = rng.randint(1, 10)
                ins.add(f"w{i}_{j}")
        sizes[f"t{i}"] = rng.randint(1, 12)
        names.append(f"t{i}")
        ops.append(OpNode(f"o{i}", tuple(sorted(ins)), f"t{i}"))
    read = {t for op in ops for t in op.inputs}
    return Dag(tuple(ops), sizes, tuple(t for t in names if t not in read))


def test_random_dags_ilp_own_answer_never_worse():
    import random

    rng = random.Random(7)
    for _ in range(6):
        dag = _random_dag(rng)
        peak, floor = dag.min_peak_footprint()[0], dag.max_op_footprint()[0]
        for b in sorted({peak, floor}):
            g = schedule_greedy(dag, b)
            s = schedule_ilp(dag, b, keep_better_greedy=False)
            assert check_schedule(dag, g) == g.traffic_bytes
            assert check_schedule(dag, s) == s.traffic_bytes
            _no_overlap(dag, s)
            assert s.traffic_bytes <= g.traffic_bytes
            if b == peak:
                assert s.extra_bytes == 0


def test_time_limit_returns_incumbent():
    from xpusim.reproductions.cosma import decoder_layer_dag

    dag = decoder_layer_dag(layers=2)                   # 30 ops: ~6-9 s to optimality
    b = dag.max_op_footprint()[0]
    g = schedule_greedy(dag, b)
    s = schedule_ilp(dag, b, time_limit_s=0.5)
    assert s.status != "optimal"
    assert "time limit" in s.status or "greedy incumbent" in s.status
    assert s.traffic_bytes <= g.traffic_bytes
    assert s.solve_s - s.detail["build_s"] < 0.5 + 5.0  # HiGHS stopped near its limit
    check_schedule(dag, s)


def _npu(arch, mode: str, sram: float):
    from sim.devices.npu import NpuDevice

    return NpuDevice(arch.replace(
        npu=dataclasses.replace(arch.npu, schedule=mode),
        memory={**arch.memory, "sram": dataclasses.replace(arch.memory["sram"],
                                                           capacity=sram)}))


def test_npu_fused_cascade_schedule_option():
    from arch import load_arch
    from sim.devices.base import SimError
    from workloads.cascades import attention_3pass
    from workloads.trace import ATTENTION, Op

    arch = load_arch("flat")                       # not double-buffered: whole SRAM active
    op = Op(1, "attention", ATTENTION, "prefill", 0, 0, attention_3pass(1, 2, 64, 64, 64))
    got = {m: _npu(arch, m, 66048.0).attention_cost(op) for m in ("none", "greedy", "ilp")}
    assert got["none"].dram_bytes == op.compute.min_bytes == 65536
    assert got["ilp"].dram_bytes == 65536
    assert got["greedy"].dram_bytes == 65536 + 2 * (32768 + 512)
    assert got["ilp"].detail["schedule"]["status"] == "optimal"
    assert "schedule" not in got["none"].detail
    with pytest.raises(SimError, match=r"npu.schedule: ilp: cascade 'attention_3pass'.*'SN'"):
        _npu(arch, "ilp", 60000.0).attention_cost(op)


def test_npu_schedule_field_is_validated():
    from arch import load_arch_data
    from arch.schema import SpecError
    from arch.spec import arch_from_dict

    data, _origin = load_arch_data("flat")
    data["npu"]["schedule"] = "optimal"
    with pytest.raises(SpecError, match="npu.schedule"):
        arch_from_dict(data, "x.yaml")
    data["npu"]["schedule"] = "ilp"
    assert arch_from_dict(data, "x.yaml").npu.schedule == "ilp"


def test_reproduce_cosma_figures():
    from xpusim.reproductions import cosma

    out = cosma.reproduce(argparse.Namespace(time_limit=20.0, json=True, quiet=True))
    at_peak, cut = out["results"]
    assert at_peak["measured"] == 1.0                      # every DAG: zero extra at min peak
    assert 0.5 < cut["measured"] <= 1.0 and cut["target"] == 0.84
    for p in out["points"]:
        assert p["ilp_extra_bytes"] <= p["greedy_extra_bytes"]
        assert p["ilp_solve_s"] >= 0
    assert out["solver_time_s"]["max"] < 20.0 + 5.0
