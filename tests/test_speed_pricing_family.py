"""Pricing a decode run's per-KV-length ops as families (issue 18): vector kernels from arrays
(``vector_time_many``) equal ``vector_time`` bit for bit, the costs ``GpuDevice.prefetch``
settles straight into the estimate memo equal those ``estimate`` forms op by op (repr: exact
floats, types and detail), and whole runs are unchanged."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from arch import load_arch
from sim.devices import gpu as gpu_mod
from sim.devices.base import device_for
from sim.gpu import gemm as gemm_mod
from sim.gpu.hw import gpu_hw
from sim.gpu.vector import VectorShape, vector_time, vector_time_many
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import ATTENTION, MATMUL, ops_at
from workloads.tracer import trace_model


def _exact(d: dict) -> tuple:
    """A result dict with every value's type and exact repr."""
    return tuple((k, type(v), repr(v)) for k, v in d.items())


def _shapes(rng: random.Random, n: int) -> list[VectorShape]:
    out = []
    for _ in range(n):
        width = rng.choice([2, 3, 64, 1023, 1024, 1025, 4096, 8191, 8192, 8193,
                            rng.randint(2, 70000)])
        rows = rng.choice([1, 7, 64, 131, 4096, rng.randint(1, 300000)])
        elem = rng.choice([2.0, 4.0, 1.0])
        nbytes = float(rows * width) * elem
        out.append(VectorShape(rows=rows, width=width, input_bytes=nbytes,
                               dram_bytes=2 * nbytes + rng.choice([0.0, 4096.0]),
                               flops=float(rng.choice([0, 5 * rows * width]))))
    return out


@pytest.mark.parametrize("family", ["softmax", "norm", "activation", "other"])
@pytest.mark.parametrize("arch", ["h100", "a100", "mi210"])
def test_vector_time_many_equals_scalar(arch, family):
    hw = gpu_hw(load_arch(arch))
    rng = random.Random(hash((arch, family)) & 0xffff)
    shapes = _shapes(rng, 300)
    shapes.append(VectorShape(rows=50, width=1, input_bytes=0.0, dram_bytes=400.0,
                              flops=50.0))                      # element-wise: scalar path
    bounds: set[str] = set()
    for peak, eff in ((1.5e14, 1.0), (1e11, 0.83), (0.0, 0.6)):
        many = vector_time_many(hw, shapes, family, peak, eff)
        one = [vector_time.__wrapped__(hw, s, family, peak, eff) for s in shapes]
        assert [_exact(d) for d in many] == [_exact(d) for d in one]
        bounds |= {d["bound"] for d in many}
    passes = {d["passes"] for d in many}
    assert len(passes) == 2                      # rows that fit and rows re-read
    assert {"memory", "compute"} <= bounds       # both branches exercised


def test_vector_time_many_latency_and_grid_branches():
    """A zero-latency memory (no Little's-law cap) and grids of whole waves only."""
    hw = dataclasses.replace(gpu_hw(load_arch("h100")), hbm_latency=0.0)
    slots = hw.sms * 2
    shapes = [VectorShape(rows=slots * k * 8, width=1024, input_bytes=2.0 * slots * k * 8192,
                          dram_bytes=4.0 * slots * k * 8192, flops=0.0) for k in (1, 2, 3)]
    assert [_exact(d) for d in vector_time_many(hw, shapes, "softmax", 1e14, 1.0)] == \
        [_exact(vector_time.__wrapped__(hw, s, "softmax", 1e14, 1.0)) for s in shapes]


def _first_ops(arch_name: str, model: str, **scenario):
    trace = trace_model(get_model(model), Scenario(**scenario), compact=True)
    arrays = trace.compact
    kind = arrays.kind
    first = np.full(len(arrays.kinds), len(kind), dtype=np.int64)
    np.minimum.at(first, kind, np.arange(len(kind), dtype=np.int64))
    used = np.flatnonzero(first < len(kind))
    used = used[np.argsort(first[used])]
    return ops_at(arrays, first[used], "device0")


CASES = [
    ("h100", "llama2-7b", dict(batch=8, prompt_len=512, gen_len=96)),
    ("a100", "llama3-8b", dict(batch=4, prompt_len=300, gen_len=80, kv_dtype="fp8")),
    ("h100", "llama2-7b", dict(batch=4, prompt_len=64, gen_len=48, attention="flash",
                               sparse_kv=0.5)),
    ("mi210", "llama2-7b", dict(batch=2, prompt_len=100, gen_len=60, dtype="fp32")),
]


