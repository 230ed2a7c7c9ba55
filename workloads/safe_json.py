"""A bounded JSON reader for user files (Hugging Face ``config.json``).

Like ``json.loads`` but rejects what no config needs and what makes the parser recurse without
end or overflow later: nesting deeper than :data:`MAX_DEPTH` (checked by a scan before parsing,
so the recursive C parser never sees it), duplicate keys (the last would win silently),
integers outside 64 bits, ``NaN``/``Infinity`` and files over :data:`MAX_BYTES`.
"""

from __future__ import annotations

import json
import math

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~5 ms of start-up; annotations are strings here
    from typing import Any

MAX_DEPTH = 64
MAX_BYTES = 4 * 1024 * 1024
INT_LIMIT = 2**63


class JsonInputError(ValueError):
    """Malformed or out-of-bounds JSON; ``line``/``column`` are 1-based (0 when unknown)."""

    def __init__(self, problem: str, line: int = 0, column: int = 0):
        self.problem = problem
        self.line = line
        self.column = column
        super().__init__(problem)


def _depth_error(text: str) -> JsonInputError | None:
    """Scan brackets outside strings; an error at the first one nested too deep."""
    depth = 0
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, i) + 1
                return JsonInputError(f"nesting deeper than {MAX_DEPTH} levels", line,
                                      i - text.rfind("\n", 0, i))
        elif ch in "]}":
            depth -= 1
    return None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JsonInputError(f"duplicate key '{key[:40]}'")
        out[key] = value
    return out


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or not -INT_LIMIT <= int(text) < INT_LIMIT:
        raise JsonInputError("integer too large (must fit 64 bits)")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonInputError(f"number too large for a float ({text[:20]}...)")
    return value


def _constant(name: str) -> Any:
    raise JsonInputError(f"'{name}' is not a JSON number")


def load_json_text(text: str) -> Any:
    """Parse ``text`` with the bounds above; raise :class:`JsonInputError`."""
    if len(text) > MAX_BYTES:
        raise JsonInputError(f"file larger than {MAX_BYTES // 2**20} MiB")
    deep = _depth_error(text)
    if deep:
        raise deep
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_int=_int, parse_float=_float,
                          parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"malformed JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except RecursionError:  # pragma: no cover - the scan above comes first
        raise JsonInputError(f"nesting deeper than {MAX_DEPTH} levels") from None


def strict_json_values(data: Any) -> Any:
    """``data`` with every non-finite float as None: strict JSON has no NaN or Infinity
    (what ``xpusim ... --json`` prints and ``summary.json`` files hold)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: strict_json_values(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict_json_values(v) for v in data]
    return data
