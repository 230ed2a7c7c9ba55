"""A run's tables as numpy columns (sim.columns): the metrics and checks computed from the arrays
equal the same quantities computed with pandas from the DataFrames the result builds on demand.

The pandas expressions below are the formulas the metrics were computed with before the tables
became lazy (the peer); equality is exact (same float sums over the same arrays)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arch import load_arch
from sim.columns import Columns, Lazy, Text, column, text_codes
from sim.invariants import InvariantError, check_invariants
from sim.run import simulate
from sim.system.execute import execute, memory_traffic
from sim.system.placement import parse_placement
from sim.system.schedule import Policies, build_plan
from sim.system.topology import build_system
from sim.system.usage import check_system_invariants, occupancy_peak
from workloads.models import get_model
from workloads.scenario import Scenario

OFFLOAD = "weights=gpu.hbm:0.5,host_ddr:0.5"


@pytest.fixture(scope="module")
def runs():
    """A single-GPU run, a TP2 x PP2 run with overlap, and a system run with offloaded
    weights (transfers and contended links)."""
    return {
        "gpu": simulate(load_arch("h100"), get_model("gpt2-small"),
                        Scenario(batch=2, prompt_len=32, gen_len=4)),
        "tp_pp": simulate(load_arch("dgx-h100"), get_model("llama2-7b"),
                          Scenario(batch=4, prompt_len=32, gen_len=3, tp=2, pp=2,
                                   microbatches=2), policies=Policies(overlap=True)),
        "offload": simulate(load_arch("a6000-offload"), get_model("opt-30b"),
                            Scenario(batch=1, prompt_len=32, gen_len=3),
                            placement=parse_placement(OFFLOAD)),
    }


@pytest.mark.parametrize("name", ["gpu", "tp_pp", "offload"])
def test_metrics_from_arrays_equal_the_pandas_formulas(runs, name):
    r = runs[name]
    ops, trs, res, m = r.ops, r.transfers, r.resources, r.metrics
    assert isinstance(ops, pd.DataFrame) and len(ops) == m["ops"]
    prefill = ops[ops["phase"] == "prefill"]
    assert m["ttft_s"] == float(prefill["end_s"].max())
    assert m["flops"] == float(ops["flops"].sum())
    assert m["bytes"] == float(ops["bytes"].sum())
    assert m["dram_bytes"] == float(ops["dram_bytes"].sum())
    assert m["prefill_flops"] == float(prefill["flops"].sum())
    assert m["decode_flops"] == float(ops.loc[ops["phase"] == "decode", "flops"].sum())
    assert m["dynamic_energy_J"] == float(ops["energy_J"].sum())
    assert r.energy_by_component["memory"] == float(ops["energy_memory_J"].sum())
    assert m["op_time_sum_s"] == float(ops["latency_s"].sum())
    assert m["streams"] == float(ops["stream"].nunique())
    if len(trs):
        assert m["transfers"] == len(trs)
        assert m["transfer_bytes"] == float((trs["bytes"] * trs["replicas"]).sum())
        assert m["transfer_time_sum_s"] == float(trs["latency_s"].sum())
        assert r.energy_by_component["transfer"] == float(trs["energy_J"].sum())
    if len(res):
        assert m["busiest_resource_utilisation"] == float(res["utilisation"].max())
    # the result's columns are the DataFrame's, value for value
    cols = r.columns("ops")
    assert isinstance(cols, Columns) and r.ops is r.ops   # built once
    for c in ("id", "end_s", "energy_J", "shards"):
        assert np.array_equal(cols[c], ops[c].to_numpy())
    for c in ("op", "phase", "stream", "device", "bound"):
        assert list(cols[c]) == ops[c].tolist()


def test_system_checks_agree_on_columns_and_dataframes(runs):
    r = runs["offload"]
    cap = {"gpu0.hbm": 48 * 2**30}
    resident = {"gpu0.hbm": r.inputs["placement"]["weights"]["gpu.hbm"]}
    tables = [r.columns(t) for t in ("ops", "transfers", "resources")]
    assert all(isinstance(t, Columns) for t in tables)
    assert check_system_invariants(*tables, cap, resident) == \
        check_system_invariants(r.ops, r.transfers, r.resources, cap, resident)
    op_end = r.ops.sort_values("id")["end_s"].to_numpy()
    peak = occupancy_peak(tables[1], op_end)
    assert peak and peak == occupancy_peak(r.transfers, op_end)
    # control: a capacity below the peak fails on the columns as on the DataFrame
    tight = {k: v * 0.5 for k, v in peak.items()}   # staging alone needs twice this
    for args in (tables, (r.ops, r.transfers, r.resources)):
        with pytest.raises(InvariantError, match="capacity"):
            check_system_invariants(*args, tight, {k: 0.0 for k in tight})


def test_op_checks_raise_on_columns_as_on_dataframes():
    """check_invariants reads a Columns table; a late op is named from its columns."""
    from sim.engine import Engine
    from sim.result import op_columns
    from workloads.tracer import trace_model

    arch = load_arch("h100")
    sc = Scenario(batch=1, prompt_len=8, gen_len=2)
    system = build_system(arch)
    from sim.devices.base import device_for

    device = device_for(arch, "tile")
    trace = trace_model(get_model("gpt2-small"), sc)
    plan = build_plan(trace, system, device, None, Policies())
    tl = Engine(plan.streams).run(trace, plan)
    cols = op_columns(trace, tl, plan.stream_device)
    assert check_invariants(trace, cols) == check_invariants(trace, cols.frame())
    late = int(np.flatnonzero([len(op.deps) > 0 for op in trace.ops])[0])
    cols["start_s"][late] = 0.0
    cols["latency_s"][late] = cols["end_s"][late]   # keep the roofline check passing
    with pytest.raises(InvariantError, match=f"op {late} .*started before"):
        check_invariants(trace, cols)


def test_memory_traffic_on_columns_equals_dataframe():
    """PIM ops (a memory_share in their cost) move no DRAM bytes; the rest do: the same sums
    from numpy columns as from the DataFrame (pandas ``where`` and masks)."""
    arch = load_arch("neupims")
    from sim.devices.base import device_for
    from workloads.tracer import trace_model

    device = device_for(arch, "tile")
    system = build_system(arch)
    sc = Scenario(batch=2, prompt_len=16, gen_len=3)
    trace = device.split_trace(trace_model(get_model("llama2-7b"), sc, units=device.unit_ops()))
    plan = build_plan(trace, system, device, None, Policies())
    assert plan.memory_of
    run = execute(system, trace, plan, None, {"total": 0.0})
    costs = run.timeline.costs
    got = memory_traffic(run.op_columns, plan, costs)
    ops = run.ops
    per_shard = (ops["dram_bytes"] / ops["shards"]).where(
        [c.detail.get("memory_share") is None for c in costs], 0.0)
    want: dict[str, float] = {}
    for stream, res in plan.memory_of.items():
        want[res] = want.get(res, 0.0) + float(per_shard[ops["stream"] == stream].sum())
    assert got == want and got == memory_traffic(ops, plan, costs)
    pim = np.array([c.detail.get("memory_share") is not None for c in costs])
    assert pim.any() and not pim.all()   # both kinds of op present


def test_per_kind_bytes_per_shard_are_the_per_op_columns():
    """A table whose DRAM bytes and shards are per-kind values gathered by the costs' index:
    each kind's bytes per shard (0 for a kind run inside the memory), gathered by kind, are
    the per-op division and mask, bit for bit; the table-long columns stay unformed. Other
    tables (codes not the costs' index, shards per row) take the per-op path (None)."""
    from sim.devices.base import Cost
    from sim.engine import CostList
    from sim.system.execute import _outside_memory, _per_kind_shard_bytes

    kind = np.array([0, 2, 1, 2, 0, 1, 1], dtype=np.int32)
    dram, shards = np.array([3.0, 7.0, 1e9 / 3]), np.array([2, 1, 3])
    costs = CostList([Cost(1e-6, 1e-6, "memory"),
                      Cost(1e-6, 1e-6, "memory", detail={"memory_share": 0.5}),
                      Cost(1e-6, 1e-6, "memory")], kind)

    def table(by_shards=kind):
        return Columns({"dram_bytes": Lazy(lambda: dram[kind], by=kind, values=dram),
                        "shards": Lazy(lambda: shards[by_shards], by=by_shards,
                                       values=shards)}, ["dram_bytes", "shards"], len(kind))
    ops = table()
    values, by = _per_kind_shard_bytes(ops, costs)
    want = np.where(_outside_memory(costs), dram[kind] / shards[kind], 0.0)
    assert np.array_equal(values[by], want) and want[2] == want[5] == 0.0
    assert ops.gathered("dram_bytes") is not None and ops.gathered("shards") is not None
    assert _per_kind_shard_bytes(table(kind.copy()), costs) is None
    assert _per_kind_shard_bytes(ops, CostList(costs.table, kind.copy())) is None
    assert np.array_equal(_per_kind_shard_bytes(ops, None)[0], dram / shards)


def test_text_columns_with_repeated_labels():
    """A text column whose labels repeat (two op kinds of one name): masks and distinct
    labels count the name once."""
    t = Text(["a", "b", "a"], np.array([0, 1, 2, 2, 1]))
    assert t.eq("a").tolist() == [True, False, True, True, False]
    labels, codes = t.distinct()
    assert labels == ["a", "b"] and codes.tolist() == [0, 1, 0, 0, 1]
    cols = Columns({"x": t, "v": np.arange(5.0)}, ("x", "v"), 5)
    assert text_codes(cols, "x")[0] == ["a", "b"]
    assert list(cols["x"]) == ["a", "b", "a", "a", "b"]
    df = pd.DataFrame({"x": ["a", "b", "a", "a", "b"], "v": np.arange(5.0)})
    assert text_codes(df, "x")[1].tolist() == codes.tolist()
    assert np.array_equal(column(df, "v"), column(cols, "v"))
    rows = Columns.from_rows([{"r": "x", "u": 0.5}, {"r": "y", "u": 0.25}], ("r", "u"))
    assert rows["u"].tolist() == [0.5, 0.25] and rows.frame()["r"].tolist() == ["x", "y"]
    with pytest.raises(KeyError):
        cols["missing"]
