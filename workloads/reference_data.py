"""Where the measured reference data lives when the user does not say (traces, measured
kernels, seed targets). Lives here, below every package that reads it; ``xpusim.paths``
re-exports it."""

from __future__ import annotations

import os
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the checkout, when run from one


def reference_candidates() -> list[Path]:
    """Folders searched for the reference data, in order: ``$XPUSIM_REFERENCE_DIR`` (alone,
    when set), then ``shared/reference`` in the working directory or any folder above it, then
    ``../shared/reference`` beside the checkout the installed package was built from."""
    env = os.environ.get("XPUSIM_REFERENCE_DIR")
    if env:
        return [Path(env)]
    cwd = Path.cwd()
    found = [p / "shared" / "reference" for p in (cwd, *cwd.parents)]
    found.append(SOURCE_ROOT.parent / "shared" / "reference")
    return list(dict.fromkeys(found))


def reference_dir() -> Path:
    """The first of :func:`reference_candidates` that exists (the first when none does)."""
    candidates = reference_candidates()
    return next((c for c in candidates if c.is_dir()), candidates[0])


def where_looked() -> str:
    """A one-line account of the folders searched, for messages."""
    cands = reference_candidates()
    if os.environ.get("XPUSIM_REFERENCE_DIR"):
        return f"$XPUSIM_REFERENCE_DIR={cands[0]}"
    return f"looked in {', '.join(str(c) for c in cands[:2])}, ... and {cands[-1]}; set " \
           "$XPUSIM_REFERENCE_DIR or pass --reference-dir"
