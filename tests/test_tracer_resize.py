"""Decode steps from resized templates: an Einsum resized along one rank equals the one the
constructor builds, its FLOPs and bytes over many extents come as arrays equal to the scalar
properties, and a compact trace (steps stamped as arrays) equals the op-by-op trace while
building no template per decode step."""

from __future__ import annotations

import numpy as np
import pytest

import workloads.einsum as einsum_mod
import workloads.tracer as tracer_mod
from workloads.einsum import Cascade, Einsum, TensorRef, contraction, elementwise
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import _ordered_sum
from workloads.tracer import KV_RANK, LayerBuilder, softmax, trace_model


def _attention_like(kv_dtype: str, n: int) -> Cascade:
    """A cascade with a rank ``n`` in some tensors, reductions, a unary and repeated inputs."""
    sizes = {"b": 3, "g": 2, "r": 4, "s": 1, "n": n, "e": 16}
    q = TensorRef("q", tuple("bgrse"), "fp16")
    k = TensorRef("k", tuple("bgne"), kv_dtype, "kv_cache")
    v = TensorRef("v", tuple("bgne"), kv_dtype, "kv_cache")
    scores = TensorRef("scores", tuple("bgrsn"), "fp32", "intermediate")
    sm = softmax("sm", scores, sizes, "n")
    return Cascade("att", (
        contraction("qk", scores, q, k, sizes), *sm.einsums,
        contraction("av", TensorRef("o", tuple("bgrse"), "fp16"),
                    TensorRef("sm.out", tuple("bgrsn"), "fp32"), v, sizes),
        elementwise("sq", TensorRef("kk", tuple("bgne"), "fp32"), (k, k), sizes, "mul",
                    unary="gelu"),
    ), outputs=("o", "kk"))


@pytest.mark.parametrize("kv_dtype", ["fp16", "int4", "fp8", "int4/g128"])
def test_resized_equals_constructed_and_work_over_equals_scalars(kv_dtype):
    base = _attention_like(kv_dtype, 7)
    extents = [1, 2, 9, 100, 4097, 65_537]
    flops, nbytes = base.work_over("n", np.array(extents))
    for n, f, b in zip(extents, flops.tolist(), nbytes.tolist(), strict=True):
        built = _attention_like(kv_dtype, n)           # through the validating constructor
        resized = base.resized("n", n)
        assert resized == built
        assert (f, b) == (built.flops, built.min_bytes)
        assert (resized.flops, resized.min_bytes) == (built.flops, built.min_bytes)
        for e_res, e_new in zip(resized.einsums, built.einsums, strict=True):
            ef, eb = e_res.work_over("n", np.array([n]))
            assert (ef[0], eb[0]) == (e_new.flops, e_new.min_bytes)
            assert e_res.op_counts == e_new.op_counts
            if e_new.is_contraction:
                assert e_res.gemm_shape == e_new.gemm_shape
    # hand count: QK^T is 2 x b g r s n e multiply-adds, its bytes q + k + scores once
    qk = base.einsums[0].resized("n", 100)
    assert qk.flops == 2 * 3 * 2 * 4 * 1 * 100 * 16
    kv_bytes = einsum_mod.dtype_bytes(kv_dtype)
    assert qk.min_bytes == 3 * 2 * 4 * 16 * 2 + 3 * 2 * 100 * 16 * kv_bytes + 3 * 2 * 4 * 100 * 4


def test_resize_refuses_bad_extents():
    e = contraction("mm", TensorRef("c", ("m", "n")), TensorRef("a", ("m", "k")),
                    TensorRef("b", ("k", "n")), {"m": 4, "n": 5, "k": 6})
    with pytest.raises(ValueError, match="positive"):
        e.resized("n", 0)
    with pytest.raises(ValueError, match="positive"):
        e.work_over("n", np.array([3, 0]))
    with pytest.raises(OverflowError):
        e.work_over("n", np.array([2**51]))
    assert e.resized("x", 3) == e            # a rank it lacks: unchanged
    assert isinstance(e.resized("n", 3), Einsum)


def test_ordered_sum_is_pythons_sum():
    rng = np.random.default_rng(1)
    for _ in range(50):
        x = rng.random(int(rng.integers(1, 3000))) * 10.0 ** rng.uniform(-3, 14)
        assert _ordered_sum(x) == sum(x.tolist())
    assert _ordered_sum(np.zeros(0)) == 0.0


