"""A module bound to a name now and imported on first use (start-up, issue 18).

``simpy = LazyModule("simpy", globals())`` binds ``simpy`` in the calling module; the first
attribute read (``simpy.Environment``) imports SimPy and rebinds the name to the real module,
so later reads cost nothing. A run that never reaches such a read never imports the module.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stand-in for module ``name``, bound as ``alias`` (default: the module's last name part)
    in ``namespace`` (the binding module's ``globals()``)."""

    def __init__(self, name: str, namespace: dict[str, Any], alias: str | None = None):
        self._name = name
        self._namespace = namespace
        self._alias = alias or name.rpartition(".")[2]

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self._name)
        if self._namespace.get(self._alias) is self:
            self._namespace[self._alias] = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
