"""Parse quantities with units (``3.35 TB/s``, ``1.5 ns``, ``80 GiB``) into SI floats.

A quantity is a number followed by a unit expression ``NUM/DEN`` where each side is an optional
SI or binary prefix and a base unit. Every field of the schema names the canonical unit it stores
(``B/s``, ``s``, ``B``, ``Hz``, ``FLOP/s``, ``J/bit`` ...); the parser checks that the dimensions
agree and converts. Bits and bytes convert (1 B = 8 bit); ``OP`` counts like ``FLOP``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

_SI = {
    "": 1.0, "a": 1e-18, "f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "μ": 1e-6,
    "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}

# base unit -> (scale to base dimension, dimension vector as a tuple of (dim, exponent))
_BASE: dict[str, tuple[float, tuple[tuple[str, int], ...]]] = {
    "B": (1.0, (("byte", 1),)),
    "byte": (1.0, (("byte", 1),)),
    "bit": (0.125, (("byte", 1),)),
    "b": (0.125, (("byte", 1),)),
    "s": (1.0, (("s", 1),)),
    "sec": (1.0, (("s", 1),)),
    "Hz": (1.0, (("s", -1),)),
    "FLOP": (1.0, (("flop", 1),)),
    "OP": (1.0, (("flop", 1),)),
    "MAC": (2.0, (("flop", 1),)),
    "J": (1.0, (("J", 1),)),
    "W": (1.0, (("J", 1), ("s", -1))),
    "m": (1.0, (("m", 1),)),
    "m2": (1.0, (("m", 2),)),
    "m^2": (1.0, (("m", 2),)),
    "cycle": (1.0, (("cycle", 1),)),
    "T": (1.0, (("transfer", 1),)),
}
# whole-token aliases, tried before prefix splitting
_ALIAS = {
    "FLOPS": "FLOP/s", "OPS": "OP/s", "bps": "bit/s", "Bps": "B/s",
    "mm2": "mm2", "mm^2": "mm^2", "cycles": "cycle", "bits": "bit", "bytes": "byte",
}
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


class UnitError(ValueError):
    """A quantity string that cannot be parsed or has the wrong dimension."""


@dataclass(frozen=True)
class Unit:
    """A parsed unit: multiply a number by ``scale`` to get base units of ``dims``."""

    scale: float
    dims: tuple[tuple[str, int], ...]


def _combine(a: dict[str, int], b: tuple[tuple[str, int], ...], sign: int) -> None:
    for dim, exp in b:
        a[dim] = a.get(dim, 0) + sign * exp
        if a[dim] == 0:
            del a[dim]


def _parse_token(token: str) -> tuple[float, tuple[tuple[str, int], ...]]:
    """Parse one prefixed unit token such as ``TB``, ``GiB``, ``pJ``, ``ns``, ``mm2``."""
    token = _ALIAS.get(token, token)
    if "/" in token:  # an alias may expand to a ratio
        unit = parse_unit(token)
        return unit.scale, unit.dims
    if token in _BASE:
        return _BASE[token]
    for prefix, factor in _BINARY.items():
        if token.startswith(prefix) and token[len(prefix):] in _BASE:
            scale, dims = _BASE[token[len(prefix):]]
            return factor * scale, dims
    for prefix in sorted(_SI, key=len, reverse=True):
        if prefix and token.startswith(prefix):
            rest = _ALIAS.get(token[len(prefix):], token[len(prefix):])
            if "/" in rest:
                unit = parse_unit(rest)
                return _SI[prefix] * unit.scale, unit.dims
            if rest in _BASE:
                scale, dims = _BASE[rest]
                # "mm2" is (milli-metre)^2, not milli-(metre^2)
                exp = dict(dims).get("m", 1) if rest in ("m2", "m^2") else 1
                return (_SI[prefix] ** exp) * scale, dims
    raise UnitError(f"unknown unit '{token}'")


@lru_cache(maxsize=1024)
def parse_unit(text: str) -> Unit:
    """Parse a unit expression like ``TB/s``, ``pJ/bit``, ``FLOP/cycle`` or ``''`` (none).
    Memoised (a :class:`Unit` is immutable): loading one arch parses the same few units
    thousands of times."""
    text = text.strip()
    if not text:
        return Unit(1.0, ())
    parts = [p.strip() for p in text.split("/")]
    if any(not p for p in parts):
        raise UnitError(f"malformed unit '{text}'")
    scale = 1.0
    dims: dict[str, int] = {}
    for i, part in enumerate(parts):
        s, d = _parse_token(part)
        if i == 0:
            scale *= s
            _combine(dims, d, +1)
        else:
            scale /= s
            _combine(dims, d, -1)
    return Unit(scale, tuple(sorted(dims.items())))


def parse_quantity(value: object, unit: str = "") -> float:
    """Convert ``value`` (number or ``"NUM UNIT"`` string) into the canonical ``unit``.

    A bare number is taken to be in the canonical unit already. Raises :class:`UnitError` with a
    message that names what was expected.
    """
    target = parse_unit(unit)
    if isinstance(value, bool):
        raise UnitError(f"expected a quantity in {unit or 'plain numbers'}, got a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise UnitError(f"expected a quantity in {unit or 'plain numbers'}, "
                        f"got {type(value).__name__}")
    match = _NUMBER.match(value)
    if not match:
        raise UnitError(f"expected a quantity like '3.35 TB/s' in {unit or 'plain numbers'}, "
                        f"got '{value}'")
    try:
        given = parse_unit(match.group(2))
    except UnitError as exc:
        raise UnitError(f"{exc} in '{value}' (expected {unit or 'no unit'})") from None
    if given.dims != target.dims:
        raise UnitError(f"'{value}' is not in {unit or 'plain numbers'}")
    try:  # decimal arithmetic keeps '0.47 pJ/bit' at exactly 4.7e-13
        factor = Decimal(repr(given.scale)) / Decimal(repr(target.scale))
        return float(Decimal(match.group(1)) * factor)
    except InvalidOperation:
        return float(match.group(1)) * given.scale / target.scale


def format_quantity(value: float, unit: str) -> str:
    """Format an SI value with a readable prefix, e.g. ``3.35e12, 'B/s'`` → ``3.35 TB/s``.

    Byte sizes that are exact multiples of a binary prefix print with it (``80 GiB``). The text
    parses back to the same float.
    """
    if value == 0:
        return f"0 {unit}"
    if unit == "B":
        for prefix, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if abs(value) >= factor and float(value / factor).is_integer():
                return f"{value / factor:.15g} {prefix}{unit}"
    for prefix, factor in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3),
                           ("", 1.0), ("m", 1e-3), ("u", 1e-6), ("n", 1e-9), ("p", 1e-12),
                           ("f", 1e-15)):
        if abs(value) >= factor * 0.9999999:
            return f"{value / factor:.15g} {prefix}{unit}".rstrip()
    return f"{value:.15g} {unit}".rstrip()
