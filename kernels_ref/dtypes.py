"""Exact emulation of the datatypes accelerators compute in.

Every value is carried as a float64 that is exactly representable in the target format, so a
float64 array "holds" bf16, fp16, fp8 or int4 data without loss. :func:`quantize` maps any
float64 to the format with

* round-to-nearest-even (``rne``, IEEE 754 default), round-toward-zero (``rz``, what several
  tensor-core accumulators do) or stochastic rounding (``sr``: round up with probability equal to
  the discarded fraction, from caller-supplied uniforms so results are reproducible);
* gradual underflow (subnormals) down to the format's smallest subnormal;
* overflow to ``inf`` (IEEE formats), to NaN (``fp8_e4m3``, which has no infinity: OCP FP8
  spec v1.0, "E4M3FN"), or to the largest finite value when ``saturate=True`` (and always under
  ``rz``, as IEEE 754 §7.4 prescribes for round-toward-zero).

Integer formats (``int8``, ``int4``, ``int32`` ...) round to an integer the same way and then
saturate or wrap (two's complement). :func:`to_bits` / :func:`from_bits` give the bit patterns.

Format facts: IEEE 754-2019 (binary32, binary16); bfloat16 = binary32's top 16 bits (8-bit
exponent, 7-bit fraction); OCP 8-bit Floating Point Specification v1.0 (2023) for E4M3 (bias 7,
max 448, NaN = S.1111.111, no inf) and E5M2 (bias 15, max 57344, IEEE-style inf/NaN); NVIDIA
TF32 (8-bit exponent, 10-bit fraction); ``fp22_e8m13`` is the reduced-precision accumulator that
FP8 tensor-core GEMMs on Hopper keep (DeepSeek-V3 technical report, arXiv 2412.19437, §3.3.2:
"around 14 bits" of accumulation precision), 8-bit exponent and 13-bit fraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

ROUNDINGS = ("rne", "rz", "sr")
_MODE = {"rne": 0, "rz": 1, "sr": 2}


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: ``exp_bits`` exponent bits, ``man_bits`` fraction bits.

    ``ieee_special``: the all-ones exponent encodes inf/NaN (IEEE). Otherwise (``fp8_e4m3``) only
    the all-ones pattern S.1111.111 is NaN and there is no infinity.
    """

    name: str
    exp_bits: int
    man_bits: int
    ieee_special: bool = True

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number."""
        top = (1 << self.exp_bits) - 1
        return (top - 1 if self.ieee_special else top) - self.bias

    @property
    def max_finite(self) -> float:
        if self.ieee_special:
            return math.ldexp(2.0 - math.ldexp(1.0, -self.man_bits), self.emax)
        # the top exponent keeps every mantissa but all-ones (NaN)
        return math.ldexp(2.0 - math.ldexp(2.0, -self.man_bits), self.emax)

    @property
    def min_normal(self) -> float:
        return math.ldexp(1.0, self.emin)

    @property
    def min_subnormal(self) -> float:
        return math.ldexp(1.0, self.emin - self.man_bits)

    @property
    def has_inf(self) -> bool:
        return self.ieee_special

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def is_float(self) -> bool:
        return True

    def unit_roundoff(self, rounding: str = "rne") -> float:
        """Largest relative error of one rounding (normal range): 2^-p (rne), 2^(1-p) (rz, sr)."""
        p = self.man_bits + 1
        return math.ldexp(1.0, -p) if rounding == "rne" else math.ldexp(1.0, 1 - p)


@dataclass(frozen=True)
class IntFormat:
    """A two's-complement (or unsigned) integer format of ``bits`` bits."""

    name: str
    bits: int
    signed: bool = True

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def max_finite(self) -> float:
        return float(self.hi)

    @property
    def is_float(self) -> bool:
        return False

    def unit_roundoff(self, rounding: str = "rne") -> float:
        return 0.0


FORMATS: dict[str, FloatFormat | IntFormat] = {
    "fp64": FloatFormat("fp64", 11, 52),
    "fp32": FloatFormat("fp32", 8, 23),
    "tf32": FloatFormat("tf32", 8, 10),
    "fp22_e8m13": FloatFormat("fp22_e8m13", 8, 13),
    "bf16": FloatFormat("bf16", 8, 7),
    "fp16": FloatFormat("fp16", 5, 10),
    "fp8_e4m3": FloatFormat("fp8_e4m3", 4, 3, ieee_special=False),
    "fp8_e5m2": FloatFormat("fp8_e5m2", 5, 2),
    "int32": IntFormat("int32", 32),
    "int16": IntFormat("int16", 16),
    "int8": IntFormat("int8", 8),
    "int4": IntFormat("int4", 4),
    "int2": IntFormat("int2", 2),
    "uint8": IntFormat("uint8", 8, signed=False),
    "uint4": IntFormat("uint4", 4, signed=False),
}
ALIASES = {"fp8": "fp8_e4m3", "e4m3": "fp8_e4m3", "e5m2": "fp8_e5m2", "half": "fp16",
           "float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "float64": "fp64",
           "fp22": "fp22_e8m13"}


