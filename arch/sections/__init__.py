"""Section schemas, one module per group of sections; each module registers its sections and
device types with :mod:`arch.spec` when it is imported.

Modules load on demand (start-up, issue 18: all of them cost ~25 ms of CPU, a GPU arch needs
three): :func:`load_for_type` imports the module that declares a device type and the modules of
its sections, located by :func:`index`, which reads the ``register_section("x")`` and
``register_device_type("y", ...)`` calls from the modules' source text, so adding a module still
touches no other file. :func:`load_all` imports every module; ``arch.spec``'s registries call it
when a key is missing, and so does ``load_for_type`` for a name the index does not know.
tests/test_startup_imports.py checks the index against what the modules register.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache
from pathlib import Path

_SECTION = re.compile(r"""register_section\(\s*["']([^"']+)["']""")
_DEVICE_TYPE = re.compile(r"""register_device_type\(\s*["']([^"']+)["']""")


def module_names() -> list[str]:
    """Names of the section modules, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load_all() -> None:
    """Import every section module (registering all sections and device types)."""
    for name in module_names():
        importlib.import_module(f"{__name__}.{name}")


@cache
def index() -> tuple[dict[str, str], dict[str, str]]:
    """(section -> module, device type -> module), read from the modules' source; empty when
    a module ships without source (then every lookup falls back to :func:`load_all`)."""
    sections: dict[str, str] = {}
    types: dict[str, str] = {}
    folder = Path(__file__).parent
    for name in module_names():
        try:
            text = (folder / f"{name}.py").read_text(encoding="utf-8")
        except OSError:
            return {}, {}
        for key in _SECTION.findall(text):
            sections.setdefault(key, name)
        for key in _DEVICE_TYPE.findall(text):
            types.setdefault(key, name)
    return sections, types


def load_for_type(dev_type: str) -> None:
    """Import the module declaring device type ``dev_type`` and those of all its sections
    (required and optional); every module when one of them is not in the index."""
    from arch.spec import DEVICE_TYPES

    sections, types = index()
    module = types.get(dev_type)
    if module is None:
        load_all()
        return
    importlib.import_module(f"{__name__}.{module}")
    spec = dict.get(DEVICE_TYPES, dev_type)
    if spec is None:
        load_all()
        return
    for key in spec["required"] + spec["optional"]:
        if key not in sections:
            load_all()
            return
        importlib.import_module(f"{__name__}.{sections[key]}")
