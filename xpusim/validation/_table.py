"""Tiny CSV reader for the reference files (header row, numeric columns)."""

from __future__ import annotations

import csv
from pathlib import Path


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts (header names stripped)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
