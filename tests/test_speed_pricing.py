"""Pricing a decode run's per-KV-length ops from arrays (issue 18): the GEMM arguments and
vector-kernel shapes a GpuDevice forms per family of resized computes equal the scalar ones
(types included), a whole run priced with them equals one priced op by op bit for bit, and the
cheaper table checks (Text.distinct by counting, invariants) give the same answers."""

from __future__ import annotations

import numpy as np
import pytest

from arch import load_arch
from sim.columns import Columns, Text
from sim.devices import gpu as gpu_mod
from sim.devices.gpu import GpuDevice, _gemm_args_family, _vector_shape_family, _vector_shapes
from sim.gpu.vector import vector_shape
from sim.invariants import InvariantError, check_invariants
from sim.run import simulate
from workloads.einsum import Cascade, Einsum, TensorRef
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import ATTENTION, COLLECTIVE, MATMUL, MEMORY
from workloads.tracer import trace_model


@pytest.fixture(scope="module")
def decode_trace():
    """Llama-2-7B, unfused attention, 40 decode steps: QK, softmax and AV per KV length."""
    return trace_model(get_model("llama2-7b"), Scenario(batch=2, prompt_len=64, gen_len=40),
                       compact=True)


def _kinds(trace):
    return [k for k in trace.compact.kinds]


def test_gemm_args_family_equals_scalar(decode_trace):
    dev = GpuDevice(load_arch("h100"))
    families: dict[tuple, list] = {}
    for k in _kinds(decode_trace):
        c = k.compute
        if k.kind == MATMUL and isinstance(c, Einsum) and c.is_contraction:
            families.setdefault((id(c.inputs), id(c.output), tuple(r for r, _ in c.sizes)),
                                []).append(c)
    big = [f for f in families.values() if len(f) >= 30]
    assert len(big) == 2     # QK and AV, one Einsum per KV length each
    for comps in big:
        dtype = comps[0].inputs[0].dtype
        many = _gemm_args_family(comps, dtype, dev.tensor_peak(dtype))
        scalar = [dev._gemm_args(c, dtype) for c in comps]
        assert many == scalar
        assert [tuple(map(type, a)) for a in many] == [tuple(map(type, a)) for a in scalar]
        assert len({a[3] for a in many} | {a[2] for a in many}) > 30   # KV length varies


def test_gemm_args_family_float_bytes():
    """A packed dtype (0.5 B per element) gives float byte counts, as the scalar path."""
    a = TensorRef("A", ("m", "k"), "int4")
    b = TensorRef("B", ("k", "n"), "int4")
    z = TensorRef("Z", ("m", "n"), "int4")
    base = Einsum("g", z, (a, b), (("m", 3), ("n", 5), ("k", 7)))
    comps = [base.resized("k", s) for s in range(1, 12)]
    dev = GpuDevice(load_arch("h100"))
    many = _gemm_args_family(comps, "int4", 1e15)
    assert many == [dev._gemm_args(c, "int4")[:8] + (1e15,) for c in comps]
    assert many[2][5] == 3 * 3 * 0.5 and type(many[2][5]) is float


def test_vector_shapes_equal_scalar(decode_trace):
    ops = [k for k in _kinds(decode_trace)
           if k.kind not in (MATMUL, ATTENTION, MEMORY, COLLECTIVE) and k.compute is not None]
    got = _vector_shapes(ops, {})
    assert len(got) >= 37       # the softmax at every stamped KV length
    for comp, shape in got.values():
        assert shape == vector_shape(comp)
        assert type(shape.rows) is int and type(shape.input_bytes) is float
    widths = {shape.width for _, shape in got.values()}
    assert len(widths) == len(got)    # the row width is the KV length


def test_vector_family_of_other_structure_is_refused():
    x = TensorRef("X", ("m", "n"))
    y = TensorRef("Y", ("m",))
    e1 = Einsum("max", y, (x,), (("m", 4), ("n", 8)), reduce_op="max")
    other = Einsum("max", y, (TensorRef("X", ("m", "n")),), (("m", 4), ("n", 9)),
                   reduce_op="max")
    assert _vector_shape_family([e1.resized("n", 16), other]) is None
    comps = [e1.resized("n", s) for s in (8, 100, 3000, 9000)]
    assert _vector_shape_family(comps) == [vector_shape(c) for c in comps]
    cp = Cascade("c", (Einsum("cp", y, (y,), (("m", 4),), reduce_op=None),))
    assert _vector_shape_family([cp] * 2) is None   # no reducing Einsum: left to the scalar path


