"""Study drivers that need the design-space tools (rate search, provisioning); they register
in :mod:`sim.studies`' registry like the device studies (imported by the experiment runner)."""

from __future__ import annotations

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
