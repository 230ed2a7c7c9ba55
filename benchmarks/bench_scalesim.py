"""Benchmark: SCALE-Sim cases R1 and R3 through xpusim against SCALE-Sim 3.0.0 itself.

Prints the in-process time of the exact run (numba warm, median of 5) and the wall time of the
whole CLI command (`xpusim import scalesim ...`, process start included), each as a speed-up
over SCALE-Sim. Where SCALE-Sim is installed (``--scalesim PYTHON``, ``$SCALESIM_PYTHON``, or
this interpreter when it imports ``scalesim``) it runs here on the same inputs, as the reference
ran it (``python -m scalesim.scale -c CFG -t gemm512.csv -l layout_gemm512.csv -p OUT -i
gemm``; wall and CPU of the process), and its total cycles are checked against ours; elsewhere
the reference's recorded wall time stands in (accel/systolic_gemm_reference_cases.csv, column
``wall_s``) and the line says so.

Usage: python benchmarks/bench_scalesim.py [REFERENCE_DIR] [--scalesim PYTHON]
(SCALE-Sim 3.0.0 needs numpy < 2.4 to finish: ``pip install scalesim==3.0.0 'numpy<2'`` in a
venv of its own.)
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CASES = (("R1", "cfg_os_CALC.cfg"), ("R3", "cfg_ws_USER.cfg"))


def scalesim_python(given: str) -> str | None:
    """The interpreter that runs SCALE-Sim here ("" where none does; None where ``given``,
    the one asked for, does not)."""
    for candidate in (given, os.environ.get("SCALESIM_PYTHON", ""), sys.executable):
        try:
            ok = bool(candidate) and subprocess.run([candidate, "-c", "import scalesim"],
                                                    capture_output=True).returncode == 0
        except OSError:   # not an executable: the next candidate
            ok = False
        if ok:
            return candidate
        if candidate and candidate == given:
            return None   # asked for, and not one
    return ""


class PeerFailed(Exception):
    """SCALE-Sim did not finish, or left no total cycles (its last line of error output)."""


def run_scalesim(python: str, inputs: Path, cfg_name: str) -> tuple[float, float, int]:
    """(wall s, CPU s, total cycles) of one SCALE-Sim run of the reference's GEMM; raises
    :class:`PeerFailed` where it fails (e.g. SCALE-Sim 3.0.0 under numpy >= 2.4)."""
    with tempfile.TemporaryDirectory() as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        got = subprocess.run([python, "-m", "scalesim.scale", "-c", str(inputs / cfg_name),
                              "-t", str(inputs / "gemm512.csv"), "-l",
                              str(inputs / "layout_gemm512.csv"), "-p", out, "-i", "gemm"],
                             capture_output=True, text=True, cwd=out)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        last = (got.stderr.strip().splitlines() or [f"exit status {got.returncode}"])[-1]
        if got.returncode:
            raise PeerFailed(last)
        try:
            report = next(Path(out).rglob("COMPUTE_REPORT.csv"))
            with open(report, newline="") as fh:
                row = next(csv.DictReader(fh, skipinitialspace=True))
            cycles = int(row["Total Cycles (incl. prefetch)"])
        except (StopIteration, KeyError, ValueError) as exc:
            raise PeerFailed(f"no total cycles in its COMPUTE_REPORT.csv ({exc!r})") from None
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, cycles


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference", nargs="?", default=os.environ.get(
        "XPUSIM_REFERENCE_DIR", str(ROOT.parent / "shared" / "reference")))
    ap.add_argument("--scalesim", default="", help="a Python interpreter with scalesim")
    args = ap.parse_args()
    peer_py = scalesim_python(args.scalesim)
    if peer_py is None:
        ap.error(f"--scalesim: expected a Python interpreter that imports scalesim, got "
                 f"{args.scalesim!r}")
    ref = Path(args.reference)
    inputs = ref / "accel" / "scalesim_inputs"
    table = ref / "accel" / "systolic_gemm_reference_cases.csv"
    if not table.is_file() or not inputs.is_dir():
        ap.error(f"reference: expected the reference folder ({table} and {inputs}), not found")
    with open(table, newline="") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    from sim.micro.systolic_trace import ScaleSimConfig, run_gemm
    from xpusim.importers.scalesim import read_config

    print("SCALE-Sim: " + (f"{peer_py} (measured here)" if peer_py else
                           "not installed: the reference's wall times stand in"))
    peer_wall = {}
    for case, cfg_name in CASES:
        cfg = ScaleSimConfig(**read_config(str(inputs / cfg_name)))
        ours = run_gemm(512, 512, 512, cfg)  # compile / load the numba cache
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            run_gemm(512, 512, 512, cfg)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        failed = ""
        if peer_py:
            try:
                wall, cpu, cycles = run_scalesim(peer_py, inputs, cfg_name)
            except PeerFailed as exc:
                failed = str(exc)
        if peer_py and not failed:
            same = "equal" if cycles == ours.total_cycles else f"OURS {ours.total_cycles}"
            print(f"{case}: in-process {t * 1e3:.1f} ms, SCALE-Sim {wall:.1f} s wall ({cpu:.1f} "
                  f"CPU s) -> {wall / t:.0f}x; total cycles {cycles} ({same})")
        else:
            if failed:
                print(f"{case}: SCALE-Sim ({peer_py}) failed: {failed}")
            wall = float(rows[case]["wall_s"])
            print(f"{case}: in-process {t * 1e3:.1f} ms, SCALE-Sim {wall:.0f} s (recorded) -> "
                  f"{wall / t:.0f}x")
        peer_wall[case] = wall
    cmd = [sys.executable, "-m", "xpusim", "import", "scalesim", "--config",
           str(inputs / "cfg_os_CALC.cfg"), "--topology", str(inputs / "gemm512.csv"),
           "--layout", str(inputs / "layout_gemm512.csv"), "--json"]
    subprocess.run(cmd, capture_output=True, check=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True)
    wall = time.perf_counter() - t0
    print(f"R1 CLI wall (process start included): {wall:.2f} s -> {peer_wall['R1'] / wall:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
