"""Helpers that build the common ``reproduce --json`` shape."""

from __future__ import annotations

from typing import Any


def claim(text: str, measured: float, target: float) -> dict[str, Any]:
    """One claimed figure next to what we measured; ``rel_error`` = measured / target - 1."""
    rel = (measured / target - 1.0) if target else float("nan")
    return {"claim": text, "measured": float(measured), "target": float(target),
            "rel_error": float(rel)}


def report(name: str, results: list[dict], assumptions: list[str],
           points: list[dict] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "results": results, "assumptions": assumptions}
    if points is not None:
        out["points"] = points
    out.update(extra)
    return out