CONFIGS = {
    "dense": ("llama2-7b", {"batch": 2, "prompt_len": 16, "gen_len": 12}),
    "gqa-tp8": ("llama2-70b", {"batch": 3, "prompt_len": 16, "gen_len": 10, "tp": 8}),
    "flash-sparse-mb": ("llama2-7b", {"batch": 5, "prompt_len": 16, "gen_len": 11,
                                      "microbatches": 2, "attention": "flash",
                                      "sparse_kv": 0.3}),
    "window-int4kv": ("llama2-7b", {"batch": 2, "prompt_len": 20, "gen_len": 14,
                                    "attn_sink": 2, "attn_window": 25, "kv_dtype": "int4"}),
    "moe-skew-tp2": ("mixtral-8x7b", {"batch": 4, "prompt_len": 16, "gen_len": 9, "tp": 2,
                                      "expert_skew": 1.0}),
    "pp2": ("llama2-7b", {"batch": 4, "prompt_len": 16, "gen_len": 8, "tp": 2, "pp": 2,
                          "microbatches": 2}),
    "learned-positions": ("opt-6.7b", {"batch": 2, "prompt_len": 16, "gen_len": 9}),
    "pim-units": ("llama2-7b", {"batch": 4, "prompt_len": 16, "gen_len": 9,
                                "microbatches": 2}),
}
UNITS = {"pim-units": ("qk", "softmax", "av")}   # NeuPIMs: decode attention on PIM units


def _fields(op):
    return (op.id, op.name, op.kind, op.phase, op.layer, op.step, op.shards, op.deps,
            op.collective, op.tokens, op.requests, op.op_class, op.flops, op.bytes,
            op.microbatch, op.rank)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compact_trace_equals_op_by_op_trace(name, monkeypatch):
    model, kw = CONFIGS[name]
    sc = Scenario(**kw)
    units = UNITS.get(name, ())
    full = trace_model(get_model(model), sc, units=units)
    fast = tracer_mod._resized_steps
    took: list[bool] = []
    monkeypatch.setattr(tracer_mod, "_resized_steps",
                        lambda *a, **k: took.append((r := fast(*a, **k)) is not None) or r)
    compact = trace_model(get_model(model), sc, units=units, compact=True)
    assert compact.is_compact and took == [True]      # steps resized, not rebuilt
    assert compact.total_flops == sum(op.flops for op in full.ops)
    assert compact.total_bytes == sum(op.bytes for op in full.ops)
    # the per-step swap (templates built for every step) gives the same arrays too
    monkeypatch.setattr(tracer_mod, "_resized_steps", lambda *a, **k: None)
    swapped = trace_model(get_model(model), sc, units=units, compact=True)
    assert swapped.is_compact
    for a, b, c in zip(compact.ops, full.ops, swapped.ops, strict=True):
        assert _fields(a) == _fields(b) == _fields(c)
        assert a.compute == b.compute == c.compute
        if a.compute is not None:
            assert (a.compute.flops, a.compute.min_bytes) == (b.compute.flops,
                                                              b.compute.min_bytes)


def test_no_template_is_built_per_decode_step(monkeypatch):
    """Tracing builds the same Einsums for 40 and for 400 generated tokens: the steps after
    the first two are resized copies, not templates built through the constructor."""
    built = {"n": 0}
    orig = Einsum.__post_init__

    def counting(self):
        built["n"] += 1
        orig(self)

    monkeypatch.setattr(Einsum, "__post_init__", counting)
    counts = []
    for gen in (40, 400):
        built["n"] = 0
        tr = trace_model(get_model("llama2-7b"), Scenario(batch=2, prompt_len=16, gen_len=gen),
                         compact=True)
        assert tr.is_compact and len(tr) > 0
        counts.append(built["n"])
    assert counts[0] == counts[1]


def test_kv_len_is_the_attention_rank_extent():
    b = LayerBuilder(get_model("llama2-7b"), Scenario(batch=2, prompt_len=16, gen_len=4,
                                                      sparse_kv=0.3, attn_sink=2,
                                                      attn_window=40))
    for n in (5, 30, 200):
        (qk, *_) = b.attention(2, 1, n)
        assert dict(qk.compute.sizes)[KV_RANK] == b.kv_len(1, n)
    assert b.kv_len(1, 30) == 9          # ceil(30 x 0.3)
    assert b.kv_len(1, 200) == 42        # ceil(200 x 0.3) = 60, capped at sink 2 + window 40
    assert b.kv_len(16, 30) == 30        # prefill reads every key (sparse KV is for decode)


def test_engine_prices_each_distinct_op_once_from_ops_equal_to_the_trace():
    """The one-stream run estimates one op per kind, in the order the kinds first appear, and
    the op it hands the device model equals the materialised trace's op field by field."""
    from arch import load_arch
    from sim.devices.base import device_for
    from sim.engine import Engine
    from workloads.trace import ops_at

    sc = Scenario(batch=2, prompt_len=16, gen_len=9, tp=1)
    tr = trace_model(get_model("llama2-7b"), sc, compact=True)
    arrays = tr.compact
    dev = device_for(load_arch("h100"), "tile")
    seen: list[int] = []
    estimate = dev.estimate

    def spy(op):
        seen.append(op.id)
        return estimate(op)

    dev.estimate = spy
    Engine({"gpu": dev}).run(tr)
    kinds = arrays.kind.tolist()
    firsts = sorted({k: i for i, k in reversed(list(enumerate(kinds)))}.values())
    assert seen == firsts                       # one estimate per kind, first use first
    ops = tr.ops
    for op, ref in zip(ops_at(arrays, np.array(firsts), "gpu"), (ops[i] for i in firsts),
                       strict=True):
        assert _fields(op) == _fields(ref) and op.compute is ref.compute
        assert op.device == "gpu"
