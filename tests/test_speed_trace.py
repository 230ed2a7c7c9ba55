"""Tracer speed paths: computes and op kinds made in bulk for every decode step equal the ones
made one by one (and the ones the validating constructors build), and a compact trace's columns
are views of one allocation, with the values the op-by-op trace has."""

from __future__ import annotations

import numpy as np
import pytest

from workloads.einsum import Cascade, Einsum, TensorRef, contraction
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import OpKind
from workloads.tracer import KV_RANK, LayerBuilder, _carve, trace_model

SIZES = [1, 2, 7, 513, 4096]


def _templates(attention: str = "unfused", kv_dtype: str = "fp16"):
    sc = Scenario(batch=3, prompt_len=16, gen_len=4, attention=attention, kv_dtype=kv_dtype)
    return LayerBuilder(get_model("llama2-7b"), sc), sc


@pytest.mark.parametrize("attention,kv_dtype", [("unfused", "fp16"), ("flash", "int4")])
def test_resized_all_equals_one_by_one_and_the_constructor(attention, kv_dtype):
    b, _ = _templates(attention, kv_dtype)
    for tpl in b.attention(3, 1, 40):
        comp = tpl.compute
        flops, nbytes = comp.work_over(KV_RANK, np.array(SIZES))
        bulk = comp.resized_all(KV_RANK, SIZES, (flops.tolist(), nbytes.tolist()))
        plain = comp.resized_all(KV_RANK, SIZES)
        for n, x, y in zip(SIZES, bulk, plain, strict=True):
            one = comp.resized(KV_RANK, n)
            # the builder's own template at that KV length, through the constructors
            built = next(t.compute for t in b.attention(3, 1, n) if t.name == tpl.name)
            assert type(x) is type(one) is type(built)
            assert x == one == built == y
            assert list(x.__dict__)[:len(one.__dict__)] == list(one.__dict__)
            assert (x.__dict__["flops"], x.__dict__["min_bytes"]) == \
                (built.flops, built.min_bytes)
            assert "flops" not in y.__dict__          # derived on first use, as resized's
            assert (y.flops, y.min_bytes) == (built.flops, built.min_bytes)
            if isinstance(x, Cascade):
                for e, f in zip(x.einsums, built.einsums, strict=True):
                    assert e == f and (e.flops, e.min_bytes) == (f.flops, f.min_bytes)
                    assert e.op_counts == f.op_counts
                # the cascade's Einsums over one iteration space share the resized sizes
                assert x.einsums[1].sizes is x.einsums[2].sizes
            elif x.is_contraction:
                assert x.gemm_shape == built.gemm_shape
        # each instance its own: setting a derived value on one leaves the others alone
        bulk[0].__dict__["points"] = -1
        assert "points" not in bulk[1].__dict__


def test_resized_all_refuses_what_resized_refuses():
    e = contraction("mm", TensorRef("c", ("m", "n")), TensorRef("a", ("m", "k")),
                    TensorRef("b", ("k", "n")), {"m": 4, "n": 5, "k": 6})
    for bad in ([3, 0], [2, -1], [2.0], [np.int64(3)]):
        with pytest.raises(ValueError, match="einsum mm: rank 'n' size must be a positive"):
            e.resized_all("n", bad)
        with pytest.raises(ValueError, match="einsum mm: rank 'n'"):
            e.resized("n", bad[-1])
    assert e.resized_all("x", [3, 4]) == [e, e]          # a rank it lacks: unchanged
    assert e.resized_all("n", []) == []
    casc = Cascade("c", (e,))
    with pytest.raises(ValueError, match="einsum mm"):
        casc.resized_all("n", [4, 0])
    empty = Cascade("empty", (), outputs=("x",))
    assert empty.resized_all("n", [1, 2]) == [empty.resized("n", 1)] * 2 == [empty] * 2


