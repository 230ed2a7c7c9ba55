"""Every run checks its invariants; the checks catch lost, duplicated and too-fast ops."""

import numpy as np
import pytest

from arch import load_arch
from sim.engine import Engine
from sim.invariants import DEPENDENCY_SLACK, InvariantError, check_invariants
from sim.result import op_table
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.tracer import trace_model


@pytest.fixture(scope="module")
def small():
    arch = load_arch("h100")
    model = get_model("gpt2-small")
    sc = Scenario(batch=2, prompt_len=64, gen_len=4)
    return arch, model, sc


@pytest.mark.parametrize("fidelity", ["roofline", "tile"])
def test_run_passes_invariants(small, fidelity):
    r = simulate(*small, fidelity=fidelity)
    assert set(r.invariants.values()) == {"passed"}
    assert len(r.invariants) >= 5
    m = r.metrics
    assert m["latency_s"] == pytest.approx(m["ttft_s"] + 3 * m["tpot_s"])
    assert m["tokens_per_s"] == pytest.approx(2 * 4 / m["latency_s"])
    assert m["energy_J"] == pytest.approx(m["energy_per_token_J"] * 8)
    assert m["events"] == len(r.ops)


def test_tile_never_beats_roofline(small):
    roof = simulate(*small, fidelity="roofline")
    tile = simulate(*small, fidelity="tile")
    tile_s, roof_s = tile.ops["latency_s"].to_numpy(), roof.ops["latency_s"].to_numpy()
    assert (tile_s >= roof_s * (1 - 1e-12)).all()
    assert tile.metrics["latency_s"] > roof.metrics["latency_s"]


def test_deterministic(small):
    a, b = simulate(*small, seed=3), simulate(*small, seed=3)
    assert a.metrics == b.metrics
    assert a.ops.equals(b.ops)


def _table(small):
    arch, model, sc = small
    from sim.devices.base import device_for

    tr = trace_model(model, sc)
    tl = Engine({"device0": device_for(arch, "tile")}).run(tr)
    return tr, op_table(tr, tl)


def test_invariants_catch_a_lost_op(small):
    tr, table = _table(small)
    with pytest.raises(InvariantError, match="lost or duplicated"):
        check_invariants(tr, table.drop(index=5))


def test_invariants_catch_a_too_fast_op(small):
    tr, table = _table(small)
    i = int(np.argmax(table["roofline_s"].to_numpy()))
    table.loc[i, "end_s"] = table.loc[i, "start_s"] + 0.5 * table.loc[i, "roofline_s"]
    table["latency_s"] = table["end_s"] - table["start_s"]
    with pytest.raises(InvariantError, match="below its roofline"):
        check_invariants(tr, table)


def test_invariants_catch_unconserved_flops(small):
    tr, table = _table(small)
    table.loc[3, "flops"] *= 2
    with pytest.raises(InvariantError, match="flops not conserved"):
        check_invariants(tr, table)


def test_invariants_catch_a_lost_request(small):
    tr, table = _table(small)
    next(op for op in tr.ops if op.name == "lm_head" and op.phase == "decode").requests -= 1
    with pytest.raises(InvariantError, match="requests lost"):
        check_invariants(tr, table)


def test_engine_honours_cross_stream_dependencies(small):
    arch, model, sc = small
    from sim.devices.base import device_for

    tr = trace_model(model, sc)
    for op in tr.ops:
        op.device = "a" if op.id % 2 else "b"
    dev = device_for(arch, "tile")
    tl = Engine({"a": dev, "b": dev}).run(tr)
    table = op_table(tr, tl)
    assert check_invariants(tr, table)["dependencies_respected"] == "passed"


def test_model_that_does_not_fit():
    from sim.devices.base import SimError

    with pytest.raises(SimError, match="does not fit"):
        simulate(load_arch("a100-40gb"), get_model("llama2-70b"), Scenario(batch=1))
    with pytest.raises(SimError, match="--tp"):
        simulate(load_arch("h100"), get_model("llama2-70b"), Scenario(batch=1, tp=2))


def test_invariants_catch_an_op_a_tenth_of_a_ppm_below_its_roofline(small):
    tr, table = _table(small)
    i = int(np.argmax(table["roofline_s"].to_numpy()))
    table.loc[i, "end_s"] = table.loc[i, "start_s"] + table.loc[i, "roofline_s"] * (1 - 1e-7)
    table["latency_s"] = table["end_s"] - table["start_s"]
    with pytest.raises(InvariantError, match="below its roofline"):
        check_invariants(tr, table)


def _compact_table(small):
    arch, model, _ = small
    from sim.devices.base import device_for

    # eight tokens: the decode steps after the second are held as arrays (deps as arrays)
    tr = trace_model(model, Scenario(batch=2, prompt_len=64, gen_len=8), compact=True)
    assert tr.is_compact
    tl = Engine({"device0": device_for(arch, "tile")}).run(tr)
    return tr, op_table(tr, tl)


@pytest.mark.parametrize("held", ["ops", "arrays"])
def test_invariants_catch_an_op_starting_half_a_nanosecond_early(small, held):
    tr, table = _table(small) if held == "ops" else _compact_table(small)
    # op 5 (softmax of the first layer) depends on op 4 (the scores)
    assert check_invariants(tr, table)["dependencies_respected"] == "passed"
    # a new column: a one-stream run's start_s and end_s may share memory (start of op i + 1
    # = end of op i), so an edit in place would move op 4's end too
    start = table["start_s"].to_numpy().copy()
    start[5] = table.loc[4, "end_s"] - 0.5e-9
    table["start_s"] = start
    table["latency_s"] = table["end_s"] - table["start_s"]
    with pytest.raises(InvariantError, match="op 5 .* started before its dependency 4"):
        check_invariants(tr, table)


