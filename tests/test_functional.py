"""Functional execution: bit-exact models of tiles, folds and bank sums, and the check's teeth —
a mapping that drops a tile, counts a reduction twice or accumulates narrower than declared
fails the check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kernels_ref.dtypes import quantize
from sim.functional.base import MatmulNumerics, Stage
from sim.functional.formats import Rounder, apply, round_inplace
from sim.functional.plans import pim_plan, systolic_plan, tiled_plan
from sim.functional.tolerance import abs_gemm, compare, gamma

RNG = np.random.default_rng(5)
FP16_TC = MatmulNumerics("fp16", Rounder("fp32", "rz"), 8, Rounder("fp32"), "test")
FP16_PE = MatmulNumerics("fp16", Rounder("fp32"), 1, Rounder("fp32"), "test")


def fp16(shape, scale=1.0):
    return quantize(RNG.standard_normal(shape) * scale, "fp16")


def rz32(v: float) -> float:
    return float(quantize(np.array([v]), "fp32", "rz")[0])


def rn32(v: float) -> float:
    return float(np.float32(v))


# --- rounding kernels -------------------------------------------------------------------------
def test_inplace_rounding_matches_quantize_everywhere():
    x = RNG.standard_normal(20000) * 10.0 ** RNG.uniform(-45, 40, 20000)
    x[:8] = [0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65520.0, 3.5e38]
    from numba import njit

    @njit
    def each(v, code):
        out = np.empty_like(v)
        for i in range(v.size):
            out[i] = apply(v[i], code)
        return out

    for dtype in ("fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "fp22_e8m13", "int32"):
        for rounding in ("rne", "rz"):
            r = Rounder(dtype, rounding)
            want = quantize(x, dtype, rounding)
            got = x.copy()
            round_inplace(got, r.code)
            assert np.array_equal(got, want, equal_nan=True), (dtype, rounding)
            assert np.array_equal(each(x, r.code), want, equal_nan=True), (dtype, rounding)


# --- bit-exact models -------------------------------------------------------------------------
def test_tiled_plan_is_the_documented_tensor_core_sum():
    """Each CTA: blocks of 8 exact products added to an fp32 accumulator, truncated; split-K
    slices of whole k-tiles in fp32 workspaces, added in slice order."""
    m, n, k = 5, 7, 100
    a, b = fp16((1, m, k)), fp16((1, k, n))
    plan = tiled_plan((1, m, n, k), (4, 4, 16), 2, FP16_TC)
    got = plan.execute(a, b)[0]
    k_per = math.ceil(math.ceil(k / 2) / 16) * 16  # 64: slices [0, 64) and [64, 100)
    want = np.empty((m, n))
    for i in range(m):
        for j in range(n):
            parts = []
            for k0, k1 in ((0, k_per), (k_per, k)):
                acc = 0.0
                for b0 in range(k0, k1, 8):
                    block = sum(a[0, i, t] * b[0, t, j] for t in range(b0, min(k1, b0 + 8)))
                    acc = rz32(acc + block)
                parts.append(acc)
            want[i, j] = rn32(parts[0] + parts[1])
    assert np.array_equal(got, want)
    assert plan.detail["split_k"] == 2 and plan.levels[0][0] == 8


def test_integer_tiles_are_exact():
    a = np.round(RNG.uniform(-128, 127, (1, 6, 300)))
    b = np.round(RNG.uniform(-8, 7, (1, 300, 5)))
    num = MatmulNumerics("int8", Rounder("int32"), 16, Rounder("int32"))
    got = tiled_plan((1, 6, 5, 300), (4, 4, 32), 3, num).execute(a, b)
    assert np.array_equal(got, a @ b)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_systolic_folds_are_the_documented_sums(dataflow):
    m, n, k, rows, cols = 5, 6, 23, 4, 3
    a, b = fp16((1, m, k)), fp16((1, k, n))
    plan = systolic_plan((1, m, n, k), rows, cols, dataflow, FP16_PE, k_tile=12)
    got = plan.execute(a, b)[0]
    want = np.empty((m, n))
    for i in range(m):
        for j in range(n):
            out = 0.0
            for t0 in range(0, k, 12):
                t1 = min(k, t0 + 12)
                spans = [(t0, t1)] if dataflow == "os" else \
                    [(f, min(t1, f + rows)) for f in range(t0, t1, rows)]
                for k0, k1 in spans:
                    psum = 0.0
                    for t in range(k0, k1):  # one rounding per multiply-accumulate in a PE
                        psum = rn32(psum + a[0, i, t] * b[0, t, j])
                    out = rn32(out + psum)  # the fold's partial sums into the fp32 buffer
            want[i, j] = out
    assert np.array_equal(got, want)


def test_pim_lanes_banks_and_their_reduction_order():
    """16 fp16 SIMD lanes per bank (strided elements), lanes added by a tree in fp32, then two
    banks' partial sums sequentially."""
    m, n, k = 2, 9, 80
    a, b = fp16((1, m, k), 0.5), fp16((1, k, n), 0.5)
    num = MatmulNumerics("fp16", Rounder("fp16"), 1, Rounder("fp32"))
    plan = pim_plan((1, m, n, k), channels=3, banks=2, lanes=4, num=num, k_banks=2)
    got = plan.execute(a, b)[0]
    want = np.empty((m, n))
    for i in range(m):
        for j in range(n):
            banks = []
            for p0, p1 in ((0, 40), (40, 80)):
                lanes = []
                for ln in range(4):
                    acc = 0.0
                    for t in range(p0 + ln, p1, 4):
                        acc = float(quantize(np.array([acc + a[0, i, t] * b[0, t, j]]),
                                             "fp16")[0])
                    lanes.append(acc)
                banks.append(rn32(rn32(lanes[0] + lanes[1]) + rn32(lanes[2] + lanes[3])))
            want[i, j] = rn32(banks[0] + banks[1])
    assert np.array_equal(got, want)
    assert [d for d, _ in plan.levels] == [10, 2, 1, 0]


