"""Regenerate the report screenshots in docs/images/ (needs a Chromium on PATH).

    python benchmarks/report_screenshots.py

A system run (Llama-2-70B, TP 8 on a DGX H100, so links show in the timeline) and a compare of
H100, A100 and an H100 with 6.7 TB/s HBM, each rendered at 1200 CSS pixels wide.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.report.browser import screenshot  # noqa: E402
from xpusim.cli import main  # noqa: E402

RUN = ["run", "--arch", "dgx-h100", "--model", "llama2-70b", "--tp", "8", "--batch", "16",
       "--prompt", "512", "--gen", "32", "--quiet"]
COMPARE = ["compare", "h100", "a100", "--set", "memory.hbm.bandwidth=6.7TB/s", "--gen", "32",
           "--quiet"]


def build(images: Path = ROOT / "docs" / "images") -> list[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        run, cmp = Path(tmp) / "run", Path(tmp) / "compare"
        assert main([*RUN, "--out", str(run)]) == 0
        assert main([*COMPARE, "--out", str(cmp)]) == 0
        return [screenshot(run / "report.html", images / "run_report.png", height=5200),
                screenshot(cmp / "report.html", images / "compare_report.png", height=2700)]


if __name__ == "__main__":
    for p in build():
        print(p.relative_to(ROOT))
