"""Architecture descriptions: YAML → validated, typed objects with the source of every value.

``load_arch("h100")`` loads a preset; ``load_arch("my_chip.yaml")`` loads a file. Errors are
:class:`SpecError` with a one-line message naming file, field and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arch.preset_cache import parse_cached
from arch.safe_yaml import MAX_BYTES
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
        import difflib  # on the error path only (start-up)
        hint = difflib.get_close_matches(name, names, n=1)
        more = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise SpecError("", "--arch", f"unknown preset '{name}'{more}; presets: {', '.join(names)}")
    return path


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file with the bounded loader (:mod:`arch.safe_yaml`: no duplicate keys,
    bounded depth, alias expansion and size); every failure is a one-line :class:`SpecError`."""
    path = Path(path)
    if not path.exists():
        raise SpecError(str(path), "", "file not found")
    if not path.is_file():
        raise SpecError(str(path), "", "not a regular file")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SpecError(str(path), "", f"file larger than {MAX_BYTES // 2**20} MiB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), "", f"cannot read file ({exc.__class__.__name__})") from None
    if path.parent == PRESET_DIR:
        return parse_cached(path.stem, text, _read_builtin)
    from arch.safe_yaml import YamlInputError, load_yaml_text

    try:
        return load_yaml_text(text)
    except YamlInputError as exc:
        where = f"line {exc.line}, column {exc.column}" if exc.line else ""
        kind = "YAML syntax error" if exc.syntax else "invalid YAML"
        raise SpecError(str(path), where, f"{kind}: {exc.problem}") from None


def _read_builtin(text: str) -> Any:
    """A built-in preset, parsed with libyaml's C parser when PyYAML has it (about 5x faster
    than the bounded pure-Python loader). Presets ship with the package and
    tests/test_arch_presets_parse.py checks that the bounded loader reads every one to the
    same data (no duplicate keys, depth and size bounds), so only user files need the bounds.
    :func:`read_yaml` memoises the result on disk (:mod:`arch.preset_cache`)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        from arch.safe_yaml import load_yaml_text

        return load_yaml_text(text)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader, trusted file


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


#: longest ``extends`` chain followed (presets use at most 2)
MAX_EXTENDS = 16


def _locate(text: str) -> tuple[Path, str]:
    """(file, label) of a preset name or an arch file path."""
    is_path = text.endswith((".yaml", ".yml")) or "/" in text or Path(text).is_file()
    path = Path(text) if is_path else preset_path(text)
    if is_path and not path.exists() and not path.is_absolute():
        # a path the docs give from the repository root (xpusim/validation/harness/*.yaml)
        # also works from any other folder: try it beside the installed packages
        beside = Path(__file__).resolve().parents[1] / text
        if beside.is_file():
            return beside, text
    return path, (str(path) if is_path else path.name)


def _base_ref(label: str, path: Path, base_name: Any) -> str:
    """The ``extends`` value of the file at ``path``, checked: a preset name or a YAML file."""
    if not isinstance(base_name, str) or not base_name:
        raise SpecError(label, "extends", "expected a preset name or a file path")
    if base_name.endswith((".yaml", ".yml")):
        if not Path(base_name).is_absolute():
            return str(path.parent / base_name)
        return base_name
    if "/" in base_name or "\\" in base_name or Path(base_name).suffix:
        raise SpecError(label, "extends", "expected a preset name or a .yaml/.yml file")
    return base_name


def _resolve(name_or_path: str, seen: tuple[str, ...] = ()) -> tuple[Any, str]:
    """Read an arch's raw data with ``extends`` resolved; return (data, file label).

    The chain is followed iteratively; cycles are found on resolved file paths (so ``a.yaml``
    and ``../dir/a.yaml`` are one file), chains end after :data:`MAX_EXTENDS` bases, and a
    base must be a YAML mapping. Errors in a base name the file that extends it; no message
    quotes a base file's content.
    """
    path, label = _locate(str(name_or_path))
    chain: list[tuple[Any, str]] = []
    visited: dict[str, str] = {}
    current, current_label = path, label
    while True:
        try:
            key = str(current.resolve())
        except (OSError, RuntimeError):
            key = str(current)
        if key in visited:
            raise SpecError(label, "extends", f"circular extends through '{visited[key]}'")
        visited[key] = current_label
        if chain:
            try:
                data = read_yaml(current)
            except SpecError as exc:
                raise SpecError(label, "extends", str(exc)) from None
        else:
            data = read_yaml(current)
        if chain and not isinstance(data, dict):
            raise SpecError(label, "extends", f"'{current_label}' is not an arch (expected a "
                                              f"YAML mapping, got {type(data).__name__})")
        chain.append((data, current_label))
        if not isinstance(data, dict) or "extends" not in data:
            break
        if len(chain) > MAX_EXTENDS:
            raise SpecError(label, "extends", f"chain of more than {MAX_EXTENDS} bases")
        ref = _base_ref(current_label, current, data["extends"])
        try:
            current, current_label = _locate(ref)
        except SpecError as exc:
            raise SpecError(label, "extends", exc.message) from None
    data = chain[-1][0]
    for override, _ in reversed(chain[:-1]):
        data = deep_merge(data, {k: v for k, v in override.items() if k != "extends"})
    return data, label


def load_arch_data(name_or_path: str | Path) -> tuple[Any, str]:
    """The raw (``extends``-resolved) data of an arch and its file label, before validation."""
    return _resolve(str(name_or_path))


def load_arch(name_or_path: str | Path) -> Arch:
    """Load a preset by name or an arch YAML file by path (``extends: BASE`` inherits a base)."""
    data, label = _resolve(str(name_or_path))
    return arch_from_dict(data, file=label)