@pytest.mark.parametrize("arch,model,scenario", CASES)
def test_settled_costs_equal_estimate(monkeypatch, arch, model, scenario):
    ops = _first_ops(arch, model, **scenario)
    gemm_mod.best_gemm.cache_clear()
    dev = device_for(load_arch(arch), "tile")
    dev.prefetch(ops)
    settled = {k for k in dev._memo}
    fast = [repr(dev.estimate(op)) for op in ops]
    monkeypatch.setattr(gpu_mod.GpuDevice, "_settle_prefetched", lambda self, ops: None)
    gemm_mod.best_gemm.cache_clear()
    ref = device_for(load_arch(arch), "tile")
    ref.prefetch(ops)
    assert not ref._memo
    slow = [repr(ref.estimate(op)) for op in ops]
    assert fast == slow
    # the family path did the work: every per-KV-length GEMM and softmax was settled
    steps = scenario["gen_len"] - 1
    n_mm = sum(1 for op in ops if op.kind == MATMUL and
               (id(op.compute), id(op.collective), op.shards, op.kind) in settled)
    n_vec = sum(1 for op in ops if op.kind not in (MATMUL, ATTENTION) and
                (id(op.compute), id(op.collective), op.shards, op.kind) in settled)
    if scenario.get("attention") == "flash":
        assert n_mm == 0 and n_vec == 0      # fused attention: no per-KV-length GEMMs
    else:
        assert n_mm >= 2 * steps and n_vec >= steps - 1   # the template step aside


def test_settle_leaves_timed_stacks_and_odd_inputs_to_estimate(monkeypatch):
    ops = _first_ops("h100", "llama2-7b", batch=2, prompt_len=32, gen_len=40)
    dev = device_for(load_arch("h100"), "tile")
    monkeypatch.setattr(dev.software, "mode", "timed") if dev.software is not None else None
    if dev.software is not None:
        dev.prefetch(ops)
        assert not dev._memo
    monkeypatch.undo()
    assert_int_flops_left_to_estimate(ops, MATMUL)


def assert_int_flops_left_to_estimate(ops, kind) -> None:
    """Ops of ``kind`` given a FLOP count that is not a float (an int) are not settled by
    ``prefetch``; ``estimate`` prices them as a fresh device does."""
    odd = [dataclasses.replace(op, flops=int(op.flops)) if op.kind == kind else op
           for op in ops]
    dev = device_for(load_arch("h100"), "tile")
    dev.prefetch(odd)
    assert not any(k[3] == kind for k in dev._memo)
    ref = device_for(load_arch("h100"), "tile")
    assert [repr(dev.estimate(op)) for op in odd] == [repr(ref.estimate(op)) for op in odd]


def test_prefill_without_cache_equals_cached_results():
    hw = gpu_hw(load_arch("h100"))
    peak = load_arch("h100").gpu.tensor_flops["fp16"]
    calls = [(256, 1, kv, 128, 2, 65536, 65536 * kv, 512 * kv, peak) for kv in range(300, 400)]
    gemm_mod.best_gemm.cache_clear()
    got: dict = {}
    assert gemm_mod.prefill_best_gemm(hw, calls, results=got, cache=False) == len(calls)
    assert gemm_mod.best_gemm.cache_info().currsize == 0
    assert [_exact(got[c]) for c in calls] == \
        [_exact(gemm_mod.best_gemm(hw, *c)) for c in calls]


@pytest.mark.parametrize("arch,model,scenario", CASES[:2])
def test_whole_run_unchanged(monkeypatch, arch, model, scenario):
    """Metrics and the whole op table with the settled families equal the op-by-op run."""
    a = simulate(load_arch(arch), get_model(model), Scenario(**scenario))
    monkeypatch.setattr(gpu_mod.GpuDevice, "_settle_prefetched", lambda self, ops: None)
    monkeypatch.setattr(gpu_mod, "FAMILY_MIN", 10 ** 9)
    monkeypatch.setattr(gpu_mod, "prefill_best_gemm", lambda *a, **k: 0)
    b = simulate(load_arch(arch), get_model(model), Scenario(**scenario))
    assert_same_run(a, b)


def assert_same_run(a, b) -> None:
    """Two results with equal metrics and every op-table column equal, dtypes included."""
    assert a.metrics == b.metrics
    fa, fb = a.columns("ops"), b.columns("ops")
    assert fa.order == fb.order
    for name in fa.order:
        x, y = np.asarray(fa[name]), np.asarray(fb[name])
        assert x.dtype == y.dtype and np.array_equal(x, y), name


def test_prefill_without_cache_mixed_groups_and_small_groups():
    """Calls of two dtypes (two elem/peak groups) take the general grouping; a group under
    ``min_group`` is left to best_gemm; the results equal best_gemm's either way."""
    hw = gpu_hw(load_arch("h100"))
    fp16 = load_arch("h100").gpu.tensor_flops["fp16"]
    fp8 = load_arch("h100").gpu.tensor_flops["fp8"]
    a = [(64, 1, kv, 128, 2, 16384, 16384 * kv, 128 * kv, fp16) for kv in range(200, 240)]
    b = [(64, 1, kv, 128, 1, 8192, 8192 * kv, 64 * kv, fp8) for kv in range(200, 240)]
    got: dict = {}
    gemm_mod.best_gemm.cache_clear()
    assert gemm_mod.prefill_best_gemm(hw, a + b + a[:3], results=got, cache=False) == 80
    assert [_exact(got[c]) for c in a + b] == [_exact(gemm_mod.best_gemm(hw, *c)) for c in a + b]
    few: dict = {}
    assert gemm_mod.prefill_best_gemm(hw, a[:10], results=few, cache=False) == 0 and not few
