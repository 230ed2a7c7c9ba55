"""``xpusim sweep``: dry run, report, one-line errors, and kill -9 followed by --resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dse import load_results, load_sweep
from dse.evaluate import evaluate_point
from dse.store import STORE_FILE
from xpusim.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = """
name: small
arch: h100
axes:
  gpu.sm_count: [66, 132]
  memory.hbm.bandwidth: [1.6 TB/s, 3.35 TB/s]
  scenario.batch: [1, 16]
derived:
  gpu.tensor_flops.fp16: "989.4e12 * gpu.sm_count / 132"
workloads:
  - {model: gpt2-small, layers: 2, prompt_len: 32, gen_len: 3}
objectives: [{min: tpot_s}, {max: decode_tokens_per_s}, {min: energy_per_token_J}]
fidelity: tile
"""
# ~45 ms a point: long enough to be killed half-way, short enough to finish in seconds
KILLABLE = """
name: killable
arch: h100
axes:
  gpu.sm_count: [60, 76, 92, 108, 124, 140]
  memory.hbm.bandwidth: [1.5 TB/s, 2 TB/s, 2.5 TB/s, 3 TB/s, 3.5 TB/s]
  scenario.batch: [1, 2, 4, 8]
workloads:
  - {model: llama2-7b, prompt_len: 128, gen_len: 4}
objectives: [{min: tpot_s}, {min: energy_per_token_J}]
fidelity: tile
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_dry_run_json_counts_points_and_runs_nothing(tmp_path, capsys):
    spec = write(tmp_path, SMALL)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--dry-run", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_points"] == 8 and info["strategy"] == "grid"
    assert info["axes"] == {"gpu.sm_count": 2, "memory.hbm.bandwidth": 2, "scenario.batch": 2}
    assert not (tmp_path / "out").exists()
    example = ROOT / "examples" / "sweeps" / "gpu_llama2_70b.yaml"
    assert main(["sweep", str(example), "--dry-run", "--json"]) == 0
    assert 200 <= json.loads(capsys.readouterr().out)["n_points"] <= 400


def test_sweep_writes_results_and_a_report_with_a_pareto_front(tmp_path, capsys):
    spec = write(tmp_path, SMALL)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_points"] == 8 and summary["status"]["ok"] == 8
    assert 1 <= len(summary["pareto"]) <= 8
    for name in ("results.csv", "report.html", "pareto.png", "parallel.png", "sensitivity.png",
                 "summary.json", STORE_FILE):
        assert (out / name).is_file(), name
    page = (out / "report.html").read_text()
    assert "Pareto front (" in page and page.count("data:image/png;base64,") == 3
    assert all(pid in page for pid in summary["pareto"])
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "summary.json").read_text())
    assert set(saved["sensitivity"]) == {"tpot_s", "decode_tokens_per_s", "energy_per_token_J"}
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]
    # plain text output and the refusal to overwrite
    assert main(["sweep", str(spec), "--out", str(out)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["sweep", str(spec), "--out", str(out), "--resume"]) == 0
    assert "0 evaluated, 8 resumed" in capsys.readouterr().out


@pytest.mark.parametrize("text, expected", [
    ("arch: h100\naxes: {gpu.sm_cont: [1]}\n", "axes.gpu.sm_cont: 'gpu' has no field"),
    ("arch: [\n", "YAML syntax error"),
    (SMALL.replace("{min: tpot_s}", "{min: tpot}"), "objectives[0]: unknown metric 'tpot'"),
])
def test_bad_specs_end_with_one_line_and_exit_2(tmp_path, capsys, text, expected):
    spec = write(tmp_path, text)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["sweep", str(tmp_path / "missing.yaml"), "--dry-run"]) == 2
    assert "file not found" in capsys.readouterr().err


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM points").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path):
    spec_path = write(tmp_path, KILLABLE)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "xpusim", "sweep", str(spec_path), "--out", str(out),
           "--workers", "2", "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _count(out / STORE_FILE) < 15 and proc.poll() is None:
            assert time.monotonic() < deadline, "the sweep stored nothing in 120 s"
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker processes
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    stored = _count(out / STORE_FILE)
    assert 15 <= stored < 120
    before = load_results(out)

    done = subprocess.run([*cmd, "--resume", "--json"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["resumed"] == stored and summary["evaluated"] == 120 - stored
    after = load_results(out)
    assert len(after) == 120 and after["point_id"].is_unique
    assert sorted(after["seq"]) == list(range(120))
    assert (after["status"] == "ok").all()
    # points stored before the kill are kept as they were
    kept = after.set_index("point_id").loc[before["point_id"]].reset_index()
    pd.testing.assert_frame_equal(kept[before.columns], before)
    # and every stored point equals a fresh in-process evaluation of it
    spec = load_sweep(spec_path)
    axes = [a.path for a in spec.axes]
    for _, row in after.iloc[[0, stored - 1, stored, 119]].iterrows():
        fresh = evaluate_point(spec, {a: row[a] for a in axes})
        assert fresh["point_id"] == row["point_id"]
        assert fresh["metrics"]["tpot_s"] == row["tpot_s"]
        assert fresh["metrics"]["energy_J"] == row["energy_J"]


@pytest.mark.parametrize("example", sorted((ROOT / "examples" / "sweeps").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_example_sweep_validates(example, capsys):
    assert main(["sweep", str(example), "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_points"] > 0


def test_adaptive_dry_run_and_the_progress_bar(tmp_path, capsys):
    import io

    from dse.progress import ProgressBar

    spec = write(tmp_path, SMALL + "strategy: {name: nsga2, population: 8, generations: 5}\n")
    assert main(["sweep", str(spec), "--dry-run", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["adaptive"] and info["n_points"] == 40
    stream = io.StringIO()
    bar = ProgressBar(stream=stream, enabled=True, hz=1e9, label="s")
    bar(30, 120, 30, 6.0)
    bar.close()
    text = stream.getvalue()
    assert "30/120" in text and "300 pts/min" in text and "ETA 0:18" in text
    assert text.endswith("\n")
    quiet = io.StringIO()  # not a terminal: no bar at all
    ProgressBar(stream=quiet)(1, 2, 1, 1.0)
    assert quiet.getvalue() == ""
