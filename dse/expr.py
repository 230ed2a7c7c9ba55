"""Safe arithmetic expressions for derived parameters, constraints and objectives (no ``eval``).

An expression is parsed with :mod:`ast` and only these nodes are accepted: numbers, names
(dotted paths such as ``gpu.sm_count`` or ``memory.hbm.bandwidth`` are one name), ``+ - * / //
% **``, unary ``- +``, comparisons, ``and``/``or``/``not``, ``a if c else b`` and calls of the
functions in :data:`FUNCTIONS`. Anything else (attribute access on values, subscripts, lambdas,
strings, comprehensions) is rejected when the spec is loaded, with a message naming the field.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min, "max": max, "abs": abs, "round": round,
    "floor": math.floor, "ceil": math.ceil, "sqrt": math.sqrt,
    "log": math.log, "log2": math.log2, "log10": math.log10, "exp": math.exp,
}
_BINOPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}
_CMPOPS: dict[type, Callable[[float, float], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
MAX_LENGTH = 1000
#: deepest expression tree accepted (evaluation recurses once per level)
MAX_DEPTH = 64
#: magnitude an integer result may reach before it is refused (64-bit range)
INT_LIMIT = 2**63


class ExprError(ValueError):
    """An expression that cannot be parsed or evaluated; the message names what went wrong."""


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` as one dotted name, or None when ``node`` is not a plain name chain."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


@dataclass(frozen=True)
class Expr:
    """A parsed, checked expression; ``names`` are the dotted names it reads."""

    text: str
    tree: ast.Expression = field(repr=False, compare=False)
    names: tuple[str, ...]

    def evaluate(self, values: Mapping[str, object]) -> float | bool:
        """Evaluate with ``values`` for the names; raise :class:`ExprError` on a failure."""
        try:
            return _eval(self.tree.body, values)
        except ExprError as exc:
            raise ExprError(f"cannot evaluate '{self.text}': {exc}") from None
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise ExprError(f"cannot evaluate '{self.text}': {exc}") from None


def parse_expr(text: object) -> Expr:
    """Parse and check ``text``; raise :class:`ExprError` for anything outside the grammar."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ExprError(f"expected an expression (text or number), got {type(text).__name__}")
    text = str(text).strip()
    if not text:
        raise ExprError("expected an expression, got an empty text")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"syntax error in '{text}' at column {exc.offset or 0}") from None
    except (MemoryError, RecursionError, ValueError):
        raise ExprError(f"expression nested too deeply (more than {MAX_DEPTH} levels)") from None
    if _depth(tree.body) > MAX_DEPTH:
        raise ExprError(f"expression nested too deeply (more than {MAX_DEPTH} levels)")
    names: list[str] = []
    _check(tree.body, text, names)
    return Expr(text, tree, tuple(dict.fromkeys(names)))


def _depth(root: ast.AST) -> int:
    """Depth of an expression tree, counted without recursion."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _real(value: object) -> float | bool:
    """``value`` if it is a finite real number (or a bool), else :class:`ExprError`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -INT_LIMIT <= value <= INT_LIMIT:
            raise ExprError("result too large (beyond 64-bit integers)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExprError(f"result is not finite ({value})")
        return value
    raise ExprError(f"result is not a real number ({type(value).__name__})")


def _check(node: ast.AST, text: str, names: list[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExprError(f"only numbers may appear as literals in '{text}', "
                            f"got {node.value!r}")
        try:
            _real(node.value)
        except ExprError as exc:
            raise ExprError(f"literal in '{text}': {exc}") from None
        return
    dotted = _dotted(node)
    if dotted is not None:
        if dotted in FUNCTIONS:
            raise ExprError(f"'{dotted}' is a function; call it as {dotted}(...) in '{text}'")
        if any(part.startswith("__") for part in dotted.split(".")):
            raise ExprError(f"names may not start with '__' in '{text}'")
        names.append(dotted)
        return
    if isinstance(node, ast.BinOp) and (type(node.op) in _BINOPS or isinstance(node.op, ast.Pow)):
        _check(node.left, text, names)
        _check(node.right, text, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        _check(node.operand, text, names)
    elif isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
        for sub in (node.left, *node.comparators):
            _check(sub, text, names)
    elif isinstance(node, ast.BoolOp):
        for sub in node.values:
            _check(sub, text, names)
    elif isinstance(node, ast.IfExp):
        for sub in (node.test, node.body, node.orelse):
            _check(sub, text, names)
    elif isinstance(node, ast.Call):
        fname = node.func.id if isinstance(node.func, ast.Name) else None
        if fname not in FUNCTIONS:
            raise ExprError(f"unknown function in '{text}' (allowed: {', '.join(FUNCTIONS)})")
        if node.keywords or not node.args:
            raise ExprError(f"{fname}() takes positional arguments only in '{text}'")
        for arg in node.args:
            _check(arg, text, names)
    else:
        raise ExprError(f"'{ast.unparse(node)}' is not allowed in '{text}' (only numbers, "
                        "names, arithmetic, comparisons and min/max-style functions)")


def _number(value: object, name: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return value
    raise ExprError(f"'{name}' is not a number (got {value!r})")


def _eval(node: ast.AST, values: Mapping[str, object]) -> float | bool:
    if isinstance(node, ast.Constant):
        return _real(node.value)
    dotted = _dotted(node)
    if dotted is not None:
        if dotted not in values:
            raise ExprError(f"unknown name '{dotted}'")
        return _real(_number(values[dotted], dotted))
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, values), _eval(node.right, values)
        if isinstance(node.op, ast.Pow):  # floats only: no unbounded integer powers
            return _real(float(left) ** float(right))
        return _real(_BINOPS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, values)
        if isinstance(node.op, ast.Not):
            return not operand
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, values)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(bool(_eval(v, values)) for v in node.values)
        return any(bool(_eval(v, values)) for v in node.values)
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, values) else node.orelse, values)
    if isinstance(node, ast.Call):
        args = [_eval(a, values) for a in node.args]
        return _real(FUNCTIONS[node.func.id](*args))  # type: ignore[union-attr]
    raise ExprError(f"unsupported expression node {type(node).__name__}")  # pragma: no cover
