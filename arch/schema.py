"""Build typed dataclasses from YAML mappings with pinpoint errors, and dump them back.

Every spec class is a plain dataclass whose fields mirror the YAML keys one to one. Field metadata
(see :func:`param`) gives the canonical unit, bounds and a one-line doc. Any leaf may be written as
``{value: X, source: "..."}``; any mapping may carry a ``source`` (applies to the leaves below it
that name none) and a ``note``. Sources are collected in :class:`BuildContext.provenance`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, dataclass, field
from functools import cache
from typing import Any, Union

from arch import plausible
from arch.units import UnitError, format_quantity, parse_quantity

RESERVED_KEYS = ("source", "note")


class SpecError(ValueError):
    """Invalid specification input; ``str()`` is a one-line message naming file and field."""

    def __init__(self, file: str, path: str, message: str):
        self.file = file
        self.path = path
        self.message = message
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message)


def param(unit: str = "", *, doc: str = "", gt: float | None = None, ge: float | None = None,
          le: float | None = None, choices: tuple[str, ...] | None = None,
          default: Any = MISSING, default_factory: Any = MISSING) -> Any:
    """Declare a spec field: canonical ``unit`` (SI), bounds, allowed ``choices`` and a doc."""
    meta = {"unit": unit, "doc": doc, "gt": gt, "ge": ge, "le": le, "choices": choices}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class BuildContext:
    """Where the data came from, and the sources collected while building."""

    file: str = ""
    provenance: dict[str, str] = field(default_factory=dict)

    def error(self, path: str, message: str) -> SpecError:
        return SpecError(self.file, path, message)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _unwrap_leaf(value: Any, path: str, ctx: BuildContext, inherited: str | None) -> Any:
    """Strip a ``{value, source}`` wrapper and record the source of a leaf."""
    if isinstance(value, dict) and "value" in value:
        extra = set(value) - {"value", "source", "note"}
        if extra:
            raise ctx.error(path, f"unexpected key '{sorted(extra)[0]}' next to 'value' "
                                  "(expected only value, source, note)")
        source = value.get("source")
        if source is not None and not isinstance(source, str):
            raise ctx.error(_join(path, "source"), "expected a text citation")
        if source:
            ctx.provenance[path] = source
        elif inherited:
            ctx.provenance[path] = inherited
        return value["value"]
    if inherited:
        ctx.provenance[path] = inherited
    return value


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a text value"
    if tp is bool:
        return "true or false"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    return str(tp)


def _shown(value: float, unit: str) -> str:
    """A value for a message: ``format_quantity`` / ``:g``, never raising on huge integers."""
    try:
        return format_quantity(value, unit) if unit else f"{value:g}"
    except (OverflowError, ValueError):
        digits = str(abs(int(value)))
        return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:4]}e+{len(digits) - 1}"


def _num(bound: float) -> str:
    return f"{bound:,}" if isinstance(bound, int) else f"{bound:g}"


def _check_bounds(value: float, meta: dict, path: str, ctx: BuildContext) -> None:
    unit = meta.get("unit") or ""
    shown = _shown(value, unit)
    suffix = f" {unit}" if unit else ""
    for key, op, ok in (("gt", ">", lambda b: value > b), ("ge", ">=", lambda b: value >= b),
                        ("le", "<=", lambda b: value <= b)):
        if meta.get(key) is not None and not ok(meta[key]):
            raise ctx.error(path, f"expected a value {op} {_num(meta[key])}{suffix}, got {shown}")
    if isinstance(value, int) and not -plausible.INT_MAX <= value <= plausible.INT_MAX:
        raise ctx.error(path, f"expected an integer of magnitude <= {plausible.INT_MAX:,}, "
                              f"got {shown}")
    problem = plausible.check(value, unit)
    if problem:
        raise ctx.error(path, f"{problem}, got {shown}")


def _build_value(tp: Any, value: Any, meta: dict, path: str, ctx: BuildContext,
                 inherited: str | None) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _build_value(args[0], value, meta, path, ctx, inherited)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, ctx, path, inherited)
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ctx.error(path, f"expected a mapping, got {type(value).__name__}")
        if "source" in value and not isinstance(value["source"], str):
            raise ctx.error(_join(path, "source"), "expected a text citation")
        src = value.get("source", inherited)
        out = {}
        for k, v in value.items():
            if k in RESERVED_KEYS:
                continue
            out[str(k)] = _build_value(val_tp, v, meta, _join(path, str(k)), ctx, src)
        return out
    if origin in (list, tuple):
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        value = _unwrap_leaf(value, path, ctx, inherited)
        if not isinstance(value, (list, tuple)):
            raise ctx.error(path, f"expected a list, got {type(value).__name__}")
        items = [_build_value(item_tp, v, {**meta}, _join(path, i), ctx, None)
                 for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    value = _unwrap_leaf(value, path, ctx, inherited)
    return _build_scalar(tp, value, meta, path, ctx)


def _build_scalar(tp: Any, value: Any, meta: dict, path: str, ctx: BuildContext) -> Any:
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ctx.error(path, f"expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ctx.error(path, f"expected a text value, got {value!r}")
        choices = meta.get("choices")
        if choices and value not in choices:
            import difflib  # on the error path only (start-up)
            hint = difflib.get_close_matches(value, choices, n=1)
            more = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ctx.error(path, f"expected one of {', '.join(choices)}, got '{value}'{more}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ctx.error(path, f"expected an integer, got {value!r}")
        _check_bounds(value, meta, path, ctx)
        return value
    if tp is float:
        try:
            number = parse_quantity(value, meta.get("unit") or "")
        except UnitError as exc:
            raise ctx.error(path, str(exc)) from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ctx.error(path, f"expected a finite number, got {value!r}")
        _check_bounds(number, meta, path, ctx)
        return number
    raise ctx.error(path, f"unsupported field type {tp!r}")


def build_any(tp: Any, data: Any, ctx: BuildContext, path: str = "",
              inherited: str | None = None) -> Any:
    """Build any supported schema type (dataclass, ``dict[str, X]``, list, scalar) from data."""
    return _build_value(tp, data, {}, path, ctx, inherited)


@cache
def _schema_of(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    """(type hints, init fields by name) of dataclass ``cls``, resolved once per class:
    ``typing.get_type_hints`` evaluates every string annotation again on each call, which
    was half the CPU of loading a preset. Callers must not modify the returned dicts."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls) if f.init}