def test_opkind_many_equals_of():
    e = contraction("mm", TensorRef("c", ("m", "n")), TensorRef("a", ("m", "k")),
                    TensorRef("b", ("k", "n")), {"m": 4, "n": 5, "k": 6})
    comps = e.resized_all("n", [1, 2, 3])
    flops, nbytes = [1.5, 2.5, 3.5], [10.0, 20.0, 30.0]
    many = OpKind.many("mm", "matmul", "gemm", comps, None, 2, 4, flops, nbytes)
    for k, c, f, b in zip(many, comps, flops, nbytes, strict=True):
        one = OpKind.of("mm", "matmul", "gemm", c, None, 2, 4, f, b)
        assert k == one == OpKind("mm", "matmul", "gemm", c, None, 2, 4, f, b)
        assert k.compute is c and list(k.__dict__) == list(one.__dict__)
        assert hash(k) == hash(one)


def test_carve_gives_disjoint_aligned_views_of_one_block():
    cols = _carve([(5, np.int32), (3, np.int8), (7, np.int64), (0, np.int32), (4, np.int32)])
    assert [c.dtype for c in cols] == [np.int32, np.int8, np.int64, np.int32, np.int32]
    assert [len(c) for c in cols] == [5, 3, 7, 0, 4]
    assert len({id(c.base) for c in cols}) == 1
    start = cols[0].ctypes.data
    assert all((c.ctypes.data - start) % 64 == 0 and c.ctypes.data % c.itemsize == 0
               for c in cols if len(c))
    for i, c in enumerate(cols):
        c[:] = i + 1
    assert [c.tolist() for c in cols] == [[i + 1] * len(c) for i, c in enumerate(cols)]


def test_compact_columns_share_one_allocation_and_equal_the_op_by_op_trace():
    model, sc = get_model("llama2-7b"), Scenario(batch=2, prompt_len=16, gen_len=9)
    compact = trace_model(model, sc, compact=True).compact
    cols = [compact.kind, compact.phase, compact.layer, compact.step, compact.tokens,
            compact.requests, compact.microbatch, compact.dep_ptr, compact.dep_idx]
    assert len({id(c.base) for c in cols}) == 1
    assert all(c.flags.c_contiguous and c.flags.writeable for c in cols)
    ops = trace_model(model, sc).ops
    assert compact.step.tolist() == [op.step for op in ops]
    assert compact.layer.tolist() == [op.layer for op in ops]
    assert [compact.phases[p] for p in compact.phase.tolist()] == [op.phase for op in ops]
    ptr, idx = compact.dep_ptr.tolist(), compact.dep_idx.tolist()
    assert [tuple(idx[ptr[i]:ptr[i + 1]]) for i in range(len(ops))] == [op.deps for op in ops]
    # decode step s reads s + 16 keys (prompt 16): one more per step, 3 kinds per step
    last = compact.kinds[compact.kind[-1]]
    assert isinstance(last.compute, Einsum | Cascade)
    qk = [compact.kinds[k].compute for k in compact.kind.tolist()
          if compact.kinds[k].name == "qk"]
    assert [dict(c.sizes)[KV_RANK] for c in qk[-33::32]] == [16 + 7, 16 + 8]


@pytest.mark.parametrize("kw", [{}, {"sparse_kv": 0.3}, {"attn_sink": 2, "attn_window": 40},
                                {"sparse_kv": 0.125, "attn_sink": 4, "attn_window": 9}])
def test_kv_lens_is_kv_len_over_a_list(kw):
    b = LayerBuilder(get_model("llama2-7b"), Scenario(batch=2, prompt_len=16, gen_len=4, **kw))
    ns = [1, 2, 5, 30, 47, 200, 4097]
    for s in (1, 16):
        assert b.kv_lens(s, ns) == [b.kv_len(s, n) for n in ns]


def _op_fields(op):
    return (op.id, op.name, op.kind, op.phase, op.layer, op.step, op.compute, op.shards,
            op.deps, op.collective, op.tokens, op.requests, op.op_class, op.flops, op.bytes,
            op.microbatch, op.rank)


