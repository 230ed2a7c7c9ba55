"""Outputs of the commands (and of the example notebook) stay out of the source tree."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs git and a checkout")
@pytest.mark.parametrize("path", ["xpusim-report/report.html", "xpusim-sweep/results.csv",
                                  "sweep-70b/points.sqlite", "validation.csv",
                                  "validation_points.csv", "xpusim-compare/report.html"])
def test_default_outputs_are_ignored(path):
    done = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
    assert done.returncode == 0, f"{path} is not ignored by .gitignore"


def test_notebook_default_sweep_dir_is_outside_the_checkout():
    nb = json.loads((ROOT / "examples/notebooks/sweep_analysis.ipynb").read_text())
    setup = "".join(nb["cells"][1]["source"])
    assert "tempfile.gettempdir()" in setup
    assert '"sweep-gpu-llama2-70b")' not in setup  # no longer relative to the working dir


def test_reports_leave_the_matplotlib_backend_alone(tmp_path):
    """Importing and drawing the run and sweep reports must not switch the backend (a notebook
    loses its inline plots when something calls matplotlib.use("Agg") behind its back)."""
    code = (
        "import matplotlib\n"
        "matplotlib.use('pdf')\n"
        "import pandas as pd\n"
        "import dse.report, sim.report.plots as p\n"
        "ops = pd.DataFrame({'op': ['a'], 'phase': ['decode'], 'op_class': ['gemm'],\n"
        "    'flops': [1e9], 'bytes': [1e6], 'latency_s': [1e-3], 'shards': [1],\n"
        "    'energy_compute_J': [1.0], 'energy_memory_J': [1.0], 'energy_link_J': [0.0]})\n"
        "png = p.roofline_overlay_png([('a', ops, 1e12, {'fp16': 1e14})], 't')\n"
        "assert png[:4] == b'\\x89PNG'\n"
        "print(matplotlib.get_backend())\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": ""}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "pdf"
