"""Costs a decode run prices from arrays kept as columns (issue 18): ``GpuDevice.prefetch``
keeps the per-KV-length GEMMs' and softmaxes' costs as a :class:`sim.devices.base.CostBlock`,
the one-stream engine reads their latencies as an array, and the op table reads the other
figures from the columns (``CostList.figures``) without forming a ``Cost`` per op. Each cost
formed on demand, and each figure read from the columns, equals bit for bit what the op-by-op
``estimate`` gives; a one-ulp change in a column is caught."""

from __future__ import annotations

import numpy as np
import pytest

from arch import load_arch
from sim.devices import base as base_mod
from sim.devices import gpu as gpu_mod
from sim.devices.base import CostBlock, device_for
from sim.engine import CostList, Engine
from sim.gpu import gemm as gemm_mod
from sim.run import simulate
from workloads.fold import first_seen
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import ops_at
from workloads.tracer import trace_model

CASES = [
    ("h100", "llama2-7b", dict(batch=8, prompt_len=512, gen_len=40)),
    ("a100", "llama3-8b", dict(batch=4, prompt_len=300, gen_len=30, kv_dtype="fp8")),
    ("mi210", "llama2-7b", dict(batch=2, prompt_len=100, gen_len=24, dtype="fp32")),
]


def _run(arch: str, model: str, scenario: dict, settle: bool, monkeypatch) -> tuple:
    """(trace, device, timeline) of a one-stream engine run; ``settle=False``: every cost
    formed op by op by ``estimate`` (the reference)."""
    trace = trace_model(get_model(model), Scenario(**scenario), compact=True)
    gemm_mod.best_gemm.cache_clear()
    with monkeypatch.context() as m:
        if not settle:
            m.setattr(gpu_mod.GpuDevice, "_settle_prefetched", lambda self, ops: None)
        dev = device_for(load_arch(arch), "tile")
        tl = Engine({"device0": dev}).run(trace)
    return trace, dev, tl


def _bits(values) -> np.ndarray:
    """Float64 values as their bit patterns (an exact comparison, -0.0 and NaN included)."""
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64)).view(np.uint64)


def same_figures(a: tuple, b: tuple) -> bool:
    """Whether two ``CostList.figures()`` are equal bit for bit (bounds as strings)."""
    return all(np.array_equal(_bits(x), _bits(y)) for x, y in zip(a[:6], b[:6], strict=True)) \
        and list(a[6]) == list(b[6])


@pytest.mark.parametrize("arch,model,scenario", CASES)
def test_columns_equal_costs_formed_op_by_op(monkeypatch, arch, model, scenario):
    _, dev, tl = _run(arch, model, scenario, True, monkeypatch)
    _, _, ref = _run(arch, model, scenario, False, monkeypatch)
    costs, want = tl.costs, ref.costs
    assert isinstance(costs, CostList) and isinstance(want, CostList)
    assert costs._lazy and not want._lazy          # the column path did the work
    lazy_rows = sum(len(block) for _, block in costs._lazy)
    assert lazy_rows >= 2 * (scenario["gen_len"] - 2)   # each step's GEMMs at least
    # the times the engine formed from the latency column equal the op-by-op run's
    assert np.array_equal(_bits(tl.start), _bits(ref.start))
    assert np.array_equal(_bits(tl.end), _bits(ref.end))
    # figures read from the columns (no Cost formed) equal those of the formed costs
    unformed = [block._formed.count(None) for _, block in costs._lazy]
    got = costs.figures()
    assert [block._formed.count(None) for _, block in costs._lazy] == unformed
    assert same_figures(got, want.figures())
    # each Cost formed on demand equals estimate's (exact floats, types, dict order)
    assert [repr(c) for c in costs.table] == [repr(c) for c in want.table]
    assert not costs._lazy and same_figures(costs.figures(), got)