def build(cls: type, data: Any, ctx: BuildContext, path: str = "",
          inherited: str | None = None) -> Any:
    """Build dataclass ``cls`` from mapping ``data``; raise :class:`SpecError` on bad input."""
    if not isinstance(data, dict):
        raise ctx.error(path, f"expected a mapping, got {type(data).__name__}")
    hints, fields = _schema_of(cls)
    source = data.get("source", inherited)
    if "source" in data and not isinstance(data["source"], str):
        raise ctx.error(_join(path, "source"), "expected a text citation")
    for key in data:
        if key in RESERVED_KEYS:
            continue
        if key not in fields:
            import difflib  # on the error path only (start-up)
            hint = difflib.get_close_matches(str(key), list(fields), n=1)
            more = f" (did you mean '{hint[0]}'?)" if hint else \
                f" (expected one of: {', '.join(fields)})"
            raise ctx.error(_join(path, str(key)), f"unknown key{more}")
    kwargs = {}
    for name, f in fields.items():
        sub = _join(path, name)
        if name not in data or data[name] is None:
            if f.default is MISSING and f.default_factory is MISSING:
                unit = f.metadata.get("unit")
                raise ctx.error(sub, f"missing required field ({_describe(hints[name])}"
                                     f"{', in ' + unit if unit else ''})")
            continue
        kwargs[name] = _build_value(hints[name], data[name], dict(f.metadata), sub, ctx, source)
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        problem = check()
        if problem:
            field_name, message = problem
            raise ctx.error(_join(path, field_name), message)
    return obj


def _dump_leaf(value: Any, unit: str, path: str, provenance: dict[str, str]) -> Any:
    if isinstance(value, float) and unit:
        out: Any = format_quantity(value, unit)
    else:
        out = value
    src = provenance.get(path)
    return {"value": out, "source": src} if src else out


def dump(obj: Any, provenance: dict[str, str] | None = None, path: str = "",
         unit: str = "") -> Any:
    """Turn a spec object back into plain YAML-able data, with sources as ``{value, source}``."""
    provenance = provenance or {}
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            if not f.init:
                continue
            val = getattr(obj, f.name)
            if val is None:
                continue
            out[f.name] = dump(val, provenance, _join(path, f.name), f.metadata.get("unit", ""))
        return out
    if isinstance(obj, dict):
        return {k: dump(v, provenance, _join(path, k), unit) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [dump(v, {}, _join(path, i), unit) for i, v in enumerate(obj)]
        src = provenance.get(path)
        return {"value": items, "source": src} if src else items
    return _dump_leaf(obj, unit, path, provenance)


def leaf_paths(obj: Any, path: str = "") -> list[str]:
    """All leaf parameter paths of a spec object (lists count as one leaf)."""
    if dataclasses.is_dataclass(obj):
        out: list[str] = []
        for f in dataclasses.fields(obj):
            val = getattr(obj, f.name)
            if f.init and val is not None:
                out += leaf_paths(val, _join(path, f.name))
        return out
    if isinstance(obj, dict):
        out = []
        for k, v in obj.items():
            out += leaf_paths(v, _join(path, k))
        return out
    return [path]
