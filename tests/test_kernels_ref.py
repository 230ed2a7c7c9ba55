"""Every reference kernel against its float64 numpy form (small shapes: compile once)."""

from __future__ import annotations

import numpy as np
import pytest

import kernels_ref.numpy_forms as F
from kernels_ref import attention as A
from kernels_ref import elementwise as E
from kernels_ref import gemm as G
from kernels_ref import moe as M
from kernels_ref import ssm as S
from kernels_ref.dtypes import dequantize_weights, quantize_weights

RNG = np.random.default_rng(0)


def close(a, b, tol=1e-12):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_gemm_family():
    a = RNG.standard_normal((37, 70))
    b = RNG.standard_normal((70, 301))  # not multiples of the tiles, odd row count
    close(G.gemm_naive(a, b), a @ b)
    close(G.gemm(a, b), a @ b)
    x = RNG.standard_normal((3, 5, 70))
    y = RNG.standard_normal((3, 70, 9))
    close(G.batched_gemm(x, y), x @ y)
    v = RNG.standard_normal(70)
    close(G.gemv(v, b), v @ b)
    close(G.gemv(v[:3].copy(), b[:3].copy()), v[:3] @ b[:3])  # fewer rows than chunks


@pytest.mark.parametrize("dtype,group", [("int8", 0), ("int4", 16)])
def test_weight_only_and_int_gemm(dtype, group):
    x = RNG.standard_normal((4, 64))
    w = RNG.standard_normal((64, 12))
    q, s = quantize_weights(w, dtype, group)
    close(G.weight_only_gemm(x, q, s), x @ dequantize_weights(q, s))
    ai = np.round(RNG.uniform(-128, 127, (5, 64)))
    assert np.array_equal(G.int_gemm(ai, q), (ai.astype(np.int64) @ q.astype(np.int64)))


def test_norms_and_activations():
    x = RNG.standard_normal((6, 48)) * 3
    g, beta = RNG.standard_normal(48), RNG.standard_normal(48)
    close(E.layernorm(x, g, beta, 1e-5), F.layernorm(x, g, beta, 1e-5))
    close(E.rmsnorm(x, g, 1e-6), F.rmsnorm(x, g, 1e-6))
    close(E.gelu_tanh(x), F.gelu_tanh(x))
    close(E.gelu_erf(x), F.gelu_erf(x))
    close(E.silu(x), F.silu(x))
    close(E.relu(x), np.maximum(x, 0))
    close(E.swiglu(x, x[::-1].copy()), F.swiglu(x, x[::-1]))
    with pytest.raises(ValueError):
        E.activation("nope", x)


def test_softmax_naive_and_online():
    x = RNG.standard_normal((5, 150)) * 20
    x[1, 7:] = -np.inf  # masked tail
    x[2, :70] = -np.inf  # a fully masked leading block
    close(E.softmax_naive(x), F.softmax(x))
    close(E.softmax_online(x), F.softmax(x))
    inc = np.arange(40, dtype=np.float64)[None, :]  # max grows every step: every rescale
    close(E.softmax_online(inc), F.softmax(inc))


def test_rope_is_a_rotation():
    x = RNG.standard_normal((4, 3, 16))
    cos, sin = E.rope_tables(np.arange(4) + 5, 16)
    y = E.rope(x, cos, sin)
    close(y, F.rope(x, cos, sin))
    close(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1))  # norms preserved


@pytest.mark.parametrize("causal", [False, True])
def test_attention_cascades_agree(causal):
    q = RNG.standard_normal((8, 6, 16))
    k = RNG.standard_normal((2, 11, 16)) * 2  # GQA: 4 query heads per KV head
    v = RNG.standard_normal((2, 11, 16))
    ref = F.attention(q, k, v, 0.3, causal)
    close(A.attention_3pass(q, k, v, 0.3, causal), ref)
    close(A.attention_2pass(q, k, v, 0.3, causal), ref)
    for block in (1, 4, 64):
        close(A.attention_1pass(q, k, v, 0.3, causal, block), ref)


def test_decode_attention_over_kv_cache():
    q = RNG.standard_normal((2, 4, 8))
    kc = RNG.standard_normal((2, 2, 10, 8))
    vc = RNG.standard_normal((2, 2, 10, 8))
    lengths = np.array([10, 6])
    out = A.decode_attention(q, kc, vc, lengths, 0.5)
    for b in range(2):
        n = lengths[b]
        ref = F.attention(q[b][:, None, :], kc[b, :, :n], vc[b, :, :n], 0.5, False)[:, 0]
        close(out[b], ref)


def test_moe_routing_and_ffn():
    t, d, f, e, k = 7, 8, 6, 4, 2
    x = RNG.standard_normal((t, d))
    logits = RNG.standard_normal((t, e))
    idx, w = M.moe_gate(logits, k)
    p = F.softmax(logits)
    assert np.array_equal(idx[:, 0], p.argmax(axis=1))
    close(w.sum(axis=1), np.ones(t))
    order, counts, offsets = M.moe_dispatch(idx, e)
    assert counts.sum() == t * k and np.all(np.diff(idx.reshape(-1)[order]) >= 0)
    w_up = RNG.standard_normal((e, d, 2 * f))
    w_down = RNG.standard_normal((e, f, d))
    close(M.moe_ffn(x, idx, w, w_up, w_down), F.moe_ffn_dense(x, idx, w, w_up, w_down))
    w_up1 = RNG.standard_normal((e, d, f))
    close(M.moe_ffn(x, idx, w, w_up1, w_down, "relu"),
          F.moe_ffn_dense(x, idx, w, w_up1, w_down, "relu"))


@pytest.mark.parametrize("gated", [False, True])
def test_selective_scan(gated):
    b, d, n, length = 2, 3, 4, 9
    u = RNG.standard_normal((b, d, length))
    delta = RNG.standard_normal((b, d, length))
    a = -np.exp(RNG.standard_normal((d, n)))
    bb = RNG.standard_normal((b, n, length))
    cc = RNG.standard_normal((b, n, length))
    dd = RNG.standard_normal(d)
    z = RNG.standard_normal((b, d, length)) if gated else np.zeros((0, 0, 0))
    bias = RNG.standard_normal(d)
    close(S.selective_scan(u, delta, a, bb, cc, dd, z, bias, True),
          F.selective_scan(u, delta, a, bb, cc, dd, z, bias, True), 1e-11)
