"""FPGA numerics: the W2A8 2:4-sparse datapath and the int4-KV decode attention against the
float64 references within their derived allowances; a wrong dequantisation scale, a dropped
sparse block or a misplaced 2:4 index fails; `xpusim check` passes on the AccLLM preset."""

import json
import math

import numpy as np
import pytest

from kernels_ref.attention import decode_attention
from kernels_ref.dtypes import dequantize_weights, quantize, quantize_weights
from kernels_ref.gemm import gemm
from kernels_ref.lowbit import (
    compress_n_m,
    decompress_n_m,
    dequantize_kv,
    prune_n_m,
    quantize_kv,
)
from sim.functional.devices.fpga import (
    kv4_allowance,
    kv4_decode_attention,
    lowbit_allowance,
    lowbit_linear,
)
from sim.functional.tolerance import compare
from xpusim.cli import main

T, K, N, G = 3, 512, 48, 128


def _w2a8(seed: int = 0):
    """int8 activations with per-token scales; 2:4-pruned int2 weights with fp16 group scales."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, K))
    x_scale = np.abs(x).max(axis=1) / 127
    xq = quantize(x / x_scale[:, None], "int8", saturate=True)
    w = prune_n_m(rng.standard_normal((K, N)) / math.sqrt(K))
    q, scales = quantize_weights(w, "int2", G)
    scales = quantize(scales, "fp16")
    vals, pos = compress_n_m(q)
    w_exact = dequantize_weights(q, scales)
    ref = gemm(x_scale[:, None] * xq, w_exact)
    allow = lowbit_allowance(xq, x_scale, np.abs(w_exact), G)
    return xq, x_scale, vals, pos, scales, ref, allow


def test_prune_and_compress_round_trip():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((16, 5))
    p = prune_n_m(w)
    groups = (p.reshape(4, 4, 5) != 0).sum(axis=1)
    assert (groups == 2).all()
    # the kept two are the largest magnitudes of each group of four
    g = np.abs(w.reshape(4, 4, 5))
    kept = np.abs(p.reshape(4, 4, 5))
    assert np.allclose(np.sort(kept, axis=1)[:, 2:], np.sort(g, axis=1)[:, 2:])
    vals, pos = compress_n_m(p)
    assert vals.shape == (8, 5) and pos.max() <= 3
    assert np.array_equal(decompress_n_m(vals, pos), p)
    with pytest.raises(ValueError, match="more than 2"):
        compress_n_m(w)


def test_kv_group_quantization_by_hand():
    x = np.array([[0.5, -1.0, 0.25, 2.0]])
    q, s = quantize_kv(x, "int4", group=2)
    assert np.allclose(s, [[1.0 / 7, 2.0 / 7]])
    assert np.array_equal(q, [[4.0, -7.0, 1.0, 7.0]])   # 3.5 -> 4 (RNE), 0.875 -> 1
    assert np.allclose(dequantize_kv(q, s), [[4 / 7, -1.0, 2 / 7, 2.0]])


def test_w2a8_sparse_datapath_matches_reference():
    xq, xs, vals, pos, scales, ref, allow = _w2a8()
    y = lowbit_linear(xq, xs, vals, pos, scales, group=G)
    stats = compare(y, ref, "fp32", allow)
    assert stats["passed"], stats
    assert stats["max_abs"] > 0          # the fp32 roundings are real, not a copy of the ref


def test_wrong_dequant_scale_fails():
    xq, xs, vals, pos, scales, ref, allow = _w2a8()
    bad = scales.copy()
    bad[1, 7] *= 2                        # one group's scale off by a factor of two
    stats = compare(lowbit_linear(xq, xs, vals, pos, bad, group=G), ref, "fp32", allow)
    assert not stats["passed"]
    shifted = np.roll(scales, 1, axis=0)  # scales applied to the neighbouring group
    assert not compare(lowbit_linear(xq, xs, vals, pos, shifted, group=G), ref, "fp32",
                       allow)["passed"]


def test_dropped_sparse_block_fails():
    xq, xs, vals, pos, scales, ref, allow = _w2a8()
    dropped = vals.copy()
    dropped[20:22, 3] = 0                 # one 2:4 block's kept pair never reaches the engine
    assert (vals[20:22, 3] != 0).any()
    assert not compare(lowbit_linear(xq, xs, dropped, pos, scales, group=G), ref, "fp32",
                       allow)["passed"]
    moved = pos.copy()
    moved[21, 3] = (moved[21, 3] + 1) % 4  # a kept weight placed at the wrong position
    moved[20, 3] = (moved[20, 3] + 1) % 4 if moved[20, 3] + 1 != moved[21, 3] else moved[20, 3]
    assert not compare(lowbit_linear(xq, xs, vals, moved, scales, group=G), ref, "fp32",
                       allow)["passed"]


def _kv4(seed: int = 0, heads: int = 4, groups: int = 2, n: int = 96, d: int = 64):
    rng = np.random.default_rng(seed)
    q = quantize(rng.standard_normal((heads, d)), "fp16")
    kq, ks = quantize_kv(rng.standard_normal((groups, n, d)), "int4", 32)
    vq, vs = quantize_kv(rng.standard_normal((groups, n, d)), "int4", 32)
    ks, vs = quantize(ks, "fp16"), quantize(vs, "fp16")
    k, v = dequantize_kv(kq, ks), dequantize_kv(vq, vs)
    scale = 1 / math.sqrt(d)
    ref = decode_attention(q[None], k[None], v[None], np.array([n]), scale)[0]
    return q, kq, ks, vq, vs, k, v, scale, ref


def test_int4_kv_decode_attention_matches_reference():
    q, kq, ks, vq, vs, k, v, scale, ref = _kv4()
    y = kv4_decode_attention(q, kq, ks, vq, vs, scale)
    allow = kv4_allowance(q, k, v, scale)
    stats = compare(y, ref, "fp32", allow)
    assert stats["passed"], stats
    bad = vs.copy()
    bad[0, 5, 1] *= 2                     # one token's V scale doubled
    assert not compare(kv4_decode_attention(q, kq, ks, vq, bad, scale), ref, "fp32",
                       allow)["passed"]


def test_check_cli_passes_on_accllm(capsys):
    rc = main(["check", "--arch", "accllm-u280", "--weights", "int2", "--group", "128",
               "--kv-dtype", "int4", "--max-width", "512", "--prompt", "32", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["passed"]
    rows = {(r["phase"], r["op"]): r for r in out["ops"]}
    assert rows[("decode", "ffn_down")]["detail"]["mapping"] == "fpga groups"
    assert rows[("decode", "ffn_down")]["detail"]["group"] == 128


def test_check_fails_when_the_plan_drops_a_k_group():
    from arch import load_arch
    from sim.functional.layer import CheckSpec, check_layer
    from workloads.models import get_model

    def drop(op, plan):
        if op.name != "o_proj":
            return plan
        keep = plan.items[plan.items[:, 5] != G]        # the second group of 128 is skipped
        return plan.mutated(items=keep)

    spec = CheckSpec(prompt=16, phases=("decode",), weights="int2", group=G, kv_dtype="int4",
                     max_width=512, ops=("o_proj",))
    arch, model = load_arch("accllm-u280"), get_model("llama2-7b")
    assert check_layer(arch, model, spec).passed
    assert not check_layer(arch, model, spec, plan_hook=drop).passed