@pytest.mark.parametrize("model,kw,units", [
    ("llama2-7b", {"batch": 3, "prompt_len": 16, "gen_len": 9}, ()),
    ("llama2-70b", {"batch": 2, "prompt_len": 8, "gen_len": 7, "tp": 8}, ()),
    ("llama2-7b", {"batch": 5, "prompt_len": 8, "gen_len": 7, "microbatches": 2}, ()),
    ("llama2-7b", {"batch": 4, "prompt_len": 8, "gen_len": 7, "pp": 2, "microbatches": 2}, ()),
    ("llama2-7b", {"batch": 2, "prompt_len": 8, "gen_len": 7}, ("qk", "softmax", "av")),
    ("mixtral-8x7b", {"batch": 3, "prompt_len": 8, "gen_len": 6, "expert_skew": 1.0}, ()),
    ("mixtral-8x7b", {"batch": 4, "prompt_len": 8, "gen_len": 6, "ep": 2, "tp": 2}, ()),
])
def test_block_stamped_compact_trace_equals_the_op_by_op_trace(model, kw, units):
    """The stamper records an add() as one block (chained, or each op's fan-out dependencies
    where expert ranks fan out); the arrays made from the blocks are the op-by-op trace."""
    m, sc = get_model(model), Scenario(**kw)
    compact = trace_model(m, sc, units=units, compact=True)
    assert compact.is_compact
    plain = trace_model(m, sc, units=units).ops
    got = compact.compact.materialise()
    assert len(got) == len(plain)
    assert [_op_fields(a) for a in got] == [_op_fields(b) for b in plain]
    # expert parallelism fans ops out over ranks (blocks with listed dependencies)
    assert any(len(op.deps) > 1 for op in plain) == (kw.get("ep", 1) > 1)


def test_block_deps_chained_fast_path_equals_the_listed_one():
    from workloads.tracer import _block_deps

    # chains 0 and 1 interleaved: each block's first op after its chain's last op
    blocks = [(["w"] * 3, "p", 0, 0, 1, 1, 0, -1), (["w"] * 2, "p", 0, 0, 1, 1, 1, -1),
              (["w"] * 4, "p", 1, 0, 1, 1, 0, 2), (["w"], "p", 1, 0, 1, 1, 1, 4),
              (["w"] * 2, "p", 2, 0, 1, 1, 1, 9)]
    lengths = [len(b[0]) for b in blocks]
    starts = [0, 3, 5, 9, 10, 12]
    counts, deps = _block_deps(blocks, lengths, starts)
    assert counts.tolist() == [0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1]
    assert deps.tolist() == [0, 1, 3, 2, 5, 6, 7, 4, 9, 10]
    # the same blocks with their dependencies listed (the fan-out form) give the same arrays
    listed = []
    for b, n, s in zip(blocks, lengths, starts, strict=False):
        first = (b[7],) if b[7] >= 0 else ()
        listed.append((*b[:7], [first] + [(j,) for j in range(s, s + n - 1)]))
    again = _block_deps(listed, lengths, starts)
    assert again[0].tolist() == counts.tolist() and again[1].tolist() == deps.tolist()


def test_work_over_with_a_rank_twice_or_absent_equals_the_scalar_properties():
    """``_extent_of`` multiplies the other extents first, then the array once per listing."""
    diag = Einsum("diag", TensorRef("y", ("n",), "fp32"), (TensorRef("x", ("n", "n")),),
                  (("n", 3),), reduce_op=None, unary="exp")
    other = contraction("mm", TensorRef("c", ("m", "k2")), TensorRef("a", ("m", "k")),
                        TensorRef("b", ("k", "k2"), "int4"), {"m": 3, "k": 5, "k2": 7})
    for e in (diag, other):
        flops, nbytes = e.work_over(KV_RANK, np.array(SIZES))
        for n, f, b in zip(SIZES, flops.tolist(), nbytes.tolist(), strict=True):
            one = e.resized(KV_RANK, n)
            assert (f, b) == (one.flops, one.min_bytes)
    assert diag.resized(KV_RANK, 4096).min_bytes == 4096 * 4096 * 2 + 4096 * 4
