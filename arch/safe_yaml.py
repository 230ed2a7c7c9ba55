"""The one YAML loader of the project: safe tags only, and bounded against hostile files.

:func:`load_yaml_text` parses like ``yaml.safe_load`` but rejects what no arch, sweep or
placement file needs and what makes a parser hang, exhaust memory or recurse without end:

* nesting deeper than :data:`MAX_DEPTH` levels (a ``RecursionError`` otherwise);
* a document whose tree, with every alias expanded, has more than :data:`MAX_NODES` nodes
  ("billion laughs": a few lines of anchors that expand to gigabytes), and recursive aliases;
* duplicate keys in a mapping (YAML 1.2 forbids them; PyYAML keeps the last silently);
* integers outside the signed 64-bit range (no field of any model holds one; Python's
  ``int → float`` and numba's ``int64`` overflow on them);
* files larger than :data:`MAX_BYTES`.

Errors are :class:`YamlInputError` with a one-line ``problem`` and, where known, the line and
column; the offending text is never echoed (a file may not be YAML at all).
"""

from __future__ import annotations

from functools import cache
from typing import Any

#: deepest nesting of mappings and lists accepted (presets use 6)
MAX_DEPTH = 64
#: most nodes of a document with every alias expanded (presets have < 2,000)
MAX_NODES = 200_000
#: largest YAML file read, in bytes (presets are < 20 kB)
MAX_BYTES = 4 * 1024 * 1024
#: integers must fit a signed 64-bit integer
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


class YamlInputError(ValueError):
    """A YAML document that cannot be or may not be loaded; ``line``/``column`` are 1-based
    (0 when unknown) and ``problem`` is one line."""

    def __init__(self, problem: str, line: int = 0, column: int = 0, syntax: bool = False):
        self.problem = problem
        self.syntax = syntax
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(f"{where}{problem}")


def _mark_error(problem: str, mark: Any) -> YamlInputError:
    if mark is None:
        return YamlInputError(problem)
    return YamlInputError(problem, mark.line + 1, mark.column + 1)


@cache
def _bounded_loader() -> type:
    """The bounded loader class (made on first use, so importing this module does not
    import PyYAML: start-up, issue 18)."""
    import yaml

    class _BoundedLoader(yaml.SafeLoader):
        """SafeLoader with a depth bound while composing and duplicate-key and int-range checks
        while constructing."""

        def __init__(self, stream: str):
            super().__init__(stream)
            self._depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D401 - PyYAML hook
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise _mark_error(f"nesting deeper than {MAX_DEPTH} levels",
                                      self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, Any] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.setdefault(key, key_node)
                    except TypeError:
                        raise _mark_error("a mapping key must be a plain value",
                                          key_node.start_mark) from None
                    if first is not key_node:
                        raise _mark_error(f"duplicate key {_short(key)} (first at line "
                                          f"{first.start_mark.line + 1})", key_node.start_mark)
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_int(self, node: Any) -> int:
            text = str(node.value).replace("_", "").lstrip("+-")
            if len(text) > 40:  # also keeps int() below Python's digit limit
                raise _mark_error("integer too large (must fit 64 bits)", node.start_mark)
            value = super().construct_yaml_int(node)
            if not INT_MIN <= value <= INT_MAX:
                raise _mark_error("integer too large (must fit 64 bits)", node.start_mark)
            return value

    _BoundedLoader.add_constructor("tag:yaml.org,2002:int",
                                   _BoundedLoader.construct_yaml_int)
    return _BoundedLoader


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _expanded_size(root: Any) -> int:
    """Nodes of the composed graph with aliases expanded (memoised, iterative); raise on a
    recursive alias or when the count passes :data:`MAX_NODES`."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_NODES:
                raise _mark_error(f"document expands to more than {MAX_NODES:,} nodes "
                                  "(aliases repeated too often)", node.start_mark)
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise _mark_error("recursive alias (a node that contains itself)", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) not in sizes:
                if id(child) in on_path:
                    raise _mark_error("recursive alias (a node that contains itself)",
                                      child.start_mark)
                stack.append((child, False))
    return sizes.get(id(root), 0)


def _children(node: Any) -> list[Any]:
    kind = node.id  # PyYAML's node kinds: "scalar", "sequence", "mapping"
    if kind == "sequence":
        return list(node.value)
    if kind == "mapping":
        return [n for pair in node.value for n in pair]
    return []


def load_yaml_text(text: str) -> Any:
    """Parse one YAML document with the bounds above; raise :class:`YamlInputError`."""
    import yaml

    if len(text) > MAX_BYTES:
        raise YamlInputError(f"file larger than {MAX_BYTES // (1024 * 1024)} MiB")
    loader = None
    try:
        loader = _bounded_loader()(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    except YamlInputError:
        raise
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise YamlInputError(f"character {char!r} not allowed (write it as an escape in a "
                             "double-quoted text)", line, column) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        err = _mark_error(" ".join(str(problem).split()), mark)
        err.syntax = True
        raise err from None
    except RecursionError:  # pragma: no cover - the depth bound comes first
        raise YamlInputError(f"nesting deeper than {MAX_DEPTH} levels") from None
    finally:
        if loader is not None:
            loader.dispose()
