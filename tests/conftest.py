"""Shared fixtures: the reference-data folder and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def reference_dir() -> Path:
    """``$XPUSIM_REFERENCE_DIR`` or ``../shared/reference`` beside the repository."""
    return Path(os.environ.get("XPUSIM_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))


@pytest.fixture
def ref_dir() -> Path:
    """The reference-data folder; skips the test with a clear message when it is absent."""
    path = reference_dir()
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path} (set XPUSIM_REFERENCE_DIR to the "
                    "shared/reference folder to run this validation)")
    return path


@pytest.fixture(scope="module")
def vidur_ctx():
    """A validation context on the reference folder; skips without Vidur's all-reduce data."""
    from xpusim.validation import ValidationContext

    ref = reference_dir()
    if not (ref / "gpu" / "dgx_a100_allreduce_vidur.csv").is_file():
        pytest.skip(f"Vidur all-reduce data not found under {ref} (set XPUSIM_REFERENCE_DIR)")
    return ValidationContext(ref)
