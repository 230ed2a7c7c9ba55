"""Exact datatype emulation: bit patterns, rounding, subnormals, inf/NaN, ties, saturation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kernels_ref.dtypes import (
    FORMATS,
    dequantize_weights,
    from_bits,
    get_format,
    quantize,
    quantize_weights,
    to_bits,
    ulp,
)


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def test_fp16_every_pattern_matches_numpy():
    bits = np.arange(1 << 16, dtype=np.uint64)
    ours = from_bits(bits, "fp16")
    theirs = bits.astype(np.uint16).view(np.float16).astype(np.float64)
    assert _same(ours, theirs)
    finite = np.isfinite(ours)
    assert np.array_equal(to_bits(ours[finite], "fp16"), bits[finite])


def test_fp16_rounding_matches_numpy_at_every_midpoint():
    bits = np.arange(1 << 15, dtype=np.uint64)
    v = np.unique(from_bits(bits, "fp16")[:0x7C00])  # non-negative finite values
    mids = (v[1:] + v[:-1]) / 2
    probes = np.concatenate([mids, -mids, np.nextafter(mids, 0), np.nextafter(mids, 1e9),
                             [65519.99, 65520.0, 1e-8, 2.0 ** -25, 3 * 2.0 ** -26]])
    with np.errstate(over="ignore"):
        expect = probes.astype(np.float16).astype(np.float64)
    # the generic numba path (saturate=False forces nothing; use rz/rne generic via fp16 name)
    from kernels_ref.dtypes import _NO_U, _quantize_float

    out = np.empty_like(probes)
    f = get_format("fp16")
    _quantize_float(probes, out, f.man_bits, f.emin, f.max_finite, f.has_inf, False, 0, _NO_U)
    assert _same(out, expect)
    assert _same(quantize(probes, "fp16"), expect)


@pytest.mark.parametrize("value,bits", [
    (1.0, 0x3F80), (-2.0, 0xC000), (3.3895313892515355e38, 0x7F7F), (2.0 ** -133, 0x0001),
    (2.0 ** -126, 0x0080), (math.inf, 0x7F80), (0.0, 0x0000), (-0.0, 0x8000),
    (1.0 + 2.0 ** -8, 0x3F80),        # tie -> even (down)
    (1.0 + 3 * 2.0 ** -8, 0x3F82),    # tie -> even (up)
    (1.0 + 2.0 ** -8 + 2.0 ** -30, 0x3F81),  # just above the tie
])
def test_bf16_known_patterns(value, bits):
    assert int(to_bits(np.array([value]), "bf16")[0]) == bits
    assert _same(from_bits(np.array([bits]), "bf16"), quantize(np.array([value]), "bf16"))


@pytest.mark.parametrize("dtype,value,bits", [
    ("fp8_e4m3", 448.0, 0x7E), ("fp8_e4m3", -448.0, 0xFE), ("fp8_e4m3", 2.0 ** -9, 0x01),
    ("fp8_e4m3", 2.0 ** -6, 0x08), ("fp8_e4m3", 1.0, 0x38), ("fp8_e4m3", 0.875 * 2 ** -6, 0x07),
    ("fp8_e5m2", 57344.0, 0x7B), ("fp8_e5m2", math.inf, 0x7C), ("fp8_e5m2", 2.0 ** -16, 0x01),
    ("fp8_e5m2", 2.0 ** -14, 0x04), ("fp8_e5m2", 1.0, 0x3C), ("fp8_e5m2", -1.5, 0xBE),
])
def test_fp8_known_patterns(dtype, value, bits):
    assert int(to_bits(np.array([value]), dtype)[0]) == bits
    assert from_bits(np.array([bits]), dtype)[0] == value


def test_fp8_specials_and_overflow():
    # E4M3 has no infinity: S.1111.111 is NaN, overflow goes to NaN (or saturates)
    assert np.isnan(from_bits(np.array([0x7F, 0xFF]), "fp8_e4m3")).all()
    assert from_bits(np.array([0x7E]), "fp8_e4m3")[0] == 448.0
    assert quantize(np.array([464.0]), "fp8_e4m3")[0] == 448.0      # tie to even (448)
    assert np.isnan(quantize(np.array([465.0, math.inf]), "fp8_e4m3")).all()
    assert quantize(np.array([1e6]), "fp8_e4m3", saturate=True)[0] == 448.0
    assert quantize(np.array([-1e6]), "fp8_e4m3", saturate=True)[0] == -448.0
    # E5M2: IEEE-like
    assert quantize(np.array([61440.0]), "fp8_e5m2")[0] == math.inf  # max + half ulp -> inf
    assert quantize(np.array([61439.0]), "fp8_e5m2")[0] == 57344.0
    assert np.isnan(from_bits(np.array([0x7D, 0x7E, 0x7F]), "fp8_e5m2")).all()
    # round toward zero never overflows to inf (IEEE 754 7.4)
    assert quantize(np.array([1e9]), "fp16", "rz")[0] == 65504.0


def test_every_8bit_pattern_roundtrips():
    for dtype in ("fp8_e4m3", "fp8_e5m2"):
        bits = np.arange(256, dtype=np.uint64)
        vals = from_bits(bits, dtype)
        fin = np.isfinite(vals)
        assert np.array_equal(to_bits(vals[fin], dtype), bits[fin])
        assert _same(quantize(vals, dtype), vals)  # representable values are fixed points


def test_subnormals_underflow_and_signed_zero():
    tiny = get_format("fp16").min_subnormal
    assert quantize(np.array([tiny * 0.5]), "fp16")[0] == 0.0          # tie to even (0)
    assert quantize(np.array([tiny * 0.5000001]), "fp16")[0] == tiny
    assert quantize(np.array([tiny * 1.5]), "fp16")[0] == 2 * tiny      # tie to even (2)
    z = quantize(np.array([-tiny * 0.25]), "fp16")[0]
    assert z == 0.0 and math.copysign(1.0, z) == -1.0
    assert quantize(np.array([2.0 ** -140]), "bf16")[0] == 0.0
    assert quantize(np.array([2.0 ** -133]), "bf16")[0] == 2.0 ** -133  # bf16 min subnormal


def test_round_toward_zero_and_stochastic():
    x = np.array([1.0 + 2.0 ** -10 * 1.9, -(1.0 + 2.0 ** -10 * 1.9)])
    assert _same(quantize(x, "fp16", "rz"), [1.0 + 2.0 ** -10, -(1.0 + 2.0 ** -10)])
    # stochastic rounding: unbiased, reproducible from the seed, only neighbouring values
    v = np.full(200_000, 1.0 + 0.3 * 2.0 ** -10)
    a = quantize(v, "fp16", "sr", rng=np.random.default_rng(7))
    b = quantize(v, "fp16", "sr", rng=np.random.default_rng(7))
    assert np.array_equal(a, b)
    assert set(np.unique(a)) == {1.0, 1.0 + 2.0 ** -10}
    assert abs(a.mean() - v[0]) < 4 * 2.0 ** -10 / math.sqrt(v.size)
    with pytest.raises(ValueError):
        quantize(v, "fp16", "sr")


def test_integers_saturate_or_wrap():
    x = np.array([127.5, 128.5, -128.6, 300.0, -2.5, 7.49, float("nan")])
    assert _same(quantize(x, "int8", saturate=True), [127, 127, -128, 127, -2, 7, 0])
    assert _same(quantize(x, "int8"), [-128, -128, 127, 44, -2, 7, 0])  # two's complement wrap
    assert _same(quantize(np.array([7.6, -8.6, 2.5]), "int4", saturate=True), [7, -8, 2])
    assert _same(from_bits(to_bits(np.arange(-8, 8), "int4"), "int4"), np.arange(-8, 8))


def test_ulp_and_unit_roundoff():
    assert ulp(np.array([1.0]), "fp16")[0] == 2.0 ** -10
    assert ulp(np.array([1.0]), "bf16")[0] == 2.0 ** -7
    assert ulp(np.array([0.0]), "fp16")[0] == 2.0 ** -24
    assert ulp(np.array([448.0]), "fp8_e4m3")[0] == 32.0
    assert get_format("fp32").unit_roundoff("rne") == 2.0 ** -24
    assert get_format("fp32").unit_roundoff("rz") == 2.0 ** -23
    assert FORMATS["fp22_e8m13"].man_bits == 13


@pytest.mark.parametrize("dtype,group", [("int8", 0), ("int4", 0), ("int4", 32), ("int8", 48)])
def test_weight_quantization_scales(dtype, group):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((96, 10))
    q, s = quantize_weights(w, dtype, group)
    fmt = get_format(dtype)
    assert q.min() >= fmt.lo and q.max() <= fmt.hi and np.all(q == np.round(q))
    assert s.shape == ((96 + group - 1) // group if group else 1, 10)
    err = np.abs(dequantize_weights(q, s) - w)
    rows = np.repeat(s, group or 96, axis=0)[:96]
    assert np.all(err <= rows / 2 + 1e-12)  # at most half a step per element


def test_ml_dtypes_agree_on_float32_inputs():
    mld = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(50_000) * 10.0 ** rng.uniform(-10, 6, 50_000)).astype(np.float32)
    for name, t in (("bf16", mld.bfloat16), ("fp8_e4m3", mld.float8_e4m3fn),
                    ("fp8_e5m2", mld.float8_e5m2)):
        with np.errstate(over="ignore", invalid="ignore"):
            theirs = x.astype(t).astype(np.float64)
        assert _same(quantize(x.astype(np.float64), name), theirs)


@pytest.mark.parametrize("k,group", [(1376, 128), (100, 32), (130, 64)])
def test_group_scales_when_k_is_not_a_multiple_of_the_group(k, group):
    """Groups are ``group`` rows (the last shorter), as AWQ/GPTQ-style group quantisation lays
    them out: row r uses scale r // group, in quantisation and dequantisation alike."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((k, 6))
    q, s = quantize_weights(w, "int4", group)
    assert s.shape == (-(-k // group), 6)
    own = s[np.arange(k) // group]  # each row's own group scale, by hand
    for r0 in range(0, k, group):  # each group's scale is its own max / 7
        assert np.allclose(s[r0 // group], np.abs(w[r0:r0 + group]).max(axis=0) / 7)
    err = np.abs(dequantize_weights(q, s, group) - w)
    assert np.all(err <= own / 2 + 1e-12)
    with pytest.raises(ValueError):  # scale rows that cannot cover K in groups of ``group``
        dequantize_weights(q, s[:-1], group)