def test_estimate_returns_the_object_the_table_forms(monkeypatch):
    """One Cost per settled op: what ``estimate`` returns for it (its memo entry names the
    block's row) is the object the table forms, whichever is read first."""
    trace, dev, tl = _run(*CASES[0], True, monkeypatch)
    arrays = trace.compact
    used, first = first_seen(arrays.kind, len(arrays.kinds))
    ops = ops_at(arrays, first, "device0")
    where, block = tl.costs._lazy[0]
    position = {k: p for p, k in enumerate(used.tolist())}
    early = dev.estimate(ops[position[int(where[0])]])   # formed by estimate first
    table = tl.costs.table
    for j, k in enumerate(where.tolist()):
        assert table[k] is block.cost(j) is dev.estimate(ops[position[k]])
    assert table[int(where[0])] is early


def test_later_python_forms_the_costs(monkeypatch):
    """Where ``CostBlock.figures`` declines (a Python whose ``sum`` of floats compensates),
    the figures come from the formed costs: the same values."""
    _, _, tl = _run(*CASES[0], True, monkeypatch)
    _, _, ref = _run(*CASES[0], False, monkeypatch)
    monkeypatch.setattr(base_mod.CostBlock, "figures", lambda self: None)
    assert same_figures(tl.costs.figures(), ref.costs.figures())
    assert not tl.costs._lazy


@pytest.mark.parametrize("column", ["latency", "roofline", "e_compute", "e_hbm", "e_l2"])
def test_one_ulp_in_a_column_is_caught(monkeypatch, column):
    _, _, tl = _run(*CASES[0], True, monkeypatch)
    _, _, ref = _run(*CASES[0], False, monkeypatch)
    want = ref.costs.figures()
    where, block = tl.costs._lazy[0]
    j = next(i for i, r in enumerate(block.results) if r["l2_bytes"]) \
        if column == "e_l2" else 5
    values = getattr(block, column)
    values[j] = np.nextafter(values[j], np.inf)
    got = tl.costs.figures()
    if column in ("latency", "roofline", "e_compute"):   # a figure of the op table itself
        assert not same_figures(got, want)
    # (an energy the op table sums: the total read from the columns stays the formed
    # cost's, whether or not the ulp survives the addition)
    k = int(where[j])
    assert _bits([got[5][k]]) == _bits([block.cost(j).energy_total])
    assert repr(block.cost(j)) != repr(ref.costs.table[k])


@pytest.mark.parametrize("ulp", [True, False])
def test_a_change_in_the_engine_latency_column_changes_the_run(monkeypatch, ulp):
    """The whole-run comparison sees a change in a settled latency (the engine reads that
    column, not a formed Cost): one ulp in the op's own latency; 1e-6 relative in the times
    after it (one ulp of a 20 us latency vanishes in a 0.3 s sum)."""
    arch, model, scenario = CASES[0]
    a = simulate(load_arch(arch), get_model(model), Scenario(**scenario))
    init = CostBlock.__init__

    def nudged(self, latency, *rest):
        latency = latency.copy()
        latency[-1] = np.nextafter(latency[-1], np.inf) if ulp else latency[-1] * (1 + 1e-6)
        init(self, latency, *rest)

    monkeypatch.setattr(CostBlock, "__init__", nudged)
    b = simulate(load_arch(arch), get_model(model), Scenario(**scenario))
    fa, fb = a.columns("ops"), b.columns("ops")
    assert np.count_nonzero(_bits(fa["alone_s"]) != _bits(fb["alone_s"])) >= 1
    if not ulp:
        assert not np.array_equal(_bits(fa["end_s"]), _bits(fb["end_s"]))
        assert a.metrics != b.metrics


@pytest.mark.parametrize("arch,model,scenario", [
    ("h100", "llama3-8b", dict(batch=4, prompt_len=128, gen_len=40)),
    ("a100", "llama2-7b", dict(batch=4, prompt_len=128, gen_len=40, attention="flash")),
])
def test_whole_run_equals_op_by_op(monkeypatch, arch, model, scenario):
    """Metrics and every op-table column with the costs kept as columns equal a run whose
    costs are all formed op by op."""
    from test_speed_pricing_family import assert_same_run

    a = simulate(load_arch(arch), get_model(model), Scenario(**scenario))
    monkeypatch.setattr(gpu_mod.GpuDevice, "_settle_prefetched", lambda self, ops: None)
    b = simulate(load_arch(arch), get_model(model), Scenario(**scenario))
    assert_same_run(a, b)
