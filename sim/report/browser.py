"""Render report pages in a headless Chromium (screenshots for the docs and the CI check)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars")


def find_browser() -> str | None:
    """Path of a Chromium-family browser on PATH, or None."""
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def screenshot(page: str | Path, png: str | Path, width: int = 1200, height: int = 4000,
               browser: str | None = None, timeout_s: float = 120.0) -> Path:
    """Render ``page`` (an HTML file) into ``png`` at ``width`` x ``height`` CSS pixels."""
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium-family browser on PATH (apt-get install chromium)")
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}",
                        f"--window-size={width},{height}", f"--screenshot={png}",
                        Path(page).resolve().as_uri()],
                       check=True, capture_output=True, timeout=timeout_s)
    return png


def dom(page: str | Path, browser: str | None = None, timeout_s: float = 120.0) -> str:
    """The page's DOM after the browser rendered it (``--dump-dom``)."""
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium-family browser on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                               Path(page).resolve().as_uri()],
                              check=True, capture_output=True, text=True, timeout=timeout_s)
    return done.stdout
