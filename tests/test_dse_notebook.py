"""The example notebook runs top to bottom on a small sweep (a minimal runner: no Jupyter needed).

Code cells run in order in one namespace, as a kernel would run them; a failing cell fails the
test with its number. The notebook analyses ``$XPUSIM_SWEEP_DIR``, here a reduced copy of the
example sweep (fewer values per axis, roofline fidelity) so that it runs in seconds.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib

from dse import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "notebooks" / "sweep_analysis.ipynb"
EXAMPLE = ROOT / "examples" / "sweeps" / "gpu_llama2_70b.yaml"


def run_notebook(path: Path) -> dict:
    """Execute every code cell of ``path``; return the namespace."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4
    namespace: dict = {"__name__": "__main__"}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        assert not any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()), \
            f"cell {i} uses IPython magics"
        try:
            exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(f"{path.name}: cell {i} failed: {exc!r}") from exc
    return namespace


def test_sweep_analysis_notebook_runs(tmp_path, monkeypatch):
    spec = load_sweep(EXAMPLE, overrides={
        "axes": {"gpu.sm_count": [66, 132], "memory.hbm.bandwidth": ["2 TB/s", "3.35 TB/s"],
                 "scenario.batch": [1, 16, 1024]},
        "fidelity": "roofline"})
    run_sweep(spec, tmp_path / "sweep", report=False)
    monkeypatch.setenv("XPUSIM_SWEEP_DIR", str(tmp_path / "sweep"))
    monkeypatch.chdir(tmp_path)
    matplotlib.use("Agg")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-interactive.*")
        ns = run_notebook(NOTEBOOK)
    assert len(ns["df"]) == 12 and len(ns["front"]) >= 1
    assert list(ns["sens"].index) == ns["axes"]
    assert not (tmp_path / "sweep-gpu-llama2-70b").exists()  # used the given sweep
