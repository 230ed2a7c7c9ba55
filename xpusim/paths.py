"""Where the measured reference data lives when the user does not say."""

from __future__ import annotations

import os
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the checkout, when run from one


def reference_dir() -> Path:
    """``$XPUSIM_REFERENCE_DIR``, else ``../shared/reference`` beside the working directory or
    beside the source checkout, whichever exists (the first when neither does)."""
    env = os.environ.get("XPUSIM_REFERENCE_DIR")
    if env:
        return Path(env)
    candidates = [Path.cwd().parent / "shared" / "reference",
                  SOURCE_ROOT.parent / "shared" / "reference"]
    return next((c for c in candidates if c.is_dir()), candidates[0])