# --- teeth ------------------------------------------------------------------------------------
def passes(plan, a, b, out="fp16") -> dict:
    """The check's verdict on ``plan`` (its declared levels give the allowance)."""
    ref = np.matmul(a, b)
    y = quantize(plan.execute(a, b), out)
    return compare(y, ref, out, gamma(plan.levels) * abs_gemm(a, b))


@pytest.fixture(scope="module")
def operands():
    return fp16((1, 24, 512)), fp16((1, 512, 40))


def test_gpu_mapping_mutations_are_caught(operands):
    a, b = operands
    plan = tiled_plan((1, 24, 40, 512), (16, 16, 64), 3, FP16_TC)
    assert passes(plan, a, b)["passed"]
    # a CTA tile that never runs
    dropped = plan.mutated(items=plan.items[1:])
    res = passes(dropped, a, b)
    assert not res["passed"] and res["nonfinite"] > 0
    # the reduction kernel adds split 1 twice
    twice = plan.mutated(stages=[Stage(((0, 1, 1, 2),), "sequential", Rounder("fp32"))])
    assert not passes(twice, a, b)["passed"]
    # ... or forgets split 2
    missing = plan.mutated(stages=[Stage(((0, 1),), "sequential", Rounder("fp32"))])
    assert not passes(missing, a, b)["passed"]
    # split 1 starts one k-tile early: that k-tile is reduced twice
    items = plan.items.copy()
    items[items[:, 7] == 1, 5] -= 64
    assert not passes(plan.mutated(items=items), a, b)["passed"]
    # accumulating narrower than the declared fp32
    for narrow in (Rounder("fp16"), Rounder("bf16"), Rounder("tf32", "rz")):
        res = passes(plan.mutated(acc=narrow), a, b)
        assert not res["passed"], narrow
        assert res["max_ulp"] > 1.0


def test_systolic_mutations_are_caught(operands):
    a, b = operands
    for df in ("ws", "os", "is"):
        plan = systolic_plan((1, 24, 40, 512), 32, 16, df, FP16_PE, k_tile=128)
        assert passes(plan, a, b)["passed"], df
        assert not passes(plan.mutated(items=plan.items[:-1]), a, b)["passed"], df
        doubled = np.concatenate([plan.items, plan.items[:1]])  # one fold accumulated twice
        assert not passes(plan.mutated(items=doubled), a, b)["passed"], df
        assert not passes(plan.mutated(acc=Rounder("fp16")), a, b)["passed"], df


def test_pim_mutations_are_caught(operands):
    a, b = operands
    num = MatmulNumerics("fp16", Rounder("fp32"), 1, Rounder("fp32"))
    plan = pim_plan((1, 24, 40, 512), channels=4, banks=8, lanes=16, num=num, k_banks=4)
    assert passes(plan, a, b)["passed"]
    assert not passes(plan.mutated(items=plan.items[1:]), a, b)["passed"]
    banks_twice = Stage(((0, 1, 2, 3, 3),), "sequential", Rounder("fp32"))
    assert not passes(plan.mutated(stages=[plan.stages[0], banks_twice, plan.stages[2]]),
                      a, b)["passed"]
    assert not passes(plan.mutated(acc=Rounder("fp16")), a, b)["passed"]


def test_fused_cascade_without_correction_is_caught():
    from kernels_ref.attention import attention_3pass
    from sim.functional.cascade import attention_1pass
    from sim.functional.layer import attention_allowance

    q = fp16((4, 8, 32))
    k = fp16((2, 40, 32), 2.0)
    v = fp16((2, 40, 32))
    an = {"qk": FP16_TC, "pv": FP16_TC, "p_dtype": "fp16"}
    cc, pcode = Rounder("fp32").code, Rounder("fp16").code
    ref = attention_3pass(q, k, v, 0.2, True)
    allow = attention_allowance(q, k, v, 0.2, True, an, 16, 2.0 ** -24)
    good = attention_1pass(q, k, v, 0.2, True, 16, FP16_TC.acc.code, 8, cc, pcode,
                           FP16_TC.acc.code, 8, True)
    bad = attention_1pass(q, k, v, 0.2, True, 16, FP16_TC.acc.code, 8, cc, pcode,
                          FP16_TC.acc.code, 8, False)
    assert compare(quantize(good, "fp16"), ref, "fp16", allow)["passed"]
    assert not compare(quantize(bad, "fp16"), ref, "fp16", allow)["passed"]


def test_check_layer_catches_a_broken_mapping_on_a_device():
    """Through the whole check: a GPU whose qkv_proj mapping drops a tile, and one whose
    tensor cores accumulate in fp16 while fp32 is declared."""
    from arch import load_arch
    from sim.functional.layer import CheckSpec, check_layer
    from workloads.models import get_model

    arch, model = load_arch("a100"), get_model("llama2-7b")
    spec = CheckSpec(prompt=16, phases=("prefill",), max_width=256,
                     ops=("qkv_proj", "o_proj", "ffn_down"))
    assert check_layer(arch, model, spec).passed

    def drop(op, plan):
        return plan.mutated(items=plan.items[1:]) if op.name == "qkv_proj" else plan

    rep = check_layer(arch, model, spec, plan_hook=drop)
    assert [r.op for r in rep.rows if not r.passed] == ["qkv_proj"]

    def narrow(op, plan):
        return plan.mutated(acc=Rounder("fp16"))

    rep = check_layer(arch, model, spec, plan_hook=narrow)
    assert not any(r.passed for r in rep.rows)
