"""The benchmarks' shared arguments (benchmarks/bench_args.py): a bad ``--repeat`` or case
name is a one-line usage error with exit code 2, never a traceback from an empty median."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
from bench_args import chosen_cases, positive, rounds  # noqa: E402


def test_rounds_takes_positive_counts_only():
    assert rounds("3") == 3
    for bad in ("0", "-2", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive number of rounds"):
            rounds(bad)


def test_a_count_names_what_it_counts():
    assert positive("workers")("2") == 2
    with pytest.raises(argparse.ArgumentTypeError,
                       match="expected a positive number of workers, got 0"):
        positive("workers")("0")


@pytest.mark.parametrize("args, message", [
    (["--cases", "nosuch"], "--cases: unknown nosuch (known: conv-1k"),
    (["--sweep", "--workers", "0"], "argument --workers: expected a positive number of workers"),
])
def test_the_serving_benchmark_refuses_bad_arguments_in_a_line(args, message):
    got = subprocess.run([sys.executable, str(BENCH / "bench_serve.py"), *args],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 2 and "Traceback" not in got.stderr
    assert message in got.stderr.strip().splitlines()[-1]


def test_unknown_cases_name_the_known_ones(capsys):
    ap = argparse.ArgumentParser(prog="bench")
    assert chosen_cases(ap, "a,,b", {"a": 1, "b": 2}) == ["a", "b"]
    with pytest.raises(SystemExit) as exc:
        chosen_cases(ap, "a,zz", {"a": 1, "b": 2})
    assert exc.value.code == 2
    assert "--cases: unknown zz (known: a, b)" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["bench_run.py", "bench_cli_run.py", "bench_devices.py",
                                    "bench_startup.py"])
def test_zero_rounds_is_a_usage_error(script):
    got = subprocess.run([sys.executable, str(BENCH / script), "--repeat", "0"],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 2
    assert "Traceback" not in got.stderr
    assert got.stderr.strip().splitlines()[-1].endswith(
        "argument --repeat: expected a positive number of rounds, got 0")


def test_scalesim_benchmark_refuses_an_interpreter_without_scalesim(tmp_path):
    """``--scalesim`` names the interpreter to run SCALE-Sim with: one that does not exist
    (or cannot import it) is a usage error naming the option, not a traceback."""
    got = subprocess.run([sys.executable, str(BENCH / "bench_scalesim.py"), str(tmp_path),
                          "--scalesim", str(tmp_path / "nopython")],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 2 and "Traceback" not in got.stderr
    assert got.stderr.strip().splitlines()[-1].endswith(
        f"--scalesim: expected a Python interpreter that imports scalesim, got "
        f"'{tmp_path / 'nopython'}'")


def test_scalesim_benchmark_reports_a_failed_peer_run_in_a_line(tmp_path):
    """An interpreter that imports scalesim but whose run fails (SCALE-Sim 3.0.0 under numpy
    2.4 ends in a TypeError) gives one line naming it and its last error line per case, and
    the recorded wall times stand in; no traceback."""
    from conftest import reference_dir

    ref = reference_dir()
    if not (ref / "accel" / "scalesim_inputs").is_dir():
        pytest.skip(f"SCALE-Sim inputs not found under {ref} (set XPUSIM_REFERENCE_DIR)")
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\nif [ "$1" = "-c" ]; then exit 0; fi\n'
                    'echo "TypeError: only 0-dimensional arrays" >&2\nexit 1\n')
    fake.chmod(0o755)
    got = subprocess.run([sys.executable, str(BENCH / "bench_scalesim.py"), str(ref),
                          "--scalesim", str(fake)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert got.returncode == 0 and "Traceback" not in got.stderr, got.stderr
    lines = got.stdout.splitlines()
    for case in ("R1", "R3"):
        assert f"{case}: SCALE-Sim ({fake}) failed: TypeError: only 0-dimensional arrays" \
            in lines
        assert any(line.startswith(f"{case}: in-process") and "(recorded)" in line
                   for line in lines)


def test_the_memory_benchmark_refuses_an_unknown_run_in_a_line():
    got = subprocess.run([sys.executable, str(BENCH / "bench_memory.py"), "--runs", "nosuch"],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 2 and "Traceback" not in got.stderr
    assert "argument --runs: invalid choice: 'nosuch'" in got.stderr.strip().splitlines()[-1]
