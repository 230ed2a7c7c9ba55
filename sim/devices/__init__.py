"""Device models, one module per device class (the model of arch type X lives in ``X.py``).

Modules are imported on demand by :func:`sim.devices.base.device_for`, so a run pays only for
the model it uses; :func:`load_all` imports every one (to list them).
"""

import importlib
import pkgutil


def load_all() -> None:
    """Import (and so register) every device model."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base":
            importlib.import_module(f"{__name__}.{mod.name}")
