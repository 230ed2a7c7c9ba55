"""MQSim's random numbers: L'Ecuyer's combined multiple-recursive generator (MRG32k3a).

MQSim (``src/utils/CMRRandomGenerator``, ``RandomGenerator``) seeds each generator of a
synthetic flow by jumping the MRG32k3a state ``2^e`` steps ``n`` times with
``n = seed // 200 + 1`` and ``e = seed % 200``, computing the jump matrices in 64-bit signed
integers (their products overflow and wrap, and ``%`` truncates toward zero, as C++ does). The
same arithmetic here gives the same stream, so a flow draws the same request types, random
addresses and streaming start as in MQSim. The per-draw step (:func:`next_double`) runs
compiled in the flash kernel and as it is in Python; the seeding runs once in Python.
"""

from __future__ import annotations

import numpy as np

_M1 = 4294967087.0
_M2 = 4294944443.0
_A12, _A13, _A21, _A23 = 1403580.0, -810728.0, 527612.0, -1370589.0
_NORM = 2.328306549295728e-10
_MATS = ([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [_A13, _A12, 0.0]],
         [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [_A23, 0.0, _A21]])


def _wrap(x: int) -> int:
    """Two's-complement 64-bit wrap of a Python int."""
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >= 1 << 63 else x


def _cmod(a: int, m: int) -> int:
    """C's ``a % m`` (sign of the dividend)."""
    r = abs(a) % m
    return -r if a < 0 else r


def _ftoi(x: float, m: float) -> int:
    return int(x) if x >= 0.0 else int(x + m)


def _mm(a, b, m):
    d = [[0] * 3 for _ in range(3)]
    for i in range(3):
        for j in range(3):
            for k in range(3):
                d[i][j] = _cmod(_wrap(_wrap(a[i][k] * b[k][j]) + d[i][j]), m)
    return d


def _mv(a, u, m):
    w = [0, 0, 0]
    for i in range(3):
        for j in range(3):
            w[i] = _cmod(_wrap(_wrap(a[i][j] * u[j]) + w[i]), m)
    return w


def mqsim_state(seed: int) -> np.ndarray:
    """The six-double state of ``Utils::RandomGenerator(seed)`` after its seeding jump."""
    n, e = seed // 200 + 1, seed % 200
    mods = (_M1, _M2)
    mats = [[[_ftoi(x, mods[i]) for x in row] for row in _MATS[i]] for i in range(2)]
    states = [[1, 1, 1], [1, 1, 1]]
    im = [int(_M1), int(_M2)]
    for _ in range(e):
        for i in range(2):
            mats[i] = _mm(mats[i], mats[i], im[i])
    while n != 0:
        if n & 1:
            for i in range(2):
                states[i] = _mv(mats[i], states[i], im[i])
        n >>= 1
        if n != 0:
            for i in range(2):
                mats[i] = _mm(mats[i], mats[i], im[i])
    return np.array([float(v) for v in states[0] + states[1]], np.float64)


def next_double(s):
    """One MRG32k3a draw in (0, 1); ``s`` (6 doubles) advances in place. Plain Python: the
    flash kernel compiles this very function (:mod:`sim.micro.flash_kernel`); each recurrence
    is reduced modulo its prime as ``x - int64(x / m) * m`` (plus ``m`` when negative)."""
    p1 = _A12 * s[1] + _A13 * s[0]
    p1 -= np.int64(p1 / _M1) * _M1
    if p1 < 0.0:
        p1 += _M1
    s[0] = s[1]
    s[1] = s[2]
    s[2] = p1
    p2 = _A21 * s[5] + _A23 * s[3]
    p2 -= np.int64(p2 / _M2) * _M2
    if p2 < 0.0:
        p2 += _M2
    s[3] = s[4]
    s[4] = s[5]
    s[5] = p2
    p = p1 - p2
    if p < 0.0:
        p += _M1
    return (p + 1.0) * _NORM


def uniform_ulong(s: np.ndarray, lo: int, hi: int) -> int:
    """MQSim's ``Uniform_ulong(lo, hi)``: ``lo + (uint64)((hi - lo + 1.0) * draw)``."""
    return lo + int((float(hi - lo + 1)) * next_double(s))
