"""Folded decode steps (workloads/fold.py, sim/fold_run.py): a long decode held as its stamped
steps plus the kinds each further step swaps. What the fold answers without the per-op rows
equals what the rows give; a folded run's metrics equal the unfolded run's to float rounding,
its op table (built when read) equals it exactly, and the run never builds the rows."""

import numpy as np
import pytest

import workloads.tracer as tracer
from arch import load_arch
from sim.invariants import InvariantError
from sim.run import simulate
from workloads.fold import FoldedOps, first_seen
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import ops_at

ROW_FIELDS = ("kind", "phase", "layer", "step", "tokens", "requests", "microbatch", "dep_ptr",
              "dep_idx")
CASES = {
    "7b": ("h100", "llama2-7b", dict(batch=8, prompt_len=512, gen_len=40)),
    "70b-tp8": ("dgx-h100", "llama2-70b", dict(batch=8, prompt_len=512, gen_len=40, tp=8)),
    "7b-flash": ("h100", "llama2-7b", dict(batch=4, prompt_len=256, gen_len=33,
                                            attention="flash")),
    "mixtral-tp4": ("dgx-h100", "mixtral-8x7b", dict(batch=8, prompt_len=128, gen_len=24, tp=4)),
    # a state of one size in every step: further steps swap nothing
    "mamba": ("h100", "mamba-2.8b", dict(batch=8, prompt_len=256, gen_len=40)),
    # an encoder-decoder: the decoder's self attention grows, its cross attention does not
    "t5": ("h100", "t5-large", dict(batch=8, prompt_len=256, gen_len=40)),
}
#: runs under an async host stack (sim/gpu/host.py): batch-1 eager decode waits for the host
HOSTED = {
    "7b-eager-b1": ("h100", "eager", "llama2-7b", dict(batch=1, prompt_len=64, gen_len=40)),
    "70b-tp8-vllm": ("dgx-h100", "vllm", "llama2-70b",
                     dict(batch=8, prompt_len=256, gen_len=30, tp=8)),
}


def _trace(model: str, sc: Scenario, fold: bool, monkeypatch):
    monkeypatch.setattr(tracer, "FOLD", fold)
    return tracer.trace_model(get_model(model), sc, compact=True).compact


@pytest.mark.parametrize("case", list(CASES))
def test_fold_answers_what_the_rows_give(case, monkeypatch):
    """Counts per kind (all rows and per phase), the kinds in order of first occurrence and
    where, the ops at those rows, the generated tokens: from the fold, equal to the same
    figures over the unfolded tracer's arrays; and the folded trace's rows, once built, are
    those arrays."""
    _, model, kw = CASES[case]
    sc = Scenario(**kw)
    folded, rows = _trace(model, sc, True, monkeypatch), _trace(model, sc, False, monkeypatch)
    assert isinstance(folded, FoldedOps) and not isinstance(rows, FoldedOps)
    assert folded.folded and len(folded) == len(rows)
    fold, n = folded.fold, len(rows.kinds)
    assert fold.reps == sc.gen_len - 3   # prefill and two decode steps stamped
    assert np.array_equal(fold.counts(n), np.bincount(rows.kind, minlength=n))
    for code in range(len(rows.phases)):
        assert np.array_equal(fold.counts(n, code),
                              np.bincount(rows.kind[rows.phase == code], minlength=n))
    used, at = fold.first_seen(n)
    want_used, want_at = first_seen(rows.kind, n)
    assert np.array_equal(used, want_used) and np.array_equal(at, want_at)
    assert fold.ops_at(folded.kinds, folded.phases, at, "s") == ops_at(rows, at, "s")
    is_head = np.array([k.name == "lm_head" for k in rows.kinds])
    assert fold.generated(folded.kinds) == int(rows.requests[is_head[rows.kind]].sum()) \
        == sc.batch * sc.gen_len
    assert folded.folded   # none of the above built the rows
    for name in ROW_FIELDS:
        assert np.array_equal(getattr(folded, name), getattr(rows, name)), name
    assert not folded.folded


@pytest.mark.parametrize("case", ["7b", "70b-tp8", "7b-flash", "mamba", "t5"])
def test_folded_run_matches_the_unfolded_one(case, monkeypatch):
    """simulate() on the folded trace: every metric within 1e-11 of the unfolded run's (the
    same latencies summed per step, then over steps), the same invariants, no per-op row built
    by the run; the op table, built when read, equal to the unfolded run's."""
    arch, model, kw = CASES[case]
    sc = Scenario(**kw)
    monkeypatch.setattr(tracer, "FOLD", False)
    want = simulate(load_arch(arch), get_model(model), sc)
    monkeypatch.setattr(tracer, "FOLD", True)
    got = simulate(load_arch(arch), get_model(model), sc)
    table = got.folded_ops()
    assert table is not None and want.folded_ops() is None
    assert table.arrays.folded   # the run read no per-op array
    assert got.metrics.keys() == want.metrics.keys()
    for k, v in want.metrics.items():
        assert got.metrics[k] == pytest.approx(v, rel=1e-11, abs=1e-15), k
    assert got.invariants == want.invariants
    assert got.ops.equals(want.ops)