def test_invariants_catch_flops_off_by_a_part_in_ten_billion(small):
    tr, table = _table(small)
    table.loc[3, "flops"] += table["flops"].sum() * 1e-10
    with pytest.raises(InvariantError, match="flops not conserved"):
        check_invariants(tr, table)


@pytest.mark.parametrize("held", ["ops", "arrays"])
@pytest.mark.parametrize("compiled", [False, True])
def test_late_start_found_by_the_compiled_pass_as_by_numpy(small, held, compiled,
                                                          monkeypatch):
    """Forced onto a short trace, the compiled dependency check (sim.deps_kernel.
    late_dependency, used from 2**20 ops) passes a valid table and names the same op and
    dependency as numpy's blocks when one op starts half a nanosecond early."""
    import sim.invariants as inv

    monkeypatch.setattr(inv, "COMPILED_OPS", 0 if compiled else 1 << 62)
    tr, table = _table(small) if held == "ops" else _compact_table(small)
    assert check_invariants(tr, table)["dependencies_respected"] == "passed"
    start = table["start_s"].to_numpy().copy()
    start[5] = table.loc[4, "end_s"] - 0.5e-9
    start[9] = table.loc[8, "end_s"] - 1e-9   # a later one: the first is named
    table["start_s"] = start
    table["latency_s"] = table["end_s"] - table["start_s"]
    with pytest.raises(InvariantError, match="op 5 .* started before its dependency 4$"):
        check_invariants(tr, table)


@pytest.mark.parametrize("which", ["aot", "jit"])
def test_late_dependency_is_the_first_late_pair_in_op_order(which):
    """``late_dependency`` by hand: op 2 waits for ops 0 and 1 and starts after 0 ends but
    before 1 ends (position 2 of the dependencies); with 1 ending in time, -1."""
    from sim.engine_aot import jit_kernels, kernels

    late = (kernels() if which == "aot" else jit_kernels()).late_dependency_i8
    ptr = np.array([0, 0, 1, 3], dtype=np.int64)      # op 1 <- 0; op 2 <- 0, 1
    idx = np.array([0, 0, 1], dtype=np.int64)
    start = np.array([0.0, 1.0, 2.0])
    slack = DEPENDENCY_SLACK
    assert late(ptr, idx, start, np.array([1.0, 2.5, 3.0]), slack) == 2
    assert late(ptr, idx, start, np.array([1.0, 2.0, 3.0]), slack) == -1
    assert late(ptr, idx, start, np.array([1.0 + 2e-15, 2.0, 3.0]), slack) == 0
    # within the slack counts as after (op 1 starts at 1.0, its dependency ends 0.5 fs later)
    assert late(ptr, idx, start, np.array([1.0 + 5e-16, 2.0, 3.0]), slack) == -1
    assert late(ptr, idx, start, np.array([1.0 + 5e-16, 2.0, 3.0]), 0.0) == 0


def _overlap_run():
    from arch import load_arch
    from sim.run import simulate
    from sim.system.schedule import Policies
    from workloads.models import get_model
    from workloads.scenario import Scenario

    return simulate(load_arch("dgx-h100"), get_model("llama2-7b"),
                    Scenario(batch=8, prompt_len=64, gen_len=6, tp=2, pp=2, microbatches=2),
                    policies=Policies(overlap=True))


def test_op_invariants_beside_the_system_tables_are_the_same(monkeypatch):
    """Op invariants checked in a second thread (THREADED_CHECKS rows and up) while the
    system tables form and the metrics' column sums are summed: the same checks, tables,
    resource figures and metrics as one after the other."""
    import sim.run as run
    import sim.system.execute as execute

    kept: list[set] = []   # the op table's whole-column sums when the metrics begin
    metrics = run._metrics

    def seen(table, *args):
        kept.append(set(getattr(table, "_totals", {})))
        return metrics(table, *args)

    monkeypatch.setattr(run, "_metrics", seen)
    monkeypatch.setattr(execute, "THREADED_CHECKS", 1 << 62)
    alone = _overlap_run()
    monkeypatch.setattr(execute, "THREADED_CHECKS", 0)
    beside = _overlap_run()
    assert list(alone.invariants.items()) == list(beside.invariants.items())
    assert alone.resources.equals(beside.resources) and alone.metrics == beside.metrics
    # beside the checks, the metrics' column sums were summed already (then only read)
    assert set(run.SUMMED_METRICS) <= kept[1] and not set(run.SUMMED_METRICS) <= kept[0]


def test_op_invariant_error_comes_first_when_both_fail(monkeypatch):
    """Where the op invariants and the system's both fail, the op invariants' error is the
    one raised, as when they ran first."""
    import sim.system.execute as execute
    from sim.invariants import InvariantError

    def op_fails(*_):
        raise InvariantError("op check")

    def system_fails(*_):
        raise InvariantError("system check")
    monkeypatch.setattr(execute, "THREADED_CHECKS", 0)
    monkeypatch.setattr(execute, "check_invariants", op_fails)
    monkeypatch.setattr(execute, "check_system_invariants", system_fails)
    with pytest.raises(InvariantError, match="op check"):
        _overlap_run()
