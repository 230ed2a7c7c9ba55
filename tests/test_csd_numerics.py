"""The CSD engine's functional mode (``sim/functional/devices/csd.py``): page-group plans, the
declared page-group order, and ``xpusim check`` on the CSD system preset.

What has teeth where (see docs/numerics.md, "Computational SSD"):

* a dropped page group fails on the error itself (AV: a large ULP error; QK^T: NaN scores);
* a wrong page-group order does *not* exceed the allowance (an order-independent worst-case
  bound; with fp32 accumulation the reordering moves a sum by a few fp32 ulps, far below the
  fp16 output's ulp) — it fails through the order check, which requires the executed plan to
  equal a direct emulation of the declared order bit for bit. With an fp16 accumulator the
  order shows in the fp16 outputs themselves, still inside the allowance.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from arch import load_arch
from kernels_ref.dtypes import quantize
from sim.functional.base import MatmulNumerics, Stage, functional_for
from sim.functional.devices.csd import CsdFunctional, page_group_plan, page_group_reference
from sim.functional.formats import Rounder
from sim.functional.layer import CheckSpec, check_layer
from sim.functional.tolerance import abs_gemm, compare, gamma
from workloads.models import get_model
from xpusim.cli import main

ATTN = ("qk", "softmax", "av")
#: a decode step over 96 cached tokens: six full 16-token page groups (head_dim 128, fp16)
SPEC = CheckSpec(batch=2, prompt=95, phases=("decode",), max_width=256)
FP32 = MatmulNumerics("fp16", Rounder("fp32"), 1, Rounder("fp32"), "engine as declared")
FP16 = MatmulNumerics("fp16", Rounder("fp16"), 1, Rounder("fp16"), "fp16-accumulator variant")


@pytest.fixture(scope="module")
def system():
    return load_arch("a6000-storage")


@pytest.fixture(scope="module")
def model():
    return get_model("llama2-7b")


def _rows(rep) -> dict[str, object]:
    return {r.op: r for r in rep.rows}


def _reorder(order: list[int]):
    def hook(op, plan):
        if op.name != "av":
            return plan
        (group,) = plan.stages[0].groups
        assert len(group) == len(order)
        st = Stage((tuple(group[i] for i in order),), "sequential", plan.stages[0].rounder)
        return plan.mutated(stages=[st])
    return hook


def test_check_passes_on_the_csd_system_preset(system, model):
    rep = check_layer(system, model, SPEC)
    rows = _rows(rep)
    assert rep.passed, [(r.op, r.max_ulp, r.detail) for r in rep.rows if not r.passed]
    for name in ATTN:
        assert rows[name].device == "a6000-storage:csd"
    assert rows["qkv_proj"].device == "a6000-storage:gpu"
    av = rows["av"].detail
    assert (av["mapping"], av["k_group"], av["groups"], av["order_mismatch"]) == \
        ("page groups", 16, 6, 0)
    assert rows["qk"].detail["n_group"] == 16 and rows["qk"].detail["order_mismatch"] == 0
    assert rows["softmax"].detail["lanes"] == 16


def test_cli_checks_the_csd_component(capsys):
    rc = main(["check", "--arch", "a6000-storage", "--phase", "decode", "--max-width", "256",
               "--prompt", "31", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["passed"]
    on_csd = {r["op"] for r in out["ops"] if r["device"] == "a6000-storage:csd"}
    assert on_csd == set(ATTN)
    rc = main(["check", "--arch", "a6000-storage", "--phase", "decode", "--max-width", "256",
               "--prompt", "31", "--attention-on", "gpu", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and all(r["device"] == "a6000-storage:gpu" for r in out["ops"])
    assert main(["check", "--arch", "a100", "--attention-on", "csd"]) == 2


def test_standalone_csd_arch_passes(model):
    rep = check_layer(load_arch("instinfer-csd"), model,
                      CheckSpec(prompt=31, phases=("decode",), max_width=256))
    assert rep.passed and all(r.device == "instinfer-csd:csd" for r in rep.rows)


def test_page_groups_follow_the_page_size():
    fx = CsdFunctional(load_arch("instinfer-csd"))
    av = type("Op", (), {"name": "av", "compute": None})()
    qk = type("Op", (), {"name": "qk", "compute": None})()
    assert fx.groups(av, "fp16", (8, 1, 128, 96)) == (16, 128)   # 4096 / (128 x 2 B)
    assert fx.groups(qk, "fp16", (8, 1, 96, 128)) == (128, 16)
    assert fx.groups(av, "fp16", (8, 1, 64, 96)) == (32, 64)     # head_dim 64: 32 tokens
    assert fx.groups(None, "fp16", (1, 1, 512, 4096)) == (2048, 512)


def test_plan_is_bit_exact_with_a_scalar_loop():
    """The executed plan and the emulation both equal a plain per-element loop: fp32 MACs in
    token order within a page group, group partials added in fp32 in group order."""
    rng = np.random.default_rng(1)
    a = quantize(rng.standard_normal((2, 3, 40)), "fp16")
    b = quantize(rng.standard_normal((2, 40, 5)), "fp16")
    plan = page_group_plan((2, 3, 5, 40), 16, 2, FP32)
    got = plan.execute(a, b)
    want = np.empty_like(got)
    for x in range(2):
        for i in range(3):
            for j in range(5):
                total = None
                for k0 in (0, 16, 32):
                    acc = np.float32(0)
                    for t in range(k0, min(40, k0 + 16)):
                        acc = np.float32(acc + np.float32(a[x, i, t]) * np.float32(b[x, t, j]))
                    total = acc if total is None else np.float32(total + acc)
                want[x, i, j] = total
    assert np.array_equal(got, want)
    assert np.array_equal(page_group_reference(a, b, 16, FP32), want)       # float32 path
    general = MatmulNumerics("fp32", Rounder("fp32"), 1, Rounder("fp32"))  # rounding path
    assert np.array_equal(page_group_reference(a, b, 16, general), want)


@pytest.mark.parametrize("order", [[5, 4, 3, 2, 1, 0], [2, 0, 1, 3, 5, 4]])
def test_a_wrong_page_group_order_fails_the_check(system, model, order):
    rep = check_layer(system, model, SPEC, plan_hook=_reorder(order))
    bad = [r for r in rep.rows if not r.passed]
    assert [r.op for r in bad] == ["av"]
    av = bad[0]
    # the order check caught it; the error alone is inside the allowance (see module doc)
    assert av.detail["order_mismatch"] > 0.1 * av.elements
    assert av.max_ulp <= av.tolerance and av.nonfinite == 0


def test_swapping_the_first_two_groups_is_no_reordering(system, model):
    """fl(g0 + g1) = fl(g1 + g0): the same sums, and the check agrees."""
    assert check_layer(system, model, SPEC, plan_hook=_reorder([1, 0, 2, 3, 4, 5])).passed


@pytest.mark.parametrize("op_name", ["av", "qk"])
def test_a_dropped_page_group_fails_by_a_large_margin(system, model, op_name):
    def drop(op, plan):
        if op.name != op_name:
            return plan
        if op_name == "av":  # group 2 computed but never added: a finite, wrong sum
            (group,) = plan.stages[0].groups
            st = Stage((tuple(g for g in group if g != 2),), "sequential",
                       plan.stages[0].rounder)
            return plan.mutated(stages=[st])
        keep = plan.items[:, 3] != 2 * plan.detail["n_group"]   # qk: tokens 32..47 unread
        return plan.mutated(items=plan.items[keep])

    rows = _rows(check_layer(system, model, SPEC, plan_hook=drop))
    assert [op for op, r in rows.items() if not r.passed] == [op_name]
    row = rows[op_name]
    if op_name == "av":
        assert row.nonfinite == 0 and row.max_ulp > 100 * row.tolerance
    else:
        assert row.nonfinite > 0


def test_a_narrower_accumulator_fails(system, model):
    rep = check_layer(system, model, SPEC,
                      plan_hook=lambda op, p: p.mutated(acc=Rounder("fp16"))
                      if op.name == "av" else p)
    assert [r.op for r in rep.rows if not r.passed] == ["av"]


def _av_operands(n: int = 96, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((64, 1, n)) * 2
    p = np.exp(z - z.max(axis=2, keepdims=True))
    p = quantize(p / p.sum(axis=2, keepdims=True), "fp16")
    v = quantize(rng.standard_normal((64, n, 128)), "fp16")
    return p, v


@pytest.mark.parametrize("num,output_differs", [(FP32, False), (FP16, True)])
def test_order_and_the_allowance(num, output_differs):
    """Reversing the page groups: within the allowance for both accumulators (the bound holds
    for any order), visible in the fp16 outputs only with an fp16 accumulator, and always
    distinguishable from the declared order by the emulation."""
    p, v = _av_operands()
    shape = (p.shape[0], 1, v.shape[2], p.shape[2])
    plan = page_group_plan(shape, 16, 128, num)
    rev = page_group_plan(shape, 16, 128, num, order=list(range(5, -1, -1)))
    fwd_raw, rev_raw = plan.execute(p, v), rev.execute(p, v)
    declared = page_group_reference(p, v, 16, num)
    assert np.array_equal(fwd_raw, declared)
    assert np.count_nonzero(rev_raw != declared) > 0.1 * declared.size
    ref = np.matmul(p, v)
    allow = gamma(plan.levels) * abs_gemm(p, v)
    for raw in (fwd_raw, rev_raw):
        assert compare(quantize(raw, "fp16"), ref, "fp16", allow)["passed"]
    changed = np.count_nonzero(quantize(fwd_raw, "fp16") != quantize(rev_raw, "fp16"))
    if output_differs:
        assert changed > 0.05 * ref.size
    else:
        assert changed < 0.01 * ref.size


def test_functional_for_the_system_preset_routes_decode_attention(system):
    fx = functional_for(system)
    decode = type("Op", (), {"name": "av", "phase": "decode", "op_class": "attention"})()
    prefill = type("Op", (), {"name": "av", "phase": "prefill", "op_class": "attention"})()
    assert fx.for_op(decode).arch.type == "csd" and fx.for_op(prefill).arch.type == "gpu"
    assert fx.unit_for(decode) == "csd" and fx.unit_for(prefill) == "gpu"
