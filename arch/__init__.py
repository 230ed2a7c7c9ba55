"""Architecture descriptions: YAML → validated, typed objects with the source of every value.

``load_arch("h100")`` loads a preset; ``load_arch("my_chip.yaml")`` loads a file. Errors are
:class:`SpecError` with a one-line message naming file, field and what was expected.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from arch.schema import SpecError
from arch.spec import DEVICE_TYPES, SECTIONS, Arch, arch_from_dict
from arch.units import UnitError, format_quantity, parse_quantity

PRESET_DIR = Path(__file__).parent / "presets"

__all__ = [
    "Arch", "SpecError", "UnitError", "load_arch", "arch_from_dict", "list_presets",
    "preset_path", "read_yaml", "load_arch_data", "deep_merge", "parse_quantity",
    "format_quantity", "SECTIONS", "DEVICE_TYPES",
]


def list_presets() -> list[str]:
    """Names of the built-in presets, sorted."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """Path of preset ``name``; raise :class:`SpecError` with a did-you-mean when unknown."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        names = list_presets()
        hint = difflib.get_close_matches(name, names, n=1)
        more = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise SpecError("", "--arch", f"unknown preset '{name}'{more}; presets: {', '.join(names)}")
    return path


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; missing files and syntax errors become one-line :class:`SpecError`."""
    path = Path(path)
    if not path.exists():
        raise SpecError(str(path), "", "file not found")
    if not path.is_file():
        raise SpecError(str(path), "", "not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), "", f"cannot read file ({exc.__class__.__name__})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise SpecError(str(path), where, f"YAML syntax error: {problem}") from None


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, dict) or "value" in value


def deep_merge(base: Any, override: Any) -> Any:
    """Merge ``override`` into ``base``; mappings merge key by key, leaves are replaced."""
    if _is_leaf(base) or _is_leaf(override):
        return override
    out = dict(base)
    for key, val in override.items():
        out[key] = deep_merge(base[key], val) if key in base else val
    return out


def _resolve(name_or_path: str, seen: tuple[str, ...] = ()) -> tuple[Any, str]:
    """Read an arch's raw data with ``extends`` resolved; return (data, file label)."""
    text = str(name_or_path)
    is_path = text.endswith((".yaml", ".yml")) or "/" in text or Path(text).is_file()
    path = Path(text) if is_path else preset_path(text)
    label = str(path) if is_path else path.name
    data = read_yaml(path)
    if isinstance(data, dict) and "extends" in data:
        base_name = data["extends"]
        if not isinstance(base_name, str) or not base_name:
            raise SpecError(label, "extends", "expected a preset name or a file path")
        if base_name in seen:
            raise SpecError(label, "extends", f"circular extends through '{base_name}'")
        if base_name.endswith((".yaml", ".yml")) and not Path(base_name).is_absolute():
            base_name = str(path.parent / base_name)
        try:
            base, _ = _resolve(base_name, seen + (text,))
        except SpecError as exc:
            raise SpecError(label, "extends", exc.message if exc.path == "--arch" else str(exc)) \
                from None
        data = deep_merge(base, {k: v for k, v in data.items() if k != "extends"})
    return data, label


def load_arch_data(name_or_path: str | Path) -> tuple[Any, str]:
    """The raw (``extends``-resolved) data of an arch and its file label, before validation."""
    return _resolve(str(name_or_path))


def load_arch(name_or_path: str | Path) -> Arch:
    """Load a preset by name or an arch YAML file by path (``extends: BASE`` inherits a base)."""
    data, label = _resolve(str(name_or_path))
    return arch_from_dict(data, file=label)