@pytest.mark.parametrize("kw", [
    {"batch": 4, "prompt_len": 64, "gen_len": 48},
    {"batch": 4, "prompt_len": 64, "gen_len": 48, "attention": "flash", "sparse_kv": 0.5},
])
def test_run_priced_from_arrays_equals_op_by_op(monkeypatch, kw):
    """The whole op table with the array pricing equals the one priced op by op."""
    arch, model, sc = load_arch("h100"), get_model("llama2-7b"), Scenario(**kw)
    fast = simulate(arch, model, sc).columns("ops")
    monkeypatch.setattr(gpu_mod, "FAMILY_MIN", 10 ** 9)
    monkeypatch.setattr(gpu_mod, "prefill_best_gemm", lambda *a, **k: 0)
    slow = simulate(arch, model, sc).columns("ops")
    assert fast.order == slow.order
    for name in fast.order:
        a, b = np.asarray(fast[name]), np.asarray(slow[name])
        assert a.dtype == b.dtype and np.array_equal(a, b), name


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_text_distinct_counts_codes(compiled, dtype, monkeypatch):
    """Unused labels dropped, duplicates merged, codes renumbered - by numpy's count or (a
    long column, forced here) the compiled pass, for 8-, 32- and 64-bit codes; every label
    used once: the very codes."""
    import sim.columns as C

    monkeypatch.setattr(C, "COMPILED_CODES_ROWS", 0 if compiled else 1 << 62)
    t = Text(["a", "b", "a", "c", "d"], np.array([2, 0, 3, 3, 0, 2], dtype=dtype))
    labels, codes = t.distinct()
    assert labels == ["a", "c"]                 # unused b, d dropped; duplicate a merged
    assert codes.tolist() == [0, 0, 1, 1, 0, 0]
    own = np.array([1, 0, 2, 1], dtype=dtype)
    assert Text(["x", "y", "z"], own).distinct()[1] is own
    empty = Text(["a"], np.array([], dtype=dtype))
    assert empty.distinct()[0] == []


def _table(ids, start, end, bound, flops, nbytes):
    n = len(ids)
    cols = {"id": np.asarray(ids), "start_s": np.asarray(start, float),
            "end_s": np.asarray(end, float), "latency_s": np.asarray(end, float) -
            np.asarray(start, float), "roofline_s": np.asarray(bound, float),
            "flops": np.asarray(flops, float), "bytes": np.asarray(nbytes, float),
            "op": np.array(["x"] * n, dtype=object)}
    return Columns(cols, list(cols), n)


def test_invariants_roofline_and_ids():
    trace = trace_model(get_model("llama2-7b"), Scenario(batch=1, prompt_len=8, gen_len=3),
                        compact=True)
    res = simulate(load_arch("h100"), get_model("llama2-7b"),
                   Scenario(batch=1, prompt_len=8, gen_len=3))
    table = res.columns("ops")
    assert set(check_invariants(trace, table).values()) == {"passed"}
    ids = np.asarray(table["id"])
    end = np.asarray(table["end_s"], float)
    start = np.asarray(table["start_s"], float)
    lat = end - start
    bound = np.asarray(table["roofline_s"], float).copy()
    fl, by = np.asarray(table["flops"]), np.asarray(table["bytes"])
    # op 5 below its bound by less than 4 ulps of its end time passes (clock rounding),
    # by more fails, naming the op
    sp = np.spacing(end[5])
    bound[5] = (lat[5] + 2 * sp) / (1 - 1e-9)
    check_invariants(trace, _table(ids, start, end, bound, fl, by))
    bound[5] = (lat[5] + 8 * sp) / (1 - 1e-9)
    with pytest.raises(InvariantError, match=r"op 5 .*below its roofline"):
        check_invariants(trace, _table(ids, start, end, bound, fl, by))
    # one id twice (another missing) fails
    dup = ids.copy()
    dup[1] = 0
    with pytest.raises(InvariantError, match="lost or duplicated"):
        check_invariants(trace, _table(dup, start, end, lat * 0, fl, by))
