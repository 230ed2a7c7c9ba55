"""Error metrics and the documented tolerance of ``xpusim check``.

An op's device result ``y`` is compared with the float64 reference ``r`` computed by
``kernels_ref`` on the *same* (already rounded) inputs. Per element:

* ``abs = |y - r|``; ``rel = abs / max(|r|, smallest normal of the output datatype)``;
* the *allowance* ``A`` — the worst-case error the op may accumulate before its output is
  rounded, derived from the device's declared numerics: for a reduction tree whose longest path
  has ``d_l`` roundings in format ``l`` (unit roundoff ``u_l``),
  ``A = gamma * S`` with ``gamma = s / (1 - s)``, ``s = sum_l d_l u_l`` and ``S`` the sum of
  the magnitudes of the terms (``|A| @ |B|`` for a contraction; Higham, *Accuracy and Stability
  of Numerical Algorithms*, 2nd ed., §3.1 and §4.2). Vector ops use the analogous first-order
  bounds written next to each op in ``sim/functional/layer.py``;
* ``ulp = max(0, abs - A) / ulp_out(r)`` — the error left after the allowance, in units in the
  last place of the output datatype at ``r``.

An op passes when every element is finite where the reference is, and ``max ulp`` is at most
:data:`TOLERANCE_ULPS` of its output datatype: 1 ulp for floating-point outputs (round-to-
nearest gives at most 0.5 ulp of the pre-rounding value; the other 0.5 covers the ulp doubling
at a binade boundary), 0.5 for integer outputs. Transcendental functions (exp, tanh, erf,
rsqrt) of a vector unit are allowed :data:`TRANSCENDENTAL_ULPS` units of roundoff each.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from numba import njit

from kernels_ref.dtypes import IntFormat, get_format
from sim.functional.formats import Rounder

TOLERANCE_ULPS: dict[str, float] = {
    "fp64": 1.0, "fp32": 1.0, "tf32": 1.0, "fp22_e8m13": 1.0, "bf16": 1.0, "fp16": 1.0,
    "fp8_e4m3": 1.0, "fp8_e5m2": 1.0, "int32": 0.5, "int16": 0.5, "int8": 0.5, "int4": 0.5,
    "int2": 0.5,
}
TRANSCENDENTAL_ULPS = 4.0


def tolerance_for(dtype: str) -> float:
    """Allowed ulps (after the allowance) for an output of ``dtype``."""
    return TOLERANCE_ULPS[get_format(dtype).name]


def gamma(levels: list[tuple[int, Rounder]]) -> float:
    """Relative error bound of a reduction tree: s/(1-s), s = sum of depth x unit roundoff."""
    s = float(sum(max(0, d) * r.unit_roundoff() for d, r in levels))
    return s / (1.0 - s) if s < 0.5 else float("inf")


def abs_gemm(a: np.ndarray, b: np.ndarray, b_abs32: np.ndarray | None = None) -> np.ndarray:
    """``|A| @ |B|`` for [X, M, K] x [X, K, N], in float32 BLAS with a margin covering its own
    rounding (K * 2^-24 relative, doubled). ``b_abs32``: |B| in float32 when already known."""
    k = a.shape[-1]
    a32 = a.astype(np.float32)
    np.abs(a32, out=a32)
    if b_abs32 is None:
        b32 = b.astype(np.float32)
        np.abs(b32, out=b32)
    else:
        b32 = b_abs32
    s = np.matmul(a32, b32).astype(np.float64)
    s *= 1.0 + 2.0 * k * 2.0 ** -24
    return s


@dataclass
class OpError:
    """One row of the check's error table."""

    op: str
    device: str
    dtype: str
    max_abs: float
    max_rel: float
    max_ulp: float
    tolerance: float
    passed: bool
    phase: str = ""
    elements: int = 0
    nonfinite: int = 0
    max_ulp_raw: float = 0.0
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@njit(cache=True)
def _stats(y, r, allow, man_bits, emin, max_finite, is_int, floor):
    """One pass: (max abs, max rel, max excess ulp, max raw ulp, non-finite mismatches)."""
    max_abs = 0.0
    max_rel = 0.0
    max_ulp = 0.0
    max_raw = 0.0
    bad = 0
    for i in range(r.size):
        yi = y[i]
        ri = r[i]
        if not np.isfinite(ri):
            if not (yi == ri or (np.isnan(yi) and np.isnan(ri))):
                bad += 1
            continue
        if not np.isfinite(yi):
            bad += 1
            continue
        err = abs(yi - ri)
        if is_int:
            u = 1.0
        else:
            e = math.frexp(min(abs(ri), max_finite))[1] - 1
            u = math.ldexp(1.0, max(e, emin) - man_bits)
        max_abs = max(max_abs, err)
        max_rel = max(max_rel, err / max(abs(ri), floor))
        max_ulp = max(max_ulp, max(err - allow[i], 0.0) / u)
        max_raw = max(max_raw, err / u)
    return max_abs, max_rel, max_ulp, max_raw, bad


def compare(y: np.ndarray, r: np.ndarray, dtype: str, allowance: np.ndarray | float
            ) -> dict:
    """Error statistics of ``y`` against ``r`` for an output datatype ``dtype``."""
    fmt = get_format(dtype)
    r = np.asarray(r, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.size != r.size:
        raise ValueError(f"result has {y.size} elements, reference {r.size}")
    allow = np.ascontiguousarray(np.broadcast_to(np.asarray(allowance, dtype=np.float64),
                                                 r.shape)).reshape(-1)
    r = np.ascontiguousarray(r).reshape(-1)
    y = np.ascontiguousarray(y).reshape(-1)
    is_int = isinstance(fmt, IntFormat)
    if is_int:
        man, emin, top, floor = 0, 0, float(fmt.hi), 1.0
    else:
        man, emin, top, floor = fmt.man_bits, fmt.emin, fmt.max_finite, fmt.min_normal
    max_abs, max_rel, max_ulp, raw, bad = _stats(y, r, allow, man, emin, top, is_int, floor)
    inf = float("inf")
    if bad:
        max_abs = max_rel = max_ulp = raw = inf
    tol = tolerance_for(dtype)
    return {"max_abs": max_abs, "max_rel": max_rel, "max_ulp": max_ulp, "max_ulp_raw": raw,
            "tolerance": tol, "passed": bool(bad == 0 and max_ulp <= tol),
            "elements": int(r.size), "nonfinite": int(bad)}
