"""Discover plugin modules (reproductions, importers, validation suites) by package scan."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from types import ModuleType


def discover(package: str) -> dict[str, ModuleType]:
    """Modules of ``package`` that define ``NAME``, keyed by it (files starting '_' skipped)."""
    pkg = importlib.import_module(package)
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{package}.{info.name}")
        name = getattr(mod, "NAME", None)
        if name:
            found[name] = mod
    return found


def did_you_mean(name: str, choices: list[str]) -> str:
    hint = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{hint[0]}'?)" if hint else ""
