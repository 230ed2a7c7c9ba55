"""YAML work memoised on disk, keyed by content (start-up, issue 18): parsed built-in presets,
and YAML text written from data.

Parsing a preset's YAML costs ~3 ms of CPU and importing PyYAML ~25 ms; ``xpusim arch list``
parses every preset (and each ``extends`` base again), and every run writes its arch back as
YAML for the rerun record. :func:`parse_cached` returns the data of a preset's text from
``<cache dir>/presets/<name>-<checksums>.json`` when present, else parses it and writes that
file; :func:`dump_cached` returns the YAML text of data from ``<cache dir>/dumps/<kind>-
<checksums>.yaml`` keyed by the data's JSON text. A key is the length and two checksums
(CRC-32 and Adler-32) of the text it stands for, so changed content gets a new entry and a
stale one is never read. Only data that JSON gives back equal is cached (YAML allows non-text
keys and dates; JSON does not); anything else is parsed or written every time. The cache is a
plain speed-up: an unreadable or unwritable cache directory, or a damaged entry, falls back to
the work itself. Cache directory: ``$XPUSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/xpusim``, else
``~/.cache/xpusim``; ``XPUSIM_CACHE_DIR=off`` turns it off.
"""

from __future__ import annotations

import json
import os
import zlib
from _thread import get_ident
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cache_root() -> Path | None:
    """The cache directory, or None when turned off."""
    env = os.environ.get("XPUSIM_CACHE_DIR", "")
    if env.lower() == "off":
        return None
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "xpusim"


def cache_dir() -> Path | None:
    """The directory of the parsed presets, or None when the cache is off."""
    root = cache_root()
    return None if root is None else root / "presets"


def _checksums(text: str) -> str:
    raw = text.encode("utf-8")
    return f"{len(raw):x}-{zlib.crc32(raw):08x}-{zlib.adler32(raw):08x}"


def cache_key(name: str, text: str) -> str:
    """File name of the entry for preset ``name`` with content ``text``."""
    return f"{name}-{_checksums(text)}.json"


def parse_cached(name: str, text: str, parse: Callable[[str], Any]) -> Any:
    """``parse(text)``, read from the cache when an entry for this exact text exists."""
    folder = cache_dir()
    if folder is None:
        return parse(text)
    entry = folder / cache_key(name, text)
    try:
        return json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    data = parse(text)
    try:
        blob = json.dumps(data, allow_nan=True)
        if json.loads(blob) == data:
            _write_atomic(entry, blob)
    except (OSError, TypeError, ValueError):
        pass
    return data


def dump_cached(kind: str, data: Any, dump: Callable[[Any], str]) -> str:
    """``dump(data)`` (a text, e.g. YAML), read from the cache when an entry for data with this
    exact JSON text exists. ``kind`` names the dump function and its settings: entries of
    different kinds never mix."""
    root = cache_root()
    try:
        key_text = json.dumps(data, allow_nan=False)
        exact = root is not None and json.loads(key_text) == data
    except (TypeError, ValueError):
        exact = False
    if not exact:
        return dump(data)
    entry = root / "dumps" / f"{kind}-{_checksums(key_text)}.yaml"
    try:
        return entry.read_bytes().decode("utf-8")   # bytes: no newline translation
    except (OSError, ValueError):
        pass
    text = dump(data)
    try:
        _write_atomic(entry, text)
    except OSError:
        pass
    return text


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (no torn entries when
    processes or threads write the same entry at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{get_ident()}.tmp")
    try:
        tmp.write_bytes(text.encode("utf-8"))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