def get_format(name: str) -> FloatFormat | IntFormat:
    """The format called ``name`` (or an alias); ``KeyError`` names the known ones."""
    key = ALIASES.get(name, name)
    try:
        return FORMATS[key]
    except KeyError:
        raise KeyError(f"unknown datatype '{name}' (known: {', '.join(FORMATS)})") from None


# --- the numba core --------------------------------------------------------------------------
@njit(cache=True)
def round_float(x: float, man_bits: int, emin: int, max_finite: float, has_inf: bool,
                saturate: bool, mode: int, u: float) -> float:
    """``x`` rounded to a float format (see module doc). ``mode`` 0 rne, 1 rz, 2 stochastic with
    uniform ``u`` in [0, 1)."""
    if x != x or x == 0.0:
        return x
    ax = abs(x)
    if ax == np.inf:
        if has_inf and not saturate:
            return x
        if saturate:
            return math.copysign(max_finite, x)
        return np.nan
    e = math.frexp(ax)[1] - 1  # ax in [2^e, 2^(e+1))
    if e < emin:
        e = emin
    q = math.ldexp(1.0, e - man_bits)
    r = ax / q  # exact: q is a power of two
    if mode == 0:
        n = np.rint(r)  # ties to even
    elif mode == 1:
        n = math.floor(r)
    else:
        n = math.floor(r + u)
    y = n * q
    if y > max_finite:
        if saturate or mode == 1:
            y = max_finite
        elif has_inf:
            y = np.inf
        else:
            return np.nan
    return math.copysign(y, x)


@njit(cache=True)
def round_int(x: float, lo: float, hi: float, saturate: bool, mode: int, u: float) -> float:
    """``x`` rounded to an integer in [lo, hi]; outside it saturates or wraps (two's complement).
    NaN maps to 0 (what hardware conversion instructions return, e.g. cvt.rni.s8)."""
    if x != x:
        return 0.0
    if mode == 0:
        n = np.rint(x)
    elif mode == 1:
        n = np.trunc(x)
    else:
        n = math.floor(x + u)
    if n < lo or n > hi:
        if saturate or abs(n) == np.inf:
            return lo if n < lo else hi
        span = hi - lo + 1.0
        n = lo + ((n - lo) % span)
    return n


@njit(cache=True)
def round_array(x, man_bits, emin, max_finite, has_inf, saturate, mode):
    """Round the contiguous float64 array ``x`` in place (``mode`` 0 rne, 1 rz). Values in the
    format's normal range are rounded on their bit patterns in a branch-free loop (rne: add half
    an ulp minus one plus the kept lowest bit, then clear the dropped bits; rz: clear them);
    zeros, subnormals, overflow and non-finite values, which that loop leaves as they are, then
    take :func:`round_float`."""
    n = x.size
    shift = 52 - man_bits
    half = (np.int64(1) << np.int64(shift - 1)) - np.int64(1)
    mask = ~((np.int64(1) << np.int64(shift)) - np.int64(1))
    lo = math.ldexp(1.0, emin)
    bits = x.view(np.int64)
    outside = 0
    for j in range(n):
        b = bits[j]
        av = abs(x[j])
        inside = (av >= lo) & (av <= max_finite)
        if mode == 0:
            r = (b + half + ((b >> np.int64(shift)) & np.int64(1))) & mask
        else:
            r = b & mask
        bits[j] = r if inside else b
        outside += np.int64(not inside)
    if outside:
        for j in range(n):
            av = abs(x[j])
            if not ((av >= lo) & (av <= max_finite)):
                x[j] = round_float(x[j], man_bits, emin, max_finite, has_inf, saturate, mode,
                                   0.0)


@njit(cache=True)
def _quantize_float(x, out, man_bits, emin, max_finite, has_inf, saturate, mode, u):
    for i in range(x.size):
        out[i] = round_float(x[i], man_bits, emin, max_finite, has_inf, saturate, mode,
                             u[i] if mode == 2 else 0.0)


