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


def add_plugin_parsers(parser, package: str, dest: str) -> None:
    """One sub-parser per plugin of ``package`` (its ``add_arguments`` and a ``--json`` flag);
    the chosen module lands in ``args._module``."""
    sub = parser.add_subparsers(dest=dest, metavar=dest.upper(), parser_class=type(parser))
    for name, mod in discover(package).items():
        sp = sub.add_parser(name, help=getattr(mod, "DESCRIPTION", ""))
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(sp)
        sp.add_argument("--json", action="store_true", help="print JSON")
        sp.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
        sp.set_defaults(_module=mod)


def did_you_mean(name: str, choices: list[str]) -> str:
    hint = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{hint[0]}'?)" if hint else ""