def test_step_times_are_each_steps_own_latencies(monkeypatch):
    """Each further step's time from the fold (fixed part + swapped kinds x their rows) equals
    that step's rows' latencies summed in the built op table; the steps' ends are the table's
    last end of each step."""
    arch, model, kw = CASES["70b-tp8"]
    monkeypatch.setattr(tracer, "FOLD", True)
    got = simulate(load_arch(arch), get_model(model), Scenario(**kw))
    table = got.folded_ops()
    tl, fold = table.timeline, table.arrays.fold
    ops = got.ops
    per_step = ops[ops.step >= fold.steps[0]].groupby("step")
    latency = per_step.latency_s.sum().to_numpy()
    assert len(latency) == fold.reps
    assert np.allclose(np.diff(np.concatenate(([tl.head[-1]], tl.step_ends))), latency,
                       rtol=1e-12, atol=0)
    assert np.allclose(tl.step_ends, per_step.end_s.max().to_numpy(), rtol=1e-11, atol=0)


def test_folded_invariants_catch_a_kind_below_its_roofline(monkeypatch):
    """The folded run's roofline check is per op kind: one kind priced at half its bound
    (a broken cost model) fails the run with that kind named."""
    from sim.fold_run import check_folded

    arch, model, kw = CASES["7b"]
    monkeypatch.setattr(tracer, "FOLD", True)
    sc = Scenario(**kw)
    got = simulate(load_arch(arch), get_model(model), sc)
    table = got.folded_ops()
    k = int(np.flatnonzero(table.counts)[-1])
    table.figures["alone_s"][k] = table.figures["roofline_s"][k] * 0.5
    trace = tracer.trace_model(get_model(model), sc, compact=True)
    with pytest.raises(InvariantError, match=table.arrays.kinds[k].name):
        check_folded(trace, table, 1e-9)


def test_folded_invariants_catch_lost_tokens(monkeypatch):
    """A fold that drops a further step generates fewer tokens than requests x steps."""
    from sim.fold_run import check_folded

    arch, model, kw = CASES["7b"]
    monkeypatch.setattr(tracer, "FOLD", True)
    sc = Scenario(**kw)
    got = simulate(load_arch(arch), get_model(model), sc)
    table = got.folded_ops()
    trace = tracer.trace_model(get_model(model), sc, compact=True)
    trace.compact.fold.steps = trace.compact.fold.steps[:-1]
    table.counts = trace.compact.fold.counts(len(trace.compact.kinds))
    with pytest.raises(InvariantError, match="ops lost|requests lost"):
        check_folded(trace, table, 1e-9)


@pytest.mark.parametrize("case", ["7b", "70b-tp8", "mamba", "t5"])
def test_folded_run_matches_one_event_per_op(case, monkeypatch):
    """Against the engine with one SimPy event per op (no coarsening, no fold, every op an
    object): the folded run's op table is the same, column for column and bit for bit, its
    metrics within 1e-11."""
    arch, model, kw = CASES[case]
    args = (load_arch(arch), get_model(model), Scenario(**kw))
    monkeypatch.setattr(tracer, "FOLD", True)
    fine, folded = simulate(*args, coarsen=False), simulate(*args)
    assert folded.folded_ops() is not None and fine.folded_ops() is None
    assert folded.ops.equals(fine.ops)
    for k in ("latency_s", "ttft_s", "tpot_s", "energy_J", "flops", "bytes", "events"):
        assert folded.metrics[k] == pytest.approx(fine.metrics[k], rel=1e-11), k
    assert fine.metrics["engine_events"] == len(fine.ops) and \
        folded.metrics["engine_events"] == 1


@pytest.mark.parametrize("case", list(HOSTED))
def test_folded_run_under_an_async_host(case, monkeypatch):
    """Under an async host stack a step's time includes the GPU's waits for the host: the
    folded run takes each step's wait from the stamped step's host and GPU clocks against the
    step's swapped kinds (fold_run.host_waits). Metrics within 1e-11 of the unfolded run
    (whose async closed form the per-op engine checks), the op table equal, no per-op array
    built; in the batch-1 eager run the host is the bottleneck (waits > 0 every step)."""
    from arch.software import load_arch_with_software

    arch, stack, model, kw = HOSTED[case]
    args = (load_arch_with_software(arch, stack), get_model(model), Scenario(**kw))
    monkeypatch.setattr(tracer, "FOLD", False)
    want = simulate(*args)
    monkeypatch.setattr(tracer, "FOLD", True)
    got = simulate(*args)
    table = got.folded_ops()
    assert table is not None and table.arrays.folded
    for k, v in want.metrics.items():
        assert got.metrics[k] == pytest.approx(v, rel=1e-11, abs=1e-15), k
    assert got.ops.equals(want.ops)
    if case == "7b-eager-b1":   # each step longer than its ops' GPU time: the host's waits
        tl, fold = table.timeline, table.arrays.fold
        step = np.diff(np.concatenate(([tl.head[-1]], tl.step_ends)))
        gpu = got.ops[got.ops.step >= fold.steps[0]].groupby("step").alone_s.sum()
        assert (step > 1.05 * gpu.to_numpy()).all()