@njit(cache=True)
def _quantize_int(x, out, lo, hi, saturate, mode, u):
    for i in range(x.size):
        out[i] = round_int(x[i], lo, hi, saturate, mode, u[i] if mode == 2 else 0.0)


@njit(cache=True)
def _to_fp32(x):
    """Round to fp32 in place: the float32 conversion is IEEE round-to-nearest-even."""
    for j in range(x.size):
        x[j] = np.float64(np.float32(x[j]))


_NO_U = np.zeros(1)


def format_params(fmt: FloatFormat) -> tuple[int, int, float, bool]:
    """(man_bits, emin, max_finite, has_inf) as the numba kernels take them."""
    return fmt.man_bits, fmt.emin, fmt.max_finite, fmt.has_inf


def quantize(x, dtype: str, rounding: str = "rne", saturate: bool = False,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """``x`` rounded to ``dtype``, returned as float64 (same shape).

    ``rounding`` is ``rne``, ``rz`` or ``sr``; stochastic rounding draws its uniforms from
    ``rng`` (required, so results are reproducible from a seed). ``fp64`` returns a copy.
    """
    fmt = get_format(dtype)
    if rounding not in _MODE:
        raise ValueError(f"unknown rounding '{rounding}' (expected one of {', '.join(ROUNDINGS)})")
    arr = np.asarray(x)
    shape = arr.shape
    mode = _MODE[rounding]
    if mode != 2 and not isinstance(fmt, IntFormat):  # one copy, rounded in place
        out = np.array(arr, dtype=np.float64, order="C", copy=True).reshape(-1)
        if fmt.name == "fp32" and mode == 0 and not saturate:
            _to_fp32(out)
        elif fmt.name != "fp64":
            round_array(out, fmt.man_bits, fmt.emin, fmt.max_finite, fmt.has_inf, saturate,
                        mode)
        return out.reshape(shape)
    flat = np.ascontiguousarray(arr, dtype=np.float64).reshape(-1)
    out = np.empty_like(flat)
    if mode == 2:
        if rng is None:
            raise ValueError("stochastic rounding needs rng (a numpy Generator)")
        u = rng.random(flat.size)
    else:
        u = _NO_U
    if isinstance(fmt, IntFormat):
        _quantize_int(flat, out, float(fmt.lo), float(fmt.hi), saturate, mode, u)
    elif fmt.name == "fp64":
        out[:] = flat
    else:
        _quantize_float(flat, out, fmt.man_bits, fmt.emin, fmt.max_finite, fmt.has_inf,
                        saturate, mode, u)
    return out.reshape(shape)


def representable(x, dtype: str) -> np.ndarray:
    """Boolean mask: which elements of ``x`` are exactly values of ``dtype`` (NaN counts)."""
    arr = np.asarray(x, dtype=np.float64)
    q = quantize(arr, dtype)
    return (q == arr) | (np.isnan(q) & np.isnan(arr))


def ulp(x, dtype: str) -> np.ndarray:
    """Spacing of ``dtype`` at the magnitude of ``x`` (the gap above |x| within its binade; the
    subnormal spacing below the smallest normal; the top binade's spacing beyond the largest
    finite value). Integers: 1."""
    fmt = get_format(dtype)
    ax = np.abs(np.asarray(x, dtype=np.float64))
    if isinstance(fmt, IntFormat):
        return np.ones_like(ax)
    finite = np.minimum(np.where(np.isfinite(ax), ax, fmt.max_finite), fmt.max_finite)
    _, e = np.frexp(finite)
    e = np.where(finite > 0, np.maximum(e - 1, fmt.emin), fmt.emin)
    return np.ldexp(1.0, e - fmt.man_bits)


# --- bit patterns ----------------------------------------------------------------------------
def to_bits(x, dtype: str) -> np.ndarray:
    """The bit patterns (uint64) of ``x`` rounded to ``dtype`` (RNE). NaN encodes as the
    canonical quiet NaN (IEEE) or S.1111.111 (E4M3). Integers: two's complement in ``bits``."""
    fmt = get_format(dtype)
    q = quantize(x, dtype)
    if isinstance(fmt, IntFormat):
        return (q.astype(np.int64) & ((1 << fmt.bits) - 1)).astype(np.uint64)
    E, M = fmt.exp_bits, fmt.man_bits
    sign = np.signbit(q).astype(np.uint64) << np.uint64(E + M)
    a = np.abs(q)
    out = np.zeros(q.shape, dtype=np.uint64)
    nan = np.isnan(q)
    inf = np.isinf(q)
    fin = ~(nan | inf)
    normal = fin & (a >= fmt.min_normal)
    sub = fin & ~normal
    _, e = np.frexp(np.where(normal, a, 1.0))
    e = e - 1
    exp_field = (e + fmt.bias).astype(np.int64)
    man_n = np.where(normal, np.ldexp(a, -e) - 1.0, 0.0) * (1 << M)
    out[normal] = ((exp_field[normal].astype(np.uint64) << np.uint64(M))
                   | man_n[normal].astype(np.uint64))
    man_s = np.ldexp(np.where(sub, a, 0.0), -(fmt.emin - M))
    out[sub] = man_s[sub].astype(np.uint64)
    top = np.uint64((1 << E) - 1)
    if fmt.ieee_special:
        out[inf] = top << np.uint64(M)
        out[nan] = (top << np.uint64(M)) | np.uint64(1 << (M - 1))
    else:
        out[nan] = (top << np.uint64(M)) | np.uint64((1 << M) - 1)
    return out | np.where(nan, np.uint64(0), sign)


def from_bits(bits, dtype: str) -> np.ndarray:
    """Values (float64) of the bit patterns ``bits`` read as ``dtype``."""
    fmt = get_format(dtype)
    b = np.asarray(bits).astype(np.uint64)
    if isinstance(fmt, IntFormat):
        v = (b & np.uint64((1 << fmt.bits) - 1)).astype(np.int64)
        if fmt.signed:
            v = np.where(v >= (1 << (fmt.bits - 1)), v - (1 << fmt.bits), v)
        return v.astype(np.float64)
    E, M = fmt.exp_bits, fmt.man_bits
    s = ((b >> np.uint64(E + M)) & np.uint64(1)).astype(np.int64)
    e = ((b >> np.uint64(M)) & np.uint64((1 << E) - 1)).astype(np.int64)
    m = (b & np.uint64((1 << M) - 1)).astype(np.float64)
    val = np.where(e == 0, np.ldexp(m, fmt.emin - M),
                   np.ldexp(1.0 + m / (1 << M), e - fmt.bias))
    top = (1 << E) - 1
    if fmt.ieee_special:
        val = np.where(e == top, np.where(m == 0, np.inf, np.nan), val)
    else:
        val = np.where((e == top) & (m == (1 << M) - 1), np.nan, val)
    return np.where(s == 1, -val, val)


# --- integer quantization with scales ------------------------------------------------------
def quantize_weights(w: np.ndarray, dtype: str = "int8", group: int = 0,
                     axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric weight quantization of ``w`` [K, N] (reduction rank first).

    ``group == 0``: one scale per output channel (column ``n``); otherwise one scale per group of
    ``group`` consecutive rows of ``k`` per column (the last group may be shorter). Scale =
    max|w| / qmax of the group, integer values = RNE(w / scale) saturated. Returns (q [K, N]
    integer values in float64, scales [ceil(K / group) or 1, N]).
    """
    fmt = get_format(dtype)
    if not isinstance(fmt, IntFormat):
        raise ValueError(f"quantize_weights needs an integer dtype, got '{dtype}'")
    if axis != 0:
        raise ValueError("weights are [K, N] with the reduction rank first")
    w = np.asarray(w, dtype=np.float64)
    k, n = w.shape
    g = group or k
    groups = -(-k // g)
    amax = np.stack([np.abs(w[i * g:(i + 1) * g]).max(axis=0) for i in range(groups)])
    scales = np.where(amax > 0, amax / fmt.hi, 1.0)
    q = quantize(w / _expand(scales, k, g), dtype, saturate=True)
    return q, scales


def _expand(scales: np.ndarray, k: int, group: int = 0) -> np.ndarray:
    """Per-row scales [K, N] from per-group scales [G, N]: groups of ``group`` rows (the last
    may be shorter), or of ceil(K/G) rows when ``group`` is 0."""
    g = group or -(-k // scales.shape[0])
    if -(-k // g) != scales.shape[0]:
        raise ValueError(f"{scales.shape[0]} scale rows do not cover K={k} in groups of {g}")
    return np.repeat(scales, g, axis=0)[:k]


def dequantize_weights(q: np.ndarray, scales: np.ndarray, group: int = 0) -> np.ndarray:
    """float64 weights ``q * scale`` (exact: the products are computed in float64). ``group``:
    rows per scale group as :func:`quantize_weights` used it; 0 infers ceil(K/G), which is the
    same whenever K is a multiple of the group."""
    return q * _expand(scales, q.shape[0], group)
