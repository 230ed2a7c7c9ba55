"""The Einsum IR derives FLOPs and bytes from ranks, never from typed numbers."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workloads.einsum import Cascade, Einsum, TensorRef, contraction, elementwise
from workloads.tracer import layernorm, softmax

dims = st.integers(min_value=1, max_value=64)


@given(dims, dims, dims, st.sampled_from(["fp16", "fp32", "int8"]))
def test_gemm_flops_and_bytes(m, n, k, dt):
    e = contraction("g", TensorRef("C", ("m", "n"), dt), TensorRef("A", ("m", "k"), dt),
                    TensorRef("B", ("k", "n"), dt), {"m": m, "n": n, "k": k})
    width = {"fp16": 2, "fp32": 4, "int8": 1}[dt]
    assert e.flops == 2 * m * n * k
    assert e.min_bytes == (m * k + k * n + m * n) * width
    assert e.is_contraction and e.gemm_shape == (1, m, n, k)


def test_gqa_attention_shape():
    sizes = {"b": 2, "g": 8, "r": 4, "s": 1, "n": 100, "e": 128}
    e = contraction("qk", TensorRef("S", tuple("bgrsn")), TensorRef("Q", tuple("bgrse")),
                    TensorRef("K", tuple("bgne")), sizes)
    assert e.gemm_shape == (16, 4, 100, 128)
    # K is read once, not once per query head in the group
    assert e.min_bytes == 2 * (2 * 8 * 4 * 128 + 2 * 8 * 100 * 128 + 2 * 8 * 4 * 100)


def test_elementwise_and_cascade_boundary():
    sizes = {"t": 10, "d": 16}
    a = elementwise("x", TensorRef("Y", ("t", "d")), (TensorRef("X", ("t", "d")),), sizes,
                    "copy", unary="gelu")
    assert a.flops == 8 * 160 and not a.is_contraction
    ln = layernorm("ln", "x", 10, 16, "fp16", rms=False)
    assert isinstance(ln, Cascade)
    # compulsory traffic: X in, gamma in, Y out; intermediates stay inside
    assert ln.min_bytes == 2 * 160 + 2 * 16 + 2 * 160
    assert ln.flops > 4 * 160


def test_softmax_counts():
    s = TensorRef("S", ("m", "n"), "fp16")
    sm = softmax("sm", s, {"m": 4, "n": 32}, "n")
    assert sm.flops == 4 * 32 * 5  # max, sub, exp, add, div per element
    assert sm.min_bytes == 2 * 2 * 4 * 32


def test_bad_einsums_rejected():
    with pytest.raises(ValueError, match="no size"):
        Einsum("e", TensorRef("Y", ("m",)), (TensorRef("X", ("q",)),), (("m", 4),))
    with pytest.raises(ValueError, match="positive"):
        Einsum("e", TensorRef("Y", ("m",)), (), (("m", 0),))
    with pytest.raises(ValueError, match="operator"):
        Einsum("e", TensorRef("Y", ("m",)), (), (("m", 2),), map_op="frobnicate")


def test_an_operand_used_twice_is_read_once():
    # g_sq = g * g over 1,000 fp16 elements: 1,000 multiplies; g read once (2 kB), the
    # fp32 output written once (4 kB)
    g = TensorRef("g", ("n",), "fp16")
    sq = elementwise("g_sq", TensorRef("g_sq", ("n",), "fp32"), (g, g), {"n": 1000}, "mul")
    assert sq.flops == 1000
    assert sq.min_bytes == 1000 * 2 + 1000 * 4
