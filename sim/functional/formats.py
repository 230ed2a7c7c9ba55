"""Rounding descriptors the functional kernels take: a datatype, a rounding mode, saturation.

``Rounder(dtype, rounding, saturate)`` turns into the plain tuple ``code`` that numba kernels
read with :func:`apply`; fp32 round-to-nearest-even and round-toward-zero have fast paths (a
float32 cast, then one step toward zero when the cast rounded away from it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from kernels_ref.dtypes import (
    IntFormat,
    get_format,
    quantize,
    round_array,
    round_float,
    round_int,
)

EXACT, GENERIC_FLOAT, INTEGER, FP32_RNE, FP32_RZ = 0, 1, 2, 3, 4
_MODES = {"rne": 0, "rz": 1}


@dataclass(frozen=True)
class Rounder:
    """Round to ``dtype`` with ``rounding`` (``rne`` or ``rz``); integers saturate or wrap."""

    dtype: str = "fp32"
    rounding: str = "rne"
    saturate: bool = False

    def __post_init__(self) -> None:
        get_format(self.dtype)
        if self.rounding not in _MODES:
            raise ValueError(f"accumulator rounding must be rne or rz, got '{self.rounding}'")

    @property
    def code(self) -> tuple:
        """(kind, man_bits, emin, max_finite, has_inf, saturate, mode, lo, hi)."""
        fmt = get_format(self.dtype)
        mode = _MODES[self.rounding]
        if isinstance(fmt, IntFormat):
            return (INTEGER, 0, 0, 0.0, False, self.saturate, mode, float(fmt.lo), float(fmt.hi))
        if fmt.name == "fp64":
            return (EXACT, 52, -1022, fmt.max_finite, True, False, 0, 0.0, 0.0)
        kind = GENERIC_FLOAT
        if fmt.name == "fp32" and not self.saturate:
            kind = FP32_RNE if mode == 0 else FP32_RZ
        return (kind, fmt.man_bits, fmt.emin, fmt.max_finite, fmt.has_inf, self.saturate, mode,
                0.0, 0.0)

    def unit_roundoff(self) -> float:
        """Relative error bound of one rounding (0 for integers and fp64-exact)."""
        fmt = get_format(self.dtype)
        return 0.0 if fmt.name == "fp64" else fmt.unit_roundoff(self.rounding)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return quantize(x, self.dtype, self.rounding, self.saturate)


@njit(cache=True)
def apply(v: float, code) -> float:
    """``v`` rounded as ``code`` (a :attr:`Rounder.code`) says."""
    kind = code[0]
    if kind == FP32_RNE:
        return np.float64(np.float32(v))
    if kind == FP32_RZ:
        y = np.float32(v)
        if abs(np.float64(y)) > abs(v):
            y = np.nextafter(y, np.float32(0.0))
        return np.float64(y)
    if kind == GENERIC_FLOAT:
        return round_float(v, code[1], code[2], code[3], code[4], code[5], code[6], 0.0)
    if kind == INTEGER:
        return round_int(v, code[7], code[8], code[5], code[6], 0.0)
    return v


@njit(cache=True)
def round_inplace(x: np.ndarray, code) -> None:
    """``x[j] = round(x[j])`` for a contiguous 1-D float64 array, as ``code`` says (fp32 RNE by
    a float32 cast; other floats by :func:`kernels_ref.dtypes.round_array`, vectorised on the
    bit patterns)."""
    kind = code[0]
    if kind == EXACT:
        return
    if kind == FP32_RNE:
        for j in range(x.size):
            x[j] = np.float64(np.float32(x[j]))
        return
    if kind == INTEGER:
        for j in range(x.size):
            x[j] = apply(x[j], code)
        return
    round_array(x, code[1], code[2], code[3], code[4], code[5], code[6])
